//! A limiter's daily budget: `[limits.NAME] tokens_per_day`, `cost_per_day`.
//!
//! A day is the calendar day in UTC (as providers bill), not a rolling 24 h:
//! the budget is whole again at 00:00 UTC. What the limiter's sharers spend
//! (the tokens and cost their handlings report, committed with their
//! hand-offs) counts against the day it was committed in. Once the day's spend
//! reaches either limit, the limiter is paused until the next 00:00 UTC, like a
//! 429 pause: every sharer waits for a permit, and a message whose deadline
//! comes first is dead-lettered `deadline_exceeded` rather than kept waiting.
//! The day's spend is kept in the store (`$ l limiter`), so a restart neither
//! forgets it nor counts it twice. Time is the runtime's clock (tokio's, so a
//! test that pauses time moves the day too).

use std::time::Duration;

use crate::store::spend::DaySpend;

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The day of `now_ms`.
pub fn day_of(now_ms: u64) -> u64 {
    now_ms / DAY_MS
}

/// Time from `now_ms` to the next 00:00 UTC.
pub fn until_next_day(now_ms: u64) -> Duration {
    Duration::from_millis(DAY_MS - now_ms % DAY_MS)
}

/// Adds spend at `now_ms` to `d` (a new day starts from nothing).
pub fn add(d: &mut DaySpend, now_ms: u64, tokens: u64, cost: f64) {
    let today = day_of(now_ms);
    if d.day != today {
        *d = DaySpend {
            day: today,
            ..DaySpend::default()
        };
    }
    d.tokens = d.tokens.saturating_add(tokens);
    d.cost += cost;
}

/// Whether `d` has spent a budget of `tokens` or `cost` by `now_ms`.
pub fn spent(d: &DaySpend, now_ms: u64, tokens: Option<u64>, cost: Option<f64>) -> bool {
    d.day == day_of(now_ms)
        && (tokens.is_some_and(|t| d.tokens >= t) || cost.is_some_and(|c| d.cost >= c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_the_utc_calendar_day() {
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        let mut d = DaySpend::default();
        add(&mut d, noon, 600, 0.5);
        add(&mut d, noon + 1, 500, 0.0);
        assert_eq!((d.day, d.tokens), (20_000, 1_100));
        assert!(spent(&d, noon, Some(1_000), None));
        assert!(!spent(&d, noon, Some(2_000), Some(1.0)));
        assert!(spent(&d, noon, None, Some(0.5)));
        assert_eq!(until_next_day(noon), Duration::from_millis(DAY_MS / 2));
        // at 00:00 UTC the budget is whole again
        let midnight = 20_001 * DAY_MS;
        assert!(!spent(&d, midnight, Some(1_000), None));
        add(&mut d, midnight, 10, 0.0);
        assert_eq!((d.day, d.tokens), (20_001, 10));
    }
}
