//! What a history search may cost the server (issue 11, item 11): its words are counted
//! once each and capped, a search past its time budget is answered with an error, and
//! searches however costly never hold up another user's plain history read.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perch::app::config::Config;
use perch::core::ports::Store;
use perch::lync::sip::StartLine;
use perch::lync::xccos::xml::Element;
use perch::store::SqliteStore;
use perch::store::sqlite::{DATABASE_FILE, ReadBudgets};

use crate::chat::{self, Chat, code, room_uri, trusted};
use crate::support::*;

/// A server over `store` (alice and bob, then the rooms of `chat::seed`), with `fill` run
/// on the database file before the server starts: bulk history, straight into SQLite.
async fn start(
    open: impl FnOnce(&Path) -> SqliteStore,
    fill: impl FnOnce(&Path) + Send + 'static,
) -> TestServer {
    let data_dir = temp_dir("search-cost");
    let mut config = Config {
        domain: DOMAIN.into(),
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    config.listen.tls = Some("127.0.0.1:0".parse().unwrap());
    config.listen.tcp = None;
    trusted(&mut config);
    let store: Arc<dyn Store> = Arc::new(open(&data_dir));
    let (seeding, dir) = (store.clone(), data_dir.clone());
    tokio::task::spawn_blocking(move || {
        for user in ["alice", "bob"] {
            perch::core::service::add_user(
                seeding.as_ref(),
                &format!("{user}@{DOMAIN}"),
                None,
                Some("pw"),
                true,
            )
            .unwrap();
        }
        chat::seed(seeding.as_ref());
        fill(&dir);
    })
    .await
    .unwrap();
    let server = perch::app::server::start(&config, store.clone())
        .await
        .unwrap();
    TestServer {
        server: Some(server),
        store,
        data_dir,
    }
}

/// Appends `texts` to room `room` in one transaction and indexes them, as perch's writer
/// does for a batch of posts.
fn bulk(dir: &Path, room: &str, texts: impl Iterator<Item = String>) {
    let c = rusqlite::Connection::open(dir.join(DATABASE_FILE)).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let room_id: i64 = c
        .query_row("SELECT id FROM rooms WHERE name = ?1", [room], |r| r.get(0))
        .unwrap();
    c.execute_batch("BEGIN").unwrap();
    let before: i64 = c
        .query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
            r.get(0)
        })
        .unwrap();
    {
        let mut insert = c
            .prepare("INSERT INTO messages (room_id, author, ts, body) VALUES (?1, 'carol@example.test', 1, ?2)")
            .unwrap();
        for text in texts {
            insert.execute(rusqlite::params![room_id, text]).unwrap();
        }
    }
    c.execute(
        "INSERT INTO messages_fts (rowid, body, room_key)
         SELECT id, body, room_key FROM messages_fts_source WHERE id > ?1",
        [before],
    )
    .unwrap();
    c.execute_batch("COMMIT").unwrap();
}

/// Common words in the room Closed (alice's), many of them.
fn chatter(dir: &Path, messages: usize) {
    bulk(
        dir,
        "Closed",
        (0..messages).map(|n| format!("the plan for the day and the week, note {n}")),
    );
}

fn search(words: &str, count: u32) -> String {
    format!(r#"<search cnt="{count}">{words}</search>"#)
}

async fn bccontext(chat: &mut Chat, uri: &str, bcq: &str) -> Element {
    chat.command(
        "bccontext",
        &format!(r#"<chanib uri="{uri}"/><bcq>{bcq}</bcq>"#),
    )
    .await
}

/// The reply to a command sent with `send`: the INFO's own response, then the `rpl`.
async fn answer(chat: &mut Chat) -> Element {
    loop {
        let m = chat.client.message().await;
        match m.start {
            StartLine::Response { .. } => {
                assert_eq!(status(&m), 200);
                break;
            }
            StartLine::Request { .. } => chat.keep(&m).await,
        }
    }
    chat.expect("rpl:bccontext").await
}

fn found(reply: &Element) -> usize {
    reply
        .child("data")
        .and_then(|d| d.child("chanib"))
        .map_or(0, |c| c.children.len())
}

#[tokio::test]
async fn a_search_counts_each_word_once_and_takes_at_most_eight() {
    let server = start(|dir| SqliteStore::open(dir).unwrap(), |_| {}).await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    alice.join(&lobby).await;
    assert_eq!(alice.post(&lobby, "the quokka plan").await, 200);
    assert_eq!(alice.post(&lobby, "the other plan").await, 200);

    // A hundred times one word (in any case) is one word.
    let hundred = "the THE The quokka ".repeat(25);
    let reply = bccontext(&mut alice, &lobby, &search(&hundred, 10)).await;
    assert_eq!(code(&reply), "200");
    assert_eq!(found(&reply), 1);

    // Eight different words are fine, a ninth is refused as a bad request.
    let eight = "the quokka plan a b c d e";
    assert_eq!(
        code(&bccontext(&mut alice, &lobby, &search(eight, 10)).await),
        "200"
    );
    let nine = format!("{eight} f");
    let reply = bccontext(&mut alice, &lobby, &search(&nine, 10)).await;
    assert_eq!(code(&reply), "400");
    // Punctuation separates words as the index does: this is nine words too.
    let reply = bccontext(
        &mut alice,
        &lobby,
        &search("the-quokka-plan-a-b-c-d-e-f", 10),
    )
    .await;
    assert_eq!(code(&reply), "400");
    server.stop().await;
}

/// A search that runs past its time budget is stopped and answered with an error; the
/// server carries on, cheaper searches and other reads included.
#[tokio::test]
async fn a_search_past_its_budget_is_answered_with_an_error() {
    let budgets = ReadBudgets {
        search: Duration::from_millis(20),
        ..ReadBudgets::default()
    };
    let server = start(
        move |dir| SqliteStore::open_with(dir, budgets).unwrap(),
        |dir| {
            bulk(dir, "Lobby", std::iter::once("the first word".to_owned()));
            // A search stays in its room's matches inside the index, so what makes one
            // costly is what it reads: here 500 matches of 100 KB each, 50 MB.
            let long = "the plan ".repeat(100_000 / 9);
            bulk(dir, "Lobby", (0..600).map(|n| format!("{long} {n}")));
            chatter(dir, 1_000);
        },
    )
    .await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let closed = room_uri(server.store.as_ref(), "Closed");
    let mut alice = Chat::connect(&server, "alice").await;

    let started = Instant::now();
    let reply = bccontext(&mut alice, &lobby, &search("the", 500)).await;
    assert_eq!(code(&reply), "500", "{:?}", reply.child("resp"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let reply = bccontext(&mut alice, &lobby, &search("first", 10)).await;
    assert_eq!(code(&reply), "200");
    assert_eq!(found(&reply), 1);
    let reply = bccontext(&mut alice, &closed, r#"<last cnt="100"/>"#).await;
    assert_eq!(code(&reply), "200");
    assert_eq!(found(&reply), 100);
    server.stop().await;
}

/// The attack of the report: eight connections each search an empty room for a common
/// word repeated a hundred times, over a long history. Another user's plain history read
/// (a page from the store, as the first `last` of a room is) answers at once meanwhile.
#[tokio::test]
async fn a_plain_history_read_does_not_wait_for_heavy_searches() {
    let server = start(
        |dir| SqliteStore::open(dir).unwrap(),
        |dir| chatter(dir, 60_000),
    )
    .await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let closed = room_uri(server.store.as_ref(), "Closed");
    let heavy = search(&"the ".repeat(100), 30);
    let mut attackers = Vec::new();
    for n in 0..8 {
        let mut chat = Chat::connect(&server, ["bob", "carol"][n % 2]).await;
        let request = chat.info_request(&format!(
            r#"<xccos ver="1" envid="7" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:bccontext" seqid="1"><data><chanib uri="{lobby}"/><bcq>{heavy}</bcq></data></cmd></xccos>"#
        ));
        attackers.push((chat, request));
    }
    let mut alice = Chat::connect(&server, "alice").await;
    for (chat, request) in &mut attackers {
        chat.client.send(request).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let reply = bccontext(&mut alice, &closed, r#"<last cnt="100"/>"#).await;
    let took = started.elapsed();
    assert_eq!(code(&reply), "200");
    assert_eq!(found(&reply), 100);
    assert!(
        took < Duration::from_secs(1),
        "the plain read took {took:?}"
    );

    for (chat, _) in &mut attackers {
        let reply = tokio::time::timeout(Duration::from_secs(60), answer(chat))
            .await
            .expect("a search was never answered");
        assert_eq!(code(&reply), "200");
        assert_eq!(found(&reply), 0);
    }
    server.stop().await;
}
