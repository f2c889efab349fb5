//! The engine's inputs that carry data: how a handler and its items are described
//! ([`HandlerSpec`], [`ItemSpec`]), a state change ([`StateChange`]) and how a session ended
//! ([`SessionEnd`]).

use super::MergeKey;
use crate::cause::Cause;
use crate::flags::{HandlerCapabilities, HandlerPolicies, ItemCapabilities, ItemPolicies};
use crate::id::{HandlerId, ItemId};
use crate::policy::SyncPolicy;

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
#[derive(Clone, Debug, PartialEq)]
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
    /// How its requests are timed (debounce, retry, schedule, triggers). The default has
    /// none of them.
    pub policy: SyncPolicy,
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
            policy: SyncPolicy::default(),
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

    /// The same handler with this sync policy.
    pub fn with_sync_policy(mut self, policy: SyncPolicy) -> HandlerSpec {
        self.policy = policy;
        self
    }
}

/// How one request is made, beyond its items and flags.
///
/// ```
/// use syncmgr::engine::RequestOptions;
/// let now = RequestOptions::default().expedited().without_retry();
/// assert!(now.expedite && now.no_retry);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Which queued requests it may share a session with ([`MergeKey::DEFAULT`] for Sync
    /// Center requests, a cookie for legacy ones).
    pub key: MergeKey,
    /// A person asked for it now ("Sync now"): the handler's whole pending set becomes ready
    /// at once, debounce and backoff notwithstanding.
    pub expedite: bool,
    /// Take each item's first `Failed` as final, even if the handler's policy retries it
    /// (the item still retries for the other requests that wait for it).
    pub no_retry: bool,
}

impl RequestOptions {
    /// The same options, expedited.
    pub fn expedited(mut self) -> RequestOptions {
        self.expedite = true;
        self
    }

    /// The same options, with no retry.
    pub fn without_retry(mut self) -> RequestOptions {
        self.no_retry = true;
        self
    }

    /// Options with this merge key.
    pub fn keyed(key: MergeKey) -> RequestOptions {
        RequestOptions {
            key,
            ..RequestOptions::default()
        }
    }
}

/// How a session's `synchronize` ended, as the shell saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// `synchronize` returned normally.
    Returned,
    /// `synchronize` returned an error, panicked, or was abandoned after the grace period;
    /// the cause says which. Items are settled by the same rule as [`SessionEnd::Returned`]
    /// (a terminal report stands; otherwise `Canceled` if a cancel was asked, else `Failed`),
    /// and each `Failed` item that has no reason of its own takes this cause.
    Failed(Cause),
}

impl SessionEnd {
    /// Why the session failed, if it did.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            SessionEnd::Returned => None,
            SessionEnd::Failed(cause) => Some(cause),
        }
    }
}

/// A change of a handler's or an item's state that a policy may forbid and a handler with a
/// `QUERY_BEFORE_*` capability is asked about first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
