//! Agent kinds: the behaviours an agent's `kind` names, and how each is built.
//!
//! Built in: [`echo`], [`sink`], [`counter`] and [`exec`] (a port in any language). A library user registers more with
//! [`Kinds::register`] before starting the runtime; config validation then accepts
//! the new kind and its option keys.

pub mod approve;
pub mod counter;
mod counts;
pub mod echo;
mod effects;
pub mod exec;
pub mod fanout;
pub mod http;
pub mod join;
pub mod llm;
pub mod router;
pub mod sink;
#[cfg(test)]
mod test_ctx;
pub mod timer;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::actors::agent::Agent;
use crate::actors::AgentSpec;

/// An agent's `to`: the agents it emits to (empty without one).
pub(crate) fn to_list(spec: &AgentSpec) -> Vec<String> {
    spec.options
        .get("to")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds a fresh behaviour for one incarnation of an agent; an `Err` is a start failure.
pub type BuildFn = dyn Fn(&AgentSpec) -> Result<Box<dyn Agent>, String> + Send + Sync;

/// What a kind accepts in its agent's config, and how to build it.
#[derive(Clone)]
pub struct KindInfo {
    /// Option keys the kind accepts beyond the common agent keys.
    pub options: &'static [&'static str],
    /// Option keys the kind requires.
    pub required: &'static [&'static str],
    /// Option keys whose value is a list of agent names (checked to exist).
    pub agent_lists: &'static [&'static str],
    /// The builder.
    pub build: Arc<BuildFn>,
}

/// The kinds known to a runtime.
#[derive(Clone)]
pub struct Kinds {
    map: BTreeMap<String, KindInfo>,
}

impl Default for Kinds {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Kinds {
    /// `counter`, `echo` and `sink`.
    pub fn builtin() -> Self {
        let mut k = Kinds {
            map: BTreeMap::new(),
        };
        k.map.insert("counter".into(), counter::info());
        k.map.insert("echo".into(), echo::info());
        k.map.insert("exec".into(), exec::info());
        k.map.insert("http".into(), http::info());
        k.map.insert("llm".into(), llm::info());
        k.map.insert("router".into(), router::info());
        k.map.insert("approve".into(), approve::info());
        k.map.insert("timer".into(), timer::info());
        k.map.insert("fanout".into(), fanout::info());
        k.map.insert("join".into(), join::info());
        k.map.insert("validate".into(), validate::info());
        k.map.insert("sink".into(), sink::info());
        k
    }

    /// Adds (or replaces) a kind.
    pub fn register(&mut self, name: impl Into<String>, info: KindInfo) {
        self.map.insert(name.into(), info);
    }

    /// Adds a kind with no options, built by `build`.
    pub fn register_fn(
        &mut self,
        name: impl Into<String>,
        build: impl Fn(&AgentSpec) -> Result<Box<dyn Agent>, String> + Send + Sync + 'static,
    ) {
        self.register(
            name,
            KindInfo {
                options: &[],
                required: &[],
                agent_lists: &[],
                build: Arc::new(build),
            },
        );
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&KindInfo> {
        self.map.get(name)
    }

    /// Every kind name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }
}
