//! Memory of the pending set (SPEC section 9, issue 5 item 2): a million single-item requests
//! over 10,000 items hold exactly 10,000 pending entries; the bytes each pending entry and
//! each open request cost, counted by a global allocator that wraps the system's.
//!
//! Knob: `SYNCMGR_MEMORY_FULL=1` makes the full 1,000,000 requests (some 350 MB and a few
//! seconds in release); the default is 100,000, cheap enough for every `cargo test`. The
//! figures print with `--nocapture` (`benches/README.md` records them):
//!
//! ```sh
//! SYNCMGR_MEMORY_FULL=1 cargo test --release --test memory -- --nocapture
//! ```
//!
//! Bytes are what the engine asked the allocator for (`Layout::size`), live at the moment of
//! measurement: the allocator's own rounding and headers are not counted. This file holds one
//! test, so no other test allocates while it measures. It also checks that a subscriber to
//! the manager's notifications takes memory for what it holds, not for its whole capacity.

#[path = "common/counting.rs"]
mod counting;
#[path = "../benches/common/mod.rs"]
mod workload;

use workload::{XorShift, distinct_texts};

use syncmgr::engine::{Action, Engine, HandlerSpec, SessionEnd};
use syncmgr::{HandlerId, ItemId, SyncControlFlags, SyncManager};

use counting::{Counting, allocations, live};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ITEMS: usize = 10_000;

fn requests() -> usize {
    match std::env::var("SYNCMGR_MEMORY_FULL") {
        Ok(v) if !v.is_empty() && v != "0" => 1_000_000,
        _ => 100_000,
    }
}

/// `n` distinct ASCII IDs of 8–40 bytes (the benches' generator).
fn item_ids(rng: &mut XorShift, n: usize) -> Vec<ItemId> {
    distinct_texts(rng, n)
        .into_iter()
        .map(|t| ItemId::new(t).unwrap())
        .collect()
}

/// An engine whose handler owns `items` plus `held`, with a session running on `held`: every
/// later request for `items` waits in the pending set.
fn busy_engine(handler: &HandlerId, items: &[ItemId], held: &ItemId) -> Engine {
    let mut engine = Engine::default();
    let spec = HandlerSpec::new(handler.clone()).items(items.iter().chain([held]).cloned());
    engine.register_handler(spec).unwrap();
    let _ = engine
        .start_item_sync(handler, std::slice::from_ref(held), SyncControlFlags::NONE)
        .unwrap();
    assert!(matches!(
        engine.drain_actions().collect::<Vec<_>>()[..],
        [Action::StartSession { .. }]
    ));
    engine
}

/// Ends the engine's only running session and returns the actions that follows from it.
fn finish_session(engine: &mut Engine) -> Vec<Action> {
    let [session] = engine.sessions()[..] else {
        panic!("one session runs");
    };
    let _ = engine
        .session_finished(session, SessionEnd::Returned)
        .unwrap();
    engine.drain_actions().collect()
}

/// The figures of this file, one after the other in one test, so that no other test
/// allocates while they measure.
#[test]
fn memory_figures() {
    requests_over_10k_items_hold_10k_pending_entries();
    a_subscriber_takes_memory_for_what_it_holds_not_for_its_capacity();
}

fn requests_over_10k_items_hold_10k_pending_entries() {
    let n = requests();
    let handler = HandlerId::new("memory").unwrap();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let items = item_ids(&mut rng, ITEMS);
    let held = ItemId::new("held-by-the-running-session").unwrap();
    // Every item once, in a shuffled order (so that all 10,000 are pending), then uniform
    // picks: the later requests all merge.
    let mut refs: Vec<usize> = (0..ITEMS).collect();
    for i in (1..ITEMS).rev() {
        refs.swap(i, rng.below(i + 1));
    }
    refs.extend((ITEMS..n).map(|_| rng.below(ITEMS)));

    // What one pending entry costs: one request naming all 10,000 items, so the request's own
    // record is shared by all of them (its per-item part, one index and one outcome slot,
    // remains in the figure).
    let per_entry = {
        let mut engine = busy_engine(&handler, &items, &held);
        let before = live();
        let accepted = engine
            .start_item_sync(&handler, &items, SyncControlFlags::NONE)
            .unwrap();
        assert_eq!(accepted.queued_new(), ITEMS);
        drop(accepted);
        let bytes = live() - before;
        assert_eq!(engine.pending_items(&handler).len(), ITEMS);
        bytes as f64 / ITEMS as f64
    };

    // The claim: `n` single-item requests over the 10,000 items.
    let mut engine = busy_engine(&handler, &items, &held);
    let base = live();
    let allocations_before = allocations();
    let mut queued = 0;
    let mut at_first_pass = 0;
    for (count, &i) in refs.iter().enumerate() {
        let accepted = engine
            .start_item_sync(&handler, &items[i..=i], SyncControlFlags::NONE)
            .unwrap();
        queued += accepted.queued_new();
        if count + 1 == ITEMS {
            at_first_pass = live();
        }
    }
    let total = live() - base;
    let allocations = allocations() - allocations_before;
    assert_eq!(queued, ITEMS, "only first sightings add an entry");
    assert_eq!(engine.pending_items(&handler).len(), ITEMS);
    assert_eq!(
        engine.open_requests().len(),
        n + 1,
        "the held session's request too"
    );
    assert_eq!(engine.pending_actions().count(), 0);
    engine.check_consistency().unwrap();
    let first_pass = (at_first_pass - base) as f64 / ITEMS as f64;
    let per_request = (live() - at_first_pass) as f64 / (n - ITEMS) as f64;

    // Both sessions end: every request gets its result and nothing stays pending or open.
    let after_first = finish_session(&mut engine);
    assert!(matches!(
        after_first[..],
        [Action::Deliver(_), Action::StartSession { ref items, .. }] if items.len() == ITEMS
    ));
    let results = finish_session(&mut engine);
    assert_eq!(results.len(), n);
    drop((after_first, results));
    assert!(engine.is_idle());
    // Signed: the engine may hold less than before the burst (a queue it had grown is gone).
    let retained = live() as i64 - base as i64;

    println!("{n} single-item requests over {ITEMS} items: {ITEMS} pending entries");
    println!("  per pending entry (one 10,000-item request): {per_entry:.1} bytes");
    println!("  per first request of an item (entry + request): {first_pass:.1} bytes");
    println!("  per further open request (merged into an entry): {per_request:.1} bytes");
    println!(
        "  engine total: {:.1} MB, {:.1} bytes per request, {:.0} bytes per pending entry, \
         {:.2} allocations per request",
        total as f64 / 1e6,
        total as f64 / n as f64,
        total as f64 / ITEMS as f64,
        allocations as f64 / n as f64,
    );
    println!(
        "  kept after every result was delivered: {:.3} MB (against {:.1} MB at the peak)",
        retained as f64 / 1e6,
        total as f64 / 1e6
    );

    // Tripwires, not targets: a pending entry or an open request that grew past these has
    // changed representation, and `benches/README.md` should say why.
    assert!(per_entry < 128.0, "{per_entry:.1} bytes per pending entry");
    assert!(
        retained < (total / 100) as i64,
        "an idle engine gives back what a burst took: {retained} bytes kept of {total}"
    );
    assert!(
        per_request < 512.0,
        "{per_request:.1} bytes per open request"
    );
}

/// A subscription with room for 2^20 notifications used to allocate all of it up front (a
/// bounded channel's slots: some 240 MB). It now takes memory only for what it holds.
fn a_subscriber_takes_memory_for_what_it_holds_not_for_its_capacity() {
    let manager = SyncManager::builder()
        .notification_capacity(1 << 20)
        .worker_threads(1)
        .build()
        .unwrap();
    // The manager's threads are idle now: nothing else allocates while this measures.
    let before = live();
    let stream = manager.subscribe();
    let bytes = live().saturating_sub(before);
    println!("a subscription with room for 2^20 notifications: {bytes} bytes");
    assert!(bytes < 64 * 1024, "{bytes} bytes for an empty subscription");
    drop(stream);
    manager.shutdown();
}
