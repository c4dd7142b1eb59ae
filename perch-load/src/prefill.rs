//! `perch-load prefill`: bulk history. Writes N messages straight into perch's SQLite
//! database in a data directory, spread over its rooms, with text drawn from a vocabulary
//! of a few thousand words (Zipf-distributed, so search terms have realistic selectivity)
//! and rare marker words at frequencies chosen on the command line (their exact counts,
//! per room, are reported, so the `history` scenario can search for terms with known hit
//! counts).
//!
//! It is fast because it bypasses perch: one connection holding the database exclusively
//! (perch must not be running, and cannot start meanwhile), a rollback journal without
//! fsync while loading, large transactions with one prepared statement, and the FTS5 index
//! built once at the end (`rebuild`) instead of row by row through the insert trigger,
//! which is dropped during the load and recreated from perch's own migration text. The last
//! transaction (index, trigger) is committed with `synchronous=FULL`, then the database is
//! put back in WAL mode. An interrupted prefill leaves the trigger dropped; the next
//! `prefill` (even with `--messages 0`) notices, rebuilds the index and recreates it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use perch::store::sqlite::DATABASE_FILE;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::LoadError;
use crate::procfs;
use crate::random::Random;
use crate::text::TextGenerator;

/// perch's migration that defined the messages' FTS5 index and its triggers. perch indexes
/// posts itself since migration 0008 (once per writer batch); `--fts triggers` puts the
/// old per-row insert trigger, taken from this text and never retyped, in place for its
/// load only.
const FTS_MIGRATION: &str =
    include_str!("../../src/store/sqlite/migrations/0006_search_by_room.sql");
/// The schema version perch's migrations bring the database to. Those after 0002 add
/// columns with constant defaults, which prefill's inserts leave to SQLite, and (0006)
/// index each message's room, which the trigger and the rebuild take from the view.
const CHAT_SCHEMA_VERSION: i64 = perch::store::sqlite::SCHEMA_VERSION;
const INSERT_TRIGGER: &str = "messages_fts_insert";
/// A `meta` row a load leaves while its rows are not indexed yet (the id they start
/// after); the next run finds it after an interruption and indexes everything.
const PENDING_MARK: &str = "prefill_unindexed_after";

#[derive(Args, Debug, Clone)]
pub struct PrefillArgs {
    /// perch data directory with a provisioned store (users and rooms); perch must not be
    /// running on it.
    #[arg(long)]
    pub data: PathBuf,
    /// Messages to add (0: only repair or check the store).
    #[arg(long)]
    pub messages: u64,
    /// Only rooms with exactly this many user members.
    #[arg(long, conflicts_with = "room")]
    pub rooms_of_size: Option<usize>,
    /// Only this room (by name; repeat for more) [default: every enabled room].
    #[arg(long)]
    pub room: Vec<String>,
    /// Share of the messages that go to one hot room (the selected room with the most
    /// members); the rest go round-robin to the others. 0: round-robin over all.
    #[arg(long, default_value_t = 0.0)]
    pub hot_share: f64,
    /// Mean bytes of text per message (each is between half and one and a half times it).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Rows per transaction.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Words in the vocabulary (the most common English words first, then made-up ones),
    /// drawn with Zipf's law.
    #[arg(long, default_value_t = 4000)]
    pub vocabulary: usize,
    /// Marker words: for each N, the word `pmkN` is put in a message with probability 1/N.
    /// Their exact counts (per room too) are reported.
    #[arg(long, value_delimiter = ',', default_value = "100,10000,1000000")]
    pub markers: Vec<u64>,
    /// Messages are dated over this many days up to now, oldest first.
    #[arg(long, default_value_t = 365)]
    pub span_days: u64,
    /// Seed of the text, authors and markers (the same seed writes the same messages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How the full-text index is built: after the load for the new rows (deferred) or for
    /// all rows (rebuild); or by a per-row insert trigger (perch's before migration 0008)
    /// as each row goes in (triggers).
    #[arg(long, value_enum, default_value_t = FtsMode::Rebuild)]
    pub fts: FtsMode,
    /// Afterwards run `PRAGMA integrity_check` and the FTS5 `integrity-check` against the
    /// messages table (minutes on millions of messages).
    #[arg(long)]
    pub verify: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FtsMode {
    /// Index the new rows after the load, in chunks.
    Deferred,
    /// FTS5's `rebuild` of the whole index after the load.
    Rebuild,
    /// A per-row insert trigger (perch's before migration 0008) indexes each row as it
    /// goes in; it is dropped again afterwards.
    Triggers,
}

#[derive(Debug, thiserror::Error)]
pub enum PrefillError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no perch store in {0} (run `perch-load provision --data {0}` first)")]
    NoStore(String),
    #[error("{0}: stop perch (or whatever holds it) before prefilling")]
    InUse(String),
    #[error("unexpected schema: {0}")]
    Schema(String),
    #[error("integrity check failed: {0}")]
    Integrity(String),
}

/// One room's share of the load.
#[derive(Debug, Clone, Serialize)]
pub struct RoomFill {
    pub name: String,
    pub uid: String,
    pub members: usize,
    pub messages: u64,
    /// Marker word → messages of this room that carry it.
    pub markers: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MarkerFill {
    pub word: String,
    /// Probability 1/every per message.
    pub every: u64,
    pub messages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefillReport {
    pub database: String,
    pub messages: u64,
    /// Messages in the store afterwards (all rooms).
    pub store_messages: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub mean_body_bytes: f64,
    pub vocabulary: usize,
    pub batch: usize,
    pub fts: FtsMode,
    pub rooms: Vec<RoomFill>,
    pub markers: Vec<MarkerFill>,
    /// Generating and inserting the rows (with the indexes on the messages table).
    pub insert_secs: f64,
    pub insert_rows_per_s: f64,
    /// Building the FTS5 index and recreating the trigger (rebuild mode).
    pub fts_secs: f64,
    pub verify_secs: Option<f64>,
    pub total_secs: f64,
    /// Messages ÷ (insert + index): what a prefill costs per row, checks excluded.
    pub rows_per_s: f64,
    pub database_bytes: u64,
    pub load_average_start: Option<[f64; 3]>,
    pub load_average_end: Option<[f64; 3]>,
}

/// `perch-load prefill`: runs, then prints the report.
pub fn command(args: PrefillArgs) -> Result<ExitCode, LoadError> {
    let report = run(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn check_args(args: &PrefillArgs) -> Result<(), PrefillError> {
    let invalid = |text: &str| Err(PrefillError::Invalid(text.to_owned()));
    if args.batch == 0 {
        return invalid("--batch must be at least 1");
    }
    if !(1..=65_536).contains(&args.size) {
        return invalid("--size must be between 1 and 65536 bytes");
    }
    if !(0.0..=1.0).contains(&args.hot_share) {
        return invalid("--hot-share must be between 0 and 1");
    }
    if !(10..=1_000_000).contains(&args.vocabulary) {
        return invalid("--vocabulary must be between 10 and 1000000 words");
    }
    if args.markers.contains(&0) {
        return invalid("--markers: every N must be at least 1");
    }
    if args.span_days == 0 || args.span_days > 36_500 {
        return invalid("--span-days must be between 1 and 36500");
    }
    Ok(())
}

pub fn run(args: &PrefillArgs) -> Result<PrefillReport, PrefillError> {
    check_args(args)?;
    let started = Instant::now();
    let load_average_start = procfs::load_average();
    let path = args.data.join(DATABASE_FILE);
    if !path.is_file() {
        return Err(PrefillError::NoStore(args.data.display().to_string()));
    }
    // A leftover WAL proves nothing (perch's read-only connections close last and cannot
    // remove it): who has the files open, and the SQLite lock, decide.
    refuse_if_open(&path)?;
    let mut connection = Connection::open(&path)?;
    lock_exclusively(&connection, &path)?;
    let migration_trigger = trigger_from_migration()?;
    check_schema(&connection)?;
    // An insert trigger left behind is an interrupted `--fts triggers` load: what went in
    // was indexed, and perch indexes its posts itself, so it only goes.
    if let Some(stored) = stored_trigger(&connection)? {
        if normalize(&stored) != normalize(migration_trigger) {
            return Err(PrefillError::Schema(format!(
                "trigger {INSERT_TRIGGER} is not the one this tool puts in place: {stored}"
            )));
        }
        connection.execute_batch(&format!("DROP TRIGGER {INSERT_TRIGGER}"))?;
    }
    let interrupted: Option<i64> = connection
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [PENDING_MARK],
            |r| r.get(0),
        )
        .optional()?;
    if interrupted.is_some() && !args.quiet {
        eprintln!(
            "perch-load prefill: an earlier load left rows unindexed (interrupted?): the full-text index will be rebuilt"
        );
    }
    // A rollback journal (appends journal little) without fsync while loading: a crash
    // loses at most the batch in progress. perch puts the store back in WAL mode when it
    // opens it, and this run does too at the end.
    connection.pragma_update(None, "journal_mode", "DELETE")?;
    connection.pragma_update(None, "synchronous", "OFF")?;
    connection.pragma_update(None, "cache_size", -262_144)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;

    let rooms = select_rooms(&connection, args)?;
    // After an interruption nobody knows which rows are indexed.
    let mode = if interrupted.is_some() {
        FtsMode::Rebuild
    } else {
        args.fts
    };
    let max_id_before: i64 =
        connection.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
            r.get(0)
        })?;
    if mode == FtsMode::Triggers {
        connection.execute_batch(migration_trigger)?;
    } else if args.messages > 0 && interrupted.is_none() {
        connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![PENDING_MARK, max_id_before],
        )?;
    }
    let index = |connection: &mut Connection| -> Result<(), PrefillError> {
        if mode == FtsMode::Triggers {
            connection.execute_batch(&format!("DROP TRIGGER {INSERT_TRIGGER}"))?;
            // The trigger indexed each row; make what went in durable.
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
            Ok(())
        } else {
            index_after_load(connection, mode, max_id_before, args)
        }
    };
    let loaded = match load(&mut connection, args, &rooms) {
        Ok(loaded) => loaded,
        Err(error) => {
            // Leave a usable store behind: index what went in.
            if !args.quiet {
                eprintln!("perch-load prefill: failed ({error}); restoring the full-text index");
            }
            let _ = index(&mut connection);
            return Err(error);
        }
    };
    let index_started = Instant::now();
    index(&mut connection)?;
    let fts_secs = index_started.elapsed().as_secs_f64();
    connection.pragma_update(None, "journal_mode", "WAL")?;
    let verify_secs = if args.verify {
        let verify_started = Instant::now();
        verify(&connection, args.quiet)?;
        Some(verify_started.elapsed().as_secs_f64())
    } else {
        None
    };
    let store_messages: i64 =
        connection.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
    drop(connection);
    let insert_secs = loaded.secs.max(f64::MIN_POSITIVE);
    let database_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(with_suffix(&path, suffix)).ok())
        .map(|m| m.len())
        .sum();
    Ok(PrefillReport {
        database: path.display().to_string(),
        messages: loaded.rows,
        store_messages: u64::try_from(store_messages).unwrap_or(0),
        first_id: loaded.first_id,
        last_id: loaded.last_id,
        mean_body_bytes: if loaded.rows == 0 {
            0.0
        } else {
            loaded.body_bytes as f64 / loaded.rows as f64
        },
        vocabulary: args.vocabulary,
        batch: args.batch,
        fts: args.fts,
        rows_per_s: loaded.rows as f64 / (insert_secs + fts_secs),
        insert_rows_per_s: loaded.rows as f64 / insert_secs,
        rooms: rooms
            .iter()
            .zip(&loaded.per_room)
            .map(|(room, counts)| RoomFill {
                name: room.name.clone(),
                uid: room.uid.clone(),
                members: room.authors.len(),
                messages: counts.messages,
                markers: args
                    .markers
                    .iter()
                    .zip(&counts.markers)
                    .map(|(every, n)| (marker_word(*every), *n))
                    .collect(),
            })
            .collect(),
        markers: args
            .markers
            .iter()
            .enumerate()
            .map(|(k, every)| MarkerFill {
                word: marker_word(*every),
                every: *every,
                messages: loaded.per_room.iter().map(|c| c.markers[k]).sum(),
            })
            .collect(),
        insert_secs: loaded.secs,
        fts_secs,
        verify_secs,
        total_secs: started.elapsed().as_secs_f64(),
        database_bytes,
        load_average_start,
        load_average_end: procfs::load_average(),
    })
}

/// The marker word for a probability of 1/`every`: letters and digits only, one FTS token.
pub fn marker_word(every: u64) -> String {
    format!("pmk{every}")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses when a process has the database (or its WAL or shared-memory file) open, as a
/// running perch does: found by reading /proc/*/fd, so the message names the process.
fn refuse_if_open(path: &Path) -> Result<(), PrefillError> {
    let Ok(database) = path.canonicalize() else {
        return Ok(());
    };
    let watched: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| with_suffix(&database, suffix))
        .collect();
    let me = std::process::id();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Ok(());
    };
    let mut holders = Vec::new();
    for entry in processes.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Processes we may not inspect are skipped; the SQLite lock below still covers them.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| watched.contains(&target));
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            holders.push(format!("{pid} ({})", comm.trim()));
        }
    }
    if holders.is_empty() {
        return Ok(());
    }
    Err(PrefillError::InUse(format!(
        "{} is open in process {}",
        path.display(),
        holders.join(", ")
    )))
}

/// Takes the database for this connection alone until it closes: every connection in WAL
/// mode (a running perch's) holds a shared lock, so this fails while one is open, and a
/// perch started meanwhile cannot open the store.
fn lock_exclusively(connection: &Connection, path: &Path) -> Result<(), PrefillError> {
    connection.busy_timeout(Duration::ZERO)?;
    connection.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    match connection.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Err(PrefillError::InUse(format!(
                "{} is locked by another connection (is perch running on it?)",
                path.display()
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// The `CREATE TRIGGER messages_fts_insert ... END;` statement of perch's migration.
fn trigger_from_migration() -> Result<&'static str, PrefillError> {
    let missing = || {
        PrefillError::Schema(format!(
            "migration 0006 has no trigger {INSERT_TRIGGER} this tool can find"
        ))
    };
    let start = FTS_MIGRATION
        .find(&format!("CREATE TRIGGER {INSERT_TRIGGER} "))
        .ok_or_else(missing)?;
    let rest = &FTS_MIGRATION[start..];
    let end = rest.find("END;").ok_or_else(missing)? + "END;".len();
    Ok(&rest[..end])
}

fn stored_trigger(connection: &Connection) -> Result<Option<String>, PrefillError> {
    Ok(connection
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [INSERT_TRIGGER],
            |r| r.get(0),
        )
        .optional()?)
}

/// SQL text compared without its layout or final semicolon.
fn normalize(sql: &str) -> String {
    sql.trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_schema(connection: &Connection) -> Result<(), PrefillError> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version != CHAT_SCHEMA_VERSION {
        return Err(PrefillError::Schema(format!(
            "schema version {version}, this perch-load writes version {CHAT_SCHEMA_VERSION}"
        )));
    }
    let fts: i64 = connection.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name IN ('messages', 'messages_fts')",
        [],
        |r| r.get(0),
    )?;
    if fts != 2 {
        return Err(PrefillError::Schema(
            "the messages table or its FTS5 index is missing".into(),
        ));
    }
    Ok(())
}

/// A room to write into: its id, and the users who may be authors (its user members).
#[derive(Debug, Clone)]
struct TargetRoom {
    id: i64,
    uid: String,
    name: String,
    authors: Vec<String>,
}

fn select_rooms(
    connection: &Connection,
    args: &PrefillArgs,
) -> Result<Vec<TargetRoom>, PrefillError> {
    let mut statement =
        connection.prepare("SELECT id, uid, name FROM rooms WHERE disabled = 0 ORDER BY name")?;
    let all: Vec<(i64, String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut members = connection.prepare(
        "SELECT principal FROM room_principals WHERE room_id = ?1 AND role = 'member' AND principal LIKE 'sip:%' ORDER BY principal",
    )?;
    let mut rooms = Vec::new();
    for (id, uid, name) in all {
        if !args.room.is_empty() && !args.room.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let authors: Vec<String> = members
            .query_map([id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|p| p.trim_start_matches("sip:").to_owned())
            .collect();
        if args.rooms_of_size.is_some_and(|size| size != authors.len()) {
            continue;
        }
        rooms.push(TargetRoom {
            id,
            uid,
            name,
            authors,
        });
    }
    if let Some(missing) = args
        .room
        .iter()
        .find(|n| !rooms.iter().any(|r| r.name.eq_ignore_ascii_case(n)))
    {
        return Err(PrefillError::Invalid(format!(
            "no enabled room named {missing:?}"
        )));
    }
    if rooms.is_empty() && args.messages > 0 {
        return Err(PrefillError::Invalid(match args.rooms_of_size {
            Some(size) => format!("no enabled room has exactly {size} user members"),
            None => "the store has no enabled room (provision rooms first)".into(),
        }));
    }
    // The hot room (with --hot-share) comes first: the one with the most members.
    if let Some(hot) = rooms
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.authors.len().cmp(&b.authors.len()).then(j.cmp(i)))
        .map(|(i, _)| i)
    {
        let room = rooms.remove(hot);
        rooms.insert(0, room);
    }
    Ok(rooms)
}

#[derive(Debug, Clone, Default)]
struct RoomCounts {
    messages: u64,
    markers: Vec<u64>,
}

#[derive(Debug, Default)]
struct Loaded {
    rows: u64,
    body_bytes: u64,
    first_id: Option<i64>,
    last_id: Option<i64>,
    per_room: Vec<RoomCounts>,
    secs: f64,
}

/// Generates and inserts the rows, one transaction per batch.
fn load(
    connection: &mut Connection,
    args: &PrefillArgs,
    rooms: &[TargetRoom],
) -> Result<Loaded, PrefillError> {
    let started = Instant::now();
    let mut loaded = Loaded {
        per_room: vec![
            RoomCounts {
                messages: 0,
                markers: vec![0; args.markers.len()],
            };
            rooms.len()
        ],
        ..Loaded::default()
    };
    if args.messages == 0 {
        return Ok(loaded);
    }
    let mut generator = TextGenerator::new(args.vocabulary, args.size, args.seed);
    let mut choose = RoomChooser::new(rooms.len(), args.hot_share, args.seed);
    let mut random = Random::new(args.seed ^ 0x5eed_a117);
    let markers: Vec<(String, u64)> = args
        .markers
        .iter()
        .map(|&every| (marker_word(every), every))
        .collect();
    let span = i64::try_from(args.span_days)
        .unwrap_or(36_500)
        .saturating_mul(86_400 * 10_000_000);
    let now = perch::core::ids::now_ticks();
    let first_ts = now - span;
    let step = span as f64 / args.messages as f64;
    let mut progress = Progress::new("rows", args.messages, args.quiet);
    let mut body = String::with_capacity(args.size * 2);
    let mut carried: Vec<&str> = Vec::with_capacity(markers.len());
    let mut done = 0u64;
    while done < args.messages {
        let batch_end = (done + args.batch as u64).min(args.messages);
        let tx = connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room_id, author, ts, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for i in done..batch_end {
                let r = choose.next();
                let room = &rooms[r];
                let counts = &mut loaded.per_room[r];
                carried.clear();
                for (k, (word, every)) in markers.iter().enumerate() {
                    if random.below(*every) == 0 {
                        carried.push(word);
                        counts.markers[k] += 1;
                    }
                }
                generator.message(&mut body, &carried);
                let author = if room.authors.is_empty() {
                    "prefill@example.test"
                } else {
                    &room.authors[random.below(room.authors.len() as u64) as usize]
                };
                let ts = first_ts + (i as f64 * step) as i64;
                insert.execute(params![room.id, author, ts, body])?;
                counts.messages += 1;
                loaded.body_bytes += body.len() as u64;
                if i == 0 {
                    loaded.first_id = Some(tx.last_insert_rowid());
                }
                if (i + 1) % 4096 == 0 {
                    progress.update(i + 1);
                }
            }
        }
        loaded.last_id = Some(tx.last_insert_rowid());
        tx.commit()?;
        done = batch_end;
        progress.update(done);
    }
    progress.finish();
    loaded.rows = done;
    loaded.secs = started.elapsed().as_secs_f64();
    Ok(loaded)
}

/// Indexes the rows the load wrote without the trigger — all rows with `rebuild` (FTS5's
/// own command, one statement), the rows after `after_id` in chunks of --batch with
/// `deferred` — then recreates the insert trigger from the migration, in a last
/// transaction committed with fsync.
fn index_after_load(
    connection: &mut Connection,
    mode: FtsMode,
    after_id: i64,
    args: &PrefillArgs,
) -> Result<(), PrefillError> {
    if mode == FtsMode::Deferred {
        let last: i64 =
            connection.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                r.get(0)
            })?;
        let total = u64::try_from(last - after_id).unwrap_or(0);
        let mut progress = Progress::new("rows indexed", total, args.quiet);
        let chunk = i64::try_from(args.batch).unwrap_or(i64::MAX).max(1);
        let mut from = after_id + 1;
        while from <= last {
            let to = from.saturating_add(chunk - 1).min(last);
            let tx = connection.transaction()?;
            tx.execute(
                "INSERT INTO messages_fts (rowid, body, room_key)
                 SELECT id, body, room_key FROM messages_fts_source WHERE id BETWEEN ?1 AND ?2",
                params![from, to],
            )?;
            tx.commit()?;
            progress.update(u64::try_from(to - after_id).unwrap_or(0));
            from = to + 1;
        }
        progress.finish();
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    let tx = connection.transaction()?;
    if mode == FtsMode::Rebuild {
        if !args.quiet {
            eprintln!("perch-load prefill: rebuilding the full-text index...");
        }
        tx.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")?;
    }
    // Indexed: the mark goes in the same transaction.
    tx.execute("DELETE FROM meta WHERE key = ?1", [PENDING_MARK])?;
    tx.commit()?;
    Ok(())
}

fn verify(connection: &Connection, quiet: bool) -> Result<(), PrefillError> {
    if !quiet {
        eprintln!("perch-load prefill: PRAGMA integrity_check...");
    }
    let mut statement = connection.prepare("PRAGMA integrity_check")?;
    let problems: Vec<String> = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        return Err(PrefillError::Integrity(problems.join("; ")));
    }
    if !quiet {
        eprintln!("perch-load prefill: FTS5 integrity-check against the messages table...");
    }
    // rank = 1: also compare the index with the external content (the messages table).
    connection
        .execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .map_err(|e| PrefillError::Integrity(format!("FTS5 integrity-check: {e}")))?;
    Ok(())
}

/// Which room each message goes to: the hot room (index 0) with probability `hot_share`,
/// the others in turn.
#[derive(Debug, Clone)]
struct RoomChooser {
    rooms: usize,
    hot_share: f64,
    turn: usize,
    random: Random,
}

impl RoomChooser {
    fn new(rooms: usize, hot_share: f64, seed: u64) -> Self {
        Self {
            rooms,
            hot_share,
            turn: 0,
            random: Random::new(seed ^ 0x0000_00a0_0d5e),
        }
    }

    fn next(&mut self) -> usize {
        if self.rooms <= 1 {
            return 0;
        }
        if self.hot_share > 0.0 {
            if self.random.unit() < self.hot_share {
                return 0;
            }
            let room = 1 + self.turn % (self.rooms - 1);
            self.turn += 1;
            return room;
        }
        let room = self.turn % self.rooms;
        self.turn += 1;
        room
    }
}

/// Progress on stderr: one line redrawn with \r on a terminal (percentage, rows, rows/s,
/// ETA), otherwise a line every 10 %.
struct Progress {
    what: &'static str,
    total: u64,
    started: Instant,
    quiet: bool,
    terminal: bool,
    last_draw: Option<Instant>,
    next_tenth: u64,
}

impl Progress {
    fn new(what: &'static str, total: u64, quiet: bool) -> Self {
        Self {
            what,
            total: total.max(1),
            started: Instant::now(),
            quiet,
            terminal: std::io::stderr().is_terminal(),
            last_draw: None,
            next_tenth: 1,
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 && done < self.total {
            format_secs((self.total - done) as f64 / rate)
        } else {
            "-".into()
        };
        format!(
            "perch-load prefill: {:5.1} % {done}/{} {}, {rate:.0} {}/s, ETA {eta}",
            done as f64 * 100.0 / self.total as f64,
            self.total,
            self.what,
            self.what
        )
    }

    fn update(&mut self, done: u64) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let now = Instant::now();
            if self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(200))
            {
                return;
            }
            self.last_draw = Some(now);
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}\x1b[K", self.line(done));
            let _ = err.flush();
        } else {
            while self.next_tenth <= 10 && done * 10 >= self.next_tenth * self.total {
                eprintln!("{}", self.line(done));
                self.next_tenth += 1;
            }
        }
    }

    fn finish(&mut self) {
        if !self.quiet && self.terminal && self.last_draw.is_some() {
            eprintln!();
        }
    }
}

/// `1h02m03s`, `4m05s`, `6s`.
fn format_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

fn table(r: &PrefillReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} messages into {} rooms of {} in {:.1} s: {:.0} rows/s (inserts {:.0} rows/s over {:.1} s, full-text index {:.1} s{}), mean body {:.0} bytes, vocabulary {} words",
        r.messages,
        r.rooms.len(),
        r.database,
        r.total_secs,
        r.rows_per_s,
        r.insert_rows_per_s,
        r.insert_secs,
        r.fts_secs,
        r.verify_secs
            .map_or(String::new(), |s| format!(", checks passed in {s:.1} s")),
        r.mean_body_bytes,
        r.vocabulary
    );
    let _ = writeln!(
        out,
        "store: {} messages, ids {}..{} written now, {:.1} MiB on disk",
        r.store_messages,
        r.first_id.map_or("-".into(), |i| i.to_string()),
        r.last_id.map_or("-".into(), |i| i.to_string()),
        r.database_bytes as f64 / (1024.0 * 1024.0)
    );
    let markers: Vec<String> = r
        .markers
        .iter()
        .map(|m| format!("{} (1/{}): {}", m.word, m.every, m.messages))
        .collect();
    let _ = writeln!(out, "markers: {}", markers.join(", "));
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>10}  markers",
        "room", "members", "messages"
    );
    for room in &r.rooms {
        let markers: Vec<String> = room
            .markers
            .iter()
            .map(|(w, n)| format!("{w}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>10}  {}",
            room.name,
            room.members,
            room.messages,
            markers.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use perch::core::model::Privacy;
    use perch::core::ports::Store;

    use crate::provision::{self, ProvisionOptions, RoomClass};

    fn temp_dir(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("perch-load-prefill-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn provisioned(label: &str) -> PathBuf {
        let dir = temp_dir(label);
        provision::run(&ProvisionOptions {
            data: dir.clone(),
            domain: "example.test".into(),
            users: 6,
            prefix: "load".into(),
            category: "LoadTest".into(),
            rooms_of: vec![
                RoomClass { size: 6, count: 1 },
                RoomClass { size: 2, count: 3 },
            ],
            privacy: Privacy::Closed,
            password: None,
            quiet: true,
        })
        .unwrap();
        dir
    }

    fn args(data: &Path, messages: u64) -> PrefillArgs {
        PrefillArgs {
            data: data.to_path_buf(),
            messages,
            rooms_of_size: None,
            room: Vec::new(),
            hot_share: 0.0,
            size: 80,
            batch: 700,
            vocabulary: 500,
            markers: vec![10, 1000],
            span_days: 30,
            seed: 7,
            fts: FtsMode::Rebuild,
            verify: true,
            json: false,
            quiet: true,
        }
    }

    fn count(dir: &Path, sql: &str) -> i64 {
        let c = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn prefills_round_robin_with_an_index_that_passes_its_checks() {
        let dir = provisioned("rr");
        let report = run(&args(&dir, 3000)).unwrap();
        assert_eq!(report.messages, 3000);
        assert_eq!(report.store_messages, 3000);
        assert_eq!(report.rooms.len(), 4);
        assert!(report.rooms.iter().all(|r| r.messages == 750), "{report:?}");
        // The hot room candidate (most members) comes first even without --hot-share.
        assert_eq!(report.rooms[0].members, 6);
        let tenth = &report.markers[0];
        assert_eq!(tenth.word, "pmk10");
        assert!((200..400).contains(&tenth.messages), "{tenth:?}");
        // The index finds exactly the messages counted, per room too.
        let hits = count(
            &dir,
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pmk10'",
        );
        assert_eq!(hits as u64, tenth.messages);
        let first_room: i64 = count(
            &dir,
            &format!(
                "SELECT count(*) FROM messages_fts f JOIN messages m ON m.id = f.rowid JOIN rooms r ON r.id = m.room_id WHERE messages_fts MATCH 'pmk10' AND r.uid = '{}'",
                report.rooms[0].uid
            ),
        );
        assert_eq!(first_room as u64, report.rooms[0].markers["pmk10"]);
        // No trigger and no mark are left: perch indexes its posts itself.
        let c = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        assert!(stored_trigger(&c).unwrap().is_none());
        assert_eq!(
            count(
                &dir,
                &format!("SELECT count(*) FROM meta WHERE key = '{PENDING_MARK}'")
            ),
            0
        );
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(c);
        // A second load appends, with the triggers kept this time, and still checks out.
        let mut again = args(&dir, 500);
        again.fts = FtsMode::Triggers;
        again.hot_share = 1.0;
        let second = run(&again).unwrap();
        assert_eq!(second.store_messages, 3500);
        assert_eq!(second.rooms[0].messages, 500);
        assert_eq!(second.first_id, Some(3001));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_interrupted_load_is_repaired_by_the_next_one() {
        let dir = provisioned("repair");
        run(&args(&dir, 1000)).unwrap();
        {
            // What an interrupted load leaves: its mark, and rows not in the index.
            let c = Connection::open(dir.join(DATABASE_FILE)).unwrap();
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, 0)",
                [PENDING_MARK],
            )
            .unwrap();
            c.execute(
                "INSERT INTO messages (room_id, author, ts, body) SELECT room_id, author, ts, 'unindexed pmk10' FROM messages LIMIT 1",
                [],
            )
            .unwrap();
        }
        let report = run(&args(&dir, 0)).unwrap();
        assert_eq!(report.messages, 0);
        assert_eq!(report.store_messages, 1001);
        assert_eq!(
            count(
                &dir,
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'unindexed'"
            ),
            1
        );
        let c = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        assert!(stored_trigger(&c).unwrap().is_none());
        let marks: i64 = c
            .query_row(
                "SELECT count(*) FROM meta WHERE key = ?1",
                [PENDING_MARK],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(marks, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_while_the_store_is_open_elsewhere_and_bad_input() {
        let dir = provisioned("busy");
        let store = perch::store::SqliteStore::open(&dir).unwrap();
        // This process holds it, so /proc does not name it: the SQLite lock does.
        let error = run(&args(&dir, 10)).unwrap_err();
        assert!(matches!(error, PrefillError::InUse(_)), "{error}");
        assert!(error.to_string().contains("stop perch"), "{error}");
        store.close();
        drop(store);
        let mut bad = args(&dir, 10);
        bad.hot_share = 2.0;
        assert!(matches!(run(&bad), Err(PrefillError::Invalid(_))));
        let mut bad = args(&dir, 10);
        bad.room = vec!["nope".into()];
        assert!(matches!(run(&bad), Err(PrefillError::Invalid(_))));
        let mut bad = args(&dir, 10);
        bad.rooms_of_size = Some(5);
        assert!(matches!(run(&bad), Err(PrefillError::Invalid(_))));
        let missing = temp_dir("missing");
        assert!(matches!(
            run(&args(&missing, 10)),
            Err(PrefillError::NoStore(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rooms_round_robin_or_hot() {
        let mut even = RoomChooser::new(3, 0.0, 1);
        let picks: Vec<usize> = (0..6).map(|_| even.next()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let mut hot = RoomChooser::new(3, 0.9, 1);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[hot.next()] += 1;
        }
        assert!((8800..9200).contains(&counts[0]), "{counts:?}");
        assert!(counts[1].abs_diff(counts[2]) <= 1, "{counts:?}");
        assert_eq!(format_secs(3723.0), "1h02m03s");
        assert_eq!(format_secs(65.0), "1m05s");
    }
}
