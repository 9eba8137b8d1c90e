//! Tests of `ledger`.

use super::*;
use crate::spend::Price;

fn usage(model: &str, input: u64, output: u64) -> Usage {
    Usage {
        model: Some(model.into()),
        input,
        output,
        total: input + output,
    }
}

#[test]
fn a_budget_is_exhausted_once_spend_reaches_it_and_records_hold_totals() {
    let mut prices = Prices::new();
    prices.insert(
        "m".into(),
        Price {
            input: 1.0,
            output: 2.0,
        },
    );
    let l = Ledger::new(prices);
    let budget = Budget {
        tokens: Some(100),
        cost: None,
    };
    let mut batch = Batch::default();
    assert!(l.set_budget("job", budget, false, &mut batch));
    assert!(!l.set_budget("job", budget, true, &mut batch), "kept");
    assert_eq!(l.remaining("job").unwrap().tokens, Some(100));
    drop(l.charge("a", "job", &[usage("m", 30, 30)], &mut batch));
    assert!(l.exhausted("job").is_none());
    assert_eq!(l.remaining("job").unwrap().tokens, Some(40));
    drop(l.charge("b", "job", &[usage("m", 20, 20)], &mut batch));
    assert!(l.exhausted("job").unwrap().contains("100 tokens"));
    assert_eq!(l.remaining("job").unwrap().tokens, Some(0));
    let by_agent = l.by("agent", 0);
    assert_eq!(by_agent.len(), 2);
    assert_eq!(by_agent[0].1.tokens, 60);
    let cost = l.by("model", 0)[0].1.cost;
    assert!((cost - (50.0 + 100.0) / 1e6).abs() < 1e-12, "{cost}");
    // a reload of what was committed gives the same books
    let l2 = Ledger::default();
    l2.load(vec![
        SpendRecord::Correlation("job".into(), l.correlation("job").unwrap()),
        SpendRecord::Budget("job".into(), budget, now_ms()),
    ]);
    assert!(l2.exhausted("job").is_some());
    // a window of the last hour has it all; nothing is old enough to prune
    assert_eq!(l.by("agent", now_ms() - 1)[0].1.tokens, 60);
    let mut batch = Batch::default();
    assert_eq!(l.prune(now_ms(), &mut batch), 0);
    // a month and a day later, the task and the hours go; agent totals stay
    let later = now_ms() + RETENTION_MS + 25 * HOUR_MS;
    assert_eq!(l.prune(later, &mut batch), 4, "spend, budget, two hourly");
    assert!(l.correlation("job").is_none() && l.budget("job").is_none());
    assert_eq!(l.by("agent", 0).len(), 2);
    assert!(l.by("agent", later - HOUR_MS).is_empty());
}
