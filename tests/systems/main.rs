//! The user systems of ../shared/SYSTEMS.md, end to end: each runs its example
//! config from `config/examples/` through the real binary, offline against the
//! real `warden fake-llm`, injects the fault SYSTEMS.md names and checks the
//! outcome there. One module per system.

#[path = "../common/mod.rs"]
mod common;

mod commerce;
mod departments;
mod orchestrator;
mod review_loop;
mod swarm;
