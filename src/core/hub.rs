//! The hub: live chat state and every chat operation from start to end — policy check,
//! store write, commit, history cache, and a typed [`Event`] published to the sessions
//! concerned. Gateways call its operations and render the events it hands their
//! [`EventSink`] in their own wire format. It knows no protocol and no backend.
//!
//! A pool of nodes plugs in here: an event from another node goes to [`ChatCore::publish`]
//! with this node's recipients, as a local one does.

use super::metrics::{ByGateway, metrics};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::ids::{Gateway, SessionRef, now_ticks};
use super::model::{Category, Room};
use super::policy::{self, Action, Denial, Roles};
use super::ports::{
    ChatMessage, Extension, HistoryQuery, HistoryRange, Pending, PreferenceQuota, Store,
    StoreError, committed,
};
use super::snapshot::{Snapshot, SnapshotHandle};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{}", .0.reason())]
    Denied(Denial),
    #[error("{0}")]
    Invalid(String),
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: u32 },
    /// The user keeps as much as they may (preferences).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Denial> for ChatError {
    fn from(denial: Denial) -> Self {
        ChatError::Denied(denial)
    }
}

/// What happened in a room, for the sessions that should hear of it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message, durable when its category keeps history; the sender hears it too.
    Posted {
        room: Arc<Room>,
        message: Arc<ChatMessage>,
    },
    /// Someone joined (sent to the others, up to ParticipantUpdateLimit).
    Joined {
        room: Arc<Room>,
        user: Arc<str>,
        roles: Roles,
    },
    /// Someone left, or their session ended.
    Left { room: Arc<Room>, user: Arc<str> },
    /// `session` was taken out of `room` by an administrative change; it must be told in a
    /// way that makes its client leave the room, the others that `user` left.
    Evicted {
        room: Arc<Room>,
        user: Arc<str>,
        session: SessionRef,
    },
    /// `user` was invited to `room` (made a member while its invitations are on); told to
    /// the user's sessions registered with [`ChatCore::online`]. `id` is the invitation's.
    Invited {
        room: Arc<Room>,
        user: Arc<str>,
        id: i64,
    },
}

/// A gateway's side of the hub: it renders an event once and delivers it to every one of
/// its sessions in `to`.
pub trait EventSink: Send + Sync {
    fn deliver(&self, event: &Event, to: &[SessionRef]);
}

/// Who is in one room.
#[derive(Debug, Default)]
struct Presence {
    /// Every session present, with its user.
    sessions: HashMap<SessionRef, Arc<str>>,
    /// Sessions per distinct user: the participants a roster lists.
    users: HashMap<Arc<str>, usize>,
}

impl Presence {
    fn participants(&self) -> usize {
        self.users.len()
    }
}

#[derive(Debug, Default)]
struct Live {
    rooms: HashMap<i64, Presence>,
    by_session: HashMap<SessionRef, HashSet<i64>>,
    /// The id of the last post published to each room (an entry outlives the room's
    /// occupants: rooms are few). Updated with the post's recipients under one lock, so a
    /// join sees a post either as published (not sent to it) or not yet (sent to it).
    published: HashMap<i64, i64>,
    /// The archive's newest message id when the hub started: a room nothing was published
    /// to since holds only messages up to it, and its later posts are all above.
    started_after: i64,
    /// Sessions told of their user's invitations as they are made, by user.
    online: HashMap<Arc<str>, HashSet<SessionRef>>,
    /// The newest invitation dealt with: told to the sessions online then, left to be
    /// offered at sign-in to the others. Moved with the recipients under one lock, as
    /// `published` is.
    invited_up_to: i64,
}

/// The chat sessions gauge of the session's gateway.
fn session_gauge(session: &SessionRef) -> prometheus_client::metrics::gauge::Gauge {
    metrics()
        .chat_sessions
        .get_or_create(&ByGateway {
            gateway: session.gateway.name(),
        })
        .clone()
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Live {
    fn is_online(&self, user: &str, session: &SessionRef) -> bool {
        self.online
            .get(user)
            .is_some_and(|sessions| sessions.contains(session))
    }

    /// The last post of the room not sent live to a session joining now.
    fn watermark(&self, room: i64) -> i64 {
        self.published
            .get(&room)
            .copied()
            .unwrap_or(self.started_after)
    }

    fn participants(&self, room: i64) -> usize {
        self.rooms.get(&room).map_or(0, Presence::participants)
    }

    fn sessions(&self, room: i64) -> Vec<SessionRef> {
        self.rooms
            .get(&room)
            .map(|p| p.sessions.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds a session to a room; says whether it was not there yet, and who is there now.
    /// Adds a session to a room; returns whether the user was not there before (on any
    /// session), which is when the others hear of it.
    fn add(&mut self, room: i64, session: &SessionRef, user: &str) -> (bool, &Presence) {
        let presence = self.rooms.entry(room).or_default();
        let added = !presence.sessions.contains_key(session);
        let mut arrived = false;
        if added {
            let user: Arc<str> = presence
                .users
                .get_key_value(user)
                .map_or_else(|| Arc::from(user), |(known, _)| known.clone());
            let count = presence.users.entry(user.clone()).or_default();
            *count += 1;
            arrived = *count == 1;
            presence.sessions.insert(session.clone(), user);
            let rooms = self.by_session.entry(session.clone()).or_insert_with(|| {
                session_gauge(session).inc();
                HashSet::new()
            });
            rooms.insert(room);
        }
        metrics().active_rooms.set(gauge_value(self.rooms.len()));
        let presence = self.rooms.entry(room).or_default();
        (arrived, presence)
    }

    /// Removes a session from a room; returns whether that was the user's last session
    /// there, which is when the others hear of it.
    fn remove(&mut self, room: i64, session: &SessionRef) -> bool {
        let Some(presence) = self.rooms.get_mut(&room) else {
            return false;
        };
        let removed = match presence.sessions.remove(session) {
            Some(user) => match presence.users.entry(user) {
                Entry::Occupied(mut count) => {
                    *count.get_mut() -= 1;
                    let gone = *count.get() == 0;
                    if gone {
                        count.remove();
                    }
                    gone
                }
                Entry::Vacant(_) => true,
            },
            None => false,
        };
        if presence.sessions.is_empty() {
            self.rooms.remove(&room);
        }
        if let Some(rooms) = self.by_session.get_mut(session) {
            rooms.remove(&room);
            if rooms.is_empty() {
                self.by_session.remove(session);
                session_gauge(session).dec();
            }
        }
        metrics().active_rooms.set(gauge_value(self.rooms.len()));
        removed
    }
}

/// The preference that keeps the newest invitation offered to a user over `gateway`.
fn offered_label(gateway: Gateway) -> String {
    format!("perch:{}-invitations-offered", gateway.name())
}

/// A room as a search result.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room: Arc<Room>,
    pub category: Category,
    pub occupants: usize,
}

/// Someone present in a room, with their roles.
#[derive(Debug, Clone)]
pub struct Participant {
    pub user: String,
    pub roles: Roles,
}

#[derive(Debug, Clone)]
pub struct Joined {
    pub room: Arc<Room>,
    pub roles: Roles,
    /// Distinct users present, the joiner included, in name order; above
    /// ParticipantUpdateLimit only the joiner (Lync stops sending rosters there).
    pub participants: Vec<Participant>,
    /// The id of the room's last post not sent live to the session: every post up to it
    /// was published before the join, every later one goes to the session as
    /// [`Event::Posted`].
    pub history_until: i64,
}

impl Joined {
    /// The history to show on joining: the newest `count` posts the session was not sent
    /// live. Read after the join, `Last` would also hold posts published meanwhile, which
    /// the session receives live as well.
    pub fn history(&self, count: u32) -> HistoryQuery {
        HistoryQuery::Before {
            id: self.history_until.saturating_add(1),
            count,
        }
    }
}

/// A post that passed every check and whose store write (if its category keeps history)
/// is under way. Submitting in the caller's order keeps one connection's posts in order
/// and lets them share commits; [`AcceptedPost::completed`] finishes the lifecycle.
/// Dropped before it completes (the client went away), the post is still cached and
/// published once committed: it is durable, so the room must see it.
pub struct AcceptedPost {
    core: Arc<ChatCore>,
    room: Arc<Room>,
    message: Option<Accepted>,
}

/// Where an accepted message is: with the store, or (history off) only here.
enum Accepted {
    Stored(Arc<PostSlot>),
    Live(ChatMessage),
}

impl AcceptedPost {
    /// Waits for the commit; the message then joins the room's recent history and is
    /// published to everyone in the room, after every earlier post of the room. Returns
    /// the message with its id.
    pub async fn completed(mut self) -> Result<Arc<ChatMessage>, ChatError> {
        let message = match &self.message {
            Some(Accepted::Stored(slot)) => {
                let slot = slot.clone();
                let outcome = std::future::poll_fn(|cx| slot.poll_settled(cx)).await;
                self.core.publish_settled(&self.room);
                self.message = None;
                outcome?
            }
            // History off: delivered live, never stored, so it has no id.
            Some(Accepted::Live(_)) => {
                let Some(Accepted::Live(message)) = self.message.take() else {
                    unreachable!("matched as live just above");
                };
                let message = Arc::new(message);
                let recipients = self.core.recipients(self.room.id);
                self.core.publish(
                    &Event::Posted {
                        room: self.room.clone(),
                        message: message.clone(),
                    },
                    recipients,
                );
                message
            }
            None => unreachable!("completed consumes the post, so it runs once"),
        };
        Ok(message)
    }
}

impl Drop for AcceptedPost {
    fn drop(&mut self) {
        let Some(Accepted::Stored(slot)) = self.message.take() else {
            return;
        };
        // Abandoned while its commit was under way: publish it once committed. Without a
        // runtime the room's next completed post publishes it instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (core, room) = (self.core.clone(), self.room.clone());
            runtime.spawn(async move {
                std::future::poll_fn(|cx| slot.poll_settled(cx).map(|_| ())).await;
                core.publish_settled(&room);
            });
        }
    }
}

/// One stored post from submission until it is published.
struct PostSlot {
    state: Mutex<SlotState>,
}

enum SlotState {
    Committing(Pending<ChatMessage>),
    Settled(Result<Arc<ChatMessage>, StoreError>),
}

impl PostSlot {
    /// The commit's outcome once the store has given it, for the post's own waiter (the
    /// only one that needs the error: publishers just skip a failed write).
    fn poll_settled(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Arc<ChatMessage>, StoreError>> {
        let mut state = locked(&self.state);
        if let SlotState::Committing(pending) = &mut *state {
            let std::task::Poll::Ready(answer) = std::pin::Pin::new(pending).poll(cx) else {
                return std::task::Poll::Pending;
            };
            *state = SlotState::Settled(answer.unwrap_or(Err(StoreError::Closed)).map(Arc::new));
        }
        std::task::Poll::Ready(match &mut *state {
            SlotState::Settled(Ok(message)) => Ok(message.clone()),
            SlotState::Settled(Err(error)) => Err(std::mem::replace(error, StoreError::Closed)),
            SlotState::Committing(_) => unreachable!("settled just above"),
        })
    }

    /// Without waiting: `None` while the commit is under way, then the message, or `Some(None)`
    /// for a write that failed.
    fn try_settled(&self) -> Option<Option<Arc<ChatMessage>>> {
        use tokio::sync::oneshot::error::TryRecvError;
        let mut state = locked(&self.state);
        if let SlotState::Committing(pending) = &mut *state {
            let answer = match pending.try_recv() {
                Err(TryRecvError::Empty) => return None,
                Ok(answer) => answer,
                Err(TryRecvError::Closed) => Err(StoreError::Closed),
            };
            *state = SlotState::Settled(answer.map(Arc::new));
        }
        match &*state {
            SlotState::Settled(outcome) => Some(outcome.as_ref().ok().cloned()),
            SlotState::Committing(_) => None,
        }
    }
}

/// A room's stored posts from submission until published, in submission order. The
/// store numbers messages in the order it receives them, so this is id order, and
/// publishing from the front keeps the cache and every occupant in id order whichever
/// waiter wakes first.
#[derive(Default)]
struct PostQueue {
    slots: VecDeque<Arc<PostSlot>>,
}

/// The recent history of active rooms. `epoch` moves whenever the cache is cleared (an
/// administrative change may have deleted history), so a load that began before a clear
/// does not fill the cache with what it read.
#[derive(Default)]
struct Cache {
    epoch: u64,
    rooms: HashMap<i64, Recent>,
}

/// Longest preference label, in bytes.
pub const MAX_PREFERENCE_LABEL: usize = 256;
/// Longest content of one preference, in bytes (base64 text, as clients send it).
pub const MAX_PREFERENCE_CONTENT: usize = 64 * 1024;
/// What one user may keep in preferences: Lync's client keeps a handful of labels (its room
/// list among them), so this leaves room to spare while bounding what a user can make
/// perch hold.
pub const PREFERENCE_QUOTA: PreferenceQuota = PreferenceQuota {
    labels: 32,
    bytes: 256 * 1024,
};

fn check_preference_label(label: &str) -> Result<(), ChatError> {
    if label.is_empty() || label.len() > MAX_PREFERENCE_LABEL {
        return Err(ChatError::Invalid(format!(
            "a preference label is 1 to {MAX_PREFERENCE_LABEL} bytes long"
        )));
    }
    Ok(())
}

/// Most different words one search may hold: each is one more pass over its list of
/// matches in the full-text index, for every message the search reads.
pub const MAX_SEARCH_WORDS: usize = 8;
/// Longest word of a search, in characters. The index may cut a word into several (at a
/// combining mark, say), each again a pass over its matches; this bounds how many.
pub const MAX_SEARCH_WORD_CHARS: usize = 64;

/// The words of a search text as the index sees them: cut at every character that is not
/// a letter or a digit, lower-cased (the index folds case), each kept once. More than
/// [`MAX_SEARCH_WORDS`] different words, or a longer word than [`MAX_SEARCH_WORD_CHARS`],
/// is refused rather than shortened: a search on fewer words would find messages the
/// user did not ask for. Reads no further than the first word too many.
pub fn search_words(text: &[String]) -> Result<Vec<String>, ChatError> {
    let mut words: Vec<String> = Vec::new();
    let pieces = text
        .iter()
        .flat_map(|word| word.split(|c: char| !c.is_alphanumeric()))
        .filter(|piece| !piece.is_empty());
    for piece in pieces {
        if piece.chars().nth(MAX_SEARCH_WORD_CHARS).is_some() {
            return Err(ChatError::Invalid(format!(
                "a search word is at most {MAX_SEARCH_WORD_CHARS} characters long"
            )));
        }
        let word = piece.to_lowercase();
        if words.contains(&word) {
            continue;
        }
        if words.len() == MAX_SEARCH_WORDS {
            return Err(ChatError::Invalid(format!(
                "a search takes at most {MAX_SEARCH_WORDS} different words"
            )));
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod search_words_tests {
    use super::*;

    fn words(text: &str) -> Result<Vec<String>, ChatError> {
        let text: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        search_words(&text)
    }

    #[test]
    fn repeated_words_count_once_in_any_case() {
        let hundred = "the The THE ".repeat(34);
        assert_eq!(words(&hundred).unwrap(), ["the"]);
        assert_eq!(
            words(&format!("{hundred} a b c d e f g")).unwrap(),
            ["the", "a", "b", "c", "d", "e", "f", "g"]
        );
    }

    #[test]
    fn more_than_eight_different_words_are_refused() {
        let refused = words("a b c d e f g h i").unwrap_err();
        assert!(matches!(refused, ChatError::Invalid(_)), "{refused:?}");
        assert!(refused.to_string().contains("at most 8"), "{refused}");
        // Cut at punctuation, as the index cuts them: nine words in one.
        assert!(words("a-b-c-d-e-f-g-h-i").is_err());
        let long = "x".repeat(MAX_SEARCH_WORD_CHARS + 1);
        assert!(matches!(words(&long), Err(ChatError::Invalid(_))));
        assert_eq!(words(&long[1..]).unwrap().len(), 1);
    }

    #[test]
    fn punctuation_separates_and_alone_is_no_word() {
        assert_eq!(words("Hello, world! -- ??").unwrap(), ["hello", "world"]);
        assert!(words("!! ...").unwrap().is_empty());
        assert_eq!(words("Grüße ÉTÉ").unwrap(), ["grüße", "été"]);
    }
}

/// Takes a room's `Loading` mark back out if its load ends without finishing (the reader's
/// future was dropped with its connection, or the read failed), so the room can be loaded
/// again and `remember` stops collecting for it.
struct LoadMark<'a> {
    cache: &'a Mutex<Cache>,
    room: i64,
    epoch: u64,
    finished: bool,
}

impl Drop for LoadMark<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut cache = locked(self.cache);
        if cache.epoch == self.epoch
            && matches!(cache.rooms.get(&self.room), Some(Recent::Loading(_)))
        {
            cache.rooms.remove(&self.room);
        }
    }
}

/// The newest `count` of a room's last `depth` messages (`recent`, in id order) whose ids
/// are below `before`; `None` when older ones the store holds may belong in the answer.
/// `recent` holds the whole room when it holds fewer than `depth`.
fn newest_before(
    recent: &VecDeque<Arc<ChatMessage>>,
    before: i64,
    count: usize,
    depth: usize,
) -> Option<Vec<Arc<ChatMessage>>> {
    let end = recent.partition_point(|message| message.id < before);
    if end < count && recent.len() >= depth {
        return None;
    }
    Some(
        recent
            .range(end.saturating_sub(count)..end)
            .cloned()
            .collect(),
    )
}

/// A room's recent history as the hub keeps it.
enum Recent {
    Loaded(VecDeque<Arc<ChatMessage>>),
    /// A cold load is reading the store; posts committed meanwhile wait here to be merged.
    Loading(Vec<Arc<ChatMessage>>),
}

pub struct ChatCore {
    model: Arc<SnapshotHandle>,
    store: Arc<dyn Store>,
    live: Mutex<Live>,
    cache: Mutex<Cache>,
    /// Stored posts not yet published, per room (a room's entry outlives its posts: rooms
    /// are few and made by administrators).
    posts: Mutex<HashMap<i64, Arc<Mutex<PostQueue>>>>,
    sinks: RwLock<HashMap<Gateway, Arc<dyn EventSink>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent across a panic (every update is a single insert or
    // remove), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ChatCore {
    /// The hub over `store`; reads where the archive and the invitations stand, so joins
    /// and sign-ins know what was there before this hub published anything.
    pub fn new(model: Arc<SnapshotHandle>, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let live = Live {
            started_after: store.last_message_id()?,
            invited_up_to: store.last_invitation_id()?,
            ..Live::default()
        };
        Ok(Self {
            model,
            store,
            live: Mutex::new(live),
            cache: Mutex::new(Cache::default()),
            posts: Mutex::new(HashMap::new()),
            sinks: RwLock::new(HashMap::new()),
        })
    }

    /// Connects a gateway: from now on it receives the events of its sessions.
    pub fn attach(&self, gateway: Gateway, sink: Arc<dyn EventSink>) {
        self.sinks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(gateway, sink);
    }

    /// Hands an event to the gateways of its recipients, each gateway once with all of its
    /// own sessions, so each renders the event once.
    pub fn publish(&self, event: &Event, mut to: Vec<SessionRef>) {
        let Some(first) = to.first().map(|session| session.gateway) else {
            return;
        };
        // Sorted only when gateways are mixed: a room of one gateway (every room today, and
        // a 16,000-occupant one in particular) costs one pass, not a sort per post.
        if to.iter().any(|session| session.gateway != first) {
            to.sort_unstable_by_key(|session| session.gateway);
        }
        let sinks = self
            .sinks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for sessions in to.chunk_by(|a, b| a.gateway == b.gateway) {
            match sinks.get(&sessions[0].gateway) {
                Some(sink) => {
                    metrics().deliveries.inc_by(sessions.len() as u64);
                    sink.deliver(event, sessions)
                }
                None => tracing::warn!(
                    gateway = sessions[0].gateway.name(),
                    "event for a gateway that is not attached"
                ),
            }
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.model.snapshot()
    }

    fn room<'a>(snapshot: &'a Snapshot, uid: &str) -> Result<&'a Arc<Room>, ChatError> {
        snapshot
            .room_by_uid(uid)
            .ok_or(ChatError::Denied(Denial::NotFound))
    }

    /// Whether the user may use persistent chat at all.
    pub fn enabled(&self, user: &str) -> bool {
        policy::chat_enabled(&self.snapshot(), user)
    }

    /// Rooms the user may see whose name (or description) contains `criteria`, in name
    /// order, at most SearchLimit of them.
    pub fn search(
        &self,
        user: &str,
        criteria: &str,
        descriptions: bool,
    ) -> Result<Vec<RoomSummary>, ChatError> {
        let snapshot = self.snapshot();
        if !policy::chat_enabled(&snapshot, user) {
            return Err(Denial::NotEnabled.into());
        }
        let needle = criteria.trim().to_lowercase();
        let live = locked(&self.live);
        Ok(snapshot
            .rooms()
            .into_iter()
            .filter(|room| policy::check(&snapshot, user, room, Action::See).is_ok())
            .filter(|room| {
                needle.is_empty()
                    || room.name.to_lowercase().contains(&needle)
                    || (descriptions && room.description.to_lowercase().contains(&needle))
            })
            .take(snapshot.settings.search_limit as usize)
            .filter_map(|room| {
                Some(RoomSummary {
                    category: snapshot.category(room.category)?.clone(),
                    occupants: live.participants(room.id),
                    room: snapshot.room(room.id)?.clone(),
                })
            })
            .collect())
    }

    /// One room as `user` may see it (its details, category and occupants): the same
    /// refusal for a room they may not know of as for a missing one.
    pub fn describe(&self, user: &str, uid: &str) -> Result<RoomSummary, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, user, room, Action::See)?;
        let category = snapshot
            .category(room.category)
            .ok_or(ChatError::Denied(Denial::NotFound))?
            .clone();
        Ok(RoomSummary {
            occupants: locked(&self.live).participants(room.id),
            category,
            room: room.clone(),
        })
    }

    /// Joins a room; the others present hear of it (up to ParticipantUpdateLimit). Read
    /// the history to show with [`Joined::history`].
    pub fn join(&self, user: &str, session: &SessionRef, uid: &str) -> Result<Joined, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, user, room, Action::Join)?;
        let roles = policy::roles(&snapshot, user, room);
        let limit = snapshot.settings.participant_update_limit as usize;
        let mut live = locked(&self.live);
        let history_until = live.watermark(room.id);
        let (arrived, presence) = live.add(room.id, session, user);
        let roster = presence.participants() <= limit;
        let notify: Vec<SessionRef> = if arrived && roster {
            presence
                .sessions
                .keys()
                .filter(|other| *other != session)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let mut participants: Vec<Participant> = if roster {
            presence
                .users
                .keys()
                .map(|present| Participant {
                    user: present.to_string(),
                    roles: policy::roles(&snapshot, present, room),
                })
                .collect()
        } else {
            vec![Participant {
                user: user.to_owned(),
                roles,
            }]
        };
        drop(live);
        participants.sort_by(|a, b| a.user.cmp(&b.user));
        let event = Event::Joined {
            room: room.clone(),
            user: Arc::from(user),
            roles,
        };
        self.publish(&event, notify);
        Ok(Joined {
            room: room.clone(),
            roles,
            participants,
            history_until,
        })
    }

    /// Leaves a room. Leaving a room one is not in is not an error (the client may be
    /// resynchronising); the answer is the same. The others hear of it.
    pub fn part(
        &self,
        user: &str,
        session: &SessionRef,
        uid: &str,
    ) -> Result<Arc<Room>, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        let mut live = locked(&self.live);
        let was_there = live.remove(room.id, session);
        let notify = if was_there {
            Self::notify_list(&live, &snapshot, room.id)
        } else {
            Vec::new()
        };
        drop(live);
        self.publish(
            &Event::Left {
                room: room.clone(),
                user: Arc::from(user),
            },
            notify,
        );
        Ok(room.clone())
    }

    /// Who hears that someone left: nobody once the room was above ParticipantUpdateLimit.
    fn notify_list(live: &Live, snapshot: &Snapshot, room: i64) -> Vec<SessionRef> {
        if live.participants(room) >= snapshot.settings.participant_update_limit as usize {
            return Vec::new();
        }
        live.sessions(room)
    }

    /// The session ended: it leaves every room it joined, and those present hear of it;
    /// it is told of invitations no more.
    pub fn leave_all(&self, user: &str, session: &SessionRef) {
        let snapshot = self.snapshot();
        let mut live = locked(&self.live);
        if let Some(sessions) = live.online.get_mut(user) {
            sessions.remove(session);
            if sessions.is_empty() {
                live.online.remove(user);
            }
        }
        let rooms: Vec<i64> = live
            .by_session
            .get(session)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        let mut events = Vec::new();
        for id in rooms {
            // The others hear of it when the user's last session there goes.
            if !live.remove(id, session) {
                continue;
            }
            if let Some(room) = snapshot.room(id) {
                let event = Event::Left {
                    room: room.clone(),
                    user: Arc::from(user),
                };
                events.push((event, Self::notify_list(&live, &snapshot, id)));
            }
        }
        drop(live);
        for (event, to) in events {
            self.publish(&event, to);
        }
    }

    /// Whether `session` is in the room `uid` now (an administrative change may have taken
    /// it out since it joined).
    pub fn is_present(&self, session: &SessionRef, uid: &str) -> bool {
        let snapshot = self.snapshot();
        let Ok(room) = Self::room(&snapshot, uid) else {
            return false;
        };
        locked(&self.live)
            .by_session
            .get(session)
            .is_some_and(|rooms| rooms.contains(&room.id))
    }

    /// Sessions currently in a room.
    pub fn recipients(&self, room: i64) -> Vec<SessionRef> {
        locked(&self.live).sessions(room)
    }

    /// Checks a post and, when its category keeps history, submits it to the store now;
    /// await [`AcceptedPost::completed`] before acknowledging it.
    pub fn post(
        self: &Arc<Self>,
        user: &str,
        session: &SessionRef,
        uid: &str,
        text: String,
        extension: Option<Extension>,
    ) -> Result<AcceptedPost, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, user, room, Action::Post)?;
        let joined = locked(&self.live)
            .by_session
            .get(session)
            .is_some_and(|rooms| rooms.contains(&room.id));
        if !joined {
            return Err(ChatError::Invalid(
                "join the room before posting to it".into(),
            ));
        }
        if extension
            .as_ref()
            .is_some_and(|extension| extension.gateway != session.gateway)
        {
            return Err(ChatError::Invalid(
                "message parts of another gateway".into(),
            ));
        }
        let message = ChatMessage {
            id: 0,
            room_id: room.id,
            author: user.to_owned(),
            ts: now_ticks(),
            text,
            extension,
        };
        // The text is a message; with the other parts of the post (a story's title and
        // content, add-in data) it is a story.
        let settings = &snapshot.settings;
        for (size, limit) in [
            (message.text.len(), settings.message_size_limit),
            (message.story_bytes(), settings.story_size_limit),
        ] {
            if size > limit as usize {
                return Err(ChatError::TooLarge { size, limit });
            }
        }
        let category = snapshot
            .category(room.category)
            .ok_or(ChatError::Denied(Denial::NotFound))?;
        // The store takes the message itself: no copy of the text per post.
        let message = if policy::keeps_history(category) {
            let queue = self.post_queue(room.id);
            let mut queue = locked(&queue);
            // Submitted while holding the room's queue, so the queue's order is the
            // order the store numbers them in.
            let slot = Arc::new(PostSlot {
                state: Mutex::new(SlotState::Committing(self.store.append_message(message))),
            });
            queue.slots.push_back(slot.clone());
            Accepted::Stored(slot)
        } else {
            Accepted::Live(message)
        };
        Ok(AcceptedPost {
            core: self.clone(),
            room: room.clone(),
            message: Some(message),
        })
    }

    fn post_queue(&self, room: i64) -> Arc<Mutex<PostQueue>> {
        locked(&self.posts).entry(room).or_default().clone()
    }

    /// Publishes the room's committed posts from the front of its queue, each after the
    /// ones before it, stopping at the first whose commit is still under way; failed
    /// writes are dropped (their senders hear of the failure). Runs under the queue's lock
    /// so two publishers cannot interleave.
    fn publish_settled(&self, room: &Arc<Room>) {
        let queue = self.post_queue(room.id);
        let mut queue = locked(&queue);
        while let Some(front) = queue.slots.front() {
            let Some(outcome) = front.try_settled() else {
                break;
            };
            queue.slots.pop_front();
            if let Some(message) = outcome {
                metrics().posts.inc();
                self.remember(&message);
                let recipients = self.published(room.id, message.id);
                self.publish(
                    &Event::Posted {
                        room: room.clone(),
                        message,
                    },
                    recipients,
                );
            }
        }
    }

    /// Records `id` as the room's last published post and returns the sessions it goes to,
    /// under one lock: a join comes wholly before (and is sent the post) or after (and has
    /// it in its history), see [`Joined::history_until`].
    fn published(&self, room: i64, id: i64) -> Vec<SessionRef> {
        let mut live = locked(&self.live);
        live.published.insert(room, id);
        live.sessions(room)
    }

    /// Records a committed message in its room's recent history (called in id order).
    fn remember(&self, message: &Arc<ChatMessage>) {
        let depth = self.snapshot().settings.default_chat_history as usize;
        let mut cache = locked(&self.cache);
        match cache.rooms.get_mut(&message.room_id) {
            Some(Recent::Loaded(recent)) => {
                let at = recent.partition_point(|known| known.id < message.id);
                if recent.get(at).is_some_and(|known| known.id == message.id) {
                    return;
                }
                recent.insert(at, message.clone());
                while recent.len() > depth {
                    recent.pop_front();
                }
            }
            Some(Recent::Loading(committed)) => committed.push(message.clone()),
            // Nobody asked for this room's history yet: the first reader loads it.
            None => {}
        }
    }

    /// History the user may read, oldest first. The last DefaultChatHistory messages of a
    /// room are served from memory once loaded.
    pub async fn history(
        &self,
        user: &str,
        uid: &str,
        query: HistoryQuery,
    ) -> Result<(Arc<Room>, Vec<Arc<ChatMessage>>), ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?.clone();
        policy::check(&snapshot, user, &room, Action::ReadHistory)?;
        let depth = snapshot.settings.default_chat_history as usize;
        let query = match query {
            HistoryQuery::Search { words, count } => {
                let words = search_words(&words)?;
                if words.is_empty() {
                    return Ok((room, Vec::new()));
                }
                HistoryQuery::Search { words, count }
            }
            HistoryQuery::Range(range) if !range.words.is_empty() => {
                let words = search_words(&range.words)?;
                if words.is_empty() {
                    return Ok((room, Vec::new()));
                }
                HistoryQuery::Range(HistoryRange { words, ..range })
            }
            other => other,
        };
        // The newest `count` before `before`: `Last` and `Before` come from the recent
        // history when it holds them.
        let (before, count) = match query {
            HistoryQuery::Last(count) => (i64::MAX, count as usize),
            HistoryQuery::Before { id, count } => (id, count as usize),
            _ => return self.stored(room, query).await,
        };
        if count > depth {
            return self.stored(room, query).await;
        }
        let mark = {
            let mut cache = locked(&self.cache);
            let epoch = cache.epoch;
            match cache.rooms.entry(room.id) {
                Entry::Occupied(entry) => {
                    if let Recent::Loaded(recent) = entry.get()
                        && let Some(answer) = newest_before(recent, before, count, depth)
                    {
                        return Ok((room, answer));
                    }
                    // Another reader is loading it, or the older messages asked for are
                    // not in it: read past the cache.
                    None
                }
                Entry::Vacant(entry) => {
                    entry.insert(Recent::Loading(Vec::new()));
                    Some(LoadMark {
                        cache: &self.cache,
                        room: room.id,
                        epoch,
                        finished: false,
                    })
                }
            }
        };
        let Some(mut mark) = mark else {
            return self.stored(room, query).await;
        };
        let loaded = self
            .store
            .history(room.id, HistoryQuery::Last(depth as u32))
            .await?;
        let answer = {
            let mut cache = locked(&self.cache);
            let unchanged = cache.epoch == mark.epoch;
            mark.finished = true;
            match cache.rooms.get_mut(&room.id) {
                // Still this load's mark: nothing cleared the cache meanwhile.
                Some(Recent::Loading(committed)) if unchanged => {
                    let committed = std::mem::take(committed);
                    // Posts committed during the read may or may not be in it: merge by id.
                    let mut recent: Vec<Arc<ChatMessage>> =
                        loaded.into_iter().map(Arc::new).chain(committed).collect();
                    recent.sort_unstable_by_key(|message| message.id);
                    recent.dedup_by_key(|message| message.id);
                    let skip = recent.len().saturating_sub(depth);
                    let recent: VecDeque<Arc<ChatMessage>> =
                        recent.into_iter().skip(skip).collect();
                    let answer = newest_before(&recent, before, count, depth);
                    cache.rooms.insert(room.id, Recent::Loaded(recent));
                    answer
                }
                // Cleared meanwhile (history may have been deleted): answer, do not cache.
                _ => {
                    let loaded: VecDeque<Arc<ChatMessage>> =
                        loaded.into_iter().map(Arc::new).collect();
                    newest_before(&loaded, before, count, depth)
                }
            }
        };
        match answer {
            Some(answer) => Ok((room, answer)),
            None => self.stored(room, query).await,
        }
    }

    /// A history query answered by the store.
    async fn stored(
        &self,
        room: Arc<Room>,
        query: HistoryQuery,
    ) -> Result<(Arc<Room>, Vec<Arc<ChatMessage>>), ChatError> {
        let messages = self.store.history(room.id, query).await?;
        Ok((room, messages.into_iter().map(Arc::new).collect()))
    }

    /// Invitations after `after` for rooms the user may still see.
    pub async fn invitations(
        &self,
        user: &str,
        after: i64,
    ) -> Result<Vec<(i64, Arc<Room>)>, ChatError> {
        let invitations = self.store.invitations(user, after).await?;
        let snapshot = self.snapshot();
        Ok(invitations
            .into_iter()
            .filter_map(|(id, room)| {
                let room = snapshot.room(room)?;
                // An invitation is worth offering only while the user may act on it.
                policy::check(&snapshot, user, room, Action::Join).ok()?;
                Some((id, room.clone()))
            })
            .collect())
    }

    /// The session signed in: from now on it is told of its user's invitations as they are
    /// made ([`Event::Invited`], by [`ChatCore::deliver_invitations`]) until it ends
    /// ([`ChatCore::leave_all`]). Returns those made before that the user was not offered
    /// over the session's gateway yet, recorded as offered. For a gateway whose clients
    /// do not ask for invitations themselves.
    pub async fn online(
        &self,
        user: &str,
        session: &SessionRef,
    ) -> Result<Vec<(i64, Arc<Room>)>, ChatError> {
        let label = offered_label(session.gateway);
        // Read before the session is registered: records made after are of invitations
        // sent to it live, which must not hide older ones from this offer.
        let record = self.preference(user, &label).await;
        let up_to = {
            let mut live = locked(&self.live);
            live.online
                .entry(Arc::from(user))
                .or_default()
                .insert(session.clone());
            live.invited_up_to
        };
        let after = match record? {
            Some((_, content)) => content.trim().parse().unwrap_or(0),
            None => 0,
        };
        let mut offered = self.invitations(user, after).await?;
        offered.retain(|(id, _)| *id <= up_to);
        if offered.is_empty() {
            return Ok(offered);
        }
        let recorded = {
            let live = locked(&self.live);
            // Gone meanwhile: offered to nobody, so recorded as nothing.
            if !live.is_online(user, session) {
                return Ok(Vec::new());
            }
            // Every record is the hub's mark at the time, submitted under this lock, so a
            // user's record only moves forward; those after `up_to` went to the session.
            self.set_preference(user, &label, &live.invited_up_to.to_string())
        };
        // Offered is offered, recorded or not (a user at their preference quota).
        if let Err(error) = recorded.await {
            tracing::info!(%user, %error, "invitations offered but not recorded");
        }
        Ok(offered)
    }

    /// Tells users of the invitations made since the last call (an administrative change
    /// made them members of rooms whose invitations are on) on their sessions registered
    /// with [`ChatCore::online`]: each is recorded as offered over those sessions'
    /// gateways, then sent as [`Event::Invited`]. Users not online are offered theirs at
    /// their next sign-in. Returns how many were sent.
    pub async fn deliver_invitations(&self) -> Result<usize, ChatError> {
        const PAGE: u32 = 500;
        let mut sent = 0;
        loop {
            let after = locked(&self.live).invited_up_to;
            let page = self.store.invitations_after(after, PAGE).await?;
            let snapshot = self.snapshot();
            let mut told = Vec::new();
            for (id, user, room) in &page {
                // Worth telling only while the user may act on it, as at sign-in.
                let room = snapshot
                    .room(*room)
                    .filter(|room| policy::check(&snapshot, user, room, Action::Join).is_ok());
                let mut live = locked(&self.live);
                if *id <= live.invited_up_to {
                    // Another call dealt with it.
                    continue;
                }
                live.invited_up_to = *id;
                let (Some(room), Some(sessions)) = (room, live.online.get(user.as_str())) else {
                    continue;
                };
                let to: Vec<SessionRef> = sessions.iter().cloned().collect();
                let mut gateways: Vec<Gateway> = to.iter().map(|session| session.gateway).collect();
                gateways.sort_unstable();
                gateways.dedup();
                // Submitted under the lock, as `online` records.
                let records: Vec<_> = gateways
                    .into_iter()
                    .map(|gateway| {
                        self.set_preference(user, &offered_label(gateway), &id.to_string())
                    })
                    .collect();
                drop(live);
                let event = Event::Invited {
                    room: room.clone(),
                    user: Arc::from(user.as_str()),
                    id: *id,
                };
                told.push((records, event, to));
            }
            // Recorded before sent, so a stream binding after it arrived is not offered
            // it again.
            for (records, event, to) in told {
                for record in records {
                    if let Err(error) = record.await {
                        tracing::info!(%error, "invitation sent but not recorded as offered");
                    }
                }
                sent += 1;
                self.publish(&event, to);
            }
            if page.len() < PAGE as usize {
                return Ok(sent);
            }
        }
    }

    /// A client preference: (seqid, content).
    pub async fn preference(
        &self,
        user: &str,
        label: &str,
    ) -> Result<Option<(i64, String)>, ChatError> {
        check_preference_label(label)?;
        Ok(self.store.preference(user, label).await?)
    }

    /// Stores a client preference: submitted now, resolving to its new seqid once durable.
    pub fn set_preference(
        &self,
        user: &str,
        label: &str,
        content: &str,
    ) -> impl std::future::Future<Output = Result<i64, ChatError>> + Send + use<> {
        let checked = check_preference_label(label).and_then(|()| {
            if content.len() > MAX_PREFERENCE_CONTENT {
                return Err(ChatError::TooLarge {
                    size: content.len(),
                    limit: MAX_PREFERENCE_CONTENT as u32,
                });
            }
            // Whoever may not use persistent chat stores nothing in it either.
            if !policy::chat_enabled(&self.snapshot(), user) {
                return Err(Denial::NotEnabled.into());
            }
            Ok(self
                .store
                .set_preference(user, label, content, PREFERENCE_QUOTA))
        });
        async move {
            committed(checked?).await.map_err(|error| match error {
                StoreError::QuotaExceeded(reason) => ChatError::QuotaExceeded(reason),
                other => other.into(),
            })
        }
    }

    /// Rooms where the user is a member (or a manager, with `managed`), that they may see.
    pub fn associations(&self, user: &str, managed: bool) -> Vec<Room> {
        let snapshot = self.snapshot();
        snapshot
            .rooms()
            .into_iter()
            .filter(|room| policy::check(&snapshot, user, room, Action::See).is_ok())
            .filter(|room| {
                let roles = policy::roles(&snapshot, user, room);
                if managed { roles.manager } else { roles.member }
            })
            .cloned()
            .collect()
    }

    /// After an administrative change (the snapshot was reloaded): sessions that may no
    /// longer be in their rooms (room disabled or removed, user denied or disabled) are
    /// taken out, and they and the rooms hear of it. Returns how many were.
    pub fn reconcile(&self) -> usize {
        let snapshot = self.snapshot();
        // Cached history may have been cleared or rooms removed: start afresh.
        let mut cache = locked(&self.cache);
        cache.rooms.clear();
        cache.epoch += 1;
        drop(cache);
        let mut live = locked(&self.live);
        let mut evictions = Vec::new();
        let present: Vec<(i64, SessionRef, Arc<str>)> = live
            .rooms
            .iter()
            .flat_map(|(room, presence)| {
                presence
                    .sessions
                    .iter()
                    .map(move |(session, user)| (*room, session.clone(), user.clone()))
            })
            .collect();
        for (room_id, session, user) in present {
            let allowed = snapshot
                .room(room_id)
                .is_some_and(|room| policy::check(&snapshot, &user, room, Action::Join).is_ok());
            if allowed {
                continue;
            }
            let gone = live.remove(room_id, &session);
            let Some(room) = snapshot.room(room_id) else {
                continue;
            };
            tracing::info!(%user, room = %room.name, "removed from a room after an administrative change");
            // The session itself always hears; the others once the user's last one goes.
            let mut notify = if gone {
                Self::notify_list(&live, &snapshot, room_id)
            } else {
                Vec::new()
            };
            notify.push(session.clone());
            evictions.push((
                Event::Evicted {
                    room: room.clone(),
                    user,
                    session,
                },
                notify,
            ));
        }
        drop(live);
        let count = evictions.len();
        for (event, to) in evictions {
            self.publish(&event, to);
        }
        count
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
