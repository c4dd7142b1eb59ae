//! The fast bulk path: users (sharing one password, or with none, and then the server must
//! trust loopback), one category open to the domain, and rooms of given sizes with their
//! members, written straight into a data directory through the `Store` trait. Writes are
//! submitted in bulk and awaited afterwards, so the store's writer commits them in large
//! batches.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use perch::core::Snapshot;
use perch::core::credentials::Credentials;
use perch::core::manage::{self, CategoryChange, ListEdit, ManageError};
use perch::core::model::{Invitations, Principal, Privacy, Room, RoomType};
use perch::core::ports::{
    DirectoryStore, ModelStore, Pending, Store, StoreError, UserRecord, wait,
};
use perch::store::SqliteStore;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("category: {0}")]
    Manage(#[from] ManageError),
    #[error("{0}")]
    Invalid(String),
}

/// `SIZE:COUNT`: COUNT rooms of SIZE members each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomClass {
    pub size: usize,
    pub count: usize,
}

impl FromStr for RoomClass {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (size, count) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not SIZE:COUNT (e.g. 30:100)"))?;
        let parse = |v: &str, what: &str| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{what} in {text:?} must be a positive number"))
        };
        Ok(RoomClass {
            size: parse(size, "SIZE")?,
            count: parse(count, "COUNT")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub data: PathBuf,
    pub domain: String,
    pub users: usize,
    pub prefix: String,
    pub category: String,
    pub rooms_of: Vec<RoomClass>,
    pub privacy: Privacy,
    pub password: Option<String>,
    pub quiet: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProvisionSummary {
    pub users_added: usize,
    pub users_existing: usize,
    pub users_per_s: f64,
    pub category: String,
    pub rooms_added: usize,
    pub rooms_existing: usize,
    pub memberships: usize,
    pub memberships_per_s: f64,
    pub secs: f64,
}

/// Lync's capacity model (persistent-chat-model.md §5.2, §5.4): rooms of 30, 150 and
/// 16,000 users; each user a member of 12, 2 and 2 of them and joined to 24 rooms. The 8
/// joined rooms the model does not place by size are small rooms here: 20, 2 and 2. With
/// fewer users than a size, that class's rooms hold everyone.
pub const LYNC_MODEL: [(usize, usize); 3] = [(30, 20), (150, 2), (16_000, 2)];

/// The room classes that give `users` users the model's memberships.
pub fn lync_model_rooms(users: usize) -> Vec<RoomClass> {
    LYNC_MODEL
        .iter()
        .map(|&(size, per_user)| {
            let size = size.min(users.max(1));
            RoomClass {
                size,
                count: (users * per_user).div_ceil(size).max(1),
            }
        })
        .collect()
}

pub fn user_aor(prefix: &str, index: usize, domain: &str) -> String {
    format!("{prefix}{index:06}@{domain}")
}

/// Members of room `j` of a class: the next `size` users after the previous room's, wrapping
/// around, so every user ends up in about `size × count ÷ users` rooms of the class.
fn members(class: RoomClass, j: usize, users: usize, prefix: &str, domain: &str) -> Vec<Principal> {
    (0..class.size)
        .map(|k| Principal::User(user_aor(prefix, (j * class.size + k) % users, domain)))
        .collect()
}

/// Waits for every pending write; counts those refused as duplicates.
fn wait_all<T>(pending: Vec<Pending<T>>) -> Result<(usize, usize), StoreError> {
    let (mut added, mut existing) = (0, 0);
    for p in pending {
        match wait(p) {
            Ok(_) => added += 1,
            Err(StoreError::Duplicate(_)) => existing += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((added, existing))
}

fn say(quiet: bool, text: String) {
    if !quiet {
        eprintln!("perch-load provision: {text}");
    }
}

/// Must run outside an async runtime (it blocks on the store's commits).
pub fn run(options: &ProvisionOptions) -> Result<ProvisionSummary, ProvisionError> {
    if options.users == 0 {
        return Err(ProvisionError::Invalid("--users must be at least 1".into()));
    }
    if let Some(class) = options.rooms_of.iter().find(|c| c.size > options.users) {
        return Err(ProvisionError::Invalid(format!(
            "rooms of {} members need at least {} users (--users is {})",
            class.size, class.size, options.users
        )));
    }
    let started = Instant::now();
    let store = SqliteStore::open(&options.data)?;
    let result = provision(&store, options, started);
    store.close();
    result
}

fn provision(
    store: &SqliteStore,
    options: &ProvisionOptions,
    started: Instant,
) -> Result<ProvisionSummary, ProvisionError> {
    let domain = options.domain.to_ascii_lowercase();
    // Users, enabled; without a password the server must trust loopback.
    let pending: Vec<_> = (0..options.users)
        .map(|i| {
            let aor = user_aor(&options.prefix, i, &domain);
            let credentials = options
                .password
                .as_deref()
                .map(|password| Credentials::derive(&aor, password));
            store.add_user(UserRecord {
                aor,
                display_name: format!("Load {i}"),
                enabled: true,
                credentials,
                unlocked_at: 0,
            })
        })
        .collect();
    let (users_added, users_existing) = wait_all(pending)?;
    let users_secs = started.elapsed().as_secs_f64();
    say(
        options.quiet,
        format!("{users_added} users added ({users_existing} existed) in {users_secs:.2} s"),
    );

    // One category open to the whole domain.
    let snapshot = Snapshot::from_model(store.load_model()?);
    let category_id = match snapshot.category_by_name(&options.category) {
        Some(existing) => existing.id,
        None => {
            let change = CategoryChange {
                name: Some(options.category.clone()),
                description: Some("rooms made by perch-load".into()),
                allowed: vec![ListEdit::Add(vec![Principal::Domain(domain.clone())])],
                invitations: Some(false),
                ..CategoryChange::default()
            };
            let (category, _) = manage::category(&snapshot, None, change)?;
            wait(store.save_category(category))?.id
        }
    };

    // Rooms: every member is a user of the domain and the category allows the domain with
    // nobody denied, so the rules `manage::room` checks hold by construction; building the
    // rooms directly avoids its per-member list edits, quadratic in the room size.
    let rooms_started = Instant::now();
    let mut pending = Vec::new();
    let mut memberships = 0;
    for class in &options.rooms_of {
        for j in 0..class.count {
            let members = members(*class, j, options.users, &options.prefix, &domain);
            memberships += members.len();
            let name = format!("{}-{}-{j:05}", options.prefix, class.size);
            pending.push(store.save_room(Room {
                id: 0,
                uid: perch::core::ids::new_room_uid(),
                description: format!("perch-load room of {}", class.size),
                name,
                category: category_id,
                privacy: options.privacy,
                kind: RoomType::Normal,
                invitations: Invitations::Off,
                disabled: false,
                addin: None,
                members,
                managers: Vec::new(),
                presenters: Vec::new(),
            }));
        }
    }
    let (rooms_added, rooms_existing) = wait_all(pending)?;
    let rooms_secs = rooms_started.elapsed().as_secs_f64();
    say(
        options.quiet,
        format!(
            "{rooms_added} rooms added ({rooms_existing} existed) with {memberships} memberships in {rooms_secs:.2} s"
        ),
    );
    let per_s = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Ok(ProvisionSummary {
        users_added,
        users_existing,
        users_per_s: per_s(users_added, users_secs),
        category: options.category.clone(),
        rooms_added,
        rooms_existing,
        memberships,
        memberships_per_s: per_s(memberships, rooms_secs),
        secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_classes_parse() {
        assert_eq!(
            "30:100".parse::<RoomClass>(),
            Ok(RoomClass {
                size: 30,
                count: 100
            })
        );
        for bad in ["30", "0:5", "5:0", "a:b", "30:-1"] {
            assert!(bad.parse::<RoomClass>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_lync_model_gives_each_user_24_rooms() {
        let classes = lync_model_rooms(20_000);
        let sizes: Vec<(usize, usize)> = classes.iter().map(|c| (c.size, c.count)).collect();
        assert_eq!(sizes, [(30, 13_334), (150, 267), (16_000, 3)]);
        let memberships: usize = classes.iter().map(|c| c.size * c.count).sum();
        assert!((24 * 20_000..24 * 20_000 + 16_000 + 200).contains(&memberships));
        // Fewer users than a large room: the large rooms hold everyone.
        let small = lync_model_rooms(1_000);
        assert_eq!(
            small[2],
            RoomClass {
                size: 1_000,
                count: 2
            }
        );
    }

    #[test]
    fn members_wrap_around() {
        let class = RoomClass { size: 3, count: 3 };
        let names = |j| -> Vec<String> {
            members(class, j, 4, "u", "x")
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            names(0),
            ["sip:u000000@x", "sip:u000001@x", "sip:u000002@x"]
        );
        assert_eq!(
            names(1),
            ["sip:u000003@x", "sip:u000000@x", "sip:u000001@x"]
        );
    }

    #[test]
    fn provisions_a_store() {
        let dir = std::env::temp_dir().join(format!("perch-load-provision-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = ProvisionOptions {
            data: dir.clone(),
            domain: "example.test".into(),
            users: 10,
            prefix: "load".into(),
            category: "Load".into(),
            rooms_of: vec![
                RoomClass { size: 5, count: 2 },
                RoomClass { size: 10, count: 1 },
            ],
            privacy: Privacy::Closed,
            password: Some("secret".into()),
            quiet: true,
        };
        let first = run(&options).unwrap();
        assert_eq!(
            (first.users_added, first.rooms_added, first.memberships),
            (10, 3, 20)
        );
        let again = run(&options).unwrap();
        assert_eq!((again.users_existing, again.rooms_existing), (10, 3));
        let plan = crate::plan::Plan::from_store(&dir, "example.test").unwrap();
        assert_eq!(plan.users.len(), 10);
        assert_eq!(plan.rooms.len(), 3);
        assert_eq!(plan.room_uids(0, 24).len(), 2);
        let store = SqliteStore::open(&dir).unwrap();
        let user = store.load_model().unwrap().users.remove(0);
        store.close();
        // SCRAM salts are random: the Digest verifier is compared, the others must exist.
        let credentials = user.credentials.unwrap();
        assert_eq!(
            credentials.digest,
            Credentials::derive("load000000@example.test", "secret").digest
        );
        assert!(credentials.missing().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
