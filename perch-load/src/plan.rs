//! Who connects and which rooms they join: read from a perch data directory (the users and
//! rooms `provision` wrote, or any others), or made up for the null responder, which
//! checks nothing.

use std::collections::HashMap;
use std::path::Path;

use perch::core::model::Principal;
use perch::core::ports::{ModelStore, Store, StoreError};
use perch::store::SqliteStore;

#[derive(Debug, Clone)]
pub struct PlannedRoom {
    pub uid: String,
    pub name: String,
    /// Indexes into [`Plan::users`].
    pub members: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Enabled users of the domain, `user@domain`, in name order.
    pub users: Vec<String>,
    pub rooms: Vec<PlannedRoom>,
    /// For each user, the rooms (indexes into `rooms`) that list them as a member.
    pub rooms_of: Vec<Vec<usize>>,
}

impl Plan {
    /// Reads the users and rooms of `domain` from the store in `data`. Opening the store
    /// is what `perch admin` does next to a running server.
    pub fn from_store(data: &Path, domain: &str) -> Result<Plan, StoreError> {
        let store = SqliteStore::open(data)?;
        let model = store.load_model()?;
        store.close();
        let suffix = format!("@{domain}");
        let users: Vec<String> = model
            .users
            .into_iter()
            .filter(|u| u.enabled && u.aor.ends_with(&suffix))
            .map(|u| u.aor)
            .collect();
        let index: HashMap<&str, usize> = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        let mut rooms: Vec<PlannedRoom> = model
            .rooms
            .into_iter()
            .filter(|r| !r.disabled)
            .map(|r| PlannedRoom {
                members: r
                    .members
                    .iter()
                    .filter_map(|p| match p {
                        Principal::User(aor) => index.get(aor.as_str()).copied(),
                        _ => None,
                    })
                    .collect(),
                uid: r.uid,
                name: r.name,
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self::with_rooms(users, rooms))
    }

    fn with_rooms(users: Vec<String>, rooms: Vec<PlannedRoom>) -> Plan {
        let mut rooms_of = vec![Vec::new(); users.len()];
        for (r, room) in rooms.iter().enumerate() {
            for &m in &room.members {
                rooms_of[m].push(r);
            }
        }
        Plan {
            users,
            rooms,
            rooms_of,
        }
    }

    /// Made-up users `load000000@domain`…, each in `rooms_per_user` rooms of its own
    /// (`fanout` puts everyone in one room instead). For the null responder only.
    pub fn synthetic(domain: &str, users: usize, rooms_per_user: usize, one_room: bool) -> Plan {
        let names: Vec<String> = (0..users).map(|i| format!("load{i:06}@{domain}")).collect();
        let rooms = if one_room {
            vec![PlannedRoom {
                uid: "synthetic-room-0".into(),
                name: "synthetic-room-0".into(),
                members: (0..users).collect(),
            }]
        } else {
            (0..users)
                .flat_map(|u| {
                    (0..rooms_per_user).map(move |k| PlannedRoom {
                        uid: format!("synthetic-{u}-{k}"),
                        name: format!("synthetic-{u}-{k}"),
                        members: vec![u],
                    })
                })
                .collect()
        };
        Self::with_rooms(names, rooms)
    }

    /// Keeps only the rooms with exactly `size` members.
    pub fn only_rooms_of(self, size: usize) -> Plan {
        let rooms = self
            .rooms
            .into_iter()
            .filter(|r| r.members.len() == size)
            .collect();
        Self::with_rooms(self.users, rooms)
    }

    /// The room ids user `u` joins: its rooms, at most `cap`.
    pub fn room_uids(&self, u: usize, cap: usize) -> Vec<String> {
        self.rooms_of
            .get(u)
            .map(|rooms| {
                rooms
                    .iter()
                    .take(cap)
                    .map(|&r| self.rooms[r].uid.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The room for `fanout`: the one named, else the smallest with at least `clients`
    /// members, else the largest.
    pub fn fanout_room(&self, name: Option<&str>, clients: usize) -> Option<&PlannedRoom> {
        if let Some(name) = name {
            return self
                .rooms
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(name));
        }
        self.rooms
            .iter()
            .filter(|r| r.members.len() >= clients)
            .min_by_key(|r| r.members.len())
            .or_else(|| self.rooms.iter().max_by_key(|r| r.members.len()))
    }

    /// Users that are members of at least one room, in order.
    pub fn users_with_rooms(&self) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&u| !self.rooms_of[u].is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_plans() {
        let p = Plan::synthetic("x.test", 3, 2, false);
        assert_eq!(p.users[1], "load000001@x.test");
        assert_eq!(p.room_uids(1, 10), ["synthetic-1-0", "synthetic-1-1"]);
        assert_eq!(p.room_uids(1, 1).len(), 1);
        assert!(p.clone().only_rooms_of(2).rooms.is_empty());
        assert_eq!(p.only_rooms_of(1).rooms.len(), 6);
        let one = Plan::synthetic("x.test", 4, 0, true);
        assert_eq!(one.fanout_room(None, 4).unwrap().members.len(), 4);
        assert_eq!(one.users_with_rooms(), [0, 1, 2, 3]);
    }
}
