//! Why a tree or agent spec is refused: one error type for the rules every spec
//! follows, whether it comes from the config (which wraps it with the file and
//! key), from code ([`crate::Runtime::start`]) or from a run-time `add_child`.

/// A spec that breaks a rule; the message names the thing and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A name breaks the naming rule (see [`crate::supervision::check_name`]).
    #[error("{0}")]
    Name(String),
    /// A name is taken elsewhere in the tree.
    #[error("name '{0}' is used twice in the tree")]
    Duplicate(String),
    /// An agent names a kind the runtime does not have.
    #[error("agent '{agent}': unknown kind '{kind}'; known kinds: {known}")]
    UnknownKind {
        /// The agent.
        agent: String,
        /// The kind it names.
        kind: String,
        /// The kinds there are, comma-separated.
        known: String,
    },
    /// An agent names a limiter the runtime does not have.
    #[error("agent '{agent}': no limiter '{limiter}'")]
    UnknownLimiter {
        /// The agent.
        agent: String,
        /// The limiter it names.
        limiter: String,
    },
    /// An agent's own settings are out of range.
    #[error("agent '{agent}': {reason}")]
    Agent {
        /// The agent.
        agent: String,
        /// Which setting, and the rule.
        reason: String,
    },
    /// A supervisor's strategy, template or significant children do not fit
    /// together.
    #[error("{0}")]
    Shape(String),
}
