//! Test fixtures shared by the unit tests that need a real store under the core or a
//! gateway: a temporary data directory and the model records a test room needs.

use std::path::{Path, PathBuf};

use super::ids::new_room_uid;
use super::model::{Category, Principal, Privacy, Room};
use super::ports::UserRecord;

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
