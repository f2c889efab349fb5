//! The handler registry and state changes: registering, removing and updating handlers and
//! items, activating and enabling them, and the policy checks that come first.

use std::collections::HashSet;

use smallvec::SmallVec;

use super::Changed;
use super::Engine;
use super::HandlerSpec;
use super::ItemSpec;
use super::StateChange;
use super::accept::unknown_item;
use super::denied;
use super::queue::ItemIdx;
use super::state::Handler;
use super::state::HandlerKey;
use super::state::ItemSlot;
use crate::error::Denied;
use crate::error::Error;
use crate::flags::HandlerCapabilities;
use crate::flags::HandlerPolicies;
use crate::flags::ItemCapabilities;
use crate::flags::ItemPolicies;
use crate::flags::UpdateReason;
use crate::id::HandlerId;
use crate::id::IdMap;
use crate::id::ItemId;
use crate::policy::SyncPolicy;

impl Engine {
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
        spec.policy.validate()?;
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
            timed: spec.policy != SyncPolicy::default(),
            policy: spec.policy,
            window: None,
            ticker: None,
            scheduled: None,
        };
        handler.session_limit = self.session_limit(&handler);
        for item in spec.items {
            let idx = ItemIdx::of(handler.items.len());
            handler.index.insert(item.id.clone(), idx);
            handler.items.push(ItemSlot::new(
                item.id,
                item.capabilities,
                item.policies,
                item.enabled,
            ));
        }
        let key = self.next_handler;
        self.next_handler = key.next();
        self.by_id.insert(spec.id, key);
        self.timed_handlers += usize::from(handler.timed);
        self.handlers.insert(key, handler);
        self.start_ticker(key);
        Ok(())
    }

    pub(super) fn session_limit(&self, h: &Handler) -> usize {
        if h.capabilities
            .contains(HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS)
        {
            h.requested_limit
                .unwrap_or(self.config.default_concurrent_sessions)
        } else {
            1
        }
    }

    pub(super) fn key(&self, id: &HandlerId) -> Result<HandlerKey, Error> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::UnknownHandler(id.clone()))
    }

    pub(super) fn live(&self, id: &HandlerId) -> Result<(HandlerKey, &Handler), Error> {
        let key = self.key(id)?;
        Ok((key, &self.handlers[&key]))
    }

    pub(super) fn writable(&self, id: &HandlerId) -> Result<HandlerKey, Error> {
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
        self.stop_ticker(key);
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
    /// A reconnect (`false` to `true`) ends every retry backoff of its items: they are ready
    /// at once.
    pub fn set_handler_connected(
        &mut self,
        id: &HandlerId,
        connected: bool,
    ) -> Result<Changed, Error> {
        let key = self.writable(id)?;
        Ok(Changed {
            changed: self.note_connected(key, connected),
            canceled_pending: 0,
        })
    }

    /// [`Engine::set_handler_connected`] for a handler known to be registered. Says whether
    /// the state changed.
    pub(super) fn note_connected(&mut self, key: HandlerKey, connected: bool) -> bool {
        let Some(h) = self.handlers.get_mut(&key) else {
            return false;
        };
        let changed = h.connected != connected;
        h.connected = connected;
        if changed && connected {
            self.end_backoffs(key);
        }
        changed
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
}

/// Refuses flags values built with `from_bits_retain` that carry undefined bits.
pub(super) fn check_spec_bits(
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

pub(super) fn check_unique_items(handler: &HandlerId, items: &[ItemSpec]) -> Result<(), Error> {
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
pub(super) fn id_taken(h: &Handler, id: &ItemId) -> bool {
    h.index
        .get(id)
        .is_some_and(|&i| !h.slot(i).removed || h.slot(i).held.is_some())
}

/// Makes sure the handler has a live slot for the item; says whether it was added or known.
pub(super) fn upsert(h: &mut Handler, spec: &ItemSpec) -> UpdateReason {
    match h.index.get(&spec.id) {
        Some(&idx) if !h.slot(idx).removed => UpdateReason::Changed,
        Some(&idx) => {
            h.slot_mut(idx).removed = false;
            UpdateReason::Added
        }
        None => {
            let idx = ItemIdx::of(h.items.len());
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

pub(super) fn slot_differs(h: &Handler, spec: &ItemSpec) -> bool {
    h.index.get(&spec.id).is_some_and(|&i| {
        let s = h.slot(i);
        s.capabilities != spec.capabilities
            || s.policies != spec.policies
            || s.enabled != spec.enabled
    })
}

pub(super) fn apply_spec(h: &mut Handler, spec: &ItemSpec) {
    if let Some(&idx) = h.index.get(&spec.id) {
        let slot = h.slot_mut(idx);
        slot.capabilities = spec.capabilities;
        slot.policies = spec.policies;
        slot.enabled = spec.enabled;
    }
}
