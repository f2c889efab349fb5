//! How every bench here drives criterion: the quick-mode switch and the one group shape.
//! Included with `#[path]` beside `common` (which `tests/memory.rs` also includes, so it
//! stays free of criterion).

#![allow(dead_code)] // each bench uses a different part

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

/// Whether `SYNCMGR_BENCH_QUICK` asks for the quick look: any value but empty or `0`.
pub fn quick_mode() -> bool {
    std::env::var("SYNCMGR_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A group as every bench here takes it: an iteration is milliseconds or more (a million
/// references, a whole stream, a gate cycle), so 10 flat samples of whole iterations.
pub fn flat_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    warm_up: Duration,
    measurement: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(warm_up)
        .measurement_time(measurement);
    group
}
