//! What `dlq_replay` and `dlq_purge` share: picking one dead letter by id, or all.

use serde::Deserialize;

use crate::admin::error::{AdminError, ErrorCode};
use crate::envelope::MessageId;

/// `dlq_replay` and `dlq_purge` fields: one message by id, or all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PickReq {
    /// The agent.
    pub(super) agent: String,
    /// One message id (`planner:42`).
    message_id: Option<String>,
    /// Every dead letter of the agent.
    #[serde(default)]
    all: bool,
    /// `dlq_replay` only: a new deadline from now (`"30s"`), or `"none"` to clear
    /// it; without it the old deadline is kept.
    pub(super) deadline: Option<String>,
}

/// The id to act on: one (`id`) or all (`all`), never both or neither.
pub(super) fn pick(p: &PickReq) -> Result<Option<MessageId>, AdminError> {
    match (&p.message_id, p.all) {
        (Some(_), true) => Err(AdminError::bad_request(
            "give either \"message_id\" or \"all\": true, not both",
        )),
        (None, false) => Err(AdminError::bad_request(
            "give \"message_id\" (such as \"planner:42\") or \"all\": true",
        )),
        (None, true) => Ok(None),
        (Some(id), false) => {
            let (agent, seq) = id
                .rsplit_once(':')
                .and_then(|(a, s)| Some((a, s.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    AdminError::bad_request(format!(
                        "\"{id}\" is not a message id such as \"planner:42\""
                    ))
                })?;
            if agent != p.agent {
                return Err(AdminError::bad_request(format!(
                    "message {id} belongs to '{agent}', not '{}'",
                    p.agent
                )));
            }
            Ok(Some(MessageId {
                agent: agent.into(),
                seq,
            }))
        }
    }
}

/// `not_found` when one message was asked for and none was acted on.
pub(super) fn found(n: usize, p: &PickReq) -> Result<(), AdminError> {
    match &p.message_id {
        Some(id) if n == 0 => Err(AdminError::new(
            ErrorCode::NotFound,
            format!("no dead letter {id} for '{}'", p.agent),
        )),
        _ => Ok(()),
    }
}
