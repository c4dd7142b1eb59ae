//! Framing and robustness over real sockets.

use crate::support::*;

#[tokio::test]
async fn options_over_tls() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tls().await;
    client.send(&client.options(1)).await;
    let reply = client.response().await;
    assert_eq!(status(&reply), 200);
    assert!(reply.headers.get("Allow").unwrap().contains("INFO"));
    // Via copied back unchanged, no branch added.
    assert_eq!(reply.headers.get("Via"), Some("SIP/2.0/tls 127.0.0.1:5555"));
    server.stop().await;
}

#[tokio::test]
async fn message_split_at_every_byte_boundary() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tcp().await;
    let sample = client.options(1);
    for cut in 1..sample.len() {
        let message = client.options(cut as u32);
        let cut = cut.min(message.len() - 1);
        client.send(&message[..cut]).await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        client.send(&message[cut..]).await;
        let reply = client.response().await;
        assert_eq!(status(&reply), 200, "cut at {cut}");
    }
    server.stop().await;
}

#[tokio::test]
async fn three_messages_in_one_write() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tls().await;
    let all = [client.options(1), client.options(2), client.options(3)].concat();
    client.send(&all).await;
    for n in 1..=3 {
        let reply = client.response().await;
        assert_eq!(
            reply.headers.get("CSeq"),
            Some(format!("{n} OPTIONS").as_str())
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn crlf_keep_alive_is_answered_with_crlf() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.tls().await;
    client.send(b"\r\n\r\n").await;
    assert!(matches!(client.receive().await, Some(Received::Pong)));
    // Single CRLFs between messages are skipped silently.
    let mut with_breaks = b"\r\n".to_vec();
    with_breaks.extend(client.options(7));
    client.send(&with_breaks).await;
    assert_eq!(status(&client.response().await), 200);
    server.stop().await;
}

#[tokio::test]
async fn oversized_header_block_is_refused_and_closed() {
    let server = TestServer::start(|c| c.limits.max_header_bytes = 4096).await;
    let mut client = server.tcp().await;
    let mut head = String::from_utf8(client.options(1)).unwrap();
    head.truncate(head.find("Content-Length").unwrap());
    // The header block never ends: the server answers once it has 4 KiB, without waiting
    // for (or buffering) the rest.
    head.push_str(&format!("X-Filler: {}\r\n", "a".repeat(5000)));
    client.send(head.as_bytes()).await;
    assert_eq!(status(&client.response().await), 513);
    assert!(client.closed_by_server().await);
    server.stop().await;
}

#[tokio::test]
async fn too_many_headers_and_oversized_body() {
    let server = TestServer::start(|c| {
        c.limits.max_headers = 20;
        c.limits.max_body_bytes = 1000;
    })
    .await;
    let mut client = server.tcp().await;
    let extra: Vec<(String, String)> = (0..30).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let extra_refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let msg = client.request("OPTIONS", "sip:x@y", "c1", 1, "<sip:x@y>", &extra_refs, "");
    client.send(&msg).await;
    assert_eq!(status(&client.response().await), 513);
    assert!(client.closed_by_server().await);

    let mut client = server.tcp().await;
    let body = "b".repeat(5000);
    let msg = client.request("INFO", "sip:x@y", "c2", 1, "<sip:x@y>", &[], &body);
    client.send(&msg[..msg.len() - 4000]).await;
    assert_eq!(status(&client.response().await), 413);
    assert!(client.closed_by_server().await);
    server.stop().await;
}

#[tokio::test]
async fn garbage_gets_400_or_close_and_the_server_survives() {
    let server = TestServer::start(|_| {}).await;
    let inputs: Vec<Vec<u8>> = vec![
        b"hello world\r\n\r\n".to_vec(),
        b"INVITE sip:x SIP/9.9\r\nVia: SIP/2.0/TCP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n".to_vec(),
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: one OPTIONS\r\n\r\n".to_vec(),
        b"OPTIONS sip:x SIP/2.0\r\nContent-Length: banana\r\n\r\n".to_vec(),
        (0u8..=255).cycle().take(20_000).collect(),
        vec![0xff; 100_000],
    ];
    for input in inputs {
        let mut client = server.tcp().await;
        let _ = client.try_send(&input).await;
        match client.receive().await {
            Some(Received::Message(m)) => assert!(matches!(status(&m), 400 | 505)),
            Some(Received::Unparsed(head)) => assert!(head.starts_with(b"SIP/2.0 400 ")),
            Some(Received::Pong) => {}
            None => {}
        }
    }
    // A malformed message whose framing is intact does not end the connection.
    let mut client = server.tcp().await;
    client
        .send(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INFO\r\n\r\n")
        .await;
    assert_eq!(status(&client.response().await), 400);
    client.send(&client.options(2)).await;
    assert_eq!(status(&client.response().await), 200);
    server.stop().await;
}
