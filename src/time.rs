//! Time as a value: [`Time`], a point on a monotonic timeline that the caller owns.
//!
//! The engine never reads a clock. The shell gives it the current time (`Engine::poll`), and
//! the engine answers with the time it next needs to be polled. A `Time` is a duration since an
//! origin the shell picks (the manager's clock starts at zero when it is built), so tests can
//! write `Time::from_secs(30)` and replay a day in microseconds.

use std::fmt;
use std::time::Duration;

/// A point in time: how long after the shell's origin. Arithmetic saturates, so no delay,
/// however large, makes a deadline overflow or panic; [`Time::MAX`] stands for "never".
///
/// ```
/// use std::time::Duration;
/// use syncmgr::Time;
///
/// let t = Time::from_secs(90);
/// assert_eq!(t + Duration::from_millis(500), Time::from_millis(90_500));
/// assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
/// assert_eq!(t.to_string(), "00:01:30.000");
/// ```
///
/// With the `serde` feature a `Time` is written as its [`Duration`] since the origin, in
/// serde's shape for `Duration` (`{"secs": 90, "nanos": 0}`); [`Time::MAX`] is
/// `{"secs": 18446744073709551615, "nanos": 999999999}`. The origin is the shell's (the
/// manager's clock starts at zero when it is built), so a `Time` means something only next to
/// others of the same manager.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Time(Duration);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(Duration::ZERO);
    /// The end of time: a deadline that never comes.
    pub const MAX: Time = Time(Duration::MAX);

    /// The time `since` after the origin.
    pub const fn from_duration(since: Duration) -> Time {
        Time(since)
    }

    /// The time `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Time {
        Time(Duration::from_secs(secs))
    }

    /// The time `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Time {
        Time(Duration::from_millis(millis))
    }

    /// How long after the origin this is.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// `self + d`, or [`Time::MAX`] if that does not fit.
    pub fn saturating_add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }

    /// How long after `earlier` this is, or zero if it is not after it.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;

    /// Saturating: see [`Time::saturating_add`].
    fn add(self, d: Duration) -> Time {
        self.saturating_add(d)
    }
}

impl fmt::Display for Time {
    /// `hh:mm:ss.mmm` after the origin (hours grow past 24); [`Time::MAX`] shows as `never`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Time::MAX {
            return f.write_str("never");
        }
        let secs = self.0.as_secs();
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.0.subsec_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_panics() {
        assert_eq!(Time::MAX + Duration::MAX, Time::MAX);
        assert_eq!(
            Time::from_secs(1).saturating_since(Time::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(
            Time::from_secs(5).saturating_since(Time::from_secs(1)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn display_is_clock_like() {
        assert_eq!(Time::ZERO.to_string(), "00:00:00.000");
        assert_eq!(Time::from_millis(90_061_005).to_string(), "25:01:01.005");
        assert_eq!(Time::MAX.to_string(), "never");
    }
}
