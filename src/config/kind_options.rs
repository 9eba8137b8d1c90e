//! The options of the kinds that have their own rules (`exec`, `http`, `llm`,
//! `router`, `validate`), checked when the config is read, so that a mistake is a
//! config error naming the key rather than a failed start.

use super::build::TreeBuilder;
use super::section::Section;
use super::ConfigError;
use crate::util::{did_you_mean, Quote};

impl TreeBuilder<'_, '_> {
    /// A validator's own keys: the schema file compiles (JSON Schema 2020-12),
    /// `on_fail` is another agent, `max_cycles` at least 1.
    pub(super) fn check_validate(&self, name: &str, s: &Section) -> Result<(), ConfigError> {
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
    pub(super) fn check_router(&self, name: &str, s: &Section) -> Result<(), ConfigError> {
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
pub(super) fn check_exec(s: &Section) -> Result<(), ConfigError> {
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
pub(super) fn check_http(s: &Section) -> Result<(), ConfigError> {
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
pub(super) fn check_llm(s: &Section) -> Result<(), ConfigError> {
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
    s.bool("include_input")?;
    s.bool("tell_budget")?;
    if let Some(v) = s.table.get("temperature") {
        let t = v.as_float().or(v.as_integer().map(|i| i as f64));
        if !t.is_some_and(|t| (0.0..=2.0).contains(&t)) {
            return Err(s.err("temperature", "must be a number from 0 to 2"));
        }
    }
    Ok(())
}
