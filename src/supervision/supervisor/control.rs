//! Operator control of a supervisor's children: stop, start, restart and kill one
//! child by name (OTP's `terminate_child`, `restart_child`), add a child
//! (`start_child`), and list them (`which_children`).

use serde::Serialize;

use ractor::ActorRef;

use super::{SupMsg, SupState};
use crate::supervision::tree::Status;

/// Why a control request was refused (OTP's `terminate_child`/`restart_child` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No child by that name.
    #[error("{0}")]
    NotFound(String),
    /// The child is running already.
    #[error("'{0}' is running already; use restart to restart it")]
    Running(String),
    /// The child is waiting for a restart.
    #[error("'{0}' is restarting; wait for it or stop it first")]
    Restarting(String),
    /// The child is not running.
    #[error("'{0}' is not running; start it first")]
    NotRunning(String),
    /// The child could not be started.
    #[error("'{name}' failed to start: {reason}")]
    StartFailed {
        /// The child.
        name: String,
        /// Why.
        reason: String,
    },
    /// A child spec was refused.
    #[error("{0}")]
    Invalid(String),
    /// The supervisor is not running (stopped, restarting or shutting down).
    #[error("supervisor '{0}' is not running; try again when it is")]
    Unavailable(String),
    /// The name is taken in the tree.
    #[error("'{0}' exists already in the tree; pick another name, or delete it first")]
    Exists(String),
    /// A delete that would lose messages.
    #[error("'{name}' still has {live} message(s) waiting or in flight and {dead} dead letter(s); delete refuses to lose them: let it finish its mailbox, and replay or purge its dead letters (warden ctl dlq purge {name} --all), then delete again")]
    NotEmpty {
        /// The child.
        name: String,
        /// Waiting and in flight.
        live: usize,
        /// Dead letters.
        dead: usize,
    },
}

impl From<crate::SpecError> for ControlError {
    fn from(e: crate::SpecError) -> Self {
        ControlError::Invalid(e.to_string())
    }
}

/// An operator's request about one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOp {
    /// Stop gracefully; it stays stopped (OTP `terminate_child`).
    Stop,
    /// Start a stopped child (OTP `restart_child`).
    Start,
    /// Stop and start again.
    Restart,
    /// Kill abruptly: handled as a crash, by the strategy.
    Kill,
}

/// One row of `which_children`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildInfo {
    /// Child name.
    pub name: String,
    /// `agent` or `supervisor`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Restart type.
    pub restart: &'static str,
    /// Status.
    pub status: Status,
    /// Its normal end can stop the supervisor (auto shutdown).
    pub significant: bool,
    /// Made at run time (spawn, add_child): it can be deleted.
    pub dynamic: bool,
    /// Actor ids of the running incarnation (one per replica).
    pub actor_ids: Vec<String>,
}

impl SupState {
    pub(super) async fn control(
        &mut self,
        op: ControlOp,
        name: &str,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ControlError> {
        let i = self.find(name)?;
        let status = self.children[i].node.status();
        match op {
            ControlOp::Stop => {
                self.stop_child(i, Status::Stopped).await;
                self.cancel_from(i);
                Ok(())
            }
            ControlOp::Start => match status {
                _ if self.children[i].running() => Err(ControlError::Running(name.into())),
                Status::Restarting => Err(ControlError::Restarting(name.into())),
                _ => self.start_child(i, myself).await.map_err(|reason| {
                    self.children[i].node.set_status(Status::Failed);
                    ControlError::StartFailed {
                        name: name.into(),
                        reason,
                    }
                }),
            },
            ControlOp::Restart => {
                if status == Status::Restarting {
                    return Err(ControlError::Restarting(name.into()));
                }
                self.stop_child(i, Status::Restarting).await;
                self.start_child(i, myself).await.map_err(|reason| {
                    self.children[i].node.set_status(Status::Failed);
                    ControlError::StartFailed {
                        name: name.into(),
                        reason,
                    }
                })?;
                self.children[i].node.count_restart();
                self.tree.event("restarted", name, Some("operator".into()));
                Ok(())
            }
            ControlOp::Kill => {
                let child = &self.children[i];
                if !child.running() {
                    return Err(ControlError::NotRunning(name.into()));
                }
                for cell in child.cells.iter().flatten() {
                    cell.kill();
                }
                Ok(())
            }
        }
    }

    pub(super) fn which(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|(name, c)| ChildInfo {
                name: name.clone(),
                kind: if c.is_supervisor() {
                    "supervisor"
                } else {
                    "agent"
                },
                restart: c.spec.restart.as_str(),
                status: c.node.status(),
                significant: c.spec.significant,
                dynamic: c.spec.dynamic,
                actor_ids: c
                    .cells
                    .iter()
                    .flatten()
                    .map(|c| c.get_id().to_string())
                    .collect(),
            })
            .collect()
    }
}
