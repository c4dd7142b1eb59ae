//! `ingest`: every client keeps --in-flight posts unacknowledged, sending a new one as each
//! SIP 200 comes back (perch answers a post only after its commit): the highest durable
//! post rate, as acknowledged posts/s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cli::Common;
use crate::client::{Client, ClientError};
use crate::error::LoadError;
use crate::plan::Plan;
use crate::run::{self, Endpoint, Phase, RunContext, Timing};
use crate::stats::Metrics;

use super::{ScenarioResult, client_specs};

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub in_flight: usize,
    pub size: usize,
    pub compare_sqlite: Option<PathBuf>,
    pub sqlite_batch: Option<usize>,
    pub sqlite_perch_schema: bool,
    pub sqlite_savepoint_per_row: bool,
}

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    options: &IngestOptions,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let posters = plan.users_with_rooms();
    let specs = client_specs(plan, common, &posters, "users with rooms", true)?;
    let n = specs.len();
    let in_flight = options.in_flight.max(1);
    let (phase, tasks) = run::spawn_clients(
        ctx,
        specs,
        timing,
        move |mut client, spec, mut phase, ctx| async move {
            let outcome =
                post_flat_out(&mut client, &ctx, &mut phase, &spec.rooms, in_flight).await;
            run::idle_after(&mut client, &ctx, &mut phase, outcome).await;
        },
    );
    let timeline = run::coordinate(ctx, endpoint, timing, n, phase, tasks, |m| {
        let g = Metrics::get;
        g(&m.posts_acked) + g(&m.posts_failed) >= g(&m.posts_sent)
    })
    .await;
    let mut settings = BTreeMap::new();
    settings.insert("in_flight".into(), in_flight.to_string());
    settings.insert("size".into(), options.size.to_string());
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: None,
        settings,
        requested: n,
    })
}

/// Keeps `in_flight` posts outstanding, round-robin over the client's rooms.
async fn post_flat_out(
    client: &mut Client,
    ctx: &RunContext,
    phase: &mut watch::Receiver<Phase>,
    rooms: &[String],
    in_flight: usize,
) -> Result<(), ClientError> {
    if rooms.is_empty() || client.entered == 0 {
        return Ok(());
    }
    let mut next_room = 0;
    while *phase.borrow() == Phase::Run && std::time::Instant::now() < ctx.hard_deadline {
        while client.posts_in_flight() < in_flight {
            // Deliveries are not checked here (other members may not be connected).
            if !client.post(&rooms[next_room % rooms.len()], 0)? {
                return Ok(()); // the window has closed
            }
            next_room += 1;
        }
        client.expire_posts();
        client
            .pump(
                std::time::Instant::now() + Duration::from_secs(1),
                Some(phase),
            )
            .await?;
    }
    Ok(())
}
