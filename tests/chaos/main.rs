//! Chaos tests: one test binary, a module per fault class. Every run prints its seed;
//! `WARDEN_CHAOS_SEED=<seed> cargo test --test chaos` replays it. Runs are bounded by
//! a count and a time limit.

#[path = "../common/mod.rs"]
mod common;

mod campaign;
mod crash_daemon;
mod damaged_store;
mod disk_full;
mod kill_agents;
mod kill_via_socket;
mod soak;
mod systemic;

/// The seed for this run: `WARDEN_CHAOS_SEED` or a fresh one, printed either way.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("WARDEN_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos {test}: seed {seed} (replay with WARDEN_CHAOS_SEED={seed})");
    seed
}
