//! Spend and budgets: what agents spent (tokens, and cost by the `[prices]`
//! table), per correlation and per agent and model, and the budget of each
//! correlation (a task).
//!
//! Guarantees:
//! - Spend reported while a message is handled (`llm` usage, a port's
//!   `tokens_used` or `usage`, a Rust agent's [`crate::actors::agent::Context::report_usage`])
//!   is committed in the batch of that handling's hand-off: a crash before the
//!   commit loses the attempt and its spend record together, the redelivery
//!   reports its own; a crash after it finds both. A failed attempt's spend is
//!   committed on its own, right after it failed.
//! - Records hold absolute totals, computed and queued for the store under one
//!   lock, in commit order: a later record includes every earlier one, so
//!   nothing is counted twice however commits interleave.
//! - A message whose correlation spent its budget is not handled: it is
//!   dead-lettered `budget_exhausted` (and `on_dead_letter` applies). A handling
//!   may end past the budget by what that one handling spent; none starts after.
//! - A task's spend and budget, and the hourly totals behind `ctl spend
//!   --since`, are forgotten [`RETENTION_MS`] after their last change (at start,
//!   then hourly); agent and model totals are kept.
//! - In memory (and on `ctl spend`), a commit that the store then refuses is
//!   counted already: spend may read high after a store failure, never low.

mod ledger;
mod prices;

pub use ledger::{Ledger, Remaining, Usage, RETENTION_MS};
pub use prices::{Price, Prices};
