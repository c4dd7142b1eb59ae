//! The ports: what the chat core needs from storage, split by capability, as a PostgreSQL
//! pool store can implement them as well as the SQLite one. Nothing here names a backend;
//! a backend's own failures reach the core as [`StoreError::Backend`] text.
//!
//! Writes return [`Pending`], resolved once durably committed; reads return [`Read`], a
//! future, so a backend is free to run them on its own threads or over the network.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{oneshot, watch};

pub use super::credentials::Credentials;
use super::ids::Gateway;
use super::model::{Addin, Category, Group, PolicyScope, Room};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The backend's own failure (a database error, a lost connection), as text.
    #[error("database error: {0}")]
    Backend(String),
    #[error("commit failed: {0}")]
    Commit(String),
    /// The write queue is full: the caller should refuse the request, not wait.
    #[error("the store is overloaded")]
    Overloaded,
    /// A write would take the user past what they may keep (preferences).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The disk holding the store is full: nothing of the write was kept. The operator's
    /// to fix; the store carries on, and writes succeed again once space is freed.
    #[error("the server's disk is full: not stored, try again later")]
    Full,
    /// A read ran past its time budget and was stopped: the query costs more than the
    /// store lets one request take (a search over very common words, say).
    #[error("the query took longer than its budget of {budget:?} and was stopped")]
    TimedOut { budget: std::time::Duration },
    /// A read was stopped because whoever asked for it went away (its future was dropped).
    #[error("the query was cancelled")]
    Cancelled,
    /// The store was closed: nothing more is written, and reads still running are stopped.
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

/// A submitted write; it resolves once the write is durably committed. Await it from
/// async code with [`committed`], or call [`wait`] from blocking code.
pub type Pending<T> = oneshot::Receiver<Result<T, StoreError>>;

/// A read in progress. Dropping it before it resolves cancels the read: a backend stops
/// the query rather than finish work nobody waits for.
pub type Read<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// Blocks until a submitted write is committed. Must not be called on an async runtime thread.
pub fn wait<T>(pending: Pending<T>) -> Result<T, StoreError> {
    pending.blocking_recv().unwrap_or(Err(StoreError::Closed))
}

/// Awaits a submitted write.
pub async fn committed<T>(pending: Pending<T>) -> Result<T, StoreError> {
    pending.await.unwrap_or(Err(StoreError::Closed))
}

/// Blocks on a read from code that is not async (the admin CLI, tests).
pub fn read_blocking<T: Send>(read: Read<T>) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        // Inside a runtime (a test's): let the read run on a thread of its own.
        Ok(_) => std::thread::scope(|scope| {
            scope
                .spawn(|| block_on_new_runtime(read))
                .join()
                .unwrap_or(Err(StoreError::Closed))
        }),
        Err(_) => block_on_new_runtime(read),
    }
}

fn block_on_new_runtime<T: Send>(read: Read<T>) -> Result<T, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot start a runtime for a read: {e}")))?
        .block_on(read)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Canonical `user@domain`, lower case.
    pub aor: String,
    pub display_name: String,
    pub enabled: bool,
    /// A verifier per sign-in mechanism; `None` for a user without a password (trusted
    /// networks only).
    pub credentials: Option<Credentials>,
    /// When an administrator last lifted the user's sign-in throttle (ticks; 0 = never).
    pub unlocked_at: i64,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    pub credentials: Option<Credentials>,
    pub unlocked_at: Option<i64>,
}

impl UserChange {
    /// The change made to `user`, as every backend applies it.
    pub fn apply(self, user: &mut UserRecord) {
        if let Some(name) = self.display_name {
            user.display_name = name;
        }
        if let Some(enabled) = self.enabled {
            user.enabled = enabled;
        }
        if let Some(credentials) = self.credentials {
            user.credentials = Some(credentials);
        }
        if let Some(at) = self.unlocked_at {
            user.unlocked_at = at;
        }
    }
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

/// Parts of a post beyond its text that only the gateway it came through understands
/// (an XCCOS rich-text alternative, say). That gateway validated and bounded them on the
/// way in, and only that gateway renders them on the way out; the core keeps them opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub gateway: Gateway,
    pub markup: String,
}

/// A message: `id` is the one id every protocol and tool uses (0 when the category keeps
/// no history and the message was never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: i64,
    pub room_id: i64,
    /// The author's canonical user id.
    pub author: String,
    /// Server receipt time, 100 ns ticks since the Unix epoch.
    pub ts: i64,
    pub text: String,
    pub extension: Option<Extension>,
}

impl ChatMessage {
    /// Bytes a post counts against StorySizeLimit: its text and every other part.
    pub fn story_bytes(&self) -> usize {
        self.text.len() + self.extension.as_ref().map_or(0, |e| e.markup.len())
    }
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
    /// An archive page (XEP-0313): ids strictly between `after` and `before`, times within
    /// `since..=until` (100 ns ticks), by `author` if given, holding every one of `words`
    /// if any (a full-text search within the rest); `count` of them from the oldest end, or
    /// from the newest with `newest`.
    Range(HistoryRange),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRange {
    pub after: i64,
    pub before: i64,
    pub since: i64,
    pub until: i64,
    pub author: Option<String>,
    /// Search words, as [`HistoryQuery::Search`]'s; none: no search.
    pub words: Vec<String>,
    pub newest: bool,
    pub count: u32,
}

impl HistoryRange {
    /// Every message, oldest first, `count` at a time.
    pub fn all(count: u32) -> Self {
        Self {
            after: 0,
            before: i64::MAX,
            since: i64::MIN,
            until: i64::MAX,
            author: None,
            words: Vec::new(),
            newest: false,
            count,
        }
    }

    /// Whether `message` is within the range's ids, times and author (its words are the
    /// store's to match).
    pub fn admits(&self, message: &ChatMessage) -> bool {
        message.id > self.after
            && message.id < self.before
            && (self.since..=self.until).contains(&message.ts)
            && self.author.as_ref().is_none_or(|a| *a == message.author)
    }
}

/// Users and their credentials.
pub trait DirectoryStore: Send + Sync {
    fn users(&self) -> Result<Vec<UserRecord>, StoreError>;
    fn user(&self, aor: &str) -> Result<Option<UserRecord>, StoreError>;
    fn add_user(&self, user: UserRecord) -> Pending<UserRecord>;
    fn update_user(&self, aor: &str, change: UserChange) -> Pending<UserRecord>;
    fn remove_user(&self, aor: &str) -> Pending<()>;
}

/// What administrators define: groups, policy, settings, categories, rooms, add-ins.
pub trait ModelStore: Send + Sync {
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
}

/// The message archive: posts, history, search.
pub trait ArchiveStore: Send + Sync {
    /// Stores a message (its `id` is ignored) and returns it with the id it was given.
    fn append_message(&self, message: ChatMessage) -> Pending<ChatMessage>;
    fn history(&self, room_id: i64, query: HistoryQuery) -> Read<Vec<ChatMessage>>;
    /// The id of the newest message (0 when there is none). The hub reads it once, at
    /// start: every message stored before then has an id up to it, every later one above.
    fn last_message_id(&self) -> Result<i64, StoreError>;
    /// Deletes a room's messages up to and including `until` (all when `None`).
    fn clear_room(&self, id: i64, until: Option<i64>) -> Pending<usize>;
}

/// Room invitations.
pub trait InvitationStore: Send + Sync {
    /// Records (user, room id) invitations. An administrative change: the change feed
    /// moves once they are committed, so a running hub delivers them.
    fn add_invitations(&self, invitations: Vec<(String, i64)>, now: i64) -> Pending<()>;
    /// (invitation id, room id) for `user` after `after`, oldest first.
    fn invitations(&self, user: &str, after: i64) -> Read<Vec<(i64, i64)>>;
    /// (invitation id, user, room id) of every user after `after`, oldest first, at most
    /// `limit`.
    fn invitations_after(&self, after: i64, limit: u32) -> Read<Vec<(i64, String, i64)>>;
    /// The id of the newest invitation (0 when there is none); the hub reads it at start.
    fn last_invitation_id(&self) -> Result<i64, StoreError>;
}

/// How much one user may keep in preferences, labels and contents together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreferenceQuota {
    pub labels: usize,
    pub bytes: usize,
}

/// One stored preference, as an administrator sees it (not its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceEntry {
    pub label: String,
    pub seqid: i64,
    /// Bytes of label and content together, as counted against the quota.
    pub bytes: usize,
}

/// Per-user client preferences.
pub trait PreferenceStore: Send + Sync {
    /// (seqid, content) of a preference.
    fn preference(&self, user: &str, label: &str) -> Read<Option<(i64, String)>>;
    /// Stores a preference and returns its new seqid. Refused with
    /// [`StoreError::QuotaExceeded`] when the user's preferences, this one in place of any
    /// it replaces, would exceed `quota`: the check and the write are one transaction.
    fn set_preference(
        &self,
        user: &str,
        label: &str,
        content: &str,
        quota: PreferenceQuota,
    ) -> Pending<i64>;
    /// Every preference of a user, by label.
    fn preferences(&self, user: &str) -> Read<Vec<PreferenceEntry>>;
    /// Removes every preference of a user; returns how many there were.
    fn clear_preferences(&self, user: &str) -> Pending<usize>;
}

/// An admin API token as an administrator sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub name: String,
    pub created_at: i64,
    /// When it last authenticated a request (ticks; 0 = never).
    pub last_used_at: i64,
}

/// Tokens of the HTTPS admin API, kept as SHA-256 digests of their secrets.
pub trait AdminTokenStore: Send + Sync {
    /// Names are unique: the service checks first, and a racing second add fails in the
    /// store.
    fn add_admin_token(&self, name: &str, digest: [u8; 32], now: i64) -> Pending<()>;
    fn admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError>;
    /// Whether a token of that name existed.
    fn remove_admin_token(&self, name: &str) -> Pending<bool>;
    /// The name of the token whose secret has this digest, marked used at `now`.
    fn use_admin_token(&self, digest: [u8; 32], now: i64) -> Pending<Option<String>>;
}

/// Tells a running core that administrators changed the model, whichever process or node
/// made the change. The value is a counter that only moves forward.
pub trait ChangeFeed: Send + Sync {
    fn changes(&self) -> watch::Receiver<i64>;
}

/// Everything a server needs from one backend.
pub trait Store:
    DirectoryStore
    + ModelStore
    + ArchiveStore
    + InvitationStore
    + PreferenceStore
    + AdminTokenStore
    + ChangeFeed
{
    /// Commits everything queued and stops the writer; reads still running are stopped.
    /// Later writes and reads fail with `Closed`.
    fn close(&self);

    /// Whether the store can take writes and answer reads now (readiness probes). Blocks
    /// for at most a short read.
    fn ready(&self) -> Result<(), StoreError>;
}
