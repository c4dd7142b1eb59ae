//! Every permission decision of perch, in one place (persistent-chat-model.md §2.9, §3.6–3.8).
//! Protocol adapters and the admin tool ask; nobody else decides.

use super::model::{Category, Invitations, Principal, Privacy, Room, RoomType};
use super::snapshot::{CategoryLists, RoomLists, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Find the room in search and see its details.
    See,
    Join,
    ReadHistory,
    Post,
    Manage,
}

/// Why an action is refused. `NotFound` is also the answer for rooms the user may not
/// know about, so a secret room answers exactly like a room that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NotFound,
    /// `EnablePersistentChat` is off for the user.
    NotEnabled,
    Disabled,
    NotMember,
    NotPresenter,
    NotManager,
    /// Creating (or moving) a room in a category needs its creator rights.
    NotCreator,
}

impl Denial {
    pub fn reason(self) -> &'static str {
        match self {
            Denial::NotFound => "no such room",
            Denial::NotEnabled => "persistent chat is not enabled for this user",
            Denial::Disabled => "the room is disabled",
            Denial::NotMember => "only members may enter this room",
            Denial::NotPresenter => "only presenters may post in an auditorium",
            Denial::NotManager => "only managers may manage this room",
            Denial::NotCreator => "only the category's creators may create rooms in it",
        }
    }
}

/// A user's roles in a room, from its lists (groups and domains expanded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub member: bool,
    pub manager: bool,
    pub presenter: bool,
}

pub fn roles(snapshot: &Snapshot, aor: &str, room: &Room) -> Roles {
    // A room that is not the snapshot's own (one being edited) has its lists prepared here.
    let prepared;
    let lists = match snapshot.room_lists(room) {
        Some(lists) => lists,
        None => {
            prepared = RoomLists::new(room);
            &prepared
        }
    };
    let directory = &snapshot.directory;
    let manager = directory.in_set(&lists.managers, aor);
    let presenter = directory.in_set(&lists.presenters, aor);
    Roles {
        // Managers and presenters are members for seeing and entering the room.
        member: manager || presenter || directory.in_set(&lists.members, aor),
        manager,
        presenter,
    }
}

/// In the category's scope: allowed and not denied (deny beats allow).
pub fn in_scope(snapshot: &Snapshot, aor: &str, category: &Category) -> bool {
    let prepared;
    let lists = match snapshot.category_lists(category) {
        Some(lists) => lists,
        None => {
            prepared = CategoryLists::new(category);
            &prepared
        }
    };
    let directory = &snapshot.directory;
    directory.in_set(&lists.allowed, aor) && !directory.in_set(&lists.denied, aor)
}

/// Whether a principal may be put on one of the category's rooms: a user in scope; a
/// group the category allows, or whose every user is in scope; a domain the category allows.
pub fn principal_in_scope(snapshot: &Snapshot, category: &Category, principal: &Principal) -> bool {
    if category.denied.contains(principal) {
        return false;
    }
    match principal {
        Principal::User(aor) => in_scope(snapshot, aor, category),
        Principal::Group(_) if category.allowed.contains(principal) => true,
        // A group is valid while any of its users may be in the category (or it has none
        // yet); a member who is denied is kept out when they act, one user at a time, so
        // one denied user never takes the group's other members out with them.
        Principal::Group(_) => {
            let directory = &snapshot.directory;
            let mut users = directory
                .users()
                .filter(|u| directory.names(principal, &u.aor))
                .peekable();
            users.peek().is_none() || users.any(|u| in_scope(snapshot, &u.aor, category))
        }
        Principal::Domain(_) => category.allowed.contains(principal),
    }
}

pub fn chat_enabled(snapshot: &Snapshot, aor: &str) -> bool {
    snapshot.directory.active_user(aor).is_some() && snapshot.directory.chat_enabled(aor)
}

/// The user's roles in `room` if they may know the room exists: inside its category's
/// scope (roles only count there: a denied member is no member) and, for a secret room, a
/// member. `None` means the room must answer every request exactly as a missing one.
fn known_roles(snapshot: &Snapshot, aor: &str, room: &Room) -> Option<Roles> {
    let category = snapshot.category(room.category)?;
    if !in_scope(snapshot, aor, category) {
        return None;
    }
    let roles = roles(snapshot, aor, room);
    (room.privacy != Privacy::Secret || roles.member).then_some(roles)
}

/// Whether `aor` may know that `room` exists at all (disabled or not). For requests that
/// need no permission, such as leaving a room, but must not tell a hidden room from a
/// missing one.
pub fn may_know(snapshot: &Snapshot, aor: &str, room: &Room) -> bool {
    known_roles(snapshot, aor, room).is_some()
}

/// May `aor` do `action` in `room`?
pub fn check(snapshot: &Snapshot, aor: &str, room: &Room, action: Action) -> Result<(), Denial> {
    if !chat_enabled(snapshot, aor) {
        return Err(Denial::NotEnabled);
    }
    let roles = known_roles(snapshot, aor, room).ok_or(Denial::NotFound)?;
    let member = roles.member;
    if room.disabled {
        // A disabled room is hidden and refuses everything but management.
        return match action {
            Action::Manage if roles.manager => Ok(()),
            Action::Manage => Err(Denial::NotManager),
            _ if action == Action::See => Err(Denial::NotFound),
            _ => Err(Denial::Disabled),
        };
    }
    let may_enter = room.privacy == Privacy::Open || member;
    match action {
        Action::See => Ok(()),
        Action::Join | Action::ReadHistory if may_enter => Ok(()),
        Action::Join | Action::ReadHistory => Err(Denial::NotMember),
        Action::Post if !may_enter => Err(Denial::NotMember),
        Action::Post if room.kind == RoomType::Auditorium && !roles.presenter => {
            Err(Denial::NotPresenter)
        }
        Action::Post => Ok(()),
        Action::Manage if roles.manager => Ok(()),
        Action::Manage => Err(Denial::NotManager),
    }
}

/// May `aor` create rooms in `category`?
pub fn may_create_in(snapshot: &Snapshot, aor: &str, category: &Category) -> bool {
    chat_enabled(snapshot, aor)
        && in_scope(snapshot, aor, category)
        && snapshot.directory.listed(&category.creators, aor)
}

/// May `aor` make this change to a room: create it in `category` (`before` is `None`), or
/// change `before`, possibly moving it into `category`? Creating needs creator rights in
/// the category, changing needs the room's manager role, and moving needs both.
pub fn check_room_change(
    snapshot: &Snapshot,
    aor: &str,
    before: Option<&Room>,
    category: &Category,
) -> Result<(), Denial> {
    if let Some(room) = before {
        check(snapshot, aor, room, Action::Manage)?;
        if room.category == category.id {
            return Ok(());
        }
    }
    if may_create_in(snapshot, aor, category) {
        Ok(())
    } else if chat_enabled(snapshot, aor) {
        Err(Denial::NotCreator)
    } else {
        Err(Denial::NotEnabled)
    }
}

/// Whether posts to rooms of this category are kept.
pub fn keeps_history(category: &Category) -> bool {
    category.chat_history
}

/// Whether adding members to `room` sends them invitations.
pub fn invitations_effective(category: &Category, room: &Room) -> bool {
    category.invitations && room.invitations == Invitations::Inherit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Group;
    use crate::core::ports::{ModelData, UserRecord};

    const CATEGORY: i64 = 1;

    fn user(aor: &str) -> UserRecord {
        UserRecord {
            unlocked_at: 0,
            aor: aor.into(),
            display_name: String::new(),
            enabled: true,
            credentials: None,
        }
    }

    fn p(text: &str) -> Principal {
        text.parse().unwrap()
    }

    /// Users: outsider (other domain), scoped (in scope, no role), member, manager,
    /// presenter, denied (member through a group but denied by name), off (policy disabled).
    fn snapshot(privacy: Privacy, kind: RoomType, disabled: bool) -> Snapshot {
        let users = [
            "outsider@other.test",
            "scoped@x.test",
            "member@x.test",
            "manager@x.test",
            "presenter@x.test",
            "denied@x.test",
            "off@x.test",
        ];
        let room = Room {
            id: 1,
            uid: "r1".into(),
            name: "Room".into(),
            description: String::new(),
            category: CATEGORY,
            privacy,
            kind,
            invitations: Invitations::Inherit,
            disabled,
            addin: None,
            members: vec![
                p("sip:member@x.test"),
                p("group:team"),
                p("sip:presenter@x.test"),
                p("sip:off@x.test"),
            ],
            managers: vec![p("sip:manager@x.test")],
            presenters: if kind == RoomType::Auditorium {
                vec![p("sip:presenter@x.test")]
            } else {
                vec![]
            },
        };
        Snapshot::from_model(ModelData {
            users: users.iter().map(|u| user(u)).collect(),
            groups: vec![Group {
                name: "team".into(),
                description: String::new(),
                members: vec![p("sip:denied@x.test")],
            }],
            policies: vec![(
                crate::core::model::PolicyScope::User("off@x.test".into()),
                false,
            )],
            settings: vec![],
            categories: vec![Category {
                id: CATEGORY,
                name: "C".into(),
                description: String::new(),
                allowed: vec![p("domain:x.test")],
                denied: vec![p("sip:denied@x.test")],
                creators: vec![p("sip:manager@x.test")],
                invitations: true,
                file_upload: true,
                chat_history: true,
            }],
            rooms: vec![room],
            addins: vec![],
        })
    }

    use Action::*;
    use Denial::*;

    /// (user, [See, Join, ReadHistory, Post, Manage]) for each privacy × type.
    type Row = (&'static str, [Result<(), Denial>; 5]);

    fn expect(privacy: Privacy, kind: RoomType) -> Vec<Row> {
        let ok = Ok(());
        let post_member = if kind == RoomType::Auditorium {
            Err(NotPresenter)
        } else {
            ok
        };
        let enter_scoped = if privacy == Privacy::Open {
            ok
        } else {
            Err(NotMember)
        };
        let post_scoped = match (privacy, kind) {
            (Privacy::Open, RoomType::Auditorium) => Err(NotPresenter),
            (Privacy::Open, RoomType::Normal) => ok,
            _ => Err(NotMember),
        };
        let see_scoped = if privacy == Privacy::Secret {
            Err(NotFound)
        } else {
            ok
        };
        let hidden = [Err(NotFound); 5];
        vec![
            ("outsider@other.test", hidden),
            ("denied@x.test", hidden),
            ("off@x.test", [Err(NotEnabled); 5]),
            (
                "scoped@x.test",
                if privacy == Privacy::Secret {
                    hidden
                } else {
                    [
                        see_scoped,
                        enter_scoped,
                        enter_scoped,
                        post_scoped,
                        Err(NotManager),
                    ]
                },
            ),
            ("member@x.test", [ok, ok, ok, post_member, Err(NotManager)]),
            ("manager@x.test", [ok, ok, ok, post_member, ok]),
            ("presenter@x.test", [ok, ok, ok, ok, Err(NotManager)]),
        ]
    }

    #[test]
    fn permission_table() {
        let actions = [See, Join, ReadHistory, Post, Manage];
        for privacy in [Privacy::Open, Privacy::Closed, Privacy::Secret] {
            for kind in [RoomType::Normal, RoomType::Auditorium] {
                let s = snapshot(privacy, kind, false);
                let room = s.room(1).unwrap();
                for (user, expected) in expect(privacy, kind) {
                    for (action, want) in actions.iter().zip(expected) {
                        assert_eq!(
                            check(&s, user, room, *action),
                            want,
                            "{user} {action:?} in a {privacy} {kind} room"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn disabled_rooms_are_hidden_and_refuse_entry() {
        for privacy in [Privacy::Open, Privacy::Closed, Privacy::Secret] {
            let s = snapshot(privacy, RoomType::Normal, true);
            let room = s.room(1).unwrap();
            assert_eq!(check(&s, "member@x.test", room, See), Err(NotFound));
            assert_eq!(check(&s, "member@x.test", room, Join), Err(Disabled));
            assert_eq!(check(&s, "member@x.test", room, Post), Err(Disabled));
            assert_eq!(check(&s, "manager@x.test", room, Manage), Ok(()));
            assert_eq!(check(&s, "outsider@other.test", room, Join), Err(NotFound));
        }
    }

    #[test]
    fn only_those_who_may_see_a_room_know_it_exists_even_when_disabled() {
        for privacy in [Privacy::Open, Privacy::Closed, Privacy::Secret] {
            let enabled = snapshot(privacy, RoomType::Normal, false);
            let disabled = snapshot(privacy, RoomType::Normal, true);
            for (user, _) in expect(privacy, RoomType::Normal) {
                let room = enabled.room(1).unwrap();
                let sees = check(&enabled, user, room, See) != Err(NotFound);
                assert_eq!(may_know(&enabled, user, room), sees, "{user} {privacy}");
                let room = disabled.room(1).unwrap();
                assert_eq!(may_know(&disabled, user, room), sees, "{user} {privacy}");
            }
        }
        let secret = snapshot(Privacy::Secret, RoomType::Normal, false);
        let room = secret.room(1).unwrap();
        assert!(!may_know(&secret, "scoped@x.test", room));
        assert!(!may_know(&secret, "denied@x.test", room));
        assert!(may_know(&secret, "manager@x.test", room));
    }

    #[test]
    fn creators_and_invitations() {
        let s = snapshot(Privacy::Closed, RoomType::Normal, false);
        let category = s.category(CATEGORY).unwrap();
        assert!(may_create_in(&s, "manager@x.test", category));
        assert!(!may_create_in(&s, "member@x.test", category));
        let mut room = Room::clone(s.room(1).unwrap());
        assert!(invitations_effective(category, &room));
        room.invitations = Invitations::Off;
        assert!(!invitations_effective(category, &room));
    }

    /// Room changes by users: managers change their room, creators create in (and move
    /// into) their category, nobody else; a secret room is not found for outsiders.
    #[test]
    fn room_changes_by_users() {
        let s = snapshot(Privacy::Secret, RoomType::Normal, false);
        let category = s.category(CATEGORY).unwrap();
        let room = s.room(1).unwrap();
        let mut elsewhere = category.clone();
        elsewhere.id = CATEGORY + 1;
        elsewhere.creators.clear();
        // (user, room, category, expected)
        type Case<'a> = (&'a str, Option<&'a Room>, &'a Category, Result<(), Denial>);
        let cases: [Case; 8] = [
            ("manager@x.test", Some(room), category, Ok(())),
            ("member@x.test", Some(room), category, Err(NotManager)),
            ("scoped@x.test", Some(room), category, Err(NotFound)),
            ("off@x.test", Some(room), category, Err(NotEnabled)),
            ("manager@x.test", None, category, Ok(())),
            ("member@x.test", None, category, Err(NotCreator)),
            ("off@x.test", None, category, Err(NotEnabled)),
            // Moving needs creator rights where the room goes.
            ("manager@x.test", Some(room), &elsewhere, Err(NotCreator)),
        ];
        for (user, before, target, expected) in cases {
            assert_eq!(
                check_room_change(&s, user, before, target),
                expected,
                "{user} {:?}",
                before.map(|r| &r.name)
            );
        }
    }
}
