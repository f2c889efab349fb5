//! The engine's timers: every deadline it waits for, in one ordered set.
//!
//! A timer is a `(due, Timer)` pair in a `BTreeSet`: setting, cancelling and firing one cost
//! O(log n), the next deadline is the set's first element, and a timer that waits costs
//! nothing. Each owner (a handler's debounce window or ticker, an item's backoff) keeps its
//! own due time, so a timer is always cancelled exactly, never left behind to fire stale.
//! Ties fire in `Timer` order, so the same inputs fire timers in the same order.

use std::collections::BTreeSet;
use std::time::Duration;

use super::queue::ItemIdx;
use super::state::HandlerKey;
use crate::time::Time;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    /// The handler's debounce window closes: its debounced items become ready.
    Debounce(HandlerKey),
    /// The item's backoff ends: it becomes ready for its next attempt.
    Retry(HandlerKey, ItemIdx),
    /// The handler's schedule ticks.
    Tick(HandlerKey),
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(Time, Timer)>,
}

impl Timers {
    pub fn set(&mut self, due: Time, timer: Timer) {
        let fresh = self.set.insert((due, timer));
        debug_assert!(fresh, "{timer:?} set twice for {due}");
    }

    pub fn cancel(&mut self, due: Time, timer: Timer) {
        let was = self.set.remove(&(due, timer));
        debug_assert!(was, "{timer:?} cancelled at {due} but not set");
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Time> {
        self.set.first().map(|&(due, _)| due)
    }

    /// Takes the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Time) -> Option<(Time, Timer)> {
        if self.next()? > now {
            return None;
        }
        self.set.pop_first()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn contains(&self, due: Time, timer: Timer) -> bool {
        self.set.contains(&(due, timer))
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Time, Timer)> {
        self.set.iter()
    }
}

/// A number in `[0, 1)` that depends only on its inputs: the engine's jitter. SplitMix64's
/// finaliser over the inputs folded together; the same seed and inputs give the same value on
/// every platform.
pub(crate) fn unit(seed: u64, a: u64, b: u64, c: u64) -> f64 {
    let mut x = seed;
    for v in [a, b, c] {
        x = mix(x ^ mix(v.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    // The top 53 bits, as a fraction.
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `d × k`, saturating at `Duration::MAX`.
pub(crate) fn times(d: Duration, k: u64) -> Duration {
    let nanos = d.as_nanos().saturating_mul(u128::from(k));
    let secs = nanos / 1_000_000_000;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (nanos % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}

/// A share `unit` in `[0, 1)` of `d`.
pub(crate) fn share(d: Duration, unit: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * unit).map_or(d, |s| s.min(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_time_then_kind_order_and_cancel_exactly() {
        let mut t = Timers::default();
        let (a, b) = (HandlerKey::tag(1), HandlerKey::tag(2));
        t.set(Time::from_secs(5), Timer::Tick(b));
        t.set(Time::from_secs(5), Timer::Debounce(a));
        t.set(Time::from_secs(9), Timer::Tick(a));
        t.set(Time::from_secs(1), Timer::Retry(a, ItemIdx::of(3)));
        t.cancel(Time::from_secs(1), Timer::Retry(a, ItemIdx::of(3)));
        assert_eq!(t.next(), Some(Time::from_secs(5)));
        assert_eq!(t.pop_due(Time::from_secs(4)), None);
        assert_eq!(
            t.pop_due(Time::from_secs(6)),
            Some((Time::from_secs(5), Timer::Debounce(a)))
        );
        assert_eq!(
            t.pop_due(Time::from_secs(6)),
            Some((Time::from_secs(5), Timer::Tick(b)))
        );
        assert_eq!(t.pop_due(Time::from_secs(6)), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn jitter_is_deterministic_and_in_range() {
        let u = unit(7, 1, 2, 3);
        assert_eq!(u, unit(7, 1, 2, 3));
        assert_ne!(u, unit(8, 1, 2, 3));
        for i in 0..1000 {
            let v = unit(0, i, 0, 0);
            assert!((0.0..1.0).contains(&v));
        }
    }

    #[test]
    fn multiples_saturate() {
        assert_eq!(
            times(Duration::from_millis(1500), 3),
            Duration::from_millis(4500)
        );
        assert_eq!(times(Duration::MAX, 2), Duration::MAX);
        assert_eq!(share(Duration::from_secs(10), 0.5), Duration::from_secs(5));
    }
}
