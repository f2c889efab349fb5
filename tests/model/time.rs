//! The model's time (SPEC section 11), the simple way.
//!
//! Time is a value the caller gives (`Model::poll`); every other call happens at the last time
//! polled. No timer is stored: `Model::timers` lists every deadline afresh from the state, in
//! one plain `Vec` scanned in full, and `poll` fires the earliest due one, then lists them all
//! again, until none is due. The deadlines are:
//!
//! - a handler's **debounce window**, while it holds an entry (`Hold::Debounced`): due at
//!   `min(last + quiet, first + max_wait)` under the handler's policy now, where `first` is
//!   when the window opened (the first request that made a debounced entry) and `last` the
//!   last request that queued or merged into the default pending set while it was open.
//!   When it fires, every debounced entry is ready;
//! - an entry's **backoff** (`Hold::Backoff(at)`): due at `at`. When it fires, the entry is
//!   ready;
//! - a handler's **schedule** tick `k`: due at `start + k × every` (`start`: when the schedule
//!   was registered or last changed). When it fires, the next tick is the first after now, and
//!   the handler gets a request unless one a tick made is still open.
//!
//! Time passes in order, one instant after another. Within an instant, windows end first, then
//! backoffs (each kind in registration order, backoffs then in item table order); then the
//! handlers they made ready start sessions, oldest waiting request first; then the instant's
//! ticks make their requests, each starting its own handler's sessions at once, as any
//! request does (a window a tick's request opens for that same instant ends before the next
//! tick, and what it made ready starts before that tick or at the instant's end).
//! That order is the engine's to choose (SPEC 11 says only that the same inputs give the same
//! actions); the model takes it from the engine's docs so that the two start the same
//! sessions in the same order.
//!
//! The rest, from SPEC 11 and the engine's module docs (section "Time"):
//!
//! - **Debounce** holds only the default-key entries a request creates, unless the request is
//!   expedited. A window opens with the first such entry; every request that queues or merges
//!   into the default pending set while it is open moves `last`. It closes when it fires, when
//!   its policy loses its debounce, or when no entry it held is left. An **expedited** request
//!   makes every held entry of its handler ready (debounced or backing off).
//! - **Retry**: when a default-key session ends, each item's *run* of failures goes on or
//!   ends. An item ended `Failed` (not reported permanent), still an enabled item of an
//!   active, enabled handler, before shutdown, whose attempt number (the run's attempts + 1)
//!   is below `max_attempts`, is tried again for the requests that wait for it and asked for
//!   retry: they wait on its default-key entry (made if there is none, at the back; else the
//!   entry newer requests made while it ran, its waiters in request order), held until
//!   `end + min(max, initial × factor^(attempt-1))`. Requests made without retry, and legacy
//!   requests that joined the item (the legacy API has no retry), take the `Failed` now.
//!   Otherwise the run ends. A run also ends when its entry leaves the pending
//!   set while no session holds the item (a stop, a cancel). Only default-key sessions take
//!   part in runs: legacy requests never retry, and their sessions neither add an attempt to
//!   nor end a run of the default key's requests (SPEC 11.6: "at most `max_attempts` times
//!   for the requests that wait for it").
//! - A **reconnect** (`set_handler_connected` from false to true) ends every backoff of the
//!   handler. A change of retry policy leaves running backoffs alone.
//! - **Schedules and triggers** make a handler sync with `IGNORE_IF_ALREADY_SYNCING`, its
//!   trigger as reason, announced with `Issued` before anything else about it; a handler
//!   that is removed, inactive, disabled, refuses starts or has no item to sync gets none.
//!   A handler has at most one open request made by a tick (SPEC 11.3), whatever changes its
//!   schedule went through: a tick that finds one issues nothing and says so (`TickSkipped`).
//!
//! The model knows no jitter: it computes delays and ticks with jitter and flex 0 (it panics
//! on a policy with either), which is all the exact comparison draws. The retry factor must be
//! a multiple of 1/4 and the delays whole multiples of 4 ns so that the model's integer
//! arithmetic is exact (the generator's are).

use std::time::Duration;

use syncmgr::{
    HandlerId, HandlerPolicies, ItemId, ItemPolicies, MAX_DELAY, Outcome, Retry, SyncControlFlags,
    SyncPolicy, Time, Trigger, TriggerReason,
};

use super::{Hold, MAccepted, MAction, MChanged, MError, Model, Options, Session, SessionItem};

/// A handler's debounce window (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    first: Time,
    last: Time,
}

/// A handler's schedule: its next tick is `start + k × every`.
#[derive(Clone, Copy, Debug)]
pub struct Ticker {
    start: Time,
    k: u64,
}

impl From<Time> for Ticker {
    /// A schedule starting at `start`: its first tick is one period later.
    fn from(start: Time) -> Ticker {
        Ticker { start, k: 1 }
    }
}

/// One deadline. Ordered for ties: windows, backoffs, ticks; then by handler (registration
/// index) and item (index in the handler's item table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Window(usize),
    Backoff(usize, usize),
    Tick(usize),
}

/// `d × k`, saturating.
fn times(d: Duration, k: u64) -> Duration {
    let nanos = d.as_nanos().saturating_mul(u128::from(k));
    nanos_to_duration(nanos)
}

fn nanos_to_duration(nanos: u128) -> Duration {
    let secs = nanos / 1_000_000_000;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (nanos % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}

/// The delay before the attempt after failed attempt `attempt`:
/// `min(max, initial × factor^(attempt-1))` (SPEC 11.2), in whole nanoseconds.
pub fn backoff(retry: &Retry, attempt: u16) -> Duration {
    assert_eq!(retry.jitter, 0.0, "the model knows no jitter");
    let quarters = retry.factor * 4.0;
    assert!(
        quarters.fract() == 0.0 && quarters <= 64.0,
        "the model multiplies by quarters only: {}",
        retry.factor
    );
    let quarters = quarters as u128;
    let max = retry.max.as_nanos();
    let mut delay = retry.initial.as_nanos();
    for _ in 1..attempt {
        if delay >= max {
            break;
        }
        assert!(
            delay.is_multiple_of(4),
            "the model's delays are whole multiples of 4 ns"
        );
        delay = delay * quarters / 4;
    }
    nanos_to_duration(delay.min(max))
}

/// SPEC 11: a policy outside its ranges is refused, naming the field. (Where several fields
/// are out of range the one named is the engine's choice; the generator breaks one at a
/// time.)
pub fn check_policy(p: &SyncPolicy) -> Result<(), MError> {
    let bad = |field| Err(MError::InvalidPolicy(field));
    if let Some(d) = &p.debounce {
        if d.quiet > MAX_DELAY {
            return bad("debounce.quiet");
        }
        if d.max_wait > MAX_DELAY || d.max_wait < d.quiet {
            return bad("debounce.max_wait");
        }
    }
    let r = &p.retry;
    if r.max_attempts == 0 {
        return bad("retry.max_attempts");
    }
    if r.initial > MAX_DELAY {
        return bad("retry.initial");
    }
    if !(r.factor >= 1.0 && r.factor.is_finite()) {
        return bad("retry.factor");
    }
    if r.max > MAX_DELAY {
        return bad("retry.max");
    }
    if !(0.0..=1.0).contains(&r.jitter) {
        return bad("retry.jitter");
    }
    if let Some(s) = &p.schedule {
        if s.every.is_zero() || s.every > MAX_DELAY {
            return bad("schedule.every");
        }
        if s.flex > s.every {
            return bad("schedule.flex");
        }
    }
    Ok(())
}

fn reason_of(trigger: Trigger) -> TriggerReason {
    match trigger {
        Trigger::Connect => TriggerReason::Connect,
        Trigger::PendingDisconnect => TriggerReason::PendingDisconnect,
        Trigger::Idle => TriggerReason::Idle,
    }
}

impl Model {
    /// The last time polled.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The earliest deadline, if the model waits for any.
    pub fn next_deadline(&self) -> Option<Time> {
        self.timers().into_iter().map(|(due, _)| due).min()
    }

    /// Every deadline, listed afresh from the state.
    fn timers(&self) -> Vec<(Time, Timer)> {
        let mut list = Vec::new();
        for (h, handler) in self.handlers.iter().enumerate() {
            if let Some(due) = self.window_due(h) {
                list.push((due, Timer::Window(h)));
            }
            for entry in &handler.pending {
                if let Hold::Backoff(at) = entry.hold {
                    let item = handler
                        .items
                        .iter()
                        .position(|i| i.id == entry.item)
                        .unwrap();
                    list.push((at, Timer::Backoff(h, item)));
                }
            }
            if let (Some(t), Some(s)) = (&handler.ticker, &handler.policy.schedule) {
                assert!(s.flex.is_zero(), "the model knows no flex");
                list.push((t.start + times(s.every, t.k), Timer::Tick(h)));
            }
        }
        list
    }

    /// SPEC 11: time only moves forward (an older time counts as the last one seen), and
    /// passes in order: the earliest instant with a deadline due by now comes first. Its
    /// windows and backoffs end, then sessions start with what is ready (SPEC 5: all of it,
    /// so items whose backoffs end together start together), then its ticks make their
    /// requests (each starting its own handler's sessions, as any request does); then the
    /// next instant. Returns how many fired.
    pub fn poll(&mut self, now: Time) -> usize {
        self.now = self.now.max(now);
        let mut fired = 0;
        loop {
            let now = self.now;
            let Some(instant) = self
                .timers()
                .into_iter()
                .map(|(due, _)| due)
                .filter(|due| *due <= now)
                .min()
            else {
                return fired;
            };
            self.in_instant = true;
            loop {
                let due = self
                    .timers()
                    .into_iter()
                    .filter(|(due, _)| *due == instant)
                    .min();
                let Some((_, timer)) = due else {
                    break;
                };
                fired += 1;
                if let Timer::Tick(_) = timer {
                    // What the instant's windows and backoffs made ready starts first.
                    self.schedule();
                }
                match timer {
                    Timer::Window(h) => self.release(h, |hold| hold == Hold::Debounced),
                    Timer::Backoff(h, i) => {
                        let item = self.handlers[h].items[i].id.clone();
                        for entry in &mut self.handlers[h].pending {
                            if entry.item == item && entry.key.is_none() {
                                entry.hold = Hold::Ready;
                            }
                        }
                    }
                    Timer::Tick(h) => self.tick(h),
                }
            }
            self.in_instant = false;
            self.schedule();
        }
    }

    // ----- debounce --------------------------------------------------------------------------

    /// Whether handler `h` has an open debounce window: one that holds an entry.
    pub(super) fn window_open(&self, h: usize) -> bool {
        let handler = &self.handlers[h];
        handler.window.is_some() && handler.pending.iter().any(|e| e.hold == Hold::Debounced)
    }

    /// When handler `h`'s open window closes, under its policy now.
    fn window_due(&self, h: usize) -> Option<Time> {
        if !self.window_open(h) {
            return None;
        }
        let handler = &self.handlers[h];
        let (w, d) = (handler.window?, handler.policy.debounce?);
        Some((w.last + d.quiet).min(w.first + d.max_wait))
    }

    /// After a request queued or merged into handler `h`'s default pending set, making
    /// `held_back` debounced entries: the window opens (if it was not open and the request
    /// held something back) or moves its `last` (if it was open), and says until when.
    pub(super) fn debounce(&mut self, h: usize, held_back: usize, was_open: bool) {
        let now = self.now;
        let handler = &mut self.handlers[h];
        if handler.policy.debounce.is_none() {
            return;
        }
        match (&mut handler.window, was_open) {
            (Some(w), true) => w.last = now,
            (window, false) if held_back > 0 => {
                *window = Some(Window {
                    first: now,
                    last: now,
                })
            }
            _ => return,
        }
        let until = self.window_due(h).unwrap();
        let handler = self.handlers[h].id.clone();
        self.actions.push(MAction::Debounced { handler, until });
    }

    /// Makes every entry of handler `h` whose hold matches ready now.
    pub(super) fn release(&mut self, h: usize, which: impl Fn(Hold) -> bool) {
        for entry in &mut self.handlers[h].pending {
            if which(entry.hold) {
                entry.hold = Hold::Ready;
            }
        }
    }

    // ----- retry -----------------------------------------------------------------------------

    /// Request `r` waited for `item` in a session that just ended: one more attempt for it.
    pub(super) fn count_attempt(&mut self, r: u64, item: &ItemId) {
        let req = &mut self.requests[r as usize - 1];
        if req.done {
            return;
        }
        if let Some(pos) = req.items.iter().position(|(i, _)| i == item) {
            req.attempts[pos] += 1;
        }
    }

    /// An item's default-key entry left the pending set: if no running session holds the
    /// item, its run of failures is over.
    pub(super) fn run_over_if_idle(&mut self, h: usize, item: &ItemId) {
        if self.holder(h, item).is_some() {
            return;
        }
        for record in &mut self.handlers[h].items {
            if record.id == *item {
                record.attempts = 0;
            }
        }
    }

    /// Who takes `si`'s outcome now and who waits for another attempt, with the attempt that
    /// just ended (see the module docs).
    pub(super) fn split_for_retry(
        &mut self,
        session: &Session,
        si: &SessionItem,
        outcome: Outcome,
    ) -> (Vec<u64>, Vec<u64>, u16) {
        let waiters = si.waiters.clone();
        if session.key.is_some() {
            return (waiters, Vec::new(), 0);
        }
        let h = session.handler;
        let shut_down = self.shut_down;
        let handler = &mut self.handlers[h];
        let handler_can = !handler.removed && handler.active && handler.enabled && !shut_down;
        let max_attempts = handler.policy.retry.max_attempts;
        let Some(record) = handler.items.iter_mut().find(|i| i.id == si.item) else {
            return (waiters, Vec::new(), 0);
        };
        let attempt = record.attempts.saturating_add(1);
        record.attempts = 0;
        let again = outcome == Outcome::Failed
            && !si.permanent
            && record.live
            && record.enabled
            && handler_can
            && attempt < max_attempts;
        if !again {
            return (waiters, Vec::new(), attempt);
        }
        // Requests made without retry, and legacy requests that joined the item here (the
        // legacy API has no retry), take the `Failed` now.
        let requests = &self.requests;
        let (now, later): (Vec<u64>, Vec<u64>) = waiters.into_iter().partition(|&r| {
            let req = &requests[r as usize - 1];
            req.no_retry || req.key.is_some()
        });
        if !later.is_empty() {
            self.handlers[h]
                .items
                .iter_mut()
                .find(|i| i.id == si.item)
                .unwrap()
                .attempts = attempt;
        }
        (now, later, attempt)
    }

    /// Puts a failed item back in handler `h`'s default pending set, held until its backoff
    /// ends, with `waiters` waiting there (and whoever already waited there).
    pub(super) fn retry_later(&mut self, h: usize, item: &ItemId, waiters: &[u64], attempt: u16) {
        let retry = self.handlers[h].policy.retry;
        let at = self.now + backoff(&retry, attempt);
        let pending = &mut self.handlers[h].pending;
        match pending
            .iter_mut()
            .find(|e| e.item == *item && e.key.is_none())
        {
            Some(entry) => {
                entry.waiters.extend_from_slice(waiters);
                entry.waiters.sort();
                entry.hold = Hold::Backoff(at);
            }
            None => pending.push(super::Entry {
                item: item.clone(),
                key: None,
                waiters: waiters.to_vec(),
                hold: Hold::Backoff(at),
            }),
        }
        self.actions.push(MAction::RetryScheduled {
            handler: self.handlers[h].id.clone(),
            item: item.clone(),
            attempt,
            max_attempts: retry.max_attempts,
            at,
        });
    }

    // ----- policy, schedules and triggers ----------------------------------------------------

    /// SPEC 11: a policy out of range is refused and changes nothing. An open window takes the
    /// new debounce times, or lets its entries go if debounce is gone; a new or changed
    /// schedule counts from now; backoffs keep their times.
    pub fn set_sync_policy(
        &mut self,
        id: &HandlerId,
        policy: SyncPolicy,
    ) -> Result<MChanged, MError> {
        let h = self.writable(id)?;
        check_policy(&policy)?;
        let open = self.window_open(h);
        let now = self.now;
        let handler = &mut self.handlers[h];
        let old = std::mem::replace(&mut handler.policy, policy);
        let changed = old != handler.policy;
        if open && handler.policy.debounce.is_none() {
            self.release(h, |hold| hold == Hold::Debounced);
        }
        let handler = &mut self.handlers[h];
        if old.schedule != handler.policy.schedule {
            handler.ticker = handler.policy.schedule.map(|_| Ticker::from(now));
        }
        self.schedule();
        Ok(MChanged {
            changed,
            canceled_pending: 0,
        })
    }

    /// The request a tick of handler `h` made that is still open, if any.
    fn open_scheduled(&self, h: usize) -> Option<u64> {
        (0..self.requests.len())
            .find(|&r| {
                let req = &self.requests[r];
                req.handler == h && req.scheduled && !req.done
            })
            .map(|r| r as u64 + 1)
    }

    /// Handler `h`'s schedule ticks (SPEC 11.3): the next tick is the first after now (ticks
    /// missed between polls do not pile up), and the handler gets one request unless a tick's
    /// request is still open.
    fn tick(&mut self, h: usize) {
        let every = self.handlers[h].policy.schedule.unwrap().every;
        let t = self.handlers[h].ticker.as_mut().unwrap();
        let elapsed = self.now.saturating_since(t.start).as_nanos() / every.as_nanos();
        t.k = u64::try_from(elapsed).unwrap_or(u64::MAX).saturating_add(1);
        // At `Time::MAX` no tick comes after now: the schedule ends with this one.
        if t.start + times(every, t.k) <= self.now {
            self.handlers[h].ticker = None;
        }
        if let Some(open) = self.open_scheduled(h) {
            let handler = self.handlers[h].id.clone();
            self.actions.push(MAction::TickSkipped { handler, open });
            return;
        }
        if let Some(acc) = self.issue(h, TriggerReason::Scheduled) {
            self.requests[acc.request as usize - 1].scheduled = true;
        }
    }

    /// A request the model makes by itself for handler `h`: a handler sync with
    /// `IGNORE_IF_ALREADY_SYNCING`, announced first. None if the handler could not take one.
    fn issue(&mut self, h: usize, reason: TriggerReason) -> Option<MAccepted> {
        let handler = &self.handlers[h];
        let something = handler
            .items
            .iter()
            .any(|i| i.live && i.enabled && !i.policies.contains(ItemPolicies::PREVENT_START_SYNC));
        if handler.removed
            || !handler.active
            || !handler.enabled
            || handler
                .policies
                .contains(HandlerPolicies::PREVENT_START_SYNC)
            || !something
        {
            return None;
        }
        let id = handler.id.clone();
        let request = self.requests.len() as u64 + 1;
        self.actions.push(MAction::Issued {
            request,
            handler: id.clone(),
            reason,
        });
        let flags = SyncControlFlags::IGNORE_IF_ALREADY_SYNCING;
        match self.accept(&id, None, flags, None, Options::PLAIN) {
            Ok(acc) => Some(acc),
            Err(e) => panic!("a request the model issued was refused: {e:?}"),
        }
    }

    /// SPEC 11.4: one request for every handler whose policy listens for the trigger, in
    /// registration order.
    pub fn trigger(&mut self, trigger: Trigger) -> Result<Vec<MAccepted>, MError> {
        if self.shut_down {
            return Err(MError::ShutDown);
        }
        let mut made = Vec::new();
        for h in 0..self.handlers.len() {
            let handler = &self.handlers[h];
            if !handler.removed
                && handler.policy.triggers.contains(&trigger)
                && let Some(acc) = self.issue(h, reason_of(trigger))
            {
                made.push(acc);
            }
        }
        Ok(made)
    }
}
