//! Combinations that are valid but cannot work as the author likely meant:
//! reported by `warden check` and logged at start, never refused.

use std::time::Duration;

use crate::actors::AgentSpec;
use crate::supervision::{ChildKind, SupervisorSpec};

/// One line per doubtful combination, naming the agent and the keys.
pub(super) fn warnings(root: &SupervisorSpec) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

fn walk(s: &SupervisorSpec, out: &mut Vec<String>) {
    for c in &s.children {
        match &c.kind {
            ChildKind::Agent(a) => agent(a, out),
            ChildKind::Supervisor(sub) => walk(sub, out),
        }
    }
}

fn agent(a: &AgentSpec, out: &mut Vec<String>) {
    let n = &a.name;
    let Some(deadline) = a.deadline else { return };
    if deadline <= a.timeout {
        out.push(format!(
            "agent.{n}: deadline ({deadline:?}) is not longer than timeout ({:?}): a slow first attempt outlives its correlation's deadline; make the deadline longer than the timeout",
            a.timeout
        ));
        return;
    }
    // every attempt taking its whole timeout, with the shortest backoffs between
    let mut worst = Duration::ZERO;
    let mut fit = 0;
    for attempt in 1..=a.max_attempts.min(1000) {
        worst = worst.saturating_add(a.timeout);
        if worst > deadline {
            break;
        }
        fit = attempt;
        worst = worst.saturating_add(a.backoff.delay_with(attempt, 0.0));
    }
    if fit < a.max_attempts {
        out.push(format!(
            "agent.{n}: only {fit} of max_attempts = {} attempts fit in deadline = {deadline:?} when each takes its timeout ({:?}) plus the backoff: the rest would be dead-lettered deadline_exceeded; lengthen the deadline or lower max_attempts",
            a.max_attempts, a.timeout
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervision::ChildSpec;

    fn tree(a: AgentSpec) -> SupervisorSpec {
        SupervisorSpec::new("root").child(ChildSpec::agent(a))
    }

    #[test]
    fn deadlines_too_short_for_the_attempts_are_reported() {
        let mut a = AgentSpec::new("a", "echo");
        assert!(
            warnings(&tree(a.clone())).is_empty(),
            "no deadline: nothing to say"
        );
        a.deadline = Some(Duration::from_secs(10));
        a.timeout = Duration::from_secs(30);
        assert!(warnings(&tree(a.clone()))[0].contains("not longer than timeout"));
        a.timeout = Duration::from_secs(3);
        a.max_attempts = 5;
        let w = warnings(&tree(a.clone()));
        assert!(w[0].contains("only 3 of max_attempts = 5"), "{w:?}");
        a.deadline = Some(Duration::from_secs(600));
        assert!(warnings(&tree(a)).is_empty());
    }
}
