//! The room page over real HTTPS: sign-in with the chat password on the throttle SIP uses,
//! strict cookies, forged posts refused, and every change decided by `core::policy` as the
//! chat clients meet it (secret rooms stay invisible, non-managers are refused).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use perch::core::manage::{CategoryChange, ListEdit, RoomChange};
use perch::core::model::{Privacy, RoomType};
use perch::core::ports::Store;

use crate::chat::{p, save_category, save_room, seed, snapshot};
use crate::http::{Reply, exchange};
use crate::support::*;

/// A browser that keeps cookies and posts forms from the page's own origin.
struct Browser {
    addr: SocketAddr,
    cert: PathBuf,
    cookies: BTreeMap<String, String>,
    origin: String,
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        let addr = server.running().http_addr().unwrap();
        Browser {
            addr,
            cert: server.running().certificate().unwrap().cert.clone(),
            cookies: BTreeMap::new(),
            origin: format!("https://{addr}"),
        }
    }

    async fn send(&mut self, method: &str, path: &str, extra: &str, body: &str) -> Reply {
        let cookies: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}",
            self.addr
        );
        if !cookies.is_empty() {
            request.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let reply = exchange(self.addr, &self.cert, &request).await;
        for set in reply.headers("set-cookie") {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        reply
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, "", "").await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let extra = format!(
            "Origin: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n",
            self.origin
        );
        self.send("POST", path, &extra, &form_encode(fields)).await
    }

    /// Signs in through the form; the reply to the form post.
    async fn sign_in(&mut self, user: &str, password: &str) -> Reply {
        let form = self.get("/manage/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = csrf(&form.body);
        self.post(
            "/manage/sign-in",
            &[("csrf", &csrf), ("user", user), ("password", password)],
        )
        .await
    }
}

/// The page's anti-forgery token (the first form's hidden field).
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

fn location(reply: &Reply) -> String {
    reply
        .headers("location")
        .first()
        .copied()
        .unwrap_or_default()
        .to_owned()
}

fn uid(store: &dyn Store, name: &str) -> String {
    snapshot(store).room_by_name(name).unwrap().uid.clone()
}

/// chat's seed, plus: category Projects where alice creates rooms, room Ops in General that
/// alice manages with bob a member.
fn web_seed(store: &dyn Store) {
    seed(store);
    save_category(
        store,
        "Projects",
        CategoryChange {
            allowed: vec![ListEdit::Add(vec![p("domain:example.test")])],
            creators: vec![ListEdit::Add(vec![p("sip:alice@example.test")])],
            ..CategoryChange::default()
        },
    );
    save_room(
        store,
        None,
        RoomChange {
            name: Some("Ops".into()),
            category: Some("General".into()),
            privacy: Some(Privacy::Closed),
            kind: Some(RoomType::Normal),
            members: vec![ListEdit::Add(vec![p("sip:bob@example.test")])],
            managers: vec![ListEdit::Add(vec![p("sip:alice@example.test")])],
            ..RoomChange::default()
        },
    );
}

async fn start(adjust: impl FnOnce(&mut perch::app::config::Config)) -> TestServer {
    TestServer::start_seeded(
        |config| {
            config.http.listen = Some("127.0.0.1:0".parse().unwrap());
            adjust(config);
        },
        web_seed,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_signs_in_creates_a_room_and_adds_a_member() {
    let server = start(|_| {}).await;
    let mut alice = Browser::new(&server);

    let home = alice.get("/manage/").await;
    assert_eq!(
        (home.status, location(&home).as_str()),
        (303, "/manage/sign-in")
    );
    let form = alice.get("/manage/sign-in").await;
    let sign_in_cookie = form.headers("set-cookie").join("\n");
    for attribute in [
        "__Host-perch-sign-in=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(sign_in_cookie.contains(attribute), "{sign_in_cookie}");
    }
    for (header, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(form.headers(header), [value], "{}", form.head);
    }
    assert!(form.headers("content-security-policy")[0].contains("default-src 'none'"));

    let wrong = alice.sign_in("alice@example.test", "guess").await;
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.body.contains("wrong user name or password"),
        "{}",
        wrong.body
    );
    assert!(!alice.cookies.contains_key("__Host-perch-session"));

    let signed_in = alice.sign_in("sip:alice@example.test", "alice-pw").await;
    assert_eq!(
        (signed_in.status, location(&signed_in).as_str()),
        (303, "/manage/"),
        "{}",
        signed_in.body
    );
    let session_cookie = signed_in.headers("set-cookie").join("\n");
    for attribute in [
        "__Host-perch-session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }

    // The rooms alice manages, and the categories where she may create: only those.
    let home = alice.get("/manage/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains(">Ops</a>"), "{}", home.body);
    for hidden in [">Stage</a>", ">Secret</a>", ">Lobby</a>"] {
        assert!(
            !home.body.contains(hidden),
            "{hidden} listed:\n{}",
            home.body
        );
    }
    assert!(
        home.body.contains("<option>Projects</option>"),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains("<option>General</option>"),
        "{}",
        home.body
    );

    let token = csrf(&home.body);
    let created = alice
        .post(
            "/manage/rooms",
            &[
                ("csrf", &token),
                ("name", "Launch <plans>"),
                ("category", "Projects"),
                ("description", "Where we plan the launch"),
                ("privacy", "closed"),
                ("kind", "normal"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let launch = uid(server.store.as_ref(), "Launch <plans>");
    assert_eq!(location(&created), format!("/manage/rooms/{launch}"));
    let page = alice.get(&location(&created)).await;
    assert!(
        page.body.contains("Room Launch &#60;plans&#62; created"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<plans>"), "escaped everywhere");

    let mut fields: Vec<(&str, String)> = vec![
        ("csrf", csrf(&page.body)),
        ("name", "Launch <plans>".into()),
        ("description", "Where we plan the launch".into()),
        ("privacy", "closed".into()),
        ("kind", "normal".into()),
        ("invitations", "inherit".into()),
        ("members", "sip:bob@example.test\n".into()),
        ("managers", "sip:alice@example.test\n".into()),
        ("presenters", String::new()),
    ];
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = alice.post(&format!("/manage/rooms/{launch}"), &form).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let room = snapshot(server.store.as_ref())
        .room_by_name("Launch <plans>")
        .unwrap()
        .clone();
    assert_eq!(room.members, [p("sip:bob@example.test")]);
    assert_eq!(room.managers, [p("sip:alice@example.test")]);

    // A refusal from the model's rules comes back on the form, with what was typed.
    fields[8].1 = "sip:bob@example.test".into();
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = alice.post(&format!("/manage/rooms/{launch}"), &form).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("a normal room has no presenters"),
        "{}",
        refused.body
    );

    // Disable, then enable.
    let page = alice.get(&format!("/manage/rooms/{launch}")).await;
    let state = format!("/manage/rooms/{launch}/state");
    let token = csrf(&page.body);
    assert_eq!(
        alice
            .post(&state, &[("csrf", &token), ("disabled", "true")])
            .await
            .status,
        303
    );
    assert!(
        snapshot(server.store.as_ref())
            .room_by_uid(&launch)
            .unwrap()
            .disabled
    );
    assert_eq!(
        alice
            .post(&state, &[("csrf", &token), ("disabled", "false")])
            .await
            .status,
        303
    );
    assert!(
        !snapshot(server.store.as_ref())
            .room_by_uid(&launch)
            .unwrap()
            .disabled
    );

    // Signing out ends the session on the server, not only in the browser.
    let kept = alice.cookies.clone();
    let home = alice.get("/manage/").await;
    let out = alice
        .post("/manage/sign-out", &[("csrf", &csrf(&home.body))])
        .await;
    assert_eq!(
        (out.status, location(&out).as_str()),
        (303, "/manage/sign-in")
    );
    alice.cookies = kept;
    assert_eq!(alice.get("/manage/").await.status, 303);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_decides_what_a_user_sees_and_changes() {
    let server = start(|_| {}).await;
    let store = server.store.clone();
    let mut bob = Browser::new(&server);
    assert_eq!(bob.sign_in("bob@example.test", "bob-pw").await.status, 303);
    let home = bob.get("/manage/").await;
    // bob manages Stage only and creates nowhere.
    assert!(home.body.contains(">Stage</a>"), "{}", home.body);
    assert!(!home.body.contains(">Ops</a>"), "{}", home.body);
    assert!(!home.body.contains("Create a room"), "{}", home.body);

    // A room bob knows but does not manage: refused with the policy's reason.
    let ops = uid(store.as_ref(), "Ops");
    let refused = bob.get(&format!("/manage/rooms/{ops}")).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("only managers may manage this room"),
        "{}",
        refused.body
    );
    let token = csrf(&home.body);
    let posted = bob
        .post(
            &format!("/manage/rooms/{ops}/state"),
            &[("csrf", &token), ("disabled", "true")],
        )
        .await;
    assert_eq!(posted.status, 403);
    assert!(!snapshot(store.as_ref()).room_by_uid(&ops).unwrap().disabled);

    // A secret room bob may not know answers exactly like a uid that does not exist.
    let secret = uid(store.as_ref(), "Secret");
    let hidden = bob.get(&format!("/manage/rooms/{secret}")).await;
    let missing = bob.get("/manage/rooms/no-such-room").await;
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(
        hidden.body.replace(&secret, "UID"),
        missing.body.replace("no-such-room", "UID")
    );
    assert!(!hidden.body.contains("Secret"), "{}", hidden.body);

    // Creating where bob is no creator.
    let created = bob
        .post(
            "/manage/rooms",
            &[
                ("csrf", &token),
                ("name", "Bobs"),
                ("category", "Projects"),
                ("privacy", "open"),
                ("kind", "normal"),
            ],
        )
        .await;
    assert_eq!(created.status, 403, "{}", created.body);
    assert!(
        created.body.contains("creators may create rooms in it"),
        "{}",
        created.body
    );
    assert!(snapshot(store.as_ref()).room_by_name("Bobs").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_posts_are_refused() {
    let server = start(|_| {}).await;
    let store = server.store.clone();
    let mut alice = Browser::new(&server);

    // A sign-in form post without the form's own cookie (login forgery).
    let form = alice.get("/manage/sign-in").await;
    let token = csrf(&form.body);
    alice.cookies.clear();
    let forged = alice
        .post(
            "/manage/sign-in",
            &[
                ("csrf", &token),
                ("user", "alice@example.test"),
                ("password", "alice-pw"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(!alice.cookies.contains_key("__Host-perch-session"));

    assert_eq!(
        alice.sign_in("alice@example.test", "alice-pw").await.status,
        303
    );
    let home = alice.get("/manage/").await;
    let token = csrf(&home.body);
    let ops = uid(store.as_ref(), "Ops");
    let state = format!("/manage/rooms/{ops}/state");
    // No token, a wrong one, and the right one from another site.
    let wrong = "x".repeat(43);
    let own = alice.origin.clone();
    for (fields, origin) in [
        (vec![("disabled", "true")], own.clone()),
        (
            vec![("csrf", wrong.as_str()), ("disabled", "true")],
            own.clone(),
        ),
        (
            vec![("csrf", token.as_str()), ("disabled", "true")],
            "https://evil.example".to_owned(),
        ),
    ] {
        alice.origin = origin.clone();
        let reply = alice.post(&state, &fields).await;
        assert_eq!(
            reply.status, 403,
            "{fields:?} from {origin}: {}",
            reply.body
        );
    }
    alice.origin = own;
    assert!(!snapshot(store.as_ref()).room_by_uid(&ops).unwrap().disabled);

    // A password change ends the room page's sessions, as it ends SIP registrations.
    let store_for_change = store.clone();
    tokio::task::spawn_blocking(move || {
        perch::core::service::set_user(
            store_for_change.as_ref(),
            "alice@example.test",
            None,
            Some("new-pw"),
            None,
        )
        .unwrap()
    })
    .await
    .unwrap();
    let after = alice.get("/manage/").await;
    assert_eq!(
        (after.status, location(&after).as_str()),
        (303, "/manage/sign-in")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_on_the_page_count_against_sip_too() {
    let server = start(|config| config.auth.max_failures_per_user = 3).await;
    let mut page = Browser::new(&server);
    for _ in 0..3 {
        assert_eq!(
            page.sign_in("alice@example.test", "guess").await.status,
            403
        );
    }
    // The right password now waits, on the page and on SIP from the same address.
    let throttled = page.sign_in("alice@example.test", "alice-pw").await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(
        throttled.body.contains("too many failed sign-ins"),
        "{}",
        throttled.body
    );
    let mut sip = server.tls().await;
    sip.send(&sip.register_request("web-throttle", 1, None))
        .await;
    assert_eq!(
        status(&sip.response().await),
        403,
        "refused before any challenge"
    );
    // Another user from the same address is not held up by alice's failures.
    assert_eq!(page.sign_in("bob@example.test", "bob-pw").await.status, 303);
    server.stop().await;
}
