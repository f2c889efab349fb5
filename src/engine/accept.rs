//! Accepting requests: a start call is validated whole, then each item joins a running
//! session, merges into a pending entry or queues anew; and withdrawing one request.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::Accepted;
use super::Action;
use super::Disposition;
use super::Engine;
use super::MergeKey;
use super::RequestId;
use super::RequestOptions;
use super::SessionId;
use super::Withdrawn;
use super::denied;
use super::queue::KeyedQueue;
use super::queue::WaitList;
use super::queue::Waiter;
use super::queue::unlink;
use super::queue::{ItemIdx, ItemPos};
use super::requests::RequestTable;
use super::scratch;
use super::state::Counts;
use super::state::Handler;
use super::state::HandlerKey;
use super::state::Hold;
use super::state::Request;
use super::state::RequestItem;
use super::state::Session;
use super::timers::Timers;
use super::timing::unhold;
use crate::error::Denied;
use crate::error::Error;
use crate::flags::CancelRequest;
use crate::flags::HandlerPolicies;
use crate::flags::ItemPolicies;
use crate::flags::SyncControlFlags;
use crate::id::HandlerId;
use crate::id::ItemId;
use crate::result::Outcome;
use crate::slot::Completion;

impl Engine {
    /// Requests a sync of every enabled item of a handler (`StartHandlerSync`). Disabled
    /// items, and items whose policy is `PREVENT_START_SYNC`, are left out; with none left
    /// the request completes at once as `Succeeded` with no items.
    pub fn start_handler_sync(
        &mut self,
        handler: &HandlerId,
        flags: SyncControlFlags,
    ) -> Result<Accepted, Error> {
        self.accept(handler.clone(), None, None, flags, PLAIN, None)
    }

    /// Requests a sync of named items of a handler (`StartItemSync`). All-or-nothing: a
    /// refused call changes nothing. The checks, in this order: shutdown, unknown handler, empty
    /// list, handler policy, handler inactive, handler disabled, then each item in turn
    /// (unknown, `PREVENT_START_SYNC`, disabled). An item named twice is counted once.
    pub fn start_item_sync(
        &mut self,
        handler: &HandlerId,
        items: &[ItemId],
        flags: SyncControlFlags,
    ) -> Result<Accepted, Error> {
        self.accept(handler.clone(), None, Some(items), flags, PLAIN, None)
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
        self.accept(
            handler.clone(),
            None,
            items,
            flags,
            RequestOptions::keyed(key),
            None,
        )
    }

    /// [`Engine::start_sync`] with every option: the merge key, and whether the request is
    /// expedited (its handler's whole pending set becomes ready now, debounce and backoff
    /// notwithstanding) or takes no retry.
    pub fn start_sync_with(
        &mut self,
        handler: &HandlerId,
        items: Option<&[ItemId]>,
        flags: SyncControlFlags,
        options: &RequestOptions,
    ) -> Result<Accepted, Error> {
        self.accept(handler.clone(), None, items, flags, options.clone(), None)
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
            .filter(|h| h.takes_handler_sync())
            .map(|h| h.id.clone())
            .collect();
        covered
            .into_iter()
            .map(|id| self.accept(id, None, None, flags, PLAIN, None))
            .collect()
    }

    /// Every start call comes down to this one. `connected`: what the handler's
    /// `is_connected` said, when the manager asked it on the caller's thread; recorded as
    /// [`Engine::set_handler_connected`] would, with the handler looked up once, and kept
    /// even if the call is refused after that. `end`: the write end of the request's result
    /// slot, kept with the request until its result (see `Request::end`); a refused call
    /// drops it, unused (nobody can wait on a slot whose ticket was never handed out).
    pub(crate) fn accept(
        &mut self,
        handler: HandlerId,
        connected: Option<bool>,
        named: Option<&[ItemId]>,
        flags: SyncControlFlags,
        options: RequestOptions,
        end: Option<Completion>,
    ) -> Result<Accepted, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        let key = self.key(&handler)?;
        if let Some(connected) = connected {
            self.note_connected(key, connected);
        }
        // Typed flags can still carry unknown bits (`from_bits_retain`): refuse them too.
        SyncControlFlags::from_raw(flags.bits())?;
        let mut items = scratch::take(&mut self.scratch.items);
        let h = &self.handlers[&key];
        if let Err(e) = validate_start(&handler, h, named, &mut items) {
            scratch::put(&mut self.scratch.items, items);
            return Err(e);
        }

        let request = RequestId(self.next_request);
        self.next_request += 1;
        let mut placed: SmallVec<[RequestItem; 1]> = SmallVec::new();
        // Made before the loop and filled in place: returned as it is, not moved out of
        // locals (the dispositions alone are 136 bytes).
        let mut accepted = Accepted {
            request,
            handler,
            dispositions: SmallVec::new(),
            duplicates: 0,
            completed: false,
        };
        let dispositions = &mut accepted.dispositions;
        // Reserving is not free even when it has nothing to do: most requests fit inline.
        if items.len() > placed.inline_size() {
            placed.reserve_exact(items.len());
        }
        if items.len() > dispositions.inline_size() {
            dispositions.reserve_exact(items.len());
        }
        // `let else`, not `ok_or`: an error made eagerly is dropped on every call.
        let Some(h) = self.handlers.get_mut(&key) else {
            return Err(Error::ShutDown);
        };
        let join = flags.contains(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
        // Disconnected: every item settles at once, and the status says so even with none.
        let disconnected = !h.connected;
        let merge = &options.key;
        // New default-key entries wait for the debounce window, unless a person asked for
        // the sync now. One flag keeps the untimed path to a single test.
        let timed = h.timed;
        let debounce = timed && debounces(h, &options);
        let is_default = merge.is_default();
        let mut remaining = 0usize;
        for &idx in &items {
            let slot = &mut h.items[idx];
            // A repeat within this request: counted once.
            if slot.last_request == request.0 {
                continue;
            }
            slot.last_request = request.0;
            if disconnected {
                placed.push(RequestItem {
                    item: idx,
                    outcome: Some(Outcome::Disconnected),
                    attempts: 0,
                    prev: Waiter::NONE,
                });
                dispositions.push(Disposition::Settled(Outcome::Disconnected));
                continue;
            }
            let me = Waiter {
                request,
                pos: ItemPos::of(placed.len()),
            };
            // The common case first, on the slot at hand: a merge into a default-key entry.
            let (disposition, prev) = if !join && is_default && slot.entry.is_some() {
                (Disposition::Merged, slot.waiting.push(me))
            } else {
                place(h, &mut self.sessions, idx, me, join, merge, debounce)
            };
            placed.push(RequestItem {
                item: idx,
                outcome: None,
                attempts: 0,
                prev,
            });
            remaining += 1;
            dispositions.push(disposition);
        }
        // Asked here, with the handler at hand: a merge into a busy handler's queue (the
        // common case under load) then skips the scheduler's second lookup.
        let may_start = h.can_start();
        let requested = named.map_or(items.len(), <[ItemId]>::len);
        let duplicates = requested - placed.len();
        let req = Request {
            handler_key: key,
            key: options.key,
            items: placed,
            // At most the handler's item count, which fits: its slots are counted in `u32`.
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            counts: Counts::default(),
            disconnected,
            no_retry: options.no_retry,
            causes: None,
            end,
        };
        scratch::put(&mut self.scratch.items, items);
        let completed = remaining == 0;

        if self.requests.insert(request, req).is_err() {
            debug_assert!(false, "request IDs are issued in increasing order");
        }
        if completed {
            self.complete(request);
        } else if options.expedite && is_default {
            self.expedite(key);
            self.schedule_handler(key);
        } else if debounce {
            // Read back from the dispositions: the untimed loop above pays nothing.
            let added = Added::of(&accepted.dispositions);
            if added.default_key {
                self.debounce(key, added.debounced);
            }
            self.schedule_handler(key);
        } else if may_start {
            // Nothing changed the handler since `may_start` was read.
            self.schedule_handler(key);
        }
        accepted.duplicates = duplicates;
        accepted.completed = completed;
        Ok(accepted)
    }

    /// Withdraws one request's interest (a Rust addition: Sync Center has no per-request
    /// cancel). Items other
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
        let open: Vec<(ItemPos, ItemIdx)> = req
            .items
            .iter()
            .enumerate()
            .filter(|(_, ri)| ri.outcome.is_none())
            .map(|(pos, ri)| (ItemPos::of(pos), ri.item))
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
                    withdraw_default(h, (key, idx), me, &mut self.requests, &mut self.timers)
                } else {
                    withdraw_keyed(h, &merge, idx, me, &mut self.requests)
                };
                if !was_pending
                    && let Some((s, spos)) = h.items[idx].held
                    && let Some(session) = self.sessions.get_mut(&s)
                {
                    let cancel_all = session.cancel_all;
                    let sitem = &mut session.items[spos.get()];
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
                                item: Some(h.items[idx].id.clone()),
                            });
                        }
                    }
                }
                settled.push((pos, outcome));
            }
        }
        if let Some(req) = self.requests.get_mut(&request) {
            for (pos, outcome) in settled {
                req.items[pos.get()].outcome = Some(outcome);
            }
            req.remaining = 0;
            req.counts.add(credit);
        }
        self.complete(request);
        Ok(Withdrawn::Withdrawn)
    }
}

/// Puts one item of a new request where it goes: onto the running session's item (a join),
/// or onto the pending entry of its merge key, made if there is none. Returns what became of
/// it and the link its `RequestItem::prev` must hold. (`accept` settles the commonest case,
/// a plain merge into a default-key entry, on the slot it holds before it calls this: the
/// same result, without looking the slot up a second time, 3% of a merge's instructions.)
#[inline]
pub(super) fn place(
    h: &mut Handler,
    sessions: &mut BTreeMap<SessionId, Session>,
    idx: ItemIdx,
    me: Waiter,
    join: bool,
    merge: &MergeKey,
    debounce: bool,
) -> (Disposition, Waiter) {
    let slot = &mut h.items[idx];
    if join
        && let Some((s, pos)) = slot.held
        && let Some(session) = sessions.get_mut(&s)
        && session.joinable(pos.get())
    {
        return (
            Disposition::Joined(s),
            session.items[pos.get()].list.push(me),
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
    if slot.entry.is_some() {
        return (Disposition::Merged, slot.waiting.push(me));
    }
    slot.entry = Some(h.pending.push(idx, WaitList::default()));
    if debounce {
        slot.hold = Some(Hold::Debounce);
    } else if slot.held.is_none() {
        h.startable += 1;
    }
    (Disposition::Queued, slot.waiting.push(me))
}

/// The items of a start call, validated all-or-nothing, as indices into the handler's table.
/// Writes them to `items` (empty on entry); on an error, what it holds means nothing.
pub(super) fn validate_start(
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
            (0..h.items.len())
                .map(ItemIdx::of)
                .filter(|&i| h.slot(i).in_handler_sync()),
        );
        return Ok(());
    };
    items.reserve(named.len());
    // Two passes: the lookups, then the slots' checks in a loop so small that the processor
    // has many of their loads (a cache miss each, with thousands of items) in flight at once.
    // A refusal is worked out again in the order the checks are documented in.
    for item in named {
        match h.index.get(item) {
            Some(&idx) => items.push(idx),
            None => return Err(first_refusal(id, h, named)),
        }
    }
    // The same three tests as a handler sync's: live, enabled, no `PREVENT_START_SYNC`.
    if !items.iter().all(|&idx| h.slot(idx).in_handler_sync()) {
        return Err(first_refusal(id, h, named));
    }
    Ok(())
}

/// Why a start call naming `named` is refused: the first item, in order, that is unknown, or
/// has `PREVENT_START_SYNC`, or is disabled.
#[cold]
fn first_refusal(id: &HandlerId, h: &Handler, named: &[ItemId]) -> Error {
    for item in named {
        let Some((_, slot)) = h.find_slot(item) else {
            return unknown_item(id, item);
        };
        if slot.policies.contains(ItemPolicies::PREVENT_START_SYNC) {
            return denied(Denied::ItemPolicy {
                item: item.clone(),
                policy: ItemPolicies::PREVENT_START_SYNC,
            });
        }
        if !slot.enabled {
            return denied(Denied::ItemDisabled(item.clone()));
        }
    }
    debug_assert!(false, "first_refusal is asked only about a refused call");
    Error::EmptyItemList
}

pub(super) fn unknown_item(handler: &HandlerId, item: &ItemId) -> Error {
    Error::UnknownItem {
        handler: handler.clone(),
        item: item.clone(),
    }
}

/// Takes `me` off the item's default-key wait list; an entry nobody waits on any more goes.
/// Says whether the request was waiting there.
pub(super) fn withdraw_default(
    h: &mut Handler,
    (key, idx): (HandlerKey, ItemIdx),
    me: Waiter,
    requests: &mut RequestTable,
    timers: &mut Timers,
) -> bool {
    let slot = &mut h.items[idx];
    if slot.entry.is_none() || !unlink(&mut slot.waiting, me, requests) {
        return false;
    }
    if slot.waiting.is_empty() {
        leave_default_queue(h, key, idx, timers);
        let slot = &mut h.items[idx];
        if slot.held.is_none() {
            // Nobody waits for another attempt: the item's run of attempts is over.
            slot.attempts = 0;
        }
    }
    true
}

/// Removes an item's default-key entry, keeping `startable`, its hold and its timers in
/// step. Does nothing to its wait list: the caller has taken or emptied it.
pub(super) fn leave_default_queue(
    h: &mut Handler,
    key: HandlerKey,
    idx: ItemIdx,
    timers: &mut Timers,
) {
    if h.items[idx].startable() {
        h.startable -= 1;
    }
    unhold(h, key, idx, timers);
    if let Some(at) = h.items[idx].entry.take() {
        let _ = h.pending.remove(at);
    }
}

/// Whether a request's new default-key entries wait for the handler's debounce window.
#[cold]
fn debounces(h: &Handler, options: &RequestOptions) -> bool {
    h.policy.debounce.is_some() && options.key.is_default() && !options.expedite
}

/// What a request added to its handler's queues, for the debounce window.
#[derive(Default)]
struct Added {
    /// Queued or merged into the default-key pending set.
    default_key: bool,
    /// New entries it holds for the debounce window.
    debounced: usize,
}

impl Added {
    /// What a default-key request to a debounced handler added, from its dispositions.
    fn of(dispositions: &[Disposition]) -> Added {
        let mut added = Added::default();
        for d in dispositions {
            match d {
                Disposition::Queued => {
                    added.default_key = true;
                    added.debounced += 1;
                }
                Disposition::Merged => added.default_key = true,
                Disposition::Joined(_) | Disposition::Settled(_) => {}
            }
        }
        added
    }
}

/// The options of a plain Sync Center request.
pub(super) const PLAIN: RequestOptions = RequestOptions {
    key: MergeKey::DEFAULT,
    expedite: false,
    no_retry: false,
};

/// [`withdraw_default`] for a request of another merge key; a key's queue goes when empty.
pub(super) fn withdraw_keyed(
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
