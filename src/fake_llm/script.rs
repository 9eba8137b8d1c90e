//! The fake LLM's script: rules matched on the prompt, and faults.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Why a script was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ScriptError {
    file: String,
    reason: String,
}

/// One answer rule: the first whose matches all hold answers.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The last user message contains this.
    pub user: Option<String>,
    /// The system prompt contains this.
    pub system: Option<String>,
    /// Answer text.
    pub reply: Option<String>,
    /// Answer JSON (its text is the content).
    pub json: Option<Value>,
    /// Answer with this HTTP error instead.
    pub status: Option<u16>,
}

impl Rule {
    /// The content this rule answers.
    pub fn answer(&self, json_mode: bool) -> String {
        match (&self.json, &self.reply) {
            (Some(j), _) => j.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) if json_mode => "{}".into(),
            (None, None) => String::new(),
        }
    }
}

/// Injected faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of requests answered 429 `rate_limit_exceeded`.
    pub rate_429: f64,
    /// Their `Retry-After`.
    pub retry_after: String,
    /// Every request in this window after start is answered 429.
    pub window_429: Option<(Duration, Duration)>,
    /// Share answered 500.
    pub rate_5xx: f64,
    /// Before every answer.
    pub latency: Duration,
    /// Share of json-mode answers that are broken JSON.
    pub invalid_json: f64,
    /// Every request answered 429 `insufficient_quota`.
    pub insufficient_quota: bool,
    /// Every this many successes, the answer says the request quota is used up
    /// (`x-ratelimit-remaining-requests: 0`, reset in `quota_reset`); 0: never.
    pub exhaust_every: u64,
    /// The `x-ratelimit-reset-requests` of those answers (`1s`, `6m0s`).
    pub quota_reset: String,
}

/// Rules, faults and the seed of the fault dice.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// The faults.
    pub faults: Faults,
    /// Seed of the fault dice (the same script and requests give the same answers).
    pub seed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    seed: Option<u64>,
    faults: Option<RawFaults>,
    #[serde(default)]
    rule: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    rate_429: Option<f64>,
    retry_after: Option<String>,
    window_429: Option<[String; 2]>,
    rate_5xx: Option<f64>,
    latency: Option<String>,
    invalid_json: Option<f64>,
    insufficient_quota: Option<bool>,
    exhaust_every: Option<u64>,
    quota_reset: Option<String>,
}

impl Script {
    /// Parses a script (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<Script, ScriptError> {
        let err = |reason: String| ScriptError {
            file: file.to_string(),
            reason,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let f = raw.faults.unwrap_or(RawFaults {
            rate_429: None,
            retry_after: None,
            window_429: None,
            rate_5xx: None,
            latency: None,
            invalid_json: None,
            insufficient_quota: None,
            exhaust_every: None,
            quota_reset: None,
        });
        let dur = |s: &str, key: &str| {
            humantime::parse_duration(s).map_err(|e| err(format!("faults.{key}: {e}")))
        };
        let share = |v: Option<f64>, key: &str| match v {
            Some(x) if !(0.0..=1.0).contains(&x) => Err(err(format!(
                "faults.{key} must be between 0 and 1, got {x}"
            ))),
            v => Ok(v.unwrap_or(0.0)),
        };
        let window_429 = match &f.window_429 {
            Some([a, b]) => Some((dur(a, "window_429")?, dur(b, "window_429")?)),
            None => None,
        };
        for (i, r) in raw.rule.iter().enumerate() {
            if r.reply.is_none() && r.json.is_none() && r.status.is_none() {
                return Err(err(format!(
                    "rule {} answers nothing: give reply, json or status",
                    i + 1
                )));
            }
        }
        Ok(Script {
            rules: raw.rule,
            faults: Faults {
                rate_429: share(f.rate_429, "rate_429")?,
                retry_after: f.retry_after.unwrap_or_else(|| "1".into()),
                window_429,
                rate_5xx: share(f.rate_5xx, "rate_5xx")?,
                latency: f
                    .latency
                    .as_deref()
                    .map(|l| dur(l, "latency"))
                    .transpose()?
                    .unwrap_or_default(),
                invalid_json: share(f.invalid_json, "invalid_json")?,
                insufficient_quota: f.insufficient_quota.unwrap_or(false),
                exhaust_every: f.exhaust_every.unwrap_or(0),
                quota_reset: f.quota_reset.unwrap_or_else(|| "1s".into()),
            },
            seed: raw.seed.unwrap_or(0),
        })
    }

    /// The first rule matching the last user message and the system prompt.
    pub fn find(&self, user: &str, system: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            r.user.as_deref().is_none_or(|u| user.contains(u))
                && r.system.as_deref().is_none_or(|s| system.contains(s))
        })
    }
}
