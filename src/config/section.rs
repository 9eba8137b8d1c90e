//! Typed reads from one TOML table, with the key path in every error.
//!
//! A `Section` is the raw mirror of one table of the file (`[agent.planner]`): it
//! checks its keys against the allowed set (suggesting the nearest valid key) and
//! reads each value as the type the spec needs, so a wrong type names its key.

use std::time::Duration;

use toml::{Table, Value};

use super::error::ConfigError;
use crate::supervision::Shutdown;
use crate::util::{did_you_mean, Quote};

/// One table of the config file.
pub(crate) struct Section<'a> {
    pub(crate) file: &'a str,
    pub(crate) path: String,
    pub(crate) table: &'a Table,
}

impl<'a> Section<'a> {
    pub(crate) fn new(file: &'a str, path: impl Into<String>, table: &'a Table) -> Self {
        Section {
            file,
            path: path.into(),
            table,
        }
    }

    /// The dotted path of `key` in this section.
    pub(crate) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: if key.is_empty() {
                self.path.clone()
            } else {
                self.key(key)
            },
            reason: reason.into(),
        }
    }

    /// Refuses any key not in `allowed`, suggesting the nearest.
    pub(crate) fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        for key in self.table.keys() {
            if !allowed.contains(&key.as_str()) {
                let hint = did_you_mean(key, allowed.iter().copied(), Quote::Name)
                    .unwrap_or_else(|| format!("valid keys here: {}", allowed.join(", ")));
                return Err(self.err(key, format!("unknown key; {hint}")));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.table.get(key)
    }

    fn type_err(&self, key: &str, want: &str, got: &Value) -> ConfigError {
        self.err(
            key,
            format!("expected {want}, got {} {got}", got.type_str()),
        )
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.type_err(key, "a string", v)),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.type_err(key, "true or false", v)),
        }
    }

    /// A whole number in `min..=max`.
    pub(crate) fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) if (min..=max).contains(i) => Ok(Some(*i)),
            Some(Value::Integer(i)) => {
                Err(self.err(key, format!("must be between {min} and {max}, got {i}")))
            }
            Some(v) => Err(self.type_err(key, "a whole number", v)),
        }
    }

    /// A finite number (integer or float) between `min` and `max`.
    pub(crate) fn number(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>, ConfigError> {
        let n = match self.get(key) {
            None => return Ok(None),
            Some(Value::Integer(i)) => *i as f64,
            Some(Value::Float(f)) => *f,
            Some(v) => return Err(self.type_err(key, "a number", v)),
        };
        if !n.is_finite() || n < min || n > max {
            return Err(self.err(
                key,
                format!("must be a number between {min} and {max}, got {n}"),
            ));
        }
        Ok(Some(n))
    }

    /// One of `choices`.
    pub(crate) fn choice(
        &self,
        key: &str,
        choices: &[&str],
    ) -> Result<Option<&'a str>, ConfigError> {
        let Some(s) = self.str(key)? else {
            return Ok(None);
        };
        if choices.contains(&s) {
            return Ok(Some(s));
        }
        let hint = did_you_mean(s, choices.iter().copied(), Quote::Value)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        Err(self.err(
            key,
            format!("\"{s}\" is not one of {}{hint}", quote_list(choices)),
        ))
    }

    /// A duration string with a unit (`250ms`, `5s`, `2m`).
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration(s).map(Some).map_err(|r| self.err(key, r)),
            Some(v) => Err(self.err(
                key,
                format!(
                    "expected a duration string with a unit, such as \"250ms\", \"5s\" or \"2m\"; got {} {v}",
                    v.type_str()
                ),
            )),
        }
    }

    /// `brutal_kill`, `infinity`, or a duration.
    pub(crate) fn shutdown(&self, key: &str) -> Result<Option<Shutdown>, ConfigError> {
        match self.get(key) {
            Some(Value::String(s)) if s == "brutal_kill" => Ok(Some(Shutdown::BrutalKill)),
            Some(Value::String(s)) if s == "infinity" => Ok(Some(Shutdown::Infinity)),
            Some(Value::String(s)) => parse_duration(s)
                .map(|d| Some(Shutdown::Timeout(d)))
                .map_err(|r| self.err(key, format!("{r}, or \"brutal_kill\", or \"infinity\""))),
            None => Ok(None),
            Some(v) => Err(self.type_err(key, "a duration, \"brutal_kill\" or \"infinity\"", v)),
        }
    }

    /// A list of strings.
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.type_err(key, "a list of strings", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.type_err(key, "a list of strings", v)),
        }
    }

    /// A nested table (inline `{ ... }` or `[a.b]`).
    pub(crate) fn table(&self, key: &str) -> Result<Option<Section<'a>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(Section::new(self.file, self.key(key), t))),
            Some(v) => Err(self.type_err(key, "a table", v)),
        }
    }
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The longest duration any key or request may give: 365 days. Longer ones are
/// refused rather than overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Parses `250ms`, `5s`, `2m`, `1h 30m`; a bare number is refused (no unit), and
/// so is anything longer than [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "\"{s}\" has no unit; write it with one, such as \"{trimmed}ms\" or \"{trimmed}s\""
        ));
    }
    let d = humantime::parse_duration(trimmed).map_err(|e| {
        format!("\"{s}\" is not a duration ({e}); use a number with a unit, such as \"250ms\", \"5s\" or \"2m\"")
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "\"{s}\" is longer than the longest duration allowed, 365d (at most 365d)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("five seconds").is_err());
    }
}
