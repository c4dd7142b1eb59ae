//! Administrative changes, checked against the model's rules before anything is stored:
//! unique names, principals inside the category's scope, presenters who are members,
//! no presenters in normal rooms, group cycles, add-in URLs. Pure functions over a snapshot.

use std::collections::BTreeSet;

use super::model::{Addin, Category, Group, Invitations, Principal, Privacy, Room, RoomType};
use super::policy;
use super::snapshot::Snapshot;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Duplicate(String),
}

/// An edit of a principal list, as the cmdlets' `@{Add=…; Remove=…}` and `$Null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEdit {
    Add(Vec<Principal>),
    Remove(Vec<Principal>),
    Clear,
}

fn apply_edits(list: &mut Vec<Principal>, edits: &[ListEdit]) {
    for edit in edits {
        match edit {
            ListEdit::Add(add) => {
                for p in add {
                    if !list.iter().any(|q| q.same_as(p)) {
                        list.push(p.clone());
                    }
                }
            }
            ListEdit::Remove(remove) => list.retain(|p| !remove.iter().any(|r| r.same_as(p))),
            ListEdit::Clear => list.clear(),
        }
    }
}

const MAX_NAME: usize = 256;

fn check_name(kind: &str, name: &str) -> Result<String, ManageError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ManageError::Invalid(format!("a {kind} needs a name")));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ManageError::Invalid(format!(
            "{kind} names are at most {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ManageError::Invalid(format!(
            "{kind} names cannot contain control characters"
        )));
    }
    Ok(name.to_owned())
}

fn check_principals_exist(snapshot: &Snapshot, list: &[Principal]) -> Result<(), ManageError> {
    match list.iter().find(|p| !snapshot.directory.exists(p)) {
        Some(p) => Err(ManageError::NotFound(format!("principal {p}"))),
        None => Ok(()),
    }
}

// ---- groups ----

pub fn group(
    snapshot: &Snapshot,
    name: &str,
    description: Option<&str>,
    edits: &[ListEdit],
) -> Result<Group, ManageError> {
    let name = check_name("group", name)?;
    let mut group = snapshot.directory.group(&name).cloned().unwrap_or(Group {
        name: name.clone(),
        description: String::new(),
        members: Vec::new(),
    });
    if let Some(description) = description {
        group.description = description.to_owned();
    }
    apply_edits(&mut group.members, edits);
    for member in &group.members {
        if matches!(member, Principal::Domain(_)) {
            return Err(ManageError::Invalid(
                "groups contain users and groups, not domains".into(),
            ));
        }
        if snapshot.directory.would_cycle(&group.name, member)
            || *member == Principal::Group(group.name.clone())
        {
            return Err(ManageError::Invalid(format!(
                "adding {member} to group {} would make a cycle",
                group.name
            )));
        }
    }
    check_principals_exist(snapshot, &group.members)?;
    Ok(group)
}

// ---- categories ----

#[derive(Debug, Clone, Default)]
pub struct CategoryChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub invitations: Option<bool>,
    pub file_upload: Option<bool>,
    pub chat_history: Option<bool>,
    pub allowed: Vec<ListEdit>,
    pub denied: Vec<ListEdit>,
    pub creators: Vec<ListEdit>,
}

/// A room an edit took principals out of, and which ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Purged {
    pub room: Room,
    pub removed: Vec<Principal>,
}

/// Creates (when `existing` is `None`) or changes a category. Rooms whose principals fall
/// outside the new scope are returned purged, to be saved with it.
pub fn category(
    snapshot: &Snapshot,
    existing: Option<&str>,
    change: CategoryChange,
) -> Result<(Category, Vec<Purged>), ManageError> {
    let mut category = match existing {
        Some(name) => snapshot
            .category_by_name(name)
            .cloned()
            .ok_or_else(|| ManageError::NotFound(format!("category {name}")))?,
        None => Category {
            id: 0,
            name: String::new(),
            description: String::new(),
            allowed: Vec::new(),
            denied: Vec::new(),
            creators: Vec::new(),
            invitations: true,
            file_upload: true,
            chat_history: true,
        },
    };
    if let Some(name) = change.name {
        category.name = check_name("category", &name)?;
    }
    if category.name.is_empty() {
        return Err(ManageError::Invalid("a category needs a name".into()));
    }
    if snapshot
        .category_by_name(&category.name)
        .is_some_and(|other| other.id != category.id)
    {
        return Err(ManageError::Duplicate(format!(
            "category {}",
            category.name
        )));
    }
    if snapshot.room_by_name(&category.name).is_some() {
        return Err(ManageError::Invalid(format!(
            "a room is already named {}",
            category.name
        )));
    }
    if let Some(description) = change.description {
        category.description = description;
    }
    if let Some(v) = change.invitations {
        category.invitations = v;
    }
    if let Some(v) = change.file_upload {
        category.file_upload = v;
    }
    if let Some(v) = change.chat_history {
        category.chat_history = v;
    }
    apply_edits(&mut category.allowed, &change.allowed);
    apply_edits(&mut category.denied, &change.denied);
    apply_edits(&mut category.creators, &change.creators);
    for list in [&category.allowed, &category.denied, &category.creators] {
        check_principals_exist(snapshot, list)?;
    }
    let purged = snapshot
        .rooms()
        .into_iter()
        .filter(|room| category.id != 0 && room.category == category.id)
        .filter_map(|room| {
            let mut room = room.clone();
            let removed = purge_out_of_scope(snapshot, &category, &mut room);
            (!removed.is_empty()).then_some(Purged { room, removed })
        })
        .collect();
    Ok((category, purged))
}

/// Removes principals the category does not allow; returns those removed (each once).
fn purge_out_of_scope(snapshot: &Snapshot, category: &Category, room: &mut Room) -> Vec<Principal> {
    let mut removed: Vec<Principal> = Vec::new();
    for list in [&mut room.members, &mut room.managers, &mut room.presenters] {
        list.retain(|p| {
            let keep = policy::principal_in_scope(snapshot, category, p);
            if !keep && !removed.contains(p) {
                removed.push(p.clone());
            }
            keep
        });
    }
    removed
}

/// The id of a category that can be removed: it must hold no rooms.
pub fn removable_category(snapshot: &Snapshot, name: &str) -> Result<i64, ManageError> {
    let category = snapshot
        .category_by_name(name)
        .ok_or_else(|| ManageError::NotFound(format!("category {name}")))?;
    let rooms = snapshot
        .rooms()
        .into_iter()
        .filter(|r| r.category == category.id)
        .count();
    if rooms > 0 {
        return Err(ManageError::Invalid(format!(
            "category {} still has {rooms} room(s); remove them or move them to another category first",
            category.name
        )));
    }
    Ok(category.id)
}

// ---- rooms ----

#[derive(Debug, Clone, Default)]
pub struct RoomChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub privacy: Option<Privacy>,
    pub kind: Option<RoomType>,
    pub invitations: Option<Invitations>,
    /// `Some(None)` removes the add-in.
    pub addin: Option<Option<String>>,
    pub disabled: Option<bool>,
    pub members: Vec<ListEdit>,
    pub managers: Vec<ListEdit>,
    pub presenters: Vec<ListEdit>,
}

/// A saved room plus the users to invite (members added while invitations are effective).
#[derive(Debug, Clone)]
pub struct RoomOutcome {
    pub room: Room,
    pub invite: Vec<String>,
    /// Principals a move to another category took out of the room.
    pub removed: Vec<Principal>,
}

/// Creates (when `existing` is `None`; `new_uid` names it) or changes a room.
pub fn room(
    snapshot: &Snapshot,
    existing: Option<&str>,
    new_uid: &str,
    change: RoomChange,
) -> Result<RoomOutcome, ManageError> {
    let before = match existing {
        Some(name) => Some(
            snapshot
                .room_by_name(name)
                .cloned()
                .ok_or_else(|| ManageError::NotFound(format!("room {name}")))?,
        ),
        None => None,
    };
    let mut room = before.clone().unwrap_or_else(|| Room::new(new_uid, "", 0));
    if let Some(name) = change.name {
        room.name = check_name("room", &name)?;
    }
    if room.name.is_empty() {
        return Err(ManageError::Invalid("a room needs a name".into()));
    }
    if snapshot
        .room_by_name(&room.name)
        .is_some_and(|other| other.id != room.id)
    {
        return Err(ManageError::Duplicate(format!("room {}", room.name)));
    }
    if snapshot.category_by_name(&room.name).is_some() {
        return Err(ManageError::Invalid(format!(
            "a room cannot have the name of a category ({})",
            room.name
        )));
    }
    if let Some(description) = change.description {
        room.description = description;
    }
    let moved = match &change.category {
        Some(name) => {
            let category = snapshot
                .category_by_name(name)
                .ok_or_else(|| ManageError::NotFound(format!("category {name}")))?;
            let moved = room.category != category.id && room.id != 0;
            room.category = category.id;
            moved
        }
        None if room.category == 0 => {
            return Err(ManageError::Invalid("a room needs a category".into()));
        }
        None => false,
    };
    let category = snapshot
        .category(room.category)
        .ok_or_else(|| ManageError::NotFound(format!("category #{}", room.category)))?;
    if let Some(privacy) = change.privacy {
        room.privacy = privacy;
    }
    if let Some(kind) = change.kind {
        room.kind = kind;
    }
    if let Some(invitations) = change.invitations {
        room.invitations = invitations;
    }
    if let Some(disabled) = change.disabled {
        room.disabled = disabled;
    }
    if let Some(addin) = change.addin {
        if let Some(name) = &addin {
            let known = snapshot
                .addin(name)
                .ok_or_else(|| ManageError::NotFound(format!("add-in {name}")))?;
            room.addin = Some(known.name.clone());
        } else {
            room.addin = None;
        }
    }
    apply_edits(&mut room.members, &change.members);
    apply_edits(&mut room.managers, &change.managers);
    apply_edits(&mut room.presenters, &change.presenters);
    // Moving purges what the new category does not allow (persistent-chat-model.md §3.7).
    let removed = if moved {
        purge_out_of_scope(snapshot, category, &mut room)
    } else {
        Vec::new()
    };
    // Only what this change adds is checked: principals already there stay valid or are
    // judged per user when they act, so an unrelated edit (or disabling) is never refused.
    let had = |p: &Principal| {
        before.as_ref().is_some_and(|b| {
            b.members.contains(p) || b.managers.contains(p) || b.presenters.contains(p)
        })
    };
    for list in [&room.members, &room.managers, &room.presenters] {
        let added: Vec<Principal> = list.iter().filter(|p| !had(p)).cloned().collect();
        check_principals_exist(snapshot, &added)?;
        if let Some(p) = added
            .iter()
            .find(|p| !policy::principal_in_scope(snapshot, category, p))
        {
            return Err(ManageError::Invalid(format!(
                "{p} is outside the scope of category {} (its allowed members minus its denied members)",
                category.name
            )));
        }
    }
    if room.kind == RoomType::Normal && !room.presenters.is_empty() {
        return Err(ManageError::Invalid(
            "a normal room has no presenters; make it an auditorium first".into(),
        ));
    }
    if let Some(p) = room
        .presenters
        .iter()
        .find(|p| !presenter_is_member(snapshot, &room, p))
    {
        return Err(ManageError::Invalid(format!(
            "presenter {p} is not a member of the room"
        )));
    }
    let invite = if policy::invitations_effective(category, &room) {
        newly_named_users(snapshot, before.as_ref(), &room)
    } else {
        Vec::new()
    };
    Ok(RoomOutcome {
        room,
        invite,
        removed,
    })
}

fn presenter_is_member(snapshot: &Snapshot, room: &Room, presenter: &Principal) -> bool {
    room.members.contains(presenter)
        || matches!(presenter, Principal::User(aor) if snapshot.directory.listed(&room.members, aor))
}

/// Users the room's member list names now but did not before.
fn newly_named_users(snapshot: &Snapshot, before: Option<&Room>, after: &Room) -> Vec<String> {
    let named = |room: &Room| -> BTreeSet<String> {
        snapshot
            .directory
            .users()
            .filter(|u| snapshot.directory.listed(&room.members, &u.aor))
            .map(|u| u.aor.clone())
            .collect()
    };
    let now = named(after);
    let then = before.map(named).unwrap_or_default();
    now.difference(&then).cloned().collect()
}

// ---- add-ins ----

pub fn addin(name: &str, url: &str) -> Result<Addin, ManageError> {
    let name = check_name("add-in", name)?;
    let lower = url.trim().to_ascii_lowercase();
    let valid = (lower.starts_with("http://") || lower.starts_with("https://"))
        && url.trim().len() > lower.find("://").map_or(0, |i| i + 3)
        && !url.chars().any(char::is_whitespace);
    if !valid {
        return Err(ManageError::Invalid(format!(
            "add-in URL {url:?} must be an http or https URL"
        )));
    }
    Ok(Addin {
        name,
        url: url.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ports::{ModelData, UserRecord};

    fn p(text: &str) -> Principal {
        text.parse().unwrap()
    }

    fn snapshot() -> Snapshot {
        let user = |aor: &str| UserRecord {
            unlocked_at: 0,
            aor: aor.into(),
            display_name: String::new(),
            enabled: true,
            credentials: None,
        };
        let category = |id, name: &str, allowed: &[&str]| Category {
            id,
            name: name.into(),
            description: String::new(),
            allowed: allowed.iter().map(|a| p(a)).collect(),
            denied: vec![p("sip:eve@x.test")],
            creators: vec![],
            invitations: true,
            file_upload: true,
            chat_history: true,
        };
        Snapshot::from_model(ModelData {
            users: ["ann@x.test", "bob@x.test", "eve@x.test", "out@y.test"]
                .iter()
                .map(|a| user(a))
                .collect(),
            groups: vec![
                Group {
                    name: "team".into(),
                    description: String::new(),
                    members: vec![p("sip:bob@x.test")],
                },
                // eve is denied in Eng; ann and bob are not.
                Group {
                    name: "mixed".into(),
                    description: String::new(),
                    members: vec![p("sip:ann@x.test"), p("sip:eve@x.test")],
                },
            ],
            categories: vec![
                category(1, "Eng", &["domain:x.test"]),
                category(2, "Small", &["sip:ann@x.test"]),
            ],
            rooms: vec![Room {
                id: 1,
                uid: "u1".into(),
                name: "Lobby".into(),
                description: String::new(),
                category: 1,
                privacy: Privacy::Closed,
                kind: RoomType::Auditorium,
                invitations: Invitations::Inherit,
                disabled: false,
                addin: None,
                members: vec![p("sip:ann@x.test"), p("sip:bob@x.test"), p("group:mixed")],
                managers: vec![p("sip:bob@x.test")],
                presenters: vec![p("sip:ann@x.test")],
            }],
            ..ModelData::default()
        })
    }

    fn change() -> RoomChange {
        RoomChange::default()
    }

    #[test]
    fn room_rules() {
        let s = snapshot();
        let create = |c: RoomChange| room(&s, None, "new", c);
        let named = |name: &str| RoomChange {
            name: Some(name.into()),
            category: Some("Eng".into()),
            ..change()
        };
        assert!(matches!(
            create(RoomChange {
                name: Some("lobby".into()),
                ..named("x")
            }),
            Err(ManageError::Duplicate(_))
        ));
        assert!(matches!(create(named("Eng")), Err(ManageError::Invalid(_))));
        assert!(matches!(
            create(RoomChange {
                category: Some("Nope".into()),
                ..named("A")
            }),
            Err(ManageError::NotFound(_))
        ));
        assert!(create(named(&"n".repeat(257))).is_err());
        let outside = RoomChange {
            members: vec![ListEdit::Add(vec![p("sip:out@y.test")])],
            ..named("A")
        };
        assert!(
            create(outside)
                .unwrap_err()
                .to_string()
                .contains("outside the scope")
        );
        let denied = RoomChange {
            members: vec![ListEdit::Add(vec![p("sip:eve@x.test")])],
            ..named("A")
        };
        assert!(create(denied).is_err());
        let presenter = RoomChange {
            presenters: vec![ListEdit::Add(vec![p("sip:bob@x.test")])],
            kind: Some(RoomType::Auditorium),
            ..named("A")
        };
        assert!(
            create(presenter)
                .unwrap_err()
                .to_string()
                .contains("not a member")
        );
        let normal = RoomChange {
            kind: Some(RoomType::Normal),
            ..change()
        };
        assert!(
            room(&s, Some("Lobby"), "", normal)
                .unwrap_err()
                .to_string()
                .contains("no presenters")
        );
        let made = create(RoomChange {
            members: vec![ListEdit::Add(vec![p("group:team")])],
            ..named("A")
        })
        .unwrap();
        assert_eq!(made.room.privacy, Privacy::Closed);
        assert_eq!(made.invite, ["bob@x.test"]);
    }

    #[test]
    fn moving_purges_and_categories_must_be_empty() {
        let s = snapshot();
        let moved = room(
            &s,
            Some("Lobby"),
            "",
            RoomChange {
                category: Some("Small".into()),
                ..change()
            },
        )
        .unwrap();
        // Small allows ann only: bob goes (and is named); the group stays, ann being in it.
        assert_eq!(moved.room.members, [p("sip:ann@x.test"), p("group:mixed")]);
        assert!(moved.room.managers.is_empty());
        assert_eq!(moved.removed, [p("sip:bob@x.test")]);
        assert!(removable_category(&s, "Eng").is_err());
        assert_eq!(removable_category(&s, "Small"), Ok(2));
    }

    #[test]
    fn groups_and_addins() {
        let s = snapshot();
        let cyc = group(&s, "team", None, &[ListEdit::Add(vec![p("group:team")])]);
        assert!(cyc.unwrap_err().to_string().contains("cycle"));
        assert!(group(&s, "g", None, &[ListEdit::Add(vec![p("domain:x.test")])]).is_err());
        assert!(group(&s, "g", None, &[ListEdit::Add(vec![p("sip:ghost@x.test")])]).is_err());
        let removed = group(
            &s,
            "team",
            None,
            &[ListEdit::Remove(vec![p("sip:bob@x.test")])],
        )
        .unwrap();
        assert!(removed.members.is_empty());
        let mut list = vec![p("group:Ops")];
        apply_edits(&mut list, &[ListEdit::Add(vec![p("group:OPS")])]);
        assert_eq!(list.len(), 1);
        apply_edits(&mut list, &[ListEdit::Remove(vec![p("group:ops")])]);
        assert!(list.is_empty());
        assert!(addin("Stocks", "https://example.test/app").is_ok());
        for bad in ["ftp://x", "javascript:alert(1)", "https://", "http://a b"] {
            assert!(addin("a", bad).is_err(), "{bad}");
        }
    }

    /// A group with one denied user is still a valid principal: deny is decided per user
    /// when they act. Edits keep it; only principals that became invalid are removed, and
    /// the outcome names them.
    #[test]
    fn a_group_holding_a_denied_user_stays_valid() {
        let s = snapshot();
        let created = room(
            &s,
            None,
            "new",
            RoomChange {
                name: Some("Mixed".into()),
                category: Some("Eng".into()),
                members: vec![ListEdit::Add(vec![p("group:mixed")])],
                ..change()
            },
        );
        assert!(created.is_ok(), "{created:?}");
        let disabled = room(
            &s,
            Some("Lobby"),
            "",
            RoomChange {
                disabled: Some(true),
                ..change()
            },
        );
        assert!(disabled.is_ok(), "{disabled:?}");
        let (_, purged) = category(
            &s,
            Some("Eng"),
            CategoryChange {
                description: Some("unrelated".into()),
                ..CategoryChange::default()
            },
        )
        .unwrap();
        assert!(purged.is_empty(), "{purged:?}");
        // Denying bob makes him invalid in Eng rooms and he is named; the group stays.
        let (_, purged) = category(
            &s,
            Some("Eng"),
            CategoryChange {
                denied: vec![ListEdit::Add(vec![p("sip:bob@x.test")])],
                ..CategoryChange::default()
            },
        )
        .unwrap();
        assert_eq!(purged.len(), 1);
        assert_eq!(purged[0].removed, [p("sip:bob@x.test")]);
        assert!(purged[0].room.members.contains(&p("group:mixed")));
    }
}
