//! Scheduling: which handler starts a session next, with which pending items.

use super::Action;
use super::Engine;
use super::MergeKey;
use super::SessionId;
use super::scratch;
use super::state::Counts;
use super::state::Handler;
use super::state::HandlerKey;
use super::state::Session;
use super::state::SessionItem;
use super::state::SessionPos;

impl Engine {
    /// Starts sessions while the global limit allows, oldest waiting handler first, after a
    /// change to handler `key` (a state change, an update, a removal, or the end of one of
    /// its sessions). Only `key` and the handlers already waiting for a slot can start now:
    /// every other handler was as far as it could go before the change. Costs O(waiting
    /// handlers) per start, however many handlers are registered.
    pub(super) fn schedule(&mut self, key: HandlerKey) {
        if self.shut_down {
            return;
        }
        // Nobody waits for a slot: `key` has no one to rank against (the common case at the
        // end of a session), and the set is left alone.
        if self.waiting_for_slot.is_empty() {
            self.schedule_handler(key);
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

    /// [`Engine::schedule`] when `key` has nobody to rank against: after a change that can
    /// only have made it ready (a request for it was queued), every other handler being as far
    /// as it could go, or after any change while no handler waits for a slot (`schedule`
    /// comes here then). If the global limit keeps it from starting, it waits for a slot with
    /// the others.
    pub(super) fn schedule_handler(&mut self, key: HandlerKey) {
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

    pub(super) fn start_session(&mut self, key: HandlerKey) {
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
        let mut taken = scratch::take(&mut self.scratch.taken);
        let merge = match keyed {
            None => {
                let items = &mut h.items;
                h.pending.retain_or_take(&mut taken, |entry, at| {
                    let slot = &mut items[entry.item];
                    // Items another session holds stay queued for the session after it;
                    // items not ready yet (debounce, backoff) wait for their time.
                    if slot.held.is_some() || slot.hold.is_some() {
                        slot.entry = Some(at);
                        true
                    } else {
                        slot.entry = None;
                        false
                    }
                });
                h.startable = 0;
                MergeKey::DEFAULT
            }
            Some(at) => {
                let items = &h.items;
                h.keyed[at].retain_or_take(&mut taken, |entry| items[entry.item].held.is_some());
                let merge = h.keyed[at].key.clone();
                if h.keyed[at].is_empty() {
                    h.keyed.remove(at);
                }
                // The default-key entries of what this session takes now wait for it.
                for entry in &taken {
                    if h.items[entry.item].startable() {
                        h.startable -= 1;
                    }
                }
                merge
            }
        };
        h.running.push(id);
        let mut session = Session {
            handler: h.id.clone(),
            merge: merge.clone(),
            handler_key: key,
            started: false,
            manual: false,
            cancel_all: false,
            items: scratch::take(&mut self.scratch.session_items),
            counts: Counts::default(),
            proposed: Vec::new(),
        };
        session.items.reserve(taken.len());
        let mut ids = Vec::with_capacity(taken.len());
        for entry in taken.drain(..) {
            let slot = &mut h.items[entry.item];
            slot.held = Some((id, SessionPos::next_of(&session.items)));
            ids.push(slot.id.clone());
            // The wait list moves whole: O(1), whoever waits on it.
            let list = if merge.is_default() {
                slot.waiting.take()
            } else {
                entry.list
            };
            session.items.push(SessionItem::new(entry.item, list));
        }
        scratch::put(&mut self.scratch.taken, taken);
        self.actions.push_back(Action::StartSession {
            session: id,
            handler: h.id.clone(),
            items: ids,
            key: merge,
        });
        self.sessions.insert(id, session);
    }
}
