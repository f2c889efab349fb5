//! The engine's merge and dedup alone (issue 5, item 1), in the same groups as what an
//! application would write instead, so that every figure is also a ratio.
//!
//! Workload (seeded, the same on every run): universes of 1k, 10k and 100k distinct ASCII item
//! IDs of 8–40 bytes, and 1,000,000 item references drawn uniformly from each, merged as
//! requests of 1, 8 or 64 items into one handler's pending set while a session of that
//! handler runs, with and without `IGNORE_IF_ALREADY_SYNCING`. Every group reports per item
//! reference (`Throughput::Elements`). `benches/README.md` defines each workload and records
//! the figures.
//!
//! Run with `cargo bench --bench merge` in `benches/` (about 3 minutes on 2 cores).
//! `SYNCMGR_BENCH_QUICK=1` shrinks the reference counts and the measurement time (about a
//! minute); `cargo bench --bench merge -- --test` runs every routine and its checks once.

mod common;
#[path = "common/group.rs"]
mod group;

use common::{PassThroughBuild, SEED, XorShift, distinct_texts};
use group::{flat_group, quick_mode};
use std::collections::HashSet;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
    measurement::WallTime,
};
use syncmgr::engine::{Action, Disposition, Engine, HandlerSpec};
use syncmgr::{HandlerId, ItemId, SyncControlFlags};

/// Request sizes, in items.
const REQUEST_SIZES: [usize; 3] = [1, 8, 64];
/// Every `SESSION_EVERY`-th item of a universe is held by the handler's running session.
const SESSION_EVERY: usize = 10;
/// The pending-size group: the items its requests name (the "hot" set), and the pending sizes.
const HOT: usize = 1_000;
const SMALL_PENDING: usize = 1_000;
const LARGE_PENDING: usize = 100_000;

// ----- settings ------------------------------------------------------------------------------

/// Sizes and times: the full run, or the quick look of `SYNCMGR_BENCH_QUICK=1`.
struct Settings {
    /// Item references per iteration in the dedup groups (1,000,000 in the full run).
    references: usize,
    /// String comparisons one iteration of the `Vec` baseline may cost: its reference window
    /// is this divided by the mean scan, so an iteration stays tens of milliseconds at 100k.
    vec_comparisons: usize,
    /// Item references per iteration in the pending-size groups.
    pending_refs: usize,
    warm_up: Duration,
    measurement: Duration,
}

impl Settings {
    fn from_env() -> Settings {
        if quick_mode() {
            Settings {
                references: 100_000,
                vec_comparisons: 5_000_000,
                pending_refs: 50_000,
                warm_up: Duration::from_millis(100),
                measurement: Duration::from_millis(300),
            }
        } else {
            Settings {
                references: 1_000_000,
                vec_comparisons: 40_000_000,
                pending_refs: 250_000,
                warm_up: Duration::from_millis(300),
                measurement: Duration::from_millis(1500),
            }
        }
    }

    fn group<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        flat_group(c, name, self.warm_up, self.measurement)
    }
}

// ----- workload ------------------------------------------------------------------------------

/// One universe of distinct IDs and the references drawn from it.
struct Universe {
    /// `1k_distinct`, `10k_distinct`, `100k_distinct`.
    label: String,
    /// The distinct ID texts, in creation order.
    texts: Vec<String>,
    /// The same, as `ItemId`s: what the handler registers and the references clone.
    ids: Vec<ItemId>,
    /// Indices into `texts`: the references, in arrival order.
    refs: Vec<u32>,
}

impl Universe {
    /// The generator of `benches/ids.rs` (same seed and alphabet), so the 10k universe is
    /// that bench's workload exactly, and each smaller universe is a prefix of a larger one.
    fn new(distinct: usize, references: usize) -> Universe {
        let mut rng = XorShift(SEED);
        let texts = distinct_texts(&mut rng, distinct);
        let refs = (0..references)
            .map(|_| rng.below(distinct) as u32)
            .collect();
        let ids = texts.iter().map(|t| ItemId::new(t).unwrap()).collect();
        Universe {
            label: format!("{}k_distinct", distinct / 1000),
            texts,
            ids,
            refs,
        }
    }

    fn len(&self) -> usize {
        self.texts.len()
    }

    /// The references as clones of the registered IDs (sharing their text, as an application
    /// that keeps its `ItemId`s passes them).
    fn id_refs(&self) -> Vec<ItemId> {
        self.refs
            .iter()
            .map(|&i| self.ids[i as usize].clone())
            .collect()
    }

    /// The references as borrowed texts, for the string baselines.
    fn str_refs(&self) -> Vec<&str> {
        self.refs
            .iter()
            .map(|&i| self.texts[i as usize].as_str())
            .collect()
    }

    /// The distinct referenced indices, in first-reference order.
    fn first_seen(&self) -> Vec<u32> {
        let mut seen = vec![false; self.len()];
        let mut order = Vec::new();
        for &i in &self.refs {
            if !std::mem::replace(&mut seen[i as usize], true) {
                order.push(i);
            }
        }
        order
    }

    /// Which items the running session holds.
    fn running(&self) -> Vec<bool> {
        (0..self.len()).map(|i| i % SESSION_EVERY == 0).collect()
    }
}

// ----- the engine, and a naive model of what it must answer -----------------------------------

/// How a run of requests was placed: counted from the engine's answers, or by the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    queued: usize,
    merged: usize,
    joined: usize,
    /// Repeats of an item within one request (counted once by the engine).
    repeats: usize,
}

/// The SPEC 5 rules for these requests, naively: `pending` is the pending set before them.
fn model(refs: &[u32], k: usize, mut pending: Vec<bool>, running: &[bool], join: bool) -> Tally {
    let mut t = Tally::default();
    let mut in_request = Vec::with_capacity(k);
    for request in refs.chunks(k) {
        in_request.clear();
        for &i in request {
            if in_request.contains(&i) {
                t.repeats += 1;
                continue;
            }
            in_request.push(i);
            let i = i as usize;
            if join && running[i] {
                t.joined += 1;
            } else if std::mem::replace(&mut pending[i], true) {
                t.merged += 1;
            } else {
                t.queued += 1;
            }
        }
    }
    t
}

/// Merges `refs` into the engine as requests of `k` items. This is the timed work: one
/// `start_item_sync` per request, plus one pass over its dispositions to count them.
fn merge(
    engine: &mut Engine,
    handler: &HandlerId,
    refs: &[ItemId],
    k: usize,
    flags: SyncControlFlags,
) -> Tally {
    let mut t = Tally::default();
    for request in refs.chunks(k) {
        let accepted = engine.start_item_sync(handler, request, flags).unwrap();
        for d in accepted.dispositions() {
            match d {
                Disposition::Queued => t.queued += 1,
                Disposition::Merged => t.merged += 1,
                Disposition::Joined(_) => t.joined += 1,
                Disposition::Settled(_) => panic!("the handler is connected"),
            }
        }
        t.repeats += accepted.duplicates;
    }
    t
}

/// An engine with one handler owning `ids`, whose session runs with `running` (so every
/// later request queues, merges or joins), and `prefill` already pending (in 64-item
/// requests).
fn busy_engine(
    handler: &HandlerId,
    ids: &[ItemId],
    running: &[ItemId],
    prefill: &[ItemId],
) -> Engine {
    let mut engine = Engine::default();
    engine
        .register_handler(HandlerSpec::new(handler.clone()).items(ids.iter().cloned()))
        .unwrap();
    let _ = engine
        .start_item_sync(handler, running, SyncControlFlags::NONE)
        .unwrap();
    let started: Vec<Action> = engine.drain_actions().collect();
    assert!(matches!(started[..], [Action::StartSession { .. }]));
    for request in prefill.chunks(64) {
        let _ = engine
            .start_item_sync(handler, request, SyncControlFlags::NONE)
            .unwrap();
    }
    assert_eq!(engine.pending_actions().count(), 0);
    engine
}

/// The full check, once per engine variant and outside the clock (it copies the whole
/// pending set): the answers match the model, the pending set holds exactly the expected
/// items, no session started and no result came, and the engine is consistent.
fn verify(
    mut engine: Engine,
    handler: &HandlerId,
    run: impl FnOnce(&mut Engine) -> Tally,
    want: Tally,
    pending: &[&ItemId],
) {
    assert_eq!(run(&mut engine), want);
    assert_eq!(engine.pending_actions().count(), 0);
    let got: HashSet<ItemId> = engine.pending_items(handler).into_iter().collect();
    assert_eq!(got.len(), pending.len());
    assert!(pending.iter().all(|id| got.contains(*id)));
    engine.check_consistency().unwrap();
}

// ----- the alternatives ----------------------------------------------------------------------

type FloorSet = HashSet<ItemId, PassThroughBuild>;

/// The floor: look each reference up, store a clone on first sight (an `insert` of a clone
/// on every reference would pay a reference-count round trip per hit). Returns the inserts.
fn floor_merge(set: &mut FloorSet, refs: &[ItemId]) -> usize {
    let mut inserted = 0;
    for r in refs {
        if !set.contains(r) {
            set.insert(r.clone());
            inserted += 1;
        }
    }
    inserted
}

/// A `HashSet<String>` queue with std's hasher, fed borrowed texts: lookup, then an owned
/// copy on first sight.
fn string_set_merge(set: &mut HashSet<String>, refs: &[&str]) -> usize {
    let mut inserted = 0;
    for &r in refs {
        if !set.contains(r) {
            set.insert(r.to_owned());
            inserted += 1;
        }
    }
    inserted
}

/// A `Vec<String>` queue with a linear scan per reference: what a naive application writes.
fn vec_merge(queue: &mut Vec<String>, refs: &[&str]) -> usize {
    let mut inserted = 0;
    for &r in refs {
        if !queue.iter().any(|q| q == r) {
            queue.push(r.to_owned());
            inserted += 1;
        }
    }
    inserted
}

/// The mean scan length of a `Vec` queue over `refs`, starting from `queue` (first-seen order
/// of everything before): string comparisons per reference, position + 1 on a hit, the whole
/// queue on a miss.
fn mean_scan(refs: &[u32], mut queue_len: usize, position: &mut [Option<usize>]) -> f64 {
    let mut total = 0u64;
    for &i in refs {
        match position[i as usize] {
            Some(at) => total += at as u64 + 1,
            None => {
                total += queue_len as u64;
                position[i as usize] = Some(queue_len);
                queue_len += 1;
            }
        }
    }
    total as f64 / refs.len() as f64
}

// ----- groups --------------------------------------------------------------------------------

/// `merge/dedup/<universe>`: the engine for each request size, with and without
/// `IGNORE_IF_ALREADY_SYNCING`, and the three baselines.
fn dedup(c: &mut Criterion, s: &Settings, u: &Universe) {
    let handler = HandlerId::new("bench").unwrap();
    let running = u.running();
    let running_ids: Vec<ItemId> = (0..u.len())
        .filter(|&i| running[i])
        .map(|i| u.ids[i].clone())
        .collect();
    let first_seen = u.first_seen();
    let distinct = first_seen.len();
    let refs = u.id_refs();
    let strs = u.str_refs();
    let fresh = || busy_engine(&handler, &u.ids, &running_ids, &[]);

    let mut group = s.group(c, &format!("merge/dedup/{}", u.label));
    group.throughput(Throughput::Elements(refs.len() as u64));
    for join in [false, true] {
        let flags = if join {
            SyncControlFlags::IGNORE_IF_ALREADY_SYNCING
        } else {
            SyncControlFlags::NONE
        };
        let pending: Vec<&ItemId> = first_seen
            .iter()
            .filter(|&&i| !(join && running[i as usize]))
            .map(|&i| &u.ids[i as usize])
            .collect();
        for k in REQUEST_SIZES {
            let want = model(&u.refs, k, vec![false; u.len()], &running, join);
            assert_eq!(want.queued, pending.len());
            assert_eq!(want.joined > 0, join, "joins happen exactly with the flag");
            verify(
                fresh(),
                &handler,
                |e| merge(e, &handler, &refs, k, flags),
                want,
                &pending,
            );
            let name = if join { "engine_join" } else { "engine" };
            group.bench_function(BenchmarkId::new(name, format!("k{k}")), |b| {
                b.iter_batched(
                    fresh,
                    |mut engine| {
                        // The pending set starts empty and nothing leaves it while the session
                        // runs, so `queued` is its final size.
                        assert_eq!(merge(&mut engine, &handler, &refs, k, flags), want);
                        engine
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }

    group.bench_function("floor_ItemId_passthrough", |b| {
        b.iter_batched(
            || FloorSet::with_capacity_and_hasher(u.len(), PassThroughBuild),
            |mut set| {
                assert_eq!(floor_merge(&mut set, &refs), distinct);
                assert_eq!(set.len(), distinct);
                set
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("HashSet_String", |b| {
        b.iter_batched(
            || HashSet::with_capacity(u.len()),
            |mut set| {
                assert_eq!(string_set_merge(&mut set, &strs), distinct);
                assert_eq!(set.len(), distinct);
                set
            },
            BatchSize::PerIteration,
        );
    });

    // The `Vec` queue in its steady state: it already holds every referenced ID in
    // first-seen order, and the window is the last references of the stream (all hits).
    // Its dedup is checked from empty on a prefix first.
    {
        let prefix = &strs[..strs.len().min(20_000)];
        let prefix_distinct: HashSet<&str> = prefix.iter().copied().collect();
        let mut queue = Vec::new();
        assert_eq!(vec_merge(&mut queue, prefix), prefix_distinct.len());
        assert_eq!(vec_merge(&mut queue, prefix), 0);
        assert_eq!(queue.len(), prefix_distinct.len());
    }
    let steady_scan = (distinct + 1) as f64 / 2.0;
    let window = ((s.vec_comparisons as f64 / steady_scan) as usize).clamp(100, strs.len());
    let window_start = strs.len() - window;
    {
        // What the window's figure says about the whole stream: its mean scan versus the
        // stream's (which includes the filling phase, when the queue is shorter).
        let mut position = vec![None; u.len()];
        let stream = mean_scan(&u.refs, 0, &mut position);
        let in_window = mean_scan(&u.refs[window_start..], distinct, &mut position);
        println!(
            "merge/dedup/{}/Vec_linear_scan: window of {window} references; mean scan \
             {in_window:.0} strings in the window, {stream:.0} over the whole stream \
             (ratio {:.3})",
            u.label,
            stream / in_window,
        );
    }
    let mut queue: Vec<String> = first_seen
        .iter()
        .map(|&i| u.texts[i as usize].clone())
        .collect();
    let window = &strs[window_start..];
    group.throughput(Throughput::Elements(window.len() as u64));
    group.bench_function("Vec_linear_scan", |b| {
        b.iter(|| {
            assert_eq!(vec_merge(&mut queue, window), 0);
            assert_eq!(queue.len(), distinct);
        });
    });
    group.finish();
}

/// `merge/pending_size/k<k>`: requests of `k` items merged into a pending set that already
/// holds 1k or 100k items. The handler owns the same 100k items either way, and the requests
/// name the same 1k hot items (pending in both), so the pending set's size is the only
/// difference. `_spread` names items uniformly from all 100k pending instead: a working set
/// that no longer fits in cache, for the engine and the floor alike.
fn pending_size(c: &mut Criterion, s: &Settings, u: &Universe) {
    assert_eq!(u.len(), LARGE_PENDING);
    let handler = HandlerId::new("bench").unwrap();
    // The session holds the last item: it is pending too in the large case, not in the small.
    let running_ids = vec![u.ids[LARGE_PENDING - 1].clone()];
    let mut running = vec![false; u.len()];
    running[LARGE_PENDING - 1] = true;
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let hot: Vec<u32> = (0..s.pending_refs).map(|_| rng.below(HOT) as u32).collect();
    let spread: Vec<u32> = (0..s.pending_refs)
        .map(|_| rng.below(LARGE_PENDING) as u32)
        .collect();
    let cases = [
        ("1k_pending", SMALL_PENDING, &hot),
        ("100k_pending", LARGE_PENDING, &hot),
        ("100k_pending_spread", LARGE_PENDING, &spread),
    ];

    for k in REQUEST_SIZES {
        let mut group = s.group(c, &format!("merge/pending_size/k{k}"));
        group.throughput(Throughput::Elements(s.pending_refs as u64));
        for (name, pending, refs) in cases {
            let prefill = &u.ids[..pending];
            let ids: Vec<ItemId> = refs.iter().map(|&i| u.ids[i as usize].clone()).collect();
            let before: Vec<bool> = (0..u.len()).map(|i| i < pending).collect();
            let want = model(refs, k, before, &running, false);
            assert_eq!((want.queued, want.joined), (0, 0), "every reference merges");
            let fresh = || busy_engine(&handler, &u.ids, &running_ids, prefill);
            let all: Vec<&ItemId> = prefill.iter().collect();
            verify(
                fresh(),
                &handler,
                |e| merge(e, &handler, &ids, k, SyncControlFlags::NONE),
                want,
                &all,
            );
            group.bench_function(BenchmarkId::new("engine", name), |b| {
                b.iter_batched(
                    fresh,
                    |mut engine| {
                        let got = merge(&mut engine, &handler, &ids, k, SyncControlFlags::NONE);
                        assert_eq!(got, want);
                        engine
                    },
                    BatchSize::PerIteration,
                );
            });
        }
        for (name, pending, refs) in cases {
            let ids: Vec<ItemId> = refs.iter().map(|&i| u.ids[i as usize].clone()).collect();
            let mut set = FloorSet::with_capacity_and_hasher(pending, PassThroughBuild);
            assert_eq!(floor_merge(&mut set, &u.ids[..pending]), pending);
            group.bench_function(BenchmarkId::new("floor", name), |b| {
                b.iter(|| {
                    assert_eq!(floor_merge(&mut set, &ids), 0);
                    assert_eq!(set.len(), pending);
                });
            });
        }
        group.finish();
    }
}

fn merge_benches(c: &mut Criterion) {
    let s = Settings::from_env();
    for distinct in [1_000, 10_000] {
        dedup(c, &s, &Universe::new(distinct, s.references));
    }
    // The 100k universe serves both its dedup group and the pending-size groups.
    let large = Universe::new(LARGE_PENDING, s.references);
    dedup(c, &s, &large);
    pending_size(c, &s, &large);
}

criterion_group!(benches, merge_benches);
criterion_main!(benches);
