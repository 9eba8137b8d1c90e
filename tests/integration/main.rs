//! The integration tests: one test binary (ripgrep's layout), a module per area,
//! sharing `tests/common`. Each drives the library or the real `warden` binary;
//! the chaos tests have a binary of their own (`tests/chaos`).

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod browser;
mod budgets;
mod cli;
mod dashboard;
mod dynamic_children;
mod hardening;
mod limits;
mod llm;
mod operations;
mod otp_conformance;
mod policies;
mod ports;
mod reload;
mod store;
mod store_spend;
mod supervision;
mod supervision_model;
mod trace_calls;
mod traces;
mod webhooks;
mod workflows;
