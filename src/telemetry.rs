//! Tracing set-up: structured logs on stderr, filtered by `RUST_LOG` or the config's
//! `telemetry.log`, and changeable while the daemon runs (`warden ctl log`). Span
//! names are the contract of DESIGN section 7 (`warden.handle`, `warden.restart`,
//! ...). OTLP export is not wired yet (see docs/runtime-semantics.md).
//!
//! Guarantee: a filter set for a while (`--for`) reverts to the start-up filter
//! when that time is up, unless another change came after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

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

/// Installs the global subscriber and returns its filter handle; `None` if a
/// subscriber was installed already.
pub fn init(filter: &str) -> Option<Arc<LogFilter>> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok());
    let from_env = env.is_some();
    let base = env.unwrap_or_else(|| filter.to_string());
    let (layer, handle) = reload::Layer::new(EnvFilter::new(&base));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    tracing_subscriber::registry()
        .with(layer)
        .with(fmt)
        .try_init()
        .ok()?;
    Some(Arc::new(LogFilter {
        handle,
        base: std::sync::Mutex::new(base),
        from_env,
        generation: AtomicU64::new(0),
    }))
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
