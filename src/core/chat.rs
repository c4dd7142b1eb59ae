//! Live chat state and the operations protocol adapters call: search, join, part, post,
//! history, invitations, associations. Every permission question goes to `policy`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{HistoryQuery, Pending, Store, StoreError, StoredMessage};

use super::model::{Category, Room};
use super::policy::{self, Action, Denial, Roles};
use super::snapshot::{Snapshot, SnapshotHandle};

/// One chat dialog of one connection: the unit that joins rooms and receives messages.
/// Cheap to clone: a post to a large room copies one per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub connection: u64,
    pub call_id: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{}", .0.reason())]
    Denied(Denial),
    #[error("{0}")]
    Invalid(String),
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Denial> for ChatError {
    fn from(denial: Denial) -> Self {
        ChatError::Denied(denial)
    }
}

/// Who is in one room.
#[derive(Debug, Default)]
struct Presence {
    /// Every session present, with its user.
    sessions: HashMap<SessionKey, Arc<str>>,
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
    by_session: HashMap<SessionKey, HashSet<i64>>,
}

impl Live {
    fn participants(&self, room: i64) -> usize {
        self.rooms.get(&room).map_or(0, Presence::participants)
    }

    fn sessions(&self, room: i64) -> Vec<SessionKey> {
        self.rooms
            .get(&room)
            .map(|p| p.sessions.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds a session to a room; says whether it was not there yet, and who is there now.
    fn add(&mut self, room: i64, session: &SessionKey, user: &str) -> (bool, &Presence) {
        let presence = self.rooms.entry(room).or_default();
        let added = !presence.sessions.contains_key(session);
        if added {
            let user: Arc<str> = presence
                .users
                .get_key_value(user)
                .map_or_else(|| Arc::from(user), |(known, _)| known.clone());
            *presence.users.entry(user.clone()).or_default() += 1;
            presence.sessions.insert(session.clone(), user);
            self.by_session
                .entry(session.clone())
                .or_default()
                .insert(room);
        }
        (added, presence)
    }

    /// Removes a session from a room; returns whether it was there.
    fn remove(&mut self, room: i64, session: &SessionKey) -> bool {
        let Some(presence) = self.rooms.get_mut(&room) else {
            return false;
        };
        let removed = match presence.sessions.remove(session) {
            Some(user) => {
                if let Entry::Occupied(mut count) = presence.users.entry(user) {
                    *count.get_mut() -= 1;
                    if *count.get() == 0 {
                        count.remove();
                    }
                }
                true
            }
            None => false,
        };
        if presence.sessions.is_empty() {
            self.rooms.remove(&room);
        }
        if let Some(rooms) = self.by_session.get_mut(session) {
            rooms.remove(&room);
            if rooms.is_empty() {
                self.by_session.remove(session);
            }
        }
        removed
    }
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
    /// Other sessions to tell about the join (none above ParticipantUpdateLimit).
    pub notify: Vec<SessionKey>,
}

#[derive(Debug, Clone)]
pub struct Left {
    pub room: Arc<Room>,
    pub user: String,
    pub notify: Vec<SessionKey>,
}

/// A post that passed every check and is on its way to the store (or not, when the
/// category keeps no history).
pub struct AcceptedPost {
    pub room: Arc<Room>,
    pub persisted: Option<Pending<StoredMessage>>,
    pub author: String,
    pub ts: i64,
    pub body: String,
    pub extra: String,
}

/// Why a session was removed from a room without asking.
#[derive(Debug, Clone)]
pub struct Eviction {
    pub session: SessionKey,
    pub left: Left,
}

pub struct ChatCore {
    model: Arc<SnapshotHandle>,
    store: Arc<dyn Store>,
    live: Mutex<Live>,
    cache: Mutex<HashMap<i64, VecDeque<Arc<StoredMessage>>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent across a panic (every update is a single insert or
    // remove), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Current time in 100 ns ticks since the Unix epoch.
pub fn now_ticks() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_nanos() / 100) as i64)
}

impl ChatCore {
    pub fn new(model: Arc<SnapshotHandle>, store: Arc<dyn Store>) -> Self {
        Self {
            model,
            store,
            live: Mutex::new(Live::default()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.model.snapshot()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn room<'a>(snapshot: &'a Snapshot, uid: &str) -> Result<&'a Arc<Room>, ChatError> {
        snapshot
            .room_by_uid(uid)
            .ok_or(ChatError::Denied(Denial::NotFound))
    }

    /// Whether the user may use persistent chat at all.
    pub fn enabled(&self, aor: &str) -> bool {
        policy::chat_enabled(&self.snapshot(), aor)
    }

    /// Rooms the user may see whose name (or description) contains `criteria`, in name
    /// order, at most SearchLimit of them.
    pub fn search(
        &self,
        aor: &str,
        criteria: &str,
        descriptions: bool,
    ) -> Result<Vec<RoomSummary>, ChatError> {
        let snapshot = self.snapshot();
        if !policy::chat_enabled(&snapshot, aor) {
            return Err(Denial::NotEnabled.into());
        }
        let needle = criteria.trim().to_lowercase();
        let live = locked(&self.live);
        Ok(snapshot
            .rooms()
            .into_iter()
            .filter(|room| policy::check(&snapshot, aor, room, Action::See).is_ok())
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

    pub fn join(&self, aor: &str, session: &SessionKey, uid: &str) -> Result<Joined, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, aor, room, Action::Join)?;
        let roles = policy::roles(&snapshot, aor, room);
        let limit = snapshot.settings.participant_update_limit as usize;
        let mut live = locked(&self.live);
        let (added, presence) = live.add(room.id, session, aor);
        let roster = presence.participants() <= limit;
        let notify = if added && roster {
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
                .map(|user| Participant {
                    user: user.to_string(),
                    roles: policy::roles(&snapshot, user, room),
                })
                .collect()
        } else {
            vec![Participant {
                user: aor.to_owned(),
                roles,
            }]
        };
        drop(live);
        participants.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(Joined {
            room: room.clone(),
            roles,
            participants,
            notify,
        })
    }

    /// Leaves a room. Leaving a room one is not in is not an error (the client may be
    /// resynchronising); the reply is the same.
    pub fn part(&self, aor: &str, session: &SessionKey, uid: &str) -> Result<Left, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        let mut live = locked(&self.live);
        let was_there = live.remove(room.id, session);
        let notify = if was_there {
            Self::notify_list(&live, &snapshot, room.id)
        } else {
            Vec::new()
        };
        Ok(Left {
            room: room.clone(),
            user: aor.to_owned(),
            notify,
        })
    }

    /// Who hears that someone left: nobody once the room was above ParticipantUpdateLimit.
    fn notify_list(live: &Live, snapshot: &Snapshot, room: i64) -> Vec<SessionKey> {
        if live.participants(room) >= snapshot.settings.participant_update_limit as usize {
            return Vec::new();
        }
        live.sessions(room)
    }

    /// The dialog ended: leave every room it joined.
    pub fn leave_all(&self, aor: &str, session: &SessionKey) -> Vec<Left> {
        let snapshot = self.snapshot();
        let mut live = locked(&self.live);
        let rooms: Vec<i64> = live
            .by_session
            .get(session)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        rooms
            .into_iter()
            .filter_map(|id| {
                live.remove(id, session);
                let room = snapshot.room(id)?;
                Some(Left {
                    room: room.clone(),
                    user: aor.to_owned(),
                    notify: Self::notify_list(&live, &snapshot, id),
                })
            })
            .collect()
    }

    /// Sessions currently in a room (for delivering a post).
    pub fn recipients(&self, room: i64) -> Vec<SessionKey> {
        locked(&self.live).sessions(room)
    }

    /// Checks a post and submits it to the store when the category keeps history. The
    /// caller awaits `persisted` before acknowledging and fanning out.
    pub fn post(
        &self,
        aor: &str,
        session: &SessionKey,
        uid: &str,
        body: String,
        extra: String,
    ) -> Result<AcceptedPost, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, aor, room, Action::Post)?;
        let joined = locked(&self.live)
            .by_session
            .get(session)
            .is_some_and(|rooms| rooms.contains(&room.id));
        if !joined {
            return Err(ChatError::Invalid(
                "join the room before posting to it".into(),
            ));
        }
        // The text is a message; with the other parts of the post (a story's title and
        // content, add-in data) it is a story.
        let settings = &snapshot.settings;
        for (size, limit) in [
            (body.len(), settings.message_size_limit),
            (body.len() + extra.len(), settings.story_size_limit),
        ] {
            if size > limit as usize {
                return Err(ChatError::TooLarge { size, limit });
            }
        }
        let category = snapshot
            .category(room.category)
            .ok_or(ChatError::Denied(Denial::NotFound))?;
        let ts = now_ticks();
        let persisted = policy::keeps_history(category)
            .then(|| self.store.append_message(room.id, aor, ts, &body, &extra));
        Ok(AcceptedPost {
            room: room.clone(),
            persisted,
            author: aor.to_owned(),
            ts,
            body,
            extra,
        })
    }

    /// Records a committed message in the room's recent-history cache.
    pub fn remember(&self, message: Arc<StoredMessage>) {
        let depth = self.snapshot().settings.default_chat_history as usize;
        let mut cache = locked(&self.cache);
        if let Some(recent) = cache.get_mut(&message.room_id) {
            recent.push_back(message);
            while recent.len() > depth {
                recent.pop_front();
            }
        }
    }

    /// History the user may read, oldest first. The last DefaultChatHistory messages of
    /// a room are served from memory once loaded.
    pub fn history(
        &self,
        aor: &str,
        uid: &str,
        query: HistoryQuery,
    ) -> Result<(Arc<Room>, Vec<Arc<StoredMessage>>), ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, aor, room, Action::ReadHistory)?;
        let depth = snapshot.settings.default_chat_history as usize;
        if let HistoryQuery::Last(count) = query
            && count as usize <= depth
        {
            // Held across a cold load, so a post committed meanwhile cannot slip
            // between the load and the insert.
            let mut cache = locked(&self.cache);
            let recent = match cache.entry(room.id) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(
                    self.store
                        .history(room.id, &HistoryQuery::Last(depth as u32))?
                        .into_iter()
                        .map(Arc::new)
                        .collect(),
                ),
            };
            let skip = recent.len().saturating_sub(count as usize);
            let answer = recent.iter().skip(skip).cloned().collect();
            return Ok((room.clone(), answer));
        }
        let messages = self.store.history(room.id, &query)?;
        Ok((room.clone(), messages.into_iter().map(Arc::new).collect()))
    }

    /// Invitations after `after` for rooms the user may still see.
    pub fn invitations(&self, aor: &str, after: i64) -> Result<Vec<(i64, Arc<Room>)>, ChatError> {
        let snapshot = self.snapshot();
        Ok(self
            .store
            .invitations(aor, after)?
            .into_iter()
            .filter_map(|(id, room)| {
                let room = snapshot.room(room)?;
                policy::check(&snapshot, aor, room, Action::See).ok()?;
                Some((id, room.clone()))
            })
            .collect())
    }

    /// Rooms where the user is a member (or a manager, with `managed`), that they may see.
    pub fn associations(&self, aor: &str, managed: bool) -> Vec<Room> {
        let snapshot = self.snapshot();
        snapshot
            .rooms()
            .into_iter()
            .filter(|room| policy::check(&snapshot, aor, room, Action::See).is_ok())
            .filter(|room| {
                let roles = policy::roles(&snapshot, aor, room);
                if managed { roles.manager } else { roles.member }
            })
            .cloned()
            .collect()
    }

    /// After an administrative change (the snapshot was reloaded): sessions that may no longer be in their rooms
    /// (room disabled or removed, user denied or disabled) are taken out.
    pub fn reconcile(&self) -> Vec<Eviction> {
        let snapshot = self.snapshot();
        // Cached history may have been cleared or rooms removed: start afresh.
        locked(&self.cache).clear();
        let mut live = locked(&self.live);
        let mut evicted = Vec::new();
        let present: Vec<(i64, SessionKey, Arc<str>)> = live
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
            live.remove(room_id, &session);
            let Some(room) = snapshot.room(room_id) else {
                continue;
            };
            let mut notify = Self::notify_list(&live, &snapshot, room_id);
            notify.push(session.clone());
            evicted.push(Eviction {
                session,
                left: Left {
                    room: room.clone(),
                    user: user.to_string(),
                    notify,
                },
            });
        }
        evicted
    }
}
