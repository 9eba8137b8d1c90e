//! The history checker of `warden chaos`, in the manner of Jepsen's total-queue
//! checker: every task sent is accounted for exactly once, as completed (seen at a
//! sink) or as a dead letter, and only poison may be dead-lettered.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

/// One line a sink wrote: the task and the message id the sink handled.
#[derive(Debug, Clone)]
pub struct SinkLine {
    /// The task number.
    pub task: u64,
    /// The sink's message id.
    pub message_id: String,
}

/// One dead letter of a task.
#[derive(Debug, Clone)]
pub struct DeadTask {
    /// The task number.
    pub task: u64,
    /// Its `reason`.
    pub reason: String,
    /// Its attempts.
    pub attempts: u64,
}

/// Everything the run observed.
#[derive(Debug, Default)]
pub struct History {
    /// Tasks sent (accepted or not).
    pub sent: BTreeSet<u64>,
    /// Tasks whose send was acknowledged.
    pub accepted: BTreeSet<u64>,
    /// Poison tasks (accepted or not).
    pub poison: BTreeSet<u64>,
    /// Lines at the sinks.
    pub sink_lines: Vec<SinkLine>,
    /// Dead letters of tasks.
    pub dead: Vec<DeadTask>,
    /// `max_attempts` of the agents poison can reach.
    pub max_attempts: u64,
    /// Message records left in the store after the drain (orphans).
    pub left_in_store: u64,
}

/// Dead-letter counts of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetters {
    /// Poison tasks accepted (each should end as a dead letter).
    pub expected: u64,
    /// Dead letters of tasks.
    pub actual: u64,
    /// Dead letters of tasks that were not poison (must be 0).
    pub innocent: u64,
    /// Poison dead-lettered with other than `max_attempts` attempts.
    pub wrong_attempts: u64,
}

/// The verdict's numbers (DESIGN section 12).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Tasks sent.
    pub sent: u64,
    /// Tasks accepted.
    pub accepted: u64,
    /// Tasks seen at a sink.
    pub completed: u64,
    /// Accepted, never completed nor dead-lettered.
    pub lost: u64,
    /// Completed, never sent.
    pub phantom: u64,
    /// A task handed to a sink twice (distinct message ids): must be 0 (G3).
    pub handoff_duplicates: u64,
    /// A task written twice by a sink under one message id (allowed: in flight at a crash).
    pub effect_duplicates: u64,
    /// Dead letters.
    pub dead_letters: DeadLetters,
    /// Message records left in the store after the drain (must be 0).
    pub orphans: u64,
    /// What failed, one line each (empty: pass).
    pub failures: Vec<String>,
}

/// Checks `h`.
pub fn check(h: &History) -> Verdict {
    let mut by_task: BTreeMap<u64, HashMap<&str, u64>> = BTreeMap::new();
    for l in &h.sink_lines {
        *by_task
            .entry(l.task)
            .or_default()
            .entry(l.message_id.as_str())
            .or_default() += 1;
    }
    let completed: BTreeSet<u64> = by_task.keys().copied().collect();
    let dead: BTreeSet<u64> = h.dead.iter().map(|d| d.task).collect();
    let lost = h
        .accepted
        .iter()
        .filter(|t| !completed.contains(t) && !dead.contains(t))
        .count() as u64;
    let phantom = completed.iter().filter(|t| !h.sent.contains(t)).count() as u64;
    let handoff_duplicates = by_task.values().filter(|ids| ids.len() > 1).count() as u64;
    let effect_duplicates = by_task
        .values()
        .filter(|ids| ids.values().any(|n| *n > 1))
        .count() as u64;
    let innocent = h
        .dead
        .iter()
        .filter(|d| !h.poison.contains(&d.task))
        .count() as u64;
    let wrong_attempts = h
        .dead
        .iter()
        .filter(|d| {
            h.poison.contains(&d.task)
                && (d.reason != "max_attempts" || d.attempts != h.max_attempts)
        })
        .count() as u64;
    let expected = h.poison.intersection(&h.accepted).count() as u64;
    let poison_completed = completed.intersection(&h.poison).count();
    let mut failures = Vec::new();
    let mut fail = |cond: bool, what: String| {
        if cond {
            failures.push(what);
        }
    };
    fail(lost > 0, format!("{lost} accepted tasks lost"));
    fail(phantom > 0, format!("{phantom} phantom tasks"));
    fail(
        handoff_duplicates > 0,
        format!("{handoff_duplicates} tasks handed off twice"),
    );
    fail(innocent > 0, format!("{innocent} innocent dead letters"));
    fail(
        wrong_attempts > 0,
        format!("{wrong_attempts} poison dead letters without exactly max_attempts"),
    );
    fail(
        poison_completed > 0,
        format!("{poison_completed} poison tasks completed"),
    );
    fail(
        h.dead.len() as u64 != expected,
        format!("{} dead letters, {expected} poison accepted", h.dead.len()),
    );
    fail(
        h.left_in_store > 0,
        format!(
            "{} message records left in the store after the drain",
            h.left_in_store
        ),
    );
    Verdict {
        sent: h.sent.len() as u64,
        accepted: h.accepted.len() as u64,
        completed: completed.len() as u64,
        lost,
        phantom,
        handoff_duplicates,
        effect_duplicates,
        dead_letters: DeadLetters {
            expected,
            actual: h.dead.len() as u64,
            innocent,
            wrong_attempts,
        },
        orphans: h.left_in_store,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(task: u64, id: &str) -> SinkLine {
        SinkLine {
            task,
            message_id: id.into(),
        }
    }

    fn base() -> History {
        History {
            sent: (0..5).collect(),
            accepted: (0..5).collect(),
            poison: [4].into(),
            sink_lines: (0..4).map(|t| line(t, &format!("out:{t}"))).collect(),
            dead: vec![DeadTask {
                task: 4,
                reason: "max_attempts".into(),
                attempts: 3,
            }],
            max_attempts: 3,
            left_in_store: 0,
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let v = check(&base());
        assert!(v.failures.is_empty(), "{:?}", v.failures);
        assert_eq!((v.completed, v.lost, v.dead_letters.actual), (4, 0, 1));
    }

    #[test]
    fn each_violation_is_caught() {
        let mut h = base();
        h.sink_lines.pop();
        assert_eq!(check(&h).lost, 1);
        let mut h = base();
        h.sink_lines.push(line(2, "out:99"));
        assert_eq!(check(&h).handoff_duplicates, 1);
        let mut h = base();
        h.sink_lines.push(line(2, "out:2"));
        let v = check(&h);
        assert_eq!(v.effect_duplicates, 1);
        assert!(
            v.failures.is_empty(),
            "an effect duplicate alone is allowed"
        );
        let mut h = base();
        h.sink_lines.push(line(77, "out:77"));
        assert_eq!(check(&h).phantom, 1);
        let mut h = base();
        h.dead.push(DeadTask {
            task: 1,
            reason: "max_attempts".into(),
            attempts: 3,
        });
        assert_eq!(check(&h).dead_letters.innocent, 1);
        let mut h = base();
        h.dead[0].attempts = 2;
        assert_eq!(check(&h).dead_letters.wrong_attempts, 1);
        let mut h = base();
        h.left_in_store = 2;
        assert!(!check(&h).failures.is_empty());
    }
}
