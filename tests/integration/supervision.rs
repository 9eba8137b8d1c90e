//! OTP supervision through the library API, with real actors: restart types,
//! strategies, intensity and escalation, ordered shutdown, stable names.

use std::time::{Duration, Instant};

use crate::common::tree::{child, counter, ids, inc, kinds, restarts, status, wait_restarted};
use crate::common::wait_until;
use serde_json::json;
use warden::actors::DeadReason;
use warden::policies::backoff::Backoff;
use warden::supervision::{
    ChildSpec, ControlError, Restart, RestartBackoff, Shutdown, Status, Strategy, SupervisorSpec,
};
use warden::{RootExit, Runtime};

const T: Duration = Duration::from_secs(10);

async fn start(tree: SupervisorSpec) -> (Runtime, crate::common::tree::StopLog) {
    let (k, stops) = kinds();
    (Runtime::start(tree, k).await.expect("tree starts"), stops)
}

/// How a child is made to exit in the restart matrix.
#[derive(Clone, Copy, Debug)]
enum How {
    Normal,
    Error,
    Panic,
}

async fn restart_case(restart: Restart, how: How) -> bool {
    let tree = SupervisorSpec::new("root").child(child("w").restart(restart));
    let (rt, _) = start(tree).await;
    let old = ids(&rt, "w");
    let fault = match how {
        How::Normal => "stop",
        How::Error => "exit",
        How::Panic => "panic",
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    rt.send("w", json!({"fault": fault, "times": 1}))
        .await
        .unwrap();
    wait_until("w exited or restarted", T, || {
        let now = ids(&rt, "w");
        matches!(status(&rt, "w"), Status::Stopped | Status::Failed)
            || (!now.is_empty() && now != old && status(&rt, "w") == Status::Running)
    })
    .await;
    std::panic::set_hook(hook);
    let restarted = status(&rt, "w") == Status::Running;
    if restarted {
        assert_eq!(restarts(&rt, "w"), 1);
    } else {
        let want = match how {
            How::Normal => Status::Stopped,
            _ => Status::Failed,
        };
        assert_eq!(status(&rt, "w"), want, "{restart:?} x {how:?}");
        assert!(ids(&rt, "w").is_empty());
    }
    rt.shutdown(T).await;
    restarted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_matrix_by_restart_type_and_exit_reason() {
    use Restart::*;
    let cases = [
        (Permanent, How::Normal, true),
        (Permanent, How::Error, true),
        (Permanent, How::Panic, true),
        (Transient, How::Normal, false),
        (Transient, How::Error, true),
        (Transient, How::Panic, true),
        (Temporary, How::Normal, false),
        (Temporary, How::Error, false),
        (Temporary, How::Panic, false),
    ];
    for (restart, how, want) in cases {
        assert_eq!(
            restart_case(restart, how).await,
            want,
            "{restart:?} x {how:?}"
        );
    }
}

async fn strategy_case(strategy: Strategy) -> [bool; 3] {
    let tree = SupervisorSpec::new("root")
        .strategy(strategy)
        .child(child("a"))
        .child(child("b"))
        .child(child("c"));
    let (rt, _) = start(tree).await;
    for n in ["a", "b", "c"] {
        assert_eq!(inc(&rt, n).await, (1, 1));
    }
    let before: Vec<_> = ["a", "b", "c"].iter().map(|n| ids(&rt, n)).collect();
    rt.kill("b").await.unwrap();
    wait_restarted(&rt, "b", &before[1]).await;
    let mut changed = [false; 3];
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        if changed_after(&rt, n, &before[i]).await {
            changed[i] = true;
            // a new incarnation: in-memory count restarts, committed state survives
            assert_eq!(
                inc(&rt, n).await,
                (1, 2),
                "{n} restarted from its committed state"
            );
        } else {
            assert_eq!(inc(&rt, n).await, (2, 2), "{n} kept its incarnation");
        }
    }
    rt.shutdown(T).await;
    changed
}

async fn changed_after(rt: &Runtime, name: &str, old: &[ractor::ActorId]) -> bool {
    // A sibling restarted by the strategy is running again before the supervisor
    // handles anything else; wait until it is running, then compare.
    wait_until("running", T, || status(rt, name) == Status::Running).await;
    ids(rt, name) != old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_restarts_only_the_failed_child() {
    assert_eq!(
        strategy_case(Strategy::OneForOne).await,
        [false, true, false]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_restarts_siblings() {
    assert_eq!(strategy_case(Strategy::OneForAll).await, [true, true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_the_failed_and_later_children() {
    assert_eq!(
        strategy_case(Strategy::RestForOne).await,
        [false, true, true]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intensity_exceeded_escalates_to_parent() {
    let mid = SupervisorSpec::new("mid")
        .intensity(2, Duration::from_secs(60))
        .child(child("leaf"));
    let tree = SupervisorSpec::new("root")
        .intensity(10, Duration::from_secs(60))
        .child(child("sibling"))
        .child(ChildSpec::supervisor(mid));
    let (rt, _) = start(tree).await;
    let mut events = rt.subscribe();
    let mid_before = ids(&rt, "mid");
    let sibling_before = ids(&rt, "sibling");
    for _ in 0..2 {
        let old = ids(&rt, "leaf");
        rt.kill("leaf").await.unwrap();
        wait_restarted(&rt, "leaf", &old).await;
    }
    assert_eq!(
        ids(&rt, "mid"),
        mid_before,
        "two restarts are within intensity"
    );
    let old = ids(&rt, "leaf");
    rt.kill("leaf").await.unwrap();
    wait_restarted(&rt, "mid", &mid_before).await;
    wait_restarted(&rt, "leaf", &old).await;
    assert_eq!(restarts(&rt, "mid"), 1, "root restarted mid once");
    assert_eq!(
        ids(&rt, "sibling"),
        sibling_before,
        "one_for_one root left sibling alone"
    );
    let mut escalated = false;
    while let Ok(e) = events.try_recv() {
        escalated |= e.event == "escalated" && e.name == "mid";
    }
    assert!(escalated, "an escalated event names mid");
    // The new mid has a fresh intensity window.
    let old = ids(&rt, "leaf");
    rt.kill("leaf").await.unwrap();
    wait_restarted(&rt, "leaf", &old).await;
    assert_eq!(restarts(&rt, "mid"), 1);
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_giving_up_ends_the_runtime() {
    let tree = SupervisorSpec::new("root")
        .intensity(1, Duration::from_secs(60))
        .child(child("a"));
    let (rt, _) = start(tree).await;
    let old = ids(&rt, "a");
    rt.kill("a").await.unwrap();
    wait_restarted(&rt, "a", &old).await;
    rt.kill("a").await.unwrap();
    let exit = tokio::time::timeout(T, rt.exited())
        .await
        .expect("root gives up");
    match exit {
        RootExit::GaveUp(why) => assert!(why.contains("gave up"), "{why}"),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(status(&rt, "root"), Status::Failed);
    assert_eq!(status(&rt, "a"), Status::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_stop_in_reverse_start_order() {
    let inner = SupervisorSpec::new("inner")
        .child(child("b"))
        .child(child("c"));
    let tree = SupervisorSpec::new("root")
        .child(child("a"))
        .child(ChildSpec::supervisor(inner))
        .child(child("d"));
    let (rt, stops) = start(tree).await;
    assert_eq!(rt.shutdown(T).await, RootExit::Shutdown);
    assert_eq!(*stops.lock().unwrap(), ["d", "c", "b", "a"]);
    for n in ["a", "b", "c", "d", "inner"] {
        assert_eq!(status(&rt, n), Status::Stopped, "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_ignoring_stop_is_killed_after_shutdown_timeout() {
    let tree = SupervisorSpec::new("root")
        .child(child("slow").shutdown(Shutdown::Timeout(Duration::from_millis(200))));
    let (rt, stops) = start(tree).await;
    let slot = rt.agent("slow").unwrap();
    rt.send("slow", json!({"fault": "sleep", "ms": 60_000}))
        .await
        .unwrap();
    wait_until("message in flight", T, || slot.in_flight() == 1).await;
    let t = Instant::now();
    tokio::time::timeout(T, rt.stop_child("slow"))
        .await
        .expect("stop returns")
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "graceful wait came first"
    );
    assert_eq!(status(&rt, "slow"), Status::Stopped);
    assert!(
        stops.lock().unwrap().is_empty(),
        "a killed incarnation gets no on_stop"
    );
    let pending = slot.peek(10);
    assert_eq!(pending.len(), 1, "the interrupted message is kept");
    assert_eq!(
        pending[0].attempt, 1,
        "an interrupted attempt is not held against the message"
    );
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_during_restart_reach_the_new_incarnation() {
    let backoff = RestartBackoff {
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
            multiplier: 1.0,
            jitter: 0.0,
        },
        reset_after: Duration::from_secs(60),
    };
    let mut spec = child("a");
    spec.restart_backoff = Some(backoff);
    let (rt, _) = start(SupervisorSpec::new("root").child(spec)).await;
    let old = ids(&rt, "a");
    rt.kill("a").await.unwrap();
    wait_until("a restarting", T, || status(&rt, "a") == Status::Restarting).await;
    for _ in 0..5 {
        rt.send("a", json!({"op": "inc"})).await.unwrap();
    }
    assert_eq!(
        status(&rt, "a"),
        Status::Restarting,
        "sends happened during the restart"
    );
    assert_eq!(
        rt.agent("a").unwrap().pending(),
        5,
        "nothing dropped while down"
    );
    wait_restarted(&rt, "a", &old).await;
    assert_eq!(
        inc(&rt, "a").await,
        (6, 6),
        "the new incarnation handled all five first"
    );
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_dead_lettered_without_escalation() {
    let mut a = counter("a");
    a.max_attempts = 3;
    let tree = SupervisorSpec::new("root")
        .intensity(1, Duration::from_secs(60))
        .child(ChildSpec::agent(a));
    let (rt, _) = start(tree).await;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let poison = rt.send("a", json!({"fault": "panic"})).await.unwrap();
    for _ in 0..3 {
        rt.send("a", json!({"op": "inc"})).await.unwrap();
    }
    let slot = rt.agent("a").unwrap();
    wait_until("poison dead-lettered and the rest handled", T, || {
        slot.dead_count() == 1 && slot.state()["count"] == 3
    })
    .await;
    std::panic::set_hook(hook);
    let dead = &slot.dead_letters()[0];
    assert_eq!(dead.envelope.id, poison);
    assert_eq!(dead.reason, DeadReason::MaxAttempts);
    assert_eq!(dead.attempts, 3);
    assert!(dead.last_error.contains("panic"), "{}", dead.last_error);
    assert_eq!(restarts(&rt, "a"), 3, "each panic restarted the agent");
    assert_eq!(
        status(&rt, "root"),
        Status::Running,
        "intensity 1 was not exceeded"
    );
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_error_retries_in_place_without_restart() {
    let (rt, _) = start(SupervisorSpec::new("root").child(child("a"))).await;
    let old = ids(&rt, "a");
    rt.send("a", json!({"fault": "error", "times": 2}))
        .await
        .unwrap();
    let slot = rt.agent("a").unwrap();
    wait_until("handled on the third attempt", T, || {
        slot.stats
            .handled
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    assert_eq!(
        slot.stats
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(ids(&rt, "a"), old, "errors do not restart the agent");
    assert_eq!(inc(&rt, "a").await, (2, 2));
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_mailbox() {
    let mut a = counter("pool");
    a.replicas = 3;
    let (rt, _) = start(SupervisorSpec::new("root").child(ChildSpec::agent(a))).await;
    assert_eq!(ids(&rt, "pool").len(), 3);
    for _ in 0..30 {
        rt.send("pool", json!({"op": "inc"})).await.unwrap();
    }
    let slot = rt.agent("pool").unwrap();
    wait_until("30 handled", T, || {
        slot.stats
            .handled
            .load(std::sync::atomic::Ordering::Relaxed)
            == 30
    })
    .await;
    let kids = rt.which_children("root").await.unwrap();
    assert_eq!(kids[0].actor_ids.len(), 3);
    // every replica takes messages: three slow ones are handled at once
    for _ in 0..3 {
        rt.send("pool", json!({"fault": "sleep", "ms": 2000}))
            .await
            .unwrap();
    }
    wait_until("three replicas busy at once", T, || slot.in_flight() == 3).await;
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ops_follow_otp_semantics() {
    let tree = SupervisorSpec::new("root")
        .child(child("planner"))
        .child(ChildSpec::supervisor(
            SupervisorSpec::new("crew").child(child("w")),
        ));
    let (rt, _) = start(tree).await;
    assert_eq!(
        rt.start_child("planner").await,
        Err(ControlError::Running("planner".into()))
    );
    match rt.stop_child("plannr").await {
        Err(ControlError::NotFound(m)) => assert!(m.contains("did you mean 'planner'"), "{m}"),
        other => panic!("{other:?}"),
    }
    rt.stop_child("planner").await.unwrap();
    assert_eq!(status(&rt, "planner"), Status::Stopped);
    assert_eq!(
        rt.kill("planner").await,
        Err(ControlError::NotRunning("planner".into()))
    );
    let id = rt.send("planner", json!({"op": "inc"})).await.unwrap();
    assert_eq!(id.to_string(), "planner:1");
    rt.start_child("planner").await.unwrap();
    assert_eq!(
        inc(&rt, "planner").await,
        (2, 2),
        "the message sent while stopped waited"
    );
    let old = ids(&rt, "w");
    rt.restart_child("w").await.unwrap();
    assert_ne!(ids(&rt, "w"), old);
    assert_eq!(restarts(&rt, "w"), 1);
    let count = rt.count_children("root").await.unwrap();
    assert_eq!(
        (count.specs, count.active, count.supervisors, count.workers),
        (2, 2, 1, 1)
    );
    let snap = rt.tree();
    assert_eq!(snap.children.as_ref().unwrap()[1].name, "crew");
    assert_eq!(
        snap.children.as_ref().unwrap()[1]
            .children
            .as_ref()
            .unwrap()[0]
            .restarts,
        1
    );
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_state_survives_agent_restarts() {
    let (rt, _) = start(SupervisorSpec::new("root").child(child("c"))).await;
    for i in 1..=3 {
        assert_eq!(inc(&rt, "c").await.1, i);
    }
    let old = ids(&rt, "c");
    rt.kill("c").await.unwrap();
    wait_restarted(&rt, "c", &old).await;
    assert_eq!(inc(&rt, "c").await, (1, 4));
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_children_survive_their_supervisors_restart_and_delete_removes_a_subtree() {
    let tree = SupervisorSpec::new("root")
        .intensity(100, Duration::from_secs(60))
        .child(ChildSpec::supervisor(
            SupervisorSpec::new("crew").child(child("w")),
        ));
    let (rt, _) = start(tree).await;
    rt.add_child("crew", child("extra")).await.unwrap();
    rt.add_child(
        "root",
        ChildSpec::supervisor(SupervisorSpec::new("team").child(child("t1"))),
    )
    .await
    .unwrap();
    assert_eq!(inc(&rt, "t1").await, (1, 1));
    // crew restarts (killed): its added child comes back with it
    let old = ids(&rt, "extra");
    rt.kill("crew").await.unwrap();
    wait_restarted(&rt, "extra", &old).await;
    assert_eq!(status(&rt, "w"), Status::Running);
    // declared children cannot be deleted; added ones can, whole subtrees too
    assert!(matches!(
        rt.delete_child("w").await,
        Err(ControlError::Invalid(_))
    ));
    rt.delete_child("team").await.unwrap();
    assert!(rt.tree_context().node("t1").is_none());
    assert!(rt.agent("t1").is_none());
    assert_eq!(rt.count_children("root").await.unwrap().specs, 1);
    // the names are free again
    rt.add_child("root", child("t1")).await.unwrap();
    assert_eq!(inc(&rt, "t1").await, (1, 1), "a fresh agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_added_at_run_time_is_depth_checked_where_it_joins() {
    use warden::supervision::MAX_DEPTH;
    // a chain root -> s1 -> ... -> s(MAX_DEPTH - 2): depth MAX_DEPTH - 1
    let mut spec = SupervisorSpec::new(format!("s{}", MAX_DEPTH - 2)).child(child("leaf"));
    for i in (1..MAX_DEPTH - 2).rev() {
        spec = SupervisorSpec::new(format!("s{i}")).child(ChildSpec::supervisor(spec));
    }
    let (rt, _) = start(SupervisorSpec::new("root").child(ChildSpec::supervisor(spec))).await;
    let deepest = format!("s{}", MAX_DEPTH - 2);
    // one more level fits
    rt.add_child(&deepest, ChildSpec::supervisor(SupervisorSpec::new("ok1")))
        .await
        .unwrap();
    // two more do not, though the added subtree alone is shallow
    let two = SupervisorSpec::new("too").child(ChildSpec::supervisor(SupervisorSpec::new("deep")));
    match rt.add_child(&deepest, ChildSpec::supervisor(two)).await {
        Err(ControlError::Invalid(m)) => assert!(m.contains("levels deep"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(rt.tree_context().node("too").is_none(), "nothing was added");
}
