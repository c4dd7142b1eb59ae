//! Issue #5: a secret room leaks nothing to a user who is in its category's scope but is
//! neither a member nor a manager. In `seed`, carol is that outsider, alice a member and bob
//! a manager of the room "Secret". Every surface a client can touch is asked about the
//! secret room and about a room that does not exist: the outsider's answers must be the
//! same bytes once the ids that differ by construction are normalised, and must never name
//! the room.

use perch::core::manage::{ListEdit, RoomChange};
use perch::core::model::Privacy;
use perch::core::ports::{Store, wait};
use perch::lync::sip::{Message, StartLine};
use perch::lync::xccos::xml::{Element, parse};

use crate::chat::{self, Chat, code, names, p, room_uri, save_room, texts};
use crate::support::*;

/// A word only the secret room's messages contain.
const SECRET_WORD: &str = "quokka";

/// Rooms of `chat::seed` in name order; `Secret` is the secret one.
const ALL_ROOMS: [&str; 5] = ["Closed", "Flash", "Lobby", "Secret", "Stage"];
const OUTSIDER_ROOMS: [&str; 4] = ["Closed", "Flash", "Lobby", "Stage"];

/// `chat::seed`, plus bob as a manager (not a member) of Secret, and history: two posts
/// in Secret carrying `SECRET_WORD` and one ordinary post in Lobby.
fn seed(store: &dyn Store) {
    chat::seed(store);
    save_room(
        store,
        Some("Secret"),
        RoomChange {
            managers: vec![ListEdit::Add(vec![p("sip:bob@example.test")])],
            ..RoomChange::default()
        },
    );
    let snapshot = chat::snapshot(store);
    let id = |name: &str| snapshot.room_by_name(name).unwrap().id;
    for (room, text) in [
        ("Secret", "the quokka plan"),
        ("Secret", "another quokka sighting"),
        ("Lobby", "ordinary lobby chatter"),
    ] {
        let ts = perch::core::ids::now_ticks();
        wait(post_message(
            store,
            id(room),
            "alice@example.test",
            ts,
            text,
        ))
        .unwrap();
    }
}

/// Where every test starts: `(server, secret, lobby, missing, alice, carol)`. The seeded
/// server, the secret room (alice is a member, carol is not), Lobby's URI, the URI of a
/// room that does not exist, and alice and carol signed in.
async fn scene() -> (TestServer, Hidden, String, String, Chat, Chat) {
    let server = TestServer::start_seeded(chat::trusted, seed).await;
    let secret = Hidden::of(&server, "Secret");
    let lobby = room_uri(server.store.as_ref(), "Lobby");
    let alice = Chat::connect(&server, "alice").await;
    let carol = Chat::connect(&server, "carol").await;
    (server, secret, lobby, missing_uri(), alice, carol)
}

/// What an outsider must never be told: a room's id, name and description.
struct Hidden {
    uri: String,
    uid: String,
    name: String,
    description: String,
}

impl Hidden {
    fn of(server: &TestServer, name: &str) -> Self {
        let snapshot = chat::snapshot(server.store.as_ref());
        let room = snapshot.room_by_name(name).unwrap();
        Self {
            uri: room_uri(server.store.as_ref(), name),
            uid: room.uid.clone(),
            name: room.name.clone(),
            description: room.description.clone(),
        }
    }

    /// Fails if `text` (anything the server sent) mentions the room.
    fn assert_absent(&self, text: &str, context: &str) {
        assert!(
            !text.contains(&self.uid),
            "{context}: the id leaked in {text}"
        );
        self.assert_unnamed(text, context);
    }

    /// Fails if `text` names or describes the room (where echoing its id is expected).
    fn assert_unnamed(&self, text: &str, context: &str) {
        for needle in [&self.name, &self.description] {
            assert!(
                !text.to_lowercase().contains(&needle.to_lowercase()),
                "{context}: {needle:?} leaked in {text}"
            );
        }
    }
}

/// The URI of a room that does not exist.
fn missing_uri() -> String {
    perch::lync::xccos::uri::room_uri(DOMAIN, &perch::core::ids::new_room_uid())
}

fn uid_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

/// `text` with what differs by construction made equal: the values of `attributes`
/// (envelope ids, clocks) and each of `ids`.
fn normalise(text: &str, attributes: &[&str], ids: &[&str]) -> String {
    let mut out = text.to_owned();
    for id in ids {
        out = out.replace(id, "ID");
    }
    for attribute in attributes {
        let marker = format!(r#"{attribute}=""#);
        let mut rest = out.as_str();
        let mut done = String::new();
        while let Some(start) = rest.find(&marker) {
            let value = start + marker.len();
            let end = value + rest[value..].find('"').unwrap();
            done.push_str(&rest[..value]);
            done.push('#');
            rest = &rest[end..];
        }
        done.push_str(rest);
        out = done;
    }
    out
}

/// An XCCOS reply as sent, with its envelope ids (ours and the server's) normalised.
fn comparable(raw: &str, ids: &[&str]) -> String {
    normalise(raw, &["envid"], ids)
}

/// Sends a command and returns its reply exactly as the server sent it, and parsed.
/// Other server INFOs that arrive meanwhile are kept in the inbox.
async fn raw_command(chat: &mut Chat, name: &str, data: &str) -> (String, Element) {
    chat.envid += 1;
    let body = format!(
        r#"<xccos ver="1" envid="{}" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:{name}" seqid="1"><data>{data}</data></cmd></xccos>"#,
        chat.envid
    );
    let request = chat.info_request(&body);
    chat.client.send(&request).await;
    let wanted = format!(r#"id="rpl:{name}""#);
    let (mut answered, mut raw) = (false, None);
    while !answered || raw.is_none() {
        let m = chat.client.message().await;
        match m.start {
            StartLine::Response { .. } => {
                assert_eq!(status(&m), 200, "INFO for cmd:{name}");
                answered = true;
            }
            StartLine::Request { .. } if body_text(&m).contains(&wanted) => {
                chat.client.send(&answer(&m, 200)).await;
                raw = Some(body_text(&m));
            }
            StartLine::Request { .. } => chat.keep(&m).await,
        }
    }
    let raw = raw.unwrap();
    let root = parse(raw.as_bytes(), &Default::default()).unwrap();
    let reply = root.children.into_iter().next().unwrap();
    (raw, reply)
}

/// Everything the server sent `chat` unasked so far, serialised; a round trip first, so
/// whatever was queued for it before this call has arrived.
async fn unasked(chat: &mut Chat) -> Vec<String> {
    chat.command(
        "getserverinfo",
        r#"<sib domain="example.test" infoType="123"/>"#,
    )
    .await;
    chat.inbox.drain(..).map(|e| e.to_xml()).collect()
}

async fn story_limit(chat: &mut Chat) -> u32 {
    let info = chat
        .command(
            "getserverinfo",
            r#"<sib domain="example.test" infoType="123"/>"#,
        )
        .await;
    let sib = info.child("data").unwrap().child("sib").unwrap();
    sib.attr("storySizeLimit").unwrap().parse().unwrap()
}

/// Runs an administrative change, then waits until the server serves it: a StorySizeLimit
/// bump stored after the change shows in `watcher`'s getserverinfo once the new snapshot
/// (which holds both) is loaded.
async fn administer(
    server: &TestServer,
    watcher: &mut Chat,
    change: impl FnOnce(&dyn Store) + Send + 'static,
) {
    let marker = story_limit(watcher).await + 1;
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || {
        change(store.as_ref());
        wait(store.set_setting("StorySizeLimit", marker)).unwrap();
    })
    .await
    .unwrap();
    for _ in 0..50 {
        if story_limit(watcher).await == marker {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not load the administrative change");
}

fn chanid(uri: &str) -> String {
    format!(
        r#"<chanid key="0" domain="example.test" value="{}"/>"#,
        uid_of(uri)
    )
}

/// `chanib/@name` of each `inv` in a getinv reply.
fn invited(reply: &Element) -> Vec<String> {
    reply
        .child("data")
        .unwrap()
        .children
        .iter()
        .map(|inv| {
            let chanib = inv.child("chanib").unwrap();
            chanib.attr("name").unwrap().to_owned()
        })
        .collect()
}

/// A SIP response with its transaction number normalised, to compare two answers.
fn sip_shape(response: &Message) -> String {
    String::from_utf8(response.encode().to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            if line.starts_with("CSeq:") {
                "CSeq: #"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn search_never_finds_the_secret_room() {
    let (server, secret, lobby, _, mut alice, mut carol) = scene().await;
    let mut bob = Chat::connect(&server, "bob").await;
    // Occupants, so user counts are not all zero.
    assert_eq!(code(&alice.join(&secret.uri).await), "200");
    assert_eq!(code(&alice.join(&lobby).await), "200");

    let qib = |criteria: &str, extended: bool| {
        format!(r#"<qib qtype="BYNAME" criteria="{criteria}" extended="{extended}"/>"#)
    };
    let none: &[&str] = &[];
    let forms: Vec<(&str, String, &[&str])> = vec![
        ("empty criteria", qib("", false), &ALL_ROOMS[..]),
        ("blank criteria", qib("   ", true), &ALL_ROOMS),
        ("no criteria", r#"<qib qtype="BYNAME"/>"#.into(), &ALL_ROOMS),
        ("no query", String::new(), &ALL_ROOMS),
        (
            "another qtype",
            r#"<qib qtype="BYDESCRIPTION" criteria="" extended="true"/>"#.into(),
            &ALL_ROOMS,
        ),
        ("name", qib("Secret", false), &["Secret"]),
        ("name prefix, other case", qib("sECR", false), &["Secret"]),
        ("name fragment", qib("ecre", true), &["Secret"]),
        (
            "description keyword",
            qib("about secret", true),
            &["Secret"],
        ),
        (
            "description, not extended",
            qib("about secret", false),
            none,
        ),
        ("word every description has", qib("about", true), &ALL_ROOMS),
        ("wildcard", qib("*", true), none),
        ("SQL wildcard", qib("%", true), none),
        ("the room's id", qib(&secret.uid, true), none),
    ];
    for (form, data, expected) in &forms {
        let (_, member) = raw_command(&mut alice, "chansrch", data).await;
        let (_, manager) = raw_command(&mut bob, "chansrch", data).await;
        let (raw, outsider) = raw_command(&mut carol, "chansrch", data).await;
        assert_eq!(code(&member), "200", "{form}");
        assert_eq!(names(&member), *expected, "{form}: member");
        assert_eq!(names(&manager), *expected, "{form}: manager");
        let without: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|n| *n != "Secret")
            .collect();
        assert_eq!(names(&outsider), without, "{form}: outsider");
        secret.assert_absent(&raw, form);
        // The outsider's answer is the member's without the secret room's entry: same
        // code, and the same counts and flags for every other room.
        let mut trimmed = member.clone();
        let data = trimmed
            .children
            .iter_mut()
            .find(|c| c.name == "data")
            .unwrap();
        data.children.retain(|c| c.attr("name") != Some("Secret"));
        assert_eq!(chat::shape(&outsider), chat::shape(&trimmed), "{form}");
    }

    // With the SearchLimit at four, the outsider still gets four rooms: the cap counts
    // only rooms she may see, so a short answer cannot betray a hidden one.
    administer(&server, &mut carol, |store| {
        wait(store.set_setting("SearchLimit", 4)).unwrap();
    })
    .await;
    let all = qib("", false);
    assert_eq!(
        names(&alice.command("chansrch", &all).await),
        ["Closed", "Flash", "Lobby", "Secret"]
    );
    assert_eq!(
        names(&carol.command("chansrch", &all).await),
        OUTSIDER_ROOMS
    );
    server.stop().await;
}

#[tokio::test]
async fn join_and_bjoin_answer_as_for_a_missing_room() {
    let (server, secret, lobby, missing, mut alice, mut carol) = scene().await;
    assert_eq!(code(&alice.join(&secret.uri).await), "200");

    let (raw_secret, reply) = raw_command(&mut carol, "join", &chanid(&secret.uri)).await;
    let (raw_missing, _) = raw_command(&mut carol, "join", &chanid(&missing)).await;
    assert_eq!(code(&reply), "404");
    assert_eq!(
        comparable(&raw_secret, &[&secret.uid]),
        comparable(&raw_missing, &[uid_of(&missing)])
    );
    secret.assert_absent(&raw_secret, "rpl:join");

    // bjoin: alone, and next to a room that works.
    for others in [vec![], vec![lobby.clone()]] {
        let batch = |target: &str| -> String {
            let mut uris = others.clone();
            uris.push(target.to_owned());
            uris.iter().map(|u| chanid(u)).collect()
        };
        let (raw_secret, reply) = raw_command(&mut carol, "bjoin", &batch(&secret.uri)).await;
        let (raw_missing, _) = raw_command(&mut carol, "bjoin", &batch(&missing)).await;
        assert_eq!(code(&reply), "200");
        let data = reply.child("data").unwrap();
        let failed: Vec<_> = data.children.iter().filter(|c| c.name == "fib").collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].attr("key"), Some("OPERATION_FAILED"));
        assert_eq!(
            comparable(&raw_secret, &[&secret.uid]),
            comparable(&raw_missing, &[uid_of(&missing)]),
            "bjoin next to {others:?}"
        );
        // Only the id the client sent comes back, never the name or description.
        secret.assert_unnamed(&raw_secret, "rpl:bjoin");
    }

    // The member, for contrast, is let in by both forms.
    let batch = [chanid(&lobby), chanid(&secret.uri)].concat();
    assert_eq!(
        names(&alice.command("bjoin", &batch).await),
        ["Lobby", "Secret"]
    );
    // And hears nothing of carol's attempts on her room.
    let heard = unasked(&mut alice).await;
    assert!(
        heard.iter().all(|n| !n.contains("carol")),
        "the member was told of the outsider: {heard:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn history_answers_as_for_a_missing_room_and_search_stays_in_its_room() {
    let (server, secret, lobby, missing, mut alice, mut carol) = scene().await;

    let seen = alice.history(&secret.uri, r#"<last cnt="10"/>"#).await;
    assert_eq!(texts(&seen), ["the quokka plan", "another quokka sighting"]);
    let newest: i64 = seen[1].attr("msgid").unwrap().parse().unwrap();

    let forms = [
        String::new(),
        r#"<last cnt="5"/>"#.to_owned(),
        format!(r#"<before msgid="{}" cnt="5"/>"#, newest + 1),
        r#"<after msgid="0" cnt="5"/>"#.to_owned(),
        format!("<search>{SECRET_WORD}</search>"),
        r#"<search cnt="5">quokka plan</search>"#.to_owned(),
    ];
    for bcq in &forms {
        let ask = |uri: &str| format!(r#"<chanib uri="{uri}"/><bcq>{bcq}</bcq>"#);
        let (raw_secret, reply) = raw_command(&mut carol, "bccontext", &ask(&secret.uri)).await;
        let (raw_missing, _) = raw_command(&mut carol, "bccontext", &ask(&missing)).await;
        assert_eq!(code(&reply), "404", "{bcq}");
        assert_eq!(
            comparable(&raw_secret, &[&secret.uid]),
            comparable(&raw_missing, &[uid_of(&missing)]),
            "{bcq}"
        );
        secret.assert_absent(&raw_secret, bcq);
        // The member reads the same form.
        let (_, member) = raw_command(&mut alice, "bccontext", &ask(&secret.uri)).await;
        assert_eq!(code(&member), "200", "{bcq}");
    }
    // Without a room, and with a bcq perch refuses: the same for both rooms too.
    let (raw_none, none) = raw_command(&mut carol, "bccontext", "<bcq><last/></bcq>").await;
    assert_eq!(code(&none), "404");
    let (raw_missing, _) = raw_command(
        &mut carol,
        "bccontext",
        &format!(r#"<chanib uri="{missing}"/><bcq><last/></bcq>"#),
    )
    .await;
    assert_eq!(comparable(&raw_none, &[]), comparable(&raw_missing, &[]));
    let bad = |uri: &str| format!(r#"<chanib uri="{uri}"/><bcq><last cnt="x"/></bcq>"#);
    let (raw_secret, reply) = raw_command(&mut carol, "bccontext", &bad(&secret.uri)).await;
    let (raw_missing, _) = raw_command(&mut carol, "bccontext", &bad(&missing)).await;
    assert_eq!(code(&reply), "400");
    assert_eq!(
        comparable(&raw_secret, &[&secret.uid]),
        comparable(&raw_missing, &[uid_of(&missing)])
    );

    // Content search is per room: searching a room the outsider may read finds its own
    // messages and none of the secret room's, for her as for the member.
    let search = format!("<search>{SECRET_WORD}</search>");
    assert!(carol.history(&lobby, &search).await.is_empty());
    assert!(alice.history(&lobby, &search).await.is_empty());
    assert_eq!(
        texts(&carol.history(&lobby, "<search>chatter</search>").await),
        ["ordinary lobby chatter"]
    );
    assert_eq!(
        texts(&alice.history(&secret.uri, &search).await),
        ["the quokka plan", "another quokka sighting"]
    );
    server.stop().await;
}

#[tokio::test]
async fn rosters_and_posts_in_the_secret_room_never_reach_the_outsider() {
    let (server, secret, lobby, _, mut alice, mut carol) = scene().await;
    let mut bob = Chat::connect(&server, "bob").await;
    assert_eq!(code(&alice.join(&secret.uri).await), "200");
    assert_eq!(code(&alice.join(&lobby).await), "200");

    // The outsider joins a room shared with a secret-room member: the roster is Lobby's.
    let (raw, joined) = raw_command(&mut carol, "join", &chanid(&lobby)).await;
    assert_eq!(code(&joined), "200");
    secret.assert_absent(&raw, "rpl:join of Lobby");
    let data = joined.child("data").unwrap();
    let uibs: Vec<_> = data
        .children
        .iter()
        .filter(|c| c.name == "uib")
        .map(|u| u.attr("uri").unwrap())
        .collect();
    assert_eq!(uibs, ["sip:alice@example.test", "sip:carol@example.test"]);
    alice.expect("ntc:join").await;

    // Life in the secret room: the manager joins, a post, the manager leaves, rejoins and
    // hangs up.
    assert_eq!(code(&bob.join(&secret.uri).await), "200");
    let notice = alice.expect("ntc:join").await.to_xml();
    assert!(notice.contains(&secret.uid), "{notice}");
    assert_eq!(alice.post(&secret.uri, "quokka business").await, 200);
    for member in [&mut alice, &mut bob] {
        let post = member.expect("grpchat").await;
        assert_eq!(post.attr("chanUri"), Some(secret.uri.as_str()));
    }
    let parted = bob
        .command("part", &format!(r#"<chanib uri="{}"/>"#, secret.uri))
        .await;
    assert_eq!(code(&parted), "200");
    alice.expect("ntc:part").await;
    assert_eq!(code(&bob.join(&secret.uri).await), "200");
    alice.expect("ntc:join").await;
    drop(bob);
    alice.expect("ntc:part").await;

    assert_eq!(unasked(&mut carol).await, Vec::<String>::new());

    // The channel to carol works: a post in the room she shares with alice arrives.
    assert_eq!(alice.post(&lobby, "hello lobby").await, 200);
    let post = carol.expect("grpchat").await;
    assert_eq!(post.attr("chanUri"), Some(lobby.as_str()));
    secret.assert_absent(&post.to_xml(), "Lobby post");
    server.stop().await;
}

#[tokio::test]
async fn invitations_to_the_secret_room_reach_only_its_members() {
    let (server, secret, _, _, mut alice, mut carol) = scene().await;
    let mut bob = Chat::connect(&server, "bob").await;
    let getinv = r#"<inv inviteId="0" domain="example.test"/>"#;

    // Members named when a room is created are invited, the secret room included; a
    // manager who is not a member is not.
    assert_eq!(
        invited(&alice.command("getinv", getinv).await),
        ["Closed", "Secret", "Stage"]
    );
    assert_eq!(invited(&bob.command("getinv", getinv).await), ["Stage"]);
    let (raw, reply) = raw_command(&mut carol, "getinv", getinv).await;
    assert_eq!(code(&reply), "200");
    assert_eq!(invited(&reply), Vec::<String>::new());
    secret.assert_absent(&raw, "rpl:getinv");

    // carol added as a member: invited. Removed again: her stored invitation no longer
    // shows, from the start or from just before it.
    administer(&server, &mut carol, |store| {
        let add = vec![ListEdit::Add(vec![p("sip:carol@example.test")])];
        let change = RoomChange {
            members: add,
            ..RoomChange::default()
        };
        save_room(store, Some("Secret"), change);
    })
    .await;
    let reply = carol.command("getinv", getinv).await;
    assert_eq!(invited(&reply), ["Secret"]);
    let id: i64 = reply.child("data").unwrap().children[0]
        .attr("inviteId")
        .unwrap()
        .parse()
        .unwrap();
    administer(&server, &mut carol, |store| {
        let remove = vec![ListEdit::Remove(vec![p("sip:carol@example.test")])];
        let change = RoomChange {
            members: remove,
            ..RoomChange::default()
        };
        save_room(store, Some("Secret"), change);
    })
    .await;
    for after in [0, id - 1] {
        let ask = format!(r#"<inv inviteId="{after}" domain="example.test"/>"#);
        let (raw, reply) = raw_command(&mut carol, "getinv", &ask).await;
        assert_eq!(invited(&reply), Vec::<String>::new(), "after {after}");
        secret.assert_absent(&raw, "rpl:getinv");
    }
    server.stop().await;
}

#[tokio::test]
async fn associations_never_list_the_secret_room() {
    let (server, secret, _, _, mut alice, mut carol) = scene().await;
    let mut bob = Chat::connect(&server, "bob").await;
    let forms = [
        ("getassoc", ""),
        ("getassociations", ""),
        ("getassociations", r#"<assoc role="member"/>"#),
        ("getassociations", r#"<assoc role="manager"/>"#),
    ];
    for (command, data) in forms {
        let managed = data.contains("manager");
        let member = names(&alice.command(command, data).await);
        let manager = names(&bob.command(command, data).await);
        let (raw, outsider) = raw_command(&mut carol, command, data).await;
        let context = format!("{command} {data}");
        assert_eq!(
            member,
            if managed {
                vec![]
            } else {
                vec!["Closed", "Secret", "Stage"]
            },
            "{context}"
        );
        assert_eq!(manager, ["Secret", "Stage"], "{context}");
        assert_eq!(code(&outsider), "200", "{context}");
        assert_eq!(names(&outsider), Vec::<String>::new(), "{context}");
        secret.assert_absent(&raw, &context);
    }
    server.stop().await;
}

#[tokio::test]
async fn server_info_is_the_same_whoever_asks() {
    let (server, secret, _, _, mut alice, mut carol) = scene().await;
    let mut erin = Chat::connect(&server, "erin").await;
    assert_eq!(code(&alice.join(&secret.uri).await), "200");
    let data = r#"<sib domain="example.test" infoType="123"/>"#;
    let same = |raw: &str| normalise(raw, &["envid", "serverTime"], &[]);
    let (member, reply) = raw_command(&mut alice, "getserverinfo", data).await;
    assert_eq!(code(&reply), "200");
    let (outsider, _) = raw_command(&mut carol, "getserverinfo", data).await;
    let (denied, _) = raw_command(&mut erin, "getserverinfo", data).await;
    assert_eq!(same(&outsider), same(&member));
    assert_eq!(same(&denied), same(&member));
    secret.assert_absent(&outsider, "rpl:getserverinfo");
    server.stop().await;
}

#[tokio::test]
async fn posting_to_the_secret_room_answers_as_for_a_missing_room() {
    let (server, secret, _, missing, mut alice, mut carol) = scene().await;
    assert_eq!(code(&alice.join(&secret.uri).await), "200");

    for attempt in ["before trying to join", "after trying to join"] {
        let body = carol.post_body(&secret.uri, "let me in");
        let to_secret = carol.info_response(&body).await;
        let body = carol.post_body(&missing, "let me in");
        let to_missing = carol.info_response(&body).await;
        assert_eq!(status(&to_secret), 404, "{attempt}");
        assert_eq!(sip_shape(&to_secret), sip_shape(&to_missing), "{attempt}");
        secret.assert_absent(&sip_shape(&to_secret), attempt);
        assert_eq!(code(&carol.join(&secret.uri).await), "404");
    }
    // Nothing reached the member, and no XCCOS answer reached the outsider.
    assert_eq!(unasked(&mut alice).await, Vec::<String>::new());
    assert_eq!(unasked(&mut carol).await, Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn part_answers_as_for_a_missing_room() {
    let (server, secret, _, missing, mut alice, mut carol) = scene().await;
    assert_eq!(code(&alice.join(&secret.uri).await), "200");
    let part = |uri: &str| format!(r#"<chanib uri="{uri}"/>"#);
    let (raw_secret, reply) = raw_command(&mut carol, "part", &part(&secret.uri)).await;
    let (raw_missing, _) = raw_command(&mut carol, "part", &part(&missing)).await;
    assert_eq!(code(&reply), "404");
    assert_eq!(
        comparable(&raw_secret, &[&secret.uid]),
        comparable(&raw_missing, &[uid_of(&missing)])
    );
    secret.assert_absent(&raw_secret, "rpl:part");
    // The member leaves as usual.
    let (_, left) = raw_command(&mut alice, "part", &part(&secret.uri)).await;
    assert_eq!(code(&left), "200");
    assert_eq!(unasked(&mut carol).await, Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn a_room_made_secret_parts_the_outsider_and_then_hides() {
    let (server, _, lobby, missing, mut alice, mut carol) = scene().await;
    assert_eq!(code(&alice.join(&lobby).await), "200");
    assert_eq!(code(&carol.join(&lobby).await), "200");
    alice.expect("ntc:join").await;

    administer(&server, &mut alice, |store| {
        let change = RoomChange {
            privacy: Some(Privacy::Secret),
            members: vec![ListEdit::Add(vec![p("sip:alice@example.test")])],
            ..RoomChange::default()
        };
        save_room(store, Some("Lobby"), change);
    })
    .await;
    // carol gets what makes her client leave the room (rpl:part 200 naming it), alice
    // the roster update that carol left.
    let removed = carol.expect("rpl:part").await;
    assert_eq!(code(&removed), "200");
    let chanib = removed.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(chanib.attr("uri"), Some(lobby.as_str()));
    let notice = alice.expect("ntc:part").await;
    let chanib = notice.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(chanib.attr("uri"), Some(lobby.as_str()));
    let uib = chanib.child("uib").unwrap();
    assert_eq!(uib.attr("uri"), Some("sip:carol@example.test"));
    let hidden = Hidden::of(&server, "Lobby");
    assert_eq!(unasked(&mut carol).await, Vec::<String>::new());

    // From now on the room is one that does not exist, on every surface.
    let all = r#"<qib qtype="BYNAME" criteria="" extended="true"/>"#;
    let (raw, found) = raw_command(&mut carol, "chansrch", all).await;
    assert_eq!(names(&found), ["Closed", "Flash", "Stage"]);
    hidden.assert_absent(&raw, "chansrch");
    type Data = fn(&str) -> String;
    let surfaces: [(&str, Data); 3] = [
        ("join", |uri| chanid(uri)),
        ("bccontext", |uri| {
            format!(r#"<chanib uri="{uri}"/><bcq><last cnt="5"/></bcq>"#)
        }),
        ("part", |uri| format!(r#"<chanib uri="{uri}"/>"#)),
    ];
    for (command, data) in surfaces {
        let (raw_hidden, reply) = raw_command(&mut carol, command, &data(&lobby)).await;
        let (raw_missing, _) = raw_command(&mut carol, command, &data(&missing)).await;
        assert_eq!(code(&reply), "404", "{command}");
        assert_eq!(
            comparable(&raw_hidden, &[&hidden.uid]),
            comparable(&raw_missing, &[uid_of(&missing)]),
            "{command}"
        );
        hidden.assert_absent(&raw_hidden, command);
    }
    let body = carol.post_body(&lobby, "still here?");
    let to_hidden = carol.info_response(&body).await;
    let body = carol.post_body(&missing, "still here?");
    let to_missing = carol.info_response(&body).await;
    assert_eq!(status(&to_hidden), 404);
    assert_eq!(sip_shape(&to_hidden), sip_shape(&to_missing));
    assert!(names(&carol.command("getassoc", "").await).is_empty());

    // The member stays, and what happens there no longer reaches carol.
    assert_eq!(alice.post(&lobby, "just us now").await, 200);
    alice.expect("grpchat").await;
    assert_eq!(unasked(&mut carol).await, Vec::<String>::new());
    server.stop().await;
}
