//! Read-only views of the engine's state, and its structural self-check.
//!
//! The views copy what they show, so they are for tests, tools and UIs, not for hot paths.

use std::collections::HashSet;

use super::queue::{ItemIdx, ItemPos};
use super::state::Handler;
use super::state::HandlerKey;
use super::state::{Hold, SessionPos};
use super::timers::Timer;
use super::{Engine, RequestId, SessionId};
use crate::flags::{HandlerCapabilities, HandlerPolicies, ItemCapabilities, ProgressStatus};
use crate::id::{HandlerId, ItemId};
use crate::result::Outcome;
use crate::time::Time;
use std::time::Duration;

/// A copy of one handler's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerView {
    /// The handler.
    pub id: HandlerId,
    /// Its capabilities.
    pub capabilities: HandlerCapabilities,
    /// Its policies.
    pub policies: HandlerPolicies,
    /// Whether it is active.
    pub active: bool,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether it is connected.
    pub connected: bool,
    /// How many sessions it may run at once.
    pub session_limit: usize,
    /// Its items with their enabled state, in table order.
    pub items: Vec<(ItemId, bool)>,
    /// Its pending items: those of Sync Center requests oldest first, then those of each
    /// legacy cookie (merge key), oldest key first. An item pending under two keys is listed
    /// twice.
    pub pending: Vec<ItemId>,
    /// Its running sessions, oldest first.
    pub running: Vec<SessionId>,
}

/// A copy of one item's state in a running session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionItemView {
    /// The item.
    pub item: ItemId,
    /// The last status reported for it.
    pub last: Option<ProgressStatus>,
    /// Its terminal outcome, once reported.
    pub terminal: Option<Outcome>,
    /// Whether a `CancelItem` was requested for it.
    pub cancel_requested: bool,
    /// The requests that will take its outcome from this session.
    pub waiting: Vec<RequestId>,
}

/// A copy of one running session's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub id: SessionId,
    /// Its handler.
    pub handler: HandlerId,
    /// Whether the shell reported it started.
    pub started: bool,
    /// Whether the handler reported it as manually started.
    pub manual: bool,
    /// Whether `CancelAll` was requested.
    pub cancel_all: bool,
    /// The merge key of the requests it took from the pending set.
    pub key: super::MergeKey,
    /// Its items, in session order.
    pub items: Vec<SessionItemView>,
}

/// A copy of one open request's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestView {
    /// The request.
    pub id: RequestId,
    /// Its handler.
    pub handler: HandlerId,
    /// Its items in request order, with the outcomes recorded so far.
    pub items: Vec<(ItemId, Option<Outcome>)>,
    /// Error events counted so far.
    pub errors: u32,
    /// Conflicts counted so far.
    pub conflicts: u32,
}

impl Engine {
    /// The live handlers, in registration order.
    pub fn handlers(&self) -> Vec<HandlerId> {
        self.handlers
            .values()
            .filter(|h| !h.removed)
            .map(|h| h.id.clone())
            .collect()
    }

    /// A copy of a live handler's state.
    pub fn handler_view(&self, id: &HandlerId) -> Option<HandlerView> {
        let h = &self.handlers[self.by_id.get(id)?];
        Some(HandlerView {
            id: h.id.clone(),
            capabilities: h.capabilities,
            policies: h.policies,
            active: h.active,
            enabled: h.enabled,
            connected: h.connected,
            session_limit: h.session_limit,
            items: h
                .items
                .iter()
                .filter(|s| !s.removed)
                .map(|s| (s.id.clone(), s.enabled))
                .collect(),
            pending: std::iter::once(&h.pending)
                .chain(h.keyed.iter().map(|k| k.queue()))
                .flat_map(super::queue::PendingQueue::iter)
                .map(|(_, e)| h.slot(e.item).id.clone())
                .collect(),
            running: h.running.to_vec(),
        })
    }

    /// A live handler's pending items, oldest first (empty for an unknown handler).
    pub fn pending_items(&self, id: &HandlerId) -> Vec<ItemId> {
        self.handler_view(id).map(|h| h.pending).unwrap_or_default()
    }

    /// The running sessions, in start order.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.sessions.keys().copied().collect()
    }

    /// A copy of a running session's state.
    pub fn session_view(&self, id: SessionId) -> Option<SessionView> {
        let s = self.sessions.get(&id)?;
        let h = self.handlers.get(&s.handler_key)?;
        Some(SessionView {
            id,
            handler: s.handler.clone(),
            started: s.started,
            manual: s.manual,
            cancel_all: s.cancel_all,
            key: s.merge.clone(),
            items: s
                .items
                .iter()
                .map(|si| SessionItemView {
                    item: h.slot(si.item).id.clone(),
                    last: si.last,
                    terminal: si.terminal,
                    cancel_requested: si.cancel,
                    waiting: super::queue::waiters_of(&si.list, &self.requests)
                        .into_iter()
                        .map(|w| w.request)
                        .collect(),
                })
                .collect(),
        })
    }

    /// The open requests a running session serves (those waiting for any of its items),
    /// oldest first, each once; empty for a session that is not running. What
    /// [`session_view`](Self::session_view) lists item by item, without the copy of the
    /// rest: a shell asks it for every session it starts.
    pub fn session_requests(&self, id: SessionId) -> Vec<RequestId> {
        let Some(s) = self.sessions.get(&id) else {
            return Vec::new();
        };
        let mut ids = Vec::with_capacity(s.items.iter().map(|si| si.list.len as usize).sum());
        for si in &s.items {
            let mut at = si.list.tail;
            while !at.is_none() {
                ids.push(at.request);
                match super::queue::prev_of(&self.requests, at) {
                    Some(prev) => at = prev,
                    // A waiter in a list always has its open request; stop rather than loop.
                    None => break,
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The open requests (accepted, result not yet decided), oldest first.
    pub fn open_requests(&self) -> Vec<RequestId> {
        let mut ids: Vec<RequestId> = self.requests.iter().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    /// What a request's result would count now: what the sessions it left credited, plus
    /// what the sessions still serving it counted so far. O(what those sessions serve).
    fn counts_so_far(&self, id: RequestId) -> super::state::Counts {
        let Some(r) = self.requests.get(&id) else {
            return super::state::Counts::default();
        };
        let mut counts = r.counts;
        let Some(h) = self.handlers.get(&r.handler_key) else {
            return counts;
        };
        for s in &h.running {
            let Some(session) = self.sessions.get(s) else {
                continue;
            };
            let mut served = false;
            for si in &session.items {
                if super::queue::waiters_of(&si.list, &self.requests)
                    .iter()
                    .any(|w| w.request == id)
                {
                    served = true;
                    counts.add(si.counts);
                }
            }
            if served {
                counts.add(session.counts);
            }
        }
        counts
    }

    /// A copy of an open request's state.
    pub fn request_view(&self, id: RequestId) -> Option<RequestView> {
        let r = self.requests.get(&id)?;
        let h = self.handlers.get(&r.handler_key)?;
        let counts = self.counts_so_far(id);
        Some(RequestView {
            id,
            handler: h.id.clone(),
            items: r
                .items
                .iter()
                .map(|ri| (h.slot(ri.item).id.clone(), ri.outcome))
                .collect(),
            errors: counts.errors,
            conflicts: counts.conflicts,
        })
    }

    /// An open request's items in request order: what [`Accepted::dispositions`] is parallel
    /// to.
    ///
    /// [`Accepted::dispositions`]: super::Accepted::dispositions
    pub fn request_items(&self, id: RequestId) -> Option<Vec<ItemId>> {
        self.request_view(id)
            .map(|r| r.items.into_iter().map(|(i, _)| i).collect())
    }

    /// How many sessions are running.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The capabilities of a live item of a live handler.
    pub fn item_capabilities(
        &self,
        handler: &HandlerId,
        item: &ItemId,
    ) -> Option<ItemCapabilities> {
        let h = &self.handlers[self.by_id.get(handler)?];
        h.find(item).map(|idx| h.slot(idx).capabilities)
    }

    /// Which of `items` the handler has enabled, in the order given, and whether any of them
    /// is not an item of the handler. `None` if the handler is unknown. One lookup per item.
    pub(crate) fn enabled_among(
        &self,
        handler: &HandlerId,
        items: Vec<ItemId>,
    ) -> Option<(Vec<ItemId>, bool)> {
        let h = &self.handlers[self.by_id.get(handler)?];
        let mut unknown = false;
        let enabled = items
            .into_iter()
            .filter(|item| match h.find(item) {
                Some(idx) => h.slot(idx).enabled,
                None => {
                    unknown = true;
                    false
                }
            })
            .collect();
        Some((enabled, unknown))
    }

    /// The actions decided and not yet taken, oldest first, without taking them.
    pub fn pending_actions(&self) -> impl ExactSizeIterator<Item = &super::Action> {
        self.actions.iter()
    }

    /// Whether nothing is pending, running or open.
    pub fn is_idle(&self) -> bool {
        self.sessions.is_empty()
            && self.requests.is_empty()
            && self.handlers.values().all(|h| h.nothing_pending())
    }

    /// Checks the engine's internal bookkeeping against itself, in time linear in its size:
    /// every index points where it should, every open item of every request waits in exactly
    /// one place, counts match, the limits hold, and the scheduler left no startable handler
    /// idle while a slot was free. For tests (the crate's property tests call it after every
    /// step); returns the first broken rule.
    pub fn check_consistency(&self) -> Result<(), String> {
        let fail = |what: String| Err(what);
        if self.sessions.len() > self.config.max_sessions {
            return fail(format!(
                "{} sessions run, limit {}",
                self.sessions.len(),
                self.config.max_sessions
            ));
        }
        for (id, key) in &self.by_id {
            match self.handlers.get(key) {
                Some(h) if !h.removed && h.id == *id => {}
                _ => return fail(format!("by_id entry {id} points to a wrong record")),
            }
        }
        // Every place a request waits, to be matched against the requests below.
        let mut places: HashSet<(RequestId, ItemPos)> = HashSet::new();
        for (key, h) in self.handlers.iter() {
            self.check_handler(key, h, &mut places)?;
        }
        self.check_timers()?;
        let timed = self.handlers.iter().filter(|(_, h)| h.timed).count();
        if timed != self.timed_handlers {
            return fail(format!(
                "{timed} handlers have a time policy, {} counted",
                self.timed_handlers
            ));
        }
        for (sid, s) in &self.sessions {
            let Some(h) = self.handlers.get(&s.handler_key) else {
                return fail(format!("{sid}: no handler record"));
            };
            if !h.running.contains(sid) {
                return fail(format!("{sid}: not listed as running by {}", h.id));
            }
            for (pos, si) in s.items.iter().enumerate() {
                if h.slot(si.item).held != Some((*sid, SessionPos::of(pos))) {
                    return fail(format!(
                        "{sid}: item {} not marked as held by it",
                        h.slot(si.item).id
                    ));
                }
                self.check_list(&si.list, s.handler_key, si.item, &mut places)?;
            }
        }
        for (rid, r) in self.requests.iter() {
            let open = r.items.iter().filter(|ri| ri.outcome.is_none()).count();
            if u32::try_from(open) != Ok(r.remaining) || open == 0 {
                return fail(format!(
                    "{rid}: remaining {} but {open} open items",
                    r.remaining
                ));
            }
            for (pos, ri) in r.items.iter().enumerate() {
                if ri.outcome.is_none() && !places.contains(&(rid, ItemPos::of(pos))) {
                    return fail(format!("{rid}: open item #{pos} waits nowhere"));
                }
            }
        }
        if !self.shut_down
            && self.sessions.len() < self.config.max_sessions
            && let Some(h) = self.handlers.values().find(|h| h.can_start())
        {
            return fail(format!(
                "{} could start but the scheduler left it waiting",
                h.id
            ));
        }
        if !self.shut_down
            && let Some((key, h)) = self
                .handlers
                .iter()
                .find(|(key, h)| h.can_start() && !self.waiting_for_slot.contains(key))
        {
            return fail(format!(
                "{} (key {key}) could start but is not among the handlers waiting for a slot",
                h.id
            ));
        }
        Ok(())
    }

    /// A handler record: its index, and that it holds nothing while it may not sync.
    fn check_handler(
        &self,
        key: HandlerKey,
        h: &Handler,
        places: &mut HashSet<(RequestId, ItemPos)>,
    ) -> Result<(), String> {
        let fail = |what: String| Err(what);
        let key = &key;
        if h.removed && self.by_id.get(&h.id) == Some(key) {
            return fail(format!("removed handler {} still indexed", h.id));
        }
        for (id, &idx) in &h.index {
            if h.slot(idx).id != *id {
                return fail(format!("{}: index of {id} points elsewhere", h.id));
            }
        }
        if (!h.active || !h.enabled || h.removed) && !h.nothing_pending() {
            return fail(format!(
                "{}: pending while inactive, disabled or removed",
                h.id
            ));
        }
        self.check_default_queue(*key, h, places)?;
        self.check_holds(*key, h)?;
        self.check_keyed_queues(*key, h, places)?;
        self.check_slots(*key, h)
    }

    /// The default key's pending entries, their wait lists and the `startable` count.
    fn check_default_queue(
        &self,
        key: HandlerKey,
        h: &Handler,
        places: &mut HashSet<(RequestId, ItemPos)>,
    ) -> Result<(), String> {
        let fail = |what: String| Err(what);
        let mut seen = HashSet::new();
        let mut startable = 0;
        for (at, e) in h.pending.iter() {
            let slot = h.slot(e.item);
            if !seen.insert(e.item) {
                return fail(format!("{}: {} pending twice", h.id, slot.id));
            }
            if slot.entry != Some(at) {
                return fail(format!("{}: {} pending index out of date", h.id, slot.id));
            }
            if !slot.live_and_enabled() {
                return fail(format!(
                    "{}: {} pending while disabled or removed",
                    h.id, slot.id
                ));
            }
            if slot.waiting.is_empty() || !e.list.is_empty() {
                return fail(format!(
                    "{}: {} pending with no waiter, or with its list in the entry",
                    h.id, slot.id
                ));
            }
            if slot.startable() {
                startable += 1;
            }
            for w in self.check_list(&slot.waiting, key, e.item, places)? {
                if self
                    .requests
                    .get(&w.request)
                    .is_some_and(|r| !r.key.is_default())
                {
                    return fail(format!(
                        "{}: {} waits under another merge key",
                        h.id, w.request
                    ));
                }
            }
        }
        if seen.len() != h.pending.len() {
            return fail(format!(
                "{}: {} live entries counted as {}",
                h.id,
                seen.len(),
                h.pending.len()
            ));
        }
        if startable != h.startable {
            return fail(format!(
                "{}: startable {} but {} counted",
                h.id, h.startable, startable
            ));
        }
        Ok(())
    }

    /// Holds, windows and tickers against the timers: each hold on a pending entry, each
    /// window holding entries, each ticker of a live schedule has exactly its timer.
    fn check_holds(&self, key: HandlerKey, h: &Handler) -> Result<(), String> {
        let fail = |what: String| Err(what);
        let mut debounced = 0;
        for (i, slot) in h.items.iter().enumerate() {
            let idx = ItemIdx::of(i);
            match slot.hold {
                Some(_) if slot.entry.is_none() => {
                    return fail(format!("{}: {} held but not pending", h.id, slot.id));
                }
                Some(Hold::Debounce) => debounced += 1,
                Some(Hold::Backoff(at)) if !self.timers.contains(at, Timer::Retry(key, idx)) => {
                    return fail(format!("{}: {} backs off with no timer", h.id, slot.id));
                }
                _ => {}
            }
        }
        match h.window {
            None if debounced > 0 => {
                return fail(format!("{}: {debounced} debounced with no window", h.id));
            }
            Some(w) if w.entries != debounced || debounced == 0 => {
                return fail(format!(
                    "{}: window counts {} entries, {debounced} debounced",
                    h.id, w.entries
                ));
            }
            Some(w) if !self.timers.contains(w.due, Timer::Debounce(key)) => {
                return fail(format!("{}: window with no timer", h.id));
            }
            Some(w)
                if w.due
                    > w.last
                        .saturating_add(h.policy.debounce.map_or(Duration::ZERO, |d| d.quiet)) =>
            {
                return fail(format!("{}: window due after its quiet time", h.id));
            }
            _ => {}
        }
        if let Some(open) = h.scheduled
            && self.requests.get(&open).is_none()
        {
            return fail(format!("{}: its scheduled {open} is not open", h.id));
        }
        match h.ticker {
            Some(t) if !self.timers.contains(t.due, Timer::Tick(key)) => {
                fail(format!("{}: ticker with no timer", h.id))
            }
            Some(_) if h.removed || h.policy.schedule.is_none() => {
                fail(format!("{}: ticker with no live schedule", h.id))
            }
            // Shutdown stops every schedule, and so does the end of time (`Time::MAX`: no
            // tick comes after it).
            None if !h.removed
                && h.policy.schedule.is_some()
                && !self.shut_down
                && self.now < Time::MAX =>
            {
                fail(format!("{}: schedule with no ticker", h.id))
            }
            _ => Ok(()),
        }
    }

    /// Every timer has its owner (the per-handler checks count the owners' side).
    fn check_timers(&self) -> Result<(), String> {
        for &(due, timer) in self.timers.iter() {
            let owned = match timer {
                Timer::Debounce(k) => self
                    .handlers
                    .get(&k)
                    .is_some_and(|h| h.window.is_some_and(|w| w.due == due)),
                Timer::Retry(k, idx) => self
                    .handlers
                    .get(&k)
                    .is_some_and(|h| h.items[idx].hold == Some(Hold::Backoff(due))),
                Timer::Tick(k) => self
                    .handlers
                    .get(&k)
                    .is_some_and(|h| h.ticker.is_some_and(|t| t.due == due)),
            };
            if !owned {
                return Err(format!("timer {timer:?} at {due} has no owner"));
            }
        }
        Ok(())
    }

    /// The legacy cookies' pending entries and their wait lists.
    fn check_keyed_queues(
        &self,
        key: HandlerKey,
        h: &Handler,
        places: &mut HashSet<(RequestId, ItemPos)>,
    ) -> Result<(), String> {
        let fail = |what: String| Err(what);
        for (at, keyed) in h.keyed.iter().enumerate() {
            if keyed.key.is_default() || keyed.queue().is_empty() {
                return fail(format!("{}: keyed queue #{at} is default or empty", h.id));
            }
            if h.keyed[..at].iter().any(|k| k.key == keyed.key) {
                return fail(format!("{}: two queues for one merge key", h.id));
            }
            if !keyed.index_matches() {
                return fail(format!("{}: keyed queue #{at}'s index is off", h.id));
            }
            let mut seen = HashSet::new();
            for (_, e) in keyed.queue().iter() {
                let slot = h.slot(e.item);
                if !seen.insert(e.item) || e.list.is_empty() || !slot.live_and_enabled() {
                    return fail(format!(
                        "{}: keyed entry of {} is a duplicate, empty, disabled or removed",
                        h.id, slot.id
                    ));
                }
                for w in self.check_list(&e.list, key, e.item, places)? {
                    if self
                        .requests
                        .get(&w.request)
                        .is_none_or(|r| r.key != keyed.key)
                    {
                        return fail(format!(
                            "{}: {} waits under another merge key",
                            h.id, w.request
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Each item slot's pending index and running record point at what holds it.
    fn check_slots(&self, key: HandlerKey, h: &Handler) -> Result<(), String> {
        let fail = |what: String| Err(what);
        for slot in &h.items {
            if slot.entry.is_none() && !slot.waiting.is_empty() {
                return fail(format!("{}: {} has waiters but no entry", h.id, slot.id));
            }
            if slot.entry.is_some_and(|at| h.pending.get(at).is_none()) {
                return fail(format!("{}: {} points at no entry", h.id, slot.id));
            }
            if let Some((s, pos)) = slot.held {
                let ok = self.sessions.get(&s).is_some_and(|session| {
                    session.handler_key == key
                        && session
                            .items
                            .get(pos.get())
                            .is_some_and(|si| si.item == h.index[&slot.id])
                });
                if !ok {
                    return fail(format!("{}: {} running record is stale", h.id, slot.id));
                }
            }
        }
        // More sessions than the limit run only if an update lowered the limit while
        // they ran (they finish normally); `Handler::can_start` keeps new ones out.
        Ok(())
    }

    /// Walks a wait list, checking each waiter and that the list's ends and length match
    /// the walk. Returns the waiters, oldest first.
    fn check_list(
        &self,
        list: &super::queue::WaitList,
        key: HandlerKey,
        item: super::queue::ItemIdx,
        places: &mut HashSet<(RequestId, ItemPos)>,
    ) -> Result<Vec<super::queue::Waiter>, String> {
        let walk = super::queue::waiters_of(list, &self.requests);
        let (oldest, newest) = (walk.first().copied(), walk.last().copied());
        let none = super::queue::Waiter::NONE;
        if walk.len() != list.len as usize
            || newest.unwrap_or(none) != list.tail
            || oldest.unwrap_or(none) != list.head
        {
            return Err(format!(
                "a wait list of item #{} says {} waiters, head {:?}, tail {:?}; the walk finds {}",
                item.get(),
                list.len,
                list.head,
                list.tail,
                walk.len()
            ));
        }
        for w in &walk {
            self.check_waiter(*w, key, item, places)?;
        }
        Ok(walk)
    }

    fn check_waiter(
        &self,
        w: super::queue::Waiter,
        key: HandlerKey,
        item: super::queue::ItemIdx,
        places: &mut HashSet<(RequestId, ItemPos)>,
    ) -> Result<(), String> {
        let ok = self.requests.get(&w.request).is_some_and(|r| {
            r.handler_key == key
                && r.items
                    .get(w.pos.get())
                    .is_some_and(|ri| ri.item == item && ri.outcome.is_none())
        });
        if !ok {
            return Err(format!("waiter {} #{} is stale", w.request, w.pos));
        }
        if !places.insert((w.request, w.pos)) {
            return Err(format!("{} #{} waits in two places", w.request, w.pos));
        }
        Ok(())
    }
}
