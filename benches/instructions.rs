//! Workloads to count instructions on, with callgrind: a count does not move with the
//! machine's load, so a change can be judged on a busy or virtual machine where the timed
//! benches are noisy. Not a criterion bench: it runs one workload and prints what it did.
//!
//! ```sh
//! # in benches/ (build once; the binary is the newest target/release/deps/instructions-*)
//! cargo bench --bench instructions --no-run
//! bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
//! valgrind --tool=callgrind --callgrind-out-file=cg.out $bin merge 64
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'PROGRAM TOTALS|Engine>::accept '
//! ```
//!
//! - `merge K`: the engine alone. A handler of 10,000 items, one of them held by a running
//!   session; a million item references in requests of `K` items each (the seeded generator
//!   picks them), so nearly all merge into the pending set. Divide by 1,000,000 for the
//!   instructions per reference (ID clones and the generator included: about 15 of them).
//! - `floor`: the baseline of `merge`, the floor `benches/merge.rs` times it against: the
//!   same references (generated and cloned the same way, in bunches of 64) looked up in a
//!   `HashSet`, a clone stored on first sight. `merge K` minus `floor`, over 1,000,000, is
//!   what the engine adds per reference.
//! - `manager`: the threaded manager end to end. 8,000 one-item requests to a no-op handler
//!   (one `report_progress` per item, as `benches/manager.rs`), sent in bunches of 40, each
//!   bunch waited before the next, so sessions serve about 20 requests. Divide by 8,000;
//!   `syncmgr::unwind::contain` inclusive is the work done under the scheduler's lock.
//! - `one`: 2,000 requests the same way one at a time, each waited before the next: every
//!   request is a session of its own (divide by 2,000 for a start, a session and a result).
//! - `coalescer`: the same 8,000 requests, bunches and waits through the hand-rolled
//!   coalescer `benches/manager.rs` times the manager against (`common/coalescer.rs`): the
//!   baseline of `manager`, in instructions. Run both with `--separate-threads=yes` to split
//!   the caller's thread (submitting and waiting) from the workers'.
//!
//! - `join N`: `benches/join.rs` on one key, 100,000 callers in all: rounds of a session held
//!   open while `N - 1` callers join it (`IGNORE_IF_ALREADY_SYNCING`), then every ticket
//!   waited (divide by 100,000 per caller); at N = 1 nothing holds the session. Count its thread hand-offs with `perf stat -e
//!   sched:sched_switch` as well: they, not instructions, are most of its time at small N.
//!
//! - `join_async N`: the same rounds with an async handler whose sessions are tasks on a
//!   current-thread tokio runtime, and callers that are tasks there awaiting their tickets
//!   (the `syncmgr_async` row of `benches/join.rs`); the session is held by a semaphore its
//!   first caller arms beside its request (`common/hold.rs`, `AsyncGates`).
//! - `singleflight N`: the same rounds through `singleflight_async::SingleFlight` on the same
//!   runtime: the baseline of `join_async`, in instructions.
//!
//! With no workload named (as `cargo bench` runs it) it runs each, small, as a smoke test.

#[path = "common/coalescer.rs"]
mod coalescer;
mod common;
#[path = "common/hold.rs"]
mod hold;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Instant;

use coalescer::HandRolled;
use common::{PassThroughBuild, SEED, XorShift};
use hold::{AsyncGates, Gate, Holds, PATIENCE, Wait, held};
use syncmgr::engine::{Engine, HandlerSpec};
use syncmgr::{
    ControlFlags, HandlerError, HandlerId, ItemId, Outcome, ProgressStatus, SyncControlFlags,
    SyncHandler, SyncItem, SyncManager, SyncRequest, SyncSession,
};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let named = |i: usize| args.get(i).map(String::as_str);
    match named(0) {
        Some("merge") => {
            let k = named(1).and_then(|k| k.parse().ok()).unwrap_or(64);
            merge(k, 1_000_000);
        }
        Some("floor") => floor(1_000_000),
        Some("join") => {
            let callers = named(1).and_then(|n| n.parse().ok()).unwrap_or(100);
            join(callers, 100_000 / callers.max(1));
        }
        Some("join_async") => {
            let callers = named(1).and_then(|n| n.parse().ok()).unwrap_or(100);
            join_async(callers, 100_000 / callers.max(1));
        }
        Some("singleflight") => {
            let callers = named(1).and_then(|n| n.parse().ok()).unwrap_or(100);
            singleflight(callers, 100_000 / callers.max(1));
        }
        Some("manager") => manager(8_000, BUNCH),
        Some("one") => manager(2_000, 1),
        Some("coalescer") => coalescer(8_000),
        // `cargo bench` passes `--bench`: a quick run of each, to check they work.
        _ => {
            merge(64, 10_000);
            floor(10_000);
            manager(400, BUNCH);
            coalescer(400);
            join(10, 10);
            join_async(10, 10);
            singleflight(10, 10);
        }
    }
}

fn merge(k: usize, references: usize) {
    let ids = merge_items();
    let n = ids.len();
    let handler = HandlerId::new("h").expect("a valid ID");
    let mut engine = Engine::default();
    engine
        .register_handler(HandlerSpec::new(handler.clone()).items(ids.iter().cloned()))
        .expect("the handler registers");
    // A session holds one item, so the requests after it merge into the pending set.
    let _ = engine
        .start_item_sync(&handler, &ids[..1], SyncControlFlags::NONE)
        .expect("accepted");
    let _ = engine.drain_actions().count();
    let mut rng = XorShift(SEED);
    let mut request = Vec::with_capacity(k);
    let mut merged = 0;
    let started = Instant::now();
    for _ in 0..references / k {
        request.clear();
        request.extend((0..k).map(|_| ids[rng.below(n)].clone()));
        let accepted = engine
            .start_item_sync(&handler, &request, SyncControlFlags::NONE)
            .expect("accepted");
        merged += accepted.merged();
    }
    let pending = engine.pending_items(&handler).len();
    assert!(merged > 0 && pending <= n);
    println!(
        "merge: {} references in requests of {k}: {merged} merged, {pending} pending, {:?}",
        references / k * k,
        started.elapsed()
    );
}

/// The 10,000 item IDs of `merge` and `floor`.
fn merge_items() -> Vec<ItemId> {
    (0..10_000)
        .map(|i| ItemId::new(format!("item-{i}")).expect("a valid ID"))
        .collect()
}

/// The floor of `merge`, as `benches/merge.rs` times it: the same references, each looked up
/// in a set and a clone stored on first sight. The references come from the same generator
/// and are cloned the same way, so `merge K` minus `floor` is the engine's own work.
fn floor(references: usize) {
    let ids = merge_items();
    let n = ids.len();
    let mut set: HashSet<ItemId, PassThroughBuild> =
        HashSet::with_capacity_and_hasher(n, PassThroughBuild);
    let mut rng = XorShift(SEED);
    let mut request = Vec::with_capacity(64);
    let mut inserted = 0;
    let started = Instant::now();
    for _ in 0..references / 64 {
        request.clear();
        request.extend((0..64).map(|_| ids[rng.below(n)].clone()));
        for r in &request {
            if !set.contains(r) {
                set.insert(r.clone());
                inserted += 1;
            }
        }
    }
    assert!(inserted > 0 && inserted <= n);
    println!(
        "floor: {} references: {inserted} inserted, {:?}",
        references / 64 * 64,
        started.elapsed()
    );
}

/// Reports every item `Succeeded`, one report each.
struct NoOp(Vec<SyncItem>);

impl SyncHandler for NoOp {
    fn items(&self) -> Vec<SyncItem> {
        self.0.clone()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for item in items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

/// One item whose sessions the `join` workload holds: a session that finds a gate armed says
/// so and waits for it to open, then reports its item `Succeeded`.
struct Gated {
    items: Vec<SyncItem>,
    holds: Holds,
}

impl SyncHandler for Gated {
    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        self.holds.pass();
        for item in items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

/// `rounds` rounds of `benches/join.rs` on one key: the first caller starts a session that a
/// gate holds, `callers - 1` more join it, the gate opens and every ticket is waited.
fn join(callers: usize, rounds: usize) {
    let item = SyncItem::new("key-0", "key").expect("a valid item");
    let id = item.id.clone();
    let (gate, holds) = Gate::new(Wait::Park);
    let manager = SyncManager::new().expect("the manager starts");
    let handler = Gated {
        items: vec![item],
        holds,
    };
    manager
        .register_handler("h", handler, ControlFlags::WAIT)
        .expect("the handler registers");
    let handler = HandlerId::new("h").expect("a valid ID");
    let call = || {
        manager
            .start_item_sync(
                &handler,
                [&id],
                SyncControlFlags::IGNORE_IF_ALREADY_SYNCING,
                None,
            )
            .expect("accepted")
    };
    let started = Instant::now();
    let mut succeeded = 0;
    for _ in 0..rounds {
        let open = gate.arm(usize::from(held(callers)));
        let mut tickets = Vec::with_capacity(callers);
        tickets.push(call());
        if held(callers) {
            gate.wait_entered(1);
        }
        tickets.extend((1..callers).map(|_| call()));
        drop(open);
        for ticket in tickets {
            if ticket.into_result().status == Outcome::Succeeded {
                succeeded += 1;
            }
        }
    }
    assert_eq!(succeeded, callers * rounds);
    println!(
        "join: {rounds} rounds of {callers} callers, {:?}",
        started.elapsed()
    );
    manager.shutdown();
}

/// The async handler of `join_async`: a session counts itself in `runs`, waits for the
/// gate its first caller armed, if any, then reports its item `Succeeded`.
struct GatedAsync {
    items: Vec<SyncItem>,
    runs: Arc<AtomicUsize>,
    gates: Arc<AsyncGates>,
}

impl syncmgr::AsyncHandler for GatedAsync {
    fn items(&self) -> Vec<SyncItem> {
        self.items.clone()
    }

    async fn synchronize(
        &self,
        items: Vec<ItemId>,
        session: SyncSession,
    ) -> Result<(), HandlerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.gates.hold().await;
        for item in &items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

/// A current-thread runtime, as `benches/join.rs` runs its async rows on.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("the runtime starts")
}

/// One round of an async join on the current-thread runtime: `call(gate)` is a caller, the
/// first one with the gate that holds the work (none with one caller). The others are spawned once `started()`
/// says the work runs; the gate opens once they all made their call (each counts itself in
/// `called` just before, and registers within the same poll). Returns the callers that got
/// their key's result.
async fn async_round<F, Fut>(callers: usize, started: impl Fn() -> bool, call: F) -> usize
where
    F: Fn(Option<Arc<Semaphore>>) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(0));
    let called = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    set.spawn(call(held(callers).then(|| gate.clone())));
    while held(callers) && !started() {
        tokio::task::yield_now().await;
    }
    for _ in 1..callers {
        let (call, called) = (call(None), called.clone());
        set.spawn(async move {
            called.fetch_add(1, Ordering::SeqCst);
            call.await
        });
    }
    while called.load(Ordering::SeqCst) < callers - 1 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    let mut answered = 0;
    while let Some(answer) = set.join_next().await {
        answered += usize::from(answer.expect("no caller panics"));
    }
    answered
}

/// `rounds` rounds of `benches/join.rs`'s `syncmgr_async` row on one key.
fn join_async(callers: usize, rounds: usize) {
    let rt = runtime();
    let item = SyncItem::new("key-0", "key").expect("a valid item");
    let id = Arc::new(item.id.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let gates = Arc::new(AsyncGates::default());
    let gated = GatedAsync {
        items: vec![item],
        runs: runs.clone(),
        gates: gates.clone(),
    };
    let manager = Arc::new(SyncManager::new().expect("the manager starts"));
    manager
        .register_async_handler("h", gated, rt.handle().clone(), ControlFlags::WAIT)
        .expect("the handler registers");
    let handler = HandlerId::new("h").expect("a valid ID");
    async_rounds(&rt, "join_async", callers, rounds, &runs, |gate| {
        let (manager, handler, id, gates) =
            (manager.clone(), handler.clone(), id.clone(), gates.clone());
        async move {
            let request = SyncRequest::handler(handler)
                .items([&*id])
                .flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
            if let Some(gate) = gate {
                gates.arm(gate);
            }
            let ticket = manager.request(request).expect("accepted");
            ticket.await.status == Outcome::Succeeded
        }
    });
    // Every round's session took its gate, and none is left armed.
    gates.check_held(if held(callers) { rounds } else { 0 });
}

/// `rounds` rounds of `benches/join.rs`'s `singleflight_async` row on one key.
fn singleflight(callers: usize, rounds: usize) {
    let rt = runtime();
    let group = Arc::new(singleflight_async::SingleFlight::<Arc<str>, u64>::new());
    let key: Arc<str> = Arc::from("key-0");
    let runs = Arc::new(AtomicUsize::new(0));
    async_rounds(&rt, "singleflight", callers, rounds, &runs, |gate| {
        let (group, key, runs) = (group.clone(), key.clone(), runs.clone());
        async move {
            let value = group
                .work(key, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if let Some(gate) = gate {
                        let _permit = gate.acquire().await.expect("the gate is never closed");
                    }
                    7
                })
                .await;
            value == 7
        }
    });
}

/// `rounds` rounds of `async_round` on `rt`, each started once the one before has ended.
/// Checks that every caller got its result and that the work (counted in `runs`) ran once a
/// round, then prints the time taken under `name`.
fn async_rounds<F, Fut>(
    rt: &Runtime,
    name: &str,
    callers: usize,
    rounds: usize,
    runs: &AtomicUsize,
    call: F,
) where
    F: Fn(Option<Arc<Semaphore>>) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let started = Instant::now();
    let mut succeeded = 0;
    for round in 0..rounds {
        let running = || runs.load(Ordering::SeqCst) > round;
        succeeded += rt.block_on(async_round(callers, running, &call));
    }
    assert_eq!(succeeded, callers * rounds);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        rounds,
        "the work ran once a round"
    );
    println!(
        "{name}: {rounds} rounds of {callers} callers, {:?}",
        started.elapsed()
    );
}

/// Requests sent before the `manager` and `coalescer` workloads wait for their results.
const BUNCH: usize = 40;

/// Items of the `manager` workload's handler, and keys of the `coalescer` workload.
const ITEMS: usize = 64;

/// `requests` one-item requests in bunches of `bunch`, each bunch waited before the next.
fn manager(requests: usize, bunch: usize) {
    let items: Vec<SyncItem> = (0..ITEMS)
        .map(|i| SyncItem::new(format!("item-{i:02}"), "item").expect("a valid item"))
        .collect();
    let ids: Vec<ItemId> = items.iter().map(|i| i.id.clone()).collect();
    let manager = SyncManager::new().expect("the manager starts");
    manager
        .register_handler("h", NoOp(items), ControlFlags::WAIT)
        .expect("the handler registers");
    let handler = HandlerId::new("h").expect("a valid ID");
    let mut rng = XorShift(SEED);
    let started = Instant::now();
    let mut succeeded = 0;
    for _ in 0..requests / bunch {
        let tickets: Vec<_> = (0..bunch)
            .map(|_| {
                let item = &ids[rng.below(ids.len())];
                manager
                    .start_item_sync(&handler, [item], SyncControlFlags::NONE, None)
                    .expect("accepted")
            })
            .collect();
        for ticket in tickets {
            if ticket.into_result().status == Outcome::Succeeded {
                succeeded += 1;
            }
        }
    }
    assert_eq!(succeeded, requests / bunch * bunch);
    println!(
        "manager: {succeeded} requests in bunches of {bunch}, {:?}",
        started.elapsed()
    );
    manager.shutdown();
}

/// The `manager` workload through the hand-rolled coalescer: same items, same picks.
fn coalescer(requests: usize) {
    let coalescer = HandRolled::new(ITEMS, Holds::none());
    let mut rng = XorShift(SEED);
    let started = Instant::now();
    let mut succeeded = 0;
    for _ in 0..requests / BUNCH {
        let receivers: Vec<_> = (0..BUNCH)
            .map(|_| coalescer.request(coalescer.key(rng.below(ITEMS))))
            .collect();
        for receiver in receivers {
            if receiver.recv_timeout(PATIENCE) == Ok(Outcome::Succeeded) {
                succeeded += 1;
            }
        }
    }
    assert_eq!(succeeded, requests / BUNCH * BUNCH);
    println!(
        "coalescer: {succeeded} requests in bunches of {BUNCH}, {} batches, {:?}",
        coalescer.batches(),
        started.elapsed()
    );
}
