//! Backoff tables: `backoff = {...}` (an agent's retry delays) and
//! `restart_backoff = {...}` (a child's restart delays), with their defaults.

use std::time::Duration;

use super::section::Section;
use super::ConfigError;
use crate::policies::backoff::Backoff;
use crate::supervision::RestartBackoff;

/// The keys of `backoff`.
pub(super) const BACKOFF: &[&str] = &["initial", "max", "multiplier", "jitter"];
pub(super) const RESTART_BACKOFF: &[&str] =
    &["initial", "max", "multiplier", "jitter", "reset_after"];

pub(super) fn backoff(s: &Section, base: Backoff) -> Result<Backoff, ConfigError> {
    let b = Backoff {
        initial: s.duration("initial")?.unwrap_or(base.initial),
        max: s.duration("max")?.unwrap_or(base.max),
        multiplier: s
            .number("multiplier", 1.0, 100.0)?
            .unwrap_or(base.multiplier),
        jitter: s.number("jitter", 0.0, 1.0)?.unwrap_or(base.jitter),
    };
    b.validate().map_err(|e| s.err("", e))?;
    Ok(b)
}

pub(super) fn restart_backoff(s: &Section) -> Result<RestartBackoff, ConfigError> {
    s.check_keys(RESTART_BACKOFF)?;
    Ok(RestartBackoff {
        backoff: backoff(
            s,
            Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(10),
                multiplier: 2.0,
                jitter: 0.2,
            },
        )?,
        reset_after: s
            .duration("reset_after")?
            .unwrap_or(Duration::from_secs(30)),
    })
}
