//! The storage limit: raw SQLite inserts of message-sized rows in batches, one transaction
//! per batch, WAL with synchronous=FULL as perch's store runs, on the same disk as the
//! data directory. No savepoints, no channels, no async: what perch's writer could reach
//! at best with the same batch size.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::procfs;
use crate::text::TextGenerator;

#[derive(Debug, thiserror::Error)]
pub enum SqliteBaselineError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub data: PathBuf,
    pub duration: Duration,
    pub batch: usize,
    pub row_bytes: usize,
    /// Also build perch's two message indexes and its FTS5 index (what perch's own
    /// inserts pay for).
    pub perch_schema: bool,
    /// Wrap each row in its own savepoint, as perch's writer wraps each write.
    pub savepoint_per_row: bool,
    /// Stop after this many rows even if time is left.
    pub max_rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SqliteReport {
    pub path: String,
    pub rows: u64,
    pub commits: u64,
    pub secs: f64,
    pub rows_per_s: f64,
    pub commits_per_s: f64,
    pub batch: usize,
    pub row_bytes: usize,
    pub perch_schema: bool,
    pub savepoint_per_row: bool,
    pub load_average: Option<[f64; 3]>,
}

const FILE: &str = "perch-load-baseline.sqlite3";

/// The messages table of perch's migration 0002, without the foreign key.
const TABLE: &str = "CREATE TABLE messages (
    id      INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL,
    author  TEXT NOT NULL,
    ts      INTEGER NOT NULL,
    body    TEXT NOT NULL,
    extra   TEXT NOT NULL DEFAULT ''
) STRICT;";

/// perch's indexes on messages (migrations 0002, 0006 and 0008: the full-text index is
/// filled once per batch, as perch's writer does, not by a trigger per row).
const PERCH_INDEXES: &str = "
CREATE INDEX messages_by_room ON messages (room_id, id);
CREATE INDEX messages_by_room_time ON messages (room_id, ts);
CREATE VIEW messages_fts_source (id, body, room_key) AS
    SELECT id, body, 'r' || room_id FROM messages;
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body, room_key, content = 'messages_fts_source', content_rowid = 'id'
);";

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Inserts rows until the duration or the row cap is reached; removes its database after.
pub fn run(options: &SqliteOptions) -> Result<SqliteReport, SqliteBaselineError> {
    std::fs::create_dir_all(&options.data).map_err(|source| SqliteBaselineError::Io {
        path: options.data.display().to_string(),
        source,
    })?;
    let path = options.data.join(FILE);
    remove_database(&path);
    let result = insert_rows(&path, options);
    remove_database(&path);
    result
}

fn insert_rows(path: &Path, options: &SqliteOptions) -> Result<SqliteReport, SqliteBaselineError> {
    let mut connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.execute_batch(TABLE)?;
    if options.perch_schema {
        connection.execute_batch(PERCH_INDEXES)?;
    }
    let batch = options.batch.max(1);
    let mut text = TextGenerator::new(4000, options.row_bytes, 1);
    let bodies: Vec<String> = (0..1024)
        .map(|_| {
            let mut body = String::new();
            text.message(&mut body, &[]);
            body
        })
        .collect();
    let author = "load000001@example.test";
    let body = |row: u64| bodies[row as usize % bodies.len()].as_str();
    let started = Instant::now();
    let (mut rows, mut commits) = (0u64, 0u64);
    while started.elapsed() < options.duration && rows < options.max_rows {
        let mut tx = connection.transaction()?;
        let first = rows + 1;
        for _ in 0..batch {
            rows += 1;
            let room = (rows % 100) as i64;
            if options.savepoint_per_row {
                let savepoint = tx.savepoint()?;
                insert(&savepoint, room, author, rows, body(rows))?;
                savepoint.commit()?;
            } else {
                insert(&tx, room, author, rows, body(rows))?;
            }
        }
        if options.perch_schema {
            // The rows' ids are 1, 2, ... (a fresh table, one writer).
            tx.prepare_cached(
                "INSERT INTO messages_fts (rowid, body, room_key)
                 SELECT id, body, room_key FROM messages_fts_source WHERE id BETWEEN ?1 AND ?2",
            )?
            .execute(params![first as i64, rows as i64])?;
        }
        tx.commit()?;
        commits += 1;
    }
    let secs = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let savepoint_per_row = options.savepoint_per_row;
    Ok(SqliteReport {
        path: path.display().to_string(),
        rows,
        commits,
        secs,
        rows_per_s: rows as f64 / secs,
        commits_per_s: commits as f64 / secs,
        batch,
        row_bytes: options.row_bytes,
        perch_schema: options.perch_schema,
        savepoint_per_row,
        load_average: procfs::load_average(),
    })
}

fn insert(
    connection: &Connection,
    room: i64,
    author: &str,
    n: u64,
    body: &str,
) -> Result<(), rusqlite::Error> {
    connection
        .prepare_cached(
            "INSERT INTO messages (room_id, author, ts, body, extra) VALUES (?1, ?2, ?3, ?4, '')",
        )?
        .execute(params![room, author, n as i64, body])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("perch-load-sqlite-{}", std::process::id()));
        for (perch_schema, savepoint_per_row) in [(false, false), (true, true)] {
            let report = run(&SqliteOptions {
                data: dir.clone(),
                duration: Duration::from_secs(5),
                batch: 10,
                row_bytes: 50,
                perch_schema,
                savepoint_per_row,
                max_rows: 30,
            })
            .unwrap();
            assert_eq!(report.rows, 30);
            assert_eq!(report.commits, 3);
            assert!(!dir.join(FILE).exists());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
