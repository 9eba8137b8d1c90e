//! `warden bench`: the scenarios of DESIGN section 8, measured the way the reference
//! harness in `shared/reference-bench` measures them, so figures compare as ratios.
//!
//! Percentiles are nearest-rank (`v[min(len-1, floor(len*q))]`), latencies in µs.
//! Each scenario runs on the caller's tokio runtime (2 workers on this machine) with
//! its driver as a spawned task, as the reference does.

mod admin;
mod durable;
mod fanout;
mod llm;
mod orchestrator;
mod pingpong;
mod pipeline;
mod port;
mod reload;
mod restart;
pub mod resume;
mod spawn;
mod telemetry;

use serde::Serialize;

/// The scenarios `warden bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Two memory-mailbox agents, one message in flight.
    Pingpong,
    /// A panicking agent restarted by its supervisor, seen from a client.
    Restart,
    /// Idle agents added to a running supervisor.
    Spawn,
    /// One producer, many agents.
    Fanout,
    /// Producers sending to one durable agent (crash and power modes).
    Durable,
    /// Producers submitting tasks into a pipeline of 3 durable agents (crash
    /// and power modes; `n` is seconds per configuration).
    Pipeline,
    /// Messages pending when the daemon is SIGKILLed: time to resume.
    Resume,
    /// `send` over the admin socket from 1 and 16 clients.
    Admin,
    /// Pingpong without policies and with a limiter that never throttles.
    Policies,
    /// A config reload of a 1,000-agent tree (plan, and plan + apply).
    Reload,
    /// One `llm` agent against an in-process fake-llm: requests/s with 1 and 8
    /// replicas, with and without a limiter.
    Llm,
    /// The seed-orchestrator example run by the real daemon at `n` tasks/s for
    /// `WARDEN_BENCH_SECS` (60) seconds: tasks/s, end-to-end time per task, RSS.
    Orchestrator,
    /// One `exec` agent (a Python echo port) called one message at a time,
    /// against the same Python loop on a plain pipe.
    Port,
    /// Internal: the socket variant of `spawn`, in its own process.
    #[value(hide = true)]
    SpawnSocket,
    /// Internal: the child process of `resume`.
    #[value(hide = true)]
    ResumeFill,
}

/// One result line; absent fields are left out of the JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Always `warden`.
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    /// Size of the run.
    pub n: u64,
    /// Variant, where a scenario has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Messages per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_s: Option<f64>,
    /// Round trips per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trips_per_s: Option<f64>,
    /// Restarts per second (wall time of the loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts_per_s: Option<f64>,
    /// Spawns per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawns_per_s: Option<f64>,
    /// Resident bytes per agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_actor: Option<f64>,
    /// Median latency, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// Largest latency, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_us: Option<f64>,
    /// Durable, admin: producers or clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producers: Option<u64>,
    /// Durable: `crash` or `power`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<&'static str>,
    /// Durable: requests made durable per flush (group commit's batching).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_flush: Option<f64>,
    /// Handled messages per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_per_s: Option<f64>,
    /// Resume: ms from restart to the first message handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_handled_ms: Option<f64>,
    /// Resume: ms from restart to every message handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_handled_ms: Option<f64>,
    /// Resume: accepted messages never handled (must be 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Restart: polls per restart, the successful one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polls_per_restart: Option<f64>,
    /// Pipeline: submits acknowledged durable per second (in the window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_per_s: Option<f64>,
    /// Pipeline: tasks whose last stage's commit became durable per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_per_s: Option<f64>,
    /// Pipeline: submit start to the last stage's durable commit, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_p50_us: Option<f64>,
    /// Pipeline: 99th percentile of that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_p99_us: Option<f64>,
    /// Pipeline: the largest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_max_us: Option<f64>,
    /// Pipeline: submit start to its durable ack, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submit_p50_us: Option<f64>,
    /// Pipeline: 99th percentile of that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submit_p99_us: Option<f64>,
    /// Pipeline: the largest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submit_max_us: Option<f64>,
    /// Pipeline: tasks still in a stage's mailbox at the end (read back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_at_end: Option<u64>,
    /// Pipeline: ids found twice, or never submitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dup: Option<u64>,
    /// Pipeline: the check passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// Pipeline: every acknowledged submit, warm-up included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted: Option<u64>,
    /// Pipeline: completion records in the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

impl BenchResult {
    fn new(scenario: &'static str, n: u64) -> Self {
        BenchResult {
            scenario,
            implementation: "warden",
            n,
            ..Default::default()
        }
    }

    fn latencies(mut self, samples_ns: &mut [u64]) -> Self {
        samples_ns.sort_unstable();
        let pick = |q: f64| {
            let i =
                ((samples_ns.len() as f64 * q) as usize).min(samples_ns.len().saturating_sub(1));
            samples_ns.get(i).map(|v| *v as f64 / 1000.0)
        };
        self.p50_us = pick(0.5);
        self.p99_us = pick(0.99);
        self.max_us = samples_ns.last().map(|v| *v as f64 / 1000.0);
        self
    }

    /// One human-readable line.
    pub fn human(&self) -> String {
        let mut parts = vec![format!("{:<10} n={}", self.scenario, self.n)];
        if let Some(v) = &self.variant {
            parts.push(v.clone());
        }
        let mut add = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                parts.push(format!("{name}={v:.2}"));
            }
        };
        add("msgs/s", self.msgs_per_s);
        add("round_trips/s", self.round_trips_per_s);
        add("restarts/s", self.restarts_per_s);
        add("spawns/s", self.spawns_per_s);
        add("bytes/agent", self.bytes_per_actor);
        add("p50_us", self.p50_us);
        add("p99_us", self.p99_us);
        add("max_us", self.max_us);
        add("polls/restart", self.polls_per_restart);
        add("producers", self.producers.map(|p| p as f64));
        add("handled/s", self.handled_per_s);
        add("msgs/flush", self.msgs_per_flush);
        add("first_handled_ms", self.first_handled_ms);
        add("all_handled_ms", self.all_handled_ms);
        add("submitted/s", self.submitted_per_s);
        add("completed/s", self.completed_per_s);
        add("e2e_p50_us", self.e2e_p50_us);
        add("e2e_p99_us", self.e2e_p99_us);
        add("submit_p50_us", self.submit_p50_us);
        add("submit_p99_us", self.submit_p99_us);
        add("backlog_at_end", self.backlog_at_end.map(|b| b as f64));
        add("lost", self.lost.map(|l| l as f64));
        add("dup", self.dup.map(|d| d as f64));
        if let Some(d) = self.durability {
            parts.push(format!("durability={d}"));
        }
        if let Some(ok) = self.ok {
            parts.push(format!("ok={ok}"));
        }
        parts.join("  ")
    }
}

/// Runs `scenario` with size `n` (the scenario's default when `None`; for the
/// time-bound `durable` and `admin`, `n` is seconds per configuration).
pub async fn run(scenario: Scenario, n: Option<u64>) -> Vec<BenchResult> {
    let telemetry = telemetry::from_env().await;
    let mut results = run_scenario(scenario, n).await;
    if let Some(t) = telemetry {
        for r in &mut results {
            r.variant = Some(match r.variant.take() {
                Some(v) => format!("{v}, telemetry {t}"),
                None => format!("telemetry {t}"),
            });
        }
    }
    results
}

async fn run_scenario(scenario: Scenario, n: Option<u64>) -> Vec<BenchResult> {
    match scenario {
        Scenario::Pingpong => pingpong::run(n.unwrap_or(1_000_000)).await,
        Scenario::Restart => restart::run(n.unwrap_or(1_000)).await,
        Scenario::Spawn => spawn::run(n.unwrap_or(100_000)).await,
        Scenario::SpawnSocket => vec![spawn::socket(n.unwrap_or(100_000)).await],
        Scenario::Fanout => fanout::run(n.unwrap_or(1_000), 1_000).await,
        Scenario::Durable => durable::run(n.unwrap_or(3)).await,
        Scenario::Pipeline => pipeline::run(n.unwrap_or(3)).await,
        Scenario::Resume => resume::run(n.unwrap_or(100_000)).await,
        Scenario::Admin => admin::run(n.unwrap_or(3)).await,
        Scenario::Policies => pingpong::policies(n.unwrap_or(1_000_000)).await,
        Scenario::Reload => reload::run(n.unwrap_or(1_000)).await,
        Scenario::Port => port::run(n.unwrap_or(10_000)).await,
        Scenario::Llm => llm::run(n.unwrap_or(5_000)).await,
        Scenario::Orchestrator => orchestrator::run(n.unwrap_or(100)).await,
        Scenario::ResumeFill => unreachable!("resume-fill is run by the cli with --dir"),
    }
}

/// Resident set size of this process, in bytes (Linux `/proc/self/status`).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
