//! Agent specifications: everything a host needs to run one named agent.

use crate::spec_error::SpecError;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::policies::backoff::Backoff;
use crate::policies::breaker::BreakerSpec;
use crate::policies::systemic::SystemicSpec;

/// Where an agent's mailbox lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    /// Kept in the store: survives a crash of the daemon.
    Durable,
    /// Kept in memory: fast, lost with the process.
    Memory,
}

impl MailboxKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxKind::Durable => "durable",
            MailboxKind::Memory => "memory",
        }
    }
}

/// One agent: its behaviour (`kind`), mailbox and per-message policies.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    /// Unique name: the agent's address.
    pub name: String,
    /// Behaviour, looked up in [`crate::actors::Kinds`].
    pub kind: String,
    /// Mailbox storage.
    pub mailbox: MailboxKind,
    /// Pending plus in-flight messages allowed before a send is refused.
    pub mailbox_capacity: usize,
    /// Host actors sharing the mailbox (competing consumers).
    pub replicas: u32,
    /// Limit of one handling attempt.
    pub timeout: Duration,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// Delay before each retry.
    pub backoff: Backoff,
    /// Hops allowed per correlation.
    pub hop_budget: u32,
    /// Named limiters this agent takes permits from.
    pub limits: Vec<String>,
    /// Honour `{"fault": ...}` directives in payloads (chaos tests, demos).
    pub accept_faults: bool,
    /// Deadline given to a correlation that starts at this agent without one.
    pub deadline: Option<Duration>,
    /// Circuit breaker.
    pub breaker: Option<BreakerSpec>,
    /// Pause on a systemic failure (distinct messages failing in a row).
    pub systemic: SystemicSpec,
    /// Kind-specific options (`to` for echo, `path` for sink).
    pub options: Map<String, Value>,
    /// Dead letters kept; past it the oldest are purged (counted in
    /// `dead_purged`, logged).
    pub dlq_max: usize,
    /// State to start from until the agent commits one (a spawned agent's
    /// `--state`).
    pub initial_state: Option<Value>,
}

/// Dead letters an agent keeps unless `dlq_max` says otherwise.
pub const DEFAULT_DLQ_MAX: usize = 10_000;

impl AgentSpec {
    /// An agent with the documented defaults.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        AgentSpec {
            name: name.into(),
            kind: kind.into(),
            mailbox: MailboxKind::Durable,
            mailbox_capacity: 10_000,
            replicas: 1,
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff: Backoff::default(),
            hop_budget: 32,
            limits: Vec::new(),
            accept_faults: false,
            deadline: None,
            breaker: None,
            systemic: SystemicSpec::default(),
            options: Map::new(),
            initial_state: None,
            dlq_max: DEFAULT_DLQ_MAX,
        }
    }

    /// Builder: set a kind-specific option.
    pub fn option(mut self, key: &str, value: Value) -> Self {
        self.options.insert(key.to_string(), value);
        self
    }

    /// Builder: set the mailbox kind.
    pub fn mailbox(mut self, kind: MailboxKind) -> Self {
        self.mailbox = kind;
        self
    }

    /// Builder: honour fault directives.
    pub fn accept_faults(mut self, yes: bool) -> Self {
        self.accept_faults = yes;
        self
    }

    /// Checks the numeric invariants; the error names the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        let fail = |reason: String| SpecError::Agent {
            agent: self.name.clone(),
            reason,
        };
        if self.replicas == 0 {
            return Err(fail("replicas must be at least 1".into()));
        }
        if self.mailbox_capacity == 0 {
            return Err(fail("mailbox_capacity must be at least 1".into()));
        }
        if self.max_attempts == 0 {
            return Err(fail("max_attempts must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(fail("timeout must be more than 0".into()));
        }
        self.backoff
            .validate()
            .map_err(|e| fail(format!("backoff: {e}")))
    }
}
