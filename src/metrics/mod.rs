//! Prometheus metrics on `telemetry.metrics_listen` (DESIGN sections 7 and 11):
//! `GET /metrics` in the Prometheus text format 0.0.4 (what `promtool check
//! metrics` reads), or OpenMetrics text when the scraper's `Accept` asks for it
//! ([`text_format`]), read from the running tree at scrape time (nothing on the
//! message path but the histograms' observations): per agent
//! `warden_messages_accepted_total`, `warden_messages_handled_total`,
//! `warden_handle_failures_total`, `warden_dead_letters_total`,
//! `warden_restarts_total`, `warden_mailbox_depth` (waiting, not in flight),
//! `warden_dead_letters_kept`, and the histograms `warden_handle_seconds`,
//! `warden_limiter_wait_seconds`; per limiter `warden_limiter_permits_total`,
//! `warden_limiter_waits_total`, `warden_limiter_pauses_total`,
//! `warden_limiter_tokens_total`; the store's `warden_store_commits_total`,
//! `warden_store_flushes_total`, `warden_store_quarantined_total` and the
//! histograms `warden_commit_seconds`, `warden_commit_batch_size`; with span
//! export on, `warden_trace_spans_exported_total` and
//! `warden_trace_spans_dropped_total{reason="queue_full|export_failed"}`; and
//! `warden_tokens_total` and `warden_cost_total` by agent and model (spend:
//! see [`crate::spend`]); and `warden_build_info{version}`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Runtime;

/// Reads the tree at each scrape.
#[derive(Debug)]
struct TreeCollector {
    runtime: RuntimeRef,
}

/// The runtime, for `Debug` (which `Collector` asks for).
struct RuntimeRef(Arc<Runtime>);

impl std::fmt::Debug for RuntimeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

type Labels = Vec<(String, String)>;

fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, M)],
) -> Result<(), std::fmt::Error> {
    let Some((_, first)) = rows.first() else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for TreeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rt = &self.runtime.0;
        let registry = &rt.tree_context().registry;
        let slots: Vec<_> = registry
            .names()
            .into_iter()
            .filter_map(|n| registry.get(&n).map(|s| (n, s)))
            .collect();
        let by_agent = |n: &str| vec![("agent".to_string(), n.to_string())];
        let counter =
            |f: &dyn Fn(&crate::actors::AgentSlot) -> u64| -> Vec<(Labels, ConstCounter)> {
                slots
                    .iter()
                    .map(|(n, s)| (by_agent(n), ConstCounter::new(f(s))))
                    .collect()
            };
        family(
            &mut enc,
            "warden_messages_accepted",
            "Messages accepted into the mailbox",
            &counter(&|s| s.stats.accepted.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "warden_messages_handled",
            "Messages handled and acked",
            &counter(&|s| s.stats.handled.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "warden_handle_failures",
            "Handling attempts that failed",
            &counter(&|s| s.stats.failed_attempts.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "warden_dead_letters",
            "Messages dead-lettered",
            &counter(&|s| s.stats.dead_lettered.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "warden_restarts",
            "Restarts of the agent's hosts",
            &counter(&|s| s.stats.restarts.load(Ordering::Relaxed)),
        )?;
        let gauge = |f: &dyn Fn(&crate::actors::AgentSlot) -> i64| -> Vec<(Labels, ConstGauge)> {
            slots
                .iter()
                .map(|(n, s)| (by_agent(n), ConstGauge::new(f(s))))
                .collect()
        };
        family(
            &mut enc,
            "warden_mailbox_depth",
            "Messages waiting (not in flight), as ctl stats's pending",
            &gauge(&|s| s.pending() as i64),
        )?;
        family(
            &mut enc,
            "warden_dead_letters_kept",
            "Dead letters kept now",
            &gauge(&|s| s.dead_count() as i64),
        )?;
        let hist =
            |f: &dyn Fn(&crate::actors::AgentSlot) -> Histogram| -> Vec<(Labels, Histogram)> {
                slots.iter().map(|(n, s)| (by_agent(n), f(s))).collect()
            };
        family(
            &mut enc,
            "warden_handle_seconds",
            "Time per handling attempt",
            &hist(&|s| s.stats.handle_seconds.0.clone()),
        )?;
        family(
            &mut enc,
            "warden_limiter_wait_seconds",
            "Time an attempt waited for its limiters' permits",
            &hist(&|s| s.stats.limiter_wait_seconds.0.clone()),
        )?;
        let limits = rt.tree_context().limits().snapshot();
        let lim = |f: &dyn Fn(&crate::policies::rate_limit::LimiterSnapshot) -> u64| -> Vec<(Labels, ConstCounter)> {
            limits
                .iter()
                .map(|(n, l)| (vec![("limiter".to_string(), n.clone())], ConstCounter::new(f(l))))
                .collect()
        };
        family(
            &mut enc,
            "warden_limiter_permits",
            "Permits granted",
            &lim(&|l| l.permits),
        )?;
        family(
            &mut enc,
            "warden_limiter_waits",
            "Permits that had to wait",
            &lim(&|l| l.waits),
        )?;
        family(
            &mut enc,
            "warden_limiter_pauses",
            "Pauses after a 429",
            &lim(&|l| l.pauses),
        )?;
        family(
            &mut enc,
            "warden_limiter_tokens",
            "Tokens taken",
            &lim(&|l| l.tokens),
        )?;
        if let Some(store) = rt.store() {
            let s = store.snapshot();
            family(
                &mut enc,
                "warden_store_commits",
                "Requests committed",
                &[(vec![], ConstCounter::new(s.commits))],
            )?;
            family(
                &mut enc,
                "warden_store_flushes",
                "Group commits flushed",
                &[(vec![], ConstCounter::new(s.flushes))],
            )?;
            let st = &store.stats;
            family(
                &mut enc,
                "warden_commit_seconds",
                "Time per group commit (apply and flush)",
                &[(vec![], st.commit_seconds.0.clone())],
            )?;
            family(
                &mut enc,
                "warden_commit_batch_size",
                "Requests per group commit",
                &[(vec![], st.commit_batch_size.0.clone())],
            )?;
            family(
                &mut enc,
                "warden_store_quarantined",
                "Records quarantined at recovery",
                &[(vec![], ConstCounter::new(s.quarantined))],
            )?;
        }
        let spend = rt.tree_context().registry.ledger.by_agent_and_model();
        if !spend.is_empty() {
            let labels = |a: &str, m: &str| {
                vec![
                    ("agent".to_string(), a.to_string()),
                    ("model".to_string(), m.to_string()),
                ]
            };
            family(
                &mut enc,
                "warden_tokens",
                "Tokens spent (reported by llm agents, ports and Rust agents)",
                &spend
                    .iter()
                    .map(|((a, m), t)| (labels(a, m), ConstCounter::new(t.tokens)))
                    .collect::<Vec<_>>(),
            )?;
            family(
                &mut enc,
                "warden_cost",
                "Cost spent, by the [prices] table (its currency)",
                &spend
                    .iter()
                    .map(|((a, m), t)| (labels(a, m), ConstCounter::new(t.cost)))
                    .collect::<Vec<_>>(),
            )?;
        }
        if let Some(t) = crate::telemetry::export::stats() {
            use std::sync::atomic::Ordering::Relaxed;
            family(
                &mut enc,
                "warden_trace_spans_exported",
                "Spans the OTLP collector took",
                &[(vec![], ConstCounter::new(t.exported.load(Relaxed)))],
            )?;
            family(
                &mut enc,
                "warden_trace_spans_dropped",
                "Spans dropped: the export queue was full, or the collector did not take them",
                &[
                    (
                        vec![("reason".to_string(), "queue_full".to_string())],
                        ConstCounter::new(t.dropped_queue_full.load(Relaxed)),
                    ),
                    (
                        vec![("reason".to_string(), "export_failed".to_string())],
                        ConstCounter::new(t.dropped_export_failed.load(Relaxed)),
                    ),
                ],
            )?;
        }
        family(
            &mut enc,
            "warden_build_info",
            "The running build",
            &[(
                vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())],
                ConstGauge::new(1i64),
            )],
        )?;
        Ok(())
    }
}

/// Serves `GET /metrics` on `listen`, and beside it `dashboard` (its routes and
/// token) if given, until `stop` turns true.
pub async fn serve(
    listen: SocketAddr,
    runtime: Arc<Runtime>,
    dashboard: Option<(axum::Router, String)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, "metrics at /metrics");
    crate::telemetry::histograms::record();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(TreeCollector {
        runtime: RuntimeRef(runtime),
    }));
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                if prometheus_client::encoding::text::encode(&mut body, &registry).is_err() {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let accept = headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let (kind, body) = if text_format::wants_openmetrics(accept) {
                    (
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        body,
                    )
                } else {
                    (
                        "text/plain; version=0.0.4; charset=utf-8",
                        text_format::from_openmetrics(&body),
                    )
                };
                ([(axum::http::header::CONTENT_TYPE, kind)], body).into_response()
            }
        }),
    );
    let app = match dashboard {
        Some((routes, token)) => {
            tracing::info!("dashboard at http://{bound}/#token={token}");
            app.merge(routes)
        }
        None => app,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

mod text_format;

use axum::response::IntoResponse;
