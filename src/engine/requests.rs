//! The open requests, by ID: the engine's records.
//!
//! Request IDs are issued 1, 2, 3, … and most requests complete roughly in that order, so the
//! table is a window of slots indexed by `id - base`: opening a request appends, finding one
//! is an index, and completed slots at the front are dropped as they go. No hashing, no
//! rehash of every open request as the table grows, and new records are written where the
//! last one was, away from the slots the completing requests free: with a caller's thread
//! opening requests while a worker's thread completes others, the two write different cache
//! lines (a hash map spread both over the same lines, and its inserts waited on them).
//!
//! One request that stays open while thousands after it complete would pin the front and
//! keep every slot behind it. So once at least half the window (of at least
//! [`MIN_WINDOW`] slots) is completed slots, the open requests at its front move to a small
//! map of stragglers, until the front is dense again. Each request moves at most once, so the
//! cost stays O(1) amortised, and the window never holds more than about twice the open
//! requests in it (or [`MIN_WINDOW`] slots).

use std::collections::VecDeque;

use super::RequestId;
use super::state::Request;
use crate::id::IdMap;

/// Below this many slots the window is never thinned: small windows cost little.
pub(crate) const MIN_WINDOW: usize = 1024;

#[derive(Debug)]
pub(crate) struct RequestTable<T = Request> {
    /// Slot `i` holds request `base + i`; `None` once it completed (or moved to `old`).
    window: VecDeque<Option<T>>,
    /// The ID of `window[0]`.
    base: u64,
    /// Open requests in the window.
    open_in_window: usize,
    /// Open requests older than `base` (all of them are: see `insert`).
    old: IdMap<RequestId, T>,
}

impl<T> Default for RequestTable<T> {
    fn default() -> Self {
        RequestTable {
            window: VecDeque::new(),
            base: 0,
            open_in_window: 0,
            old: IdMap::default(),
        }
    }
}

impl<T> RequestTable<T> {
    /// Records a new request. IDs mostly come in increasing order (the engine issues them
    /// so), which appends; an older ID (the manager records a request the engine issued by
    /// itself after a later one a caller started in the same step) takes its empty slot, or
    /// a place among the stragglers. An ID already open is refused, and the record handed
    /// back.
    pub fn insert(&mut self, id: RequestId, request: T) -> Result<(), T> {
        // Every straggler is older than `base`, so that an ID in the window's range is looked
        // up in the window only: an empty window moves to a new ID, but never back past one.
        if self.window.is_empty() && (id.0 >= self.base || self.old.is_empty()) {
            self.base = id.0;
        }
        let Some(at) = id.0.checked_sub(self.base).map(|at| at as usize) else {
            if self.old.contains_key(&id) {
                return Err(request);
            }
            self.old.insert(id, request);
            return Ok(());
        };
        if let Some(slot) = self.window.get_mut(at) {
            if slot.is_some() {
                return Err(request);
            }
            *slot = Some(request);
            self.open_in_window += 1;
            return Ok(());
        }
        if at > self.window.len() {
            // IDs issued but never opened (none today) leave empty slots.
            self.window.resize_with(at, || None);
        }
        self.window.push_back(Some(request));
        self.open_in_window += 1;
        Ok(())
    }

    fn slot(&self, id: RequestId) -> Option<usize> {
        let at = usize::try_from(id.0.checked_sub(self.base)?).ok()?;
        (at < self.window.len()).then_some(at)
    }

    pub fn get(&self, id: &RequestId) -> Option<&T> {
        match self.slot(*id) {
            Some(at) => self.window[at].as_ref(),
            None => self.old.get(id),
        }
    }

    pub fn get_mut(&mut self, id: &RequestId) -> Option<&mut T> {
        match self.slot(*id) {
            Some(at) => self.window[at].as_mut(),
            None => self.old.get_mut(id),
        }
    }

    /// Takes a request out (it completed).
    pub fn remove(&mut self, id: &RequestId) -> Option<T> {
        let Some(at) = self.slot(*id) else {
            let request = self.old.remove(id);
            // A few stragglers come and go all the time in a stream that keeps the window
            // busy: keep their room rather than grow the map from nothing each time. The room
            // of a large set is given back.
            if self.old.is_empty() && self.old.capacity() > MIN_WINDOW / 8 {
                self.old = IdMap::default();
            }
            return request;
        };
        let request = self.window[at].take()?;
        self.open_in_window -= 1;
        self.trim();
        Some(request)
    }

    /// Drops completed slots at the front; moves open ones out of a mostly-empty window.
    fn trim(&mut self) {
        loop {
            let thin =
                self.window.len() >= MIN_WINDOW && self.open_in_window * 2 < self.window.len();
            match self.window.front_mut() {
                None => break,
                Some(None) => {}
                Some(Some(_)) if !thin => break,
                Some(front) => {
                    if let Some(request) = front.take() {
                        self.open_in_window -= 1;
                        self.old.insert(RequestId(self.base), request);
                    }
                }
            }
            self.window.pop_front();
            self.base += 1;
        }
        // After a burst, give the memory back rather than keep the peak for good.
        if self.window.is_empty() && self.window.capacity() > MIN_WINDOW {
            self.window = VecDeque::new();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open_in_window == 0 && self.old.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open_in_window + self.old.len()
    }

    /// Every open request, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (RequestId, &T)> {
        let base = self.base;
        let window = self
            .window
            .iter()
            .enumerate()
            .filter_map(move |(i, r)| r.as_ref().map(|r| (RequestId(base + i as u64), r)));
        self.old.iter().map(|(id, r)| (*id, r)).chain(window)
    }

    /// Every open request, mutably, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (RequestId, &mut T)> {
        let base = self.base;
        let window = self
            .window
            .iter_mut()
            .enumerate()
            .filter_map(move |(i, r)| r.as_mut().map(|r| (RequestId(base + i as u64), r)));
        self.old.iter_mut().map(|(id, r)| (*id, r)).chain(window)
    }

    /// How many slots the window has (open or not): what its memory is sized by.
    #[cfg(test)]
    pub fn window_len(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::queue::MergeKey;
    use crate::engine::state::HandlerKey;
    use smallvec::SmallVec;

    fn request(tag: u64) -> Request {
        let handler_key = HandlerKey::tag(tag);
        use crate::engine::state::Counts;
        Request {
            handler_key,
            key: MergeKey::DEFAULT,
            items: SmallVec::new(),
            remaining: 0,
            counts: Counts::default(),
            disconnected: false,
            no_retry: false,
            causes: None,
            end: None,
        }
    }

    fn id(n: u64) -> RequestId {
        RequestId(n)
    }

    #[test]
    fn requests_are_found_by_id_and_removed_once() {
        let mut t = RequestTable::default();
        for n in 1..=5 {
            assert!(t.insert(id(n), request(n)).is_ok());
        }
        assert_eq!(t.len(), 5);
        assert_eq!(
            t.get(&id(3)).map(|r| r.handler_key),
            Some(HandlerKey::tag(3))
        );
        assert_eq!(
            t.remove(&id(3)).map(|r| r.handler_key),
            Some(HandlerKey::tag(3))
        );
        assert!(t.remove(&id(3)).is_none(), "removed twice");
        assert!(t.get(&id(3)).is_none());
        assert!(t.get(&id(6)).is_none() && t.get(&id(0)).is_none());
        let mut ids: Vec<u64> = t.iter().map(|(i, _)| i.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 4, 5]);
        for n in [1, 2, 4, 5] {
            assert!(t.remove(&id(n)).is_some());
        }
        assert!(t.is_empty());
        assert_eq!(
            t.window_len(),
            0,
            "completed slots at the front are dropped"
        );
    }

    #[test]
    fn an_id_already_open_is_refused_and_an_older_one_is_kept() {
        let mut t = RequestTable::default();
        assert!(t.insert(id(5), request(5)).is_ok());
        assert!(t.insert(id(5), request(0)).is_err(), "5 is open");
        assert!(t.insert(id(4), request(4)).is_ok(), "before the window");
        assert!(t.insert(id(4), request(0)).is_err(), "4 is open");
        // A gap is allowed: issued IDs that never opened, or not yet.
        assert!(t.insert(id(8), request(8)).is_ok());
        assert!(t.get(&id(7)).is_none());
        assert!(t.insert(id(7), request(7)).is_ok(), "an empty slot");
        assert!(t.insert(id(7), request(0)).is_err(), "7 is open");
        for n in [4, 5, 7, 8] {
            assert_eq!(
                t.get(&id(n)).map(|r| r.handler_key),
                Some(HandlerKey::tag(n))
            );
        }
        assert_eq!(t.len(), 4);
        let mut tags: Vec<_> = t.iter().map(|(_, r)| r.handler_key).collect();
        tags.sort_unstable();
        assert_eq!(tags, [4, 5, 7, 8].map(HandlerKey::tag));
    }

    #[test]
    fn an_empty_window_never_moves_back_over_a_straggler() {
        let mut t = RequestTable::default();
        assert!(t.insert(id(20), request(20)).is_ok());
        assert!(t.insert(id(15), request(15)).is_ok(), "a straggler");
        assert!(t.remove(&id(20)).is_some());
        // The window is empty; older IDs than its end still come, then newer ones.
        assert!(t.insert(id(14), request(14)).is_ok());
        assert!(t.insert(id(16), request(16)).is_ok());
        assert!(t.insert(id(21), request(21)).is_ok());
        for n in [14, 15, 16, 21] {
            assert_eq!(
                t.get(&id(n)).map(|r| r.handler_key),
                Some(HandlerKey::tag(n)),
                "request {n}"
            );
        }
        assert!(t.insert(id(15), request(0)).is_err(), "15 is open");
        for n in [15, 14, 21, 16] {
            assert_eq!(
                t.remove(&id(n)).map(|r| r.handler_key),
                Some(HandlerKey::tag(n))
            );
        }
        assert!(t.is_empty());
    }

    #[test]
    fn the_stragglers_keep_a_small_room_and_give_a_large_one_back() {
        // Stragglers: IDs older than the window's base.
        let mut t = RequestTable::default();
        assert!(t.insert(id(100_000), request(0)).is_ok());
        assert!(t.insert(id(1), request(1)).is_ok());
        assert!(t.remove(&id(1)).is_some());
        let room = t.old.capacity();
        assert!(room > 0, "a few stragglers' room is kept for the next");
        assert!(t.insert(id(2), request(2)).is_ok());
        assert_eq!(t.old.capacity(), room, "and used again");
        assert!(t.remove(&id(2)).is_some());

        let many = 1..=MIN_WINDOW as u64;
        for n in many.clone() {
            assert!(t.insert(id(n), request(n)).is_ok());
        }
        for n in many {
            assert!(t.remove(&id(n)).is_some());
        }
        assert_eq!(t.old.capacity(), 0, "a large room is given back");
    }

    #[test]
    fn one_long_lived_request_does_not_pin_the_window() {
        let mut t = RequestTable::default();
        assert!(t.insert(id(1), request(1)).is_ok());
        for n in 2..100_000 {
            assert!(t.insert(id(n), request(n)).is_ok());
            assert!(t.remove(&id(n)).is_some());
            assert!(
                t.window_len() <= MIN_WINDOW + 1,
                "window of {} slots for 1 open request",
                t.window_len()
            );
        }
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.get(&id(1)).map(|r| r.handler_key),
            Some(HandlerKey::tag(1)),
            "the straggler is still found"
        );
        assert_eq!(t.iter().map(|(i, _)| i.0).collect::<Vec<_>>(), [1]);
        assert!(t.get_mut(&id(1)).is_some());
        assert!(t.remove(&id(1)).is_some());
        assert!(t.is_empty());
    }

    #[test]
    fn the_window_stays_within_twice_its_open_requests() {
        // Every third request stays open; the others complete at once.
        let mut t = RequestTable::default();
        let mut open = Vec::new();
        for n in 1..30_000u64 {
            assert!(t.insert(id(n), request(n)).is_ok());
            if n % 3 == 0 {
                open.push(n);
            } else {
                assert!(t.remove(&id(n)).is_some());
            }
            assert!(t.window_len() <= (2 * t.len()).max(MIN_WINDOW) + 1);
        }
        assert_eq!(t.len(), open.len());
        for n in open {
            assert_eq!(
                t.remove(&id(n)).map(|r| r.handler_key),
                Some(HandlerKey::tag(n))
            );
        }
        assert!(t.is_empty());
    }
}
