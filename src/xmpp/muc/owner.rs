//! Room configuration from a manager's client (XEP-0045 §10.2, `muc#owner`): the form
//! shows the Lync properties a manager may change (name, description, who may enter,
//! who may speak), and a submitted form becomes a room change through `core::service` for
//! that user, under the same rules as `perch admin` and the room page. A category's
//! creators create rooms with the same form sent to an address that names no room (a field
//! names the category; the room gets its own uid). Rooms are not destroyed here: an
//! administrator removes them.

use crate::core::Snapshot;
use crate::core::manage::{ListEdit, ManageError, RoomChange};
use crate::core::model::{Category, Principal, Privacy, Room, RoomType};
use crate::core::policy;
use crate::core::service::{self, Actor, ServiceError};
use crate::xml::Element;
use crate::xmpp::c2s::C2s;
use crate::xmpp::errors::admin_error;
use crate::xmpp::stanza::{self, ErrorType, NS_DATA, StanzaError};

pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const FORM_TYPE: &str = "http://jabber.org/protocol/muc#roomconfig";
/// The field that names a room's category.
const CATEGORY: &str = "x-perch#category";

fn field(var: &str, kind: &str, label: &str, value: &str) -> Element {
    Element::new("field")
        .with_attr("var", var)
        .with_attr("type", kind)
        .with_attr("label", label)
        .with_child(Element::new("value").with_text(value))
}

fn boolean(value: bool) -> &'static str {
    if value { "1" } else { "0" }
}

/// The configuration form of `room`, filled with its properties.
fn form(room: &Room, category: &str) -> Element {
    Element::new("x")
        .with_namespace(NS_DATA)
        .with_attr("type", "form")
        .with_child(Element::new("title").with_text(format!("Configuration of {}", room.name)))
        .with_child(field("FORM_TYPE", "hidden", "", FORM_TYPE))
        .with_child(field(
            "muc#roomconfig_roomname",
            "text-single",
            "Name",
            &room.name,
        ))
        .with_child(field(
            "muc#roomconfig_roomdesc",
            "text-single",
            "Description (the subject)",
            &room.description,
        ))
        .with_child(field(
            "muc#roomconfig_membersonly",
            "boolean",
            "Members only (Lync: closed or secret)",
            boolean(room.privacy != Privacy::Open),
        ))
        .with_child(field(
            "muc#roomconfig_publicroom",
            "boolean",
            "Listed to non-members (Lync: not secret)",
            boolean(room.privacy != Privacy::Secret),
        ))
        .with_child(field(
            "muc#roomconfig_moderatedroom",
            "boolean",
            "Only presenters speak (Lync: auditorium)",
            boolean(room.kind == RoomType::Auditorium),
        ))
        .with_child(field(
            "muc#roomconfig_persistentroom",
            "fixed",
            "Persistent (always)",
            "1",
        ))
        .with_child(field(CATEGORY, "fixed", "Category", category))
}

/// The submitted form's value for `var`.
fn value<'a>(form: &'a Element, var: &str) -> Option<&'a str> {
    form.children
        .iter()
        .find(|f| f.name == "field" && f.attr("var") == Some(var))?
        .child("value")
        .map(|v| v.text.as_str())
}

fn truth(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The change a submitted form asks for, against the room as it is.
fn change_of(room: &Room, submitted: &Element) -> Result<RoomChange, StanzaError> {
    let flag = |var| match value(submitted, var) {
        None => Ok(None),
        Some(text) => truth(text).map(Some).ok_or_else(|| {
            StanzaError::new(ErrorType::Modify, "not-acceptable")
                .with_text(format!("{var}: {text:?} is not a boolean"))
        }),
    };
    let members_only = flag("muc#roomconfig_membersonly")?.unwrap_or(room.privacy != Privacy::Open);
    let public = flag("muc#roomconfig_publicroom")?.unwrap_or(room.privacy != Privacy::Secret);
    let privacy = match (members_only, public) {
        (false, true) => Privacy::Open,
        (true, true) => Privacy::Closed,
        (true, false) => Privacy::Secret,
        (false, false) => {
            return Err(StanzaError::new(ErrorType::Modify, "not-acceptable")
                .with_text("a room open to all is listed to all (Lync has no hidden open room)"));
        }
    };
    let kind = match flag("muc#roomconfig_moderatedroom")? {
        Some(true) => RoomType::Auditorium,
        Some(false) => RoomType::Normal,
        None => room.kind,
    };
    let name = value(submitted, "muc#roomconfig_roomname")
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != room.name)
        .map(str::to_owned);
    Ok(RoomChange {
        name,
        description: value(submitted, "muc#roomconfig_roomdesc").map(str::to_owned),
        privacy: Some(privacy),
        kind: Some(kind),
        ..RoomChange::default()
    })
}

pub fn query(c2s: &mut C2s, iq: &Element, uid: &str) {
    let Some(user) = c2s.user.clone() else {
        return;
    };
    let snapshot = c2s.shared.core.snapshot();
    let actor = Actor::User(user);
    let Some(query) = iq.child_in("query", NS_MUC_OWNER) else {
        return;
    };
    let room = match service::room_to_manage(&snapshot, &actor, uid) {
        Ok(room) => room.clone(),
        // No such room (or one the user may not know of): a creator may create one.
        Err(ServiceError::Manage(ManageError::NotFound(_))) => {
            return create(c2s, iq, query, &snapshot, &actor);
        }
        Err(error) => return c2s.refuse(iq, &admin_error(&error)),
    };
    let client = c2s.client();
    if iq.attr("type") == Some("get") {
        let category = snapshot
            .category(room.category)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let answer = Element::new("query")
            .with_namespace(NS_MUC_OWNER)
            .with_child(form(&room, &category));
        return c2s.send(&stanza::iq_result(iq, &client, Some(answer)));
    }
    if query.child("destroy").is_some() {
        let refusal = StanzaError::new(ErrorType::Cancel, "not-allowed")
            .with_text("rooms are removed by an administrator (perch admin room remove)");
        return c2s.refuse(iq, &refusal);
    }
    let Some(submitted) = query.child_in("x", NS_DATA) else {
        return c2s.refuse(iq, &StanzaError::new(ErrorType::Modify, "bad-request"));
    };
    if submitted.attr("type") == Some("cancel") {
        return c2s.send(&stanza::iq_result(iq, &client, None));
    }
    let change = match change_of(&room, submitted) {
        Ok(change) => change,
        Err(refusal) => return c2s.refuse(iq, &refusal),
    };
    super::admin::save(c2s, iq, Some(&room.name), change);
}

/// The form a category's creators fill to create a room: a new room is closed and
/// normal, as Lync makes one, in one of the categories where they may create.
fn creation_form(categories: &[&Category]) -> Element {
    let mut category = Element::new("field")
        .with_attr("var", CATEGORY)
        .with_attr("type", "list-single")
        .with_attr("label", "Category");
    for option in categories {
        category = category.with_child(
            Element::new("option")
                .with_attr("label", option.name.clone())
                .with_child(Element::new("value").with_text(option.name.clone())),
        );
    }
    let blank = Room::new("", "", 0);
    let mut form = form(&blank, "");
    form.children.retain(|f| {
        !matches!(
            f.attr("var"),
            Some(CATEGORY | "muc#roomconfig_persistentroom")
        )
    });
    if let Some(title) = form.children.iter_mut().find(|c| c.name == "title") {
        title.text = "A new room".to_owned();
    }
    form.with_child(category)
}

/// Creation through the configuration form: only a category's creators, only in their
/// categories; the room gets its own uid, which the answer names.
fn create(c2s: &mut C2s, iq: &Element, query: &Element, snapshot: &Snapshot, actor: &Actor) {
    let Actor::User(user) = actor else {
        return;
    };
    let categories: Vec<&Category> = snapshot
        .categories()
        .into_iter()
        .filter(|category| policy::may_create_in(snapshot, user, category))
        .collect();
    if categories.is_empty() {
        // As a missing room answers anyone who may not create one.
        return c2s.refuse(iq, &StanzaError::new(ErrorType::Cancel, "item-not-found"));
    }
    let client = c2s.client();
    if iq.attr("type") == Some("get") {
        let answer = Element::new("query")
            .with_namespace(NS_MUC_OWNER)
            .with_child(creation_form(&categories));
        return c2s.send(&stanza::iq_result(iq, &client, Some(answer)));
    }
    let Some(submitted) = query.child_in("x", NS_DATA) else {
        return c2s.refuse(iq, &StanzaError::new(ErrorType::Modify, "bad-request"));
    };
    let blank = Room::new("", "", 0);
    let mut change = match change_of(&blank, submitted) {
        Ok(change) => change,
        Err(refusal) => return c2s.refuse(iq, &refusal),
    };
    let Some(category) = value(submitted, CATEGORY)
        .map(str::trim)
        .filter(|c| !c.is_empty())
    else {
        let refusal = StanzaError::new(ErrorType::Modify, "not-acceptable")
            .with_text("a new room needs a category");
        return c2s.refuse(iq, &refusal);
    };
    if change.name.is_none() {
        let refusal = StanzaError::new(ErrorType::Modify, "not-acceptable")
            .with_text("a new room needs a name");
        return c2s.refuse(iq, &refusal);
    }
    change.category = Some(category.to_owned());
    // The creator manages what they create, as on the room page.
    change.managers = vec![ListEdit::Add(vec![Principal::User(user.clone())])];
    super::admin::save(c2s, iq, None, change);
}

/// The answer to a creation: the new room's address.
pub(super) fn created(room: &Room, muc: &str) -> Element {
    Element::new("query")
        .with_namespace(NS_MUC_OWNER)
        .with_child(
            Element::new("x")
                .with_namespace(NS_DATA)
                .with_attr("type", "result")
                .with_child(field(
                    "x-perch#jid",
                    "jid-single",
                    "Address",
                    &super::room_jid(&room.uid, muc),
                )),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted(fields: &[(&str, &str)]) -> Element {
        let mut form = Element::new("x").with_attr("type", "submit");
        for (var, value) in fields {
            form = form.with_child(
                Element::new("field")
                    .with_attr("var", *var)
                    .with_child(Element::new("value").with_text(*value)),
            );
        }
        form
    }

    #[test]
    fn a_form_becomes_lync_properties() {
        let room = Room::new("u", "Lobby", 1);
        let secret = change_of(
            &room,
            &submitted(&[
                ("muc#roomconfig_membersonly", "1"),
                ("muc#roomconfig_publicroom", "0"),
                ("muc#roomconfig_moderatedroom", "true"),
                ("muc#roomconfig_roomname", "Hall"),
            ]),
        )
        .unwrap();
        assert_eq!(secret.privacy, Some(Privacy::Secret));
        assert_eq!(secret.kind, Some(RoomType::Auditorium));
        assert_eq!(secret.name.as_deref(), Some("Hall"));
        let open = change_of(&room, &submitted(&[("muc#roomconfig_membersonly", "0")])).unwrap();
        assert_eq!(open.privacy, Some(Privacy::Open));
        assert_eq!(open.name, None, "a name not given is kept");
        let hidden_open = change_of(
            &room,
            &submitted(&[
                ("muc#roomconfig_membersonly", "0"),
                ("muc#roomconfig_publicroom", "0"),
            ]),
        );
        assert_eq!(hidden_open.unwrap_err().condition, "not-acceptable");
        let nonsense = change_of(
            &room,
            &submitted(&[("muc#roomconfig_moderatedroom", "maybe")]),
        );
        assert_eq!(nonsense.unwrap_err().condition, "not-acceptable");
    }
}
