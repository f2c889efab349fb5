//! A handler's sync policy: when its requests may start (debounce), what happens to a failed
//! item (retry with backoff), when the handler syncs by itself (schedule, triggers). Plain
//! values with their range checks; the engine applies them.

use std::time::Duration;

use crate::error::Error;

/// Something that happens around the application and that handlers may sync on: mobsync's
/// `SYNCMGRFLAG_CONNECT`, `SYNCMGRFLAG_PENDINGDISCONNECT` and `SYNCMGRFLAG_IDLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Trigger {
    /// A network connection came up.
    Connect,
    /// A network connection is about to go.
    PendingDisconnect,
    /// The machine is idle.
    Idle,
}

impl Trigger {
    /// Every trigger, in declaration order.
    pub const ALL: [Trigger; 3] = [Trigger::Connect, Trigger::PendingDisconnect, Trigger::Idle];
}

/// Why a request was made. Sync Center requests are `Manual` unless the caller says
/// otherwise; the legacy invoke API makes `Invoke` requests; the engine makes `Scheduled` ones
/// for a schedule and one per [`Trigger`] for triggers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TriggerReason {
    /// Asked for by the user or the application (`SYNCMGRFLAG_MANUAL`).
    #[default]
    Manual,
    /// A network connection came up (`SYNCMGRFLAG_CONNECT`).
    Connect,
    /// A network connection is about to go (`SYNCMGRFLAG_PENDINGDISCONNECT`).
    PendingDisconnect,
    /// The machine is idle (`SYNCMGRFLAG_IDLE`).
    Idle,
    /// Asked for through the invoke API (`SYNCMGRFLAG_INVOKE`).
    Invoke,
    /// A schedule fired (`SYNCMGRFLAG_SCHEDULED`).
    Scheduled,
}

impl From<Trigger> for TriggerReason {
    fn from(t: Trigger) -> TriggerReason {
        match t {
            Trigger::Connect => TriggerReason::Connect,
            Trigger::PendingDisconnect => TriggerReason::PendingDisconnect,
            Trigger::Idle => TriggerReason::Idle,
        }
    }
}

/// Let a burst of requests settle before syncing: pending items become ready `quiet` after the
/// last request that added to them, but never later than `max_wait` after the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Debounce {
    /// How long the pending set must stay untouched.
    pub quiet: Duration,
    /// The longest a pending item waits, however busy the stream of requests (at least
    /// `quiet`).
    pub max_wait: Duration,
}

/// What happens to an item whose session ends `Failed`: up to `max_attempts` attempts in all,
/// the `a`-th retry waiting `min(max, initial × factor^(a-1))`, spread by up to ± `jitter` of
/// that delay.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Retry {
    /// Attempts in all, the first included: 1 means never retry.
    pub max_attempts: u16,
    /// The delay before the first retry.
    pub initial: Duration,
    /// How much each further delay grows (at least 1).
    pub factor: f64,
    /// The longest delay.
    pub max: Duration,
    /// How much of each delay is random, from 0 (none) to 1 (anywhere between zero and twice
    /// the delay). The randomness is deterministic, seeded by the engine's configuration.
    pub jitter: f64,
}

impl Retry {
    /// No retry: a failure is final.
    pub const NONE: Retry = Retry {
        max_attempts: 1,
        initial: Duration::ZERO,
        factor: 1.0,
        max: Duration::ZERO,
        jitter: 0.0,
    };

    /// Up to `max_attempts` attempts, the delay doubling from `initial` up to `max`, no jitter.
    pub fn exponential(max_attempts: u16, initial: Duration, max: Duration) -> Retry {
        Retry {
            max_attempts,
            initial,
            factor: 2.0,
            max,
            jitter: 0.0,
        }
    }

    /// The same retry with this growth factor.
    pub fn with_factor(mut self, factor: f64) -> Retry {
        self.factor = factor;
        self
    }

    /// The same retry with this jitter.
    pub fn with_jitter(mut self, jitter: f64) -> Retry {
        self.jitter = jitter;
        self
    }

    /// Whether an item may be retried at all.
    pub fn retries(&self) -> bool {
        self.max_attempts > 1
    }

    /// The delay after failed attempt `attempt` (1 for the first), before jitter:
    /// `min(max, initial × factor^(attempt-1))`. Never overflows: a product too large is `max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use syncmgr::Retry;
    ///
    /// let r = Retry::exponential(10, Duration::from_secs(30), Duration::from_secs(3600));
    /// assert_eq!(r.delay(1), Duration::from_secs(30));
    /// assert_eq!(r.delay(3), Duration::from_secs(120));
    /// assert_eq!(r.delay(9), Duration::from_secs(3600));
    /// ```
    pub fn delay(&self, attempt: u16) -> Duration {
        let exponent = i32::from(attempt.saturating_sub(1));
        let grown = self.initial.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(grown).map_or(self.max, |d| d.min(self.max))
    }

    /// [`Retry::delay`] spread by the jitter: `unit` in `[0, 1)` picks the point in
    /// `[delay × (1 - jitter), delay × (1 + jitter)]`. Saturating.
    pub fn jittered(&self, attempt: u16, unit: f64) -> Duration {
        let delay = self.delay(attempt);
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::try_from_secs_f64(delay.as_secs_f64() * spread).unwrap_or(Duration::MAX)
    }
}

impl Default for Retry {
    fn default() -> Retry {
        Retry::NONE
    }
}

/// Sync periodically: ticks fall every `every` from when the schedule was set, each delayed
/// by a deterministic jitter between zero and `flex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Schedule {
    /// The period (more than zero).
    pub every: Duration,
    /// How late a tick may fall (at most `every`).
    pub flex: Duration,
}

/// How a handler's requests are timed. The default (no debounce, no retry, no schedule, no
/// trigger) starts every request as soon as a slot allows, which is how Sync Center behaves.
///
/// ```
/// use std::time::Duration;
/// use syncmgr::{Retry, SyncPolicy, Trigger};
///
/// let policy = SyncPolicy::default()
///     .debounce(Duration::from_secs(2), Duration::from_secs(30))
///     .retry(Retry::exponential(5, Duration::from_secs(30), Duration::from_secs(3600)))
///     .every(Duration::from_secs(15 * 60))
///     .on(Trigger::Connect);
/// assert!(policy.validate().is_ok());
///
/// let bad = SyncPolicy::default().debounce(Duration::from_secs(5), Duration::from_secs(1));
/// assert!(bad.validate().is_err()); // max_wait below quiet
/// ```
///
/// # Serialization
///
/// With the `serde` feature a policy is a map of its fields, durations in serde's shape for
/// [`Duration`] (`{"secs": 2, "nanos": 0}`), triggers by name; a missing field takes the
/// default's value, so `{}` is the default policy. Reading does not range-check: a policy
/// read from outside is checked by [`validate`](Self::validate) where it is used (handler
/// registration, a policy change), which refuses it there and changes nothing. The retry's
/// `factor` and `jitter` are `f64`: JSON cannot hold a NaN or an infinity (serde_json writes
/// `null`, which does not read back), and `validate` refuses them anyway.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct SyncPolicy {
    /// Hold new requests until they settle.
    pub debounce: Option<Debounce>,
    /// Retry failed items.
    pub retry: Retry,
    /// Sync by itself, periodically.
    pub schedule: Option<Schedule>,
    /// Sync when these are reported.
    pub triggers: Vec<Trigger>,
}

/// The longest delay a policy may name (about 136 years): anything longer could not be told
/// apart from "never", so it is refused as a mistake.
pub const MAX_DELAY: Duration = Duration::from_secs(u32::MAX as u64);

impl SyncPolicy {
    /// The same policy with a debounce.
    pub fn debounce(mut self, quiet: Duration, max_wait: Duration) -> SyncPolicy {
        self.debounce = Some(Debounce { quiet, max_wait });
        self
    }

    /// The same policy with this retry.
    pub fn retry(mut self, retry: Retry) -> SyncPolicy {
        self.retry = retry;
        self
    }

    /// The same policy with a periodic schedule and no flex.
    pub fn every(self, period: Duration) -> SyncPolicy {
        self.every_with_flex(period, Duration::ZERO)
    }

    /// The same policy with a periodic schedule whose ticks may fall up to `flex` late.
    pub fn every_with_flex(mut self, every: Duration, flex: Duration) -> SyncPolicy {
        self.schedule = Some(Schedule { every, flex });
        self
    }

    /// The same policy, also syncing on `trigger`.
    pub fn on(mut self, trigger: Trigger) -> SyncPolicy {
        if !self.triggers.contains(&trigger) {
            self.triggers.push(trigger);
        }
        self
    }

    /// Whether the policy listens for `trigger`.
    pub fn listens(&self, trigger: Trigger) -> bool {
        self.triggers.contains(&trigger)
    }

    /// Checks every range; the first broken one is an [`Error::InvalidPolicy`] naming the
    /// field. The engine calls this at registration and at every policy change.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, rule| Err(Error::InvalidPolicy { field, rule });
        let too_long = |d: Duration| d > MAX_DELAY;
        if let Some(d) = &self.debounce {
            if too_long(d.quiet) {
                return bad("debounce.quiet", "at most MAX_DELAY");
            }
            if too_long(d.max_wait) {
                return bad("debounce.max_wait", "at most MAX_DELAY");
            }
            if d.max_wait < d.quiet {
                return bad("debounce.max_wait", "at least quiet");
            }
        }
        let r = &self.retry;
        if r.max_attempts == 0 {
            return bad("retry.max_attempts", "at least 1");
        }
        if r.factor.is_nan() || r.factor < 1.0 || r.factor.is_infinite() {
            return bad("retry.factor", "a finite number, at least 1");
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return bad("retry.jitter", "between 0 and 1");
        }
        if too_long(r.initial) {
            return bad("retry.initial", "at most MAX_DELAY");
        }
        if too_long(r.max) {
            return bad("retry.max", "at most MAX_DELAY");
        }
        if let Some(s) = &self.schedule {
            if s.every.is_zero() {
                return bad("schedule.every", "more than zero");
            }
            if too_long(s.every) {
                return bad("schedule.every", "at most MAX_DELAY");
            }
            if s.flex > s.every {
                return bad("schedule.flex", "at most every");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(p: SyncPolicy) -> &'static str {
        match p.validate() {
            Err(Error::InvalidPolicy { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_range_is_checked_and_names_its_field() {
        let s = Duration::from_secs;
        let p = SyncPolicy::default;
        assert_eq!(field(p().debounce(s(2), s(1))), "debounce.max_wait");
        assert_eq!(
            field(p().debounce(Duration::MAX, Duration::MAX)),
            "debounce.quiet"
        );
        let r = Retry::exponential(3, s(1), s(10));
        assert_eq!(field(p().retry(r.with_factor(0.5))), "retry.factor");
        assert_eq!(field(p().retry(r.with_factor(f64::NAN))), "retry.factor");
        assert_eq!(
            field(p().retry(r.with_factor(f64::INFINITY))),
            "retry.factor"
        );
        assert_eq!(field(p().retry(r.with_jitter(1.5))), "retry.jitter");
        assert_eq!(field(p().retry(r.with_jitter(-0.1))), "retry.jitter");
        assert_eq!(
            field(p().retry(Retry {
                max_attempts: 0,
                ..r
            })),
            "retry.max_attempts"
        );
        assert_eq!(
            field(p().retry(Retry {
                max: Duration::MAX,
                ..r
            })),
            "retry.max"
        );
        assert_eq!(field(p().every(Duration::ZERO)), "schedule.every");
        assert_eq!(field(p().every_with_flex(s(10), s(11))), "schedule.flex");
        assert!(p().validate().is_ok());
        assert!(p().every_with_flex(s(10), s(10)).validate().is_ok());
    }

    #[test]
    fn delays_grow_cap_and_never_overflow() {
        let r = Retry::exponential(u16::MAX, Duration::from_secs(30), Duration::from_secs(3600));
        assert_eq!(r.delay(2), Duration::from_secs(60));
        assert_eq!(r.delay(u16::MAX), Duration::from_secs(3600));
        let huge = Retry {
            max: MAX_DELAY,
            initial: MAX_DELAY,
            ..r
        };
        assert_eq!(huge.delay(100), MAX_DELAY);
        let j = r.with_jitter(1.0);
        assert_eq!(j.jittered(1, 0.0), Duration::ZERO);
        assert_eq!(j.jittered(1, 0.5), Duration::from_secs(30));
        assert!(j.jittered(1, 0.999) < Duration::from_secs(60));
    }
}
