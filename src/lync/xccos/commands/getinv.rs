//! `cmd:getinv`: invitations after the last one the client saw (`inv/@inviteId`). Each is
//! `<inv inviteId domain><chanib name description uri/></inv>`, oldest first.

use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::room_uri;
use crate::lync::xccos::xml::Element;

use super::{Context, Reply, failure};

pub fn handle(ctx: &Context<'_>, command: &Command) -> Reply {
    let after = command
        .data
        .child("inv")
        .and_then(|i| i.attr("inviteId"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let (core, user) = (ctx.core.clone(), ctx.user.to_owned());
    let (domain, command) = (ctx.domain.to_owned(), command.clone());
    Reply::Later(Box::pin(async move {
        match core.invitations(&user, after).await {
            Ok(invitations) => {
                let mut data = Element::new("data");
                data.children = invitations
                    .into_iter()
                    .map(|(id, room)| {
                        Element::new("inv")
                            .with_attr("inviteId", id.to_string())
                            .with_attr("domain", domain.as_str())
                            .with_child(
                                Element::new("chanib")
                                    .with_attr("name", room.name.clone())
                                    .with_attr("description", room.description.clone())
                                    .with_attr("uri", room_uri(&domain, &room.uid)),
                            )
                    })
                    .collect();
                reply(&command, ResultCode::Ok, data)
            }
            Err(error) => failure(&command, &error),
        }
    }))
}
