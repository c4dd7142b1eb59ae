//! What the server counts as it runs, for `/metrics`. Each layer updates the counters of
//! what it decides (the core its posts and deliveries, a gateway its sign-ins, the store
//! its commits and reads); the HTTP side only renders them.
//!
//! The counters are prometheus-client's atomic types, and process-wide: one perch process
//! is one server, and a counter behind a global costs a layer no new parameter. Tests that
//! run several servers in one process see their sums, so they check that counters move,
//! never their absolute values.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A sign-in attempt: how (SIP: `ntlm`, `digest`, `trusted`; XMPP SASL: `scram-sha-256`,
/// `scram-sha-1`, `plain`) and what came of it (`success`, `failure`, `throttled`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignIn {
    pub mechanism: &'static str,
    pub outcome: &'static str,
}

/// A store read: `history` (joins, paging) or `search`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Read {
    pub kind: &'static str,
}

/// A gateway (protocol) by name: `lync`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByGateway {
    pub gateway: &'static str,
}

pub struct Metrics {
    /// Sessions in at least one room, by gateway.
    pub chat_sessions: Family<ByGateway, Gauge>,
    /// Rooms with at least one session in them.
    pub active_rooms: Gauge,
    pub posts: Counter,
    pub deliveries: Counter,
    pub sign_ins: Family<SignIn, Counter>,
    pub commit_seconds: Histogram,
    pub commit_batch_writes: Histogram,
    pub writer_queue: Gauge,
    pub read_seconds: Family<Read, Histogram>,
}

fn seconds_histogram() -> Histogram {
    // 100 µs to about 13 s.
    Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
}

/// The process's counters.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        chat_sessions: Family::default(),
        active_rooms: Gauge::default(),
        posts: Counter::default(),
        deliveries: Counter::default(),
        sign_ins: Family::default(),
        commit_seconds: seconds_histogram(),
        commit_batch_writes: Histogram::new(exponential_buckets(1.0, 4.0, 6)),
        writer_queue: Gauge::default(),
        read_seconds: Family::new_with_constructor(seconds_histogram),
    })
}

impl Metrics {
    pub fn sign_in(&self, mechanism: &'static str, outcome: &'static str) {
        self.sign_ins
            .get_or_create(&SignIn { mechanism, outcome })
            .inc();
    }

    pub fn read(&self, kind: &'static str, took: std::time::Duration) {
        self.read_seconds
            .get_or_create(&Read { kind })
            .observe(took.as_secs_f64());
    }

    /// Adds these counters to `registry` (names get the registry's `perch_` prefix).
    pub fn register(&'static self, registry: &mut Registry) {
        registry.register(
            "chat_sessions",
            "Sessions in at least one room, by gateway (protocol)",
            self.chat_sessions.clone(),
        );
        registry.register(
            "active_rooms",
            "Rooms with at least one session in them",
            self.active_rooms.clone(),
        );
        registry.register("posts", "Posts stored and published", self.posts.clone());
        registry.register(
            "deliveries",
            "Events handed to sessions (a post to a room of N occupants counts N)",
            self.deliveries.clone(),
        );
        registry.register(
            "sign_ins",
            "Sign-in attempts by mechanism and outcome",
            self.sign_ins.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Time to commit one batch of writes",
            self.commit_seconds.clone(),
        );
        registry.register(
            "store_commit_batch_writes",
            "Writes per committed batch",
            self.commit_batch_writes.clone(),
        );
        registry.register(
            "store_writer_queue",
            "Writes waiting for the store writer",
            self.writer_queue.clone(),
        );
        registry.register(
            "store_read_seconds",
            "Time of store reads by kind, queueing included",
            self.read_seconds.clone(),
        );
    }
}
