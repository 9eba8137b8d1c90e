//! The daemon's config: TOML in, validated runtime specs out.
//!
//! Three steps, as in OTP's `check_childspecs`: the file is parsed into tables (the
//! raw mirror, `section.rs`), every table is checked for unknown keys and wrong
//! types (`daemon.rs` for the process-wide sections), and the tree is built and
//! validated as a whole (`build.rs`): every name defined
//! once, every child defined, reachable from `root`, no cycles, no bad combinations.
//! Nothing is opened or started until the whole file is valid; every error names the
//! file, the dotted key and the reason ([`ConfigError`]).
//!
//! Relative paths (`data_dir`, a sink's `path`) are relative to the working directory.

mod agent;
mod backoff;
mod build;
mod daemon;
pub mod dynamic;
mod error;
mod kind_options;
#[cfg(test)]
mod schema_matrix;
mod section;
mod warnings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use daemon::{DEFAULT_DATA_DIR, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SOCKET, SOCKET_FILE};
pub use error::ConfigError;
pub use section::{parse_duration, MAX_DURATION};

use crate::actors::Kinds;
use crate::supervision::SupervisorSpec;

/// Where the default config lives, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/warden.toml";

pub use crate::store::Durability;

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Store in `<data_dir>/store`, socket in `<data_dir>/warden.sock`.
    pub data_dir: PathBuf,
    /// Durability of accepted messages.
    pub durability: Durability,
    /// How long a graceful shutdown may take before the tree is killed.
    pub shutdown_timeout: Duration,
    /// The admin socket.
    pub socket: PathBuf,
    /// How long an idempotency key is remembered.
    pub idempotency_retention: Duration,
    /// Largest group of requests the committer makes durable with one flush.
    pub commit_max_batch: usize,
    /// How long the committer waits to gather more requests before flushing.
    pub commit_max_delay: Duration,
    /// Admin clients served at once.
    pub admin_max_clients: usize,
    /// An admin client silent this long is disconnected.
    pub admin_idle_timeout: Duration,
}

/// `[telemetry]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The tracing filter (`RUST_LOG` overrides it).
    pub log: String,
    /// Logs as one JSON object per line (`log_format = "json"`).
    pub log_json: bool,
    /// OTLP/HTTP endpoint for traces (the collector's base URL).
    pub otlp_endpoint: Option<String>,
    /// The share of traces (correlations) exported, 0 to 1.
    pub sample: f64,
    /// Where Prometheus metrics are served.
    pub metrics_listen: Option<SocketAddr>,
}

pub use crate::policies::rate_limit::LimitSpec;

/// A whole, valid config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: String,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[telemetry]`.
    pub telemetry: TelemetryConfig,
    /// `[limits.*]`.
    pub limits: BTreeMap<String, LimitSpec>,
    /// `[prices."MODEL"]`: per million input and output tokens.
    pub prices: crate::spend::Prices,
    /// The tree, from `[supervisor.root]` down.
    pub tree: SupervisorSpec,
    /// Valid combinations that cannot work as likely meant (`warden check` prints
    /// them; the daemon logs them at start).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates `path` with the built-in kinds.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &Kinds::builtin())
    }

    /// Reads and validates `path`, knowing `kinds`.
    pub fn load_with(path: &Path, kinds: &Kinds) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            reason: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(&text, &file, kinds)
    }

    /// Validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, kinds: &Kinds) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            file: file.to_string(),
            key: String::new(),
            reason: format!("not valid TOML: {}", e.to_string().trim_end()),
        })?;
        build::build(&table, file, kinds)
    }
}
