//! The guardian: an actor outside the tree that starts root linked to itself and
//! reports how root ended (shut down, or gave up) to the runtime's watchers.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;

use super::RootExit;
use crate::supervision::supervisor::{Supervisor, SupervisorArgs};
use crate::supervision::{Exit, Status, SupervisorSpec, TreeContext};

/// Starts root linked to itself and reports how it ended.
pub(super) struct Guardian;

/// What the guardian is started with.
pub(super) struct GuardianArgs {
    pub(super) spec: SupervisorSpec,
    pub(super) tree: Arc<TreeContext>,
    pub(super) exit: watch::Sender<Option<RootExit>>,
}

pub(super) struct GuardianState {
    root_name: String,
    tree: Arc<TreeContext>,
    exit: watch::Sender<Option<RootExit>>,
}

impl Actor for Guardian {
    type Msg = ();
    type State = GuardianState;
    type Arguments = GuardianArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: GuardianArgs,
    ) -> Result<GuardianState, ActorProcessingErr> {
        let name = args.spec.name.clone();
        let sup_args = SupervisorArgs {
            spec: args.spec,
            tree: args.tree.clone(),
        };
        Supervisor::spawn_linked(None, Supervisor, sup_args, myself.get_cell())
            .await
            .map_err(|e| match e {
                ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
                other => other.to_string(),
            })?;
        if let Some(node) = args.tree.node(&name) {
            node.set_status(Status::Running);
        }
        Ok(GuardianState {
            root_name: name,
            tree: args.tree,
            exit: args.exit,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        evt: SupervisionEvent,
        st: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(exit) = Exit::of(&evt) else {
            return Ok(());
        };
        let ended = match exit {
            Exit::Normal | Exit::Shutdown => RootExit::Shutdown,
            Exit::Crash { .. } | Exit::GaveUp(_) => RootExit::GaveUp(exit.reason()),
        };
        let status = match ended {
            RootExit::Shutdown => Status::Stopped,
            RootExit::GaveUp(_) => Status::Failed,
        };
        if let Some(root) = st.tree.node(&st.root_name) {
            root.set_status(status);
        }
        if let RootExit::GaveUp(why) = &ended {
            tracing::error!(root = %st.root_name, reason = %why, "root supervisor gave up");
        }
        let _ = st.exit.send(Some(ended));
        myself.stop(None);
        Ok(())
    }
}
