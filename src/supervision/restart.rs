//! The restart decision: why a child exited, and whether that restarts it.
//!
//! One match of restart type against exit reason, as in OTP's `do_restart`:
//! permanent children always restart, transient ones only after an abnormal exit,
//! temporary ones never. As in OTP, `shutdown` and `shutdown: <info>` (OTP's
//! `{shutdown, Term}`) are not abnormal, and neither is a supervisor giving up: OTP
//! exits a supervisor past its intensity with reason `shutdown`, so a transient
//! supervisor that gives up is not restarted by its parent.

use ractor::SupervisionEvent;

use super::spec::Restart;

pub use crate::actors::exit::{EXIT_GAVE_UP, EXIT_NORMAL, EXIT_SHUTDOWN};

/// Why a child's actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It stopped itself normally.
    Normal,
    /// Its supervisor (or the operator) stopped it, or it ended with `shutdown` or
    /// `shutdown: <info>`.
    Shutdown,
    /// A supervisor gave up past its restart intensity (a shutdown for the restart
    /// decision, a failure for status and escalation).
    GaveUp(String),
    /// It failed: a panic or an error in its handler (`failed`), or it was killed or
    /// ended for another reason (`failed == false`).
    Crash {
        /// The reason text.
        reason: String,
        /// True when the actor's own code failed (panic or fatal error).
        failed: bool,
    },
}

impl Exit {
    /// Classifies a supervision event; `None` for events that are not exits.
    pub fn of(evt: &SupervisionEvent) -> Option<Exit> {
        match evt {
            SupervisionEvent::ActorFailed(_, err) => Some(Exit::Crash {
                reason: err.to_string(),
                failed: true,
            }),
            SupervisionEvent::ActorTerminated(_, _, reason) => Some(match reason.as_deref() {
                Some(EXIT_NORMAL) => Exit::Normal,
                Some(EXIT_SHUTDOWN) => Exit::Shutdown,
                Some(other) if other.starts_with("shutdown: ") => Exit::Shutdown,
                Some(other) if other.starts_with(EXIT_GAVE_UP) => Exit::GaveUp(other.to_string()),
                Some(other) => Exit::Crash {
                    reason: other.to_string(),
                    failed: false,
                },
                None => Exit::Crash {
                    reason: "stopped without a reason".into(),
                    failed: false,
                },
            }),
            _ => None,
        }
    }

    /// True for a crash, or a supervisor that gave up.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Exit::Crash { .. } | Exit::GaveUp(_))
    }

    /// Text for logs, events and dead letters.
    pub fn reason(&self) -> String {
        match self {
            Exit::Normal => EXIT_NORMAL.into(),
            Exit::Shutdown => EXIT_SHUTDOWN.into(),
            Exit::GaveUp(why) => why.clone(),
            Exit::Crash { reason, failed } if *failed => format!("panic: {reason}"),
            Exit::Crash { reason, .. } => reason.clone(),
        }
    }
}

/// Whether a child of type `restart` that exited with `exit` is restarted.
pub fn should_restart(restart: Restart, exit: &Exit) -> bool {
    match (restart, exit) {
        (Restart::Permanent, _) => true,
        (Restart::Transient, Exit::Crash { .. }) => true,
        (Restart::Transient, Exit::Normal | Exit::Shutdown | Exit::GaveUp(_)) => false,
        (Restart::Temporary, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash() -> Exit {
        Exit::Crash {
            reason: "boom".into(),
            failed: true,
        }
    }

    #[test]
    fn restart_matrix() {
        use Restart::*;
        let cases = [
            (Permanent, Exit::Normal, true),
            (Permanent, Exit::Shutdown, true),
            (Permanent, crash(), true),
            (Transient, Exit::Normal, false),
            (Transient, Exit::Shutdown, false),
            (Transient, crash(), true),
            (Temporary, Exit::Normal, false),
            (Temporary, crash(), false),
            (Permanent, Exit::GaveUp("gave up: x".into()), true),
            (Transient, Exit::GaveUp("gave up: x".into()), false),
            (Temporary, Exit::GaveUp("gave up: x".into()), false),
        ];
        for (r, e, want) in cases {
            assert_eq!(should_restart(r, &e), want, "{r:?} x {e:?}");
        }
    }
}
