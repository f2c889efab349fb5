//! A handler's pending set (items waiting for a session, in first-requested order) and the
//! wait lists that say which requests wait for an item.
//!
//! Entries live in a `Vec` in arrival order. Removing one from the middle (a stop, a cancel)
//! leaves a tombstone, so every operation on one entry is O(1) given its index, which the
//! handler's item slot keeps. Tombstones are dropped when a session takes the queue.
//!
//! A [`WaitList`] is threaded through the requests themselves: each `RequestItem` holds a link
//! to the waiter before it, and the list keeps only its two ends and its length. Merging a
//! request into a pending item therefore writes the new request and the list's header, and
//! nothing else: no per-item vector grows, no other request is touched. Walking a list (to
//! settle it, or to take one request out) follows the links through the request map.

use std::num::NonZeroU32;
use std::sync::Arc;

use super::RequestId;
use super::requests::RequestTable;
use crate::id::IdMap;

/// Index of an item in its handler's item table. Stable for the handler's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ItemIdx(u32);

impl ItemIdx {
    /// The index of slot `i` of a handler's item table.
    pub fn of(i: usize) -> ItemIdx {
        // A handler's items are counted in `u32` (four billion items is far past any use).
        ItemIdx(u32::try_from(i).unwrap_or(u32::MAX))
    }

    /// The slot's place in the item table.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl std::ops::Index<ItemIdx> for Vec<super::state::ItemSlot> {
    type Output = super::state::ItemSlot;
    fn index(&self, idx: ItemIdx) -> &super::state::ItemSlot {
        &self[idx.get()]
    }
}

impl std::ops::IndexMut<ItemIdx> for Vec<super::state::ItemSlot> {
    fn index_mut(&mut self, idx: ItemIdx) -> &mut super::state::ItemSlot {
        &mut self[idx.get()]
    }
}

/// An item's place in its request's item list (`Request::items`). A request's items never
/// move, so a place stays valid while the request is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ItemPos(u32);

impl ItemPos {
    /// The place of item `i` (a request names at most as many items as its handler has, and
    /// those are counted in `u32`).
    pub fn of(i: usize) -> ItemPos {
        ItemPos(u32::try_from(i).unwrap_or(u32::MAX))
    }

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for ItemPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A request waiting for one item: which request, and where the item sits in its item list.
/// `Waiter::NONE` (request 0, never issued) ends a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub request: RequestId,
    pub pos: ItemPos,
}

impl Waiter {
    pub const NONE: Waiter = Waiter {
        request: RequestId(0),
        pos: ItemPos(0),
    };

    pub fn is_none(self) -> bool {
        self.request.0 == 0
    }
}

/// The requests waiting for one item in one place (a pending entry or a session item).
/// Requests join at the tail, so from `head` to `tail` they are in increasing request order;
/// the links run backwards, from each waiter to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitList {
    /// The oldest waiter.
    pub head: Waiter,
    /// The newest waiter.
    pub tail: Waiter,
    pub len: u32,
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList {
            head: Waiter::NONE,
            tail: Waiter::NONE,
            len: 0,
        }
    }
}

impl WaitList {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Puts `waiter` at the tail and returns the link its `RequestItem::prev` must hold.
    pub fn push(&mut self, waiter: Waiter) -> Waiter {
        let prev = self.tail;
        if self.len == 0 {
            self.head = waiter;
        }
        self.tail = waiter;
        self.len += 1;
        prev
    }

    /// Empties the list, returning what it held.
    pub fn take(&mut self) -> WaitList {
        std::mem::take(self)
    }
}

/// An entry's index in its [`PendingQueue`]. Valid until the queue compacts
/// (`retain_or_take`), which hands every kept entry its new index.
///
/// Held as the index plus one, so that `Option<EntryIdx>` is four bytes: it sits in the
/// first cache line of an item's slot with everything else a merge touches
/// (`ItemSlot`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EntryIdx(NonZeroU32);

/// The index itself, not the stored index + 1, so that engine dumps read as positions.
impl std::fmt::Debug for EntryIdx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntryIdx({})", self.get())
    }
}

impl EntryIdx {
    fn of(i: usize) -> EntryIdx {
        // A queue never holds more entries than a handler has items, and item indices are
        // `u32` too.
        EntryIdx(NonZeroU32::MIN.saturating_add(u32::try_from(i).unwrap_or(u32::MAX)))
    }

    fn get(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub item: ItemIdx,
    /// Who waits for the item under a non-default merge key. Default-key entries keep their
    /// list in the item slot instead (`ItemSlot::waiting`), so that merging touches only the
    /// slot it has already looked up; for them this stays empty.
    pub list: WaitList,
}

/// The most room a buffer the engine reuses keeps once emptied: an empty pending queue for
/// its next entries, and each of the `Scratch` buffers (`scratch.rs`). Larger ones are given
/// back, so an idle engine keeps little of what a burst took.
pub(crate) const KEEP_ROOM: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct PendingQueue {
    entries: Vec<Option<Entry>>,
    /// Index of the first live entry, or `entries.len()`.
    head: usize,
    live: usize,
}

impl PendingQueue {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends a new entry and returns its index.
    pub fn push(&mut self, item: ItemIdx, list: WaitList) -> EntryIdx {
        self.entries.push(Some(Entry { item, list }));
        self.live += 1;
        EntryIdx::of(self.entries.len() - 1)
    }

    pub fn get(&self, index: EntryIdx) -> Option<&Entry> {
        self.entries.get(index.get()).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, index: EntryIdx) -> Option<&mut Entry> {
        self.entries.get_mut(index.get()).and_then(Option::as_mut)
    }

    /// Removes the entry at `index`, leaving a tombstone.
    pub fn remove(&mut self, index: EntryIdx) -> Option<Entry> {
        let entry = self.entries.get_mut(index.get())?.take()?;
        self.live -= 1;
        if self.live == 0 {
            self.entries.clear();
            self.head = 0;
        } else {
            while self.entries.get(self.head).is_some_and(Option::is_none) {
                self.head += 1;
            }
        }
        Some(entry)
    }

    /// Live entries with their indices, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (EntryIdx, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .skip(self.head)
            .filter_map(|(i, e)| e.as_ref().map(|e| (EntryIdx::of(i), e)))
    }

    /// Walks the live entries oldest first: `keep(entry, at)` says whether the entry stays,
    /// and `at` is the index it will have if it does (so the caller can update its item slot
    /// in the same pass). Appends the entries not kept to `taken`, in order, and compacts the
    /// rest.
    ///
    /// Compacts in place: the queue keeps its buffer for the entries that come next (a session
    /// starts with every entry there is, and the queue fills again while it runs), unless the
    /// buffer is large and now empty, which gives its memory back.
    pub fn retain_or_take(
        &mut self,
        taken: &mut Vec<Entry>,
        mut keep: impl FnMut(&Entry, EntryIdx) -> bool,
    ) {
        taken.reserve(self.live);
        let mut kept = 0;
        for at in self.head..self.entries.len() {
            let Some(entry) = self.entries[at].take() else {
                continue;
            };
            if keep(&entry, EntryIdx::of(kept)) {
                // `kept <= at`: the slot was emptied already (or is this one).
                self.entries[kept] = Some(entry);
                kept += 1;
            } else {
                taken.push(entry);
            }
        }
        self.entries.truncate(kept);
        if kept == 0 && self.entries.capacity() > KEEP_ROOM {
            self.entries = Vec::new();
        }
        self.live = kept;
        self.head = 0;
    }
}

/// Which queued requests may share a session. Sync Center requests all have the default key;
/// a legacy invoke request's key is its cookie, because the Synchronization Manager makes the
/// cookie part of a legacy request's identity (`initialize` gets it back byte for byte): requests with different cookies never share a pending entry
/// or a session, and neither do legacy and Sync Center requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MergeKey(Option<Arc<[u8]>>);

impl MergeKey {
    /// The key of every Sync Center request.
    pub const DEFAULT: MergeKey = MergeKey(None);

    /// The key of a legacy request with this cookie (an empty cookie is a key too, distinct
    /// from the default).
    pub fn cookie(bytes: &[u8]) -> MergeKey {
        MergeKey(Some(bytes.into()))
    }

    /// The cookie, for a legacy key.
    pub fn as_cookie(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }

    /// Whether this is the default key.
    pub fn is_default(&self) -> bool {
        self.0.is_none()
    }
}

/// The pending entries of one non-default merge key. Legacy invokes are few and small, so an
/// item's entry is found by a scan; the default key keeps its index in the item slots.
#[derive(Debug)]
pub(crate) struct KeyedQueue {
    pub key: MergeKey,
    queue: PendingQueue,
    /// Each live entry's index, by item: finding an item's entry is one lookup, so an invoke
    /// request of k items costs O(k) however large the queue is.
    index: IdMap<ItemIdx, EntryIdx>,
}

impl KeyedQueue {
    pub fn new(key: MergeKey) -> KeyedQueue {
        KeyedQueue {
            key,
            queue: PendingQueue::default(),
            index: IdMap::default(),
        }
    }

    /// The entries, for walks.
    pub fn queue(&self) -> &PendingQueue {
        &self.queue
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The index of the item's live entry.
    pub fn find(&self, item: ItemIdx) -> Option<EntryIdx> {
        self.index.get(&item).copied()
    }

    pub fn get_mut(&mut self, at: EntryIdx) -> Option<&mut Entry> {
        self.queue.get_mut(at)
    }

    pub fn push(&mut self, item: ItemIdx, list: WaitList) -> EntryIdx {
        let at = self.queue.push(item, list);
        self.index.insert(item, at);
        at
    }

    pub fn remove(&mut self, at: EntryIdx) -> Option<Entry> {
        let entry = self.queue.remove(at)?;
        self.index.remove(&entry.item);
        Some(entry)
    }

    /// Whether the index holds exactly the live entries, each at its place (for
    /// `Engine::check_consistency`).
    pub fn index_matches(&self) -> bool {
        self.index.len() == self.queue.len()
            && self
                .queue
                .iter()
                .all(|(at, e)| self.index.get(&e.item) == Some(&at))
    }

    /// [`PendingQueue::retain_or_take`], keeping the index in step.
    pub fn retain_or_take(&mut self, taken: &mut Vec<Entry>, mut keep: impl FnMut(&Entry) -> bool) {
        let index = &mut self.index;
        let before = taken.len();
        self.queue.retain_or_take(taken, |entry, at| {
            let kept = keep(entry);
            if kept {
                index.insert(entry.item, at);
            }
            kept
        });
        for entry in &taken[before..] {
            index.remove(&entry.item);
        }
    }
}

// ----- walking a wait list through the requests --------------------------------------------

/// The link from a waiter to the one before it.
pub(crate) fn prev_of(requests: &RequestTable, w: Waiter) -> Option<Waiter> {
    requests
        .get(&w.request)
        .and_then(|r| r.items.get(w.pos.get()))
        .map(|ri| ri.prev)
}
/// Every waiter of a list, oldest first (the order results then come out in), following the
/// links through the requests.
pub(crate) fn waiters_of(list: &WaitList, requests: &RequestTable) -> Vec<Waiter> {
    let mut out = Vec::with_capacity(list.len as usize);
    push_waiters(list, requests, &mut out);
    out
}

/// [`waiters_of`], appended to `out`.
pub(crate) fn push_waiters(list: &WaitList, requests: &RequestTable, out: &mut Vec<Waiter>) {
    let start = out.len();
    out.reserve(list.len as usize);
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
    out[start..].reverse();
}
/// A wait list of exactly these waiters, in this order, relinking their requests.
pub(crate) fn relink(waiters: &[Waiter], requests: &mut RequestTable) -> WaitList {
    let mut list = WaitList::default();
    for &w in waiters {
        let prev = list.push(w);
        if let Some(ri) = requests
            .get_mut(&w.request)
            .and_then(|r| r.items.get_mut(w.pos.get()))
        {
            ri.prev = prev;
        }
    }
    list
}

/// Takes `target` out of `list`, mending the link of the waiter after it. Walks from the
/// tail: O(list length), paid only by a withdrawal. Says whether `target` was there.
pub(crate) fn unlink(list: &mut WaitList, target: Waiter, requests: &mut RequestTable) -> bool {
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
        .and_then(|r| r.items.get_mut(after.pos.get()))
    {
        ri.prev = before;
    }
    if list.head == target {
        list.head = after;
    }
    list.len -= 1;
    if let Some(ri) = requests
        .get_mut(&target.request)
        .and_then(|r| r.items.get_mut(target.pos.get()))
    {
        ri.prev = Waiter::NONE;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(r: u64) -> Waiter {
        Waiter {
            request: RequestId(r),
            pos: ItemPos(0),
        }
    }

    #[test]
    fn tombstones_keep_indices_and_order() {
        let mut q = PendingQueue::default();
        let a = q.push(ItemIdx::of(10), WaitList::default());
        let b = q.push(ItemIdx::of(11), WaitList::default());
        let c = q.push(ItemIdx::of(12), WaitList::default());
        assert_eq!(q.len(), 3);
        assert_eq!(q.remove(a).map(|e| e.item.get()), Some(10));
        assert!(q.remove(a).is_none(), "a tombstone cannot be removed twice");
        assert_eq!(q.get(c).map(|e| e.item.get()), Some(12));
        let order: Vec<_> = q.iter().map(|(_, e)| e.item.get()).collect();
        assert_eq!(order, [11, 12]);
        assert_eq!(q.remove(b).map(|e| e.item.get()), Some(11));
        assert_eq!(q.remove(c).map(|e| e.item.get()), Some(12));
        assert!(q.is_empty());
    }

    #[test]
    fn retain_or_take_takes_in_order_and_reindexes_the_rest() {
        let mut q = PendingQueue::default();
        for i in 0..5 {
            q.push(ItemIdx::of(i), WaitList::default());
        }
        let _ = q.remove(EntryIdx::of(0));
        let mut moves = Vec::new();
        // Appended after what the buffer holds.
        let mut taken = vec![Entry {
            item: ItemIdx::of(9),
            list: WaitList::default(),
        }];
        q.retain_or_take(&mut taken, |e, at| {
            let keep = e.item.get() % 2 == 1;
            if keep {
                moves.push((e.item.get(), at));
            }
            keep
        });
        let taken: Vec<_> = taken.iter().map(|e| e.item.get()).collect();
        assert_eq!(taken, [9, 2, 4]);
        assert_eq!(moves, [(1, EntryIdx::of(0)), (3, EntryIdx::of(1))]);
        assert_eq!(q.len(), 2);
        assert_eq!(q.get(EntryIdx::of(1)).map(|e| e.item.get()), Some(3));
    }

    #[test]
    fn a_keyed_queue_appends_what_it_takes_and_unindexes_only_that() {
        let mut q = KeyedQueue::new(MergeKey::DEFAULT);
        for i in 0..4 {
            q.push(ItemIdx::of(i), WaitList::default());
        }
        // The buffer already holds an entry of another queue, for an item this one keeps:
        // that item stays indexed here.
        let mut taken = vec![Entry {
            item: ItemIdx::of(3),
            list: WaitList::default(),
        }];
        q.retain_or_take(&mut taken, |e| e.item.get() >= 2);
        let items: Vec<_> = taken.iter().map(|e| e.item.get()).collect();
        assert_eq!(items, [3, 0, 1]);
        assert_eq!(q.find(ItemIdx::of(0)), None);
        assert_eq!(q.find(ItemIdx::of(1)), None);
        assert_eq!(q.find(ItemIdx::of(2)), Some(EntryIdx::of(0)));
        assert_eq!(q.find(ItemIdx::of(3)), Some(EntryIdx::of(1)));
        assert!(q.index_matches());
    }

    #[test]
    fn taking_every_entry_keeps_a_small_buffer_and_gives_a_large_one_back() {
        let mut q = PendingQueue::default();
        for i in 0..10 {
            q.push(ItemIdx::of(i), WaitList::default());
        }
        let take_all = |q: &mut PendingQueue| {
            let mut taken = Vec::new();
            q.retain_or_take(&mut taken, |_, _| false);
            taken.len()
        };
        assert_eq!(take_all(&mut q), 10);
        assert!(q.is_empty());
        assert!(q.entries.capacity() >= 10, "room kept for the next entries");
        assert_eq!(q.push(ItemIdx::of(3), WaitList::default()), EntryIdx::of(0));

        for i in 0..KEEP_ROOM + 10 {
            q.push(ItemIdx::of(i), WaitList::default());
        }
        assert_eq!(take_all(&mut q), KEEP_ROOM + 11);
        assert_eq!(
            q.entries.capacity(),
            0,
            "a large empty buffer is given back"
        );
    }

    #[test]
    fn a_wait_list_keeps_its_ends_and_length() {
        let mut list = WaitList::default();
        assert!(list.is_empty());
        assert!(
            list.push(w(1)).is_none(),
            "the first waiter has nobody before it"
        );
        assert_eq!(list.push(w(2)), w(1));
        assert_eq!((list.head, list.tail, list.len), (w(1), w(2), 2));
        let taken = list.take();
        assert_eq!(taken.len, 2);
        assert!(list.is_empty() && list.head.is_none() && list.tail.is_none());
    }
}
