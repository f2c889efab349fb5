//! The one seeded generator of the tests, the benches and the demo: Marsaglia's xorshift64
//! (shifts 13, 7, 17). Deterministic and without a dependency, so a seed replays a run, and
//! plenty for picking lengths, indices and fates. No file owns it more than another: each
//! includes this one with `#[path]` (the benches and the examples cannot import test code).

#![allow(dead_code)] // each includer uses a different part

/// A xorshift64 generator. `XorShift(state)` starts from a raw, nonzero state (the benches'
/// fixed workloads); [`XorShift::seeded`] from any seed.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    /// A generator from any seed, neighbouring seeds spread apart by SplitMix64's finaliser;
    /// the state is odd, so never the all-zero state xorshift cannot leave.
    pub fn seeded(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `0..n` for small `n` (the modulo bias is below 2^-40 for `n` up to
    /// a million).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        lo + (self.next() % span) as u32
    }

    /// True `p` times in a thousand.
    pub fn per_mille(&mut self, p: usize) -> bool {
        self.below(1000) < p
    }

    /// True once in `n` times; never for 0.
    pub fn one_in(&mut self, n: u32) -> bool {
        n > 0 && self.next().is_multiple_of(u64::from(n))
    }

    /// One element of a non-empty list.
    pub fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[self.below(list.len())]
    }
}
