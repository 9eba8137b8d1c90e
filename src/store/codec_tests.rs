//! Tests of `codec`.

use super::*;
use serde_json::json;

fn sample() -> Envelope {
    Envelope {
        id: MessageId {
            agent: "planner".into(),
            seq: 42,
        },
        payload: json!({"task": "x"}),
        correlation: "planner:42".into(),
        causation: Some(MessageId {
            agent: "intake".into(),
            seq: 7,
        }),
        hops: 1,
        attempt: 1,
        deadline_ms: Some(1_700_000_000_000),
        key: Some("k-1".into()),
        reply_to: Some(ReplyTo::Call(3)),
        trace: None,
        enqueued_ms: 1_600_000_000_000,
        part: None,
    }
}

/// The golden bytes of `sample()` after the version byte, without `part`.
const V1_BODY: &str = concat!(
    "07706c616e6e6572",           // agent "planner"
    "2a",                         // seq 42
    "0c7b227461736b223a2278227d", // payload {"task":"x"}
    "0a706c616e6e65723a3432",     // correlation "planner:42"
    "0106696e74616b6507",         // causation Some(intake:7)
    "01",                         // hops 1
    "01",                         // attempt 1
    "01fd0068e5cf8b010000",       // deadline Some(1_700_000_000_000)
    "01036b2d31",                 // key Some("k-1")
    "010003",                     // reply_to Some(Call(3))
    "00",                         // trace None
    "fd00806e8774010000",         // enqueued_ms 1_600_000_000_000
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn envelope_round_trips() {
    let e = sample();
    assert_eq!(decode_envelope(&encode_envelope(&e)).unwrap(), e);
}

#[test]
fn envelope_golden_bytes() {
    // Format 2: format 1's fields, then `part`. If this changes, bump FORMAT
    // and keep a decoder for versions 1 and 2.
    assert_eq!(
        hex(&encode_envelope(&sample())),
        format!("02{V1_BODY}00") // part None
    );
    let mut with_part = sample();
    with_part.part = Some(crate::envelope::Part {
        group: "split:9".into(),
        index: 2,
        count: 5,
    });
    assert_eq!(
        hex(&encode_envelope(&with_part)),
        format!("02{V1_BODY}010773706c69743a390205") // Some(("split:9", 2, 5))
    );
    assert_eq!(
        decode_envelope(&encode_envelope(&with_part)).unwrap(),
        with_part
    );
}

#[test]
fn version_1_records_are_still_read() {
    let v1 = unhex(&format!("01{V1_BODY}"));
    assert_eq!(decode_envelope(&v1).unwrap(), sample());
    let mut dead = v1.clone();
    dead.extend(unhex("02" /* reason 2 */));
    dead.extend(unhex("07333320686f7073" /* "33 hops" */));
    dead.extend(unhex("0009" /* attempts 0, dead_ms 9 */));
    let d = decode_dead(&dead).unwrap();
    assert_eq!(d.envelope, sample());
    assert_eq!(d.reason, DeadReason::HopBudgetExhausted);
    assert_eq!(decode_u64(&unhex("01fb2c01")).unwrap(), 300);
}

#[test]
fn counters_and_state_golden_bytes() {
    assert_eq!(hex(&encode_u64(300)), "02fb2c01");
    assert_eq!(hex(&encode_idem(5, 6)), "020506");
    assert_eq!(hex(&encode_state(&json!({"n": 1}))), "02077b226e223a317d");
}

#[test]
fn dead_letter_round_trips() {
    let d = DeadLetter {
        envelope: sample(),
        reason: DeadReason::HopBudgetExhausted,
        last_error: "33 hops".into(),
        attempts: 0,
        dead_ms: 9,
    };
    let back = decode_dead(&encode_dead(&d)).unwrap();
    assert_eq!(back.envelope, d.envelope);
    assert_eq!(back.reason, d.reason);
    assert_eq!(back.last_error, d.last_error);
}

#[test]
fn other_versions_and_garbage_are_refused() {
    let mut b = encode_envelope(&sample());
    b[0] = 3;
    assert_eq!(decode_envelope(&b), Err(CodecError::Version(3)));
    b[0] = 0;
    assert_eq!(decode_envelope(&b), Err(CodecError::Version(0)));
    assert!(matches!(
        decode_envelope(&[FORMAT, 0xff, 0xff]),
        Err(CodecError::Corrupt(_))
    ));
    assert_eq!(decode_envelope(&[]), Err(CodecError::Empty));
    let mut long = encode_envelope(&sample());
    long.push(0);
    assert!(matches!(
        decode_envelope(&long),
        Err(CodecError::Corrupt(_))
    ));
}
