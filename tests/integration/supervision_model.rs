//! A state-machine property test: random sequences of kills against a model of the
//! tree predict exactly which children get a new incarnation, when a supervisor
//! escalates, and when root gives up.
//!
//! Tree: root (one_for_one, max R_root) -> [a1, s1 (strategy S, max R1) -> [b1, b2, b3], a2].
//! Every kill is within one long intensity window, so the model needs no clock.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::tree::{child, ids, kinds, status};
use crate::common::wait_until;
use proptest::prelude::*;
use ractor::ActorId;
use warden::supervision::{ChildSpec, Status, Strategy, SupervisorSpec};
use warden::{RootExit, Runtime};

const AGENTS: [&str; 5] = ["a1", "a2", "b1", "b2", "b3"];
const ALL: [&str; 6] = ["a1", "a2", "b1", "b2", "b3", "s1"];
const WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Model {
    strategy: Strategy,
    max_root: u32,
    max_s1: u32,
    root_restarts: u32,
    s1_restarts: u32,
    /// incarnation number per node; a restart bumps it
    gen: HashMap<&'static str, u32>,
    dead: bool,
}

impl Model {
    fn new(strategy: Strategy, max_root: u32, max_s1: u32) -> Self {
        Model {
            strategy,
            max_root,
            max_s1,
            root_restarts: 0,
            s1_restarts: 0,
            gen: ALL.iter().map(|n| (*n, 0)).collect(),
            dead: false,
        }
    }

    fn bump(&mut self, n: &'static str) {
        *self.gen.get_mut(n).unwrap() += 1;
    }

    /// Root's own restart bookkeeping; false when root gives up.
    fn root_restart(&mut self) -> bool {
        self.root_restarts += 1;
        if self.root_restarts > self.max_root {
            self.dead = true;
        }
        !self.dead
    }

    fn kill(&mut self, who: &'static str) {
        match who {
            "a1" | "a2" => {
                if self.root_restart() {
                    self.bump(who);
                }
            }
            _ => {
                self.s1_restarts += 1;
                if self.s1_restarts > self.max_s1 {
                    // s1 escalates; root restarts it with fresh children and window
                    if self.root_restart() {
                        self.s1_restarts = 0;
                        for n in ["s1", "b1", "b2", "b3"] {
                            self.bump(n);
                        }
                    }
                    return;
                }
                // The model's own statement of the strategies (not the library's).
                let kids = ["b1", "b2", "b3"];
                let i = kids.iter().position(|k| *k == who).unwrap();
                let affected: &[&'static str] = match self.strategy {
                    Strategy::OneForOne => &kids[i..=i],
                    Strategy::OneForAll => &kids[..],
                    Strategy::RestForOne => &kids[i..],
                    other => unreachable!("the model never builds {other:?}"),
                };
                for k in affected {
                    self.bump(k);
                }
            }
        }
    }
}

fn tree(strategy: Strategy, max_root: u32, max_s1: u32) -> SupervisorSpec {
    let s1 = SupervisorSpec::new("s1")
        .strategy(strategy)
        .intensity(max_s1, WINDOW)
        .child(child("b1"))
        .child(child("b2"))
        .child(child("b3"));
    SupervisorSpec::new("root")
        .intensity(max_root, WINDOW)
        .child(child("a1"))
        .child(ChildSpec::supervisor(s1))
        .child(child("a2"))
}

async fn check(strategy: Strategy, max_root: u32, max_s1: u32, kills: Vec<usize>) {
    let (k, _) = kinds();
    let rt = Runtime::start(tree(strategy, max_root, max_s1), k)
        .await
        .unwrap();
    let mut model = Model::new(strategy, max_root, max_s1);
    let mut seen: HashMap<&'static str, (u32, Vec<ActorId>)> =
        ALL.iter().map(|n| (*n, (0, ids(&rt, n)))).collect();
    for (step, &i) in kills.iter().enumerate() {
        let who = AGENTS[i];
        let before = model.gen.clone();
        model.kill(who);
        rt.kill(who)
            .await
            .unwrap_or_else(|e| panic!("step {step}: kill {who}: {e}"));
        if model.dead {
            let exit = tokio::time::timeout(Duration::from_secs(10), rt.exited())
                .await
                .unwrap_or_else(|_| panic!("step {step}: model says root gives up; it did not"));
            assert!(matches!(exit, RootExit::GaveUp(_)));
            return;
        }
        // Wait for every predicted restart, then every other node must be unchanged.
        for n in ALL {
            if model.gen[n] != before[n] {
                let old = seen[n].1.clone();
                wait_until(
                    &format!("step {step} ({who}): {n} restarted"),
                    Duration::from_secs(10),
                    || {
                        let now = ids(&rt, n);
                        !now.is_empty() && now != old && status(&rt, n) == Status::Running
                    },
                )
                .await;
            }
        }
        for n in ALL {
            wait_until(
                &format!("step {step}: {n} running"),
                Duration::from_secs(10),
                || status(&rt, n) == Status::Running,
            )
            .await;
            let now = ids(&rt, n);
            let changed = now != seen[n].1;
            let predicted = model.gen[n] != seen[n].0;
            assert_eq!(
                changed, predicted,
                "step {step} kill {who}: {n} changed={changed}, model={predicted}, kills={kills:?}"
            );
            seen.insert(n, (model.gen[n], now));
        }
    }
    rt.shutdown(Duration::from_secs(10)).await;
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        Just(Strategy::OneForOne),
        Just(Strategy::OneForAll),
        Just(Strategy::RestForOne)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kills_restart_exactly_what_the_model_predicts(
        s in strategy(),
        max_root in 0u32..4,
        max_s1 in 0u32..4,
        kills in proptest::collection::vec(0usize..5, 1..10),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(check(s, max_root, max_s1, kills));
    }
}
