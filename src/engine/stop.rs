//! Stops and shutdown: pending entries leave the queue as `Canceled`, running sessions get
//! cancel requests.

use super::Action;
use super::Engine;
use super::SessionId;
use super::Stopped;
use super::accept::{leave_default_queue, unknown_item};
use super::denied;
use super::queue::ItemIdx;
use super::queue::PendingQueue;
use super::queue::Waiter;
use super::queue::waiters_of;
use super::state::HandlerKey;
use super::state::ItemSlot;
use crate::error::Denied;
use crate::error::Error;
use crate::flags::CancelRequest;
use crate::flags::HandlerPolicies;
use crate::flags::ItemPolicies;
use crate::id::HandlerId;
use crate::id::ItemId;
use crate::result::Outcome;

impl Engine {
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
        let keys: Vec<HandlerKey> = self
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
    pub(super) fn stop(&mut self, key: HandlerKey, named: Option<&[ItemIdx]>) -> Stopped {
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

    pub(super) fn request_cancel(&mut self, s: SessionId, pos: Option<usize>) {
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
        let keys: Vec<HandlerKey> = self.handlers.keys().collect();
        let canceled_pending = keys.iter().map(|&k| self.cancel_pending(k, |_| true)).sum();
        for k in keys {
            self.stop_ticker(k);
        }
        debug_assert_eq!(self.timers.len(), 0, "shutdown left timers set");
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

    /// Removes the pending entries of the handler whose item matches, settling their waiters
    /// as `Canceled`. Returns how many entries went.
    pub(super) fn cancel_pending(
        &mut self,
        key: HandlerKey,
        matches: impl Fn(&ItemSlot) -> bool,
    ) -> usize {
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
    pub(super) fn cancel_pending_items(&mut self, key: HandlerKey, items: &[ItemIdx]) -> usize {
        let Some(h) = self.handlers.get_mut(&key) else {
            return 0;
        };
        let mut gone = Vec::new();
        for keyed in &mut h.keyed {
            keyed.retain_or_take(&mut gone, |e| items.binary_search(&e.item).is_err());
        }
        let mut lists: Vec<_> = gone.into_iter().map(|e| e.list).collect();
        h.keyed.retain(|k| !k.is_empty());
        for &idx in items {
            if h.items[idx].entry.is_none() {
                continue;
            }
            leave_default_queue(h, key, idx, &mut self.timers);
            let slot = &mut h.items[idx];
            if slot.held.is_none() {
                // Stopped while pending (in backoff, say): its run of attempts is over.
                slot.attempts = 0;
            }
            lists.push(slot.waiting.take());
        }
        let count = lists.len();
        // Walk every list before settling any: settling may complete a request.
        let settled: Vec<Vec<Waiter>> = lists
            .iter()
            .map(|list| waiters_of(list, &self.requests))
            .collect();
        for waiters in settled {
            self.settle(&waiters, Outcome::Canceled, None, false);
        }
        count
    }
}
