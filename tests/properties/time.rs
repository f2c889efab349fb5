//! The invariants of time (SPEC section 11), labelled (i) to (q), one function each, checked
//! after every call from the engine's public views, its actions, and this file's own account
//! of what time holds back (`Book`). `Harness::check_time` runs them all, in the order below,
//! then brings the book up to date.
//!
//! The book never asks the engine what is held back: it infers it from the actions (an entry
//! made in a call that says `Debounced` is debounced, `RetryScheduled` puts an item in
//! backoff) and from the rules of SPEC 11 alone. Where it cannot be sure (an entry whose
//! window may have closed within a poll that also opened another), it forgets what it knew:
//! a weaker check, never a false one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::test_runner::TestCaseError;
use syncmgr::engine::{Action, MergeKey};
use syncmgr::{HandlerId, ItemId, ItemOutcome, Outcome, SyncPolicy, Time, Trigger, TriggerReason};

use super::Harness;
use super::driver::{Call, Reply, Snapshot};
use super::invariants::Step;

/// A schedule as the book knows it: tick `k` falls in `[start + k × every, ... + flex]`.
#[derive(Clone, Copy, Debug)]
struct Tick {
    start: Time,
    every: Duration,
    flex: Duration,
    k: u64,
}

impl Tick {
    fn new(start: Time, s: &syncmgr::Schedule) -> Tick {
        Tick {
            start,
            every: s.every,
            flex: s.flex,
            k: 1,
        }
    }
}

/// Why the book thinks a pending default-key entry may be held back.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Debounced: certainly not ready before `until`, when the book knows that much.
    Debounce { until: Option<Time> },
    /// In backoff until `at` (a backoff is never extended).
    Backoff { at: Time },
}

/// What the time invariants keep between calls. Keys are (handler, item) of the handler's
/// current registration (a registration or removal forgets the ID's entries).
#[derive(Debug, Default)]
pub(super) struct Book {
    /// When each pending default-key entry came into being.
    created: BTreeMap<(HandlerId, ItemId), Time>,
    /// The entries that may be held back: every one that is, and maybe some that no longer
    /// are (an entry leaves this map only when it is certainly ready).
    held: BTreeMap<(HandlerId, ItemId), Kind>,
    /// Each schedule: its start, its period, its flex, and the number of its next tick as far
    /// as the book knows (a tick that fires silently, for an inactive handler say, is known
    /// to have fired only once its latest time, with flex, has passed: until then the book's
    /// number may lag behind, a weaker lower bound).
    ticks: BTreeMap<HandlerId, Tick>,
    /// Per (request, item): the sessions that ended with the request waiting for the item
    /// there.
    ran: BTreeMap<(u64, ItemId), u16>,
    /// Per handler registration: the largest `max_attempts` its policies have had.
    max_attempts: BTreeMap<(HandlerId, u32), u16>,
    /// (session, item) reported failed for good.
    permanent: BTreeSet<(u64, ItemId)>,
    /// The time of every poll so far, in order.
    polls: Vec<Time>,
    /// When each handler (current registration) was told `Debounced`: a window opens at one
    /// of these.
    announced: BTreeMap<HandlerId, Vec<Time>>,
}

fn policy_of<'a>(snap: &'a Snapshot, h: &HandlerId) -> Option<&'a SyncPolicy> {
    snap.policies.iter().find(|(id, _)| id == h).map(|(_, p)| p)
}

/// Whether this call made handler `h`'s whole pending set ready ("Sync now").
fn expedited(step: &Step, h: &HandlerId) -> bool {
    matches!(
        (step.call, step.got),
        (Call::StartWith(id, _, _, o), Ok(Reply::Accepted(acc)))
            if id == h && o.expedite && o.key.is_default() && !acc.completed
    )
}

/// Whether this call reconnected handler `h` (which ends its backoffs).
fn reconnected(step: &Step, h: &HandlerId) -> bool {
    matches!(
        (step.call, step.got),
        (Call::SetConnected(id, true), Ok(Reply::Changed(c))) if id == h && c.changed
    )
}

/// Whether this call changed handler `h`'s policy.
fn policy_set(step: &Step, h: &HandlerId) -> bool {
    matches!((step.call, step.got), (Call::SetPolicy(id, _), Ok(_)) if id == h)
}

/// The default-key sessions this call started: handler and items.
fn default_starts<'a>(step: &Step<'a>) -> Vec<(&'a HandlerId, &'a [ItemId])> {
    step.actions
        .iter()
        .filter_map(|a| match a {
            Action::StartSession {
                handler,
                items,
                key,
                ..
            } if key.is_default() => Some((handler, items.as_slice())),
            _ => None,
        })
        .collect()
}

/// Tick `k` of a schedule that started at `start`, without flex.
fn nth_tick(start: Time, every: Duration, k: u64) -> Time {
    let nanos = every.as_nanos().saturating_mul(u128::from(k));
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    start + Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

/// `min(max, initial × factor^(attempt-1))` in seconds, as SPEC 11.2 writes it.
fn nominal_delay(p: &SyncPolicy, attempt: u16) -> f64 {
    let r = &p.retry;
    let grown = r.initial.as_secs_f64() * r.factor.powi(i32::from(attempt) - 1);
    grown.min(r.max.as_secs_f64())
}

impl Harness {
    /// Whether time may hold back handler `h`'s default-key entry of `item` after this call:
    /// the book says so, or the call put it in backoff, or made it in a debounced call.
    pub(super) fn may_hold(&self, step: &Step, h: &HandlerId, item: &ItemId) -> bool {
        self.held_after(step, h, item).is_some()
    }

    /// What may hold back handler `h`'s default-key entry of `item` after this call: a
    /// backoff the call scheduled, else what the book knew, else a debounce if the call made
    /// the entry and said `Debounced`.
    fn held_after(&self, step: &Step, h: &HandlerId, item: &ItemId) -> Option<Kind> {
        let at = (h.clone(), item.clone());
        for a in step.actions {
            if let Action::RetryScheduled {
                handler,
                item: i,
                at,
                ..
            } = a
                && handler == h
                && i == item
            {
                return Some(Kind::Backoff { at: *at });
            }
        }
        if let Some(kind) = self.book.held.get(&at) {
            return Some(*kind);
        }
        step.actions.iter().find_map(|a| match a {
            Action::Debounced { handler, until }
                if handler == h && !self.book.created.contains_key(&at) =>
            {
                Some(Kind::Debounce {
                    until: Some(*until),
                })
            }
            _ => None,
        })
    }

    /// Every time invariant after one call, then the book.
    pub(super) fn check_time(&mut self, step: &Step) -> Result<(), TestCaseError> {
        time_moves_forward(step)?;
        self.default_policy_sets_no_timer(step)?;
        self.debounce_follows_its_rule(step)?;
        self.debounce_holds_until_ready(step)?;
        self.backoff_holds_until_it_ends(step)?;
        self.ready_entries_start(step)?;
        self.retries_follow_a_failure(step)?;
        backoff_follows_the_policy(step)?;
        self.attempts_are_counted(step)?;
        self.one_open_scheduled_request(step)?;
        self.ticks_never_come_early(step)?;
        self.issued_comes_first(step)?;
        triggers_reach_listeners_only(step)?;
        self.keep_the_book(step);
        Ok(())
    }

    // ----- (i) time ---------------------------------------------------------------------

    /// (i) With no time policy anywhere (SPEC 11: "the default policy ... every decision is
    /// exactly what sections 4 to 8 say"), a call decides nothing about time and leaves no
    /// deadline.
    fn default_policy_sets_no_timer(&self, step: &Step) -> Result<(), TestCaseError> {
        let plain = |s: &Snapshot| s.policies.iter().all(|(_, p)| *p == SyncPolicy::default());
        if step.pre.deadline.is_some() || !plain(step.pre) || !plain(step.post) {
            return Ok(());
        }
        let timed: Vec<&Action> = step
            .actions
            .iter()
            .filter(|a| {
                !matches!(
                    a,
                    Action::StartSession { .. } | Action::Deliver(_) | Action::Cancel { .. }
                )
            })
            .collect();
        check!(
            timed.is_empty() && step.post.deadline.is_none(),
            "(i) no handler has a time policy, yet the call decided {timed:?} and the next \
             deadline is {:?}",
            step.post.deadline
        );
        if let Ok(Reply::Fired(n)) = step.got {
            check!(*n == 0, "(i) a poll fired {n} timers with no time policy");
        }
        Ok(())
    }

    // ----- (j) debounce -------------------------------------------------------------------

    /// (j) Each debounce decision follows SPEC 11.1: ready at `min(last + quiet, first +
    /// max_wait)` with the request that makes it the last: `now + quiet`, or, earlier,
    /// `first + max_wait` for a window opened by an earlier decision of the same handler.
    fn debounce_follows_its_rule(&self, step: &Step) -> Result<(), TestCaseError> {
        let now = step.post.now;
        for a in step.actions {
            let Action::Debounced { handler, until } = a else {
                continue;
            };
            let Some(d) = policy_of(step.post, handler).and_then(|p| p.debounce) else {
                return Err(TestCaseError::fail(format!(
                    "(j) {handler} debounced with no debounce in its policy"
                )));
            };
            let quiet = now + d.quiet;
            if *until == quiet {
                continue;
            }
            let first = until
                .since_origin()
                .checked_sub(d.max_wait)
                .map(Time::from_duration);
            let opened = first.is_some_and(|f| {
                self.book
                    .announced
                    .get(handler)
                    .is_some_and(|times| times.contains(&f))
            });
            check!(
                *until < quiet && opened,
                "(j) {handler} debounced until {until} at {now}: neither quiet ({:?}) after now \
                 nor max_wait ({:?}) after a window's first request ({first:?})",
                d.quiet,
                d.max_wait
            );
        }
        Ok(())
    }

    /// (j) No session starts for a debounced handler before its items are ready unless a
    /// request expedited them (SPEC 11.1): a default-key session never takes an item whose
    /// debounce window certainly had not closed.
    fn debounce_holds_until_ready(&self, step: &Step) -> Result<(), TestCaseError> {
        let now = step.post.now;
        for (h, items) in default_starts(step) {
            if expedited(step, h) || policy_set(step, h) {
                continue;
            }
            for item in items {
                if let Some(Kind::Debounce { until: Some(until) }) =
                    self.book.held.get(&(h.clone(), item.clone()))
                {
                    check!(
                        *until <= now,
                        "(j) a session of {h} took {item} at {now}; its debounce window \
                         said it was ready at {until}"
                    );
                }
            }
        }
        Ok(())
    }

    // ----- (k) to (m) retries -------------------------------------------------------------

    /// (k) An item is never attempted before its backoff ends (SPEC 11.2), unless an
    /// expedited request or a reconnect ended the backoff in this call. (A running session
    /// may still pull it: pulls are not held back.)
    fn backoff_holds_until_it_ends(&self, step: &Step) -> Result<(), TestCaseError> {
        let now = step.post.now;
        for (h, items) in default_starts(step) {
            if expedited(step, h) || reconnected(step, h) {
                continue;
            }
            for item in items {
                if let Some(Kind::Backoff { at }) = self.book.held.get(&(h.clone(), item.clone())) {
                    check!(
                        *at <= now,
                        "(k) a session of {h} took {item} at {now}, in backoff until {at}"
                    );
                }
            }
        }
        Ok(())
    }

    /// (j) and (k), the other side: a pending entry that is certainly ready starts as soon
    /// as a slot is free. Certainly ready: not held back (as far as the book knows), or
    /// debounced since `created` with `created + max_wait` past ("none later than max_wait
    /// after its first pending request while a slot is free"), or in a backoff that ended.
    /// Timers fire only in polls: entries whose time came are checked after a poll.
    fn ready_entries_start(&self, step: &Step) -> Result<(), TestCaseError> {
        let now = step.post.now;
        let polled = matches!(step.call, Call::Poll(_));
        if self.engine.is_shut_down() || step.post.sessions.len() >= self.max_sessions() {
            return Ok(());
        }
        for view in &step.post.handlers {
            if !view.active || !view.enabled || view.running.len() >= view.session_limit {
                continue;
            }
            let debounce = policy_of(step.post, &view.id).and_then(|p| p.debounce);
            for w in self.waits(step.post, &view.id) {
                if !w.key.is_default() {
                    continue;
                }
                let running = step.post.sessions.iter().any(|s| {
                    view.running.contains(&s.id) && s.items.iter().any(|si| si.item == w.item)
                });
                if running {
                    continue;
                }
                let at = (view.id.clone(), w.item.clone());
                let created = self.book.created.get(&at).copied();
                let ready = match self.held_after(step, &view.id, &w.item) {
                    None => created.is_some(),
                    Some(Kind::Backoff { at }) => polled && at <= now,
                    Some(Kind::Debounce { .. }) => {
                        let max_wait = debounce.map_or(Duration::ZERO, |d| d.max_wait);
                        polled && created.is_some_and(|c| c + max_wait <= now)
                    }
                };
                check!(
                    !ready,
                    "(j) {} of {} is ready ({:?} since {created:?}, max_wait {:?}), yet \
                     pending at {now} with a slot free",
                    w.item,
                    view.id,
                    self.book.held.get(&at),
                    debounce.map(|d| d.max_wait)
                );
            }
        }
        Ok(())
    }

    /// (l) An item is retried only after a `Failed` (SPEC 11.2): a `RetryScheduled` comes
    /// only when a default-key session of its handler ends with the item `Failed`, not
    /// reported permanent, on an attempt below `max_attempts` of the handler's policy; and
    /// the session's end lists exactly the items retried, in order.
    fn retries_follow_a_failure(&self, step: &Step) -> Result<(), TestCaseError> {
        let retries: Vec<(&HandlerId, &ItemId, u16, u16)> = step
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::RetryScheduled {
                    handler,
                    item,
                    attempt,
                    max_attempts,
                    ..
                } => Some((handler, item, *attempt, *max_attempts)),
                _ => None,
            })
            .collect();
        let (Call::Finish(s, _), Ok(Reply::Ended(_, handler, outcomes, retried))) =
            (step.call, step.got)
        else {
            check!(
                retries.is_empty(),
                "(l) retries scheduled by a call that ended no session: {retries:?}"
            );
            return Ok(());
        };
        let listed: Vec<&ItemId> = retries.iter().map(|r| r.1).collect();
        check!(
            retried.iter().eq(listed.iter().copied()),
            "(l) {s} ended retrying {retried:?}, the actions say {listed:?}"
        );
        let session = step.pre.session(*s);
        let max = policy_of(step.pre, handler).map(|p| p.retry.max_attempts);
        for (h, item, attempt, max_attempts) in retries {
            let outcome = outcomes.iter().find(|(i, _)| i == item).map(|(_, o)| *o);
            check!(
                h == handler && outcome == Some(Outcome::Failed),
                "(l) {item} of {h} retried, but {s} of {handler} ended it {outcome:?}"
            );
            check!(
                !self.book.permanent.contains(&(s.get(), item.clone())),
                "(l) {item} retried after a permanent failure in {s}"
            );
            check!(
                session.is_some_and(|v| v.key == MergeKey::DEFAULT),
                "(l) {item} retried after a legacy (keyed) session"
            );
            check!(
                attempt >= 1 && attempt < max_attempts && Some(max_attempts) == max,
                "(l) {item} retried after attempt {attempt} of {max_attempts} (policy: {max:?})"
            );
        }
        Ok(())
    }

    /// (m) Each item's attempts in a result are the sessions that ran it while the request
    /// waited for it, and never more than `max_attempts` (the largest the handler's policies
    /// have had): "an item is attempted at most max_attempts times for the requests that wait
    /// for it" (SPEC 11.6).
    fn attempts_are_counted(&mut self, step: &Step) -> Result<(), TestCaseError> {
        if let (Call::Finish(s, _), Ok(_)) = (step.call, step.got)
            && let Some(ended) = step.pre.session(*s)
        {
            for si in &ended.items {
                for r in &si.waiting {
                    *self.book.ran.entry((r.get(), si.item.clone())).or_default() += 1;
                }
            }
        }
        for a in step.actions {
            let Action::Deliver(res) = a else { continue };
            let owner = &self.requests[res.request.get() as usize - 1].owner;
            let max = self.book.max_attempts.get(owner).copied().unwrap_or(1);
            for ItemOutcome {
                item, attempts: n, ..
            } in &res.items
            {
                let n = *n;
                let ran = self
                    .book
                    .ran
                    .get(&(res.request.get(), item.clone()))
                    .copied()
                    .unwrap_or(0);
                check!(
                    n == ran,
                    "(m) {} says {item} took {n} attempts; {ran} sessions ran it for the request",
                    res.request
                );
                check!(
                    n <= max.max(1),
                    "(m) {} says {item} took {n} attempts; the handler's policy allows {max}",
                    res.request
                );
            }
        }
        Ok(())
    }

    // ----- (n) and (o) schedules ----------------------------------------------------------

    /// (n) A schedule never has two open requests (SPEC 11.3): per handler registration, at
    /// most one open request made by a tick, whatever changes its schedule went through.
    fn one_open_scheduled_request(&self, step: &Step) -> Result<(), TestCaseError> {
        let mut open: BTreeMap<&(HandlerId, u32), Vec<u64>> = BTreeMap::new();
        for r in &step.post.requests {
            let issued = &self.requests[r.id.get() as usize - 1];
            if issued.reason == Some(TriggerReason::Scheduled) {
                open.entry(&issued.owner).or_default().push(r.id.get());
            }
        }
        for (owner, list) in open {
            check!(
                list.len() <= 1,
                "(n) {} has {} open scheduled requests: {list:?}",
                owner.0,
                list.len()
            );
        }
        Ok(())
    }

    /// (o) A schedule never fires before its tick, and once per poll at most (ticks missed
    /// do not pile up): an issued scheduled request or a skipped tick comes only in a poll,
    /// at or after `start + k × every` for the tick the book expects next; a skipped tick
    /// names the handler's open scheduled request.
    fn ticks_never_come_early(&self, step: &Step) -> Result<(), TestCaseError> {
        let now = step.post.now;
        let mut fired: Vec<&HandlerId> = Vec::new();
        for a in step.actions {
            let h = match a {
                Action::Issued {
                    handler,
                    reason: TriggerReason::Scheduled,
                    ..
                } => handler,
                Action::TickSkipped { handler, open } => {
                    let issued = self.requests.get(open.get() as usize - 1);
                    check!(
                        issued.is_some_and(|r| r.reason == Some(TriggerReason::Scheduled)
                            && r.owner.0 == *handler
                            && step.pre.request(open.get()).is_some()),
                        "(o) a tick of {handler} skipped for {open}, not its open scheduled \
                         request"
                    );
                    handler
                }
                _ => continue,
            };
            check!(
                matches!(step.call, Call::Poll(_)),
                "(o) {h} ticked outside a poll"
            );
            check!(!fired.contains(&h), "(o) {h} ticked twice in one poll");
            fired.push(h);
            let Some(&Tick {
                start, every, k, ..
            }) = self.book.ticks.get(h)
            else {
                return Err(TestCaseError::fail(format!(
                    "(o) {h} ticked with no schedule"
                )));
            };
            let tick = nth_tick(start, every, k);
            check!(
                now >= tick,
                "(o) {h} ticked at {now}, before its tick {k} at {tick}"
            );
        }
        Ok(())
    }

    // ----- (p) and (q) requests the engine makes --------------------------------------------

    /// (p) A request the engine makes is announced (`Issued`) before any other action about
    /// it, with the next request number; ticks' requests come only in polls, triggers'
    /// only from a trigger of that kind.
    fn issued_comes_first(&self, step: &Step) -> Result<(), TestCaseError> {
        for (at, a) in step.actions.iter().enumerate() {
            let Action::Issued {
                request, reason, ..
            } = a
            else {
                continue;
            };
            let earlier = step.actions[..at]
                .iter()
                .any(|b| matches!(b, Action::Deliver(res) if res.request == *request));
            check!(
                !earlier,
                "(p) {request} was delivered before it was announced"
            );
            let right = match (step.call, reason) {
                (Call::Poll(_), TriggerReason::Scheduled) => true,
                (Call::Trigger(t), r) => *r == reason_of(*t),
                _ => false,
            };
            check!(
                right,
                "(p) {request} issued for {reason:?} by {:?}",
                step.call
            );
        }
        Ok(())
    }

    fn max_sessions(&self) -> usize {
        self.universe.config.max_sessions
    }

    // ----- the book ---------------------------------------------------------------------------

    /// Brings the book up to date after a call (see the module docs).
    fn keep_the_book(&mut self, step: &Step) {
        let now = step.post.now;
        let generation = |h: &HandlerId| (h.clone(), self.generation.get(h).copied().unwrap_or(0));
        let book = &mut self.book;
        match (step.call, step.got) {
            (Call::Register(spec), Ok(_)) => {
                forget(book, &spec.id);
                book.max_attempts
                    .insert(generation(&spec.id), spec.policy.retry.max_attempts);
                if let Some(s) = &spec.policy.schedule {
                    book.ticks.insert(spec.id.clone(), Tick::new(now, s));
                }
            }
            (Call::Remove(h), Ok(_)) => forget(book, h),
            (Call::Shutdown, _) => {
                book.held.clear();
                book.created.clear();
                book.ticks.clear();
            }
            (Call::SetPolicy(h, p), Ok(_)) => {
                let old = policy_of(step.pre, h);
                let max = book.max_attempts.entry(generation(h)).or_insert(1);
                *max = (*max).max(p.retry.max_attempts);
                if old.map(|o| o.schedule) != Some(p.schedule) {
                    match &p.schedule {
                        Some(s) => book.ticks.insert(h.clone(), Tick::new(now, s)),
                        None => book.ticks.remove(h),
                    };
                }
                if old.map(|o| o.debounce) != Some(p.debounce) {
                    for ((id, _), kind) in book.held.iter_mut() {
                        if id == h
                            && let Kind::Debounce { until } = kind
                        {
                            // The window's time moved (maybe back): what was known is not.
                            *until = None;
                        }
                    }
                    if p.debounce.is_none() {
                        book.held
                            .retain(|(id, _), k| id != h || !matches!(k, Kind::Debounce { .. }));
                    }
                }
            }
            (Call::Permanent(s, item, _), Ok(_)) => {
                book.permanent.insert((s.get(), item.clone()));
            }
            _ => {}
        }
        for view in &step.post.handlers {
            let h = &view.id;
            if expedited(step, h) {
                book.held.retain(|(id, _), _| id != h);
            }
            if reconnected(step, h) {
                book.held
                    .retain(|(id, _), k| id != h || !matches!(k, Kind::Backoff { .. }));
            }
        }
        // Ticks: a tick fires at the first poll at or after its time, and the next is then
        // the first after that poll. One seen in this poll fired now; one whose latest time
        // (with flex) passed fired, silently or not, at a poll no earlier than the first one
        // at or after its earliest time: the book takes that poll (a lower bound).
        if let Call::Poll(_) = step.call {
            book.polls.push(now);
            let polls = &book.polls;
            let next_after = |t: &Tick, at: Time| {
                let elapsed = at.saturating_since(t.start).as_nanos() / t.every.as_nanos();
                u64::try_from(elapsed).unwrap_or(u64::MAX).saturating_add(1)
            };
            for (h, t) in book.ticks.iter_mut() {
                let seen = step.actions.iter().any(|a| match a {
                    Action::Issued {
                        handler,
                        reason: TriggerReason::Scheduled,
                        ..
                    }
                    | Action::TickSkipped { handler, .. } => handler == h,
                    _ => false,
                });
                if seen {
                    t.k = next_after(t, now);
                    continue;
                }
                while nth_tick(t.start, t.every, t.k) + t.flex <= now {
                    let earliest = nth_tick(t.start, t.every, t.k);
                    let Some(&fired) = polls.iter().find(|p| **p >= earliest) else {
                        break;
                    };
                    t.k = next_after(t, fired);
                }
            }
        }
        // Entries: gone ones go, new ones come; what a session took is gone even if a new
        // entry of the same item came in the same call.
        let taken: Vec<(HandlerId, ItemId)> = default_starts(step)
            .into_iter()
            .flat_map(|(h, items)| items.iter().map(move |i| (h.clone(), i.clone())))
            .collect();
        let mut pending: BTreeSet<(HandlerId, ItemId)> = BTreeSet::new();
        for view in &step.post.handlers {
            for w in self.waits(step.post, &view.id) {
                if w.key.is_default() {
                    pending.insert((view.id.clone(), w.item));
                }
            }
        }
        let book = &mut self.book;
        let kept = |at: &(HandlerId, ItemId)| pending.contains(at) && !taken.contains(at);
        book.created.retain(|at, _| kept(at));
        book.held.retain(|at, _| kept(at));
        let debounced: BTreeMap<&HandlerId, Time> = step
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Debounced { handler, until } => Some((handler, *until)),
                _ => None,
            })
            .collect();
        let polled = matches!(step.call, Call::Poll(_));
        // A window that a poll's tick moved to a time not after now closed in that poll too:
        // everything it held is ready.
        let closed = |h: &HandlerId| polled && debounced.get(h).is_some_and(|u| *u <= now);
        // What was held: a backoff or a window whose time came in this poll is over, unless
        // (for a window) the same poll moved the window on: then when it closes is not known.
        for ((h, _), kind) in book.held.iter_mut() {
            if let Kind::Debounce { until } = kind
                && let (Some(&next), Some(u)) = (debounced.get(h), *until)
            {
                *until = if polled && u <= now { None } else { Some(next) };
            }
        }
        let policies = &step.post.policies;
        let created = &book.created;
        book.held.retain(|(h, i), kind| {
            if !polled {
                return true;
            }
            match kind {
                Kind::Backoff { at } => *at > now,
                Kind::Debounce { until } => {
                    let fired_alone = until.is_some_and(|u| u <= now) && !debounced.contains_key(h);
                    let max_wait = policies
                        .iter()
                        .find(|(id, _)| id == h)
                        .and_then(|(_, p)| p.debounce)
                        .map(|d| d.max_wait);
                    let past_max = match (max_wait, created.get(&(h.clone(), i.clone()))) {
                        (Some(m), Some(c)) => *c + m <= now,
                        _ => false,
                    };
                    !fired_alone && !past_max && !closed(h)
                }
            }
        });
        // New entries (an item taken and queued again in one call is one of them): made in a
        // call that says `Debounced` for their handler, they are debounced, unless the call
        // expedited them or closed the window again.
        for at in &pending {
            if !book.created.contains_key(at) {
                book.created.insert(at.clone(), now);
                if let Some(&until) = debounced.get(&at.0)
                    && !expedited(step, &at.0)
                    && !closed(&at.0)
                {
                    book.held
                        .insert(at.clone(), Kind::Debounce { until: Some(until) });
                }
            }
        }
        for a in step.actions {
            match a {
                Action::RetryScheduled {
                    handler, item, at, ..
                } => {
                    book.held
                        .insert((handler.clone(), item.clone()), Kind::Backoff { at: *at });
                }
                Action::Debounced { handler, .. } => {
                    book.announced.entry(handler.clone()).or_default().push(now);
                }
                _ => {}
            }
        }
    }
}

/// Forgets what the book knows of handler `h`'s entries, windows and schedule.
fn forget(book: &mut Book, h: &HandlerId) {
    book.held.retain(|(id, _), _| id != h);
    book.created.retain(|(id, _), _| id != h);
    book.ticks.remove(h);
    book.announced.remove(h);
}

fn reason_of(t: Trigger) -> TriggerReason {
    match t {
        Trigger::Connect => TriggerReason::Connect,
        Trigger::PendingDisconnect => TriggerReason::PendingDisconnect,
        Trigger::Idle => TriggerReason::Idle,
    }
}

/// (i) Time only moves forward: a poll sets it to the later of its value and the last one
/// seen; nothing else moves it.
fn time_moves_forward(step: &Step) -> Result<(), TestCaseError> {
    let expected = match step.call {
        Call::Poll(t) => step.pre.now.max(*t),
        _ => step.pre.now,
    };
    check!(
        step.post.now == expected,
        "(i) time is {} after {:?} at {}",
        step.post.now,
        step.call,
        step.pre.now
    );
    Ok(())
}

/// (l) A backoff lasts `min(max, initial × factor^(attempt-1))`, spread by at most ± jitter of
/// it (SPEC 11.2), from the session's end (now). Checked in floating point, to a microsecond.
fn backoff_follows_the_policy(step: &Step) -> Result<(), TestCaseError> {
    let now = step.post.now;
    for a in step.actions {
        let Action::RetryScheduled {
            handler,
            item,
            attempt,
            at,
            ..
        } = a
        else {
            continue;
        };
        let Some(p) = policy_of(step.pre, handler) else {
            return Err(TestCaseError::fail(format!(
                "(l) {item} of {handler} retried with no policy"
            )));
        };
        let d = nominal_delay(p, *attempt);
        let j = p.retry.jitter;
        let took = at.saturating_since(now).as_secs_f64();
        let slack = 1e-6;
        check!(
            *at >= now && took >= d * (1.0 - j) - slack && took <= d * (1.0 + j) + slack,
            "(l) {item} of {handler} backs off {took} s after attempt {attempt}; the policy \
             says {d} s ± {j}"
        );
    }
    Ok(())
}

/// (q) A trigger syncs only handlers that listen for it, each once, in registration order,
/// with the trigger as the request's reason.
fn triggers_reach_listeners_only(step: &Step) -> Result<(), TestCaseError> {
    let (Call::Trigger(t), Ok(Reply::AcceptedAll(made))) = (step.call, step.got) else {
        return Ok(());
    };
    let order: Vec<&HandlerId> = step.pre.handlers.iter().map(|h| &h.id).collect();
    let mut last = None;
    for acc in made {
        let listens = policy_of(step.pre, &acc.handler).is_some_and(|p| p.listens(*t));
        check!(
            listens,
            "(q) {t:?} synced {}, which does not listen",
            acc.handler
        );
        let at = order.iter().position(|h| **h == acc.handler);
        check!(
            at > last,
            "(q) {t:?} synced {} out of registration order, or twice",
            acc.handler
        );
        last = at;
    }
    Ok(())
}
