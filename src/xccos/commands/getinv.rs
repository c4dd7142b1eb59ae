//! `cmd:getinv`: invitations after the last one the client saw (`inv/@inviteId`). Each is
//! `<inv inviteId domain><chanib name description uri/></inv>`, oldest first.

use crate::xccos::envelope::{Command, ResultCode, reply};
use crate::xccos::uri::room_uri;
use crate::xccos::xml::Element;

use super::{Context, failure};

pub fn handle(ctx: &Context<'_>, command: &Command) -> Element {
    let after = command
        .data
        .child("inv")
        .and_then(|i| i.attr("inviteId"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    match ctx.core.invitations(ctx.user, after) {
        Ok(invitations) => {
            let mut data = Element::new("data");
            data.children = invitations
                .into_iter()
                .map(|(id, room)| {
                    Element::new("inv")
                        .with_attr("inviteId", id.to_string())
                        .with_attr("domain", ctx.domain)
                        .with_child(
                            Element::new("chanib")
                                .with_attr("name", room.name.clone())
                                .with_attr("description", room.description.clone())
                                .with_attr("uri", room_uri(ctx.domain, &room.uid)),
                        )
                })
                .collect();
            reply(command, ResultCode::Ok, data)
        }
        Err(error) => failure(command, &error),
    }
}
