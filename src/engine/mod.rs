//! The pure scheduling engine: every current-versus-queued decision of `syncmgr`.
//!
//! [`Engine`] is a deterministic state machine. It owns the registered handlers (their items,
//! capabilities, policies and state), each handler's pending set, the running sessions with
//! their per-item states, and every open request. Its methods are the inputs of SPEC sections
//! 4–7; each returns a `#[must_use]` value naming what happened, and queues the follow-up
//! [`Action`]s (start this session, deliver this result, send this cancel) that the caller
//! takes with [`Engine::next_action`]. It spawns no thread, reads no clock, takes no lock and
//! calls no callback, so the same inputs always give the same actions in the same order.
//!
//! ```
//! use syncmgr::engine::{Action, Engine, HandlerSpec, SessionEnd};
//! use syncmgr::{HandlerId, ItemId, Outcome, ProgressStatus, SyncControlFlags};
//!
//! # fn main() -> Result<(), syncmgr::Error> {
//! let mail = HandlerId::new("mail")?;
//! let (inbox, sent) = (ItemId::new("inbox")?, ItemId::new("sent")?);
//! let mut engine = Engine::default();
//! engine.register_handler(HandlerSpec::new(mail.clone()).items([inbox.clone(), sent.clone()]))?;
//!
//! // The first request starts a session at once.
//! let first = engine.start_item_sync(&mail, &[inbox.clone()], SyncControlFlags::NONE)?;
//! let Some(Action::StartSession { session, .. }) = engine.next_action() else { panic!() };
//!
//! // Two more arrive while it runs: they merge into one pending set.
//! let a = engine.start_item_sync(&mail, &[inbox.clone(), sent.clone()], SyncControlFlags::NONE)?;
//! let b = engine.start_item_sync(&mail, &[sent.clone()], SyncControlFlags::NONE)?;
//! assert_eq!((a.queued_new(), b.merged()), (2, 1));
//!
//! // The session ends: the first request gets its result, and one next session takes the union.
//! let _ = engine.report_progress(session, &inbox, ProgressStatus::Succeeded, "")?;
//! let _ = engine.session_finished(session, SessionEnd::Returned)?;
//! let Some(Action::Deliver(result)) = engine.next_action() else { panic!() };
//! assert_eq!((result.request, result.status), (first.request, Outcome::Succeeded));
//! let Some(Action::StartSession { items, .. }) = engine.next_action() else { panic!() };
//! assert_eq!(items, [inbox, sent]);
//! # Ok(()) }
//! ```
//!
//! # Rules where the SPEC is silent
//!
//! The engine follows `SPEC.md` sections 4–8. Where the SPEC leaves a choice open, it does this:
//!
//! - **Validation order** of a start call (the first failure is returned, nothing changes):
//!   shutdown, unknown handler, flags with undefined bits, empty item list, handler
//!   `PREVENT_START_SYNC`, handler inactive, handler disabled, then each named item in input
//!   order: not owned, item `PREVENT_START_SYNC`, disabled.
//! - **Handler syncs** take the handler's items in registration order and leave out disabled
//!   items and items with the item policy `PREVENT_START_SYNC`; with none left the request
//!   completes at once as `Succeeded` with no items. [`Engine::start_sync_all`] skips handlers
//!   with nothing to sync and handlers that refuse to start.
//! - **Disconnected** handlers: the request is accepted, every item gets `Disconnected`, and
//!   the status is `Disconnected` even with no items. Nothing is queued.
//! - **Currently syncing** (what a request with `IGNORE_IF_ALREADY_SYNCING` may join) means
//!   held by a running session, with no terminal report *and no cancel requested* for the item
//!   or its session: joining a sync that was asked to stop would hand the caller a
//!   `Canceled` it did not ask for, so such an item is queued instead.
//! - **Outcomes settle at session end.** A terminal report is final for joins (no stale
//!   joins), but requests take an item's outcome when its session ends, because the terminal
//!   rule still lets a later `Failed` change it, and because the error and conflict counts
//!   cover the whole session. A cancelled request ([`Engine::cancel_request`]) does not wait:
//!   it takes the terminal reports made so far.
//! - **Scheduling** happens inside the call that makes it possible. While fewer than
//!   [`EngineConfig::max_sessions`] run, the handler that may start (active, enabled, under
//!   its own limit, with a pending item no session holds) whose oldest waiting request is
//!   oldest starts one session with all its pending items that no session holds, oldest
//!   first. A withdrawn request no longer counts for its handler's place.
//! - **Stops** leave items with the item policy `PREVENT_STOP_SYNC` alone in handler-wide
//!   stops (a session holding one gets `CancelItem` for each other item, not `CancelAll`),
//!   and refuse named stops of them. Stops work after shutdown.
//! - **State changes**: deactivating a handler cancels its pending entries as disabling does;
//!   the `PREVENT_*` policies refuse the call even when it would change nothing; running
//!   sessions are never touched.
//! - **Proposed items** count for no request (nobody asked for them); like any session item
//!   they end `Failed` without a terminal report.
//! - **Policies and connectivity are judged when a request is accepted.** An item that gains
//!   `PREVENT_START_SYNC` while pending, or a handler that disconnects, still runs what was
//!   already queued: disable the item or stop the handler to withdraw it.
//!
//! **Where time will enter.** Nothing here depends on time today. Retry backoff, schedules and
//! debounce will take `now` as an argument of the inputs that need it (a request's arrival, a
//! session's end) plus one `Engine::poll(now)` input for timers; the engine will still never
//! read a clock.

mod inspect;
mod io;
mod queue;
mod requests;
mod state;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;

use smallvec::SmallVec;

pub use self::inspect::{HandlerView, RequestView, SessionItemView, SessionView};
pub use self::io::{
    Accepted, Action, AdditionalItems, Changed, Disposition, HandlerSpec, ItemSpec, ProgressAck,
    SessionEnd, SessionEnded, StateChange, Stopped, Withdrawn,
};
pub use self::queue::MergeKey;
use self::queue::{ItemIdx, KeyedQueue, PendingQueue, WaitList, Waiter};
use self::requests::RequestTable;
use self::state::{
    Counts, Handler, HandlerTable, ItemSlot, NOT_PENDING, Request, RequestItem, Scratch, Session,
    SessionItem,
};
use crate::error::{Denied, Error, TextKind, check_text};
use crate::flags::{
    CancelRequest, EventLevel, HandlerCapabilities, HandlerPolicies, ItemCapabilities,
    ItemPolicies, ProgressStatus, SyncControlFlags, UpdateReason,
};
use crate::id::{HandlerId, IdMap, ItemId, MAX_SYNCMGR_PROGRESSTEXT};
use crate::result::{Outcome, RequestResult};

/// Defines a sequence number issued by the engine: opaque outside the crate, ordered by issue.
macro_rules! sequence_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The number behind the ID: its place in issue order, from 1.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad` so that width and alignment work: `{:<12}`.
                f.pad(&format!(concat!($label, "#{}"), self.0))
            }
        }
    };
}

sequence_id!(
    /// Identifies one accepted request. Issued in increasing order, never reused.
    RequestId,
    "request"
);
sequence_id!(
    /// Identifies one session. Issued in increasing order, never reused.
    SessionId,
    "session"
);

/// Limits of an [`Engine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Sessions that may run at once across all handlers (the global limit). Default 8.
    pub max_sessions: usize,
    /// Sessions that may run at once for one handler with `SUPPORTS_CONCURRENT_SESSIONS`,
    /// unless its [`HandlerSpec::max_concurrent_sessions`] says otherwise. Default 4.
    pub default_concurrent_sessions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_sessions: 8,
            default_concurrent_sessions: 4,
        }
    }
}

/// The pure scheduling engine. See the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    /// Handler records by key, in registration order (keys only grow).
    handlers: HandlerTable,
    /// Live handlers by ID. A removed handler whose sessions still run is in `handlers` only.
    by_id: IdMap<HandlerId, u64>,
    next_handler: u64,
    sessions: BTreeMap<SessionId, Session>,
    next_session: u64,
    requests: RequestTable,
    next_request: u64,
    actions: VecDeque<Action>,
    shut_down: bool,
    /// Handlers that could start a session but found every slot under `max_sessions` taken,
    /// by key. A freed slot can only go to one of them (or to the handler whose session
    /// ended), so scheduling looks at these instead of every handler: its cost does not grow
    /// with idle handlers. May hold keys that can no longer start; `schedule` drops them.
    waiting_for_slot: BTreeSet<u64>,
    /// The validated items of the start call being accepted, kept between calls so that
    /// accepting a request allocates nothing for them.
    scratch: Scratch,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            config: EngineConfig::default(),
            handlers: HandlerTable::default(),
            by_id: IdMap::default(),
            next_handler: 1,
            sessions: BTreeMap::new(),
            next_session: 1,
            requests: RequestTable::default(),
            next_request: 1,
            actions: VecDeque::new(),
            shut_down: false,
            waiting_for_slot: BTreeSet::new(),
            scratch: Scratch::default(),
        }
    }
}

fn denied(d: Denied) -> Error {
    Error::AccessDenied(d)
}

impl Engine {
    /// An engine with these limits. Zero limits are an [`Error::InvalidConfig`].
    pub fn new(config: EngineConfig) -> Result<Engine, Error> {
        if config.max_sessions == 0 {
            return Err(Error::InvalidConfig("max_sessions must be at least 1"));
        }
        if config.default_concurrent_sessions == 0 {
            return Err(Error::InvalidConfig(
                "default_concurrent_sessions must be at least 1",
            ));
        }
        Ok(Engine {
            config,
            ..Engine::default()
        })
    }

    /// The engine's limits.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Takes the oldest action the engine decided and the shell has not yet taken.
    pub fn next_action(&mut self) -> Option<Action> {
        let next = self.actions.pop_front();
        if next.is_none() {
            self.release_idle_actions();
        }
        next
    }

    /// Takes every action decided so far, oldest first. The queue's memory goes with them,
    /// so a burst of results does not leave a large empty queue behind.
    pub fn drain_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        std::mem::take(&mut self.actions).into_iter()
    }

    /// Gives back the memory of an empty action queue that a burst made large (a million
    /// results at once would otherwise keep 80 MB for good). Small queues keep their room.
    fn release_idle_actions(&mut self) {
        if self.actions.is_empty() && self.actions.capacity() > 4096 {
            self.actions = VecDeque::new();
        }
    }

    /// Whether [`Engine::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    // ----- handlers --------------------------------------------------------------------------

    /// Registers a handler. Fails with [`Error::HandlerExists`] if the ID is taken,
    /// [`Error::ItemExists`] if an item ID repeats, [`Error::InvalidConfig`] for a session
    /// limit of zero, and [`Error::ShutDown`] after shutdown.
    pub fn register_handler(&mut self, spec: HandlerSpec) -> Result<(), Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        if self.by_id.contains_key(&spec.id) {
            return Err(Error::HandlerExists(spec.id));
        }
        if spec.max_concurrent_sessions == Some(0) {
            return Err(Error::InvalidConfig(
                "max_concurrent_sessions must be at least 1",
            ));
        }
        check_spec_bits(spec.capabilities, spec.policies, &spec.items)?;
        check_unique_items(&spec.id, &spec.items)?;
        let mut handler = Handler {
            id: spec.id.clone(),
            capabilities: spec.capabilities,
            policies: spec.policies,
            active: spec.active,
            enabled: spec.enabled,
            connected: spec.connected,
            session_limit: 1,
            requested_limit: spec.max_concurrent_sessions,
            removed: false,
            items: Vec::with_capacity(spec.items.len()),
            index: IdMap::default(),
            pending: Default::default(),
            startable: 0,
            keyed: Vec::new(),
            running: SmallVec::new(),
        };
        handler.session_limit = self.session_limit(&handler);
        for item in spec.items {
            let idx = handler.items.len() as ItemIdx;
            handler.index.insert(item.id.clone(), idx);
            handler.items.push(ItemSlot::new(
                item.id,
                item.capabilities,
                item.policies,
                item.enabled,
            ));
        }
        let key = self.next_handler;
        self.next_handler += 1;
        self.by_id.insert(spec.id, key);
        self.handlers.insert(key, handler);
        Ok(())
    }

    fn session_limit(&self, h: &Handler) -> usize {
        if h.capabilities
            .contains(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS)
        {
            h.requested_limit
                .unwrap_or(self.config.default_concurrent_sessions)
        } else {
            1
        }
    }

    fn key(&self, id: &HandlerId) -> Result<u64, Error> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::UnknownHandler(id.clone()))
    }

    fn live(&self, id: &HandlerId) -> Result<(u64, &Handler), Error> {
        let key = self.key(id)?;
        Ok((key, &self.handlers[&key]))
    }

    fn writable(&self, id: &HandlerId) -> Result<u64, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        self.key(id)
    }

    /// Unregisters a handler. Its pending requests get `Canceled` for their pending items;
    /// sessions already running finish normally, and their requests get results as usual.
    pub fn remove_handler(&mut self, id: &HandlerId) -> Result<Changed, Error> {
        let key = self.writable(id)?;
        let canceled_pending = self.cancel_pending(key, |_| true);
        self.by_id.remove(id);
        if let Some(h) = self.handlers.get_mut(&key) {
            h.removed = true;
        }
        self.drop_if_retired(key);
        self.schedule(key);
        Ok(Changed {
            changed: true,
            canceled_pending,
        })
    }

    /// Activates or deactivates a handler. `PREVENT_ACTIVATE`/`PREVENT_DEACTIVATE` refuse the
    /// call (even when it would change nothing). Deactivating cancels the handler's pending
    /// requests, as disabling does: an inactive handler never starts a session.
    pub fn set_handler_active(&mut self, id: &HandlerId, active: bool) -> Result<Changed, Error> {
        self.apply_state_change(id, &StateChange::activation(active))
    }

    /// Enables or disables a handler. `PREVENT_ENABLE`/`PREVENT_DISABLE` refuse the call.
    /// Disabling cancels the handler's pending requests; running sessions finish normally.
    pub fn set_handler_enabled(&mut self, id: &HandlerId, enabled: bool) -> Result<Changed, Error> {
        self.apply_state_change(id, &StateChange::enabling(enabled))
    }

    /// Enables or disables one item. The item's `PREVENT_ENABLE`/`PREVENT_DISABLE` refuse the
    /// call. Disabling cancels its pending entry; a running session keeps it to the end.
    pub fn set_item_enabled(
        &mut self,
        handler: &HandlerId,
        item: &ItemId,
        enabled: bool,
    ) -> Result<Changed, Error> {
        self.apply_state_change(handler, &StateChange::item_enabling(item.clone(), enabled))
    }

    /// Says whether a state change would be refused, without making it: shutdown, unknown
    /// handler or item, or a `PREVENT_*` policy. The manager asks this before it asks a
    /// handler with a `QUERY_BEFORE_*` capability and runs its hook, so that a refused change
    /// never reaches the handler.
    pub fn check_state_change(
        &self,
        handler: &HandlerId,
        change: &StateChange,
    ) -> Result<(), Error> {
        let key = self.writable(handler)?;
        let h = &self.handlers[&key];
        match change {
            StateChange::Activate
            | StateChange::Deactivate
            | StateChange::Enable
            | StateChange::Disable => {
                let policy = change.handler_policy();
                if h.policies.contains(policy) {
                    return Err(denied(Denied::HandlerPolicy(policy)));
                }
            }
            StateChange::EnableItem(item) | StateChange::DisableItem(item) => {
                let idx = h.find(item).ok_or_else(|| unknown_item(handler, item))?;
                let policy = change.item_policy();
                if h.slot(idx).policies.contains(policy) {
                    return Err(denied(Denied::ItemPolicy {
                        item: item.clone(),
                        policy,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Makes a state change after [`Engine::check_state_change`] allowed it. Turning a
    /// handler or item off cancels what it has pending.
    pub fn apply_state_change(
        &mut self,
        handler: &HandlerId,
        change: &StateChange,
    ) -> Result<Changed, Error> {
        self.check_state_change(handler, change)?;
        let key = self.key(handler)?;
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let (field, on) = match change {
            StateChange::Activate => (&mut h.active, true),
            StateChange::Deactivate => (&mut h.active, false),
            StateChange::Enable => (&mut h.enabled, true),
            StateChange::Disable => (&mut h.enabled, false),
            StateChange::EnableItem(item) | StateChange::DisableItem(item) => {
                let idx = h.find(item).ok_or_else(|| unknown_item(handler, item))?;
                (
                    &mut h.slot_mut(idx).enabled,
                    matches!(change, StateChange::EnableItem(_)),
                )
            }
        };
        let changed = *field != on;
        *field = on;
        let canceled_pending = match change {
            _ if on => 0,
            StateChange::DisableItem(item) => self.cancel_pending(key, |s| s.id == *item),
            _ => self.cancel_pending(key, |_| true),
        };
        self.schedule(key);
        Ok(Changed {
            changed,
            canceled_pending,
        })
    }

    /// Records whether the handler can reach what it syncs with. Requests accepted while it is
    /// disconnected complete at once as `Disconnected`; what is already queued stays queued.
    pub fn set_handler_connected(
        &mut self,
        id: &HandlerId,
        connected: bool,
    ) -> Result<Changed, Error> {
        let key = self.writable(id)?;
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let changed = h.connected != connected;
        h.connected = connected;
        Ok(Changed {
            changed,
            canceled_pending: 0,
        })
    }

    /// Re-reads a handler's capabilities, policies and items (`update_handler`). Items no
    /// longer listed are removed and items now disabled lose their pending entries: their
    /// waiting requests record `Canceled`. Running sessions finish normally.
    pub fn update_handler(
        &mut self,
        id: &HandlerId,
        capabilities: HandlerCapabilities,
        policies: HandlerPolicies,
        items: Vec<ItemSpec>,
    ) -> Result<Changed, Error> {
        let key = self.writable(id)?;
        check_spec_bits(capabilities, policies, &items)?;
        check_unique_items(id, &items)?;
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let mut changed = h.capabilities != capabilities || h.policies != policies;
        h.capabilities = capabilities;
        h.policies = policies;
        let listed: HashSet<&ItemId> = items.iter().map(|s| &s.id).collect();
        for slot in h.items.iter_mut() {
            if !slot.removed && !listed.contains(&slot.id) {
                slot.removed = true;
                changed = true;
            }
        }
        for spec in &items {
            changed |= upsert(h, spec) != UpdateReason::Changed || slot_differs(h, spec);
            apply_spec(h, spec);
        }
        let limit = self.session_limit(&self.handlers[&key]);
        if let Some(h) = self.handlers.get_mut(&key) {
            h.session_limit = limit;
        }
        let canceled_pending = self.cancel_pending(key, |s| !s.live_and_enabled());
        self.schedule(key);
        Ok(Changed {
            changed,
            canceled_pending,
        })
    }

    /// Adds an item to a handler or changes one (`update_item`); says which.
    pub fn upsert_item(
        &mut self,
        handler: &HandlerId,
        spec: ItemSpec,
    ) -> Result<UpdateReason, Error> {
        let key = self.writable(handler)?;
        check_spec_bits(
            HandlerCapabilities::empty(),
            HandlerPolicies::empty(),
            std::slice::from_ref(&spec),
        )?;
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let reason = upsert(h, &spec);
        apply_spec(h, &spec);
        if !spec.enabled {
            let _ = self.cancel_pending(key, |s| s.id == spec.id);
        }
        Ok(reason)
    }

    /// Removes one item from a handler. Its pending entry is canceled; a running session keeps
    /// it to the end.
    pub fn remove_item(&mut self, handler: &HandlerId, item: &ItemId) -> Result<Changed, Error> {
        let key = self.writable(handler)?;
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let idx = h.find(item).ok_or_else(|| unknown_item(handler, item))?;
        h.slot_mut(idx).removed = true;
        let canceled_pending = self.cancel_pending(key, |s| s.id == *item);
        Ok(Changed {
            changed: true,
            canceled_pending,
        })
    }

    // ----- requests --------------------------------------------------------------------------

    /// Requests a sync of every enabled item of a handler (`StartHandlerSync`). Disabled
    /// items, and items whose policy is `PREVENT_START_SYNC`, are left out; with none left
    /// the request completes at once as `Succeeded` with no items.
    pub fn start_handler_sync(
        &mut self,
        handler: &HandlerId,
        flags: SyncControlFlags,
    ) -> Result<Accepted, Error> {
        self.accept(handler, None, flags, MergeKey::DEFAULT)
    }

    /// Requests a sync of named items of a handler (`StartItemSync`). All-or-nothing: see
    /// SPEC section 4 for the checks, made in this order: shutdown, unknown handler, empty
    /// list, handler policy, handler inactive, handler disabled, then each item in turn
    /// (unknown, `PREVENT_START_SYNC`, disabled). An item named twice is counted once.
    pub fn start_item_sync(
        &mut self,
        handler: &HandlerId,
        items: &[ItemId],
        flags: SyncControlFlags,
    ) -> Result<Accepted, Error> {
        self.accept(handler, Some(items), flags, MergeKey::DEFAULT)
    }

    /// The general start call: a handler sync (`items: None`) or an item sync, whose queued
    /// items merge only with requests of the same [`MergeKey`] and run in sessions of that
    /// key. The legacy invoke API uses a request's cookie as its key; the other start calls
    /// use [`MergeKey::DEFAULT`]. Joining a running session
    /// (`IGNORE_IF_ALREADY_SYNCING`) works across keys: the item is syncing either way.
    pub fn start_sync(
        &mut self,
        handler: &HandlerId,
        items: Option<&[ItemId]>,
        flags: SyncControlFlags,
        key: MergeKey,
    ) -> Result<Accepted, Error> {
        self.accept(handler, items, flags, key)
    }

    /// Requests a sync of everything (`StartSyncAll`): one handler sync per active, enabled
    /// handler without `PREVENT_START_SYNC` that has at least one item to sync, in
    /// registration order.
    pub fn start_sync_all(&mut self, flags: SyncControlFlags) -> Result<Vec<Accepted>, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        SyncControlFlags::from_raw(flags.bits())?;
        let covered: Vec<HandlerId> = self
            .handlers
            .values()
            .filter(|h| {
                !h.removed
                    && h.active
                    && h.enabled
                    && !h.policies.contains(HandlerPolicies::PREVENT_START_SYNC)
                    && h.items.iter().any(startable_by_handler_sync)
            })
            .map(|h| h.id.clone())
            .collect();
        covered
            .iter()
            .map(|id| self.accept(id, None, flags, MergeKey::DEFAULT))
            .collect()
    }

    fn accept(
        &mut self,
        handler: &HandlerId,
        named: Option<&[ItemId]>,
        flags: SyncControlFlags,
        merge: MergeKey,
    ) -> Result<Accepted, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        let key = self.key(handler)?;
        // Typed flags can still carry unknown bits (`from_bits_retain`): refuse them too.
        SyncControlFlags::from_raw(flags.bits())?;
        let mut items = std::mem::take(&mut self.scratch.0);
        items.clear();
        let h = &self.handlers[&key];
        if let Err(e) = validate_start(handler, h, named, &mut items) {
            self.scratch.0 = items;
            return Err(e);
        }

        let request = RequestId(self.next_request);
        self.next_request += 1;
        let mut placed: SmallVec<[RequestItem; 1]> = SmallVec::new();
        let mut dispositions: SmallVec<[Disposition; 8]> = SmallVec::new();
        // Reserving is not free even when it has nothing to do: most requests fit inline.
        if items.len() > placed.inline_size() {
            placed.reserve_exact(items.len());
        }
        if items.len() > dispositions.inline_size() {
            dispositions.reserve_exact(items.len());
        }
        let h = self.handlers.get_mut(&key).ok_or(Error::ShutDown)?;
        let join = flags.contains(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
        // Disconnected: every item settles at once, and the status says so even with none.
        let disconnected = !h.connected;
        let mut remaining = 0;
        for &idx in &items {
            let slot = &mut h.items[idx as usize];
            // A repeat within this request: counted once.
            if slot.last_request == request.0 {
                continue;
            }
            slot.last_request = request.0;
            if disconnected {
                placed.push(RequestItem {
                    item: idx,
                    outcome: Some(Outcome::Disconnected),
                    prev: Waiter::NONE,
                });
                dispositions.push(Disposition::Settled(Outcome::Disconnected));
                continue;
            }
            let me = Waiter {
                request,
                pos: placed.len() as u32,
            };
            let (disposition, prev) = place(h, &mut self.sessions, idx, me, join, &merge);
            placed.push(RequestItem {
                item: idx,
                outcome: None,
                prev,
            });
            remaining += 1;
            dispositions.push(disposition);
        }
        let requested = named.map_or(items.len(), <[ItemId]>::len);
        let duplicates = requested - placed.len();
        let req = Request {
            handler_key: key,
            key: merge,
            items: placed,
            remaining,
            counts: Counts::default(),
            disconnected,
        };
        self.scratch.0 = items;
        let completed = remaining == 0;
        if self.requests.insert(request, req).is_err() {
            debug_assert!(false, "request IDs are issued in increasing order");
        }
        if completed {
            self.complete(request);
        } else {
            self.schedule_handler(key);
        }
        Ok(Accepted {
            request,
            handler: handler.clone(),
            dispositions,
            duplicates,
            completed,
        })
    }

    /// Withdraws one request's interest (a Rust addition, SPEC section 7). Items other
    /// requests still wait for keep going; items nobody else wants leave the pending set, or
    /// get a `CancelItem` if running. The request completes now: items that already reached
    /// a terminal state keep it, every other item is `Canceled`.
    pub fn cancel_request(&mut self, request: RequestId) -> Result<Withdrawn, Error> {
        if request.0 == 0 || request.0 >= self.next_request {
            return Err(Error::UnknownRequest(request));
        }
        let Some(req) = self.requests.get(&request) else {
            return Ok(Withdrawn::AlreadyComplete);
        };
        let (key, merge) = (req.handler_key, req.key.clone());
        let open: Vec<(u32, ItemIdx)> = req
            .items
            .iter()
            .enumerate()
            .filter(|(_, ri)| ri.outcome.is_none())
            .map(|(pos, ri)| (pos as u32, ri.item))
            .collect();
        let mut settled = Vec::with_capacity(open.len());
        // The running sessions the request leaves, each credited once for its handler-wide
        // counts.
        let mut credited: SmallVec<[SessionId; 1]> = SmallVec::new();
        let mut credit = Counts::default();
        if let Some(h) = self.handlers.get_mut(&key) {
            for (pos, idx) in open {
                let me = Waiter { request, pos };
                let mut outcome = Outcome::Canceled;
                let was_pending = if merge.is_default() {
                    withdraw_default(h, idx, me, &mut self.requests)
                } else {
                    withdraw_keyed(h, &merge, idx, me, &mut self.requests)
                };
                if !was_pending
                    && let Some((s, spos)) = h.items[idx as usize].running
                    && let Some(session) = self.sessions.get_mut(&s)
                {
                    let cancel_all = session.cancel_all;
                    let sitem = &mut session.items[spos as usize];
                    if unlink(&mut sitem.list, me, &mut self.requests) {
                        // Leaving the session: what it counted so far is the request's.
                        credit.add(sitem.counts);
                        if !credited.contains(&s) {
                            credited.push(s);
                            credit.add(session.counts);
                        }
                        outcome = sitem.terminal.unwrap_or(Outcome::Canceled);
                        // Nobody else wants it: ask the session to stop it.
                        if sitem.list.is_empty()
                            && sitem.terminal.is_none()
                            && !sitem.cancel
                            && !cancel_all
                        {
                            sitem.cancel = true;
                            self.actions.push_back(Action::Cancel {
                                session: s,
                                request: CancelRequest::CancelItem,
                                item: Some(h.items[idx as usize].id.clone()),
                            });
                        }
                    }
                }
                settled.push((pos, outcome));
            }
        }
        if let Some(req) = self.requests.get_mut(&request) {
            for (pos, outcome) in settled {
                req.items[pos as usize].outcome = Some(outcome);
            }
            req.remaining = 0;
            req.counts.add(credit);
        }
        self.complete(request);
        Ok(Withdrawn::Withdrawn)
    }

    // ----- stopping --------------------------------------------------------------------------

    /// Stops a handler's syncs (`StopHandlerSync`): its pending items leave the queue
    /// (`Canceled`), its running sessions get `CancelAll`. Items with the item policy
    /// `PREVENT_STOP_SYNC` are left alone (a session holding one gets `CancelItem` for each
    /// other item instead); the handler policy `PREVENT_STOP_SYNC` refuses the call.
    pub fn stop_handler_sync(&mut self, handler: &HandlerId) -> Result<Stopped, Error> {
        let (key, h) = self.live(handler)?;
        if h.policies.contains(HandlerPolicies::PREVENT_STOP_SYNC) {
            return Err(denied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_STOP_SYNC,
            )));
        }
        Ok(self.stop(key, None))
    }

    /// Stops named items (`StopItemSync`). All-or-nothing: an unknown item is
    /// [`Error::UnknownItem`]; the handler's or any named item's `PREVENT_STOP_SYNC` refuses
    /// the whole call. Items neither pending nor running are left as they are.
    pub fn stop_item_sync(
        &mut self,
        handler: &HandlerId,
        items: &[ItemId],
    ) -> Result<Stopped, Error> {
        let (key, h) = self.live(handler)?;
        if items.is_empty() {
            return Err(Error::EmptyItemList);
        }
        if h.policies.contains(HandlerPolicies::PREVENT_STOP_SYNC) {
            return Err(denied(Denied::HandlerPolicy(
                HandlerPolicies::PREVENT_STOP_SYNC,
            )));
        }
        let mut named = Vec::with_capacity(items.len());
        for id in items {
            let idx = h.find(id).ok_or_else(|| unknown_item(handler, id))?;
            if h.slot(idx)
                .policies
                .contains(ItemPolicies::PREVENT_STOP_SYNC)
            {
                return Err(denied(Denied::ItemPolicy {
                    item: id.clone(),
                    policy: ItemPolicies::PREVENT_STOP_SYNC,
                }));
            }
            named.push(idx);
        }
        named.sort_unstable();
        Ok(self.stop(key, Some(&named)))
    }

    /// Stops everything that may be stopped (`StopSyncAll`): every handler without
    /// `PREVENT_STOP_SYNC`, as [`Engine::stop_handler_sync`] does. Never fails.
    pub fn stop_sync_all(&mut self) -> Stopped {
        let keys: Vec<u64> = self
            .handlers
            .iter()
            .filter(|(_, h)| !h.removed && !h.policies.contains(HandlerPolicies::PREVENT_STOP_SYNC))
            .map(|(k, _)| k)
            .collect();
        let mut total = Stopped::default();
        for key in keys {
            let s = self.stop(key, None);
            total.canceled_pending += s.canceled_pending;
            total.cancel_requests += s.cancel_requests;
        }
        total
    }

    /// Stops the items of `named` (sorted), or all stoppable items of the handler.
    fn stop(&mut self, key: u64, named: Option<&[ItemIdx]>) -> Stopped {
        let Some(h) = self.handlers.get(&key) else {
            return Stopped::default();
        };
        let stoppable = |idx: ItemIdx, slot: &ItemSlot| match named {
            Some(named) => named.binary_search(&idx).is_ok(),
            None => !slot.policies.contains(ItemPolicies::PREVENT_STOP_SYNC),
        };
        let mut cancels = Vec::new();
        for &s in &h.running {
            let Some(session) = self.sessions.get(&s) else {
                continue;
            };
            let hit: Vec<usize> = session
                .items
                .iter()
                .enumerate()
                .filter(|(_, si)| stoppable(si.item, h.slot(si.item)))
                .map(|(pos, _)| pos)
                .collect();
            if named.is_none() && hit.len() == session.items.len() {
                if !session.cancel_all {
                    cancels.push((s, None));
                }
            } else {
                cancels.extend(
                    hit.into_iter()
                        .filter(|&pos| {
                            let si = &session.items[pos];
                            !session.cancel_all && !si.cancel && si.terminal.is_none()
                        })
                        .map(|pos| (s, Some(pos))),
                );
            }
        }
        let cancel_requests = cancels.len();
        for (s, pos) in cancels {
            self.request_cancel(s, pos);
        }
        let canceled_pending = match named {
            Some(named) => self.cancel_pending_items(key, named),
            None => self.cancel_pending(key, |slot| {
                !slot.policies.contains(ItemPolicies::PREVENT_STOP_SYNC)
            }),
        };
        Stopped {
            canceled_pending,
            cancel_requests,
        }
    }

    fn request_cancel(&mut self, s: SessionId, pos: Option<usize>) {
        let Some(session) = self.sessions.get_mut(&s) else {
            return;
        };
        let (request, item) = match pos {
            None => {
                session.cancel_all = true;
                (CancelRequest::CancelAll, None)
            }
            Some(pos) => {
                session.items[pos].cancel = true;
                let idx = session.items[pos].item;
                let id = self
                    .handlers
                    .get(&session.handler_key)
                    .map(|h| h.slot(idx).id.clone());
                (CancelRequest::CancelItem, id)
            }
        };
        self.actions.push_back(Action::Cancel {
            session: s,
            request,
            item,
        });
    }

    /// Stops accepting requests and state changes, cancels everything pending, and sends
    /// `CancelAll` to every running session. Session inputs keep working so the sessions can
    /// end; once they have, every result has been delivered.
    pub fn shutdown(&mut self) -> Stopped {
        self.shut_down = true;
        let keys: Vec<u64> = self.handlers.keys().collect();
        let canceled_pending = keys
            .into_iter()
            .map(|k| self.cancel_pending(k, |_| true))
            .sum();
        let running: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.cancel_all)
            .map(|(id, _)| *id)
            .collect();
        let cancel_requests = running.len();
        for s in running {
            self.request_cancel(s, None);
        }
        Stopped {
            canceled_pending,
            cancel_requests,
        }
    }

    // ----- sessions --------------------------------------------------------------------------

    fn session(&self, id: SessionId) -> Result<&Session, Error> {
        self.sessions.get(&id).ok_or(Error::UnknownSession(id))
    }

    /// The index in session `id` of an item it holds.
    fn position(&self, id: SessionId, item: &ItemId) -> Result<usize, Error> {
        let session = self.session(id)?;
        let h = &self.handlers[&session.handler_key];
        h.index
            .get(item)
            .and_then(|&idx| match h.slot(idx).running {
                Some((s, pos)) if s == id => Some(pos as usize),
                _ => None,
            })
            .ok_or_else(|| Error::ItemNotInSession(item.clone()))
    }

    /// Records that the shell started running the session. Idempotent.
    pub fn session_started(&mut self, id: SessionId) -> Result<(), Error> {
        self.sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?
            .started = true;
        Ok(())
    }

    /// A progress report for one item (`ReportProgress`). Returns the cancel request pending
    /// for it. Texts over `MAX_SYNCMGR_PROGRESSTEXT` and items not in the session are
    /// refused. **Terminal rule:** after `Succeeded`, `Failed`, `Canceled` or `Disconnected`,
    /// only `Failed` is accepted; anything else is [`Denied::TerminalState`] and marks the
    /// item `Failed`. Steps are the shell's business; the engine keeps only the status.
    pub fn report_progress(
        &mut self,
        id: SessionId,
        item: &ItemId,
        status: ProgressStatus,
        text: &str,
    ) -> Result<ProgressAck, Error> {
        check_text(text, TextKind::Progress, MAX_SYNCMGR_PROGRESSTEXT)?;
        let pos = self.position(id, item)?;
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let si = &mut session.items[pos];
        if let Some(reached) = si.terminal {
            si.terminal = Some(Outcome::Failed);
            si.last = Some(ProgressStatus::Failed);
            if status != ProgressStatus::Failed {
                return Err(denied(Denied::TerminalState {
                    item: item.clone(),
                    reached,
                    reported: status,
                }));
            }
        } else {
            si.last = Some(status);
            si.terminal = Outcome::from_status(status);
        }
        let terminal = session.items[pos].terminal.is_some();
        Ok(ProgressAck {
            cancel: session.cancel_for(pos),
            terminal,
        })
    }

    /// Checks a handler-wide progress text (`SetHandlerProgressText`) and returns the
    /// session's cancel request: `CancelAll` or `None`.
    pub fn set_handler_progress_text(
        &mut self,
        id: SessionId,
        text: &str,
    ) -> Result<CancelRequest, Error> {
        check_text(text, TextKind::Progress, MAX_SYNCMGR_PROGRESSTEXT)?;
        Ok(if self.session(id)?.cancel_all {
            CancelRequest::CancelAll
        } else {
            CancelRequest::None
        })
    }

    /// Whether the session may go on with an item (`CanContinue`), or with anything at all
    /// for `None`: false once a cancel for it, or for the whole session, was requested.
    pub fn can_continue(&self, id: SessionId, item: Option<&ItemId>) -> Result<bool, Error> {
        let session = self.session(id)?;
        match item {
            None => Ok(!session.cancel_all),
            Some(item) => {
                let pos = self.position(id, item)?;
                Ok(session.cancel_for(pos) == CancelRequest::None)
            }
        }
    }

    /// Records an event reported by a session. An `Error`-level event counts towards the
    /// `errors` of every request the session serves for that item, or of every request the
    /// session serves when `item` is `None`: all of them, including those that join the item
    /// or are pulled into the session after the event, because a request that shares a run
    /// shares its result. The counts are credited when a request leaves the session (it
    /// ends, or the request is withdrawn), so this costs O(1) however many requests wait.
    /// An item of the handler that is not in the session counts for no request; an item
    /// the handler does not own is refused.
    pub fn report_event(
        &mut self,
        id: SessionId,
        item: Option<&ItemId>,
        level: EventLevel,
    ) -> Result<(), Error> {
        let counts = self.event_counts(id, item)?;
        if level == EventLevel::Error
            && let Some(counts) = counts
        {
            counts.errors += 1;
        }
        Ok(())
    }

    /// Records a conflict reported by a session, counted like an `Error` event into the
    /// `conflicts` of the requests it concerns.
    pub fn report_conflict(&mut self, id: SessionId, item: Option<&ItemId>) -> Result<(), Error> {
        if let Some(counts) = self.event_counts(id, item)? {
            counts.conflicts += 1;
        }
        Ok(())
    }

    /// The counts an event for `item` (or the whole handler) goes into, if any.
    fn event_counts(
        &mut self,
        id: SessionId,
        item: Option<&ItemId>,
    ) -> Result<Option<&mut Counts>, Error> {
        let Some(item) = item else {
            let session = self
                .sessions
                .get_mut(&id)
                .ok_or(Error::UnknownSession(id))?;
            return Ok(Some(&mut session.counts));
        };
        // An item the session holds counts even if an update removed it meanwhile; any other
        // item must still belong to the handler.
        match self.position(id, item) {
            Ok(pos) => {
                let session = self
                    .sessions
                    .get_mut(&id)
                    .ok_or(Error::UnknownSession(id))?;
                Ok(Some(&mut session.items[pos].counts))
            }
            Err(_) => {
                let session = self.session(id)?;
                let h = &self.handlers[&session.handler_key];
                match h.find(item) {
                    None => Err(unknown_item(&h.id, item)),
                    Some(_) => Ok(None),
                }
            }
        }
    }

    /// Marks the session as started by hand (`ReportManualSync`).
    pub fn report_manual_sync(&mut self, id: SessionId) -> Result<(), Error> {
        self.sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?
            .manual = true;
        Ok(())
    }

    /// What the session's handler has pending (`QueryForAdditionalItems`).
    pub fn query_for_additional_items(&self, id: SessionId) -> Result<AdditionalItems, Error> {
        let session = self.session(id)?;
        let h = &self.handlers[&session.handler_key];
        let mut out = AdditionalItems::default();
        let mut seen = HashSet::new();
        // Only the session's own merge key: a legacy session never takes another cookie's
        // items, and a Sync Center session never takes a legacy one's.
        let queue = if session.key.is_default() {
            Some(&h.pending)
        } else {
            h.keyed
                .iter()
                .find(|k| k.key == session.key)
                .map(|k| k.queue())
        };
        for (_, entry) in queue.into_iter().flat_map(PendingQueue::iter) {
            let slot = h.slot(entry.item);
            if slot.running.is_some() {
                continue;
            }
            out.items.push(slot.id.clone());
            let list = if session.key.is_default() {
                &slot.waiting
            } else {
                &entry.list
            };
            out.requests.extend(
                waiters_of(list, &self.requests)
                    .into_iter()
                    .map(|w| w.request)
                    .filter(|r| seen.insert(*r)),
            );
        }
        out.requests.sort_unstable();
        Ok(out)
    }

    /// Pulls a pending item into the running session (`AddItemToSession`): the requests
    /// waiting on it take its outcome from this session. Returns how many requests that is.
    /// A session that was asked to cancel everything may still pull items; like its other
    /// items they end `Canceled` unless the handler reports otherwise.
    pub fn add_item_to_session(&mut self, id: SessionId, item: &ItemId) -> Result<usize, Error> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let h = self
            .handlers
            .get_mut(&session.handler_key)
            .ok_or(Error::UnknownSession(id))?;
        let idx = h.find(item).ok_or_else(|| unknown_item(&h.id, item))?;
        let slot = &mut h.items[idx as usize];
        match slot.running {
            Some((s, _)) if s == id => return Err(Error::ItemAlreadyInSession(item.clone())),
            Some(_) => return Err(Error::ItemNotPending(item.clone())),
            None => {}
        }
        let list = if session.key.is_default() {
            let _ = h
                .pending
                .remove(slot.pending)
                .ok_or_else(|| Error::ItemNotPending(item.clone()))?;
            slot.pending = NOT_PENDING;
            h.startable -= 1;
            slot.waiting.take()
        } else {
            let at = h
                .keyed
                .iter()
                .position(|k| k.key == session.key)
                .ok_or_else(|| Error::ItemNotPending(item.clone()))?;
            let keyed = &mut h.keyed[at];
            let entry = keyed
                .find(idx)
                .and_then(|e| keyed.remove(e))
                .ok_or_else(|| Error::ItemNotPending(item.clone()))?;
            if keyed.is_empty() {
                h.keyed.remove(at);
            }
            // Its default-key entry, if any, now waits for this session to end.
            if slot.pending != NOT_PENDING {
                h.startable -= 1;
            }
            entry.list
        };
        slot.running = Some((id, session.items.len() as u32));
        let served = list.len as usize;
        session.items.push(SessionItem::new(idx, list));
        Ok(served)
    }

    /// Proposes an item discovered during the sync (`ProposeItem`). It is not an item of the
    /// handler until committed. An ID the handler already has, or one already proposed, is
    /// [`Error::ItemExists`].
    pub fn propose_item(&mut self, id: SessionId, spec: ItemSpec) -> Result<(), Error> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let h = &self.handlers[&session.handler_key];
        check_spec_bits(
            HandlerCapabilities::empty(),
            HandlerPolicies::empty(),
            std::slice::from_ref(&spec),
        )?;
        if id_taken(h, &spec.id) || session.proposed.iter().any(|p| p.id == spec.id) {
            return Err(Error::ItemExists {
                handler: h.id.clone(),
                item: spec.id,
            });
        }
        session.proposed.push(spec);
        Ok(())
    }

    /// Commits a proposed item (`CommitItem`): it becomes an item of the handler and part of
    /// this session. An ID never proposed in this session is [`Error::ItemNotProposed`].
    pub fn commit_item(&mut self, id: SessionId, item: &ItemId) -> Result<(), Error> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(Error::UnknownSession(id))?;
        let at = session
            .proposed
            .iter()
            .position(|p| p.id == *item)
            .ok_or_else(|| Error::ItemNotProposed(item.clone()))?;
        let h = self
            .handlers
            .get_mut(&session.handler_key)
            .ok_or(Error::UnknownSession(id))?;
        if id_taken(h, item) {
            return Err(Error::ItemExists {
                handler: h.id.clone(),
                item: item.clone(),
            });
        }
        let spec = session.proposed.remove(at);
        let _ = upsert(h, &spec);
        apply_spec(h, &spec);
        let idx = h.index[item];
        h.slot_mut(idx).running = Some((id, session.items.len() as u32));
        session
            .items
            .push(SessionItem::new(idx, WaitList::default()));
        Ok(())
    }

    /// Ends a session (`synchronize` returned, failed or was abandoned). Every item without a
    /// terminal report gets one: `Canceled` if a cancel was requested for it, else `Failed`.
    /// Requests whose items all have outcomes get their results; then the handler may start
    /// its next session.
    pub fn session_finished(
        &mut self,
        id: SessionId,
        _end: SessionEnd,
    ) -> Result<SessionEnded, Error> {
        let session = self.sessions.remove(&id).ok_or(Error::UnknownSession(id))?;
        let key = session.handler_key;
        let mut outcomes = Vec::with_capacity(session.items.len());
        let mut settled = Vec::with_capacity(session.items.len());
        if let Some(h) = self.handlers.get_mut(&key) {
            for si in session.items {
                let outcome = si.terminal.unwrap_or(if session.cancel_all || si.cancel {
                    Outcome::Canceled
                } else {
                    Outcome::Failed
                });
                let slot = &mut h.items[si.item as usize];
                slot.running = None;
                if slot.pending != NOT_PENDING {
                    h.startable += 1;
                }
                outcomes.push((slot.id.clone(), outcome));
                // Walk every list before settling any: settling may complete a request.
                settled.push((waiters_of(&si.list, &self.requests), outcome, si.counts));
            }
            h.running.retain(|s| *s != id);
        }
        // Every request the session served takes what it counted, before any completes.
        credit_session(&mut self.requests, session.counts, &settled);
        for (waiters, outcome, _) in settled {
            self.settle(&waiters, outcome);
        }
        self.drop_if_retired(key);
        self.schedule(key);
        Ok(SessionEnded {
            session: id,
            handler: session.handler,
            outcomes,
        })
    }

    // ----- internals -------------------------------------------------------------------------

    /// Starts sessions while the global limit allows, oldest waiting handler first, after a
    /// change to handler `key` (a state change, an update, a removal, or the end of one of
    /// its sessions). Only `key` and the handlers already waiting for a slot can start now:
    /// every other handler was as far as it could go before the change. Costs O(waiting
    /// handlers) per start, however many handlers are registered.
    fn schedule(&mut self, key: u64) {
        if self.shut_down {
            return;
        }
        self.waiting_for_slot.insert(key);
        while self.sessions.len() < self.config.max_sessions {
            let handlers = &self.handlers;
            self.waiting_for_slot
                .retain(|k| handlers.get(k).is_some_and(Handler::can_start));
            // Several handlers compete for the slot: the one whose oldest waiting request
            // is oldest wins (ties: earlier registration). Withdrawn requests do not count.
            let next = match self.waiting_for_slot.len() {
                0 => None,
                1 => self.waiting_for_slot.first().copied(),
                _ => self
                    .waiting_for_slot
                    .iter()
                    .filter_map(|&k| Some((handlers.get(&k)?.oldest_request(), k)))
                    .min()
                    .map(|(_, k)| k),
            };
            match next {
                Some(key) => self.start_session(key),
                None => return,
            }
        }
    }

    /// [`Engine::schedule`] after a change that can only have made handler `key` ready (a
    /// request for it was queued): every other handler was already as far as it could go, so
    /// there is nobody to rank against and no need to look at them. If the global limit
    /// keeps it from starting, it waits for a slot with the others.
    fn schedule_handler(&mut self, key: u64) {
        if self.shut_down {
            return;
        }
        loop {
            match self.handlers.get(&key) {
                Some(h) if h.can_start() => {
                    if self.sessions.len() < self.config.max_sessions {
                        self.start_session(key);
                    } else {
                        self.waiting_for_slot.insert(key);
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    fn start_session(&mut self, key: u64) {
        let Some(h) = self.handlers.get_mut(&key) else {
            return;
        };
        let id = SessionId(self.next_session);
        self.next_session += 1;
        // The merge key whose oldest waiting request is oldest goes first.
        let keyed = h
            .keyed
            .iter()
            .enumerate()
            .filter(|(_, k)| h.startable_in(k.queue()))
            .map(|(at, k)| (at, Handler::oldest_in(k.queue())))
            .min_by_key(|&(_, oldest)| oldest);
        let keyed = match keyed {
            Some((at, oldest)) if h.startable == 0 || oldest < h.oldest_default() => Some(at),
            _ => None,
        };
        let (merge, taken) = match keyed {
            None => {
                let items = &mut h.items;
                // Items another session holds stay queued for the session after it.
                let taken = h.pending.retain_or_take(|entry, at| {
                    let slot = &mut items[entry.item as usize];
                    if slot.running.is_some() {
                        slot.pending = at;
                        true
                    } else {
                        slot.pending = NOT_PENDING;
                        false
                    }
                });
                h.startable = 0;
                (MergeKey::DEFAULT, taken)
            }
            Some(at) => {
                let items = &h.items;
                let taken = h.keyed[at]
                    .retain_or_take(|entry| items[entry.item as usize].running.is_some());
                let merge = h.keyed[at].key.clone();
                if h.keyed[at].is_empty() {
                    h.keyed.remove(at);
                }
                // The default-key entries of what this session takes now wait for it.
                for entry in &taken {
                    if h.items[entry.item as usize].pending != NOT_PENDING {
                        h.startable -= 1;
                    }
                }
                (merge, taken)
            }
        };
        h.running.push(id);
        let mut session = Session {
            handler: h.id.clone(),
            key: merge.clone(),
            handler_key: key,
            started: false,
            manual: false,
            cancel_all: false,
            items: Vec::with_capacity(taken.len()),
            counts: Counts::default(),
            proposed: Vec::new(),
        };
        let mut ids = Vec::with_capacity(taken.len());
        for entry in taken {
            let slot = &mut h.items[entry.item as usize];
            slot.running = Some((id, session.items.len() as u32));
            ids.push(slot.id.clone());
            // The wait list moves whole: O(1), whoever waits on it.
            let list = if merge.is_default() {
                slot.waiting.take()
            } else {
                entry.list
            };
            session.items.push(SessionItem::new(entry.item, list));
        }
        self.actions.push_back(Action::StartSession {
            session: id,
            handler: h.id.clone(),
            items: ids,
            key: merge,
        });
        self.sessions.insert(id, session);
    }

    /// Removes the pending entries of the handler whose item matches, settling their waiters
    /// as `Canceled`. Returns how many entries went.
    fn cancel_pending(&mut self, key: u64, matches: impl Fn(&ItemSlot) -> bool) -> usize {
        let Some(h) = self.handlers.get(&key) else {
            return 0;
        };
        let mut hit: Vec<ItemIdx> = std::iter::once(&h.pending)
            .chain(h.keyed.iter().map(|k| k.queue()))
            .flat_map(PendingQueue::iter)
            .map(|(_, e)| e.item)
            .filter(|&i| matches(h.slot(i)))
            .collect();
        hit.sort_unstable();
        hit.dedup();
        self.cancel_pending_items(key, &hit)
    }

    /// Removes the pending entries of these items (sorted), of every merge key, settling
    /// their waiters as `Canceled`. Returns how many entries went.
    fn cancel_pending_items(&mut self, key: u64, items: &[ItemIdx]) -> usize {
        let Some(h) = self.handlers.get_mut(&key) else {
            return 0;
        };
        let mut lists = Vec::new();
        for keyed in &mut h.keyed {
            let gone = keyed.retain_or_take(|e| items.binary_search(&e.item).is_err());
            lists.extend(gone.into_iter().map(|e| e.list));
        }
        h.keyed.retain(|k| !k.is_empty());
        for &idx in items {
            let slot = &mut h.items[idx as usize];
            if h.pending.remove(slot.pending).is_some() {
                slot.pending = NOT_PENDING;
                if slot.running.is_none() {
                    h.startable -= 1;
                }
                lists.push(slot.waiting.take());
            }
        }
        let count = lists.len();
        // Walk every list before settling any: settling may complete a request.
        let settled: Vec<Vec<Waiter>> = lists
            .iter()
            .map(|list| waiters_of(list, &self.requests))
            .collect();
        for waiters in settled {
            self.settle(&waiters, Outcome::Canceled);
        }
        count
    }

    /// Records an item's outcome for the requests waiting on it; completes those that are done.
    fn settle(&mut self, waiters: &[Waiter], outcome: Outcome) {
        for w in waiters {
            let Some(req) = self.requests.get_mut(&w.request) else {
                continue;
            };
            let ri = &mut req.items[w.pos as usize];
            if ri.outcome.is_none() {
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
    fn complete(&mut self, request: RequestId) {
        let Some(req) = self.requests.remove(&request) else {
            return;
        };
        let Some(h) = self.handlers.get(&req.handler_key) else {
            debug_assert!(false, "an open request outlived its handler record");
            return;
        };
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
        }));
    }

    /// Forgets a removed handler once its last session ended.
    fn drop_if_retired(&mut self, key: u64) {
        if self
            .handlers
            .get(&key)
            .is_some_and(|h| h.removed && h.running.is_empty())
        {
            self.handlers.remove(&key);
        }
    }
}

/// Puts one item of a new request where it goes: onto the running session's item (a join),
/// or onto the pending entry of its merge key, made if there is none. Returns what became of
/// it and the link its `RequestItem::prev` must hold.
#[inline]
fn place(
    h: &mut Handler,
    sessions: &mut BTreeMap<SessionId, Session>,
    idx: ItemIdx,
    me: Waiter,
    join: bool,
    merge: &MergeKey,
) -> (Disposition, Waiter) {
    let slot = &mut h.items[idx as usize];
    if join
        && let Some((s, pos)) = slot.running
        && let Some(session) = sessions.get_mut(&s)
        && session.joinable(pos as usize)
    {
        return (
            Disposition::Joined(s),
            session.items[pos as usize].list.push(me),
        );
    }
    if !merge.is_default() {
        let at = match h.keyed.iter().position(|k| k.key == *merge) {
            Some(at) => at,
            None => {
                h.keyed.push(KeyedQueue::new(merge.clone()));
                h.keyed.len() - 1
            }
        };
        let keyed = &mut h.keyed[at];
        return match keyed.find(idx).and_then(|e| keyed.get_mut(e)) {
            Some(entry) => (Disposition::Merged, entry.list.push(me)),
            None => {
                let mut list = WaitList::default();
                let prev = list.push(me);
                let _ = keyed.push(idx, list);
                (Disposition::Queued, prev)
            }
        };
    }
    if slot.pending != NOT_PENDING {
        return (Disposition::Merged, slot.waiting.push(me));
    }
    slot.pending = h.pending.push(idx, WaitList::default());
    if slot.running.is_none() {
        h.startable += 1;
    }
    (Disposition::Queued, slot.waiting.push(me))
}

/// The items of a start call, validated all-or-nothing, as indices into the handler's table.
/// Writes them to `items` (empty on entry); on an error, what it holds means nothing.
fn validate_start(
    id: &HandlerId,
    h: &Handler,
    named: Option<&[ItemId]>,
    items: &mut Vec<ItemIdx>,
) -> Result<(), Error> {
    if named.is_some_and(<[ItemId]>::is_empty) {
        return Err(Error::EmptyItemList);
    }
    if h.policies.contains(HandlerPolicies::PREVENT_START_SYNC) {
        return Err(denied(Denied::HandlerPolicy(
            HandlerPolicies::PREVENT_START_SYNC,
        )));
    }
    if !h.active {
        return Err(denied(Denied::HandlerInactive));
    }
    if !h.enabled {
        return Err(denied(Denied::HandlerDisabled));
    }
    let Some(named) = named else {
        items.extend(
            (0..h.items.len() as ItemIdx).filter(|&i| startable_by_handler_sync(h.slot(i))),
        );
        return Ok(());
    };
    items.reserve(named.len());
    for item in named {
        let (idx, slot) = h.find_slot(item).ok_or_else(|| unknown_item(id, item))?;
        if slot.policies.contains(ItemPolicies::PREVENT_START_SYNC) {
            return Err(denied(Denied::ItemPolicy {
                item: item.clone(),
                policy: ItemPolicies::PREVENT_START_SYNC,
            }));
        }
        if !slot.enabled {
            return Err(denied(Denied::ItemDisabled(item.clone())));
        }
        items.push(idx);
    }
    Ok(())
}

fn startable_by_handler_sync(slot: &ItemSlot) -> bool {
    slot.live_and_enabled() && !slot.policies.contains(ItemPolicies::PREVENT_START_SYNC)
}

fn unknown_item(handler: &HandlerId, item: &ItemId) -> Error {
    Error::UnknownItem {
        handler: handler.clone(),
        item: item.clone(),
    }
}

/// Refuses flags values built with `from_bits_retain` that carry undefined bits.
fn check_spec_bits(
    capabilities: HandlerCapabilities,
    policies: HandlerPolicies,
    items: &[ItemSpec],
) -> Result<(), Error> {
    HandlerCapabilities::from_raw(capabilities.bits())?;
    HandlerPolicies::from_raw(policies.bits())?;
    for item in items {
        ItemCapabilities::from_raw(item.capabilities.bits())?;
        ItemPolicies::from_raw(item.policies.bits())?;
    }
    Ok(())
}

fn check_unique_items(handler: &HandlerId, items: &[ItemSpec]) -> Result<(), Error> {
    let mut seen = HashSet::with_capacity(items.len());
    for spec in items {
        if !seen.insert(&spec.id) {
            return Err(Error::ItemExists {
                handler: handler.clone(),
                item: spec.id.clone(),
            });
        }
    }
    Ok(())
}

/// Whether a discovered item may not take this ID: a live item has it, or a removed one that
/// a running session still holds.
fn id_taken(h: &Handler, id: &ItemId) -> bool {
    h.index
        .get(id)
        .is_some_and(|&i| !h.slot(i).removed || h.slot(i).running.is_some())
}

/// Makes sure the handler has a live slot for the item; says whether it was added or known.
fn upsert(h: &mut Handler, spec: &ItemSpec) -> UpdateReason {
    match h.index.get(&spec.id) {
        Some(&idx) if !h.slot(idx).removed => UpdateReason::Changed,
        Some(&idx) => {
            h.slot_mut(idx).removed = false;
            UpdateReason::Added
        }
        None => {
            let idx = h.items.len() as ItemIdx;
            h.index.insert(spec.id.clone(), idx);
            h.items.push(ItemSlot::new(
                spec.id.clone(),
                spec.capabilities,
                spec.policies,
                spec.enabled,
            ));
            UpdateReason::Added
        }
    }
}

fn slot_differs(h: &Handler, spec: &ItemSpec) -> bool {
    h.index.get(&spec.id).is_some_and(|&i| {
        let s = h.slot(i);
        s.capabilities != spec.capabilities
            || s.policies != spec.policies
            || s.enabled != spec.enabled
    })
}

fn apply_spec(h: &mut Handler, spec: &ItemSpec) {
    if let Some(&idx) = h.index.get(&spec.id) {
        let slot = h.slot_mut(idx);
        slot.capabilities = spec.capabilities;
        slot.policies = spec.policies;
        slot.enabled = spec.enabled;
    }
}

/// Takes `me` off the item's default-key wait list; an entry nobody waits on any more goes.
/// Says whether the request was waiting there.
fn withdraw_default(
    h: &mut Handler,
    idx: ItemIdx,
    me: Waiter,
    requests: &mut RequestTable,
) -> bool {
    let slot = &mut h.items[idx as usize];
    if slot.pending == NOT_PENDING || !unlink(&mut slot.waiting, me, requests) {
        return false;
    }
    if slot.waiting.is_empty() {
        let _ = h.pending.remove(slot.pending);
        slot.pending = NOT_PENDING;
        if slot.running.is_none() {
            h.startable -= 1;
        }
    }
    true
}

/// [`withdraw_default`] for a request of another merge key; a key's queue goes when empty.
fn withdraw_keyed(
    h: &mut Handler,
    merge: &MergeKey,
    idx: ItemIdx,
    me: Waiter,
    requests: &mut RequestTable,
) -> bool {
    let Some(k) = h.keyed.iter().position(|q| q.key == *merge) else {
        return false;
    };
    let keyed = &mut h.keyed[k];
    let Some(at) = keyed.find(idx) else {
        return false;
    };
    let Some(entry) = keyed.get_mut(at) else {
        return false;
    };
    if !unlink(&mut entry.list, me, requests) {
        return false;
    }
    if entry.list.is_empty() {
        let _ = keyed.remove(at);
        if keyed.is_empty() {
            h.keyed.remove(k);
        }
    }
    true
}

/// The link from a waiter to the one before it.
fn prev_of(requests: &RequestTable, w: Waiter) -> Option<Waiter> {
    requests
        .get(&w.request)
        .and_then(|r| r.items.get(w.pos as usize))
        .map(|ri| ri.prev)
}

/// Every waiter of a list, oldest first (the order results then come out in), following the
/// links through the requests.
/// Credits the requests an ending session served with what it counted: each request its
/// items' counts for the items it waited on there, and the handler-wide counts once. The
/// once needs a deduplicated list of requests, built only when there is something to credit.
fn credit_session(
    requests: &mut RequestTable,
    handler_wide: Counts,
    items: &[(Vec<Waiter>, Outcome, Counts)],
) {
    for (waiters, _, counts) in items {
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
        .flat_map(|(waiters, _, _)| waiters.iter().map(|w| w.request))
        .collect();
    served.sort_unstable();
    served.dedup();
    for r in served {
        if let Some(req) = requests.get_mut(&r) {
            req.counts.add(handler_wide);
        }
    }
}

fn waiters_of(list: &WaitList, requests: &RequestTable) -> Vec<Waiter> {
    let mut out = Vec::with_capacity(list.len as usize);
    let mut at = list.tail;
    while !at.is_none() {
        out.push(at);
        match prev_of(requests, at) {
            Some(prev) => at = prev,
            None => {
                // A waiter in a list always has its open request (ARCHITECTURE); stop
                // rather than loop if that ever breaks.
                debug_assert!(false, "a wait list links to a request that is gone");
                break;
            }
        }
    }
    out.reverse();
    out
}

/// Takes `target` out of `list`, mending the link of the waiter after it. Walks from the
/// tail: O(list length), paid only by a withdrawal. Says whether `target` was there.
fn unlink(list: &mut WaitList, target: Waiter, requests: &mut RequestTable) -> bool {
    let Some(before) = prev_of(requests, target) else {
        return false;
    };
    let mut after = Waiter::NONE;
    let mut at = list.tail;
    while at != target {
        if at.is_none() {
            return false;
        }
        after = at;
        match prev_of(requests, at) {
            Some(prev) => at = prev,
            None => return false,
        }
    }
    if after.is_none() {
        list.tail = before;
    } else if let Some(ri) = requests
        .get_mut(&after.request)
        .and_then(|r| r.items.get_mut(after.pos as usize))
    {
        ri.prev = before;
    }
    if list.head == target {
        list.head = after;
    }
    list.len -= 1;
    if let Some(ri) = requests
        .get_mut(&target.request)
        .and_then(|r| r.items.get_mut(target.pos as usize))
    {
        ri.prev = Waiter::NONE;
    }
    true
}

#[cfg(test)]
mod tests;
