//! What a bench pays for telemetry: `WARDEN_BENCH_TELEMETRY=metrics` records the
//! histograms (as a daemon serving `/metrics` does); `=traces` exports every
//! span (sample 1.0) over OTLP/HTTP to an in-process collector that takes and
//! drops everything; unset or `off`: neither. The label goes into each result's
//! variant, so the runs compare as ratios.

/// The in-process collector's base URL, while `=traces` (for a bench that
/// starts a daemon of its own, to point it there).
pub(super) static COLLECTOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets telemetry up as `WARDEN_BENCH_TELEMETRY` says (on the current tokio
/// runtime); returns its label.
pub(super) async fn from_env() -> Option<&'static str> {
    match std::env::var("WARDEN_BENCH_TELEMETRY").ok().as_deref() {
        Some("metrics") => {
            crate::telemetry::histograms::record();
            Some("metrics")
        }
        Some("traces") => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the bench collector");
            let addr = listener.local_addr().expect("addr");
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(|_body: axum::body::Bytes| async { "" }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            let _ = COLLECTOR.set(format!("http://{addr}"));
            crate::telemetry::init(&crate::telemetry::Setup {
                log: "warn".into(),
                json: false,
                otlp: Some((format!("http://{addr}"), 1.0)),
            });
            Some("traces")
        }
        _ => None,
    }
}
