//! The dashboard on `telemetry.metrics_listen` (DESIGN section 11), beside
//! `/metrics`: `GET /` (one page, its script and style embedded: no build step,
//! no CDN), `GET /events` (server-sent events: the `watch` stream, with a
//! `lagged` event when the client fell behind, so the page reloads its view),
//! and `GET /api/tree`, `/api/stats`, `/api/dlq` (the same JSON as
//! `warden ctl --json`).
//!
//! Guarantees: read-only (changes go through the socket, G11); `/` and
//! `/metrics` need no token, the API and `/events` need the start's token
//! ([`auth`]), and anything else gets 401.

pub mod auth;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Map, Value};

use crate::admin::ops::AdminCtx;
use crate::admin::ops::{apply, Op, Outcome};

const PAGE: &str = include_str!("page.html");

struct Served {
    ctx: Arc<AdminCtx>,
    token: String,
}

/// The dashboard's routes, for the metrics server to serve.
pub fn router(ctx: Arc<AdminCtx>, token: String) -> axum::Router {
    let st = Arc::new(Served { ctx, token });
    axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/tree", get(|s, r| api(s, r, "tree")))
        .route("/api/stats", get(|s, r| api(s, r, "stats")))
        .route("/api/dlq", get(|s, r| api(s, r, "dlq_list")))
        .route("/events", get(events))
        .with_state(st)
}

fn allowed(st: &Served, req: &Request) -> bool {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth::shown(authorization, req.uri().query())
        .is_some_and(|t| auth::same(t.as_bytes(), st.token.as_bytes()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "the dashboard's API needs the token in <data_dir>/dashboard.token, as Authorization: Bearer TOKEN or ?token=TOKEN\n",
    )
        .into_response()
}

async fn api(State(st): State<Arc<Served>>, req: Request, op: &'static str) -> Response {
    if !allowed(&st, &req) {
        return unauthorized();
    }
    let Some(Ok(parsed)) = Op::parse(op, Map::new()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match apply(parsed, &st.ctx).await {
        Outcome::Reply(Ok(v)) => axum::Json(v).into_response(),
        Outcome::Reply(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": {"code": e.code, "message": e.message}})),
        )
            .into_response(),
        Outcome::Watch => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn events(State(st): State<Arc<Served>>, req: Request) -> Response {
    if !allowed(&st, &req) {
        return unauthorized();
    }
    let rx = st.ctx.runtime.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let value = match rx.recv().await {
            Ok(e) => serde_json::to_value(e).unwrap_or(Value::Null),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                json!({"event": "lagged", "missed": n})
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        let event = Event::default().data(value.to_string());
        Some((Ok::<_, Infallible>(event), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
