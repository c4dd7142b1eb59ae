//! The network layer's counters for `/metrics`: connections by protocol and transport, those refused
//! at the door, and those cut off for not reading. Process-wide, like the core's
//! (`core::metrics`), which this layer does not see.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Transport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByTransport {
    /// The protocol's name (`sip`, `xmpp`): [`super::Protocol::NAME`].
    pub protocol: &'static str,
    pub transport: &'static str,
}

pub struct NetMetrics {
    pub open: Family<ByTransport, Gauge>,
    pub accepted: Family<ByTransport, Counter>,
    pub refused: Counter,
    pub cut_off: Counter,
    /// Sessions whose connection dropped, kept for their client to come back (XMPP
    /// stream resumption), and how those waits ended.
    pub sessions_waiting: Gauge,
    pub sessions_resumed: Counter,
    pub sessions_not_resumed: Counter,
}

pub fn metrics() -> &'static NetMetrics {
    static METRICS: OnceLock<NetMetrics> = OnceLock::new();
    METRICS.get_or_init(|| NetMetrics {
        open: Family::default(),
        accepted: Family::default(),
        refused: Counter::default(),
        cut_off: Counter::default(),
        sessions_waiting: Gauge::default(),
        sessions_resumed: Counter::default(),
        sessions_not_resumed: Counter::default(),
    })
}

impl Transport {
    pub fn label(self, protocol: &'static str) -> ByTransport {
        ByTransport {
            protocol,
            transport: match self {
                Transport::Tls => "tls",
                Transport::Tcp => "tcp",
            },
        }
    }
}

impl NetMetrics {
    pub fn register(&'static self, registry: &mut Registry) {
        registry.register(
            "connections",
            "Connections open, by protocol and transport",
            self.open.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections accepted, by protocol and transport",
            self.accepted.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once: over the total or per-address cap",
            self.refused.clone(),
        );
        registry.register(
            "connections_cut_off",
            "Connections closed because their client did not read what perch sent",
            self.cut_off.clone(),
        );
        registry.register(
            "sessions_waiting",
            "Sessions whose connection dropped, waiting for their client to resume them",
            self.sessions_waiting.clone(),
        );
        registry.register(
            "sessions_resumed",
            "Sessions resumed on a new connection",
            self.sessions_resumed.clone(),
        );
        registry.register(
            "sessions_not_resumed",
            "Sessions that waited for their client and ended: not back in time, over their bound, or a failed resumption",
            self.sessions_not_resumed.clone(),
        );
    }
}
