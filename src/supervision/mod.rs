//! Supervision: supervisor actors, child specs, strategies, restart intensity and
//! the tree view.
//!
//! ractor provides links, panic capture and supervision events; everything OTP adds
//! on top (strategies, restart types, intensity and escalation, ordered start and
//! stop, stable names across restarts, restart backoff) is implemented here.

pub mod diff;
pub mod intensity;
pub mod node;
pub mod restart;
pub mod snapshot;
pub mod spec;
pub(crate) mod supervisor;
pub mod tree;
pub mod validate;

pub use restart::{Exit, EXIT_GAVE_UP, EXIT_NORMAL, EXIT_SHUTDOWN};
pub use snapshot::TreeSnapshot;
pub use spec::{
    AutoShutdown, ChildKind, ChildSpec, Intensity, Restart, RestartBackoff, Shutdown, Strategy,
    SupervisorSpec, DEFAULT_AGENT_SHUTDOWN,
};
pub use supervisor::{ChildInfo, ControlError, ControlOp};
pub use tree::{Status, TreeContext, TreeEvent};
pub use validate::{check_name, MAX_DEPTH, MAX_NAME_LEN};
