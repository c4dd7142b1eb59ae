//! Lync's rooms as XEP-0045 rooms of the MUC service (`conference.<domain>`).
//!
//! - **Addresses.** A room is `<uid>@<muc service>`: the uid is the stable part of its
//!   `ma-chan://` URI, so the address survives renames and moves; the room's name is its
//!   disco name.
//! - **Nicks.** An occupant's nick is their user name (`alice` for `alice@<domain>`, the
//!   whole address for other domains), on XMPP and Lync alike: Lync has no nicks, and one
//!   name per person keeps both sides' rosters the same. A client asking for another nick
//!   is told of the change (status 210).
//! - **Affiliations and roles** follow the user's Lync roles ([`standing`]).
//!
//! The handlers (join and leave, messages, archive, disco) ask the core for every
//! decision; this module only renders.

pub mod admin;
pub mod disco;
pub mod invite;
pub mod mam;
pub mod message;
pub mod owner;
pub mod presence;

use sha2::{Digest as _, Sha256};

use crate::core::ids::{Gateway, rfc3339_from_ticks};
use crate::core::model::{Room, RoomType};
use crate::core::policy::Roles;
use crate::core::ports::ChatMessage;
use crate::xml::Element;
use crate::xmpp::stanza::{NS_DELAY, NS_MUC_USER, NS_OCCUPANT_ID, NS_SID};

/// The room's address at the MUC service.
pub fn room_jid(uid: &str, muc: &str) -> String {
    format!("{uid}@{muc}")
}

/// The nick of `aor` in every room.
pub fn nick(aor: &str, domain: &str) -> String {
    match aor.split_once('@') {
        Some((local, user_domain)) if user_domain == domain => local.to_owned(),
        _ => aor.to_owned(),
    }
}

/// An occupant's affiliation and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub affiliation: &'static str,
    pub role: &'static str,
}

/// Lync's roles as XEP-0045's: managers own the room and moderate it; members (and
/// presenters) are members; others in an open room have no affiliation. In an auditorium
/// only presenters have voice, everyone else is a visitor.
pub fn standing(room: &Room, roles: Roles) -> Standing {
    let affiliation = if roles.manager {
        "owner"
    } else if roles.member {
        "member"
    } else {
        "none"
    };
    let role = if roles.manager {
        "moderator"
    } else if room.kind == RoomType::Auditorium && !roles.presenter {
        "visitor"
    } else {
        "participant"
    };
    Standing { affiliation, role }
}

/// XEP-0421: the same opaque id for the same user in the same room, whatever their
/// nick, session or protocol.
pub fn occupant_id(room_uid: &str, aor: &str) -> String {
    let digest = Sha256::digest(format!("{room_uid}\0{aor}").as_bytes());
    hex::encode(&digest[..12])
}

/// An occupant's presence, sent from `<room>/<nick>` to `to` (`None`: addressed per
/// recipient later). Rooms are not anonymous:
/// the item carries the occupant's real JID.
#[allow(clippy::too_many_arguments)]
pub fn occupant_presence(
    room_uid: &str,
    muc: &str,
    domain: &str,
    aor: &str,
    standing: Standing,
    to: Option<&str>,
    available: bool,
    statuses: &[u16],
) -> Element {
    let from = format!("{}/{}", room_jid(room_uid, muc), nick(aor, domain));
    let mut presence = Element::new("presence").with_attr("from", from);
    if let Some(to) = to {
        presence = presence.with_attr("to", to);
    }
    let mut item = Element::new("item")
        .with_attr("affiliation", standing.affiliation)
        .with_attr("jid", aor);
    if available {
        item = item.with_attr("role", standing.role);
    } else {
        presence = presence.with_attr("type", "unavailable");
        item = item.with_attr("role", "none");
    }
    let mut x = Element::new("x")
        .with_namespace(NS_MUC_USER)
        .with_child(item);
    for code in statuses {
        x = x.with_child(Element::new("status").with_attr("code", code.to_string()));
    }
    presence.with_child(x).with_child(
        Element::new("occupant-id")
            .with_namespace(NS_OCCUPANT_ID)
            .with_attr("id", occupant_id(room_uid, aor)),
    )
}

/// A room message as occupants see it: from `<room>/<author's nick>`, the stored id as
/// the room's stanza-id (XEP-0359; the same number as XCCOS's `msgid`), the author's
/// occupant id, and what an XMPP sender attached that perch keeps (its origin-id).
pub fn groupchat(
    room_uid: &str,
    muc: &str,
    domain: &str,
    message: &ChatMessage,
    to: Option<&str>,
) -> Element {
    let room = room_jid(room_uid, muc);
    let mut stanza = Element::new("message")
        .with_attr("from", format!("{room}/{}", nick(&message.author, domain)))
        .with_attr("type", "groupchat");
    if let Some(to) = to {
        stanza = stanza.with_attr("to", to);
    }
    if message.id > 0 {
        stanza = stanza.with_attr("id", message.id.to_string());
    }
    stanza = stanza.with_child(Element::new("body").with_text(message.text.clone()));
    if message.id > 0 {
        stanza = stanza.with_child(
            Element::new("stanza-id")
                .with_namespace(NS_SID)
                .with_attr("id", message.id.to_string())
                .with_attr("by", room.clone()),
        );
    }
    stanza = stanza.with_child(
        Element::new("occupant-id")
            .with_namespace(NS_OCCUPANT_ID)
            .with_attr("id", occupant_id(room_uid, &message.author)),
    );
    if let Some(extension) = &message.extension
        && extension.gateway == Gateway::Xmpp
    {
        stanza.verbatim = extension.markup.clone();
    }
    stanza
}

/// XEP-0203: when the room received it.
pub fn delay(ticks: i64, by: &str) -> Element {
    Element::new("delay")
        .with_namespace(NS_DELAY)
        .with_attr("from", by)
        .with_attr("stamp", rfc3339_from_ticks(ticks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Privacy;

    fn room(kind: RoomType) -> Room {
        Room {
            kind,
            privacy: Privacy::Open,
            ..Room::new("u1", "Stage", 1)
        }
    }

    #[test]
    fn lync_roles_become_affiliations_and_roles() {
        let role = |manager, member, presenter, kind| {
            let s = standing(
                &room(kind),
                Roles {
                    manager,
                    member,
                    presenter,
                },
            );
            (s.affiliation, s.role)
        };
        use RoomType::{Auditorium, Normal};
        assert_eq!(role(true, true, false, Normal), ("owner", "moderator"));
        assert_eq!(role(false, true, false, Normal), ("member", "participant"));
        assert_eq!(role(false, false, false, Normal), ("none", "participant"));
        assert_eq!(
            role(false, true, true, Auditorium),
            ("member", "participant")
        );
        assert_eq!(role(false, true, false, Auditorium), ("member", "visitor"));
        assert_eq!(role(false, false, false, Auditorium), ("none", "visitor"));
    }

    #[test]
    fn nicks_are_user_names_and_occupant_ids_are_stable() {
        assert_eq!(nick("alice@example.test", "example.test"), "alice");
        assert_eq!(nick("bob@other.test", "example.test"), "bob@other.test");
        assert_eq!(occupant_id("u1", "alice@x"), occupant_id("u1", "alice@x"));
        assert_ne!(occupant_id("u1", "alice@x"), occupant_id("u2", "alice@x"));
        assert_eq!(occupant_id("u1", "alice@x").len(), 24);
    }
}
