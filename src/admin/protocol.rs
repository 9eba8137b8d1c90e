//! The admin protocol: newline-delimited JSON, one request per line, one reply per
//! request (a `watch` also streams events). Documented in docs/admin-protocol.md.
//!
//! A request is `{"id":<any JSON>,"op":"<name>", ...fields}`; the reply echoes the
//! id: `{"id":..,"ok":true,"result":..}` or
//! `{"id":..,"ok":false,"error":{"code":..,"message":..}}`. Parsing is two steps:
//! the envelope (object, id, op), then the op's own fields, refusing unknown ones,
//! so every refusal names the field at fault.

use serde_json::{json, Value};

pub use super::error::{AdminError, ErrorCode};
use super::ops::Op;
use crate::util::{did_you_mean, Quote};

/// Protocol version, returned by `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line accepted, in bytes.
pub const MAX_LINE: usize = 1 << 20;

pub use super::ops::OPS;

/// A request: its id (echoed) and op.
#[derive(Debug)]
pub(crate) struct Request {
    /// Echoed in the reply.
    pub(crate) id: Value,
    /// What to do.
    pub(crate) op: Op,
}

/// Parses one line; on failure returns the id (if it could be read) and the error.
pub(crate) fn parse(line: &[u8]) -> Result<Request, (Value, AdminError)> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            AdminError::bad_request(format!(
                "not JSON ({e}); send one JSON object per line, such as {{\"id\":1,\"op\":\"ping\"}}"
            )),
        )
    })?;
    let Value::Object(mut obj) = v else {
        return Err((
            Value::Null,
            AdminError::bad_request(
                "a request is a JSON object, such as {\"id\":1,\"op\":\"ping\"}",
            ),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    let op = match obj.remove("op") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err((
                id,
                AdminError::bad_request(format!("\"op\" must be a string, got {other}")),
            ))
        }
        None => {
            return Err((
                id,
                AdminError::bad_request("missing \"op\"; for example {\"id\":1,\"op\":\"ping\"}"),
            ))
        }
    };
    let parsed = match Op::parse(&op, obj) {
        Some(r) => r,
        None => {
            let hint = did_you_mean(&op, OPS.iter().copied(), Quote::Name)
                .map(|h| format!("{h} "))
                .unwrap_or_default();
            Err(AdminError::new(
                ErrorCode::UnknownOp,
                format!("no op '{op}'; {hint}ops: {}", OPS.join(", ")),
            ))
        }
    };
    match parsed {
        Ok(op) => Ok(Request { id, op }),
        Err(e) => Err((id, e)),
    }
}

/// A success reply line (no trailing newline).
pub fn ok_line(id: &Value, result: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "ok": true, "result": result})).expect("JSON encodes")
}

/// An error reply line (no trailing newline).
pub fn err_line(id: &Value, e: &AdminError) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "ok": false, "error": e})).expect("JSON encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_and_refuses_bad_input() {
        let r =
            parse(br#"{"id":7,"op":"send","to":"planner","payload":{"x":1},"key":"k"}"#).unwrap();
        assert_eq!(r.id, json!(7));
        assert!(matches!(r.op, Op::Send(_)));
        let e = |line: &[u8]| parse(line).unwrap_err().1;
        assert_eq!(e(b"nope").code, ErrorCode::BadRequest);
        assert_eq!(e(b"[1,2]").code, ErrorCode::BadRequest);
        assert!(e(br#"{"id":1,"op":"sned"}"#)
            .message
            .contains("did you mean 'send'"));
        assert!(e(br#"{"id":1,"op":"send","payload":1}"#)
            .message
            .contains("missing field `to`"));
        assert!(e(br#"{"id":1,"op":"send","to":5,"payload":1}"#)
            .message
            .contains("invalid type"));
        assert!(e(br#"{"id":1,"op":"ping","extra":1}"#)
            .message
            .contains("unknown field `extra`"));
        assert_eq!(parse(br#"{"id":"a","op":7}"#).unwrap_err().0, json!("a"));
        // every code reads back as itself; an unknown one as Other
        for c in [
            ErrorCode::NotEmpty,
            ErrorCode::LineTooLong,
            ErrorCode::UnknownAgent,
        ] {
            let v = serde_json::to_value(c).unwrap();
            assert_eq!(v, json!(c.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(v).unwrap(), c);
        }
        assert_eq!(
            serde_json::from_value::<ErrorCode>(json!("from_the_future")).unwrap(),
            ErrorCode::Other
        );
    }

    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(".{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // Bounded for CI: a few thousand cases a run (the seed is printed on failure).
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Any bytes: a request or an error with a message, never a panic.
        #[test]
        fn any_line_parses_or_is_refused_with_a_reason(line in prop::collection::vec(any::<u8>(), 0..2048)) {
            if let Err((_, e)) = parse(&line) {
                prop_assert!(!e.message.is_empty());
            }
        }

        /// Well-formed requests with random ops and fields: the same.
        #[test]
        fn any_request_object_parses_or_is_refused_with_a_reason(
            op in prop_oneof![prop::sample::select(OPS.to_vec()).prop_map(String::from), ".{0,20}"],
            fields in prop::collection::btree_map(
                prop::sample::select(vec!["to", "payload", "agent", "key", "timeout", "deadline",
                    "supervisor", "name", "state", "spec", "all", "message_id", "limit", "version", "x"]),
                json_value(),
                0..5,
            ),
            id in json_value(),
        ) {
            let mut obj = serde_json::Map::new();
            obj.insert("id".into(), id);
            obj.insert("op".into(), Value::from(op));
            for (k, v) in fields {
                obj.insert(k.to_string(), v);
            }
            let line = serde_json::to_vec(&Value::Object(obj)).unwrap();
            if let Err((_, e)) = parse(&line) {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
