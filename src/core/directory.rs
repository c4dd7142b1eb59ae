//! The user directory: an immutable snapshot swapped whole when the store changes, so
//! readers on every connection take no lock longer than an `Arc` clone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::store::{Credentials, Store, StoreError, UserRecord};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub aor: String,
    pub display_name: String,
    pub enabled: bool,
    pub credentials: Option<Credentials>,
}

impl From<UserRecord> for User {
    fn from(record: UserRecord) -> Self {
        Self {
            aor: record.aor,
            display_name: record.display_name,
            enabled: record.enabled,
            credentials: record.credentials,
        }
    }
}

#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<String, User>,
}

impl Directory {
    pub fn from_users(users: impl IntoIterator<Item = User>) -> Self {
        Self {
            users: users.into_iter().map(|u| (u.aor.clone(), u)).collect(),
        }
    }

    pub fn user(&self, aor: &str) -> Option<&User> {
        self.users.get(aor)
    }

    /// A user who exists and is enabled.
    pub fn active_user(&self, aor: &str) -> Option<&User> {
        self.user(aor).filter(|u| u.enabled)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The current directory snapshot plus the store generation it was loaded at.
pub struct DirectoryHandle {
    current: RwLock<(i64, Arc<Directory>)>,
}

impl DirectoryHandle {
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let generation = store.generation()?;
        let directory = Directory::from_users(store.users()?.into_iter().map(User::from));
        Ok(Self {
            current: RwLock::new((generation, Arc::new(directory))),
        })
    }

    pub fn snapshot(&self) -> Arc<Directory> {
        // A poisoned lock still holds a complete snapshot (it is only ever replaced whole).
        match self.current.read() {
            Ok(guard) => guard.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Reloads if the store's generation moved; returns whether it did.
    pub fn refresh(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let generation = store.generation()?;
        let known = match self.current.read() {
            Ok(guard) => guard.0,
            Err(poisoned) => poisoned.into_inner().0,
        };
        if generation == known {
            return Ok(false);
        }
        let directory = Directory::from_users(store.users()?.into_iter().map(User::from));
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = (generation, Arc::new(directory));
        Ok(true)
    }
}
