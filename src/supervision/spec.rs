//! Child specifications: what a supervisor starts, how, and when it restarts it.
//!
//! Specs are plain data, validated once (by [`crate::config`] or by
//! [`SupervisorSpec::validate`] for trees declared in code) and never changed by the
//! running tree. They are OTP's child specs: a restart type, a shutdown, and what to
//! start, which is either an agent or another supervisor.

use std::time::Duration;

use crate::actors::AgentSpec;
use crate::policies::backoff::Backoff;

/// Which siblings a supervisor restarts when one child fails (OTP `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that failed.
    OneForOne,
    /// Stop every child (reverse start order), then start them all again in order.
    OneForAll,
    /// Stop the failed child and every child declared after it, then start them in order.
    RestForOne,
    /// Every child is made at run time from one template (`spawn`), and each is
    /// restarted on its own, as under `one_for_one` (OTP `simple_one_for_one`).
    SimpleOneForOne,
}

impl Strategy {
    /// The config spelling (`one_for_one`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
            Strategy::SimpleOneForOne => "simple_one_for_one",
        }
    }

    /// Indices of the children to restart when child `failed` of `len` fails, in start order.
    pub fn affected(self, failed: usize, len: usize) -> std::ops::Range<usize> {
        match self {
            Strategy::OneForOne | Strategy::SimpleOneForOne => failed..failed + 1,
            Strategy::OneForAll => 0..len,
            Strategy::RestForOne => failed..len,
        }
    }
}

/// When a child is restarted (OTP restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted, whatever the exit reason.
    Permanent,
    /// Restarted only after an abnormal exit (a crash, a kill, a fatal error).
    Transient,
    /// Never restarted.
    Temporary,
}

impl Restart {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Permanent => "permanent",
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
        }
    }
}

/// How a child is stopped (OTP `shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Killed at once: in-flight work is aborted (and redelivered later).
    BrutalKill,
    /// Asked to stop; killed if it has not stopped within the duration.
    Timeout(Duration),
    /// Asked to stop and waited for without limit (the default for supervisors).
    Infinity,
}

/// When a supervisor stops itself because significant children ended (OTP 24
/// `auto_shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoShutdown {
    /// Never (the default); `significant` is not allowed on its children.
    #[default]
    Never,
    /// As soon as any significant child ends on its own and is not restarted.
    AnySignificant,
    /// Once every significant child has ended on its own and none is restarted.
    AllSignificant,
}

impl AutoShutdown {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoShutdown::Never => "never",
            AutoShutdown::AnySignificant => "any_significant",
            AutoShutdown::AllSignificant => "all_significant",
        }
    }
}

/// Restart intensity: more than `max_restarts` within `within` makes the supervisor give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed inside one window.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            within: Duration::from_secs(5),
        }
    }
}

/// Delay between repeated restarts of one child; reset after a quiet period.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartBackoff {
    /// The delay curve (initial, max, multiplier, jitter).
    pub backoff: Backoff,
    /// A child that has run this long without failing starts again at `initial`.
    pub reset_after: Duration,
}

/// What a child is.
#[derive(Debug, Clone, PartialEq)]
// Specs are cold data, cloned at start and restart only: size is not worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum ChildKind {
    /// An agent (one host actor per replica).
    Agent(AgentSpec),
    /// A nested supervisor.
    Supervisor(SupervisorSpec),
}

/// One child of a supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    /// Restart type.
    pub restart: Restart,
    /// Shutdown behaviour.
    pub shutdown: Shutdown,
    /// Optional delay between restarts; `None` restarts at once.
    pub restart_backoff: Option<RestartBackoff>,
    /// The agent or supervisor to run.
    pub kind: ChildKind,
    /// Its normal end can stop its supervisor (see [`AutoShutdown`]); only for
    /// transient and temporary children.
    pub significant: bool,
    /// Made at run time (`spawn`, `add_child`) rather than declared: it can be
    /// deleted, and a store keeps it across daemon restarts.
    pub dynamic: bool,
}

/// How long an agent child is given to stop before it is killed, unless its spec
/// says otherwise (OTP's worker default).
pub const DEFAULT_AGENT_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

impl ChildSpec {
    /// A permanent agent child with the [`DEFAULT_AGENT_SHUTDOWN`].
    pub fn agent(spec: AgentSpec) -> Self {
        ChildSpec {
            restart: Restart::Permanent,
            shutdown: DEFAULT_AGENT_SHUTDOWN,
            restart_backoff: None,
            kind: ChildKind::Agent(spec),
            significant: false,
            dynamic: false,
        }
    }

    /// A permanent supervisor child with an infinite shutdown (as in OTP).
    pub fn supervisor(spec: SupervisorSpec) -> Self {
        ChildSpec {
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            restart_backoff: None,
            kind: ChildKind::Supervisor(spec),
            significant: false,
            dynamic: false,
        }
    }

    /// Builder: set the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Builder: mark the child significant (see [`AutoShutdown`]).
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Builder: set the shutdown.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// A dynamic child `name` made from this template, starting from `state`.
    pub fn from_template(&self, name: &str, state: Option<serde_json::Value>) -> ChildSpec {
        let mut c = self.clone();
        match &mut c.kind {
            ChildKind::Agent(a) => {
                a.name = name.to_string();
                a.initial_state = state;
            }
            ChildKind::Supervisor(s) => s.name = name.to_string(),
        }
        c.dynamic = true;
        c
    }

    /// The child's name, its address in the tree.
    pub fn name(&self) -> &str {
        match &self.kind {
            ChildKind::Agent(a) => &a.name,
            ChildKind::Supervisor(s) => &s.name,
        }
    }
}

/// A supervisor: a strategy, an intensity and ordered children.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorSpec {
    /// Unique name in the tree.
    pub name: String,
    /// Restart strategy.
    pub strategy: Strategy,
    /// Restart intensity.
    pub intensity: Intensity,
    /// Children in start order.
    pub children: Vec<ChildSpec>,
    /// `simple_one_for_one`: what `spawn` makes each child from (its name is
    /// replaced by the spawned child's).
    pub template: Option<Box<ChildSpec>>,
    /// When the supervisor stops itself after significant children end.
    pub auto_shutdown: AutoShutdown,
}

impl SupervisorSpec {
    /// A one_for_one supervisor with default intensity and no children.
    pub fn new(name: impl Into<String>) -> Self {
        SupervisorSpec {
            name: name.into(),
            strategy: Strategy::OneForOne,
            intensity: Intensity::default(),
            children: Vec::new(),
            template: None,
            auto_shutdown: AutoShutdown::Never,
        }
    }

    /// Builder: set the strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Builder: set the intensity.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    /// Builder: the template of a `simple_one_for_one` supervisor.
    pub fn template(mut self, template: ChildSpec) -> Self {
        self.template = Some(Box::new(template));
        self
    }

    /// Builder: set auto shutdown.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.auto_shutdown = auto_shutdown;
        self
    }

    /// Builder: append a child (start order is append order).
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Every name in this subtree, depth first, this supervisor first.
    pub fn names(&self) -> Vec<String> {
        let mut out = vec![self.name.clone()];
        for c in &self.children {
            match &c.kind {
                ChildKind::Agent(a) => out.push(a.name.clone()),
                ChildKind::Supervisor(s) => out.extend(s.names()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_affect_the_predicted_children() {
        assert_eq!(Strategy::OneForOne.affected(1, 4), 1..2);
        assert_eq!(Strategy::OneForAll.affected(1, 4), 0..4);
        assert_eq!(Strategy::RestForOne.affected(1, 4), 1..4);
    }
}
