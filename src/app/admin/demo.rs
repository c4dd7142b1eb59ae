//! `perch serve --demo`: a loopback-only server with a demo domain and users with known
//! passwords, which SIPE signs in with over NTLM and Digest clients with Digest. Loopback
//! is trusted (no password needed) only with `--trust-loopback`.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::app::config::Config;
use crate::app::server::RunningServer;
use crate::core::Snapshot;
use crate::core::credentials::NtHash;
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

/// What the demo sets unless the configuration file, a `PERCH_*` variable or `--data` says
/// otherwise: the demo domain, its own data directory, and loopback listeners (TLS 5061,
/// TCP 5060, HTTPS 8443, XMPP 5222 with STARTTLS and 5223 in TLS).
pub fn config_defaults() -> toml::Table {
    let text = |value: &str| toml::Value::String(value.to_owned());
    let mut listen = toml::Table::new();
    listen.insert("tls".into(), text("127.0.0.1:5061"));
    listen.insert("tcp".into(), text("127.0.0.1:5060"));
    let mut table = toml::Table::new();
    table.insert("domain".into(), text(DEMO_DOMAIN));
    table.insert("data_dir".into(), text("perch-demo-data"));
    table.insert("listen".into(), toml::Value::Table(listen));
    let mut http = toml::Table::new();
    http.insert("listen".into(), text("127.0.0.1:8443"));
    table.insert("http".into(), toml::Value::Table(http));
    let mut xmpp = toml::Table::new();
    xmpp.insert("listen".into(), text("127.0.0.1:5222"));
    xmpp.insert("listen_tls".into(), text("127.0.0.1:5223"));
    table.insert("xmpp".into(), toml::Value::Table(xmpp));
    table
}

/// `--trust-loopback`: clients on this machine sign in as anyone without a password.
pub fn trust_loopback(config: &mut Config) {
    let loopback: [IpNet; 2] = [
        IpNet::from(Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8)),
        IpNet::from(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    ];
    for net in loopback {
        if !config.trusted_networks.contains(&net) {
            config.trusted_networks.push(net);
        }
    }
}

/// Fills a new store with the demo's users, category, rooms and history. Only a new one:
/// what an administrator changed or removed afterwards stays as they left it.
pub fn provision(store: &dyn Store, domain: &str) -> Result<(), String> {
    provision_users(store, domain).map_err(|e| e.to_string())?;
    provision_rooms(store, domain)
}

fn provision_users(store: &dyn Store, domain: &str) -> Result<(), StoreError> {
    for (user, password, name) in DEMO_USERS {
        let aor = format!("{user}@{domain}");
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
        "Open to everyone in the domain",
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

fn provision_rooms(store: &dyn Store, domain: &str) -> Result<(), String> {
    let snapshot = || {
        store
            .load_model()
            .map(Snapshot::from_model)
            .map_err(|e| e.to_string())
    };
    let user = |name: &str| Principal::User(format!("{name}@{domain}"));
    if snapshot()?.category_by_name(DEMO_CATEGORY).is_none() {
        let change = CategoryChange {
            name: Some(DEMO_CATEGORY.into()),
            description: Some("Rooms of the perch demo".into()),
            allowed: vec![ListEdit::Add(vec![Principal::Domain(domain.into())])],
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
                    author: format!("{author}@{domain}"),
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

/// The demo user's line for the banner, as the store has them now: an administrator may
/// have changed a password or removed a user since the store was made.
fn user_line(store: &dyn Store, domain: &str, user: &str, password: &str) -> Option<String> {
    let aor = format!("{user}@{domain}");
    let record = store.user(&aor).ok().flatten()?;
    let unchanged = record
        .credentials
        .and_then(|c| c.nt_hash)
        .is_some_and(|hash| hash == NtHash::derive(password));
    Some(if !record.enabled {
        format!("    {aor}  disabled by an administrator")
    } else if unchanged {
        format!("    {aor}  password {password}")
    } else {
        format!("    {aor}  password changed by an administrator")
    })
}

pub fn instructions(config: &Config, server: &RunningServer, store: &dyn Store) -> String {
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
    let domain = config.domain.as_str();
    let users: Vec<String> = DEMO_USERS
        .iter()
        .filter_map(|(user, password, _)| user_line(store, domain, user, password))
        .collect();
    format!(
        "\nperch demo is running (data in {data}).\n\
         \n  SIP over TLS  {tls}   certificate {cert}\n                     SHA-256 {fingerprint}\n  SIP over TCP  {tcp}\n  HTTPS         {http}   /healthz /readyz /metrics /api/v1/\n\
         \x20 Room page     {room_page}   (alice manages the demo rooms)\n\
         \x20 XMPP          {xmpp} (STARTTLS), {xmpp_tls} (TLS)   rooms at {muc}\n\
         \n  Users (NTLM and Digest passwords; {trusted}):\n{users}\n\
         \n  Chat endpoint: sip:{chat}\n\
         \n  Rooms in category Demo: Lobby (open, with history), Team (closed: alice, bob),\n\
         \x20 Announcements (auditorium: alice presents), Hideout (secret: alice).\n\
         \n  Pidgin + SIPE: add an \"Office Communicator\" account, username alice@{domain},\n\
         \x20 server {tcp} with connection type TCP (or {tls} with TLS after\n\
         \x20 accepting the certificate above), authentication scheme NTLM, and alice's password.\n\
         \x20 Then Buddies > Join a Chat > Room List to see the rooms, and join Lobby.\n\
         \x20 A Digest SIP client (pjsua, Linphone): username alice, realm {domain}, alice's\n\
         \x20 password, over TLS to {tls} (SHA-256 or MD5, qop=auth).\n\
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
        http = server
            .http_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into()),
        users = users.join("\n"),
        chat = config.chat_aor(),
        xmpp = server
            .xmpp_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into()),
        xmpp_tls = server
            .xmpp_tls_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into()),
        muc = config.muc_domain(),
        room_page = server
            .http_addr()
            .map(|a| format!("https://{a}/manage/"))
            .unwrap_or_else(|| "off".into()),
    )
}
