//! How every bench here drives criterion: the quick-mode switch and the one group shape.
//! Included with `#[path]` beside `common` (which `tests/memory.rs` also includes, so it
//! stays free of criterion).

#![allow(dead_code)] // each bench uses a different part

use std::hint::black_box;
use std::sync::Once;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

/// Whether `SYNCMGR_BENCH_QUICK` asks for the quick look: any value but empty or `0`.
pub fn quick_mode() -> bool {
    std::env::var("SYNCMGR_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A group as every bench here takes it: an iteration is milliseconds or more (a million
/// references, a whole stream, a gate cycle), so 10 flat samples of whole iterations.
/// The first call settles the allocator (`settle_allocator`).
pub fn flat_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    warm_up: Duration,
    measurement: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    settle_allocator();
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(warm_up)
        .measurement_time(measurement);
    group
}

/// Puts the process's allocator in the state a long-running application's is in, once,
/// before the first group.
///
/// glibc's malloc raises its trim threshold the first time a large block (one it mapped on
/// its own) is freed. Until then it hands freed memory at the top of a thread's heap back to
/// the system, and the benches' threads, spawned anew for every iteration, fault it in again
/// the next time. Criterion's own analysis frees such a block after the first bench of a
/// process, so without this the first bench alone ran in the cold state: the coalescer's
/// one-thread stream took about 1.8 ms measured first and 1.35 ms measured after another
/// bench (`benches/README.md`, eighteenth session). A 16 MiB block is under glibc's cap for
/// the raise (32 MiB); freeing it also raises glibc's mmap threshold to 16 MiB, as freeing
/// criterion's blocks did. Other allocators just map and unmap it.
fn settle_allocator() {
    static SETTLED: Once = Once::new();
    // Written, not zeroed: with a zeroed block, which glibc maps and unmaps the same way but
    // never touches, the merge bench's million one-item requests ran 10 to 20% slower
    // (README, nineteenth session; why is not known).
    SETTLED.call_once(|| drop(black_box(vec![1u8; 16 << 20])));
}
