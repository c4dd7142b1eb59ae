//! The result of a run, printed as a table for people or as one JSON document (`--json`),
//! with the baselines measured in the same invocation and perch ÷ baseline ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::run::{Timeline, Usage};
use crate::sqlite_baseline::SqliteReport;
use crate::stats::{Latency, LatencySummary, Metrics};

#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    /// Post sent → delivered to each client in the room (the author's echo included).
    pub delivery: Option<LatencySummary>,
    /// Post sent → its last delivery to any client: when the whole room had it.
    pub last_delivery: Option<LatencySummary>,
    /// Post sent → SIP 200 (after the commit, for perch).
    pub ack: Option<LatencySummary>,
    /// bjoin sent → rpl:bjoin.
    pub join: Option<LatencySummary>,
    /// Connect started → REGISTER 200.
    pub login: Option<LatencySummary>,
    /// cmd:bccontext `last N` within DefaultChatHistory (perch's cache) → rpl:bccontext.
    pub history_cache: Option<LatencySummary>,
    /// cmd:bccontext `before msgid` (perch's store) → rpl:bccontext.
    pub history_disk: Option<LatencySummary>,
    /// cmd:bccontext `search` (perch's full-text index) → rpl:bccontext.
    pub search: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Errors {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `perch` or `null-responder`.
    pub server: String,
    pub target: String,
    pub transport: String,
    pub started_at: String,
    pub settings: BTreeMap<String, String>,
    pub load_average_start: Option<[f64; 3]>,
    pub load_average_end: Option<[f64; 3]>,
    pub setup_secs: f64,
    pub window_secs: f64,
    pub connections_requested: usize,
    pub sessions: u64,
    pub logins: u64,
    pub logins_per_s: Option<f64>,
    pub joins: u64,
    pub joins_in_window: u64,
    pub join_failures: u64,
    pub joins_per_s: Option<f64>,
    pub posts_sent: u64,
    pub posts_acked: u64,
    pub posts_failed: u64,
    pub acked_posts_per_s: Option<f64>,
    pub deliveries: u64,
    pub expected_deliveries: Option<u64>,
    pub deliveries_per_s: Option<f64>,
    pub latency: Latencies,
    pub errors: Errors,
    pub server_usage: Option<Usage>,
    /// (RSS after setup − RSS before) ÷ sessions, KiB.
    pub server_rss_per_session_kib: Option<f64>,
    pub loadgen_usage: Option<Usage>,
}

/// What one invocation prints: the run, the baselines it measured, and the ratios.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    #[serde(flatten)]
    pub report: Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_baseline: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite_baseline: Option<SqliteReport>,
    /// perch ÷ baseline for every rate measured on both.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ratios: BTreeMap<String, f64>,
}

fn per_s(count: u64, secs: f64) -> Option<f64> {
    (count > 0 && secs > 0.0).then(|| count as f64 / secs)
}

pub struct ReportInput<'a> {
    pub scenario: &'a str,
    pub server: &'a str,
    pub target: String,
    pub transport: &'a str,
    pub started_at: String,
    pub settings: BTreeMap<String, String>,
    pub connections_requested: usize,
    pub expected_deliveries: Option<u64>,
}

pub fn build(input: ReportInput<'_>, metrics: &Metrics, timeline: &Timeline) -> Report {
    let g = Metrics::get;
    let window = timeline.window_secs;
    let sessions = g(&metrics.sessions);
    let logins = g(&metrics.registered);
    let login_span = Metrics::span_secs(&metrics.login_first_ns, &metrics.login_last_ns);
    let joins = g(&metrics.joins);
    // Joins happen in setup (most scenarios) or in rounds through the window (join-storm):
    // either way, from the first bjoin sent to the last rpl:bjoin received.
    let joins_per_s = Metrics::span_secs(&metrics.join_first_ns, &metrics.join_last_ns)
        .and_then(|span| per_s(joins, span));
    let rss_per_session = timeline.server.as_ref().and_then(|u| {
        (sessions > 0)
            .then(|| (u.rss_after_setup_kib as f64 - u.rss_before_kib as f64) / sessions as f64)
    });
    Report {
        scenario: input.scenario.to_owned(),
        server: input.server.to_owned(),
        target: input.target,
        transport: input.transport.to_owned(),
        started_at: input.started_at,
        settings: input.settings,
        load_average_start: timeline.load_start,
        load_average_end: timeline.load_end,
        setup_secs: timeline.setup_secs,
        window_secs: window,
        connections_requested: input.connections_requested,
        sessions,
        logins,
        logins_per_s: login_span.and_then(|span| per_s(logins, span)),
        joins,
        joins_in_window: g(&metrics.joins_in_window),
        join_failures: g(&metrics.join_failures),
        joins_per_s,
        posts_sent: g(&metrics.posts_sent),
        posts_acked: g(&metrics.posts_acked),
        posts_failed: g(&metrics.posts_failed),
        acked_posts_per_s: per_s(g(&metrics.acks_in_window), window),
        deliveries: g(&metrics.deliveries),
        expected_deliveries: input.expected_deliveries,
        deliveries_per_s: per_s(g(&metrics.deliveries_in_window), window),
        latency: Latencies {
            delivery: metrics.summary(Latency::Delivery),
            last_delivery: metrics.last_delivery_summary(),
            ack: metrics.summary(Latency::Ack),
            join: metrics.summary(Latency::Join),
            login: metrics.summary(Latency::Login),
            history_cache: metrics.summary(Latency::HistoryCache),
            history_disk: metrics.summary(Latency::HistoryDisk),
            search: metrics.summary(Latency::Search),
        },
        errors: Errors {
            total: metrics.error_total(),
            by_kind: metrics.errors(),
        },
        server_usage: timeline.server.clone(),
        server_rss_per_session_kib: rss_per_session,
        loadgen_usage: timeline.loadgen.clone(),
    }
}

/// perch ÷ null responder for each rate both measured, and p99 latencies likewise;
/// acknowledged posts/s ÷ SQLite rows/s.
pub fn ratios(
    perch: &Report,
    null: Option<&Report>,
    sqlite: Option<&SqliteReport>,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, a: Option<f64>, b: Option<f64>| {
        if let (Some(a), Some(b)) = (a, b)
            && b > 0.0
        {
            out.insert(name.to_owned(), a / b);
        }
    };
    if let Some(null) = null {
        put("logins_per_s / null", perch.logins_per_s, null.logins_per_s);
        put("joins_per_s / null", perch.joins_per_s, null.joins_per_s);
        put(
            "acked_posts_per_s / null",
            perch.acked_posts_per_s,
            null.acked_posts_per_s,
        );
        put(
            "deliveries_per_s / null",
            perch.deliveries_per_s,
            null.deliveries_per_s,
        );
        let p99 = |r: &Report| r.latency.delivery.as_ref().map(|l| l.p99_ms);
        put("delivery_p99 / null", p99(perch), p99(null));
        let last_p99 = |r: &Report| r.latency.last_delivery.as_ref().map(|l| l.p99_ms);
        put("last_delivery_p99 / null", last_p99(perch), last_p99(null));
        put(
            "rss_per_session / null",
            perch.server_rss_per_session_kib,
            null.server_rss_per_session_kib,
        );
    }
    if let Some(sqlite) = sqlite {
        put(
            "acked_posts_per_s / sqlite_rows_per_s",
            perch.acked_posts_per_s,
            Some(sqlite.rows_per_s),
        );
    }
    out
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn latency(l: &Option<LatencySummary>) -> String {
    match l {
        None => "-".into(),
        Some(l) => format!(
            "{} / {} / {} / {} ms",
            num(Some(l.p50_ms)),
            num(Some(l.p99_ms)),
            num(Some(l.p999_ms)),
            num(Some(l.max_ms))
        ),
    }
}

fn load(l: Option<[f64; 3]>) -> String {
    l.map_or("-".into(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
}

fn usage_line(u: &Option<Usage>) -> String {
    match u {
        None => "-".into(),
        Some(u) => format!(
            "pid {}: RSS {:.1} → {:.1} → {:.1} MiB, CPU setup {} %, window {} %",
            u.pid,
            u.rss_before_kib as f64 / 1024.0,
            u.rss_after_setup_kib as f64 / 1024.0,
            u.rss_end_kib as f64 / 1024.0,
            num(u.cpu_setup_percent),
            num(u.cpu_window_percent)
        ),
    }
}

fn rows(r: &Report) -> Vec<(&'static str, String)> {
    let errors = if r.errors.by_kind.is_empty() {
        "0".to_owned()
    } else {
        let kinds: Vec<String> = r
            .errors
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        format!("{} ({})", r.errors.total, kinds.join(", "))
    };
    let mut rows = vec![
        (
            "sessions",
            format!("{} of {}", r.sessions, r.connections_requested),
        ),
        (
            "setup / window",
            format!("{:.1} s / {:.1} s", r.setup_secs, r.window_secs),
        ),
        ("logins/s", num(r.logins_per_s)),
        (
            "joins/s",
            format!("{} ({} joins)", num(r.joins_per_s), r.joins),
        ),
        (
            "acked posts/s",
            format!(
                "{} ({} sent, {} acked, {} failed)",
                num(r.acked_posts_per_s),
                r.posts_sent,
                r.posts_acked,
                r.posts_failed
            ),
        ),
        (
            "deliveries/s",
            format!(
                "{} ({} delivered{})",
                num(r.deliveries_per_s),
                r.deliveries,
                r.expected_deliveries
                    .map_or(String::new(), |e| format!(" of {e} expected"))
            ),
        ),
        ("delivery p50/p99/p99.9/max", latency(&r.latency.delivery)),
        (
            "last delivery p50/p99/p99.9/max",
            latency(&r.latency.last_delivery),
        ),
        ("ack p50/p99/p99.9/max", latency(&r.latency.ack)),
        ("join p50/p99/p99.9/max", latency(&r.latency.join)),
        ("login p50/p99/p99.9/max", latency(&r.latency.login)),
        ("errors", errors),
        ("server", usage_line(&r.server_usage)),
        (
            "server RSS per session",
            r.server_rss_per_session_kib
                .map_or("-".into(), |k| format!("{k:.1} KiB")),
        ),
        ("load generator", usage_line(&r.loadgen_usage)),
        (
            "load average",
            format!(
                "{} → {}",
                load(r.load_average_start),
                load(r.load_average_end)
            ),
        ),
    ];
    let at = rows
        .iter()
        .position(|(name, _)| *name == "errors")
        .unwrap_or(rows.len());
    rows.splice(at..at, history_rows(r));
    rows
}

/// History queries by kind, for the scenarios that send them (none for the others).
fn history_rows(r: &Report) -> Vec<(&'static str, String)> {
    let kinds = [
        ("cache p50/p99/p99.9/max", &r.latency.history_cache),
        ("disk p50/p99/p99.9/max", &r.latency.history_disk),
        ("search p50/p99/p99.9/max", &r.latency.search),
    ];
    let answered: Vec<u64> = kinds
        .iter()
        .map(|(_, l)| l.as_ref().map_or(0, |l| l.count))
        .collect();
    let total: u64 = answered.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let mut rows = vec![(
        "history queries/s",
        format!(
            "{} ({} answered: {} cache, {} disk, {} search)",
            num(per_s(total, r.window_secs)),
            total,
            answered[0],
            answered[1],
            answered[2]
        ),
    )];
    rows.extend(kinds.iter().map(|(name, l)| (*name, latency(l))));
    rows
}

fn section(out: &mut String, r: &Report) {
    let settings: Vec<String> = r.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "== {} against {} ({} {}) at {}",
        r.scenario, r.server, r.transport, r.target, r.started_at
    );
    let _ = writeln!(out, "   {}", settings.join(" "));
    for (name, value) in rows(r) {
        let _ = writeln!(out, "   {name:<28} {value}");
    }
}

pub fn table(output: &Output) -> String {
    let mut out = String::new();
    section(&mut out, &output.report);
    if let Some(null) = &output.null_baseline {
        section(&mut out, null);
    }
    if let Some(sqlite) = &output.sqlite_baseline {
        let _ = writeln!(
            out,
            "== SQLite baseline: {} rows of about {} bytes of text in {:.1} s, batches of {}{}{}: {} rows/s, {} commits/s (load {})",
            sqlite.rows,
            sqlite.row_bytes,
            sqlite.secs,
            sqlite.batch,
            if sqlite.perch_schema {
                ", perch's indexes and FTS5"
            } else {
                ", no index"
            },
            if sqlite.savepoint_per_row {
                ", a savepoint per row"
            } else {
                ""
            },
            num(Some(sqlite.rows_per_s)),
            num(Some(sqlite.commits_per_s)),
            load(sqlite.load_average)
        );
    }
    if !output.ratios.is_empty() {
        let _ = writeln!(out, "== perch ÷ baseline");
        for (name, value) in &output.ratios {
            let _ = writeln!(out, "   {name:<40} {value:.3}");
        }
    }
    out
}
