//! Settling and completing: a session's end gives each item its outcome, credits the
//! requests it served with its counts, and delivers the requests that are done.

use std::ops::Range;

use super::Accepted;
use super::Action;
use super::Engine;
use super::RequestId;
use super::SessionEnd;
use super::SessionEnded;
use super::SessionId;
use super::queue::Waiter;
use super::queue::push_waiters;
use super::requests::RequestTable;
use super::scratch;
use super::state::Counts;
use super::state::HandlerKey;
use crate::cause::Cause;
use crate::error::Error;

use crate::result::Outcome;
use crate::result::{ItemOutcome, RequestResult};
use crate::slot::Completion;

/// The cause of a `Failed` the handler never reported: its session ended first.
const NO_REPORT: &str = "the session ended without reporting how the item ended";

impl Engine {
    /// Ends a session (`synchronize` returned, failed or was abandoned). Every item without a
    /// terminal report gets one: `Canceled` if a cancel was requested for it, else `Failed`.
    /// A `Failed` item with attempts left under its handler's retry policy (and no permanent
    /// failure reported) goes back to the pending set until its backoff ends, and the
    /// requests that wait for it keep waiting, except those made without retry. Requests
    /// whose items all have outcomes get their results, oldest request first; then the
    /// handler may start its next session.
    pub fn session_finished(
        &mut self,
        id: SessionId,
        end: SessionEnd,
    ) -> Result<SessionEnded, Error> {
        let Some(session) = self.sessions.remove(&id) else {
            return Err(Error::UnknownSession(id));
        };
        let key = session.handler_key;
        let mut items = session.items;
        let mut outcomes = Vec::with_capacity(items.len());
        let mut settled = scratch::take(&mut self.scratch.settled);
        settled.reserve(items.len());
        // The waiters of every item, item after item: one buffer, not one per item.
        let mut waiters = scratch::take(&mut self.scratch.waiters);
        let mut retried = Vec::new();
        if let Some(h) = self.handlers.get_mut(&key) {
            // Legacy (keyed) sessions never retry; nor do handlers that may not sync now.
            let max_attempts = (session.merge.is_default()
                && h.policy.retry.retries()
                && !h.removed
                && h.active
                && h.enabled
                && !self.shut_down)
                .then_some(h.policy.retry.max_attempts);
            for si in items.drain(..) {
                let outcome = si.terminal.unwrap_or(if session.cancel_all || si.cancel {
                    Outcome::Canceled
                } else {
                    Outcome::Failed
                });
                // A failure's reason: the item's own, else the session's, else (no report
                // at all) that the session ended first. A bare `Failed` report has none.
                let cause = if outcome == Outcome::Failed {
                    si.cause
                        .or_else(|| end.cause().cloned())
                        .or_else(|| si.terminal.is_none().then(|| Cause::new(NO_REPORT)))
                } else {
                    None
                };
                let slot = &mut h.items[si.item];
                slot.held = None;
                let attempt = slot.attempts.saturating_add(1);
                // A legacy (keyed) session is not part of the item's run of attempts.
                if session.merge.is_default() {
                    slot.attempts = 0;
                }
                // Walk every list before settling any: settling may complete a request.
                let start = waiters.len();
                push_waiters(&si.list, &self.requests, &mut waiters);
                let mut now = waiters.len() - start;
                if outcome == Outcome::Failed
                    && !si.permanent
                    && slot.live_and_enabled()
                    && max_attempts.is_some_and(|max| attempt < max)
                {
                    // Requests made without retry, and legacy requests that joined (they are
                    // never retried), take this `Failed`; the rest wait for the next attempt.
                    // Both keep request order.
                    let requests = &self.requests;
                    let takes_it = |w: &Waiter| {
                        requests
                            .get(&w.request)
                            .is_some_and(|r| r.no_retry || !r.key.is_default())
                    };
                    let (first, again): (Vec<Waiter>, Vec<Waiter>) =
                        waiters[start..].iter().partition(|w| takes_it(w));
                    now = first.len();
                    if !again.is_empty() {
                        slot.attempts = attempt;
                        // Its waiters from `now` on, in `settled` below.
                        retried.push((si.item, settled.len(), attempt));
                    }
                    waiters.truncate(start);
                    waiters.extend(first);
                    waiters.extend(again);
                }
                if slot.startable() {
                    h.startable += 1;
                }
                outcomes.push((slot.id.clone(), outcome));
                settled.push(Settled {
                    waiters: start..waiters.len(),
                    outcome,
                    cause,
                    counts: si.counts,
                    now,
                });
            }
            h.running.retain(|s| *s != id);
        }
        // Every request the session served takes what it counted, before any completes.
        credit_session(&mut self.requests, session.counts, &settled, &waiters);
        // Every waiter takes its item's outcome; then the requests that are done complete
        // oldest first, so that a caller taking its results in the order it asked finds each
        // one as soon as it is out, not after the last of its session.
        let mut done = scratch::take(&mut self.scratch.done);
        done.reserve(waiters.len());
        for s in &settled {
            let now = s.waiters.start..s.waiters.start + s.now;
            for &w in &waiters[now] {
                if self.take_outcome(w, s.outcome, s.cause.as_ref(), true) {
                    done.push(w.request);
                }
            }
        }
        done.sort_unstable();
        for &request in &done {
            self.complete(request);
        }
        scratch::put(&mut self.scratch.done, done);
        let mut again = Vec::with_capacity(retried.len());
        for (item, at, attempt) in retried {
            let s = &settled[at];
            let later = s.waiters.start + s.now..s.waiters.end;
            again.extend(self.retry_later(key, item, &waiters[later], attempt));
        }
        scratch::put(&mut self.scratch.waiters, waiters);
        scratch::put(&mut self.scratch.settled, settled);
        // The next session's item list (`drain` above left the room).
        scratch::put(&mut self.scratch.session_items, items);
        self.drop_if_retired(key);
        self.schedule(key);
        Ok(SessionEnded {
            session: id,
            handler: session.handler,
            outcomes,
            retried: again,
            end,
        })
    }

    /// Records an item's outcome for the requests waiting on it; completes those that are
    /// done. `ran`: a session ran the item for them (an attempt to count).
    pub(super) fn settle(
        &mut self,
        waiters: &[Waiter],
        outcome: Outcome,
        cause: Option<&Cause>,
        ran: bool,
    ) {
        for &w in waiters {
            if self.take_outcome(w, outcome, cause, ran) {
                self.complete(w.request);
            }
        }
    }

    /// Records an item's outcome for one waiting request. Returns whether that was the
    /// request's last item without one (it is then ready to complete).
    fn take_outcome(
        &mut self,
        w: Waiter,
        outcome: Outcome,
        cause: Option<&Cause>,
        ran: bool,
    ) -> bool {
        let Some(req) = self.requests.get_mut(&w.request) else {
            return false;
        };
        let ri = &mut req.items[w.pos.get()];
        if ri.outcome.is_some() {
            return false;
        }
        ri.attempts = ri.attempts.saturating_add(u16::from(ran));
        ri.outcome = Some(outcome);
        ri.prev = Waiter::NONE;
        if let Some(cause) = cause {
            req.set_cause(w.pos, cause.clone());
        }
        req.remaining -= 1;
        req.remaining == 0
    }

    /// Delivers the result of a request whose items all have outcomes.
    pub(super) fn complete(&mut self, request: RequestId) {
        let Some(mut req) = self.requests.remove(&request) else {
            return;
        };
        let Some(h) = self.handlers.get_mut(&req.handler_key) else {
            // A bug path the debug build asserts against. Its result slot's end, if any, is
            // dropped here: the slot completes without a result and wakes its waiters, under
            // the scheduler's lock.
            debug_assert!(false, "an open request outlived its handler record");
            return;
        };
        if h.scheduled == Some(request) {
            h.scheduled = None;
        }
        // Sized exactly: a one-item result allocates room for one.
        let mut items: Vec<ItemOutcome> = Vec::with_capacity(req.items.len());
        // In item order, to be taken in one pass beside the items.
        let mut causes = req.causes.take().map(|c| c.0).unwrap_or_default();
        causes.sort_unstable_by_key(|(pos, _)| pos.get());
        let mut causes = causes.into_iter().peekable();
        for (pos, ri) in req.items.into_iter().enumerate() {
            let cause = causes.next_if(|(p, _)| p.get() == pos).map(|(_, c)| c);
            items.push(ItemOutcome {
                item: h.slot(ri.item).id.clone(),
                outcome: ri.outcome.unwrap_or(Outcome::Canceled),
                attempts: ri.attempts,
                cause,
            });
        }
        let mut status = Outcome::aggregate(items.iter().map(|o| o.outcome));
        if req.disconnected {
            status = status.max(Outcome::Disconnected);
        }
        if let Some(end) = req.end.take() {
            self.ends.push_back((request, end));
        }
        self.actions.push_back(Action::Deliver(RequestResult {
            request,
            handler: h.id.clone(),
            status,
            errors: req.counts.errors,
            conflicts: req.counts.conflicts,
            items,
        }));
    }

    /// The write end of a request whose result the caller just took from the action queue,
    /// if it had one. Ends are kept in the order of their results, so this is the first one
    /// when results are carried out in order, as the manager does; a result with no end (a
    /// request the engine made itself) walks the ends of one step's results, and an order
    /// broken by a bug in this crate costs that walk, never a ticket that does not complete.
    pub(crate) fn take_end(&mut self, request: RequestId) -> Option<Completion> {
        let at = self.ends.iter().position(|(id, _)| *id == request)?;
        self.ends.remove(at).map(|(_, end)| end)
    }

    /// Gives a request just accepted its result slot's write end after the fact (a call
    /// that accepted several at once): kept with the request, or, if it completed as it was
    /// accepted, beside its result, which waits in the action queue until the step carries
    /// it out. Ends given in the order the requests were accepted are found first by
    /// `take_end`.
    pub(crate) fn attach_end(&mut self, accepted: &Accepted, end: Completion) {
        if accepted.completed {
            self.ends.push_back((accepted.request, end));
        } else if let Some(r) = self.requests.get_mut(&accepted.request) {
            debug_assert!(r.end.is_none(), "a request's end is given once");
            r.end = Some(end);
        } else {
            debug_assert!(
                false,
                "an end for a request neither open nor just completed"
            );
        }
    }

    /// Every write end the engine holds, taken out: those of open requests and those beside
    /// results not yet carried out. For a manager that will carry out no more results (it
    /// broke): the slots then complete without one, once its lock is released.
    pub(crate) fn take_all_ends(&mut self) -> Vec<Completion> {
        let mut ends: Vec<Completion> = self.ends.drain(..).map(|(_, end)| end).collect();
        ends.extend(self.requests.iter_mut().filter_map(|(_, r)| r.end.take()));
        ends
    }

    /// Forgets a removed handler once its last session ended.
    pub(super) fn drop_if_retired(&mut self, key: HandlerKey) {
        if self
            .handlers
            .get(&key)
            .is_some_and(|h| h.removed && h.running.is_empty())
            && let Some(h) = self.handlers.remove(&key)
        {
            self.timed_handlers -= usize::from(h.timed);
        }
    }
}

/// One item of an ending session, settled: who waits on it, what it ended with, what it
/// counted there.
pub(super) struct Settled {
    /// Every request waiting on the item here, those that take this outcome first: a range
    /// of the session's waiter buffer.
    waiters: Range<usize>,
    outcome: Outcome,
    cause: Option<Cause>,
    counts: Counts,
    /// How many of `waiters` take the outcome now (the rest wait for a retry).
    now: usize,
}

/// Credits the requests an ending session served with what it counted: each request its
/// items' counts for the items it waited on there, and the handler-wide counts once. The
/// once needs a deduplicated list of requests, built only when there is something to credit.
pub(super) fn credit_session(
    requests: &mut RequestTable,
    handler_wide: Counts,
    items: &[Settled],
    waiters: &[Waiter],
) {
    for s in items {
        if s.counts.is_zero() {
            continue;
        }
        for w in &waiters[s.waiters.clone()] {
            if let Some(req) = requests.get_mut(&w.request) {
                req.counts.add(s.counts);
            }
        }
    }
    if handler_wide.is_zero() {
        return;
    }
    // Every item's waiters are in `waiters`, item after item.
    let mut served: Vec<RequestId> = waiters.iter().map(|w| w.request).collect();
    served.sort_unstable();
    served.dedup();
    for r in served {
        if let Some(req) = requests.get_mut(&r) {
            req.counts.add(handler_wide);
        }
    }
}
