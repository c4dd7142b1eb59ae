//! The scenarios, one file each, and what they share: reading the plan, running against
//! perch and then (with --compare-null) against a null responder, the SQLite baseline,
//! and the report.

mod connections;
mod fanout;
mod history;
mod ingest;
mod join_storm;
mod lync_model;
mod siege;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;

use tokio::sync::watch;

use crate::cli::Common;
use crate::client::{Client, ClientError};
use crate::error::LoadError;
use crate::null_responder::NullChild;
use crate::plan::Plan;
use crate::report::{self, Output, Report, ReportInput};
use crate::run::{Endpoint, Phase, RunContext, Spec, Timeline, Timing};
use crate::sqlite_baseline::{self, SqliteOptions};
use crate::stats::Metrics;
use crate::target::{self, Connector};

pub use fanout::FanoutOptions;
pub use history::{HistoryArgs, HistoryOptions};
pub use ingest::IngestOptions;
pub use join_storm::JoinStormOptions;
pub use lync_model::LyncModelOptions;
pub use siege::{Attack, SiegeOptions};

#[derive(Debug, Clone)]
pub enum Scenario {
    Connections,
    Fanout(FanoutOptions),
    Ingest(IngestOptions),
    JoinStorm(JoinStormOptions),
    LyncModel(LyncModelOptions),
    History(HistoryOptions),
    Siege(SiegeOptions),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Connections => "connections",
            Scenario::Fanout(_) => "fanout",
            Scenario::Ingest(_) => "ingest",
            Scenario::JoinStorm(_) => "join-storm",
            Scenario::LyncModel(_) => "lync-model",
            Scenario::History(_) => "history",
            Scenario::Siege(_) => "siege",
        }
    }

    fn post_size(&self) -> usize {
        match self {
            Scenario::Fanout(o) => o.size,
            Scenario::Ingest(o) => o.size,
            Scenario::LyncModel(o) => o.size,
            _ => 100,
        }
    }
}

/// What a scenario hands back for the report.
pub struct ScenarioResult {
    pub timeline: Timeline,
    pub expected_deliveries: Option<u64>,
    pub settings: BTreeMap<String, String>,
    pub requested: usize,
}

/// The longest a run may take in all: setup, window, drain, and the time to stop clients.
pub fn run_budget(common: &Common) -> Duration {
    Duration::from_secs(
        common.setup_timeout + common.duration + common.drain + 2 * common.timeout + 15,
    )
}

fn plan(scenario: &Scenario, common: &Common) -> Result<Plan, LoadError> {
    match &common.data {
        Some(data) => {
            let plan = Plan::from_store(data, &common.domain)?;
            Ok(match common.room_size {
                Some(size) => plan.only_rooms_of(size),
                None => plan,
            })
        }
        None => Ok(Plan::synthetic(
            &common.domain,
            common.connections,
            common.rooms_per_user.max(1),
            matches!(scenario, Scenario::Fanout(_)),
        )),
    }
}

fn primary_endpoint(common: &Common) -> Result<Endpoint, LoadError> {
    let addr = match &common.target {
        Some(text) => target::parse_loopback(text)?,
        None => target::default_target(common.tls),
    };
    let cert = match (&common.cert, &common.data) {
        _ if !common.tls => None,
        (Some(cert), _) => Some(cert.clone()),
        (None, Some(data)) => Some(data.join(perch::net::tls::DEV_CERT_FILE)),
        (None, None) => {
            return Err(LoadError::Plan(
                "--tls needs the certificate to pin: --cert PATH or --data DIR".into(),
            ));
        }
    };
    Ok(Endpoint {
        server: if common.label == "null-responder" {
            "null-responder"
        } else {
            "perch"
        },
        addr,
        cert,
        pid: common.server_pid,
    })
}

/// Runs the scenario against the target, then against the baselines asked for.
pub async fn execute(scenario: Scenario, common: Common) -> Result<Output, LoadError> {
    let endpoint = primary_endpoint(&common)?;
    let (for_plan, common_for_plan) = (scenario.clone(), common.clone());
    let plan = tokio::task::spawn_blocking(move || plan(&for_plan, &common_for_plan))
        .await
        .map_err(|e| LoadError::Task(e.to_string()))??;
    let plan = Arc::new(plan);
    let mut report = run_once(&scenario, &common, &endpoint, &plan).await?;
    if common.label != "perch" {
        report.server = common.label.clone();
    }
    let null_baseline = if common.compare_null {
        let child = NullChild::spawn(common.tls, common.null_fanout, run_budget(&common)).await?;
        let null = Endpoint {
            server: "null-responder",
            addr: child.addr,
            cert: child.cert.clone(),
            pid: child.pid,
        };
        let outcome = run_once(&scenario, &common, &null, &plan).await;
        child.stop().await;
        Some(outcome?)
    } else {
        None
    };
    let sqlite_baseline = match &scenario {
        Scenario::Ingest(options) => match &options.compare_sqlite {
            Some(dir) => {
                let sqlite = SqliteOptions {
                    data: dir.clone(),
                    duration: Duration::from_secs(common.duration),
                    batch: options.sqlite_batch.unwrap_or(common.connections).max(1),
                    row_bytes: options.size,
                    perch_schema: options.sqlite_perch_schema,
                    savepoint_per_row: options.sqlite_savepoint_per_row,
                    max_rows: u64::MAX,
                };
                if !common.quiet {
                    eprintln!(
                        "perch-load: SQLite baseline in {} for {} s, batches of {}",
                        dir.display(),
                        common.duration,
                        sqlite.batch
                    );
                }
                let result = tokio::task::spawn_blocking(move || sqlite_baseline::run(&sqlite))
                    .await
                    .map_err(|e| LoadError::Task(e.to_string()))??;
                Some(result)
            }
            None => None,
        },
        _ => None,
    };
    let ratios = report::ratios(&report, null_baseline.as_ref(), sqlite_baseline.as_ref());
    Ok(Output {
        report,
        null_baseline,
        sqlite_baseline,
        ratios,
    })
}

async fn run_once(
    scenario: &Scenario,
    common: &Common,
    endpoint: &Endpoint,
    plan: &Arc<Plan>,
) -> Result<Report, LoadError> {
    let timeout = Duration::from_secs(common.timeout.max(1));
    let connector = Connector::new(
        endpoint.addr,
        endpoint.cert.as_deref(),
        common.per_source,
        timeout,
    )?;
    let transport = connector.transport();
    let sign_in =
        crate::auth::sign_in(common.auth, common.password.as_deref()).map_err(LoadError::Plan)?;
    let auth = sign_in.name();
    let ctx = Arc::new(RunContext {
        metrics: Arc::new(Metrics::new()),
        connector,
        domain: common.domain.to_ascii_lowercase(),
        chat_uri: common
            .chat_uri
            .clone()
            .unwrap_or_else(|| format!("sip:ocschat@{}", common.domain.to_ascii_lowercase())),
        timeout,
        hard_deadline: Instant::now() + run_budget(common),
        post_size: scenario.post_size(),
        sign_in,
        posting: std::sync::RwLock::new(true),
    });
    let timing = Timing {
        duration: Duration::from_secs(common.duration),
        setup_timeout: Duration::from_secs(common.setup_timeout),
        drain: Duration::from_secs(common.drain),
        connect_concurrency: common.connect_concurrency,
        quiet: common.quiet,
    };
    if !common.quiet {
        eprintln!(
            "perch-load: {} against {} at {} ({transport}), {} connections, {} s",
            scenario.name(),
            endpoint.server,
            endpoint.addr,
            common.connections,
            common.duration
        );
    }
    let now = time::OffsetDateTime::now_utc();
    let started_at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default();
    let budget = run_budget(common) + Duration::from_secs(10);
    let run = async {
        match scenario {
            Scenario::Connections => connections::run(&ctx, plan, common, endpoint, &timing).await,
            Scenario::Fanout(o) => fanout::run(&ctx, plan, common, o, endpoint, &timing).await,
            Scenario::Ingest(o) => ingest::run(&ctx, plan, common, o, endpoint, &timing).await,
            Scenario::History(o) => history::run(&ctx, plan, common, o, endpoint, &timing).await,
            Scenario::Siege(o) => siege::run(&ctx, plan, common, o, endpoint, &timing).await,
            Scenario::LyncModel(o) => {
                lync_model::run(&ctx, plan, common, o, endpoint, &timing).await
            }
            Scenario::JoinStorm(o) => {
                join_storm::run(&ctx, plan, common, o, endpoint, &timing).await
            }
        }
    };
    let result = tokio::time::timeout(budget, run)
        .await
        .map_err(|_| LoadError::Deadline)??;
    let mut settings = result.settings;
    settings.insert("connections".into(), common.connections.to_string());
    settings.insert("duration_s".into(), common.duration.to_string());
    settings.insert("rooms_per_user".into(), common.rooms_per_user.to_string());
    settings.insert("auth".into(), auth.to_owned());
    if let Some(size) = common.room_size {
        settings.insert("room_size".into(), size.to_string());
    }
    Ok(report::build(
        ReportInput {
            scenario: scenario.name(),
            server: endpoint.server,
            target: endpoint.addr.to_string(),
            transport,
            started_at,
            settings,
            connections_requested: result.requested,
            expected_deliveries: result.expected_deliveries,
        },
        &ctx.metrics,
        &result.timeline,
    ))
}

/// When a client posts: every `interval`, starting `offset` into the window, with at most
/// `in_flight` posts unacknowledged.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    interval: Duration,
    offset: Duration,
    in_flight: usize,
}

/// Posts due while this far behind schedule are dropped from the schedule, not burst out.
const MAX_LAG: Duration = Duration::from_secs(1);

/// Posts on a fixed schedule (open loop) while the window is open; `next` names each
/// post's room and the deliveries it will owe.
async fn post_on_schedule(
    client: &mut Client,
    ctx: &RunContext,
    phase: &mut watch::Receiver<Phase>,
    schedule: Schedule,
    mut next: impl FnMut() -> (String, u64),
) -> Result<(), ClientError> {
    let Schedule {
        interval,
        offset,
        in_flight,
    } = schedule;
    let mut due = Instant::now() + offset;
    while *phase.borrow() == Phase::Run && Instant::now() < ctx.hard_deadline {
        let now = Instant::now();
        if now >= due {
            if client.posts_in_flight() < in_flight {
                let (uid, audience) = next();
                if !client.post(&uid, audience)? {
                    break; // the window has closed
                }
            } else {
                ctx.metrics.error("post skipped: in-flight cap");
            }
            due += interval;
            if now.saturating_duration_since(due) > MAX_LAG {
                let behind = now.saturating_duration_since(due).as_secs_f64();
                ctx.metrics.errors_n(
                    "post skipped: behind schedule",
                    (behind / interval.as_secs_f64()) as u64,
                );
                due = now + interval;
            }
            continue;
        }
        client.expire_posts();
        client.pump(due, Some(phase)).await?;
    }
    Ok(())
}

/// After the drain: every acknowledged post must have reached its whole audience; what did
/// not is counted as an error. Returns the deliveries expected.
fn count_missing_deliveries(metrics: &Metrics) -> u64 {
    let expected = Metrics::get(&metrics.expected_deliveries);
    metrics.errors_n(
        "missing deliveries",
        expected.saturating_sub(Metrics::get(&metrics.deliveries)),
    );
    expected
}

/// One client per connection: client i signs in as `users[i % users.len()]` (indexes into
/// the plan's users) and joins up to `rooms_per_user` of that user's rooms. Clients beyond
/// the users reuse them from the start, which is said on stderr.
fn client_specs(
    plan: &Plan,
    common: &Common,
    users: &[usize],
    what: &str,
    join_in_setup: bool,
) -> Result<Vec<Spec>, LoadError> {
    if users.is_empty() {
        return Err(LoadError::Plan(format!(
            "no {what} to sign in as (provision users and rooms first)"
        )));
    }
    let wanted = common.connections;
    if wanted > users.len() && !common.quiet {
        eprintln!(
            "perch-load: only {} {what}; {wanted} connections reuse them (provision more users for distinct identities)",
            users.len()
        );
    }
    Ok((0..wanted)
        .map(|index| {
            let u = users[index % users.len()];
            Spec {
                index,
                aor: plan.users[u].clone(),
                rooms: plan.room_uids(u, common.rooms_per_user),
                join_in_setup,
            }
        })
        .collect())
}
