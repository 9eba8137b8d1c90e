//! Spend records: what agents spent (tokens, and cost by the config's price
//! table), per correlation and per agent and model, committed in the batch of
//! the hand-off that incurred it (see [`crate::spend`]).
//!
//! - `$ c correlation`: a correlation's totals and when it last spent.
//! - `$ b correlation`: a correlation's budget (written with the accept of the
//!   message that set it; apart from the totals, so the two never race).
//! - `$ a agent \0 model`: an agent's totals with one model (`""` when the
//!   agent reported tokens without a model) over the hours already pruned;
//!   its all-time totals are that plus its kept hours.
//! - `$ l limiter`: what a limiter's sharers spent today (for its
//!   `tokens_per_day`, `cost_per_day`).
//!
//! Values are JSON objects (small, rare next to messages, and readable in a
//! dump). Each record holds absolute totals, written whole: the ledger computes
//! them in commit order, so a later record always includes an earlier one.

use serde::{Deserialize, Serialize};

use super::keys;

/// Totals of spend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Tokens in all (input + output, or what was reported as a total).
    pub tokens: u64,
    /// Input (prompt) tokens, where reported apart.
    #[serde(default)]
    pub input: u64,
    /// Output (completion) tokens, where reported apart.
    #[serde(default)]
    pub output: u64,
    /// Cost in the price table's currency (per million tokens in the table).
    #[serde(default)]
    pub cost: f64,
    /// Handlings that reported spend.
    #[serde(default)]
    pub calls: u64,
}

impl Totals {
    /// Adds `o` to these totals (saturating: a flood of reports cannot wrap).
    pub fn add(&mut self, o: &Totals) {
        self.tokens = self.tokens.saturating_add(o.tokens);
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cost += o.cost;
        self.calls = self.calls.saturating_add(o.calls);
    }
}

/// A task's budget (either limit may be absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Tokens the correlation may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Cost the correlation may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl Budget {
    /// True when neither limit is set.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_none() && self.cost.is_none()
    }
}

/// A correlation's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorrelationSpend {
    /// What it spent.
    #[serde(flatten)]
    pub spent: Totals,
    /// When it last spent (ms since the epoch).
    pub at_ms: u64,
}

/// What a limiter's sharers spent in one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DaySpend {
    /// The day: milliseconds since the epoch / 86,400,000.
    pub day: u64,
    /// Tokens spent that day.
    pub tokens: u64,
    /// Cost spent that day.
    pub cost: f64,
}

/// A decoded spend record.
#[derive(Debug, Clone, PartialEq)]
pub enum SpendRecord {
    /// `$ c correlation`.
    Correlation(String, CorrelationSpend),
    /// `$ b correlation`: the budget, and when it was set (ms).
    Budget(String, Budget, u64),
    /// `$ h hour \0 agent \0 model`: an agent's totals with a model in one
    /// hour (hours since the epoch), for spend over a recent window.
    Hour(u64, String, String, Totals),
    /// `$ a agent \0 model`.
    Agent(String, String, Totals),
    /// `$ l limiter`.
    Limiter(String, DaySpend),
}

/// The key of correlation `c`'s record.
pub fn correlation_key(c: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + c.len());
    k.push(keys::SPEND);
    k.push(b'c');
    k.extend_from_slice(c.as_bytes());
    k
}

/// The key of correlation `c`'s budget.
pub fn budget_key(c: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + c.len());
    k.push(keys::SPEND);
    k.push(b'b');
    k.extend_from_slice(c.as_bytes());
    k
}

/// A budget as stored: the limits and when they were set.
#[derive(Serialize, Deserialize)]
struct BudgetRecord {
    #[serde(flatten)]
    budget: Budget,
    #[serde(default)]
    at_ms: u64,
}

/// The value of a budget record.
pub fn encode_budget(budget: &Budget, at_ms: u64) -> Vec<u8> {
    encode(&BudgetRecord {
        budget: *budget,
        at_ms,
    })
}

/// The key of `agent`'s totals with `model` in `hour`.
pub fn hour_key(hour: u64, agent: &str, model: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + agent.len() + model.len());
    k.push(keys::SPEND);
    k.push(b'h');
    k.extend_from_slice(&hour.to_be_bytes());
    k.extend_from_slice(agent.as_bytes());
    k.push(0);
    k.extend_from_slice(model.as_bytes());
    k
}

/// The key of `agent`'s record for `model`.
pub fn agent_key(agent: &str, model: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + agent.len() + model.len());
    k.push(keys::SPEND);
    k.push(b'a');
    k.extend_from_slice(agent.as_bytes());
    k.push(0);
    k.extend_from_slice(model.as_bytes());
    k
}

/// The key of limiter `name`'s record.
pub fn limiter_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + name.len());
    k.push(keys::SPEND);
    k.push(b'l');
    k.extend_from_slice(name.as_bytes());
    k
}

/// Encodes a record's value.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("spend records serialize")
}

/// Decodes the record at `k` (a `$` key).
pub fn decode(k: &[u8], v: &[u8]) -> Result<SpendRecord, String> {
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| "a name that is not UTF-8".to_string())
    };
    match k.get(1) {
        Some(b'c') => {
            let c = text(&k[2..])?;
            let r = serde_json::from_slice(v).map_err(|e| format!("bad spend record: {e}"))?;
            Ok(SpendRecord::Correlation(c, r))
        }
        Some(b'a') => {
            let rest = &k[2..];
            let nul = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or("no model in an agent's spend key")?;
            let t = serde_json::from_slice(v).map_err(|e| format!("bad spend record: {e}"))?;
            Ok(SpendRecord::Agent(
                text(&rest[..nul])?,
                text(&rest[nul + 1..])?,
                t,
            ))
        }
        Some(b'b') => {
            let b: BudgetRecord =
                serde_json::from_slice(v).map_err(|e| format!("bad spend record: {e}"))?;
            Ok(SpendRecord::Budget(text(&k[2..])?, b.budget, b.at_ms))
        }
        Some(b'h') => {
            let hour = k
                .get(2..10)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or("no hour in an hourly spend key")?;
            let rest = &k[10..];
            let nul = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or("no model in an hourly spend key")?;
            let t = serde_json::from_slice(v).map_err(|e| format!("bad spend record: {e}"))?;
            Ok(SpendRecord::Hour(
                hour,
                text(&rest[..nul])?,
                text(&rest[nul + 1..])?,
                t,
            ))
        }
        Some(b'l') => {
            let d = serde_json::from_slice(v).map_err(|e| format!("bad spend record: {e}"))?;
            Ok(SpendRecord::Limiter(text(&k[2..])?, d))
        }
        _ => Err("unknown kind of spend record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let c = CorrelationSpend {
            spent: Totals {
                tokens: 30,
                input: 10,
                output: 20,
                cost: 0.5,
                calls: 2,
            },
            at_ms: 7,
        };
        let b = Budget {
            tokens: Some(100),
            cost: None,
        };
        assert_eq!(
            decode(&budget_key("job-1"), &encode_budget(&b, 5)).unwrap(),
            SpendRecord::Budget("job-1".into(), b, 5)
        );
        let t = Totals {
            tokens: 3,
            ..Totals::default()
        };
        assert_eq!(
            decode(&hour_key(490_000, "a", "m"), &encode(&t)).unwrap(),
            SpendRecord::Hour(490_000, "a".into(), "m".into(), t)
        );
        assert!(decode(b"$h\0\0", b"{}").is_err());
        let k = correlation_key("job-1");
        assert_eq!(
            decode(&k, &encode(&c)).unwrap(),
            SpendRecord::Correlation("job-1".into(), c)
        );
        let t = Totals {
            tokens: 5,
            ..Totals::default()
        };
        let k = agent_key("planner", "gpt-4o-mini");
        assert_eq!(
            decode(&k, &encode(&t)).unwrap(),
            SpendRecord::Agent("planner".into(), "gpt-4o-mini".into(), t)
        );
        assert!(decode(&k, b"{not json").is_err());
        let d = DaySpend {
            day: 20_000,
            tokens: 9,
            cost: 0.25,
        };
        assert_eq!(
            decode(&limiter_key("openai"), &encode(&d)).unwrap(),
            SpendRecord::Limiter("openai".into(), d)
        );
        assert!(decode(b"$x", b"{}").is_err());
        assert!(decode(b"$aplanner", b"{}").is_err());
    }
}
