//! The rules every tree follows, checked once before anything starts (as OTP's
//! `check_childspecs`): names (one rule for config and run-time names), unique
//! names, sane agents, strategy and template together, significance only where
//! auto shutdown can act on it.

use super::spec::{AutoShutdown, ChildKind, ChildSpec, Restart, Strategy, SupervisorSpec};
use crate::actors::AgentSpec;
use crate::spec_error::SpecError;

impl SupervisorSpec {
    /// Checks a tree declared in code: names unique, agents sane.
    /// Trees from TOML are checked by [`crate::config`] with file and key in each error.
    pub fn validate(&self) -> Result<(), SpecError> {
        if depth(self) > MAX_DEPTH {
            return Err(SpecError::Shape(format!(
                "supervisors nest deeper than {MAX_DEPTH} levels under '{}'; flatten the tree",
                self.name
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for n in self.names() {
            check_name(&n)?;
            if !seen.insert(n.clone()) {
                return Err(SpecError::Duplicate(n));
            }
        }
        self.check_shape()?;
        self.for_each_agent(&mut |a| a.validate())
    }

    /// The rules on strategy, template and significance, for this supervisor and
    /// every supervisor below it.
    pub fn check_shape(&self) -> Result<(), SpecError> {
        let simple = self.strategy == Strategy::SimpleOneForOne;
        match (&self.template, simple) {
            (None, true) => {
                return Err(SpecError::Shape(format!(
                    "supervisor '{}' is simple_one_for_one and needs a template",
                    self.name
                )))
            }
            (Some(_), false) => {
                return Err(SpecError::Shape(format!(
                    "supervisor '{}' has a template but is {}; only simple_one_for_one supervisors have one",
                    self.name,
                    self.strategy.as_str()
                )))
            }
            _ => {}
        }
        if simple && self.children.iter().any(|c| !c.dynamic) {
            return Err(SpecError::Shape(format!(
                "supervisor '{}' is simple_one_for_one: its children are spawned from the template, not declared",
                self.name
            )));
        }
        for c in self.children.iter().chain(self.template.as_deref()) {
            c.check_significance(self)?;
            if let ChildKind::Supervisor(s) = &c.kind {
                s.check_shape()?;
            }
        }
        Ok(())
    }
}

impl ChildSpec {
    /// `significant` only on transient and temporary children of a supervisor with
    /// auto shutdown (OTP refuses the other combinations too).
    pub fn check_significance(&self, parent: &SupervisorSpec) -> Result<(), SpecError> {
        if !self.significant {
            return Ok(());
        }
        if self.restart == Restart::Permanent {
            return Err(SpecError::Shape(format!(
                "'{}' is significant and permanent; a significant child must be transient or temporary",
                self.name()
            )));
        }
        if parent.auto_shutdown == AutoShutdown::Never {
            return Err(SpecError::Shape(format!(
                "'{}' is significant but its supervisor '{}' has auto_shutdown = \"never\"; set auto_shutdown to any_significant or all_significant, or drop significant",
                self.name(),
                parent.name
            )));
        }
        Ok(())
    }
}

/// Longest name of a node (it is part of every store key of an agent).
pub const MAX_NAME_LEN: usize = 200;

/// How deep supervisors may nest. Real trees are a few levels deep; the limit
/// keeps every recursive walk of the tree (start, snapshot, the `tree` reply's
/// JSON) far from any stack or parser limit.
pub const MAX_DEPTH: usize = 32;

/// The depth of the deepest supervisor under `s` (`s` itself is 1), walked
/// without recursion, so a spec built in code of any depth is measured safely.
pub(crate) fn depth(s: &SupervisorSpec) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(s, 1usize)];
    while let Some((s, d)) = todo.pop() {
        deepest = deepest.max(d);
        if d > MAX_DEPTH {
            break;
        }
        for c in &s.children {
            if let ChildKind::Supervisor(sub) = &c.kind {
                todo.push((sub, d + 1));
            }
        }
    }
    deepest
}

/// Checks a node name: 1 to [`MAX_NAME_LEN`] bytes of letters, digits, `_`, `-`
/// and `.`. Config names and names given at run time follow the same rule.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::Name("a name must not be empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(SpecError::Name(format!(
            "name '{}...' is {} bytes long; the limit is {MAX_NAME_LEN}",
            &name[..name.char_indices().nth(20).map_or(name.len(), |(i, _)| i)],
            name.len()
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(SpecError::Name(format!(
            "name '{name}': names may use letters, digits, '_', '-' and '.' only"
        )));
    }
    Ok(())
}

impl SupervisorSpec {
    fn for_each_agent(
        &self,
        f: &mut impl FnMut(&AgentSpec) -> Result<(), SpecError>,
    ) -> Result<(), SpecError> {
        for c in &self.children {
            match &c.kind {
                ChildKind::Agent(a) => f(a)?,
                ChildKind::Supervisor(s) => s.for_each_agent(f)?,
            }
        }
        Ok(())
    }
}
