//! Span export over OTLP/HTTP protobuf (`<otlp_endpoint>/v1/traces`), off the
//! message path.
//!
//! Guarantees: ending a span never blocks and never allocates more than one
//! queue slot: sampled spans go into a bounded queue ([`QUEUE`] spans); when it
//! is full the span is dropped and counted; no other thread is woken for it. One
//! thread takes batches from the queue (up to [`BATCH`] spans, or what came
//! within [`INTERVAL`]) and posts them
//! with a timeout; a batch the collector did not take is dropped and counted
//! (spans are telemetry, not messages: they are never retried at the expense of
//! newer ones). Failures are logged at most once per [`REPORT_EVERY`], with what
//! was lost since. At shutdown, what is queued is sent within a bounded time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
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
    /// Spans in the queue (the exporting thread is woken when a batch is there).
    queued: Arc<AtomicUsize>,
    /// The exporting thread, to unpark.
    exporter: std::thread::Thread,
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
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let thread = std::thread::Builder::new()
            .name("warden-otlp".into())
            .spawn(move || run(rx, &q, exporter, &st, &url))
            .map_err(|e| format!("cannot start the span exporter thread: {e}"))?;
        Ok(QueueProcessor {
            tx,
            queued,
            exporter: thread.thread().clone(),
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// The exporting thread. It is not woken per span: it sleeps until the
/// interval is up, the queue holds a batch, or a flush is asked for (senders
/// unpark it then), and takes what is queued without blocking. A span ended on
/// the message path so costs a queue slot and no wake-up of another thread.
fn run(
    rx: Receiver<Item>,
    queued: &AtomicUsize,
    exporter: impl SpanExporter,
    stats: &ExportStats,
    url: &str,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut last_report: Option<Instant> = None;
    let mut lost_since = 0u64;
    let mut last_error = String::new();
    let mut deadline = Instant::now() + INTERVAL;
    loop {
        let mut flushed = None;
        let mut closed = false;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(Item::Span(s)) => {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    batch.push(*s);
                }
                Ok(Item::Flush(done)) => {
                    flushed = Some(done);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        if batch.len() < BATCH && flushed.is_none() && !closed && now < deadline {
            std::thread::park_timeout(deadline - now);
            continue;
        }
        deadline = now + INTERVAL;
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
            Ok(()) => {
                if self.queued.fetch_add(1, Ordering::Relaxed) + 1 == BATCH {
                    self.exporter.unpark();
                }
            }
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
        self.exporter.unpark();
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
