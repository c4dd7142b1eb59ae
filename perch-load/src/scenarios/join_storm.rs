//! `join-storm`: clients sign in and open their chat dialog first; when the window opens
//! they all bjoin every room they belong to (up to --rooms-per-user) at once, then BYE,
//! INVITE again and bjoin again, for --rounds or until the window closes: joins/s.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::cli::Common;
use crate::client::{Client, ClientError};
use crate::error::LoadError;
use crate::plan::Plan;
use crate::run::{self, Endpoint, Phase, RunContext, Timing};

use super::{ScenarioResult, client_specs};

#[derive(Debug, Clone)]
pub struct JoinStormOptions {
    /// 0 = as many rounds as the window holds.
    pub rounds: usize,
}

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    options: &JoinStormOptions,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let joiners = plan.users_with_rooms();
    let specs = client_specs(plan, common, &joiners, "users with rooms", false)?;
    let n = specs.len();
    let rounds = options.rounds;
    let (phase, tasks) = run::spawn_clients(
        ctx,
        specs,
        timing,
        move |mut client, spec, mut phase, ctx| async move {
            let outcome = storm(&mut client, &phase, &spec.rooms, rounds).await;
            run::idle_after(&mut client, &ctx, &mut phase, outcome).await;
        },
    );
    let timeline = run::coordinate(ctx, endpoint, timing, n, phase, tasks, |_| true).await;
    let mut settings = BTreeMap::new();
    settings.insert("rounds".into(), rounds.to_string());
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: None,
        settings,
        requested: n,
    })
}

async fn storm(
    client: &mut Client,
    phase: &watch::Receiver<Phase>,
    rooms: &[String],
    rounds: usize,
) -> Result<(), ClientError> {
    let mut round = 0;
    while *phase.borrow() == Phase::Run && (rounds == 0 || round < rounds) {
        if round > 0 {
            client.close_dialog().await?;
            client.open_dialog().await?;
        }
        client.bjoin(rooms).await?;
        round += 1;
    }
    Ok(())
}
