//! The threaded manager end to end (issue 5, item 3): submit to result through
//! `SyncManager`, against the coalescer an application would write by hand (a
//! `Mutex<HashMap<String, Vec<mpsc::Sender<_>>>>` and a `std::sync::mpsc` wake-up), on the same
//! workload in the same group.
//!
//! - `manager/noop/stream_{1,2}_thread(s)`: a stream of one-item requests from one or two
//!   submitting threads, to a handler that reports every item `Succeeded` at once. Requests/s
//!   from criterion; each request's submit→result latency measured here with `Instant` and
//!   printed as percentiles after the group.
//! - `manager/noop/stream_batched_16`: the same stream from one thread in bunches of 16
//!   requests: `SyncManager::request_many` against the coalescer taking its lock once per
//!   bunch.
//! - `manager/noop/one_at_a_time`: the same requests, each sent once the previous one has its
//!   result: the latency of the path alone, with nothing queued ahead.
//! - `manager/gate/{N}_while_busy`: a session held open behind a gate, N requests while it
//!   is held, then the gate opens; time until all N have their result. Exactly one more
//!   session (or batch) must run for the N.
//!
//! Every iteration checks that every request got exactly one result. `benches/README.md`
//! defines the workloads and records the figures.
//!
//! Run with `cargo bench --bench manager` in `benches/` (about 45 s on 2 cores);
//! `SYNCMGR_BENCH_QUICK=1 cargo bench --bench manager` shrinks the streams, drops N = 1000
//! and shortens the sample times (about 10 s).

#[path = "common/coalescer.rs"]
mod coalescer;
mod common;
#[path = "common/group.rs"]
mod group;
#[path = "common/hold.rs"]
mod hold;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use syncmgr::{
    ControlFlags, HandlerError, HandlerId, ItemId, Outcome, ProgressStatus, RequestId,
    SyncControlFlags, SyncHandler, SyncItem, SyncManager, SyncRequest, SyncSession, SyncTicket,
};

use coalescer::HandRolled;
use common::XorShift;
use group::{flat_group, quick_mode};
use hold::{Gate, Holds, PATIENCE, Wait};

/// Items of the one handler (and keys of the baseline); requests name one each.
const ITEMS: usize = 64;

// ----- settings ------------------------------------------------------------------------------

struct Settings {
    /// Requests per stream (one iteration of a `noop` bench).
    stream: usize,
    /// N of the `gate` benches.
    gate_sizes: &'static [usize],
    warm_up: Duration,
    measurement: Duration,
}

impl Settings {
    /// `SYNCMGR_BENCH_QUICK=1` (any value but empty or `0`) shrinks everything.
    fn from_env() -> Settings {
        if quick_mode() {
            Settings {
                stream: 400,
                gate_sizes: &[100],
                warm_up: Duration::from_millis(200),
                measurement: Duration::from_millis(800),
            }
        } else {
            Settings {
                stream: 2000,
                gate_sizes: &[100, 1000],
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_secs(3),
            }
        }
    }

    fn group<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        flat_group(c, name, self.warm_up, self.measurement)
    }
}

/// The item of each request, from the benches' shared generator.
fn picks(seed: u64, n: usize) -> Vec<usize> {
    let mut rng = XorShift(seed);
    (0..n).map(|_| rng.below(ITEMS)).collect()
}

// ----- the two systems -----------------------------------------------------------------------

/// What both systems offer the workloads: submit a request for one item, wait for its result.
trait Coalescer: Sync {
    /// What a submitted request is held by: a ticket, a receiver.
    type Pending: Send;
    fn submit(&self, item: usize) -> Self::Pending;
    /// Submits a bunch of requests at once, each for one item, the way the system offers
    /// for that: `request_many` (one lock for the bunch), one lock on the map.
    fn submit_many(&self, items: &[usize]) -> Vec<Self::Pending>;
    /// What `wait` leaves of a request for `finish`: its ID, a receiver.
    type Answered: Send;
    /// Blocks until the request's result arrives, takes it as an application would (the
    /// result moves out: `into_result`, `recv`) and checks it.
    fn wait(&self, pending: Self::Pending, item: usize) -> Self::Answered;
    /// After `wait`, outside the timed path (it may block): checks that no other result can
    /// come, and returns the request's ID if the system issues one (the caller checks that
    /// no two results share one).
    fn finish(&self, answered: Self::Answered) -> Option<u64>;
    /// Sessions (manager) or batches (baseline) run so far.
    fn runs(&self) -> usize;
}

/// The no-op handler: reports every item `Succeeded` at once (one `report_progress` each,
/// as a real handler would), unless the bench holds the session first.
struct NoOp {
    items: Vec<ItemId>,
    sessions: AtomicUsize,
    holds: Holds,
}

impl SyncHandler for NoOp {
    fn items(&self) -> Vec<SyncItem> {
        self.items
            .iter()
            .map(|id| SyncItem::new(id.clone(), id.as_str()).unwrap())
            .collect()
    }

    fn synchronize(&self, items: &[ItemId], session: &SyncSession) -> Result<(), HandlerError> {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        self.holds.pass();
        for item in items {
            session.report_progress(item, ProgressStatus::Succeeded)?;
        }
        Ok(())
    }
}

/// `SyncManager` with default limits and one `NoOp` handler of `ITEMS` items.
struct Managed {
    manager: SyncManager,
    handler: HandlerId,
    items: Vec<ItemId>,
    object: Arc<NoOp>,
}

impl Managed {
    fn new(holds: Holds) -> Managed {
        let items: Vec<ItemId> = (0..ITEMS)
            .map(|i| ItemId::new(format!("item-{i:02}")).unwrap())
            .collect();
        let object = Arc::new(NoOp {
            items: items.clone(),
            sessions: AtomicUsize::new(0),
            holds,
        });
        let manager = SyncManager::new().expect("the manager starts");
        let handler = HandlerId::new("bench").unwrap();
        manager
            .register_handler(&handler, object.clone(), ControlFlags::WAIT)
            .expect("the handler registers");
        Managed {
            manager,
            handler,
            items,
            object,
        }
    }
}

impl Coalescer for Managed {
    type Pending = SyncTicket;

    fn submit(&self, item: usize) -> SyncTicket {
        self.manager
            .start_item_sync(
                &self.handler,
                [&self.items[item]],
                SyncControlFlags::NONE,
                None,
            )
            .expect("the request is accepted")
    }

    fn submit_many(&self, items: &[usize]) -> Vec<SyncTicket> {
        self.manager
            .request_many(
                items
                    .iter()
                    .map(|&item| SyncRequest::handler(&self.handler).items([&self.items[item]])),
            )
            .into_iter()
            .map(|ticket| ticket.expect("the request is accepted"))
            .collect()
    }

    type Answered = RequestId;

    fn wait(&self, ticket: SyncTicket, item: usize) -> RequestId {
        let request = ticket.request();
        let result = ticket
            .into_result_timeout(PATIENCE)
            .expect("the ticket should resolve");
        // A ticket is one-shot: its one result is this request's.
        assert_eq!(result.request, request);
        assert_eq!(result.status, Outcome::Succeeded);
        assert!(
            matches!(&result.items[..], [o] if o.outcome == Outcome::Succeeded && o.item == self.items[item])
        );
        request
    }

    fn finish(&self, request: RequestId) -> Option<u64> {
        Some(request.get())
    }

    fn runs(&self) -> usize {
        self.object.sessions.load(Ordering::SeqCst)
    }
}

impl Coalescer for HandRolled {
    type Pending = mpsc::Receiver<Outcome>;

    fn submit(&self, item: usize) -> mpsc::Receiver<Outcome> {
        self.request(self.key(item))
    }

    fn submit_many(&self, items: &[usize]) -> Vec<mpsc::Receiver<Outcome>> {
        self.request_many(items.iter().map(|&item| self.key(item)))
    }

    type Answered = mpsc::Receiver<Outcome>;

    fn wait(&self, rx: mpsc::Receiver<Outcome>, _item: usize) -> mpsc::Receiver<Outcome> {
        assert_eq!(rx.recv_timeout(PATIENCE), Ok(Outcome::Succeeded));
        rx
    }

    fn finish(&self, rx: mpsc::Receiver<Outcome>) -> Option<u64> {
        // No second result: the worker sends once, then drops the sender.
        assert_eq!(
            rx.recv_timeout(PATIENCE),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        None
    }

    fn runs(&self) -> usize {
        self.batches()
    }
}

/// Checks that the request IDs the results carried are all different (manager), or that
/// there are none (baseline, whose channels are checked one by one).
fn check_distinct(mut ids: Vec<u64>, requests: usize) {
    if ids.is_empty() {
        return;
    }
    assert_eq!(ids.len(), requests);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), requests, "two results for one request");
}

// ----- workloads -----------------------------------------------------------------------------

/// One stream: `picks` split into `threads` contiguous shares, each submitted back to back
/// by its own thread; each submitter hands (request, submit instant) to its own waiter
/// thread, which waits for the results in submission order (per handler, results come in
/// that order) and stamps each as it arrives. Elapsed: first submit to last result.
///
/// With `bunch` > 1, each submitter sends its share in bunches of that many requests
/// (`submit_many`), each request stamped with its bunch's submit instant.
fn stream<C: Coalescer>(
    system: &C,
    picks: &[usize],
    threads: usize,
    bunch: usize,
) -> (Duration, Vec<Duration>) {
    let start_line = Barrier::new(threads);
    let share = picks.len().div_ceil(threads);
    let (firsts, waited): (Vec<Instant>, Vec<_>) = thread::scope(|s| {
        let start_line = &start_line;
        let lanes: Vec<_> = picks
            .chunks(share)
            .map(|share| {
                let (tx, rx) = crossbeam_channel::unbounded::<(C::Pending, usize, Instant)>();
                let waiter = s.spawn(move || {
                    let mut latencies = Vec::with_capacity(share.len());
                    let mut answered = Vec::with_capacity(share.len());
                    let mut last = None;
                    for (pending, item, submitted) in rx {
                        let waited = system.wait(pending, item);
                        let done = Instant::now();
                        latencies.push(done - submitted);
                        last = Some(done);
                        answered.push(waited);
                    }
                    // After the last stamp: `finish` may block (the baseline's check waits
                    // for the worker to drop the sender), which is no part of the path.
                    let ids: Vec<u64> = answered
                        .into_iter()
                        .filter_map(|p| system.finish(p))
                        .collect();
                    (latencies, ids, last.expect("a share is never empty"))
                });
                let submitter = s.spawn(move || {
                    start_line.wait();
                    let first = Instant::now();
                    if bunch == 1 {
                        for &item in share {
                            let submitted = Instant::now();
                            let pending = system.submit(item);
                            tx.send((pending, item, submitted)).expect("waiter alive");
                        }
                    } else {
                        for items in share.chunks(bunch) {
                            let submitted = Instant::now();
                            let pendings = system.submit_many(items);
                            assert_eq!(pendings.len(), items.len(), "one per request");
                            for (pending, &item) in pendings.into_iter().zip(items) {
                                tx.send((pending, item, submitted)).expect("waiter alive");
                            }
                        }
                    }
                    first
                });
                (submitter, waiter)
            })
            .collect();
        lanes
            .into_iter()
            .map(|(submitter, waiter)| (submitter.join().unwrap(), waiter.join().unwrap()))
            .unzip()
    });
    let first = firsts.into_iter().min().expect("one thread at least");
    let mut latencies = Vec::with_capacity(picks.len());
    let mut ids = Vec::new();
    let mut last = first;
    for (l, i, done) in waited {
        latencies.extend(l);
        ids.extend(i);
        last = last.max(done);
    }
    // Every request got exactly one result.
    assert_eq!(latencies.len(), picks.len());
    check_distinct(ids, picks.len());
    (last - first, latencies)
}

/// The same requests one at a time from this thread: each submitted once the previous one
/// has its result, so each latency is the path alone, with no queue ahead of it.
fn one_at_a_time<C: Coalescer>(system: &C, picks: &[usize]) -> (Duration, Vec<Duration>) {
    let mut latencies = Vec::with_capacity(picks.len());
    let mut answered = Vec::with_capacity(picks.len());
    let first = Instant::now();
    for &item in picks {
        let submitted = Instant::now();
        let pending = system.submit(item);
        let waited = system.wait(pending, item);
        latencies.push(submitted.elapsed());
        answered.push(waited);
    }
    let elapsed = first.elapsed();
    // Untimed, as in `stream`.
    let ids = answered
        .into_iter()
        .filter_map(|p| system.finish(p))
        .collect();
    check_distinct(ids, picks.len());
    (elapsed, latencies)
}

/// One gate cycle: a request for item 0 starts a run that the gate holds; `picks` arrive
/// while it is held; the gate opens. Returns (submitting the N, from opening the gate to
/// the last of the N results). Checks that exactly one more run served the N.
fn gate_cycle<C: Coalescer>(system: &C, gate: &Gate, picks: &[usize]) -> (Duration, Duration) {
    let before = system.runs();
    let open = gate.arm(1);
    let busy = system.submit(0);
    gate.wait_entered(1);

    let start = Instant::now();
    let pending: Vec<(C::Pending, usize)> = picks
        .iter()
        .map(|&item| (system.submit(item), item))
        .collect();
    let submitted = Instant::now();
    drop(open);
    let answered: Vec<C::Answered> = pending
        .into_iter()
        .map(|(p, item)| system.wait(p, item))
        .collect();
    let done = Instant::now();

    let busy = system.wait(busy, 0);
    let mut ids: Vec<u64> = system.finish(busy).into_iter().collect();
    ids.extend(answered.into_iter().filter_map(|a| system.finish(a)));
    check_distinct(ids, picks.len() + 1);
    assert_eq!(
        system.runs(),
        before + 2,
        "the held run, then exactly one run for all that came while it was held"
    );
    (submitted - start, done - submitted)
}

// ----- reporting -----------------------------------------------------------------------------

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn print_latencies(name: &str, mut latencies: Vec<Duration>) {
    if latencies.is_empty() {
        return;
    }
    latencies.sort_unstable();
    println!(
        "{name}: latency submit→result over {} requests: p50 {}, p90 {}, p99 {}, max {}",
        latencies.len(),
        micros(percentile(&latencies, 50)),
        micros(percentile(&latencies, 90)),
        micros(percentile(&latencies, 99)),
        micros(*latencies.last().unwrap()),
    );
}

fn print_split(name: &str, mut splits: Vec<(Duration, Duration)>) {
    if splits.is_empty() {
        return;
    }
    let n = splits.len();
    splits.sort_unstable_by_key(|s| s.0);
    let submit = splits[n / 2].0;
    splits.sort_unstable_by_key(|s| s.1);
    let drain = splits[n / 2].1;
    println!(
        "{name}: over {n} cycles, median submit of the N {}, median gate-open→last result {}",
        micros(submit),
        micros(drain),
    );
}

// ----- groups --------------------------------------------------------------------------------

/// How the `noop` requests are sent.
#[derive(Clone, Copy)]
enum Shape {
    /// An open stream from this many submitting threads ([`stream`]).
    Stream(usize),
    /// An open stream from one thread, in bunches of this many requests.
    Batched(usize),
    /// Each request after the previous result ([`one_at_a_time`]).
    OneAtATime,
}

impl Shape {
    fn label(self) -> String {
        match self {
            Shape::Stream(1) => "manager/noop/stream_1_thread".into(),
            Shape::Stream(n) => format!("manager/noop/stream_{n}_threads"),
            Shape::Batched(n) => format!("manager/noop/stream_batched_{n}"),
            Shape::OneAtATime => "manager/noop/one_at_a_time".into(),
        }
    }

    fn run<C: Coalescer>(self, system: &C, picks: &[usize]) -> (Duration, Vec<Duration>) {
        match self {
            Shape::Stream(threads) => stream(system, picks, threads, 1),
            Shape::Batched(bunch) => stream(system, picks, 1, bunch),
            Shape::OneAtATime => one_at_a_time(system, picks),
        }
    }
}

fn bench_noop<C: Coalescer>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    shape: Shape,
    name: &str,
    system: &C,
    picks: &[usize],
) {
    // Every request of every iteration, warm-up included: the percentiles' population.
    let latencies = Mutex::new(Vec::new());
    let runs_before = system.runs();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (elapsed, l) = shape.run(system, picks);
                total += elapsed;
                latencies.lock().unwrap().extend(l);
            }
            total
        });
    });
    let latencies = latencies.into_inner().unwrap();
    let label = format!("{}/{name}", shape.label());
    let runs = system.runs() - runs_before;
    println!(
        "{label}: {runs} sessions or batches for {} requests",
        latencies.len()
    );
    print_latencies(&label, latencies);
}

fn noop(c: &mut Criterion) {
    let settings = Settings::from_env();
    for shape in [
        Shape::Stream(1),
        Shape::Stream(2),
        Shape::Batched(16),
        Shape::OneAtATime,
    ] {
        let picks = match shape {
            Shape::OneAtATime => picks(0x9E37_79B9_7F4A_7C15, settings.stream / 4),
            Shape::Stream(_) | Shape::Batched(_) => picks(0x9E37_79B9_7F4A_7C15, settings.stream),
        };
        let mut group = settings.group(c, &shape.label());
        group.throughput(Throughput::Elements(picks.len() as u64));
        {
            let (_gate, holds) = Gate::new(Wait::Park);
            let managed = Managed::new(holds);
            bench_noop(&mut group, shape, "syncmgr", &managed, &picks);
            managed.manager.check_consistency().unwrap();
        }
        {
            let (_gate, holds) = Gate::new(Wait::Park);
            let baseline = HandRolled::new(ITEMS, holds);
            bench_noop(&mut group, shape, "baseline_mutex_mpsc", &baseline, &picks);
        }
        group.finish();
    }
}

fn bench_gate<C: Coalescer>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    label: &str,
    name: &str,
    system: &C,
    gate: &Gate,
    picks: &[usize],
) {
    let splits = Mutex::new(Vec::new());
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (submit, drain) = gate_cycle(system, gate, picks);
                total += submit + drain;
                splits.lock().unwrap().push((submit, drain));
            }
            total
        });
    });
    print_split(&format!("{label}/{name}"), splits.into_inner().unwrap());
}

fn gate(c: &mut Criterion) {
    let settings = Settings::from_env();
    for &n in settings.gate_sizes {
        let picks = picks(0xD1B5_4A32_D192_ED03, n);
        let label = format!("manager/gate/{n}_while_busy");
        let mut group = settings.group(c, &label);
        group.throughput(Throughput::Elements(n as u64));
        {
            let (gate, holds) = Gate::new(Wait::Park);
            let managed = Managed::new(holds);
            bench_gate(&mut group, &label, "syncmgr", &managed, &gate, &picks);
            managed.manager.check_consistency().unwrap();
        }
        {
            let (gate, holds) = Gate::new(Wait::Park);
            let baseline = HandRolled::new(ITEMS, holds);
            bench_gate(
                &mut group,
                &label,
                "baseline_mutex_mpsc",
                &baseline,
                &gate,
                &picks,
            );
        }
        group.finish();
    }
}

criterion_group!(benches, noop, gate);
criterion_main!(benches);
