//! Delayed sends: kept in the store until due ([`crate::store::delayed`]), then
//! enqueued by one scheduler task per runtime.
//!
//! Guarantees: `send_delayed` answers once the record is durable. When it is due,
//! the message is sent like any other (capacity, idempotency with its key) and
//! only after that accept is durable is the record removed; a crash in between
//! sends it again at the next start and the key keeps it to once (within the
//! idempotency retention). A send refused for a full mailbox is tried again a
//! second later; one for an agent the tree no longer has waits in the store,
//! logged, until the agent is back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::Runtime;
use crate::actors::{Registry, SendError, SendOptions, Undelivered};
use crate::envelope::now_ms;
use crate::store::delayed::{self, DelayedRecord};
use crate::store::{Batch, Store};

/// The scheduler's handle.
pub(crate) struct Delayer {
    tx: mpsc::UnboundedSender<DelayedRecord>,
    next_id: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Delayer {
    /// Starts the scheduler with the records an earlier run left.
    pub(crate) fn start(
        registry: Arc<Registry>,
        store: Arc<Store>,
        left: Vec<DelayedRecord>,
    ) -> Delayer {
        let (tx, rx) = mpsc::unbounded_channel();
        for r in left {
            let _ = tx.send(r);
        }
        Delayer {
            tx,
            // unique across restarts (its key, delay:<id>, must never be reused)
            next_id: AtomicU64::new(now_ms() << 16),
            task: tokio::spawn(run(registry, store, rx)),
        }
    }
}

async fn run(
    registry: Arc<Registry>,
    store: Arc<Store>,
    mut rx: mpsc::UnboundedReceiver<DelayedRecord>,
) {
    let mut due: BTreeMap<(u64, u64), DelayedRecord> = BTreeMap::new();
    let mut warned = std::collections::HashSet::new();
    loop {
        let wait = due
            .keys()
            .next()
            .map(|(at, _)| Duration::from_millis(at.saturating_sub(now_ms())));
        tokio::select! {
            r = rx.recv() => match r {
                Some(rec) => { due.insert((rec.due_ms, rec.id), rec); }
                None => return,
            },
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() => {
                let Some((&k, rec)) = due.iter().next() else { continue };
                let rec = rec.clone();
                let opts = SendOptions {
                    key: Some(rec.enqueue_key()),
                    correlation: rec.correlation.clone(),
                    deadline: rec.deadline_ms.map(Duration::from_millis),
                    traceparent: rec.traceparent.clone(),
                    budget: rec.budget,
                    ..Default::default()
                };
                match registry.send(&rec.to, rec.payload.clone(), opts).await {
                    Ok(_) => {
                        due.remove(&k);
                        let mut b = Batch::default();
                        delayed::remove(&mut b, rec.id);
                        if let Err(e) = store.commit(b).await {
                            tracing::error!(error = %e, "a delayed send was enqueued but its record could not be removed; it is sent again (and dropped as a duplicate) at the next start");
                        }
                    }
                    Err(Undelivered { error: SendError::UnknownAgent(_), .. }) => {
                        due.remove(&k);
                        if warned.insert(rec.id) {
                            tracing::error!(to = %rec.to, id = rec.id, "a delayed send is due for an agent the tree does not have; it stays in the store until the agent is back (a restart with it in the config sends it)");
                        }
                    }
                    Err(u) => {
                        tracing::warn!(to = %rec.to, error = %u.error, "a delayed send was refused; trying again in 1 s");
                        let mut rec = rec;
                        due.remove(&k);
                        rec.due_ms = now_ms() + 1000;
                        due.insert((rec.due_ms, rec.id), rec);
                    }
                }
            }
        }
    }
}

impl Runtime {
    /// Accepts `payload` for `to`, into its mailbox after `delay`; answers once
    /// the delayed send is durable. Needs the store.
    pub async fn send_delayed(
        &self,
        to: &str,
        payload: Value,
        delay: Duration,
        opts: SendOptions,
    ) -> Result<DelayedRecord, Undelivered> {
        if self.tree.registry.get(to).is_none() {
            return Err(Undelivered {
                error: SendError::UnknownAgent(self.tree.registry.unknown_agent(to)),
                payload: Some(payload),
            });
        }
        let (Some(d), Some(store)) = (&self.delayer, self.store()) else {
            return Err(Undelivered {
                error: SendError::Store(crate::store::StoreError::Closed),
                payload: Some(payload),
            });
        };
        let rec = DelayedRecord {
            id: d.next_id.fetch_add(1, Ordering::Relaxed),
            due_ms: crate::clock::ms_after(delay),
            to: to.to_string(),
            payload,
            key: opts.key,
            correlation: opts.correlation,
            deadline_ms: opts
                .deadline
                .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
            traceparent: opts.traceparent,
            budget: opts.budget,
        };
        let mut b = Batch::default();
        delayed::put(&mut b, &rec);
        store.commit(b).await.map_err(|e| Undelivered {
            error: SendError::Store(e),
            payload: None,
        })?;
        let _ = d.tx.send(rec.clone());
        Ok(rec)
    }
}
