//! Waiting a few microseconds for what another thread is about to do, before going to sleep:
//! a caller for its result (`ticket.rs`), the idle worker for its next job (`pool.rs`).
//!
//! A thread that sleeps costs the thread with the news a wake-up system call, and on a
//! virtual machine whose idle processors halt it runs again only tens of microseconds later
//! (about 30 µs on the 2-vCPU machines of `benches/README.md`). So a wait that is likely to
//! be short first spins, then yields the processor until [`SPIN_TIME`] has passed (the clock
//! is read before each yield, so the last one may end a little later), and sleeps only after
//! that. Yielding rather than spinning gives the processor to any thread that can
//! use it: on 2 processors the thread being waited for is often one of them.

use std::time::{Duration, Instant};

/// How long a wait yields at most before it sleeps.
pub(crate) const SPIN_TIME: Duration = Duration::from_micros(50);

/// How many times it yields at most within that time. On an idle machine a yield returns at
/// once, and this count ends the wait first; on a loaded one a yield may give away a whole
/// time slice, and the time does.
pub(crate) const SPIN_YIELDS: u32 = 64;

/// When a wait that starts now has yielded long enough: [`SPIN_TIME`] from now (now itself
/// on a clock too close to its end to add it).
pub(crate) fn spin_end() -> Instant {
    let now = Instant::now();
    now.checked_add(SPIN_TIME).unwrap_or(now)
}

/// Whether `ready` holds within a few rounds of `spin_loop` (63 hints in all, a few
/// microseconds at most): no system call and no clock read.
pub(crate) fn spin(ready: impl Fn() -> bool) -> bool {
    for round in 0..6 {
        if ready() {
            return true;
        }
        for _ in 0..1u32 << round {
            std::hint::spin_loop();
        }
    }
    ready()
}

/// Whether `ready` holds while the thread yields, at most `yields` times ([`SPIN_YIELDS`]
/// for a full wait), and none once `until` has passed. The clock is read before each yield,
/// so time bounds the wait rather than a count of time slices.
pub(crate) fn yield_until(ready: impl Fn() -> bool, until: Instant, yields: u32) -> bool {
    for _ in 0..yields {
        if ready() {
            return true;
        }
        if Instant::now() >= until {
            break;
        }
        std::thread::yield_now();
    }
    ready()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use super::{SPIN_YIELDS, spin, yield_until};

    #[test]
    fn a_wait_ends_as_soon_as_ready_holds() {
        let looks = Cell::new(0);
        let ready_on_third = || {
            looks.set(looks.get() + 1);
            looks.get() >= 3
        };
        assert!(spin(ready_on_third));
        assert_eq!(looks.get(), 3);
        looks.set(0);
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(yield_until(ready_on_third, far, SPIN_YIELDS));
        assert_eq!(looks.get(), 3, "two yields, then it held");
    }

    #[test]
    fn a_wait_that_never_sees_ready_stops_after_its_yields_or_its_time() {
        let looks = Cell::new(0u32);
        let never = || {
            looks.set(looks.get() + 1);
            false
        };
        // `until` far ahead: the count of yields ends the wait.
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(!yield_until(never, far, SPIN_YIELDS));
        assert_eq!(
            looks.get(),
            SPIN_YIELDS + 1,
            "one look per yield, one after"
        );
        // `until` already past: no yield at all.
        looks.set(0);
        assert!(!yield_until(never, Instant::now(), SPIN_YIELDS));
        assert_eq!(looks.get(), 2, "the look before the clock, the one after");
    }
}
