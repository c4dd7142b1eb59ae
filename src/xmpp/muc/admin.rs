//! Affiliation changes from a manager's client (XEP-0045 §9, §10: `muc#admin`): the
//! member and owner lists map onto the room's Lync members and managers, changed through
//! `core::service` for the signed-in user, so the same rules as `perch admin` and the room
//! page apply and `core::policy` decides who may. Groups and domains on the lists have no
//! JID and are not shown; `outcast` (banning) has no Lync counterpart.

use std::time::Duration;

use crate::core::Snapshot;
use crate::core::manage::{ListEdit, RoomChange};
use crate::core::model::Principal;
use crate::core::service::{self, Actor};
use crate::xml::Element;
use crate::xmpp::c2s::{Answer, C2s};
use crate::xmpp::errors::admin_error;
use crate::xmpp::jid::Jid;
use crate::xmpp::stanza::{self, ErrorType, StanzaError};

pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";

/// How long an answer waits for the running server to see the change, so that what the
/// manager does next (the new member joining) meets the new lists.
const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

/// The Lync list an affiliation stands for.
fn list_of(affiliation: &str) -> Option<&'static str> {
    match affiliation {
        "member" => Some("members"),
        "owner" | "admin" => Some("managers"),
        _ => None,
    }
}

pub fn query(c2s: &mut C2s, iq: &Element, uid: &str) {
    let Some(user) = c2s.user.clone() else {
        return;
    };
    let core = c2s.shared.core.clone();
    let snapshot = core.snapshot();
    let actor = Actor::User(user);
    let room = match service::room_to_manage(&snapshot, &actor, uid) {
        Ok(room) => room.clone(),
        Err(error) => return c2s.refuse(iq, &admin_error(&error)),
    };
    let Some(query) = iq.child_in("query", NS_MUC_ADMIN) else {
        return;
    };
    let items: Vec<&Element> = query.children.iter().filter(|c| c.name == "item").collect();
    if iq.attr("type") == Some("get") {
        let wanted = items.first().and_then(|item| item.attr("affiliation"));
        let Some(list) = wanted.and_then(list_of) else {
            let refusal = StanzaError::new(ErrorType::Modify, "bad-request")
                .with_text("ask for the member, admin or owner list");
            return c2s.refuse(iq, &refusal);
        };
        let (principals, affiliation) = match list {
            "members" => (&room.members, "member"),
            _ => (&room.managers, "owner"),
        };
        let mut answer = Element::new("query").with_namespace(NS_MUC_ADMIN);
        for principal in principals {
            if let Principal::User(aor) = principal {
                answer = answer.with_child(
                    Element::new("item")
                        .with_attr("affiliation", affiliation)
                        .with_attr("jid", aor.clone()),
                );
            }
        }
        let client = c2s.client();
        let reply = stanza::iq_result(iq, &client, Some(answer));
        return c2s.send(&reply);
    }
    let mut change = RoomChange::default();
    for item in items {
        let (Some(affiliation), Some(jid)) = (item.attr("affiliation"), item.attr("jid")) else {
            let refusal = StanzaError::new(ErrorType::Modify, "bad-request")
                .with_text("each item names a jid and an affiliation");
            return c2s.refuse(iq, &refusal);
        };
        let Ok(jid) = Jid::parse(jid) else {
            return c2s.refuse(iq, &StanzaError::new(ErrorType::Modify, "jid-malformed"));
        };
        let principal = Principal::User(jid.bare());
        match affiliation {
            "member" => change.members.push(ListEdit::Add(vec![principal])),
            "owner" | "admin" => change.managers.push(ListEdit::Add(vec![principal])),
            "none" => {
                change
                    .members
                    .push(ListEdit::Remove(vec![principal.clone()]));
                change
                    .managers
                    .push(ListEdit::Remove(vec![principal.clone()]));
                change.presenters.push(ListEdit::Remove(vec![principal]));
            }
            _ => {
                let refusal = StanzaError::new(ErrorType::Cancel, "not-allowed").with_text(
                    "Lync rooms have members and managers only; keep users out through the category",
                );
                return c2s.refuse(iq, &refusal);
            }
        }
    }
    save(c2s, iq, Some(&room.name), change);
}

/// Saves a room change for the signed-in manager through `core::service`, and answers
/// `iq` once the running server holds the change (or after a bound), so that what the
/// manager's client does next meets it.
/// `existing` is the room's name; `None` creates one, and the answer carries its address.
pub(super) fn save(c2s: &mut C2s, iq: &Element, existing: Option<&str>, change: RoomChange) {
    let Some(user) = c2s.user.clone() else {
        return;
    };
    let (store, core) = (c2s.shared.store.clone(), c2s.shared.core.clone());
    let muc = c2s.shared.settings.muc_domain.clone();
    let (iq, existing) = (iq.clone(), existing.map(str::to_owned));
    c2s.defer(async move {
        let result = tokio::task::spawn_blocking(move || {
            let snapshot = core.snapshot();
            let actor = Actor::User(user);
            let saved = service::save_room(
                store.as_ref(),
                &snapshot,
                &actor,
                existing.as_deref(),
                change,
            )?;
            let deadline = std::time::Instant::now() + VISIBLE_WITHIN;
            while std::time::Instant::now() < deadline && !holds(&core.snapshot(), &saved.room) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(saved
                .created
                .then(|| super::owner::created(&saved.room, &muc)))
        })
        .await
        .unwrap_or_else(|error| {
            Err(service::ServiceError::Invalid(format!(
                "the change could not run: {error}"
            )))
        });
        Answer::Administered { iq, result }
    });
}

/// Whether the server's model already holds the saved room.
fn holds(snapshot: &Snapshot, saved: &crate::core::model::Room) -> bool {
    snapshot
        .room_by_uid(&saved.uid)
        .is_some_and(|room| **room == *saved)
}

pub fn administered(
    c2s: &mut C2s,
    iq: &Element,
    result: Result<Option<Element>, service::ServiceError>,
) {
    match result {
        Ok(payload) => {
            let client = c2s.client();
            let reply = stanza::iq_result(iq, &client, payload);
            c2s.send(&reply);
        }
        Err(error) => c2s.refuse(iq, &admin_error(&error)),
    }
}
