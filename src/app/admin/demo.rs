//! `perch serve --demo`: a loopback-only server with a demo domain and users with known
//! passwords, which SIPE signs in with over NTLM and Digest clients with Digest. Loopback
//! is trusted (no password needed) only with `--trust-loopback`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::app::config::Config;
use crate::app::server::RunningServer;
use crate::core::Snapshot;
use crate::core::ids::new_room_uid;
use crate::core::ids::now_ticks;
use crate::core::manage::{self, CategoryChange, ListEdit, RoomChange};
use crate::core::model::{Principal, Privacy, RoomType};
use crate::core::ports::{ChatMessage, Store, StoreError, wait};
use crate::net::tls;

pub const DEMO_DOMAIN: &str = "example.test";
/// (user, password, display name)
pub const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-demo", "Alice Demo"),
    ("bob", "bob-demo", "Bob Demo"),
    ("carol", "carol-demo", "Carol Demo"),
];

/// Adjusts a configuration for the demo: loopback listeners (TLS 5061, TCP 5060), the demo
/// domain, its own data directory unless one was given, and loopback trusted only when
/// asked for.
pub fn prepare_config(config: &mut Config, data_given: bool, trust_loopback: bool) {
    config.domain = DEMO_DOMAIN.into();
    if !data_given {
        config.data_dir = PathBuf::from("perch-demo-data");
    }
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    config.listen.tls = Some(loopback(5061));
    if config.listen.tcp.is_none() {
        config.listen.tcp = Some(loopback(5060));
    }
    if !trust_loopback {
        return;
    }
    for net in ["127.0.0.0/8", "::1/128"] {
        if let Ok(net) = net.parse()
            && !config.trusted_networks.contains(&net)
        {
            config.trusted_networks.push(net);
        }
    }
}

/// Creates what the demo needs and does not have yet: users, a category, rooms, history.
pub fn provision(store: &dyn Store) -> Result<(), String> {
    provision_users(store).map_err(|e| e.to_string())?;
    provision_rooms(store)
}

fn provision_users(store: &dyn Store) -> Result<(), StoreError> {
    for (user, password, name) in DEMO_USERS {
        let aor = format!("{user}@{DEMO_DOMAIN}");
        if store.user(&aor)?.is_none() {
            wait(store.add_user(crate::core::ports::UserRecord {
                unlocked_at: 0,
                credentials: Some(crate::core::credentials::Credentials::derive(
                    &aor, password,
                )),
                display_name: (*name).to_owned(),
                enabled: true,
                aor,
            }))?;
        }
    }
    Ok(())
}

const DEMO_CATEGORY: &str = "Demo";

/// A demo room: name, privacy, type, members, presenters, description.
type DemoRoom = (
    &'static str,
    Privacy,
    RoomType,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

const DEMO_ROOMS: &[DemoRoom] = &[
    (
        "Lobby",
        Privacy::Open,
        RoomType::Normal,
        &[],
        &[],
        "Open to everyone at example.test",
    ),
    (
        "Team",
        Privacy::Closed,
        RoomType::Normal,
        &["alice", "bob"],
        &[],
        "Closed: alice and bob only",
    ),
    (
        "Announcements",
        Privacy::Open,
        RoomType::Auditorium,
        &["alice"],
        &["alice"],
        "Auditorium: alice presents",
    ),
    (
        "Hideout",
        Privacy::Secret,
        RoomType::Normal,
        &["alice"],
        &[],
        "Secret: only alice sees it",
    ),
];

const DEMO_HISTORY: &[(&str, &str)] = &[
    ("alice", "Welcome to perch, the persistent chat server."),
    ("bob", "Messages stay here after everyone has left."),
    (
        "carol",
        "Join from Pidgin with the SIPE plugin: see the instructions perch printed.",
    ),
];

fn provision_rooms(store: &dyn Store) -> Result<(), String> {
    let snapshot = || {
        store
            .load_model()
            .map(Snapshot::from_model)
            .map_err(|e| e.to_string())
    };
    let user = |name: &str| Principal::User(format!("{name}@{DEMO_DOMAIN}"));
    if snapshot()?.category_by_name(DEMO_CATEGORY).is_none() {
        let change = CategoryChange {
            name: Some(DEMO_CATEGORY.into()),
            description: Some("Rooms of the perch demo".into()),
            allowed: vec![ListEdit::Add(vec![Principal::Domain(DEMO_DOMAIN.into())])],
            creators: vec![ListEdit::Add(vec![user("alice")])],
            ..CategoryChange::default()
        };
        let (category, _) =
            manage::category(&snapshot()?, None, change).map_err(|e| e.to_string())?;
        wait(store.save_category(category)).map_err(|e| e.to_string())?;
    }
    for (name, privacy, kind, members, presenters, description) in DEMO_ROOMS {
        if snapshot()?.room_by_name(name).is_some() {
            continue;
        }
        let change = RoomChange {
            name: Some((*name).into()),
            description: Some((*description).into()),
            category: Some(DEMO_CATEGORY.into()),
            privacy: Some(*privacy),
            kind: Some(*kind),
            members: vec![ListEdit::Add(members.iter().map(|m| user(m)).collect())],
            presenters: vec![ListEdit::Add(presenters.iter().map(|m| user(m)).collect())],
            managers: vec![ListEdit::Add(vec![user("alice")])],
            ..RoomChange::default()
        };
        let outcome =
            manage::room(&snapshot()?, None, &new_room_uid(), change).map_err(|e| e.to_string())?;
        let room = wait(store.save_room(outcome.room)).map_err(|e| e.to_string())?;
        if *name == "Lobby" {
            for (author, text) in DEMO_HISTORY {
                let pending = store.append_message(ChatMessage {
                    id: 0,
                    room_id: room.id,
                    author: format!("{author}@{DEMO_DOMAIN}"),
                    ts: now_ticks(),
                    text: (*text).to_owned(),
                    extension: None,
                });
                wait(pending).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

pub fn instructions(config: &Config, server: &RunningServer) -> String {
    let fingerprint = server
        .certificate()
        .and_then(|paths| tls::load_certificates(&paths.cert).ok())
        .and_then(|certs| certs.first().map(tls::fingerprint))
        .unwrap_or_default();
    let cert = server
        .certificate()
        .map(|p| p.cert.display().to_string())
        .unwrap_or_default();
    let trusted = if config.trusted_networks.is_empty() {
        "every client signs in with its password".to_owned()
    } else {
        format!(
            "clients from {} are trusted and need none",
            config
                .trusted_networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let users: Vec<String> = DEMO_USERS
        .iter()
        .map(|(u, p, _)| format!("    {u}@{DEMO_DOMAIN}  password {p}"))
        .collect();
    format!(
        "\nperch demo is running (data in {data}).\n\
         \n  SIP over TLS  {tls}   certificate {cert}\n                     SHA-256 {fingerprint}\n  SIP over TCP  {tcp}\n\
         \n  Users (NTLM and Digest passwords; {trusted}):\n{users}\n\
         \n  Chat endpoint: sip:{chat}\n\
         \n  Rooms in category Demo: Lobby (open, with history), Team (closed: alice, bob),\n\
         \x20 Announcements (auditorium: alice presents), Hideout (secret: alice).\n\
         \n  Pidgin + SIPE: add an \"Office Communicator\" account, username alice@{domain},\n\
         \x20 server 127.0.0.1:5060 with connection type TCP (or 127.0.0.1:5061 with TLS after\n\
         \x20 accepting the certificate above), authentication scheme NTLM, password alice-demo.\n\
         \x20 Then Buddies > Join a Chat > Room List to see the rooms, and join Lobby.\n\
         \x20 A Digest SIP client (pjsua, Linphone): username alice, realm {domain}, password\n\
         \x20 alice-demo, over TLS to 127.0.0.1:5061 (SHA-256 or MD5, qop=auth).\n\
         \n  Stop with Ctrl-C.\n",
        data = config.data_dir.display(),
        tls = server
            .tls_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into()),
        tcp = server
            .tcp_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into()),
        users = users.join("\n"),
        chat = config.chat_aor(),
        domain = DEMO_DOMAIN,
    )
}
