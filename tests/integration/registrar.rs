//! REGISTER: Digest (SHA-256 and MD5), replay, stale nonces, trusted networks, throttling,
//! identity binding, and administrative changes reaching a running server.

use perch::lync::session::digest::{Algorithm, ClientDigest, parse_challenge};
use perch::lync::sip::Message;

use crate::support::*;

fn register(client: &Client, cseq: u32, authorization: Option<&str>) -> Vec<u8> {
    client.register_request("reg-call", cseq, authorization)
}

/// The challenge for `algorithm` in a 401: (realm, nonce, stale).
fn challenge(reply: &Message, algorithm: Algorithm) -> (String, String, bool) {
    let params = reply
        .headers
        .get_all("WWW-Authenticate")
        .filter_map(parse_challenge)
        .find(|p| p.value("algorithm") == Some(algorithm.name()))
        .expect("challenge for the algorithm");
    (
        params.value("realm").unwrap().to_owned(),
        params.value("nonce").unwrap().to_owned(),
        params.value("stale") == Some("true"),
    )
}

fn digest_answer(
    algorithm: Algorithm,
    user: &str,
    password: &str,
    realm: &str,
    nonce: &str,
    nc: u32,
) -> String {
    ClientDigest {
        algorithm,
        username: user,
        realm,
        password,
        method: "REGISTER",
        uri: &format!("sip:{DOMAIN}"),
        nonce,
        nc,
        cnonce: "c0ffee",
    }
    .authorization()
}

async fn digest_register(algorithm: Algorithm) {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tls().await;
    let req = register(&client, 1, None);
    client.send(&req).await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 401);
    // SHA-256 is offered first (RFC 8760).
    let first = reply.headers.get("WWW-Authenticate").unwrap();
    assert!(first.contains("algorithm=SHA-256"), "{first}");
    let (realm, nonce, stale) = challenge(&reply, algorithm);
    assert_eq!(realm, DOMAIN);
    assert!(!stale);

    let auth = digest_answer(algorithm, "alice", "alice-pw", &realm, &nonce, 1);
    let req = register(&client, 2, Some(&auth));
    client.send(&req).await;
    let ok = client.response().await;
    assert_eq!(status(&ok), 200);
    let expires: u32 = ok.headers.get("Expires").unwrap().parse().unwrap();
    assert!(expires > 0);
    let supported: Vec<&str> = ok.headers.get_all("Supported").collect();
    assert!(
        supported.contains(&"msrtc-event-categories"),
        "{supported:?}"
    );
    let allow_events = ok.headers.get("Allow-Events").unwrap();
    assert!(
        allow_events
            .split(',')
            .any(|e| e == "vnd-microsoft-provisioning-v2")
    );
    assert!(!allow_events.contains(", "));
    assert!(
        ok.headers
            .get("ms-keep-alive")
            .unwrap()
            .contains("timeout=")
    );

    // The same nonce count again is a replay: never 200.
    let req = register(&client, 3, Some(&auth));
    let mut other = server.tls().await;
    other.send(&req).await;
    let replay = other.response().await;
    assert_ne!(status(&replay), 200);
    assert!(matches!(status(&replay), 401 | 403));
    server.stop().await;
}

#[tokio::test]
async fn digest_sha256_register() {
    digest_register(Algorithm::Sha256).await;
}

#[tokio::test]
async fn digest_md5_register() {
    digest_register(Algorithm::Md5).await;
}

#[tokio::test]
async fn wrong_password_unknown_and_disabled_users_are_refused() {
    let server = TestServer::start(|_| {}).await;
    for (user, password) in [("alice", "wrong"), ("nobody", "x"), ("dave", "dave-pw")] {
        let mut client = server.tls().await;
        client.user = user.into();
        let req = register(&client, 1, None);
        client.send(&req).await;
        let reply = client.response().await;
        let (realm, nonce, _) = challenge(&reply, Algorithm::Sha256);
        let auth = digest_answer(Algorithm::Sha256, user, password, &realm, &nonce, 1);
        let req = register(&client, 2, Some(&auth));
        client.send(&req).await;
        let refused = client.response().await;
        assert_eq!(status(&refused), 403, "{user}");
    }
    server.stop().await;
}

#[tokio::test]
async fn failed_attempts_are_throttled() {
    let server = TestServer::start(|c| c.auth.max_failures_per_user = 3).await;
    let mut client = server.tls().await;
    for attempt in 0..5u32 {
        let req = register(&client, attempt * 2 + 1, None);
        client.send(&req).await;
        let reply = client.response().await;
        if attempt >= 3 {
            // Blocked before any challenge is issued.
            assert_eq!(status(&reply), 403);
            continue;
        }
        let (realm, nonce, _) = challenge(&reply, Algorithm::Md5);
        let auth = digest_answer(Algorithm::Md5, "alice", "guess", &realm, &nonce, 1);
        let req = register(&client, attempt * 2 + 2, Some(&auth));
        client.send(&req).await;
        assert_eq!(status(&client.response().await), 403);
    }
    // Even the right password is refused while blocked.
    let req = register(&client, 20, None);
    client.send(&req).await;
    assert_eq!(status(&client.response().await), 403);
    server.stop().await;
}

#[tokio::test]
async fn expired_nonce_gets_stale_challenge() {
    let server = TestServer::start(|c| c.auth.nonce_lifetime_secs = 1).await;
    let mut client = server.tls().await;
    let req = register(&client, 1, None);
    client.send(&req).await;
    let (realm, nonce, _) = challenge(&client.response().await, Algorithm::Sha256);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let auth = digest_answer(Algorithm::Sha256, "alice", "alice-pw", &realm, &nonce, 1);
    let req = register(&client, 2, Some(&auth));
    client.send(&req).await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 401);
    let (_, fresh, stale) = challenge(&reply, Algorithm::Sha256);
    assert!(stale);
    assert_ne!(fresh, nonce);
    server.stop().await;
}

#[tokio::test]
async fn trusted_network_registers_without_challenge() {
    let server =
        TestServer::start(|c| c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let mut client = server.tls().await;
    assert_eq!(status(&client.register_plain().await), 200);
    for user in ["nobody", "dave"] {
        let mut other = server.tls().await;
        other.user = user.into();
        assert_eq!(status(&other.register_plain().await), 403, "{user}");
    }
    server.stop().await;
}

#[tokio::test]
async fn untrusted_network_is_challenged() {
    let server =
        TestServer::start(|c| c.trusted_networks = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let mut client = server.tls().await;
    assert_eq!(status(&client.register_plain().await), 401);
    server.stop().await;
}

#[tokio::test]
async fn requests_need_the_registered_identity() {
    let server =
        TestServer::start(|c| c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let mut client = server.tls().await;
    let invite = |c: &Client| {
        c.request(
            "INVITE",
            &format!("sip:ocschat@{DOMAIN}"),
            "inv-1",
            1,
            &format!("<sip:ocschat@{DOMAIN}>"),
            &[],
            "",
        )
    };
    // Not registered yet: nothing reaches the chat endpoint.
    client.send(&invite(&client)).await;
    assert_eq!(status(&client.response().await), 403);
    assert_eq!(status(&client.register_plain().await), 200);
    // Registered as alice, speaking as bob.
    client.user = "bob".into();
    let req = client.request(
        "INVITE",
        &format!("sip:ocschat@{DOMAIN}"),
        "inv-2",
        1,
        &format!("<sip:ocschat@{DOMAIN}>"),
        &[],
        "",
    );
    client.send(&req).await;
    assert_eq!(status(&client.response().await), 403);
    assert_eq!(status(&client.register_plain().await), 403);
    server.stop().await;
}

#[tokio::test]
async fn admin_changes_reach_a_running_server() {
    // Attempts before the reload fail; the throttle must not turn them into a lock-out.
    let server = TestServer::start(|c| {
        c.auth.max_failures_per_user = 1000;
        c.auth.max_failures_per_address = 1000;
    })
    .await;
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || {
        perch::core::service::add_user(
            store.as_ref(),
            "erin@example.test",
            None,
            Some("erin-pw"),
            true,
        )
        .unwrap();
    })
    .await
    .unwrap();
    let mut registered = false;
    for _ in 0..30 {
        let mut client = server.tls().await;
        client.user = "erin".into();
        let req = register(&client, 1, None);
        client.send(&req).await;
        let (realm, nonce, _) = challenge(&client.response().await, Algorithm::Sha256);
        let auth = digest_answer(Algorithm::Sha256, "erin", "erin-pw", &realm, &nonce, 1);
        let req = register(&client, 2, Some(&auth));
        client.send(&req).await;
        if status(&client.response().await) == 200 {
            registered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(registered, "a user added while running could not register");
    server.stop().await;
}

#[tokio::test]
async fn an_ipv4_client_of_a_dual_stack_listener_is_seen_as_ipv4() {
    // On [::] an IPv4 client arrives as ::ffff:127.0.0.1; trusted_networks holds IPv4.
    let server = TestServer::start(|c| {
        c.listen.tcp = Some("[::]:0".parse().unwrap());
        c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let port = server.running().tcp_addr().unwrap().port();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut client = Client::over(Box::new(tcp), "tcp");
    assert_eq!(status(&client.register_plain().await), 200);
    server.stop().await;
}

#[tokio::test]
async fn challenges_are_capped_per_address_and_a_flood_does_not_stale_a_real_answer() {
    let server = TestServer::start(|c| c.auth.challenges_per_second_per_address = 2).await;
    let mut client = server.tls().await;
    client.send(&register(&client, 1, None)).await;
    let (realm, nonce, _) = challenge(&client.response().await, Algorithm::Sha256);
    // A stranger asks for challenges as fast as it can from the same address.
    let mut flood = server.tcp().await;
    flood.user = "nobody".into();
    let mut refused = 0;
    for cseq in 1..=40 {
        flood.send(&register(&flood, cseq, None)).await;
        let reply = flood.response().await;
        match status(&reply) {
            401 => {}
            503 => {
                assert_eq!(reply.headers.get("Retry-After"), Some("1"));
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // Burst of five times the rate, then refusals.
    assert!(refused >= 25, "{refused} of 40 refused");
    // The nonce issued before the flood still signs alice in.
    let auth = digest_answer(Algorithm::Sha256, "alice", "alice-pw", &realm, &nonce, 1);
    client.send(&register(&client, 2, Some(&auth))).await;
    assert_eq!(status(&client.response().await), 200);
    server.stop().await;
}

#[tokio::test]
async fn an_invented_user_name_beyond_the_bound_is_refused_before_it_is_remembered() {
    let server = TestServer::start(|c| c.auth.max_failures_per_user = 1).await;
    let mut client = server.tcp().await;
    client.user = "x".repeat(8000);
    client.send(&register(&client, 1, None)).await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 400);
    assert!(
        reply
            .headers
            .get("Warning")
            .unwrap()
            .contains("longer than 256 bytes")
    );
    server.stop().await;
}

/// A Digest-registered client with an open chat dialog, for the revocation tests.
async fn digest_signed_in_with_dialog(server: &TestServer) -> Client {
    let mut client = server.tcp().await;
    client.send(&register(&client, 1, None)).await;
    let (realm, nonce, _) = challenge(&client.response().await, Algorithm::Sha256);
    let auth = digest_answer(Algorithm::Sha256, "alice", "alice-pw", &realm, &nonce, 1);
    client.send(&register(&client, 2, Some(&auth))).await;
    assert_eq!(status(&client.response().await), 200);
    let call_id = client.new_call_id();
    let invite = client.invite_chat(&call_id, &[("Contact", "<sip:alice@example.test>")], "");
    client.send(&invite).await;
    assert_eq!(status(&client.response().await), 200);
    client
}

/// Changing a user's password, disabling or removing them ends their registrations and
/// chat dialogs at once: a BYE on each dialog, then the connection is closed.
#[tokio::test]
async fn rights_end_when_they_are_taken_away() {
    type Change = fn(&dyn perch::core::ports::Store);
    let changes: [(&str, Change); 3] = [
        ("password", |store| {
            perch::core::service::set_user(store, "alice@example.test", None, Some("new"), None)
                .unwrap();
        }),
        ("disable", |store| {
            perch::core::service::set_user(store, "alice@example.test", None, None, Some(false))
                .unwrap();
        }),
        ("remove", |store| {
            let snapshot = perch::core::Snapshot::from_model(store.load_model().unwrap());
            perch::core::service::remove_user(store, &snapshot, "alice@example.test").unwrap();
        }),
    ];
    for (what, change) in changes {
        let server = TestServer::start(|_| {}).await;
        let mut client = digest_signed_in_with_dialog(&server).await;
        let store = server.store.clone();
        tokio::task::spawn_blocking(move || change(store.as_ref()))
            .await
            .unwrap();
        let bye = tokio::time::timeout(std::time::Duration::from_secs(2), client.message())
            .await
            .unwrap_or_else(|_| panic!("{what}: no BYE within 2 s"));
        assert_eq!(bye.method().map(|m| m.as_str()), Some("BYE"), "{what}");
        assert!(
            client.closed_by_server().await,
            "{what}: connection left open"
        );
        server.stop().await;
    }
}

/// A Digest registration is refreshed only with the password proved again.
#[tokio::test]
async fn a_digest_refresh_must_prove_the_password_again() {
    let server = TestServer::start(|_| {}).await;
    let mut client = digest_signed_in_with_dialog(&server).await;
    client.send(&register(&client, 3, None)).await;
    assert_eq!(status(&client.response().await), 401);
    server.stop().await;
}

/// Wrong answers for alice from five other addresses do not lock her out: she signs in
/// with her password from her own address at once.
#[tokio::test]
async fn strangers_cannot_lock_a_user_out() {
    let server = TestServer::start(|_| {}).await;
    for host in 2..=6 {
        let mut stranger = server
            .tcp_from(std::net::Ipv4Addr::new(127, 0, 0, host))
            .await;
        for attempt in 0..5u32 {
            stranger
                .send(&register(&stranger, attempt * 2 + 1, None))
                .await;
            let reply = stranger.response().await;
            if status(&reply) == 403 {
                continue; // that address is waiting now
            }
            let (realm, nonce, _) = challenge(&reply, Algorithm::Sha256);
            let auth = digest_answer(Algorithm::Sha256, "alice", "guess", &realm, &nonce, 1);
            stranger
                .send(&register(&stranger, attempt * 2 + 2, Some(&auth)))
                .await;
            assert_eq!(status(&stranger.response().await), 403);
        }
    }
    let mut alice = server.tcp_from(std::net::Ipv4Addr::new(127, 0, 0, 9)).await;
    alice.send(&register(&alice, 1, None)).await;
    let (realm, nonce, _) = challenge(&alice.response().await, Algorithm::Sha256);
    let auth = digest_answer(Algorithm::Sha256, "alice", "alice-pw", &realm, &nonce, 1);
    alice.send(&register(&alice, 2, Some(&auth))).await;
    assert_eq!(status(&alice.response().await), 200);
    server.stop().await;
}

/// `perch admin user unlock` lifts a throttle at once: after failures that make alice's own
/// address wait seconds, the running server forgets them as soon as the change is stored.
#[tokio::test]
async fn an_administrator_unlocks_a_throttled_user() {
    use std::time::Duration;
    let server = TestServer::start(|c| c.auth.max_failures_per_user = 1).await;
    let mut alice = server.tcp().await;
    let mut cseq = 0;
    // Each failure doubles the wait before the next attempt: 1 s, 2 s, then 4 s.
    for wait in [1, 2, 0] {
        cseq += 1;
        alice.send(&register(&alice, cseq, None)).await;
        let (realm, nonce, _) = challenge(&alice.response().await, Algorithm::Sha256);
        let auth = digest_answer(Algorithm::Sha256, "alice", "guess", &realm, &nonce, 1);
        cseq += 1;
        alice.send(&register(&alice, cseq, Some(&auth))).await;
        assert_eq!(status(&alice.response().await), 403);
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
    }
    cseq += 1;
    alice.send(&register(&alice, cseq, None)).await;
    assert_eq!(status(&alice.response().await), 403, "throttled for 4 s");

    // From another process, as an operator would: the change reaches the server through
    // the store's change feed, well before the 4 s are over.
    let unlock = tokio::process::Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(["admin", "--data"])
        .arg(&server.data_dir)
        .args(["user", "unlock", "sip:alice@example.test"])
        .env("PERCH_DOMAIN", DOMAIN)
        .output()
        .await
        .unwrap();
    assert!(unlock.status.success(), "{unlock:?}");
    assert_eq!(
        String::from_utf8_lossy(&unlock.stdout),
        "unlocked sip:alice@example.test\n"
    );
    let mut challenged = None;
    for _ in 0..20 {
        cseq += 1;
        alice.send(&register(&alice, cseq, None)).await;
        let reply = alice.response().await;
        if status(&reply) == 401 {
            challenged = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = challenged.expect("still throttled 2 s after the unlock");
    let (realm, nonce, _) = challenge(&reply, Algorithm::Sha256);
    let auth = digest_answer(Algorithm::Sha256, "alice", "alice-pw", &realm, &nonce, 1);
    cseq += 1;
    alice.send(&register(&alice, cseq, Some(&auth))).await;
    assert_eq!(status(&alice.response().await), 200);
    server.stop().await;
}

/// Sign-in names match without regard to case: `sip:ALICE@example.test` with alice's
/// password signs in as alice, again and again (no attempt is counted as a failure), and
/// the chat dialog it opens is alice's.
#[tokio::test]
async fn sign_in_names_match_in_any_case() {
    let server = TestServer::start(|c| c.auth.max_failures_per_user = 1).await;
    for attempt in 0..3 {
        let mut client = server.tcp().await;
        client.user = "ALICE".into();
        client.send(&register(&client, 1, None)).await;
        let (realm, nonce, _) = challenge(&client.response().await, Algorithm::Sha256);
        let auth = digest_answer(Algorithm::Sha256, "alice", "alice-pw", &realm, &nonce, 1);
        client.send(&register(&client, 2, Some(&auth))).await;
        assert_eq!(status(&client.response().await), 200, "attempt {attempt}");
        let call_id = client.new_call_id();
        let invite = client.invite_chat(&call_id, &[("Contact", "<sip:ALICE@example.test>")], "");
        client.send(&invite).await;
        assert_eq!(status(&client.response().await), 200, "attempt {attempt}");
    }
    server.stop().await;
}
