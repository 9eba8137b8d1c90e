//! The agent host: one ractor actor per agent replica, running the behaviour.
//!
//! A host pulls messages from its agent's slot one at a time, so messages are
//! handled sequentially and in accept order. Each delivery is checked against the
//! correlation's deadline and hop budget, run under the agent's `timeout`, and then
//! committed: ack, new state, emitted messages, reply, in that order. A retryable
//! error or a timeout puts the message back at the head of the queue after backoff;
//! a fatal error or a panic fails the actor, and the supervisor's restart redelivers
//! the message to the next incarnation with its attempt counted.
//!
//! A host drains its queue in short bursts (at most [`BURST`] messages or
//! [`BURST_TIME`]) and then yields with a message to itself, so a stop request
//! (which ractor delivers between actor messages) waits for at most one handler.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use super::faults;
use super::kinds::BuildFn;
use super::slot::{AgentSlot, DeadReason, Next};
pub(crate) use super::wake::HostMsg;
use super::Registry;
use crate::actors::agent::{Agent, AgentError, Context, ErrorKind};
use crate::envelope::{now_ms, Envelope};
use crate::policies::rate_limit::{Limiter, Refused};

mod commit;
use commit::commit;

/// How long a new host waits for a still-running predecessor to exit.
pub(crate) const PREDECESSOR_EXIT: Duration = Duration::from_secs(10);

/// Messages handled per burst before the host yields to its control messages.
pub(crate) const BURST: usize = 64;
/// Longest burst before the host yields.
pub(crate) const BURST_TIME: Duration = Duration::from_millis(2);

/// The actor type of an agent replica.
pub(crate) struct AgentHost;

/// What a host is started with.
pub(crate) struct HostArgs {
    /// The agent's slot.
    pub slot: Arc<AgentSlot>,
    /// This replica's index.
    pub replica: usize,
    /// For emits and replies.
    pub registry: Arc<Registry>,
    /// Builds the behaviour.
    pub build: Arc<BuildFn>,
    /// The limiters this agent takes permits from, in its declared order.
    pub limiters: Vec<Arc<Limiter>>,
}

/// A running host.
pub(crate) struct HostState {
    slot: Arc<AgentSlot>,
    replica: usize,
    registry: Arc<Registry>,
    behaviour: Box<dyn Agent>,
    limiters: Arc<[Arc<Limiter>]>,
    /// Its `to`: the agents it may emit to (`None`: any).
    allowed: Option<Arc<[String]>>,
    /// The message whose attempt marker rode in this host's last ack batch:
    /// (sequence, attempt). Delivering it needs no marker write of its own.
    premarked: Option<(u64, u32)>,
}

/// How one delivery ended.
enum Outcome {
    /// Committed; `exit` asks the host to end with that reason.
    Done { exit: Option<String> },
    /// Retried or dead-lettered; the host goes on.
    Failed,
    /// The store cannot write: the message is back at the head, not charged; the
    /// host looks again after [`STORE_RETRY`] (the daemon stops on a store failure).
    StoreDown,
}

/// How long a host waits after the store failed a write before it tries again.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);

impl Actor for AgentHost {
    type Msg = HostMsg;
    type State = HostState;
    type Arguments = HostArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HostArgs,
    ) -> Result<HostState, ActorProcessingErr> {
        // A previous incarnation of this replica may have died without its supervisor
        // seeing it, or may even still be running: a killed supervisor's children die
        // asynchronously. Two live hosts on one replica would break its order, so the
        // old one is killed and waited for; then this one takes the replica over, and
        // whatever was in flight goes back to the head of the queue.
        if let Some(old) = args.slot.owner(args.replica) {
            if old.get_id() != myself.get_id() && old.get_status() != ractor::ActorStatus::Stopped {
                old.kill();
                if old.wait(Some(PREDECESSOR_EXIT)).await.is_err() {
                    return Err(format!(
                        "the previous incarnation of replica {} did not exit within {PREDECESSOR_EXIT:?}",
                        args.replica
                    )
                    .into());
                }
            }
        }
        args.slot.claim(args.replica, myself.get_cell());
        let mut behaviour = (args.build)(&args.slot.spec())?;
        let handle = crate::actors::agent::HostHandle {
            cell: myself.get_cell(),
            agent: args.slot.name.clone(),
            replica: args.replica,
            slot: Arc::downgrade(&args.slot),
        };
        behaviour.on_start(handle).await?;
        let allowed = allowed_routes(&args.slot.spec());
        Ok(HostState {
            slot: args.slot,
            replica: args.replica,
            registry: args.registry,
            behaviour,
            limiters: args.limiters.into(),
            allowed,
            premarked: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(HostMsg::Wake)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        st: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        st.behaviour.on_stop().await;
        if let Some((seq, attempt)) = st.premarked.take() {
            st.slot.unmark_attempt(seq, attempt);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: HostMsg,
        st: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        let started = Instant::now();
        for _ in 0..BURST {
            let env = match st.slot.next(st.replica, &myself) {
                Next::Idle => return Ok(()),
                Next::Stale => {
                    myself.stop(Some(crate::actors::exit::EXIT_SHUTDOWN.to_string()));
                    return Ok(());
                }
                Next::WaitFor(d) => {
                    myself.send_after(d, || HostMsg::Wake);
                    return Ok(());
                }
                Next::Deliver(env) => env,
            };
            match deliver(st, env, myself.get_id()).await? {
                Outcome::StoreDown => {
                    myself.send_after(STORE_RETRY, || HostMsg::Wake);
                    return Ok(());
                }
                Outcome::Done { exit: Some(reason) } => {
                    myself.stop(Some(reason));
                    return Ok(());
                }
                Outcome::Done { exit: None } | Outcome::Failed => {}
            }
            if started.elapsed() >= BURST_TIME {
                break;
            }
        }
        myself.cast(HostMsg::Wake)?;
        Ok(())
    }
}

/// The agents an agent may emit to: its `to` (a common key of every kind), and
/// the targets named elsewhere in its own config (`on_dead_letter`, `default`,
/// `exhausted`, `on_fail`, `on_reject`, a router's `routes`); `None` (any) when it
/// has no `to`.
fn allowed_routes(spec: &crate::actors::AgentSpec) -> Option<Arc<[String]>> {
    let to = spec.options.get("to")?.as_array()?;
    let mut v: Vec<String> = to
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    for key in [
        "on_dead_letter",
        "default",
        "exhausted",
        "on_fail",
        "on_reject",
    ] {
        if let Some(d) = spec.options.get(key).and_then(|d| d.as_str()) {
            v.push(d.to_string());
        }
    }
    if spec.kind == "approve" {
        v.push(spec.name.clone()); // a rejection without on_reject goes through itself
    }
    if let Some(routes) = spec.options.get("routes").and_then(|r| r.as_object()) {
        v.extend(
            routes
                .values()
                .filter_map(|t| t.as_str().map(str::to_string)),
        );
    }
    Some(v.into())
}

/// Handles one message and commits or records the failure. `Err` fails the actor.
async fn deliver(
    st: &mut HostState,
    env: Arc<Envelope>,
    me: ractor::ActorId,
) -> Result<Outcome, ActorProcessingErr> {
    let slot = st.slot.clone();
    let spec = slot.spec();
    if env.hops > spec.hop_budget {
        let why = format!("{} hops, budget {}", env.hops, spec.hop_budget);
        slot.dead_letter(st.replica, me, DeadReason::HopBudgetExhausted, &why, false);
        return Ok(Outcome::Failed);
    }
    if env.deadline_ms.is_some_and(|d| d <= now_ms()) {
        slot.dead_letter(
            st.replica,
            me,
            DeadReason::DeadlineExceeded,
            "deadline passed before handling",
            false,
        );
        return Ok(Outcome::Failed);
    }
    // G8: a permit from every limiter first; waiting is not an attempt.
    let deadline = env
        .deadline_ms
        .map(|d| crate::clock::after(Duration::from_millis(d.saturating_sub(now_ms()))));
    let timed = crate::telemetry::histograms::recording();
    let waiting = (timed && !st.limiters.is_empty()).then(crate::clock::Instant::now);
    let wait_began = (!st.limiters.is_empty() && crate::telemetry::trace::enabled())
        .then(std::time::SystemTime::now);
    let mut waited_for = Vec::new();
    for limiter in st.limiters.iter() {
        match limiter.acquire(deadline).await {
            Ok(true) if wait_began.is_some() => waited_for.push(limiter.name().to_string()),
            Ok(_) => {}
            Err(Refused::Deadline { limiter, wait }) => {
                let why =
                    format!("waiting {wait:?} for limiter '{limiter}' would pass the deadline");
                slot.dead_letter(st.replica, me, DeadReason::DeadlineExceeded, &why, false);
                return Ok(Outcome::Failed);
            }
            Err(_) => {}
        }
    }
    if let Some(t) = waiting {
        slot.stats.limiter_wait_seconds.observe(t.elapsed());
    }
    if let (Some(began), false) = (wait_began, waited_for.is_empty()) {
        let mut attributes = crate::telemetry::trace::message_attributes(&env);
        attributes.push(opentelemetry::KeyValue::new(
            "limiter",
            waited_for.join(","),
        ));
        crate::telemetry::trace::after_the_fact(
            env.trace.as_deref(),
            "warden.limiter.wait",
            began,
            attributes,
        );
    }
    // a task that spent its budget goes no further (checked after the permits:
    // its other messages may have spent it meanwhile)
    let budget = match st.registry.ledger.check(&env.correlation) {
        Ok(left) => left,
        Err(why) => {
            slot.dead_letter(st.replica, me, DeadReason::BudgetExhausted, &why, false);
            return Ok(Outcome::Failed);
        }
    };
    if let Some(store) = slot.store() {
        // G4: the attempt is durable before it starts, so a message that kills the
        // whole daemon is still counted. Under a backlog the marker was already
        // committed with the previous message's ack.
        if st.premarked.take() != Some((env.id.seq, env.attempt)) {
            if let Err(e) = store.commit(slot.attempt_batch(&env)).await {
                tracing::error!(agent = %slot.name, message_id = %env.id, error = %e,
                    "cannot record the attempt; the message waits, not charged");
                slot.put_back(st.replica, me);
                return Ok(Outcome::StoreDown);
            }
        }
    }
    // for `warden=debug` logs; the exported span is made apart (the hot path)
    // (with JSON logs at info, so that every line logged while handling names the
    // message and its trace; a span per message costs, so only then)
    let trace_id = crate::telemetry::trace::trace_id(env.trace.as_deref());
    let span = if crate::telemetry::json_logs() {
        tracing::info_span!("warden.handle", agent = %slot.name, message_id = %env.id,
            correlation = %env.correlation, attempt = env.attempt, hops = env.hops,
            trace_id = tracing::field::Empty)
    } else {
        tracing::debug_span!("warden.handle", agent = %slot.name, message_id = %env.id,
            correlation = %env.correlation, attempt = env.attempt, hops = env.hops,
            trace_id = tracing::field::Empty)
    };
    if !trace_id.is_empty() {
        span.record("trace_id", trace_id);
    }
    let exported = crate::telemetry::trace::Handling::start(&env);
    // The slot's state, not a copy kept by the host: a predecessor's hand-off may have
    // committed a newer one after this host started.
    let mut ctx = Context::new(
        env.clone(),
        slot.state(),
        st.registry.clone(),
        st.limiters.clone(),
    );
    ctx.trace_out = exported.as_ref().and_then(|h| h.traceparent());
    ctx.budget = budget;
    ctx.allowed = st.allowed.clone();
    ctx.events = slot.events();
    ctx.entries = Some(slot.shared_entries());
    let fault = if spec.accept_faults {
        faults::directive(&env.payload, env.attempt)
    } else {
        None
    };
    let behaviour = &mut st.behaviour;
    let limit = spec.timeout.saturating_add(behaviour.timeout_grace());
    let run = async {
        if let Some(f) = fault {
            faults::apply(f, &mut ctx).await?;
        }
        behaviour.handle(&mut ctx).await
    };
    let started = timed.then(crate::clock::Instant::now);
    let result = match tokio::time::timeout(limit, run).instrument(span).await {
        Ok(r) => r,
        Err(_) => Err(AgentError::retryable(format!(
            "timeout: no result within {:?}",
            spec.timeout
        ))),
    };
    if let Some(t) = started {
        slot.stats.handle_seconds.observe(t.elapsed());
    }
    // the kind of failure only: an error's text may quote the payload
    let failed = result.as_ref().err().map(|e| format!("{:?}", e.kind));
    if result.is_err() {
        commit::charge_failed(st, &mut ctx);
    }
    let outcome = match result {
        Ok(()) => commit(st, ctx, me, exported.as_ref()).await,
        Err(e) if e.kind == ErrorKind::Fatal => Err(e.message.into()),
        Err(AgentError {
            kind: ErrorKind::Reject(reason),
            message,
            ..
        }) => {
            tracing::info!(agent = %slot.name, message_id = %env.id, reason = reason.as_str(), "{message}");
            slot.dead_letter(st.replica, me, reason, &message, true);
            Ok(Outcome::Failed)
        }
        Err(e) if e.kind == ErrorKind::RouteNotAllowed => {
            tracing::warn!(agent = %slot.name, message_id = %env.id, "{}", e.message);
            slot.dead_letter(
                st.replica,
                me,
                DeadReason::RouteNotAllowed,
                &e.message,
                true,
            );
            Ok(Outcome::Failed)
        }
        Err(e) if e.kind == ErrorKind::DeadlineExceeded => {
            slot.dead_letter(
                st.replica,
                me,
                DeadReason::DeadlineExceeded,
                &e.message,
                false,
            );
            Ok(Outcome::Failed)
        }
        Err(e) if e.kind == ErrorKind::RateLimited => {
            // without a Retry-After: the agent's backoff for this attempt
            let pause = e
                .retry_after
                .unwrap_or_else(|| spec.backoff.delay(env.attempt));
            for limiter in st.limiters.iter() {
                limiter.pause(pause);
            }
            slot.retry_later(st.replica, me, pause);
            Ok(Outcome::Failed)
        }
        Err(e) => {
            tracing::debug!(agent = %slot.name, message_id = %env.id, error = %e, "attempt failed");
            slot.fail(st.replica, me, &e.message, e.kind == ErrorKind::Retryable);
            Ok(Outcome::Failed)
        }
    };
    // the attempt's span covers its hand-off's commit: what it emitted is durable
    // when it ends
    if let Some(h) = exported {
        h.end(failed.as_deref());
    }
    outcome
}
