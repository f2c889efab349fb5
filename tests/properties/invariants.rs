//! The invariants (a) to (h) of the module docs, one function each, checked after every call
//! from the engine's public views and the harness's bookkeeping of the action stream. A
//! function named after an invariant fails the case with a message that starts with its
//! letter (through the `check!` macro of `properties.rs`); `Harness::check_invariants` runs
//! them all, in the order below.

use std::collections::BTreeMap;

use proptest::test_runner::TestCaseError;
use syncmgr::engine::{Action, MergeKey, SessionView};
use syncmgr::{
    Error, HandlerCapabilities, HandlerId, ItemId, ItemOutcome, Outcome, RequestId, RequestResult,
    SessionId,
};

use super::driver::{Call, Reply, Snapshot, aggregate, syncing};
use super::model::{MAccepted, MDisposition};
use super::{Harness, Issued, JOIN};

/// One call as the invariants see it: what was asked, what the engine answered and decided,
/// and its views before and after.
pub(super) struct Step<'a> {
    pub(super) call: &'a Call,
    pub(super) got: &'a Result<Reply, Error>,
    pub(super) actions: &'a [Action],
    pub(super) pre: &'a Snapshot,
    pub(super) post: &'a Snapshot,
}

impl Step<'_> {
    /// The requests this call accepted.
    fn accepted(&self) -> Vec<&MAccepted> {
        self.got.as_ref().map(Reply::accepted).unwrap_or_default()
    }

    /// The sessions this call started, in order.
    fn starts(&self) -> Vec<Start<'_>> {
        self.actions
            .iter()
            .enumerate()
            .filter_map(|(at, a)| match a {
                Action::StartSession {
                    session,
                    handler,
                    items,
                    key,
                } => Some(Start {
                    session: *session,
                    handler,
                    items,
                    key,
                    at,
                }),
                _ => None,
            })
            .collect()
    }

    /// Whether request `r` was made by this call after its action number `at` (a tick's
    /// request in a poll that started sessions before it).
    fn made_after(&self, r: RequestId, at: usize) -> bool {
        self.actions[at..]
            .iter()
            .any(|a| matches!(a, Action::Issued { request, .. } if *request == r))
    }
}

/// A session the call started, as its `Action::StartSession` says.
struct Start<'a> {
    session: SessionId,
    handler: &'a HandlerId,
    items: &'a [ItemId],
    key: &'a MergeKey,
    /// Its place among the call's actions.
    at: usize,
}

/// A pending entry as the harness derives it from the open requests and the running sessions
/// alone (`Harness::waits`): an item under a merge key, and the requests waiting there.
#[derive(Clone, Debug)]
pub(super) struct Wait {
    pub(super) item: ItemId,
    pub(super) key: MergeKey,
    pub(super) waiters: Vec<RequestId>,
}

/// The pending entries each handler must hold after the call.
type Waits = BTreeMap<HandlerId, Vec<Wait>>;

/// The running sessions of each handler registration (ID, registration number).
type ByOwner<'a> = BTreeMap<(HandlerId, u32), Vec<&'a SessionView>>;

impl Harness {
    /// Every invariant, after one call.
    pub(super) fn check_invariants(&mut self, step: &Step) -> Result<(), TestCaseError> {
        refused_calls_change_nothing(step)?;

        // (a) results
        for a in step.actions {
            let Action::Deliver(res) = a else { continue };
            let issued = self.result_is_first_and_whole(res)?;
            self.result_waited_for_its_items(step, res, &issued)?;
        }
        self.completed_requests_have_their_result(step)?;
        self.ended_sessions_settle_their_items(step)?;
        self.open_until_delivered()?;

        // (b) and (d): sessions grouped by handler registration.
        self.global_limit_holds(step)?;
        let by_owner = self.sessions_by_registration(step)?;
        no_item_in_two_sessions_of_a_handler(&by_owner)?;
        self.handlers_keep_their_limits(step, &by_owner)?;

        // (c) and (g): the pending set.
        let waits = self.pending_is_what_requests_wait_on(step)?;
        pending_can_run(step)?;

        // (e), (g) and (h): the sessions this call started.
        let starts = step.starts();
        for start in &starts {
            self.start_is_allowed(step, start)?;
            start_takes_its_items_once(step, start, &starts)?;
            self.start_leaves_nothing_free_under_its_key(step, start, &waits)?;
            self.start_takes_one_key(step, start)?;
            self.start_serves_the_oldest_key(step, start, &waits)?;
        }

        // (h) merge keys.
        self.keys_never_share_a_session(step)?;
        self.query_sees_only_its_key(step)?;
        self.add_item_pulls_only_its_key(step)?;
        stops_clear_pending(step)?;
        self.shutdown_clears_pending(step)?;

        // (c) and (f): what a start call did with each item.
        self.duplicates_count_once(step)?;
        self.dispositions_follow_the_flag(step)?;
        Ok(())
    }

    // ----- (a) every accepted request gets exactly one result, only once all its items -----
    // ----- have outcomes -------------------------------------------------------------------

    /// (a) A result is for an accepted request, its first, with the request's items and their
    /// aggregate status. Counts the delivery.
    fn result_is_first_and_whole(&mut self, res: &RequestResult) -> Result<Issued, TestCaseError> {
        let n = res.request.get();
        check!(
            n >= 1 && n as usize <= self.requests.len(),
            "(a) result for a request never accepted: {n}"
        );
        let issued = &mut self.requests[n as usize - 1];
        issued.delivered += 1;
        check!(
            issued.delivered == 1,
            "(a) request {n} got a second result: {res:?}"
        );
        let issued = issued.clone();
        let ids: Vec<ItemId> = res.items.iter().map(|o| o.item.clone()).collect();
        check!(
            ids == issued.items,
            "(a) result of {n} lists {ids:?}, the request had {:?}",
            issued.items
        );
        let mut status = aggregate(res.items.iter().map(|o| o.outcome));
        if issued.disconnected {
            status = aggregate([status, Outcome::Disconnected]);
        }
        check!(
            res.status == status,
            "(a) result of {n} has status {:?}, its items say {status:?}",
            res.status
        );
        Ok(issued)
    }

    /// (a) A result delivered by a later call keeps the outcomes its items already had, and
    /// comes only once no running session serves them and none is still pending.
    fn result_waited_for_its_items(
        &self,
        step: &Step,
        res: &RequestResult,
        issued: &Issued,
    ) -> Result<(), TestCaseError> {
        let n = res.request.get();
        if let Some(acc) = step.accepted().iter().find(|a| a.request == n) {
            check!(
                acc.completed,
                "(a) request {n} delivered in its own start call but not `completed`"
            );
            return Ok(());
        }
        let issued_now = step
            .actions
            .iter()
            .any(|a| matches!(a, Action::Issued { request, .. } if request.get() == n));
        if issued_now {
            // A tick's request that completed at once (its handler is disconnected, say).
            return Ok(());
        }
        let Some(before) = step.pre.request(n) else {
            return Err(TestCaseError::fail(format!(
                "(a) request {n} delivered but it was not open"
            )));
        };
        for ((item, was), ItemOutcome { outcome: now, .. }) in before.items.iter().zip(&res.items) {
            check!(
                was.is_none_or(|w| w == *now),
                "(a) {n}: {item} had {was:?}, its result says {now:?}"
            );
        }
        if matches!(step.call, Call::Cancel(r) if r.get() == n) {
            return Ok(());
        }
        let live_sessions: Vec<SessionId> = step.post.sessions.iter().map(|s| s.id).collect();
        for (item, was) in &before.items {
            if was.is_some() {
                continue;
            }
            let serving: Vec<&SessionView> = step
                .pre
                .sessions
                .iter()
                .filter(|s| {
                    s.items
                        .iter()
                        .any(|si| si.item == *item && si.waiting.iter().any(|r| r.get() == n))
                })
                .collect();
            for s in &serving {
                check!(
                    !live_sessions.contains(&s.id),
                    "(a) {n} delivered while {item} is still running in {}",
                    s.id
                );
            }
            if serving.is_empty()
                && self.generation.get(&issued.owner.0) == Some(&issued.owner.1)
                && let Some(h) = step.post.handler(&issued.owner.0)
            {
                check!(
                    !h.pending.contains(item),
                    "(a) {n} delivered while {item} is still pending"
                );
            }
        }
        Ok(())
    }

    /// (a) A request its start call reports `completed` has had its result.
    fn completed_requests_have_their_result(&self, step: &Step) -> Result<(), TestCaseError> {
        for acc in &step.accepted() {
            if acc.completed {
                check!(
                    self.requests[acc.request as usize - 1].delivered == 1,
                    "(a) request {} is `completed` but got no result",
                    acc.request
                );
            }
        }
        Ok(())
    }

    /// (a) A request is open exactly until its result.
    fn open_until_delivered(&self) -> Result<(), TestCaseError> {
        let open = self.engine.open_requests();
        for r in &self.requests {
            check!(
                open.contains(&r.id) != (r.delivered == 1),
                "(a) {} is open: {}, delivered {} times",
                r.id,
                open.contains(&r.id),
                r.delivered
            );
        }
        Ok(())
    }

    /// (a) When a session ends, each item's outcome is its terminal report, else Canceled if
    /// a cancel was asked, else Failed (SPEC 6), and every request that waited for it there
    /// takes that outcome (SPEC 5), unless the item is retried (SPEC 11.2): then the requests
    /// made without retry take the `Failed` and the others wait for the next attempt, on the
    /// item's default-key pending entry.
    fn ended_sessions_settle_their_items(&self, step: &Step) -> Result<(), TestCaseError> {
        let (Call::Finish(s, _), Ok(Reply::Ended(_, handler, outcomes, retried))) =
            (step.call, step.got)
        else {
            return Ok(());
        };
        let Some(ended) = step.pre.session(*s) else {
            return Ok(());
        };
        check!(
            outcomes.len() == ended.items.len(),
            "(a) {s} held {} items, ended with {outcomes:?}",
            ended.items.len()
        );
        let waits = self.waits(step.post, handler);
        for (si, (item, outcome)) in ended.items.iter().zip(outcomes) {
            let expected = si
                .terminal
                .unwrap_or(if ended.cancel_all || si.cancel_requested {
                    Outcome::Canceled
                } else {
                    Outcome::Failed
                });
            check!(
                si.item == *item && expected == *outcome,
                "(a) {s} ended {item} as {outcome:?}; it held {} with {:?}",
                si.item,
                si
            );
            let again = retried.contains(item);
            for r in &si.waiting {
                let delivered = step.actions.iter().find_map(|a| match a {
                    Action::Deliver(res) if res.request == *r => res.outcome_of(item),
                    _ => None,
                });
                let recorded = delivered.or_else(|| {
                    let view = step.post.request(r.get())?;
                    view.items.iter().find(|(i, _)| i == item)?.1
                });
                let issued = &self.requests[r.get() as usize - 1];
                // Legacy requests are never retried (the legacy API has no retry).
                let takes_it = !again || issued.no_retry || !issued.key.is_default();
                if takes_it {
                    check!(
                        recorded == Some(*outcome),
                        "(a) {r} recorded {recorded:?} for {item}, which {s} ended {outcome:?}"
                    );
                } else {
                    let waiting = waits
                        .iter()
                        .any(|w| w.item == *item && w.key.is_default() && w.waiters.contains(r));
                    check!(
                        recorded.is_none() && waiting,
                        "(a) {r} recorded {recorded:?} for {item}, which {s} retries: it \
                         should wait on its pending entry (waiting there: {waiting})"
                    );
                }
            }
        }
        Ok(())
    }

    // ----- (b) and (d): running sessions --------------------------------------------------

    /// (d) No more sessions run than the global limit.
    fn global_limit_holds(&self, step: &Step) -> Result<(), TestCaseError> {
        check!(
            step.post.sessions.len() <= self.universe.config.max_sessions,
            "(d) {} sessions run, the global limit is {}",
            step.post.sessions.len(),
            self.universe.config.max_sessions
        );
        Ok(())
    }

    /// The running sessions by the registration they started for; each one was started.
    fn sessions_by_registration<'a>(&self, step: &Step<'a>) -> Result<ByOwner<'a>, TestCaseError> {
        let mut by_owner: ByOwner = BTreeMap::new();
        for s in &step.post.sessions {
            let owner = self.owner.get(&s.id.get()).cloned();
            check!(owner.is_some(), "session {} never started", s.id);
            by_owner.entry(owner.unwrap()).or_default().push(s);
        }
        Ok(by_owner)
    }

    /// (d) Each handler lists the sessions started for it, and runs no more than its limit
    /// (one if not concurrent), unless an update lowered the limit under them.
    fn handlers_keep_their_limits(
        &mut self,
        step: &Step,
        by_owner: &ByOwner,
    ) -> Result<(), TestCaseError> {
        for view in &step.post.handlers {
            let ids: Vec<SessionId> = by_owner
                .get(&(view.id.clone(), self.generation[&view.id]))
                .map(|list| list.iter().map(|s| s.id).collect())
                .unwrap_or_default();
            check!(
                view.running == ids,
                "(d) {} says it runs {:?}, the sessions started for it are {ids:?}",
                view.id,
                view.running
            );
            // An update may lower the limit under running sessions: they finish (DECISIONS
            // 13), and nothing starts until the handler is back under its limit (checked at
            // each start).
            let owner = (view.id.clone(), self.generation[&view.id]);
            let over = view.running.len() > view.session_limit;
            if !over {
                self.over_limit.remove(&owner);
            } else if matches!(step.call, Call::Update(h, ..) if *h == view.id) {
                self.over_limit.insert(owner.clone());
            }
            let excused = self.over_limit.contains(&owner);
            let concurrent = view
                .capabilities
                .contains(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS);
            check!(
                concurrent || view.running.len() <= 1 || excused,
                "(d) non-concurrent {} runs {:?}",
                view.id,
                view.running
            );
            check!(
                !over || excused,
                "(d) {} runs {:?} over its limit {}",
                view.id,
                view.running,
                view.session_limit
            );
        }
        Ok(())
    }

    // ----- (c) the pending set --------------------------------------------------------------

    /// (c) No (item, key) twice, only what open requests wait for. An item may be pending
    /// under several keys (SPEC 10), once under each. Returns what each handler must hold.
    fn pending_is_what_requests_wait_on(&self, step: &Step) -> Result<Waits, TestCaseError> {
        let mut post_waits: Waits = BTreeMap::new();
        for view in &step.post.handlers {
            let owner = (view.id.clone(), self.generation[&view.id]);
            let mut wanted: Vec<(&ItemId, &MergeKey)> = Vec::new();
            for r in self
                .requests
                .iter()
                .filter(|r| r.owner == owner && r.delivered == 0)
            {
                for item in &r.items {
                    if !wanted.contains(&(item, &r.key)) {
                        wanted.push((item, &r.key));
                    }
                }
            }
            for item in &view.pending {
                check!(
                    wanted.iter().any(|(i, _)| *i == item),
                    "(c) {} holds {item}, which no open request wants",
                    view.id
                );
            }
            check!(
                view.pending.len() <= wanted.len(),
                "(c) {} holds {} pending entries, only {} distinct (item, key) pairs are requested",
                view.id,
                view.pending.len(),
                wanted.len()
            );
            let waits = self.waits(step.post, &view.id);
            check!(
                pending_matches(&view.pending, &waits),
                "(c) {} holds {:?}; open requests wait on {:?}: an (item, key) twice, an entry \
                 nobody waits on, a missing one, or a key's entries not together",
                view.id,
                view.pending,
                waits
                    .iter()
                    .map(|w| (w.item.to_string(), w.key.as_cookie().map(<[u8]>::to_vec)))
                    .collect::<Vec<_>>()
            );
            post_waits.insert(view.id.clone(), waits);
        }
        Ok(post_waits)
    }

    /// The pending entries handler `id` (its current registration) must hold in `snap`,
    /// derived from the open requests and running sessions alone: an open request's item
    /// without an outcome that no running session lists it as waiting for waits on the
    /// pending entry of (that item, the request's key). One entry per (item, key).
    pub(super) fn waits(&self, snap: &Snapshot, id: &HandlerId) -> Vec<Wait> {
        let Some(&generation) = self.generation.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<Wait> = Vec::new();
        for r in &snap.requests {
            let issued = &self.requests[r.id.get() as usize - 1];
            if issued.owner != (id.clone(), generation) {
                continue;
            }
            for (item, outcome) in &r.items {
                let in_session = snap.sessions.iter().any(|s| {
                    s.items
                        .iter()
                        .any(|si| si.item == *item && si.waiting.contains(&r.id))
                });
                if outcome.is_some() || in_session {
                    continue;
                }
                let key = &issued.key;
                match out.iter_mut().find(|w| w.item == *item && w.key == *key) {
                    Some(w) => w.waiters.push(r.id),
                    None => out.push(Wait {
                        item: item.clone(),
                        key: key.clone(),
                        waiters: vec![r.id],
                    }),
                }
            }
        }
        out
    }

    // ----- (e), (g) and (h): a session the call started -------------------------------------

    /// (g) A session starts only for a registered, active and enabled handler, never after
    /// shutdown. The state at the start is the state after the call: scheduling is the last
    /// thing every call does.
    fn start_is_allowed(&self, step: &Step, start: &Start) -> Result<(), TestCaseError> {
        let Start {
            session, handler, ..
        } = start;
        let Some(view) = step.post.handler(handler) else {
            return Err(TestCaseError::fail(format!(
                "(g) {session} started for {handler}, which is not registered"
            )));
        };
        check!(
            view.running.contains(session),
            "(g) {session} started for a removed registration of {handler}"
        );
        check!(
            view.active && view.enabled,
            "(g) {session} started for {handler}, active {} enabled {}",
            view.active,
            view.enabled
        );
        check!(
            !self.engine.is_shut_down(),
            "(g) {session} started after shutdown"
        );
        Ok(())
    }

    /// (h) A session starts with the entries of one key, its own: every item it holds came
    /// with its waiting requests, all of that key (nothing can join it before the call ends).
    fn start_takes_one_key(&self, step: &Step, start: &Start) -> Result<(), TestCaseError> {
        let Start { session, key, .. } = start;
        let Some(started) = step.post.session(*session) else {
            return Err(TestCaseError::fail(format!(
                "(g) {session} started and is not running"
            )));
        };
        check!(
            started.key == **key,
            "(h) {session} started with key {key:?}, its view says {:?}",
            started.key
        );
        for si in &started.items {
            check!(
                !si.waiting.is_empty(),
                "(h) {session} took {} with no request waiting for it",
                si.item
            );
            for r in &si.waiting {
                let theirs = &self.requests[r.get() as usize - 1].key;
                check!(
                    theirs == *key,
                    "(h) {session} of key {key:?} took {} for {r}, of key {theirs:?}",
                    si.item
                );
            }
        }
        Ok(())
    }

    /// (e) A session takes the union of what is pending under its key and not running
    /// elsewhere: nothing stays pending under its key unless another session holds it, or
    /// time holds it back (SPEC 11: debounce or backoff, as far as `time.rs`'s book knows).
    fn start_leaves_nothing_free_under_its_key(
        &self,
        step: &Step,
        start: &Start,
        waits: &Waits,
    ) -> Result<(), TestCaseError> {
        let Start {
            session,
            handler,
            key,
            at,
            ..
        } = start;
        for w in waits[*handler].iter().filter(|w| w.key == **key) {
            if w.waiters.iter().all(|r| step.made_after(*r, *at)) {
                // Queued after the session started (a tick later in the same poll).
                continue;
            }
            check!(
                held_by(step, handler, &w.item).is_some_and(|s| s != *session)
                    || (key.is_default() && self.may_hold(step, handler, &w.item)),
                "(e) {session} of {handler} (key {key:?}) left {} pending under its key \
                 though no other session held it",
                w.item
            );
        }
        Ok(())
    }

    /// (h) Of the keys with an entry no running session holds, a session serves the one whose
    /// oldest waiting request is oldest (the default key counts as a key). Sessions start last
    /// in a call, so the keys still waiting after it waited when it chose. Entries time holds
    /// back are no candidates.
    fn start_serves_the_oldest_key(
        &self,
        step: &Step,
        start: &Start,
        waits: &Waits,
    ) -> Result<(), TestCaseError> {
        let Start {
            session,
            handler,
            key,
            ..
        } = start;
        // `start_takes_one_key` ran first: the session is running.
        let started = step.post.session(*session).unwrap();
        let waits = &waits[*handler];
        let mut oldest = oldest_under(waits, key);
        for si in &started.items {
            oldest = si.waiting.iter().copied().chain(oldest).min();
        }
        for w in waits.iter().filter(|w| w.key != **key) {
            if w.key.is_default() && self.may_hold(step, handler, &w.item) {
                // Held back by time: the default key may not be a candidate (SPEC 11).
                continue;
            }
            let other = oldest_under(waits, &w.key);
            check!(
                held_by(step, handler, &w.item).is_some() || other > oldest,
                "(h) {session} of {handler} served key {key:?} (oldest request {oldest:?}), \
                 but {} waited under {:?} (oldest request {other:?}) and no session held it",
                w.item,
                w.key
            );
        }
        Ok(())
    }

    // ----- (h) merge keys -----------------------------------------------------------------

    /// (h) Requests of different keys never share a session: every request a running session
    /// serves has its key, unless it joined the item there.
    fn keys_never_share_a_session(&self, step: &Step) -> Result<(), TestCaseError> {
        for s in &step.post.sessions {
            for si in &s.items {
                for r in &si.waiting {
                    let issued = &self.requests[r.get() as usize - 1];
                    check!(
                        issued.key == s.key
                            || issued.joined.contains(&(si.item.clone(), s.id.get())),
                        "(h) {} of key {:?} serves {r} (key {:?}) for {} without a join",
                        s.id,
                        s.key,
                        issued.key,
                        si.item
                    );
                }
            }
        }
        Ok(())
    }

    /// What session `s` may see and pull in `snap`: the entries pending under its own key
    /// and held by no running session of its handler.
    fn free_under(&self, snap: &Snapshot, s: &SessionView) -> Vec<Wait> {
        let owner = self.owner.get(&s.id.get());
        let Some(view) = snap.handler(&s.handler) else {
            return Vec::new();
        };
        if owner != Some(&(s.handler.clone(), self.generation[&s.handler])) {
            return Vec::new(); // a removed registration has nothing pending
        }
        self.waits(snap, &s.handler)
            .into_iter()
            .filter(|w| w.key == s.key)
            .filter(|w| {
                !snap.sessions.iter().any(|o| {
                    view.running.contains(&o.id) && o.items.iter().any(|si| si.item == w.item)
                })
            })
            .collect()
    }

    /// (h) `query_for_additional_items` offers exactly what is free under the session's key,
    /// with the requests waiting there.
    fn query_sees_only_its_key(&self, step: &Step) -> Result<(), TestCaseError> {
        if let (Call::Query(s), Ok(Reply::Additional(items, requests))) = (step.call, step.got)
            && let Some(session) = step.post.session(*s)
        {
            let free = self.free_under(step.post, session);
            let mut expected: Vec<u64> = free
                .iter()
                .flat_map(|w| w.waiters.iter().map(|r| r.get()))
                .collect();
            expected.sort_unstable();
            expected.dedup();
            check!(
                items.len() == free.len() && free.iter().all(|w| items.contains(&w.item)),
                "(h) {s} of key {:?} was offered {items:?}; free under its key: {:?}",
                session.key,
                free.iter().map(|w| &w.item).collect::<Vec<_>>()
            );
            check!(
                *requests == expected,
                "(h) {s} was told of requests {requests:?}, not {expected:?}"
            );
        }
        Ok(())
    }

    /// (h) `add_item_to_session` pulls an item exactly when it is free under the session's
    /// key, with every request waiting on that entry.
    fn add_item_pulls_only_its_key(&self, step: &Step) -> Result<(), TestCaseError> {
        let Call::AddItem(s, item) = step.call else {
            return Ok(());
        };
        let Some(session) = step.pre.session(*s) else {
            return Ok(());
        };
        let free = self.free_under(step.pre, session);
        let entry = free.iter().find(|w| w.item == *item);
        match (step.got, entry) {
            (Ok(Reply::Served(n)), Some(w)) => {
                let now = step.post.session(*s).and_then(|v| {
                    v.items
                        .iter()
                        .find(|si| si.item == *item)
                        .map(|si| si.waiting.clone())
                });
                check!(
                    *n == w.waiters.len() && now.as_ref() == Some(&w.waiters),
                    "(h) {s} pulled {item}: {n} served, now waiting {now:?}, the entry \
                     under its key had {:?}",
                    w.waiters
                );
            }
            (Ok(reply), None) => {
                return Err(TestCaseError::fail(format!(
                    "(h) {s} of key {:?} pulled {item} ({reply:?}), which was not free \
                     under its key",
                    session.key
                )));
            }
            (Err(Error::ItemNotPending(_)), Some(_)) => {
                return Err(TestCaseError::fail(format!(
                    "(h) {s} could not pull {item}, pending under its key {:?} and free",
                    session.key
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// (h) Shutdown removes the pending entries of every key.
    fn shutdown_clears_pending(&self, step: &Step) -> Result<(), TestCaseError> {
        if self.engine.is_shut_down() {
            for view in &step.post.handlers {
                check!(
                    view.pending.is_empty(),
                    "(h) {} still has {:?} pending after shutdown",
                    view.id,
                    view.pending
                );
            }
        }
        Ok(())
    }

    // ----- (c) and (f): what a start call did with each item ------------------------------

    /// (c) An item named twice in one start call counts once, at its first place (SPEC 4).
    fn duplicates_count_once(&self, step: &Step) -> Result<(), TestCaseError> {
        if step.call.start_flags().is_none() {
            return Ok(());
        }
        if let (Some(asked), [acc]) = (step.call.named(), step.accepted().as_slice()) {
            let mut distinct: Vec<&ItemId> = Vec::new();
            for item in asked {
                if !distinct.contains(&item) {
                    distinct.push(item);
                }
            }
            let issued = &self.requests[acc.request as usize - 1];
            check!(
                issued.items.iter().eq(distinct.iter().copied())
                    && acc.duplicates == asked.len() - distinct.len(),
                "(c) {asked:?} became {:?} with {} duplicates",
                issued.items,
                acc.duplicates
            );
        }
        Ok(())
    }

    /// (f) Joined exactly when the flag is set (always, for a trigger's requests) and the
    /// item is currently syncing, whatever the keys; else queued, or merged into the entry of
    /// the same item and key.
    fn dispositions_follow_the_flag(&self, step: &Step) -> Result<(), TestCaseError> {
        // A trigger's requests carry `IGNORE_IF_ALREADY_SYNCING` (SPEC 11.4).
        let flags = match step.call {
            Call::Trigger(_) => JOIN,
            call => match call.start_flags() {
                Some(flags) => flags,
                None => return Ok(()),
            },
        };
        let join = flags.contains(JOIN);
        let key = step.call.merge_key();
        for acc in &step.accepted() {
            let issued = &self.requests[acc.request as usize - 1];
            let view = step.pre.handler(&acc.handler).unwrap();
            let waits = self.waits(step.pre, &acc.handler);
            check!(
                acc.dispositions.len() == issued.items.len(),
                "(f) {} dispositions for {} items",
                acc.dispositions.len(),
                issued.items.len()
            );
            for (item, d) in issued.items.iter().zip(&acc.dispositions) {
                let running = view
                    .running
                    .iter()
                    .filter_map(|s| step.pre.session(*s))
                    .find(|s| syncing(s, item));
                // Joins ignore keys; merging happens only under the request's own key.
                let expected = if !view.connected {
                    MDisposition::Settled(Outcome::Disconnected)
                } else if let (true, Some(s)) = (join, running) {
                    MDisposition::Joined(s.id.get())
                } else if waits.iter().any(|w| w.item == *item && w.key == key) {
                    MDisposition::Merged
                } else {
                    MDisposition::Queued
                };
                check!(
                    *d == expected,
                    "(f) {item} of request {} (key {key:?}) became {d:?}, expected \
                     {expected:?} (flag {join})",
                    acc.request
                );
            }
        }
        Ok(())
    }
}

/// A refused call changes nothing (SPEC 4, "all-or-nothing"); the terminal rule is the one
/// documented exception.
fn refused_calls_change_nothing(step: &Step) -> Result<(), TestCaseError> {
    if let Err(e) = step.got
        && !matches!(
            e,
            Error::AccessDenied(syncmgr::Denied::TerminalState { .. })
        )
    {
        check!(
            step.actions.is_empty() && step.pre == step.post,
            "a refused call ({e:?}) changed the engine: {:?}",
            step.actions
        );
    }
    Ok(())
}

/// (b) No item is in two running sessions of the same handler registration.
fn no_item_in_two_sessions_of_a_handler(by_owner: &ByOwner) -> Result<(), TestCaseError> {
    for ((handler, _), sessions) in by_owner {
        let mut held: Vec<&ItemId> = Vec::new();
        for s in sessions {
            for si in &s.items {
                check!(
                    !held.contains(&&si.item),
                    "(b) {} is in two running sessions of {handler}: {:?}",
                    si.item,
                    sessions.iter().map(|s| s.id).collect::<Vec<_>>()
                );
                held.push(&si.item);
            }
        }
    }
    Ok(())
}

/// (g) What is pending can run (else a session would one day start with it): only an
/// active, enabled handler holds pending items, and only enabled items of its own.
fn pending_can_run(step: &Step) -> Result<(), TestCaseError> {
    for view in &step.post.handlers {
        check!(
            view.pending.is_empty() || (view.active && view.enabled),
            "(g) {} has pending items while inactive or disabled",
            view.id
        );
        for item in &view.pending {
            check!(
                view.items.contains(&(item.clone(), true)),
                "(g) {} holds {item} pending while it is disabled or gone",
                view.id
            );
        }
    }
    Ok(())
}

/// (e) and (g): a session starts with at least one enabled item of its handler, none twice,
/// within the handler's limit, and a non-concurrent handler starts at most one per call.
fn start_takes_its_items_once(
    step: &Step,
    start: &Start,
    starts: &[Start],
) -> Result<(), TestCaseError> {
    let Start {
        session,
        handler,
        items,
        ..
    } = start;
    // `start_is_allowed` ran first: the handler is registered.
    let view = step.post.handler(handler).unwrap();
    check!(!items.is_empty(), "(e) {session} started with no item");
    for (n, item) in items.iter().enumerate() {
        check!(
            view.items.contains(&(item.clone(), true)),
            "(g) {session} started with {item}, disabled or not an item of {handler}"
        );
        check!(
            !items[..n].contains(item),
            "(e) {session} holds {item} twice"
        );
    }
    check!(
        view.running.len() <= view.session_limit,
        "(d) {session} started for {handler}, which now runs {:?}, over its limit {}",
        view.running,
        view.session_limit
    );
    let count = starts.iter().filter(|s| s.handler == *handler).count();
    check!(
        view.session_limit > 1 || count == 1,
        "(e) non-concurrent {handler} started {count} sessions in one call"
    );
    Ok(())
}

/// Which of `handler`'s running sessions holds `item` after the call, if any.
fn held_by(step: &Step, handler: &HandlerId, item: &ItemId) -> Option<SessionId> {
    let view = step.post.handler(handler)?;
    step.post
        .sessions
        .iter()
        .filter(|s| view.running.contains(&s.id))
        .find(|s| s.items.iter().any(|si| si.item == *item))
        .map(|s| s.id)
}

/// (h) A stop removes the pending entries of every key for the items it names.
fn stops_clear_pending(step: &Step) -> Result<(), TestCaseError> {
    if let (Call::StopItems(h, stopped), Ok(_)) = (step.call, step.got)
        && let Some(view) = step.post.handler(h)
    {
        for item in stopped {
            check!(
                !view.pending.contains(item),
                "(h) {item} still pending for {h} after a stop named it: {:?}",
                view.pending
            );
        }
    }
    Ok(())
}

/// Whether a handler view's flat pending list is what `waits` says, in the shape
/// `HandlerView::pending` documents: the default key's entries first, then each other key's
/// entries together; within each key no item twice and exactly the items requests wait on
/// under that key. (The order of the keys, and of the items within a key, is the model's to
/// compare.)
fn pending_matches(pending: &[ItemId], waits: &[Wait]) -> bool {
    /// `slice` holds each item of `group` once, and nothing else.
    fn same(slice: &[ItemId], group: &[&ItemId]) -> bool {
        slice.len() == group.len()
            && slice
                .iter()
                .enumerate()
                .all(|(n, i)| !slice[..n].contains(i) && group.contains(&i))
    }
    /// `rest` is the groups one after another, in some order.
    fn groups(rest: &[ItemId], left: &mut Vec<Vec<&ItemId>>) -> bool {
        if left.is_empty() {
            return rest.is_empty();
        }
        for g in 0..left.len() {
            let m = left[g].len();
            if m <= rest.len() && same(&rest[..m], &left[g]) {
                let group = left.remove(g);
                if groups(&rest[m..], left) {
                    return true;
                }
                left.insert(g, group);
            }
        }
        false
    }
    let of = |key: &MergeKey| -> Vec<&ItemId> {
        waits
            .iter()
            .filter(|w| w.key == *key)
            .map(|w| &w.item)
            .collect()
    };
    let default = of(&MergeKey::DEFAULT);
    if pending.len() < default.len() || !same(&pending[..default.len()], &default) {
        return false;
    }
    let mut keys: Vec<&MergeKey> = Vec::new();
    for w in waits.iter().filter(|w| !w.key.is_default()) {
        if !keys.contains(&&w.key) {
            keys.push(&w.key);
        }
    }
    let mut left: Vec<Vec<&ItemId>> = keys.into_iter().map(of).collect();
    groups(&pending[default.len()..], &mut left)
}

/// The oldest request waiting under `key` among these entries.
fn oldest_under(waits: &[Wait], key: &MergeKey) -> Option<RequestId> {
    waits
        .iter()
        .filter(|w| w.key == *key)
        .flat_map(|w| w.waiters.iter().copied())
        .min()
}
