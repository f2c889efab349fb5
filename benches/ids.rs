//! What the ID representation costs on the dedup hot path (issue 2), against the alternatives.
//!
//! One seeded workload: 10,000 distinct ASCII IDs of 8–40 bytes and 1,000,000 references
//! drawn from them. Every group reports per element (`Throughput::Elements`): per reference
//! for dedup and merge, per ID for clone and construct. `benches/README.md` defines each
//! workload and records the figures.
//!
//! Run with `cargo bench --bench ids` in `benches/` (about a minute on 2 cores).

mod common;

use common::{PassThroughBuild, SEED, XorShift, distinct_texts};
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use syncmgr::engine::{Action, Engine, HandlerSpec};
use syncmgr::{HandlerId, ItemId, SyncControlFlags};

const DISTINCT: usize = 10_000;
const REFERENCES: usize = 1_000_000;
/// Items per request in the engine group.
const CHUNK: usize = 8;

// ----- workload ------------------------------------------------------------------------------

struct Workload {
    /// The distinct ID texts, in creation order.
    texts: Vec<String>,
    /// Indices into `texts`: the references, in arrival order. Every text occurs.
    refs: Vec<u32>,
}

impl Workload {
    fn new() -> Workload {
        let mut rng = XorShift(SEED);
        let texts = distinct_texts(&mut rng, DISTINCT);
        let refs: Vec<u32> = (0..REFERENCES)
            .map(|_| rng.below(DISTINCT) as u32)
            .collect();
        let mut covered = vec![false; DISTINCT];
        refs.iter().for_each(|&i| covered[i as usize] = true);
        assert!(covered.iter().all(|&c| c), "every ID must be referenced");
        Workload { texts, refs }
    }

    /// The references as `T`s made from the distinct IDs by `f` (a clone, a borrow, ...).
    fn refs_of<'a, D, T>(&self, distinct: &'a [D], f: impl Fn(&'a D) -> T) -> Vec<T> {
        self.refs
            .iter()
            .map(|&i| f(&distinct[i as usize]))
            .collect()
    }
}

// ----- the alternatives ----------------------------------------------------------------------

/// FxHash (rustc-hash 1.x style): a fast, unkeyed multiply-rotate over the bytes, paid on every
/// hash. The "fast-hash string set" alternative of issue 2.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().unwrap()));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// The alternative representation: a plain boxed string, hashed from its bytes on every lookup.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FastStr(Box<str>);

// ----- the measured operations ---------------------------------------------------------------

/// Dedup as the engine does it: look each borrowed reference up, store a clone on first sight.
/// (`insert(r.clone())` on every reference would clone a million times for 10,000 entries.)
fn dedup<T: Hash + Eq + Clone, S: BuildHasher>(
    mut set: HashSet<T, S>,
    refs: &[T],
) -> HashSet<T, S> {
    for r in refs {
        if !set.contains(r) {
            set.insert(r.clone());
        }
    }
    set
}

/// One dedup variant: the set starts empty (sized for 10,000) and is dropped after the clock
/// stops; the check that it ends with exactly the distinct IDs is timed.
fn bench_dedup<T: Hash + Eq + Clone, S: BuildHasher + Default>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    refs: &[T],
) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || HashSet::with_capacity_and_hasher(DISTINCT, S::default()),
            |set| {
                let set = dedup(set, refs);
                assert_eq!(set.len(), DISTINCT);
                set
            },
            BatchSize::PerIteration,
        );
    });
}

/// Settings for the groups that take a million references per iteration (tens of ms): few
/// samples, each a whole number of iterations.
fn heavy<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(REFERENCES as u64));
    group
}

/// Settings for the per-ID groups (10,000 IDs per iteration, well under a millisecond).
fn light<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(DISTINCT as u64));
    group
}

fn item_ids(texts: &[String]) -> Vec<ItemId> {
    texts.iter().map(|t| ItemId::new(t).unwrap()).collect()
}

// ----- groups --------------------------------------------------------------------------------

fn ids(c: &mut Criterion) {
    let w = Workload::new();
    let ids = item_ids(&w.texts);

    {
        let mut group = heavy(c, "ids/dedup/10k_distinct");
        // Each reference vector is built before its variant and dropped after it, so at most
        // one million-entry vector besides `ids_refs` is alive at a time.
        {
            // Owned strings as received: every reference is its own allocation.
            let refs = w.refs_of(&w.texts, String::clone);
            bench_dedup::<_, RandomState>(&mut group, "a_String_std", &refs);
        }
        {
            // Borrowed strings: every reference points into the 10,000 distinct texts.
            let refs = w.refs_of(&w.texts, String::as_str);
            bench_dedup::<_, RandomState>(&mut group, "b_str_std", &refs);
        }
        // Clones of the 10,000 IDs: the references share their text (and `Arc`).
        let ids_refs = w.refs_of(&ids, ItemId::clone);
        bench_dedup::<_, RandomState>(&mut group, "c_ItemId_std", &ids_refs);
        bench_dedup::<_, PassThroughBuild>(&mut group, "d_ItemId_passthrough", &ids_refs);
        {
            let distinct: Vec<FastStr> =
                w.texts.iter().map(|t| FastStr(t.as_str().into())).collect();
            let refs = w.refs_of(&distinct, FastStr::clone);
            bench_dedup::<_, FxBuild>(&mut group, "e_FastStr_fx", &refs);
        }
        {
            // Sensitivity check for (d): every reference made anew from its text, so no two
            // share an `Arc` and equality cannot stop at the pointer; it compares the text.
            let refs = w.refs_of(&w.texts, |t| ItemId::new(t).unwrap());
            bench_dedup::<_, PassThroughBuild>(&mut group, "f_ItemId_passthrough_unshared", &refs);
        }
        {
            // Sensitivity check for (e): the same fast hash over borrowed texts, so the
            // references share their bytes as (d)'s do: the hash alone, without the
            // separate allocations.
            let refs = w.refs_of(&w.texts, String::as_str);
            bench_dedup::<_, FxBuild>(&mut group, "g_str_fx", &refs);
        }
        group.finish();

        merge_while_busy(c, &ids, &ids_refs);
    }

    {
        let mut group = light(c, "ids/clone");
        group.bench_function("ItemId", |b| {
            b.iter_batched(
                || Vec::with_capacity(DISTINCT),
                |mut out| {
                    out.extend(ids.iter().cloned());
                    assert_eq!(out.len(), DISTINCT);
                    out
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function("String", |b| {
            b.iter_batched(
                || Vec::with_capacity(DISTINCT),
                |mut out| {
                    out.extend(w.texts.iter().cloned());
                    assert_eq!(out.len(), DISTINCT);
                    out
                },
                BatchSize::PerIteration,
            );
        });
        group.finish();
    }

    {
        let mut group = light(c, "ids/construct");
        let total: usize = w.texts.iter().map(String::len).sum();
        group.bench_function("ItemId_new", |b| {
            b.iter_batched(
                || Vec::with_capacity(DISTINCT),
                |mut out| {
                    out.extend(w.texts.iter().map(|t| ItemId::new(t).unwrap()));
                    assert_eq!(out.iter().map(|id| id.as_str().len()).sum::<usize>(), total);
                    out
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function("String_from", |b| {
            b.iter_batched(
                || Vec::with_capacity(DISTINCT),
                |mut out| {
                    out.extend(w.texts.iter().map(|t| String::from(t.as_str())));
                    assert_eq!(out.iter().map(String::len).sum::<usize>(), total);
                    out
                },
                BatchSize::PerIteration,
            );
        });
        group.finish();
    }
}

/// The real engine merging a million references into one handler's pending set while its
/// session runs, against the pass-through set insert (d) on the same references and chunks.
fn merge_while_busy(c: &mut Criterion, ids: &[ItemId], refs: &[ItemId]) {
    let handler = HandlerId::new("bench").unwrap();
    // A handler with the 10,000 items and a running session: every later request queues.
    let busy_engine = || {
        let mut engine = Engine::default();
        engine
            .register_handler(HandlerSpec::new(handler.clone()).items(ids.iter().cloned()))
            .unwrap();
        let _ = engine
            .start_item_sync(&handler, &ids[..1], SyncControlFlags::NONE)
            .unwrap();
        let started: Vec<Action> = engine.drain_actions().collect();
        assert!(matches!(started[..], [Action::StartSession { .. }]));
        engine
    };
    let merge = |mut engine: Engine| {
        let mut queued = 0;
        for chunk in refs.chunks(CHUNK) {
            let accepted = engine
                .start_item_sync(&handler, chunk, SyncControlFlags::NONE)
                .unwrap();
            queued += accepted.queued_new();
        }
        // Every distinct item (the running one too) got exactly one pending entry, and no
        // session started or result came while the first session runs.
        assert_eq!(queued, DISTINCT);
        assert_eq!(engine.drain_actions().count(), 0);
        engine
    };

    // Checked once in full outside the clock: `pending_items` and `check_consistency` copy or
    // walk the whole engine, which is not what a merge costs.
    let engine = merge(busy_engine());
    assert_eq!(engine.pending_items(&handler).len(), DISTINCT);
    engine.check_consistency().unwrap();
    drop(engine);

    let mut group = heavy(c, "engine/merge_while_busy/10k_distinct");
    group.bench_function("engine_start_item_sync", |b| {
        b.iter_batched(busy_engine, merge, BatchSize::PerIteration);
    });
    group.bench_function("floor_d_ItemId_passthrough_chunks8", |b| {
        b.iter_batched(
            || HashSet::with_capacity_and_hasher(DISTINCT, PassThroughBuild),
            |mut set| {
                for chunk in refs.chunks(CHUNK) {
                    set = dedup(set, chunk);
                }
                assert_eq!(set.len(), DISTINCT);
                set
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ids);
criterion_main!(benches);
