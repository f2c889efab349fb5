//! The workload the benches (and `tests/memory.rs`) share: the seeded generator (the one of
//! `tests/common/rng.rs`) and the floor's hasher. Every bench that uses `SEED` sees the same
//! IDs, so figures compare.
//!
//! No criterion here: `tests/memory.rs` includes this file with `#[path]` and builds without
//! the benches' dependencies. The criterion settings are in `group.rs`.

#![allow(dead_code)] // each bench uses a different part

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

/// The seed of every workload.
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

// The generator is the one the tests and the demo use; the workloads start it from the raw
// state `XorShift(SEED)`.
#[path = "../../tests/common/rng.rs"]
mod rng;
pub use rng::XorShift;

/// `n` distinct ASCII ID texts of 8–40 bytes (letters, digits, `-`, `_`), in creation order.
/// A smaller `n` from the same generator state is a prefix of a larger one.
pub fn distinct_texts(rng: &mut XorShift, n: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut seen = HashSet::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    while texts.len() < n {
        let len = 8 + rng.below(33);
        let text: String = (0..len)
            .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
            .collect();
        if seen.insert(text.clone()) {
            texts.push(text);
        }
    }
    texts
}

/// The floor's hasher: the idea of the crate's private `IdBuildHasher` (src/id.rs). An
/// `ItemId` feeds its precomputed keyed hash as one `write_u64`, folded once (one 64x64->128
/// multiply), not hashed again.
#[derive(Clone, Copy, Default)]
pub struct PassThroughBuild;

pub struct PassThrough(u64);

impl BuildHasher for PassThroughBuild {
    type Hasher = PassThrough;

    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, v: u64) {
        let product = u128::from(self.0 ^ v) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `ItemId` keys; here only to make the hasher total.
        bytes.iter().for_each(|&b| self.write_u64(u64::from(b)));
    }
}
