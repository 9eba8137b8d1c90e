//! How the store fails: sled and I/O errors keep their cause; the other variants
//! say what is wrong with the store on disk and how to get out of it.

use std::sync::Arc;

/// A store failure. sled and I/O failures keep their cause as `source()`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed.
    #[error("store error: {what}: {source}")]
    Sled {
        /// What was being done.
        what: String,
        /// sled's error.
        #[source]
        source: Arc<sled::Error>,
    },
    /// The filesystem failed.
    #[error("store I/O error: {what}: {source}")]
    Io {
        /// What was being done, on which path.
        what: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store was written by a newer Warden.
    #[error("the store at {path} has format version {found}, newer than this build's {supported}; run the Warden that wrote it, or move the store away")]
    NewerFormat {
        /// The store directory.
        path: String,
        /// Version found.
        found: u8,
        /// Version this build writes.
        supported: u8,
    },
    /// The store is closed (shutting down).
    #[error("the store is closed")]
    Closed,
    /// Committed data is missing, or cannot be checked (see [`high_water`]).
    #[error("{0}")]
    Lost(String),
    /// A file of sled's own is damaged.
    #[error("{0}")]
    Damaged(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::sled("sled", e)
    }
}

impl StoreError {
    /// sled failed while doing `what`.
    pub fn sled(what: impl Into<String>, e: sled::Error) -> Self {
        StoreError::Sled {
            what: what.into(),
            source: Arc::new(e),
        }
    }

    /// The filesystem failed while doing `what`.
    pub fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        StoreError::Io {
            what: what.into(),
            source: Arc::new(e),
        }
    }
}

/// Two store errors are equal when they read the same (their sources are not
/// comparable).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}
