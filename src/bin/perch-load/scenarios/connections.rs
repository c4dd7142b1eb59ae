//! `connections`: open and register up to --connections sessions (REGISTER, chat dialog,
//! bjoin of their rooms), hold them idle for the window, and report logins/s and the
//! server's resident memory per session.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::cli::Common;
use crate::error::LoadError;
use crate::plan::Plan;
use crate::run::{self, Endpoint, Phase, RunContext, Spec, Timing};

use super::{ScenarioResult, note_reuse};

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    if plan.users.is_empty() {
        return Err(LoadError::Plan(
            "no enabled users of the domain to sign in as".into(),
        ));
    }
    let n = common.connections;
    note_reuse(common, n, plan.users.len(), "users");
    let specs = (0..n)
        .map(|i| {
            let u = i % plan.users.len();
            Spec {
                index: i,
                aor: plan.users[u].clone(),
                rooms: plan.room_uids(u, common.rooms_per_user),
                join_in_setup: true,
            }
        })
        .collect();
    let (phase, _) = watch::channel(Phase::Setup);
    let body_ctx = ctx.clone();
    let tasks = run::spawn_clients(
        ctx,
        specs,
        timing,
        &phase,
        move |mut client, _, mut phase| {
            let ctx = body_ctx.clone();
            async move { run::idle_until_done(&mut client, &ctx, &mut phase).await }
        },
    );
    let timeline = run::coordinate(ctx, endpoint, timing, n, phase, tasks, |_| true).await;
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: None,
        settings: BTreeMap::new(),
        requested: n,
    })
}
