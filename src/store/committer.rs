//! Group commit: one thread applies the batches of every waiting request, makes
//! them durable with one flush, then completes every request, in arrival order.
//!
//! The batches of every request in a group are merged, in arrival order, into one
//! sled batch and applied with one `apply_batch`: the group is all-or-nothing, so
//! each request in it is too, and sled seals one log buffer per group instead of
//! one per request. The flush after it makes the whole group durable at once. Completions run on this thread, in the order requests arrived,
//! so a completion that publishes a message to an in-memory queue does so in commit
//! order. `durability = "power"` adds an `fdatasync` of sled's log file after the
//! flush (sled's own flush is `sync_file_range` on Linux, not a device flush).

use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::high_water::HighWater;
use super::{codec, keys, StoreError, StoreStats};

/// What runs when a request's batch is durable (or failed).
pub(crate) type Then = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One request: a batch and its completion.
pub(crate) struct Commit {
    pub(crate) batch: super::Batch,
    pub(crate) then: Then,
}

pub(crate) struct Committer {
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    pub(crate) log: Option<File>,
    pub(crate) max_batch: usize,
    pub(crate) max_delay: Duration,
    pub(crate) stats: Arc<StoreStats>,
    /// Where each durable group's number is recorded, outside sled.
    pub(crate) high_water: HighWater,
    /// The number the next group gets.
    pub(crate) next_group: u64,
    /// Set to the first write failure: the store cannot be trusted to write again
    /// (sled keeps a failed I/O as a global error), so its owner must stop.
    pub(crate) failure: Arc<tokio::sync::watch::Sender<Option<StoreError>>>,
}

impl Committer {
    /// Runs until every sender is dropped; then flushes once more and returns.
    pub(crate) fn run(mut self, rx: Receiver<Commit>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            let gather_until = Instant::now() + self.max_delay.min(Duration::from_secs(1));
            while group.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) if self.max_delay.is_zero() => break,
                    Err(_) => {
                        let left = gather_until.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(c) => group.push(c),
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                                break
                            }
                        }
                    }
                }
            }
            self.commit_group(group);
        }
        if self.failure.borrow().is_none() {
            let _ = self.flush();
        }
    }

    fn commit_group(&mut self, group: Vec<Commit>) {
        let started = Instant::now();
        let _span = tracing::trace_span!("warden.commit", batch = group.len()).entered();
        let mut merged = sled::Batch::default();
        let mut thens = Vec::with_capacity(group.len());
        for c in group {
            c.batch.merge_into(&mut merged);
            thens.push(c.then);
        }
        let n = self.next_group;
        merged.insert(keys::HIGH_WATER, codec::encode_u64(n));
        // After a failed write sled is not to be touched again: it keeps the error,
        // and its flush can wait forever for a buffer that will never be written.
        let broken = self.failure.borrow().clone();
        let result = match broken {
            Some(e) => Err(e),
            None => self.apply(merged, n),
        };

        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .commits
            .fetch_add(thens.len() as u64, Ordering::Relaxed);
        let took = started.elapsed();
        self.stats
            .commit_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.stats.commit_seconds.observe(took);
        self.stats.commit_batch_size.observe(thens.len());
        if let Err(e) = &result {
            tracing::error!(error = %e, "store write failed");
            self.failure.send_if_modified(|f| {
                let first = f.is_none();
                if first {
                    *f = Some(e.clone());
                }
                first
            });
        }
        for then in thens {
            then(result.clone());
        }
    }

    /// Applies one group's batch, flushes, and records the group's number.
    fn apply(&mut self, merged: sled::Batch, n: u64) -> Result<(), StoreError> {
        self.tree.apply_batch(merged)?;
        self.flush()?;
        self.next_group += 1;
        self.high_water
            .record(n)
            .map_err(|e| StoreError::io("cannot record the high-water mark", e))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(log) = &self.log {
            log.sync_data()
                .map_err(|e| StoreError::io("cannot fdatasync sled's log", e))?;
        }
        Ok(())
    }
}
