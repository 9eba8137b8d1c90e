//! From checked tables to runtime specs, validating the tree as a whole.

use std::collections::{BTreeMap, HashMap};

use toml::Table;

use super::backoff::restart_backoff;
use super::daemon::{daemon, limit, telemetry};
use super::section::Section;
use super::{Config, ConfigError, LimitSpec};
use crate::actors::Kinds;
use crate::supervision::{
    AutoShutdown, ChildKind, ChildSpec, Intensity, Restart, Shutdown, Strategy, SupervisorSpec,
    DEFAULT_AGENT_SHUTDOWN,
};
use crate::util::{did_you_mean, Quote};

/// Restarts a supervisor may allow within its window (its window keeps one
/// timestamp per restart).
const MAX_RESTARTS: i64 = 100_000;
/// How deep supervisors nest (every tree walk is recursive below it).
pub(crate) const MAX_DEPTH: usize = crate::supervision::MAX_DEPTH;

const TOP: &[&str] = &[
    "daemon",
    "telemetry",
    "limits",
    "prices",
    "supervisor",
    "agent",
];
pub(super) const SUPERVISOR: &[&str] = &[
    "strategy",
    "template",
    "auto_shutdown",
    "significant",
    "max_restarts",
    "within",
    "children",
    "restart",
    "shutdown",
    "restart_backoff",
];

pub(super) fn build(table: &Table, file: &str, kinds: &Kinds) -> Result<Config, ConfigError> {
    let top = Section::new(file, "", table);
    top.check_keys(TOP)?;
    let empty = Table::new();
    let daemon = daemon(
        &top.table("daemon")?
            .unwrap_or(Section::new(file, "daemon", &empty)),
    )?;
    let telemetry = telemetry(&top.table("telemetry")?.unwrap_or(Section::new(
        file,
        "telemetry",
        &empty,
    )))?;
    let limits = named_tables(&top, "limits")?
        .into_iter()
        .map(|(name, s)| Ok((name, limit(&s)?)))
        .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
    let prices = prices(&top)?;
    let supervisors = named_tables(&top, "supervisor")?;
    let agents = named_tables(&top, "agent")?;
    let mut tree = TreeBuilder {
        kinds,
        limits: &limits,
        supervisors: &supervisors,
        agents: &agents,
        parent: HashMap::new(),
        stack: Vec::new(),
        templates: Default::default(),
        check_targets: true,
    };
    for name in agents.keys() {
        if supervisors.contains_key(name) {
            return Err(agents[name].err(
                "",
                format!("'{name}' is defined both as [supervisor.{name}] and as [agent.{name}]; names are addresses and must be unique"),
            ));
        }
    }
    let Some(root) = supervisors.get("root") else {
        return Err(ConfigError {
            file: file.into(),
            key: "supervisor.root".into(),
            reason: "not defined; the tree starts at [supervisor.root] with its ordered children"
                .into(),
        });
    };
    let root = tree.supervisor("root", root)?;
    for (name, s) in supervisors.iter().chain(agents.iter()) {
        if name != "root" && !tree.parent.contains_key(name.as_str()) {
            return Err(s.err(
                "",
                "not reachable from root; list it in the children of a supervisor, or remove it",
            ));
        }
    }
    Ok(Config {
        file: file.into(),
        daemon,
        telemetry,
        limits,
        prices,
        warnings: super::warnings::warnings(&root),
        tree: root,
    })
}

/// `[prices."MODEL"] input = X, output = Y`: both required, per million tokens.
fn prices(top: &Section) -> Result<crate::spend::Prices, ConfigError> {
    let mut out = crate::spend::Prices::new();
    let Some(group) = top.table("prices")? else {
        return Ok(out);
    };
    for model in group.table.keys() {
        let s = group.table(model)?.expect("key exists");
        s.check_keys(&["input", "output"])?;
        let price = |key: &str| {
            s.number(key, 0.0, 1e9)?.ok_or_else(|| {
                s.err(
                    key,
                    "missing; give the price per million tokens, input and output (0 if free)",
                )
            })
        };
        out.insert(
            model.clone(),
            crate::spend::Price {
                input: price("input")?,
                output: price("output")?,
            },
        );
    }
    Ok(out)
}

fn named_tables<'a>(
    top: &Section<'a>,
    key: &str,
) -> Result<BTreeMap<String, Section<'a>>, ConfigError> {
    let Some(group) = top.table(key)? else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for name in group.table.keys() {
        let s = group.table(name)?.expect("key exists");
        crate::supervision::check_name(name).map_err(|e| s.err("", e.to_string()))?;
        out.insert(name.clone(), s);
    }
    Ok(out)
}

/// The parts every child has: restart type, shutdown, restart backoff, and
/// whether it is significant.
fn child_common(
    s: &Section,
    default_shutdown: Shutdown,
    kind: ChildKind,
) -> Result<ChildSpec, ConfigError> {
    let restart = match s.choice("restart", &["permanent", "transient", "temporary"])? {
        Some("transient") => Restart::Transient,
        Some("temporary") => Restart::Temporary,
        _ => Restart::Permanent,
    };
    let shutdown = s.shutdown("shutdown")?.unwrap_or(default_shutdown);
    let rb = match s.table("restart_backoff")? {
        None => None,
        Some(t) => Some(restart_backoff(&t)?),
    };
    if rb.is_some() && restart == Restart::Temporary {
        return Err(s.err("restart_backoff", "a temporary child is never restarted; remove restart_backoff or make it permanent or transient"));
    }
    let significant = s.bool("significant")?.unwrap_or(false);
    if significant && restart == Restart::Permanent {
        return Err(s.err(
            "significant",
            "a significant child must be transient or temporary (set restart), as in OTP",
        ));
    }
    Ok(ChildSpec {
        restart,
        shutdown,
        restart_backoff: rb,
        kind,
        significant,
        dynamic: false,
    })
}

pub(super) struct TreeBuilder<'a, 'b> {
    pub(super) kinds: &'a Kinds,
    pub(super) limits: &'a BTreeMap<String, LimitSpec>,
    pub(super) supervisors: &'a BTreeMap<String, Section<'b>>,
    pub(super) agents: &'a BTreeMap<String, Section<'b>>,
    /// child -> the supervisor that lists it
    pub(super) parent: HashMap<String, String>,
    /// supervisors being built, root first: a cycle is a name already on it
    pub(super) stack: Vec<String>,
    /// agents used as templates (not children, so listing one as a child is an error)
    pub(super) templates: std::collections::HashSet<String>,
    /// Check that agents named in `to = [...]` lists exist in the config (not for
    /// children added at run time: they may name other run-time agents).
    pub(super) check_targets: bool,
}

impl<'a, 'b> TreeBuilder<'a, 'b> {
    /// A builder for one agent added at run time.
    pub(super) fn for_run_time(
        kinds: &'a Kinds,
        limits: &'a BTreeMap<String, LimitSpec>,
        empty: &'a BTreeMap<String, Section<'b>>,
    ) -> Self {
        TreeBuilder {
            kinds,
            limits,
            supervisors: empty,
            agents: empty,
            parent: HashMap::new(),
            stack: Vec::new(),
            templates: Default::default(),
            check_targets: false,
        }
    }
}

/// An agent child from its section: the agent and its child keys.
pub(super) fn agent_child(
    b: &TreeBuilder,
    name: &str,
    s: &Section,
) -> Result<ChildSpec, ConfigError> {
    let spec = b.agent(name, s)?;
    child_common(s, DEFAULT_AGENT_SHUTDOWN, ChildKind::Agent(spec))
}

impl TreeBuilder<'_, '_> {
    fn supervisor(&mut self, name: &str, s: &Section) -> Result<SupervisorSpec, ConfigError> {
        s.check_keys(SUPERVISOR)?;
        let strategy = match s.choice(
            "strategy",
            &[
                "one_for_one",
                "one_for_all",
                "rest_for_one",
                "simple_one_for_one",
            ],
        )? {
            Some("one_for_all") => Strategy::OneForAll,
            Some("rest_for_one") => Strategy::RestForOne,
            Some("simple_one_for_one") => Strategy::SimpleOneForOne,
            _ => Strategy::OneForOne,
        };
        let auto_shutdown = match s.choice(
            "auto_shutdown",
            &["never", "any_significant", "all_significant"],
        )? {
            Some("any_significant") => AutoShutdown::AnySignificant,
            Some("all_significant") => AutoShutdown::AllSignificant,
            _ => AutoShutdown::Never,
        };
        let template = self.template(name, s, strategy)?;
        let d = Intensity::default();
        let intensity = Intensity {
            max_restarts: s
                .int("max_restarts", 0, MAX_RESTARTS)?
                .map_or(d.max_restarts, |v| v as u32),
            within: s.duration("within")?.unwrap_or(d.within),
        };
        if intensity.within.is_zero() {
            return Err(s.err("within", "must be more than 0"));
        }
        let names = s.strings("children")?.unwrap_or_default();
        if self.stack.len() >= MAX_DEPTH {
            return Err(s.err(
                "",
                format!("supervisors nest deeper than {MAX_DEPTH} levels here; flatten the tree"),
            ));
        }
        self.stack.push(name.to_string());
        let mut children = Vec::with_capacity(names.len());
        for child in &names {
            if self.stack.iter().any(|n| n == child) {
                let mut path = self.stack.clone();
                path.push(child.clone());
                return Err(s.err(
                    "children",
                    format!(
                        "cycle: {}; a supervisor cannot contain itself",
                        path.join(" -> ")
                    ),
                ));
            }
            if self.templates.contains(child) {
                return Err(s.err(
                    "children",
                    format!("'{child}' is the template of '{}'; a template is not started itself, so it cannot be a child too", self.parent[child]),
                ));
            }
            if let Some(p) = self.parent.get(child) {
                let where_ = if p == name {
                    "listed twice here".to_string()
                } else {
                    format!("already a child of '{p}'")
                };
                return Err(s.err(
                    "children",
                    format!("'{child}' is {where_}; every child has exactly one supervisor"),
                ));
            }
            self.parent.insert(child.clone(), name.to_string());
            if let Some(cs) = self.supervisors.get(child) {
                let spec = self.supervisor(child, cs)?;
                let c = child_common(cs, Shutdown::Infinity, ChildKind::Supervisor(spec))?;
                children.push(c);
            } else if let Some(a) = self.agents.get(child) {
                let spec = self.agent(child, a)?;
                let c = child_common(a, DEFAULT_AGENT_SHUTDOWN, ChildKind::Agent(spec))?;
                children.push(c);
            } else {
                let known = self
                    .supervisors
                    .keys()
                    .chain(self.agents.keys())
                    .map(String::as_str);
                let hint = did_you_mean(child, known, Quote::Name)
                    .map(|h| format!("{h} "))
                    .unwrap_or_default();
                return Err(s.err("children", format!("'{child}' is not defined; {hint}define [agent.{child}] or [supervisor.{child}]")));
            }
        }
        self.stack.pop();
        if auto_shutdown == AutoShutdown::Never {
            if let Some(c) = children
                .iter()
                .chain(template.iter())
                .find(|c| c.significant)
            {
                return Err(s.err(
                    "auto_shutdown",
                    format!("child '{}' is significant, so set auto_shutdown = \"any_significant\" or \"all_significant\" here (or drop significant there)", c.name()),
                ));
            }
        }
        if name == "root" {
            // root has no parent, so its own restart keys would mean nothing
            for k in ["restart", "shutdown", "restart_backoff", "significant"] {
                if s.table.contains_key(k) {
                    return Err(s.err(
                        k,
                        "root has no parent to restart or stop it; remove this key",
                    ));
                }
            }
        }
        Ok(SupervisorSpec {
            name: name.to_string(),
            strategy,
            intensity,
            children,
            template: template.map(Box::new),
            auto_shutdown,
        })
    }

    /// The template of a `simple_one_for_one` supervisor: an `[agent.X]` section
    /// that no supervisor lists, whose keys every spawned child inherits.
    fn template(
        &mut self,
        name: &str,
        s: &Section,
        strategy: Strategy,
    ) -> Result<Option<ChildSpec>, ConfigError> {
        let simple = strategy == Strategy::SimpleOneForOne;
        let Some(t) = s.str("template")? else {
            if simple {
                return Err(s.err("template", "missing; a simple_one_for_one supervisor spawns its children from a template: name an [agent.X] section"));
            }
            return Ok(None);
        };
        if !simple {
            return Err(s.err(
                "template",
                "only a simple_one_for_one supervisor has a template; set strategy = \"simple_one_for_one\" or remove template",
            ));
        }
        if s.table.contains_key("children") {
            return Err(s.err(
                "children",
                "a simple_one_for_one supervisor has no declared children: they are spawned from its template at run time",
            ));
        }
        let Some(a) = self.agents.get(t) else {
            let hint = did_you_mean(t, self.agents.keys().map(String::as_str), Quote::Name)
                .map(|h| format!("{h} "))
                .unwrap_or_default();
            return Err(s.err(
                "template",
                format!("no agent '{t}'; {hint}define [agent.{t}]"),
            ));
        };
        if let Some(p) = self.parent.get(t) {
            return Err(s.err(
                "template",
                format!("'{t}' is a child of '{p}'; a template is not started itself, so it cannot be a child too"),
            ));
        }
        self.parent.insert(t.to_string(), name.to_string());
        self.templates.insert(t.to_string());
        let spec = self.agent(t, a)?;
        Ok(Some(child_common(
            a,
            DEFAULT_AGENT_SHUTDOWN,
            ChildKind::Agent(spec),
        )?))
    }
}
