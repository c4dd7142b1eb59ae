//! The XMPP gateway: c2s streams, MUC, MAM onto the chat core.
//!
//! `stream` cuts the client's bytes into stanzas, `sasl` signs users in against the stored
//! verifiers, `c2s` is one client stream (negotiation, then iq, presence and messages),
//! `muc` maps Lync's rooms onto XEP-0045 rooms and XEP-0313 archives, and `sink` renders
//! the hub's events for XMPP sessions. Every permission decision is the core's.

pub mod c2s;
pub mod errors;
pub mod jid;
pub mod muc;
pub mod resume;
pub mod sasl;
mod sink;
mod stanza;
pub mod stream;

use std::sync::Arc;

use bytes::Bytes;

use crate::core::hub::ChatCore;
use crate::core::ids::Gateway;
use crate::core::ports::Store;
use crate::net::outbox::Outboxes;
use crate::net::rate::KeyedBuckets;
use crate::net::signin::FailureThrottle;
use crate::net::{self, ConnectionInfo};

/// What the XMPP side reads from the configuration.
#[derive(Debug, Clone)]
pub struct XmppSettings {
    /// The users' domain: JIDs are `user@domain`.
    pub domain: String,
    /// The MUC service, `conference.<domain>` unless configured.
    pub muc_domain: String,
    /// No sign-in before STARTTLS (RFC 6120 §5.3.1); direct TLS connections are secure
    /// from the start.
    pub require_tls: bool,
    pub limits: stream::StreamLimits,
    /// Stanzas one stream may send: sustained per second, and burst (SIP's request limits).
    pub stanzas_per_second: u32,
    pub stanza_burst: u32,
    /// The same for one user across all their streams.
    pub stanzas_per_second_per_user: u32,
    pub stanza_burst_per_user: u32,
    /// XEP-0198: longest a dropped session waits to be resumed (zero: no resumption), and
    /// the bound of what it keeps for the client meanwhile, in bytes.
    pub resume_wait: std::time::Duration,
    pub resume_buffer_bytes: usize,
}

/// State shared by every XMPP connection.
pub struct XmppShared {
    pub settings: XmppSettings,
    pub core: Arc<ChatCore>,
    /// For administrative changes (muc#admin), through `core::service` like `perch admin`.
    pub store: Arc<dyn Store>,
    pub outboxes: Arc<Outboxes<Bytes>>,
    /// Failed sign-ins, shared with SIP and the room page.
    pub throttle: Arc<FailureThrottle>,
    /// Stanzas per user across their streams.
    pub user_stanzas: KeyedBuckets<String>,
    /// Sessions that may be resumed (XEP-0198).
    pub resumption: Arc<resume::Resumption>,
}

/// Users whose stanza rate is remembered at once; past it, idle ones are forgotten.
const USERS_METERED: usize = 65_536;

pub struct XmppProtocol {
    shared: Arc<XmppShared>,
}

impl XmppProtocol {
    /// The gateway, attached to the hub as [`Gateway::Xmpp`].
    pub fn new(
        settings: XmppSettings,
        core: Arc<ChatCore>,
        store: Arc<dyn Store>,
        throttle: Arc<FailureThrottle>,
    ) -> Self {
        let outboxes = Arc::new(Outboxes::default());
        core.attach(
            Gateway::Xmpp,
            Arc::new(sink::XmppSink::new(outboxes.clone(), &settings)),
        );
        let user_stanzas = KeyedBuckets::new(
            settings.stanzas_per_second_per_user,
            settings.stanza_burst_per_user,
            USERS_METERED,
        );
        let resumption = Arc::new(resume::Resumption::new(
            settings.resume_wait,
            settings.resume_buffer_bytes,
        ));
        Self {
            shared: Arc::new(XmppShared {
                user_stanzas,
                resumption,
                settings,
                core,
                store,
                outboxes,
                throttle,
            }),
        }
    }
}

impl XmppProtocol {
    /// Gives up dropped sessions not resumed by `now`, and collects the deliveries of the
    /// others.
    pub fn sweep(&self, now: std::time::Instant) {
        let shared = &self.shared;
        let ended = shared.resumption.sweep(now, &shared.outboxes);
        resume::end_all(ended, &shared.core, &shared.outboxes);
    }

    /// [`XmppProtocol::sweep`] once a second until `shutdown`.
    pub async fn sweep_parked(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.sweep(std::time::Instant::now()),
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl net::Protocol for XmppProtocol {
    const NAME: &'static str = "xmpp";
    type Connection = c2s::C2s;
    type Delivery = Bytes;

    fn open(&self, info: ConnectionInfo) -> c2s::C2s {
        c2s::C2s::new(self.shared.clone(), info)
    }

    fn outboxes(&self) -> &Arc<Outboxes<Bytes>> {
        &self.shared.outboxes
    }
}
