//! Children made at run time, read with the config's own rules: an `add_child`
//! request's agent keys are checked exactly as an `[agent.NAME]` section would be,
//! and the dynamic children a store kept are rebuilt against the current config
//! (a spawned child from its supervisor's template, an added one from its keys).

use std::collections::BTreeMap;

use serde_json::Value;
use toml::Table;

use super::build::{agent_child, TreeBuilder};
use super::section::Section;
use super::{Config, ConfigError, LimitSpec};
use crate::actors::Kinds;
use crate::store::children::ChildRecord;
use crate::supervision::{check_name, ChildKind, ChildSpec, SupervisorSpec};

/// Where errors about run-time children say they come from.
pub const SOURCE: &str = "<add_child>";

/// Builds agent child `name` from agent keys given as JSON (`{"kind":"echo",...}`,
/// the keys of an `[agent.NAME]` section). Errors name the key as
/// `agent.NAME.KEY`.
pub fn child_from_json(
    name: &str,
    keys: &Value,
    kinds: &Kinds,
    limits: &BTreeMap<String, LimitSpec>,
) -> Result<ChildSpec, ConfigError> {
    let path = format!("agent.{name}");
    let fail = |reason: String| ConfigError {
        file: SOURCE.into(),
        key: path.clone(),
        reason,
    };
    check_name(name).map_err(|e| fail(e.to_string()))?;
    let Value::Object(_) = keys else {
        return Err(fail(format!(
            "the agent keys must be a JSON object such as {{\"kind\":\"echo\"}}, got {keys}"
        )));
    };
    let table: Table = toml::Value::try_from(keys)
        .map_err(|e| fail(format!("cannot be read as config keys: {e}")))?
        .try_into()
        .map_err(|e: toml::de::Error| fail(format!("cannot be read as config keys: {e}")))?;
    let section = Section::new(SOURCE, path.clone(), &table);
    let empty = BTreeMap::new();
    let builder = TreeBuilder::for_run_time(kinds, limits, &empty);
    agent_child(&builder, name, &section)
}

/// Rebuilds the dynamic children a store kept, against `config`: (supervisor,
/// child) in start order. A record whose supervisor is gone, or that the config no
/// longer accepts, is left out with an error logged; its records stay on disk.
pub fn restore_children(
    config: &Config,
    kinds: &Kinds,
    records: &[ChildRecord],
) -> Vec<(String, ChildSpec)> {
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        let Some(sup) = find(&config.tree, &rec.supervisor) else {
            tracing::error!(supervisor = %rec.supervisor, child = %rec.name,
                "a dynamic child's supervisor is not in the config any more; it is not started and its records stay on disk");
            continue;
        };
        let built = match (&rec.spec, &sup.template) {
            (Some(keys), _) => {
                child_from_json(&rec.name, keys, kinds, &config.limits).map_err(|e| e.to_string())
            }
            (None, Some(t)) => Ok(t.from_template(&rec.name, rec.state.clone())),
            (None, None) => Err(format!(
                "it was spawned from a template, but '{}' has none now",
                rec.supervisor
            )),
        };
        match built {
            Ok(mut c) => {
                if let (Some(state), ChildKind::Agent(a)) = (&rec.state, &mut c.kind) {
                    a.initial_state = Some(state.clone());
                }
                out.push((rec.supervisor.clone(), c));
            }
            Err(e) => tracing::error!(supervisor = %rec.supervisor, child = %rec.name, error = %e,
                "a dynamic child cannot be rebuilt; it is not started and its records stay on disk"),
        }
    }
    out
}

fn find<'a>(s: &'a SupervisorSpec, name: &str) -> Option<&'a SupervisorSpec> {
    if s.name == name {
        return Some(s);
    }
    s.children.iter().find_map(|c| match &c.kind {
        ChildKind::Supervisor(sub) => find(sub, name),
        ChildKind::Agent(_) => None,
    })
}
