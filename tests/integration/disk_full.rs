//! A full disk: the real `perch` binary with its log on a full device, and with its data
//! directory and log on a small tmpfs filled up while a client posts. Logging must never
//! panic, posts are refused with a clear error while the disk is full, nothing acknowledged
//! is lost, and perch carries on by itself once space is freed.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perch::core::model::Room;
use perch::core::ports::{HistoryQuery, Store};
use perch::lync::sip::Message;
use perch::store::SqliteStore;
use tokio::net::TcpStream;

use crate::support::*;

/// Kills perch when a test ends, failed or not, so no server outlives it (and a tmpfs
/// can be unmounted).
struct Perch(Child);

impl Drop for Perch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Unmounts the tmpfs when the test ends, failed or not.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Busy (a straggling process): detach it now, the kernel frees it when idle.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A loopback port nobody listens on now. perch's log may be unreadable in these tests,
/// so the port is chosen here rather than read from the "listening" log line.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A store in `data` with alice and bob (trusted network, no passwords) and the seeded rooms;
/// returns the Lobby and the config file to start perch with.
async fn prepare(data: &Path, config_dir: &Path, port: u16) -> (Room, PathBuf) {
    let room = crate::durability::seeded_store(data).await;
    std::fs::create_dir_all(config_dir).unwrap();
    let config = config_dir.join("perch.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"example.test\"\ntrusted_networks = [\"127.0.0.0/8\"]\n[listen]\ntls = \"127.0.0.1:0\"\ntcp = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    (room, config)
}

/// Starts `perch serve` with its log (stderr) going to `log`.
fn spawn_perch(data: &Path, config: &Path, log: File) -> Perch {
    let child = Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(["serve", "--log-json", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("perch starts");
    Perch(child)
}

/// Connects once perch listens; fails the test if perch exits first.
async fn connect(perch: &mut Perch, addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = perch.0.try_wait().unwrap() {
            panic!("perch exited before listening: {status}");
        }
        if let Ok(tcp) = TcpStream::connect(addr).await {
            return tcp;
        }
        assert!(Instant::now() < deadline, "perch did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs alice in, opens the chat dialog and joins the Lobby.
async fn chat_client(tcp: TcpStream, lobby: &str) -> Client {
    let mut client = Client::over(Box::new(tcp), "tcp");
    assert_eq!(status(&client.register_plain().await), 200, "sign-in");
    let invite = client.request(
        "INVITE",
        "sip:ocschat@example.test",
        "full-call",
        1,
        "<sip:ocschat@example.test>",
        &[("Contact", "<sip:alice@example.test>")],
        "",
    );
    client.send(&invite).await;
    let ok = client.response().await;
    assert_eq!(status(&ok), 200, "chat dialog");
    client.dialog_to = ok.headers.get("To").unwrap().to_owned();
    let value = lobby.rsplit('/').next().unwrap();
    let join = format!(
        r#"<xccos ver="1" envid="1" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:join" seqid="1"><data><chanid key="0" domain="example.test" value="{value}"/></data></cmd></xccos>"#
    );
    let to = client.dialog_to.clone();
    let info = client.request(
        "INFO",
        "sip:ocschat@example.test",
        "full-call",
        2,
        &to,
        &[],
        &join,
    );
    client.send(&info).await;
    assert_eq!(status(&client.response().await), 200, "join");
    client
}

/// Posts `text` as INFO number `n` and returns perch's answer to it.
async fn post(client: &mut Client, lobby: &str, n: u32, text: &str) -> Message {
    let body = format!(
        r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><grpchat id="grpchat" seqid="1" chanUri="{lobby}" author="sip:alice@example.test"><chat>{text}</chat></grpchat></xccos>"#,
        n + 10
    );
    let to = client.dialog_to.clone();
    let info = client.request(
        "INFO",
        "sip:ocschat@example.test",
        "full-call",
        n + 3,
        &to,
        &[],
        &body,
    );
    client.send(&info).await;
    // Server INFOs (the echo of posts) are skipped; only the answer to ours counts.
    loop {
        match client.receive().await {
            Some(Received::Message(m)) if m.method().is_some() => continue,
            Some(Received::Message(m)) => return m,
            other => panic!("perch did not answer post {n}: {other:?}"),
        }
    }
}

fn warning(reply: &Message) -> String {
    reply.headers.get("Warning").unwrap_or_default().to_owned()
}

/// The refusal a post gets while the disk is full: perch's fault (500), and the reason
/// says what is wrong, so a user or operator knows it is not their post.
fn assert_refused_as_full(reply: &Message) {
    assert_eq!(status(reply), 500, "refused post: {reply:?}");
    assert!(
        warning(reply).contains("disk is full"),
        "the refusal should say the disk is full: {:?}",
        warning(reply)
    );
}

/// Fills the file system holding `path` until a write fails.
fn fill(path: &Path) {
    let mut filler = File::create(path).unwrap();
    // Large chunks first, then small ones to take the last partial pages too.
    for chunk in [64 * 1024, 4096, 512, 1] {
        let bytes = vec![0x5a_u8; chunk];
        while filler.write_all(&bytes).is_ok() {}
    }
    let _ = filler.sync_all();
}

/// Logging must never panic: with stderr on a device that refuses every write
/// (/dev/full), perch still starts, signs a client in and takes posts.
#[tokio::test]
async fn a_log_that_cannot_be_written_does_not_stop_perch() {
    let dir = temp_dir("full-log");
    let data = dir.join("data");
    let port = free_port();
    let (room, config) = prepare(&data, &dir, port).await;
    let lobby = perch::lync::xccos::uri::room_uri(DOMAIN, &room.uid);
    let full = File::options().write(true).open("/dev/full").unwrap();
    let mut perch = spawn_perch(&data, &config, full);

    let tcp = connect(&mut perch, ([127, 0, 0, 1], port).into()).await;
    let mut client = chat_client(tcp, &lobby).await;
    for n in 0..5 {
        let reply = post(&mut client, &lobby, n, &format!("unlogged {n}")).await;
        assert_eq!(status(&reply), 200, "post {n}: {reply:?}");
    }
    assert!(
        perch.0.try_wait().unwrap().is_none(),
        "perch exited while its log could not be written"
    );
    drop(perch);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data directory and log on a 4 MiB tmpfs, filled up with a file while alice posts:
/// posts are refused as "disk is full" and perch keeps running; once the file is deleted
/// posts succeed again without a restart, and every acknowledged post is in the store.
#[tokio::test]
async fn a_full_disk_refuses_posts_and_perch_recovers_by_itself() {
    let euid = Command::new("id").arg("-u").output();
    let root = euid.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        println!(
            "SKIPPED a_full_disk_refuses_posts_and_perch_recovers_by_itself: mounting a tmpfs needs root"
        );
        return;
    }
    let dir = temp_dir("full-disk");
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
        .arg(&disk)
        .output()
        .unwrap();
    if !mount.status.success() {
        println!(
            "SKIPPED a_full_disk_refuses_posts_and_perch_recovers_by_itself: cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&mount.stderr).trim()
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let mounted = Mounted(disk.clone());
    let data = disk.join("data");
    let port = free_port();
    let (room, config) = prepare(&data, &dir, port).await;
    let lobby = perch::lync::xccos::uri::room_uri(DOMAIN, &room.uid);
    // The log shares the full disk, as when /var fills up: the failed commit's own log
    // line cannot be written either.
    // Appending, so the test can take the last free bytes of the log's page too.
    let log_path = disk.join("perch.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut perch = spawn_perch(&data, &config, log);
    let tcp = connect(&mut perch, ([127, 0, 0, 1], port).into()).await;
    let mut client = chat_client(tcp, &lobby).await;

    let padding = "x".repeat(1500);
    let mut acknowledged = Vec::new();
    let mut n = 0;
    for _ in 0..20 {
        let text = format!("before {n} {padding}");
        let reply = post(&mut client, &lobby, n, &text).await;
        assert_eq!(
            status(&reply),
            200,
            "post {n} before the disk filled: {reply:?}"
        );
        acknowledged.push(text);
        n += 1;
    }

    let filler = disk.join("filler");
    fill(&filler);
    // The log's last page has room for a few lines still: take it, so that perch cannot
    // log a line either.
    let mut log_tail = File::options().append(true).open(&log_path).unwrap();
    while log_tail.write_all(b"#").is_ok() {}
    // The WAL may still have room from earlier commits; posts fit there until it runs out.
    let mut refusals = 0;
    while refusals < 5 {
        assert!(n < 5_000, "posts were never refused on a full disk");
        let text = format!("while full {n} {padding}");
        let reply = post(&mut client, &lobby, n, &text).await;
        n += 1;
        if status(&reply) == 200 {
            // A smaller write can still fit a freed corner; it was stored and counts.
            acknowledged.push(text);
        } else {
            assert_refused_as_full(&reply);
            refusals += 1;
        }
    }
    assert!(
        perch.0.try_wait().unwrap().is_none(),
        "perch exited on a full disk"
    );

    std::fs::remove_file(&filler).unwrap();
    drop(log_tail);
    for _ in 0..20 {
        let text = format!("after {n} {padding}");
        let reply = post(&mut client, &lobby, n, &text).await;
        n += 1;
        assert_eq!(
            status(&reply),
            200,
            "post after space was freed (no restart): {reply:?} {}",
            warning(&reply)
        );
        acknowledged.push(text);
    }
    // A new sign-in works too.
    let tcp = connect(&mut perch, ([127, 0, 0, 1], port).into()).await;
    let mut bob = Client::over(Box::new(tcp), "tcp");
    bob.user = "bob".into();
    assert_eq!(
        status(&bob.register_plain().await),
        200,
        "sign-in after the disk was full"
    );
    drop(client);
    drop(bob);
    drop(perch);

    let reopen = data.clone();
    let stored: Vec<String> = tokio::task::spawn_blocking(move || {
        let store = SqliteStore::open(&reopen).unwrap();
        let stored = read_history(&store, room.id, HistoryQuery::Last(1_000_000))
            .into_iter()
            .map(|m| m.text)
            .collect();
        store.close();
        stored
    })
    .await
    .unwrap();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !stored.contains(t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged posts lost",
        lost.len(),
        acknowledged.len()
    );
    let check = rusqlite::Connection::open(data.join(perch::store::sqlite::DATABASE_FILE)).unwrap();
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(check);
    println!(
        "disk full: {} acknowledged posts kept, {refusals} refused while full",
        acknowledged.len()
    );
    drop(mounted);
    let _ = std::fs::remove_dir_all(&dir);
}
