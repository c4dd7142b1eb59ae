//! SQLite store: WAL mode, one writer thread with group commit, a small pool of read
//! connections for queries.

mod chat;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::migrate::migrate;
use super::writer::Writer;
use super::{
    Credentials, HistoryQuery, ModelData, Pending, Store, StoreError, StoredMessage, UserChange,
    UserRecord,
};
use crate::core::model::{Addin, Category, Group, PolicyScope, Room};

pub const DATABASE_FILE: &str = "perch.sqlite3";

pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let mut connection = Connection::open(&path)?;
        configure(&connection)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL would only risk the last commits on power loss; a post must
        // never be lost once acknowledged, so every commit is synced.
        connection.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut connection)?;
        Ok(Self {
            path,
            writer: Writer::start(connection)?,
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs a query on a pooled read connection.
    fn read<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&connection)?;
                connection
            }
        };
        let result = query(&connection);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(connection);
        }
        result
    }
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

fn bump_generation(connection: &Connection) -> Result<(), StoreError> {
    connection.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
        [],
    )?;
    Ok(())
}

const USER_COLUMNS: &str = "aor, display_name, enabled, ha1_md5, ha1_sha256";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let ha1_md5: Option<String> = row.get(3)?;
    let ha1_sha256: Option<String> = row.get(4)?;
    Ok(UserRecord {
        aor: row.get(0)?,
        display_name: row.get(1)?,
        enabled: row.get(2)?,
        credentials: ha1_md5
            .zip(ha1_sha256)
            .map(|(ha1_md5, ha1_sha256)| Credentials {
                ha1_md5,
                ha1_sha256,
            }),
    })
}

fn all_users(c: &Connection) -> Result<Vec<UserRecord>, StoreError> {
    let mut statement =
        c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY aor"))?;
    let rows = statement.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Submits an administrative write: it bumps the generation in the same transaction, so
/// running servers reload.
fn admin_write<T: Send + 'static>(
    writer: &Writer,
    work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
) -> Pending<T> {
    writer.submit(move |c| {
        let value = work(c)?;
        bump_generation(c)?;
        Ok(value)
    })
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

impl Store for SqliteStore {
    fn generation(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM meta WHERE key = 'generation'",
                [],
                |row| row.get(0),
            )?)
        })
    }

    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(all_users)
    }

    fn user(&self, aor: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|c| select_user(c, aor))
    }

    fn add_user(&self, user: UserRecord) -> Pending<UserRecord> {
        self.writer.submit(move |c| {
            if select_user(c, &user.aor)?.is_some() {
                return Err(StoreError::Duplicate(format!("user {}", user.aor)));
            }
            let (md5, sha256) = match &user.credentials {
                Some(creds) => (Some(&creds.ha1_md5), Some(&creds.ha1_sha256)),
                None => (None, None),
            };
            c.execute(
                "INSERT INTO users (aor, display_name, enabled, ha1_md5, ha1_sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    user.aor,
                    user.display_name,
                    user.enabled,
                    md5,
                    sha256,
                    now_seconds()
                ],
            )?;
            bump_generation(c)?;
            Ok(user)
        })
    }

    fn update_user(&self, aor: &str, change: UserChange) -> Pending<UserRecord> {
        let aor = aor.to_owned();
        self.writer.submit(move |c| {
            let mut user =
                select_user(c, &aor)?.ok_or_else(|| StoreError::NotFound(format!("user {aor}")))?;
            if let Some(name) = change.display_name {
                user.display_name = name;
            }
            if let Some(enabled) = change.enabled {
                user.enabled = enabled;
            }
            if let Some(credentials) = change.credentials {
                user.credentials = Some(credentials);
            }
            let (md5, sha256) = match &user.credentials {
                Some(creds) => (Some(&creds.ha1_md5), Some(&creds.ha1_sha256)),
                None => (None, None),
            };
            c.execute(
                "UPDATE users SET display_name = ?2, enabled = ?3, ha1_md5 = ?4, ha1_sha256 = ?5
                 WHERE aor = ?1",
                params![aor, user.display_name, user.enabled, md5, sha256],
            )?;
            bump_generation(c)?;
            Ok(user)
        })
    }

    fn remove_user(&self, aor: &str) -> Pending<()> {
        let aor = aor.to_owned();
        self.writer.submit(move |c| {
            if c.execute("DELETE FROM users WHERE aor = ?1", [&aor])? == 0 {
                return Err(StoreError::NotFound(format!("user {aor}")));
            }
            bump_generation(c)
        })
    }

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
        admin_write(&self.writer, move |c| chat::save_group(c, &group))
    }

    fn remove_group(&self, name: &str) -> Pending<()> {
        let name = name.to_owned();
        admin_write(&self.writer, move |c| chat::remove_group(c, &name))
    }

    fn set_policy(&self, scope: PolicyScope, enabled: Option<bool>) -> Pending<()> {
        admin_write(&self.writer, move |c| chat::set_policy(c, &scope, enabled))
    }

    fn set_setting(&self, name: &str, value: u32) -> Pending<()> {
        let name = name.to_owned();
        admin_write(&self.writer, move |c| chat::set_setting(c, &name, value))
    }

    fn save_category(&self, category: Category) -> Pending<Category> {
        admin_write(&self.writer, move |c| chat::save_category(c, category))
    }

    fn remove_category(&self, id: i64) -> Pending<()> {
        admin_write(&self.writer, move |c| chat::remove_category(c, id))
    }

    fn save_addin(&self, addin: Addin) -> Pending<()> {
        admin_write(&self.writer, move |c| chat::save_addin(c, &addin))
    }

    fn remove_addin(&self, name: &str) -> Pending<()> {
        let name = name.to_owned();
        admin_write(&self.writer, move |c| chat::remove_addin(c, &name))
    }

    fn save_room(&self, room: Room) -> Pending<Room> {
        admin_write(&self.writer, move |c| chat::save_room(c, room))
    }

    fn remove_room(&self, id: i64) -> Pending<()> {
        admin_write(&self.writer, move |c| chat::remove_room(c, id))
    }

    fn clear_room(&self, id: i64, until: Option<i64>) -> Pending<usize> {
        admin_write(&self.writer, move |c| chat::clear_room(c, id, until))
    }

    fn append_message(
        &self,
        room_id: i64,
        author: &str,
        ts: i64,
        body: &str,
        extra: &str,
    ) -> Pending<StoredMessage> {
        let (author, body, extra) = (author.to_owned(), body.to_owned(), extra.to_owned());
        self.writer
            .submit_statement(move |c| chat::append_message(c, room_id, &author, ts, &body, &extra))
    }

    fn history(
        &self,
        room_id: i64,
        query: &HistoryQuery,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(|c| chat::history(c, room_id, query))
    }

    fn add_invitations(&self, invitations: Vec<(String, i64)>, now: i64) -> Pending<()> {
        self.writer
            .submit(move |c| chat::add_invitations(c, &invitations, now))
    }

    fn invitations(&self, user: &str, after: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.read(|c| chat::invitations(c, user, after))
    }

    fn preference(&self, user: &str, label: &str) -> Result<Option<(i64, String)>, StoreError> {
        self.read(|c| chat::preference(c, user, label))
    }

    fn set_preference(&self, user: &str, label: &str, content: &str) -> Pending<i64> {
        let (user, label, content) = (user.to_owned(), label.to_owned(), content.to_owned());
        self.writer
            .submit(move |c| chat::set_preference(c, &user, &label, &content))
    }

    fn close(&self) {
        self.writer.close();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.writer.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::wait;

    fn user(aor: &str) -> UserRecord {
        UserRecord {
            aor: aor.into(),
            display_name: "A".into(),
            enabled: true,
            credentials: Some(Credentials {
                ha1_md5: "m".into(),
                ha1_sha256: "s".into(),
            }),
        }
    }

    #[test]
    fn user_lifecycle_on_disk() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir).unwrap();
        let g0 = store.generation().unwrap();
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
        assert!(store.generation().unwrap() > g0);
        store.close();
        drop(store);

        let reopened = SqliteStore::open(&dir).unwrap();
        let users = reopened.users().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].credentials.as_ref().unwrap().ha1_sha256, "s");
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
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_writes_are_grouped_and_all_answered() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir).unwrap();
        let pending: Vec<_> = (0..200)
            .map(|i| store.add_user(user(&format!("u{i}@x"))))
            .collect();
        for p in pending {
            wait(p).unwrap();
        }
        assert_eq!(store.users().unwrap().len(), 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Posts are written without a savepoint each: a failing one (here a room that does not
    /// exist) must leave the others of its batch, a delete among them and the search index
    /// intact.
    #[test]
    fn a_failed_post_leaves_its_batch_intact() {
        let dir = tempdir();
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
            posts.push(store.append_message(target, "a@x", i, &format!("word{i} common"), ""));
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
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn test_room(store: &SqliteStore) -> Room {
        use crate::core::model::{Invitations, Privacy, RoomType};
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
        wait(store.save_room(Room {
            id: 0,
            uid: "r".into(),
            name: "R".into(),
            description: String::new(),
            category: category.id,
            privacy: Privacy::Open,
            kind: RoomType::Normal,
            invitations: Invitations::Inherit,
            disabled: false,
            addin: None,
            members: Vec::new(),
            managers: Vec::new(),
            presenters: Vec::new(),
        }))
        .unwrap()
    }

    fn search(store: &SqliteStore, room_id: i64, words: &[&str]) -> usize {
        let query = HistoryQuery::Search {
            words: words.iter().map(|w| w.to_string()).collect(),
            count: 100,
        };
        store.history(room_id, &query).unwrap().len()
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

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "perch-store-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
