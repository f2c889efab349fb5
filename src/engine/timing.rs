//! Time: polling and timers, the debounce window, retry backoff, schedules and triggers.
//!
//! Every rule here acts through a pending entry's hold (`Hold`): a debounced or backed-off
//! item stays in the pending set, with its waiters, and is simply not startable until its
//! timer fires, an expedited request releases it, or (for backoff) its handler reconnects.
//! Stops, cancels and state changes remove held entries exactly as they remove ready ones.

use super::accept::PLAIN;
use super::queue::{ItemIdx, Waiter, relink, waiters_of};
use super::state::{Handler, HandlerKey, Hold, Ticker, Window};
use super::timers::{Timer, Timers, share, times, unit};
use super::{Accepted, Action, Changed, Engine, RequestId};
use crate::error::Error;
use crate::flags::SyncControlFlags;
use crate::id::{HandlerId, ItemId};
use crate::policy::{SyncPolicy, Trigger, TriggerReason};
use crate::time::Time;

/// Mixed into the jitter of ticks, so that a tick's jitter and a retry's never coincide.
const TICK_SALT: u64 = 0x7469_636B;

impl Engine {
    /// The last time polled: the time of every input since.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Tells the engine the time and fires every timer due by then, oldest first (ties in a
    /// fixed order): debounce windows close, backoffs end, schedules tick. Returns how many
    /// fired. A time older than the last one seen counts as the last one seen. Between
    /// polls nothing fires: a timer fires in the first poll at or after its time. Time
    /// saturates at [`Time::MAX`], where schedules end (no tick comes after it); debounce
    /// windows and backoffs that saturate there still end, in the first poll at it.
    pub fn poll(&mut self, now: Time) -> usize {
        self.now = self.now.max(now);
        let mut fired = 0;
        // Time passes in order. At each instant the windows and backoffs that end all end
        // before anything is scheduled, so that items ready together start together; the
        // handlers they made ready compete for the free slots like any handlers (oldest
        // waiting request first); then the instant's ticks make their requests (timers of
        // one instant fire in `Timer` order: windows, backoffs, ticks).
        let mut ready: Vec<HandlerKey> = Vec::new();
        while let Some(instant) = self.timers.next().filter(|&t| t <= self.now) {
            while let Some((due, timer)) = self.timers.pop_due(instant) {
                if let Timer::Tick(_) = timer {
                    self.schedule_ready(&mut ready);
                }
                if let Some(key) = self.fire(due, timer)
                    && !ready.contains(&key)
                {
                    ready.push(key);
                }
                fired += 1;
            }
            self.schedule_ready(&mut ready);
        }
        fired
    }

    /// Lets the handlers that timers made ready compete for the free slots.
    fn schedule_ready(&mut self, ready: &mut Vec<HandlerKey>) {
        if let Some(&first) = ready.first() {
            self.waiting_for_slot.extend(ready.drain(..));
            self.schedule(first);
        }
    }

    /// Whether the time the engine is told matters now: a handler has a time policy
    /// (debounce, retries, a schedule, triggers) or a timer is set. While it does not, every
    /// input is decided the same at any time, so a shell may skip reading its clock and leave
    /// the engine at the last time it polled. Before an input that gives a handler a time
    /// policy ([`register_handler`](Engine::register_handler),
    /// [`set_sync_policy`](Engine::set_sync_policy)) it polls with the current time again:
    /// a schedule starts counting from the engine's time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use syncmgr::engine::{Engine, HandlerSpec};
    /// use syncmgr::{HandlerId, SyncPolicy, Time};
    ///
    /// let mut engine = Engine::default();
    /// let mail = HandlerId::new("mail").unwrap();
    /// engine.register_handler(HandlerSpec::new(mail.clone())).unwrap();
    /// assert!(!engine.keeps_time());
    ///
    /// engine.poll(Time::from_secs(5));
    /// let every_minute = SyncPolicy::default().every(Duration::from_secs(60));
    /// engine.set_sync_policy(&mail, every_minute).unwrap();
    /// assert!(engine.keeps_time());
    /// assert_eq!(engine.next_deadline(), Some(Time::from_secs(65)));
    /// ```
    pub fn keeps_time(&self) -> bool {
        self.timed_handlers > 0 || !self.timers.is_empty()
    }

    /// When the engine next needs a [`poll`](Engine::poll), if it waits for anything. A shell
    /// sleeps until then (or until its next input): O(log n) in the number of timers.
    pub fn next_deadline(&self) -> Option<Time> {
        self.timers.next()
    }

    /// A handler's sync policy.
    pub fn sync_policy(&self, handler: &HandlerId) -> Option<&SyncPolicy> {
        let key = self.by_id.get(handler)?;
        Some(&self.handlers.get(key)?.policy)
    }

    /// Changes a handler's sync policy. A policy out of range is an
    /// [`Error::InvalidPolicy`] and changes nothing. An open debounce window takes the new
    /// debounce times (or releases its items, if debounce is gone); a new or changed schedule
    /// starts counting now; backoffs already running keep their times.
    pub fn set_sync_policy(
        &mut self,
        handler: &HandlerId,
        policy: SyncPolicy,
    ) -> Result<Changed, Error> {
        let key = self.writable(handler)?;
        policy.validate()?;
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let old = std::mem::replace(&mut h.policy, policy);
        let changed = old != h.policy;
        let was_timed = std::mem::replace(&mut h.timed, h.policy != SyncPolicy::default());
        match (was_timed, h.timed) {
            (false, true) => self.timed_handlers += 1,
            (true, false) => self.timed_handlers -= 1,
            _ => {}
        }
        if old.debounce != h.policy.debounce {
            match (h.policy.debounce, &mut h.window) {
                (Some(d), Some(w)) => {
                    self.timers.cancel(w.due, Timer::Debounce(key));
                    w.due = (w.last + d.quiet).min(w.first + d.max_wait);
                    self.timers.set(w.due, Timer::Debounce(key));
                }
                (None, Some(_)) => close_window(h, key, Some(&mut self.timers)),
                (_, None) => {}
            }
        }
        if old.schedule != self.handlers[&key].policy.schedule {
            self.start_ticker(key);
        }
        self.schedule(key);
        Ok(Changed {
            changed,
            canceled_pending: 0,
        })
    }

    /// Reports a trigger (a connection came up or is about to go, the machine is idle): every
    /// live handler whose policy listens for it gets one handler sync, with the trigger as
    /// its reason and `IGNORE_IF_ALREADY_SYNCING`, which debounce then treats like any
    /// request. Handlers that are inactive, disabled, refuse starts or have no item to sync
    /// are skipped. Returns the requests made, in registration order (each also announced
    /// as an [`Action::Issued`]).
    pub fn trigger(&mut self, trigger: Trigger) -> Result<Vec<Accepted>, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        let listening: Vec<HandlerKey> = self
            .handlers
            .iter()
            .filter(|(_, h)| !h.removed && h.policy.listens(trigger))
            .map(|(k, _)| k)
            .collect();
        Ok(listening
            .into_iter()
            .filter_map(|k| self.issue(k, trigger.into()))
            .collect())
    }

    /// Fires one timer; returns the handler that may now start a session (to schedule once
    /// every due timer has fired).
    fn fire(&mut self, due: Time, timer: Timer) -> Option<HandlerKey> {
        match timer {
            Timer::Debounce(key) => {
                if let Some(h) = self.handlers.get_mut(&key)
                    && h.window.is_some_and(|w| w.due == due)
                {
                    // Its timer just fired: nothing to cancel.
                    close_window(h, key, None);
                }
                Some(key)
            }
            Timer::Retry(key, idx) => {
                if let Some(h) = self.handlers.get_mut(&key)
                    && h.items[idx].hold == Some(Hold::Backoff(due))
                {
                    h.items[idx].hold = None;
                    if h.items[idx].startable() {
                        h.startable += 1;
                    }
                }
                Some(key)
            }
            Timer::Tick(key) => {
                self.tick(key, due);
                None
            }
        }
    }

    /// Opens or extends the handler's debounce window after a request queued into its
    /// default pending set, `new` of whose entries it created (and holds). A request that only
    /// merged into ready entries, with no window open, delays nothing.
    pub(super) fn debounce(&mut self, key: HandlerKey, new: usize) {
        let now = self.now;
        let Some(h) = self.handlers.get_mut(&key) else {
            return;
        };
        let Some(d) = h.policy.debounce else {
            return;
        };
        let due = match &mut h.window {
            None if new == 0 => return,
            None => {
                let w = Window {
                    first: now,
                    last: now,
                    due: (now + d.quiet).min(now + d.max_wait),
                    entries: new,
                };
                h.window = Some(w);
                w.due
            }
            Some(w) => {
                self.timers.cancel(w.due, Timer::Debounce(key));
                w.last = now;
                w.entries += new;
                w.due = (now + d.quiet).min(w.first + d.max_wait);
                w.due
            }
        };
        self.timers.set(due, Timer::Debounce(key));
        self.actions.push_back(Action::Debounced {
            handler: h.id.clone(),
            until: due,
        });
    }

    /// An expedited request: every pending default-key entry of the handler is ready now.
    pub(super) fn expedite(&mut self, key: HandlerKey) {
        let Some(h) = self.handlers.get_mut(&key) else {
            return;
        };
        let held: Vec<ItemIdx> = h
            .pending
            .iter()
            .map(|(_, e)| e.item)
            .filter(|&i| h.items[i].hold.is_some())
            .collect();
        release(h, key, &held, &mut self.timers);
    }

    /// A reconnect: every backoff of the handler's items ends now.
    pub(super) fn end_backoffs(&mut self, key: HandlerKey) {
        let Some(h) = self.handlers.get_mut(&key) else {
            return;
        };
        let backing_off: Vec<ItemIdx> = h
            .pending
            .iter()
            .map(|(_, e)| e.item)
            .filter(|&i| matches!(h.items[i].hold, Some(Hold::Backoff(_))))
            .collect();
        release(h, key, &backing_off, &mut self.timers);
        self.schedule(key);
    }

    /// Puts a failed item back in the pending set until its backoff ends, with `waiters` (in
    /// request order) and any newer requests already pending for it waiting on one entry.
    /// Returns the item's ID (none if the handler record is gone, which `session_finished`,
    /// the one caller, rules out).
    pub(super) fn retry_later(
        &mut self,
        key: HandlerKey,
        idx: ItemIdx,
        waiters: &[Waiter],
        attempt: u16,
    ) -> Option<ItemId> {
        for w in waiters {
            if let Some(ri) = self
                .requests
                .get_mut(&w.request)
                .and_then(|r| r.items.get_mut(w.pos.get()))
            {
                ri.attempts = ri.attempts.saturating_add(1);
            }
        }
        let h = self.handlers.get_mut(&key)?;
        let retry = h.policy.retry;
        let jitter = unit(
            self.config.seed,
            key.raw(),
            idx.get() as u64,
            u64::from(attempt),
        );
        let at = self.now + retry.jittered(attempt, jitter);
        let mut all = waiters.to_vec();
        if h.items[idx].entry.is_some() {
            // Newer requests queued the item while it ran: one entry serves them all.
            all.extend(waiters_of(&h.items[idx].waiting, &self.requests));
            all.sort_by_key(|w| w.request);
            if h.items[idx].startable() {
                h.startable -= 1;
            }
            unhold(h, key, idx, &mut self.timers);
        } else {
            let entry = h.pending.push(idx, Default::default());
            h.items[idx].entry = Some(entry);
        }
        let slot = &mut h.items[idx];
        slot.waiting = relink(&all, &mut self.requests);
        slot.hold = Some(Hold::Backoff(at));
        self.timers.set(at, Timer::Retry(key, idx));
        self.actions.push_back(Action::RetryScheduled {
            handler: h.id.clone(),
            item: slot.id.clone(),
            attempt,
            max_attempts: retry.max_attempts,
            at,
        });
        Some(slot.id.clone())
    }

    /// (Re)starts the handler's schedule from now, or stops it if its policy has none. The
    /// open request of an earlier tick, if any, still counts as open (`Handler::scheduled`).
    pub(super) fn start_ticker(&mut self, key: HandlerKey) {
        let now = self.now;
        let seed = self.config.seed;
        let Some(h) = self.handlers.get_mut(&key) else {
            return;
        };
        if let Some(t) = h.ticker.take() {
            self.timers.cancel(t.due, Timer::Tick(key));
        }
        if h.policy.schedule.is_none() || h.removed {
            return;
        }
        let due = tick_time(h, key, seed, now, 1);
        h.ticker = Some(Ticker {
            start: now,
            k: 1,
            due,
        });
        self.timers.set(due, Timer::Tick(key));
    }

    /// Stops the handler's schedule for good (the handler is going).
    pub(super) fn stop_ticker(&mut self, key: HandlerKey) {
        if let Some(h) = self.handlers.get_mut(&key)
            && let Some(t) = h.ticker.take()
        {
            self.timers.cancel(t.due, Timer::Tick(key));
        }
    }

    /// A schedule's tick: set the next one (the first after now: ticks missed between polls
    /// do not pile up; none once time has reached `Time::MAX`), then issue a request unless
    /// the last tick's is still open.
    fn tick(&mut self, key: HandlerKey, due: Time) {
        let (now, seed) = (self.now, self.config.seed);
        let Some(h) = self.handlers.get_mut(&key) else {
            return;
        };
        let (Some(mut t), Some(s)) = (h.ticker, h.policy.schedule) else {
            return;
        };
        if t.due != due {
            return;
        }
        let elapsed = now.saturating_since(t.start).as_nanos() / s.every.as_nanos();
        t.k = u64::try_from(elapsed).unwrap_or(u64::MAX).saturating_add(1);
        t.due = tick_time(h, key, seed, t.start, t.k);
        if t.due > now {
            self.timers.set(t.due, Timer::Tick(key));
            h.ticker = Some(t);
        } else {
            // Time has ended (`Time::MAX`): no tick comes after now, and one set for now would
            // fire again in this same poll, for ever. The schedule ends with this tick.
            h.ticker = None;
        }
        if let Some(open) = h.scheduled {
            let handler = h.id.clone();
            self.actions
                .push_back(Action::TickSkipped { handler, open });
            return;
        }
        if let Some(accepted) = self.issue(key, TriggerReason::Scheduled)
            && !accepted.completed
            && let Some(h) = self.handlers.get_mut(&key)
        {
            h.scheduled = Some(accepted.request);
        }
    }

    /// A request the engine makes by itself: a handler sync with `IGNORE_IF_ALREADY_SYNCING`,
    /// announced first with [`Action::Issued`]. Nothing if the handler could not take it.
    fn issue(&mut self, key: HandlerKey, reason: TriggerReason) -> Option<Accepted> {
        let h = self.handlers.get(&key)?;
        if !h.takes_handler_sync() {
            return None;
        }
        let handler = h.id.clone();
        let request = RequestId(self.next_request);
        self.actions.push_back(Action::Issued {
            request,
            handler: handler.clone(),
            reason,
        });
        let flags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;
        match self.accept(handler, None, None, flags, PLAIN, None) {
            Ok(accepted) => Some(accepted),
            Err(_) => {
                // A refused start pushes no action: this takes back the announcement only.
                let _ = self.actions.pop_back();
                None
            }
        }
    }
}

/// When tick `k` of the handler's schedule falls: `start + k × every`, plus up to `flex`.
fn tick_time(h: &Handler, key: HandlerKey, seed: u64, start: Time, k: u64) -> Time {
    let Some(s) = h.policy.schedule else {
        return Time::MAX;
    };
    let jitter = share(s.flex, unit(seed, key.raw(), k, TICK_SALT));
    start + times(s.every, k) + jitter
}

/// Takes an entry's hold away (the entry is leaving the queue, or becoming ready), cancelling
/// its timer; a debounce window that holds nothing more closes. Leaves `startable` to the
/// caller.
pub(super) fn unhold(h: &mut Handler, key: HandlerKey, idx: ItemIdx, timers: &mut Timers) {
    match h.items[idx].hold.take() {
        Some(Hold::Debounce) => {
            if let Some(w) = &mut h.window {
                w.entries -= 1;
                if w.entries == 0 {
                    timers.cancel(w.due, Timer::Debounce(key));
                    h.window = None;
                }
            }
        }
        Some(Hold::Backoff(at)) => timers.cancel(at, Timer::Retry(key, idx)),
        None => {}
    }
}

/// Makes these held entries ready now.
fn release(h: &mut Handler, key: HandlerKey, items: &[ItemIdx], timers: &mut Timers) {
    for &idx in items {
        unhold(h, key, idx, timers);
        if h.items[idx].startable() {
            h.startable += 1;
        }
    }
}

/// Closes the handler's debounce window: the items it held are ready. `timers`: where to
/// cancel its timer, unless that timer is the one firing.
fn close_window(h: &mut Handler, key: HandlerKey, timers: Option<&mut Timers>) {
    if let Some(w) = h.window.take()
        && let Some(timers) = timers
    {
        timers.cancel(w.due, Timer::Debounce(key));
    }
    let Handler {
        pending,
        items,
        startable,
        ..
    } = h;
    for (_, e) in pending.iter() {
        let slot = &mut items[e.item];
        if slot.hold == Some(Hold::Debounce) {
            slot.hold = None;
            if slot.startable() {
                *startable += 1;
            }
        }
    }
}
