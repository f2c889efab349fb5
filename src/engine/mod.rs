//! The pure scheduling engine: every current-versus-queued decision of `syncmgr`.
//!
//! [`Engine`] is a deterministic state machine. It owns the registered handlers (their items,
//! capabilities, policies and state), each handler's pending set, the running sessions with
//! their per-item states, and every open request. Its methods are the inputs of a sync system
//! (a start call, a session's reports and end, a stop, a state change); each returns a `#[must_use]` value naming what happened, and queues the follow-up
//! [`Action`]s (start this session, deliver this result, send this cancel) that the caller
//! takes with [`Engine::next_action`]. It spawns no thread, reads no clock, takes no lock and
//! calls no callback, so the same inputs always give the same actions in the same order.
//! (Inside the crate, the manager's engine also keeps each request's result slot end; see
//! `src/slot.rs` for the one lock that touches.)
//! To drive it by hand in your own tests, see [`testing`].
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
//! let _ = engine.report_progress(session, &inbox, ProgressStatus::Succeeded)?;
//! let _ = engine.session_finished(session, SessionEnd::Returned)?;
//! let Some(Action::Deliver(result)) = engine.next_action() else { panic!() };
//! assert_eq!((result.request, result.status), (first.request, Outcome::Succeeded));
//! let Some(Action::StartSession { items, .. }) = engine.next_action() else { panic!() };
//! assert_eq!(items, [inbox, sent]);
//! # Ok(()) }
//! ```
//!
//! # Decisions beyond Sync Center's documentation
//!
//! The engine follows Sync Center's documented rules. Where they leave a choice open, it does
//! this:
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
//!   it takes the terminal reports made so far. The results a session's end decides are
//!   delivered oldest request first, whatever items they wait on: a caller that takes its
//!   results in the order it asked gets each one as soon as it is out.
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
//!
//! # Time
//!
//! The engine never reads a clock. [`Engine::poll`] tells it the time (and fires the timers
//! due by then); every other input happens at the last time polled, and
//! [`Engine::next_deadline`] says when it next needs a poll, so a shell sleeps exactly until
//! then. Time only moves forward: an older value counts as the last one seen. A handler's
//! [`SyncPolicy`](crate::SyncPolicy) adds debounce, retries, a schedule and triggers; the
//! default policy has none, and with it every decision is the same as without time.
//!
//! Where the timing rules leave a choice open, the engine does this:
//!
//! - **Debounce** holds only entries a request *creates* in the default pending set: the
//!   first one opens the handler's window, and every request that queues or merges into the
//!   default set while it is open moves its `last` time (a merge into ready entries too).
//!   With no window open, a request that only merges into ready entries (waiting for a slot
//!   or for their item's session) opens none and delays nothing. Legacy
//!   invoke requests (a cookie's merge key) are never debounced or retried: the legacy API has
//!   neither.
//! - **Retry** counts attempts per item (a new request for an item in backoff shares its
//!   count) and, in each request's result, per request: the sessions that ran the item while
//!   the request waited. A retried item keeps its place behind nobody: its waiters and any
//!   newer ones wait on one pending entry, oldest first. Items of a removed, inactive or
//!   disabled handler, and items that became disabled, are never retried. A running session
//!   may still pull an item in backoff (`add_item_to_session`): the handler asked for it, so
//!   its backoff ends there, as debounce never stops a pull either.
//! - **Polls pass time in order.** At each instant the windows and backoffs that end all end
//!   first, then the handlers they made ready compete for free slots (oldest waiting request
//!   first), then that instant's ticks make their requests. A policy change that moves a
//!   window's deadline into the past takes effect at the next poll.
//! - **Schedules** start counting when the policy is set (registration or a change of
//!   schedule). A tick issues nothing, and says so ([`Action::TickSkipped`]), while the
//!   previous scheduled request is open; it issues nothing silently when the handler is
//!   inactive, disabled, refuses starts or has no item to sync.
//! - **Engine-made requests** (ticks and triggers) are announced with [`Action::Issued`]
//!   before any other action about them; their results come out as [`Action::Deliver`] like
//!   any other.
//! - **A reconnect** is [`Engine::set_handler_connected`] going from `false` to `true`: it
//!   ends every backoff of the handler's items. Reporting [`Trigger::Connect`](crate::Trigger)
//!   issues requests; it does not change any handler's connectivity.

mod accept;
mod inputs;
mod inspect;
mod outputs;
mod queue;
mod registry;
mod requests;
mod schedule;
mod scratch;
mod session;
mod settle;
mod state;
mod stop;
pub mod testing;
mod timers;
mod timing;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use self::inputs::{HandlerSpec, ItemSpec, RequestOptions, SessionEnd, StateChange};
pub use self::inspect::{HandlerView, RequestView, SessionItemView, SessionView};
pub use self::outputs::{
    Accepted, Action, AdditionalItems, Changed, Disposition, ProgressAck, SessionEnded, Stopped,
    Withdrawn,
};
pub use self::queue::MergeKey;
pub(crate) use self::requests::RequestTable;
use self::scratch::Scratch;
use self::state::{HandlerKey, HandlerTable, Session};
use self::timers::Timers;
use crate::error::{Denied, Error};
use crate::id::{HandlerId, IdMap};
pub use crate::id::{RequestId, SessionId};
use crate::slot::Completion;
use crate::time::Time;

/// Limits of an [`Engine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Sessions that may run at once across all handlers (the global limit). Default 8.
    pub max_sessions: usize,
    /// Sessions that may run at once for one handler with `SUPPORTS_CONCURRENT_SESSIONS`,
    /// unless its [`HandlerSpec::max_concurrent_sessions`] says otherwise. Default 4.
    pub default_concurrent_sessions: usize,
    /// Seeds the deterministic jitter of retries and schedules: the same seed and inputs
    /// give the same times. Default 0.
    pub seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_sessions: 8,
            default_concurrent_sessions: 4,
            seed: 0,
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
    by_id: IdMap<HandlerId, HandlerKey>,
    next_handler: HandlerKey,
    sessions: BTreeMap<SessionId, Session>,
    next_session: u64,
    requests: RequestTable,
    next_request: u64,
    actions: VecDeque<Action>,
    /// The write ends of the requests whose results wait in `actions`, in the same order
    /// (only those that have one: see `Request::end`).
    ends: VecDeque<(RequestId, Completion)>,
    shut_down: bool,
    /// Handlers that could start a session but found every slot under `max_sessions` taken,
    /// by key. A freed slot can only go to one of them (or to the handler whose session
    /// ended), so scheduling looks at these instead of every handler: its cost does not grow
    /// with idle handlers. May hold keys that can no longer start; `schedule` drops them.
    waiting_for_slot: BTreeSet<HandlerKey>,
    /// Buffers kept between calls, so that accepting a request and starting and ending a
    /// session allocate only what they keep or hand out.
    scratch: Scratch,
    /// The last time polled: every input happens then.
    now: Time,
    /// Every deadline the engine waits for.
    timers: Timers,
    /// Handler records whose policy is timed (see [`Engine::keeps_time`]).
    timed_handlers: usize,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            config: EngineConfig::default(),
            handlers: HandlerTable::default(),
            by_id: IdMap::default(),
            next_handler: HandlerKey::FIRST,
            sessions: BTreeMap::new(),
            next_session: 1,
            requests: RequestTable::default(),
            next_request: 1,
            actions: VecDeque::new(),
            ends: VecDeque::new(),
            shut_down: false,
            waiting_for_slot: BTreeSet::new(),
            scratch: Scratch::default(),
            now: Time::ZERO,
            timers: Timers::default(),
            timed_handlers: 0,
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
        if self.ends.is_empty() && self.ends.capacity() > 4096 {
            self.ends = VecDeque::new();
        }
    }

    /// Whether [`Engine::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }
}

#[cfg(test)]
mod tests;
