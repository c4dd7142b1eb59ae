//! One client stream driven without sockets, over the core's in-memory store: negotiation
//! in order, refusals out of order, and the stanza rates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;

use crate::core::credentials::Credentials;
use crate::core::fixtures::{MemoryStore, category, open_room, user};
use crate::core::hub::ChatCore;
use crate::core::ports::{DirectoryStore as _, ModelStore as _, committed};
use crate::core::snapshot::SnapshotHandle;
use crate::net::signin::FailureThrottle;
use crate::net::{Connection, ConnectionInfo, Output, Transport};
use crate::xmpp::stream::StreamLimits;
use crate::xmpp::{XmppProtocol, XmppSettings};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>";

struct Stream {
    c2s: super::C2s,
    runtime: tokio::runtime::Runtime,
    now: Instant,
}

fn settings(stanzas_per_second: u32, burst: u32) -> XmppSettings {
    XmppSettings {
        domain: "example.test".into(),
        muc_domain: "conference.example.test".into(),
        require_tls: true,
        limits: StreamLimits::default(),
        stanzas_per_second,
        stanza_burst: burst,
        stanzas_per_second_per_user: 1000,
        stanza_burst_per_user: 1000,
    }
}

impl Stream {
    fn open(transport: Transport, settings: XmppSettings) -> Stream {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(MemoryStore::default());
        runtime.block_on(async {
            let mut alice = user("alice@example.test");
            alice.credentials = Some(Credentials::derive("alice@example.test", "alice-pw"));
            committed(store.add_user(alice)).await.unwrap();
            let general = committed(store.save_category(category("General", "example.test", true)))
                .await
                .unwrap();
            committed(store.save_room(open_room("Lobby", general.id)))
                .await
                .unwrap();
        });
        let model = Arc::new(SnapshotHandle::load(store.as_ref()).unwrap());
        let core = Arc::new(ChatCore::new(model, store.clone()).unwrap());
        let throttle = Arc::new(FailureThrottle::new(Duration::from_secs(60), 30, 5));
        let protocol = XmppProtocol::new(settings, core, store, throttle);
        let info = ConnectionInfo {
            id: 1,
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:5222".parse().unwrap(),
            transport,
        };
        let c2s = super::C2s::new(protocol.shared.clone(), info);
        Stream {
            c2s,
            runtime,
            now: Instant::now(),
        }
    }

    /// Feeds `text`, runs what the stream waits for, and returns what it sent.
    fn send(&mut self, text: &str) -> String {
        let mut buffer = BytesMut::from(text.as_bytes());
        self.c2s.receive(&mut buffer, self.now);
        let mut out = String::new();
        loop {
            let outputs = self.c2s.take_outputs();
            if outputs.is_empty() {
                return out;
            }
            for output in outputs {
                match output {
                    Output::Send(bytes) => out.push_str(std::str::from_utf8(&bytes).unwrap()),
                    Output::Close => out.push_str("[close]"),
                    Output::StartTls => out.push_str("[starttls]"),
                    Output::Await(deferred) => {
                        let answer = self.runtime.block_on(deferred.work);
                        self.c2s.finish_deferred(deferred.id, answer, self.now);
                    }
                }
            }
        }
    }

    fn sign_in(&mut self) {
        self.send(HEADER);
        let plain = BASE64.encode(b"\0alice@example.test\0alice-pw");
        let answer = self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ));
        assert!(answer.contains("<success"), "{answer}");
        let features = self.send(HEADER);
        assert!(
            features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
            "{features}"
        );
        let bound = self.send(
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>t</resource></bind></iq>",
        );
        assert!(bound.contains("<jid>alice@example.test/t</jid>"), "{bound}");
    }
}

#[test]
fn a_plain_stream_must_start_tls_before_anything_else() {
    let mut stream = Stream::open(Transport::Tcp, settings(100, 100));
    let features = stream.send(HEADER);
    assert!(
        features
            .contains("<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>"),
        "{features}"
    );
    assert!(!features.contains("mechanisms"), "{features}");
    let plain = BASE64.encode(b"\0alice@example.test\0alice-pw");
    let refused = stream.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
    ));
    assert!(refused.contains("<encryption-required/>"), "{refused}");
    let ended = stream.send("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(ended.contains("<not-authorized"), "{ended}");
    assert!(ended.ends_with("</stream:stream>[close]"), "{ended}");
}

#[test]
fn starttls_then_sign_in_bind_and_ping() {
    let mut stream = Stream::open(Transport::Tcp, settings(100, 100));
    stream.send(HEADER);
    let proceed = stream.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(
        proceed,
        "<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>[starttls]"
    );
    stream.c2s.secured(stream.now);
    stream.sign_in();
    let pong = stream.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    // No `to` asked, so no `from` in the answer (RFC 6120 8.1.2.1).
    assert_eq!(
        pong,
        "<iq id=\"p1\" to=\"alice@example.test/t\" type=\"result\"/>"
    );
}

#[test]
fn a_stream_over_its_stanza_rate_is_told_to_wait() {
    let mut stream = Stream::open(Transport::Tls, settings(1, 5));
    stream.sign_in();
    let pings: String = (0..20)
        .map(|n| format!("<iq type='get' id='p{n}'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .collect();
    let answers = stream.send(&pings);
    // The bind took one token of five: four answers, then sixteen refusals.
    assert_eq!(answers.matches("type=\"result\"").count(), 4, "{answers}");
    assert_eq!(
        answers.matches("<resource-constraint").count(),
        16,
        "{answers}"
    );
    stream.now += Duration::from_secs(2);
    let later = stream.send("<iq type='get' id='late'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(later.contains("type=\"result\""), "{later}");
}

#[test]
fn stream_management_acknowledges_what_was_handled() {
    let mut stream = Stream::open(Transport::Tls, settings(100, 100));
    stream.send(HEADER);
    let plain = BASE64.encode(b"\0alice@example.test\0alice-pw");
    stream.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
    ));
    let features = stream.send(HEADER);
    assert!(
        features.contains("<sm xmlns=\"urn:xmpp:sm:3\"/>"),
        "{features}"
    );
    let early = stream.send("<enable xmlns='urn:xmpp:sm:3'/>");
    assert!(
        early.contains("<failed xmlns=\"urn:xmpp:sm:3\">"),
        "before binding: {early}"
    );
    stream.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    assert_eq!(
        stream.send("<enable xmlns='urn:xmpp:sm:3'/>"),
        "<enabled xmlns=\"urn:xmpp:sm:3\"/>"
    );
    stream.send("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq><presence/>");
    assert_eq!(
        stream.send("<r xmlns='urn:xmpp:sm:3'/>"),
        "<a xmlns=\"urn:xmpp:sm:3\" h=\"2\"/>"
    );
    let resumed = stream.send("<resume xmlns='urn:xmpp:sm:3' h='0' previd='x'/>");
    assert!(resumed.contains("<item-not-found"), "{resumed}");
}

#[test]
fn an_error_before_the_header_still_opens_the_stream_first() {
    let mut stream = Stream::open(Transport::Tls, settings(100, 100));
    let answer = stream.send("<iq/>");
    let header = answer.find("<stream:stream").expect("a header");
    let error = answer.find("<stream:error>").expect("an error");
    assert!(header < error, "{answer}");
    assert!(answer.ends_with("</stream:stream>[close]"), "{answer}");
}
