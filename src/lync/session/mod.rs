//! Protocol sessions: everything between a framed SIP message and the chat core. One
//! [`Session`] per connection holds its registration, dialogs and transactions; it is
//! sans-I/O (frames in, bytes out) so tests drive it without sockets.

mod connection;
pub mod dialog;
pub mod digest;
pub mod error;
pub mod outbox;
mod rate;
pub mod registrar;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::app::config::Config;
use crate::core::SnapshotHandle;

pub use connection::{Deferred, Output, Session};
pub use error::SipError;
pub use outbox::{Mailbox, Outbound, Outboxes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tls,
    Tcp,
}

impl Transport {
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Tls => "TLS",
            Transport::Tcp => "TCP",
        }
    }

    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Tls => "tls",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub transport: Transport,
}

/// A chat dialog as the chat endpoint sees it.
#[derive(Debug, Clone, Copy)]
pub struct DialogContext<'a> {
    pub connection: u64,
    pub call_id: &'a str,
    /// The registered user on the other end, `user@domain`.
    pub user: &'a str,
    /// The URI the client INVITEd (`sip:ocschat@domain`).
    pub endpoint_uri: &'a str,
}

/// Work the endpoint finishes later; resolves to the bodies to send back on the dialog.
pub type Later =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Bytes>, SipError>> + Send>>;

/// How the endpoint answers an INFO: at once, or after asynchronous work (a post is
/// acknowledged only once it is durable).
pub enum EndpointReply {
    Now(Vec<Bytes>),
    Later(Later),
}

/// The chat service behind the chat URI: it receives the bodies of INFO requests on chat
/// dialogs and answers with bodies the session sends back as INFO requests.
pub trait ChatEndpoint: Send + Sync {
    /// `Err` answers the INFO itself with an error (malformed XCCOS).
    fn info(&self, dialog: &DialogContext<'_>, body: &[u8]) -> Result<EndpointReply, SipError>;
    /// The dialog ended: BYE, a 481/487 to our INFO, a timeout or a closed connection.
    fn dialog_ended(&self, dialog: &DialogContext<'_>);
}

/// Settings the sessions read, taken from [`Config`] once at start.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub domain: String,
    pub chat_aor: String,
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    pub keep_alive_secs: u32,
    pub session_expires: u32,
    pub transaction_timeout: Duration,
    pub requests_per_second: u32,
    pub request_burst: u32,
}

impl SessionSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            domain: config.domain.clone(),
            chat_aor: config.chat_aor(),
            trusted_networks: config.trusted_networks.clone(),
            default_expires: config.registrar.default_expires_secs,
            min_expires: config.registrar.min_expires_secs,
            max_expires: config.registrar.max_expires_secs,
            keep_alive_secs: config.registrar.keep_alive_secs,
            session_expires: config.session.session_expires_secs,
            transaction_timeout: Duration::from_secs(config.session.transaction_timeout_secs),
            requests_per_second: config.limits.requests_per_second,
            request_burst: config.limits.request_burst,
        }
    }
}

/// State shared by every session of a server.
pub struct Shared {
    pub settings: SessionSettings,
    pub model: Arc<SnapshotHandle>,
    pub outboxes: Arc<Outboxes>,
    pub nonces: digest::Nonces,
    pub throttle: digest::FailureThrottle,
    pub registrar: registrar::Bindings,
    pub endpoint: Arc<dyn ChatEndpoint>,
}

impl Shared {
    pub fn new(
        config: &Config,
        model: Arc<SnapshotHandle>,
        outboxes: Arc<Outboxes>,
        endpoint: Arc<dyn ChatEndpoint>,
    ) -> Self {
        let auth = &config.auth;
        Self {
            settings: SessionSettings::from_config(config),
            model,
            outboxes,
            nonces: digest::Nonces::new(Duration::from_secs(auth.nonce_lifetime_secs), 100_000),
            throttle: digest::FailureThrottle::new(
                Duration::from_secs(auth.failure_window_secs),
                auth.max_failures_per_address,
                auth.max_failures_per_user,
            ),
            registrar: registrar::Bindings::default(),
            endpoint,
        }
    }
}

/// A random token for tags and branches.
pub(crate) fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 6];
    // Tags need only be unique within a Call-ID; if the OS RNG fails, a counter still is.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static FALLBACK: AtomicU64 = AtomicU64::new(1);
        bytes.copy_from_slice(&FALLBACK.fetch_add(1, Ordering::Relaxed).to_le_bytes()[..6]);
    }
    hex::encode(bytes)
}
