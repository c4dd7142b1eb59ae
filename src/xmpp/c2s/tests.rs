//! One client stream driven without sockets, over the core's in-memory store: negotiation
//! in order, refusals out of order, and the stanza rates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use crate::core::credentials::Credentials;
use crate::core::fixtures::{MemoryStore, category, open_room, user};
use crate::core::hub::ChatCore;
use crate::core::ports::{DirectoryStore as _, ModelStore as _, committed};
use crate::core::snapshot::SnapshotHandle;
use crate::net::outbox::Mailbox;
use crate::net::signin::FailureThrottle;
use crate::net::{Connection, ConnectionInfo, Output, Retention, Transport};
use crate::xmpp::stream::StreamLimits;
use crate::xmpp::{XmppProtocol, XmppSettings, XmppShared};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>";

struct Stream {
    c2s: super::C2s,
    runtime: Arc<tokio::runtime::Runtime>,
    now: Instant,
    /// What the driver would read deliveries from.
    mailbox: Option<Mailbox<Bytes>>,
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
        resume_wait: Duration::from_secs(60),
        resume_buffer_bytes: 64 * 1024,
    }
}

impl Stream {
    fn open(transport: Transport, settings: XmppSettings) -> Stream {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        );
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
        Stream::connect(protocol.shared, runtime, 1, transport)
    }

    /// Another connection to the same server, as the driver opens one.
    fn connect(
        shared: Arc<XmppShared>,
        runtime: Arc<tokio::runtime::Runtime>,
        id: u64,
        transport: Transport,
    ) -> Stream {
        let info = ConnectionInfo {
            id,
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:5222".parse().unwrap(),
            transport,
        };
        let mailbox = Some(shared.outboxes.register(id, 64));
        Stream {
            c2s: super::C2s::new(shared, info),
            runtime,
            now: Instant::now(),
            mailbox,
        }
    }

    /// What was delivered to this connection, handed to the stream as the driver does.
    fn deliveries(&mut self) -> String {
        let mailbox = self.mailbox.as_mut().unwrap();
        while let Ok(delivery) = mailbox.receiver.try_recv() {
            self.c2s.deliver(delivery, self.now);
        }
        self.send("")
    }

    /// The seeded open room's uid.
    fn lobby(&self) -> String {
        let snapshot = self.c2s.shared.core.snapshot();
        snapshot.room_by_name("Lobby").unwrap().uid.clone()
    }

    /// A post of alice's in this stream's session, straight through the hub, committed.
    fn post_through_the_hub(&self, room_uid: &str, text: &str) {
        let core = &self.c2s.shared.core;
        let session = self.c2s.session.clone().unwrap();
        let accepted = core
            .post("alice@example.test", &session, room_uid, text.into(), None)
            .unwrap();
        self.runtime.block_on(accepted.completed()).unwrap();
    }

    /// The connection drops (no `</stream:stream>`).
    fn drop_connection(&mut self) -> Retention {
        let mailbox = self.mailbox.take().unwrap();
        self.c2s.closed(mailbox)
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
        self.authenticate();
        let bound = self.send(
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>t</resource></bind></iq>",
        );
        assert!(bound.contains("<jid>alice@example.test/t</jid>"), "{bound}");
    }

    /// SASL and the stream restart: what comes before binding (or resuming).
    fn authenticate(&mut self) {
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

#[test]
fn a_dropped_session_is_resumed_with_what_the_client_missed() {
    let mut first = Stream::open(Transport::Tls, settings(100, 100));
    first.sign_in();
    let enabled = first.send("<enable xmlns='urn:xmpp:sm:3' resume='true' max='30'/>");
    let id = enabled
        .split("id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no resumption id: {enabled}"))
        .to_owned();
    assert!(enabled.contains("resume=\"true\" max=\"30\""), "{enabled}");
    let lobby = first.lobby();
    let room = format!("{lobby}@conference.example.test");
    let joined = first.send(&format!(
        "<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    assert!(joined.contains("status code=\"110\""), "{joined}");
    let sent_before = joined.matches("<presence").count() + joined.matches("<message").count();
    // The client has the first stanza only, and says so; then its network goes.
    first.send("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    assert_eq!(first.drop_connection(), Retention::Kept);
    assert!(
        first
            .c2s
            .shared
            .core
            .is_present(first.c2s.session.as_ref().unwrap(), &lobby)
    );

    // Meanwhile a post reaches the session (through the hub, in the parked session's
    // name: whose it is does not matter here).
    first.post_through_the_hub(&lobby, "while away");
    let shared = first.c2s.shared.clone();
    let runtime = first.runtime.clone();

    let mut second = Stream::connect(shared.clone(), runtime.clone(), 2, Transport::Tls);
    second.authenticate();
    let resumed = second.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ));
    // h: the join presence and the ack; what the client missed comes again, then the post.
    assert!(
        resumed.starts_with("<resumed xmlns=\"urn:xmpp:sm:3\" h=\"1\""),
        "{resumed}"
    );
    let replayed = resumed.matches("<presence").count() + resumed.matches("<message").count();
    assert_eq!(replayed, sent_before - 1 + 1, "{resumed}");
    assert!(resumed.contains("while away"), "{resumed}");
    // Later deliveries to the session come to the new connection.
    let again = second.send(&format!(
        "<message to='{room}' type='groupchat'><body>back</body></message>"
    ));
    let delivered = again + &second.deliveries();
    assert!(delivered.contains("<body>back</body>"), "{delivered}");
    // The network changes again before the server notices: a third connection resumes
    // while the second is still up. The second is asked to close, then hands over.
    let mut third = Stream::connect(shared, runtime.clone(), 3, Transport::Tls);
    third.authenticate();
    let resume = format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>");
    third
        .c2s
        .receive(&mut BytesMut::from(resume.as_bytes()), third.now);
    let mut outputs = third.c2s.take_outputs();
    assert_eq!(outputs.len(), 1);
    let Some(Output::Await(handover)) = outputs.pop() else {
        panic!("the resumption waits for the live connection");
    };
    let kicked = second.mailbox.as_ref().unwrap().cut_off.clone();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(1), kicked.notified()).await })
        .expect("the live connection is asked to close");
    assert_eq!(second.drop_connection(), Retention::Kept);
    let answer = runtime.block_on(handover.work);
    third.c2s.finish_deferred(handover.id, answer, third.now);
    let taken = third.send("");
    assert!(
        taken.starts_with("<resumed xmlns=\"urn:xmpp:sm:3\" h=\"2\""),
        "{taken}"
    );
    assert!(
        taken.contains("<body>back</body>"),
        "unacknowledged: {taken}"
    );
    let after = third.send(&format!(
        "<message to='{room}' type='groupchat'><body>third</body></message>"
    ));
    assert!((after + &third.deliveries()).contains("<body>third</body>"));
}

#[test]
fn a_closed_stream_ends_its_session_and_cannot_be_resumed() {
    let mut first = Stream::open(Transport::Tls, settings(100, 100));
    first.sign_in();
    let enabled = first.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    assert!(enabled.contains("max=\"60\""), "{enabled}");
    let id = enabled
        .split("id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let closed = first.send("</stream:stream>");
    assert!(closed.ends_with("[close]"), "{closed}");
    assert_eq!(first.drop_connection(), Retention::Released);
    let mut second = Stream::connect(
        first.c2s.shared.clone(),
        first.runtime.clone(),
        2,
        Transport::Tls,
    );
    second.authenticate();
    let failed = second.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ));
    assert!(failed.contains("<item-not-found"), "{failed}");
}

#[test]
fn a_client_that_never_acknowledges_is_stopped_at_the_bound() {
    let mut stream = Stream::open(Transport::Tls, settings(100_000, 100_000));
    stream.sign_in();
    stream.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let mut out = String::new();
    for n in 0..2000 {
        out = stream.send(&format!(
            "<iq type='get' id='ping-{n}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ));
        if out.contains("<stream:error>") {
            break;
        }
    }
    assert!(out.contains("<resource-constraint"), "{out}");
    assert_eq!(stream.drop_connection(), Retention::Released);
}

#[test]
fn live_traffic_waits_for_the_join_history_and_subject() {
    let mut stream = Stream::open(Transport::Tls, settings(100, 100));
    stream.sign_in();
    let lobby = stream.lobby();
    let join = format!(
        "<presence to='{lobby}@conference.example.test/alice'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/></x></presence>"
    );
    stream
        .c2s
        .receive(&mut BytesMut::from(join.as_bytes()), stream.now);
    let mut outputs = stream.c2s.take_outputs();
    let Some(Output::Await(history)) = outputs.pop() else {
        panic!("the join reads its history");
    };
    // A post lands while the history is read: it reaches the session live.
    stream.post_through_the_hub(&lobby, "live");
    let held = stream.deliveries();
    assert!(!held.contains("live"), "sent before the history: {held}");
    let answer = stream.runtime.block_on(history.work);
    stream.c2s.finish_deferred(history.id, answer, stream.now);
    let rest = stream.send("");
    let subject = rest.find("<subject>").expect("the subject");
    let live = rest.find("<body>live</body>").expect("the live post");
    assert!(subject < live, "{rest}");
}
