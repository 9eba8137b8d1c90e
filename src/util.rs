//! Small helpers shared by config validation and error messages.

/// How a suggestion quotes its candidate.
#[derive(Clone, Copy)]
pub(crate) enum Quote {
    /// A name (agent, supervisor, key, op): `'planner'`.
    Name,
    /// A string value of the config (a kind, a strategy): `"sink"`.
    Value,
}

/// `did you mean 'planner'?` for the candidate nearest `word`, when one is close
/// enough to be a typo: the one way every error message suggests.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    quote: Quote,
) -> Option<String> {
    let near = nearest(word, candidates)?;
    Some(match quote {
        Quote::Name => format!("did you mean '{near}'?"),
        Quote::Value => format!("did you mean \"{near}\"?"),
    })
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn suggests_the_closest_name() {
        let names = ["planner", "workers", "reviewer"];
        assert_eq!(nearest("plannr", names), Some("planner"));
        assert_eq!(nearest("workres", names), Some("workers"));
        assert_eq!(nearest("zzz", names), None);
        assert_eq!(
            nearest(&"p".repeat(100_000), names),
            None,
            "no work on huge words"
        );
    }
}
