//! What a run counts: one shared set of counters (atomics), errors by kind, and HDR
//! histograms of latencies. Clients batch latency samples locally and add them under the
//! lock a few hundred at a time, so thousands of connections do not fight over it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Nanoseconds since the process's first call: the clock every send time and receipt time
/// is read from, so a post's send time can travel in its text and be compared on receipt.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Latencies are recorded in microseconds, from 1 µs to one hour, 3 significant digits.
const HIGHEST_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // Invariant: constant bounds that satisfy the constructor's rules (low >= 1,
    // high >= 2 * low, sigfig <= 5), so it cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("constant histogram bounds are valid")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// Post sent → its `grpchat` delivered to a client (every recipient, the author's echo
    /// included).
    Delivery,
    /// Post sent → its SIP 200 (perch answers only after the commit).
    Ack,
    /// bjoin sent → its `rpl:bjoin`.
    Join,
    /// Connect started → REGISTER answered 200.
    Login,
    /// `cmd:bccontext` `last N` (N ≤ DefaultChatHistory: perch's cache) → its reply.
    HistoryCache,
    /// `cmd:bccontext` `before msgid` (read from the store) → its reply.
    HistoryDisk,
    /// `cmd:bccontext` `search` (the store's full-text index) → its reply.
    Search,
}

const LATENCIES: [Latency; 7] = [
    Latency::Delivery,
    Latency::Ack,
    Latency::Join,
    Latency::Login,
    Latency::HistoryCache,
    Latency::HistoryDisk,
    Latency::Search,
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn summarize(h: &Histogram<u64>) -> Option<LatencySummary> {
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(LatencySummary {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    })
}

/// The shared counters of one run.
pub struct Metrics {
    pub sessions: AtomicU64,
    pub registered: AtomicU64,
    pub setup_finished: AtomicU64,
    pub joins: AtomicU64,
    pub joins_in_window: AtomicU64,
    pub join_failures: AtomicU64,
    pub posts_sent: AtomicU64,
    pub posts_in_window: AtomicU64,
    pub posts_acked: AtomicU64,
    pub acks_in_window: AtomicU64,
    /// Posts that got a non-200 answer or none in time.
    pub posts_failed: AtomicU64,
    pub deliveries: AtomicU64,
    pub deliveries_in_window: AtomicU64,
    /// Clients that entered at least one room during setup (for fanout: the room's audience).
    pub occupants: AtomicU64,
    /// Deliveries owed for the acknowledged posts: each adds its room's expected audience.
    pub expected_deliveries: AtomicU64,
    pub login_first_ns: AtomicU64,
    pub login_last_ns: AtomicU64,
    pub join_first_ns: AtomicU64,
    pub join_last_ns: AtomicU64,
    window_start_ns: AtomicU64,
    window_end_ns: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    error_total: AtomicU64,
    histograms: Mutex<BTreeMap<Latency, Histogram<u64>>>,
    /// Per post (keyed by the send time its text carries): its latest delivery.
    last_delivery: Mutex<HashMap<u64, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and histograms stay meaningful after a panic elsewhere.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            sessions: zero(),
            registered: zero(),
            setup_finished: zero(),
            joins: zero(),
            joins_in_window: zero(),
            join_failures: zero(),
            posts_sent: zero(),
            posts_in_window: zero(),
            posts_acked: zero(),
            acks_in_window: zero(),
            posts_failed: zero(),
            deliveries: zero(),
            deliveries_in_window: zero(),
            occupants: zero(),
            expected_deliveries: zero(),
            login_first_ns: AtomicU64::new(u64::MAX),
            login_last_ns: zero(),
            join_first_ns: AtomicU64::new(u64::MAX),
            join_last_ns: zero(),
            window_start_ns: AtomicU64::new(u64::MAX),
            window_end_ns: AtomicU64::new(u64::MAX),
            errors: Mutex::new(BTreeMap::new()),
            error_total: zero(),
            histograms: Mutex::new(LATENCIES.iter().map(|l| (*l, histogram())).collect()),
            last_delivery: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Opens the measurement window at `start` for `length` nanoseconds.
    pub fn open_window(&self, start: u64, length: u64) {
        self.window_end_ns
            .store(start.saturating_add(length), Ordering::Relaxed);
        self.window_start_ns.store(start, Ordering::Relaxed);
    }

    /// Closes the window early (or exactly) at `end`.
    pub fn close_window(&self, end: u64) {
        self.window_end_ns.store(end, Ordering::Relaxed);
    }

    pub fn in_window(&self, t: u64) -> bool {
        t >= self.window_start_ns.load(Ordering::Relaxed)
            && t <= self.window_end_ns.load(Ordering::Relaxed)
    }

    pub fn error(&self, kind: &str) {
        self.error_total.fetch_add(1, Ordering::Relaxed);
        *lock(&self.errors).entry(kind.to_owned()).or_default() += 1;
    }

    pub fn errors_n(&self, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.error_total.fetch_add(n, Ordering::Relaxed);
        *lock(&self.errors).entry(kind.to_owned()).or_default() += n;
    }

    pub fn error_total(&self) -> u64 {
        self.error_total.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn mark(first: &AtomicU64, last: &AtomicU64, start: u64, end: u64) {
        first.fetch_min(start, Ordering::Relaxed);
        last.fetch_max(end, Ordering::Relaxed);
    }

    /// Seconds between the first start and the last end marked, if anything was marked.
    pub fn span_secs(first: &AtomicU64, last: &AtomicU64) -> Option<f64> {
        let (a, b) = (Self::get(first), Self::get(last));
        (a != u64::MAX && b > a).then(|| (b - a) as f64 / 1e9)
    }

    fn record(&self, latency: Latency, samples_us: &[u64]) {
        if samples_us.is_empty() {
            return;
        }
        let mut histograms = lock(&self.histograms);
        if let Some(h) = histograms.get_mut(&latency) {
            for &us in samples_us {
                h.saturating_record(us.clamp(1, HIGHEST_US));
            }
        }
    }

    pub fn summary(&self, latency: Latency) -> Option<LatencySummary> {
        lock(&self.histograms).get(&latency).and_then(summarize)
    }

    fn merge_last_deliveries(&self, local: &HashMap<u64, u64>) {
        let mut last = lock(&self.last_delivery);
        for (&sent, &at) in local {
            let latest = last.entry(sent).or_insert(at);
            *latest = (*latest).max(at);
        }
    }

    /// Post sent → its last delivery to any client: how long the whole room waited.
    pub fn last_delivery_summary(&self) -> Option<LatencySummary> {
        let mut h = histogram();
        for (&sent, &at) in lock(&self.last_delivery).iter() {
            h.saturating_record((at.saturating_sub(sent) / 1000).clamp(1, HIGHEST_US));
        }
        summarize(&h)
    }
}

/// A client's latency samples, added to the shared histograms in batches.
pub struct Samples {
    pending: [(Latency, Vec<u64>); LATENCIES.len()],
    /// Per post seen: when it reached this client.
    last_delivery: HashMap<u64, u64>,
}

const BATCH: usize = 256;

impl Default for Samples {
    fn default() -> Self {
        Self {
            pending: LATENCIES.map(|l| (l, Vec::new())),
            last_delivery: HashMap::new(),
        }
    }
}

impl Samples {
    /// A post's delivery to this client: a latency sample, and a candidate for the post's
    /// last delivery.
    pub fn delivered(&mut self, metrics: &Metrics, sent: u64, at: u64) {
        self.record(metrics, Latency::Delivery, sent, at);
        let latest = self.last_delivery.entry(sent).or_insert(at);
        *latest = (*latest).max(at);
    }

    /// Records `from`→`to` (both from [`now_ns`]).
    pub fn record(&mut self, metrics: &Metrics, latency: Latency, from: u64, to: u64) {
        let us = to.saturating_sub(from) / 1000;
        if let Some((_, list)) = self.pending.iter_mut().find(|(l, _)| *l == latency) {
            list.push(us);
            if list.len() >= BATCH {
                metrics.record(latency, list);
                list.clear();
            }
        }
    }

    pub fn flush(&mut self, metrics: &Metrics) {
        metrics.merge_last_deliveries(&self.last_delivery);
        self.last_delivery.clear();
        for (latency, list) in &mut self.pending {
            metrics.record(*latency, list);
            list.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_reach_the_histogram() {
        let metrics = Metrics::new();
        let mut samples = Samples::default();
        for i in 1..=1000u64 {
            samples.record(&metrics, Latency::Delivery, 0, i * 1_000_000);
        }
        samples.flush(&metrics);
        let s = metrics.summary(Latency::Delivery).unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        assert!(metrics.summary(Latency::Ack).is_none());
    }

    #[test]
    fn the_last_delivery_of_each_post_counts() {
        let metrics = Metrics::new();
        let (mut a, mut b) = (Samples::default(), Samples::default());
        // Post sent at 0 reaches a at 2 ms and b at 9 ms; post sent at 1 ms reaches both at 5 ms.
        a.delivered(&metrics, 0, 2_000_000);
        b.delivered(&metrics, 0, 9_000_000);
        a.delivered(&metrics, 1_000_000, 5_000_000);
        b.delivered(&metrics, 1_000_000, 5_000_000);
        a.flush(&metrics);
        b.flush(&metrics);
        let last = metrics.last_delivery_summary().unwrap();
        assert_eq!(last.count, 2);
        assert!((last.max_ms - 9.0).abs() < 0.01, "{last:?}");
        assert!((last.p50_ms - 4.0).abs() < 0.01, "{last:?}");
        assert_eq!(metrics.summary(Latency::Delivery).unwrap().count, 4);
    }

    #[test]
    fn window_and_errors() {
        let metrics = Metrics::new();
        assert!(!metrics.in_window(5));
        metrics.open_window(10, 10);
        assert!(metrics.in_window(10) && metrics.in_window(20) && !metrics.in_window(21));
        metrics.error("status 503");
        metrics.errors_n("status 503", 2);
        metrics.errors_n("nothing", 0);
        assert_eq!(metrics.error_total(), 3);
        assert_eq!(metrics.errors().len(), 1);
    }
}
