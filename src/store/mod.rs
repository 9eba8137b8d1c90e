//! The store: every durable mailbox, attempt count, state snapshot, dead letter and
//! idempotency key, in one sled tree with key prefixes ([`keys`]).
//!
//! Guarantees:
//! - **Accepted is durable (G1).** A request's completion runs only after its batch
//!   was applied and the store flushed (plus `fdatasync` in `power` mode); the
//!   [`committer`] shares one flush among every request waiting at the time.
//! - **Atomic hand-off (G3).** An agent's ack, its emitted messages and its new state
//!   are one `apply_batch`: all or nothing, across a crash.
//! - **Poison containment across crashes (G4).** The number of attempts started for
//!   a message is written, durably, before each attempt; recovery turns messages whose
//!   attempts are used up into dead letters.
//! - **Corruption is quarantined (G10).** Recovery moves a record it cannot decode to
//!   the quarantine (`Q` + its key, raw bytes kept), counts and logs it, and goes on.
//! - A store written by a newer format is refused at open, with both versions named.

mod batch;
pub mod children;
mod compact;
pub mod delayed;
mod error;
// The record layout (keys and encodings) is public on purpose: it is the on-disk
// format, which tools and the crash tests read and damage directly.
pub mod codec;
pub(crate) mod committer;
pub mod dead;
pub mod entries;
pub mod high_water;
pub mod keys;
pub mod mailbox;
mod open;
mod recovery;
pub mod spend;
pub mod suspects;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use batch::{Batch, IdemMap};
pub(crate) use committer::Commit;
pub use compact::{compact, Compacted};
pub use error::StoreError;
pub use recovery::{Recovered, RecoveredAgent};

/// How hard an accepted message is pushed to disk before `send` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Survives a crash of the daemon (`kill -9`): the store's log is flushed.
    Crash,
    /// Also survives power loss: the log file is `fdatasync`ed too.
    Power,
}

/// Counters of the store, monotonic since open.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Requests committed.
    pub commits: AtomicU64,
    /// Flushes (groups).
    pub flushes: AtomicU64,
    /// Time spent applying and flushing groups, ns (read as `flush_mean_us`).
    pub commit_ns: AtomicU64,
    /// Records quarantined at recovery.
    pub quarantined: AtomicU64,
    /// Time per group commit, apply and flush (`warden_commit_seconds`).
    pub commit_seconds: crate::telemetry::histograms::Seconds,
    /// Requests per group commit (`warden_commit_batch_size`).
    pub commit_batch_size: crate::telemetry::histograms::Sizes,
}

/// A snapshot of the store's counters (the `stats` op's `store` object).
#[derive(Debug, Clone, Serialize)]
pub struct StoreSnapshot {
    /// Where the store lives.
    pub path: String,
    /// `crash` or `power`.
    pub durability: &'static str,
    /// Requests committed.
    pub commits: u64,
    /// Flushes.
    pub flushes: u64,
    /// Mean requests per flush.
    pub commit_batch_mean: f64,
    /// Mean time to apply and flush one group, µs.
    pub flush_mean_us: f64,
    /// Records in quarantine.
    pub quarantined: u64,
    /// Bytes on disk, as sled reports them.
    pub size_on_disk: u64,
}

/// Tuning of the group committer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability of every commit.
    pub durability: Durability,
    /// Largest group of requests per flush.
    pub max_batch: usize,
    /// How long the committer waits for more requests before flushing (0: never).
    pub max_delay: Duration,
    /// Open a store that has lost commits (see [`high_water`]) instead of refusing.
    pub accept_loss: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Crash,
            max_batch: 4096,
            max_delay: Duration::ZERO,
            accept_loss: false,
        }
    }
}

/// The open store.
pub struct Store {
    path: PathBuf,
    durability: Durability,
    /// Taken by [`Store::close`], which so releases sled's file lock at once, even
    /// while other parts of the process still hold an `Arc<Store>`.
    handles: Mutex<Option<(sled::Db, sled::Tree)>>,
    tx: Mutex<Option<Sender<Commit>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Counters.
    pub stats: Arc<StoreStats>,
    /// Runs the suspects of the last daemon death one at a time.
    pub gate: suspects::CrashGate,
    failure: Arc<tokio::sync::watch::Sender<Option<StoreError>>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, refuses a newer format, quarantines
    /// corrupt records, and returns what it holds.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Arc<Store>, Recovered), StoreError> {
        compact::finish(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir.display().to_string(), e))?;
        let db = open::open_sled(dir)?;
        let tree = db.open_tree("warden")?;
        match tree.get(keys::META)? {
            Some(v) if v.first().copied().unwrap_or(0) > codec::STORE_FORMAT => {
                return Err(StoreError::NewerFormat {
                    path: dir.display().to_string(),
                    found: v[0],
                    supported: codec::STORE_FORMAT,
                })
            }
            Some(v) if v.first().copied().unwrap_or(0) < codec::STORE_FORMAT => {
                // it will hold records of this format from now on: a build that
                // cannot read them must refuse the store, not quarantine them
                tree.insert(keys::META, &[codec::STORE_FORMAT])?;
                db.flush()?;
                tracing::info!(store = %dir.display(), from = v.first().copied().unwrap_or(0), to = codec::STORE_FORMAT,
                    "store format upgraded; older builds of Warden will refuse this store");
            }
            Some(_) => {}
            None => {
                tree.insert(keys::META, &[codec::STORE_FORMAT])?;
                db.flush()?;
            }
        }
        let in_store = match tree.get(keys::HIGH_WATER)? {
            Some(v) => codec::decode_u64(&v).map_err(|e| {
                StoreError::Damaged(format!("the store's high-water record is damaged: {e}"))
            })?,
            None => 0,
        };
        let hw_path = high_water::path_for(dir);
        let in_file = high_water::read(&hw_path);
        let next_group = 1 + in_store.max(in_file.clone().ok().flatten().unwrap_or(0));
        if let Err(why) = high_water::check(dir, in_store, in_file) {
            if !opts.accept_loss {
                return Err(StoreError::Lost(why));
            }
            tracing::error!("{why}; starting anyway (--accept-loss)");
        }
        let stats = Arc::new(StoreStats::default());
        let recovered = recovery::recover(&tree, &stats)?;
        db.flush()?;
        let high_water = high_water::HighWater::open(&hw_path, in_store)
            .map_err(|e| StoreError::io(hw_path.display().to_string(), e))?;
        let log = match opts.durability {
            Durability::Power => Some(
                File::open(dir.join("db"))
                    .map_err(|e| StoreError::io("cannot open sled's log file", e))?,
            ),
            Durability::Crash => None,
        };
        let (tx, rx) = mpsc::channel();
        let failure = Arc::new(tokio::sync::watch::channel(None).0);
        let committer = committer::Committer {
            failure: failure.clone(),
            db: db.clone(),
            tree: tree.clone(),
            log,
            max_batch: opts.max_batch.max(1),
            max_delay: opts.max_delay,
            stats: stats.clone(),
            high_water,
            next_group,
        };
        let thread = std::thread::Builder::new()
            .name("warden-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::io("cannot start the committer thread", e))?;
        let store = Arc::new(Store {
            path: dir.to_path_buf(),
            durability: opts.durability,
            handles: Mutex::new(Some((db, tree))),
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            stats,
            gate: suspects::CrashGate::new(recovered.suspects.clone()),
            failure,
        });
        Ok((store, recovered))
    }

    /// Queues `batch`; `then` runs on the committer thread once it is durable.
    pub fn submit(&self, batch: Batch, then: impl FnOnce(Result<(), StoreError>) + Send + 'static) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let commit = Commit {
            batch,
            then: Box::new(then),
        };
        match tx {
            Some(tx) => {
                if let Err(mpsc::SendError(c)) = tx.send(commit) {
                    (c.then)(Err(StoreError::Closed));
                }
            }
            None => (commit.then)(Err(StoreError::Closed)),
        }
    }

    /// Commits `batch` and waits until it is durable.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(batch, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Copies the store, consistent as of one moment, into the data directory
    /// `dest` (which must not exist): `dest/store/` and `dest/store.hwm`. The copy
    /// runs on the committer thread between two groups, after a flush, so it holds
    /// exactly what was committed by then, like a crash at that moment, which the
    /// store recovers from; commits wait while it runs. Returns the bytes copied.
    pub async fn backup(&self, dest: &Path) -> Result<u64, StoreError> {
        if dest.exists() {
            return Err(StoreError::io(
                format!("{} exists; back up into a new directory", dest.display()),
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let (src, dest) = (self.path.clone(), dest.to_path_buf());
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Batch::default(), move |r| {
            let copied = r.and_then(|()| {
                let name = src.file_name().unwrap_or_default().to_os_string();
                let mut bytes = copy_private(&src, &dest.join(&name))?;
                let hwm = high_water::path_for(&src);
                if hwm.exists() {
                    let mut to = name;
                    to.push(".hwm");
                    bytes += std::fs::copy(&hwm, dest.join(to))
                        .map_err(|e| StoreError::io(format!("cannot copy {}", hwm.display()), e))?;
                }
                Ok(bytes)
            });
            let _ = tx.send(copied);
        });
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Completes with the first write failure (disk full, I/O error). After one,
    /// every later write fails too: sled keeps a failed I/O as a global error until
    /// it is reopened, so the owner of the store should stop (see the daemon).
    pub async fn failed(&self) -> StoreError {
        let mut rx = self.failure.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return StoreError::Closed;
            }
        }
    }

    /// Stops the committer after it has committed everything queued, flushes, and
    /// releases the store (and its lock); later requests fail with `Closed`.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        let broken = self.failure.borrow().is_some();
        if let Some((db, _tree)) = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // after a failed write, sled's flush may never return
            if !broken {
                let _ = db.flush();
            }
        }
    }

    fn tree(&self) -> Option<sled::Tree> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, t)| t.clone())
    }

    /// The store's counters.
    pub fn snapshot(&self) -> StoreSnapshot {
        let commits = self.stats.commits.load(Ordering::Relaxed);
        let flushes = self.stats.flushes.load(Ordering::Relaxed);
        StoreSnapshot {
            path: self.path.display().to_string(),
            durability: match self.durability {
                Durability::Crash => "crash",
                Durability::Power => "power",
            },
            commits,
            flushes,
            flush_mean_us: if flushes == 0 {
                0.0
            } else {
                self.stats.commit_ns.load(Ordering::Relaxed) as f64 / flushes as f64 / 1e3
            },
            commit_batch_mean: if flushes == 0 {
                0.0
            } else {
                commits as f64 / flushes as f64
            },
            quarantined: self.stats.quarantined.load(Ordering::Relaxed),
            size_on_disk: self
                .handles
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|(db, _)| db.size_on_disk().ok())
                .unwrap_or(0),
        }
    }

    /// The quarantined records: original key (lossy text) and raw bytes.
    pub fn quarantine(&self) -> Vec<(String, Vec<u8>)> {
        let Some(tree) = self.tree() else {
            return Vec::new();
        };
        tree.scan_prefix([keys::QUARANTINE])
            .filter_map(Result::ok)
            .map(|(k, v)| (String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()))
            .collect()
    }

    /// Reads one agent's state straight from disk (for tests and tools).
    pub fn read_state(&self, agent: &str) -> Option<Value> {
        let v = self
            .tree()?
            .get(keys::agent_key(keys::STATE, agent))
            .ok()??;
        codec::decode_state(&v).ok()
    }

    /// Removes every record of `agent` (messages, markers, state, dead letters,
    /// keys, sequence) into `batch`: the agent is being deleted.
    pub fn forget_agent(&self, agent: &str, batch: &mut Batch) {
        let Some(tree) = self.tree() else { return };
        for prefix in keys::AGENT_PREFIXES {
            let whole = keys::agent_key(prefix, agent);
            if let Ok(Some(_)) = tree.get(&whole) {
                batch.remove(whole.clone());
            }
            let mut under = whole;
            under.push(0);
            for (k, _) in tree.scan_prefix(&under).filter_map(Result::ok) {
                batch.remove(k);
            }
        }
    }

    /// Counts records per prefix byte (for tests and tools).
    pub fn count_prefix(&self, prefix: u8) -> usize {
        self.tree().map_or(0, |t| t.scan_prefix([prefix]).count())
    }
}

/// Copies directory `from` into a new directory `to` (mode 0700), recursively.
fn copy_private(from: &Path, to: &Path) -> Result<u64, StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .map_err(|e| StoreError::io(format!("cannot create {}", to.display()), e))?;
    let mut bytes = 0;
    let entries = std::fs::read_dir(from)
        .map_err(|e| StoreError::io(format!("cannot read {}", from.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::io(format!("cannot read {}", from.display()), e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            bytes += copy_private(&src, &dst)?;
        } else {
            bytes += std::fs::copy(&src, &dst)
                .map_err(|e| StoreError::io(format!("cannot copy {}", src.display()), e))?;
        }
    }
    Ok(bytes)
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}
