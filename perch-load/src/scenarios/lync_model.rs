//! `lync-model`: Lync's capacity model (persistent-chat-model.md §5.4), scaled. Every client
//! is a user of a store made by `provision --lync-model` and joins its rooms (20 of 30
//! members, 2 of 150, 2 of up to 16,000). During the window posts arrive at the model's
//! rates per room size — 22.22, 1.67 and 0.15 posts/s for 80,000 users — times
//! clients ÷ 80,000, times --factor; every acknowledged post must reach every client in its
//! room.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::cli::Common;
use crate::client::Client;
use crate::error::LoadError;
use crate::plan::Plan;
use crate::random::Random;
use crate::run::{self, Endpoint, RunContext, Timing};
use crate::stats::Metrics;

use super::{ScenarioResult, Schedule, client_specs, count_missing_deliveries, post_on_schedule};

#[derive(Debug, Clone)]
pub struct LyncModelOptions {
    /// Multiplies the model's post rates.
    pub factor: f64,
    pub size: usize,
    pub in_flight: usize,
}

/// The users the model's rates are given for.
const MODEL_USERS: f64 = 80_000.0;

/// Room classes by member count, with the model's posts/s in all rooms of the class.
const CLASSES: [(&str, usize, f64); 3] = [
    ("small", 30, 22.22),
    ("medium", 150, 1.67),
    ("large", usize::MAX, 0.15),
];

fn class_of(members: usize) -> usize {
    CLASSES
        .iter()
        .position(|&(_, max, _)| members <= max)
        .unwrap_or(CLASSES.len() - 1)
}

/// One client's rooms by class, each with the clients it reaches.
#[derive(Debug, Clone, Default)]
struct Rooms {
    by_class: [Vec<(String, u64)>; 3],
}

/// A client's post stream: the classes it posts in, weighted by their rates.
#[derive(Debug, Clone)]
struct Mix {
    rooms: Rooms,
    /// Cumulative per-class rates of this client, posts/s.
    cumulative: [f64; 3],
    next_room: [usize; 3],
    /// Which class each post goes to.
    random: Random,
}

impl Mix {
    fn rate(&self) -> f64 {
        self.cumulative[2]
    }

    fn next(&mut self) -> (String, u64) {
        let pick = self.random.unit() * self.rate();
        let class = self.cumulative.iter().position(|&c| pick < c).unwrap_or(2);
        let rooms = &self.rooms.by_class[class];
        let turn = self.next_room[class];
        self.next_room[class] = turn.wrapping_add(1);
        // A class with a share of the rate has rooms (see `mixes`).
        rooms
            .get(turn % rooms.len().max(1))
            .cloned()
            .unwrap_or_default()
    }
}

/// Every client's mix: the class rates for this many clients, split evenly among the
/// clients with rooms of the class. `clients`: the rooms each client joins.
fn mixes(plan: &Plan, clients: &[Vec<String>], factor: f64) -> (Vec<Mix>, [f64; 3]) {
    // A room's audience: the clients that join it (a member may have more rooms than a
    // client joins).
    let mut audiences: HashMap<&str, u64> = HashMap::new();
    for uids in clients {
        for uid in uids {
            *audiences.entry(uid.as_str()).or_default() += 1;
        }
    }
    let rooms_by_uid: HashMap<&str, usize> = plan
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.uid.as_str(), i))
        .collect();
    let rooms: Vec<Rooms> = clients
        .iter()
        .map(|uids| {
            let mut mine = Rooms::default();
            for uid in uids {
                if let Some(&r) = rooms_by_uid.get(uid.as_str()) {
                    let room = &plan.rooms[r];
                    let audience = audiences.get(uid.as_str()).copied().unwrap_or(0);
                    mine.by_class[class_of(room.members.len())].push((uid.clone(), audience));
                }
            }
            mine
        })
        .collect();
    let totals = CLASSES.map(|(_, _, rate)| rate * clients.len() as f64 / MODEL_USERS * factor);
    let with_class: Vec<usize> = (0..3)
        .map(|c| rooms.iter().filter(|r| !r.by_class[c].is_empty()).count())
        .collect();
    let mixes = rooms
        .into_iter()
        .enumerate()
        .map(|(i, rooms)| {
            let mut cumulative = [0.0; 3];
            let mut sum = 0.0;
            for c in 0..3 {
                if !rooms.by_class[c].is_empty() {
                    sum += totals[c] / with_class[c] as f64;
                }
                cumulative[c] = sum;
            }
            Mix {
                rooms,
                cumulative,
                next_room: [0; 3],
                random: Random::new(i as u64),
            }
        })
        .collect();
    (mixes, totals)
}

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    options: &LyncModelOptions,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let members = plan.users_with_rooms();
    if common.connections > members.len() {
        return Err(LoadError::Plan(format!(
            "lync-model needs a user per connection: {} connections, {} users with rooms (provision more)",
            common.connections,
            members.len()
        )));
    }
    let specs = client_specs(plan, common, &members, "users with rooms", true)?;
    let n = specs.len();
    let clients: Vec<Vec<String>> = specs.iter().map(|spec| spec.rooms.clone()).collect();
    let (mixes, totals) = mixes(plan, &clients, options.factor);
    let mixes = Arc::new(mixes);
    let in_flight = options.in_flight.max(1);
    let (phase, tasks) = run::spawn_clients(
        ctx,
        specs,
        timing,
        move |mut client, spec, mut phase, ctx| {
            let mixes = mixes.clone();
            async move {
                let Some(mut mix) = mixes.get(spec.index).cloned() else {
                    return run::idle_until_done(&mut client, &ctx, &mut phase).await;
                };
                let interval = Client::interval(mix.rate());
                // Clients start spread over one interval, each at its own point.
                let offset = interval.mul_f64((spec.index as f64 * 0.618_034) % 1.0);
                let schedule = Schedule {
                    interval,
                    offset,
                    in_flight,
                };
                let result =
                    post_on_schedule(&mut client, &ctx, &mut phase, schedule, || mix.next()).await;
                run::idle_after(&mut client, &ctx, &mut phase, result).await;
            }
        },
    );
    let timeline = run::coordinate(ctx, endpoint, timing, n, phase, tasks, |m| {
        let g = Metrics::get;
        g(&m.posts_acked) + g(&m.posts_failed) >= g(&m.posts_sent)
            && g(&m.deliveries) >= g(&m.expected_deliveries)
    })
    .await;
    let expected = count_missing_deliveries(&ctx.metrics);
    let mut settings = BTreeMap::new();
    settings.insert("factor".into(), options.factor.to_string());
    for (c, (name, _, _)) in CLASSES.iter().enumerate() {
        let rooms = plan
            .rooms
            .iter()
            .filter(|r| class_of(r.members.len()) == c)
            .count();
        settings.insert(format!("{name}_rooms"), rooms.to_string());
        settings.insert(format!("{name}_posts_per_s"), format!("{:.2}", totals[c]));
    }
    settings.insert("size".into(), options.size.to_string());
    settings.insert("in_flight".into(), in_flight.to_string());
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: Some(expected),
        settings,
        requested: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlannedRoom;

    fn room(uid: &str, members: std::ops::Range<usize>) -> PlannedRoom {
        PlannedRoom {
            uid: uid.into(),
            name: uid.into(),
            members: members.collect(),
        }
    }

    #[test]
    fn rates_follow_the_model_and_posts_reach_connected_members() {
        let plan = Plan {
            users: (0..200).map(|i| format!("u{i}@x")).collect(),
            rooms: vec![room("s1", 0..30), room("m1", 0..150), room("l1", 0..200)],
            rooms_of: Vec::new(),
        };
        // 100 clients: users 0–99. Only the first 30 are in the small room.
        let clients: Vec<Vec<String>> = (0..100)
            .map(|u| {
                let mut r = vec!["m1".to_owned(), "l1".to_owned()];
                if u < 30 {
                    r.insert(0, "s1".to_owned());
                }
                // A member that does not join a room is not its audience.
                if u == 99 {
                    r.remove(0);
                }
                r
            })
            .collect();
        let (mut mixes, totals) = mixes(&plan, &clients, 800.0);
        // ×800 for 100 users = ×1 for 80,000: the model's own rates.
        assert!((totals[0] - 22.22).abs() < 1e-9 && (totals[2] - 0.15).abs() < 1e-9);
        let total: f64 = mixes.iter().map(Mix::rate).sum();
        assert!((total - 24.04).abs() < 1e-9, "{total}");
        // The small-room rate is shared by the 30 clients that have one.
        assert!((mixes[0].cumulative[0] - 22.22 / 30.0).abs() < 1e-9);
        assert_eq!(mixes[99].cumulative[0], 0.0);
        assert_eq!(
            mixes[99].cumulative[1], 0.0,
            "client 99 joins no medium room"
        );
        assert!(Client::interval(mixes[99].rate()) > Client::interval(mixes[0].rate()));
        let mut seen = HashMap::new();
        for _ in 0..10_000 {
            let (uid, audience) = mixes[0].next();
            *seen.entry(uid.clone()).or_insert(0) += 1;
            let expected = match uid.as_str() {
                "s1" => 30,
                "m1" => 99,
                _ => 100,
            };
            assert_eq!(audience, expected, "{uid}");
        }
        // Shares follow the rates: small 22.22/30 against 1.67/100 and 0.15/100.
        assert!(
            seen["s1"] > 9_500 && seen["m1"] > 100 && seen["l1"] > 5,
            "{seen:?}"
        );
    }
}
