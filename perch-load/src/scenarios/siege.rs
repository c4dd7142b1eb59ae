//! `siege`: holds --connections hostile connections open — idle ones that never send a
//! byte, half-open ones that stop inside their first message (a partial TLS record or SIP
//! start line), and slowloris ones that send a header line every few seconds — reopening
//! each as soon as the server closes it. Meanwhile, from an address of its own, a legitimate
//! client signs in, opens its chat dialog, joins a room, posts (acknowledged and echoed
//! back) and says BYE, --probes times over the window: how long that takes while the
//! server is under siege.
//!
//! Through the same window, optionally: a nonce flood (--nonce-flood N connections sending
//! REGISTERs without credentials back to back, some answering their challenge with a wrong
//! password) and a dialog flood (--dialog-flood N INVITEs of one signed-in user, on one
//! connection and then on more). Their answers are counted by status; they are not errors
//! of the run, which counts only what the legitimate client and the hostile connects met.
//! With --server-pid the report has the server's peak RSS (sampled every 100 ms, and
//! VmHWM at the end).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::SignIn;
use crate::cli::Common;
use crate::client::{Client, ClientError};
use crate::error::LoadError;
use crate::plan::Plan;
use crate::procfs;
use crate::run::{self, Endpoint, Phase, RunContext, Timing};
use crate::stats::{Metrics, now_ns};
use crate::target::Connector;
use perch::lync::client::{Stream, WireError};

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
    /// Connections flooding REGISTERs without credentials; 0: none.
    pub nonce_flood: usize,
    /// Chat dialogs one user tries to open; 0: none.
    pub dialog_flood: usize,
}

/// One nonce-flood connection in this many answers its challenges with a wrong password.
const WRONG_PASSWORD_EVERY: usize = 10;

/// The nonce flood's first source address is this many address steps up (127.0.1.1 with
/// one connection per address): another /24 than the probe's, so perch's per-network
/// challenge limit meets the flood, not the legitimate client.
const NONCE_FLOOD_FIRST_STEP: usize = 256;

/// Dialog attempts per connection after the first one (twice perch's default cap of 8).
const DIALOGS_PER_LATER_CONNECTION: usize = 16;

/// perch's default dialog caps (`limits.max_dialogs_per_connection`, `_per_user`): what
/// the report expects the flood to get if the server runs with them.
const DEFAULT_DIALOGS_PER_CONNECTION: usize = 8;
const DEFAULT_DIALOGS_PER_USER: usize = 32;

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

/// Counts by key, shared by the tasks of a flood.
#[derive(Default)]
struct Tally<K: Ord>(Mutex<BTreeMap<K, u64>>);

impl<K: Ord> Tally<K> {
    fn add(&self, key: K) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(key).or_default() += 1;
        }
    }

    fn get(&self) -> BTreeMap<K, u64>
    where
        K: Clone,
    {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// `401:12,403:3`, or `none`; keys with spaces get underscores (report settings are
/// space-separated).
fn tally_text<K: std::fmt::Display>(counts: &BTreeMap<K, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{}:{n}", k.to_string().replace(' ', "_")))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the nonce flood saw.
#[derive(Default)]
struct NonceFlood {
    /// REGISTERs sent (a wrong-password answer is a second one in the same exchange).
    registers: AtomicU64,
    /// Final answers, by status.
    answers: Tally<u16>,
    /// Challenges answered with a wrong password.
    wrong_passwords: AtomicU64,
    /// Connections opened after the first of each flooder.
    reopened: AtomicU64,
    /// Connections the server closed (or broke) under a flooder.
    closed: AtomicU64,
    /// Anything else that ended an exchange: connect failures, timeouts, by kind.
    failures: Tally<String>,
}

/// What the dialog flood saw.
#[derive(Default)]
struct DialogFlood {
    attempts: AtomicU64,
    accepted: AtomicU64,
    /// The most dialogs accepted on one connection.
    accepted_max_per_connection: AtomicU64,
    /// Refusals, by status.
    refused: Tally<u16>,
    connections: AtomicU64,
    failures: Tally<String>,
}

/// How a dialog flood of `attempts` INVITEs is spread over connections: half (rounded up)
/// on the first, then [`DIALOGS_PER_LATER_CONNECTION`] per connection.
fn dialog_plan(attempts: usize) -> Vec<usize> {
    if attempts == 0 {
        return Vec::new();
    }
    let first = attempts.div_ceil(2);
    let mut plan = vec![first];
    let mut left = attempts - first;
    while left > 0 {
        let n = left.min(DIALOGS_PER_LATER_CONNECTION);
        plan.push(n);
        left -= n;
    }
    plan
}

/// The dialogs a plan can open under caps per connection and per user, all held open.
fn dialogs_allowed(plan: &[usize], per_connection: usize, per_user: usize) -> usize {
    plan.iter()
        .map(|&n| n.min(per_connection))
        .sum::<usize>()
        .min(per_user)
}

/// The connection index (source address step × `per_source`) of nonce flooder `i`: one
/// flooder per address from 127.0.1.1 on.
fn nonce_flood_index(i: usize, per_source: usize) -> usize {
    (NONCE_FLOOD_FIRST_STEP + i) * per_source.max(1)
}

/// Whether nonce flooder `i` answers its challenges with a wrong password.
fn answers_wrongly(i: usize) -> bool {
    i % WRONG_PASSWORD_EVERY == WRONG_PASSWORD_EVERY - 1
}

/// min, median and max of sorted values.
fn spread(sorted: &[f64]) -> Option<(f64, f64, f64)> {
    Some((*sorted.first()?, sorted[sorted.len() / 2], *sorted.last()?))
}

/// Waits out the setup; whether the window is open.
async fn until_run(phase: &mut watch::Receiver<Phase>) -> bool {
    while *phase.borrow() == Phase::Setup {
        if phase.changed().await.is_err() {
            return false;
        }
    }
    *phase.borrow() == Phase::Run
}

/// Returns once the window has closed.
async fn until_window_closed(mut phase: watch::Receiver<Phase>) {
    while matches!(*phase.borrow(), Phase::Setup | Phase::Run) {
        if phase.changed().await.is_err() {
            return;
        }
    }
}

/// A context of its own for the floods, so that their sign-ins, sessions and refusals do
/// not mix with the legitimate client's figures.
fn flood_context(
    ctx: &RunContext,
    endpoint: &Endpoint,
    common: &Common,
) -> Result<Arc<RunContext>, LoadError> {
    Ok(Arc::new(RunContext {
        metrics: Arc::new(Metrics::new()),
        connector: Connector::new(
            endpoint.addr,
            endpoint.cert.as_deref(),
            common.per_source,
            ctx.timeout,
        )?,
        domain: ctx.domain.clone(),
        chat_uri: ctx.chat_uri.clone(),
        timeout: ctx.timeout,
        hard_deadline: ctx.hard_deadline,
        post_size: ctx.post_size,
        sign_in: ctx.sign_in.clone(),
        posting: std::sync::RwLock::new(true),
    }))
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

    let per_source = common.per_source.max(1);
    let nonce_flood = Arc::new(NonceFlood::default());
    let dialog_flood = Arc::new(DialogFlood::default());
    let dialog_user = (0..plan.users.len())
        .rev()
        .find(|&u| u != probe_user)
        .unwrap_or(probe_user);
    if options.nonce_flood > 0 || options.dialog_flood > 0 {
        let flood_ctx = flood_context(ctx, endpoint, common)?;
        // Flooders sign in as the users other than the probe's and the dialog flooder's.
        let others: Vec<usize> = (0..plan.users.len())
            .filter(|&u| u != probe_user && u != dialog_user)
            .collect();
        for i in 0..options.nonce_flood {
            let aor = match others.get(i % others.len().max(1)) {
                Some(&u) => plan.users[u].clone(),
                None => format!("nobody{i}@{}", ctx.domain),
            };
            let (ctx, flood, phase) = (flood_ctx.clone(), nonce_flood.clone(), phase.subscribe());
            let index = nonce_flood_index(i, per_source);
            tasks.spawn(async move {
                flood_nonces(ctx, &flood, phase, index, aor, answers_wrongly(i)).await
            });
        }
        if options.dialog_flood > 0 {
            let (ctx, flood, phase) = (flood_ctx.clone(), dialog_flood.clone(), phase.subscribe());
            let aor = plan.users[dialog_user].clone();
            // From the address after the probe's.
            let index = probe_index + per_source;
            let plan = dialog_plan(options.dialog_flood);
            // Paced over the first 80 % of the window, so it overlaps the probes.
            let every = timing.duration.mul_f64(0.8) / options.dialog_flood as u32;
            tasks.spawn(async move {
                flood_dialogs(ctx, &flood, phase, index, aor, &plan, every).await
            });
        }
    }
    let rss_peak = Arc::new(AtomicU64::new(0));
    if let Some(pid) = endpoint.pid {
        let (rss_peak, mut phase) = (rss_peak.clone(), phase.subscribe());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while *phase.borrow() != Phase::Done {
                if let Some(sample) = procfs::sample(pid) {
                    rss_peak.fetch_max(sample.rss_kib, Ordering::Relaxed);
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = phase.changed() => if changed.is_err() { return },
                }
            }
        });
    }
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
    if let Some((min, median, max)) = spread(&totals) {
        settings.insert("probe_min_ms".into(), format!("{min:.1}"));
        settings.insert("probe_median_ms".into(), format!("{median:.1}"));
        settings.insert("probe_max_ms".into(), format!("{max:.1}"));
    }
    if let Some(pid) = endpoint.pid {
        let sampled = rss_peak.load(Ordering::Relaxed);
        if sampled > 0 {
            settings.insert("server_rss_peak_kib".into(), sampled.to_string());
        }
        if let Some(hwm) = procfs::peak_rss_kib(pid) {
            settings.insert("server_rss_hwm_kib".into(), hwm.to_string());
        }
    }
    if options.nonce_flood > 0 {
        let f = &nonce_flood;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        settings.insert(
            "nonce_flood_connections".into(),
            options.nonce_flood.to_string(),
        );
        settings.insert("nonce_flood_registers".into(), get(&f.registers));
        settings.insert("nonce_flood_answers".into(), tally_text(&f.answers.get()));
        settings.insert(
            "nonce_flood_wrong_passwords".into(),
            get(&f.wrong_passwords),
        );
        settings.insert("nonce_flood_closed".into(), get(&f.closed));
        settings.insert("nonce_flood_reopened".into(), get(&f.reopened));
        settings.insert("nonce_flood_failures".into(), tally_text(&f.failures.get()));
    }
    if options.dialog_flood > 0 {
        let f = &dialog_flood;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        settings.insert("dialog_flood_user".into(), plan.users[dialog_user].clone());
        let per_connection = dialog_plan(options.dialog_flood);
        settings.insert("dialog_flood_attempts".into(), get(&f.attempts));
        settings.insert("dialog_flood_accepted".into(), get(&f.accepted));
        settings.insert(
            "dialog_flood_accepted_max_per_connection".into(),
            get(&f.accepted_max_per_connection),
        );
        settings.insert(
            "dialog_flood_allowed_by_default_caps".into(),
            dialogs_allowed(
                &per_connection,
                DEFAULT_DIALOGS_PER_CONNECTION,
                DEFAULT_DIALOGS_PER_USER,
            )
            .to_string(),
        );
        settings.insert("dialog_flood_refused".into(), tally_text(&f.refused.get()));
        settings.insert("dialog_flood_connections".into(), get(&f.connections));
        settings.insert(
            "dialog_flood_failures".into(),
            tally_text(&f.failures.get()),
        );
    }
    let expected = Metrics::get(&ctx.metrics.expected_deliveries);
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: (expected > 0).then_some(expected),
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

/// One nonce flooder, through the window: REGISTERs without credentials, one at a time as
/// fast as perch answers, each with a new Call-ID (and Via branch); with `wrong`, every
/// challenge answered with a wrong password. Reopens a connection the server closes.
async fn flood_nonces(
    ctx: Arc<RunContext>,
    flood: &NonceFlood,
    mut phase: watch::Receiver<Phase>,
    index: usize,
    aor: String,
    wrong: bool,
) {
    if !until_run(&mut phase).await {
        return;
    }
    let sign_in = if wrong {
        SignIn::Digest {
            password: "not-the-password".into(),
        }
    } else {
        // Answers no challenge: the 401 is the outcome.
        SignIn::Trusted
    };
    let work = async {
        let mut first = true;
        while Instant::now() < ctx.hard_deadline {
            let mut client = match Client::connect(ctx.clone(), index, aor.clone()).await {
                Ok(client) => client.with_branches(),
                Err(error) => {
                    flood.failures.add(error.kind());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if !first {
                flood.reopened.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            loop {
                match client.register_attempt(&sign_in).await {
                    Ok(attempt) => {
                        let sent = attempt.codes.len() as u64;
                        flood.registers.fetch_add(sent, Ordering::Relaxed);
                        if sent > 1 {
                            flood.wrong_passwords.fetch_add(sent - 1, Ordering::Relaxed);
                        }
                        if let Some(&code) = attempt.codes.last() {
                            flood.answers.add(code);
                        }
                    }
                    Err(ClientError::Wire(
                        WireError::Closed | WireError::Read(_) | WireError::Write(_),
                    )) => {
                        flood.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(error) => {
                        flood.failures.add(error.kind());
                        break;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = until_window_closed(phase) => {}
    }
}

/// The dialog flooder: signs in as one user and sends INVITEs to the chat endpoint, one
/// every `every`, `plan[k]` of them on its k-th connection (each signed in anew), and
/// keeps every connection and every accepted dialog open until the run is done.
async fn flood_dialogs(
    ctx: Arc<RunContext>,
    flood: &DialogFlood,
    mut phase: watch::Receiver<Phase>,
    index: usize,
    aor: String,
    plan: &[usize],
    every: Duration,
) {
    if !until_run(&mut phase).await {
        return;
    }
    let mut held = Vec::new();
    let attempts = async {
        let mut next = Instant::now();
        for &n in plan {
            let mut client = match Client::login(ctx.clone(), index, aor.clone()).await {
                Ok(client) => client,
                Err(error) => {
                    flood.failures.add(format!("sign-in: {}", error.kind()));
                    continue;
                }
            };
            flood.connections.fetch_add(1, Ordering::Relaxed);
            let mut accepted = 0u64;
            for _ in 0..n {
                tokio::time::sleep_until(next.into()).await;
                next += every;
                flood.attempts.fetch_add(1, Ordering::Relaxed);
                match client.open_dialog().await {
                    Ok(()) => {
                        accepted += 1;
                        flood.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ClientError::Status { code, .. }) => flood.refused.add(code),
                    Err(error) => {
                        flood.failures.add(error.kind());
                        break;
                    }
                }
            }
            flood
                .accepted_max_per_connection
                .fetch_max(accepted, Ordering::Relaxed);
            held.push(client);
        }
    };
    tokio::select! {
        _ = attempts => {}
        _ = until_window_closed(phase.clone()) => {}
    }
    // Hold what was opened (answering the server) until the run is done.
    let mut idle = JoinSet::new();
    for mut client in held {
        let (ctx, mut phase) = (ctx.clone(), phase.clone());
        idle.spawn(async move { run::idle_until_done(&mut client, &ctx, &mut phase).await });
    }
    while idle.join_next().await.is_some() {}
}

/// The legitimate client: signs in, opens the chat dialog, joins its room, posts and sees
/// the post acknowledged and echoed, signs off; `count` times during the window.
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
            // A probe delayed past the window's end is not started.
            if *phase.borrow() != Phase::Run {
                return;
            }
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

    async fn once(&self) -> Result<(), ClientError> {
        let mut client = Client::login(self.ctx.clone(), self.index, self.aor.clone()).await?;
        client.open_dialog().await?;
        let joined = client.bjoin(&self.room).await?;
        let outcome = match self.room.first() {
            Some(room) if joined == self.room.len() => match client.post_confirmed(room).await {
                Ok(()) => client.close_dialog().await,
                Err(error) => Err(error),
            },
            _ => Err(ClientError::Xccos {
                what: "bjoin",
                code: "fib".into(),
            }),
        };
        client.finish();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialog_flood_is_half_on_one_connection_then_sixteen_per_connection() {
        let plan = dialog_plan(1000);
        assert_eq!(plan[0], 500);
        assert!(plan[1..].iter().all(|&n| n <= DIALOGS_PER_LATER_CONNECTION));
        assert_eq!(plan.iter().sum::<usize>(), 1000);
        assert_eq!(plan.len(), 1 + 32);
        assert_eq!(dialog_plan(1), vec![1]);
        assert_eq!(dialog_plan(3), vec![2, 1]);
        assert!(dialog_plan(0).is_empty());
    }

    #[test]
    fn the_caps_allow_eight_per_connection_and_thirty_two_in_all() {
        assert_eq!(dialogs_allowed(&dialog_plan(1000), 8, 32), 32);
        // One connection: only its own cap.
        assert_eq!(dialogs_allowed(&[500], 8, 32), 8);
        // Fewer attempts than the caps: all of them.
        assert_eq!(dialogs_allowed(&dialog_plan(6), 8, 32), 6);
        assert_eq!(dialogs_allowed(&[5, 16, 16], 8, 32), 21);
    }

    #[test]
    fn nonce_flooders_sit_in_another_slash_24_than_the_probe() {
        let connector = Connector::new(
            "127.0.0.1:5060".parse().unwrap(),
            None,
            200,
            Duration::from_secs(1),
        )
        .unwrap();
        // The probe of a 5,000-connection siege: the first address after the attackers'.
        let probe = connector.source_for(5000).unwrap().to_string();
        assert_eq!(probe, "127.0.0.26");
        let first = connector.source_for(nonce_flood_index(0, 200)).unwrap();
        let last = connector.source_for(nonce_flood_index(199, 200)).unwrap();
        assert_eq!(first.to_string(), "127.0.1.1");
        assert_eq!(last.to_string(), "127.0.1.200");
        assert_eq!(
            (0..200).filter(|&i| answers_wrongly(i)).count(),
            200 / WRONG_PASSWORD_EVERY
        );
    }

    #[test]
    fn tallies_read_as_one_word() {
        let statuses = Tally::default();
        for code in [401, 403, 401, 503] {
            statuses.add(code);
        }
        assert_eq!(tally_text(&statuses.get()), "401:2,403:1,503:1");
        let kinds = Tally::default();
        kinds.add("connection closed by server".to_owned());
        assert_eq!(tally_text(&kinds.get()), "connection_closed_by_server:1");
        assert_eq!(tally_text(&BTreeMap::<u16, u64>::new()), "none");
    }

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(spread(&[1.0, 2.0, 9.0]), Some((1.0, 2.0, 9.0)));
        assert_eq!(spread(&[4.0]), Some((4.0, 4.0, 4.0)));
        assert_eq!(spread(&[]), None);
    }
}
