//! `cmd:part`: leave a room. SIPE forgets the room only on a 200 carrying `chanib/@uri`.

use crate::core::chat::{ChatError, Left};
use crate::core::policy::{self, Denial};
use crate::xccos::envelope::{Command, ResultCode, reply};
use crate::xccos::uri::{room_uri, user_uri};
use crate::xccos::xml::Element;

use super::{Context, Notice, Outcome, chanib_room, failure};

pub fn handle(ctx: &Context<'_>, command: &Command) -> Outcome {
    let Some(uid) = chanib_room(ctx, command) else {
        return Outcome::reply(failure(command, &ChatError::Denied(Denial::NotFound)));
    };
    match ctx.core.part(ctx.user, ctx.session, uid) {
        // The core lets anyone leave any room; one the user may not know about must
        // answer as a missing one does (the session is out of it either way).
        Ok(left) if !policy::may_know(&ctx.core.snapshot(), ctx.user, &left.room) => {
            Outcome::with_notices(
                failure(command, &ChatError::Denied(Denial::NotFound)),
                vec![part_notice(ctx.domain, &left)],
            )
        }
        Ok(left) => {
            let data = Element::new("data").with_child(
                Element::new("chanib").with_attr("uri", room_uri(ctx.domain, &left.room.uid)),
            );
            Outcome::with_notices(
                reply(command, ResultCode::Ok, data),
                vec![part_notice(ctx.domain, &left)],
            )
        }
        Err(error) => Outcome::reply(failure(command, &error)),
    }
}

/// `ntc:part`: `left.user` is no longer in `left.room`.
pub fn part_notice(domain: &str, left: &Left) -> Notice {
    let chanib = Element::new("chanib")
        .with_attr("uri", room_uri(domain, &left.room.uid))
        .with_child(Element::new("uib").with_attr("uri", user_uri(&left.user)));
    Notice {
        to: left.notify.clone(),
        element: Element::new("ntc")
            .with_attr("id", "ntc:part")
            .with_attr("seqid", "1")
            .with_child(Element::new("data").with_child(chanib)),
    }
}
