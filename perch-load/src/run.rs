//! How a scenario runs: clients log in and join (setup, bounded by a deadline and a cap on
//! logins in progress), then the measurement window opens for `--duration`, then a short
//! drain lets answers and deliveries for what was sent arrive, then everything stops. Every
//! wait is bounded; a hard deadline covers the whole run.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::auth::SignIn;
use crate::client::{Client, ClientError};
use crate::procfs::{self, ProcSample};
use crate::stats::{Metrics, now_ns};
use crate::target::Connector;

/// What every client of a run shares.
pub struct RunContext {
    pub metrics: Arc<Metrics>,
    pub connector: Connector,
    pub domain: String,
    pub chat_uri: String,
    /// How long one request may wait for its answer.
    pub timeout: Duration,
    /// Nothing waits past this.
    pub hard_deadline: Instant,
    pub post_size: usize,
    /// How every client signs in.
    pub sign_in: SignIn,
    /// Whether clients may still post: a post is counted as sent under the read lock, and
    /// the coordinator closes it under the write lock before the drain, so the drain never
    /// misses a post sent as the window closed.
    pub posting: RwLock<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Setup,
    Run,
    Drain,
    Done,
}

/// Which server a run loads, and how to reach and watch it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub server: &'static str,
    pub addr: SocketAddr,
    pub cert: Option<PathBuf>,
    pub pid: Option<u32>,
}

/// The timing knobs of a run.
#[derive(Debug, Clone)]
pub struct Timing {
    pub duration: Duration,
    pub setup_timeout: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    pub quiet: bool,
}

/// One client to start: its user and the rooms it joins during setup.
#[derive(Debug, Clone)]
pub struct Spec {
    pub index: usize,
    pub aor: String,
    pub rooms: Vec<String>,
    /// Join `rooms` during setup (else the scenario's body joins them).
    pub join_in_setup: bool,
}

/// Memory and CPU of a process over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub pid: u32,
    pub rss_before_kib: u64,
    pub rss_after_setup_kib: u64,
    pub rss_end_kib: u64,
    /// CPU while clients logged in and joined, % of one core.
    pub cpu_setup_percent: Option<f64>,
    /// CPU during the measurement window, % of one core.
    pub cpu_window_percent: Option<f64>,
}

fn usage(
    pid: u32,
    before: Option<ProcSample>,
    setup: Option<ProcSample>,
    window: Option<ProcSample>,
    end: Option<ProcSample>,
) -> Option<Usage> {
    let (before, setup, window, end) = (before?, setup?, window?, end?);
    Some(Usage {
        pid,
        rss_before_kib: before.rss_kib,
        rss_after_setup_kib: setup.rss_kib,
        rss_end_kib: end.rss_kib,
        cpu_setup_percent: procfs::cpu_percent(&before, &setup),
        cpu_window_percent: procfs::cpu_percent(&setup, &window),
    })
}

/// What the coordinator measured besides the counters.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub setup_secs: f64,
    pub window_secs: f64,
    pub server: Option<Usage>,
    pub loadgen: Option<Usage>,
    pub load_start: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
}

/// Logs in, opens the chat dialog and joins the spec's rooms.
async fn establish(ctx: Arc<RunContext>, spec: &Spec) -> Result<Client, ClientError> {
    let mut client = Client::login(ctx, spec.index, spec.aor.clone()).await?;
    client.open_dialog().await?;
    if spec.join_in_setup && !spec.rooms.is_empty() {
        client.bjoin(&spec.rooms).await?;
    }
    Ok(client)
}

/// Starts one task per spec: setup (at most `connect_concurrency` at once), then, once the
/// window opens, `body`. A client that fails records why and stops. Returns the phase the
/// coordinator moves on, and the tasks.
pub fn spawn_clients<F, Fut>(
    ctx: &Arc<RunContext>,
    specs: Vec<Spec>,
    timing: &Timing,
    body: F,
) -> (watch::Sender<Phase>, JoinSet<()>)
where
    F: Fn(Client, Spec, watch::Receiver<Phase>, Arc<RunContext>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (phase, _) = watch::channel(Phase::Setup);
    let permits = Arc::new(Semaphore::new(timing.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for spec in specs {
        let (ctx, permits, body) = (ctx.clone(), permits.clone(), body.clone());
        let mut phase = phase.subscribe();
        tasks.spawn(async move {
            let established = match permits.acquire().await {
                Ok(_permit) => establish(ctx.clone(), &spec).await,
                // The semaphore is never closed; treat it like a failed setup anyway.
                Err(_) => return,
            };
            // Counted before the window opens, so every post knows its room's audience.
            if established.as_ref().is_ok_and(|c| c.entered > 0) {
                Metrics::add(&ctx.metrics.occupants, 1);
            }
            Metrics::add(&ctx.metrics.setup_finished, 1);
            let mut client = match established {
                Ok(client) => client,
                Err(error) => {
                    ctx.metrics.error(&error.kind());
                    return;
                }
            };
            // Stay responsive (answer the server's INFOs) until the window opens.
            while *phase.borrow() == Phase::Setup {
                if let Err(error) = client.pump(ctx.hard_deadline, Some(&mut phase)).await {
                    ctx.metrics.error(&error.kind());
                    client.finish();
                    return;
                }
                if Instant::now() >= ctx.hard_deadline {
                    client.finish();
                    return;
                }
            }
            body(client, spec, phase, ctx).await;
        });
    }
    (phase, tasks)
}

/// Keeps a client reading (and answering) until the run is done; used by clients with
/// nothing to send and by everyone during the drain.
pub async fn idle_until_done(
    client: &mut Client,
    ctx: &RunContext,
    phase: &mut watch::Receiver<Phase>,
) {
    while *phase.borrow() != Phase::Done && Instant::now() < ctx.hard_deadline {
        if let Err(error) = client.pump(ctx.hard_deadline, Some(phase)).await {
            ctx.metrics.error(&error.kind());
            break;
        }
    }
    client.finish();
}

/// After a client's active part: a failure is counted and ends the client; otherwise it
/// stays connected, answering, until the run is done.
pub async fn idle_after(
    client: &mut Client,
    ctx: &RunContext,
    phase: &mut watch::Receiver<Phase>,
    outcome: Result<(), ClientError>,
) {
    if let Err(error) = outcome {
        ctx.metrics.error(&error.kind());
        client.finish();
        return;
    }
    idle_until_done(client, ctx, phase).await;
}

fn progress(quiet: bool, label: &str, metrics: &Metrics) {
    if quiet {
        return;
    }
    let g = Metrics::get;
    eprintln!(
        "perch-load: {label}: sessions {} joins {} posts {} acked {} deliveries {} errors {}",
        g(&metrics.sessions),
        g(&metrics.joins),
        g(&metrics.posts_sent),
        g(&metrics.posts_acked),
        g(&metrics.deliveries),
        metrics.error_total()
    );
}

/// Runs the phases: waits for setup (all clients or the setup deadline), opens the window
/// for the duration, drains until `drained` holds or the drain time is up, then stops the
/// clients and collects them.
pub async fn coordinate(
    ctx: &RunContext,
    endpoint: &Endpoint,
    timing: &Timing,
    expected: usize,
    phase: watch::Sender<Phase>,
    mut tasks: JoinSet<()>,
    drained: impl Fn(&Metrics) -> bool,
) -> Timeline {
    let metrics = &ctx.metrics;
    let me = std::process::id();
    let server_sample = || endpoint.pid.and_then(procfs::sample);
    let load_start = procfs::load_average();
    let (server_before, me_before) = (server_sample(), procfs::sample(me));
    let setup_started = Instant::now();
    let setup_deadline = (setup_started + timing.setup_timeout).min(ctx.hard_deadline);
    let mut next_report = setup_started + Duration::from_secs(5);
    while (Metrics::get(&metrics.setup_finished) as usize) < expected
        && Instant::now() < setup_deadline
        && !tasks.is_empty()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        while tasks.try_join_next().is_some() {}
        if Instant::now() >= next_report {
            progress(timing.quiet, "setup", metrics);
            next_report += Duration::from_secs(5);
        }
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    if (Metrics::get(&metrics.setup_finished) as usize) < expected {
        metrics.errors_n(
            "timeout: setup",
            expected as u64 - Metrics::get(&metrics.setup_finished),
        );
    }
    let (server_setup, me_setup) = (server_sample(), procfs::sample(me));

    let window_started = Instant::now();
    let length = u64::try_from(timing.duration.as_nanos()).unwrap_or(u64::MAX);
    metrics.open_window(now_ns(), length);
    let _ = phase.send(Phase::Run);
    let window_end = (window_started + timing.duration).min(ctx.hard_deadline);
    let mut next_report = window_started + Duration::from_secs(5);
    while Instant::now() < window_end {
        let wake = next_report.min(window_end);
        tokio::time::sleep_until(wake.into()).await;
        if Instant::now() >= next_report {
            let label = format!(
                "{:>3} s",
                next_report.duration_since(window_started).as_secs()
            );
            progress(timing.quiet, &label, metrics);
            next_report += Duration::from_secs(5);
        }
    }
    metrics.close_window(now_ns());
    let window_secs = window_started.elapsed().as_secs_f64();
    let (server_window, me_window) = (server_sample(), procfs::sample(me));

    *ctx.posting.write().unwrap_or_else(|e| e.into_inner()) = false;
    let _ = phase.send(Phase::Drain);
    let drain_deadline = (Instant::now() + timing.drain).min(ctx.hard_deadline);
    while !drained(metrics) && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase.send(Phase::Done);
    let collect = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(ctx.timeout + Duration::from_secs(5), collect)
        .await
        .is_err()
    {
        metrics.errors_n("client did not stop in time", tasks.len() as u64);
        tasks.abort_all();
    }
    let (server_end, me_end) = (server_sample(), procfs::sample(me));
    progress(timing.quiet, "done", metrics);
    Timeline {
        setup_secs,
        window_secs,
        server: endpoint
            .pid
            .and_then(|pid| usage(pid, server_before, server_setup, server_window, server_end)),
        loadgen: usage(me, me_before, me_setup, me_window, me_end),
        load_start,
        load_end: procfs::load_average(),
    }
}
