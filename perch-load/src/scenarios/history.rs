//! `history`: clients sign in and join their rooms; during the window each sends
//! `cmd:bccontext` queries, one outstanding at a time, back to back (closed loop) or at
//! --rate per client, in the proportions of --mix:
//!
//! - `last`: the room's last --last messages; within DefaultChatHistory perch answers
//!   from its in-memory cache (each client first asks once per room, unmeasured, so the
//!   cache is warm);
//! - `deep`: --pages pages of --deep messages going back (`before` the oldest message of
//!   the previous page) from a random place in the room's history: the store;
//! - `search`: the newest --search messages containing one of --terms (by default the
//!   marker words `prefill` writes): the full-text index.
//!
//! Before the run the store (read-only, next to the running perch) says how many messages
//! each room holds, its first message id, and how many messages of each room contain each
//! term, so every answer is checked: code 200 and exactly the number of messages the store
//! holds for the query. Mismatches are errors, by kind.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use perch::store::sqlite::DATABASE_FILE;
use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::watch;

use crate::cli::Common;
use crate::client::{Client, ClientError};
use crate::error::LoadError;
use crate::plan::Plan;
use crate::random::Random;
use crate::run::{self, Endpoint, Phase, RunContext, Timing};
use crate::stats::{Latency, Samples, now_ns};
use crate::xccos::{Bcq, HistoryPage};

use super::{ScenarioResult, client_specs};

/// perch keeps `cnt` within this (bccontext.rs).
const MAX_COUNT: u32 = 500;
/// DefaultChatHistory when the store has no setting.
const DEFAULT_CHAT_HISTORY: u32 = 30;

#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Weights of the query kinds: `last` (perch's cache), `deep` (`before msgid` pages
    /// from the store), `search` (the full-text index), e.g. last:2,deep:1,search:1.
    #[arg(long, default_value = "last:1,deep:1,search:1")]
    pub mix: Mix,
    /// Messages a `last` asks for (within DefaultChatHistory perch answers from memory).
    #[arg(long, default_value_t = 30)]
    pub last: u32,
    /// Messages per `deep` page (`before msgid`, always read from the store).
    #[arg(long, default_value_t = 100)]
    pub deep: u32,
    /// Pages of one deep read, each before the oldest message of the previous one, before
    /// the next read starts at a new random place.
    #[arg(long, default_value_t = 5)]
    pub pages: u32,
    /// Messages a search asks for (the newest that match).
    #[arg(long, default_value_t = 30)]
    pub search: u32,
    /// Search terms, comma-separated; the words of a term must all match [default: the
    /// marker words of `prefill`'s default --markers].
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pmk100,pmk10000,pmk1000000"
    )]
    pub terms: Vec<String>,
    /// Queries per second per client, one outstanding at a time (a query due while the last
    /// is unanswered waits for it) [default: closed loop, back to back].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed of the random choices (kind, room, place, term).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl HistoryArgs {
    pub fn options(&self) -> Result<HistoryOptions, LoadError> {
        for (name, value) in [
            ("--last", self.last),
            ("--deep", self.deep),
            ("--search", self.search),
        ] {
            if !(1..=MAX_COUNT).contains(&value) {
                return Err(LoadError::Plan(format!(
                    "{name} must be between 1 and {MAX_COUNT} (perch's limit)"
                )));
            }
        }
        if self.pages == 0 {
            return Err(LoadError::Plan("--pages must be at least 1".into()));
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(LoadError::Plan("--rate must be a positive number".into()));
        }
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty())
            .collect();
        if self.mix.search > 0.0 && terms.is_empty() {
            return Err(LoadError::Plan("--terms: no search term".into()));
        }
        Ok(HistoryOptions {
            mix: self.mix,
            last: self.last,
            deep: self.deep,
            pages: self.pages,
            search: self.search,
            terms,
            rate: self.rate,
            seed: self.seed,
        })
    }
}

#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub mix: Mix,
    pub last: u32,
    pub deep: u32,
    pub pages: u32,
    pub search: u32,
    pub terms: Vec<String>,
    pub rate: Option<f64>,
    pub seed: u64,
}

/// Relative weights of the three kinds of query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    pub last: f64,
    pub deep: f64,
    pub search: f64,
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut mix = Mix {
            last: 0.0,
            deep: 0.0,
            search: 0.0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, weight) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not KIND:WEIGHT (e.g. last:1)"))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| *w >= 0.0 && w.is_finite())
                .ok_or_else(|| format!("the weight in {part:?} must be a number ≥ 0"))?;
            match kind.trim() {
                "last" => mix.last = weight,
                "deep" => mix.deep = weight,
                "search" => mix.search = weight,
                other => {
                    return Err(format!(
                        "unknown query kind {other:?} (last, deep or search)"
                    ));
                }
            }
        }
        if mix.last + mix.deep + mix.search <= 0.0 {
            return Err("the mix needs a weight above 0".into());
        }
        Ok(mix)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "last:{},deep:{},search:{}",
            self.last, self.deep, self.search
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Last,
    Deep,
    Search,
}

/// A room's history as the store holds it before the run.
#[derive(Debug, Clone, Default)]
struct RoomHistory {
    messages: u64,
    /// Its first and last message ids (none without messages).
    first_id: Option<i64>,
    last_id: Option<i64>,
    /// Messages matching each term, in the order of the terms.
    hits: Vec<u64>,
}

/// What the store holds, read before the run.
#[derive(Debug, Clone, Default)]
struct StoreView {
    messages: u64,
    default_chat_history: u32,
    /// By room uid.
    rooms: HashMap<String, RoomHistory>,
    /// Matches of each term in the whole store.
    term_hits: Vec<u64>,
}

/// perch's reading of a search text: its own FTS query builder over the words.
fn fts_query(term: &str) -> String {
    let words: Vec<String> = term.split_whitespace().map(str::to_owned).collect();
    perch::store::sqlite::fts_words(&words)
}

/// Reads the rooms' message counts, id ranges and term matches (read-only; perch may be
/// running). One pass over the messages index, and one full-text query per term.
fn read_store(data: &Path, uids: &[String], terms: &[String]) -> Result<StoreView, LoadError> {
    let sqlite = |e: rusqlite::Error| LoadError::Plan(format!("reading the store: {e}"));
    let connection = Connection::open_with_flags(
        data.join(DATABASE_FILE),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .map_err(sqlite)?;
    let default_chat_history = connection
        .query_row(
            "SELECT value FROM settings WHERE name = 'DefaultChatHistory'",
            [],
            |r| r.get::<_, u32>(0),
        )
        .unwrap_or(DEFAULT_CHAT_HISTORY);
    let mut ids = connection
        .prepare("SELECT uid, id FROM rooms")
        .map_err(sqlite)?;
    let room_ids: HashMap<String, i64> = ids
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sqlite)?
        .collect::<Result<_, _>>()
        .map_err(sqlite)?;
    let mut per_room = connection
        .prepare("SELECT room_id, count(*), min(id), max(id) FROM messages GROUP BY room_id")
        .map_err(sqlite)?;
    let mut by_id: HashMap<i64, RoomHistory> = per_room
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                RoomHistory {
                    messages: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    first_id: r.get(2)?,
                    last_id: r.get(3)?,
                    hits: vec![0; terms.len()],
                },
            ))
        })
        .map_err(sqlite)?
        .collect::<Result<_, _>>()
        .map_err(sqlite)?;
    let messages = by_id.values().map(|r| r.messages).sum();
    let mut term_hits = Vec::with_capacity(terms.len());
    let mut matches = connection
        .prepare(
            "SELECT m.room_id, count(*) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
             WHERE messages_fts MATCH ?1 GROUP BY m.room_id",
        )
        .map_err(sqlite)?;
    for (t, term) in terms.iter().enumerate() {
        let counts: Vec<(i64, i64)> = matches
            .query_map(params![fts_query(term)], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sqlite)?
            .collect::<Result<_, _>>()
            .map_err(sqlite)?;
        let mut total = 0;
        for (room, n) in counts {
            let n = u64::try_from(n).unwrap_or(0);
            total += n;
            if let Some(history) = by_id.get_mut(&room) {
                history.hits[t] = n;
            }
        }
        term_hits.push(total);
    }
    let rooms = uids
        .iter()
        .filter_map(|uid| {
            let id = room_ids.get(uid)?;
            let history = by_id.remove(id).unwrap_or_else(|| RoomHistory {
                hits: vec![0; terms.len()],
                ..RoomHistory::default()
            });
            Some((uid.clone(), history))
        })
        .collect();
    Ok(StoreView {
        messages,
        default_chat_history,
        rooms,
        term_hits,
    })
}

/// Whether a `before` page is what the store holds: `cnt` messages older than `before`,
/// or fewer only when the page reaches the room's first message.
fn deep_page_ok(page: &HistoryPage, cnt: u32, before: i64, room: &RoomHistory) -> bool {
    let in_range = page.newest_msgid.is_none_or(|newest| newest < before)
        && page.oldest_msgid <= page.newest_msgid;
    let full = page.messages == cnt as usize;
    let reached_start = match room.first_id {
        Some(first) if before <= first => page.messages == 0,
        Some(first) => page.messages < cnt as usize && page.oldest_msgid == Some(first),
        None => page.messages == 0,
    };
    in_range && (full || reached_start)
}

/// Where a client's deep read goes next.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    room: usize,
    before: i64,
    pages_left: u32,
}

/// One client's queries: its rooms with what the store holds in them.
struct Querier {
    options: Arc<HistoryOptions>,
    rooms: Vec<(String, RoomHistory)>,
    /// Rooms with messages (where deep reads go).
    deep_rooms: Vec<usize>,
    cursor: Option<Cursor>,
    random: Random,
}

impl Querier {
    fn kind(&mut self) -> Kind {
        let mix = self.options.mix;
        let mut x = self.random.unit() * (mix.last + mix.deep + mix.search);
        for (kind, weight) in [
            (Kind::Last, mix.last),
            (Kind::Deep, mix.deep),
            (Kind::Search, mix.search),
        ] {
            if x < weight {
                return if kind == Kind::Deep && self.deep_rooms.is_empty() {
                    Kind::Last
                } else {
                    kind
                };
            }
            x -= weight;
        }
        Kind::Last
    }

    /// The next query: its kind, room, the query, and the messages the answer must hold
    /// (`None` for deep pages, checked by [`deep_page_ok`]).
    fn next(&mut self, kind: Kind) -> (usize, Bcq, Option<usize>) {
        let options = self.options.clone();
        match kind {
            Kind::Last => {
                let room = self.random.index(self.rooms.len());
                let expect = (options.last as u64).min(self.rooms[room].1.messages) as usize;
                (room, Bcq::Last { cnt: options.last }, Some(expect))
            }
            Kind::Search => {
                let room = self.random.index(self.rooms.len());
                let term = self.random.index(options.terms.len());
                let hits = self.rooms[room].1.hits.get(term).copied().unwrap_or(0);
                let expect = (options.search as u64).min(hits) as usize;
                let text = options.terms[term].clone();
                let query = Bcq::Search {
                    text,
                    cnt: options.search,
                };
                (room, query, Some(expect))
            }
            Kind::Deep => {
                let cursor = match self.cursor {
                    Some(cursor) if cursor.pages_left > 0 => cursor,
                    _ => {
                        let room = self.deep_rooms[self.random.index(self.deep_rooms.len())];
                        let history = &self.rooms[room].1;
                        let (first, last) =
                            (history.first_id.unwrap_or(1), history.last_id.unwrap_or(1));
                        // Uniform over (first, last + 1]: a page anywhere in the history.
                        let span = usize::try_from(last - first + 1).unwrap_or(1).max(1);
                        let before = first + 1 + self.random.index(span) as i64;
                        Cursor {
                            room,
                            before,
                            pages_left: options.pages,
                        }
                    }
                };
                self.cursor = Some(cursor);
                let query = Bcq::Before {
                    msgid: cursor.before,
                    cnt: options.deep,
                };
                (cursor.room, query, None)
            }
        }
    }

    /// Checks an answer against the store; moves a deep read on to its next page.
    fn check(
        &mut self,
        kind: Kind,
        room: usize,
        query: &Bcq,
        expect: Option<usize>,
        page: &HistoryPage,
    ) -> bool {
        match (kind, query) {
            (Kind::Deep, Bcq::Before { msgid, cnt }) => {
                let ok = deep_page_ok(page, *cnt, *msgid, &self.rooms[room].1);
                self.cursor = match (self.cursor, page.oldest_msgid) {
                    (Some(c), Some(oldest)) if ok && page.messages == *cnt as usize => {
                        Some(Cursor {
                            room: c.room,
                            before: oldest,
                            pages_left: c.pages_left - 1,
                        })
                    }
                    // The start of the room, or a wrong page: start elsewhere.
                    _ => None,
                };
                ok
            }
            _ => expect == Some(page.messages),
        }
    }
}

/// Counters the clients share with the drain.
#[derive(Default)]
struct Outstanding {
    sent: AtomicU64,
    done: AtomicU64,
    /// The first mismatch is described on stderr.
    told: AtomicBool,
}

pub async fn run(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    common: &Common,
    options: &HistoryOptions,
    endpoint: &Endpoint,
    timing: &Timing,
) -> Result<ScenarioResult, LoadError> {
    let Some(data) = common.data.clone() else {
        return Err(LoadError::Plan(
            "history needs --data DIR: the store says what each answer must hold".into(),
        ));
    };
    let readers = plan.users_with_rooms();
    let specs = client_specs(plan, common, &readers, "users with rooms", true)?;
    let n = specs.len();
    let mut uids: Vec<String> = specs.iter().flat_map(|s| s.rooms.iter().cloned()).collect();
    uids.sort();
    uids.dedup();
    let terms = options.terms.clone();
    let view = {
        let uids = uids.clone();
        tokio::task::spawn_blocking(move || read_store(&data, &uids, &terms))
            .await
            .map_err(|e| LoadError::Task(e.to_string()))??
    };
    if options.last > view.default_chat_history && !common.quiet {
        eprintln!(
            "perch-load: --last {} is above DefaultChatHistory ({}): `last` is read from the store, not perch's cache",
            options.last, view.default_chat_history
        );
    }
    let view = Arc::new(view);
    let options = Arc::new(options.clone());
    // Only perch answers with rpl:bccontext; the null responder echoes the command.
    let verify = endpoint.server == "perch";
    let outstanding = Arc::new(Outstanding::default());
    let (body_view, body_options, body_outstanding) =
        (view.clone(), options.clone(), outstanding.clone());
    let quiet = common.quiet;
    let (phase, tasks) = run::spawn_clients(
        ctx,
        specs,
        timing,
        move |mut client, spec, mut phase, ctx| {
            let rooms: Vec<(String, RoomHistory)> = spec
                .rooms
                .iter()
                .filter_map(|uid| Some((uid.clone(), body_view.rooms.get(uid)?.clone())))
                .collect();
            let deep_rooms = (0..rooms.len())
                .filter(|&r| rooms[r].1.messages > 0)
                .collect();
            let querier = Querier {
                options: body_options.clone(),
                rooms,
                deep_rooms,
                cursor: None,
                random: Random::new(
                    body_options.seed ^ (spec.index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d),
                ),
            };
            let outstanding = body_outstanding.clone();
            async move {
                let mut samples = Samples::default();
                let outcome = query_loop(
                    &mut client,
                    &ctx,
                    &mut phase,
                    querier,
                    &mut samples,
                    &outstanding,
                    verify,
                    quiet,
                )
                .await;
                samples.flush(&ctx.metrics);
                run::idle_after(&mut client, &ctx, &mut phase, outcome).await;
            }
        },
    );
    let drain_outstanding = outstanding.clone();
    let timeline = run::coordinate(ctx, endpoint, timing, n, phase, tasks, move |_| {
        drain_outstanding.done.load(Ordering::Relaxed)
            >= drain_outstanding.sent.load(Ordering::Relaxed)
    })
    .await;
    let mut settings = BTreeMap::new();
    settings.insert("store_messages".into(), view.messages.to_string());
    settings.insert(
        "default_chat_history".into(),
        view.default_chat_history.to_string(),
    );
    settings.insert("mix".into(), options.mix.to_string());
    settings.insert("last".into(), options.last.to_string());
    settings.insert("deep".into(), options.deep.to_string());
    settings.insert("pages".into(), options.pages.to_string());
    settings.insert("search".into(), options.search.to_string());
    let terms: Vec<String> = options
        .terms
        .iter()
        .zip(&view.term_hits)
        .map(|(term, hits)| format!("{}:{hits}", term.replace(' ', "+")))
        .collect();
    settings.insert("terms_hits".into(), terms.join(","));
    settings.insert("rooms_queried".into(), view.rooms.len().to_string());
    settings.insert(
        "messages_in_rooms_queried".into(),
        view.rooms
            .values()
            .map(|r| r.messages)
            .sum::<u64>()
            .to_string(),
    );
    settings.insert(
        "rate".into(),
        options
            .rate
            .map_or("closed loop".into(), |r| format!("{r}/s per client")),
    );
    Ok(ScenarioResult {
        timeline,
        expected_deliveries: None,
        settings,
        requested: n,
    })
}

/// A failure that ends the client (the connection or its dialog is gone); answers that are
/// late, refused or wrong are counted and the client goes on.
fn fatal(error: &ClientError) -> bool {
    matches!(error, ClientError::Wire(_) | ClientError::DialogEnded)
}

/// First one `last` per room, unmeasured (it fills perch's cache), then queries until the
/// window closes.
#[allow(clippy::too_many_arguments)]
async fn query_loop(
    client: &mut Client,
    ctx: &RunContext,
    phase: &mut watch::Receiver<Phase>,
    mut querier: Querier,
    samples: &mut Samples,
    outstanding: &Outstanding,
    verify: bool,
    quiet: bool,
) -> Result<(), ClientError> {
    if querier.rooms.is_empty() {
        return Ok(());
    }
    let metrics = &ctx.metrics;
    let running = |phase: &watch::Receiver<Phase>| {
        *phase.borrow() == Phase::Run && Instant::now() < ctx.hard_deadline
    };
    for room in 0..querier.rooms.len() {
        if !running(phase) {
            return Ok(());
        }
        let warm = Bcq::Last {
            cnt: querier.options.last,
        };
        let expect = (querier.options.last as u64).min(querier.rooms[room].1.messages) as usize;
        let uid = querier.rooms[room].0.clone();
        match client.bccontext(&uid, &warm).await {
            Ok(page) => {
                if verify && page.is_none_or(|p| p.messages != expect) {
                    metrics.error("history: wrong count (warm-up last)");
                }
            }
            Err(error) if fatal(&error) => return Err(error),
            Err(error) => metrics.error(&error.kind()),
        }
    }
    let interval = querier
        .options
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r));
    // Clients start spread over one interval.
    let offset = interval.map_or(Duration::ZERO, |i| i.mul_f64(querier.random.unit()));
    let mut due = Instant::now() + offset;
    while running(phase) {
        if let Some(interval) = interval {
            // Keep to the schedule; a query due while the last was unanswered goes out at
            // once, and more than a second behind the schedule starts afresh.
            if due > Instant::now() {
                client.pump(due, Some(phase)).await?;
                continue;
            }
            due += interval;
            if Instant::now().saturating_duration_since(due) > Duration::from_secs(1) {
                due = Instant::now() + interval;
            }
        }
        let kind = querier.kind();
        let (room, query, expect) = querier.next(kind);
        let uid = querier.rooms[room].0.clone();
        outstanding.sent.fetch_add(1, Ordering::Relaxed);
        let sent = now_ns();
        let answer = client.bccontext(&uid, &query).await;
        let answered = now_ns();
        outstanding.done.fetch_add(1, Ordering::Relaxed);
        let page = match answer {
            Ok(page) => page,
            Err(error) if fatal(&error) => return Err(error),
            Err(error) => {
                metrics.error(&error.kind());
                querier.cursor = None;
                continue;
            }
        };
        let latency = match kind {
            Kind::Last => Latency::HistoryCache,
            Kind::Deep => Latency::HistoryDisk,
            Kind::Search => Latency::Search,
        };
        samples.record(metrics, latency, sent, answered);
        if !verify {
            continue;
        }
        let ok = match &page {
            Some(page) => querier.check(kind, room, &query, expect, page),
            None => false,
        };
        if !ok {
            let what = match kind {
                Kind::Last => "last",
                Kind::Deep => "deep",
                Kind::Search => "search",
            };
            metrics.error(&format!("history: wrong count ({what})"));
            if !quiet && !outstanding.told.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "perch-load: history answer not as the store holds: {query:?} in room {uid} got {page:?}, expected {}",
                    expect.map_or(
                        "a full page or the room's first message".into(),
                        |n| format!("{n} messages")
                    )
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_print() {
        let mix: Mix = "last:2, deep:1,search:0.5".parse().unwrap();
        assert_eq!(
            mix,
            Mix {
                last: 2.0,
                deep: 1.0,
                search: 0.5
            }
        );
        assert_eq!(mix.to_string(), "last:2,deep:1,search:0.5");
        let only: Mix = "search:1".parse().unwrap();
        assert_eq!((only.last, only.deep, only.search), (0.0, 0.0, 1.0));
        assert!("last".parse::<Mix>().is_err());
        assert!("sideways:1".parse::<Mix>().is_err());
        assert!("last:-1".parse::<Mix>().is_err());
        assert!("last:0,deep:0".parse::<Mix>().is_err());
    }

    #[test]
    fn the_default_terms_are_the_default_markers() {
        use clap::Parser;
        #[derive(Parser)]
        struct Both {
            #[command(subcommand)]
            command: Sub,
        }
        #[derive(clap::Subcommand)]
        enum Sub {
            History(HistoryArgs),
            Prefill(crate::prefill::PrefillArgs),
        }
        let history = match Both::parse_from(["x", "history"]).command {
            Sub::History(args) => args,
            Sub::Prefill(_) => unreachable!(),
        };
        let prefill =
            match Both::parse_from(["x", "prefill", "--data", "d", "--messages", "1"]).command {
                Sub::Prefill(args) => args,
                Sub::History(_) => unreachable!(),
            };
        let markers: Vec<String> = prefill
            .markers
            .iter()
            .map(|&n| crate::prefill::marker_word(n))
            .collect();
        assert_eq!(history.terms, markers);
        let options = history.options().unwrap();
        assert_eq!(options.last, 30);
        let mut bad = history.clone();
        bad.deep = 501;
        assert!(bad.options().is_err());
        let mut bad = history.clone();
        bad.rate = Some(0.0);
        assert!(bad.options().is_err());
    }

    fn room(messages: u64, first: i64, last: i64) -> RoomHistory {
        RoomHistory {
            messages,
            first_id: (messages > 0).then_some(first),
            last_id: (messages > 0).then_some(last),
            hits: vec![3, 0],
        }
    }

    fn page(messages: usize, oldest: i64, newest: i64) -> HistoryPage {
        HistoryPage {
            messages,
            oldest_msgid: (messages > 0).then_some(oldest),
            newest_msgid: (messages > 0).then_some(newest),
        }
    }

    #[test]
    fn deep_pages_are_full_or_reach_the_start() {
        let r = room(1000, 11, 5000);
        assert!(deep_page_ok(&page(100, 300, 499), 100, 500, &r));
        // Short, and it reaches the first message: right.
        assert!(deep_page_ok(&page(40, 11, 60), 100, 61, &r));
        // Short without reaching it, too many, or not before the cursor: wrong.
        assert!(!deep_page_ok(&page(40, 20, 60), 100, 61, &r));
        assert!(!deep_page_ok(&page(101, 300, 499), 100, 500, &r));
        assert!(!deep_page_ok(&page(100, 300, 500), 100, 500, &r));
        // Before the first message there is nothing.
        assert!(deep_page_ok(&page(0, 0, 0), 100, 11, &r));
        assert!(!deep_page_ok(&page(1, 5, 5), 100, 11, &r));
        assert!(deep_page_ok(&page(0, 0, 0), 100, 7, &room(0, 0, 0)));
    }

    fn querier(rooms: Vec<RoomHistory>, mix: &str) -> Querier {
        let rooms: Vec<(String, RoomHistory)> = rooms
            .into_iter()
            .enumerate()
            .map(|(i, r)| (format!("r{i}"), r))
            .collect();
        Querier {
            options: Arc::new(HistoryOptions {
                mix: mix.parse().unwrap(),
                last: 30,
                deep: 100,
                pages: 3,
                search: 30,
                terms: vec!["pmk100".into(), "pmk10000".into()],
                rate: None,
                seed: 1,
            }),
            deep_rooms: (0..rooms.len())
                .filter(|&r| rooms[r].1.messages > 0)
                .collect(),
            rooms,
            cursor: None,
            random: Random::new(9),
        }
    }

    #[test]
    fn expectations_follow_the_store() {
        let mut q = querier(vec![room(20, 1, 20)], "last:1,search:1");
        let (_, query, expect) = q.next(Kind::Last);
        assert_eq!(query, Bcq::Last { cnt: 30 });
        assert_eq!(expect, Some(20));
        for _ in 0..20 {
            let (_, query, expect) = q.next(Kind::Search);
            match query {
                Bcq::Search { text, cnt: 30 } if text == "pmk100" => assert_eq!(expect, Some(3)),
                Bcq::Search { text, cnt: 30 } if text == "pmk10000" => assert_eq!(expect, Some(0)),
                other => panic!("{other:?}"),
            }
        }
        // No room with messages: deep reads become `last`.
        let mut empty = querier(vec![room(0, 0, 0)], "deep:1");
        assert_eq!(empty.kind(), Kind::Last);
    }

    #[test]
    fn deep_reads_page_back_then_jump() {
        let mut q = querier(vec![room(100_000, 1, 100_000)], "deep:1");
        let (r, query, _) = q.next(Kind::Deep);
        let Bcq::Before { msgid, cnt: 100 } = query else {
            panic!("{query:?}")
        };
        assert!((2..=100_001).contains(&msgid));
        let first = msgid.max(1_000);
        let answer = page(100, first - 100, first - 1);
        let query = Bcq::Before {
            msgid: first,
            cnt: 100,
        };
        q.cursor = Some(Cursor {
            room: r,
            before: first,
            pages_left: 3,
        });
        assert!(q.check(Kind::Deep, r, &query, None, &answer));
        let (_, next, _) = q.next(Kind::Deep);
        assert_eq!(
            next,
            Bcq::Before {
                msgid: first - 100,
                cnt: 100
            }
        );
        // A short page at the start ends the read.
        let query = Bcq::Before {
            msgid: 50,
            cnt: 100,
        };
        assert!(q.check(Kind::Deep, r, &query, None, &page(49, 1, 49)));
        assert!(q.cursor.is_none());
    }
}
