//! How the daemon refuses a request: a stable [`ErrorCode`] for scripts and a
//! message for people that names what is wrong and the fix.

use serde::{Deserialize, Serialize};

/// The stable, machine-readable code of a refused request (docs/admin-protocol.md
/// lists each). A code this build does not know (from a newer daemon) reads as
/// `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed: not JSON, not an object, a missing, unknown or wrong field.
    BadRequest,
    /// No such op.
    UnknownOp,
    /// No such agent.
    UnknownAgent,
    /// The agent's mailbox is at capacity.
    MailboxFull,
    /// The store could not make the message durable.
    StoreError,
    /// `call` got no reply in time.
    Timeout,
    /// No such child or dead letter.
    NotFound,
    /// `start` on a running child.
    Running,
    /// The child waits for a restart.
    Restarting,
    /// `kill` on a child that is not running.
    NotRunning,
    /// The child could not be started.
    StartFailed,
    /// The child's supervisor is not running.
    Unavailable,
    /// The name is taken.
    AlreadyExists,
    /// `delete` of an agent that still holds messages.
    NotEmpty,
    /// `hello` asked for a newer protocol.
    UnsupportedVersion,
    /// The request line was too long.
    LineTooLong,
    /// Too many clients.
    Busy,
    /// The client was silent too long.
    IdleTimeout,
    /// `reload`: the config file is invalid (nothing was changed).
    InvalidConfig,
    /// `reload`: the new config cannot be applied while the daemon runs, or the
    /// reload stopped part way (the message says what was changed).
    ReloadRefused,
    /// A code this build does not know.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::UnknownAgent => "unknown_agent",
            ErrorCode::MailboxFull => "mailbox_full",
            ErrorCode::StoreError => "store_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Running => "running",
            ErrorCode::Restarting => "restarting",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::StartFailed => "start_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::NotEmpty => "not_empty",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::Busy => "busy",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::ReloadRefused => "reload_refused",
            ErrorCode::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: a stable code and a message naming what is wrong and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    /// What kind of refusal, for scripts.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl AdminError {
    /// An error with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}
