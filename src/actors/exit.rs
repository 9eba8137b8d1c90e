//! The exit reasons an agent host (or a supervisor) ends with, as text, the way an
//! Erlang process ends with a reason term. The supervision layer classifies them
//! ([`crate::supervision::Exit`]).

/// Exit reason of an actor that stops on its own, normally.
pub const EXIT_NORMAL: &str = "normal";
/// Exit reason of an actor stopped by its supervisor (or that ends with
/// `shutdown`; `shutdown: <info>` is the same, with a reason attached).
pub const EXIT_SHUTDOWN: &str = "shutdown";
/// How the exit reason of a supervisor that gave up begins.
pub const EXIT_GAVE_UP: &str = "gave up: ";
