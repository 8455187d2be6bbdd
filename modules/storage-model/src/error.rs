//! Storage errors, split by what the caller should do about them: the variants are the kinds
//! (the pipeline maps them to what an agent hears in one place, the record stream's `refusal`).

/// Why a storage call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The store cannot be reached or is busy; the same call may succeed later and should be
    /// retried (and counted), never dropped.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (an unknown model, a value of the wrong type); retrying
    /// cannot help.
    #[error("invalid storage request: {0}")]
    Invalid(String),
    /// What is stored cannot be read back as written: the data directory or index is damaged.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}
