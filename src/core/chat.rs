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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub connection: u64,
    pub call_id: String,
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

#[derive(Debug, Clone)]
struct Occupant {
    session: SessionKey,
    user: String,
}

#[derive(Debug, Default)]
struct Live {
    rooms: HashMap<i64, Vec<Occupant>>,
    by_session: HashMap<SessionKey, HashSet<i64>>,
}

impl Live {
    fn occupants(&self, room: i64) -> &[Occupant] {
        self.rooms.get(&room).map_or(&[], Vec::as_slice)
    }

    /// Removes a session from a room; returns whether it was there.
    fn remove(&mut self, room: i64, session: &SessionKey) -> bool {
        let Some(list) = self.rooms.get_mut(&room) else {
            return false;
        };
        let before = list.len();
        list.retain(|o| &o.session != session);
        let removed = list.len() != before;
        if list.is_empty() {
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
    pub room: Room,
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
    pub room: Room,
    pub roles: Roles,
    /// Distinct users present, the joiner included.
    pub participants: Vec<Participant>,
    /// Other sessions to tell about the join (none above ParticipantUpdateLimit).
    pub notify: Vec<SessionKey>,
}

#[derive(Debug, Clone)]
pub struct Left {
    pub room: Room,
    pub user: String,
    pub notify: Vec<SessionKey>,
}

/// A post that passed every check and is on its way to the store (or not, when the
/// category keeps no history).
pub struct AcceptedPost {
    pub room: Room,
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

    fn room<'a>(snapshot: &'a Snapshot, uid: &str) -> Result<&'a Room, ChatError> {
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
                    occupants: distinct_users(live.occupants(room.id)),
                    room: room.clone(),
                })
            })
            .collect())
    }

    pub fn join(&self, aor: &str, session: &SessionKey, uid: &str) -> Result<Joined, ChatError> {
        let snapshot = self.snapshot();
        let room = Self::room(&snapshot, uid)?;
        policy::check(&snapshot, aor, room, Action::Join)?;
        let mut live = locked(&self.live);
        let occupants = live.rooms.entry(room.id).or_default();
        let already = occupants.iter().any(|o| &o.session == session);
        if !already {
            occupants.push(Occupant {
                session: session.clone(),
                user: aor.to_owned(),
            });
            live.by_session
                .entry(session.clone())
                .or_default()
                .insert(room.id);
        }
        let occupants = live.occupants(room.id);
        let notify =
            if already || occupants.len() > snapshot.settings.participant_update_limit as usize {
                Vec::new()
            } else {
                occupants
                    .iter()
                    .filter(|o| &o.session != session)
                    .map(|o| o.session.clone())
                    .collect()
            };
        let mut seen = HashSet::new();
        let participants = occupants
            .iter()
            .filter(|o| seen.insert(o.user.clone()))
            .map(|o| Participant {
                user: o.user.clone(),
                roles: policy::roles(&snapshot, &o.user, room),
            })
            .collect();
        Ok(Joined {
            room: room.clone(),
            roles: policy::roles(&snapshot, aor, room),
            participants,
            notify,
        })
    }

    /// Leaves a room. Leaving a room one is not in is not an error (the client may be
    /// resynchronising); the reply is the same.
    pub fn part(&self, aor: &str, session: &SessionKey, uid: &str) -> Result<Left, ChatError> {
        let snapshot = self.snapshot();
        let room = snapshot
            .room_by_uid(uid)
            .ok_or(ChatError::Denied(Denial::NotFound))?;
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

    fn notify_list(live: &Live, snapshot: &Snapshot, room: i64) -> Vec<SessionKey> {
        let occupants = live.occupants(room);
        if occupants.len() >= snapshot.settings.participant_update_limit as usize {
            return Vec::new();
        }
        occupants.iter().map(|o| o.session.clone()).collect()
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
        locked(&self.live)
            .occupants(room)
            .iter()
            .map(|o| o.session.clone())
            .collect()
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
        let limit = snapshot.settings.message_size_limit;
        if body.len() > limit as usize {
            return Err(ChatError::TooLarge {
                size: body.len(),
                limit,
            });
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
    ) -> Result<(Room, Vec<Arc<StoredMessage>>), ChatError> {
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
    pub fn invitations(&self, aor: &str, after: i64) -> Result<Vec<(i64, Room)>, ChatError> {
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
        let present: Vec<(i64, Occupant)> = live
            .rooms
            .iter()
            .flat_map(|(room, list)| list.iter().map(move |o| (*room, o.clone())))
            .collect();
        for (room_id, occupant) in present {
            let allowed = snapshot.room(room_id).is_some_and(|room| {
                policy::check(&snapshot, &occupant.user, room, Action::Join).is_ok()
            });
            if allowed {
                continue;
            }
            live.remove(room_id, &occupant.session);
            let Some(room) = snapshot.room(room_id) else {
                continue;
            };
            let mut notify = Self::notify_list(&live, &snapshot, room_id);
            notify.push(occupant.session.clone());
            evicted.push(Eviction {
                session: occupant.session.clone(),
                left: Left {
                    room: room.clone(),
                    user: occupant.user.clone(),
                    notify,
                },
            });
        }
        evicted
    }
}

fn distinct_users(occupants: &[Occupant]) -> usize {
    occupants
        .iter()
        .map(|o| o.user.as_str())
        .collect::<HashSet<_>>()
        .len()
}
