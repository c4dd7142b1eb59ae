//! Protocol sessions: everything between a framed SIP message and the chat core. One
//! [`Session`] per connection holds its registration, dialogs and transactions; it is
//! sans-I/O (frames in, bytes out) so tests drive it without sockets.

mod connection;
pub mod dialog;
pub mod digest;
pub mod error;
pub mod ntlm;
mod protocol;
pub mod registrar;
pub mod sipae;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::core::SnapshotHandle;
use crate::lync::sip::FrameLimits;
use crate::net::signin::FailureThrottle;
pub use crate::net::{ConnectionInfo, Transport};

pub use connection::{Answer, Deferred, Output, Session};
pub use error::SipError;
pub use protocol::LyncProtocol;

/// Something to send on one of a connection's chat dialogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// An INFO carrying `body` on the dialog `call_id`.
    Info { call_id: Arc<str>, body: Bytes },
    /// End the dialog `call_id` with a BYE.
    Bye { call_id: Arc<str> },
    /// The registered user's rights ended (password changed, disabled, removed): end every
    /// dialog with a BYE, drop the registration and close the connection.
    Revoke,
}

pub type Outboxes = crate::net::outbox::Outboxes<Outbound>;

/// The transport token of a Via header.
pub fn via_token(transport: Transport) -> &'static str {
    match transport {
        Transport::Tls => "TLS",
        Transport::Tcp => "TCP",
    }
}

/// The `transport` parameter of a SIP URI.
pub fn uri_param(transport: Transport) -> &'static str {
    match transport {
        Transport::Tls => "tls",
        Transport::Tcp => "tcp",
    }
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

/// Settings the sessions read, taken from the configuration once at start.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub domain: String,
    pub chat_aor: String,
    /// The room page, provisioned to clients (MS-SIPREGE PersistentChatWebManagerUri*).
    pub room_management_url: Option<String>,
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    pub keep_alive_secs: u32,
    pub session_expires: u32,
    pub transaction_timeout: Duration,
    pub requests_per_second: u32,
    pub requests_per_second_per_user: u32,
    pub request_burst_per_user: u32,
    /// Bytes of responses kept for retransmission per connection.
    pub retransmission_bytes_per_connection: usize,
    pub retransmission_bytes_total: usize,
    pub max_dialogs_per_connection: usize,
    pub max_dialogs_per_user: usize,
    pub max_dialog_header_bytes: usize,
    pub request_burst: u32,
    pub frame_limits: FrameLimits,
    /// NTLM with MS-SIPAE signing, when offered.
    pub ntlm: Option<sipae::NtlmSettings>,
    pub nonce_lifetime: Duration,
    /// Challenges (401s) per second from one address (an IPv6 /64) and from one network
    /// (an IPv4 /24, an IPv6 /48); bursts of five times that.
    pub challenges_per_address: u32,
    pub challenges_per_network: u32,
    pub failure_window: Duration,
    pub max_failures_per_address: u32,
    pub max_failures_per_user: u32,
}

/// State shared by every session of a server.
pub struct Shared {
    pub settings: SessionSettings,
    pub model: Arc<SnapshotHandle>,
    pub outboxes: Arc<Outboxes>,
    pub nonces: digest::Nonces,
    pub challenges: registrar::ChallengeLimits,
    /// Failed sign-ins, shared with every other way of signing in (the room page).
    pub throttle: Arc<FailureThrottle>,
    pub registrar: registrar::Bindings,
    /// Chat dialogs each user holds across their connections.
    pub user_dialogs: dialog::UserDialogs,
    /// Requests each user sends across their connections.
    pub user_requests: crate::net::rate::KeyedBuckets<String>,
    /// Bytes of responses kept for retransmission by all connections.
    pub retransmissions: Arc<transaction::RetransmissionBudget>,
    pub endpoint: Arc<dyn ChatEndpoint>,
}

impl Shared {
    pub fn new(
        settings: SessionSettings,
        model: Arc<SnapshotHandle>,
        outboxes: Arc<Outboxes>,
        endpoint: Arc<dyn ChatEndpoint>,
    ) -> Self {
        Self {
            user_requests: crate::net::rate::KeyedBuckets::new(
                settings.requests_per_second_per_user,
                settings.request_burst_per_user,
                USERS_METERED,
            ),
            retransmissions: transaction::RetransmissionBudget::new(
                settings.retransmission_bytes_total,
            ),
            nonces: digest::Nonces::new(settings.nonce_lifetime, 100_000),
            challenges: registrar::ChallengeLimits::new(&settings),
            throttle: Arc::new(FailureThrottle::new(
                settings.failure_window,
                settings.max_failures_per_address,
                settings.max_failures_per_user,
            )),
            settings,
            model,
            outboxes,
            registrar: registrar::Bindings::default(),
            user_dialogs: dialog::UserDialogs::default(),
            endpoint,
        }
    }
}

/// Users whose request rate is remembered at once; past it, idle ones are forgotten.
const USERS_METERED: usize = 65_536;

impl Shared {
    /// Ends every registration of these users (see [`Outbound::Revoke`]).
    pub fn revoke(&self, users: &[String]) {
        let now = std::time::Instant::now();
        for user in users {
            for (connection, _) in self.registrar.lookup(user, now) {
                tracing::info!(
                    user,
                    connection,
                    "rights ended: closing the user's connection"
                );
                self.outboxes.deliver(connection, Outbound::Revoke);
            }
        }
    }

    /// Forgets these users' failed sign-ins from every address (`perch admin user unlock`).
    /// An address that is abusive for all users together stays refused until its window ends.
    pub fn unlock(&self, users: &[String]) {
        for user in users {
            tracing::info!(user, "sign-in throttle lifted by an administrator");
            self.throttle.forget_user(user);
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

#[cfg(test)]
mod tests;
