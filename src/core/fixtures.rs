//! Test fixtures shared by the unit tests: an in-memory implementation of the store ports
//! (the core's tests wire no backend), a temporary directory for tests that do, and the
//! model records a test room needs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::{oneshot, watch};

use super::ids::new_room_uid;
use super::model::{Addin, Category, Group, PolicyScope, Principal, Privacy, Room};
use super::ports::{
    AdminToken, AdminTokenStore, ArchiveStore, ChangeFeed, ChatMessage, DirectoryStore,
    HistoryQuery, InvitationStore, ModelData, ModelStore, Pending, PreferenceEntry,
    PreferenceQuota, PreferenceStore, Read, Store, StoreError, UserChange, UserRecord,
};

/// A fresh directory under the system's temporary one, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "perch-unit-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An enabled user without a password.
pub fn user(aor: &str) -> UserRecord {
    UserRecord {
        unlocked_at: 0,
        aor: aor.into(),
        display_name: String::new(),
        enabled: true,
        credentials: None,
    }
}

/// A category open to `domain`, invitations on, no creators.
pub fn category(name: &str, domain: &str, chat_history: bool) -> Category {
    Category {
        id: 0,
        name: name.into(),
        description: String::new(),
        allowed: vec![Principal::Domain(domain.into())],
        denied: Vec::new(),
        creators: Vec::new(),
        invitations: true,
        file_upload: true,
        chat_history,
    }
}

/// An open, normal, enabled room with empty lists.
pub fn open_room(name: &str, category: i64) -> Room {
    Room {
        description: format!("about {name}"),
        privacy: Privacy::Open,
        ..Room::new(&new_room_uid(), name, category)
    }
}

/// The store ports in memory, for unit tests of the core that must not wire a backend.
/// Writes commit at once; reads yield to the runtime once before answering, as a backend
/// on its own threads would, so a reader can be caught half-way.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<Memory>,
    changes: watch::Sender<i64>,
}

#[derive(Default)]
struct Memory {
    users: Vec<UserRecord>,
    groups: Vec<Group>,
    policies: Vec<(PolicyScope, bool)>,
    settings: Vec<(String, u32)>,
    categories: Vec<Category>,
    rooms: Vec<Room>,
    addins: Vec<Addin>,
    messages: Vec<ChatMessage>,
    invitations: Vec<(i64, String, i64)>,
    preferences: Vec<(String, String, i64, String)>,
    admin_tokens: Vec<(String, [u8; 32], AdminToken)>,
    next_id: i64,
}

impl Memory {
    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

fn done<T>(value: Result<T, StoreError>) -> Pending<T> {
    let (reply, pending) = oneshot::channel();
    let _ = reply.send(value);
    pending
}

fn later<T: Send + 'static>(value: T) -> Read<T> {
    Box::pin(async move {
        tokio::task::yield_now().await;
        Ok(value)
    })
}

/// Whether `text` holds every word, as a full-text index matches whole words.
fn matches_words(text: &str, words: &[String]) -> bool {
    let tokens: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .collect();
    words
        .iter()
        .all(|word| tokens.contains(&word.to_lowercase()))
}

impl MemoryStore {
    /// An administrative write: applied, then the change feed moves.
    fn admin<T>(&self, write: impl FnOnce(&mut Memory) -> Result<T, StoreError>) -> Pending<T> {
        let outcome = write(&mut self.state.lock().unwrap());
        if outcome.is_ok() {
            self.changes.send_modify(|generation| *generation += 1);
        }
        done(outcome)
    }
}

impl DirectoryStore for MemoryStore {
    fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Ok(self.state.lock().unwrap().users.clone())
    }

    fn user(&self, aor: &str) -> Result<Option<UserRecord>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state.users.iter().find(|u| u.aor == aor).cloned())
    }

    fn add_user(&self, user: UserRecord) -> Pending<UserRecord> {
        self.admin(|m| {
            if m.users.iter().any(|u| u.aor == user.aor) {
                return Err(StoreError::Duplicate(format!("user {}", user.aor)));
            }
            m.users.push(user.clone());
            m.users.sort_by(|a, b| a.aor.cmp(&b.aor));
            Ok(user)
        })
    }

    fn update_user(&self, aor: &str, change: UserChange) -> Pending<UserRecord> {
        self.admin(|m| {
            let user = m
                .users
                .iter_mut()
                .find(|u| u.aor == aor)
                .ok_or_else(|| StoreError::NotFound(format!("user {aor}")))?;
            change.apply(user);
            Ok(user.clone())
        })
    }

    fn remove_user(&self, aor: &str) -> Pending<()> {
        self.admin(|m| {
            let before = m.users.len();
            m.users.retain(|u| u.aor != aor);
            if m.users.len() == before {
                return Err(StoreError::NotFound(format!("user {aor}")));
            }
            Ok(())
        })
    }
}

impl ModelStore for MemoryStore {
    fn load_model(&self) -> Result<ModelData, StoreError> {
        let m = self.state.lock().unwrap();
        Ok(ModelData {
            users: m.users.clone(),
            groups: m.groups.clone(),
            policies: m.policies.clone(),
            settings: m.settings.clone(),
            categories: m.categories.clone(),
            rooms: m.rooms.clone(),
            addins: m.addins.clone(),
        })
    }

    fn save_group(&self, group: Group) -> Pending<()> {
        self.admin(|m| {
            m.groups
                .retain(|g| !g.name.eq_ignore_ascii_case(&group.name));
            m.groups.push(group);
            Ok(())
        })
    }

    fn remove_group(&self, name: &str) -> Pending<()> {
        self.admin(|m| {
            m.groups.retain(|g| !g.name.eq_ignore_ascii_case(name));
            Ok(())
        })
    }

    fn set_policy(&self, scope: PolicyScope, enabled: Option<bool>) -> Pending<()> {
        self.admin(|m| {
            m.policies.retain(|(s, _)| *s != scope);
            m.policies.extend(enabled.map(|enabled| (scope, enabled)));
            Ok(())
        })
    }

    fn set_setting(&self, name: &str, value: u32) -> Pending<()> {
        self.admin(|m| {
            m.settings.retain(|(n, _)| n != name);
            m.settings.push((name.to_owned(), value));
            Ok(())
        })
    }

    fn save_category(&self, mut category: Category) -> Pending<Category> {
        self.admin(|m| {
            if category.id == 0 {
                category.id = m.next_id();
            }
            m.categories.retain(|c| c.id != category.id);
            m.categories.push(category.clone());
            Ok(category)
        })
    }

    fn remove_category(&self, id: i64) -> Pending<()> {
        self.admin(|m| {
            m.categories.retain(|c| c.id != id);
            Ok(())
        })
    }

    fn save_addin(&self, addin: Addin) -> Pending<()> {
        self.admin(|m| {
            m.addins.retain(|a| a.name != addin.name);
            m.addins.push(addin);
            Ok(())
        })
    }

    fn remove_addin(&self, name: &str) -> Pending<()> {
        self.admin(|m| {
            m.addins.retain(|a| a.name != name);
            Ok(())
        })
    }

    fn save_room(&self, mut room: Room) -> Pending<Room> {
        self.admin(|m| {
            if room.id == 0 {
                room.id = m.next_id();
            }
            m.rooms.retain(|r| r.id != room.id);
            m.rooms.push(room.clone());
            Ok(room)
        })
    }

    fn remove_room(&self, id: i64) -> Pending<()> {
        self.admin(|m| {
            m.rooms.retain(|r| r.id != id);
            m.messages.retain(|message| message.room_id != id);
            m.invitations.retain(|(_, _, room)| *room != id);
            Ok(())
        })
    }
}

impl ArchiveStore for MemoryStore {
    fn append_message(&self, mut message: ChatMessage) -> Pending<ChatMessage> {
        let mut m = self.state.lock().unwrap();
        if !m.rooms.iter().any(|room| room.id == message.room_id) {
            return done(Err(StoreError::NotFound(format!(
                "room {}",
                message.room_id
            ))));
        }
        message.id = m.next_id();
        m.messages.push(message.clone());
        done(Ok(message))
    }

    fn history(&self, room_id: i64, query: HistoryQuery) -> Read<Vec<ChatMessage>> {
        let m = self.state.lock().unwrap();
        let room = m
            .messages
            .iter()
            .filter(|message| message.room_id == room_id);
        let newest = |kept: Vec<&ChatMessage>, count: u32| {
            let skip = kept.len().saturating_sub(count as usize);
            kept.into_iter().skip(skip).cloned().collect::<Vec<_>>()
        };
        let answer = match &query {
            HistoryQuery::Last(count) => newest(room.collect(), *count),
            HistoryQuery::Before { id, count } => {
                newest(room.filter(|message| message.id < *id).collect(), *count)
            }
            HistoryQuery::After { id, count } => room
                .filter(|message| message.id > *id)
                .take(*count as usize)
                .cloned()
                .collect(),
            HistoryQuery::Search { words, count } if !words.is_empty() => newest(
                room.filter(|message| matches_words(&message.text, words))
                    .collect(),
                *count,
            ),
            HistoryQuery::Search { .. } => Vec::new(),
            HistoryQuery::Range(range) => {
                let admitted: Vec<&ChatMessage> = room
                    .filter(|m| range.admits(m))
                    .filter(|m| range.words.is_empty() || matches_words(&m.text, &range.words))
                    .collect();
                if range.newest {
                    newest(admitted, range.count)
                } else {
                    admitted
                        .into_iter()
                        .take(range.count as usize)
                        .cloned()
                        .collect()
                }
            }
        };
        later(answer)
    }

    fn last_message_id(&self) -> Result<i64, StoreError> {
        let m = self.state.lock().unwrap();
        Ok(m.messages
            .iter()
            .map(|message| message.id)
            .max()
            .unwrap_or(0))
    }

    fn clear_room(&self, id: i64, until: Option<i64>) -> Pending<usize> {
        self.admin(|m| {
            let before = m.messages.len();
            let until = until.unwrap_or(i64::MAX);
            m.messages
                .retain(|message| message.room_id != id || message.ts > until);
            Ok(before - m.messages.len())
        })
    }
}

impl InvitationStore for MemoryStore {
    fn add_invitations(&self, invitations: Vec<(String, i64)>, _now: i64) -> Pending<()> {
        self.admin(|m| {
            for (user, room) in invitations {
                let id = m.next_id();
                m.invitations.push((id, user, room));
            }
            Ok(())
        })
    }

    fn invitations_after(&self, after: i64, limit: u32) -> Read<Vec<(i64, String, i64)>> {
        let m = self.state.lock().unwrap();
        later(
            m.invitations
                .iter()
                .filter(|(id, _, _)| *id > after)
                .take(limit as usize)
                .cloned()
                .collect(),
        )
    }

    fn last_invitation_id(&self) -> Result<i64, StoreError> {
        let m = self.state.lock().unwrap();
        Ok(m.invitations
            .iter()
            .map(|(id, _, _)| *id)
            .max()
            .unwrap_or(0))
    }

    fn invitations(&self, user: &str, after: i64) -> Read<Vec<(i64, i64)>> {
        let m = self.state.lock().unwrap();
        later(
            m.invitations
                .iter()
                .filter(|(id, invited, _)| invited == user && *id > after)
                .map(|(id, _, room)| (*id, *room))
                .collect(),
        )
    }
}

impl PreferenceStore for MemoryStore {
    fn preference(&self, user: &str, label: &str) -> Read<Option<(i64, String)>> {
        let m = self.state.lock().unwrap();
        later(
            m.preferences
                .iter()
                .find(|(u, l, _, _)| u == user && l == label)
                .map(|(_, _, seqid, content)| (*seqid, content.clone())),
        )
    }

    fn set_preference(
        &self,
        user: &str,
        label: &str,
        content: &str,
        quota: PreferenceQuota,
    ) -> Pending<i64> {
        let mut m = self.state.lock().unwrap();
        let others: Vec<usize> = m
            .preferences
            .iter()
            .filter(|(u, l, _, _)| u == user && l != label)
            .map(|(_, l, _, c)| l.len() + c.len())
            .collect();
        if others.len() + 1 > quota.labels
            || others.iter().sum::<usize>() + label.len() + content.len() > quota.bytes
        {
            return done(Err(StoreError::QuotaExceeded("preference quota".into())));
        }
        let seqid = m
            .preferences
            .iter()
            .find(|(u, l, _, _)| u == user && l == label)
            .map_or(1, |(_, _, seqid, _)| seqid + 1);
        m.preferences.retain(|(u, l, _, _)| u != user || l != label);
        m.preferences
            .push((user.to_owned(), label.to_owned(), seqid, content.to_owned()));
        done(Ok(seqid))
    }

    fn preferences(&self, user: &str) -> Read<Vec<PreferenceEntry>> {
        let m = self.state.lock().unwrap();
        let mut entries: Vec<PreferenceEntry> = m
            .preferences
            .iter()
            .filter(|(u, _, _, _)| u == user)
            .map(|(_, label, seqid, content)| PreferenceEntry {
                label: label.clone(),
                seqid: *seqid,
                bytes: label.len() + content.len(),
            })
            .collect();
        entries.sort_by(|a, b| a.label.cmp(&b.label));
        later(entries)
    }

    fn clear_preferences(&self, user: &str) -> Pending<usize> {
        let mut m = self.state.lock().unwrap();
        let before = m.preferences.len();
        m.preferences.retain(|(u, _, _, _)| u != user);
        done(Ok(before - m.preferences.len()))
    }
}

impl AdminTokenStore for MemoryStore {
    fn add_admin_token(&self, name: &str, digest: [u8; 32], now: i64) -> Pending<()> {
        let mut m = self.state.lock().unwrap();
        if m.admin_tokens
            .iter()
            .any(|(n, d, _)| n == name || *d == digest)
        {
            return done(Err(StoreError::Backend("UNIQUE constraint failed".into())));
        }
        m.admin_tokens.push((
            name.to_owned(),
            digest,
            AdminToken {
                name: name.to_owned(),
                created_at: now,
                last_used_at: 0,
            },
        ));
        done(Ok(()))
    }

    fn admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        let m = self.state.lock().unwrap();
        let mut tokens: Vec<AdminToken> =
            m.admin_tokens.iter().map(|(_, _, t)| t.clone()).collect();
        tokens.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tokens)
    }

    fn remove_admin_token(&self, name: &str) -> Pending<bool> {
        let mut m = self.state.lock().unwrap();
        let before = m.admin_tokens.len();
        m.admin_tokens.retain(|(n, _, _)| n != name);
        done(Ok(m.admin_tokens.len() != before))
    }

    fn use_admin_token(&self, digest: [u8; 32], now: i64) -> Pending<Option<String>> {
        let mut m = self.state.lock().unwrap();
        let found = m.admin_tokens.iter_mut().find(|(_, d, _)| *d == digest);
        done(Ok(found.map(|(name, _, token)| {
            token.last_used_at = now;
            name.clone()
        })))
    }
}

impl ChangeFeed for MemoryStore {
    fn changes(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }
}

impl Store for MemoryStore {
    fn close(&self) {}

    fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
