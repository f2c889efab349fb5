//! A handler's pending set: items waiting for a session, in first-requested order, each with
//! the requests that wait for it.
//!
//! Entries live in a `Vec` in arrival order. Removing one from the middle (a stop, a cancel)
//! leaves a tombstone, so every operation on one entry is O(1) given its index, which the
//! handler's item slot keeps. Tombstones are dropped when a session takes the queue.

use std::sync::Arc;

use smallvec::SmallVec;

use super::RequestId;

/// Index of an item in its handler's item table. Stable for the handler's lifetime.
pub(crate) type ItemIdx = u32;

/// A request waiting for one item: which request, and where the item sits in its item list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub request: RequestId,
    pub pos: u32,
}

/// The requests waiting for one item. Most items are wanted by one request at a time.
pub(crate) type Waiters = SmallVec<[Waiter; 1]>;

#[derive(Debug)]
pub(crate) struct Entry {
    pub item: ItemIdx,
    /// Never empty, and in increasing request order (a request places all its items before
    /// the next request is accepted), so the first waiter is the oldest.
    pub waiters: Waiters,
}

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

    /// The oldest request still waiting on any entry. It orders handlers that compete for a
    /// global session slot, so it is computed only then: O(entries).
    pub fn oldest_request(&self) -> Option<RequestId> {
        self.iter()
            .filter_map(|(_, e)| e.waiters.first())
            .map(|w| w.request)
            .min()
    }

    /// Appends a new entry and returns its index.
    pub fn push(&mut self, item: ItemIdx, first: Waiter) -> u32 {
        let mut waiters = Waiters::new();
        waiters.push(first);
        self.entries.push(Some(Entry { item, waiters }));
        self.live += 1;
        (self.entries.len() - 1) as u32
    }

    pub fn get(&self, index: u32) -> Option<&Entry> {
        self.entries.get(index as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut Entry> {
        self.entries
            .get_mut(index as usize)
            .and_then(Option::as_mut)
    }

    /// Removes the entry at `index`, leaving a tombstone.
    pub fn remove(&mut self, index: u32) -> Option<Entry> {
        let entry = self.entries.get_mut(index as usize)?.take()?;
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
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .skip(self.head)
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as u32, e)))
    }

    /// Walks the live entries oldest first: `keep(entry, at)` says whether the entry stays,
    /// and `at` is the index it will have if it does (so the caller can update its item slot
    /// in the same pass). Returns the entries not kept, in order, and compacts the rest.
    pub fn retain_or_take(&mut self, mut keep: impl FnMut(&Entry, u32) -> bool) -> Vec<Entry> {
        let mut taken = Vec::with_capacity(self.live);
        let mut kept = Vec::new();
        for entry in self.entries.drain(self.head..).flatten() {
            if keep(&entry, kept.len() as u32) {
                kept.push(Some(entry));
            } else {
                taken.push(entry);
            }
        }
        self.live = kept.len();
        self.entries = kept;
        self.head = 0;
        taken
    }
}

/// Which queued requests may share a session. Sync Center requests all have the default key;
/// a legacy invoke request's key is its cookie, because SPEC section 10 makes the cookie part
/// of a legacy request's identity: requests with different cookies never share a pending entry
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
    pub queue: PendingQueue,
}

impl KeyedQueue {
    /// The index of the item's live entry.
    pub fn find(&self, item: ItemIdx) -> Option<u32> {
        self.queue
            .iter()
            .find(|(_, e)| e.item == item)
            .map(|(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(r: u64) -> Waiter {
        Waiter {
            request: RequestId(r),
            pos: 0,
        }
    }

    #[test]
    fn tombstones_keep_indices_and_order() {
        let mut q = PendingQueue::default();
        let a = q.push(10, w(1));
        let b = q.push(11, w(3));
        let c = q.push(12, w(2));
        assert_eq!(q.len(), 3);
        assert_eq!(q.oldest_request(), Some(RequestId(1)));
        assert_eq!(q.remove(a).map(|e| e.item), Some(10));
        assert_eq!(
            q.oldest_request(),
            Some(RequestId(2)),
            "the oldest waiter, not the oldest entry"
        );
        assert!(q.remove(a).is_none(), "a tombstone cannot be removed twice");
        assert_eq!(q.get(c).map(|e| e.item), Some(12));
        let order: Vec<_> = q.iter().map(|(_, e)| e.item).collect();
        assert_eq!(order, [11, 12]);
        assert_eq!(q.remove(b).map(|e| e.item), Some(11));
        assert_eq!(q.remove(c).map(|e| e.item), Some(12));
        assert!(q.is_empty());
        assert_eq!(q.oldest_request(), None);
    }

    #[test]
    fn retain_or_take_takes_in_order_and_reindexes_the_rest() {
        let mut q = PendingQueue::default();
        for i in 0..5 {
            q.push(i, w(u64::from(i) + 1));
        }
        let _ = q.remove(0);
        let mut moves = Vec::new();
        let taken = q.retain_or_take(|e, at| {
            let keep = e.item % 2 == 1;
            if keep {
                moves.push((e.item, at));
            }
            keep
        });
        let taken: Vec<_> = taken.iter().map(|e| e.item).collect();
        assert_eq!(taken, [2, 4]);
        assert_eq!(moves, [(1, 0), (3, 1)]);
        assert_eq!(q.len(), 2);
        assert_eq!(q.get(1).map(|e| e.item), Some(3));
        assert_eq!(q.oldest_request(), Some(RequestId(2)));
    }
}
