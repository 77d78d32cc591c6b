//! When a wait ends. A timeout is turned into a [`Deadline`] once, where it is parsed, and
//! every wait below takes the deadline: no arithmetic on timeouts anywhere else, so no
//! overflow either. An infinite or absurdly large timeout is no deadline at all.

use std::time::{Duration, Instant};

/// The moment a wait gives up, or [`Deadline::NEVER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No limit.
    pub const NEVER: Deadline = Deadline(None);

    /// `secs` from now: `secs` must not be negative or NaN (the caller checks); an infinite
    /// or too large one is [`Deadline::NEVER`].
    pub fn after_secs(secs: f64) -> Deadline {
        match Duration::try_from_secs_f64(secs.max(0.0)) {
            Ok(d) => Deadline::after(d),
            Err(_) => Deadline::NEVER,
        }
    }

    /// `d` from now ([`Deadline::NEVER`] if that is past the clock's range).
    pub fn after(d: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(d))
    }

    /// Now: a wait that does not block.
    pub fn now() -> Deadline {
        Deadline(Some(Instant::now()))
    }

    /// Whether there is a limit.
    pub fn is_never(&self) -> bool {
        self.0.is_none()
    }

    /// The moment, if any.
    pub fn instant(&self) -> Option<Instant> {
        self.0
    }

    /// The time left: `None` without a limit, zero once passed.
    pub fn left(&self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// The time left, but at most `slice` (for waits that wake up to check something).
    pub fn slice(&self, slice: Duration) -> Duration {
        self.left().map_or(slice, |l| l.min(slice))
    }

    /// The later of two deadlines ([`Deadline::NEVER`] if either is).
    pub fn max(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.max(b))),
            _ => Deadline::NEVER,
        }
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (a, b) => Deadline(a.or(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_infinite_timeouts_are_no_limit() {
        assert!(Deadline::after_secs(f64::INFINITY).is_never());
        assert!(Deadline::after_secs(1e300).is_never());
        assert!(Deadline::after(Duration::MAX).is_never());
        assert!(!Deadline::after_secs(0.5).is_never());
        assert!(Deadline::after_secs(0.0).left().is_some());
    }
}
