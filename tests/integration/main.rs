//! The integration tests that share a process: one binary, one module per former test file,
//! so they build and link once (jiff's `tests/lib.rs` shape; Cargo finds this folder's
//! `main.rs` without a `[[test]]` entry). Run one part with a filter:
//!
//! ```text
//! cargo test --test integration scenarios::
//! cargo test --release --test integration stress:: -- --nocapture
//! ```
//!
//! Three test files stay binaries of their own: `memory.rs` and `soak.rs` install a counting
//! global allocator and read process-wide figures (live bytes, the thread count in
//! `/proc/self/status`) that tests running beside them would disturb, and `properties.rs` is
//! run alone for long searches (`PROPTEST_CASES=100000 cargo test --release --test
//! properties`). `faults.rs` has no such reason and can join this binary.

#[path = "../common/mod.rs"]
mod common;

mod contracts;
mod engine_testing;
mod legacy;
mod manager_async;
mod manager_lifecycle;
mod manager_requests;
mod manager_sessions;
mod manager_time;
mod scenarios;
mod serde;
mod stress;
mod traced;
