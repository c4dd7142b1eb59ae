//! `perch check` against a real server, as a monitoring system runs it: the real binary,
//! its one line and its exit status. The server's Lobby is chat.rs's; alice posts, bob
//! must receive the post and find it in the history.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::chat::seed;
use crate::support::{TestServer, temp_dir};

/// A password file for alice and bob (the test server's passwords, or `peer` for bob).
fn passwords(peer: &str) -> PathBuf {
    let dir = temp_dir("check-passwords");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("passwords");
    std::fs::write(&path, format!("alice-pw\n{peer}\n")).unwrap();
    path
}

/// `perch check` of `server` (HOST:PORT) trusting `cert`, alice posting and bob receiving,
/// with `extra` arguments; awaited without blocking the runtime the test server runs on.
async fn check(server: &str, cert: &Path, password_file: &Path, extra: &[&str]) -> Output {
    check_as("bob", server, cert, password_file, extra).await
}

async fn check_as(
    peer: &str,
    server: &str,
    cert: &Path,
    password_file: &Path,
    extra: &[&str],
) -> Output {
    let data = temp_dir("check-data");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(["check", "--server", server, "--domain", "example.test"])
        .args(["--room", "Lobby", "--user", "alice", "--peer", peer])
        .arg("--ca")
        .arg(cert)
        .arg("--password-file")
        .arg(password_file)
        .arg("--data")
        .arg(&data)
        .args(extra)
        .env_remove("PERCH_CHECK_PASSWORD")
        .env_remove("PERCH_CHECK_PEER_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

/// The one line on standard output, after checking there is exactly one and that the exit
/// status is `status`.
fn line(out: &Output, status: i32) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(status),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    stdout.trim_end().to_owned()
}

async fn start() -> (TestServer, String, PathBuf) {
    let server = TestServer::start_seeded(|_| {}, seed).await;
    let (addr, cert) = server.tls_target();
    (server, addr.to_string(), cert)
}

#[tokio::test]
async fn a_healthy_server_passes_every_step() {
    let (server, addr, cert) = start().await;
    let out = check(&addr, &cert, &passwords("bob-pw"), &[]).await;
    let line = line(&out, 0);
    assert!(line.starts_with("PERCH CHECK OK - 7 steps in "), "{line}");
    for step in perch::app::check::STEPS {
        assert!(line.contains(&format!(" {step}=")), "{step}: {line}");
    }
    // The probe's post is in the room's history, once.
    let lobby = crate::chat::snapshot(server.store.as_ref())
        .room_by_name("Lobby")
        .unwrap()
        .id;
    let history = crate::support::read_history(
        server.store.as_ref(),
        lobby,
        perch::core::ports::HistoryQuery::Last(10),
    );
    assert_eq!(
        history
            .iter()
            .filter(|m| m.text.starts_with("perch check "))
            .count(),
        1,
        "{history:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_zero_warning_threshold_warns() {
    let (server, addr, cert) = start().await;
    let out = check(&addr, &cert, &passwords("bob-pw"), &["--warn", "0"]).await;
    let line = line(&out, 1);
    assert!(
        line.starts_with("PERCH CHECK WARNING - 7 steps in "),
        "{line}"
    );
    assert!(line.contains("over --warn 0 ms: total"), "{line}");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_critical_and_names_the_step() {
    let (server, addr, cert) = start().await;
    let out = check(&addr, &cert, &passwords("not-bobs"), &[]).await;
    let line = line(&out, 2);
    assert!(
        line.starts_with(
            "PERCH CHECK CRITICAL - register_b failed: bob@example.test: REGISTER answered 403"
        ),
        "{line}"
    );
    // The step that passed keeps its time.
    assert!(line.contains("| register_a="), "{line}");
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_is_down_is_critical_and_bad_arguments_unknown() {
    let cert_dir = temp_dir("check-cert");
    let cert = perch::net::tls::ensure_dev_certificate(&cert_dir, "example.test", &[])
        .unwrap()
        .cert;
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = check(&addr, &cert, &passwords("bob-pw"), &[]).await;
    assert_eq!(
        line(&out, 2),
        format!("PERCH CHECK CRITICAL - register_a failed: connect {addr}: connection refused")
    );
    // The check's usage errors are its UNKNOWN line, status 3.
    let out = check(&addr, &cert, &passwords("bob-pw"), &["--bogus"]).await;
    let unknown = line(&out, 3);
    assert!(
        unknown.starts_with("PERCH CHECK UNKNOWN - unexpected argument '--bogus'"),
        "{unknown}"
    );
    let out = check_as("alice", &addr, &cert, &passwords("bob-pw"), &[]).await;
    assert!(
        line(&out, 3).contains("--user and --peer are both alice@example.test"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(cert_dir);
}
