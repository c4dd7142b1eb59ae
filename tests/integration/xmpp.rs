//! The XMPP gateway over real sockets: a small c2s client (direct TLS, or STARTTLS on the
//! plain listener; SASL PLAIN; bind) reading with the library's own framer, and the rules a
//! client meets: rooms found by disco, the same posts, ids and history as XCCOS sees,
//! hidden rooms, closed rooms and auditoriums, the refused targets and the stanza bound.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use perch::app::config::Config;
use perch::core::ports::HistoryQuery;
use perch::xml::Element;
use perch::xmpp::stream::{
    JABBER_CLIENT, STREAM_ERRORS_NS, STREAMS_NS, StreamEvent, StreamFramer, StreamLimits,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use perch::core::manage::RoomChange;

use crate::chat::{Chat, code, room_uri, save_room, seed, snapshot, trusted};
use crate::support::*;

const MUC: &str = "conference.example.test";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_SM: &str = "urn:xmpp:sm:3";
/// A room uid no room has.
const MADE_UP: &str = "00000000-0000-4000-8000-000000000000";

/// One c2s stream. Stanzas read past by [`Xmpp::until`] are kept and come first after.
pub(crate) struct Xmpp<S = Box<dyn Stream>> {
    io: S,
    framer: StreamFramer,
    buf: BytesMut,
    kept: VecDeque<Element>,
    /// The bound full JID.
    pub(crate) jid: String,
    ids: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Xmpp<S> {
    fn over(io: S) -> Self {
        Self {
            io,
            framer: StreamFramer::new(StreamLimits::default()),
            buf: BytesMut::new(),
            kept: VecDeque::new(),
            jid: String::new(),
            ids: 0,
        }
    }

    pub(crate) async fn send(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// The next unit from the server; `None` once it closed the connection.
    async fn event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(event) = self.framer.next(&mut self.buf).unwrap() {
                return Some(event);
            }
            let read = tokio::time::timeout(WAIT, self.io.read_buf(&mut self.buf))
                .await
                .expect("the server sent nothing in time");
            if matches!(read, Ok(0) | Err(_)) {
                return None;
            }
        }
    }

    /// The next stanza (or nonza): what `until` kept first, then the wire.
    pub(crate) async fn next_stanza(&mut self) -> Element {
        if let Some(kept) = self.kept.pop_front() {
            return kept;
        }
        match self.event().await {
            Some(StreamEvent::Stanza(stanza)) => stanza,
            other => panic!("expected a stanza, got {other:?}"),
        }
    }

    /// The first stanza that `wanted` accepts; the others are kept, in order.
    pub(crate) async fn until(&mut self, wanted: impl Fn(&Element) -> bool) -> Element {
        if let Some(at) = self.kept.iter().position(&wanted) {
            return self.kept.remove(at).unwrap();
        }
        loop {
            let stanza = match self.event().await {
                Some(StreamEvent::Stanza(stanza)) => stanza,
                other => panic!("expected a stanza, got {other:?} (kept {:?})", self.kept),
            };
            if wanted(&stanza) {
                return stanza;
            }
            self.kept.push_back(stanza);
        }
    }

    /// A fresh stream header, and the server's header and features.
    async fn open(&mut self) -> Element {
        assert!(self.buf.is_empty(), "unread bytes before a new stream");
        self.framer.restart();
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' xml:lang='en' xmlns='{JABBER_CLIENT}' xmlns:stream='{STREAMS_NS}'>"
        ))
        .await;
        match self.event().await {
            Some(StreamEvent::Open(header)) => {
                assert_eq!(header.from.as_deref(), Some(DOMAIN));
                assert_eq!(header.version.as_deref(), Some("1.0"));
            }
            other => panic!("expected the stream header, got {other:?}"),
        }
        let features = self.next_stanza().await;
        assert_eq!(
            (features.name.as_str(), features.namespace.as_str()),
            ("features", STREAMS_NS)
        );
        features
    }

    /// SASL PLAIN on a secure stream, the restart, and bind to `resource`.
    async fn sign_in(&mut self, user: &str, password: &str) {
        let features = self.authenticate(user, password).await;
        assert!(features.child_in("bind", NS_BIND).is_some(), "{features:?}");
        let bound = self
            .iq(
                "set",
                None,
                &format!("<bind xmlns='{NS_BIND}'><resource>it</resource></bind>"),
            )
            .await;
        assert_eq!(bound.attr("type"), Some("result"), "{bound:?}");
        let jid = &bound
            .child_in("bind", NS_BIND)
            .unwrap()
            .child("jid")
            .unwrap()
            .text;
        assert_eq!(jid, &format!("{user}@{DOMAIN}/it"));
        self.jid = jid.clone();
    }

    /// SASL PLAIN on a secure stream and the restart; returns the features after it.
    async fn authenticate(&mut self, user: &str, password: &str) -> Element {
        let features = self.open().await;
        assert!(
            mechanisms(&features).contains(&"PLAIN".to_owned()),
            "{features:?}"
        );
        let response = BASE64.encode(format!("\0{user}@{DOMAIN}\0{password}"));
        self.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{response}</auth>"
        ))
        .await;
        let success = self.next_stanza().await;
        assert_eq!(
            (success.name.as_str(), success.namespace.as_str()),
            ("success", NS_SASL),
            "{success:?}"
        );
        self.open().await
    }

    /// An iq with a fresh id, and its answer (result or error).
    pub(crate) async fn iq(&mut self, kind: &str, to: Option<&str>, payload: &str) -> Element {
        self.ids += 1;
        let id = format!("iq{}", self.ids);
        let to = to.map(|to| format!(" to='{to}'")).unwrap_or_default();
        self.send(&format!("<iq type='{kind}' id='{id}'{to}>{payload}</iq>"))
            .await;
        self.until(|s| s.name == "iq" && s.attr("id") == Some(id.as_str()))
            .await
    }

    /// The rooms the MUC service lists, as (name, JID).
    async fn rooms(&mut self) -> Vec<(String, String)> {
        let items = self
            .iq(
                "get",
                Some(MUC),
                &format!("<query xmlns='{NS_DISCO_ITEMS}'/>"),
            )
            .await;
        assert_eq!(items.attr("type"), Some("result"), "{items:?}");
        let query = items.child_in("query", NS_DISCO_ITEMS).unwrap();
        query
            .children
            .iter()
            .map(|item| {
                let attr = |name| item.attr(name).unwrap().to_owned();
                (attr("name"), attr("jid"))
            })
            .collect()
    }

    /// Joins `room` as `nick`, asking for no history; returns the own presence (or the
    /// error) and the occupant presences before it.
    async fn join(&mut self, room: &str, nick: &str) -> (Element, Vec<Element>) {
        self.send(&format!(
            "<presence to='{room}/{nick}' id='join'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>"
        ))
        .await;
        let mut others = Vec::new();
        loop {
            let presence = self.until(|s| s.name == "presence").await;
            if presence.attr("type") == Some("error") || statuses(&presence).contains(&110) {
                return (presence, others);
            }
            others.push(presence);
        }
    }

    /// A groupchat post to `room`; returns the reflection, with its stanza-id.
    async fn post(&mut self, room: &str, body: &str) -> Element {
        self.send(&format!(
            "<message to='{room}' type='groupchat' id='post'><body>{body}</body></message>"
        ))
        .await;
        self.until(|s| s.name == "message" && body_of(s) == Some(body) || is_error(s))
            .await
    }

    /// One MAM page of `room`: the archived messages' ids and bodies, and the `<fin/>`.
    async fn archive(&mut self, room: &str, rsm: &str) -> (Vec<(i64, String)>, Element) {
        self.archive_filtered(room, &[], rsm).await
    }

    /// [`Xmpp::archive`] with form fields (`with`, `start`, the full-text field…).
    async fn archive_filtered(
        &mut self,
        room: &str,
        fields: &[(&str, &str)],
        rsm: &str,
    ) -> (Vec<(i64, String)>, Element) {
        let form = if fields.is_empty() {
            String::new()
        } else {
            let fields: String = fields
                .iter()
                .map(|(var, value)| format!("<field var='{var}'><value>{value}</value></field>"))
                .collect();
            format!(
                "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>{fields}</x>"
            )
        };
        let reply = self
            .iq(
                "set",
                Some(room),
                &format!(
                    "<query xmlns='{NS_MAM}' queryid='q'>{form}<set xmlns='{NS_RSM}'>{rsm}</set></query>"
                ),
            )
            .await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
        let mut found = Vec::new();
        // The results came before the iq; `until` kept them.
        while let Some(at) = self
            .kept
            .iter()
            .position(|s| s.child_in("result", NS_MAM).is_some())
        {
            let wrapper = self.kept.remove(at).unwrap();
            assert_eq!(wrapper.attr("from"), Some(room));
            let result = wrapper.child_in("result", NS_MAM).unwrap();
            assert_eq!(result.attr("queryid"), Some("q"));
            let original = result
                .child_in("forwarded", NS_FORWARD)
                .unwrap()
                .child("message")
                .unwrap();
            let id: i64 = result.attr("id").unwrap().parse().unwrap();
            assert_eq!(stanza_id(original, room), id);
            found.push((id, body_of(original).unwrap().to_owned()));
        }
        (found, reply.child_in("fin", NS_MAM).unwrap().clone())
    }

    /// `</stream:stream>`, then the end of the connection.
    async fn closed_by_server(&mut self) {
        assert!(matches!(self.event().await, Some(StreamEvent::Close)));
        assert!(self.event().await.is_none(), "the connection stayed open");
    }
}

impl Xmpp {
    /// Signed in as `user` over direct TLS (XEP-0368).
    pub(crate) async fn connect(server: &TestServer, user: &str, password: &str) -> Self {
        let mut xmpp = Self::tls(server).await;
        xmpp.sign_in(user, password).await;
        xmpp
    }

    /// A direct TLS connection, nothing sent yet.
    async fn tls(server: &TestServer) -> Self {
        let running = server.running();
        let cert = &running.certificate().unwrap().cert;
        let tls = tls_connect(running.xmpp_tls_addr().unwrap(), cert, "localhost")
            .await
            .unwrap();
        Xmpp::over(tls)
    }

    /// `<enable resume='true' max=…/>`: the resumption id.
    async fn enable_resumption(&mut self, max: u32) -> String {
        self.send(&format!(
            "<enable xmlns='{NS_SM}' resume='true' max='{max}'/>"
        ))
        .await;
        let enabled = self.until(|s| s.namespace == NS_SM).await;
        assert_eq!(enabled.name, "enabled", "{enabled:?}");
        assert_eq!(enabled.attr("max"), Some(max.to_string().as_str()));
        enabled.attr("id").unwrap().to_owned()
    }

    /// Signs in on a new connection and resumes `previd`; returns the answer (`resumed`
    /// or `failed`).
    async fn resume(
        server: &TestServer,
        user: &str,
        password: &str,
        previd: &str,
    ) -> (Self, Element) {
        let mut xmpp = Self::tls(server).await;
        let features = xmpp.authenticate(user, password).await;
        assert!(features.child_in("sm", NS_SM).is_some(), "{features:?}");
        xmpp.send(&format!(
            "<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>"
        ))
        .await;
        let answer = xmpp.next_stanza().await;
        xmpp.jid = format!("{user}@{DOMAIN}/it");
        (xmpp, answer)
    }

    /// Reads until the server closes the connection.
    async fn until_dropped(&mut self) {
        while self.event().await.is_some() {}
    }
}

fn mechanisms(features: &Element) -> Vec<String> {
    features
        .child_in("mechanisms", NS_SASL)
        .map(|m| m.children.iter().map(|c| c.text.clone()).collect())
        .unwrap_or_default()
}

fn body_of(stanza: &Element) -> Option<&str> {
    stanza.child("body").map(|body| body.text.as_str())
}

fn is_error(stanza: &Element) -> bool {
    stanza.attr("type") == Some("error")
}

/// The room's stanza-id of a groupchat message (XEP-0359), checked to be the room's.
fn stanza_id(message: &Element, room: &str) -> i64 {
    let sid = message.child_in("stanza-id", NS_SID).unwrap();
    assert_eq!(sid.attr("by"), Some(room));
    sid.attr("id").unwrap().parse().unwrap()
}

/// A stanza error's type and defined condition.
fn error_of(stanza: &Element) -> (String, String) {
    assert!(is_error(stanza), "not an error: {stanza:?}");
    let error = stanza.child("error").unwrap();
    let condition = error
        .children
        .iter()
        .find(|c| c.namespace == NS_STANZAS && c.name != "text")
        .unwrap();
    (
        error.attr("type").unwrap().to_owned(),
        condition.name.clone(),
    )
}

/// A reply without its id, with the room uid `uid` written as `UID`: to compare answers.
fn shape(stanza: &Element, uid: &str) -> String {
    let mut stanza = stanza.clone();
    stanza.attributes.retain(|(name, _)| name != "id");
    stanza.to_xml().replace(uid, "UID")
}

/// The MUC status codes of a presence.
fn statuses(presence: &Element) -> Vec<u16> {
    presence
        .child_in("x", NS_MUC_USER)
        .map(|x| {
            x.children
                .iter()
                .filter(|c| c.name == "status")
                .map(|c| c.attr("code").unwrap().parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// The occupant's (affiliation, role, real JID) of a MUC presence.
fn item_of(presence: &Element) -> (String, String, String) {
    let item = presence
        .child_in("x", NS_MUC_USER)
        .unwrap()
        .child("item")
        .unwrap();
    let attr = |name| item.attr(name).unwrap_or_default().to_owned();
    (attr("affiliation"), attr("role"), attr("jid"))
}

fn with_xmpp(config: &mut Config) {
    trusted(config);
    config.xmpp.listen = Some("127.0.0.1:0".parse().unwrap());
    config.xmpp.listen_tls = Some("127.0.0.1:0".parse().unwrap());
}

async fn start() -> TestServer {
    TestServer::start_seeded(with_xmpp, seed).await
}

fn room_jid(server: &TestServer, name: &str) -> String {
    let uid = snapshot(server.store.as_ref())
        .room_by_name(name)
        .unwrap()
        .uid
        .clone();
    format!("{uid}@{MUC}")
}

fn msgid(grpchat: &Element) -> i64 {
    grpchat.attr("msgid").unwrap().parse().unwrap()
}

#[tokio::test]
async fn cross_protocol_posts_joins_and_history() {
    let server = start().await;
    let lobby_uri = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;

    // Lobby is found by name on the MUC service.
    let rooms = alice.rooms().await;
    let names: Vec<&str> = rooms.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["Closed", "Flash", "Lobby", "Secret", "Stage"]);
    let lobby = rooms
        .iter()
        .find(|(name, _)| name == "Lobby")
        .unwrap()
        .1
        .clone();
    assert_eq!(lobby, room_jid(&server, "Lobby"));

    // bob (XCCOS) is in; alice (XMPP) joins: each sees the other.
    let mut bob = Chat::connect(&server, "bob").await;
    assert_eq!(code(&bob.join(&lobby_uri).await), "200");
    let (own, others) = alice.join(&lobby, "alice").await;
    assert_eq!(own.attr("from"), Some(format!("{lobby}/alice").as_str()));
    assert_eq!(own.attr("type"), None);
    assert_eq!(statuses(&own), [100, 110, 170]);
    assert_eq!(
        item_of(&own),
        (
            "none".into(),
            "participant".into(),
            "alice@example.test".into()
        )
    );
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(
        others[0].attr("from"),
        Some(format!("{lobby}/bob").as_str())
    );
    assert_eq!(
        item_of(&others[0]),
        (
            "none".into(),
            "participant".into(),
            "bob@example.test".into()
        )
    );
    let subject = alice.until(|s| s.child("subject").is_some()).await;
    assert_eq!(subject.child("subject").unwrap().text, "about Lobby");
    let notice = bob.expect("ntc:join").await;
    let uib = notice.child("data").unwrap().child("uib").unwrap();
    assert_eq!(uib.attr("uri"), Some("sip:alice@example.test"));

    // An XCCOS user arriving and leaving while alice is in: live presences.
    let mut carol = Chat::connect(&server, "carol").await;
    assert_eq!(code(&carol.join(&lobby_uri).await), "200");
    let arrived = alice.until(|s| s.name == "presence").await;
    assert_eq!(
        arrived.attr("from"),
        Some(format!("{lobby}/carol").as_str())
    );
    assert_eq!(arrived.attr("to"), Some(alice.jid.as_str()));
    assert_eq!(arrived.attr("type"), None);
    assert_eq!(
        item_of(&arrived),
        (
            "none".into(),
            "participant".into(),
            "carol@example.test".into()
        )
    );
    assert!(statuses(&arrived).is_empty());
    let parted = carol
        .command("part", &format!(r#"<chanib uri="{lobby_uri}"/>"#))
        .await;
    assert_eq!(code(&parted), "200");
    let left = alice.until(|s| s.name == "presence").await;
    assert_eq!(left.attr("from"), Some(format!("{lobby}/carol").as_str()));
    assert_eq!(left.attr("type"), Some("unavailable"));
    assert_eq!(item_of(&left).1, "none");
    assert!(statuses(&left).is_empty());
    bob.expect("ntc:join").await;
    bob.expect("ntc:part").await;

    // XMPP → XCCOS: the msgid is the stanza-id of the sender's reflection.
    alice
        .send(&format!(
            "<message to='{lobby}' type='groupchat' id='m1'><body>from xmpp &amp; co</body><origin-id xmlns='{NS_SID}' id='origin-1'/></message>"
        ))
        .await;
    let reflection = alice
        .until(|s| s.name == "message" && body_of(s).is_some())
        .await;
    assert_eq!(
        reflection.attr("from"),
        Some(format!("{lobby}/alice").as_str())
    );
    assert_eq!(reflection.attr("type"), Some("groupchat"));
    assert_eq!(body_of(&reflection), Some("from xmpp & co"));
    assert_eq!(
        reflection.child_in("origin-id", NS_SID).unwrap().attr("id"),
        Some("origin-1")
    );
    let first = stanza_id(&reflection, &lobby);
    let seen = bob.expect("grpchat").await;
    assert_eq!(msgid(&seen), first);
    assert_eq!(seen.attr("chanUri"), Some(lobby_uri.as_str()));
    assert_eq!(seen.attr("author"), Some("sip:alice@example.test"));
    assert_eq!(seen.child("chat").unwrap().text, "from xmpp & co");

    // XCCOS → XMPP: the stanza-id is the msgid of bob's own echo.
    assert_eq!(bob.post(&lobby_uri, "from lync &lt;3").await, 200);
    let second = msgid(&bob.expect("grpchat").await);
    assert!(second > first);
    let heard = alice
        .until(|s| s.name == "message" && body_of(s) == Some("from lync <3"))
        .await;
    assert_eq!(heard.attr("from"), Some(format!("{lobby}/bob").as_str()));
    assert_eq!(heard.attr("type"), Some("groupchat"));
    assert_eq!(heard.attr("to"), Some(alice.jid.as_str()));
    assert_eq!(stanza_id(&heard, &lobby), second);

    // The same archive on both sides: ids and order.
    let history = bob.history(&lobby_uri, r#"<last cnt="10"/>"#).await;
    let xccos: Vec<i64> = history.iter().map(msgid).collect();
    assert_eq!(xccos, [first, second]);
    let (all, fin) = alice.archive(&lobby, "<max>10</max>").await;
    assert_eq!(
        all,
        [
            (first, "from xmpp & co".to_owned()),
            (second, "from lync <3".to_owned())
        ]
    );
    assert_eq!(fin.attr("complete"), Some("true"));
    // Paged by RSM: one at a time, the same order.
    let (page, fin) = alice.archive(&lobby, "<max>1</max>").await;
    assert_eq!(page, [(first, "from xmpp & co".to_owned())]);
    assert_eq!(fin.attr("complete"), None);
    let set = fin.child_in("set", NS_RSM).unwrap();
    assert_eq!(set.child("last").unwrap().text, first.to_string());
    let (page, fin) = alice
        .archive(&lobby, &format!("<max>1</max><after>{first}</after>"))
        .await;
    assert_eq!(page, [(second, "from lync <3".to_owned())]);
    assert_eq!(
        fin.attr("complete"),
        None,
        "a full page is not known complete"
    );
    let (page, fin) = alice
        .archive(&lobby, &format!("<max>1</max><after>{second}</after>"))
        .await;
    assert!(page.is_empty());
    assert_eq!(fin.attr("complete"), Some("true"));
    // A full-text search is one more filter: with an author, and paged.
    const FULLTEXT: &str = "{urn:xmpp:fulltext:0}fulltext";
    let (found, _) = alice
        .archive_filtered(&lobby, &[(FULLTEXT, "from")], "<max>10</max>")
        .await;
    assert_eq!(
        found.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [first, second]
    );
    let bob_occupant = format!("{lobby}/bob");
    let (found, _) = alice
        .archive_filtered(&lobby, &[(FULLTEXT, "from"), ("with", &bob_occupant)], "")
        .await;
    assert_eq!(found, [(second, "from lync <3".to_owned())]);
    let (page, fin) = alice
        .archive_filtered(&lobby, &[(FULLTEXT, "from")], "<max>1</max>")
        .await;
    assert_eq!(page, [(first, "from xmpp & co".to_owned())]);
    let last = &fin
        .child_in("set", NS_RSM)
        .unwrap()
        .child("last")
        .unwrap()
        .text;
    let (page, _) = alice
        .archive_filtered(
            &lobby,
            &[(FULLTEXT, "from")],
            &format!("<max>1</max><after>{last}</after>"),
        )
        .await;
    assert_eq!(page, [(second, "from lync <3".to_owned())]);

    // alice leaves: XCCOS sees her go, she gets her own unavailable presence.
    alice
        .send(&format!(
            "<presence to='{lobby}/alice' type='unavailable'/>"
        ))
        .await;
    let gone = alice.until(|s| s.name == "presence").await;
    assert_eq!(gone.attr("from"), Some(format!("{lobby}/alice").as_str()));
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert_eq!(statuses(&gone), [110]);
    let notice = bob.expect("ntc:part").await;
    let chanib = notice.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(chanib.attr("uri"), Some(lobby_uri.as_str()));
    assert_eq!(
        chanib.child("uib").unwrap().attr("uri"),
        Some("sip:alice@example.test")
    );
    server.stop().await;
}

#[tokio::test]
async fn secret_rooms_answer_like_missing_ones() {
    let server = start().await;
    let secret = room_jid(&server, "Secret");
    let secret_uid = secret.split('@').next().unwrap().to_owned();
    let mut carol = Xmpp::connect(&server, "carol", "pw").await;
    let names: Vec<String> = carol.rooms().await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Closed", "Flash", "Lobby", "Stage"]);

    let (hidden, others) = carol.join(&secret, "carol").await;
    assert!(others.is_empty());
    let (missing, _) = carol.join(&format!("{MADE_UP}@{MUC}"), "carol").await;
    assert_eq!(
        error_of(&hidden),
        ("cancel".to_owned(), "item-not-found".to_owned())
    );
    assert_eq!(shape(&hidden, &secret_uid), shape(&missing, MADE_UP));
    // disco#info of the room says no more.
    let info = "<query xmlns='http://jabber.org/protocol/disco#info'/>";
    let hidden = carol.iq("get", Some(&secret), info).await;
    let missing = carol
        .iq("get", Some(&format!("{MADE_UP}@{MUC}")), info)
        .await;
    assert_eq!(
        error_of(&hidden),
        ("cancel".to_owned(), "item-not-found".to_owned())
    );
    assert_eq!(shape(&hidden, &secret_uid), shape(&missing, MADE_UP));

    // A member sees it and enters.
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    let rooms = alice.rooms().await;
    assert!(
        rooms.contains(&("Secret".to_owned(), secret.clone())),
        "{rooms:?}"
    );
    let (own, _) = alice.join(&secret, "alice").await;
    assert_eq!(own.attr("type"), None, "{own:?}");
    assert_eq!(item_of(&own).0, "member");
    server.stop().await;
}

#[tokio::test]
async fn closed_room_and_auditorium_rules() {
    let server = start().await;
    let closed = room_jid(&server, "Closed");
    let stage = room_jid(&server, "Stage");
    let mut carol = Xmpp::connect(&server, "carol", "pw").await;
    let (refused, _) = carol.join(&closed, "carol").await;
    assert_eq!(
        error_of(&refused),
        ("auth".to_owned(), "registration-required".to_owned())
    );
    assert_eq!(
        refused.attr("from"),
        Some(format!("{closed}/carol").as_str())
    );

    // Stage: alice presents, carol only listens.
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    let (own, _) = alice.join(&stage, "alice").await;
    assert_eq!(item_of(&own).1, "participant");
    let (own, _) = carol.join(&stage, "carol").await;
    assert_eq!(
        item_of(&own),
        ("none".into(), "visitor".into(), "carol@example.test".into())
    );
    let refused = carol.post(&stage, "may I?").await;
    assert_eq!(
        error_of(&refused),
        ("auth".to_owned(), "forbidden".to_owned())
    );
    assert_eq!(refused.attr("id"), Some("post"));
    assert_eq!(refused.attr("from"), Some(stage.as_str()));
    let reflected = alice.post(&stage, "welcome").await;
    let id = stanza_id(&reflected, &stage);
    let heard = carol
        .until(|s| s.name == "message" && body_of(s) == Some("welcome"))
        .await;
    assert_eq!(stanza_id(&heard, &stage), id);
    assert_eq!(heard.attr("from"), Some(format!("{stage}/alice").as_str()));

    // Stored nowhere: neither the archive nor the store has carol's words.
    let (archived, _) = carol.archive(&stage, "<max>10</max>").await;
    assert_eq!(archived, [(id, "welcome".to_owned())]);
    let room_id = snapshot(server.store.as_ref())
        .room_by_name("Stage")
        .unwrap()
        .id;
    let stored: Vec<(i64, String)> =
        read_history(server.store.as_ref(), room_id, HistoryQuery::Last(10))
            .into_iter()
            .map(|m| (m.id, m.text))
            .collect();
    assert_eq!(stored, [(id, "welcome".to_owned())]);
    server.stop().await;
}

#[tokio::test]
async fn starttls_is_required_before_sign_in() {
    let server = start().await;
    let running = server.running();
    let tcp = tokio::net::TcpStream::connect(running.xmpp_addr().unwrap())
        .await
        .unwrap();
    let mut plain = Xmpp::over(tcp);
    let features = plain.open().await;
    let starttls = features.child_in("starttls", NS_TLS).unwrap();
    assert!(starttls.child("required").is_some(), "{features:?}");
    assert!(features.child_in("mechanisms", NS_SASL).is_none());
    assert_eq!(features.children.len(), 1, "{features:?}");

    let response = BASE64.encode(format!("\0alice@{DOMAIN}\0alice-pw"));
    plain
        .send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{response}</auth>"
        ))
        .await;
    let failure = plain.next_stanza().await;
    assert_eq!(
        (failure.name.as_str(), failure.namespace.as_str()),
        ("failure", NS_SASL)
    );
    assert!(
        failure.child_in("encryption-required", NS_SASL).is_some(),
        "{failure:?}"
    );

    // STARTTLS, then the same sign-in succeeds.
    plain.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await;
    let proceed = plain.next_stanza().await;
    assert_eq!(
        (proceed.name.as_str(), proceed.namespace.as_str()),
        ("proceed", NS_TLS)
    );
    assert!(plain.buf.is_empty());
    let trust = perch::lync::client::Trust::File(running.certificate().unwrap().cert.clone());
    let config = perch::lync::client::connect::client_config(&trust).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, plain.io)
        .await
        .unwrap();
    let mut secure = Xmpp::over(tls);
    secure.sign_in("alice", "alice-pw").await;
    assert_eq!(secure.jid, "alice@example.test/it");
    let ping = secure
        .iq("get", Some(DOMAIN), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(ping.attr("type"), Some("result"));
    server.stop().await;
}

#[tokio::test]
async fn private_messages_and_other_targets_are_refused() {
    let server = start().await;
    let lobby = room_jid(&server, "Lobby");
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    alice.join(&lobby, "alice").await;
    let mut bob = Xmpp::connect(&server, "bob", "bob-pw").await;
    bob.join(&lobby, "bob").await;

    alice
        .send(&format!(
            "<message to='{lobby}/bob' type='chat' id='pm'><body>psst</body></message>"
        ))
        .await;
    let refused = alice.until(is_error).await;
    assert_eq!(refused.name, "message");
    assert_eq!(refused.attr("id"), Some("pm"));
    assert_eq!(refused.attr("from"), Some(format!("{lobby}/bob").as_str()));
    assert_eq!(
        error_of(&refused),
        ("cancel".to_owned(), "not-acceptable".to_owned())
    );

    alice
        .send("<message to='bob@example.test' type='chat' id='direct'><body>psst</body></message>")
        .await;
    let refused = alice.until(is_error).await;
    assert_eq!(refused.attr("id"), Some("direct"));
    assert_eq!(refused.attr("from"), Some("bob@example.test"));
    assert_eq!(
        error_of(&refused),
        ("cancel".to_owned(), "service-unavailable".to_owned())
    );

    // bob heard neither: the next message he gets is a post that came after.
    alice.post(&lobby, "in the open").await;
    let next = bob
        .until(|s| {
            s.name == "message"
                && s.attr("type") == Some("groupchat")
                && s.child("subject").is_none()
        })
        .await;
    assert_eq!(body_of(&next), Some("in the open"));
    server.stop().await;
}

#[tokio::test]
async fn a_stanza_over_the_limit_ends_the_stream() {
    let server = TestServer::start_seeded(
        |config| {
            with_xmpp(config);
            config.xmpp.max_stanza_bytes = 4096;
        },
        seed,
    )
    .await;
    let lobby = room_jid(&server, "Lobby");
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    alice.join(&lobby, "alice").await;
    // Just under the limit is a post.
    let body = "x".repeat(3800);
    let reflected = alice.post(&lobby, &body).await;
    assert!(!is_error(&reflected), "{reflected:?}");

    let body = "y".repeat(5 * 1024);
    alice
        .send(&format!(
            "<message to='{lobby}' type='groupchat'><body>{body}</body></message>"
        ))
        .await;
    let error = alice.until(|s| s.namespace == STREAMS_NS).await;
    assert_eq!(error.name, "error");
    assert_eq!(
        error
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.namespace.as_str()))
            .collect::<Vec<_>>(),
        [("policy-violation", STREAM_ERRORS_NS)]
    );
    alice.closed_by_server().await;
    let room_id = snapshot(server.store.as_ref())
        .room_by_name("Lobby")
        .unwrap()
        .id;
    let stored = read_history(server.store.as_ref(), room_id, HistoryQuery::Last(10));
    assert_eq!(stored.len(), 1);
    server.stop().await;
}

/// `work`, or `None` if it has not finished within `wait`.
async fn within<T>(
    wait: std::time::Duration,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout(wait, work).await.ok()
}

async fn set_disabled(server: &TestServer, room: &'static str, disabled: bool) {
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || {
        save_room(
            store.as_ref(),
            Some(room),
            RoomChange {
                disabled: Some(disabled),
                ..RoomChange::default()
            },
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_evicted_occupant_can_join_again() {
    let server = start().await;
    let lobby_uri = room_uri(server.store.as_ref(), "Lobby");
    let lobby = room_jid(&server, "Lobby");
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    alice.join(&lobby, "alice").await;
    let mut bob = Chat::connect(&server, "bob").await;
    assert_eq!(code(&bob.join(&lobby_uri).await), "200");

    // Disabling the room takes everyone out; alice hears it as XEP-0045's removal.
    set_disabled(&server, "Lobby", true).await;
    let own_jid = format!("{lobby}/alice");
    let removed = alice
        .until(|s| s.attr("from") == Some(own_jid.as_str()) && is_unavailable(s))
        .await;
    assert_eq!(
        removed.attr("from"),
        Some(format!("{lobby}/alice").as_str())
    );
    assert_eq!(statuses(&removed), [110, 321]);
    bob.expect("rpl:part").await;

    // Enabled again, the room takes her back like any newcomer.
    set_disabled(&server, "Lobby", false).await;
    let info = "<query xmlns='http://jabber.org/protocol/disco#info'/>";
    let mut open = false;
    for _ in 0..50 {
        if alice.iq("get", Some(&lobby), info).await.attr("type") == Some("result") {
            open = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(open, "the room was not enabled again");
    // bob's removal, which alice may or may not have been told of before her own.
    alice.kept.retain(|s| s.name != "presence");
    let rejoined = within(
        std::time::Duration::from_secs(2),
        alice.join(&lobby, "alice"),
    )
    .await;
    let Some((own, others)) = rejoined else {
        panic!(
            "the join presence after the eviction went unanswered; received meanwhile: {:?}",
            alice.kept.iter().map(Element::to_xml).collect::<Vec<_>>()
        );
    };
    assert_eq!(own.attr("type"), None, "{own:?}");
    assert_eq!(statuses(&own), [100, 110, 170]);
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(code(&bob.join(&lobby_uri).await), "200");
    let arrived = alice.until(|s| s.name == "presence").await;
    assert_eq!(arrived.attr("from"), Some(format!("{lobby}/bob").as_str()));
    assert_eq!(arrived.attr("type"), None);
    let reflected = alice.post(&lobby, "back").await;
    assert!(!is_error(&reflected), "{reflected:?}");
    server.stop().await;
}

fn is_unavailable(stanza: &Element) -> bool {
    stanza.attr("type") == Some("unavailable")
}

#[tokio::test]
async fn join_history_matches_xccos_and_a_dropped_stream_leaves() {
    let server = start().await;
    let lobby_uri = room_uri(server.store.as_ref(), "Lobby");
    let lobby = room_jid(&server, "Lobby");
    let mut bob = Chat::connect(&server, "bob").await;
    assert_eq!(code(&bob.join(&lobby_uri).await), "200");
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        assert_eq!(bob.post(&lobby_uri, text).await, 200);
        ids.push(msgid(&bob.expect("grpchat").await));
    }

    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    alice
        .send(&format!(
            "<presence to='{lobby}/alice'><x xmlns='{NS_MUC}'><history maxstanzas='2'/></x></presence>"
        ))
        .await;
    let own = alice
        .until(|s| s.name == "presence" && statuses(s).contains(&110))
        .await;
    assert_eq!(own.attr("type"), None);
    // The history comes after the own presence, oldest first, and the subject ends it.
    let mut replayed = Vec::new();
    loop {
        let stanza = alice
            .until(|s| s.name == "message" && s.attr("type") == Some("groupchat"))
            .await;
        if stanza.child("subject").is_some() {
            break;
        }
        assert_eq!(stanza.attr("from"), Some(format!("{lobby}/bob").as_str()));
        let delay = stanza.child_in("delay", "urn:xmpp:delay").unwrap();
        assert_eq!(delay.attr("from"), Some(lobby.as_str()));
        replayed.push((
            stanza_id(&stanza, &lobby),
            body_of(&stanza).unwrap().to_owned(),
        ));
    }
    assert_eq!(
        replayed,
        [(ids[1], "two".to_owned()), (ids[2], "three".to_owned())]
    );
    let history = bob.history(&lobby_uri, r#"<last cnt="2"/>"#).await;
    assert_eq!(history.iter().map(msgid).collect::<Vec<_>>(), ids[1..]);
    bob.expect("ntc:join").await;

    // A stream that ends without a word leaves its rooms.
    drop(alice);
    let notice = bob.expect("ntc:part").await;
    let chanib = notice.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(
        chanib.child("uib").unwrap().attr("uri"),
        Some("sip:alice@example.test")
    );
    server.stop().await;
}

/// Lync's invitations reach an XMPP user as XEP-0249 direct invitations when their stream
/// binds, each once: the seed made alice a member of Closed and Secret, whose category
/// sends invitations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lync_invitations_are_offered_once_as_direct_invitations() {
    let server = start().await;
    let invited = |stanza: &Element| {
        stanza.name == "message"
            && stanza
                .child_in("x", "jabber:x:conference")
                .is_some_and(|x| x.attr("jid").is_some())
    };
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    let mut offered = Vec::new();
    for _ in 0..2 {
        let message = alice.until(invited).await;
        let x = message.child_in("x", "jabber:x:conference").unwrap();
        offered.push(x.attr("jid").unwrap().to_owned());
        assert_eq!(message.attr("from"), x.attr("jid"));
    }
    offered.sort();
    let mut expected = vec![room_jid(&server, "Closed"), room_jid(&server, "Secret")];
    expected.sort();
    assert_eq!(offered, expected);
    // A later stream is not offered them again; a ping's answer comes first.
    let mut again = Xmpp::connect(&server, "alice", "alice-pw").await;
    let pong = again.iq("get", None, "<ping xmlns='urn:xmpp:ping'/>").await;
    assert_eq!(pong.attr("type"), Some("result"));
    let quiet =
        tokio::time::timeout(std::time::Duration::from_millis(500), again.until(invited)).await;
    assert!(quiet.is_err(), "offered twice: {quiet:?}");
    server.stop().await;
}

/// An invitation made while its user is signed in over XMPP reaches their stream at once,
/// as the same XEP-0249 direct invitation a binding stream is offered, and is not offered
/// again on their next stream. The change goes through `core::service` as `perch admin`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_reaches_a_signed_in_user_live_and_once() {
    let server = start().await;
    let invitation = |stanza: &Element| {
        stanza.name == "message" && stanza.child_in("x", "jabber:x:conference").is_some()
    };
    let to_room = |room: String| {
        move |stanza: &Element| {
            stanza.name == "message"
                && stanza
                    .child_in("x", "jabber:x:conference")
                    .is_some_and(|x| x.attr("jid") == Some(room.as_str()))
        }
    };
    let (closed, stage) = (room_jid(&server, "Closed"), room_jid(&server, "Stage"));
    let mut bob = Xmpp::connect(&server, "bob", "bob-pw").await;
    // The seed made bob a member of Stage: offered as his stream binds.
    bob.until(to_room(stage)).await;

    let store = server.store.clone();
    tokio::task::spawn_blocking(move || {
        let change = RoomChange {
            members: vec![perch::core::manage::ListEdit::Add(vec![crate::chat::p(
                "sip:bob@example.test",
            )])],
            ..RoomChange::default()
        };
        let saved = perch::core::service::save_room(
            store.as_ref(),
            &snapshot(store.as_ref()),
            &perch::core::service::Actor::Operator,
            Some("Closed"),
            change,
        )
        .unwrap();
        assert_eq!(saved.invited, 1);
    })
    .await
    .unwrap();
    let live = within(
        std::time::Duration::from_secs(5),
        bob.until(to_room(closed.clone())),
    )
    .await
    .expect("no invitation reached the signed-in stream");
    assert_eq!(live.attr("from"), Some(closed.as_str()));
    assert_eq!(live.attr("to"), Some(bob.jid.as_str()));
    let x = live.child_in("x", "jabber:x:conference").unwrap();
    assert_eq!(x.attr("reason"), Some("You were added to Closed"));

    // The next stream is offered neither; a ping's answer comes first.
    drop(bob);
    let mut again = Xmpp::connect(&server, "bob", "bob-pw").await;
    let pong = again.iq("get", None, "<ping xmlns='urn:xmpp:ping'/>").await;
    assert_eq!(pong.attr("type"), Some("result"));
    let quiet = within(
        std::time::Duration::from_millis(500),
        again.until(invitation),
    )
    .await;
    assert!(quiet.is_none(), "offered again: {quiet:?}");
    server.stop().await;
}

/// A manager's client reads and changes the room's configuration (muc#owner) under the
/// same rules as `perch admin`; anyone else is refused. bob manages Stage in the seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_configures_the_room_and_others_may_not() {
    let server = start().await;
    let stage = room_jid(&server, "Stage");
    let owner = "http://jabber.org/protocol/muc#owner";
    let mut bob = Xmpp::connect(&server, "bob", "bob-pw").await;
    let form = bob
        .iq("get", Some(&stage), &format!("<query xmlns='{owner}'/>"))
        .await;
    assert_eq!(form.attr("type"), Some("result"), "{form:?}");
    let value = |var: &str| {
        form.child_in("query", owner)
            .and_then(|q| q.child_in("x", "jabber:x:data"))
            .and_then(|x| x.children.iter().find(|f| f.attr("var") == Some(var)))
            .and_then(|f| f.child("value"))
            .map(|v| v.text.clone())
    };
    assert_eq!(value("muc#roomconfig_roomname").as_deref(), Some("Stage"));
    assert_eq!(value("muc#roomconfig_moderatedroom").as_deref(), Some("1"));
    assert_eq!(value("x-perch#category").as_deref(), Some("General"));
    let submit = format!(
        "<query xmlns='{owner}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
         <field var='muc#roomconfig_roomdesc'><value>Talks on Fridays</value></field>\
         </x></query>"
    );
    let saved = bob.iq("set", Some(&stage), &submit).await;
    assert_eq!(saved.attr("type"), Some("result"), "{saved:?}");
    let stored = snapshot(server.store.as_ref())
        .room_by_name("Stage")
        .unwrap()
        .description
        .clone();
    assert_eq!(stored, "Talks on Fridays");

    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    let refused = alice.iq("set", Some(&stage), &submit).await;
    assert_eq!(
        error_of(&refused),
        ("auth".to_owned(), "forbidden".to_owned())
    );
    let destroy = bob
        .iq(
            "set",
            Some(&stage),
            &format!("<query xmlns='{owner}'><destroy/></query>"),
        )
        .await;
    assert_eq!(
        error_of(&destroy),
        ("cancel".to_owned(), "not-allowed".to_owned())
    );
    server.stop().await;
}

/// A category's creators create rooms with the configuration form sent to an address that
/// names no room; the answer names the new room's address, and its creator manages it.
/// Anyone else meets the answer a missing room gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creators_create_rooms_with_the_configuration_form() {
    use perch::core::manage::{CategoryChange, ListEdit};
    let server = TestServer::start_seeded(with_xmpp, |store| {
        seed(store);
        crate::chat::save_category(
            store,
            "Projects",
            CategoryChange {
                allowed: vec![ListEdit::Add(vec![crate::chat::p("domain:example.test")])],
                creators: vec![ListEdit::Add(vec![crate::chat::p(
                    "sip:alice@example.test",
                )])],
                ..CategoryChange::default()
            },
        );
    })
    .await;
    let owner = "http://jabber.org/protocol/muc#owner";
    let new = format!("launch@{MUC}");
    let mut bob = Xmpp::connect(&server, "bob", "bob-pw").await;
    let refused = bob
        .iq("get", Some(&new), &format!("<query xmlns='{owner}'/>"))
        .await;
    assert_eq!(
        error_of(&refused),
        ("cancel".to_owned(), "item-not-found".to_owned())
    );

    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    let form = alice
        .iq("get", Some(&new), &format!("<query xmlns='{owner}'/>"))
        .await;
    let options: Vec<String> = form
        .child_in("query", owner)
        .and_then(|q| q.child_in("x", "jabber:x:data"))
        .and_then(|x| {
            x.children
                .iter()
                .find(|f| f.attr("var") == Some("x-perch#category"))
        })
        .map(|f| {
            f.children
                .iter()
                .filter_map(|o| o.child("value"))
                .map(|v| v.text.clone())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(options, ["Projects"], "{form:?}");
    let submit = |category: &str| {
        format!(
            "<query xmlns='{owner}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='muc#roomconfig_roomname'><value>Launch</value></field>\
             <field var='x-perch#category'><value>{category}</value></field>\
             </x></query>"
        )
    };
    let elsewhere = alice.iq("set", Some(&new), &submit("General")).await;
    assert_eq!(
        error_of(&elsewhere),
        ("auth".to_owned(), "forbidden".to_owned()),
        "not a creator in General"
    );
    let created = alice.iq("set", Some(&new), &submit("Projects")).await;
    assert_eq!(created.attr("type"), Some("result"), "{created:?}");
    let address = created
        .child_in("query", owner)
        .and_then(|q| q.child_in("x", "jabber:x:data"))
        .and_then(|x| {
            x.children
                .iter()
                .find(|f| f.attr("var") == Some("x-perch#jid"))
        })
        .and_then(|f| f.child("value"))
        .map(|v| v.text.clone())
        .unwrap();
    assert_eq!(address, room_jid(&server, "Launch"));
    let room = snapshot(server.store.as_ref())
        .room_by_name("Launch")
        .unwrap()
        .clone();
    assert_eq!(room.managers, [crate::chat::p("sip:alice@example.test")]);
    let (own, _) = alice.join(&address, "alice").await;
    assert!(statuses(&own).contains(&110), "{own:?}");
    server.stop().await;
}

/// XEP-0198 resumption over real connections: a stream that drops keeps its session in the
/// room (nobody sees it leave), a new connection resumes it and gets what it missed, a
/// third connection takes it over from a second still up, and a session nobody resumes
/// in time ends.
#[tokio::test]
async fn a_dropped_stream_is_resumed_without_losing_a_post() {
    let server = start().await;
    let lobby_uri = room_uri(server.store.as_ref(), "Lobby");
    let lobby = room_jid(&server, "Lobby");
    let mut bob = Chat::connect(&server, "bob").await;
    assert_eq!(code(&bob.join(&lobby_uri).await), "200");

    let resumed_before = perch::net::metrics::metrics().sessions_resumed.get();
    let mut alice = Xmpp::connect(&server, "alice", "alice-pw").await;
    let previd = alice.enable_resumption(60).await;
    let (own, _) = alice.join(&lobby, "alice").await;
    assert!(statuses(&own).contains(&110), "{own:?}");
    bob.expect("ntc:join").await;

    // The network goes: the connection drops without `</stream:stream>`.
    drop(alice);
    assert_eq!(bob.post(&lobby_uri, "while away").await, 200);
    let posted = msgid(&bob.expect("grpchat").await);

    let (mut alice, resumed) = Xmpp::resume(&server, "alice", "alice-pw", &previd).await;
    assert_eq!(resumed.name, "resumed", "{resumed:?}");
    assert_eq!(resumed.attr("previd"), Some(previd.as_str()));
    let missed = alice.until(|s| body_of(s) == Some("while away")).await;
    assert_eq!(stanza_id(&missed, &lobby), posted);
    // alice never left: bob heard no part, and her post goes on from the same session.
    assert!(bob.none_of("ntc:part").await);
    let back = alice.post(&lobby, "back").await;
    assert!(!is_error(&back), "{back:?}");
    bob.expect("grpchat").await;

    // Another change of network before the server noticed the last: the stream still up
    // is closed, and the new one has the session.
    let (mut third, taken) = Xmpp::resume(&server, "alice", "alice-pw", &previd).await;
    assert_eq!(taken.name, "resumed", "{taken:?}");
    alice.until_dropped().await;
    assert_eq!(bob.post(&lobby_uri, "to the third").await, 200);
    third.until(|s| body_of(s) == Some("to the third")).await;
    assert!(bob.none_of("ntc:part").await);
    // Counted for operators (other tests run alongside: at least these two).
    assert!(perch::net::metrics::metrics().sessions_resumed.get() >= resumed_before + 2);

    // Someone else's id is not found, like an unknown one.
    let (_, refused) = Xmpp::resume(&server, "bob", "bob-pw", &previd).await;
    assert_eq!(refused.name, "failed", "{refused:?}");
    assert!(refused.child("item-not-found").is_some(), "{refused:?}");

    // A session nobody resumes within the time its client asked for ends.
    let mut brief = Xmpp::connect(&server, "alice", "alice-pw").await;
    let brief_id = brief.enable_resumption(1).await;
    drop(brief);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, expired) = Xmpp::resume(&server, "alice", "alice-pw", &brief_id).await;
    assert_eq!(expired.name, "failed", "{expired:?}");
    drop(third);
    server.stop().await;
}
