//! One clock for the runtime. Monotonic instants come from tokio's clock, and
//! wall-clock milliseconds (deadlines, timestamps in envelopes and dead letters)
//! are derived from it: the wall time read once, plus the monotonic time elapsed
//! since. So a test that pauses tokio's time (`tokio::time::pause`, with tokio's
//! `test-util`) moves everything together: deadlines, retry backoff, handling
//! timeouts, limiter waits, breaker and pause cool-downs, restart intensity.
//!
//! Guarantees: [`now`] never goes backwards; [`now_ms`] never goes backwards
//! within a process (a wall clock stepped back by NTP does not make deadlines
//! pass twice or expire keys early).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// The monotonic now, on tokio's (pausable) clock.
pub fn now() -> Instant {
    Instant::now()
}

/// The wall time (ms since the epoch) and the instant it was read at.
fn origin() -> &'static (u64, Instant) {
    static ORIGIN: OnceLock<(u64, Instant)> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        (wall, Instant::now())
    })
}

/// Milliseconds since the Unix epoch, on the same clock as [`now`].
pub fn now_ms() -> u64 {
    let (wall, at) = *origin();
    wall + now().saturating_duration_since(at).as_millis() as u64
}

/// The farthest ahead the runtime ever schedules anything: longer waits are
/// clamped to it, so no arithmetic on instants can overflow.
pub const FAR: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// The instant `d` from now, clamped to [`FAR`].
pub fn after(d: std::time::Duration) -> Instant {
    now() + d.min(FAR)
}

/// The wall-clock milliseconds `d` from now, clamped to [`FAR`].
pub fn ms_after(d: std::time::Duration) -> u64 {
    now_ms().saturating_add(d.min(FAR).as_millis() as u64)
}

/// The clock governor's rate limiters read: tokio's, as `std` instants.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimiterClock;

impl governor::clock::Clock for LimiterClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        now().into_std()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_instants_and_wall_milliseconds_together() {
        let (t0, ms0) = (super::now(), super::now_ms());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(super::now() - t0, Duration::from_secs(3600));
        assert!(super::now_ms() - ms0 >= 3_600_000);
    }
}
