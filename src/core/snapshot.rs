//! An immutable snapshot of everything administrators define (directory, categories, rooms,
//! add-ins, settings), swapped whole when the store says the model changed. Readers clone an
//! `Arc` and never wait for a reload.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::ports::{ModelData, ModelStore, StoreError};

use super::directory::{Directory, PrincipalSet, User};
use super::model::{Addin, Category, ChatSettings, Room};

/// A room's role lists, prepared for the lookups every join and post makes.
#[derive(Debug, Default)]
pub struct RoomLists {
    pub members: PrincipalSet,
    pub managers: PrincipalSet,
    pub presenters: PrincipalSet,
}

impl RoomLists {
    pub fn new(room: &Room) -> Self {
        Self {
            members: PrincipalSet::new(&room.members),
            managers: PrincipalSet::new(&room.managers),
            presenters: PrincipalSet::new(&room.presenters),
        }
    }
}

/// A category's scope lists, prepared likewise (checked on every join and post).
#[derive(Debug, Default)]
pub struct CategoryLists {
    pub allowed: PrincipalSet,
    pub denied: PrincipalSet,
}

impl CategoryLists {
    pub fn new(category: &Category) -> Self {
        Self {
            allowed: PrincipalSet::new(&category.allowed),
            denied: PrincipalSet::new(&category.denied),
        }
    }
}

/// Users whose sign-in rights ended between two snapshots: removed, disabled, or with a
/// new password. Their sessions must end, whatever protocol they came through.
pub fn revoked_users(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    before
        .directory
        .users()
        .filter(|old| old.enabled)
        .filter(|old| match after.directory.user(&old.aor) {
            None => true,
            Some(new) => !new.enabled || new.credentials != old.credentials,
        })
        .map(|old| old.aor.clone())
        .collect()
}

/// Users an administrator unlocked between two snapshots: their failed sign-ins are to be
/// forgotten.
pub fn unlocked_users(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    after
        .directory
        .users()
        .filter(|new| {
            before
                .directory
                .user(&new.aor)
                .is_some_and(|old| old.unlocked_at != new.unlocked_at)
        })
        .map(|new| new.aor.clone())
        .collect()
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub directory: Directory,
    pub settings: ChatSettings,
    categories: HashMap<i64, (Category, CategoryLists)>,
    /// Rooms are shared with the replies and notices that name them.
    rooms: HashMap<i64, (Arc<Room>, RoomLists)>,
    rooms_by_uid: HashMap<String, i64>,
    addins: HashMap<String, Addin>,
}

impl Snapshot {
    pub fn from_model(data: ModelData) -> Self {
        let mut settings = ChatSettings::default();
        for (name, value) in &data.settings {
            if let Err(error) = settings.set(name, *value) {
                tracing::warn!(%error, "ignoring a stored setting");
            }
        }
        Self {
            directory: Directory::new(
                data.users.into_iter().map(User::from),
                data.groups,
                data.policies,
            ),
            settings,
            categories: data
                .categories
                .into_iter()
                .map(|c| {
                    let lists = CategoryLists::new(&c);
                    (c.id, (c, lists))
                })
                .collect(),
            rooms_by_uid: data.rooms.iter().map(|r| (r.uid.clone(), r.id)).collect(),
            rooms: data
                .rooms
                .into_iter()
                .map(|r| {
                    let lists = RoomLists::new(&r);
                    (r.id, (Arc::new(r), lists))
                })
                .collect(),
            addins: data
                .addins
                .into_iter()
                .map(|a| (a.name.to_lowercase(), a))
                .collect(),
        }
    }

    pub fn room(&self, id: i64) -> Option<&Arc<Room>> {
        self.rooms.get(&id).map(|(room, _)| room)
    }

    pub fn room_by_uid(&self, uid: &str) -> Option<&Arc<Room>> {
        self.rooms_by_uid.get(uid).and_then(|id| self.room(*id))
    }

    pub fn room_by_name(&self, name: &str) -> Option<&Room> {
        self.rooms
            .values()
            .map(|(room, _)| room.as_ref())
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The prepared lists of `room` if it is this snapshot's own (not a copy being edited).
    pub fn room_lists(&self, room: &Room) -> Option<&RoomLists> {
        let (stored, lists) = self.rooms.get(&room.id)?;
        std::ptr::eq(stored.as_ref(), room).then_some(lists)
    }

    /// Rooms in name order.
    pub fn rooms(&self) -> Vec<&Room> {
        let mut rooms: Vec<&Room> = self.rooms.values().map(|(room, _)| room.as_ref()).collect();
        rooms.sort_by_key(|a| a.name.to_lowercase());
        rooms
    }

    pub fn category(&self, id: i64) -> Option<&Category> {
        self.categories.get(&id).map(|(category, _)| category)
    }

    /// The prepared lists of `category` if it is this snapshot's own.
    pub fn category_lists(&self, category: &Category) -> Option<&CategoryLists> {
        let (stored, lists) = self.categories.get(&category.id)?;
        std::ptr::eq(stored, category).then_some(lists)
    }

    pub fn category_by_name(&self, name: &str) -> Option<&Category> {
        self.categories
            .values()
            .map(|(category, _)| category)
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Categories in name order.
    pub fn categories(&self) -> Vec<&Category> {
        let mut categories: Vec<&Category> = self
            .categories
            .values()
            .map(|(category, _)| category)
            .collect();
        categories.sort_by_key(|a| a.name.to_lowercase());
        categories
    }

    pub fn addin(&self, name: &str) -> Option<&Addin> {
        self.addins.get(&name.to_lowercase())
    }

    pub fn addins(&self) -> Vec<&Addin> {
        let mut addins: Vec<&Addin> = self.addins.values().collect();
        addins.sort_by(|a, b| a.name.cmp(&b.name));
        addins
    }
}

/// The current snapshot; reloaded whole when the store's change feed moves.
pub struct SnapshotHandle {
    current: RwLock<Arc<Snapshot>>,
}

impl SnapshotHandle {
    pub fn load(store: &dyn ModelStore) -> Result<Self, StoreError> {
        let snapshot = Snapshot::from_model(store.load_model()?);
        Ok(Self {
            current: RwLock::new(Arc::new(snapshot)),
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a complete snapshot: it is only ever replaced whole.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the model afresh and swaps it in.
    pub fn reload(&self, store: &dyn ModelStore) -> Result<(), StoreError> {
        let fresh = Arc::new(Snapshot::from_model(store.load_model()?));
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = fresh;
        Ok(())
    }
}
