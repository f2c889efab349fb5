//! The engine's inputs that carry data (handler and item descriptions) and its outputs: the
//! `#[must_use]` values that name what a transition did, and the [`Action`]s it asks the shell
//! to carry out.

use smallvec::SmallVec;

use super::{MergeKey, RequestId, SessionId};
use crate::flags::{
    CancelRequest, HandlerCapabilities, HandlerPolicies, ItemCapabilities, ItemPolicies,
};
use crate::id::{HandlerId, ItemId};
use crate::result::{Outcome, RequestResult};

/// An item as its handler describes it to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemSpec {
    /// The item's ID, unique within its handler.
    pub id: ItemId,
    /// Its capabilities (`SYNCMGR_ICM_*`).
    pub capabilities: ItemCapabilities,
    /// Its policies (`SYNCMGR_IPM_*`); `PREVENT_START_SYNC`, `PREVENT_STOP_SYNC`,
    /// `PREVENT_ENABLE` and `PREVENT_DISABLE` are enforced.
    pub policies: ItemPolicies,
    /// Whether the item takes part in syncs.
    pub enabled: bool,
}

impl ItemSpec {
    /// An enabled item with no capabilities and no policies.
    pub fn new(id: ItemId) -> ItemSpec {
        ItemSpec {
            id,
            capabilities: ItemCapabilities::empty(),
            policies: ItemPolicies::empty(),
            enabled: true,
        }
    }

    /// The same item, with these policies.
    pub fn with_policies(mut self, policies: ItemPolicies) -> ItemSpec {
        self.policies = policies;
        self
    }

    /// The same item, enabled or not.
    pub fn with_enabled(mut self, enabled: bool) -> ItemSpec {
        self.enabled = enabled;
        self
    }
}

/// A handler as it is registered with the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerSpec {
    /// The handler's ID.
    pub id: HandlerId,
    /// Its capabilities (`SYNCMGR_HCM_*`). `SUPPORTS_CONCURRENT_SESSIONS` lets it run several
    /// sessions at once.
    pub capabilities: HandlerCapabilities,
    /// Its policies (`SYNCMGR_HPM_*`); the `PREVENT_*` ones are enforced.
    pub policies: HandlerPolicies,
    /// Its items, in the order `start_handler_sync` lists them.
    pub items: Vec<ItemSpec>,
    /// Whether the handler is active (Sync Center shows and syncs only active handlers).
    pub active: bool,
    /// Whether the handler is enabled.
    pub enabled: bool,
    /// Whether the handler can reach what it syncs with (`is_connected`). A request for a
    /// disconnected handler completes at once as `Disconnected`.
    pub connected: bool,
    /// How many sessions may run at once when the handler supports concurrent sessions;
    /// `None` takes [`EngineConfig::default_concurrent_sessions`](super::EngineConfig).
    /// Ignored without `SUPPORTS_CONCURRENT_SESSIONS`.
    pub max_concurrent_sessions: Option<usize>,
}

impl HandlerSpec {
    /// An active, enabled, connected handler with no items, capabilities or policies.
    pub fn new(id: HandlerId) -> HandlerSpec {
        HandlerSpec {
            id,
            capabilities: HandlerCapabilities::empty(),
            policies: HandlerPolicies::empty(),
            items: Vec::new(),
            active: true,
            enabled: true,
            connected: true,
            max_concurrent_sessions: None,
        }
    }

    /// The same handler with one more item.
    pub fn item(mut self, item: ItemSpec) -> HandlerSpec {
        self.items.push(item);
        self
    }

    /// The same handler with more enabled items, made from their IDs.
    pub fn items(mut self, ids: impl IntoIterator<Item = ItemId>) -> HandlerSpec {
        self.items.extend(ids.into_iter().map(ItemSpec::new));
        self
    }

    /// The same handler with these capabilities.
    pub fn with_capabilities(mut self, capabilities: HandlerCapabilities) -> HandlerSpec {
        self.capabilities = capabilities;
        self
    }

    /// The same handler with these policies.
    pub fn with_policies(mut self, policies: HandlerPolicies) -> HandlerSpec {
        self.policies = policies;
        self
    }
}

/// What became of one item of an accepted request: it joined a running session, merged into
/// a pending entry, was queued anew, or was settled at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The item was not pending: a new entry was added to the handler's pending set.
    Queued,
    /// The item was already pending: the request waits on the existing entry (dedup).
    Merged,
    /// The request had `IGNORE_IF_ALREADY_SYNCING` and the item was syncing in this session:
    /// the request takes the item's outcome from it.
    Joined(SessionId),
    /// The item was settled at once with this outcome (the handler was disconnected).
    Settled(Outcome),
}

/// What an accepted start call did (it is `#[must_use]` because the manager reports exactly
/// this in its notifications).
#[must_use = "an accepted request says how its items were queued, merged or joined"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The new request's ID; its result arrives later as [`Action::Deliver`].
    pub request: RequestId,
    /// The handler it is for.
    pub handler: HandlerId,
    // Inline for small requests: the merge hot path allocates nothing for them.
    pub(crate) dispositions: SmallVec<[Disposition; 8]>,
    /// How many names in the input were repeats of an earlier one and so counted once.
    pub duplicates: usize,
    /// Whether the request already completed (its result is in the action queue): a
    /// disconnected handler, or a handler sync with no enabled items.
    pub completed: bool,
}

impl Accepted {
    /// One disposition per item of the request, in request order (see
    /// [`Engine::request_items`](super::Engine::request_items)): duplicates in the input are
    /// counted once, so this can be shorter than what was asked for.
    pub fn dispositions(&self) -> &[Disposition] {
        &self.dispositions
    }

    /// How many items got a new pending entry.
    pub fn queued_new(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Queued))
    }

    /// How many items merged into an existing pending entry.
    pub fn merged(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Merged))
    }

    /// How many items joined a running session.
    pub fn joined(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Joined(_)))
    }

    fn count(&self, f: impl Fn(&Disposition) -> bool) -> usize {
        self.dispositions.iter().filter(|d| f(d)).count()
    }
}

/// Something the shell must do, produced by a transition and taken with
/// [`Engine::next_action`](super::Engine::next_action). Actions come out in the order they
/// were decided.
#[must_use = "an action is a decision the shell must carry out"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run `synchronize` for these items of this handler, in this order, as this session.
    StartSession {
        /// The new session.
        session: SessionId,
        /// Its handler.
        handler: HandlerId,
        /// The items, in first-requested order.
        items: Vec<ItemId>,
        /// The merge key of the requests it serves: a legacy session's cookie.
        key: MergeKey,
    },
    /// Tell a running session that a cancel was requested: the handler will see it through
    /// `report_progress` and `can_continue`, which the engine already answers accordingly.
    Cancel {
        /// The session.
        session: SessionId,
        /// `CancelItem` for one item, `CancelAll` for the whole session.
        request: CancelRequest,
        /// The item, for `CancelItem`.
        item: Option<ItemId>,
    },
    /// Hand this result to the request's caller. Each accepted request gets exactly one.
    Deliver(RequestResult),
}

/// What a state change did.
#[must_use = "a state change says whether anything changed and what it canceled"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Whether the state differs from before the call.
    pub changed: bool,
    /// How many pending entries the change removed (their waiting requests record
    /// `Canceled` for those items).
    pub canceled_pending: usize,
}

/// What a stop did.
#[must_use = "a stop says what it removed from the queue and what it asked to cancel"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Pending entries removed (their requests record `Canceled` for them).
    pub canceled_pending: usize,
    /// Cancel requests sent to running sessions (each is also an [`Action::Cancel`]).
    pub cancel_requests: usize,
}

/// What cancelling one request did.
#[must_use = "a cancel says whether the request was still open"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// The request was open: it now completes with `Canceled` for every unfinished item.
    Withdrawn,
    /// The request had already completed; nothing changed.
    AlreadyComplete,
}

/// How a session's `synchronize` ended, as the shell saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// `synchronize` returned normally.
    Returned,
    /// `synchronize` returned an error, panicked, or was abandoned after the grace period.
    /// Items are settled by the same rule as [`SessionEnd::Returned`] (a terminal report
    /// stands; otherwise `Canceled` if a cancel was asked, else `Failed`); the difference is
    /// for notifications.
    Failed,
}

/// What ending a session decided.
#[must_use = "a finished session says each item's final outcome"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnded {
    /// The session.
    pub session: SessionId,
    /// Its handler.
    pub handler: HandlerId,
    /// Every item of the session with its final outcome, in session order.
    pub outcomes: Vec<(ItemId, Outcome)>,
}

/// What a running handler sees of its pending set (`query_for_additional_items`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdditionalItems {
    /// Pending items that this session could take with `add_item_to_session`, oldest first
    /// (items held by another running session are left out).
    pub items: Vec<ItemId>,
    /// The requests waiting on those items, each once, oldest first. The shell maps them to
    /// the context values the callers passed.
    pub requests: Vec<RequestId>,
}

/// What a progress report did.
#[must_use = "a progress report returns the cancel request the handler must honour"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAck {
    /// The cancel request pending for the item or session (`SYNCMGR_CR_*`).
    pub cancel: CancelRequest,
    /// Whether this report moved the item to a terminal state.
    pub terminal: bool,
}

/// A change of a handler's or an item's state that a policy may forbid and a handler with a
/// `QUERY_BEFORE_*` capability is asked about first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StateChange {
    /// Activate the handler (policy `PREVENT_ACTIVATE`, capability `QUERY_BEFORE_ACTIVATE`).
    Activate,
    /// Deactivate the handler (`PREVENT_DEACTIVATE`, `QUERY_BEFORE_DEACTIVATE`).
    Deactivate,
    /// Enable the handler (`PREVENT_ENABLE`, `QUERY_BEFORE_ENABLE`).
    Enable,
    /// Disable the handler (`PREVENT_DISABLE`, `QUERY_BEFORE_DISABLE`).
    Disable,
    /// Enable an item (item policy `PREVENT_ENABLE`, item capability `QUERY_BEFORE_ENABLE`).
    EnableItem(ItemId),
    /// Disable an item (item policy `PREVENT_DISABLE`, item capability `QUERY_BEFORE_DISABLE`).
    DisableItem(ItemId),
}

impl StateChange {
    /// `Activate` or `Deactivate`.
    pub fn activation(active: bool) -> StateChange {
        if active {
            StateChange::Activate
        } else {
            StateChange::Deactivate
        }
    }

    /// `Enable` or `Disable`.
    pub fn enabling(enabled: bool) -> StateChange {
        if enabled {
            StateChange::Enable
        } else {
            StateChange::Disable
        }
    }

    /// `EnableItem` or `DisableItem`.
    pub fn item_enabling(item: ItemId, enabled: bool) -> StateChange {
        if enabled {
            StateChange::EnableItem(item)
        } else {
            StateChange::DisableItem(item)
        }
    }

    /// The handler policy that forbids this change (empty for item changes).
    pub fn handler_policy(&self) -> HandlerPolicies {
        match self {
            StateChange::Activate => HandlerPolicies::PREVENT_ACTIVATE,
            StateChange::Deactivate => HandlerPolicies::PREVENT_DEACTIVATE,
            StateChange::Enable => HandlerPolicies::PREVENT_ENABLE,
            StateChange::Disable => HandlerPolicies::PREVENT_DISABLE,
            StateChange::EnableItem(_) | StateChange::DisableItem(_) => HandlerPolicies::empty(),
        }
    }

    /// The item policy that forbids this change (empty for handler changes).
    pub fn item_policy(&self) -> ItemPolicies {
        match self {
            StateChange::EnableItem(_) => ItemPolicies::PREVENT_ENABLE,
            StateChange::DisableItem(_) => ItemPolicies::PREVENT_DISABLE,
            _ => ItemPolicies::empty(),
        }
    }

    /// The handler capability that asks the handler before this change (empty for item
    /// changes, whose question is [`StateChange::item_query_capability`]).
    pub fn query_capability(&self) -> HandlerCapabilities {
        match self {
            StateChange::Activate => HandlerCapabilities::QUERY_BEFORE_ACTIVATE,
            StateChange::Deactivate => HandlerCapabilities::QUERY_BEFORE_DEACTIVATE,
            StateChange::Enable => HandlerCapabilities::QUERY_BEFORE_ENABLE,
            StateChange::Disable => HandlerCapabilities::QUERY_BEFORE_DISABLE,
            StateChange::EnableItem(_) | StateChange::DisableItem(_) => {
                HandlerCapabilities::empty()
            }
        }
    }

    /// The item capability that asks the handler before this change (empty for handler
    /// changes).
    pub fn item_query_capability(&self) -> ItemCapabilities {
        match self {
            StateChange::EnableItem(_) => ItemCapabilities::QUERY_BEFORE_ENABLE,
            StateChange::DisableItem(_) => ItemCapabilities::QUERY_BEFORE_DISABLE,
            _ => ItemCapabilities::empty(),
        }
    }
}
