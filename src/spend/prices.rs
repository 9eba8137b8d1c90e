//! The price table: `[prices."MODEL"] input = 0.15, output = 0.60`, in the
//! operator's currency per million tokens.

use std::collections::BTreeMap;

/// A model's prices, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per million input (prompt) tokens.
    pub input: f64,
    /// Per million output (completion) tokens.
    pub output: f64,
}

/// Prices by model name (as the provider reports it in `model`).
pub type Prices = BTreeMap<String, Price>;

/// What `input` and `output` tokens of `model` cost; a total without the split
/// is priced as input. An unknown model costs 0 (its tokens are still counted).
pub(super) fn cost(prices: &Prices, model: &str, input: u64, output: u64, total: u64) -> f64 {
    let Some(p) = prices.get(model).or_else(|| {
        // providers answer with a dated name ("gpt-4o-mini-2024-07-18")
        prices
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }) else {
        return 0.0;
    };
    let unsplit = total.saturating_sub(input.saturating_add(output));
    (input.saturating_add(unsplit) as f64 * p.input + output as f64 * p.output) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_table_per_million_tokens() {
        let mut t = Prices::new();
        t.insert(
            "gpt-4o-mini".into(),
            Price {
                input: 0.15,
                output: 0.60,
            },
        );
        let c = cost(&t, "gpt-4o-mini", 1_000_000, 1_000_000, 2_000_000);
        assert!((c - 0.75).abs() < 1e-9, "{c}");
        let dated = cost(&t, "gpt-4o-mini-2024-07-18", 0, 1_000_000, 0);
        assert!((dated - 0.60).abs() < 1e-9, "{dated}");
        assert_eq!(cost(&t, "other", 10, 10, 20), 0.0);
        // a total without the split is priced as input
        let c = cost(&t, "gpt-4o-mini", 0, 0, 1_000_000);
        assert!((c - 0.15).abs() < 1e-9, "{c}");
    }
}
