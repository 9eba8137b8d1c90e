//! Lifecycle events: what `watch` streams. Supervisors publish starts, exits and
//! restarts; agent slots publish dead letters and systemic pauses. Events are
//! best effort: dropped when nobody listens, never waited for.

use serde::Serialize;

/// A lifecycle event, as `watch` streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeEvent {
    /// `started`, `failed`, `restarted`, `escalated`, `dead_lettered`, `stopped`.
    pub event: &'static str,
    /// The node (or agent) concerned.
    pub name: String,
    /// Why, where there is a reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: u64,
}
