//! `warden chaos`: proves the durable promise on a user's own tree (DESIGN section
//! 12). It starts a daemon on a copy of the config with its own data directory,
//! sends numbered tasks to the entry agent while killing agents and supervisors
//! (half of the kills timed to land while the entry agent commits the task just
//! accepted), SIGKILLing the daemon, injecting poison tasks (panic, error, abort)
//! and slow tasks whose first attempt overruns the timeout, then stops the
//! faults, restarts the daemon whenever it died (as a service manager would), waits
//! for the tree to drain and checks the whole history ([`checker`]), plus the
//! store's own view after a clean stop (no message record left behind).
//!
//! The seed is printed first; the same seed replays the same fault schedule (the
//! schedule, not the daemon's own timing). Runs are bounded by `--duration` and a
//! drain limit, so a run always ends.

pub mod checker;
mod daemon;
mod tree;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin::client::Client;
use checker::{DeadTask, History, SinkLine};
use daemon::{request, Daemon};

/// `warden chaos` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    /// Run on a copy of this config (its own data directory and sink files);
    /// default: a built-in tree with every strategy, replicas and a sink.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The agent tasks are sent to (required with --config).
    #[arg(long)]
    pub entry: Option<String>,
    /// Seed of the fault schedule (default: a fresh one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long faults are injected (at most).
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// Stop sending (and injecting faults) after this many tasks, even before
    /// `--duration` is over.
    #[arg(long)]
    pub tasks: Option<u64>,
    /// Tasks sent per second, e.g. `200/s`.
    #[arg(long, default_value = "200/s")]
    pub rate: String,
    /// Agent and supervisor kills per second, e.g. `2/s`.
    #[arg(long, default_value = "2/s")]
    pub kill_rate: String,
    /// SIGKILL the daemon this often (`0s`: never).
    #[arg(long, default_value = "10s")]
    pub sigkill_every: String,
    /// Share of tasks that are poison.
    #[arg(long, default_value_t = 0.02)]
    pub poison: f64,
    /// Share of the poison that aborts the whole daemon; the rest is split between
    /// panics and errors. Each aborting poison costs at least `max_attempts` daemon
    /// restarts.
    #[arg(long, default_value_t = 0.34)]
    pub abort: f64,
    /// Share of tasks whose first attempt overruns the entry agent's `timeout`
    /// (then they succeed). Used when that timeout is at most 5 s.
    #[arg(long, default_value_t = 0.01)]
    pub slow: f64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the campaign; returns the exit code (0 pass, 1 fail, 2 usage).
pub fn run(args: ChaosArgs) -> i32 {
    match Plan::new(&args) {
        Ok(plan) => plan.run(),
        Err(e) => {
            eprintln!("warden chaos: {e}");
            2
        }
    }
}

fn rate(s: &str, what: &str) -> Result<f64, String> {
    let n = s.strip_suffix("/s").unwrap_or(s);
    n.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("--{what} {s:?}: expected a rate such as 200/s"))
}

struct Plan {
    seed: u64,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    entry: String,
    targets: Vec<String>,
    sinks: Vec<PathBuf>,
    max_attempts: u64,
    duration: Duration,
    tasks: u64,
    rate: f64,
    kill_rate: f64,
    sigkill_every: Option<Duration>,
    poison: f64,
    abort: f64,
    slow: f64,
    /// How long a slow task sleeps: past the entry agent's timeout.
    slow_ms: Option<u64>,
    json: bool,
}

impl Plan {
    /// Validates the arguments and prepares the run's work directory (removed again
    /// when something is wrong).
    fn new(a: &ChaosArgs) -> Result<Plan, String> {
        let seed = a.seed.unwrap_or_else(|| fastrand::u64(..));
        let dir = std::env::temp_dir().join(format!("warden-chaos-{}-{seed}", std::process::id()));
        let plan = Self::prepare(a, seed, dir.clone());
        if plan.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        plan
    }

    fn prepare(a: &ChaosArgs, seed: u64, dir: PathBuf) -> Result<Plan, String> {
        let dur = |s: &str, what: &str| {
            crate::config::parse_duration(s).map_err(|e| format!("--{what}: {e}"))
        };
        for (what, v) in [("poison", a.poison), ("abort", a.abort), ("slow", a.slow)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("--{what} {v}: expected a share from 0 to 1"));
            }
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dir_s = dir.to_str().ok_or("the temp dir is not UTF-8")?.to_string();
        let (text, entry) = match &a.config {
            None => (
                tree::BUILTIN.replace("{dir}", &dir_s),
                a.entry.clone().unwrap_or("entry".into()),
            ),
            Some(p) => {
                let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let entry = a
                    .entry
                    .clone()
                    .ok_or("--entry AGENT is needed with --config")?;
                (t, entry)
            }
        };
        let mut table: toml::Table = text.parse().map_err(|e| format!("config: {e}"))?;
        let daemon = table
            .entry("daemon")
            .or_insert(toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or("config: [daemon] is not a table")?;
        daemon.insert("data_dir".into(), format!("{dir_s}/data").into());
        daemon.insert("socket".into(), format!("{dir_s}/data/warden.sock").into());
        let mut targets = Vec::new();
        let mut sinks = Vec::new();
        let mut max_attempts = 5;
        let mut entry_timeout = Duration::from_secs(30);
        if let Some(agents) = table.get_mut("agent").and_then(|v| v.as_table_mut()) {
            for (name, v) in agents.iter_mut() {
                let Some(t) = v.as_table_mut() else { continue };
                t.insert("accept_faults".into(), true.into());
                if t.get("kind").and_then(|k| k.as_str()) == Some("sink") {
                    let path = format!("{dir_s}/sink-{name}.jsonl");
                    t.insert("path".into(), path.clone().into());
                    sinks.push(PathBuf::from(path));
                }
                if *name == entry {
                    max_attempts = t
                        .get("max_attempts")
                        .and_then(|m| m.as_integer())
                        .unwrap_or(5) as u64;
                    if let Some(d) = t.get("timeout").and_then(|v| v.as_str()) {
                        entry_timeout = crate::config::parse_duration(d).unwrap_or(entry_timeout);
                    }
                }
                targets.push(name.clone());
            }
        }
        if !targets.contains(&entry) {
            return Err(format!("no agent '{entry}' in the config (--entry)"));
        }
        if sinks.is_empty() {
            return Err("the tree has no sink agent: chaos checks what reaches a sink".into());
        }
        if let Some(sups) = table.get("supervisor").and_then(|v| v.as_table()) {
            targets.extend(sups.keys().filter(|k| *k != "root").cloned());
        }
        let config = dir.join("warden.toml");
        std::fs::write(&config, toml::to_string(&table).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{}: {e}", config.display()))?;
        crate::config::Config::load(&config).map_err(|e| format!("invalid config: {e}"))?;
        let every = dur(&a.sigkill_every, "sigkill-every")?;
        Ok(Plan {
            seed,
            socket: dir.join("data/warden.sock"),
            dir,
            config,
            entry,
            targets,
            sinks,
            max_attempts,
            duration: dur(&a.duration, "duration")?,
            tasks: a.tasks.unwrap_or(u64::MAX),
            rate: rate(&a.rate, "rate")?.max(0.1),
            kill_rate: rate(&a.kill_rate, "kill-rate")?,
            sigkill_every: (!every.is_zero()).then_some(every),
            poison: a.poison,
            abort: a.abort,
            slow: a.slow,
            slow_ms: (entry_timeout <= Duration::from_secs(5))
                .then(|| entry_timeout.as_millis() as u64 + 100),
            json: a.json,
        })
    }

    fn run(self) -> i32 {
        eprintln!(
            "warden chaos: seed {} (replay with --seed {})",
            self.seed, self.seed
        );
        let started = Instant::now();
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut d = Daemon {
            plan: &self,
            child: None,
            kills: 0,
            max_recovery: Duration::ZERO,
        };
        if let Err(e) = d.start() {
            eprintln!("warden chaos: {e}");
            return 1;
        }
        let mut h = History {
            max_attempts: self.max_attempts,
            ..History::default()
        };
        let mut agent_kills = 0u64;
        let end = Instant::now() + self.duration;
        let mut next_send = Instant::now();
        let mut next_kill = Instant::now() + exp(&mut rng, self.kill_rate);
        let mut next_sigkill = self.sigkill_every.map(|e| Instant::now() + e);
        let mut client: Option<Client> = None;
        let mut task = 0u64;
        while Instant::now() < end && task < self.tasks {
            let now = Instant::now();
            if now >= next_send {
                let poison = rng.f64() < self.poison;
                let slow = !poison && rng.f64() < self.slow;
                let how = rng.f64();
                let payload = match (poison, self.slow_ms.filter(|_| slow)) {
                    (false, None) => json!({"chaos_task": task}),
                    (false, Some(ms)) => {
                        json!({"chaos_task": task, "fault": "sleep", "ms": ms, "times": 1})
                    }
                    (true, _) if how < self.abort => json!({"chaos_task": task, "fault": "abort"}),
                    (true, _) if how < (1.0 + self.abort) / 2.0 => {
                        json!({"chaos_task": task, "fault": "panic"})
                    }
                    (true, _) => json!({"chaos_task": task, "fault": "error"}),
                };
                h.sent.insert(task);
                if poison {
                    h.poison.insert(task);
                }
                if d.send(&mut client, &self.entry, payload, task) {
                    h.accepted.insert(task);
                    // Half the kills are timed to land while the entry agent handles
                    // and commits the task just accepted.
                    if self.kill_rate > 0.0 && now >= next_kill && rng.bool() {
                        let _ = request(
                            &mut client,
                            &self.socket,
                            "kill",
                            json!({"agent": &self.entry}),
                        );
                        agent_kills += 1;
                        next_kill = now + exp(&mut rng, self.kill_rate);
                    }
                }
                task += 1;
                next_send += Duration::from_secs_f64(1.0 / self.rate);
            }
            if self.kill_rate > 0.0 && now >= next_kill {
                let who = &self.targets[rng.usize(..self.targets.len())];
                if request(&mut client, &self.socket, "kill", json!({"agent": who})).is_ok() {
                    agent_kills += 1;
                }
                next_kill = now + exp(&mut rng, self.kill_rate);
            }
            if let Some(at) = next_sigkill.filter(|at| now >= *at) {
                d.sigkill();
                client = None;
                next_sigkill = Some(at + self.sigkill_every.expect("set"));
            }
            d.revive(&mut client);
            let next = [
                Some(next_send),
                Some(next_kill).filter(|_| self.kill_rate > 0.0),
                next_sigkill,
                Some(end),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("end is set");
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        let drained = d.drain(&mut client, self.duration.max(Duration::from_secs(60)) * 2);
        match request(&mut client, &self.socket, "dlq_list", json!({})) {
            Ok(Value::Array(items)) => {
                for i in items {
                    if let Some(t) = task_of(&i) {
                        h.dead.push(DeadTask {
                            task: t,
                            reason: i["reason"].as_str().unwrap_or("").into(),
                            attempts: i["attempts"].as_u64().unwrap_or(0),
                        });
                    }
                }
            }
            other => eprintln!("warden chaos: cannot list dead letters: {other:?}"),
        }
        for s in &self.sinks {
            h.sink_lines.extend(read_sink(s));
        }
        let _ = request(&mut client, &self.socket, "shutdown", json!({}));
        d.wait_exit(Duration::from_secs(60));
        h.left_in_store =
            match crate::store::Store::open(&self.dir.join("data/store"), Default::default()) {
                Ok((store, _)) => store.count_prefix(crate::store::keys::MSG) as u64,
                Err(e) => {
                    eprintln!("warden chaos: cannot read the store after the run: {e}");
                    u64::MAX
                }
            };
        let mut v = checker::check(&h);
        if !drained {
            v.failures
                .push("the tree did not drain within the limit".into());
        }
        let pass = v.failures.is_empty();
        let report = json!({
            "seed": self.seed,
            "sent": v.sent,
            "accepted": v.accepted,
            "completed": v.completed,
            "lost": v.lost,
            "phantom": v.phantom,
            "handoff_duplicates": v.handoff_duplicates,
            "effect_duplicates": v.effect_duplicates,
            "dead_letters": v.dead_letters,
            "orphans": v.orphans,
            "agent_kills": agent_kills,
            "daemon_kills": d.kills,
            "max_recovery_ms": d.max_recovery.as_millis() as u64,
            "wall_ms": started.elapsed().as_millis() as u64,
            "failures": v.failures,
            "verdict": if pass { "pass" } else { "fail" },
        });
        if self.json {
            println!("{report}");
        } else {
            for (k, val) in report.as_object().expect("object") {
                println!("{k:>20}: {val}");
            }
        }
        if pass {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "warden chaos: the run's files are kept in {}",
                self.dir.display()
            );
        }
        if pass {
            0
        } else {
            1
        }
    }
}

/// An exponential wait for a Poisson process of `per_s` events per second.
fn exp(rng: &mut fastrand::Rng, per_s: f64) -> Duration {
    if per_s <= 0.0 {
        return Duration::from_secs(3600);
    }
    Duration::from_secs_f64((-(1.0 - rng.f64()).ln() / per_s).min(3600.0))
}

/// The correlation task `n` is sent in: what emerges at a sink or as a dead
/// letter is the task's even when the agents on the way transform its payload
/// (a model's answer carries no `chaos_task`).
pub(crate) fn correlation_of(n: u64) -> String {
    format!("chaos-task-{n}")
}

/// The task a sink line or dead letter is about: its payload's `chaos_task`, or
/// its correlation's number.
fn task_of(v: &Value) -> Option<u64> {
    v["payload"]["chaos_task"].as_u64().or_else(|| {
        v["correlation"]
            .as_str()?
            .strip_prefix("chaos-task-")?
            .parse()
            .ok()
    })
}

fn read_sink(path: &Path) -> Vec<SinkLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some(SinkLine {
                task: task_of(&v)?,
                message_id: v["message_id"].as_str()?.to_string(),
            })
        })
        .collect()
}
