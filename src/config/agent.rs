//! An `[agent.NAME]` section into an [`AgentSpec`]: the common agent keys, the
//! kind's own options (and the ones it requires), retry backoff, breaker, pause,
//! and the limiters and target agents it names, each checked against the rest of
//! the config.

use std::time::Duration;

use serde_json::Value as Json;

use super::backoff::{backoff, BACKOFF};
use super::build::TreeBuilder;
use super::kind_options::{check_exec, check_http, check_llm};
use super::section::Section;
use super::ConfigError;
use crate::actors::{AgentSpec, MailboxKind};
use crate::policies::breaker::BreakerSpec;
use crate::util::{did_you_mean, Quote};

pub(super) const AGENT: &[&str] = &[
    "dlq_max",
    "kind",
    "significant",
    "restart",
    "shutdown",
    "mailbox",
    "mailbox_capacity",
    "replicas",
    "timeout",
    "max_attempts",
    "backoff",
    "hop_budget",
    "limits",
    "accept_faults",
    "restart_backoff",
    "deadline",
    "breaker",
    "pause_after",
    "pause_cool_down",
    "to",
    "on_dead_letter",
    "budget_tokens",
    "budget_cost",
];
pub(super) const BREAKER: &[&str] = &["failures", "cool_down"];

impl TreeBuilder<'_, '_> {
    pub(super) fn agent(&self, name: &str, s: &Section) -> Result<AgentSpec, ConfigError> {
        let kind = match s.str("kind")? {
            Some(k) => k,
            None => {
                return Err(s.err(
                    "kind",
                    format!(
                        "missing; every agent needs a kind ({})",
                        self.kinds.names().join(", ")
                    ),
                ))
            }
        };
        let Some(info) = self.kinds.get(kind) else {
            let hint = did_you_mean(kind, self.kinds.names(), Quote::Value)
                .map(|h| format!("{h} "))
                .unwrap_or_default();
            return Err(s.err(
                "kind",
                format!(
                    "unknown kind \"{kind}\"; {hint}known kinds: {}",
                    self.kinds.names().join(", ")
                ),
            ));
        };
        let mut allowed: Vec<&str> = AGENT.to_vec();
        allowed.extend_from_slice(info.options);
        s.check_keys(&allowed)?;
        for req in info.required {
            if !s.table.contains_key(*req) {
                return Err(s.err(req, format!("missing; kind \"{kind}\" needs it")));
            }
        }
        let d = AgentSpec::new(name, kind);
        let mut spec = AgentSpec {
            mailbox: match s.choice("mailbox", &["durable", "memory"])? {
                Some("memory") => MailboxKind::Memory,
                Some(_) => MailboxKind::Durable,
                None => d.mailbox,
            },
            mailbox_capacity: s
                .int("mailbox_capacity", 1, i64::from(u32::MAX))?
                .map_or(d.mailbox_capacity, |v| v as usize),
            replicas: s.int("replicas", 1, 1024)?.map_or(d.replicas, |v| v as u32),
            timeout: s.duration("timeout")?.unwrap_or(d.timeout),
            max_attempts: s
                .int("max_attempts", 1, 1_000_000)?
                .map_or(d.max_attempts, |v| v as u32),
            backoff: match s.table("backoff")? {
                Some(b) => {
                    b.check_keys(BACKOFF)?;
                    backoff(&b, d.backoff)?
                }
                None => d.backoff,
            },
            dlq_max: s
                .int("dlq_max", 1, 1_000_000)?
                .map_or(d.dlq_max, |v| v as usize),
            hop_budget: s
                .int("hop_budget", 0, 1_000_000)?
                .map_or(d.hop_budget, |v| v as u32),
            limits: s.strings("limits")?.unwrap_or_default(),
            accept_faults: s.bool("accept_faults")?.unwrap_or(false),
            deadline: s.duration("deadline")?,
            breaker: match s.table("breaker")? {
                None => None,
                Some(b) => {
                    b.check_keys(BREAKER)?;
                    Some(BreakerSpec {
                        failures: b.int("failures", 1, 1_000_000)?.map_or(5, |v| v as u32),
                        cool_down: b.duration("cool_down")?.unwrap_or(Duration::from_secs(30)),
                    })
                }
            },
            systemic: crate::policies::systemic::SystemicSpec {
                after: s
                    .int("pause_after", 0, 1_000_000)?
                    .map_or(d.systemic.after, |v| v as u32),
                cool_down: s
                    .duration("pause_cool_down")?
                    .unwrap_or(d.systemic.cool_down),
                ..d.systemic
            },
            ..d
        };
        if spec.timeout.is_zero() {
            return Err(s.err("timeout", "must be more than 0"));
        }
        for l in &spec.limits {
            if !self.limits.contains_key(l) {
                let hint = did_you_mean(l, self.limits.keys().map(String::as_str), Quote::Name)
                    .map(|h| format!("{h} "))
                    .unwrap_or_default();
                return Err(s.err(
                    "limits",
                    format!("no limiter '{l}'; {hint}define it as [limits.{l}]"),
                ));
            }
        }
        // `to`, for every kind: whom it may emit to (and, for echo, whom it does)
        // a task's budget, given to each correlation that starts here
        s.int("budget_tokens", 1, i64::MAX)?;
        s.number("budget_cost", 0.0, 1e12)?;
        let common = ["to", "on_dead_letter", "budget_tokens", "budget_cost"];
        for opt in info.options.iter().chain(common.iter()) {
            if let Some(v) = s.table.get(*opt) {
                let json = serde_json::to_value(v).map_err(|e| s.err(opt, e.to_string()))?;
                spec.options.insert(opt.to_string(), json);
            }
        }
        if s.table.contains_key("to") && s.strings("to")?.is_none() {
            return Err(s.err("to", "must be a list of agent names"));
        }
        if let Some(target) = s.str("on_dead_letter")? {
            if target == name {
                return Err(s.err(
                    "on_dead_letter",
                    "names the agent itself; name a fallback agent (or a human queue) instead",
                ));
            }
            if self.check_targets && !self.agents.contains_key(target) {
                let hint =
                    did_you_mean(target, self.agents.keys().map(String::as_str), Quote::Name)
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                return Err(s.err("on_dead_letter", format!("no agent '{target}'{hint}")));
            }
        }
        for list in info.agent_lists.iter().chain(["to"].iter()) {
            if self.check_targets && s.table.contains_key(*list) {
                for target in s.strings(list)?.unwrap_or_default() {
                    if !self.agents.contains_key(&target) {
                        let hint = did_you_mean(
                            &target,
                            self.agents.keys().map(String::as_str),
                            Quote::Name,
                        )
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                        return Err(s.err(list, format!("no agent '{target}'{hint}")));
                    }
                }
            }
        }
        if kind == "exec" {
            check_exec(s)?;
        }
        if kind == "http" {
            check_http(s)?;
        }
        if kind == "llm" {
            check_llm(s)?;
        }
        if kind == "router" {
            self.check_router(name, s)?;
        }
        if kind == "validate" {
            self.check_validate(name, s)?;
        }
        // kinds whose work lives in the agent's state: replicas share one state,
        // last commit wins, so two would lose each other's updates
        let stateful = matches!(kind, "join" | "approve" | "timer")
            || (matches!(kind, "router" | "validate") && s.table.contains_key("max_cycles"));
        if stateful && spec.replicas > 1 {
            return Err(s.err(
                "replicas",
                format!("a {kind} keeps its work in its state, which replicas would overwrite; it runs as one replica"),
            ));
        }
        if kind == "fanout" {
            if let Some(f) = s.str("items")? {
                if !f.starts_with('/') {
                    return Err(s.err(
                        "items",
                        format!("{f:?} is not a JSON pointer; write \"/{f}\""),
                    ));
                }
            }
        }
        if kind == "timer" {
            crate::actors::kinds::timer::Schedule::parse(s.str("every")?, s.str("cron")?).map_err(
                |e| {
                    s.err(
                        if s.table.contains_key("cron") {
                            "cron"
                        } else {
                            "every"
                        },
                        e,
                    )
                },
            )?;
        }
        if let (Some(t), "approve") = (s.str("on_reject")?, kind) {
            if t == name {
                return Err(s.err("on_reject", "names the agent itself"));
            }
            if self.check_targets && !self.agents.contains_key(t) {
                return Err(s.err("on_reject", format!("no agent '{t}'")));
            }
        }
        match spec.options.get("path") {
            None => {}
            Some(Json::String(p)) if p.is_empty() => {
                return Err(s.err("path", "must not be empty"));
            }
            Some(Json::String(p)) if std::path::Path::new(p).is_dir() => {
                return Err(s.err(
                    "path",
                    format!("{p} is a directory; give a file in it, such as \"{p}/out.jsonl\""),
                ));
            }
            Some(Json::String(_)) => {}
            Some(other) => {
                return Err(s.err(
                    "path",
                    format!("must be a file path (a string), got {other}"),
                ))
            }
        }
        Ok(spec)
    }
}
