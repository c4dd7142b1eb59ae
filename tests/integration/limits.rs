//! Connection defences: caps per address, slow messages, request rate.

use crate::support::*;

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed() {
    let server = TestServer::start(|c| c.limits.max_connections_per_address = 2).await;
    let mut first = server.tcp().await;
    let mut second = server.tcp().await;
    for (n, client) in [&mut first, &mut second].into_iter().enumerate() {
        client.send(&client.options(n as u32)).await;
        assert_eq!(status(&client.response().await), 200);
    }
    let mut third = server.tcp().await;
    assert!(
        third.closed_by_server().await,
        "a third connection from one address must be closed"
    );
    drop(first);
    // The slot is given back once a connection ends.
    let mut again = None;
    for _ in 0..50 {
        let mut client = server.tcp().await;
        let _ = client.try_send(&client.options(9)).await;
        if let Some(Received::Message(reply)) = client.receive().await {
            assert_eq!(status(&reply), 200);
            again = Some(client);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(again.is_some());
    server.stop().await;
}

#[tokio::test]
async fn a_message_that_never_completes_is_cut_off() {
    let server = TestServer::start(|c| c.limits.message_timeout_secs = 1).await;
    let mut client = server.tcp().await;
    // Header by header, never the blank line: a slowloris.
    client
        .send(b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5555\r\n")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let _ = client.try_send(b"X-Slow: 1\r\n").await;
    assert!(client.closed_by_server().await);
    // Complete messages on a quiet connection are not affected.
    let mut patient = server.tcp().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    patient.send(&patient.options(1)).await;
    assert_eq!(status(&patient.response().await), 200);
    server.stop().await;
}

#[tokio::test]
async fn requests_beyond_the_rate_get_503_with_retry_after() {
    let server = TestServer::start(|c| {
        c.limits.requests_per_second = 1;
        c.limits.request_burst = 3;
    })
    .await;
    let mut client = server.tcp().await;
    let all: Vec<u8> = (1..=6).flat_map(|n| client.options(n)).collect();
    client.send(&all).await;
    let mut codes = Vec::new();
    for _ in 1..=6 {
        let reply = client.response().await;
        if status(&reply) == 503 {
            assert_eq!(reply.headers.get("Retry-After"), Some("1"));
        }
        codes.push(status(&reply));
    }
    assert_eq!(codes, [200, 200, 200, 503, 503, 503]);
    // After the pause the same request is served.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.send(&client.options(6)).await;
    assert_eq!(status(&client.response().await), 200);
    server.stop().await;
}

/// One user's connections share a request budget: each within its own rate, together they
/// cannot go past the user's.
#[tokio::test]
async fn a_users_connections_share_one_request_budget() {
    let server = TestServer::start(|c| {
        c.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.limits.requests_per_second = 1;
        c.limits.request_burst = 12;
        c.limits.requests_per_second_per_user = 1;
        c.limits.request_burst_per_user = 16;
    })
    .await;
    let mut busy = 0;
    for _ in 0..2 {
        let mut client = server.tcp().await;
        assert_eq!(status(&client.register_plain().await), 200);
        for n in 0..10 {
            client.send(&client.options(n)).await;
            match status(&client.response().await) {
                200 => {}
                503 => busy += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    // 2 REGISTERs and 20 OPTIONS against a budget of 16 (plus what one per second
    // refills meanwhile): the last few are refused, though no connection passed its own.
    assert!(busy >= 3, "{busy} refused");
    server.stop().await;
}
