//! The numeric-range matrix, generated from the config's own key lists (the
//! schema): every key of every section is given absurd values, and whatever
//! `check` accepts must be safe to run (no panic building limiters, backoff
//! curves, intensity windows or deadlines). A key added to a list is covered
//! without touching this file.

use std::time::Duration;

use super::{agent, backoff, build, daemon, Config};
use crate::actors::Kinds;
use crate::supervision::ChildKind;

/// Values no key should let through unchecked.
const ABSURD: &[&str] = &[
    "\"10000000000000000000s\"",
    "\"365d 1s\"",
    "\"0s\"",
    "1e300",
    "1e-300",
    "-1",
    "0",
    "9223372036854775807",
    "4294967296",
    "\"\"",
];

const BASE: &str = "[supervisor.root]\nchildren = [\"a\"]\n[agent.a]\nkind = \"sink\"\npath = \"/tmp/warden-matrix/out.jsonl\"\n[limits.l]\nrequests_per_second = 5\n";

/// `BASE` with `key = value` set in `section` (added if missing), or as an inline
/// table entry `table = { key = value }` of the agent.
fn config_with(section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    if let Some(table) = section.strip_prefix("agent.a.") {
        return BASE.replace(
            "[agent.a]\n",
            &format!("[agent.a]\n{table} = {{ {key} = {value} }}\n"),
        );
    }
    if BASE.contains(&header) {
        BASE.replace(&header, &format!("{header}\n{key} = {value}"))
    } else {
        format!("{BASE}{header}\n{key} = {value}\n")
    }
}

/// What running an accepted config computes up front; must not panic.
fn exercise(c: &Config) {
    let _ = crate::policies::limits::Limits::new(&c.limits);
    let _ = crate::supervision::intensity::IntensityWindow::new(c.tree.intensity);
    let _ = crate::clock::after(c.daemon.shutdown_timeout);
    let _ = crate::clock::ms_after(c.daemon.idempotency_retention);
    for child in &c.tree.children {
        if let Some(rb) = &child.restart_backoff {
            let _ = rb.backoff.delay(64);
        }
        if let ChildKind::Agent(a) = &child.kind {
            let _ = a.backoff.delay(64);
            let _ = crate::clock::after(a.timeout);
            let _ = a.deadline.map(crate::clock::ms_after);
            let _ = a.breaker.as_ref().map(|b| crate::clock::after(b.cool_down));
            let _ = crate::clock::after(a.systemic.cool_down);
        }
    }
}

#[test]
fn every_key_with_absurd_values_is_refused_or_safe_to_run() {
    let sections: Vec<(&str, &[&str])> = vec![
        ("daemon", daemon::DAEMON),
        ("limits.l", daemon::LIMIT),
        ("supervisor.root", build::SUPERVISOR),
        ("agent.a", agent::AGENT),
        ("agent.a.backoff", backoff::BACKOFF),
        ("agent.a.breaker", agent::BREAKER),
        ("agent.a.restart_backoff", backoff::RESTART_BACKOFF),
    ];
    let kinds = Kinds::builtin();
    let mut tried = 0;
    for (section, keys) in sections {
        for key in keys {
            for value in ABSURD {
                let text = config_with(section, key, value);
                tried += 1;
                match Config::parse(&text, "matrix.toml", &kinds) {
                    Ok(c) => exercise(&c),
                    Err(e) => assert!(
                        !e.reason.is_empty(),
                        "{section}.{key} = {value}: an error without a reason"
                    ),
                }
            }
        }
    }
    assert!(tried > 300, "the matrix covers the schema ({tried} cases)");
    // and the ranges bite where they must
    let c = Config::parse(
        &config_with("daemon", "commit_max_delay", "\"2s\""),
        "m",
        &kinds,
    );
    assert!(c.is_err());
    let long = Config::parse(
        &config_with("agent.a.backoff", "max", "\"366d\""),
        "m",
        &kinds,
    );
    assert!(long.is_err());
    assert!(Duration::from_secs(365 * 86_400) == super::MAX_DURATION);
}

mod fuzz {
    use proptest::prelude::*;

    use super::{exercise, BASE};
    use crate::actors::Kinds;
    use crate::config::Config;

    proptest! {
        // Bounded for CI: 1,000 mutated configs a run.
        #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

        /// Random lines spliced into a valid config: refused with a reason, or
        /// accepted and safe to run; never a panic.
        #[test]
        fn mutated_configs_are_refused_or_safe(
            lines in prop::collection::vec(
                (prop::sample::select(vec!["daemon", "limits.l", "supervisor.root", "agent.a"]),
                 prop_oneof![
                     prop::sample::select(
                         [super::daemon::DAEMON, super::daemon::LIMIT, super::build::SUPERVISOR, super::agent::AGENT]
                             .concat(),
                     )
                     .prop_map(String::from),
                     "[a-z_]{1,20}",
                 ],
                 prop_oneof![
                     "\"[0-9]{1,25}(ms|s|m|h|d)\"",
                     "-?[0-9]{1,20}",
                     "-?[0-9]{1,3}\\.[0-9]{1,3}e-?[0-9]{1,3}",
                     "\".{0,30}\"",
                     "\\[\"[a-z]{1,5}\"\\]",
                     "(true|false)",
                 ]),
                0..6,
            ),
        ) {
            let mut text = BASE.to_string();
            for (section, key, value) in lines {
                let header = format!("[{section}]");
                let line = format!("{key} = {value}");
                if text.contains(&line[..line.find(" =").unwrap_or(0)]) && text.contains(&format!("\n{key} =")) {
                    continue; // a key set twice is a TOML error, not worth a case
                }
                text = if text.contains(&header) {
                    text.replacen(&header, &format!("{header}\n{line}"), 1)
                } else {
                    format!("{text}{header}\n{line}\n")
                };
            }
            if let Ok(c) = Config::parse(&text, "fuzz.toml", &Kinds::builtin()) {
                exercise(&c);
            }
        }
    }
}
