//! The directory: users, groups and the `EnablePersistentChat` policy, with group
//! expansion. Answers "is this user named by this list?"; what that allows is `policy`'s call.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ports::{Credentials, UserRecord};

use super::model::{Group, PolicyScope, Principal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub aor: String,
    pub display_name: String,
    pub enabled: bool,
    pub credentials: Option<Credentials>,
    pub unlocked_at: i64,
}

impl From<UserRecord> for User {
    fn from(record: UserRecord) -> Self {
        Self {
            aor: record.aor,
            display_name: record.display_name,
            enabled: record.enabled,
            credentials: record.credentials,
            unlocked_at: record.unlocked_at,
        }
    }
}

/// A principal list prepared for membership tests. Room lists can name thousands of users
/// and are asked about for every occupant, so users are hashed; groups and domains (a list
/// names few) are scanned.
#[derive(Debug, Default)]
pub struct PrincipalSet {
    users: HashSet<String>,
    /// Lower-cased, as `memberships` keeps them.
    groups: Vec<String>,
    domains: Vec<String>,
}

impl PrincipalSet {
    pub fn new(list: &[Principal]) -> Self {
        let mut set = Self::default();
        for principal in list {
            match principal {
                Principal::User(aor) => {
                    set.users.insert(aor.clone());
                }
                Principal::Group(name) => set.groups.push(name.to_lowercase()),
                Principal::Domain(domain) => set.domains.push(domain.clone()),
            }
        }
        set
    }
}

#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<String, User>,
    groups: HashMap<String, Group>,
    /// For each user, every group that contains them directly or through other groups.
    memberships: HashMap<String, HashSet<String>>,
    policies: BTreeMap<PolicyScope, bool>,
}

impl Directory {
    pub fn new(
        users: impl IntoIterator<Item = User>,
        groups: impl IntoIterator<Item = Group>,
        policies: impl IntoIterator<Item = (PolicyScope, bool)>,
    ) -> Self {
        let groups: HashMap<String, Group> = groups
            .into_iter()
            .map(|g| (g.name.to_lowercase(), g))
            .collect();
        let mut directory = Self {
            users: users.into_iter().map(|u| (u.aor.clone(), u)).collect(),
            memberships: HashMap::new(),
            policies: policies
                .into_iter()
                .map(|(scope, enabled)| match scope {
                    PolicyScope::Group(name) => (PolicyScope::Group(name.to_lowercase()), enabled),
                    other => (other, enabled),
                })
                .collect(),
            groups,
        };
        directory.memberships = directory.expand_memberships();
        directory
    }

    /// Walks every group once, following nested groups with a visited set, so a cycle that
    /// slipped into the store cannot loop.
    fn expand_memberships(&self) -> HashMap<String, HashSet<String>> {
        let mut memberships: HashMap<String, HashSet<String>> = HashMap::new();
        for name in self.groups.keys() {
            let mut visited = HashSet::new();
            let mut pending = vec![name.clone()];
            while let Some(current) = pending.pop() {
                if !visited.insert(current.clone()) {
                    continue;
                }
                let Some(group) = self.groups.get(&current) else {
                    continue;
                };
                for member in &group.members {
                    match member {
                        Principal::User(aor) => {
                            memberships
                                .entry(aor.clone())
                                .or_default()
                                .insert(name.clone());
                        }
                        Principal::Group(inner) => pending.push(inner.to_lowercase()),
                        Principal::Domain(_) => {}
                    }
                }
            }
        }
        memberships
    }

    pub fn user(&self, aor: &str) -> Option<&User> {
        self.users.get(aor)
    }

    /// A user who exists and is enabled.
    pub fn active_user(&self, aor: &str) -> Option<&User> {
        self.user(aor).filter(|u| u.enabled)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(&name.to_lowercase())
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn policies(&self) -> impl Iterator<Item = (&PolicyScope, &bool)> {
        self.policies.iter()
    }

    /// Whether `principal` names the user `aor`: the user, a group containing them
    /// (directly or nested), or their domain.
    pub fn names(&self, principal: &Principal, aor: &str) -> bool {
        match principal {
            Principal::User(user) => user == aor,
            Principal::Group(name) => self
                .memberships
                .get(aor)
                .is_some_and(|groups| groups.contains(&name.to_lowercase())),
            Principal::Domain(domain) => aor.rsplit_once('@').is_some_and(|(_, d)| d == domain),
        }
    }

    pub fn listed(&self, list: &[Principal], aor: &str) -> bool {
        list.iter().any(|p| self.names(p, aor))
    }

    /// `listed` for a prepared list: constant time in the number of users it names.
    pub fn in_set(&self, set: &PrincipalSet, aor: &str) -> bool {
        if set.users.contains(aor) {
            return true;
        }
        let in_domain = || {
            aor.rsplit_once('@')
                .is_some_and(|(_, domain)| set.domains.iter().any(|d| d == domain))
        };
        let in_group = || {
            self.memberships
                .get(aor)
                .is_some_and(|groups| set.groups.iter().any(|g| groups.contains(g)))
        };
        (!set.domains.is_empty() && in_domain()) || (!set.groups.is_empty() && in_group())
    }

    /// Whether the principal exists: a known user, a known group, any domain.
    pub fn exists(&self, principal: &Principal) -> bool {
        match principal {
            Principal::User(aor) => self.users.contains_key(aor),
            Principal::Group(name) => self.groups.contains_key(&name.to_lowercase()),
            Principal::Domain(_) => true,
        }
    }

    /// Whether adding `member` to `group` would make the group contain itself.
    pub fn would_cycle(&self, group: &str, member: &Principal) -> bool {
        let Principal::Group(start) = member else {
            return false;
        };
        let target = group.to_lowercase();
        let mut visited = HashSet::new();
        let mut pending = vec![start.to_lowercase()];
        while let Some(current) = pending.pop() {
            if current == target {
                return true;
            }
            if !visited.insert(current.clone()) {
                continue;
            }
            if let Some(g) = self.groups.get(&current) {
                pending.extend(g.members.iter().filter_map(|m| match m {
                    Principal::Group(n) => Some(n.to_lowercase()),
                    _ => None,
                }));
            }
        }
        false
    }

    /// `EnablePersistentChat` for a user: the user's own setting, else the groups'
    /// (a disabling group wins over an enabling one), else global, else enabled.
    pub fn chat_enabled(&self, aor: &str) -> bool {
        if let Some(enabled) = self.policies.get(&PolicyScope::User(aor.to_owned())) {
            return *enabled;
        }
        let group_settings: Vec<bool> = self
            .memberships
            .get(aor)
            .into_iter()
            .flatten()
            .filter_map(|g| self.policies.get(&PolicyScope::Group(g.clone())).copied())
            .collect();
        if !group_settings.is_empty() {
            return group_settings.iter().all(|enabled| *enabled);
        }
        self.policies
            .get(&PolicyScope::Global)
            .copied()
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(aor: &str) -> User {
        User {
            aor: aor.into(),
            display_name: String::new(),
            enabled: true,
            credentials: None,
            unlocked_at: 0,
        }
    }

    fn group(name: &str, members: &[&str]) -> Group {
        Group {
            name: name.into(),
            description: String::new(),
            members: members.iter().map(|m| m.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn nested_groups_domains_and_cycles() {
        let d = Directory::new(
            [user("a@x"), user("b@x"), user("c@y")],
            [
                group("inner", &["sip:a@x"]),
                group("outer", &["group:inner", "sip:c@y"]),
                group("loop1", &["group:loop2", "sip:b@x"]),
                group("loop2", &["group:loop1"]),
            ],
            [],
        );
        let outer: Principal = "group:Outer".parse().unwrap();
        assert!(d.names(&outer, "a@x"));
        assert!(d.names(&outer, "c@y"));
        assert!(!d.names(&outer, "b@x"));
        assert!(d.names(&"group:loop2".parse().unwrap(), "b@x"));
        assert!(d.names(&"domain:x".parse().unwrap(), "b@x"));
        assert!(!d.names(&"domain:x".parse().unwrap(), "c@y"));
        assert!(d.would_cycle("inner", &"group:outer".parse().unwrap()));
        assert!(!d.would_cycle("outer", &"group:inner".parse().unwrap()));
    }

    #[test]
    fn a_prepared_set_answers_as_the_list_does() {
        let d = Directory::new(
            [user("a@x"), user("b@x"), user("c@y"), user("d@z")],
            [
                group("inner", &["sip:a@x"]),
                group("outer", &["group:Inner"]),
            ],
            [],
        );
        let lists: [&[&str]; 4] = [
            &[],
            &["sip:b@x"],
            &["group:OUTER", "domain:y"],
            &["sip:d@z", "domain:x"],
        ];
        for list in lists {
            let list: Vec<Principal> = list.iter().map(|p| p.parse().unwrap()).collect();
            let set = PrincipalSet::new(&list);
            for aor in ["a@x", "b@x", "c@y", "d@z", "e@x", "nobody"] {
                assert_eq!(d.in_set(&set, aor), d.listed(&list, aor), "{list:?} {aor}");
            }
        }
    }

    #[test]
    fn policy_precedence() {
        let d = Directory::new(
            [user("a@x"), user("b@x"), user("c@x")],
            [
                group("off", &["sip:a@x", "sip:b@x"]),
                group("on", &["sip:a@x"]),
            ],
            [
                (PolicyScope::Group("off".into()), false),
                (PolicyScope::Group("on".into()), true),
                (PolicyScope::User("b@x".into()), true),
            ],
        );
        assert!(!d.chat_enabled("a@x"), "a disabling group wins");
        assert!(d.chat_enabled("b@x"), "the user's own setting wins");
        assert!(d.chat_enabled("c@x"), "global default is enabled");
        let off = Directory::new([user("c@x")], [], [(PolicyScope::Global, false)]);
        assert!(!off.chat_enabled("c@x"));
    }
}
