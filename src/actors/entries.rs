//! A delivery's view of its agent's entries (keyed state, see
//! [`crate::store::entries`]): read as committed, changed in the delivery, and
//! committed with its ack (by the host's commit), or not at all.

use serde_json::Value;

use crate::actors::agent::{AgentError, Context};

impl Context {
    /// Entry `key` of the agent's keyed state: as this delivery set it, else as
    /// last committed. Entries suit many small things kept per agent (one per
    /// correlation, group or item): a commit writes only the entries it changes,
    /// where a change to the state rewrites all of it.
    pub fn entry(&self, key: &str) -> Option<Value> {
        if let Some(v) = self.entry_changes.get(key) {
            return v.clone();
        }
        let e = self.entries.as_ref()?;
        let e = e.read().unwrap_or_else(|p| p.into_inner());
        e.get(key).cloned()
    }

    /// Sets (`Some`) or removes (`None`) entry `key`, committed with the ack like
    /// the state (nothing of it if the delivery fails). A key is at most
    /// [`MAX_KEY`](crate::store::entries::MAX_KEY) bytes.
    pub fn set_entry(&mut self, key: &str, value: Option<Value>) -> Result<(), AgentError> {
        if key.len() > crate::store::entries::MAX_KEY {
            return Err(AgentError::non_retryable(format!(
                "an entry key of {} bytes; at most {} are allowed",
                key.len(),
                crate::store::entries::MAX_KEY
            )));
        }
        self.entry_changes.insert(key.to_string(), value);
        Ok(())
    }

    /// The keys of the entries that start with `prefix`, in key order, as this
    /// delivery sees them (its own changes included).
    pub fn entry_keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: std::collections::BTreeSet<String> = match &self.entries {
            Some(e) => {
                let e = e.read().unwrap_or_else(|p| p.into_inner());
                e.range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone())
                    .collect()
            }
            None => Default::default(),
        };
        for (k, v) in &self.entry_changes {
            if k.starts_with(prefix) {
                if v.is_some() {
                    keys.insert(k.clone());
                } else {
                    keys.remove(k);
                }
            }
        }
        keys.into_iter().collect()
    }
}
