//! The command line: `warden run`, `warden check`, `warden bench`.
//!
//! Parsing only; each command calls the library. Exit codes: 0 done, 1 failed,
//! 2 usage or config error.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::actors::Kinds;
use crate::bench::Scenario;
use crate::config::{Config, DEFAULT_PATH};
use crate::daemon::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};

/// Warden runs agents the way Erlang/OTP runs processes.
#[derive(Parser, Debug)]
#[command(name = "warden", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon in the foreground (SIGTERM or Ctrl-C stops it gracefully).
    Run {
        /// The config file.
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Start even when the store has lost committed data (damaged or truncated
        /// files): run on what is left. Without it such a store is refused.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Validate a config file without starting anything.
    Check {
        /// The config file.
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Give the store's unused disk space back (after a large backlog drained):
    /// rewrite it compactly. The daemon must be stopped.
    Compact {
        /// The config file (its `data_dir` holds the store).
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Compact a store that has lost committed data, as `run --accept-loss`.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Serve an OpenAI-compatible chat completions endpoint for demos and tests:
    /// scripted answers, injectable faults, counted usage (no API key needed).
    FakeLlm {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: std::net::SocketAddr,
        /// Rules and faults (TOML; docs/kinds.md).
        #[arg(long)]
        script: Option<PathBuf>,
        /// Append one JSON line per request here.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Talk to a running daemon over its admin socket.
    Ctl(crate::admin::ctl::CtlArgs),
    /// Prove the durable promise: faults on a real daemon, then a history check.
    Chaos(crate::chaos::ChaosArgs),
    /// Run a benchmark scenario (DESIGN section 8).
    Bench {
        /// The scenario.
        scenario: Scenario,
        /// Print one JSON object per result line.
        #[arg(long)]
        json: bool,
        /// Size of the run (round trips, restarts, agents, messages per agent;
        /// seconds per configuration for durable and admin).
        #[arg(long, short)]
        n: Option<u64>,
        /// Internal (resume-fill): the store directory.
        #[arg(long, hide = true)]
        dir: Option<PathBuf>,
    },
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {}: {w}", c.file);
                }
                let names = c.tree.names();
                println!(
                    "ok: {} ({} names in the tree under root)",
                    c.file,
                    names.len() - 1
                );
                EXIT_OK
            }
            Err(e) => {
                eprintln!("warden: invalid config: {e}");
                EXIT_CONFIG
            }
        },
        Command::Run {
            config,
            accept_loss,
        } => {
            let opts = crate::daemon::RunOptions { accept_loss };
            runtime().block_on(crate::daemon::run(&config, Kinds::builtin(), opts))
        }
        Command::Compact {
            config,
            accept_loss,
        } => compact(&config, accept_loss),
        Command::FakeLlm {
            listen,
            script,
            log,
        } => {
            let script = match &script {
                None => crate::fake_llm::Script::default(),
                Some(p) => {
                    let parsed = std::fs::read_to_string(p)
                        .map_err(|e| format!("{}: {e}", p.display()))
                        .and_then(|t| {
                            crate::fake_llm::Script::parse(&t, &p.display().to_string())
                                .map_err(|e| e.to_string())
                        });
                    match parsed {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("warden: invalid fake-llm script: {e}");
                            return EXIT_CONFIG;
                        }
                    }
                }
            };
            let args = crate::fake_llm::FakeLlmArgs {
                listen,
                script,
                log,
            };
            match runtime().block_on(crate::fake_llm::serve(args)) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("warden: fake-llm: {e}");
                    EXIT_FAILED
                }
            }
        }
        Command::Ctl(args) => crate::admin::ctl::run(args),
        Command::Chaos(args) => crate::chaos::run(args),
        Command::Bench {
            scenario: Scenario::ResumeFill,
            n,
            dir,
            ..
        } => {
            let Some(dir) = dir else {
                eprintln!("warden: resume-fill needs --dir");
                return EXIT_CONFIG;
            };
            runtime().block_on(crate::bench::resume::fill(&dir, n.unwrap_or(100_000)));
            EXIT_OK
        }
        Command::Bench {
            scenario, json, n, ..
        } => {
            match runtime()
                .block_on(async move { tokio::spawn(crate::bench::run(scenario, n)).await })
            {
                Ok(results) => {
                    for r in results {
                        if json {
                            println!(
                                "{}",
                                serde_json::to_string(&r).expect("bench results are JSON")
                            );
                        } else {
                            println!("{}", r.human());
                        }
                    }
                    EXIT_OK
                }
                Err(e) => {
                    eprintln!("warden: bench failed: {e}");
                    EXIT_FAILED
                }
            }
        }
    }
}

/// `warden compact`: lock the data directory (refused while a daemon runs on it)
/// and compact its store.
fn compact(config: &std::path::Path, accept_loss: bool) -> i32 {
    let c = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warden: invalid config: {e}");
            return EXIT_CONFIG;
        }
    };
    let _lock = match crate::admin::server::lock_data_dir(&c.daemon.data_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warden: {e}; stop the daemon before compacting its store");
            return EXIT_FAILED;
        }
    };
    let dir = c.daemon.data_dir.join("store");
    match crate::store::compact(&dir, accept_loss) {
        Ok(r) => {
            let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
            println!(
                "compacted {}: {:.1} MiB -> {:.1} MiB ({} records)",
                dir.display(),
                mib(r.before),
                mib(r.after),
                r.records
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("warden: cannot compact {}: {e}", dir.display());
            EXIT_FAILED
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be built")
}
