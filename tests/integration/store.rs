//! The durable store through the library: what is accepted is on disk, in order,
//! with attempts, state, dead letters and idempotency keys; corruption is
//! quarantined; a newer format is refused. "Restart" here is a real close and
//! reopen of the sled store; crashes of the real process are in tests/chaos.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::common::tree::{counter, inc, kinds};
use crate::common::wait_until;
use serde_json::json;
use warden::actors::{SendError, SendOptions, Undelivered};
use warden::store::{keys, Store, StoreError, StoreOptions};
use warden::supervision::tree::Durable;
use warden::supervision::{ChildSpec, SupervisorSpec};
use warden::Runtime;

const T: Duration = Duration::from_secs(10);

fn tree(capacity: usize) -> SupervisorSpec {
    let mut c = counter("c").mailbox(warden::actors::MailboxKind::Durable);
    c.mailbox_capacity = capacity;
    c.max_attempts = 3;
    SupervisorSpec::new("root").child(ChildSpec::agent(c))
}

async fn start(dir: &Path, capacity: usize, retention: Duration) -> Runtime {
    let (store, recovered) = Store::open(dir, StoreOptions::default()).expect("store opens");
    let durable = Durable {
        store,
        recovered: Mutex::new(recovered),
        retention,
    };
    let (k, _) = kinds();
    Runtime::start_with(
        tree(capacity),
        k,
        warden::runtime::Options {
            durable: Some(durable),
            ..Default::default()
        },
    )
    .await
    .expect("tree starts")
}

/// sled opened as the store opens it (no background flusher, which would hold the
/// file lock past `drop`).
/// sled releases its file lock a moment after the last handle is dropped, so an
/// in-process reopen waits for it (up to 5 s), as `Store::open` does.
pub(crate) fn raw_db(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cannot open sled at {}: {e}", dir.display()),
        }
    }
}

async fn stop(rt: Runtime) {
    rt.shutdown(T).await;
    let store = rt.store().unwrap().clone();
    drop(rt);
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_and_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    assert_eq!(inc(&rt, "c").await, (1, 1));
    rt.stop_child("c").await.unwrap();
    for i in 0..5 {
        rt.send("c", json!({"op": "inc", "i": i})).await.unwrap();
    }
    stop(rt).await;

    let (store, recovered) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let c = &recovered.agents["c"];
    let order: Vec<u64> = c
        .queue
        .iter()
        .map(|e| e.payload["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        order,
        [0, 1, 2, 3, 4],
        "pending messages recovered in accept order"
    );
    assert_eq!(
        c.state,
        Some(json!({"count": 1})),
        "committed state recovered"
    );
    assert_eq!(c.next_seq, 7, "ids are never reused");
    drop((store, recovered));

    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    let slot = rt.agent("c").unwrap();
    wait_until("the five handled", T, || slot.state()["count"] == 6).await;
    assert_eq!(inc(&rt, "c").await.1, 7);
    assert_eq!(
        rt.store().unwrap().count_prefix(keys::MSG),
        0,
        "every ack removed its message"
    );
    stop(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_send_returns_the_first_id_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    rt.stop_child("c").await.unwrap();
    let opts = || SendOptions {
        key: Some("k-1".into()),
        ..SendOptions::default()
    };
    let first = rt
        .send_with("c", json!({"op": "inc"}), opts())
        .await
        .unwrap();
    let again = rt
        .send_with("c", json!({"op": "inc"}), opts())
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(
        rt.agent("c").unwrap().pending(),
        1,
        "nothing enqueued twice"
    );
    stop(rt).await;
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    let after = rt
        .send_with("c", json!({"op": "inc"}), opts())
        .await
        .unwrap();
    assert!(after.duplicate, "keys survive a restart");
    assert_eq!(after.message_id, first.message_id);
    stop(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_expire_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let rt = start(dir.path(), 100, Duration::from_millis(50)).await;
    let opts = || SendOptions {
        key: Some("k".into()),
        ..SendOptions::default()
    };
    let first = rt
        .send_with("c", json!({"op": "inc"}), opts())
        .await
        .unwrap();
    wait_until("key expired and collected", T, || rt.expire_keys() == 1).await;
    let store = rt.store().unwrap().clone();
    wait_until("key removed from disk", T, || {
        store.count_prefix(keys::IDEM) == 0
    })
    .await;
    let second = rt
        .send_with("c", json!({"op": "inc"}), opts())
        .await
        .unwrap();
    assert!(!second.duplicate);
    assert_ne!(second.message_id, first.message_id);
    stop(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mailbox_refuses_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = start(dir.path(), 2, Duration::from_secs(60)).await;
    rt.stop_child("c").await.unwrap();
    rt.send("c", json!(1)).await.unwrap();
    rt.send("c", json!(2)).await.unwrap();
    match rt.send("c", json!(3)).await {
        Err(Undelivered {
            error: SendError::MailboxFull { agent, capacity },
            payload,
        }) => {
            assert_eq!((agent.as_str(), capacity), ("c", 2));
            assert_eq!(
                payload,
                Some(json!(3)),
                "the refused payload is handed back"
            );
        }
        other => panic!("expected mailbox_full, got {other:?}"),
    }
    let refused = rt.send("nobody", json!({"x": 1})).await.unwrap_err();
    assert_eq!(refused.payload, Some(json!({"x": 1})));
    assert_eq!(rt.store().unwrap().count_prefix(keys::MSG), 2);
    stop(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_is_quarantined_and_the_rest_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    rt.stop_child("c").await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(rt.send("c", json!({"op": "inc"})).await.unwrap());
    }
    stop(rt).await;
    {
        let db = raw_db(dir.path());
        let t = db.open_tree("warden").unwrap();
        t.insert(
            keys::seq_key(keys::MSG, "c", ids[1].seq),
            &b"\x01garbage"[..],
        )
        .unwrap();
        db.flush().unwrap();
    }
    let (store, recovered) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(recovered.quarantined, 1);
    assert_eq!(recovered.agents["c"].queue.len(), 2);
    let q = store.quarantine();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, b"\x01garbage", "the raw record is kept");
    assert_eq!(store.snapshot().quarantined, 1);
    drop((store, recovered));
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    let slot = rt.agent("c").unwrap();
    wait_until("the two good messages handled", T, || {
        slot.state()["count"] == 2
    })
    .await;
    assert_eq!(
        rt.store().unwrap().snapshot().quarantined,
        1,
        "still reported after a restart"
    );
    stop(rt).await;
}

#[test]
fn a_newer_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_db(dir.path());
        db.open_tree("warden")
            .unwrap()
            .insert(keys::META, &[9u8][..])
            .unwrap();
        db.flush().unwrap();
    }
    match Store::open(dir.path(), StoreOptions::default()) {
        Err(
            e @ StoreError::NewerFormat {
                found: 9,
                supported: warden::store::codec::STORE_FORMAT,
                ..
            },
        ) => {
            assert!(e.to_string().contains("newer than this build"), "{e}");
        }
        Err(other) => panic!("expected NewerFormat, got {other:?}"),
        Ok(_) => panic!("a newer format must be refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_used_up_by_crashes_dead_letter_at_recovery() {
    // Attempt markers as a crashed daemon leaves them: 3 attempts started, none ended.
    let dir = tempfile::tempdir().unwrap();
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    rt.stop_child("c").await.unwrap();
    let poison = rt
        .send("c", json!({"op": "inc", "poison": true}))
        .await
        .unwrap();
    rt.send("c", json!({"op": "inc"})).await.unwrap();
    stop(rt).await;
    {
        let db = raw_db(dir.path());
        let t = db.open_tree("warden").unwrap();
        t.insert(
            keys::seq_key(keys::ATTEMPT, "c", poison.seq),
            warden::store::codec::encode_u64(3),
        )
        .unwrap();
        db.flush().unwrap();
    }
    let rt = start(dir.path(), 100, Duration::from_secs(60)).await;
    let slot = rt.agent("c").unwrap();
    wait_until("the other message handled", T, || {
        slot.state()["count"] == 1
    })
    .await;
    let dead = slot.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.id, poison);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].last_error.contains("daemon crash"),
        "{}",
        dead[0].last_error
    );
    drop(slot); // it holds the store open
    stop(rt).await;
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        store.count_prefix(keys::DEAD),
        1,
        "the dead letter is on disk"
    );
    assert_eq!(store.count_prefix(keys::MSG), 0);
}

/// A daemon SIGKILLed before its first group commit leaves a high-water file it
/// never wrote: the next start must not take that for damage (it refused to start,
/// calling the file damaged, until the file was written at open).
#[test]
fn a_daemon_killed_before_its_first_commit_starts_again() {
    let sb = crate::common::Sandbox::new(crate::common::SINK_TREE);
    let mut d = sb.start_ready();
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(Duration::from_secs(10));
    let _d = sb.start_ready();
    let r = sb.conn().req(json!({"op": "ping"}));
    assert_eq!(r["ok"], true, "{r}");
}

/// A format-1 store (written by an earlier build) opens, its records read, and
/// its format mark is raised to this build's store format, so that a build that
/// cannot read what this one writes (format 2 records, format 3 entries, format 4 spend) refuses it.
#[test]
fn a_format_1_store_is_read_and_marked_with_this_builds_format() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_db(dir.path());
        db.open_tree("warden")
            .unwrap()
            .insert(keys::META, &[1u8][..])
            .unwrap();
        db.flush().unwrap();
    }
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).expect("opens");
    store.close();
    drop(store);
    let db = raw_db(dir.path());
    let meta = db
        .open_tree("warden")
        .unwrap()
        .get(keys::META)
        .unwrap()
        .unwrap();
    assert_eq!(&meta[..], &[warden::store::codec::STORE_FORMAT]);
    assert_eq!(warden::store::codec::STORE_FORMAT, 4);
}

/// Entries (an agent's keyed state) are written and removed by a commit, read
/// back at recovery, and one that does not decode is quarantined alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_a_reopen_and_a_corrupt_one_is_quarantined_alone() {
    use warden::store::{entries, Batch};
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut b = Batch::default();
    for g in ["a", "b", "c"] {
        entries::put(
            &mut b,
            "join",
            &format!("g:{g}"),
            Some(&json!({"count": 3})),
        );
    }
    store.commit(b).await.unwrap();
    let mut b = Batch::default();
    entries::put(&mut b, "join", "g:b", None);
    store.commit(b).await.unwrap();
    store.close();
    drop(store);
    let (store, recovered) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let e = &recovered.agents["join"].entries;
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        ["g:a", "g:c"],
        "the removal committed"
    );
    assert_eq!(e["g:a"], json!({"count": 3}));
    store.close();
    drop((store, recovered));
    {
        let db = raw_db(dir.path());
        let t = db.open_tree("warden").unwrap();
        t.insert(keys::entry_key("join", "g:c"), &b"\x02garbage"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let (store, recovered) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(recovered.quarantined, 1);
    let e = &recovered.agents["join"].entries;
    assert_eq!(e.keys().collect::<Vec<_>>(), ["g:a"], "the good one kept");
    assert_eq!(store.quarantine().len(), 1);
    store.close();
}
