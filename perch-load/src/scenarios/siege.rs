//! `siege`: holds --connections hostile connections open — idle ones that never send a
//! byte, half-open ones that stop inside their first message (a partial TLS record or SIP
//! start line), and slowloris ones that send a header line every few seconds — reopening
//! each as soon as the server closes it. Meanwhile, from an address of its own, a legitimate
//! client signs in, opens its chat dialog and joins a room, --probes times over the window:
//! how long that takes while the server is under siege.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::Common;
use crate::client::Client;
use crate::error::LoadError;
use crate::plan::Plan;
use crate::run::{self, Endpoint, Phase, RunContext, Timing};
use crate::stats::{Metrics, now_ns};
use crate::wire::Stream;

use super::ScenarioResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// Connect and send nothing.
    Idle,
    /// Stop inside the first message: 3 bytes of a TLS record, or half a SIP start line.
    HalfOpen,
    /// A SIP request one header line at a time, a line every 5 s, never finished.
    Slowloris,
    /// The three in turn.
    Mix,
}

#[derive(Debug, Clone)]
pub struct SiegeOptions {
    pub attack: Attack,
    pub probes: usize,
}

/// How often a slowloris connection sends its next header line.
const DRIP: Duration = Duration::from_secs(5);

/// What the attackers saw, shared.
#[derive(Default)]
struct Siege {
    open: AtomicU64,
    reopened: AtomicU64,
    /// The fewest hostile connections open when a probe started.
    open_at_probes: AtomicU64,
}

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    options: &SiegeOptions,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let members = plan.users_with_rooms();
    let probe_user = *members.first().ok_or_else(|| {
        LoadError::Plan("no user is a member of a room (provision rooms first)".into())
    })?;
    let probe_room = plan.room_uids(probe_user, 1);
    let attackers = common.connections;
    let tls = ctx.connector.transport() == "tls";
    let siege = Arc::new(Siege {
        open_at_probes: AtomicU64::new(u64::MAX),
        ..Siege::default()
    });
    let (phase, _) = watch::channel(Phase::Setup);
    let mut tasks = JoinSet::new();
    for index in 0..attackers {
        let attack = match options.attack {
            Attack::Mix => [Attack::Idle, Attack::HalfOpen, Attack::Slowloris][index % 3],
            other => other,
        };
        let (ctx, siege, phase) = (ctx.clone(), siege.clone(), phase.subscribe());
        tasks.spawn(async move { besiege(&ctx, &siege, phase, index, attack, tls).await });
    }
    // Probes come from the first address after the attackers' (under its own cap).
    let probe_index = attackers.div_ceil(common.per_source.max(1)) * common.per_source.max(1);
    let totals = Arc::new(Mutex::new(Vec::new()));
    let probe = Probe {
        ctx: ctx.clone(),
        aor: plan.users[probe_user].clone(),
        room: probe_room,
        index: probe_index,
        every: timing.duration.div_f64(options.probes.max(1) as f64),
        count: options.probes.max(1),
        totals: totals.clone(),
        siege: siege.clone(),
    };
    let probe_phase = phase.subscribe();
    tasks.spawn(async move { probe.run(probe_phase).await });
    let timeline = run::coordinate(ctx, endpoint, timing, attackers, phase, tasks, |_| true).await;
    let mut settings = BTreeMap::new();
    settings.insert(
        "attack".into(),
        format!("{:?}", options.attack).to_lowercase(),
    );
    let held = siege.open_at_probes.load(Ordering::Relaxed);
    if held != u64::MAX {
        settings.insert("held_at_probes_min".into(), held.to_string());
    }
    if let Some(server) = &timeline.server
        && attackers > 0
    {
        let grown = server
            .rss_after_setup_kib
            .saturating_sub(server.rss_before_kib);
        settings.insert(
            "server_kib_per_held".into(),
            format!("{:.1}", grown as f64 / attackers as f64),
        );
    }
    settings.insert(
        "reopened".into(),
        siege.reopened.load(Ordering::Relaxed).to_string(),
    );
    let mut totals = totals.lock().map(|t| t.clone()).unwrap_or_default();
    totals.sort_by(f64::total_cmp);
    settings.insert("probes_ok".into(), totals.len().to_string());
    if let (Some(first), Some(last)) = (totals.first(), totals.last()) {
        settings.insert("probe_min_ms".into(), format!("{first:.1}"));
        settings.insert(
            "probe_median_ms".into(),
            format!("{:.1}", totals[totals.len() / 2]),
        );
        settings.insert("probe_max_ms".into(), format!("{last:.1}"));
    }
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: None,
        settings,
        // The sessions are the probes'; the hostile connections are counted above.
        requested: options.probes.max(1),
    })
}

/// Keeps one hostile connection open until the run is done, reopening it when the server
/// closes it. Counts as set up once its first connection is open.
async fn besiege(
    ctx: &RunContext,
    siege: &Siege,
    mut phase: watch::Receiver<Phase>,
    index: usize,
    attack: Attack,
    tls: bool,
) {
    let source = ctx.connector.source_for(index);
    let mut first = true;
    while *phase.borrow() != Phase::Done && Instant::now() < ctx.hard_deadline {
        // A slowloris client completes its TLS handshake (over TLS) and then drips.
        let connected = match attack {
            Attack::Slowloris => ctx.connector.connect(source).await.map(|(s, _)| s),
            _ => ctx
                .connector
                .connect_raw(source)
                .await
                .map(|s| Box::new(s) as Box<dyn Stream>),
        };
        let stream = match connected {
            Ok(stream) => stream,
            Err(error) => {
                ctx.metrics
                    .error(&format!("siege connect: {}", error.kind()));
                if first {
                    Metrics::add(&ctx.metrics.setup_finished, 1);
                    first = false;
                }
                // Back off rather than spin against a refusing server.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        siege.open.fetch_add(1, Ordering::Relaxed);
        if first {
            Metrics::add(&ctx.metrics.setup_finished, 1);
            first = false;
        } else {
            siege.reopened.fetch_add(1, Ordering::Relaxed);
        }
        hold(stream, &mut phase, attack, tls).await;
        siege.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Plays one attack on one connection until the server closes it or the run is done.
async fn hold(
    mut stream: Box<dyn Stream>,
    phase: &mut watch::Receiver<Phase>,
    attack: Attack,
    tls: bool,
) {
    let opening: &[u8] = match (attack, tls) {
        (Attack::HalfOpen, true) => b"\x16\x03\x01",
        (Attack::HalfOpen, false) => b"REGISTER sip:exa",
        (Attack::Slowloris, _) => b"OPTIONS sip:x SIP/2.0\r\n",
        _ => b"",
    };
    if stream.write_all(opening).await.is_err() {
        return;
    }
    let mut drip = tokio::time::interval_at((Instant::now() + DRIP).into(), DRIP);
    let mut line = 0u64;
    let mut sink = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut sink) => match read {
                // Closed by the server (or an error): the caller reopens.
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = drip.tick(), if attack == Attack::Slowloris => {
                line += 1;
                if stream.write_all(format!("X-Drip-{line}: {line}\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Done {
                    return;
                }
            }
        }
    }
}

/// The legitimate client: signs in, opens the chat dialog, joins its room, signs off;
/// `count` times during the window.
struct Probe {
    ctx: Arc<RunContext>,
    aor: String,
    room: Vec<String>,
    index: usize,
    every: Duration,
    count: usize,
    totals: Arc<Mutex<Vec<f64>>>,
    siege: Arc<Siege>,
}

impl Probe {
    async fn run(self, mut phase: watch::Receiver<Phase>) {
        while *phase.borrow() == Phase::Setup {
            if phase.changed().await.is_err() {
                return;
            }
        }
        let mut next = Instant::now();
        for _ in 0..self.count {
            if *phase.borrow() != Phase::Run {
                return;
            }
            tokio::time::sleep_until(next.into()).await;
            next += self.every;
            let held = self.siege.open.load(Ordering::Relaxed);
            self.siege.open_at_probes.fetch_min(held, Ordering::Relaxed);
            let started = now_ns();
            match self.once().await {
                Ok(()) => {
                    let ms = now_ns().saturating_sub(started) as f64 / 1e6;
                    if let Ok(mut totals) = self.totals.lock() {
                        totals.push(ms);
                    }
                }
                Err(error) => self.ctx.metrics.error(&format!("probe: {}", error.kind())),
            }
        }
    }

    async fn once(&self) -> Result<(), crate::client::ClientError> {
        let mut client = Client::login(self.ctx.clone(), self.index, self.aor.clone()).await?;
        client.open_dialog().await?;
        let joined = client.bjoin(&self.room).await?;
        let outcome = if joined == self.room.len() {
            client.close_dialog().await
        } else {
            Err(crate::client::ClientError::Xccos {
                what: "bjoin",
                code: "fib".into(),
            })
        };
        client.finish();
        outcome
    }
}
