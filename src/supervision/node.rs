//! One node of the tree: what it is, its lifecycle status, restarts and the actor
//! ids of its running incarnation. Supervisors write their children's nodes;
//! readers never wait on a supervisor to read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use ractor::ActorId;
use serde::Serialize;

/// A node's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Not started yet.
    Starting,
    /// Running.
    Running,
    /// Between a failure and its restart (including restart backoff).
    Restarting,
    /// Stopped on purpose, or exited normally and not restarted.
    Stopped,
    /// Exited abnormally and not restarted, or gave up (a supervisor).
    Failed,
    /// An agent that stopped consuming its mailbox after a systemic failure
    /// ([`crate::policies::systemic`]); `paused` in the snapshot says why.
    Paused,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeKind {
    /// An agent with this many replicas.
    Agent {
        /// Replica count.
        replicas: u32,
    },
    /// A supervisor with this strategy and these children, in start order.
    Supervisor {
        /// `one_for_one`, ...
        strategy: &'static str,
        /// Child names.
        children: Vec<String>,
    },
}

/// One node of the tree.
#[derive(Debug)]
pub struct Node {
    /// Agent or supervisor.
    pub kind: RwLock<NodeKind>,
    status: Mutex<Status>,
    restarts: AtomicU64,
    ids: Mutex<Vec<ActorId>>,
}

impl Node {
    pub(crate) fn new(kind: NodeKind) -> Self {
        Node {
            kind: RwLock::new(kind),
            status: Mutex::new(Status::Starting),
            restarts: AtomicU64::new(0),
            ids: Mutex::new(Vec::new()),
        }
    }

    /// Current status.
    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_status(&self, s: Status) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Restarts since the daemon started.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Actor ids of the current incarnation (one per replica); empty when not running.
    pub fn actor_ids(&self) -> Vec<ActorId> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_actor_ids(&self, ids: Vec<ActorId>) {
        *self.ids.lock().unwrap_or_else(|p| p.into_inner()) = ids;
    }
}
