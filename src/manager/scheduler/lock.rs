//! The scheduler's lock, and the session ends left beside it while it is busy.
//!
//! A worker whose session has ended must tell the scheduler, and the scheduler's lock is
//! held by every start call. In a stream of requests the submitting thread holds it most of
//! the time; a worker that blocked on it slept, and once woken waited for a processor behind
//! the thread that kept the lock busy, while the requests queued behind the session it was
//! ending. So a session's end never waits for a busy lock: it is left here, and the thread
//! that holds the lock applies it, as soon as it lets the lock go. The worker is back for its
//! next job at once (`benches/manager.rs`, `stream_1_thread`: sessions of about 340 requests
//! instead of 18, and about 8% less time; see `benches/README.md`).
//!
//! Only session ends are left this way: one needs no answer, and it carries no user value,
//! so none is ever held here or dropped here.
//!
//! The rule that keeps an end from being forgotten: whoever leaves one looks at the lock
//! after it has left it, and whoever lets the lock go looks for ends after it has let it go
//! (both with a full fence in between). At least one of the two sees the other, and applies
//! the end if the lock is then free; if it is not, its new holder will look when it lets go.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use smallvec::SmallVec;

use super::{AfterUnlock, Scheduler};
use crate::engine::{SessionEnd, SessionId};
use crate::manager::command::{Command, Ran};
use crate::unwind::Locked;

/// The scheduler behind its lock, with the session ends left while the lock was busy.
pub(crate) struct SchedulerLock {
    scheduler: Mutex<Scheduler>,
    ends: Ends,
}

/// Session ends waiting for the lock, on a cache line of their own: workers write them while
/// callers take the lock.
#[repr(align(128))]
struct Ends {
    /// Whether `list` may hold ends: read without its lock by every thread that lets the
    /// scheduler's lock go.
    waiting: AtomicBool,
    list: Mutex<Vec<(SessionId, SessionEnd)>>,
}

impl Ends {
    fn list(&self) -> MutexGuard<'_, Vec<(SessionId, SessionEnd)>> {
        // Only pushes and a take run under this lock: never poisoned.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the ends left so far, keeping the list's room for the next ones (ends are left
    /// one or two at a time).
    fn take(&self) -> SmallVec<[(SessionId, SessionEnd); 4]> {
        let mut list = self.list();
        self.waiting.store(false, Ordering::Relaxed);
        list.drain(..).collect()
    }
}

impl SchedulerLock {
    pub fn new(scheduler: Scheduler) -> SchedulerLock {
        SchedulerLock {
            scheduler: Mutex::new(scheduler),
            ends: Ends {
                waiting: AtomicBool::new(false),
                list: Mutex::new(Vec::new()),
            },
        }
    }

    /// Runs `f` under the lock. Taking it applies the session ends left before, so a
    /// thread's calls apply in the order it made them (a worker that left an end, then
    /// reports on its next session); what they and `f` leave for after the lock runs once it
    /// is released, and then the ends left meanwhile are applied (see the module docs).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut SchedulerGuard<'_>) -> R) -> R {
        let value = Self::held(self.lock(), f);
        self.apply_left_ends();
        value
    }

    /// Tells the scheduler a session has ended without waiting for its lock: applied here if
    /// the lock is free, otherwise by the thread that holds it, once it lets it go.
    pub fn end_session(&self, session: SessionId, end: SessionEnd) {
        match self.try_lock() {
            Some(s) => Self::held(s, |s| s.apply_end(session, end)),
            None => {
                let mut list = self.ends.list();
                list.push((session, end));
                self.ends.waiting.store(true, Ordering::Relaxed);
            }
        }
        self.apply_left_ends();
    }

    /// Applies the ends left so far if the lock is free; a thread that holds it will
    /// otherwise, when it lets it go. Its after-lock work runs here.
    #[inline]
    fn apply_left_ends(&self) {
        // Orders this thread's last write (an end left, or the lock let go) before the read
        // below; the other side has the same fence.
        fence(Ordering::SeqCst);
        if self.ends.waiting.load(Ordering::Relaxed) {
            self.apply_left_ends_now();
        }
    }

    #[inline(never)]
    fn apply_left_ends_now(&self) {
        // Taking the lock applies them (see `held`).
        while let Some(s) = self.try_lock() {
            Self::held(s, |_| {});
            fence(Ordering::SeqCst);
            if !self.ends.waiting.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Runs `f` on the held lock `s`, after the ends left before it, then releases the lock
    /// and runs what they and `f` left for after it.
    #[inline]
    fn held<R>(mut s: SchedulerGuard<'_>, f: impl FnOnce(&mut SchedulerGuard<'_>) -> R) -> R {
        s.apply_ends();
        let value = f(&mut s);
        let after = s.after_if_any();
        drop(s);
        if let Some(after) = after {
            after.run();
        }
        value
    }

    fn try_lock(&self) -> Option<SchedulerGuard<'_>> {
        let guard = match self.scheduler.try_lock() {
            Ok(guard) => guard,
            // Never poisoned in fact (see `lock`).
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(SchedulerGuard::new(self, guard))
    }

    #[inline]
    fn lock(&self) -> SchedulerGuard<'_> {
        // Never poisoned: every step runs under `catch_unwind` (see `Scheduler::guarded`),
        // and a step that panicked marks the scheduler broken instead.
        let guard = self
            .scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        SchedulerGuard::new(self, guard)
    }
}

/// The held scheduler lock. While it is held the thread is marked (see [`Locked`]), so that
/// user code reached under it fails the debug-build check of the panic policy.
pub(crate) struct SchedulerGuard<'a> {
    guard: MutexGuard<'a, Scheduler>,
    ends: &'a Ends,
    _mark: Locked,
}

impl<'a> SchedulerGuard<'a> {
    fn new(lock: &'a SchedulerLock, guard: MutexGuard<'a, Scheduler>) -> SchedulerGuard<'a> {
        SchedulerGuard {
            guard,
            ends: &lock.ends,
            _mark: Locked::mark(),
        }
    }

    /// Applies the session ends left so far, in the order they were left.
    #[inline]
    fn apply_ends(&mut self) {
        if self.ends.waiting.load(Ordering::Relaxed) {
            self.apply_ends_now();
        }
    }

    #[inline(never)]
    fn apply_ends_now(&mut self) {
        for (session, end) in self.ends.take() {
            self.apply_end(session, end);
        }
    }

    /// Applies one session's end, or sends it to the scheduler thread once shutdown has
    /// begun.
    fn apply_end(&mut self, session: SessionId, end: SessionEnd) {
        let command = Command::SessionFinished { session, end };
        // Otherwise it was applied, or the scheduler broke (every session then ended with it).
        if let Ran::Later(Command::SessionFinished { session, end }) =
            self.guard.run_here(None, command, Scheduler::apply)
        {
            self.guard.link.queue_session_end(session, end);
        }
    }

    /// What the step left for after the lock and its caller did not take, or `None` when
    /// there is nothing (most starts and reports: no record moved and dropped on every call).
    /// The scheduler thread keeps the user values let go of until it has ended (see
    /// `Scheduler::run`); any other thread takes all of it.
    #[inline]
    fn after_if_any(&mut self) -> Option<AfterUnlock> {
        if self.guard.after.is_empty() {
            None
        } else if self.guard.link.on_scheduler_thread() {
            Some(self.guard.take_wakes())
        } else {
            Some(self.guard.after_unlock())
        }
    }
}

impl Deref for SchedulerGuard<'_> {
    type Target = Scheduler;
    fn deref(&self) -> &Scheduler {
        &self.guard
    }
}

impl DerefMut for SchedulerGuard<'_> {
    fn deref_mut(&mut self) -> &mut Scheduler {
        &mut self.guard
    }
}
