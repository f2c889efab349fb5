//! The hasher of the crate's maps: keyed by IDs (whose keyed hash is computed once, at
//! construction) or by the engine's sequence numbers.

use std::hash::{BuildHasher, Hasher};

/// Builds [`IdHasher`]s: the hasher for maps keyed by IDs, tuples of IDs, or the engine's
/// sequential `u64` newtypes (request and session numbers).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdBuildHasher;

impl BuildHasher for IdBuildHasher {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// A near pass-through hasher: an ID's hash is already the output of a keyed hash, so it is
/// only folded once, not hashed again.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    /// Folded multiply: the high and low halves of a 128-bit product, xored. One `mul` on
    /// 64-bit targets; every input bit reaches both the low bits (bucket index) and the top
    /// bits (hashbrown's tag byte).
    fn mix(&mut self, v: u64) {
        let product = u128::from(self.0 ^ v) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, v: u64) {
        // An ID's keyed hash is uniform already and would need nothing, but the same maps are
        // keyed by sequential request numbers too, whose top bits are all zero: storing those
        // as is would give every entry the same tag. One multiply serves both.
        self.mix(v);
    }

    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }

    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Fallback for other key parts (enum tags, byte strings), not the hot path.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }
}

/// A `HashMap` keyed by IDs that reuses each ID's precomputed hash.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, IdBuildHasher>;

/// A `HashSet` of IDs that reuses each ID's precomputed hash.
pub(crate) type IdSet<K> = std::collections::HashSet<K, IdBuildHasher>;
