//! The chat dialog as SIPE drives it: provisioning, INVITE/ACK, INFO with cmd:requri and
//! the server's INFO back, UPDATE, BYE, CANCEL, and the reactions to 481/487.

use perch::lync::sip::{Message, NameAddr, StartLine};

use crate::support::*;

const CHAT: &str = "sip:ocschat@example.test";

fn trusted(config: &mut perch::app::config::Config) {
    config.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
}

const REQURI: &str = r#"<xccos ver="1" envid="1804289383" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:requri" seqid="1"><data/></cmd></xccos>"#;

/// An established chat dialog: (Call-ID, To header with our tag).
async fn open_dialog(client: &mut Client) -> (String, String) {
    let call_id = client.new_call_id();
    let invite = client.invite_chat(
        &call_id,
        &[
            ("Contact", "<sip:alice@example.test;opaque=user:epid:abc;gruu>"),
            ("Supported", "ms-sender"),
            ("Content-Type", "application/sdp"),
        ],
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5061 sip null\r\n",
    );
    client.send(&invite).await;
    let ok = client.response().await;
    assert_eq!(status(&ok), 200);
    let to = ok.headers.get("To").unwrap().to_owned();
    assert!(NameAddr::parse(&to).unwrap().tag().is_some());
    assert!(ok.headers.get("Contact").is_some());
    assert!(
        ok.headers
            .get("Session-Expires")
            .unwrap()
            .starts_with("1800")
    );
    assert_eq!(ok.headers.get("Content-Type"), Some("application/sdp"));
    let ack = client.request("ACK", CHAT, &call_id, 1, &to, &[], "");
    client.send(&ack).await;
    (call_id, to)
}

/// A registered client with an established chat dialog.
async fn connected(server: &TestServer) -> (Client, String, String) {
    let mut client = server.tls().await;
    assert_eq!(status(&client.register_plain().await), 200);
    let (call_id, to) = open_dialog(&mut client).await;
    (client, call_id, to)
}

/// Sends cmd:requri, expects the 200, and returns the server's INFO carrying the reply.
async fn requri(client: &mut Client, call_id: &str, cseq: u32, to: &str) -> Message {
    client.send(&info(client, call_id, cseq, to, REQURI)).await;
    assert_eq!(status(&client.response().await), 200);
    client.message().await
}

fn info(client: &Client, call_id: &str, cseq: u32, to: &str, body: &str) -> Vec<u8> {
    client.request(
        "INFO",
        CHAT,
        call_id,
        cseq,
        to,
        &[("Content-Type", "text/plain")],
        body,
    )
}

#[tokio::test]
async fn provisioning_subscribe_is_piggybacked() {
    let server = TestServer::start(trusted).await;
    let mut client = server.tls().await;
    client.register_plain().await;
    let sub = client.request(
        "SUBSCRIBE",
        "sip:alice@example.test",
        "sub-1",
        1,
        "<sip:alice@example.test>",
        &[
            ("Event", "vnd-microsoft-provisioning-v2"),
            ("Accept", "application/vnd-microsoft-roaming-provisioning-v2+xml"),
            ("Expires", "0"),
        ],
        r#"<provisioningGroupList xmlns="http://schemas.microsoft.com/2006/09/sip/provisioninggrouplist"><provisioningGroup name="persistentChatConfiguration"/></provisioningGroupList>"#,
    );
    client.send(&sub).await;
    let ok = client.response().await;
    assert_eq!(status(&ok), 200);
    assert_eq!(
        ok.headers.get("Event"),
        Some("vnd-microsoft-provisioning-v2")
    );
    assert!(ok.headers.get("ms-piggyback-cseq").is_some());
    let body = body_text(&ok);
    assert!(body.contains(r#"<property name="EnablePersistentChat">true</property>"#));
    assert!(body.contains(&format!(">{CHAT}</property>")));

    let presence = client.request(
        "SUBSCRIBE",
        "sip:bob@example.test",
        "sub-2",
        1,
        "<sip:bob@example.test>",
        &[("Event", "presence")],
        "",
    );
    client.send(&presence).await;
    assert_eq!(status(&client.response().await), 489);
    server.stop().await;
}

#[tokio::test]
async fn chat_dialog_with_server_info() {
    let server = TestServer::start(trusted).await;
    let (mut client, call_id, to) = connected(&server).await;

    // cmd:requri: 200 at once, then the reply in a server INFO on the same dialog.
    let server_info = requri(&mut client, &call_id, 2, &to).await;
    let StartLine::Request { method, uri } = &server_info.start else {
        panic!("expected the server's INFO")
    };
    assert_eq!(method.as_str(), "INFO");
    assert_eq!(uri, "sip:alice@example.test;opaque=user:epid:abc;gruu");
    assert_eq!(server_info.call_id(), call_id);
    let from = NameAddr::parse(server_info.headers.get("From").unwrap()).unwrap();
    assert_eq!(from.uri, CHAT, "From must be the URI the client INVITEd");
    assert_eq!(
        Some(from.tag().unwrap()),
        NameAddr::parse(&to).unwrap().tag()
    );
    assert!(
        server_info
            .headers
            .get("To")
            .unwrap()
            .contains("epid=abc123")
    );
    let body = body_text(&server_info);
    assert!(body.contains(r#"<rpl id="rpl:requri" seqid="1"><commandid seqid="1" envid="1804289383"/><resp code="200">SUCCESS_OK</resp><data><uib uri="sip:ocschat@example.test"/></data></rpl>"#), "{body}");
    client.send(&answer(&server_info, 200)).await;

    // A retransmitted INFO gets the stored response, and no second reply INFO.
    client.send(&info(&client, &call_id, 2, &to, REQURI)).await;
    assert_eq!(status(&client.response().await), 200);

    // An unknown command gets an rpl with a 501-class code and the dialog stays up.
    let unknown = r#"<xccos ver="1" envid="9" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:frobnicate" seqid="1"><data/></cmd></xccos>"#;
    client.send(&info(&client, &call_id, 3, &to, unknown)).await;
    assert_eq!(status(&client.response().await), 200);
    let reply = client.message().await;
    assert!(body_text(&reply).contains(r#"<resp code="501">"#));
    client.send(&answer(&reply, 200)).await;

    // Malformed XCCOS is refused on the INFO itself.
    client
        .send(&info(&client, &call_id, 4, &to, "<xccos><cmd"))
        .await;
    assert_eq!(status(&client.response().await), 400);

    // Session refresh, then BYE; afterwards the dialog is unknown.
    let update = client.request("UPDATE", CHAT, &call_id, 5, &to, &[], "");
    client.send(&update).await;
    let ok = client.response().await;
    assert_eq!(status(&ok), 200);
    let bye = client.request("BYE", CHAT, &call_id, 6, &to, &[], "");
    client.send(&bye).await;
    assert_eq!(status(&client.response().await), 200);
    client.send(&info(&client, &call_id, 7, &to, REQURI)).await;
    assert_eq!(status(&client.response().await), 481);
    server.stop().await;
}

#[tokio::test]
async fn a_487_to_server_info_ends_the_dialog() {
    let server = TestServer::start(trusted).await;
    let (mut client, call_id, to) = connected(&server).await;
    let server_info = requri(&mut client, &call_id, 2, &to).await;
    client.send(&answer(&server_info, 487)).await;
    // The dialog is gone: the next in-dialog request is 481.
    let mut gone = false;
    for cseq in 3..20 {
        let update = client.request("UPDATE", CHAT, &call_id, cseq, &to, &[], "");
        client.send(&update).await;
        if status(&client.response().await) == 481 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone);
    server.stop().await;
}

#[tokio::test]
async fn in_dialog_requests_to_unknown_dialogs_get_481() {
    let server = TestServer::start(trusted).await;
    let mut client = server.tls().await;
    client.register_plain().await;
    let to = format!("<{CHAT}>;tag=nosuch");
    for method in ["INFO", "UPDATE", "BYE", "INVITE"] {
        let req = client.request(method, CHAT, "ghost", 2, &to, &[], "");
        client.send(&req).await;
        assert_eq!(status(&client.response().await), 481, "{method}");
    }
    let cancel = client.request("CANCEL", CHAT, "ghost", 1, &format!("<{CHAT}>"), &[], "");
    client.send(&cancel).await;
    assert_eq!(status(&client.response().await), 481);
    // INVITE to something other than the chat endpoint.
    let elsewhere = client.request(
        "INVITE",
        "sip:bob@example.test",
        "x",
        1,
        "<sip:bob@example.test>",
        &[],
        "",
    );
    client.send(&elsewhere).await;
    assert_eq!(status(&client.response().await), 404);
    server.stop().await;
}

#[tokio::test]
async fn cancel_after_answer_and_other_methods() {
    let server = TestServer::start(trusted).await;
    let (mut client, call_id, _) = connected(&server).await;
    let cancel = client.request("CANCEL", CHAT, &call_id, 1, &format!("<{CHAT}>"), &[], "");
    client.send(&cancel).await;
    assert_eq!(status(&client.response().await), 200);
    for (method, expected) in [
        ("SERVICE", 200),
        ("NOTIFY", 200),
        ("PUBLISH", 489),
        ("MESSAGE", 501),
        ("NEGOTIATE", 501),
    ] {
        let req = client.request(
            method,
            &format!("sip:{DOMAIN}"),
            &format!("m-{method}"),
            1,
            "<sip:bob@example.test>",
            &[],
            "",
        );
        client.send(&req).await;
        assert_eq!(status(&client.response().await), expected, "{method}");
    }
    // BENOTIFY is never answered; the next request's answer comes first.
    let benotify = client.request("BENOTIFY", "sip:x@y", "b1", 1, "<sip:x@y>", &[], "");
    client.send(&benotify).await;
    let options = client.request("OPTIONS", "sip:x@y", "o1", 1, "<sip:x@y>", &[], "");
    client.send(&options).await;
    assert_eq!(
        client.response().await.headers.get("CSeq"),
        Some("1 OPTIONS")
    );
    server.stop().await;
}

#[tokio::test]
async fn identical_call_ids_on_two_connections_are_separate_dialogs() {
    let server = TestServer::start(trusted).await;
    let mut alice = server.tls().await;
    let mut bob = server.tls().await;
    bob.user = "bob".into();
    alice.register_plain().await;
    bob.register_plain().await;
    // Both clients pick the same Call-ID and tag, as two SIPE clients started together do.
    let (a_call, a_to) = open_dialog(&mut alice).await;
    let (b_call, b_to) = open_dialog(&mut bob).await;
    assert_eq!(a_call, b_call);
    let bye = alice.request("BYE", CHAT, &a_call, 2, &a_to, &[], "");
    alice.send(&bye).await;
    assert_eq!(status(&alice.response().await), 200);
    let update = bob.request("UPDATE", CHAT, &b_call, 2, &b_to, &[], "");
    bob.send(&update).await;
    assert_eq!(status(&bob.response().await), 200);
    server.stop().await;
}

/// Chat dialogs are capped per connection and per user, and each keeps a bounded number of
/// header bytes; a dialog that ends gives its slot back.
#[tokio::test]
async fn dialogs_are_capped_per_connection_and_per_user() {
    let server = TestServer::start(|c| {
        trusted(c);
        c.limits.max_dialogs_per_connection = 2;
        c.limits.max_dialogs_per_user = 3;
        c.limits.max_dialog_header_bytes = 600;
    })
    .await;
    let contact = [("Contact", "<sip:alice@example.test;transport=tls>")];
    let invite = |client: &mut Client| {
        let call_id = client.new_call_id();
        (client.invite_chat(&call_id, &contact, ""), call_id)
    };
    let mut first = server.tls().await;
    assert_eq!(status(&first.register_plain().await), 200);
    let mut opened = Vec::new();
    for _ in 0..2 {
        let (request, call_id) = invite(&mut first);
        first.send(&request).await;
        let ok = first.response().await;
        assert_eq!(status(&ok), 200);
        opened.push((call_id, ok.headers.get("To").unwrap().to_owned()));
    }
    let (request, _) = invite(&mut first);
    first.send(&request).await;
    let refused = first.response().await;
    assert_eq!(status(&refused), 403);
    assert!(
        refused
            .headers
            .get("Warning")
            .unwrap()
            .contains("per connection")
    );

    // A second connection of the same user: one more, then the user's cap.
    let mut second = server.tls().await;
    assert_eq!(status(&second.register_plain().await), 200);
    let (request, _) = invite(&mut second);
    second.send(&request).await;
    assert_eq!(status(&second.response().await), 200);
    let (request, _) = invite(&mut second);
    second.send(&request).await;
    let refused = second.response().await;
    assert_eq!(status(&refused), 403);
    assert!(refused.headers.get("Warning").unwrap().contains("per user"));

    // Ending a dialog gives its slot back.
    let (call_id, to) = &opened[0];
    let bye = first.request("BYE", CHAT, call_id, 2, to, &[], "");
    first.send(&bye).await;
    assert_eq!(status(&first.response().await), 200);
    let (request, _) = invite(&mut second);
    second.send(&request).await;
    assert_eq!(status(&second.response().await), 200);

    // Oversized dialog headers are refused whatever the count.
    let mut third = server.tls().await;
    third.user = "bob".into();
    assert_eq!(status(&third.register_plain().await), 200);
    let long_contact = format!("<sip:bob@example.test;x={}>", "y".repeat(700));
    let call_id = third.new_call_id();
    let request = third.invite_chat(&call_id, &[("Contact", &long_contact)], "");
    third.send(&request).await;
    assert_eq!(status(&third.response().await), 400);
    server.stop().await;
}
