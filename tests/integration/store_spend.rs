//! Spend records in the real store: written by a commit, read back at
//! recovery, a corrupt one quarantined alone (the rest of the books kept).

use warden::store::{Store, StoreOptions};

use crate::store::raw_db;

/// Spend records (a task's totals and budget, an agent's totals, a limiter's
/// day) come back at recovery; one that does not decode is quarantined alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_records_survive_a_reopen_and_a_corrupt_one_is_quarantined_alone() {
    use warden::store::spend::{self, Budget, CorrelationSpend, DaySpend, SpendRecord, Totals};
    use warden::store::Batch;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = Totals {
        tokens: 40,
        input: 30,
        output: 10,
        cost: 0.5,
        calls: 2,
    };
    let mut b = Batch::default();
    let c = CorrelationSpend { spent: t, at_ms: 9 };
    b.insert(spend::correlation_key("job-1"), spend::encode(&c));
    b.insert(spend::correlation_key("job-2"), spend::encode(&c));
    let budget = Budget {
        tokens: Some(100),
        cost: None,
    };
    b.insert(spend::budget_key("job-1"), spend::encode_budget(&budget, 9));
    b.insert(spend::agent_key("planner", "m"), spend::encode(&t));
    let day = DaySpend {
        day: 20_000,
        tokens: 40,
        cost: 0.5,
    };
    b.insert(spend::limiter_key("openai"), spend::encode(&day));
    store.commit(b).await.unwrap();
    store.close();
    drop(store);
    {
        let db = raw_db(dir.path());
        let t = db.open_tree("warden").unwrap();
        t.insert(
            spend::correlation_key("job-2"),
            &b"{\"tokens\": \"many\""[..],
        )
        .unwrap();
        db.flush().unwrap();
    }
    let (store, recovered) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(recovered.quarantined, 1, "job-2's record, alone");
    let mut got = recovered.spend.clone();
    got.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        got,
        vec![
            SpendRecord::Agent("planner".into(), "m".into(), t),
            SpendRecord::Budget("job-1".into(), budget, 9),
            SpendRecord::Correlation("job-1".into(), c),
            SpendRecord::Limiter("openai".into(), day),
        ]
    );
    store.close();
}
