//! The buffers the engine reuses from one call to the next, so that the steady state of a
//! busy handler (requests accepted, sessions started and ended) allocates only what it
//! keeps or hands out.
//!
//! Why it matters more than the allocation's own cost: a session of a few dozen items needs
//! per-item buffers of a kilobyte or more, and glibc's `malloc` merges every small block
//! freed since the last such allocation before it serves one (`malloc_consolidate`). In a
//! threaded manager those small blocks were freed by other threads (tickets, results), so
//! the merge walks cold memory: 8% of a worker's time in `benches/manager.rs` streams. The
//! buffers that leave the engine (a session's item IDs, its outcomes) still set it off, so
//! what this saves is instructions (`benches/README.md`), not yet that merge.

use super::RequestId;
use super::queue::{Entry, ItemIdx, KEEP_ROOM, Waiter};
use super::settle::Settled;
use super::state::SessionItem;

/// Buffers whose contents mean nothing between calls, so `Debug` shows none of them: an
/// engine's `Debug` text is its state (the tests compare it to prove that a refused call
/// changed nothing).
#[derive(Default)]
pub(crate) struct Scratch {
    /// The validated items of the start call being accepted.
    pub items: Vec<ItemIdx>,
    /// The pending entries a starting session takes.
    pub taken: Vec<Entry>,
    /// A finished session's item list, emptied, for the next session to fill.
    pub session_items: Vec<SessionItem>,
    /// An ending session's waiters, item after item.
    pub waiters: Vec<Waiter>,
    /// An ending session's items, settled.
    pub settled: Vec<Settled>,
    /// The requests an ending session completes, put in order.
    pub done: Vec<RequestId>,
}

/// Takes a buffer out of its place in [`Scratch`], to be given back with [`put`]. It is
/// empty: a place holds nothing but what `put` emptied.
pub(crate) fn take<T>(buffer: &mut Vec<T>) -> Vec<T> {
    let taken = std::mem::take(buffer);
    debug_assert!(
        taken.is_empty(),
        "a scratch place holds only emptied buffers"
    );
    taken
}

/// Gives a buffer back to its place in [`Scratch`], emptied, unless it grew past
/// [`KEEP_ROOM`].
pub(crate) fn put<T>(place: &mut Vec<T>, mut buffer: Vec<T>) {
    buffer.clear();
    if buffer.capacity() <= KEEP_ROOM {
        *place = buffer;
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_empty_with_its_room() {
        let mut place: Vec<u32> = Vec::new();
        let mut buffer = take(&mut place);
        buffer.extend(0..100);
        let room = buffer.capacity();
        put(&mut place, buffer);
        assert!(place.is_empty());
        assert_eq!(place.capacity(), room);
        let again = take(&mut place);
        assert!(again.is_empty() && again.capacity() == room);
        assert_eq!(place.capacity(), 0, "taken out, not shared");
    }

    #[test]
    fn a_buffer_grown_past_the_limit_is_dropped() {
        let mut place: Vec<u32> = Vec::with_capacity(8);
        let mut buffer = take(&mut place);
        buffer.extend(0..KEEP_ROOM as u32 + 1);
        put(&mut place, buffer);
        assert_eq!(place.capacity(), 0);
    }
}
