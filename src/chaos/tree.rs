//! The built-in tree of `warden chaos`: every strategy, a replica pool and a sink.

/// The built-in config; `{dir}` is the run's work directory.
pub(super) const BUILTIN: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
strategy = "one_for_one"
max_restarts = 100000             # faults are injected on purpose: never give up
within = "1s"
children = ["entry", "pipeline", "output"]

[supervisor.pipeline]
strategy = "rest_for_one"
max_restarts = 100000
within = "1s"
children = ["stage", "check"]

[supervisor.output]
strategy = "one_for_all"
max_restarts = 100000
within = "1s"
children = ["out"]

[agent.entry]
kind = "echo"
to = ["stage"]
timeout = "300ms"                 # slow tasks overrun it once
max_attempts = 3
backoff = { initial = "5ms", max = "50ms" }

[agent.stage]
kind = "echo"
to = ["check"]
replicas = 2
max_attempts = 3
backoff = { initial = "5ms", max = "50ms" }

[agent.check]
kind = "echo"
to = ["out"]
max_attempts = 3
backoff = { initial = "5ms", max = "50ms" }

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
max_attempts = 3
backoff = { initial = "5ms", max = "50ms" }
"#;
