//! Committing a handled message: the ack, the new state, the emits and an
//! agent-addressed reply in one store batch (G3); then publishing the emits and
//! answering a waiting call.

use ractor::ActorProcessingErr;

use crate::actors::agent::Context;
use crate::actors::slot::Parts;
use crate::envelope::ReplyTo;
use crate::store::{Batch, StoreError};

use super::{HostState, Outcome};

/// Commits a handled message: the ack, the new state and every emitted message (and
/// an agent-addressed reply) in one store batch when any of them is durable; then
/// publishes the emits and completes a waiting call. A failed store write puts the
/// message back, not charged ([`Outcome::StoreDown`]).
pub(super) async fn commit(
    st: &mut HostState,
    ctx: Context,
    me: ractor::ActorId,
    span: Option<&crate::telemetry::trace::Handling>,
) -> Result<Outcome, ActorProcessingErr> {
    let Context {
        message,
        state,
        state_changed,
        entry_changes,
        trace_out,
        usage,
        emits,
        reply,
        exit,
        ..
    } = ctx;
    let new_state = state_changed.then_some(state);
    let mut batch = Batch::default();
    let mut store = st.slot.store().cloned();
    st.slot
        .write_ack(&message, new_state.as_ref(), &entry_changes, &mut batch);
    if st.slot.is_durable() && !st.slot.gate_active() {
        if let Some((seq, attempt)) = st.slot.ready_head() {
            st.slot.write_attempt(seq, attempt, &mut batch);
            st.premarked = Some((seq, attempt));
        }
    }
    let mut outgoing = Vec::with_capacity(emits.len() + 1);
    // what a handled message emits inherits its correlation, deadline, trace and
    // fan-out part (a `fanout` sets each part's own)
    let caused = |payload, part: Option<crate::envelope::Part>| Parts {
        payload,
        correlation: Some(message.correlation.clone()),
        causation: Some(message.id.clone()),
        hops: message.hops + 1,
        deadline_ms: message.deadline_ms,
        key: None,
        reply_to: None,
        trace: trace_out.clone().or_else(|| message.trace.clone()),
        part: part.or_else(|| message.part.clone()),
        on_accept: None,
    };
    let mut call_reply = None;
    for out in emits {
        store = store.or_else(|| out.to.store().cloned());
        let mut parts = caused(out.payload, out.part);
        if let Some(l) = out.lineage {
            parts.correlation = Some(l.correlation);
            parts.trace = l.trace;
            parts.part = l.part;
        }
        let env = out.to.prepare_emit(parts, &mut batch);
        outgoing.push((out.to, env));
    }
    match (&message.reply_to, reply) {
        (Some(ReplyTo::Call(id)), Some(r)) => call_reply = Some((*id, r)),
        (Some(ReplyTo::Agent(name)), Some(r)) => match st.registry.get(name) {
            Some(to) => {
                store = store.or_else(|| to.store().cloned());
                let env = to.prepare_emit(caused(r, None), &mut batch);
                outgoing.push((to, env));
            }
            None => {
                tracing::warn!(agent = %st.slot.name, to = %name, "reply to an unknown agent dropped")
            }
        },
        _ => {}
    }
    let emitted = outgoing.len();
    let slot = st.slot.clone();
    let replica = st.replica;
    if !slot.begin_commit(replica, me) {
        // Superseded while handling: the successor redelivers this message.
        for (to, _) in &outgoing {
            to.abort_emit();
        }
        return Ok(Outcome::Done {
            exit: Some(crate::actors::exit::EXIT_SHUTDOWN.into()),
        });
    }
    // What follows the commit runs where its outcome is known (the committer thread),
    // not in this task: a kill of this host while it waits must not leave a durable
    // hand-off unacked in memory, nor its emitted messages unpublished.
    let registry = st.registry.clone();
    let finish = move |r: &Result<(), StoreError>| match r {
        Ok(()) => {
            // Emits first: an observer never sees the hand-off in neither place.
            for (to, env) in outgoing {
                to.finish_emit(env);
            }
            slot.commit_done(replica, new_state, entry_changes);
            if let Some((id, r)) = call_reply {
                registry.complete_call(id, r);
            }
        }
        Err(_) => {
            slot.commit_failed(replica);
            for (to, _) in &outgoing {
                to.abort_emit();
            }
        }
    };
    // spend goes with the hand-off; the ledger's guard keeps records in order
    // (held until the batch is queued, never across an await)
    let began = span.map(|_| std::time::SystemTime::now());
    let queued = {
        let charged =
            st.registry
                .ledger
                .charge(&st.slot.name, &message.correlation, &usage, &mut batch);
        if let Some(c) = &charged {
            spend_day(st, c.spent, &mut batch);
        }
        match store.filter(|_| !batch.is_empty()) {
            Some(store) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                store.submit(batch, move |r| {
                    finish(&r);
                    let _ = tx.send(r);
                });
                Some(rx)
            }
            None => {
                finish(&Ok(()));
                None
            }
        }
    };
    if let Some(rx) = queued {
        let r = rx.await;
        if let (Some(span), Some(began)) = (span, began) {
            let mut attributes = crate::telemetry::trace::message_attributes(&message);
            attributes.push(opentelemetry::KeyValue::new("emits", emitted as i64));
            attributes.push(opentelemetry::KeyValue::new("ok", matches!(r, Ok(Ok(())))));
            span.child("warden.commit", began, attributes);
        }
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                st.premarked = None;
                tracing::error!(agent = %st.slot.name, error = %e,
                    "cannot commit the hand-off; the message waits, not charged");
                return Ok(Outcome::StoreDown);
            }
            Err(_) => return Err("commit failed: the store closed".into()),
        }
    }
    Ok(Outcome::Done { exit })
}

/// Commits the spend of a failed attempt on its own (its calls were made and
/// paid for, though nothing else of the attempt is kept).
pub(super) fn charge_failed(st: &HostState, ctx: &mut Context) {
    let usage = std::mem::take(&mut ctx.usage);
    let mut batch = Batch::default();
    let charged =
        st.registry
            .ledger
            .charge(&st.slot.name, &ctx.message.correlation, &usage, &mut batch);
    if let Some(c) = &charged {
        spend_day(st, c.spent, &mut batch);
    }
    if let (Some(_), Some(store)) = (&charged, st.slot.store()) {
        let agent = st.slot.name.clone();
        store.submit(batch, move |r| {
            if let Err(e) = r {
                tracing::error!(agent = %agent, error = %e, "cannot record a failed attempt's spend");
            }
        });
    }
    drop(charged);
}

/// Counts spend against the daily budgets of the agent's limiters, their
/// day's records going with the spend.
fn spend_day(st: &HostState, spent: crate::store::spend::Totals, batch: &mut Batch) {
    for l in st.limiters.iter() {
        if let Some(day) = l.spend_day(spent.tokens, spent.cost) {
            batch.insert(
                crate::store::spend::limiter_key(l.name()),
                crate::store::spend::encode(&day),
            );
        }
    }
}
