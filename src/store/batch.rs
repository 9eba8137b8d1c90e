//! A batch of writes: what one request asks the committer to apply atomically.

use std::collections::HashMap;

/// A set of writes applied atomically, in order (a later write to a key wins).
/// The committer merges the batches of a whole group into one sled batch: sled
/// 0.34 seals a log buffer per `apply_batch`, so one per group, not one per request,
/// is what makes group commit cheap.
#[derive(Default)]
pub struct Batch {
    ops: Vec<(sled::IVec, Option<sled::IVec>)>,
}

impl Batch {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<sled::IVec>, value: impl Into<sled::IVec>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<sled::IVec>) {
        self.ops.push((key.into(), None));
    }

    /// True when it holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Adds these writes to `into`, in order.
    pub(crate) fn merge_into(self, into: &mut sled::Batch) {
        for (k, v) in self.ops {
            match v {
                Some(v) => into.insert(k, v),
                None => into.remove(k),
            }
        }
    }
}

/// Idempotency entries of one agent: key -> (sequence, expires at ms).
pub type IdemMap = HashMap<String, (u64, u64)>;
