//! A tree's named limiters as one set: built from the config's `[limits.*]`,
//! shared by every agent that lists them, changed in place by a reload (added,
//! quota changed, removed) so that an unchanged limiter keeps its state.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::rate_limit::{LimitSpec, Limiter, LimiterSnapshot};

/// Every limiter of a tree, by name. Clones share the limiters; a reload adds,
/// changes and removes them in place ([`Limits::apply`]).
#[derive(Default, Clone)]
pub struct Limits {
    map: Arc<RwLock<BTreeMap<String, Arc<Limiter>>>>,
}

/// What [`Limits::apply`] (or a dry run of it) changes: limiter names.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct LimitChanges {
    /// New limiters.
    pub added: Vec<String>,
    /// Limiters whose quota changed (their buckets start full).
    pub changed: Vec<String>,
    /// Limiters no longer in the config.
    pub removed: Vec<String>,
}

impl LimitChanges {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Limits {
    /// One limiter per spec.
    pub fn new(specs: &BTreeMap<String, LimitSpec>) -> Self {
        Limits {
            map: Arc::new(RwLock::new(
                specs
                    .iter()
                    .map(|(n, s)| (n.clone(), Arc::new(Limiter::new(n, s))))
                    .collect(),
            )),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Limiter>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The limiter named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Limiter>> {
        self.read().get(name).cloned()
    }

    /// The quotas, by limiter.
    pub fn specs(&self) -> BTreeMap<String, LimitSpec> {
        self.read()
            .iter()
            .map(|(n, l)| (n.clone(), l.spec()))
            .collect()
    }

    /// What making the limiters `specs` would change.
    pub fn plan(&self, specs: &BTreeMap<String, LimitSpec>) -> LimitChanges {
        let now = self.specs();
        LimitChanges {
            added: specs
                .keys()
                .filter(|n| !now.contains_key(*n))
                .cloned()
                .collect(),
            changed: specs
                .iter()
                .filter(|(n, s)| now.get(*n).is_some_and(|cur| cur != *s))
                .map(|(n, _)| n.clone())
                .collect(),
            removed: now
                .keys()
                .filter(|n| !specs.contains_key(*n))
                .cloned()
                .collect(),
        }
    }

    /// Makes the limiters `specs`: new ones added, changed quotas applied in place
    /// (sharers keep their limiter), unchanged ones untouched (their quota state
    /// kept), missing ones removed (an agent still holding one keeps it until it
    /// restarts).
    pub fn apply(&self, specs: &BTreeMap<String, LimitSpec>) -> LimitChanges {
        let changes = self.plan(specs);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (n, s) in specs {
            match map.get(n) {
                Some(l) => l.set_spec(s),
                None => {
                    map.insert(n.clone(), Arc::new(Limiter::new(n, s)));
                }
            }
        }
        map.retain(|n, _| specs.contains_key(n));
        changes
    }

    /// Snapshots of every limiter.
    pub fn snapshot(&self) -> BTreeMap<String, LimiterSnapshot> {
        self.read()
            .iter()
            .map(|(n, l)| (n.clone(), l.snapshot()))
            .collect()
    }
}
