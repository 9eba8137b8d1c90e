//! Warden runs agents the way Erlang/OTP runs processes: every agent is an actor
//! under a supervisor tree that restarts what fails, and every message waits in its
//! agent's mailbox until it is handled.
//!
//! # Layout
//!
//! - [`clock`]: the one clock (tokio's, pausable in tests) for instants and
//!   wall-clock milliseconds.
//! - [`envelope`]: the message on its way: ids, correlation, hops, attempts, deadline.
//! - [`actors`]: the [`Agent`] trait and the [`Context`] a handler works through
//!   ([`agent`]), agent slots (stable names, mailboxes, state), host actors, built-in
//!   kinds (`echo`, `sink`, `counter`, `exec`, `http`) and fault directives.
//! - [`supervision`]: supervisor actors, child specs, strategies (including
//!   `simple_one_for_one`), restart intensity and sweeps, auto shutdown, dynamic
//!   children, the tree view and lifecycle events.
//! - [`policies`]: rate limits, backoff, circuit breaker, systemic-failure pause.
//! - [`store`]: the sled store: durable mailboxes, attempts, state, dead letters,
//!   idempotency keys, dynamic children; group commit; recovery, quarantine, the
//!   high-water mark and the daemon-death suspects.
//! - [`spec_error`]: [`SpecError`], why a tree or agent spec is refused.
//! - [`runtime`]: [`Runtime`], the handle that starts, operates and stops a tree.
//! - [`config`]: the TOML config: raw mirror, validation, runtime specs.
//! - [`admin`]: the admin socket (newline-delimited JSON) and `warden ctl`.
//! - [`daemon`]: `warden run`: logging, signals, graceful shutdown, exit codes.
//! - [`service`]: systemd's notify protocol (ready, stopping, watchdog).
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`metrics`]: Prometheus metrics on `telemetry.metrics_listen`.
//! - [`bench`](mod@bench): `warden bench` scenarios.
//! - [`chaos`]: `warden chaos`: faults on a real daemon, and the history checker.
//! - [`fake_llm`]: `warden fake-llm`, an OpenAI-compatible server for demos and tests.
//! - [`cli`]: the command line.
//!
//! Guarantees as implemented are listed in `docs/runtime-semantics.md`.

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod actors;
pub mod admin;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod envelope;
pub mod fake_llm;
pub mod metrics;
pub mod policies;
pub mod runtime;
pub mod service;
pub mod spec_error;
pub mod spend;
pub mod store;
pub mod supervision;
pub mod telemetry;
mod util;

pub use actors::agent;
pub use agent::{Agent, AgentError, Context, ErrorKind};
pub use envelope::{Envelope, MessageId};
pub use runtime::{RootExit, Runtime};
pub use spec_error::SpecError;
