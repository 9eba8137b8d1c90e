//! The ledger: spend totals and budgets in memory, and the store records that
//! keep them (see the guarantees in [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, RwLock};

use serde_json::{json, Value};

use super::prices::{cost, Prices};
use crate::envelope::now_ms;
use crate::store::spend::{self, Budget, CorrelationSpend, SpendRecord, Totals};
use crate::store::Batch;

/// What one upstream call used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// The model, as the provider named it (none for a bare token count).
    pub model: Option<String>,
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// All tokens (at least input + output).
    pub total: u64,
}

/// What a correlation may still spend (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remaining {
    /// Tokens left (0 when spent).
    pub tokens: Option<u64>,
    /// Cost left (0 when spent).
    pub cost: Option<f64>,
}

impl Remaining {
    /// `{"tokens": N|null, "cost": X|null}`.
    pub fn to_json(&self) -> Value {
        json!({"tokens": self.tokens, "cost": self.cost})
    }
}

#[derive(Default)]
struct Books {
    correlations: HashMap<String, CorrelationSpend>,
    /// (agent, model) -> all-time totals: `folded` plus every kept hour.
    agents: BTreeMap<(String, String), Totals>,
    /// (hour, agent, model) -> totals in that hour (written with each charge).
    hours: BTreeMap<(u64, String, String), Totals>,
    /// (agent, model) -> the totals of the hours already pruned (written only
    /// when hours are pruned: a charge writes one record per model, not two).
    folded: BTreeMap<(String, String), Totals>,
}

/// Milliseconds in an hour (the grain of spend over a recent window).
const HOUR_MS: u64 = 3_600_000;

/// How long a task's spend and budget, and the hourly totals, are kept after
/// their last change (agent and model totals are kept for good).
pub const RETENTION_MS: u64 = 31 * 24 * HOUR_MS;

/// Spend and budgets of the whole tree.
#[derive(Default)]
pub struct Ledger {
    books: Mutex<Books>,
    prices: RwLock<Prices>,
    /// Budgets, and when each was set (ms). A lock of its own, never held
    /// while another is taken: an accept sets a budget under its agent's lock,
    /// while a commit holds `books` and may take an agent's lock.
    budgets: Mutex<HashMap<String, (Budget, u64)>>,
    /// Some correlation has a budget (else handling skips the budget check).
    any_budget: std::sync::atomic::AtomicBool,
    /// When [`Ledger::prune_if_due`] last pruned (ms).
    pruned_at: std::sync::atomic::AtomicU64,
}

/// Held while a charged hand-off is queued for the store, so that records
/// reach the store in the order their totals were computed.
pub struct Charged<'a> {
    _books: MutexGuard<'a, Books>,
    /// What was charged, in all.
    pub spent: Totals,
}

impl Ledger {
    /// A ledger pricing by `prices`.
    pub fn new(prices: Prices) -> Ledger {
        Ledger {
            books: Mutex::default(),
            prices: RwLock::new(prices),
            budgets: Default::default(),
            any_budget: Default::default(),
            pruned_at: Default::default(),
        }
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn budgets(&self) -> MutexGuard<'_, HashMap<String, (Budget, u64)>> {
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prices from now on (a config reload); spend already counted keeps its cost.
    pub fn set_prices(&self, prices: Prices) {
        *self.prices.write().unwrap_or_else(|p| p.into_inner()) = prices;
    }

    /// Takes the records recovered from the store.
    pub fn load(&self, records: Vec<SpendRecord>) {
        let mut b = self.books();
        for r in records {
            match r {
                SpendRecord::Correlation(c, s) => {
                    b.correlations.insert(c, s);
                }
                SpendRecord::Budget(c, budget, at) => {
                    self.any_budget.store(true, Ordering::Relaxed);
                    self.budgets().insert(c, (budget, at));
                }
                SpendRecord::Hour(h, a, m, t) => {
                    b.agents.entry((a.clone(), m.clone())).or_default().add(&t);
                    b.hours.insert((h, a, m), t);
                }
                SpendRecord::Agent(a, m, t) => {
                    b.agents.entry((a.clone(), m.clone())).or_default().add(&t);
                    b.folded.insert((a, m), t);
                }
                // the limiters' own (see `Limiter::restore_day`)
                SpendRecord::Limiter(..) => {}
            }
        }
    }

    /// `correlation`'s budget and what it spent, if it has a budget.
    fn budget_and_spent(&self, correlation: &str) -> Option<(Budget, Totals)> {
        if !self.any_budget.load(Ordering::Relaxed) {
            return None;
        }
        let (budget, _) = *self.budgets().get(correlation)?;
        let spent = self
            .books()
            .correlations
            .get(correlation)
            .map(|c| c.spent)
            .unwrap_or_default();
        Some((budget, spent))
    }

    /// Why a message of `correlation` may not be handled: its budget is spent.
    pub fn exhausted(&self, correlation: &str) -> Option<String> {
        self.check(correlation).err()
    }

    /// What `correlation` may still spend, if it has a budget.
    pub fn remaining(&self, correlation: &str) -> Option<Remaining> {
        self.check(correlation).unwrap_or_else(|_| {
            self.budget_and_spent(correlation).map(|(b, _)| Remaining {
                tokens: b.tokens.map(|_| 0),
                cost: b.cost.map(|_| 0.0),
            })
        })
    }

    /// Before a handling: `Err` (why) when the task's budget is spent, else
    /// what it may still spend, if it has a budget (one look at the books).
    pub fn check(&self, correlation: &str) -> Result<Option<Remaining>, String> {
        let Some((budget, spent)) = self.budget_and_spent(correlation) else {
            return Ok(None);
        };
        if let Some(why) = exhausted(correlation, &budget, &spent) {
            return Err(why);
        }
        Ok(Some(Remaining {
            tokens: budget.tokens.map(|m| m.saturating_sub(spent.tokens)),
            cost: budget.cost.map(|m| (m - spent.cost).max(0.0)),
        }))
    }

    /// `correlation`'s budget, if it has one.
    pub fn budget(&self, correlation: &str) -> Option<Budget> {
        self.budgets().get(correlation).map(|(b, _)| *b)
    }

    /// Gives `correlation` a budget (replacing its limits of the kinds given;
    /// with `keep`, only if it has none yet) and writes its record into
    /// `batch` (the accept of the message that sets it). Returns whether it
    /// changed anything.
    pub fn set_budget(
        &self,
        correlation: &str,
        budget: Budget,
        keep: bool,
        batch: &mut Batch,
    ) -> bool {
        if budget.is_empty() {
            return false;
        }
        let mut budgets = self.budgets();
        let (cur, at) = budgets.entry(correlation.to_string()).or_default();
        if keep && !cur.is_empty() {
            return false;
        }
        cur.tokens = budget.tokens.or(cur.tokens);
        cur.cost = budget.cost.or(cur.cost);
        *at = now_ms();
        batch.insert(
            spend::budget_key(correlation),
            spend::encode_budget(cur, *at),
        );
        self.any_budget.store(true, Ordering::Relaxed);
        true
    }

    /// Counts `usage`, spent by `agent` in `correlation`, and writes the new
    /// totals into `batch`. Queue `batch` for the store before dropping the
    /// returned guard. Nothing when `usage` is empty.
    pub fn charge(
        &self,
        agent: &str,
        correlation: &str,
        usage: &[Usage],
        batch: &mut Batch,
    ) -> Option<Charged<'_>> {
        if usage.is_empty() {
            return None;
        }
        let prices = self.prices.read().unwrap_or_else(|p| p.into_inner());
        let mut b = self.books();
        let mut in_all = Totals::default();
        for u in usage {
            let model = u.model.clone().unwrap_or_default();
            let t = Totals {
                tokens: u.total.max(u.input.saturating_add(u.output)),
                input: u.input,
                output: u.output,
                cost: cost(&prices, &model, u.input, u.output, u.total),
                calls: 1,
            };
            in_all.add(&t);
            b.agents
                .entry((agent.to_string(), model.clone()))
                .or_default()
                .add(&t);
            let hour = now_ms() / HOUR_MS;
            let totals = b
                .hours
                .entry((hour, agent.to_string(), model.clone()))
                .or_default();
            totals.add(&t);
            let rec = spend::encode(&*totals);
            batch.insert(spend::hour_key(hour, agent, &model), rec);
        }
        let c = b.correlations.entry(correlation.to_string()).or_default();
        c.spent.add(&in_all);
        c.at_ms = now_ms();
        batch.insert(spend::correlation_key(correlation), spend::encode(&*c));
        Some(Charged {
            _books: b,
            spent: in_all,
        })
    }

    /// Totals by agent (`"agent"`), model (`"model"`) or correlation
    /// (`"correlation"`), since `since_ms` (0: all kept): agent and model
    /// totals of the hours that overlap the window, correlations that spent
    /// within it (their whole spend).
    pub fn by(&self, by: &str, since_ms: u64) -> Vec<(String, Totals)> {
        let b = self.books();
        let mut out: BTreeMap<String, Totals> = BTreeMap::new();
        match by {
            "model" | "agent" if since_ms > 0 => {
                let from = since_ms / HOUR_MS;
                for ((_, a, m), t) in b.hours.range((from, String::new(), String::new())..) {
                    let name = if by == "model" { m } else { a };
                    out.entry(name.clone()).or_default().add(t);
                }
            }
            "model" => {
                for ((_, m), t) in &b.agents {
                    out.entry(m.clone()).or_default().add(t);
                }
            }
            "correlation" => {
                for (c, s) in &b.correlations {
                    if s.at_ms >= since_ms && s.spent.calls > 0 {
                        out.insert(c.clone(), s.spent);
                    }
                }
            }
            _ => {
                for ((a, _), t) in &b.agents {
                    out.entry(a.clone()).or_default().add(t);
                }
            }
        }
        out.into_iter().collect()
    }

    /// Forgets what is older than [`RETENTION_MS`] at `now_ms`: tasks (spend and
    /// budget) unchanged since, and hourly totals; writes their removal into
    /// `batch`. Returns how many records go.
    pub fn prune(&self, now_ms: u64, batch: &mut Batch) -> usize {
        let cutoff = now_ms.saturating_sub(RETENTION_MS);
        let mut b = self.books();
        let mut budgets = self.budgets();
        let mut n = 0;
        let old: Vec<String> = b
            .correlations
            .iter()
            .filter(|(c, s)| s.at_ms < cutoff && budgets.get(*c).is_none_or(|(_, at)| *at < cutoff))
            .map(|(c, _)| c.clone())
            .chain(
                budgets
                    .iter()
                    .filter(|(c, (_, at))| *at < cutoff && !b.correlations.contains_key(*c))
                    .map(|(c, _)| c.clone()),
            )
            .collect();
        for c in old {
            if b.correlations.remove(&c).is_some() {
                batch.remove(spend::correlation_key(&c));
                n += 1;
            }
            if budgets.remove(&c).is_some() {
                batch.remove(spend::budget_key(&c));
                n += 1;
            }
        }
        drop(budgets);
        let first = cutoff / HOUR_MS;
        let hours: Vec<(u64, String, String)> = b
            .hours
            .range(..(first, String::new(), String::new()))
            .map(|(k, _)| k.clone())
            .collect();
        for (h, a, m) in hours {
            batch.remove(spend::hour_key(h, &a, &m));
            if let Some(t) = b.hours.remove(&(h, a.clone(), m.clone())) {
                // the all-time totals keep what the hour held
                let folded = b.folded.entry((a.clone(), m.clone())).or_default();
                folded.add(&t);
                let rec = spend::encode(&*folded);
                batch.insert(spend::agent_key(&a, &m), rec);
            }
            n += 1;
        }
        n
    }

    /// [`Ledger::prune`], at most once an hour.
    pub fn prune_if_due(&self, now_ms: u64, batch: &mut Batch) -> usize {
        let last = self.pruned_at.load(Ordering::Relaxed);
        if now_ms < last.saturating_add(HOUR_MS)
            || self
                .pruned_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return 0;
        }
        self.prune(now_ms, batch)
    }

    /// Totals per (agent, model), for the metrics.
    pub fn by_agent_and_model(&self) -> Vec<((String, String), Totals)> {
        self.books()
            .agents
            .iter()
            .map(|(k, t)| (k.clone(), *t))
            .collect()
    }

    /// A correlation's spend and budget.
    pub fn correlation(&self, correlation: &str) -> Option<CorrelationSpend> {
        self.books().correlations.get(correlation).cloned()
    }
}

/// Why `correlation` may not spend more, if `spent` reached `budget`.
fn exhausted(correlation: &str, budget: &Budget, spent: &Totals) -> Option<String> {
    if let Some(max) = budget.tokens.filter(|m| spent.tokens >= *m) {
        return Some(format!(
            "correlation '{correlation}' spent {} tokens of its budget of {max}",
            spent.tokens
        ));
    }
    if let Some(max) = budget.cost.filter(|m| spent.cost >= *m) {
        return Some(format!(
            "correlation '{correlation}' spent {:.6} of its cost budget of {max}",
            spent.cost
        ));
    }
    None
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
