//! Settling and completing: a session's end gives each item its outcome, credits the
//! requests it served with its counts, and delivers the requests that are done.

use super::Action;
use super::Engine;
use super::RequestId;
use super::SessionEnd;
use super::SessionEnded;
use super::SessionId;
use super::queue::Waiter;
use super::queue::waiters_of;
use super::requests::RequestTable;
use super::state::Counts;
use super::state::HandlerKey;
use crate::error::Error;
use crate::id::ItemId;
use crate::result::Outcome;
use crate::result::RequestResult;

impl Engine {
    /// Ends a session (`synchronize` returned, failed or was abandoned). Every item without a
    /// terminal report gets one: `Canceled` if a cancel was requested for it, else `Failed`.
    /// A `Failed` item with attempts left under its handler's retry policy (and no permanent
    /// failure reported) goes back to the pending set until its backoff ends, and the
    /// requests that wait for it keep waiting, except those made without retry. Requests
    /// whose items all have outcomes get their results; then the handler may start its next
    /// session.
    pub fn session_finished(
        &mut self,
        id: SessionId,
        end: SessionEnd,
    ) -> Result<SessionEnded, Error> {
        let session = self.sessions.remove(&id).ok_or(Error::UnknownSession(id))?;
        let key = session.handler_key;
        let mut outcomes = Vec::with_capacity(session.items.len());
        let mut settled = Vec::with_capacity(session.items.len());
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
            for si in session.items {
                let outcome = si.terminal.unwrap_or(if session.cancel_all || si.cancel {
                    Outcome::Canceled
                } else {
                    Outcome::Failed
                });
                let slot = &mut h.items[si.item];
                slot.held = None;
                let attempt = slot.attempts.saturating_add(1);
                // A legacy (keyed) session is not part of the item's run of attempts.
                if session.merge.is_default() {
                    slot.attempts = 0;
                }
                // Walk every list before settling any: settling may complete a request.
                let mut waiters = waiters_of(&si.list, &self.requests);
                let mut now = waiters.len();
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
                        waiters.iter().partition(|w| takes_it(w));
                    now = first.len();
                    if !again.is_empty() {
                        slot.attempts = attempt;
                        // Its waiters from `now` on, in `settled` below.
                        retried.push((si.item, settled.len(), attempt));
                    }
                    waiters = first;
                    waiters.extend(again);
                }
                if slot.startable() {
                    h.startable += 1;
                }
                outcomes.push((slot.id.clone(), outcome));
                settled.push((waiters, outcome, si.counts, now));
            }
            h.running.retain(|s| *s != id);
        }
        // Every request the session served takes what it counted, before any completes.
        credit_session(&mut self.requests, session.counts, &settled);
        for (waiters, outcome, _, now) in &settled {
            self.settle(&waiters[..*now], *outcome, true);
        }
        let mut again = Vec::with_capacity(retried.len());
        for (item, at, attempt) in retried {
            let (waiters, _, _, now) = &settled[at];
            again.extend(self.retry_later(key, item, &waiters[*now..], attempt));
        }
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
    pub(super) fn settle(&mut self, waiters: &[Waiter], outcome: Outcome, ran: bool) {
        for w in waiters {
            let Some(req) = self.requests.get_mut(&w.request) else {
                continue;
            };
            let ri = &mut req.items[w.pos.get()];
            if ri.outcome.is_none() {
                ri.attempts = ri.attempts.saturating_add(u16::from(ran));
                ri.outcome = Some(outcome);
                ri.prev = Waiter::NONE;
                req.remaining -= 1;
                if req.remaining == 0 {
                    self.complete(w.request);
                }
            }
        }
    }

    /// Delivers the result of a request whose items all have outcomes.
    pub(super) fn complete(&mut self, request: RequestId) {
        let Some(req) = self.requests.remove(&request) else {
            return;
        };
        let Some(h) = self.handlers.get_mut(&req.handler_key) else {
            debug_assert!(false, "an open request outlived its handler record");
            return;
        };
        if h.scheduled == Some(request) {
            h.scheduled = None;
        }
        let items: Vec<(ItemId, Outcome)> = req
            .items
            .iter()
            .map(|ri| {
                (
                    h.slot(ri.item).id.clone(),
                    ri.outcome.unwrap_or(Outcome::Canceled),
                )
            })
            .collect();
        let mut status = Outcome::aggregate(items.iter().map(|(_, o)| *o));
        if req.disconnected {
            status = status.max(Outcome::Disconnected);
        }
        self.actions.push_back(Action::Deliver(RequestResult {
            request,
            handler: h.id.clone(),
            status,
            errors: req.counts.errors,
            conflicts: req.counts.conflicts,
            items,
            attempts: req.items.iter().map(|ri| ri.attempts).collect(),
        }));
    }

    /// Forgets a removed handler once its last session ended.
    pub(super) fn drop_if_retired(&mut self, key: HandlerKey) {
        if self
            .handlers
            .get(&key)
            .is_some_and(|h| h.removed && h.running.is_empty())
        {
            self.handlers.remove(&key);
        }
    }
}

/// Credits the requests an ending session served with what it counted: each request its
/// items' counts for the items it waited on there, and the handler-wide counts once. The
/// once needs a deduplicated list of requests, built only when there is something to credit.
pub(super) fn credit_session(
    requests: &mut RequestTable,
    handler_wide: Counts,
    items: &[(Vec<Waiter>, Outcome, Counts, usize)],
) {
    for (waiters, _, counts, _) in items {
        if counts.is_zero() {
            continue;
        }
        for w in waiters {
            if let Some(req) = requests.get_mut(&w.request) {
                req.counts.add(*counts);
            }
        }
    }
    if handler_wide.is_zero() {
        return;
    }
    let mut served: Vec<RequestId> = items
        .iter()
        .flat_map(|(waiters, _, _, _)| waiters.iter().map(|w| w.request))
        .collect();
    served.sort_unstable();
    served.dedup();
    for r in served {
        if let Some(req) = requests.get_mut(&r) {
            req.counts.add(handler_wide);
        }
    }
}
