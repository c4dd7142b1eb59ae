//! `connections`: open and register up to --connections sessions (REGISTER, chat dialog,
//! bjoin of their rooms), hold them idle for the window, and report logins/s and the
//! server's resident memory per session.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cli::Common;
use crate::error::LoadError;
use crate::plan::Plan;
use crate::run::{self, Endpoint, RunContext, Timing};

use super::{ScenarioResult, client_specs};

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let everyone: Vec<usize> = (0..plan.users.len()).collect();
    let specs = client_specs(plan, common, &everyone, "enabled users of the domain", true)?;
    let n = specs.len();
    let (phase, tasks) = run::spawn_clients(
        ctx,
        specs,
        timing,
        move |mut client, _, mut phase, ctx| async move {
            run::idle_until_done(&mut client, &ctx, &mut phase).await
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
