//! Tests of `diff`.

use super::*;
use crate::actors::MailboxKind;
use std::time::Duration;

fn agent(name: &str) -> ChildSpec {
    ChildSpec::agent(AgentSpec::new(name, "echo"))
}

fn tree(children: Vec<ChildSpec>) -> SupervisorSpec {
    children
        .into_iter()
        .fold(SupervisorSpec::new("root"), |s, c| s.child(c))
}

#[test]
fn the_same_tree_plans_nothing() {
    let t = tree(vec![agent("a"), agent("b")]);
    let p = plan(&t, &t).unwrap();
    assert_eq!(p.steps, vec![]);
    assert_eq!(p.unchanged, 2);
}

#[test]
fn adds_removes_restarts_and_updates_are_told_apart() {
    let old = tree(vec![agent("a"), agent("b"), agent("c"), agent("gone")]);
    let mut b = AgentSpec::new("b", "sink");
    b.timeout = Duration::from_secs(1);
    let mut c = AgentSpec::new("c", "echo");
    c.timeout = Duration::from_secs(2);
    c.max_attempts = 9;
    let new = tree(vec![
        agent("a"),
        ChildSpec::agent(b),
        ChildSpec::agent(c),
        agent("new"),
    ]);
    let p = plan(&old, &new).unwrap();
    assert_eq!(
        p.steps,
        vec![
            Step::Remove {
                name: "gone".into(),
                supervisor: "root".into(),
                kind: "agent"
            },
            Step::Restart {
                name: "b".into(),
                changed: vec!["kind".into()]
            },
            Step::Update {
                name: "c".into(),
                changed: vec!["timeout".into(), "max_attempts".into()]
            },
            Step::Add {
                name: "new".into(),
                supervisor: "root".into(),
                kind: "agent",
                position: 3
            },
        ]
    );
    assert_eq!(p.unchanged, 1);
}

#[test]
fn a_subtree_is_removed_and_added_at_its_top_and_moves_are_moves() {
    let old = tree(vec![
        ChildSpec::supervisor(SupervisorSpec::new("s").child(agent("x")).child(agent("m"))),
        agent("a"),
    ]);
    let new = tree(vec![
        agent("a"),
        agent("m"),
        ChildSpec::supervisor(SupervisorSpec::new("t").child(agent("y"))),
    ]);
    let p = plan(&old, &new).unwrap();
    assert_eq!(
        p.steps,
        vec![
            Step::Move {
                name: "m".into(),
                from: "s".into(),
                to: "root".into()
            },
            Step::Remove {
                name: "s".into(),
                supervisor: "root".into(),
                kind: "supervisor"
            },
            Step::Add {
                name: "t".into(),
                supervisor: "root".into(),
                kind: "supervisor",
                position: 2
            },
        ]
    );
}

#[test]
fn reorders_and_refusals() {
    let old = tree(vec![agent("a"), agent("b")]);
    let new = tree(vec![agent("b"), agent("a")]);
    assert_eq!(
        plan(&old, &new).unwrap().steps,
        vec![Step::Reorder {
            name: "root".into()
        }]
    );
    let mem = tree(vec![ChildSpec::agent(
        AgentSpec::new("a", "echo").mailbox(MailboxKind::Memory),
    )]);
    let e = plan(&tree(vec![agent("a")]), &mem).unwrap_err();
    assert!(e.contains("mailbox"), "{e}");
}
