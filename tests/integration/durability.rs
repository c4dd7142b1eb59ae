//! Acknowledged posts survive SIGKILL: the real `perch` binary is killed while a client
//! posts, restarted, killed again; afterwards every post that got its 200 is in the store
//! and SQLite's integrity check passes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use perch::core::ports::{HistoryQuery, Store};
use perch::store::SqliteStore;
use tokio::net::TcpStream;

use crate::chat::{seed, snapshot};
use crate::support::*;

/// Kill/restart rounds; `DURABILITY_ROUNDS=50 cargo test --test integration durability`
/// runs the long version.
fn rounds() -> usize {
    std::env::var("DURABILITY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Starts `perch serve` on a free loopback TCP port and returns it with that address.
fn spawn_perch(data: &std::path::Path, config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(["serve", "--log-json", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perch starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("perch exited before listening")
            .expect("log line");
        if line.contains("plain TCP") {
            let start = line.find("127.0.0.1:").expect("address in the log line");
            let text: String = line[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            break text.parse().expect("socket address");
        }
    };
    // Keep draining the log so perch never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

async fn chat_client(addr: SocketAddr, lobby: &str) -> Client {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut client = Client::over(Box::new(tcp), "tcp");
    assert_eq!(status(&client.register_plain().await), 200);
    let invite = client.request(
        "INVITE",
        "sip:ocschat@example.test",
        "dur-call",
        1,
        "<sip:ocschat@example.test>",
        &[("Contact", "<sip:alice@example.test>")],
        "",
    );
    client.send(&invite).await;
    let ok = client.response().await;
    let to = ok.headers.get("To").unwrap().to_owned();
    client.dialog_to = to.clone();
    let value = lobby.rsplit('/').next().unwrap();
    let join = format!(
        r#"<xccos ver="1" envid="1" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:join" seqid="1"><data><chanid key="0" domain="example.test" value="{value}"/></data></cmd></xccos>"#
    );
    let info = client.request(
        "INFO",
        "sip:ocschat@example.test",
        "dur-call",
        2,
        &to,
        &[],
        &join,
    );
    client.send(&info).await;
    assert_eq!(status(&client.response().await), 200);
    client
}

/// Posts until the connection breaks; returns the texts that were acknowledged with 200.
async fn post_until_killed(client: &mut Client, lobby: &str, round: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for n in 0.. {
        let text = format!("round {round} post {n}");
        if !post(client, lobby, &text, n).await {
            break;
        }
        acknowledged.push(text);
    }
    acknowledged
}

/// Posts `text` as the `n`th post of the dialog; whether it was acknowledged with 200.
async fn post(client: &mut Client, lobby: &str, text: &str, n: usize) -> bool {
    let to = client.dialog_to.clone();
    let body = format!(
        r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><grpchat id="grpchat" seqid="1" chanUri="{lobby}" author="sip:alice@example.test"><chat>{text}</chat></grpchat></xccos>"#,
        n + 10
    );
    let info = client.request(
        "INFO",
        "sip:ocschat@example.test",
        "dur-call",
        n as u32 + 3,
        &to,
        &[],
        &body,
    );
    if client.try_send(&info).await.is_err() {
        return false;
    }
    // Server INFOs (the echo of earlier posts) are skipped; only our 200 counts.
    loop {
        match client.receive().await {
            Some(Received::Message(m)) if m.method().is_some() => continue,
            Some(Received::Message(m)) => return status(&m) == 200,
            _ => return false,
        }
    }
}

/// A store in `data` for a perch process: alice and bob (no passwords) and the seeded
/// rooms, closed again; returns the Lobby.
pub(crate) async fn seeded_store(data: &std::path::Path) -> perch::core::model::Room {
    let setup_dir = data.to_owned();
    tokio::task::spawn_blocking(move || {
        let store = SqliteStore::open(&setup_dir).unwrap();
        perch::core::service::add_user(&store, "alice@example.test", None, None, true).unwrap();
        perch::core::service::add_user(&store, "bob@example.test", None, None, true).unwrap();
        seed(&store);
        let room = snapshot(&store).room_by_name("Lobby").unwrap().clone();
        store.close();
        room
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn acknowledged_posts_survive_sigkill() {
    let data = temp_dir("durability");
    let room = seeded_store(&data).await;
    let lobby = perch::lync::xccos::uri::room_uri(DOMAIN, &room.uid);
    let config = data.join("perch.toml");
    std::fs::write(&config, "domain = \"example.test\"\ntrusted_networks = [\"127.0.0.0/8\"]\n[listen]\ntls = \"127.0.0.1:0\"\ntcp = \"127.0.0.1:0\"\n").unwrap();

    let mut acknowledged = Vec::new();
    for round in 0..rounds() {
        let (mut child, addr) = spawn_perch(&data, &config);
        let mut client = chat_client(addr, &lobby).await;
        let poster = async { post_until_killed(&mut client, &lobby, round).await };
        let killer = async {
            tokio::time::sleep(Duration::from_millis(300 + 150 * (round % 5) as u64)).await;
            child.kill().expect("SIGKILL");
        };
        let (acked, ()) = tokio::join!(poster, killer);
        let _ = child.wait();
        assert!(
            !acked.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        acknowledged.extend(acked);
    }

    let reopen_dir = data.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&reopen_dir).unwrap())
        .await
        .unwrap();
    let stored: Vec<String> = read_history(&store, room.id, HistoryQuery::Last(1_000_000))
        .into_iter()
        .map(|m| m.text)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !stored.contains(t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged posts lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    println!(
        "durability: {} SIGKILLs, {} acknowledged posts, none lost",
        rounds(),
        acknowledged.len()
    );
    let check = rusqlite::Connection::open(data.join(perch::store::sqlite::DATABASE_FILE)).unwrap();
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let _ = std::fs::remove_dir_all(&data);
}

/// `perch admin backup` while a client posts to a running perch: the copy is a store of
/// its own, private, and its history is the live store's history up to some post, with no
/// gap.
#[tokio::test]
async fn an_online_backup_is_a_consistent_copy_while_posts_go_on() {
    let data = temp_dir("backup");
    let room = seeded_store(&data).await;
    let lobby = perch::lync::xccos::uri::room_uri(DOMAIN, &room.uid);
    let config = data.join("perch.toml");
    std::fs::write(&config, "domain = \"example.test\"\ntrusted_networks = [\"127.0.0.0/8\"]\n[listen]\ntls = \"127.0.0.1:0\"\ntcp = \"127.0.0.1:0\"\n").unwrap();
    let copy_dir = temp_dir("backup-copy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join(perch::store::sqlite::DATABASE_FILE);

    let backup = |to: std::path::PathBuf| {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_perch"))
                .args(["admin", "backup", "--to"])
                .arg(&to)
                .arg("--data")
                .arg(&data)
                .output()
                .unwrap()
        })
    };
    let (mut child, addr) = spawn_perch(&data, &config);
    let mut client = chat_client(addr, &lobby).await;
    // Posts before the copy, posts while it is made, posts after it: the copy holds the
    // first, maybe some of the second, none of the third.
    let mut n = 0;
    let mut acked = Vec::new();
    for _ in 0..5 {
        let text = format!("before {n}");
        assert!(post(&mut client, &lobby, &text, n).await);
        acked.push(text);
        n += 1;
    }
    let (done, mut copied) = tokio::sync::oneshot::channel::<()>();
    let backer = async {
        let out = backup(copy.clone()).await.unwrap();
        let _ = done.send(());
        out
    };
    let poster = async {
        let mut during = Vec::new();
        while copied.try_recv().is_err() {
            let text = format!("during {n}");
            assert!(post(&mut client, &lobby, &text, n).await);
            during.push(text);
            n += 1;
        }
        during
    };
    let (out, during) = tokio::join!(backer, poster);
    acked.extend(during);
    let after: Vec<String> = (0..5).map(|k| format!("after {k}")).collect();
    for text in &after {
        assert!(post(&mut client, &lobby, text, n).await);
        n += 1;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("backed up "));

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = backup(copy.clone()).await.unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.starts_with("perch: ")
            && stderr.contains("File exists")
            && stderr.lines().count() == 1,
        "{stderr}"
    );

    let texts = |dir: std::path::PathBuf| {
        let room_id = room.id;
        tokio::task::spawn_blocking(move || {
            let store = SqliteStore::open(&dir).unwrap();
            let texts: Vec<String> = read_history(&store, room_id, HistoryQuery::Last(1_000_000))
                .into_iter()
                .map(|m| m.text)
                .collect();
            store.close();
            texts
        })
    };
    let live = texts(data.clone()).await.unwrap();
    let copied = texts(copy_dir.clone()).await.unwrap();
    assert_eq!(
        copied[..],
        live[..copied.len()],
        "the copy is not a prefix of the store"
    );
    for text in &acked[..5] {
        assert!(copied.contains(text), "{text} is missing from the copy");
    }
    for text in &after {
        assert!(live.contains(text) && !copied.contains(text), "{text}");
    }
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&copy_dir);
}
