//! The join history the hub serves from its cache, under concurrency against a real SQLite
//! store: posts from several sessions committing in batches, administrative reloads (which
//! invalidate the cache) and readers all at once. Every read must be a run of the store's
//! messages in id order without duplicates or gaps, and once the posts are done the cache
//! must equal the store's last N by id. One writer abandons some of its posts before their
//! commits are known, as a client that goes away does: they are stored, so they belong in
//! the cache too.

use std::sync::Arc;
use std::time::Duration;

use perch::core::hub::ChatCore;
use perch::core::ids::{Gateway, SessionRef};
use perch::core::ports::{HistoryQuery, Store, wait};
use perch::store::SqliteStore;

use crate::chat::{seed, snapshot};
use crate::support::*;

const WRITERS: usize = 4;
const POSTS: usize = 60;
const LAST: u32 = 25;

fn session(n: u64) -> SessionRef {
    SessionRef {
        gateway: Gateway::Lync,
        connection: n,
        stream: Arc::from(format!("cache-{n}")),
    }
}

/// Every committed id between the first and last a read returned, in the store.
fn store_ids(store: &dyn Store, room: i64) -> Vec<i64> {
    read_history(store, room, HistoryQuery::Last(10_000))
        .iter()
        .map(|m| m.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cached_history_always_matches_the_store() {
    let dir = temp_dir("history-cache");
    let store: Arc<SqliteStore> = Arc::new(SqliteStore::open(&dir).unwrap());
    let dyn_store: Arc<dyn Store> = store.clone();
    tokio::task::spawn_blocking({
        let store = dyn_store.clone();
        move || {
            for user in ["alice", "bob"] {
                let aor = format!("{user}@{DOMAIN}");
                perch::core::service::add_user(store.as_ref(), &aor, None, None, true).unwrap();
            }
            seed(store.as_ref())
        }
    })
    .await
    .unwrap();
    let model = Arc::new(perch::core::SnapshotHandle::load(dyn_store.as_ref()).unwrap());
    let core = Arc::new(ChatCore::new(model.clone(), dyn_store.clone()).unwrap());
    let lobby = snapshot(dyn_store.as_ref())
        .room_by_name("Lobby")
        .unwrap()
        .clone();
    let users = ["alice@example.test", "bob@example.test"];
    for (n, user) in users.iter().cycle().take(WRITERS).enumerate() {
        core.join(user, &session(n as u64), &lobby.uid).unwrap();
    }

    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let core = core.clone();
            let uid = lobby.uid.clone();
            tokio::spawn(async move {
                let user = users[n % users.len()];
                for i in 0..POSTS {
                    let accepted = core
                        .post(user, &session(n as u64), &uid, format!("w{n} p{i}"), None)
                        .unwrap();
                    if n == 0 && i % 3 == 1 {
                        drop(accepted);
                    } else {
                        accepted.completed().await.unwrap();
                    }
                }
            })
        })
        .collect();
    let admin = {
        let (model, store, core) = (model.clone(), dyn_store.clone(), core.clone());
        tokio::spawn(async move {
            for n in 0..15 {
                let store2 = store.clone();
                tokio::task::spawn_blocking(move || {
                    wait(store2.set_setting("SearchLimit", 100 + n)).unwrap();
                })
                .await
                .unwrap();
                model.reload(store.as_ref()).unwrap();
                core.reconcile();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (core, store, uid, room) =
                (core.clone(), dyn_store.clone(), lobby.uid.clone(), lobby.id);
            tokio::spawn(async move {
                let mut bad = Vec::new();
                for _ in 0..80 {
                    let (_, messages) = core
                        .history("alice@example.test", &uid, HistoryQuery::Last(LAST))
                        .await
                        .unwrap();
                    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
                    if ids.windows(2).any(|w| w[0] >= w[1]) {
                        bad.push(format!("not in id order or duplicated: {ids:?}"));
                    }
                    // No gaps: the read is a contiguous run of what the store holds.
                    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
                        let all = tokio::task::spawn_blocking({
                            let store = store.clone();
                            move || store_ids(store.as_ref(), room)
                        })
                        .await
                        .unwrap();
                        let run: Vec<i64> = all
                            .into_iter()
                            .filter(|id| id >= first && id <= last)
                            .collect();
                        if run != ids {
                            bad.push(format!("gap: read {ids:?}, store {run:?}"));
                        }
                    }
                    tokio::task::yield_now().await;
                }
                bad
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    admin.await.unwrap();
    let mut problems = Vec::new();
    for reader in readers {
        problems.extend(reader.await.unwrap());
    }
    assert!(
        problems.is_empty(),
        "{} bad reads, first: {}",
        problems.len(),
        problems[0]
    );

    // Abandoned posts after the last administrative reload, so that no reload puts them
    // into the cache from the store.
    for i in 0..6 {
        let accepted = core
            .post(users[0], &session(0), &lobby.uid, format!("tail {i}"), None)
            .unwrap();
        if i % 2 == 0 {
            drop(accepted);
        } else {
            accepted.completed().await.unwrap();
        }
    }

    // Quiet once the abandoned posts' commits are in: the cache is exactly the store's
    // last N.
    let stored: Vec<i64> = read_history(dyn_store.as_ref(), lobby.id, HistoryQuery::Last(LAST))
        .iter()
        .map(|m| m.id)
        .collect();
    let mut cached = Vec::new();
    for _ in 0..500 {
        let (_, messages) = core
            .history("alice@example.test", &lobby.uid, HistoryQuery::Last(LAST))
            .await
            .unwrap();
        cached = messages.iter().map(|m| m.id).collect();
        if cached == stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cached, stored);
    assert_eq!(
        store_ids(dyn_store.as_ref(), lobby.id).len(),
        WRITERS * POSTS + 6
    );
    drop(core);
    let _ = std::fs::remove_dir_all(dir);
}
