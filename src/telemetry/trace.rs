//! Trace context of messages (DESIGN sections 7 and 11): a W3C `traceparent` in
//! each envelope, so that one correlation is one trace across agents, retries,
//! restarts and daemon restarts.
//!
//! When export is on (`telemetry.otlp_endpoint`), accepting a message from
//! outside opens a `warden.enqueue` span: a new trace's root (sampled per
//! `telemetry.sample`, a decision the whole trace keeps), or a child of the
//! caller's `traceparent` (`ctl send --traceparent`). The envelope keeps that
//! span's context, so every attempt of the message, in this life of the daemon or
//! the next, handles it in a `warden.handle` span under it; what an attempt emits
//! keeps the attempt's context (its enqueue is part of the attempt's commit: one
//! span per hop); a dead letter's `warden.dead_letter` span joins the same trace,
//! as do a `warden.limiter.wait` that held an attempt back (under the message's
//! parent), the attempt's durable `warden.commit` (under the attempt), and the
//! `warden.restart` of an agent that crashed with the message in flight. Calls
//! out (`exec`, `http`, `llm`) carry the attempt's span as their `traceparent`.
//! When export is off, nothing here allocates or records (an envelope keeps the
//! `traceparent` it came with, and passes it on).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::KeyValue;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Makes the enqueue spans directly (a span per accepted message: the hot path).
static TRACER: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();

/// Whether spans are exported (set once at start).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(super) fn enable(tracer: opentelemetry_sdk::trace::SdkTracer) {
    let _ = TRACER.set(tracer);
    ENABLED.store(true, Ordering::Relaxed);
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when it
/// is not one (or names the invalid all-zero trace or span).
pub fn parse(tp: &str) -> Option<SpanContext> {
    let mut it = tp.trim().split('-');
    let (version, trace, span, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && it.next().is_some() {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// The `traceparent` of a span context.
pub fn format(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Makes `span` a child of `traceparent`, when export is on and it is one.
pub fn join(span: &tracing::Span, traceparent: Option<&str>) {
    if !enabled() {
        return;
    }
    if let Some(sc) = traceparent.and_then(parse) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
}

/// The trace context a message accepted now keeps: with export on, that of its
/// `warden.enqueue` span (a child of `parent`, or a new trace); else `parent`.
///
/// The span is made with the OpenTelemetry tracer itself, not through
/// `tracing`: it has no duration worth a subscriber's bookkeeping, and one is
/// made per accepted message.
pub fn enqueue(
    parent: Option<String>,
    agent: &std::sync::Arc<str>,
    message_id: String,
    correlation: &std::sync::Arc<str>,
) -> Option<String> {
    let Some(tracer) = TRACER.get().filter(|_| enabled()) else {
        return parent;
    };
    let cx = match parent.as_deref().and_then(parse) {
        Some(sc) => opentelemetry::Context::new().with_remote_span_context(sc),
        None => opentelemetry::Context::new(),
    };
    let mut span = tracer
        .span_builder("warden.enqueue")
        .with_attributes([
            KeyValue::new("agent", opentelemetry::StringValue::from(agent.clone())),
            KeyValue::new("message_id", message_id),
            KeyValue::new(
                "correlation",
                opentelemetry::StringValue::from(correlation.clone()),
            ),
        ])
        .start_with_context(tracer, &cx);
    let sc = span.span_context().clone();
    span.end();
    if sc.is_valid() {
        Some(format(&sc))
    } else {
        parent
    }
}

/// Records `name` (`warden.limiter.wait`), from `start` to now, as a child of
/// `traceparent` (the message's enqueue span), when export is on and that trace
/// is sampled.
pub fn after_the_fact(
    traceparent: Option<&str>,
    name: &'static str,
    start: std::time::SystemTime,
    attributes: Vec<KeyValue>,
) {
    if !enabled() {
        return;
    }
    if let Some(sc) = traceparent.and_then(parse) {
        finished(sc, name, start, attributes);
    }
}

/// A span under `parent` that started at `start` and ends now; nothing when the
/// parent is not sampled (the whole trace keeps its sampling decision).
fn finished(
    parent: SpanContext,
    name: &'static str,
    start: std::time::SystemTime,
    attributes: Vec<KeyValue>,
) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    if !parent.is_valid() || !parent.is_sampled() {
        return;
    }
    let cx = opentelemetry::Context::new().with_remote_span_context(parent);
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(tracer, &cx);
    span.end();
}

/// The trace id of a `traceparent` (its second field), for log lines.
pub fn trace_id(traceparent: Option<&str>) -> &str {
    traceparent.and_then(|tp| tp.get(3..35)).unwrap_or_default()
}

/// The attributes every span about message `env` has.
/// (The agent and correlation are shared, not copied: spans are made on the
/// message path.)
pub fn message_attributes(env: &crate::envelope::Envelope) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(6);
    a.push(KeyValue::new(
        "agent",
        opentelemetry::StringValue::from(env.id.agent.clone()),
    ));
    a.push(KeyValue::new("message_id", env.id.to_string()));
    a.push(KeyValue::new(
        "correlation",
        opentelemetry::StringValue::from(env.correlation.clone()),
    ));
    a
}

/// An exported `warden.handle` span: one handling attempt, under the message's
/// enqueue span. Made with the tracer directly (one per attempt: the hot path);
/// ended by [`Handling::end`].
pub struct Handling(opentelemetry_sdk::trace::Span);

impl Handling {
    /// Starts the span of an attempt at message `env`, when export is on.
    pub fn start(env: &crate::envelope::Envelope) -> Option<Handling> {
        let tracer = TRACER.get().filter(|_| enabled())?;
        let cx = match env.trace.as_deref().and_then(parse) {
            Some(sc) => opentelemetry::Context::new().with_remote_span_context(sc),
            None => opentelemetry::Context::new(),
        };
        let span = tracer
            .span_builder("warden.handle")
            .with_attributes({
                let mut a = message_attributes(env);
                a.push(KeyValue::new("attempt", i64::from(env.attempt)));
                a.push(KeyValue::new("hops", i64::from(env.hops)));
                a
            })
            .start_with_context(tracer, &cx);
        Some(Handling(span))
    }

    /// The trace context what this attempt emits continues.
    pub fn traceparent(&self) -> Option<String> {
        let sc = self.0.span_context();
        sc.is_valid().then(|| format(sc))
    }

    /// Records `name` (`warden.commit`), from `start` to now, as a child of this
    /// attempt's span, if it is sampled.
    pub fn child(
        &self,
        name: &'static str,
        start: std::time::SystemTime,
        attributes: Vec<KeyValue>,
    ) {
        finished(self.0.span_context().clone(), name, start, attributes);
    }

    /// Ends the span, marked an error with `error` (the kind of failure, never
    /// its text, which may quote the payload) if the attempt failed.
    pub fn end(mut self, error: Option<&str>) {
        if let Some(e) = error {
            self.0.set_status(opentelemetry::trace::Status::error(
                e.chars().take(256).collect::<String>(),
            ));
        }
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_as_w3c_writes_them() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse(tp).expect("valid");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(format(&sc), tp);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse(unsampled).unwrap().is_sampled());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
