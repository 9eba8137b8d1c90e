//! Restart intensity: how many restarts a supervisor allows within a sliding window.
//!
//! A window of restart timestamps, pruned on every insert, so it never holds more
//! than `max_restarts + 1` entries: each restart is O(1) amortised and memory is
//! bounded, unlike OTP 25's list walk, which grows with restarts in the period.
//! Time is passed in, never read, so the rule is a pure function of its inputs.

use crate::clock::Instant;
use std::collections::VecDeque;

use super::spec::Intensity;

/// The restart timestamps inside the current window.
#[derive(Debug, Clone)]
pub struct IntensityWindow {
    limit: Intensity,
    stamps: VecDeque<Instant>,
}

impl IntensityWindow {
    /// The intensity it enforces.
    pub fn limit(&self) -> Intensity {
        self.limit
    }

    /// An empty window for `limit`.
    pub fn new(limit: Intensity) -> Self {
        IntensityWindow {
            limit,
            stamps: VecDeque::with_capacity(limit.max_restarts as usize + 1),
        }
    }

    /// Records a restart at `now`. Returns `false` when this restart exceeds the
    /// intensity (more than `max_restarts` inside `within`): the supervisor must give up.
    pub fn add_restart(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.stamps.front() {
            if now.saturating_duration_since(oldest) >= self.limit.within {
                self.stamps.pop_front();
            } else {
                break;
            }
        }
        self.stamps.push_back(now);
        if self.stamps.len() > self.limit.max_restarts as usize + 1 {
            self.stamps.pop_front();
        }
        self.stamps.len() <= self.limit.max_restarts as usize
    }

    /// Restarts currently inside the window.
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// True when no restart is inside the window.
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn window(max: u32, secs: u64) -> IntensityWindow {
        IntensityWindow::new(Intensity {
            max_restarts: max,
            within: Duration::from_secs(secs),
        })
    }

    #[test]
    fn allows_max_restarts_within_the_window() {
        let t = Instant::now();
        let mut w = window(3, 5);
        assert!(w.add_restart(t));
        assert!(w.add_restart(t + Duration::from_secs(1)));
        assert!(w.add_restart(t + Duration::from_secs(2)));
        assert!(!w.add_restart(t + Duration::from_secs(3)), "4th in 5 s");
    }

    #[test]
    fn restarts_older_than_the_window_are_forgotten() {
        let t = Instant::now();
        let mut w = window(3, 5);
        for i in 0..3 {
            assert!(w.add_restart(t + Duration::from_secs(i)));
        }
        // The first (t) is exactly `within` old at t+5: it leaves the window.
        assert!(w.add_restart(t + Duration::from_secs(5)));
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn zero_max_restarts_gives_up_on_the_first() {
        let mut w = window(0, 5);
        assert!(!w.add_restart(Instant::now()));
    }

    #[test]
    fn memory_stays_bounded_under_a_restart_storm() {
        let t = Instant::now();
        let mut w = window(1000, 3600);
        for i in 0..100_000u64 {
            w.add_restart(t + Duration::from_micros(i));
        }
        assert!(w.len() <= 1001);
    }
}
