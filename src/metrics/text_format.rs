//! The Prometheus text format 0.0.4, what `GET /metrics` answers unless the
//! scraper asks for OpenMetrics (DESIGN section 11): made from the OpenMetrics
//! text prometheus-client writes, which differs only in its metadata.
//!
//! - A counter's family is named with its `_total` suffix (OpenMetrics names the
//!   family without it and its samples with it), in `# HELP` and `# TYPE`.
//! - An `info` family becomes a gauge named with its `_info` suffix.
//! - `# UNIT` and `# EOF` lines, which 0.0.4 does not have, are left out.
//!
//! Samples are copied as they are: their names, labels and values are the same in
//! both formats.

use std::collections::HashMap;

/// The OpenMetrics text `open` in the Prometheus 0.0.4 text format.
pub(super) fn from_openmetrics(open: &str) -> String {
    let types: HashMap<&str, &str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        let Some((prefix, rest)) = meta else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let (name, tail) = match types.get(name).copied() {
            Some("counter") if !name.ends_with("_total") => (format!("{name}_total"), tail),
            Some("info") if prefix == "# TYPE " => (format!("{name}_info"), "gauge"),
            Some("info") => (format!("{name}_info"), tail),
            Some("unknown") if prefix == "# TYPE " => (name.to_string(), "untyped"),
            _ => (name.to_string(), tail),
        };
        out.push_str(prefix);
        out.push_str(&name);
        if !tail.is_empty() {
            out.push(' ');
            out.push_str(tail);
        }
        out.push('\n');
    }
    out
}

/// Whether a scraper's `Accept` header asks for OpenMetrics.
pub(super) fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            params.next() == Some("application/openmetrics-text")
                && !params.any(|p| p.replace(' ', "") == "q=0")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_info_are_renamed_and_openmetrics_only_lines_dropped() {
        let open = "# HELP warden_restarts Restarts\n# TYPE warden_restarts counter\n\
                    warden_restarts_total{agent=\"a\"} 2\n\
                    # HELP warden_handle_seconds Time\n# TYPE warden_handle_seconds histogram\n\
                    # UNIT warden_handle_seconds seconds\n\
                    warden_handle_seconds_bucket{le=\"+Inf\",agent=\"a\"} 1\n\
                    # HELP warden_build The build\n# TYPE warden_build info\n\
                    warden_build_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            from_openmetrics(open),
            "# HELP warden_restarts_total Restarts\n# TYPE warden_restarts_total counter\n\
             warden_restarts_total{agent=\"a\"} 2\n\
             # HELP warden_handle_seconds Time\n# TYPE warden_handle_seconds histogram\n\
             warden_handle_seconds_bucket{le=\"+Inf\",agent=\"a\"} 1\n\
             # HELP warden_build_info The build\n# TYPE warden_build_info gauge\n\
             warden_build_info{version=\"1\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_is_served_only_when_asked_for() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some(
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text; q=0"
        )));
    }
}
