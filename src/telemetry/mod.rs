//! Tracing set-up: logs on stderr (text, or one JSON object per line with
//! `telemetry.log_format = "json"`), filtered by `RUST_LOG` or the config's
//! `telemetry.log` and changeable while the daemon runs (`warden ctl log`); and,
//! with `telemetry.otlp_endpoint`, the spans about messages exported over
//! OTLP/HTTP ([`trace`] for their context, [`export`] for the exporter). Span
//! names are the contract of DESIGN section 7 (`warden.enqueue`, `warden.handle`,
//! `warden.dead_letter`, ...).
//!
//! Guarantees: a filter set for a while (`--for`) reverts to the start-up filter
//! when that time is up, unless another change came after it. The log filter
//! filters the log only: exported spans do not depend on it.

pub mod export;
pub mod histograms;
pub mod json_log;
pub mod trace;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// The live log filter.
pub struct LogFilter {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The filter the daemon started with (or the config gave at its last reload),
    /// restored after a timed change.
    base: std::sync::Mutex<String>,
    /// `RUST_LOG` set the base: the config's filter does not replace it.
    from_env: bool,
    /// Bumped by every change, so an old timed change does not revert a newer one.
    generation: AtomicU64,
}

/// How the daemon's telemetry is set up (the config's `[telemetry]`).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The log filter.
    pub log: String,
    /// One JSON object per log line.
    pub json: bool,
    /// The OTLP collector's base URL and the share of traces sampled.
    pub otlp: Option<(String, f64)>,
}

/// The spans exported, by name: those about messages (each in its message's
/// trace).
/// (`warden.enqueue` and `warden.handle`, one per message and per attempt, are
/// made by the tracer directly: [`trace::enqueue`], [`trace::Handling`].)
const EXPORTED: &[&str] = &["warden.dead_letter", "warden.restart"];

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the log is JSON lines (`log_format = "json"`): then each message
/// handled gets an info-level span, so that every line about it names it.
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
    std::sync::OnceLock::new();

/// Installs the global subscriber and returns its filter handle; `None` if a
/// subscriber was installed already. An exporter that cannot be set up is
/// logged, and the daemon runs without it.
pub fn init(setup: &Setup) -> Option<Arc<LogFilter>> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok());
    let from_env = env.is_some();
    let base = env.unwrap_or_else(|| setup.log.clone());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&base));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!setup.json && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if setup.json {
        JSON_LOGS.store(true, Ordering::Relaxed);
        fmt.fmt_fields(json_log::span_fields())
            .event_format(json_log::JsonLine)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let mut layers = vec![fmt];
    let mut failed = None;
    if let Some((endpoint, sample)) = &setup.otlp {
        match export::QueueProcessor::start(endpoint) {
            Ok(processor) => {
                use opentelemetry_sdk::trace::Sampler;
                let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_span_processor(processor)
                    .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                        *sample,
                    ))))
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name("warden")
                            .build(),
                    )
                    .build();
                let tracer = provider.tracer("warden");
                let _ = PROVIDER.set(provider);
                trace::enable(tracer.clone());
                layers.push(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        // the message's own attributes only: no source
                        // location, thread or busy/idle time per span (each
                        // costs work on the message path, and says nothing
                        // about the message)
                        .with_location(false)
                        .with_threads(false)
                        .with_tracked_inactivity(false)
                        .with_target(false)
                        .with_filter(
                            tracing_subscriber::filter::filter_fn(|m| {
                                m.is_span() && EXPORTED.contains(&m.name())
                            })
                            // so that the `log` records of dependencies below
                            // info are not even made for this layer's sake
                            .with_max_level_hint(tracing::level_filters::LevelFilter::INFO),
                        )
                        .boxed(),
                );
            }
            Err(e) => failed = Some(e),
        }
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .ok()?;
    if let Some(e) = failed {
        tracing::error!("{e}; spans are not exported");
    }
    Some(Arc::new(LogFilter {
        handle,
        base: std::sync::Mutex::new(base),
        from_env,
        generation: AtomicU64::new(0),
    }))
}

/// Sends the spans still queued (bounded in time); at the daemon's exit.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

impl LogFilter {
    /// Sets the filter (`debug`, `warden=debug,info`, ...) now; with `for_`, until
    /// then. A filter that does not parse changes nothing.
    pub fn set(self: &Arc<Self>, filter: &str, for_: Option<Duration>) -> Result<(), String> {
        let parsed = EnvFilter::try_new(filter)
            .map_err(|e| format!("\"{filter}\" is not a log filter ({e}); use a level such as \"debug\", or directives such as \"warden=debug,info\""))?;
        self.handle
            .reload(parsed)
            .map_err(|e| format!("cannot change the log filter: {e}"))?;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::warn!(filter, ?for_, "log filter changed");
        if let Some(d) = for_ {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                if me.generation.load(Ordering::SeqCst) == generation {
                    let base = me.base();
                    let _ = me.handle.reload(EnvFilter::new(&base));
                    tracing::info!(filter = %base, "log filter back to the start-up filter");
                }
            });
        }
        Ok(())
    }

    /// The start-up filter (or the config's, after a reload).
    pub fn base(&self) -> String {
        self.base.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A reloaded config's `telemetry.log`: the new base, in force now, unless
    /// `RUST_LOG` set the filter at start. Returns whether it was applied.
    pub fn rebase(self: &Arc<Self>, filter: &str) -> Result<bool, String> {
        if self.from_env {
            return Ok(false);
        }
        self.set(filter, None)?;
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = filter.to_string();
        Ok(true)
    }
}
