//! The manager's one clock seam: the real monotonic clock, or a [`ManualClock`] that tests
//! advance by hand.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::command::Command;
use super::scheduler::{Scheduler, SchedulerLock};
use crate::time::Time;

/// A clock that moves only when told to, for tests of timed behaviour (debounce, retries,
/// schedules) that never sleep.
///
/// Give it to [`SyncManagerBuilder::clock`](super::SyncManagerBuilder::clock); it starts at
/// [`Time::ZERO`]. [`ManualClock::advance`] moves it and, before it returns, runs every timer
/// of every manager using it that became due: the engine's decisions (a session started, a
/// retry scheduled, a request issued) are made by then. The sessions themselves run on the
/// manager's workers as usual, so wait for their results with tickets or notifications.
/// A timer set for the clock's current time (a retry or debounce of zero) needs no advance:
/// it runs at once, as it would on the real clock. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use syncmgr::{ManualClock, SyncManager, Time};
///
/// # fn main() -> Result<(), syncmgr::Error> {
/// let clock = ManualClock::new();
/// let manager = SyncManager::builder().clock(clock.clone()).build()?;
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), Time::from_secs(90));
/// # drop(manager);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    now: Mutex<Time>,
    /// The managers that read this clock, polled after each move.
    managers: Mutex<Vec<Weak<SchedulerLock>>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl ManualClock {
    /// A clock at [`Time::ZERO`].
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// The clock's time.
    pub fn now(&self) -> Time {
        *self
            .inner
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward by `by` (saturating) and runs what became due.
    pub fn advance(&self, by: Duration) {
        let to = self.now() + by;
        self.advance_to(to);
    }

    /// Moves the clock to `to` (never backwards: an earlier time leaves it where it is) and
    /// runs what became due.
    pub fn advance_to(&self, to: Time) {
        {
            let mut now = self
                .inner
                .now
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *now = (*now).max(to);
        }
        let managers: Vec<Arc<SchedulerLock>> = {
            let mut list = self
                .inner
                .managers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            list.retain(|m| m.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for scheduler in managers {
            // What the poll leaves for after the lock runs once it is released (see
            // `SchedulerLock::with`). Once shutdown has begun there is nothing left to time:
            // a deferred poll is dropped.
            scheduler.with(|s| {
                let now = self.now();
                let _ = s.run_here(Some(now), Command::Poll, Scheduler::apply);
            });
        }
    }

    pub(crate) fn attach(&self, scheduler: Weak<SchedulerLock>) {
        self.inner
            .managers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(scheduler);
    }
}

/// Where a manager reads the time.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    /// The monotonic clock, counted from the manager's start.
    Real {
        origin: Instant,
    },
    Manual(ManualClock),
}

impl Clock {
    pub fn real() -> Clock {
        Clock::Real {
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> Time {
        match self {
            Clock::Real { origin } => Time::from_duration(origin.elapsed()),
            Clock::Manual(clock) => clock.now(),
        }
    }

    /// The instant a real clock reaches `time`; `None` for a manual clock (only `advance`
    /// moves it) or a time too far to represent (never, in practice).
    pub fn instant_of(&self, time: Time) -> Option<Instant> {
        match self {
            Clock::Real { origin } => origin.checked_add(time.since_origin()),
            Clock::Manual(_) => None,
        }
    }
}
