//! What a supervisor does when a child exits: the restart decision (restart type
//! against exit reason), restart intensity, the strategy's restart set, and giving
//! up (escalation) past the intensity.

use std::time::Instant;

use ractor::{ActorProcessingErr, ActorRef};

use super::{SupMsg, SupState};
use crate::supervision::restart::{should_restart, Exit};
use crate::supervision::spec::{Restart, Strategy};
use crate::supervision::tree::Status;

impl SupState {
    /// Stops every child and fails this supervisor: escalation to the parent.
    pub(super) async fn give_up(&mut self, why: String) -> Result<(), ActorProcessingErr> {
        tracing::error!(supervisor = %self.name, reason = %why, "restart intensity exceeded; giving up");
        self.tree.event("escalated", &self.name, Some(why.clone()));
        self.stop_all().await;
        Err(format!("supervisor '{}' gave up: {why}", self.name).into())
    }

    pub(super) async fn on_exit(
        &mut self,
        id: ractor::ActorId,
        exit: Exit,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let Some((i, r)) = self.find_cell(id) else {
            return Ok(()); // an incarnation this supervisor already stopped or replaced
        };
        let reason = exit.reason();
        let child = &mut self.children[i];
        child.cells[r] = None;
        let own_failure = matches!(exit, Exit::Crash { failed: true, .. });
        let had_message = child
            .slot
            .as_ref()
            .is_some_and(|s| s.replica_exited(r, id, &reason, own_failure));
        let attributed = had_message && own_failure;
        let name = child.name.clone();
        if exit.is_abnormal() {
            tracing::warn!(supervisor = %self.name, child = %name, reason = %reason, "child failed");
            self.tree.event("failed", &name, Some(reason));
        } else {
            self.tree.event("stopped", &name, Some(reason));
        }
        if !should_restart(child.spec.restart, &exit) {
            if !child.running() {
                child.generation += 1;
                child.node.set_actor_ids(Vec::new());
                child.node.set_status(if exit.is_abnormal() {
                    Status::Failed
                } else {
                    Status::Stopped
                });
            }
            return Ok(());
        }
        if !attributed && !self.window.add_restart(Instant::now()) {
            return self
                .give_up(format!("child '{name}' exited ({})", exit.reason()))
                .await;
        }
        let pool_replica = self.strategy == Strategy::OneForOne && child.cells.len() > 1;
        let order: Vec<usize> = if pool_replica {
            vec![i]
        } else {
            let range = self.strategy.affected(i, self.children.len());
            for j in range.clone().rev() {
                if j == i {
                    self.stop_child(j, Status::Restarting).await;
                } else if self.children[j].running() {
                    // OTP: temporary siblings stopped by the strategy are not restarted.
                    let temporary = self.children[j].spec.restart == Restart::Temporary;
                    let status = if temporary {
                        Status::Stopped
                    } else {
                        Status::Restarting
                    };
                    self.stop_child(j, status).await;
                }
            }
            range
                .filter(|&j| self.children[j].node.status() == Status::Restarting)
                .collect()
        };
        for &j in &order {
            self.children[j].node.set_status(Status::Restarting);
        }
        match self.children[i].next_backoff() {
            Some(d) => {
                let items = order
                    .iter()
                    .map(|&j| (j, self.children[j].generation))
                    .collect();
                myself.send_after(d, move || SupMsg::Retry(items));
                Ok(())
            }
            None => self.start_in_order(order, myself).await,
        }
    }
}
