//! Tests of `rate_limit`.

use super::*;

fn spec(rps: f64, burst: u32) -> LimitSpec {
    LimitSpec {
        requests_per_second: Some(rps),
        requests_per_minute: None,
        tokens_per_minute: None,
        burst: Some(burst),
        ..Default::default()
    }
}

#[tokio::test]
async fn burst_is_granted_at_once_then_the_rate_applies() {
    let l = Limiter::new("t", &spec(20.0, 3));
    for _ in 0..3 {
        l.acquire(None).await.unwrap();
    }
    assert_eq!(l.snapshot().waits, 0, "the burst needs no wait");
    let t = Instant::now();
    l.acquire(None).await.unwrap();
    assert_eq!(l.snapshot().waits, 1, "the 4th waits for the rate");
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "about one period (50 ms)"
    );
    assert_eq!(l.snapshot().permits, 4);
}

/// One clock (crate::clock): with tokio's time paused, a limiter wait of a
/// whole minute passes in virtual time, exactly, and the test takes no time.
#[tokio::test(start_paused = true)]
async fn a_limiter_wait_follows_paused_time() {
    let l = Limiter::new("t", &spec(1.0 / 60.0, 1));
    l.acquire(None).await.unwrap();
    let (t, real) = (Instant::now(), std::time::Instant::now());
    l.acquire(None).await.unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(59) && waited <= Duration::from_secs(61),
        "one period of virtual time: {waited:?}"
    );
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "no real minute passed"
    );
    // a 429 pause of an hour, likewise
    l.pause(Duration::from_secs(3600));
    let t = Instant::now();
    l.acquire(None).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(3600));
}

#[tokio::test]
async fn a_wait_past_the_deadline_is_refused_at_once() {
    let l = Limiter::new("t", &spec(1.0 / 60.0, 1));
    l.acquire(None).await.unwrap();
    let r = l
        .acquire(Some(Instant::now() + Duration::from_millis(100)))
        .await;
    assert!(matches!(r, Err(Refused::Deadline { .. })));
    assert_eq!(l.snapshot().waits, 0, "refused without waiting");
}

fn tpm(tokens: f64) -> LimitSpec {
    LimitSpec {
        requests_per_second: Some(1000.0),
        requests_per_minute: None,
        tokens_per_minute: Some(tokens),
        burst: Some(100),
        ..Default::default()
    }
}

#[tokio::test]
async fn tokens_are_weighted_and_a_full_bucket_waits_for_refill() {
    // 6,000 tokens a minute: a bucket of 6,000, refilled at 100 a second.
    let l = Limiter::new("t", &tpm(6000.0));
    l.acquire_tokens(5_000, None).await.unwrap();
    l.acquire_tokens(1_000, None).await.unwrap();
    assert_eq!(l.snapshot().waits, 0, "a minute's worth at once");
    let t = Instant::now();
    l.acquire_tokens(50, None).await.unwrap();
    assert_eq!(
        l.snapshot().waits,
        1,
        "the empty bucket makes 50 tokens wait"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "about half a second of refill"
    );
    assert_eq!(l.snapshot().tokens, 6_050);
    let r = l.acquire_tokens(7_000, None).await;
    assert!(matches!(r, Err(Refused::TooLarge { capacity: 6000, .. })));
}

#[tokio::test]
async fn an_overrun_is_debited_from_the_next_taker() {
    let l = Limiter::new("t", &tpm(6000.0));
    l.acquire_tokens(5_900, None).await.unwrap();
    l.debit(100); // the call used 6,000, not 5,900: the bucket is now empty
    assert_eq!(l.snapshot().token_debt, 100);
    let t = Instant::now();
    l.acquire_tokens(50, None).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "50 own + 100 owed wait for refill"
    );
    assert_eq!(
        (l.snapshot().token_debt, l.snapshot().tokens_debited),
        (0, 100)
    );
}

#[tokio::test]
async fn a_pause_holds_every_permit_until_it_ends() {
    let l = Limiter::new("t", &spec(1000.0, 10));
    l.pause(Duration::from_millis(150));
    let t = Instant::now();
    l.acquire(None).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(l.snapshot().pauses, 1);
}

/// A daily budget: once the day's spend reaches it, every sharer waits for the
/// next 00:00 UTC (paused time), and then the budget is whole again.
#[tokio::test(start_paused = true)]
async fn a_spent_daily_budget_pauses_the_sharers_until_the_day_ends() {
    let l = std::sync::Arc::new(Limiter::new(
        "day",
        &LimitSpec {
            requests_per_second: Some(1000.0),
            burst: Some(10),
            tokens_per_day: Some(1_000),
            ..Default::default()
        },
    ));
    assert!(!l.acquire(None).await.unwrap(), "a permit at once");
    let d = l.spend_day(600, 0.0).expect("a day record");
    assert_eq!(d.tokens, 600);
    assert!(!l.acquire(None).await.unwrap(), "600 of 1,000: still open");
    l.spend_day(500, 0.0);
    let now = crate::clock::now_ms();
    let to_midnight = super::daily::until_next_day(now);
    let today = l.snapshot().today.unwrap();
    assert_eq!(today["budget_spent"], true, "{today}");
    assert_eq!(today["tokens"], 1_100);
    let sharer = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire(None).await })
    };
    // a deadline before midnight is refused at once, not waited out
    let r = l
        .acquire(Some(Instant::now() + Duration::from_secs(60)))
        .await;
    assert!(matches!(r, Err(Refused::Deadline { .. })), "{r:?}");
    tokio::time::sleep(to_midnight.saturating_sub(Duration::from_secs(1))).await;
    assert!(
        !sharer.is_finished(),
        "still waiting a second before 00:00 UTC"
    );
    let t = Instant::now();
    assert!(sharer.await.unwrap().unwrap(), "it waited");
    assert!(
        t.elapsed() <= Duration::from_secs(3),
        "resumed at the day's edge"
    );
    let today = l.snapshot().today.unwrap();
    assert_eq!(today["budget_spent"], false, "{today}");
    assert_eq!(today["tokens"], 0, "a new day: {today}");
}
