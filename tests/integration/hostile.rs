//! Hostile XCCOS over a real chat dialog: XML bombs, external entities, deep nesting,
//! huge attributes, many children, invalid UTF-8. Each is refused on the INFO itself with
//! a 400 naming the problem, the dialog stays usable, and nothing is expanded or kept.

use crate::chat::{seed, trusted};
use crate::support::*;

const CHAT: &str = "sip:ocschat@example.test";

async fn dialog(server: &TestServer) -> (Client, String) {
    let mut client = server.tcp().await;
    assert_eq!(status(&client.register_plain().await), 200);
    let invite = client.request(
        "INVITE",
        CHAT,
        "hostile",
        1,
        &format!("<{CHAT}>"),
        &[("Contact", "<sip:alice@example.test>")],
        "",
    );
    client.send(&invite).await;
    let to = client
        .response()
        .await
        .headers
        .get("To")
        .unwrap()
        .to_owned();
    (client, to)
}

fn info(client: &Client, to: &str, cseq: u32, body: &[u8]) -> Vec<u8> {
    let head = client.request(
        "INFO",
        CHAT,
        "hostile",
        cseq,
        to,
        &[("Content-Type", "text/plain")],
        "",
    );
    // Replace the empty body with raw bytes (which may be invalid UTF-8).
    let mut bytes = head[..head.len() - "Content-Length: 0\r\n\r\n".len()].to_vec();
    bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test]
async fn xml_attacks_are_refused_with_a_clear_error() {
    let server = TestServer::start_seeded(trusted, seed).await;
    let (mut client, to) = dialog(&server).await;
    let envelope = |inner: &str| {
        format!(r#"<xccos ver="1" envid="1" xmlns="urn:parlano:xml:ns:xccos">{inner}</xccos>"#)
    };
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xccos ver="1" envid="1"><cmd id="cmd:chansrch" seqid="1"><data><qib criteria="&lol3;"/></data></cmd></xccos>"#;
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xccos ver="1" envid="1"><cmd id="cmd:chansrch" seqid="1"><data><qib criteria="&xxe;"/></data></cmd></xccos>"#;
    let undeclared =
        envelope(r#"<cmd id="cmd:chansrch" seqid="1"><data><qib criteria="&xxe;"/></data></cmd>"#);
    let deep = envelope(&format!(
        "{}{}",
        "<a>".repeat(30_000),
        "</a>".repeat(30_000)
    ));
    let huge_attribute = envelope(&format!(
        r#"<cmd id="cmd:chansrch" seqid="1"><data><qib criteria="{}"/></data></cmd>"#,
        "x".repeat(200_000)
    ));
    let many_children = envelope(&format!(
        r#"<cmd id="cmd:bjoin" seqid="1"><data>{}</data></cmd>"#,
        r#"<chanid key="0" value="x"/>"#.repeat(5_000)
    ));
    let oversized = envelope(&"<a/>".repeat(100_000));
    let mut invalid_utf8 =
        envelope(r#"<cmd id="cmd:chansrch" seqid="1"><data><qib criteria="X"/></data></cmd>"#)
            .into_bytes();
    let at = invalid_utf8.iter().position(|&b| b == b'X').unwrap();
    invalid_utf8[at] = 0xff;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("billion laughs", laughs.as_bytes().to_vec(), 400, "DTD"),
        ("external entity", xxe.as_bytes().to_vec(), 400, "DTD"),
        ("undeclared entity", undeclared.into_bytes(), 400, "entity"),
        ("deep nesting", deep.into_bytes(), 400, "nesting"),
        // Bodies over limits.max_body_bytes (256 KiB) never reach the XML parser.
        (
            "huge attribute",
            huge_attribute.into_bytes(),
            400,
            "longer than",
        ),
        ("many children", many_children.into_bytes(), 400, "elements"),
        ("invalid UTF-8", invalid_utf8, 400, "UTF-8"),
        ("oversized body", oversized.into_bytes(), 413, "exceeds"),
    ];
    let mut cseq = 1;
    for (name, body, expected, reason) in cases {
        cseq += 1;
        let request = info(&client, &to, cseq, &body);
        if client.try_send(&request).await.is_err() {
            panic!("{name}: the server closed the connection while the body was sent");
        }
        let reply = client.response().await;
        let warning = reply.headers.get("Warning").unwrap_or_default().to_owned();
        if expected == 413 {
            // An oversized body ends the stream: 413, then the connection closes.
            assert_eq!(status(&reply), 413, "{name}");
            assert!(client.closed_by_server().await, "{name}");
            let (again, again_to) = dialog(&server).await;
            client = again;
            let _ = again_to;
            break;
        }
        assert_eq!(status(&reply), expected, "{name}: {warning}");
        assert!(
            warning.contains(reason),
            "{name}: warning {warning:?} should mention {reason}"
        );
    }
    // The server is still well: a normal command on a fresh dialog is answered.
    let (mut fresh, fresh_to) = dialog(&server).await;
    let ok = envelope(r#"<cmd id="cmd:chansrch" seqid="1"><data><qib criteria=""/></data></cmd>"#);
    fresh.send(&info(&fresh, &fresh_to, 2, ok.as_bytes())).await;
    assert_eq!(status(&fresh.response().await), 200);
    drop(client);
    server.stop().await;
}
