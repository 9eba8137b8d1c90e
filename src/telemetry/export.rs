//! Span export over OTLP/HTTP protobuf (`<otlp_endpoint>/v1/traces`), off the
//! message path.
//!
//! Guarantees: ending a span never blocks and never allocates more than one
//! queue slot: sampled spans go into a bounded queue ([`QUEUE`] spans); when it
//! is full the span is dropped and counted. One thread takes batches from the
//! queue (up to [`BATCH`] spans, or what came within [`INTERVAL`]) and posts them
//! with a timeout; a batch the collector did not take is dropped and counted
//! (spans are telemetry, not messages: they are never retried at the expense of
//! newer ones). Failures are logged at most once per [`REPORT_EVERY`], with what
//! was lost since. At shutdown, what is queued is sent within a bounded time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

/// Spans waiting for export, at most.
pub const QUEUE: usize = 8192;
/// Spans per export request, at most.
pub const BATCH: usize = 512;
/// How long spans wait for a batch to fill.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// Export failures are logged at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);
/// Time allowed for one export request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What export did since the daemon started (for `/metrics`).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans the collector took.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export failed.
    pub dropped_export_failed: AtomicU64,
}

static STATS: OnceLock<Arc<ExportStats>> = OnceLock::new();

/// The export counters, when export is on.
pub fn stats() -> Option<Arc<ExportStats>> {
    STATS.get().cloned()
}

enum Item {
    Span(Box<SpanData>),
    /// Export what is queued, then answer.
    Flush(SyncSender<()>),
}

/// A span processor with a bounded queue and one exporting thread.
#[derive(Debug)]
pub(super) struct QueueProcessor {
    tx: SyncSender<Item>,
    stats: Arc<ExportStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl QueueProcessor {
    /// Starts the exporting thread, posting to `endpoint` (the collector's base
    /// URL).
    pub(super) fn start(endpoint: &str) -> Result<QueueProcessor, String> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up the OTLP exporter for {url}: {e}"))?;
        let stats = STATS.get_or_init(Default::default).clone();
        let (tx, rx) = sync_channel(QUEUE);
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("warden-otlp".into())
            .spawn(move || run(rx, exporter, &st, &url))
            .map_err(|e| format!("cannot start the span exporter thread: {e}"))?;
        Ok(QueueProcessor {
            tx,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }
}

fn run(rx: Receiver<Item>, exporter: impl SpanExporter, stats: &ExportStats, url: &str) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut last_report: Option<Instant> = None;
    let mut lost_since = 0u64;
    let mut last_error = String::new();
    loop {
        let deadline = Instant::now() + INTERVAL;
        let mut flushed = None;
        let mut closed = false;
        while batch.len() < BATCH {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Item::Span(s)) => batch.push(*s),
                Ok(Item::Flush(done)) => {
                    flushed = Some(done);
                    break;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match futures::executor::block_on(exporter.export(std::mem::take(&mut batch))) {
                Ok(()) => {
                    stats.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.dropped_export_failed.fetch_add(n, Ordering::Relaxed);
                    lost_since += n;
                    last_error = e.to_string();
                }
            }
        }
        if lost_since > 0 && last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            tracing::warn!(collector = url, spans_lost = lost_since, error = %last_error,
                "cannot export spans; the spans of the failed requests are dropped (next report in 30 s at most)");
            last_report = Some(Instant::now());
            lost_since = 0;
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.tx.try_send(Item::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let (done, wait) = sync_channel(1);
        self.tx
            .send(Item::Flush(done))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        wait.recv_timeout(TIMEOUT + INTERVAL)
            .map_err(|_| OTelSdkError::Timeout(TIMEOUT + INTERVAL))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _ = self.force_flush();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        // the thread ends when the provider drops this processor (and its sender);
        // it is not joined here, so a stuck collector cannot hold the shutdown
        drop(thread);
        let _ = timeout;
        Ok(())
    }
}
