//! `reload`: read the config file again and apply it while the daemon runs, like
//! supervisord's `update` (also on SIGHUP). With `dry_run`, only the plan.
//!
//! The file is validated whole first: an invalid file changes nothing and the
//! error says why (`invalid_config`). `[daemon]` keys, `telemetry.otlp_endpoint`,
//! `sample`, `log_format` and `metrics_listen` take effect only at start: a file that changes
//! them is refused (`reload_refused`) naming the keys. `telemetry.log` is applied
//! live (unless `RUST_LOG` set the filter). The tree and the limiters change as
//! [`crate::runtime::Runtime::reload`] says.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::{AdminError, ErrorCode};
use crate::config::{Config, DaemonConfig, TelemetryConfig};
use crate::runtime::ReloadError;

/// `reload`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// Only compute and return the plan.
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    run(ctx, r.dry_run).await
}

/// Reloads (or plans a reload of) the daemon's config file; the result object of
/// the `reload` op.
pub(crate) async fn run(ctx: &AdminCtx, dry_run: bool) -> Result<Value, AdminError> {
    let Some(src) = &ctx.config else {
        return Err(AdminError::bad_request(
            "this tree was not started from a config file; there is nothing to reload",
        ));
    };
    let refused = |m: String| AdminError::new(ErrorCode::ReloadRefused, m);
    let kinds = &ctx.runtime.tree_context().kinds;
    let new = Config::load_with(&src.path, kinds).map_err(|e| {
        AdminError::new(
            ErrorCode::InvalidConfig,
            format!("nothing was changed: {e}"),
        )
    })?;
    let (daemon, telemetry) = {
        let cur = src.current.lock().unwrap_or_else(|p| p.into_inner());
        (cur.daemon.clone(), cur.telemetry.clone())
    };
    let fixed = start_only_changes(&daemon, &new.daemon, &telemetry, &new.telemetry);
    if !fixed.is_empty() {
        return Err(refused(format!(
            "{} changed: {} take effect only when the daemon starts; nothing was changed. Put the old value back and reload, or restart the daemon (systemctl restart warden) to apply them",
            src.path.display(),
            fixed.join(", ")
        )));
    }
    let log = (telemetry.log != new.telemetry.log).then(|| new.telemetry.log.clone());
    let map_err = |e: ReloadError| match e {
        ReloadError::Refused(m) => refused(format!("nothing was changed: {m}")),
        other => refused(other.to_string()),
    };
    if dry_run {
        let plan = ctx
            .runtime
            .plan_reload(&new.tree, &new.limits)
            .await
            .map_err(map_err)?;
        let mut v = serde_json::to_value(&plan).unwrap_or(Value::Null);
        v["dry_run"] = json!(true);
        v["log"] = json!(log);
        return Ok(v);
    }
    crate::service::reloading();
    let report = ctx.runtime.reload(new.tree.clone(), &new.limits).await;
    crate::service::notify("READY=1\nSTATUS=serving");
    let report = report.map_err(map_err)?;
    let mut log_applied = None;
    if let (Some(filter), Some(lf)) = (&log, &ctx.log) {
        log_applied = Some(lf.rebase(filter).unwrap_or(false));
    }
    *src.current.lock().unwrap_or_else(|p| p.into_inner()) = new;
    tracing::info!(steps = report.plan.tree.steps.len(), failed = report.failed.len(), took_ms = report.took_ms, "config reloaded");
    for (name, why) in &report.failed {
        tracing::error!(child = %name, reason = %why, "a child failed to start with its reloaded spec");
    }
    let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
    v["dry_run"] = json!(false);
    v["log"] = json!(log);
    v["log_applied"] = json!(log_applied);
    Ok(v)
}

/// The keys read only at start that differ.
fn start_only_changes(
    a: &DaemonConfig,
    b: &DaemonConfig,
    ta: &TelemetryConfig,
    tb: &TelemetryConfig,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! cmp {
        ($x:ident, $y:ident, $prefix:literal: $($f:ident),*) => {
            $( if $x.$f != $y.$f { out.push(concat!($prefix, stringify!($f))); } )*
        };
    }
    cmp!(a, b, "daemon.": data_dir, durability, shutdown_timeout, socket, idempotency_retention,
        commit_max_batch, commit_max_delay, admin_max_clients, admin_idle_timeout);
    cmp!(ta, tb, "telemetry.": otlp_endpoint, sample, metrics_listen);
    if ta.log_json != tb.log_json {
        out.push("telemetry.log_format");
    }
    out
}

pub(super) fn render(r: &Value) -> String {
    let mut out = String::new();
    let dry = r["dry_run"].as_bool().unwrap_or(false);
    let steps = r["steps"].as_array().cloned().unwrap_or_default();
    let limits = &r["limits"];
    let nothing = steps.is_empty()
        && ["added", "changed", "removed"]
            .iter()
            .all(|k| limits[k].as_array().is_none_or(Vec::is_empty))
        && r["log"].is_null();
    if nothing {
        return "nothing to change: the running tree matches the config".into();
    }
    out.push_str(if dry {
        "the reload would:\n"
    } else {
        "reloaded:\n"
    });
    for st in &steps {
        let line = match st["action"].as_str().unwrap_or("") {
            "remove" => format!("  remove   {} ({}, under {})", s(&st["name"]), s(&st["kind"]), s(&st["supervisor"])),
            "move" => format!("  move     {} from {} to {}", s(&st["name"]), s(&st["from"]), s(&st["to"])),
            "add" => format!("  add      {} ({}, under {})", s(&st["name"]), s(&st["kind"]), s(&st["supervisor"])),
            "restart" => format!("  restart  {} ({})", s(&st["name"]), list(&st["changed"])),
            "update" => format!("  update   {} ({}; no restart)", s(&st["name"]), list(&st["changed"])),
            "reorder" => format!("  reorder  the children of {}", s(&st["name"])),
            other => format!("  {other} {}", s(&st["name"])),
        };
        out.push_str(&line);
        out.push('\n');
    }
    for (k, verb) in [("added", "add"), ("changed", "change"), ("removed", "remove")] {
        for n in limits[k].as_array().into_iter().flatten() {
            out.push_str(&format!("  {verb:<8} limit {}\n", s(n)));
        }
    }
    if let Some(l) = r["log"].as_str() {
        out.push_str(&format!("  log      filter {l}\n"));
    }
    out.push_str(&format!(
        "  {} unchanged child(ren) not touched",
        r["unchanged"].as_u64().unwrap_or(0)
    ));
    if let Some(f) = r["failed"].as_array().filter(|f| !f.is_empty()) {
        for e in f {
            out.push_str(&format!("\n  FAILED   {}: {}", s(&e[0]), s(&e[1])));
        }
    }
    if let Some(ms) = r["took_ms"].as_f64() {
        out.push_str(&format!("\n  took {ms:.1} ms"));
    }
    out
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
