//! An `[agent.NAME]` section into an [`AgentSpec`]: the common agent keys, the
//! kind's own options (and the ones it requires), retry backoff, breaker, pause,
//! and the limiters and target agents it names, each checked against the rest of
//! the config.

use std::time::Duration;

use serde_json::Value as Json;

use super::backoff::{backoff, BACKOFF};
use super::build::TreeBuilder;
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
        for opt in info.options.iter().chain(["to", "on_dead_letter"].iter()) {
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

impl TreeBuilder<'_, '_> {
    /// A validator's own keys: the schema file compiles (JSON Schema 2020-12),
    /// `on_fail` is another agent, `max_cycles` at least 1.
    fn check_validate(&self, name: &str, s: &Section) -> Result<(), ConfigError> {
        if let Some(path) = s.str("schema")? {
            crate::actors::kinds::validate::load_schema(path).map_err(|e| s.err("schema", e))?;
        }
        if let Some(t) = s.str("on_fail")? {
            if t == name {
                return Err(s.err("on_fail", "names the validator itself"));
            }
            if self.check_targets && !self.agents.contains_key(t) {
                return Err(s.err("on_fail", format!("no agent '{t}'")));
            }
        }
        s.int("max_cycles", 1, 1_000_000)?;
        Ok(())
    }

    /// A router's own keys: `field` a JSON pointer, `routes` a table of agent
    /// names, `default` and `exhausted` agents, `max_cycles` at least 1,
    /// `exhausted` only with `max_cycles`.
    fn check_router(&self, name: &str, s: &Section) -> Result<(), ConfigError> {
        if let Some(f) = s.str("field")? {
            if !f.is_empty() && !f.starts_with('/') {
                return Err(s.err(
                    "field",
                    format!("{f:?} is not a JSON pointer; write \"/{f}\""),
                ));
            }
        }
        let agent = |key: &str, target: &str| -> Result<(), ConfigError> {
            if target == name {
                return Err(s.err(key, "names the router itself"));
            }
            if self.check_targets && !self.agents.contains_key(target) {
                let hint =
                    did_you_mean(target, self.agents.keys().map(String::as_str), Quote::Name)
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                return Err(s.err(key, format!("no agent '{target}'{hint}")));
            }
            Ok(())
        };
        if let Some(v) = s.table.get("routes") {
            let Some(t) = v.as_table() else {
                return Err(s.err(
                    "routes",
                    "must be a table of agent names: routes = { sales = \"sales\" }",
                ));
            };
            for (k, v) in t {
                let Some(target) = v.as_str() else {
                    return Err(s.err(&format!("routes.{k}"), "must be an agent name"));
                };
                agent(&format!("routes.{k}"), target)?;
            }
        }
        for key in ["default", "exhausted"] {
            if let Some(t) = s.str(key)? {
                agent(key, t)?;
            }
        }
        let cycles = s.int("max_cycles", 1, 1_000_000)?;
        if s.table.contains_key("exhausted") && cycles.is_none() {
            return Err(s.err(
                "exhausted",
                "needs max_cycles: the pass after max_cycles goes to exhausted",
            ));
        }
        Ok(())
    }
}

/// An `exec` agent's own keys: `command` a non-empty list of strings (argv, no
/// shell), `env` a table of strings, `env_pass` a list of variable names,
/// `start_timeout` a duration, `cwd` an existing directory.
fn check_exec(s: &Section) -> Result<(), ConfigError> {
    match s.strings("command")? {
        Some(c) if c.is_empty() || c[0].is_empty() => {
            return Err(s.err(
                "command",
                "must name a program: command = [\"python3\", \"agents/coder.py\"]",
            ))
        }
        _ => {}
    }
    if let Some(v) = s.table.get("env") {
        let Some(t) = v.as_table() else {
            return Err(s.err(
                "env",
                "must be a table of strings: env = { MODEL = \"gpt-4o-mini\" }",
            ));
        };
        for (k, v) in t {
            if !v.is_str() {
                return Err(s.err(&format!("env.{k}"), "must be a string"));
            }
            check_env_name(s, "env", k)?;
        }
    }
    for name in s.strings("env_pass")?.unwrap_or_default() {
        check_env_name(s, "env_pass", &name)?;
    }
    if let Some(d) = s.duration("start_timeout")? {
        if d.is_zero() {
            return Err(s.err("start_timeout", "must be more than 0"));
        }
    }
    if let Some(v) = s.table.get("cwd") {
        match v.as_str() {
            Some(dir) if std::path::Path::new(dir).is_dir() => {}
            Some(dir) => return Err(s.err("cwd", format!("{dir} is not a directory"))),
            None => return Err(s.err("cwd", "must be a directory path (a string)")),
        }
    }
    Ok(())
}

fn check_env_name(s: &Section, key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(s.err(
            key,
            format!("{name:?} is not an environment variable name (letters, digits and _)"),
        ));
    }
    Ok(())
}

/// An `http` agent's own keys: `url` an http(s) URL, `headers` a table of strings
/// (`${VAR}` is read from the daemon's environment when the agent starts).
fn check_http(s: &Section) -> Result<(), ConfigError> {
    if let Some(url) = s.str("url")? {
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() > "https://".len();
        if !ok {
            return Err(s.err("url", format!("{url:?} is not an http:// or https:// URL")));
        }
    }
    if let Some(v) = s.table.get("headers") {
        let Some(t) = v.as_table() else {
            return Err(s.err(
                "headers",
                "must be a table of strings: headers = { Authorization = \"Bearer ${TOKEN}\" }",
            ));
        };
        for (k, v) in t {
            if !v.is_str() {
                return Err(s.err(&format!("headers.{k}"), "must be a string"));
            }
        }
    }
    Ok(())
}

/// An `llm` agent's own keys.
fn check_llm(s: &Section) -> Result<(), ConfigError> {
    if let Some(url) = s.str("base_url")? {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(s.err("base_url", format!("{url:?} is not an http:// or https:// URL (such as \"https://api.openai.com/v1\")")));
        }
    }
    s.choice("response_format", &["text", "json"])?;
    if s.table.contains_key("system") && s.table.contains_key("system_file") {
        return Err(s.err("system_file", "give system or system_file, not both"));
    }
    if let Some(f) = s.str("system_file")? {
        if !std::path::Path::new(f).is_file() {
            return Err(s.err("system_file", format!("{f} is not a readable file")));
        }
    }
    s.str("system")?;
    s.str("model")?;
    if let Some(var) = s.str("api_key_env")? {
        check_env_name(s, "api_key_env", var)?;
    }
    s.int("max_tokens", 1, 1_000_000)?;
    if let Some(v) = s.table.get("temperature") {
        let t = v.as_float().or(v.as_integer().map(|i| i as f64));
        if !t.is_some_and(|t| (0.0..=2.0).contains(&t)) {
            return Err(s.err("temperature", "must be a number from 0 to 2"));
        }
    }
    Ok(())
}
