//! What the randomized tests (`tests/integration/stress.rs`, `tests/soak.rs`) share: the
//! seeded generator (`rng.rs`) and the panic hook that keeps their deliberate panics quiet
//! (`panics.rs`), both re-exported, and their knobs from the environment. Included with
//! `#[path]`.

#![allow(dead_code)] // each test file uses a different part

#[path = "panics.rs"]
mod panics;
pub use panics::quiet_deliberate_panics;
#[path = "rng.rs"]
mod rng;
pub use rng::XorShift;

/// A number from the environment (decimal, or hex with `0x`; `_` separators allowed), or
/// `default` when the variable is unset. A malformed value fails the test.
pub fn env_number(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim().replace('_', "");
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number"))
}
