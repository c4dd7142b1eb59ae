//! Persistent state behind the [`Store`] trait. The SQLite implementation lives in
//! [`sqlite`]; a PostgreSQL pool store can implement the same trait later.

mod migrate;
pub mod sqlite;
mod writer;

use tokio::sync::oneshot;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store is closed")]
    Closed,
    #[error("database schema version {found} is newer than this perch supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("cannot open data directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A write submitted to the store; it resolves once the write is durably committed.
/// Await it from async code, or call [`wait`] from blocking code.
pub type Pending<T> = oneshot::Receiver<Result<T, StoreError>>;

/// Blocks until a submitted write is committed. Must not be called on an async runtime thread.
pub fn wait<T>(pending: Pending<T>) -> Result<T, StoreError> {
    pending.blocking_recv().unwrap_or(Err(StoreError::Closed))
}

/// Awaits a submitted write.
pub async fn committed<T>(pending: Pending<T>) -> Result<T, StoreError> {
    pending.await.unwrap_or(Err(StoreError::Closed))
}

/// Digest credentials: HA1 = H(user-part ":" domain ":" password) for each algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Canonical `user@domain`, lower case.
    pub aor: String,
    pub display_name: String,
    pub enabled: bool,
    pub credentials: Option<Credentials>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    pub credentials: Option<Credentials>,
}

pub trait Store: Send + Sync {
    /// Counter that changes whenever an administrator changes state; servers poll it to
    /// pick up changes made by other processes.
    fn generation(&self) -> Result<i64, StoreError>;
    fn users(&self) -> Result<Vec<UserRecord>, StoreError>;
    fn user(&self, aor: &str) -> Result<Option<UserRecord>, StoreError>;
    fn add_user(&self, user: UserRecord) -> Pending<UserRecord>;
    fn update_user(&self, aor: &str, change: UserChange) -> Pending<UserRecord>;
    fn remove_user(&self, aor: &str) -> Pending<()>;
    /// Commits everything queued and stops the writer. Later writes fail with `Closed`.
    fn close(&self);
}
