//! `cmd:part`: leave a room. SIPE forgets the room only on a 200 carrying `chanib/@uri`.

use crate::core::hub::ChatError;
use crate::core::policy::{self, Denial};
use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::{room_uri, user_uri};
use crate::lync::xccos::xml::Element;

use super::{Context, chanib_room, failure};

pub fn handle(ctx: &Context<'_>, command: &Command) -> Element {
    let Some(uid) = chanib_room(ctx, command) else {
        return failure(command, &ChatError::Denied(Denial::NotFound));
    };
    match ctx.core.part(ctx.user, ctx.session, uid) {
        // A room the user may no longer know of answers as a missing one would.
        Ok(room) if !policy::may_know(&ctx.core.snapshot(), ctx.user, &room) => {
            failure(command, &ChatError::Denied(Denial::NotFound))
        }
        Ok(room) => {
            let data = Element::new("data").with_child(
                Element::new("chanib").with_attr("uri", room_uri(ctx.domain, &room.uid)),
            );
            reply(command, ResultCode::Ok, data)
        }
        Err(error) => failure(command, &error),
    }
}

/// What a session taken out of a room by an administrative change gets: an unprompted
/// `rpl:part` 200 naming the room, the one message on which SIPE drops the room (an
/// `ntc:part` is only a roster update to it, and it would then refuse to rejoin).
pub fn removed_from_room(domain: &str, room_uid: &str) -> Element {
    Element::new("rpl")
        .with_attr("id", "rpl:part")
        .with_attr("seqid", "1")
        .with_child(
            Element::new("resp")
                .with_attr("code", "200")
                .with_text("SUCCESS_OK"),
        )
        .with_child(
            Element::new("data")
                .with_child(Element::new("chanib").with_attr("uri", room_uri(domain, room_uid))),
        )
}

/// `ntc:part` for those still in a room.
pub fn part_notice(domain: &str, room_uid: &str, user: &str) -> Element {
    let chanib = Element::new("chanib")
        .with_attr("uri", room_uri(domain, room_uid))
        .with_child(Element::new("uib").with_attr("uri", user_uri(user)));
    Element::new("ntc")
        .with_attr("id", "ntc:part")
        .with_attr("seqid", "1")
        .with_child(Element::new("data").with_child(chanib))
}
