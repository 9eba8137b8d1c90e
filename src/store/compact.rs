//! Compaction: giving disk space back after a backlog drained.
//!
//! sled reuses the space of removed records for new writes, so a store under
//! steady load stays the same size (the soak test measures it), but its file never
//! shrinks: after a burst of a million pending messages drains, the file keeps its
//! high-water size. `warden compact` (with the daemon stopped) rewrites the live
//! records into a fresh store and swaps it in.
//!
//! Guarantees:
//! - The store is opened first as the daemon opens it (format, high-water check,
//!   recovery), so a damaged store is refused, not compacted.
//! - Every record is copied (sled's export and import), the copy is flushed, and
//!   every tree's record count is compared before the swap.
//! - The swap is two renames (`store` -> `store.old`, `store.compact` -> `store`);
//!   [`finish`] runs before every open and completes a swap that a crash
//!   interrupted, so no crash at any point leaves the daemon an empty store. The
//!   high-water record is copied with the rest, so `store.hwm` stays valid.

use std::path::{Path, PathBuf};

use super::{open, Store, StoreError, StoreOptions};

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Bytes on disk before.
    pub before: u64,
    /// Bytes on disk after.
    pub after: u64,
    /// Records copied (every tree).
    pub records: u64,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn io(what: String, e: std::io::Error) -> StoreError {
    StoreError::io(what, e)
}

/// Completes (or cleans up after) a compaction of the store in `dir` that a crash
/// interrupted. Called before the store is opened.
pub(crate) fn finish(dir: &Path) -> Result<(), StoreError> {
    let (old, new) = (sibling(dir, ".old"), sibling(dir, ".compact"));
    if old.exists() {
        if !dir.exists() {
            if !new.exists() {
                return Err(StoreError::Damaged(format!(
                    "{} is missing and {} holds the store before an interrupted compaction: rename it back to {} and start again",
                    dir.display(),
                    old.display(),
                    dir.display()
                )));
            }
            // the copy was complete (it is renamed only once flushed and checked)
            std::fs::rename(&new, dir)
                .map_err(|e| io(format!("cannot rename {}", new.display()), e))?;
            tracing::warn!(store = %dir.display(), "completed a compaction interrupted by a crash");
        }
        std::fs::remove_dir_all(&old)
            .map_err(|e| io(format!("cannot remove {}", old.display()), e))?;
    } else if new.exists() {
        // a copy never swapped in: the store in `dir` is the real one
        std::fs::remove_dir_all(&new)
            .map_err(|e| io(format!("cannot remove {}", new.display()), e))?;
    }
    Ok(())
}

fn size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Rewrites the store in `dir` into a compact copy and swaps it in. The caller
/// holds the data directory's lock (no daemon runs on it).
pub fn compact(dir: &Path, accept_loss: bool) -> Result<Compacted, StoreError> {
    finish(dir)?;
    if !dir.join("db").exists() {
        return Err(StoreError::io(
            format!("{} holds no store", dir.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    // open as the daemon does: refuse a damaged store, recover the rest
    let opts = StoreOptions {
        accept_loss,
        ..StoreOptions::default()
    };
    let (store, _recovered) = Store::open(dir, opts)?;
    store.close();
    drop(store);
    let before = size(dir);
    let copy = sibling(dir, ".compact");
    let records = {
        let src = open::open_sled(dir)?;
        let dst = open::open_sled(&copy)?;
        dst.import(src.export());
        dst.flush()?;
        let mut records = 0u64;
        for name in src.tree_names() {
            let (a, b) = (src.open_tree(&name)?, dst.open_tree(&name)?);
            let (n, m) = (a.len(), b.len());
            if n != m {
                drop((a, b, dst));
                let _ = std::fs::remove_dir_all(&copy);
                return Err(StoreError::Damaged(format!(
                    "the compacted copy of tree {:?} has {m} records, not {n}; the store was left as it was",
                    String::from_utf8_lossy(&name)
                )));
            }
            records += n as u64;
        }
        records
    };
    // sled lets go of its files a moment after the last handle: open_sled waits for it
    drop(open::open_sled(&copy)?);
    drop(open::open_sled(dir)?);
    let old = sibling(dir, ".old");
    std::fs::rename(dir, &old).map_err(|e| io(format!("cannot rename {}", dir.display()), e))?;
    std::fs::rename(&copy, dir).map_err(|e| io(format!("cannot rename {}", copy.display()), e))?;
    if let Some(parent) = dir.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    std::fs::remove_dir_all(&old).map_err(|e| io(format!("cannot remove {}", old.display()), e))?;
    Ok(Compacted {
        before,
        after: size(dir),
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{mailbox, Batch};

    fn store_with_records(dir: &Path, n: u64) {
        let (store, _) = Store::open(dir, StoreOptions::default()).expect("open");
        for i in 0..n {
            let mut b = Batch::default();
            mailbox::ack(&mut b, "a", i + 1, Some(&serde_json::json!({"i": i})));
            futures::executor::block_on(store.commit(b)).expect("commit");
        }
        store.close();
    }

    fn state(dir: &Path) -> serde_json::Value {
        let (store, r) = Store::open(dir, StoreOptions::default()).expect("open");
        store.close();
        r.agents
            .get("a")
            .and_then(|a| a.state.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_crash_in_the_swap_is_completed_or_undone_at_the_next_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        store_with_records(&dir, 3);
        let done = compact(&dir, false).expect("compact");
        assert!(done.records > 0);
        assert_eq!(state(&dir), serde_json::json!({"i": 2}));
        // crash after the first rename: the copy is complete, the store missing
        let copy = sibling(&dir, ".compact");
        std::fs::rename(&dir, sibling(&dir, ".old")).unwrap();
        crate::store::copy_private(&sibling(&dir, ".old"), &copy).unwrap();
        assert_eq!(
            state(&dir),
            serde_json::json!({"i": 2}),
            "the swap is completed"
        );
        assert!(!sibling(&dir, ".old").exists() && !copy.exists());
        // crash while copying: the half copy is removed, the store kept
        std::fs::create_dir(&copy).unwrap();
        std::fs::write(copy.join("db"), b"half").unwrap();
        assert_eq!(state(&dir), serde_json::json!({"i": 2}));
        assert!(!copy.exists());
        // the store renamed away and no copy: refused, naming what to do
        std::fs::rename(&dir, sibling(&dir, ".old")).unwrap();
        let e = Store::open(&dir, StoreOptions::default())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("rename it back"), "{e}");
    }
}
