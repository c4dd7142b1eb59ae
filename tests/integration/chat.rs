//! XCCOS over real TLS: every command and its error paths, the permission rules as clients
//! meet them, fan-out, history and administrative changes reaching connected clients.

use std::collections::VecDeque;

use perch::core::Snapshot;
use perch::core::manage::{self, CategoryChange, ListEdit, RoomChange};
use perch::core::model::{Principal, Privacy, RoomType};
use perch::core::ports::{Store, wait};
use perch::lync::sip::{Message, StartLine};
use perch::lync::xccos::xml::{Element, parse};

use crate::support::*;

pub(crate) const CHAT: &str = "sip:ocschat@example.test";

pub(crate) fn p(text: &str) -> Principal {
    text.parse().unwrap()
}

pub(crate) fn snapshot(store: &dyn Store) -> Snapshot {
    Snapshot::from_model(store.load_model().unwrap())
}

fn add_user(store: &dyn Store, user: &str) {
    perch::core::service::add_user(store, &format!("{user}@{DOMAIN}"), None, Some("pw"), true)
        .unwrap();
}

pub(crate) fn save_category(store: &dyn Store, name: &str, change: CategoryChange) {
    let change = CategoryChange {
        name: Some(name.into()),
        ..change
    };
    let (category, _) = manage::category(&snapshot(store), None, change).unwrap();
    wait(store.save_category(category)).unwrap();
}

pub(crate) fn save_room(store: &dyn Store, existing: Option<&str>, change: RoomChange) {
    let uid = perch::core::ids::new_room_uid();
    let outcome = manage::room(&snapshot(store), existing, &uid, change).unwrap();
    let room = wait(store.save_room(outcome.room)).unwrap();
    if !outcome.invite.is_empty() {
        let invitations = outcome.invite.into_iter().map(|u| (u, room.id)).collect();
        wait(store.add_invitations(invitations, perch::core::ids::now_ticks())).unwrap();
    }
}

fn room(
    name: &str,
    category: &str,
    privacy: Privacy,
    kind: RoomType,
    members: &[&str],
) -> RoomChange {
    RoomChange {
        name: Some(name.into()),
        description: Some(format!("about {name}")),
        category: Some(category.into()),
        privacy: Some(privacy),
        kind: Some(kind),
        members: vec![ListEdit::Add(members.iter().map(|m| p(m)).collect())],
        ..RoomChange::default()
    }
}

/// carol and erin join alice and bob; erin is in group `team` (allowed) but denied by name.
/// General: Lobby (open), Closed (alice), Secret (alice), Stage (auditorium, alice presents).
/// Ephemeral (history off): Flash (open).
pub(crate) fn seed(store: &dyn Store) {
    add_user(store, "carol");
    add_user(store, "erin");
    let team = manage::group(
        &snapshot(store),
        "team",
        None,
        &[ListEdit::Add(vec![p("sip:erin@example.test")])],
    )
    .unwrap();
    wait(store.save_group(team)).unwrap();
    let scope = |history: bool| CategoryChange {
        allowed: vec![ListEdit::Add(vec![
            p("domain:example.test"),
            p("group:team"),
        ])],
        denied: vec![ListEdit::Add(vec![p("sip:erin@example.test")])],
        chat_history: Some(history),
        ..CategoryChange::default()
    };
    save_category(store, "General", scope(true));
    save_category(store, "Ephemeral", scope(false));
    save_room(
        store,
        None,
        room("Lobby", "General", Privacy::Open, RoomType::Normal, &[]),
    );
    save_room(
        store,
        None,
        room(
            "Closed",
            "General",
            Privacy::Closed,
            RoomType::Normal,
            &["sip:alice@example.test"],
        ),
    );
    save_room(
        store,
        None,
        room(
            "Secret",
            "General",
            Privacy::Secret,
            RoomType::Normal,
            &["sip:alice@example.test"],
        ),
    );
    let mut stage = room(
        "Stage",
        "General",
        Privacy::Open,
        RoomType::Auditorium,
        &["sip:alice@example.test", "sip:bob@example.test"],
    );
    stage.presenters = vec![ListEdit::Add(vec![p("sip:alice@example.test")])];
    stage.managers = vec![ListEdit::Add(vec![p("sip:bob@example.test")])];
    save_room(store, None, stage);
    save_room(
        store,
        None,
        room("Flash", "Ephemeral", Privacy::Open, RoomType::Normal, &[]),
    );
}

pub(crate) fn trusted(config: &mut perch::app::config::Config) {
    config.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
}

async fn start() -> TestServer {
    TestServer::start_seeded(trusted, seed).await
}

pub(crate) fn room_uri(store: &dyn Store, name: &str) -> String {
    let s = snapshot(store);
    let room = s.room_by_name(name).unwrap();
    perch::lync::xccos::uri::room_uri(DOMAIN, &room.uid)
}

/// A signed-in chat client with its dialog; server INFOs that arrive while waiting for
/// something else are answered and kept in `inbox`.
pub(crate) struct Chat {
    pub(crate) client: Client,
    pub(crate) call_id: String,
    pub(crate) to: String,
    pub(crate) cseq: u32,
    pub(crate) envid: u32,
    pub(crate) inbox: VecDeque<Element>,
}

impl Chat {
    pub(crate) async fn connect(server: &TestServer, user: &str) -> Chat {
        let mut client = server.tls().await;
        client.user = user.into();
        client.tag = format!("{}77", user.len());
        assert_eq!(status(&client.register_plain().await), 200);
        let call_id = client.new_call_id();
        let invite = client.invite_chat(
            &call_id,
            &[
                ("Contact", &format!("<sip:{user}@example.test;gruu>")),
                ("Content-Type", "application/sdp"),
            ],
            "v=0\r\n",
        );
        client.send(&invite).await;
        let ok = client.response().await;
        assert_eq!(status(&ok), 200);
        let to = ok.headers.get("To").unwrap().to_owned();
        let ack = client.request("ACK", CHAT, &call_id, 1, &to, &[], "");
        client.send(&ack).await;
        Chat {
            client,
            call_id,
            to,
            cseq: 1,
            envid: 100,
            inbox: VecDeque::new(),
        }
    }

    fn user_uri(&self) -> String {
        format!("sip:{}", self.client.aor())
    }

    /// Sends an INFO with `body` and returns the SIP status of its response.
    async fn info(&mut self, body: &str) -> u16 {
        status(&self.info_response(body).await)
    }

    /// Sends an INFO with `body` and returns its response.
    pub(crate) async fn info_response(&mut self, body: &str) -> Message {
        let request = self.info_request(body);
        self.client.send(&request).await;
        loop {
            let m = self.client.message().await;
            match m.start {
                StartLine::Response { .. } => return m,
                StartLine::Request { .. } => self.keep(&m).await,
            }
        }
    }

    /// The next INFO in the dialog, carrying `body`.
    pub(crate) fn info_request(&mut self, body: &str) -> Vec<u8> {
        self.cseq += 1;
        self.client.request(
            "INFO",
            CHAT,
            &self.call_id,
            self.cseq,
            &self.to,
            &[("Content-Type", "text/plain")],
            body,
        )
    }

    /// Answers a server request and keeps its XCCOS payload.
    pub(crate) async fn keep(&mut self, request: &Message) {
        self.client.send(&answer(request, 200)).await;
        if !request.body.is_empty() {
            let root = parse(&request.body, &Default::default()).unwrap();
            assert_eq!(root.name, "xccos");
            self.inbox
                .push_back(root.children.into_iter().next().unwrap());
        }
    }

    /// The next XCCOS element (rpl, ntc or grpchat) with this `id`, waiting if needed.
    pub(crate) async fn expect(&mut self, id: &str) -> Element {
        loop {
            if let Some(pos) = self.inbox.iter().position(|e| e.attr("id") == Some(id)) {
                return self.inbox.remove(pos).unwrap();
            }
            let m = self.client.message().await;
            assert!(
                matches!(m.start, StartLine::Request { .. }),
                "unexpected {m:?}"
            );
            if m.method().map(|m| m.as_str()) == Some("BYE") {
                self.inbox
                    .push_back(Element::new("bye").with_attr("id", "BYE"));
                self.client.send(&answer(&m, 200)).await;
                continue;
            }
            self.keep(&m).await;
        }
    }

    /// Whether no element with `id` arrives within a short while.
    pub(crate) async fn none_of(&mut self, id: &str) -> bool {
        let probe =
            tokio::time::timeout(std::time::Duration::from_millis(300), self.expect(id)).await;
        probe.is_err()
    }

    pub(crate) async fn command(&mut self, name: &str, data: &str) -> Element {
        self.envid += 1;
        let body = format!(
            r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:{name}" seqid="1"><data>{data}</data></cmd></xccos>"#,
            self.envid
        );
        assert_eq!(self.info(&body).await, 200);
        let reply = self.expect(&format!("rpl:{name}")).await;
        let commandid = reply.child("commandid").unwrap();
        assert_eq!(
            commandid.attr("envid"),
            Some(self.envid.to_string().as_str())
        );
        reply
    }

    pub(crate) async fn join(&mut self, uri: &str) -> Element {
        let value = uri.rsplit('/').next().unwrap();
        self.command(
            "join",
            &format!(r#"<chanid key="0" domain="example.test" value="{value}"/>"#),
        )
        .await
    }

    /// Posts and returns the SIP status of the INFO.
    pub(crate) async fn post(&mut self, uri: &str, text: &str) -> u16 {
        let body = self.post_body(uri, text);
        self.info(&body).await
    }

    /// Posts every text with one write for all the INFOs (the connection reads on while
    /// they commit) and returns the CSeqs of the answers, all 200, in the order they came.
    pub(crate) async fn post_pipelined(&mut self, uri: &str, texts: &[String]) -> Vec<u32> {
        let mut batch = Vec::new();
        for text in texts {
            let body = self.post_body(uri, text);
            batch.extend(self.info_request(&body));
        }
        self.client.send(&batch).await;
        let mut answered = Vec::new();
        while answered.len() < texts.len() {
            let m = self.client.message().await;
            match m.start {
                StartLine::Response { code, .. } => {
                    assert_eq!(code, 200);
                    let cseq = m.headers.get("CSeq").unwrap();
                    answered.push(cseq.split(' ').next().unwrap().parse::<u32>().unwrap());
                }
                StartLine::Request { .. } => self.keep(&m).await,
            }
        }
        answered
    }

    /// The INFO body of a post of `text` to `uri`, in a new envelope.
    pub(crate) fn post_body(&mut self, uri: &str, text: &str) -> String {
        self.envid += 1;
        format!(
            r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><grpchat id="grpchat" seqid="1" chanUri="{uri}" author="{}" ts="2024-05-01T10:00:00Z"><chat>{text}</chat></grpchat></xccos>"#,
            self.envid,
            self.user_uri()
        )
    }

    pub(crate) async fn history(&mut self, uri: &str, bcq: &str) -> Vec<Element> {
        let reply = self
            .command(
                "bccontext",
                &format!(r#"<chanib uri="{uri}"/><bcq>{bcq}</bcq>"#),
            )
            .await;
        assert_eq!(code(&reply), "200");
        reply
            .child("data")
            .unwrap()
            .child("chanib")
            .unwrap()
            .children
            .clone()
    }
}

/// alice and bob, each joined to `room`; returns the room's URI with them.
async fn alice_and_bob_in(server: &TestServer, room: &str) -> (String, Chat, Chat) {
    let uri = room_uri(server.store.as_ref(), room);
    let mut alice = Chat::connect(server, "alice").await;
    let mut bob = Chat::connect(server, "bob").await;
    alice.join(&uri).await;
    bob.join(&uri).await;
    (uri, alice, bob)
}

pub(crate) fn code(reply: &Element) -> &str {
    reply
        .child("resp")
        .and_then(|r| r.attr("code"))
        .unwrap_or("none")
}

pub(crate) fn names(reply: &Element) -> Vec<String> {
    reply
        .child("data")
        .unwrap()
        .children
        .iter()
        .filter(|c| c.name == "chanib")
        .map(|c| c.attr("name").unwrap().to_owned())
        .collect()
}

pub(crate) fn texts(messages: &[Element]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.child("chat").unwrap().text.clone())
        .collect()
}

/// A reply without its per-envelope parts, to compare two answers.
pub(crate) fn shape(reply: &Element) -> String {
    let mut reply = reply.clone();
    reply.children.retain(|c| c.name != "commandid");
    reply.to_xml()
}

#[tokio::test]
async fn search_respects_visibility() {
    let server = start().await;
    let mut alice = Chat::connect(&server, "alice").await;
    let mut carol = Chat::connect(&server, "carol").await;
    let mut erin = Chat::connect(&server, "erin").await;
    let all = r#"<qib qtype="BYNAME" criteria="" extended="false"/>"#;
    let seen = alice.command("chansrch", all).await;
    assert_eq!(code(&seen), "200");
    assert_eq!(
        names(&seen),
        ["Closed", "Flash", "Lobby", "Secret", "Stage"]
    );
    assert_eq!(
        names(&carol.command("chansrch", all).await),
        ["Closed", "Flash", "Lobby", "Stage"]
    );
    assert!(
        names(&erin.command("chansrch", all).await).is_empty(),
        "denied beats allowed"
    );
    let by_name = carol
        .command(
            "chansrch",
            r#"<qib qtype="BYNAME" criteria="lob" extended="false"/>"#,
        )
        .await;
    assert_eq!(names(&by_name), ["Lobby"]);
    let by_description = carol
        .command(
            "chansrch",
            r#"<qib qtype="BYNAME" criteria="about st" extended="true"/>"#,
        )
        .await;
    assert_eq!(names(&by_description), ["Stage"]);
    let lobby = &seen.child("data").unwrap().children[2];
    assert!(
        lobby
            .attr("uri")
            .unwrap()
            .starts_with("ma-chan://example.test/")
    );
    let ucnt = lobby
        .children
        .iter()
        .find(|c| c.attr("id") == Some("urn:parlano:ma:info:ucnt"))
        .unwrap();
    assert_eq!(ucnt.text, "0");
    server.stop().await;
}

#[tokio::test]
async fn joining_follows_privacy_and_secret_rooms_leak_nothing() {
    let server = start().await;
    let store = server.store.clone();
    let mut alice = Chat::connect(&server, "alice").await;
    let mut carol = Chat::connect(&server, "carol").await;
    let mut erin = Chat::connect(&server, "erin").await;

    let joined = carol.join(&room_uri(store.as_ref(), "Lobby")).await;
    assert_eq!(code(&joined), "200");
    let chanib = joined
        .child("data")
        .unwrap()
        .children
        .iter()
        .find(|c| c.name == "chanib")
        .unwrap()
        .clone();
    assert_eq!(chanib.attr("name"), Some("Lobby"));
    assert_eq!(
        chanib.attr("uri"),
        Some(room_uri(store.as_ref(), "Lobby").as_str())
    );

    assert_eq!(
        code(&carol.join(&room_uri(store.as_ref(), "Closed")).await),
        "403"
    );
    assert_eq!(
        code(&alice.join(&room_uri(store.as_ref(), "Closed")).await),
        "200"
    );

    // A secret room answers a non-member exactly as a room that does not exist.
    let secret = carol.join(&room_uri(store.as_ref(), "Secret")).await;
    let missing = carol
        .join("ma-chan://example.test/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(code(&secret), "404");
    assert_eq!(shape(&secret), shape(&missing));
    let history = carol
        .command(
            "bccontext",
            &format!(
                r#"<chanib uri="{}"/><bcq><last cnt="5"/></bcq>"#,
                room_uri(store.as_ref(), "Secret")
            ),
        )
        .await;
    assert_eq!(code(&history), "404");

    // Denied by name, allowed through a group: denied wins.
    assert_eq!(
        code(&erin.join(&room_uri(store.as_ref(), "Lobby")).await),
        "404"
    );
    server.stop().await;
}

#[tokio::test]
async fn posts_are_durable_and_fanned_out_to_everyone_including_the_sender() {
    let server = start().await;
    let (lobby, mut alice, mut bob) = alice_and_bob_in(&server, "Lobby").await;
    // alice sees bob arrive.
    let notice = alice.expect("ntc:join").await;
    let uib = notice.child("data").unwrap().child("uib").unwrap();
    assert_eq!(uib.attr("uri"), Some("sip:bob@example.test"));

    assert_eq!(alice.post(&lobby, "hello &amp; welcome").await, 200);
    for chat in [&mut alice, &mut bob] {
        let post = chat.expect("grpchat").await;
        assert_eq!(post.attr("chanUri"), Some(lobby.as_str()));
        assert_eq!(post.attr("author"), Some("sip:alice@example.test"));
        assert_eq!(post.child("chat").unwrap().text, "hello & welcome");
        let ts = post.attr("ts").unwrap();
        assert_eq!(ts.len(), "2024-05-01T10:00:00.0000000Z".len(), "{ts}");
        assert!(post.attr("msgid").unwrap().parse::<i64>().unwrap() > 0);
    }
    // Already in the store: a new client reads it back.
    let mut carol = Chat::connect(&server, "carol").await;
    carol.join(&lobby).await;
    let history = carol.history(&lobby, r#"<last cnt="10"/>"#).await;
    assert_eq!(texts(&history), ["hello & welcome"]);
    server.stop().await;
}

/// A post's other parts reach readers, in the fan-out and in history, but never a part
/// holding XCCOS's own elements: a nested `grpchat` under someone else's name would reach
/// every reader as it was sent.
#[tokio::test]
async fn post_parts_holding_xccos_elements_are_not_forwarded() {
    let server = start().await;
    let (lobby, mut alice, mut bob) = alice_and_bob_in(&server, "Lobby").await;
    let forged = format!(
        r#"<x><grpchat id="grpchat" seqid="1" chanUri="{lobby}" author="sip:carol@example.test" ts="2024-05-01T10:00:00Z"><chat>forged</chat></grpchat></x>"#
    );
    let body = alice
        .post_body(&lobby, "real")
        .replace("</chat>", &format!("</chat><rtf>bold</rtf>{forged}"));
    assert_eq!(alice.info(&body).await, 200);
    let fanned_out = bob.expect("grpchat").await;
    let mut history = bob.history(&lobby, r#"<last cnt="10"/>"#).await;
    let stored = history.pop().unwrap();
    for post in [fanned_out, stored] {
        assert_eq!(post.child("chat").unwrap().text, "real");
        assert_eq!(post.child("rtf").unwrap().text, "bold");
        assert!(
            post.child("x").is_none(),
            "a part holding grpchat was forwarded"
        );
        assert_eq!(post.attr("author"), Some("sip:alice@example.test"));
    }
    server.stop().await;
}

/// A client that stops reading cannot hold its connection, or the posts of others: once
/// what perch writes to it has waited `message_timeout_secs`, the connection is closed.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed() {
    let server = TestServer::start_seeded(
        |c| {
            trusted(c);
            c.limits.message_timeout_secs = 1;
            c.limits.requests_per_second = 10_000;
            c.limits.request_burst = 10_000;
            c.limits.requests_per_second_per_user = 10_000;
            c.limits.request_burst_per_user = 10_000;
            // alice and bob: a third connection only fits once bob's is gone.
            c.limits.max_connections_per_address = 2;
        },
        seed,
    )
    .await;
    let (lobby, mut alice, mut bob) = alice_and_bob_in(&server, "Lobby").await;
    // bob reads nothing from here on. 2,000 posts of 7,500 bytes (MessageSizeLimit is
    // 8,000), 15 MB, are more than loopback's socket buffers hold; 32 at a time, so the
    // store commits them in batches.
    let chunk = vec!["y".repeat(7_500); 32];
    for _ in 0..63 {
        alice.post_pipelined(&lobby, &chunk).await;
    }
    // Still without reading: perch gives up on bob once its write has waited longer than
    // message_timeout_secs, and his connection slot is free again.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let mut probe = server.tcp().await;
    let _ = probe.try_send(&probe.options(1)).await;
    assert!(
        matches!(probe.receive().await, Some(Received::Message(m)) if status(&m) == 200),
        "bob's connection must be closed while he still reads nothing"
    );
    assert!(bob.client.closed_by_server().await);
    // alice goes on, her own echoes included.
    assert_eq!(alice.post(&lobby, "still here").await, 200);
    loop {
        let post = alice.expect("grpchat").await;
        if post.child("chat").unwrap().text == "still here" {
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn pipelined_posts_are_answered_in_order_and_kept_in_order() {
    let server = start().await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    alice.join(&lobby).await;
    // Twenty posts in one write: the connection keeps reading while they commit.
    let first_cseq = alice.cseq + 1;
    let posted: Vec<String> = (0..20).map(|i| format!("pipelined {i}")).collect();
    let answered = alice.post_pipelined(&lobby, &posted).await;
    assert_eq!(answered, (first_cseq..first_cseq + 20).collect::<Vec<_>>());
    let history = alice.history(&lobby, r#"<last cnt="30"/>"#).await;
    assert_eq!(texts(&history), posted);
    server.stop().await;
}

#[tokio::test]
async fn history_paging_and_search() {
    let server = start().await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    alice.join(&lobby).await;
    for i in 1..=40 {
        assert_eq!(
            alice
                .post(
                    &lobby,
                    &format!(
                        "message {i} {}",
                        if i % 10 == 0 { "milestone" } else { "plain" }
                    )
                )
                .await,
            200
        );
        alice.expect("grpchat").await;
    }
    // No count: DefaultChatHistory (30), oldest first.
    let last = alice.history(&lobby, "").await;
    assert_eq!(last.len(), 30);
    assert_eq!(last[0].child("chat").unwrap().text, "message 11 plain");
    let five = alice.history(&lobby, r#"<last cnt="5"/>"#).await;
    assert_eq!(texts(&five)[4], "message 40 milestone");
    let oldest_shown: i64 = five[0].attr("msgid").unwrap().parse().unwrap();
    let before = alice
        .history(
            &lobby,
            &format!(r#"<before msgid="{oldest_shown}" cnt="3"/>"#),
        )
        .await;
    assert_eq!(
        texts(&before),
        ["message 33 plain", "message 34 plain", "message 35 plain"]
    );
    let first: i64 = last[0].attr("msgid").unwrap().parse::<i64>().unwrap() - 10;
    let after = alice
        .history(&lobby, &format!(r#"<after msgid="{first}" cnt="2"/>"#))
        .await;
    assert_eq!(texts(&after), ["message 2 plain", "message 3 plain"]);
    let found = alice.history(&lobby, "<search>milestone</search>").await;
    assert_eq!(
        texts(&found),
        [
            "message 10 milestone",
            "message 20 milestone",
            "message 30 milestone",
            "message 40 milestone"
        ]
    );
    let bad = alice
        .command(
            "bccontext",
            &format!(r#"<chanib uri="{lobby}"/><bcq><last cnt="many"/></bcq>"#),
        )
        .await;
    assert_eq!(code(&bad), "400");
    server.stop().await;
}

#[tokio::test]
async fn auditorium_and_size_limits() {
    let server = start().await;
    let stage = room_uri(server.store.as_ref(), "Stage");
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    let mut bob = Chat::connect(&server, "bob").await;
    alice.join(&stage).await;
    bob.join(&stage).await;
    assert_eq!(
        bob.post(&stage, "not a presenter").await,
        403,
        "a manager who is not a presenter cannot post"
    );
    assert_eq!(alice.post(&stage, "presenting").await, 200);
    assert_eq!(
        bob.expect("grpchat").await.child("chat").unwrap().text,
        "presenting"
    );
    // Posting to a room one has not joined, and an oversized message.
    assert_eq!(bob.post(&lobby, "not joined").await, 400);
    bob.join(&lobby).await;
    assert_eq!(bob.post(&lobby, &"x".repeat(9000)).await, 413);
    // A story: a short text with other parts, within StorySizeLimit (64,000) in all, then
    // beyond it.
    let story = |parts: &[usize], chat: &mut Chat| {
        let extra: String = parts
            .iter()
            .enumerate()
            .map(|(i, n)| format!("<part{i}>{}</part{i}>", "y".repeat(*n)))
            .collect();
        chat.post_body(&lobby, "title")
            .replace("</chat>", &format!("</chat>{extra}"))
    };
    let within = story(&[30_000, 30_000], &mut bob);
    assert_eq!(bob.info(&within).await, 200);
    let beyond = story(&[40_000, 40_000], &mut bob);
    assert_eq!(bob.info(&beyond).await, 413);
    server.stop().await;
}

#[tokio::test]
async fn history_off_category_delivers_but_does_not_store() {
    let server = start().await;
    let (flash, mut alice, mut bob) = alice_and_bob_in(&server, "Flash").await;
    assert_eq!(alice.post(&flash, "ephemeral").await, 200);
    assert_eq!(
        bob.expect("grpchat").await.child("chat").unwrap().text,
        "ephemeral"
    );
    assert!(
        alice
            .history(&flash, r#"<last cnt="10"/>"#)
            .await
            .is_empty()
    );
    let room_id = snapshot(server.store.as_ref())
        .room_by_name("Flash")
        .unwrap()
        .id;
    assert!(
        read_history(
            server.store.as_ref(),
            room_id,
            perch::core::ports::HistoryQuery::Last(10)
        )
        .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn part_bye_and_notices() {
    let server = start().await;
    let (lobby, mut alice, mut bob) = alice_and_bob_in(&server, "Lobby").await;
    alice.expect("ntc:join").await;
    let parted = bob
        .command("part", &format!(r#"<chanib uri="{lobby}"/>"#))
        .await;
    assert_eq!(code(&parted), "200");
    assert_eq!(
        parted
            .child("data")
            .unwrap()
            .child("chanib")
            .unwrap()
            .attr("uri"),
        Some(lobby.as_str())
    );
    let notice = alice.expect("ntc:part").await;
    let chanib = notice.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(chanib.attr("uri"), Some(lobby.as_str()));
    assert_eq!(
        chanib.child("uib").unwrap().attr("uri"),
        Some("sip:bob@example.test")
    );

    // BYE without cmd:part (SIPE's logout) leaves every room.
    bob.join(&lobby).await;
    alice.expect("ntc:join").await;
    bob.cseq += 1;
    let bye = bob
        .client
        .request("BYE", CHAT, &bob.call_id, bob.cseq, &bob.to, &[], "");
    bob.client.send(&bye).await;
    assert_eq!(status(&bob.client.response().await), 200);
    let notice = alice.expect("ntc:part").await;
    assert_eq!(
        notice
            .child("data")
            .unwrap()
            .child("chanib")
            .unwrap()
            .child("uib")
            .unwrap()
            .attr("uri"),
        Some("sip:bob@example.test")
    );
    // A closed connection does the same.
    let mut carol = Chat::connect(&server, "carol").await;
    carol.join(&lobby).await;
    alice.expect("ntc:join").await;
    drop(carol);
    alice.expect("ntc:part").await;
    server.stop().await;
}

#[tokio::test]
async fn bjoin_reports_each_failure() {
    let server = start().await;
    let store = server.store.clone();
    let mut carol = Chat::connect(&server, "carol").await;
    let value = |name: &str| {
        room_uri(store.as_ref(), name)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let data = format!(
        r#"<chanid key="0" domain="example.test" value="{}"/><chanid key="1" domain="example.test" value="{}"/><chanid key="2" domain="example.test" value="{}"/>"#,
        value("Lobby"),
        value("Secret"),
        value("Stage")
    );
    let reply = carol.command("bjoin", &data).await;
    assert_eq!(code(&reply), "200");
    assert_eq!(names(&reply), ["Lobby", "Stage"]);
    let failed: Vec<_> = reply
        .child("data")
        .unwrap()
        .children
        .iter()
        .filter(|c| c.name == "fib")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attr("value"), Some(value("Secret").as_str()));
    server.stop().await;
}

#[tokio::test]
async fn server_info_invitations_associations_and_preferences() {
    let server = start().await;
    let mut bob = Chat::connect(&server, "bob").await;
    let info = bob
        .command(
            "getserverinfo",
            r#"<sib domain="example.test" infoType="123"/>"#,
        )
        .await;
    let sib = info.child("data").unwrap().child("sib").unwrap().clone();
    for attr in [
        "serverTime",
        "searchLimit",
        "messageSizeLimit",
        "storySizeLimit",
        "rootUri",
        "dbVersion",
    ] {
        assert!(sib.attr(attr).is_some(), "{attr}");
    }
    assert_eq!(sib.attr("searchLimit"), Some("999"));

    // bob was added to Stage at creation (invitations on): one invitation.
    let invitations = bob
        .command("getinv", r#"<inv inviteId="0" domain="example.test"/>"#)
        .await;
    let inv: Vec<_> = invitations.child("data").unwrap().children.clone();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].child("chanib").unwrap().attr("name"), Some("Stage"));
    let last = inv[0].attr("inviteId").unwrap().to_owned();
    let none = bob
        .command(
            "getinv",
            &format!(r#"<inv inviteId="{last}" domain="example.test"/>"#),
        )
        .await;
    assert!(none.child("data").unwrap().children.is_empty());

    assert_eq!(names(&bob.command("getassoc", "").await), ["Stage"]);
    assert_eq!(
        names(
            &bob.command("getassociations", r#"<assoc role="manager"/>"#)
                .await
        ),
        ["Stage"]
    );

    let set = bob
        .command(
            "setpref",
            r#"<pref label="kedzie.GroupChannels" content="YWJj"/>"#,
        )
        .await;
    assert_eq!(
        set.child("data")
            .unwrap()
            .child("pref")
            .unwrap()
            .attr("seqid"),
        Some("1")
    );
    let got = bob
        .command(
            "getpref",
            r#"<pref label="kedzie.GroupChannels" seqid="0" createdefault="true"/>"#,
        )
        .await;
    assert_eq!(
        got.child("data")
            .unwrap()
            .child("pref")
            .unwrap()
            .attr("content"),
        Some("YWJj")
    );
    let current = bob
        .command(
            "getpref",
            r#"<pref label="kedzie.GroupChannels" seqid="1"/>"#,
        )
        .await;
    assert_eq!(
        current
            .child("data")
            .unwrap()
            .child("pref")
            .unwrap()
            .attr("content"),
        None
    );
    assert_eq!(code(&bob.command("setpref", "").await), "400");
    server.stop().await;
}

/// One user can make perch keep only so much in preferences; an administrator sees them
/// and can clear them (`perch admin user prefs`).
#[tokio::test]
async fn preferences_are_bounded_and_administered() {
    use perch::core::hub::PREFERENCE_QUOTA;
    let server = start().await;
    let mut bob = Chat::connect(&server, "bob").await;
    let content = "A".repeat(1000);
    let set = |n: usize| format!(r#"<pref label="label.{n}" content="{content}"/>"#);
    for n in 0..PREFERENCE_QUOTA.labels {
        assert_eq!(
            code(&bob.command("setpref", &set(n)).await),
            "200",
            "label {n}"
        );
    }
    let refused = bob.command("setpref", &set(PREFERENCE_QUOTA.labels)).await;
    assert_eq!(code(&refused), "403");

    let admin = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_perch"))
            .args(["admin", "--data"])
            .arg(&server.data_dir)
            .args(["user", "prefs", "bob@example.test"])
            .args(args)
            .env("PERCH_DOMAIN", DOMAIN)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let listing = admin(&[]);
    assert_eq!(listing.lines().count(), PREFERENCE_QUOTA.labels);
    assert!(
        listing.lines().any(|l| l == "label.0\t1\t1007"),
        "{listing}"
    );
    assert_eq!(
        admin(&["--clear"]),
        format!(
            "removed {} preferences of sip:bob@example.test\n",
            PREFERENCE_QUOTA.labels
        )
    );
    assert_eq!(admin(&[]), "");
    assert_eq!(code(&bob.command("setpref", &set(99)).await), "200");
    server.stop().await;
}

#[tokio::test]
async fn disabling_a_room_disconnects_its_occupants() {
    let server = start().await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    alice.join(&lobby).await;
    let mut bob = Chat::connect(&server, "bob").await;
    bob.join(&lobby).await;
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || {
        save_room(
            store.as_ref(),
            Some("Lobby"),
            RoomChange {
                disabled: Some(true),
                ..RoomChange::default()
            },
        );
    })
    .await
    .unwrap();
    // Within the refresh interval each occupant is told what makes SIPE drop the room:
    // an unprompted rpl:part 200 naming it (ntc:part is only a roster update to SIPE).
    for occupant in [&mut alice, &mut bob] {
        let removed = occupant.expect("rpl:part").await;
        assert_eq!(code(&removed), "200");
        let chanib = removed.child("data").unwrap().child("chanib").unwrap();
        assert_eq!(chanib.attr("uri"), Some(lobby.as_str()));
    }
    assert_eq!(alice.post(&lobby, "still here?").await, 403);
    assert_eq!(code(&alice.join(&lobby).await), "403");
    let all = alice
        .command(
            "chansrch",
            r#"<qib qtype="BYNAME" criteria="" extended="false"/>"#,
        )
        .await;
    assert!(!names(&all).contains(&"Lobby".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn users_without_persistent_chat_are_refused_and_dropped() {
    let server = TestServer::start_seeded(trusted, |store| {
        seed(store);
        wait(store.set_policy(
            perch::core::model::PolicyScope::User("carol@example.test".into()),
            Some(false),
        ))
        .unwrap();
    })
    .await;
    let mut carol = Chat::connect(&server, "carol").await;
    carol.envid += 1;
    let body = r#"<xccos ver="1" envid="5" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:chansrch" seqid="1"><data><qib qtype="BYNAME" criteria=""/></data></cmd></xccos>"#;
    assert_eq!(carol.info(body).await, 200);
    assert_eq!(code(&carol.expect("rpl:chansrch").await), "403");
    carol.expect("BYE").await;
    server.stop().await;
}

#[tokio::test]
async fn roster_updates_stop_above_the_participant_limit() {
    let server = TestServer::start_seeded(trusted, |store| {
        seed(store);
        wait(store.set_setting("ParticipantUpdateLimit", 1)).unwrap();
    })
    .await;
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let mut alice = Chat::connect(&server, "alice").await;
    let mut bob = Chat::connect(&server, "bob").await;
    let roster = |reply: &Element| -> Vec<String> {
        let data = reply.child("data").unwrap();
        let uibs = data.children.iter().filter(|c| c.name == "uib");
        uibs.map(|u| u.attr("uri").unwrap().to_owned()).collect()
    };
    let first = alice.join(&lobby).await;
    assert_eq!(roster(&first), ["sip:alice@example.test"]);
    // Two participants are above the limit of one: bob hears of nobody, nobody of bob.
    let second = bob.join(&lobby).await;
    assert_eq!(roster(&second), ["sip:bob@example.test"]);
    assert!(alice.none_of("ntc:join").await);
    server.stop().await;
}

#[tokio::test]
async fn bjoin_is_capped() {
    let server = TestServer::start_seeded(
        |config| {
            trusted(config);
            config.limits.max_rooms_per_bjoin = 1;
        },
        seed,
    )
    .await;
    let store = server.store.clone();
    let value = |name: &str| {
        room_uri(store.as_ref(), name)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let mut bob = Chat::connect(&server, "bob").await;
    let data = format!(
        r#"<chanid key="0" domain="example.test" value="{}"/><chanid key="1" domain="example.test" value="{}"/>"#,
        value("Lobby"),
        value("Stage")
    );
    let reply = bob.command("bjoin", &data).await;
    assert_eq!(names(&reply), ["Lobby"]);
    let failed: Vec<_> = reply
        .child("data")
        .unwrap()
        .children
        .iter()
        .filter(|c| c.name == "fib")
        .collect();
    assert_eq!(failed[0].attr("value"), Some(value("Stage").as_str()));
    server.stop().await;
}
