//! The HTTPS side against a real server: health, readiness, and metrics that move as a
//! client signs in and posts, over TLS with the SIP listeners' certificate.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chat::{Chat, room_uri, seed, trusted};
use crate::support::{TestServer, tls_connect};

/// One GET over a new TLS connection: the status and the body.
async fn get(addr: SocketAddr, cert: &Path, path: &str) -> (u16, String) {
    let mut tls = tls_connect(addr, cert, "localhost").await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, body.to_owned())
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_over_https() {
    let server = TestServer::start_seeded(
        |config| {
            trusted(config);
            config.http.listen = Some("127.0.0.1:0".parse().unwrap());
        },
        seed,
    )
    .await;
    let addr = server.running().http_addr().unwrap();
    let cert = server.running().certificate().unwrap().cert.clone();

    assert_eq!(get(addr, &cert, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(
        get(addr, &cert, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(get(addr, &cert, "/nothing").await.0, 404);

    let (status, before) = get(addr, &cert, "/metrics").await;
    assert_eq!(status, 200);
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    alice.join(&lobby).await;
    for n in 0..3 {
        assert_eq!(alice.post(&lobby, &format!("counted {n}")).await, 200);
    }
    let (_, after) = get(addr, &cert, "/metrics").await;
    for (series, at_least) in [
        ("perch_posts_total ", 3.0),
        ("perch_deliveries_total ", 3.0),
        (
            "perch_sign_ins_total{mechanism=\"trusted\",outcome=\"success\"} ",
            1.0,
        ),
        ("perch_connections_accepted_total{transport=\"tls\"} ", 1.0),
        ("perch_store_commit_seconds_count ", 3.0),
    ] {
        let moved = sample(&after, series) - sample(&before, series);
        assert!(moved >= at_least, "{series} moved by {moved}:\n{after}");
    }
    assert!(
        sample(&after, "perch_connections{transport=\"tls\"} ") >= 1.0,
        "{after}"
    );
    assert!(sample(&after, "perch_store_bytes ") > 0.0, "{after}");
    assert!(after.ends_with("# EOF\n"), "{after}");
    server.stop().await;
}
