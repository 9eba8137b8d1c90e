//! Latency and size histograms for `/metrics` (DESIGN section 7:
//! `handle_seconds`, `commit_seconds`, `commit_batch_size`,
//! `limiter_wait_seconds`). They are recorded only while metrics are served
//! (`telemetry.metrics_listen`), so a daemon without them pays one relaxed load
//! per observation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

static RECORDING: AtomicBool = AtomicBool::new(false);

/// Starts recording (metrics are served).
pub fn record() {
    RECORDING.store(true, Ordering::Relaxed);
}

/// Whether observations are recorded.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Bucket bounds of the second histograms: 100 µs to 60 s.
const SECONDS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// A histogram of durations, in seconds.
#[derive(Debug, Clone)]
pub struct Seconds(pub Histogram);

impl Default for Seconds {
    fn default() -> Self {
        Seconds(Histogram::new(SECONDS))
    }
}

impl Seconds {
    /// Records `d` (while metrics are served).
    pub fn observe(&self, d: Duration) {
        if recording() {
            self.0.observe(d.as_secs_f64());
        }
    }
}

/// A histogram of counts (a group commit's requests): powers of two to 4,096.
#[derive(Debug, Clone)]
pub struct Sizes(pub Histogram);

impl Default for Sizes {
    fn default() -> Self {
        Sizes(Histogram::new((0..13).map(|i| f64::from(1u32 << i))))
    }
}

impl Sizes {
    /// Records `n` (while metrics are served).
    pub fn observe(&self, n: usize) {
        if recording() {
            self.0.observe(n as f64);
        }
    }
}
