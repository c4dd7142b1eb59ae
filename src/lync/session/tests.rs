//! A [`Session`] driven with raw SIP bytes, as the transport would drive it, over the real
//! XCCOS endpoint, hub and SQLite store, without sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::app::config::Config;
use crate::app::server::assemble;
use crate::core::fixtures::{TempDir, category, open_room, user};
use crate::core::hub::ChatCore;
use crate::core::model::Room;
use crate::core::ports::{
    ArchiveStore, DirectoryStore, HistoryQuery, ModelStore, UserRecord, committed,
};
use crate::lync::sip::framer;
use crate::lync::sip::request::ClientLine;
use crate::lync::sip::{Frame, Message, StartLine};
use crate::lync::xccos::xml::{self, Element, XmlLimits};
use crate::net::outbox::Mailbox;
use crate::store::SqliteStore;

const DOMAIN: &str = "example.test";
const CHAT: &str = "sip:ocschat@example.test";
const TRUSTED: Ipv4Addr = Ipv4Addr::LOCALHOST;
const UNTRUSTED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// One server's shared state, wired as `perch serve` wires it (the defaults, with
/// 127.0.0.0/8 trusted), over a store with alice and the open room Lobby.
struct Rig {
    _dir: TempDir,
    store: Arc<SqliteStore>,
    core: Arc<ChatCore>,
    shared: Arc<Shared>,
    lobby: Room,
}

impl Rig {
    async fn new() -> Rig {
        let dir = TempDir::new("session");
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let alice = UserRecord {
            display_name: "Alice".into(),
            ..user("alice@example.test")
        };
        committed(store.add_user(alice)).await.unwrap();
        let general = committed(store.save_category(category("General", DOMAIN, true)))
            .await
            .unwrap();
        let lobby = Room {
            description: String::new(),
            ..open_room("Lobby", general.id)
        };
        let lobby = committed(store.save_room(lobby)).await.unwrap();
        let config = Config {
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..Config::default()
        };
        let assembled = assemble(&config, store.clone()).unwrap();
        Rig {
            _dir: dir,
            store,
            core: assembled.core,
            shared: assembled.lync,
            lobby,
        }
    }

    fn lobby_uri(&self) -> String {
        format!("ma-chan://{DOMAIN}/{}", self.lobby.uid)
    }

    /// A connection from `peer`, with its mailbox registered as the transport does.
    fn connect(&self, id: u64, peer: Ipv4Addr) -> Client {
        let info = ConnectionInfo {
            id,
            peer: SocketAddr::new(IpAddr::V4(peer), 5555),
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5061),
            transport: Transport::Tls,
        };
        Client {
            session: Session::new(info, self.shared.clone()),
            mailbox: self.shared.outboxes.register(id, 64),
            now: Instant::now(),
            call_id: format!("{id}AbCgDeFa"),
            to: format!("<{CHAT}>"),
            cseq: 1,
            envid: 100,
        }
    }
}

/// A client on one connection with one chat dialog, speaking as alice.
struct Client {
    session: Session,
    mailbox: Mailbox<Outbound>,
    now: Instant,
    call_id: String,
    /// The To of the dialog: the chat URI, with the server's tag once the INVITE is answered.
    to: String,
    cseq: u32,
    envid: u32,
}

/// A request from alice in the shape SIPE sends (no Via branch).
fn request(
    method: &str,
    uri: &str,
    call_id: &str,
    cseq: u32,
    to: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Vec<u8> {
    ClientLine::new(
        "TLS",
        "127.0.0.1:5555",
        "alice@example.test",
        "48213390",
        "abc123",
    )
    .head(method, uri, to, call_id, cseq)
    .encode(extra, body.as_bytes())
    .to_vec()
}

/// Frames and parses what the session sent.
fn parse(bytes: &Bytes) -> Message {
    let mut buffer = BytesMut::from(&bytes[..]);
    let Some(Frame::Message { head, body }) =
        framer::decode(&mut buffer, &FrameLimits::default()).unwrap()
    else {
        panic!("not a message: {bytes:?}");
    };
    assert!(buffer.is_empty(), "one message per output");
    Message::parse(&head, body).unwrap()
}

/// Every output of a turn, which must all be messages to send.
fn sent(outputs: Vec<Output>) -> Vec<Message> {
    outputs
        .into_iter()
        .map(|output| match output {
            Output::Send(bytes) => parse(&bytes),
            Output::Close => panic!("unexpected Close"),
            Output::Await(_) => panic!("unexpected Await"),
            Output::StartTls => panic!("SIP never upgrades in place"),
        })
        .collect()
}

fn status(message: &Message) -> u16 {
    match message.start {
        StartLine::Response { code, .. } => code,
        StartLine::Request { .. } => panic!("expected a response, got {message:?}"),
    }
}

fn header<'a>(message: &'a Message, name: &str) -> &'a str {
    message.headers.get(name).unwrap_or_default()
}

/// The XCCOS element a server INFO carries.
fn payload(info: &Message) -> Element {
    assert_eq!(info.method().map(|m| m.as_str()), Some("INFO"), "{info:?}");
    let root = xml::parse(&info.body, &XmlLimits::default()).unwrap();
    assert_eq!(root.name, "xccos");
    root.children.into_iter().next().unwrap()
}

fn result_code(reply: &Element) -> &str {
    reply
        .child("resp")
        .and_then(|resp| resp.attr("code"))
        .unwrap_or("none")
}

impl Client {
    /// Feeds bytes as one read: every frame to the session, then what it wants done.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Output> {
        let mut buffer = BytesMut::from(bytes);
        while let Some(frame) = framer::decode(&mut buffer, &FrameLimits::default()).unwrap() {
            self.session.handle_frame(frame, self.now);
        }
        assert!(buffer.is_empty(), "a partial message was left over");
        self.session.take_outputs()
    }

    /// Sends a request that is answered at once, and returns all that was sent back.
    fn exchange(&mut self, bytes: &[u8]) -> Vec<Message> {
        sent(self.feed(bytes))
    }

    fn register(&mut self) -> Message {
        let register = request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &format!("reg-{}", self.call_id),
            1,
            "<sip:alice@example.test>",
            &[("Contact", "<sip:127.0.0.1:5555;transport=tls>")],
            "",
        );
        let mut replies = self.exchange(&register);
        assert_eq!(replies.len(), 1);
        replies.remove(0)
    }

    /// INVITEs the chat URI and ACKs the 200; returns the 200.
    fn invite(&mut self) -> Message {
        let invite = request(
            "INVITE",
            CHAT,
            &self.call_id,
            1,
            &self.to,
            &[
                ("Contact", "<sip:alice@example.test;gruu>"),
                ("Content-Type", "application/sdp"),
            ],
            "v=0\r\n",
        );
        let mut replies = self.exchange(&invite);
        assert_eq!(replies.len(), 1);
        let ok = replies.remove(0);
        if status(&ok) == 200 {
            self.to = header(&ok, "To").to_owned();
            let ack = request("ACK", CHAT, &self.call_id, 1, &self.to, &[], "");
            assert!(self.feed(&ack).is_empty(), "an ACK is not answered");
        }
        ok
    }

    /// REGISTER from a trusted address, then the chat dialog.
    fn signed_in(rig: &Rig, id: u64) -> Client {
        let mut client = rig.connect(id, TRUSTED);
        assert_eq!(status(&client.register()), 200);
        assert_eq!(status(&client.invite()), 200);
        client
    }

    /// The next INFO on the dialog.
    fn info(&mut self, body: &str) -> Vec<u8> {
        self.cseq += 1;
        request(
            "INFO",
            CHAT,
            &self.call_id,
            self.cseq,
            &self.to,
            &[("Content-Type", "text/plain")],
            body,
        )
    }

    fn command(&mut self, name: &str, data: &str) -> Vec<u8> {
        self.envid += 1;
        let body = format!(
            r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:{name}" seqid="1"><data>{data}</data></cmd></xccos>"#,
            self.envid
        );
        self.info(&body)
    }

    fn post(&mut self, room_uri: &str, text: &str) -> Vec<u8> {
        self.envid += 1;
        let body = format!(
            r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><grpchat id="grpchat" seqid="1" chanUri="{room_uri}" author="sip:alice@example.test" ts="2024-05-01T10:00:00Z"><chat>{text}</chat></grpchat></xccos>"#,
            self.envid
        );
        self.info(&body)
    }

    /// Sends a command and returns the 200 and the reply the server INFO carries.
    fn command_reply(&mut self, name: &str, data: &str) -> (Message, Element) {
        let command = self.command(name, data);
        let replies = self.exchange(&command);
        assert_eq!(replies.len(), 2, "a 200, then the reply: {replies:?}");
        assert_eq!(status(&replies[0]), 200);
        let reply = payload(&replies[1]);
        assert_eq!(reply.attr("id"), Some(format!("rpl:{name}").as_str()));
        (replies[0].clone(), reply)
    }

    fn join_lobby(&mut self, rig: &Rig) {
        let data = format!(
            r#"<chanid key="0" domain="{DOMAIN}" value="{}"/>"#,
            rig.lobby.uid
        );
        let (_, reply) = self.command_reply("join", &data);
        assert_eq!(result_code(&reply), "200");
    }

    /// What the hub queued for this connection, handed to the session as the transport does.
    fn deliveries(&mut self) -> Vec<Message> {
        while let Ok(outbound) = self.mailbox.receiver.try_recv() {
            self.session.deliver(outbound, self.now);
        }
        sent(self.session.take_outputs())
    }
}

#[tokio::test]
async fn register_from_a_trusted_address_needs_no_credentials() {
    let rig = Rig::new().await;
    let mut client = rig.connect(1, TRUSTED);
    assert_eq!(client.session.registered_as(), None);
    let ok = client.register();
    assert_eq!(status(&ok), 200);
    assert_eq!(header(&ok, "Expires"), "3600");
    assert!(header(&ok, "Contact").ends_with(";expires=3600"), "{ok:?}");
    assert!(header(&ok, "To").contains(";tag="), "{ok:?}");
    assert_eq!(client.session.registered_as(), Some("alice@example.test"));

    // Trust vouches for the address, not for users that do not exist.
    let mut stranger = rig.connect(2, TRUSTED);
    let register = String::from_utf8(request(
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        "reg-zed",
        1,
        "<sip:zed@example.test>",
        &[],
        "",
    ))
    .unwrap()
    .replace("From: <sip:alice@", "From: <sip:zed@");
    let replies = stranger.exchange(register.as_bytes());
    assert_eq!(status(&replies[0]), 403);
    assert_eq!(stranger.session.registered_as(), None);
}

#[tokio::test]
async fn requests_before_registration_are_refused() {
    let rig = Rig::new().await;
    let mut client = rig.connect(1, TRUSTED);
    let options = request(
        "OPTIONS",
        &format!("sip:{DOMAIN}"),
        "opt-1",
        1,
        "<sip:example.test>",
        &[],
        "",
    );
    assert_eq!(
        status(&client.exchange(&options)[0]),
        200,
        "OPTIONS needs no registration"
    );

    let refused = client.invite();
    assert_eq!(status(&refused), 403);
    assert!(
        header(&refused, "Warning").contains("not registered"),
        "{refused:?}"
    );
    assert_eq!(client.session.dialog_count(), 0);
    let info = client.command("getserverinfo", "");
    let replies = client.exchange(&info);
    assert_eq!(replies.len(), 1, "no reply INFO: {replies:?}");
    assert_eq!(status(&replies[0]), 403);
}

#[tokio::test]
async fn invite_to_the_chat_uri_opens_a_dialog() {
    let rig = Rig::new().await;
    let mut client = rig.connect(1, TRUSTED);
    assert_eq!(status(&client.register()), 200);

    let ok = client.invite();
    assert_eq!(status(&ok), 200);
    assert!(client.to.contains(";tag="), "{ok:?}");
    assert_eq!(header(&ok, "Call-ID"), client.call_id);
    assert!(
        header(&ok, "Contact").starts_with("<sip:ocschat@127.0.0.1:5061"),
        "{ok:?}"
    );
    assert_eq!(header(&ok, "Content-Type"), "application/sdp");
    assert!(ok.body.starts_with(b"v=0\r\n"));
    assert_eq!(client.session.dialog_count(), 1);

    // Anyone else is not served here.
    let elsewhere = request(
        "INVITE",
        "sip:bob@example.test",
        "other-call",
        1,
        "<sip:bob@example.test>",
        &[("Contact", "<sip:alice@example.test;gruu>")],
        "",
    );
    assert_eq!(status(&client.exchange(&elsewhere)[0]), 404);
    assert_eq!(client.session.dialog_count(), 1);
}

#[tokio::test]
async fn getserverinfo_is_answered_with_200_then_a_server_info() {
    let rig = Rig::new().await;
    let mut client = Client::signed_in(&rig, 1);
    let command = client.command(
        "getserverinfo",
        r#"<sib domain="example.test" infoType="123"/>"#,
    );
    let replies = client.exchange(&command);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(status(&replies[0]), 200);
    assert_eq!(header(&replies[0], "CSeq"), "2 INFO");

    // The reply travels in our own INFO on the dialog, from the chat URI to the client.
    let info = &replies[1];
    assert_eq!(header(info, "Call-ID"), client.call_id);
    assert_eq!(header(info, "CSeq"), "1 INFO");
    assert!(header(info, "To").starts_with("<sip:alice@example.test>;tag=48213390"));
    let our_tag = client.to.split(";tag=").nth(1).unwrap();
    assert_eq!(header(info, "From"), format!("<{CHAT}>;tag={our_tag}"));
    let reply = payload(info);
    assert_eq!(reply.attr("id"), Some("rpl:getserverinfo"));
    assert_eq!(result_code(&reply), "200");
    assert_eq!(
        reply.child("commandid").and_then(|c| c.attr("envid")),
        Some("101")
    );
    let sib = reply.child("data").and_then(|d| d.child("sib")).unwrap();
    assert_eq!(sib.attr("searchLimit"), Some("999"));
    assert_eq!(sib.attr("messageSizeLimit"), Some("8000"));
}

#[tokio::test]
async fn a_retransmitted_info_gets_the_stored_answer_and_runs_once() {
    let rig = Rig::new().await;
    let mut client = Client::signed_in(&rig, 1);
    let command = client.command("getserverinfo", "");
    let first = client.feed(&command);
    assert_eq!(first.len(), 2);
    let Output::Send(answer) = &first[0] else {
        panic!("expected the 200 first");
    };
    let answer = answer.clone();

    // Same Call-ID and CSeq: the same bytes again, and no second reply INFO.
    let again = client.feed(&command);
    assert_eq!(again.len(), 1);
    match &again[0] {
        Output::Send(bytes) => assert_eq!(bytes, &answer),
        _ => panic!("expected the stored answer"),
    }
    // Our next INFO on the dialog is the second: nothing was sent in between.
    let command = client.command("getserverinfo", "");
    let replies = client.exchange(&command);
    assert_eq!(header(&replies[1], "CSeq"), "2 INFO");
}

#[tokio::test]
async fn a_post_is_answered_once_its_commit_is_done() {
    let rig = Rig::new().await;
    let mut client = Client::signed_in(&rig, 1);
    client.join_lobby(&rig);
    assert_eq!(rig.core.recipients(rig.lobby.id).len(), 1);

    let post = client.post(&rig.lobby_uri(), "hello &amp; welcome");
    let mut outputs = client.feed(&post);
    assert_eq!(outputs.len(), 1);
    let Some(Output::Await(deferred)) = outputs.pop() else {
        panic!("a post is answered once its commit is done");
    };
    // A retransmission while the commit is under way is not run again, nor answered yet.
    assert!(client.feed(&post).is_empty());

    let outcome = tokio::spawn(deferred.work).await.unwrap();
    assert_eq!(outcome, Ok(Vec::new()));
    client
        .session
        .finish_deferred(deferred.id, outcome, client.now);
    let answered = sent(client.session.take_outputs());
    assert_eq!(answered.len(), 1);
    assert_eq!(status(&answered[0]), 200);
    assert_eq!(
        header(&answered[0], "CSeq"),
        format!("{} INFO", client.cseq)
    );

    // The post reached the sender's own dialog through the hub and the outbox.
    let delivered = client.deliveries();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let echo = payload(&delivered[0]);
    assert_eq!(echo.name, "grpchat");
    assert_eq!(echo.attr("chanUri"), Some(rig.lobby_uri().as_str()));
    assert_eq!(echo.child("chat").unwrap().text, "hello & welcome");
    let stored = rig
        .store
        .history(rig.lobby.id, HistoryQuery::Last(10))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].text, "hello & welcome");
    assert_eq!(echo.attr("msgid"), Some(stored[0].id.to_string().as_str()));

    // Retransmitted after the answer: the stored 200, and still one message.
    let again = sent(client.feed(&post));
    assert_eq!(again.len(), 1);
    assert_eq!(status(&again[0]), 200);
    assert!(client.deliveries().is_empty());
    let stored = rig
        .store
        .history(rig.lobby.id, HistoryQuery::Last(10))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn bye_ends_the_dialog() {
    let rig = Rig::new().await;
    let mut client = Client::signed_in(&rig, 1);
    client.join_lobby(&rig);

    client.cseq += 1;
    let bye = request(
        "BYE",
        CHAT,
        &client.call_id,
        client.cseq,
        &client.to,
        &[],
        "",
    );
    let replies = client.exchange(&bye);
    assert_eq!(replies.len(), 1);
    assert_eq!(status(&replies[0]), 200);
    assert_eq!(client.session.dialog_count(), 0);
    // The endpoint heard of it: the dialog left its rooms.
    assert!(rig.core.recipients(rig.lobby.id).is_empty());

    let info = client.command("getserverinfo", "");
    let replies = client.exchange(&info);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(status(&replies[0]), 481);
}

#[tokio::test]
async fn a_481_to_a_server_info_ends_the_dialog() {
    let rig = Rig::new().await;
    let mut client = Client::signed_in(&rig, 1);
    client.join_lobby(&rig);
    let (_, _) = client.command_reply("getserverinfo", "");
    // The join's and the getserverinfo's reply INFOs were CSeq 1 and 2; SIPE has forgotten
    // the Call-ID and answers the second with 481.
    let answer = format!(
        "SIP/2.0 481 Call Leg/Transaction Does Not Exist\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKx\r\nFrom: <{CHAT}>;tag=x\r\nTo: <sip:alice@example.test>;tag=48213390\r\nCall-ID: {}\r\nCSeq: 2 INFO\r\nContent-Length: 0\r\n\r\n",
        client.call_id
    );
    assert!(client.feed(answer.as_bytes()).is_empty());
    assert_eq!(client.session.dialog_count(), 0);
    assert!(rig.core.recipients(rig.lobby.id).is_empty());
}

#[tokio::test]
async fn register_from_an_untrusted_address_is_challenged() {
    let rig = Rig::new().await;
    let mut client = rig.connect(1, UNTRUSTED);
    let challenge = client.register();
    assert_eq!(status(&challenge), 401);
    let (ntlm, digest): (Vec<&str>, Vec<&str>) = challenge
        .headers
        .get_all("WWW-Authenticate")
        .partition(|offer| offer.starts_with("NTLM "));
    // This REGISTER shows no Microsoft extension, so NTLM is not offered (see
    // tests/integration/ntlm.rs for the client that gets it).
    assert!(ntlm.is_empty(), "{challenge:?}");
    assert!(!digest.is_empty(), "{challenge:?}");
    for offer in digest {
        assert!(offer.starts_with("Digest "), "{offer}");
        assert!(offer.contains(r#"realm="example.test""#), "{offer}");
        assert!(offer.contains("nonce=\""), "{offer}");
        assert!(offer.contains(r#"qop="auth""#), "{offer}");
    }
    assert_eq!(client.session.registered_as(), None);
    // Still not registered: nothing but REGISTER and OPTIONS is served.
    assert_eq!(status(&client.invite()), 403);
}

/// Responses kept for retransmission are bounded in bytes per connection: a client sending
/// requests with large headers (which every response copies back) cannot make perch hold
/// them all. A duplicate of a request whose response was let go is absorbed, not run again.
#[tokio::test]
async fn responses_kept_for_retransmission_are_bounded_in_bytes() {
    let rig = Rig::new().await;
    let mut client = rig.connect(1, TRUSTED);
    assert_eq!(status(&client.register()), 200);
    let pad = "p".repeat(2000);
    let options = |n: u32| {
        format!(
            "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5555;branch=z9hG4bK{n};pad={pad}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=48213390\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: opt-{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    for n in 1..=100 {
        assert_eq!(client.exchange(&options(n)).len(), 1);
    }
    // 100 responses of over 2 KB: the oldest have been let go...
    assert!(
        client.feed(&options(1)).is_empty(),
        "the first response is no longer kept"
    );
    // ...and the newest are still answered again.
    let again = client.exchange(&options(100));
    assert_eq!(again.len(), 1);
    assert_eq!(status(&again[0]), 200);
}
