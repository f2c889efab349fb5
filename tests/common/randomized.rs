//! What the randomized tests (`tests/integration/stress.rs`, `tests/soak.rs`) share: the
//! seeded generator (`rng.rs`, re-exported), their knobs from the environment, and a panic hook
//! that keeps their deliberate panics quiet. Included with `#[path]`.

#![allow(dead_code)] // each test file uses a different part

use std::sync::Once;

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

/// Keeps deliberate panics (those whose message starts with `prefix`; a run makes hundreds or
/// thousands) off the terminal; every other panic still prints. The first call's prefix holds
/// for the process.
pub fn quiet_deliberate_panics(prefix: &'static str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !message.is_some_and(|m| m.starts_with(prefix)) {
                default(info);
            }
        }));
    });
}
