//! The room services as a user would call them from the room-management page: policy
//! decides, and a room the user may not know of is not found.

use super::*;
use crate::core::fixtures::{MemoryStore, category, open_room, user};
use crate::core::manage::ListEdit;
use crate::core::ports::{DirectoryStore, InvitationStore, ModelStore, read_blocking};

const DOMAIN: &str = "example.test";
const MANAGER: &str = "manager@example.test";
const CREATOR: &str = "creator@example.test";
const MEMBER: &str = "member@example.test";
const STRANGER: &str = "stranger@example.test";

struct Scene {
    store: MemoryStore,
}

impl Scene {
    /// Category Eng (CREATOR may create rooms), an open room Lobby managed by MANAGER and
    /// a secret room Hideout managed by MANAGER with MEMBER.
    fn new() -> Scene {
        let store = MemoryStore::default();
        for aor in [MANAGER, CREATOR, MEMBER, STRANGER] {
            wait(store.add_user(user(aor))).unwrap();
        }
        let mut eng = category("Eng", DOMAIN, true);
        eng.creators = vec![Principal::User(CREATOR.into())];
        let eng = wait(store.save_category(eng)).unwrap();
        let mut lobby = open_room("Lobby", eng.id);
        lobby.managers = vec![Principal::User(MANAGER.into())];
        wait(store.save_room(lobby)).unwrap();
        let mut hideout = open_room("Hideout", eng.id);
        hideout.privacy = Privacy::Secret;
        hideout.managers = vec![Principal::User(MANAGER.into())];
        hideout.members = vec![Principal::User(MEMBER.into())];
        wait(store.save_room(hideout)).unwrap();
        Scene { store }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::from_model(self.store.load_model().unwrap())
    }

    fn save(
        &self,
        actor: &str,
        existing: Option<&str>,
        change: RoomChange,
    ) -> Result<SavedRoom, ServiceError> {
        let actor = Actor::User(actor.into());
        save_room(&self.store, &self.snapshot(), &actor, existing, change)
    }
}

fn described(text: &str) -> RoomChange {
    RoomChange {
        description: Some(text.into()),
        ..RoomChange::default()
    }
}

#[test]
fn a_manager_changes_their_room_and_others_may_not() {
    let scene = Scene::new();
    let saved = scene
        .save(MANAGER, Some("Lobby"), described("by the manager"))
        .unwrap();
    assert!(!saved.created);
    assert_eq!(saved.room.description, "by the manager");

    let refused = scene.save(MEMBER, Some("Lobby"), described("by a member"));
    assert!(
        matches!(refused, Err(ServiceError::Denied(Denial::NotManager))),
        "{refused:?}"
    );
    // A secret room the user may not know of answers as a missing one.
    let hidden = scene.save(STRANGER, Some("Hideout"), described("x"));
    assert!(
        matches!(hidden, Err(ServiceError::Manage(ManageError::NotFound(_)))),
        "{hidden:?}"
    );
    let missing = scene.save(STRANGER, Some("Nowhere"), described("x"));
    assert_eq!(
        hidden.unwrap_err().to_string(),
        missing
            .unwrap_err()
            .to_string()
            .replace("Nowhere", "Hideout")
    );
    assert_eq!(
        scene.snapshot().room_by_name("Lobby").unwrap().description,
        "by the manager"
    );
}

#[test]
fn creators_create_rooms_and_invitations_follow() {
    let scene = Scene::new();
    let change = RoomChange {
        name: Some("Standup".into()),
        category: Some("Eng".into()),
        members: vec![ListEdit::Add(vec![Principal::User(MEMBER.into())])],
        ..RoomChange::default()
    };
    let refused = scene.save(MANAGER, None, change.clone());
    assert!(
        matches!(refused, Err(ServiceError::Denied(Denial::NotCreator))),
        "{refused:?}"
    );
    let saved = scene.save(CREATOR, None, change).unwrap();
    assert!(saved.created);
    assert_eq!(saved.invited, 1);
    let invitations = read_blocking(scene.store.invitations(MEMBER, 0)).unwrap();
    assert_eq!(invitations, [(invitations[0].0, saved.room.id)]);
}

#[test]
fn users_find_and_remove_only_rooms_they_manage() {
    let scene = Scene::new();
    let snapshot = scene.snapshot();
    let names = |actor: &Actor| -> Vec<String> {
        find_rooms(&snapshot, actor, &RoomFilter::default())
            .unwrap()
            .into_iter()
            .map(|room| room.name.clone())
            .collect()
    };
    assert_eq!(names(&Actor::Operator), ["Hideout", "Lobby"]);
    assert_eq!(names(&Actor::User(MANAGER.into())), ["Hideout", "Lobby"]);
    assert!(names(&Actor::User(MEMBER.into())).is_empty());

    let refused = remove_room(
        &scene.store,
        &snapshot,
        &Actor::User(MEMBER.into()),
        "Lobby",
    );
    assert!(matches!(
        refused,
        Err(ServiceError::Denied(Denial::NotManager))
    ));
    let removed = remove_room(
        &scene.store,
        &snapshot,
        &Actor::User(MANAGER.into()),
        "Lobby",
    )
    .unwrap();
    assert_eq!(removed.name, "Lobby");
    assert!(scene.snapshot().room_by_name("Lobby").is_none());
}

#[test]
fn users_get_every_verifier_from_their_password() {
    let scene = Scene::new();
    let added = add_user(
        &scene.store,
        "sip:New@Example.Test",
        Some("New"),
        Some("pw"),
        true,
    )
    .unwrap();
    assert_eq!(added.aor, "new@example.test");
    assert!(added.credentials.unwrap().missing().is_empty());
    assert!(matches!(
        add_user(&scene.store, "not a user", None, None, true),
        Err(ServiceError::Invalid(_))
    ));
    let removed = remove_user(&scene.store, &scene.snapshot(), "new@example.test").unwrap();
    assert_eq!(removed.aor, "new@example.test");
    assert!(scene.store.user("new@example.test").unwrap().is_none());
}

#[test]
fn a_removed_user_leaves_every_list_that_named_them() {
    let scene = Scene::new();
    let snapshot = scene.snapshot();
    let mut crew = Group {
        name: "crew".into(),
        description: String::new(),
        members: vec![
            Principal::User(MANAGER.into()),
            Principal::User(MEMBER.into()),
        ],
    };
    wait(scene.store.save_group(crew.clone())).unwrap();
    let mut eng = snapshot.category_by_name("Eng").unwrap().clone();
    eng.denied = vec![Principal::User(MANAGER.into())];
    wait(scene.store.save_category(eng)).unwrap();

    let removed = remove_user(&scene.store, &scene.snapshot(), MANAGER).unwrap();
    assert_eq!(removed.rooms, ["Hideout", "Lobby"]);
    assert_eq!(removed.categories, ["Eng"]);
    assert_eq!(removed.groups, ["crew"]);
    let after = scene.snapshot();
    let gone = Principal::User(MANAGER.into());
    for room in after.rooms() {
        assert!(!room.managers.contains(&gone), "{}", room.name);
    }
    let hideout = after.room_by_name("Hideout").unwrap();
    assert_eq!(hideout.members, [Principal::User(MEMBER.into())]);
    assert!(after.category_by_name("Eng").unwrap().denied.is_empty());
    crew.members.remove(0);
    assert_eq!(after.directory.group("crew").unwrap().members, crew.members);
}
