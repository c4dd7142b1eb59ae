//! Store throughput and history latency on a real on-disk SQLite database (WAL,
//! synchronous=FULL, one writer thread with group commit).
//!
//! Run: `cargo bench --bench store` (posts/s = elements/s in the report). Besides criterion's
//! figures the bench prints per-call latency percentiles from plain `Instant` loops.
//!
//! - `ingest/group-commit`: K posts submitted at once, then all awaited (one iteration).
//! - `ingest/one-at-a-time`: submit, wait, repeat: one commit (one fsync) per post.
//! - `history/disk-last-30`, `history/search`: `Store::history` on a room of 1,000,000
//!   messages. The filled database is kept under `target/tmp/perch-bench-store/` and reused
//!   by later runs; delete that directory to rebuild it.
//! - `history/cache-last-30`: `ChatCore::history` served from the warm recent-history cache.
//!
//! Under `cargo test` (criterion runs each bench once, without `--bench`) the history room
//! holds only a few thousand messages in a throwaway directory.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perch::core::SnapshotHandle;
use perch::core::hub::ChatCore;
use perch::core::manage::{self, CategoryChange, ListEdit, RoomChange};
use perch::core::model::{Principal, Privacy, RoomType};
use perch::core::ports::{
    ArchiveStore, ChatMessage, HistoryQuery, Pending, Store, UserRecord, wait,
};
use perch::core::snapshot::Snapshot;
use perch::store::SqliteStore;
use perch::store::sqlite::DATABASE_FILE;

const DOMAIN: &str = "example.test";
const AUTHOR: &str = "alice@example.test";
const ROOM: &str = "Big";
/// Posts submitted together per `ingest/group-commit` iteration.
const BATCH: usize = 256;
/// Messages in the history room under `cargo bench`.
const FULL_HISTORY: usize = 1_000_000;
/// Messages in the history room under `cargo test`.
const TEST_HISTORY: usize = 2_000;
/// One message in this many contains `RARE_WORD`.
const RARE_EVERY: usize = 1_000;
const RARE_WORD: &str = "pelican";
const LAST: u32 = 30;
const SEARCH_COUNT: u32 = 50;

/// Common words the bodies are made of (none of them is `RARE_WORD`).
const WORDS: &[&str] = &[
    "the",
    "build",
    "is",
    "green",
    "again",
    "after",
    "merge",
    "of",
    "branch",
    "deploy",
    "staging",
    "review",
    "please",
    "meeting",
    "moved",
    "to",
    "three",
    "tomorrow",
    "morning",
    "lunch",
    "server",
    "restart",
    "ticket",
    "closed",
    "customer",
    "called",
    "about",
    "invoice",
    "latency",
    "spike",
    "on",
    "database",
    "cache",
    "warm",
    "release",
    "notes",
    "draft",
    "ready",
    "for",
    "sign",
    "off",
    "question",
    "regarding",
    "budget",
    "next",
    "quarter",
    "team",
    "offsite",
    "agenda",
    "shared",
    "in",
    "folder",
    "thanks",
    "everyone",
    "great",
    "work",
    "today",
    "network",
    "outage",
    "resolved",
    "root",
    "cause",
    "analysis",
    "pending",
    "firewall",
    "rule",
    "change",
    "window",
    "tonight",
    "backup",
    "finished",
    "without",
    "errors",
    "disk",
    "usage",
    "at",
    "percent",
    "new",
    "hire",
    "starts",
    "monday",
    "welcome",
    "coffee",
    "machine",
    "broken",
    "second",
    "floor",
    "printer",
    "jammed",
    "status",
    "update",
    "sprint",
    "planning",
    "retro",
    "action",
    "items",
    "owner",
    "deadline",
    "friday",
    "client",
    "demo",
    "went",
    "well",
];

/// Under `cargo bench` criterion is passed `--bench`; under `cargo test` it is not.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A deterministic ~100-byte message body; every `RARE_EVERY`th one contains `RARE_WORD`.
fn body(i: usize) -> String {
    // splitmix64, so bodies vary without a random-number dependency.
    let mut state = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut text = String::with_capacity(112);
    if i % RARE_EVERY == RARE_EVERY / 2 {
        text.push_str(RARE_WORD);
    }
    while text.len() < 96 {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
    }
    text.push('.');
    text
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("perch-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn snapshot(store: &dyn Store) -> Snapshot {
    Snapshot::from_model(store.load_model().expect("load model"))
}

/// A user, a category open to the domain and an open room, created the way the admin
/// commands do (core::manage, then the store). Returns the room's (id, uid).
fn seed(store: &dyn Store) -> (i64, String) {
    wait(store.add_user(UserRecord {
        aor: AUTHOR.into(),
        display_name: "Alice".into(),
        enabled: true,
        credentials: None,
        unlocked_at: 0,
    }))
    .expect("add user");
    let change = CategoryChange {
        name: Some("Bench".into()),
        allowed: vec![ListEdit::Add(vec![Principal::Domain(DOMAIN.into())])],
        ..CategoryChange::default()
    };
    let (category, _) = manage::category(&snapshot(store), None, change).expect("category");
    wait(store.save_category(category)).expect("save category");
    let change = RoomChange {
        name: Some(ROOM.into()),
        category: Some("Bench".into()),
        privacy: Some(Privacy::Open),
        kind: Some(RoomType::Normal),
        ..RoomChange::default()
    };
    let uid = perch::core::ids::new_room_uid();
    let outcome = manage::room(&snapshot(store), None, &uid, change).expect("room");
    let room = wait(store.save_room(outcome.room)).expect("save room");
    (room.id, room.uid)
}

fn room_of(store: &dyn Store) -> (i64, String) {
    let snapshot = snapshot(store);
    let room = snapshot.room_by_name(ROOM).expect("bench room");
    (room.id, room.uid.clone())
}

fn db_size(dir: &Path) -> String {
    let size = |suffix: &str| {
        std::fs::metadata(dir.join(format!("{DATABASE_FILE}{suffix}"))).map_or(0, |m| m.len())
    };
    let (main, wal) = (size(""), size("-wal"));
    format!(
        "{:.1} MiB (+ {:.1} MiB WAL)",
        main as f64 / 1048576.0,
        wal as f64 / 1048576.0
    )
}

/// Prints p50/p90/p99/p99.9/max and the mean of `samples`.
fn report(label: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "latency {label}: n={} p50={:?} p90={:?} p99={:?} p99.9={:?} max={:?} mean={:?}",
        samples.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1],
        mean
    );
}

fn time_calls(label: &str, calls: usize, mut call: impl FnMut()) {
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        call();
        samples.push(start.elapsed());
    }
    report(label, &mut samples);
}

fn ingest(c: &mut Criterion) {
    let full = full_run();
    let dir = temp_dir("ingest");
    let store = SqliteStore::open(&dir).expect("open store");
    let (room, _) = seed(&store);
    let bodies: Vec<String> = (0..4096).map(body).collect();
    let mut n = 0usize;
    let mut next_body = move || {
        n = n.wrapping_add(1);
        n
    };

    // Per-post commit latency, outside criterion: for group commit, from a post's submit to
    // its reply (replies are collected in submit order, so later ones are upper bounds).
    let rounds = if full { 200 } else { 2 };
    let mut samples = Vec::with_capacity(rounds * BATCH);
    // Replies of one commit arrive back to back; a pause between two replies means a new
    // commit. Counting the pauses estimates how many transactions a round took.
    let mut commits = 0usize;
    let mut submit_time = Duration::ZERO;
    for _ in 0..rounds {
        let started = Instant::now();
        let pending: Vec<_> = (0..BATCH)
            .map(|_| {
                let i = next_body();
                let at = Instant::now();
                let p = post(&store, room, i as i64, &bodies[i % 4096]);
                (at, p)
            })
            .collect();
        submit_time += started.elapsed();
        let mut previous: Option<Instant> = None;
        for (at, p) in pending {
            wait(p).expect("append");
            let now = Instant::now();
            if previous.is_none_or(|t| now - t > Duration::from_micros(50)) {
                commits += 1;
            }
            previous = Some(now);
            samples.push(now - at);
        }
    }
    report(
        &format!("ingest/group-commit per post (K={BATCH})"),
        &mut samples,
    );
    println!(
        "ingest/group-commit: ~{:.1} commits per round of {BATCH} (estimated from reply gaps), \
         submitting {BATCH} posts took {:?} on average",
        commits as f64 / rounds as f64,
        submit_time / rounds as u32
    );
    let calls = if full { 1_000 } else { 5 };
    time_calls("ingest/one-at-a-time per post", calls, || {
        let i = next_body();
        wait(post(&store, room, i as i64, &bodies[i % 4096])).expect("append");
    });

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("group-commit", |b| {
        b.iter(|| {
            let pending: Vec<_> = (0..BATCH)
                .map(|_| {
                    let i = next_body();
                    post(&store, room, i as i64, &bodies[i % 4096])
                })
                .collect();
            for p in pending {
                black_box(wait(p).expect("append"));
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("one-at-a-time", |b| {
        b.iter(|| {
            let i = next_body();
            black_box(wait(post(&store, room, i as i64, &bodies[i % 4096])).expect("append"))
        })
    });
    group.finish();
    store.close();
    println!("ingest database after the run: {}", db_size(&dir));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bulk-inserts `count` messages into the room straight through rusqlite and indexes them
/// for search in the same transaction (as perch's writer does per batch), with syncing
/// off, then checkpoints the WAL.
fn bulk_fill(dir: &Path, room: i64, count: usize) {
    let mut connection =
        rusqlite::Connection::open(dir.join(DATABASE_FILE)).expect("open for bulk fill");
    connection
        .pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    connection
        .pragma_update(None, "cache_size", -262_144)
        .expect("pragma");
    let tx = connection.transaction().expect("begin");
    let before: i64 = tx
        .query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
            r.get(0)
        })
        .expect("max id");
    {
        let mut insert = tx
            .prepare("INSERT INTO messages (room_id, author, ts, body, extra) VALUES (?1, ?2, ?3, ?4, '')")
            .expect("prepare");
        // Ticks 1 s apart, ending about now.
        let start = perch::core::ids::now_ticks() - count as i64 * 10_000_000;
        for i in 0..count {
            let ts = start + i as i64 * 10_000_000;
            insert
                .execute(rusqlite::params![room, AUTHOR, ts, body(i)])
                .expect("insert");
        }
    }
    tx.execute(
        "INSERT INTO messages_fts (rowid, body, room_key)
         SELECT id, body, room_key FROM messages_fts_source WHERE id > ?1",
        [before],
    )
    .expect("index");
    tx.commit().expect("commit");
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
}

/// Opens the history database, building it first unless a previous full run left a
/// complete one. Returns the store and the history room's (id, uid).
fn history_store(full: bool) -> (Arc<dyn Store>, (i64, String), PathBuf) {
    let count = if full { FULL_HISTORY } else { TEST_HISTORY };
    let dir = if full {
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("perch-bench-store")
            .join(format!("history-{count}"))
    } else {
        temp_dir("history")
    };
    let marker = dir.join("filled");
    if full && marker.exists() {
        println!(
            "history: reusing {} ({count} messages, {})",
            dir.display(),
            db_size(&dir)
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let room = {
            let store = SqliteStore::open(&dir).expect("open store");
            let room = seed(&store);
            store.close();
            room
        };
        bulk_fill(&dir, room.0, count);
        std::fs::write(&marker, format!("{count}\n")).expect("marker");
        println!(
            "history: pre-filled {count} messages in {:.1?} into {} ({})",
            started.elapsed(),
            dir.display(),
            db_size(&dir)
        );
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("open store"));
    let room = room_of(store.as_ref());
    (store, room, dir)
}

fn history(c: &mut Criterion) {
    let full = full_run();
    let (store, (room, uid), dir) = history_store(full);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let last = HistoryQuery::Last(LAST);
    let search = HistoryQuery::Search {
        words: vec![RARE_WORD.into()],
        count: SEARCH_COUNT,
    };
    let found = rt
        .block_on(store.history(room, search.clone()))
        .expect("search");
    let count = if full { FULL_HISTORY } else { TEST_HISTORY };
    let expected = (count / RARE_EVERY).min(SEARCH_COUNT as usize);
    assert_eq!(found.len(), expected, "search finds the rare word");
    assert_eq!(
        rt.block_on(store.history(room, last.clone()))
            .expect("last")
            .len(),
        LAST as usize
    );

    let core = ChatCore::new(
        Arc::new(SnapshotHandle::load(store.as_ref()).expect("snapshot")),
        store.clone(),
    )
    .expect("hub");
    // Warm the room's recent-history cache.
    let (_, warm) = rt
        .block_on(core.history(AUTHOR, &uid, last.clone()))
        .expect("history");
    assert_eq!(warm.len(), LAST as usize);

    let calls = if full { 10_000 } else { 10 };
    time_calls("history/disk-last-30", calls, || {
        black_box(
            rt.block_on(store.history(room, last.clone()))
                .expect("last"),
        );
    });
    time_calls("history/cache-last-30", calls, || {
        black_box(
            rt.block_on(core.history(AUTHOR, &uid, last.clone()))
                .expect("history"),
        );
    });
    let search_calls = if full { 2_000 } else { 5 };
    time_calls("history/search", search_calls, || {
        black_box(
            rt.block_on(store.history(room, search.clone()))
                .expect("search"),
        );
    });

    let mut group = c.benchmark_group("history");
    group.throughput(Throughput::Elements(1));
    group.bench_function("disk-last-30", |b| {
        b.iter(|| {
            rt.block_on(store.history(room, black_box(last.clone())))
                .expect("last")
        })
    });
    group.bench_function("cache-last-30", |b| {
        b.iter(|| {
            rt.block_on(core.history(AUTHOR, black_box(&uid), last.clone()))
                .expect("history")
        })
    });
    group.bench_function("search", |b| {
        b.iter(|| {
            rt.block_on(store.history(room, black_box(search.clone())))
                .expect("search")
        })
    });
    group.finish();
    drop(core);
    store.close();
    drop(store);
    if !full {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Submits one post to the store.
fn post(store: &SqliteStore, room: i64, ts: i64, text: &str) -> Pending<ChatMessage> {
    store.append_message(ChatMessage {
        id: 0,
        room_id: room,
        author: AUTHOR.into(),
        ts,
        text: text.into(),
        extension: None,
    })
}

criterion_group!(benches, ingest, history);
criterion_main!(benches);
