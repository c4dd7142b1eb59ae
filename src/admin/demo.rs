//! `perch serve --demo`: a loopback-only server with a demo domain and users with known
//! passwords, trusting loopback so a SIPE client on the same machine connects as is.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::Config;
use crate::server::RunningServer;
use crate::store::{Store, StoreError, wait};
use crate::transport::tls;

pub const DEMO_DOMAIN: &str = "example.test";
/// (user, password, display name)
pub const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-demo", "Alice Demo"),
    ("bob", "bob-demo", "Bob Demo"),
    ("carol", "carol-demo", "Carol Demo"),
];

/// Adjusts a configuration for the demo: loopback listeners (TLS 5061, TCP 5060), loopback
/// trusted, the demo domain, and its own data directory unless one was given.
pub fn prepare_config(config: &mut Config, data_given: bool) {
    config.domain = DEMO_DOMAIN.into();
    if !data_given {
        config.data_dir = PathBuf::from("perch-demo-data");
    }
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    config.listen.tls = Some(loopback(5061));
    if config.listen.tcp.is_none() {
        config.listen.tcp = Some(loopback(5060));
    }
    for net in ["127.0.0.0/8", "::1/128"] {
        if let Ok(net) = net.parse()
            && !config.trusted_networks.contains(&net)
        {
            config.trusted_networks.push(net);
        }
    }
}

/// Creates the demo users that do not exist yet.
pub fn provision(store: &dyn Store) -> Result<(), StoreError> {
    for (user, password, name) in DEMO_USERS {
        let aor = format!("{user}@{DEMO_DOMAIN}");
        if store.user(&aor)?.is_none() {
            wait(store.add_user(crate::store::UserRecord {
                credentials: Some(crate::session::digest::credentials(&aor, password)),
                display_name: (*name).to_owned(),
                enabled: true,
                aor,
            }))?;
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
    let users: Vec<String> = DEMO_USERS
        .iter()
        .map(|(u, p, _)| format!("    {u}@{DEMO_DOMAIN}  password {p}"))
        .collect();
    format!(
        "\nperch demo is running (data in {data}).\n\
         \n  SIP over TLS  {tls}   certificate {cert}\n                     SHA-256 {fingerprint}\n  SIP over TCP  {tcp}\n\
         \n  Users (Digest passwords; clients on this machine are trusted and need none):\n{users}\n\
         \n  Chat endpoint: sip:{chat}\n\
         \n  Pidgin + SIPE: add an \"Office Communicator\" account, username alice@{domain},\n\
         \x20 server 127.0.0.1:5060 with connection type TCP (or 127.0.0.1:5061 with TLS after\n\
         \x20 accepting the certificate above), authentication scheme NTLM, any password.\n\
         \x20 sipsak: sipsak -U -s sip:alice@{domain} -a alice-demo -u alice --transport=tls \\\n\
         \x20   --tls-ignore-cert-failure -p 127.0.0.1:5061\n\
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
