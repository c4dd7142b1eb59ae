//! `perch-load` against a real server: the fanout scenario for two seconds over TCP, and
//! the bulk provisioning path. The child is killed if it outlives its budget.

use std::process::Stdio;
use std::time::Duration;

use perch::core::manage::{self, CategoryChange, ListEdit, RoomChange};
use perch::core::model::{Principal, Privacy, RoomType};
use perch::core::ports::{ModelStore, Store, wait};
use perch::store::SqliteStore;

use crate::chat::{snapshot, trusted};
use crate::support::*;

/// The perch-load binary of this build. perch-load is its own crate of the workspace, so
/// Cargo does not hand its path to perch's tests: it is built here once, with the cargo and
/// profile running the tests, into the same target directory.
fn load_binary() -> &'static std::path::Path {
    static BINARY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        // The test executable lives in <target>/<profile>/deps/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
        let release = profile_dir
            .file_name()
            .is_some_and(|name| name == "release");
        let target_dir = profile_dir.parent().unwrap();
        let mut build = std::process::Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "perch-load",
                "--bin",
                "perch-load",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building perch-load failed");
        profile_dir.join("perch-load")
    })
}

/// Five users in one closed room of a category open to the domain.
fn seed(store: &dyn Store) {
    let members: Vec<Principal> = (0..5)
        .map(|i| {
            let aor = format!("load{i}@{DOMAIN}");
            perch::core::service::add_user(store, &aor, None, None, true).unwrap();
            Principal::User(aor)
        })
        .collect();
    let change = CategoryChange {
        name: Some("Load".into()),
        allowed: vec![ListEdit::Add(vec![Principal::Domain(DOMAIN.into())])],
        ..CategoryChange::default()
    };
    let (category, _) = manage::category(&snapshot(store), None, change).unwrap();
    wait(store.save_category(category)).unwrap();
    let room = RoomChange {
        name: Some("Fan".into()),
        category: Some("Load".into()),
        privacy: Some(Privacy::Closed),
        kind: Some(RoomType::Normal),
        members: vec![ListEdit::Add(members)],
        ..RoomChange::default()
    };
    let uid = perch::core::ids::new_room_uid();
    let outcome = manage::room(&snapshot(store), None, &uid, room).unwrap();
    wait(store.save_room(outcome.room)).unwrap();
}

/// Runs perch-load with `args`; its output once it exits, or a failure after `budget`.
async fn perch_load(args: &[&str], budget: Duration) -> std::process::Output {
    let binary = tokio::task::spawn_blocking(load_binary).await.unwrap();
    let child = tokio::process::Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(budget, child.wait_with_output())
        .await
        .expect("perch-load did not finish in time")
        .unwrap()
}

/// Runs perch-load with `args`, which must succeed and print one JSON document.
async fn perch_load_json(args: &[&str], budget: Duration) -> serde_json::Value {
    let output = perch_load(args, budget).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "perch-load {args:?} failed: {stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// perch-load's `provision` with `args` on the running server's store, then the wait for
/// the server to reload its model (it does when the store's generation moves).
async fn provision(server: &TestServer, args: &[&str]) {
    let data = server.data_dir.display().to_string();
    let mut all = vec!["provision", "--data", &data, "--json"];
    all.extend_from_slice(args);
    perch_load_json(&all, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Runs `scenario` against `server` over TCP, on its data directory, with `args` after the
/// common ones; it must succeed and print one JSON report.
async fn scenario_json(
    server: &TestServer,
    scenario: &str,
    args: &[&str],
    budget: Duration,
) -> serde_json::Value {
    let target = server.running().tcp_addr().unwrap().to_string();
    let data = server.data_dir.display().to_string();
    let mut all = vec![
        scenario, "--target", &target, "--data", &data, "--json", "--quiet",
    ];
    all.extend_from_slice(args);
    perch_load_json(&all, budget).await
}

#[tokio::test]
async fn fanout_smoke_over_tcp() {
    let server = TestServer::start_seeded(trusted, seed).await;
    let pid = std::process::id().to_string();
    let args = [
        "--connections",
        "5",
        "--duration",
        "2",
        "--rate",
        "20",
        "--drain",
        "3",
        "--timeout",
        "5",
        "--setup-timeout",
        "10",
        "--server-pid",
        &pid,
    ];
    let report = scenario_json(&server, "fanout", &args, Duration::from_secs(60)).await;
    assert_eq!(report["scenario"], "fanout");
    assert_eq!(report["sessions"], 5, "{report:#}");
    let deliveries = report["deliveries"].as_u64().unwrap();
    assert!(deliveries > 0, "{report:#}");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    // Every acknowledged post reached all five clients (the author's echo included).
    assert_eq!(
        report["expected_deliveries"].as_u64().unwrap(),
        deliveries,
        "{report:#}"
    );
    assert!(report["latency"]["delivery"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["server_usage"]["rss_end_kib"].as_u64().unwrap() > 0);
    server.stop().await;
}

/// The model's room mix with Digest sign-in: the server trusts no address, the users share
/// a password, and every acknowledged post reaches every client in its room.
#[tokio::test]
async fn lync_model_with_digest_over_tcp() {
    // No join notices in rooms of 30: a debug build on a busy machine can fall behind 29
    // notices × 20 rooms per client and be cut off, which is not what this test is about.
    let server = TestServer::start_seeded(
        |_| {},
        |store| wait(store.set_setting("ParticipantUpdateLimit", 10)).unwrap(),
    )
    .await;
    // 160 users: rooms of 30 (20 per user), of 150 (2 per user) and of 160 (the large
    // rooms, everyone): 24 rooms each.
    provision(
        &server,
        &["--users", "160", "--lync-model", "--password", "pw"],
    )
    .await;
    let args = [
        "--password",
        "pw",
        "--connections",
        "160",
        "--factor",
        "4500",
        "--duration",
        "2",
        "--drain",
        "5",
        "--timeout",
        "10",
        "--setup-timeout",
        "60",
    ];
    let report = scenario_json(&server, "lync-model", &args, Duration::from_secs(120)).await;
    assert_eq!(report["scenario"], "lync-model");
    assert_eq!(report["sessions"], 160, "{report:#}");
    assert_eq!(report["joins"], 160 * 24, "{report:#}");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    let deliveries = report["deliveries"].as_u64().unwrap();
    assert!(deliveries > 0, "{report:#}");
    assert_eq!(
        report["expected_deliveries"].as_u64().unwrap(),
        deliveries,
        "{report:#}"
    );
    assert!(
        report["latency"]["last_delivery"]["p99_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    server.stop().await;
}

/// Hostile connections held open (idle, half-open, slowloris) while a legitimate client
/// signs in and joins, three times: each probe succeeds and no hostile connection was
/// dropped meanwhile. How long the probes took is a figure for bench/README.md, not a test.
#[tokio::test]
async fn siege_leaves_room_for_a_legitimate_client() {
    let server = TestServer::start_seeded(trusted, seed).await;
    let args = [
        "--connections",
        "300",
        "--per-source",
        "100",
        "--probes",
        "3",
        "--duration",
        "2",
        "--timeout",
        "5",
        "--setup-timeout",
        "20",
    ];
    let report = scenario_json(&server, "siege", &args, Duration::from_secs(90)).await;
    assert_eq!(report["scenario"], "siege");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert_eq!(report["settings"]["probes_ok"], "3", "{report:#}");
    assert_eq!(
        report["settings"]["held_at_probes_min"], "300",
        "{report:#}"
    );
    assert_eq!(report["joins"], 3, "{report:#}");
    server.stop().await;
}

#[tokio::test]
async fn provision_writes_users_and_rooms() {
    let dir = temp_dir("provision");
    let data = dir.display().to_string();
    let args = [
        "provision",
        "--data",
        &data,
        "--users",
        "12",
        "--rooms-of",
        "4:3",
        "--rooms-of",
        "12:1",
        "--json",
    ];
    let summary = perch_load_json(&args, Duration::from_secs(60)).await;
    assert_eq!(summary["users_added"], 12);
    assert_eq!(summary["rooms_added"], 4);
    assert_eq!(summary["memberships"], 24);
    let model = tokio::task::spawn_blocking(move || {
        let store = SqliteStore::open(&dir).unwrap();
        let model = store.load_model().unwrap();
        store.close();
        let _ = std::fs::remove_dir_all(&dir);
        model
    })
    .await
    .unwrap();
    assert_eq!(model.users.len(), 12);
    assert!(
        model
            .users
            .iter()
            .all(|u| u.enabled && u.credentials.is_none())
    );
    let mut sizes: Vec<usize> = model.rooms.iter().map(|r| r.members.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [4, 4, 4, 12]);
}

/// A provisioned store prefilled with 5,000 messages (bulk, straight into SQLite, perch not
/// running), then perch on it and the history scenario for two seconds: every kind of
/// query answered and each answer holding exactly what the store holds.
#[tokio::test]
async fn history_on_a_prefilled_store() {
    let dir = temp_dir("history");
    let data = dir.display().to_string();
    let provision = [
        "provision",
        "--data",
        &data,
        "--users",
        "20",
        "--rooms-of",
        "20:1",
        "--rooms-of",
        "5:4",
        "--json",
    ];
    perch_load_json(&provision, Duration::from_secs(60)).await;
    let prefill = [
        "prefill",
        "--data",
        &data,
        "--messages",
        "5000",
        "--hot-share",
        "0.6",
        "--markers",
        "10,100,1000",
        "--batch",
        "1000",
        "--verify",
        "--json",
        "--quiet",
    ];
    let filled = perch_load_json(&prefill, Duration::from_secs(120)).await;
    assert_eq!(filled["store_messages"], 5000, "{filled:#}");
    assert_eq!(filled["rooms"].as_array().unwrap().len(), 5, "{filled:#}");
    assert!(
        filled["rooms"][0]["messages"].as_u64().unwrap() > 2500,
        "{filled:#}"
    );
    assert!(
        filled["markers"][0]["messages"].as_u64().unwrap() > 300,
        "{filled:#}"
    );

    let mut config = perch::app::config::Config {
        domain: DOMAIN.into(),
        data_dir: dir.clone(),
        ..perch::app::config::Config::default()
    };
    config.listen.tcp = Some("127.0.0.1:0".parse().unwrap());
    config.listen.tls = None;
    trusted(&mut config);
    // Closed-loop clients ask far more often than a person does.
    config.limits.requests_per_second = 100_000;
    config.limits.request_burst = 100_000;
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open(&dir).unwrap());
    let running = perch::app::server::start(&config, store.clone())
        .await
        .unwrap();
    let server = TestServer {
        server: Some(running),
        store,
        data_dir: dir,
    };
    // perch holds the store now: prefill refuses, naming the reason.
    let output = perch_load(&prefill, Duration::from_secs(60)).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stop perch"), "{stderr}");

    let args = [
        "--connections",
        "8",
        "--duration",
        "2",
        "--terms",
        "pmk10,pmk100,pmk1000",
        "--drain",
        "3",
        "--timeout",
        "5",
        "--setup-timeout",
        "10",
    ];
    let report = scenario_json(&server, "history", &args, Duration::from_secs(60)).await;
    assert_eq!(report["scenario"], "history");
    assert_eq!(report["sessions"], 8, "{report:#}");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert_eq!(report["settings"]["store_messages"], "5000", "{report:#}");
    for kind in ["history_cache", "history_disk", "search"] {
        let count = report["latency"][kind]["count"].as_u64().unwrap_or(0);
        assert!(count > 0, "no {kind} samples: {report:#}");
    }
    server.stop().await;
}

#[tokio::test]
async fn refuses_addresses_off_loopback() {
    let output = perch_load(
        &["fanout", "--target", "192.0.2.1:5060", "--duration", "1"],
        Duration::from_secs(30),
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

/// perch-load signs its clients in with NTLM (MS-SIPAE: every message signed both ways, as
/// Pidgin-SIPE does) and with Digest against a perch that trusts no address, and posts
/// reach everyone without an error; a wrong NTLM password shows as refusals.
#[tokio::test]
async fn ntlm_and_digest_sign_in_under_load() {
    let server = TestServer::start(|c| {
        c.limits.requests_per_second = 100_000;
        c.limits.request_burst = 100_000;
    })
    .await;
    let data = server.data_dir.display().to_string();
    provision(
        &server,
        &["--users", "4", "--rooms-of", "4:1", "--password", "s3cret"],
    )
    .await;
    let fanout = |auth: &'static str, password: &'static str| {
        vec![
            "--connections",
            "4",
            "--rate",
            "20",
            "--duration",
            "2",
            "--drain",
            "3",
            "--timeout",
            "5",
            "--setup-timeout",
            "20",
            "--auth",
            auth,
            "--password",
            password,
        ]
    };
    for auth in ["ntlm", "digest"] {
        let report = scenario_json(
            &server,
            "fanout",
            &fanout(auth, "s3cret"),
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(report["settings"]["auth"], auth, "{report:#}");
        assert_eq!(report["sessions"], 4, "{report:#}");
        assert_eq!(report["errors"]["total"], 0, "{report:#}");
        let deliveries = report["deliveries"].as_u64().unwrap();
        assert!(deliveries > 0, "{report:#}");
        assert_eq!(report["expected_deliveries"], deliveries, "{report:#}");
    }
    let target = server.running().tcp_addr().unwrap().to_string();
    let mut wrong = vec![
        "fanout", "--target", &target, "--data", &data, "--json", "--quiet",
    ];
    wrong.extend(fanout("ntlm", "wrong"));
    let output = perch_load(&wrong, Duration::from_secs(90)).await;
    assert!(!output.status.success(), "a run without sessions must fail");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["sessions"], 0, "{report:#}");
    assert_eq!(
        report["errors"]["by_kind"]["status 401 (REGISTER)"], 4,
        "{report:#}"
    );
    server.stop().await;
}
