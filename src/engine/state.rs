//! The engine's internal records: handlers with their item tables and pending sets, running
//! sessions, open requests. Plain data; the rules live in `mod.rs`.

use std::num::NonZeroU64;

use smallvec::SmallVec;

use super::queue::{
    EntryIdx, ItemIdx, ItemPos, KeyedQueue, MergeKey, PendingQueue, WaitList, Waiter,
};
use super::{RequestId, SessionId};
use crate::cause::Cause;
use crate::flags::{
    HandlerCapabilities, HandlerPolicies, ItemCapabilities, ItemPolicies, ProgressStatus,
};
use crate::id::{HandlerId, IdMap, ItemId};
use crate::policy::SyncPolicy;
use crate::result::Outcome;
use crate::slot::Completion;
use crate::time::Time;

/// One item of a handler.
///
/// Laid out by hand, one cache line for what a start call that merges into a pending entry
/// reads and writes (the checks of `validate_start`, the repeat test, the pending entry and
/// its wait list) and the second for the rest (a join reads `held`, a new entry may set
/// `hold`): with the compiler's order a merge touched two or three lines of the slot, and
/// at 10,000 items those loads were most of its time (`perf annotate` of `merge 64` in
/// `benches/instructions.rs`). `tests::a_merge_touches_one_line_of_a_slot` keeps it so.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct ItemSlot {
    /// The last request that named the item: a repeat within one request is skipped by
    /// comparing with it (requests place all their items before the next is accepted).
    pub last_request: u64,
    /// Its entry in the handler's default-key pending queue, if it is pending there.
    pub entry: Option<EntryIdx>,
    pub enabled: bool,
    /// Removed by an update; the slot stays so indices held by requests stay valid, and a
    /// later re-add revives it.
    pub removed: bool,
    /// Failed attempts in a row, for the retry policy; success or a final outcome clears it.
    pub attempts: u16,
    /// The requests waiting on that entry (empty when not pending). Kept here rather than in
    /// the entry so that merging a request touches only this slot.
    pub waiting: WaitList,
    pub policies: ItemPolicies,
    pub capabilities: ItemCapabilities,
    // The second line.
    /// The running session that holds the item and the item's position in it. Per-item
    /// non-reentrancy makes this at most one.
    pub held: Option<(SessionId, SessionPos)>,
    /// Why its default-key entry may not start yet (`None`: ready). Only set while the entry
    /// exists.
    pub hold: Option<Hold>,
    pub id: ItemId,
}

/// Why a pending item is not ready to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Its handler's debounce window is open.
    Debounce,
    /// It failed and waits for its backoff to end at this time.
    Backoff(Time),
}

impl ItemSlot {
    pub fn new(
        id: ItemId,
        capabilities: ItemCapabilities,
        policies: ItemPolicies,
        enabled: bool,
    ) -> Self {
        ItemSlot {
            id,
            capabilities,
            policies,
            enabled,
            removed: false,
            entry: None,
            waiting: WaitList::default(),
            last_request: 0,
            held: None,
            hold: None,
            attempts: 0,
        }
    }

    /// Whether the item's default-key entry is one a new session could take: pending, ready,
    /// and held by no running session. `Handler::startable` counts these.
    pub fn startable(&self) -> bool {
        self.entry.is_some() && self.held.is_none() && self.hold.is_none()
    }

    /// Whether a handler sync (`start_handler_sync`, a tick, a trigger) takes the item: live,
    /// enabled, and without the item policy `PREVENT_START_SYNC`.
    pub fn in_handler_sync(&self) -> bool {
        self.live_and_enabled() && !self.policies.contains(ItemPolicies::PREVENT_START_SYNC)
    }

    /// Whether a sync may include the item.
    pub fn live_and_enabled(&self) -> bool {
        !self.removed && self.enabled
    }
}

#[derive(Debug)]
pub(crate) struct Handler {
    pub id: HandlerId,
    pub capabilities: HandlerCapabilities,
    pub policies: HandlerPolicies,
    pub active: bool,
    pub enabled: bool,
    pub connected: bool,
    /// Sessions that may run at once: 1 unless the handler supports concurrent sessions.
    pub session_limit: usize,
    /// The limit asked for at registration, kept so an update can recompute `session_limit`.
    pub requested_limit: Option<usize>,
    /// Unregistered while sessions still ran; dropped when the last one ends.
    pub removed: bool,
    pub items: Vec<ItemSlot>,
    pub index: IdMap<ItemId, ItemIdx>,
    /// The pending set of the default merge key (Sync Center requests).
    pub pending: PendingQueue,
    /// Live entries of `pending` whose item no running session holds: what a new session
    /// could take.
    pub startable: usize,
    /// The pending sets of other merge keys (legacy cookies), oldest key first; a key's queue
    /// goes when it empties.
    pub keyed: Vec<KeyedQueue>,
    pub running: SmallVec<[SessionId; 1]>,
    /// How its requests are timed.
    pub policy: SyncPolicy,
    /// Whether `policy` is anything but the default: the request path tests this one flag.
    pub timed: bool,
    /// The open debounce window of its default-key pending set.
    pub window: Option<Window>,
    /// Its periodic schedule's state.
    pub ticker: Option<Ticker>,
    /// The request the last tick issued, while it is open: a schedule has at most one, even
    /// across a change of schedule (so it lives here, not in the ticker).
    pub scheduled: Option<RequestId>,
}

/// A debounce window: the items queued since `first` become ready at `due`, which is
/// `min(last + quiet, first + max_wait)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub first: Time,
    pub last: Time,
    pub due: Time,
    /// Pending entries it holds (items with `Hold::Debounce`); it closes when none are left.
    pub entries: usize,
}

/// A periodic schedule's state: tick `k` falls at `start + k × every`, plus jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticker {
    pub start: Time,
    /// The number of the next tick.
    pub k: u64,
    /// When it fires (jitter included).
    pub due: Time,
}

impl Handler {
    pub fn slot(&self, item: ItemIdx) -> &ItemSlot {
        &self.items[item]
    }

    pub fn slot_mut(&mut self, item: ItemIdx) -> &mut ItemSlot {
        &mut self.items[item]
    }

    /// The live item with this ID.
    #[inline]
    pub fn find(&self, id: &ItemId) -> Option<ItemIdx> {
        self.find_slot(id).map(|(i, _)| i)
    }

    /// The live item with this ID, with its slot (one index instead of two on the merge path).
    #[inline]
    pub fn find_slot(&self, id: &ItemId) -> Option<(ItemIdx, &ItemSlot)> {
        let i = *self.index.get(id)?;
        let slot = self.items.get(i.get())?;
        (!slot.removed).then_some((i, slot))
    }

    /// Whether a handler sync of it would be accepted with something to sync: live, active,
    /// enabled, starts allowed, and an item a handler sync takes. `start_sync_all` covers
    /// these handlers; ticks and triggers issue requests only to them.
    pub fn takes_handler_sync(&self) -> bool {
        !self.removed
            && self.active
            && self.enabled
            && !self.policies.contains(HandlerPolicies::PREVENT_START_SYNC)
            && self.items.iter().any(ItemSlot::in_handler_sync)
    }

    /// Whether the handler may start a session now, the global limit aside.
    pub fn can_start(&self) -> bool {
        !self.removed
            && self.active
            && self.enabled
            && self.running.len() < self.session_limit
            && (self.startable > 0 || self.keyed.iter().any(|k| self.startable_in(k.queue())))
    }

    /// Whether a queue has an entry whose item no running session holds.
    pub fn startable_in(&self, queue: &PendingQueue) -> bool {
        queue.iter().any(|(_, e)| self.slot(e.item).held.is_none())
    }

    /// The oldest request waiting on any pending entry of the handler, of any key. It orders
    /// handlers that compete for a global session slot, so it is computed only then.
    pub fn oldest_request(&self) -> Option<RequestId> {
        let default = self
            .pending
            .iter()
            .map(|(_, e)| self.slot(e.item).waiting.head);
        let keyed = self
            .keyed
            .iter()
            .flat_map(|k| k.queue().iter().map(|(_, e)| e.list.head));
        default
            .chain(keyed)
            .filter(|w| !w.is_none())
            .map(|w| w.request)
            .min()
    }

    /// The oldest request waiting in one keyed queue.
    pub fn oldest_in(queue: &PendingQueue) -> Option<RequestId> {
        queue
            .iter()
            .map(|(_, e)| e.list.head)
            .filter(|w| !w.is_none())
            .map(|w| w.request)
            .min()
    }

    /// The oldest request waiting in the default-key queue.
    pub fn oldest_default(&self) -> Option<RequestId> {
        self.pending
            .iter()
            .map(|(_, e)| self.slot(e.item).waiting.head)
            .filter(|w| !w.is_none())
            .map(|w| w.request)
            .min()
    }

    /// Whether nothing of any key is pending.
    pub fn nothing_pending(&self) -> bool {
        self.pending.is_empty() && self.keyed.is_empty()
    }
}

/// An item's place in its session's item list (`Session::items`). Items are only ever
/// appended to a running session, so a place never changes while the session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionPos(u32);

impl SessionPos {
    /// The place of the next item appended to `items`.
    pub fn next_of(items: &[SessionItem]) -> SessionPos {
        SessionPos(u32::try_from(items.len()).unwrap_or(u32::MAX))
    }

    /// The place of item `i`.
    pub fn of(i: usize) -> SessionPos {
        SessionPos(u32::try_from(i).unwrap_or(u32::MAX))
    }

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug)]
pub(crate) struct SessionItem {
    pub item: ItemIdx,
    pub last: Option<ProgressStatus>,
    pub terminal: Option<Outcome>,
    pub cancel: bool,
    /// The requests that take the item's outcome from this session.
    pub list: WaitList,
    /// The handler reported a failure it knows no retry can mend.
    pub permanent: bool,
    /// Why it failed, when the handler said (the latest reason reported).
    pub cause: Option<Cause>,
    /// Error events and conflicts reported for this item in this session. Every request
    /// the item serves here is credited with them when it leaves the session, however late
    /// it joined.
    pub counts: Counts,
}

impl SessionItem {
    pub fn new(item: ItemIdx, list: WaitList) -> Self {
        SessionItem {
            item,
            last: None,
            terminal: None,
            cancel: false,
            list,
            permanent: false,
            cause: None,
            counts: Counts::default(),
        }
    }
}

/// Error events and conflicts, as a result counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub errors: u32,
    pub conflicts: u32,
}

impl Counts {
    pub fn is_zero(self) -> bool {
        self == Counts::default()
    }

    /// Adds `other`, saturating: a count never wraps.
    pub fn add(&mut self, other: Counts) {
        self.errors = self.errors.saturating_add(other.errors);
        self.conflicts = self.conflicts.saturating_add(other.conflicts);
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    pub handler: HandlerId,
    /// The merge key whose pending items the session took.
    pub merge: MergeKey,
    /// Key of the handler record (the ID alone is ambiguous once a removed handler's ID is
    /// registered again while its old sessions still run).
    pub handler_key: HandlerKey,
    pub started: bool,
    pub manual: bool,
    pub cancel_all: bool,
    pub items: Vec<SessionItem>,
    /// Error events and conflicts reported for the handler as a whole in this session: every
    /// request the session serves is credited with them once.
    pub counts: Counts,
    /// Items proposed with `propose_item` and not yet committed.
    pub proposed: Vec<super::ItemSpec>,
}

impl Session {
    /// The cancel request that applies to one item of the session.
    pub fn cancel_for(&self, pos: usize) -> crate::flags::CancelRequest {
        use crate::flags::CancelRequest;
        if self.cancel_all {
            CancelRequest::CancelAll
        } else if self.items[pos].cancel {
            CancelRequest::CancelItem
        } else {
            CancelRequest::None
        }
    }

    /// Whether a new request with `IGNORE_IF_ALREADY_SYNCING` may join this item: it is
    /// syncing, not finished, and nobody asked to cancel it.
    pub fn joinable(&self, pos: usize) -> bool {
        let item = &self.items[pos];
        !self.cancel_all && !item.cancel && item.terminal.is_none()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RequestItem {
    pub item: ItemIdx,
    pub outcome: Option<Outcome>,
    /// Sessions that ran the item while this request waited for it.
    pub attempts: u16,
    /// The waiter before this one in the wait list the item is on (`Waiter::NONE` at the
    /// head, and once the item has an outcome).
    pub prev: Waiter,
}

#[derive(Debug)]
pub(crate) struct Request {
    pub handler_key: HandlerKey,
    pub key: MergeKey,
    /// Inline for one item: most requests name one, and a smaller record keeps a million
    /// open requests at about half the memory (tests/memory.rs).
    pub items: SmallVec<[RequestItem; 1]>,
    /// What the sessions that served the request counted for it so far.
    pub counts: Counts,
    /// The handler was disconnected when the request came: the status is at least
    /// `Disconnected` even with no items.
    pub disconnected: bool,
    /// Takes an item's first `Failed` as final, whatever the retry policy.
    pub no_retry: bool,
    /// Items still without an outcome. (`u32`, beside the flags, to keep the record at 88
    /// bytes: a request names at most as many items as its handler has, counted in `u32`.)
    pub remaining: u32,
    /// Why items failed, for those that failed with a known reason: kept aside rather than
    /// in every `RequestItem`, most of which never fail, so that a merged item's record is
    /// 24 bytes, not 32 (a million of them are 8 MB less memory to fault in). One word in
    /// the record: a thin box, allocated at the first cause.
    pub causes: Option<Box<Causes>>,
    /// The write end of the request's result slot, when the manager made one (`None` for an
    /// engine driven directly): kept here, never called, and handed back beside the result
    /// (see `Engine::take_end`), so that the manager keeps no record of its own per request.
    pub end: Option<Completion>,
}

/// A request's failure causes, by the item's place in the request, in the order they came.
/// (A `Vec` behind a box of its own, not a boxed slice: the box stays one word, and a
/// session that fails every item of a large request pushes one cause per item.)
#[derive(Debug, Default)]
pub(crate) struct Causes(pub Vec<(ItemPos, Cause)>);

impl Request {
    /// Records why the item at `pos` failed (at most once: an item settles once).
    pub fn set_cause(&mut self, pos: ItemPos, cause: Cause) {
        self.causes.get_or_insert_default().0.push((pos, cause));
    }
}

/// A handler record's key: issued 1, 2, 3, … at registration and never reused, so a
/// re-registered ID gets a new record while the old one's sessions finish. Sessions and
/// requests find their handler by key, never by ID. Never zero, so that an empty slot of the
/// request window (`Option<Request>`) costs no word of its own beside the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct HandlerKey(NonZeroU64);

impl HandlerKey {
    /// The first key issued.
    pub const FIRST: HandlerKey = HandlerKey(NonZeroU64::MIN);

    /// The key issued after this one.
    pub fn next(self) -> HandlerKey {
        HandlerKey(self.0.saturating_add(1))
    }

    /// The key as a number (for the jitter's inputs).
    pub fn raw(self) -> u64 {
        self.0.get()
    }

    /// A key made up for a unit test that uses it as a tag (0 counts as 1).
    #[cfg(test)]
    pub fn tag(n: u64) -> HandlerKey {
        HandlerKey(NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN))
    }

    /// The key of the record in slot `i` of a [`HandlerTable`].
    fn of_slot(i: usize) -> HandlerKey {
        HandlerKey(NonZeroU64::MIN.saturating_add(i as u64))
    }
}

impl std::fmt::Display for HandlerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Handler records by registration key. Keys are issued 1, 2, 3, … and never reused, so a
/// `Vec` indexed by key gives registration order and O(1) lookups; a removed handler leaves
/// an empty slot of one pointer.
#[derive(Debug, Default)]
pub(crate) struct HandlerTable {
    slots: Vec<Option<Box<Handler>>>,
}

impl HandlerTable {
    fn index(key: HandlerKey) -> Option<usize> {
        usize::try_from(key.0.get()).ok()?.checked_sub(1)
    }

    pub fn get(&self, key: &HandlerKey) -> Option<&Handler> {
        self.slots.get(Self::index(*key)?)?.as_deref()
    }

    pub fn get_mut(&mut self, key: &HandlerKey) -> Option<&mut Handler> {
        self.slots.get_mut(Self::index(*key)?)?.as_deref_mut()
    }

    /// Adds the record of the next key (keys are issued in order).
    pub fn insert(&mut self, key: HandlerKey, handler: Handler) {
        debug_assert_eq!(Self::index(key), Some(self.slots.len()));
        self.slots.push(Some(Box::new(handler)));
    }

    pub fn remove(&mut self, key: &HandlerKey) -> Option<Handler> {
        let slot = self.slots.get_mut(Self::index(*key)?)?;
        slot.take().map(|h| *h)
    }

    /// Live records with their keys, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (HandlerKey, &Handler)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_deref().map(|h| (HandlerKey::of_slot(i), h)))
    }

    pub fn keys(&self) -> impl Iterator<Item = HandlerKey> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Handler> {
        self.iter().map(|(_, h)| h)
    }
}

impl std::ops::Index<&HandlerKey> for HandlerTable {
    type Output = Handler;

    /// The record of a key that must exist (one taken from `by_id`, a session or a request).
    fn index(&self, key: &HandlerKey) -> &Handler {
        match self.get(key) {
            Some(h) => h,
            None => panic!("no handler record for key {key}: an engine invariant broke"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    /// The fields a merge into a pending entry reads or writes end within the slot's first 64
    /// bytes, and the slot starts on a line: one line per merged item. (On 64-bit targets: elsewhere the
    /// second line's IDs are smaller, the first line the same.)
    #[test]
    fn a_merge_touches_one_line_of_a_slot() {
        let ends = [
            offset_of!(ItemSlot, last_request) + size_of::<u64>(),
            offset_of!(ItemSlot, entry) + size_of::<Option<EntryIdx>>(),
            offset_of!(ItemSlot, enabled) + 1,
            offset_of!(ItemSlot, removed) + 1,
            offset_of!(ItemSlot, waiting) + size_of::<WaitList>(),
            offset_of!(ItemSlot, policies) + size_of::<ItemPolicies>(),
        ];
        assert!(ends.iter().all(|&end| end <= 64), "{ends:?}");
        assert_eq!(std::mem::align_of::<ItemSlot>(), 64);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<ItemSlot>(), 128, "two lines, not three");
    }

    /// A million open one-item requests are a million of these: the failure causes stay one
    /// word (a thin box), the result slot's write end one word, the item record 24 bytes,
    /// the request 88 (80 before the end moved here from the manager's own record of each
    /// request, which it replaces).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn request_records_stay_small() {
        assert_eq!(size_of::<Option<Box<Causes>>>(), 8);
        assert_eq!(size_of::<Option<Completion>>(), 8);
        assert_eq!(size_of::<RequestItem>(), 24);
        assert_eq!(size_of::<Request>(), 88);
    }
}
