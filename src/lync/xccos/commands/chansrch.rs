//! `cmd:chansrch`: rooms the user may see, by name (and description when `extended`).

use crate::core::hub::RoomSummary;
use crate::core::model::Privacy;
use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::room_uri;
use crate::lync::xccos::xml::Element;

use super::{Context, failure};

pub fn handle(ctx: &Context<'_>, command: &Command) -> Element {
    let query = command.data.child("qib");
    let criteria = query.and_then(|q| q.attr("criteria")).unwrap_or("");
    let extended = query
        .and_then(|q| q.attr("extended"))
        .is_some_and(|e| e.eq_ignore_ascii_case("true"));
    match ctx.core.search(ctx.user, criteria, extended) {
        Ok(rooms) => {
            let mut data = Element::new("data");
            data.children = rooms.iter().map(|r| summary(ctx.domain, r)).collect();
            reply(command, ResultCode::Ok, data)
        }
        Err(error) => failure(command, &error),
    }
}

fn info(id: &str, value: impl Into<String>) -> Element {
    Element::new("info").with_attr("id", id).with_text(value)
}

fn prop(id: &str, value: bool) -> Element {
    Element::new("prop")
        .with_attr("id", id)
        .with_text(value.to_string())
}

/// A room as listed: name, description, URI, user count, visibility and flags.
pub fn summary(domain: &str, summary: &RoomSummary) -> Element {
    let room = &summary.room;
    let category = &summary.category;
    let visibility = match room.privacy {
        Privacy::Open => "public",
        Privacy::Closed => "scoped",
        Privacy::Secret => "private",
    };
    Element::new("chanib")
        .with_attr("name", room.name.clone())
        .with_attr("description", room.description.clone())
        .with_attr("uri", room_uri(domain, &room.uid))
        .with_child(info(
            "urn:parlano:ma:info:ucnt",
            summary.occupants.to_string(),
        ))
        // The spelling "visibilty" is the protocol's own.
        .with_child(info("urn:parlano:ma:info:visibilty", visibility))
        .with_child(prop("urn:parlano:ma:prop:filepost", category.file_upload))
        .with_child(prop(
            "urn:parlano:ma:prop:invite",
            crate::core::policy::invitations_effective(category, room),
        ))
        .with_child(prop("urn:parlano:ma:prop:logged", category.chat_history))
}
