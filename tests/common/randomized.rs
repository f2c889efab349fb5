//! What the randomized tests (`tests/stress.rs`, `tests/soak.rs`) share: a seeded generator,
//! their knobs from the environment, and a panic hook that keeps their deliberate panics quiet.
//! Included with `#[path]`.

#![allow(dead_code)] // each test file uses a different part

use std::sync::Once;

/// xorshift64 (13, 7, 17), seeded through splitmix64 so that neighbouring seeds diverge.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)).max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn per_mille(&mut self, p: usize) -> bool {
        self.below(1000) < p
    }

    pub fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[self.below(list.len())]
    }
}

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
