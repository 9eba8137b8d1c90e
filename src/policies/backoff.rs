//! Exponential backoff with jitter: the delay before a retry or a restart.
//!
//! `delay(n)` for the n-th retry (n >= 1) is `initial * multiplier^(n-1)`, capped at
//! `max`, then spread by up to `±jitter` of itself. The curve is a pure function of
//! `n` and a random unit value, so schedules are unit-testable without clocks.

use std::time::Duration;

/// An exponential backoff curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of any delay (before jitter).
    pub max: Duration,
    /// Growth per retry; at least 1.0.
    pub multiplier: f64,
    /// Fraction (0.0..=1.0) by which a delay is spread up or down at random.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before retry number `n` (1-based) with a random `unit` in `[0, 1)`.
    pub fn delay_with(&self, n: u32, unit: f64) -> Duration {
        let exp = n.saturating_sub(1).min(64) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        let capped = base.min(self.max.as_secs_f64());
        let spread = capped * self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((capped + spread).max(0.0))
    }

    /// The delay before retry number `n` (1-based), with fresh jitter.
    pub fn delay(&self, n: u32) -> Duration {
        self.delay_with(n, fastrand::f64())
    }

    /// Checks the curve's invariants; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.multiplier < 1.0 || !self.multiplier.is_finite() {
            return Err(format!(
                "multiplier must be a number >= 1.0, got {}",
                self.multiplier
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "jitter must be between 0.0 and 1.0, got {}",
                self.jitter
            ));
        }
        if self.max < self.initial {
            return Err(format!(
                "max ({:?}) must not be less than initial ({:?})",
                self.max, self.initial
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    #[test]
    fn grows_exponentially_and_caps_at_max() {
        let b = curve();
        let mid = |n| b.delay_with(n, 0.5);
        assert_eq!(mid(1), Duration::from_millis(100));
        assert_eq!(mid(2), Duration::from_millis(200));
        assert_eq!(mid(4), Duration::from_millis(800));
        assert_eq!(mid(5), Duration::from_secs(1));
        assert_eq!(mid(60), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let b = curve();
        assert_eq!(b.delay_with(1, 0.0), Duration::from_millis(80));
        let hi = b.delay_with(1, 0.999_999);
        assert!(hi > Duration::from_millis(119) && hi <= Duration::from_millis(120));
    }

    #[test]
    fn invalid_curves_are_named() {
        let mut b = curve();
        b.multiplier = 0.5;
        assert!(b.validate().unwrap_err().contains("multiplier"));
        let mut b = curve();
        b.jitter = 1.5;
        assert!(b.validate().unwrap_err().contains("jitter"));
        let mut b = curve();
        b.max = Duration::from_millis(1);
        assert!(b.validate().unwrap_err().contains("max"));
    }
}
