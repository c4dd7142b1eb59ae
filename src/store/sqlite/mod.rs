//! SQLite store: WAL mode, one writer thread with group commit, a small pool of read
//! connections for queries run on blocking threads (each read within a time budget, and
//! stopped when nobody waits for it any more), and a change feed that sees
//! administrators' changes from this process at once and from others by polling.

mod chat;
mod migrate;
mod reads;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::watch;

use crate::core::credentials::{CredentialError, DigestHa1, NtHash, ScramHash, ScramVerifier};
use crate::core::model::{Addin, Category, Group, PolicyScope, Room};
use crate::core::ports::{
    AdminToken, AdminTokenStore, ArchiveStore, ChangeFeed, ChatMessage, Credentials,
    DirectoryStore, HistoryQuery, InvitationStore, ModelData, ModelStore, Pending, PreferenceEntry,
    PreferenceQuota, PreferenceStore, Read, Store, StoreError, UserChange, UserRecord,
};

use self::migrate::migrate;
use self::reads::{Lane, Reads};
use self::writer::Writer;

pub use self::chat::{fts_query, fts_words};
pub use self::migrate::SCHEMA_VERSION;
pub use self::reads::ReadBudgets;

pub const DATABASE_FILE: &str = "perch.sqlite3";

/// How often the change feed looks for changes other processes (perch admin) made.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        // A full disk is the operator's to fix and passes; callers tell it apart.
        if writer::is_disk_full(&error) {
            return StoreError::Full;
        }
        StoreError::Backend(error.to_string())
    }
}

pub struct SqliteStore {
    writer: Writer,
    reads: Arc<Reads>,
    /// The model generation as last seen; admin writes of this process move it at commit.
    changes: Arc<watch::Sender<i64>>,
    /// Started by the first subscriber; stops when its sender is dropped with the store.
    poller: OnceLock<std::sync::mpsc::Sender<()>>,
}

impl SqliteStore {
    /// Whether `data_dir` holds a store (perhaps of an older schema, which opening
    /// migrates).
    pub fn exists(data_dir: &Path) -> bool {
        data_dir
            .join(DATABASE_FILE)
            .metadata()
            .is_ok_and(|metadata| metadata.is_file() && metadata.len() > 0)
    }

    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, ReadBudgets::default())
    }

    /// Like [`SqliteStore::open`], with other time budgets for reads.
    pub fn open_with(data_dir: &Path, budgets: ReadBudgets) -> Result<Self, StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        make_private(data_dir, &path)?;
        let mut connection = Connection::open(&path)?;
        configure(&connection)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL would only risk the last commits on power loss; a post must
        // never be lost once acknowledged, so every commit is synced.
        connection.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut connection)?;
        let reads = Arc::new(Reads::new(path, budgets)?);
        let generation = reads.run_now(generation)?;
        Ok(Self {
            writer: Writer::start(connection, Some(Box::new(chat::index_messages)))?,
            reads,
            changes: Arc::new(watch::channel(generation).0),
            poller: OnceLock::new(),
        })
    }

    /// Resolves, with the reason, if the writer thread dies (a bug: it survives every
    /// database error, a full disk included). Every later write fails then, so a server
    /// should stop rather than run on.
    pub fn writer_died(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        self.writer.died()
    }

    /// Runs a query now, on this thread.
    fn read<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.reads.run_now(query)
    }

    /// Runs a query on a blocking thread once a permit of its lane is free.
    fn read_later<T: Send + 'static>(
        &self,
        lane: Lane,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Read<T> {
        self.reads.later(lane, query)
    }

    /// Submits an administrative write: it bumps the generation in the same transaction,
    /// and the change feed moves once it committed.
    fn admin_write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        let changes = self.changes.clone();
        self.writer.submit_then(
            move |c| {
                let value = work(c)?;
                Ok((value, bump_generation(c)?))
            },
            move |(value, generation)| {
                changes.send_if_modified(|seen| advance(seen, generation));
                value
            },
        )
    }

    /// Polls the generation for changes made by other processes.
    fn start_poller(&self) -> std::sync::mpsc::Sender<()> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (reads, changes) = (self.reads.clone(), self.changes.clone());
        let spawned = std::thread::Builder::new()
            .name("perch-store-changes".into())
            .spawn(move || {
                // A message never comes: the store dropping the sender is the stop signal.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(POLL_INTERVAL)
                {
                    match reads.run_now(generation) {
                        Ok(now) => {
                            changes.send_if_modified(|seen| advance(seen, now));
                        }
                        // Closed: no read will work again, and nobody needs the feed.
                        Err(StoreError::Closed) => break,
                        Err(error) => tracing::warn!(%error, "cannot poll for changes"),
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the change poller: changes by other processes are not seen");
        }
        stop
    }
}

/// Moves the seen generation forward only.
fn advance(seen: &mut i64, now: i64) -> bool {
    let moved = now > *seen;
    if moved {
        *seen = now;
    }
    moved
}

/// Writes a consistent copy of the store in `data_dir` to `target` (a new file, 0600 like
/// the store) while a server may go on writing; returns its size in bytes.
///
/// `VACUUM INTO` reads one snapshot in one read transaction, which WAL lets writers work
/// beside; the backup API would start over each time another connection writes, so under
/// steady posting it might never finish.
pub fn backup(data_dir: &Path, target: &Path) -> Result<u64, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    // Created empty here so that the copy is private from its first byte, and so that an
    // existing file is never overwritten.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(io(target))?;
    let copy = || -> Result<(), StoreError> {
        let source = Connection::open_with_flags(
            data_dir.join(DATABASE_FILE),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&source)?;
        let target = target
            .to_str()
            .ok_or_else(|| StoreError::Backend("the backup path is not UTF-8".into()))?;
        source.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    };
    if let Err(error) = copy() {
        let _ = std::fs::remove_file(target);
        return Err(error);
    }
    Ok(std::fs::metadata(target).map_err(io(target))?.len())
}

fn generation(c: &Connection) -> Result<i64, StoreError> {
    Ok(c.query_row(
        "SELECT value FROM meta WHERE key = 'generation'",
        [],
        |row| row.get(0),
    )?)
}

fn configure(connection: &Connection) -> Result<(), StoreError> {
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn bump_generation(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value",
        [],
        |row| row.get(0),
    )?)
}

const USER_COLUMNS: &str = "aor, display_name, enabled, ha1_md5, ha1_sha256, scram_sha1, scram_sha256, nt_hash, unlocked_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let aor: String = row.get(0)?;
    let ha1_md5: Option<String> = row.get(3)?;
    let ha1_sha256: Option<String> = row.get(4)?;
    let scram_sha1: Option<String> = row.get(5)?;
    let scram_sha256: Option<String> = row.get(6)?;
    let nt_hash: Option<String> = row.get(7)?;
    let digest = ha1_md5
        .zip(ha1_sha256)
        .map(|(md5, sha256)| DigestHa1 { md5, sha256 });
    let credentials = digest.map(|digest| Credentials {
        digest: Some(digest),
        scram_sha1: scram_sha1.and_then(|text| {
            decoded(
                &aor,
                "scram-sha-1",
                ScramVerifier::decode(&text, ScramHash::Sha1),
            )
        }),
        scram_sha256: scram_sha256.and_then(|text| {
            decoded(
                &aor,
                "scram-sha-256",
                ScramVerifier::decode(&text, ScramHash::Sha256),
            )
        }),
        nt_hash: nt_hash.and_then(|text| decoded(&aor, "ntlm", NtHash::decode(&text))),
    });
    Ok(UserRecord {
        aor,
        display_name: row.get(1)?,
        enabled: row.get(2)?,
        credentials,
        unlocked_at: row.get(8)?,
    })
}

/// A verifier that does not decode is treated as missing (that mechanism refuses the user
/// until a new password is set), not as a failure of the whole directory.
fn decoded<T>(aor: &str, mechanism: &str, result: Result<T, CredentialError>) -> Option<T> {
    match result {
        Ok(verifier) => Some(verifier),
        Err(error) => {
            tracing::warn!(user = aor, mechanism, %error, "stored verifier ignored");
            None
        }
    }
}

/// The verifier columns of a user, in USER_COLUMNS order from ha1_md5 on.
type VerifierColumns = [Option<String>; 5];

fn verifier_columns(credentials: Option<&Credentials>) -> VerifierColumns {
    let Some(credentials) = credentials else {
        return Default::default();
    };
    [
        credentials.digest.as_ref().map(|d| d.md5.clone()),
        credentials.digest.as_ref().map(|d| d.sha256.clone()),
        credentials.scram_sha1.as_ref().map(ScramVerifier::encode),
        credentials.scram_sha256.as_ref().map(ScramVerifier::encode),
        credentials.nt_hash.as_ref().map(NtHash::encode),
    ]
}

fn all_users(c: &Connection) -> Result<Vec<UserRecord>, StoreError> {
    let mut statement =
        c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY aor"))?;
    let rows = statement.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn select_user(connection: &Connection, aor: &str) -> Result<Option<UserRecord>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE aor = ?1"),
            [aor],
            user_from_row,
        )
        .optional()?)
}

impl DirectoryStore for SqliteStore {
    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(all_users)
    }

    fn user(&self, aor: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|c| select_user(c, aor))
    }

    fn add_user(&self, user: UserRecord) -> Pending<UserRecord> {
        self.admin_write(move |c| {
            if select_user(c, &user.aor)?.is_some() {
                return Err(StoreError::Duplicate(format!("user {}", user.aor)));
            }
            let [md5, sha256, scram_sha1, scram_sha256, nt_hash] =
                verifier_columns(user.credentials.as_ref());
            c.execute(
                "INSERT INTO users (aor, display_name, enabled, ha1_md5, ha1_sha256,
                                    scram_sha1, scram_sha256, nt_hash, created_at, unlocked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    user.aor,
                    user.display_name,
                    user.enabled,
                    md5,
                    sha256,
                    scram_sha1,
                    scram_sha256,
                    nt_hash,
                    now_seconds(),
                    user.unlocked_at
                ],
            )?;
            Ok(user)
        })
    }

    fn update_user(&self, aor: &str, change: UserChange) -> Pending<UserRecord> {
        let aor = aor.to_owned();
        self.admin_write(move |c| {
            let mut user =
                select_user(c, &aor)?.ok_or_else(|| StoreError::NotFound(format!("user {aor}")))?;
            change.apply(&mut user);
            let [md5, sha256, scram_sha1, scram_sha256, nt_hash] =
                verifier_columns(user.credentials.as_ref());
            c.execute(
                "UPDATE users SET display_name = ?2, enabled = ?3, ha1_md5 = ?4, ha1_sha256 = ?5,
                                  scram_sha1 = ?6, scram_sha256 = ?7, nt_hash = ?8,
                                  unlocked_at = ?9
                 WHERE aor = ?1",
                params![
                    aor,
                    user.display_name,
                    user.enabled,
                    md5,
                    sha256,
                    scram_sha1,
                    scram_sha256,
                    nt_hash,
                    user.unlocked_at
                ],
            )?;
            Ok(user)
        })
    }

    fn remove_user(&self, aor: &str) -> Pending<()> {
        let aor = aor.to_owned();
        self.admin_write(move |c| {
            if c.execute("DELETE FROM users WHERE aor = ?1", [&aor])? == 0 {
                return Err(StoreError::NotFound(format!("user {aor}")));
            }
            Ok(())
        })
    }
}

impl ModelStore for SqliteStore {
    fn load_model(&self) -> Result<ModelData, StoreError> {
        self.read(|c| {
            // One read transaction, so the model is a consistent snapshot.
            c.execute_batch("BEGIN")?;
            let model = chat::load_model(c);
            c.execute_batch("COMMIT")?;
            model
        })
    }

    fn save_group(&self, group: Group) -> Pending<()> {
        self.admin_write(move |c| chat::save_group(c, &group))
    }

    fn remove_group(&self, name: &str) -> Pending<()> {
        let name = name.to_owned();
        self.admin_write(move |c| chat::remove_group(c, &name))
    }

    fn set_policy(&self, scope: PolicyScope, enabled: Option<bool>) -> Pending<()> {
        self.admin_write(move |c| chat::set_policy(c, &scope, enabled))
    }

    fn set_setting(&self, name: &str, value: u32) -> Pending<()> {
        let name = name.to_owned();
        self.admin_write(move |c| chat::set_setting(c, &name, value))
    }

    fn save_category(&self, category: Category) -> Pending<Category> {
        self.admin_write(move |c| chat::save_category(c, category))
    }

    fn remove_category(&self, id: i64) -> Pending<()> {
        self.admin_write(move |c| chat::remove_category(c, id))
    }

    fn save_addin(&self, addin: Addin) -> Pending<()> {
        self.admin_write(move |c| chat::save_addin(c, &addin))
    }

    fn remove_addin(&self, name: &str) -> Pending<()> {
        let name = name.to_owned();
        self.admin_write(move |c| chat::remove_addin(c, &name))
    }

    fn save_room(&self, room: Room) -> Pending<Room> {
        self.admin_write(move |c| chat::save_room(c, room))
    }

    fn remove_room(&self, id: i64) -> Pending<()> {
        self.admin_write(move |c| chat::remove_room(c, id))
    }
}

impl ArchiveStore for SqliteStore {
    fn append_message(&self, message: ChatMessage) -> Pending<ChatMessage> {
        self.writer.submit_deferring(move |c| {
            let stored = chat::append_message(c, message)?;
            let id = stored.id;
            Ok((stored, id))
        })
    }

    fn history(&self, room_id: i64, query: HistoryQuery) -> Read<Vec<ChatMessage>> {
        // Searches have permits of their own: the history a join loads never waits for them.
        let lane = match query {
            HistoryQuery::Search { .. } => Lane::Search,
            HistoryQuery::Range(ref range) if !range.words.is_empty() => Lane::Search,
            _ => Lane::Plain,
        };
        self.read_later(lane, move |c| chat::history(c, room_id, &query))
    }

    fn last_message_id(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    fn clear_room(&self, id: i64, until: Option<i64>) -> Pending<usize> {
        self.admin_write(move |c| chat::clear_room(c, id, until))
    }
}

impl InvitationStore for SqliteStore {
    fn add_invitations(&self, invitations: Vec<(String, i64)>, now: i64) -> Pending<()> {
        self.admin_write(move |c| chat::add_invitations(c, &invitations, now))
    }

    fn invitations(&self, user: &str, after: i64) -> Read<Vec<(i64, i64)>> {
        let user = user.to_owned();
        self.read_later(Lane::Plain, move |c| chat::invitations(c, &user, after))
    }

    fn invitations_after(&self, after: i64, limit: u32) -> Read<Vec<(i64, String, i64)>> {
        self.read_later(Lane::Plain, move |c| {
            chat::invitations_after(c, after, limit)
        })
    }

    fn last_invitation_id(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT coalesce(max(id), 0) FROM invitations", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }
}

impl PreferenceStore for SqliteStore {
    fn preference(&self, user: &str, label: &str) -> Read<Option<(i64, String)>> {
        let (user, label) = (user.to_owned(), label.to_owned());
        self.read_later(Lane::Plain, move |c| chat::preference(c, &user, &label))
    }

    fn set_preference(
        &self,
        user: &str,
        label: &str,
        content: &str,
        quota: PreferenceQuota,
    ) -> Pending<i64> {
        let (user, label, content) = (user.to_owned(), label.to_owned(), content.to_owned());
        self.writer
            .submit(move |c| chat::set_preference(c, &user, &label, &content, quota))
    }

    fn preferences(&self, user: &str) -> Read<Vec<PreferenceEntry>> {
        let user = user.to_owned();
        self.read_later(Lane::Plain, move |c| chat::preferences(c, &user))
    }

    fn clear_preferences(&self, user: &str) -> Pending<usize> {
        let user = user.to_owned();
        self.admin_write(move |c| chat::clear_preferences(c, &user))
    }
}

impl AdminTokenStore for SqliteStore {
    fn add_admin_token(&self, name: &str, digest: [u8; 32], now: i64) -> Pending<()> {
        let name = name.to_owned();
        self.writer.submit(move |c| {
            c.execute(
                "INSERT INTO admin_tokens (name, digest, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![name, digest.as_slice(), now],
            )?;
            Ok(())
        })
    }

    fn admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        self.read(|c| {
            let mut statement =
                c.prepare("SELECT name, created_at, last_used_at FROM admin_tokens ORDER BY name")?;
            let tokens = statement
                .query_map([], |row| {
                    Ok(AdminToken {
                        name: row.get(0)?,
                        created_at: row.get(1)?,
                        last_used_at: row.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(tokens)
        })
    }

    fn remove_admin_token(&self, name: &str) -> Pending<bool> {
        let name = name.to_owned();
        self.writer
            .submit(move |c| Ok(c.execute("DELETE FROM admin_tokens WHERE name = ?1", [name])? > 0))
    }

    fn use_admin_token(&self, digest: [u8; 32], now: i64) -> Pending<Option<String>> {
        self.writer.submit(move |c| {
            use rusqlite::OptionalExtension;
            Ok(c.query_row(
                "UPDATE admin_tokens SET last_used_at = ?2 WHERE digest = ?1 RETURNING name",
                rusqlite::params![digest.as_slice(), now],
                |row| row.get(0),
            )
            .optional()?)
        })
    }
}

impl ChangeFeed for SqliteStore {
    fn changes(&self) -> watch::Receiver<i64> {
        self.poller.get_or_init(|| self.start_poller());
        self.changes.subscribe()
    }
}

impl Store for SqliteStore {
    fn close(&self) {
        self.writer.close();
        self.reads.close();
    }

    fn ready(&self) -> Result<(), StoreError> {
        if let Some(reason) = self.writer.death() {
            return Err(StoreError::Backend(format!("the writer died: {reason}")));
        }
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.writer.close();
        self.reads.close();
    }
}

/// The store holds every message (secret rooms too) and password-equivalent verifiers
/// (Digest HA1, NT hash): its directory is 0700 and its files 0600, whatever the umask.
/// SQLite gives the WAL and shared-memory files the database file's mode. Looser modes
/// found on an existing store are tightened, and said so.
fn make_private(data_dir: &Path, database: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(io(data_dir))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(database)
        .map_err(io(database))?;
    let mut targets = vec![(data_dir.to_path_buf(), 0o700)];
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        targets.push((PathBuf::from(name), 0o600));
    }
    for (path, mode) in targets {
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue; // the WAL and shared-memory files come later, with the right mode
        };
        let current = metadata.permissions().mode() & 0o777;
        if current & !mode != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io(&path))?;
            tracing::warn!(
                path = %path.display(),
                was = format_args!("{current:o}"),
                now = format_args!("{mode:o}"),
                "store file was readable by others; permissions tightened"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Posts are indexed per batch by the writer: whatever the batches hold (posts only,
    /// posts followed by a clear of their room, a room removed), the index always equals
    /// the messages (FTS5's integrity check against its content) and finds every post.
    #[test]
    fn posts_indexed_per_batch_keep_the_index_equal_to_the_messages() {
        use crate::core::ports::{ArchiveStore, ChatMessage, HistoryQuery, ModelStore, wait};
        let dir = crate::core::fixtures::TempDir::new("fts-batches");
        let store = SqliteStore::open(dir.path()).unwrap();
        let category =
            wait(store.save_category(crate::core::fixtures::category("C", "x", true))).unwrap();
        let room = |name: &str| {
            wait(store.save_room(crate::core::model::Room::new(name, name, category.id))).unwrap()
        };
        let (kept, cleared, removed) = (room("kept"), room("cleared"), room("removed"));
        let post = |room_id: i64, n: usize| {
            store.append_message(ChatMessage {
                id: 0,
                room_id,
                author: "a@x".into(),
                ts: n as i64,
                text: format!("findable word{n}"),
                extension: None,
            })
        };
        // Submitted without waiting, so that they share batches with what follows.
        let mut pending = Vec::new();
        for n in 0..300 {
            pending.push(post([kept.id, cleared.id, removed.id][n % 3], n));
        }
        let clear = store.clear_room(cleared.id, None);
        let later = post(kept.id, 300);
        let remove = store.remove_room(removed.id);
        for p in pending {
            wait(p).unwrap();
        }
        wait(clear).unwrap();
        wait(later).unwrap();
        wait(remove).unwrap();
        let check = wait(store.writer.submit(|c| {
            Ok(c.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
                [],
            )?)
        }));
        assert!(check.is_ok(), "{check:?}");
        let search = |room_id: i64| {
            crate::core::ports::read_blocking(store.history(
                room_id,
                HistoryQuery::Search {
                    words: vec!["findable".into()],
                    count: 1000,
                },
            ))
            .unwrap()
            .len()
        };
        assert_eq!(search(kept.id), 101);
        assert_eq!(search(cleared.id), 0);
        store.close();
    }

    /// Archive pages: ids between bounds, times within a window, one author, from either end.
    #[test]
    fn history_ranges_bound_ids_times_and_authors() {
        use crate::core::ports::{
            ArchiveStore, ChatMessage, HistoryQuery, HistoryRange, ModelStore, read_blocking, wait,
        };
        let dir = crate::core::fixtures::TempDir::new("history-ranges");
        let store = SqliteStore::open(dir.path()).unwrap();
        let category =
            wait(store.save_category(crate::core::fixtures::category("C", "x", true))).unwrap();
        let room =
            wait(store.save_room(crate::core::model::Room::new("r", "r", category.id))).unwrap();
        for n in 1..=10i64 {
            wait(store.append_message(ChatMessage {
                id: 0,
                room_id: room.id,
                author: if n % 2 == 0 { "bob@x" } else { "alice@x" }.into(),
                ts: n * 100,
                text: format!("m{n}"),
                extension: None,
            }))
            .unwrap();
        }
        let ids = |range: HistoryRange| -> Vec<i64> {
            read_blocking(store.history(room.id, HistoryQuery::Range(range)))
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(ids(HistoryRange::all(3)), [1, 2, 3]);
        assert_eq!(
            ids(HistoryRange {
                newest: true,
                ..HistoryRange::all(3)
            }),
            [8, 9, 10],
            "from the newest end, still oldest first"
        );
        assert_eq!(
            ids(HistoryRange {
                after: 2,
                before: 9,
                since: 400,
                until: 700,
                ..HistoryRange::all(10)
            }),
            [4, 5, 6, 7]
        );
        assert_eq!(
            ids(HistoryRange {
                author: Some("bob@x".into()),
                newest: true,
                ..HistoryRange::all(2)
            }),
            [8, 10]
        );
        store.close();
    }

    /// Ids are never handed out twice: not after clearing the room that held the newest
    /// messages, nor after removing it, nor across a restart.
    #[test]
    fn message_and_invitation_ids_are_never_reused() {
        use crate::core::ports::{
            ArchiveStore, ChatMessage, InvitationStore, ModelStore, read_blocking, wait,
        };
        let dir = crate::core::fixtures::TempDir::new("ids-never-reused");
        let store = SqliteStore::open(dir.path()).unwrap();
        let category =
            wait(store.save_category(crate::core::fixtures::category("C", "x", true))).unwrap();
        let kept =
            wait(store.save_room(crate::core::model::Room::new("k", "k", category.id))).unwrap();
        let newest =
            wait(store.save_room(crate::core::model::Room::new("n", "n", category.id))).unwrap();
        let post = |store: &SqliteStore, room_id: i64| {
            wait(store.append_message(ChatMessage {
                id: 0,
                room_id,
                author: "a@x".into(),
                ts: 1,
                text: "t".into(),
                extension: None,
            }))
            .unwrap()
            .id
        };
        post(&store, kept.id);
        post(&store, newest.id);
        let highest = post(&store, newest.id);
        wait(store.clear_room(newest.id, None)).unwrap();
        assert_eq!(post(&store, kept.id), highest + 1);
        wait(store.add_invitations(vec![("b@x".into(), newest.id)], 1)).unwrap();
        let invited = read_blocking(store.invitations("b@x", 0)).unwrap()[0].0;
        let last = post(&store, newest.id);
        wait(store.remove_room(newest.id)).unwrap();
        store.close();

        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(post(&store, kept.id), last + 1);
        wait(store.add_invitations(vec![("b@x".into(), kept.id)], 2)).unwrap();
        let again = read_blocking(store.invitations("b@x", 0)).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].0, invited + 1);
        store.close();
    }

    /// A full-text search within an archive page: the words and every other bound at once,
    /// paged from either end.
    #[test]
    fn history_ranges_search_within_their_bounds() {
        use crate::core::ports::{
            ArchiveStore, ChatMessage, HistoryQuery, HistoryRange, ModelStore, read_blocking, wait,
        };
        let dir = crate::core::fixtures::TempDir::new("history-range-search");
        let store = SqliteStore::open(dir.path()).unwrap();
        let category =
            wait(store.save_category(crate::core::fixtures::category("C", "x", true))).unwrap();
        let room =
            wait(store.save_room(crate::core::model::Room::new("r", "r", category.id))).unwrap();
        let other =
            wait(store.save_room(crate::core::model::Room::new("o", "o", category.id))).unwrap();
        for n in 1..=12i64 {
            for (room_id, text) in [
                (room.id, format!("deploy note {n}")),
                (other.id, "deploy".into()),
            ] {
                wait(store.append_message(ChatMessage {
                    id: 0,
                    room_id,
                    author: if n % 3 == 0 { "bob@x" } else { "alice@x" }.into(),
                    ts: n * 100,
                    text: if n % 2 == 0 {
                        text
                    } else {
                        format!("chatter {n}")
                    },
                    extension: None,
                }))
                .unwrap();
            }
        }
        let texts = |range: HistoryRange| -> Vec<String> {
            read_blocking(store.history(room.id, HistoryQuery::Range(range)))
                .unwrap()
                .into_iter()
                .map(|m| m.text)
                .collect()
        };
        let deploy = || HistoryRange {
            words: vec!["deploy".into()],
            ..HistoryRange::all(3)
        };
        assert_eq!(
            texts(deploy()),
            ["deploy note 2", "deploy note 4", "deploy note 6"]
        );
        assert_eq!(
            texts(HistoryRange {
                newest: true,
                ..deploy()
            }),
            ["deploy note 8", "deploy note 10", "deploy note 12"]
        );
        // The page after the first, as RSM's <after/> asks: ids are the room's own, so
        // the bound is the id of "deploy note 6".
        let sixth =
            read_blocking(store.history(room.id, HistoryQuery::Range(deploy()))).unwrap()[2].id;
        assert_eq!(
            texts(HistoryRange {
                after: sixth,
                ..deploy()
            }),
            ["deploy note 8", "deploy note 10", "deploy note 12"]
        );
        assert_eq!(
            texts(HistoryRange {
                author: Some("bob@x".into()),
                since: 500,
                ..deploy()
            }),
            ["deploy note 6", "deploy note 12"]
        );
        assert!(
            texts(HistoryRange {
                until: 150,
                ..deploy()
            })
            .is_empty()
        );
        store.close();
    }

    #[test]
    fn concurrent_administrators_wait_their_turn_instead_of_failing() {
        // Several `perch admin` processes at once: separate connections to one file.
        let dir = crate::core::fixtures::TempDir::new("concurrent-admin");
        let data = dir.path().to_path_buf();
        drop(SqliteStore::open(&data).unwrap());
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let data = data.clone();
                std::thread::spawn(move || {
                    let store = SqliteStore::open(&data).unwrap();
                    let mut failures = Vec::new();
                    for n in 0..40 {
                        let mut category = crate::core::fixtures::category(
                            &format!("c{worker}-{n}"),
                            "example.test",
                            true,
                        );
                        category.description = format!("worker {worker}");
                        if let Err(error) = crate::core::ports::wait(store.save_category(category))
                        {
                            failures.push(error.to_string());
                        }
                    }
                    failures
                })
            })
            .collect();
        let failures: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        assert!(
            failures.is_empty(),
            "{} failed: {:?}",
            failures.len(),
            failures.first()
        );
        let store = SqliteStore::open(&data).unwrap();
        assert_eq!(store.load_model().unwrap().categories.len(), 160);
    }

    #[test]
    fn the_store_is_private_whatever_the_umask_and_loose_modes_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::core::fixtures::TempDir::new("private");
        let data = dir.path().join("data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        {
            let store = SqliteStore::open(&data).unwrap();
            crate::core::ports::wait(store.add_user(crate::core::ports::UserRecord {
                unlocked_at: 0,
                aor: "alice@example.test".into(),
                display_name: String::new(),
                enabled: true,
                credentials: Some(crate::core::credentials::Credentials::derive(
                    "alice@example.test",
                    "pw",
                )),
            }))
            .unwrap();
            assert_eq!(mode(&data), 0o700);
            for file in std::fs::read_dir(&data).unwrap() {
                let path = file.unwrap().path();
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let database = data.join(DATABASE_FILE);
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = SqliteStore::open(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&database), 0o600);
    }

    use super::*;
    use crate::core::fixtures::TempDir;
    use crate::core::ports::wait;

    fn user(aor: &str) -> UserRecord {
        UserRecord {
            unlocked_at: 0,
            aor: aor.into(),
            display_name: "A".into(),
            enabled: true,
            credentials: Some(Credentials::derive(aor, "pw")),
        }
    }

    /// A change another process makes (here a second store on the same files, as
    /// `perch admin` opens one) reaches a running server's change feed by polling.
    #[tokio::test]
    async fn changes_by_another_process_reach_the_feed() {
        let temp = TempDir::new("store");
        let dir = temp.path().to_path_buf();
        let server = SqliteStore::open(&dir).unwrap();
        let mut changes = server.changes();
        let admin = SqliteStore::open(&dir).unwrap();
        let admin_write = tokio::task::spawn_blocking(move || {
            wait(admin.add_user(user("a@x"))).unwrap();
            admin.close();
        });
        admin_write.await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
            .await
            .expect("the feed did not move within 5 s")
            .unwrap();
        server.close();
    }

    #[test]
    fn user_lifecycle_on_disk() {
        let temp = TempDir::new("store");
        let dir = temp.path().to_path_buf();
        let store = SqliteStore::open(&dir).unwrap();
        let changes = store.changes();
        let g0 = *changes.borrow();
        wait(store.add_user(user("a@x"))).unwrap();
        assert!(matches!(
            wait(store.add_user(user("a@x"))),
            Err(StoreError::Duplicate(_))
        ));
        let changed = wait(store.update_user(
            "a@x",
            UserChange {
                enabled: Some(false),
                ..Default::default()
            },
        ))
        .unwrap();
        assert!(!changed.enabled);
        // The change feed moved at the commit, before the writer answered.
        assert!(*changes.borrow() > g0);
        store.close();
        drop(store);

        let reopened = SqliteStore::open(&dir).unwrap();
        let users = reopened.users().unwrap();
        assert_eq!(users.len(), 1);
        // Every verifier survives the round trip through the disk.
        assert_eq!(
            users[0].credentials,
            Some(Credentials::derive("a@x", "pw")).map(|fresh| Credentials {
                scram_sha1: users[0].credentials.as_ref().unwrap().scram_sha1.clone(),
                scram_sha256: users[0].credentials.as_ref().unwrap().scram_sha256.clone(),
                ..fresh
            })
        );
        assert!(users[0].credentials.as_ref().unwrap().missing().is_empty());
        wait(reopened.remove_user("a@x")).unwrap();
        assert!(matches!(
            wait(reopened.remove_user("a@x")),
            Err(StoreError::NotFound(_))
        ));
        reopened.close();
        assert!(matches!(
            wait(reopened.add_user(user("b@x"))),
            Err(StoreError::Closed)
        ));
    }

    #[test]
    fn concurrent_writes_are_grouped_and_all_answered() {
        let temp = TempDir::new("store");
        let dir = temp.path().to_path_buf();
        let store = SqliteStore::open(&dir).unwrap();
        let pending: Vec<_> = (0..200)
            .map(|i| store.add_user(user(&format!("u{i}@x"))))
            .collect();
        for p in pending {
            wait(p).unwrap();
        }
        assert_eq!(store.users().unwrap().len(), 200);
    }

    /// Posts are written without a savepoint each: a failing one (here a room that does not
    /// exist) must leave the others of its batch, a delete among them and the search index
    /// intact.
    #[test]
    fn a_failed_post_leaves_its_batch_intact() {
        let temp = TempDir::new("store");
        let dir = temp.path().to_path_buf();
        let store = SqliteStore::open(&dir).unwrap();
        let room = test_room(&store);
        // Submitted together, so the writer runs them in one transaction (most likely; the
        // outcome must be the same if it does not).
        let mut posts = Vec::new();
        let mut cleared = None;
        for i in 0..20 {
            if i == 13 {
                cleared = Some(store.clear_room(room.id, Some(3)));
            }
            let target = if i == 7 { room.id + 1000 } else { room.id };
            posts.push(store.append_message(ChatMessage {
                id: 0,
                room_id: target,
                author: "a@x".into(),
                ts: i,
                text: format!("word{i} common"),
                extension: None,
            }));
        }
        let outcomes: Vec<_> = posts.into_iter().map(wait).collect();
        assert!(outcomes[7].is_err());
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 19);
        // ts 0 to 3 were posted before the clear.
        assert_eq!(wait(cleared.unwrap()).unwrap(), 4);
        assert_eq!(search(&store, room.id, &["common"]), 15);
        assert_eq!(search(&store, room.id, &["word8"]), 1);
        assert_eq!(search(&store, room.id, &["word7"]), 0);
        assert_eq!(search(&store, room.id, &["word2"]), 0);
        store.close();
        assert_index_true(&dir);
    }

    fn test_room(store: &SqliteStore) -> Room {
        let category = wait(store.save_category(Category {
            id: 0,
            name: "C".into(),
            description: String::new(),
            allowed: Vec::new(),
            denied: Vec::new(),
            creators: Vec::new(),
            invitations: false,
            file_upload: false,
            chat_history: true,
        }))
        .unwrap();
        wait(store.save_room(Room::new("r", "R", category.id))).unwrap()
    }

    fn search(store: &SqliteStore, room_id: i64, words: &[&str]) -> usize {
        let query = HistoryQuery::Search {
            words: words.iter().map(|w| w.to_string()).collect(),
            count: 100,
        };
        crate::core::ports::read_blocking(store.history(room_id, query))
            .unwrap()
            .len()
    }

    /// FTS5's own check, with rank 1 also against the messages table: it fails on an
    /// index that misses rows, has extra ones or disagrees with the text.
    fn assert_index_true(dir: &Path) {
        let c = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        c.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
    }
}
