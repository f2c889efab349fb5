//! The "share the running result" path (issue 5, item 4): callers that ask for an item while
//! it syncs join the running session (`SyncControlFlags::IGNORE_IF_ALREADY_SYNCING`) instead
//! of queueing another, against the two singleflight crates, `async_singleflight` and
//! `singleflight-async`, on the same workload in the same group.
//!
//! Workload (`join/{K}_keys/{N}_callers`): for each of K keys, the first caller starts the
//! work, which a gate holds open (never a sleep); the other N-1 callers of every key arrive
//! while it is held; then the gate opens and every caller takes the result. At N = 1 nobody
//! joins, so nothing holds the work: each key's one caller starts it and takes its result.
//! Timed from the first caller to the last result; reported per caller (N×K elements). Every
//! iteration checks that every caller got exactly one result, the right one, and that the
//! work ran exactly once per key.
//!
//! `syncmgr`: callers are `start_item_sync` calls from the bench thread, its keys the items of
//! one blocking handler that may run a session per item at once on the manager's workers.
//! The bench thread and a held session wait for each other awake (`hold::Wait::Awake`):
//! those two waits are the bench's own, and waking a sleeping thread there would add two
//! hand-offs a round (about 30 µs each on a VM whose idle processors halt) that no
//! singleflight caller pays.
//! `syncmgr_async`: the same work as an async handler whose sessions are tasks on the bench's
//! current-thread runtime, and callers that are tasks awaiting their tickets there, the
//! setting the singleflight crates get: their callers are tasks on that runtime, with no
//! thread hand-offs at all.
//!
//! Run with `cargo bench --bench join` in `benches/` (about 80 s on 2 cores);
//! `SYNCMGR_BENCH_QUICK=1 cargo bench --bench join` drops N = 1000 and shortens the sample
//! times (about 17 s). `benches/README.md` defines the workloads and records the figures.

#[path = "common/group.rs"]
mod group;
#[path = "common/hold.rs"]
mod hold;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use syncmgr::{
    ControlFlags, HandlerCapabilities, HandlerError, HandlerId, ItemId, Outcome, ProgressStatus,
    SyncControlFlags, SyncHandler, SyncItem, SyncManager, SyncRequest, SyncSession,
};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use group::{flat_group, quick_mode};
use hold::{AsyncGates, Gate, Holds, PATIENCE, Wait, held};

const KEYS: [usize; 2] = [1, 8];

struct Settings {
    callers: &'static [usize],
    warm_up: Duration,
    measurement: Duration,
}

impl Settings {
    /// `SYNCMGR_BENCH_QUICK=1` (any value but empty or `0`) shrinks everything.
    fn from_env() -> Settings {
        if quick_mode() {
            Settings {
                callers: &[1, 10, 100],
                warm_up: Duration::from_millis(200),
                measurement: Duration::from_millis(500),
            }
        } else {
            Settings {
                callers: &[1, 10, 100, 1000],
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_secs(2),
            }
        }
    }

    fn group<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        flat_group(c, name, self.warm_up, self.measurement)
    }
}

/// Counts how often the work ran for each key; every iteration ends by checking (and
/// resetting) that it ran exactly once for each.
struct Runs(Vec<AtomicUsize>);

impl Runs {
    fn new(keys: usize) -> Runs {
        Runs((0..keys).map(|_| AtomicUsize::new(0)).collect())
    }

    fn ran(&self, key: usize) {
        self.0[key].fetch_add(1, Ordering::SeqCst);
    }

    fn started(&self) -> usize {
        self.0.iter().map(|r| r.load(Ordering::SeqCst)).sum()
    }

    fn check_once_each(&self) {
        for (key, runs) in self.0.iter().enumerate() {
            assert_eq!(
                runs.swap(0, Ordering::SeqCst),
                1,
                "the work ran once for key {key}"
            );
        }
    }
}

/// Checks that every key's callers all got their result: `per_key[k] == callers`.
fn check_all_answered(per_key: &[usize], callers: usize) {
    assert!(
        per_key.iter().all(|&c| c == callers),
        "every caller gets exactly one result: {per_key:?}, expected {callers} each"
    );
}

// ----- syncmgr -------------------------------------------------------------------------------

/// A handler whose sessions are held by the bench: each session that finds a hold armed
/// says so and waits for the hold's gate; then it reports its items `Succeeded`. It may run
/// several sessions at once (one per key).
struct Held {
    items: Vec<ItemId>,
    index: HashMap<ItemId, usize>,
    runs: Runs,
    holds: Holds,
}

impl SyncHandler for Held {
    fn capabilities(&self) -> HandlerCapabilities {
        HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
    }

    fn items(&self) -> Vec<SyncItem> {
        as_sync_items(&self.items)
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        for item in items {
            self.runs.ran(self.index[item]);
        }
        self.holds.pass();
        for item in items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

/// The keys as the handlers list them: each item named by its ID.
fn as_sync_items(ids: &[ItemId]) -> Vec<SyncItem> {
    ids.iter()
        .map(|id| SyncItem::new(id.clone(), id.as_str()).unwrap())
        .collect()
}

struct Syncmgr {
    manager: SyncManager,
    handler: HandlerId,
    object: Arc<Held>,
    gate: Gate,
}

impl Syncmgr {
    /// A manager that can run one session per key at once, and the handler with the keys as
    /// its items.
    fn new(keys: usize) -> Syncmgr {
        let items: Vec<ItemId> = (0..keys)
            .map(|k| ItemId::new(format!("key-{k}")).unwrap())
            .collect();
        let (gate, holds) = Gate::new(Wait::Awake);
        let object = Arc::new(Held {
            index: items.iter().cloned().zip(0..).collect(),
            items,
            runs: Runs::new(keys),
            holds,
        });
        let manager = SyncManager::builder()
            .max_sessions(keys)
            .concurrent_sessions(keys)
            .build()
            .expect("the manager starts");
        let handler = HandlerId::new("bench").unwrap();
        manager
            .register_handler(&handler, object.clone(), ControlFlags::WAIT)
            .expect("the handler registers");
        Syncmgr {
            manager,
            handler,
            object,
            gate,
        }
    }

    fn call(&self, key: usize) -> syncmgr::SyncTicket {
        self.manager
            .start_item_sync(
                &self.handler,
                [&self.object.items[key]],
                SyncControlFlags::IGNORE_IF_ALREADY_SYNCING,
                None,
            )
            .expect("the request is accepted")
    }

    /// One iteration: N callers on each of the keys, from this thread.
    fn run(&self, callers: usize) -> Duration {
        let keys = self.object.items.len();
        let open = self.gate.arm(if held(callers) { keys } else { 0 });

        let start = Instant::now();
        let mut tickets = Vec::with_capacity(callers * keys);
        // The first caller of each key starts its session...
        tickets.extend((0..keys).map(|k| (self.call(k), k)));
        if held(callers) {
            self.gate.wait_entered(keys);
        }
        // ... the others join it while the gate holds it ...
        for _ in 1..callers {
            tickets.extend((0..keys).map(|k| (self.call(k), k)));
        }
        // ... then it ends and everyone takes the result.
        drop(open);
        let mut per_key = vec![0; keys];
        let mut ids = Vec::with_capacity(tickets.len());
        for (ticket, k) in tickets {
            let request = ticket.request();
            // By value, as an application takes it: the result moves out, not a copy.
            let result = ticket
                .into_result_timeout(PATIENCE)
                .expect("the ticket should resolve");
            assert_eq!(result.request, request);
            let item = &self.object.items[k];
            assert!(
                matches!(&result.items[..], [o] if o.outcome == Outcome::Succeeded && o.item == *item)
            );
            per_key[k] += 1;
            ids.push(request.get());
        }
        let elapsed = start.elapsed();

        check_all_answered(&per_key, callers);
        self.object.runs.check_once_each();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), callers * keys, "one request per caller");
        elapsed
    }
}

// ----- syncmgr, async ------------------------------------------------------------------------

/// The same held work as an async handler on the bench's current-thread runtime: its
/// sessions are tasks there, like the singleflight crates' work, and its callers are tasks
/// that await their tickets. The first caller of each key arms a gate just before its
/// request, and the session that serves it waits for one (`hold::AsyncGates`); at N = 1
/// there is none, and the session runs straight through.
struct HeldAsync {
    items: Vec<ItemId>,
    index: HashMap<ItemId, usize>,
    runs: Arc<Runs>,
    gates: Arc<AsyncGates>,
}

impl syncmgr::AsyncHandler for HeldAsync {
    fn capabilities(&self) -> HandlerCapabilities {
        HandlerCapabilities::SUPPORTS_CONCURRENT_SESSIONS
    }

    fn items(&self) -> Vec<SyncItem> {
        as_sync_items(&self.items)
    }

    async fn synchronize(
        &self,
        items: Vec<ItemId>,
        session: SyncSession,
    ) -> Result<(), HandlerError> {
        for item in &items {
            self.runs.ran(self.index[item]);
        }
        self.gates.hold().await;
        for item in &items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

/// An async syncmgr set up on the bench's runtime.
struct SyncmgrAsync {
    manager: Arc<SyncManager>,
    handler: HandlerId,
    items: Arc<Vec<ItemId>>,
    gates: Arc<AsyncGates>,
}

impl SyncmgrAsync {
    fn new(rt: &Runtime, keys: usize, runs: Arc<Runs>) -> SyncmgrAsync {
        let items: Vec<ItemId> = (0..keys)
            .map(|k| ItemId::new(format!("key-{k}")).unwrap())
            .collect();
        let gates = Arc::new(AsyncGates::default());
        let held = HeldAsync {
            index: items.iter().cloned().zip(0..).collect(),
            items: items.clone(),
            runs,
            gates: gates.clone(),
        };
        let manager = SyncManager::builder()
            .max_sessions(keys)
            .concurrent_sessions(keys)
            .build()
            .expect("the manager starts");
        let handler = HandlerId::new("bench-async").unwrap();
        manager
            .register_async_handler(&handler, held, rt.handle().clone(), ControlFlags::WAIT)
            .expect("the handler registers");
        SyncmgrAsync {
            manager: Arc::new(manager),
            handler,
            items: Arc::new(items),
            gates,
        }
    }

    fn run(&self, rt: &Runtime, callers: usize, runs: &Arc<Runs>) -> Duration {
        let keys = self.items.len();
        let elapsed = rt.block_on(singleflight_run(keys, callers, runs, |k, gate| {
            let (manager, handler, items, gates) = (
                self.manager.clone(),
                self.handler.clone(),
                self.items.clone(),
                self.gates.clone(),
            );
            async move {
                let request = SyncRequest::handler(handler)
                    .items([&items[k]])
                    .flags(SyncControlFlags::IGNORE_IF_ALREADY_SYNCING);
                if let Some(gate) = gate {
                    gates.arm(gate);
                }
                let ticket = manager.request(request).expect("the request is accepted");
                let request = ticket.request();
                // By value, as an application awaits it: the result moves out, not a copy.
                let result = ticket.await;
                assert_eq!(result.request, request);
                assert!(
                    matches!(&result.items[..], [o] if o.outcome == Outcome::Succeeded && o.item == items[k])
                );
                (k, k as u64)
            }
        }));
        // Outside the clock: every key's session took its gate, and none is left armed.
        self.gates.check_held(if held(callers) { keys } else { 0 });
        elapsed
    }
}

// ----- the singleflight crates ---------------------------------------------------------------

/// A current-thread tokio runtime: all callers are tasks on the bench thread, the setting
/// that costs the singleflight crates least (no cross-thread wake-ups).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("the runtime starts")
}

/// Yields until `done()` holds: every spawned task polled so far has had its turn.
async fn settle(done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "the tasks should have run");
        tokio::task::yield_now().await;
    }
}

/// The shape of one singleflight iteration, for either crate: `work(key, Some(gate))` is the
/// call of a first caller whose work waits for the gate; `work(key, None)` the first caller
/// at N = 1, whose work returns at once, or a follower whose work, if it ever ran, would
/// return at once (so a caller that failed to join shows up in the runs check, not as a
/// hang).
async fn singleflight_run<F, Fut>(
    keys: usize,
    callers: usize,
    runs: &Arc<Runs>,
    work: F,
) -> Duration
where
    F: Fn(usize, Option<Arc<Semaphore>>) -> Fut,
    Fut: Future<Output = (usize, u64)> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(0));
    let joined = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    // The first caller of each key starts the work; held, it runs until it waits for the
    // gate, else straight through.
    for k in 0..keys {
        set.spawn(work(k, held(callers).then(|| gate.clone())));
    }
    if held(callers) {
        settle(|| runs.started() == keys).await;
    }
    // The others join while it is held. Each counts itself just before its call, which
    // registers it with the running work within the same poll, before the task yields.
    for _ in 1..callers {
        for k in 0..keys {
            let call = work(k, None);
            let joined = joined.clone();
            set.spawn(async move {
                joined.fetch_add(1, Ordering::SeqCst);
                call.await
            });
        }
    }
    let followers = (callers - 1) * keys;
    settle(|| joined.load(Ordering::SeqCst) == followers).await;
    if held(callers) {
        gate.add_permits(keys);
    }
    let mut per_key = vec![0; keys];
    while let Some(answer) = set.join_next().await {
        let (k, value) = answer.expect("no caller panics");
        assert_eq!(value, k as u64, "the result of its own key");
        per_key[k] += 1;
    }
    let elapsed = start.elapsed();
    check_all_answered(&per_key, callers);
    runs.check_once_each();
    elapsed
}

/// The held work of one key: counts its run, waits for the gate if it has one, returns the
/// key's value.
async fn held_work(k: usize, runs: Arc<Runs>, gate: Option<Arc<Semaphore>>) -> u64 {
    runs.ran(k);
    if let Some(gate) = gate {
        let _permit = gate.acquire().await.expect("the gate is never closed");
    }
    k as u64
}

fn keys_of(keys: usize) -> Vec<Arc<str>> {
    (0..keys).map(|k| Arc::from(format!("key-{k}"))).collect()
}

/// `async_singleflight::Group` (`work(&key, future) -> Result<T, Option<E>>`), String keys.
fn async_singleflight_run(rt: &Runtime, keys: usize, callers: usize, runs: &Arc<Runs>) -> Duration {
    let group = Arc::new(async_singleflight::Group::<String, u64, ()>::new());
    let names = keys_of(keys);
    rt.block_on(singleflight_run(keys, callers, runs, |k, gate| {
        let (group, name, runs) = (group.clone(), names[k].clone(), runs.clone());
        async move {
            let value = group
                .work(&*name, async move { Ok(held_work(k, runs, gate).await) })
                .await
                .expect("the leader succeeds");
            (k, value)
        }
    }))
}

/// `singleflight_async::SingleFlight` (`work(key, || future) -> T`), `Arc<str>` keys (a
/// clone per call is a reference-count increment).
fn singleflight_async_run(rt: &Runtime, keys: usize, callers: usize, runs: &Arc<Runs>) -> Duration {
    let group = Arc::new(singleflight_async::SingleFlight::<Arc<str>, u64>::new());
    let names = keys_of(keys);
    rt.block_on(singleflight_run(keys, callers, runs, |k, gate| {
        let (group, name, runs) = (group.clone(), names[k].clone(), runs.clone());
        async move {
            let value = group.work(name, || held_work(k, runs, gate)).await;
            (k, value)
        }
    }))
}

// ----- groups --------------------------------------------------------------------------------

fn timed(b: &mut criterion::Bencher<'_>, mut run: impl FnMut() -> Duration) {
    b.iter_custom(|iters| (0..iters).map(|_| run()).sum());
}

fn join(c: &mut Criterion) {
    let settings = Settings::from_env();
    let rt = runtime();
    for keys in KEYS {
        let syncmgr = Syncmgr::new(keys);
        let runs = Arc::new(Runs::new(keys));
        let async_runs = Arc::new(Runs::new(keys));
        let syncmgr_async = SyncmgrAsync::new(&rt, keys, async_runs.clone());
        for &callers in settings.callers {
            let mut group = settings.group(c, &format!("join/{keys}_keys/{callers}_callers"));
            group.throughput(Throughput::Elements((callers * keys) as u64));
            group.bench_function("syncmgr", |b| timed(b, || syncmgr.run(callers)));
            group.bench_function("syncmgr_async", |b| {
                timed(b, || syncmgr_async.run(&rt, callers, &async_runs))
            });
            group.bench_function("async_singleflight", |b| {
                timed(b, || async_singleflight_run(&rt, keys, callers, &runs))
            });
            group.bench_function("singleflight_async", |b| {
                timed(b, || singleflight_async_run(&rt, keys, callers, &runs))
            });
            group.finish();
        }
        syncmgr.manager.check_consistency().unwrap();
        syncmgr_async.manager.check_consistency().unwrap();
    }
}

criterion_group!(benches, join);
criterion_main!(benches);
