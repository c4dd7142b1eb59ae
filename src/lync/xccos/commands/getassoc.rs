//! `cmd:getassoc` / `cmd:getassociations`: rooms where the user is a member, or with
//! `<assoc role="manager"/>` a manager. One `chanib` per room.

use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::room_uri;
use crate::lync::xccos::xml::Element;

use super::Context;

pub fn handle(ctx: &Context<'_>, command: &Command) -> Element {
    let managed = command
        .data
        .child("assoc")
        .and_then(|a| a.attr("role"))
        .is_some_and(|r| r.eq_ignore_ascii_case("manager"));
    let mut data = Element::new("data");
    data.children = ctx
        .core
        .associations(ctx.user, managed)
        .into_iter()
        .map(|room| {
            Element::new("chanib")
                .with_attr("name", room.name.clone())
                .with_attr("description", room.description.clone())
                .with_attr("uri", room_uri(ctx.domain, &room.uid))
        })
        .collect();
    reply(command, ResultCode::Ok, data)
}
