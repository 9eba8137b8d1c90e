//! Tracing set-up: structured logs on stderr, filtered by `RUST_LOG` or the config's
//! `telemetry.log`. Span names are the contract of DESIGN section 7 (`warden.handle`,
//! `warden.restart`, ...). OTLP export is not wired yet (see docs/runtime-semantics.md).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call does nothing.
pub fn init(filter: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
