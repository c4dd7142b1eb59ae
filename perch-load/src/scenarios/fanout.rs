//! `fanout`: N clients in one room; the first --posters post at --rate posts/s in all.
//! Every delivery's latency is measured from the send time carried in the post's text;
//! after the window the run waits (--drain) until every acknowledged post reached every
//! client in the room, and counts what did not arrive as missing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cli::Common;
use crate::client::Client;
use crate::error::LoadError;
use crate::plan::Plan;
use crate::run::{self, Endpoint, RunContext, Spec, Timing};
use crate::stats::Metrics;

use super::{ScenarioResult, Schedule, post_on_schedule};

#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub room: Option<String>,
    pub posters: usize,
    pub rate: f64,
    pub size: usize,
    pub in_flight: usize,
}

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    options: &FanoutOptions,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let room = plan
        .fanout_room(options.room.as_deref(), common.connections)
        .ok_or_else(|| LoadError::Plan("no room to fan out in (provision rooms first)".into()))?;
    let clients = common.connections.min(room.members.len());
    if clients == 0 {
        return Err(LoadError::Plan(format!(
            "room {} has no members",
            room.name
        )));
    }
    if clients < common.connections && !common.quiet {
        eprintln!(
            "perch-load: room {} has {} members: {clients} clients instead of {}",
            room.name,
            room.members.len(),
            common.connections
        );
    }
    let posters = options.posters.clamp(1, clients);
    let specs = room.members[..clients]
        .iter()
        .enumerate()
        .map(|(i, &u)| Spec {
            index: i,
            aor: plan.users[u].clone(),
            rooms: vec![room.uid.clone()],
            join_in_setup: true,
        })
        .collect();
    let interval = Client::interval(options.rate / posters as f64);
    let (uid, in_flight) = (room.uid.clone(), options.in_flight.max(1));
    let (phase, tasks) = run::spawn_clients(
        ctx,
        specs,
        timing,
        move |mut client, spec, mut phase, ctx| {
            let uid = uid.clone();
            async move {
                if spec.index < posters {
                    // Posters start evenly spread over one interval.
                    let offset = interval.mul_f64(spec.index as f64 / posters as f64);
                    let schedule = Schedule {
                        interval,
                        offset,
                        in_flight,
                    };
                    let occupants = ctx.metrics.clone();
                    // Everyone who entered the room (all did before the window opened).
                    let next = || (uid.clone(), Metrics::get(&occupants.occupants));
                    let result =
                        post_on_schedule(&mut client, &ctx, &mut phase, schedule, next).await;
                    run::idle_after(&mut client, &ctx, &mut phase, result).await;
                    return;
                }
                run::idle_until_done(&mut client, &ctx, &mut phase).await;
            }
        },
    );
    let timeline = run::coordinate(ctx, endpoint, timing, clients, phase, tasks, |m| {
        let g = Metrics::get;
        g(&m.posts_acked) + g(&m.posts_failed) >= g(&m.posts_sent)
            && g(&m.deliveries) >= g(&m.expected_deliveries)
    })
    .await;
    let expected = super::count_missing_deliveries(&ctx.metrics);
    let mut settings = BTreeMap::new();
    settings.insert("room".into(), room.name.clone());
    settings.insert("room_members".into(), room.members.len().to_string());
    settings.insert("posters".into(), posters.to_string());
    settings.insert("rate".into(), options.rate.to_string());
    settings.insert("size".into(), options.size.to_string());
    settings.insert("in_flight".into(), in_flight.to_string());
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: Some(expected),
        settings,
        requested: common.connections,
    })
}
