//! Persistent state behind the [`Store`] trait. The SQLite implementation lives in
//! [`sqlite`]; a PostgreSQL pool store can implement the same trait later.

mod migrate;
pub mod sqlite;
mod writer;

use tokio::sync::oneshot;

use crate::core::model::{Addin, Category, Group, PolicyScope, Room};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
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

/// Everything the chat core keeps in memory, as loaded from the store.
#[derive(Debug, Clone, Default)]
pub struct ModelData {
    pub users: Vec<UserRecord>,
    pub groups: Vec<Group>,
    pub policies: Vec<(PolicyScope, bool)>,
    pub settings: Vec<(String, u32)>,
    pub categories: Vec<Category>,
    pub rooms: Vec<Room>,
    pub addins: Vec<Addin>,
}

/// A message as stored; `id` is the one id every protocol and tool uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub room_id: i64,
    pub author: String,
    /// Server receipt time, 100 ns ticks since the Unix epoch.
    pub ts: i64,
    pub body: String,
    /// Unknown `grpchat` children, kept as XML and forwarded unchanged.
    pub extra: String,
}

/// Which part of a room's history to read. Results are always oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    Last(u32),
    Before {
        id: i64,
        count: u32,
    },
    After {
        id: i64,
        count: u32,
    },
    /// Messages whose text matches all the words, newest `count` of them.
    Search {
        words: Vec<String>,
        count: u32,
    },
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

    fn load_model(&self) -> Result<ModelData, StoreError>;
    /// Inserts or replaces a group (by name) with its member list.
    fn save_group(&self, group: Group) -> Pending<()>;
    fn remove_group(&self, name: &str) -> Pending<()>;
    /// `None` removes the scope's setting (for global: back to the default).
    fn set_policy(&self, scope: PolicyScope, enabled: Option<bool>) -> Pending<()>;
    fn set_setting(&self, name: &str, value: u32) -> Pending<()>;
    /// Inserts when `id` is 0, else updates; returns the saved category with its id.
    fn save_category(&self, category: Category) -> Pending<Category>;
    fn remove_category(&self, id: i64) -> Pending<()>;
    /// Inserts or replaces an add-in by name.
    fn save_addin(&self, addin: Addin) -> Pending<()>;
    fn remove_addin(&self, name: &str) -> Pending<()>;
    /// Inserts when `id` is 0, else updates; returns the saved room with its id.
    fn save_room(&self, room: Room) -> Pending<Room>;
    fn remove_room(&self, id: i64) -> Pending<()>;
    /// Deletes a room's messages up to and including `until` (all when `None`).
    fn clear_room(&self, id: i64, until: Option<i64>) -> Pending<usize>;

    fn append_message(
        &self,
        room_id: i64,
        author: &str,
        ts: i64,
        body: &str,
        extra: &str,
    ) -> Pending<StoredMessage>;
    fn history(&self, room_id: i64, query: &HistoryQuery)
    -> Result<Vec<StoredMessage>, StoreError>;
    fn add_invitations(&self, invitations: Vec<(String, i64)>, now: i64) -> Pending<()>;
    /// (invitation id, room id) for `user` after `after`, oldest first.
    fn invitations(&self, user: &str, after: i64) -> Result<Vec<(i64, i64)>, StoreError>;
    /// (seqid, content) of a preference.
    fn preference(&self, user: &str, label: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// Stores a preference and returns its new seqid.
    fn set_preference(&self, user: &str, label: &str, content: &str) -> Pending<i64>;

    /// Commits everything queued and stops the writer. Later writes fail with `Closed`.
    fn close(&self);
}
