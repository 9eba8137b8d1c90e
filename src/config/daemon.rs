//! The process-wide sections of the config: `[daemon]`, `[telemetry]` and each
//! `[limits.NAME]`, from checked tables to settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::section::Section;
use super::{ConfigError, DaemonConfig, Durability, LimitSpec, TelemetryConfig};

pub(super) const DAEMON: &[&str] = &[
    "data_dir",
    "durability",
    "shutdown_timeout",
    "socket",
    "idempotency_retention",
    "commit_max_batch",
    "commit_max_delay",
    "admin_max_clients",
    "admin_idle_timeout",
];
const TELEMETRY: &[&str] = &[
    "log",
    "log_format",
    "otlp_endpoint",
    "sample",
    "metrics_listen",
];
pub(super) const LIMIT: &[&str] = &[
    "requests_per_second",
    "requests_per_minute",
    "tokens_per_minute",
    "burst",
    "tokens_per_day",
    "cost_per_day",
];
/// Where the store and socket live unless `daemon.data_dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "var/warden";
/// The socket's file name inside the data directory.
pub const SOCKET_FILE: &str = "warden.sock";
/// `DEFAULT_DATA_DIR/SOCKET_FILE`: where `warden ctl` looks by default.
pub const DEFAULT_SOCKET: &str = "var/warden/warden.sock";
/// How long a graceful shutdown may take unless `daemon.shutdown_timeout` says.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn daemon(s: &Section) -> Result<DaemonConfig, ConfigError> {
    s.check_keys(DAEMON)?;
    let data_dir = PathBuf::from(s.str("data_dir")?.unwrap_or(DEFAULT_DATA_DIR));
    if data_dir.as_os_str().is_empty() || data_dir.parent().is_none() {
        return Err(s.err(
            "data_dir",
            "must be a directory of its own, such as \"var/warden\", not the root or empty",
        ));
    }
    let durability = match s.choice("durability", &["crash", "power"])? {
        Some("power") => Durability::Power,
        _ => Durability::Crash,
    };
    let shutdown_timeout = s
        .duration("shutdown_timeout")?
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    let socket = s
        .str("socket")?
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join(SOCKET_FILE));
    if socket.as_os_str().is_empty() {
        return Err(s.err(
            "socket",
            "must be a path, such as \"var/warden/warden.sock\"",
        ));
    }
    // sun_path holds 108 bytes with the terminating NUL
    if socket.as_os_str().len() > 107 {
        return Err(s.err(
            "socket",
            format!(
                "is {} bytes long; a Unix socket path is at most 107 bytes: pick a shorter path",
                socket.as_os_str().len()
            ),
        ));
    }
    Ok(DaemonConfig {
        data_dir,
        durability,
        shutdown_timeout,
        socket,
        idempotency_retention: s
            .duration("idempotency_retention")?
            .unwrap_or(crate::actors::slot::DEFAULT_KEY_RETENTION),
        commit_max_batch: s
            .int("commit_max_batch", 1, 1_000_000)?
            .map_or(4096, |v| v as usize),
        commit_max_delay: match s.duration("commit_max_delay")? {
            // every commit may wait this long: a second is already far too long
            Some(d) if d > Duration::from_secs(1) => {
                return Err(s.err("commit_max_delay", "must be at most 1s"))
            }
            d => d.unwrap_or(Duration::ZERO),
        },
        admin_max_clients: s
            .int("admin_max_clients", 1, 65_536)?
            .map_or(256, |v| v as usize),
        admin_idle_timeout: s
            .duration("admin_idle_timeout")?
            .unwrap_or(Duration::from_secs(300)),
    })
}

pub(super) fn telemetry(s: &Section) -> Result<TelemetryConfig, ConfigError> {
    s.check_keys(TELEMETRY)?;
    let log = s.str("log")?.unwrap_or("info").to_string();
    tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| {
        s.err(
            "log",
            format!("not a valid tracing filter ({e}); try \"info\" or \"warden=debug\""),
        )
    })?;
    let otlp_endpoint = s.str("otlp_endpoint")?.map(str::to_string);
    if let Some(ep) = &otlp_endpoint {
        if !(ep.starts_with("http://") || ep.starts_with("https://")) {
            return Err(s.err("otlp_endpoint", format!("\"{ep}\" must be an http:// or https:// URL, such as \"http://127.0.0.1:4318\"")));
        }
    }
    let metrics_listen = match s.str("metrics_listen")? {
        None => None,
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
            s.err(
                "metrics_listen",
                format!("\"{a}\" is not an address with a port, such as \"127.0.0.1:9464\""),
            )
        })?),
    };
    let log_json = s.choice("log_format", &["text", "json"])? == Some("json");
    let sample = s.number("sample", 0.0, 1.0)?.unwrap_or(1.0);
    Ok(TelemetryConfig {
        log,
        log_json,
        otlp_endpoint,
        sample,
        metrics_listen,
    })
}

pub(super) fn limit(s: &Section) -> Result<LimitSpec, ConfigError> {
    s.check_keys(LIMIT)?;
    let l = LimitSpec {
        // A permit at least every 1,000 s, at most a million a second.
        requests_per_second: s.number("requests_per_second", 0.001, 1e6)?,
        requests_per_minute: s.number("requests_per_minute", 0.06, 6e7)?,
        // The bucket holds one minute of tokens, counted in a u32.
        tokens_per_minute: s.number("tokens_per_minute", 1.0, u32::MAX as f64)?,
        burst: s.int("burst", 1, 1_000_000)?.map(|b| b as u32),
        tokens_per_day: s.int("tokens_per_day", 1, i64::MAX)?.map(|t| t as u64),
        cost_per_day: s.number("cost_per_day", 0.0, 1e12)?,
    };
    if l.requests_per_second.is_some() && l.requests_per_minute.is_some() {
        return Err(s.err(
            "requests_per_minute",
            "set either requests_per_second or requests_per_minute, not both",
        ));
    }
    if l.requests_per_second.is_none()
        && l.requests_per_minute.is_none()
        && l.tokens_per_minute.is_none()
        && l.tokens_per_day.is_none()
        && l.cost_per_day.is_none()
    {
        return Err(s.err(
            "",
            "a limiter needs requests_per_second, requests_per_minute, tokens_per_minute, tokens_per_day or cost_per_day",
        ));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_socket_is_in_the_default_data_dir() {
        let joined = std::path::Path::new(super::DEFAULT_DATA_DIR).join(super::SOCKET_FILE);
        assert_eq!(joined.to_str(), Some(super::DEFAULT_SOCKET));
    }
}
