//! Administrative operations as services with typed results: the `perch admin` CLI renders
//! them, and the HTTP admin API and room-management page will call the same functions.
//! Each takes the [`Actor`] asking, so a user's request is decided by `policy` while an
//! operator's is checked only against the model's rules (`manage`).

use super::credentials::Credentials;
use super::ids::{new_room_uid, now_ticks, user_id};
use super::manage::{self, CategoryChange, ListEdit, ManageError, RoomChange};
use super::model::{
    Addin, Category, Group, Invitations, PolicyScope, Principal, Privacy, Room, RoomType,
    SETTING_NAMES,
};
use super::policy::{self, Denial};
use super::ports::{
    AdminToken, PreferenceEntry, Store, StoreError, UserChange, UserRecord, committed,
    read_blocking, wait,
};
use super::snapshot::Snapshot;

/// Who asks for an administrative change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator (`perch admin` on the server, an admin API token): any change the
    /// model's rules allow.
    Operator,
    /// A signed-in user (a room manager or category creator on the room page): only what
    /// `policy` allows them.
    User(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong (an unparsable name, an empty password).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Manage(#[from] ManageError),
    /// The actor may not do this. A room the actor may not know of is `NotFound`.
    #[error("{}", .0.reason())]
    Denied(Denial),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A room after `save_room`.
#[derive(Debug, Clone)]
pub struct SavedRoom {
    pub room: Room,
    pub created: bool,
    /// Principals a move to another category took out of the room.
    pub removed: Vec<Principal>,
    /// Users invited because they were added as members of a room whose invitations are on.
    pub invited: usize,
}

/// The filters of `find_rooms`; `None` and `false` leave a property unfiltered.
#[derive(Debug, Clone, Default)]
pub struct RoomFilter {
    pub category: Option<String>,
    pub privacy: Option<Privacy>,
    pub kind: Option<RoomType>,
    pub disabled: Option<bool>,
    /// Rooms whose member list names this principal (a user also through groups and domains).
    pub member: Option<Principal>,
    pub manager: Option<Principal>,
    pub addin: Option<String>,
    pub invitations: Option<Invitations>,
    /// Rooms whose name (or, with `search_description`, description) contains this text,
    /// ignoring case.
    pub text: Option<String>,
    pub search_description: bool,
    pub limit: Option<usize>,
}

fn room_named<'a>(snapshot: &'a Snapshot, name: &str) -> Result<&'a Room, ServiceError> {
    snapshot
        .room_by_name(name)
        .ok_or_else(|| ManageError::NotFound(format!("room {name}")).into())
}

/// The room `actor` may manage, by name; a room a user may not know of is not found.
fn managed_room<'a>(
    snapshot: &'a Snapshot,
    actor: &Actor,
    name: &str,
) -> Result<&'a Room, ServiceError> {
    let room = room_named(snapshot, name)?;
    if let Actor::User(user) = actor {
        policy::check(snapshot, user, room, policy::Action::Manage).map_err(
            |denial| match denial {
                Denial::NotFound => ManageError::NotFound(format!("room {name}")).into(),
                other => ServiceError::Denied(other),
            },
        )?;
    }
    Ok(room)
}

/// The room with this uid that `actor` may manage (the room page names rooms by uid,
/// which survives renames). A room the user may not know of answers like a missing uid,
/// naming only the uid asked for.
pub fn room_to_manage<'a>(
    snapshot: &'a Snapshot,
    actor: &Actor,
    uid: &str,
) -> Result<&'a Room, ServiceError> {
    let missing = || ServiceError::from(ManageError::NotFound(format!("room {uid}")));
    let room: &Room = snapshot.room_by_uid(uid).ok_or_else(missing)?;
    if let Actor::User(user) = actor {
        policy::check(snapshot, user, room, policy::Action::Manage).map_err(
            |denial| match denial {
                Denial::NotFound => missing(),
                other => ServiceError::Denied(other),
            },
        )?;
    }
    Ok(room)
}

/// Creates (`existing` is `None`) or changes a room, then records the invitations the
/// change sends.
pub fn save_room(
    store: &dyn Store,
    snapshot: &Snapshot,
    actor: &Actor,
    existing: Option<&str>,
    change: RoomChange,
) -> Result<SavedRoom, ServiceError> {
    let outcome = decide_room(snapshot, actor, existing, change)?;
    let removed = outcome.removed;
    let room = wait(store.save_room(outcome.room))?;
    let invited = outcome.invite.len();
    if invited > 0 {
        let invitations = outcome.invite.into_iter().map(|u| (u, room.id)).collect();
        wait(store.add_invitations(invitations, now_ticks()))?;
    }
    Ok(SavedRoom {
        room,
        created: existing.is_none(),
        removed,
        invited,
    })
}

/// What [`save_room`] would do, without doing it (`--dry-run`).
pub fn preview_room(
    snapshot: &Snapshot,
    actor: &Actor,
    existing: Option<&str>,
    change: RoomChange,
) -> Result<SavedRoom, ServiceError> {
    let outcome = decide_room(snapshot, actor, existing, change)?;
    Ok(SavedRoom {
        room: outcome.room,
        created: existing.is_none(),
        removed: outcome.removed,
        invited: outcome.invite.len(),
    })
}

fn decide_room(
    snapshot: &Snapshot,
    actor: &Actor,
    existing: Option<&str>,
    change: RoomChange,
) -> Result<manage::RoomOutcome, ServiceError> {
    let before = existing
        .map(|name| managed_room(snapshot, actor, name))
        .transpose()?;
    let outcome = manage::room(snapshot, existing, &new_room_uid(), change)?;
    if let Actor::User(user) = actor {
        let category = snapshot
            .category(outcome.room.category)
            .ok_or_else(|| ManageError::NotFound("category".into()))?;
        policy::check_room_change(snapshot, user, before, category)
            .map_err(ServiceError::Denied)?;
    }
    Ok(outcome)
}

/// Removes a room and its history.
pub fn remove_room(
    store: &dyn Store,
    snapshot: &Snapshot,
    actor: &Actor,
    name: &str,
) -> Result<Room, ServiceError> {
    let room = managed_room(snapshot, actor, name)?;
    wait(store.remove_room(room.id))?;
    Ok(room.clone())
}

/// Deletes a room's messages up to and including `until` (all without); returns how many.
pub fn clear_room(
    store: &dyn Store,
    snapshot: &Snapshot,
    actor: &Actor,
    name: &str,
    until: Option<i64>,
) -> Result<(Room, usize), ServiceError> {
    let room = managed_room(snapshot, actor, name)?;
    let deleted = wait(store.clear_room(room.id, until))?;
    Ok((room.clone(), deleted))
}

/// The rooms `filter` selects, in name order. A user sees only the rooms they may manage.
pub fn find_rooms<'a>(
    snapshot: &'a Snapshot,
    actor: &Actor,
    filter: &RoomFilter,
) -> Result<Vec<&'a Room>, ServiceError> {
    let category = match &filter.category {
        Some(name) => Some(
            snapshot
                .category_by_name(name)
                .ok_or_else(|| ManageError::NotFound(format!("category {name}")))?
                .id,
        ),
        None => None,
    };
    if let Some(name) = &filter.addin {
        snapshot
            .addin(name)
            .ok_or_else(|| ManageError::NotFound(format!("add-in {name}")))?;
    }
    let text = filter.text.as_deref().map(str::to_lowercase);
    let lists = |list: &[Principal], who: &Option<Principal>| match who {
        None => true,
        Some(Principal::User(aor)) => snapshot.directory.listed(list, aor),
        Some(other) => list.iter().any(|p| p.same_as(other)),
    };
    let visible = |room: &Room| match actor {
        Actor::Operator => true,
        Actor::User(user) => policy::check(snapshot, user, room, policy::Action::Manage).is_ok(),
    };
    let matches = |room: &Room| {
        category.is_none_or(|id| room.category == id)
            && filter.privacy.is_none_or(|p| room.privacy == p)
            && filter.kind.is_none_or(|k| room.kind == k)
            && filter.invitations.is_none_or(|i| room.invitations == i)
            && filter.disabled.is_none_or(|d| room.disabled == d)
            && filter.addin.as_deref().is_none_or(|a| {
                room.addin
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(a))
            })
            && lists(&room.members, &filter.member)
            && lists(&room.managers, &filter.manager)
            && text.as_deref().is_none_or(|t| {
                room.name.to_lowercase().contains(t)
                    || (filter.search_description && room.description.to_lowercase().contains(t))
            })
    };
    Ok(snapshot
        .rooms()
        .into_iter()
        .filter(|room| visible(room) && matches(room))
        .take(filter.limit.unwrap_or(usize::MAX))
        .collect())
}

/// A category after `save_category`, with the rooms the change took principals out of
/// (those outside a narrowed scope).
#[derive(Debug, Clone)]
pub struct SavedCategory {
    pub category: Category,
    pub created: bool,
    /// Rooms the change took principals out of, with those principals.
    pub purged: Vec<(Room, Vec<Principal>)>,
}

/// Creates (`existing` is `None`) or changes a category as the operator, then stores the
/// rooms whose lists the change narrowed.
pub fn save_category(
    store: &dyn Store,
    snapshot: &Snapshot,
    existing: Option<&str>,
    change: CategoryChange,
) -> Result<SavedCategory, ServiceError> {
    let (category, purged) = manage::category(snapshot, existing, change)?;
    let category = wait(store.save_category(category))?;
    let purged = purged
        .into_iter()
        .map(|purged| Ok((wait(store.save_room(purged.room))?, purged.removed)))
        .collect::<Result<_, StoreError>>()?;
    Ok(SavedCategory {
        category,
        created: existing.is_none(),
        purged,
    })
}

/// What [`save_category`] would do, without doing it (`--dry-run`).
pub fn preview_category(
    snapshot: &Snapshot,
    existing: Option<&str>,
    change: CategoryChange,
) -> Result<SavedCategory, ServiceError> {
    let (category, purged) = manage::category(snapshot, existing, change)?;
    Ok(SavedCategory {
        category,
        created: existing.is_none(),
        purged: purged.into_iter().map(|p| (p.room, p.removed)).collect(),
    })
}

/// Removes a category that holds no rooms.
pub fn remove_category(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
) -> Result<Category, ServiceError> {
    let id = manage::removable_category(snapshot, name)?;
    let category = snapshot
        .category(id)
        .cloned()
        .ok_or_else(|| ManageError::NotFound(format!("category {name}")))?;
    wait(store.remove_category(id))?;
    Ok(category)
}

/// Where the model names `principal`: groups, category and room lists, policies.
pub fn references(snapshot: &Snapshot, principal: &Principal) -> Vec<String> {
    let groups = snapshot.directory.groups();
    let groups = groups.map(|g| (format!("group {}", g.name), g.members.clone()));
    let categories = snapshot.categories().into_iter().map(|c| {
        let lists = [&c.allowed[..], &c.denied, &c.creators].concat();
        (format!("category {}", c.name), lists)
    });
    let rooms = snapshot.rooms().into_iter().map(|r| {
        let lists = [&r.members[..], &r.managers, &r.presenters].concat();
        (format!("room {}", r.name), lists)
    });
    let mut uses: Vec<String> = groups
        .chain(categories)
        .chain(rooms)
        .filter(|(_, list)| list.iter().any(|p| p.same_as(principal)))
        .map(|(owner, _)| owner)
        .collect();
    let scope = match principal {
        Principal::User(aor) => Some(PolicyScope::User(aor.clone())),
        Principal::Group(name) => Some(PolicyScope::Group(name.to_lowercase())),
        Principal::Domain(_) => None,
    };
    if scope.is_some_and(|s| snapshot.directory.policies().any(|(p, _)| *p == s)) {
        uses.push(format!("a policy ({principal})"));
    }
    uses
}

/// Adds a group without members.
pub fn add_group(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
    description: Option<&str>,
) -> Result<Group, ServiceError> {
    if let Some(existing) = snapshot.directory.group(name) {
        return Err(ManageError::Duplicate(format!("group {}", existing.name)).into());
    }
    let group = manage::group(snapshot, name, description, &[])?;
    wait(store.save_group(group.clone()))?;
    Ok(group)
}

/// Adds members to a group, or removes members it has (in the group's own spelling).
pub fn edit_group_members(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
    principals: Vec<Principal>,
    add: bool,
) -> Result<Group, ServiceError> {
    let group = snapshot
        .directory
        .group(name)
        .ok_or_else(|| ManageError::NotFound(format!("group {name}")))?;
    let edit = if add {
        ListEdit::Add(principals)
    } else {
        let mut stored = Vec::new();
        for principal in principals {
            let member = group
                .members
                .iter()
                .find(|member| member.same_as(&principal))
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "{principal} is not a member of group {}",
                        group.name
                    ))
                })?;
            stored.push(member.clone());
        }
        ListEdit::Remove(stored)
    };
    let group = manage::group(snapshot, &group.name, None, &[edit])?;
    wait(store.save_group(group.clone()))?;
    Ok(group)
}

/// Removes a group that nothing names any more.
pub fn remove_group(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
) -> Result<Group, ServiceError> {
    let group = snapshot
        .directory
        .group(name)
        .ok_or_else(|| ManageError::NotFound(format!("group {name}")))?;
    let uses = references(snapshot, &Principal::Group(group.name.clone()));
    if !uses.is_empty() {
        return Err(ServiceError::Invalid(format!(
            "group {} is still named by {}; remove it there first",
            group.name,
            uses.join(", ")
        )));
    }
    wait(store.remove_group(&group.name))?;
    Ok(group.clone())
}

/// The scope as stored: group names in lower case, as the directory matches them.
fn canonical_scope(scope: PolicyScope) -> PolicyScope {
    match scope {
        PolicyScope::Group(name) => PolicyScope::Group(name.to_lowercase()),
        other => other,
    }
}

/// Turns persistent chat on or off for a scope whose group or user exists.
pub fn set_policy(
    store: &dyn Store,
    snapshot: &Snapshot,
    scope: PolicyScope,
    enabled: bool,
) -> Result<PolicyScope, ServiceError> {
    let scope = canonical_scope(scope);
    let principal = match &scope {
        PolicyScope::Global => None,
        PolicyScope::Group(name) => Some(Principal::Group(name.clone())),
        PolicyScope::User(aor) => Some(Principal::User(aor.clone())),
    };
    if let Some(principal) = principal
        && !snapshot.directory.exists(&principal)
    {
        return Err(ManageError::NotFound(format!("principal {principal}")).into());
    }
    wait(store.set_policy(scope.clone(), Some(enabled)))?;
    Ok(scope)
}

/// Removes a scope's policy (for global: back to the default, enabled).
pub fn remove_policy(
    store: &dyn Store,
    snapshot: &Snapshot,
    scope: PolicyScope,
) -> Result<PolicyScope, ServiceError> {
    let scope = canonical_scope(scope);
    if !snapshot.directory.policies().any(|(s, _)| *s == scope) {
        return Err(ManageError::NotFound(format!("a policy for {scope}")).into());
    }
    wait(store.set_policy(scope.clone(), None))?;
    Ok(scope)
}

/// Sets one of the server's chat settings (SETTING_NAMES, any case) within its range;
/// returns its proper name.
pub fn set_setting(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
    value: u32,
) -> Result<&'static str, ServiceError> {
    let name = SETTING_NAMES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            ServiceError::Invalid(format!(
                "unknown setting {name:?}; known: {}",
                SETTING_NAMES.join(", ")
            ))
        })?;
    let mut settings = snapshot.settings;
    settings.set(name, value).map_err(ServiceError::Invalid)?;
    wait(store.set_setting(name, value))?;
    Ok(name)
}

/// Creates an add-in (`create`) or changes the URL of an existing one.
pub fn save_addin(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
    url: &str,
    create: bool,
) -> Result<Addin, ServiceError> {
    let addin = match (snapshot.addin(name), create) {
        (Some(existing), true) => {
            return Err(ManageError::Duplicate(format!("add-in {}", existing.name)).into());
        }
        (None, false) => return Err(ManageError::NotFound(format!("add-in {name}")).into()),
        (Some(existing), false) => manage::addin(&existing.name, url)?,
        (None, true) => manage::addin(name, url)?,
    };
    wait(store.save_addin(addin.clone()))?;
    Ok(addin)
}

/// Removes an add-in; returns it with the rooms that showed it.
pub fn remove_addin(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
) -> Result<(Addin, Vec<String>), ServiceError> {
    let addin = snapshot
        .addin(name)
        .cloned()
        .ok_or_else(|| ManageError::NotFound(format!("add-in {name}")))?;
    wait(store.remove_addin(&addin.name))?;
    let rooms = snapshot
        .rooms()
        .into_iter()
        .filter(|room| room.addin.as_ref() == Some(&addin.name))
        .map(|room| room.name.clone())
        .collect();
    Ok((addin, rooms))
}

/// The canonical user id of `text` (`user@domain` or `sip:user@domain`).
pub fn user_name(text: &str) -> Result<String, ServiceError> {
    user_id(text).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "{text:?} is not a user (expected user@domain or sip:user@domain)"
        ))
    })
}

/// Adds a user; with a password, every sign-in verifier is derived from it (the password
/// itself is not kept).
pub fn add_user(
    store: &dyn Store,
    name: &str,
    display_name: Option<&str>,
    password: Option<&str>,
    enabled: bool,
) -> Result<UserRecord, ServiceError> {
    let aor = user_name(name)?;
    let user = UserRecord {
        unlocked_at: 0,
        credentials: password.map(|p| Credentials::derive(&aor, p)),
        display_name: display_name.unwrap_or_default().to_owned(),
        enabled,
        aor,
    };
    Ok(wait(store.add_user(user))?)
}

/// Changes a user; a new password replaces every verifier (and adds those a user set up
/// before perch derived them was missing).
pub fn set_user(
    store: &dyn Store,
    name: &str,
    display_name: Option<&str>,
    password: Option<&str>,
    enabled: Option<bool>,
) -> Result<UserRecord, ServiceError> {
    let aor = user_name(name)?;
    let change = UserChange {
        unlocked_at: None,
        display_name: display_name.map(str::to_owned),
        enabled,
        credentials: password.map(|p| Credentials::derive(&aor, p)),
    };
    Ok(wait(store.update_user(&aor, change))?)
}

/// Lifts the user's sign-in throttle: a running server forgets their failed sign-ins from
/// every address once it sees the change.
pub fn unlock_user(store: &dyn Store, name: &str) -> Result<String, ServiceError> {
    let aor = user_name(name)?;
    let change = UserChange {
        unlocked_at: Some(now_ticks()),
        ..UserChange::default()
    };
    Ok(wait(store.update_user(&aor, change))?.aor)
}

/// A removed user, and where they were named (each list now without them).
#[derive(Debug, Default)]
pub struct RemovedUser {
    pub aor: String,
    pub rooms: Vec<String>,
    pub categories: Vec<String>,
    pub groups: Vec<String>,
}

/// Removes a user, and takes them off every room, category and group that names them: a
/// list naming someone who no longer exists misleads whoever reads it, and would hand a
/// later user of the same name the old one's rights.
pub fn remove_user(
    store: &dyn Store,
    snapshot: &Snapshot,
    name: &str,
) -> Result<RemovedUser, ServiceError> {
    let aor = user_name(name)?;
    wait(store.remove_user(&aor))?;
    let principal = Principal::User(aor.clone());
    // Every list keeps its other entries; `true` when the user was on it.
    let strip = |lists: &mut [&mut Vec<Principal>]| {
        let mut named = false;
        for list in lists.iter_mut() {
            let before = list.len();
            list.retain(|p| p != &principal);
            named |= list.len() != before;
        }
        named
    };
    let mut removed = RemovedUser {
        aor: aor.clone(),
        ..RemovedUser::default()
    };
    for room in snapshot.rooms() {
        let mut room = room.clone();
        if strip(&mut [&mut room.members, &mut room.managers, &mut room.presenters]) {
            removed.rooms.push(room.name.clone());
            wait(store.save_room(room))?;
        }
    }
    for category in snapshot.categories() {
        let mut category = category.clone();
        if strip(&mut [
            &mut category.allowed,
            &mut category.denied,
            &mut category.creators,
        ]) {
            removed.categories.push(category.name.clone());
            wait(store.save_category(category))?;
        }
    }
    for group in snapshot.directory.groups() {
        let mut group = group.clone();
        if strip(&mut [&mut group.members]) {
            removed.groups.push(group.name.clone());
            wait(store.save_group(group))?;
        }
    }
    Ok(removed)
}

pub fn users(store: &dyn Store) -> Result<Vec<UserRecord>, ServiceError> {
    Ok(store.users()?)
}

/// A user's stored client preferences (labels, versions and sizes; not their contents).
pub fn preferences(store: &dyn Store, name: &str) -> Result<Vec<PreferenceEntry>, ServiceError> {
    let aor = user_name(name)?;
    Ok(read_blocking(store.preferences(&aor))?)
}

/// Removes a user's client preferences; their client starts again from its defaults.
pub fn clear_preferences(store: &dyn Store, name: &str) -> Result<(String, usize), ServiceError> {
    let aor = user_name(name)?;
    let removed = wait(store.clear_preferences(&aor))?;
    Ok((aor, removed))
}

/// What a new admin token's secret starts with, so that it is recognisable in a
/// configuration file or a leaked log (and can be searched for).
pub const ADMIN_TOKEN_PREFIX: &str = "perch_";

fn admin_token_digest(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Makes an admin API token and returns its secret, which is shown once: only its SHA-256
/// digest is stored (the secret has 256 random bits, so no slow hash is needed).
pub fn create_admin_token(store: &dyn Store, name: &str) -> Result<String, ServiceError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    if !super::ids::is_plain_name(name) {
        return Err(ServiceError::Invalid(format!(
            "token name {name:?}: 1 to 64 letters, digits, '-', '_' or '.'"
        )));
    }
    if store.admin_tokens()?.iter().any(|t| t.name == name) {
        return Err(ManageError::Duplicate(format!("token {name}")).into());
    }
    let mut random = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| ServiceError::Invalid("the system random generator failed".into()))?;
    let secret = format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    wait(store.add_admin_token(name, admin_token_digest(&secret), now_ticks()))?;
    Ok(secret)
}

pub fn admin_tokens(store: &dyn Store) -> Result<Vec<AdminToken>, ServiceError> {
    Ok(store.admin_tokens()?)
}

pub fn revoke_admin_token(store: &dyn Store, name: &str) -> Result<(), ServiceError> {
    if wait(store.remove_admin_token(name))? {
        Ok(())
    } else {
        Err(ManageError::NotFound(format!("token {name}")).into())
    }
}

/// The name of the token `secret` belongs to, if any (and it is marked used).
pub async fn authenticate_admin(
    store: &dyn Store,
    secret: &str,
) -> Result<Option<String>, ServiceError> {
    if !secret.starts_with(ADMIN_TOKEN_PREFIX) {
        return Ok(None);
    }
    Ok(committed(store.use_admin_token(admin_token_digest(secret), now_ticks())).await?)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
