//! One file per XCCOS command. Each reads its `data` block, asks the chat core, and
//! builds the reply; notices for other sessions travel back in [`Outcome`].

pub mod bccontext;
pub mod chansrch;
pub mod getassoc;
pub mod getinv;
pub mod getserverinfo;
pub mod grpchat;
pub mod join;
pub mod part;
pub mod pref;
pub mod requri;

use std::sync::Arc;

use crate::core::hub::{ChatCore, ChatError};
use crate::core::ids::SessionRef;

use super::envelope::{Command, ResultCode, reply};
use super::errors::result_code;
use super::xml::Element;

/// Who is asking, on which dialog.
pub struct Context<'a> {
    pub core: &'a Arc<ChatCore>,
    pub user: &'a str,
    pub session: &'a SessionRef,
    pub domain: &'a str,
    pub chat_uri: &'a str,
    /// Rooms one bjoin may name.
    pub max_bjoin: usize,
}

/// A reply now, or once the hub has read or written the store. Notices for others are
/// the hub's events, rendered by the endpoint.
pub enum Reply {
    Now(Element),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Element> + Send>>),
}

/// The room a command names in `data/chanib/@uri`, if it is one of this server's URIs.
pub fn chanib_room<'a>(ctx: &Context<'_>, command: &'a Command) -> Option<&'a str> {
    let uri = command.data.child("chanib")?.attr("uri")?;
    super::uri::room_uid(uri, ctx.domain)
}

/// An error reply with empty data; the reason goes in the log, the code to the client.
pub fn failure(command: &Command, error: &ChatError) -> Element {
    tracing::debug!(command = %command.name, %error, "command refused");
    reply(command, result_code(error), Element::new("data"))
}

pub fn dispatch(ctx: &Context<'_>, command: &Command) -> Reply {
    let now = match command.name.as_str() {
        "requri" => requri::handle(command, ctx.chat_uri),
        "getserverinfo" => getserverinfo::handle(ctx, command),
        "chansrch" => chansrch::handle(ctx, command),
        "join" => join::join(ctx, command),
        "bjoin" => join::bjoin(ctx, command),
        "part" => part::handle(ctx, command),
        "bccontext" => return bccontext::handle(ctx, command),
        "getinv" => return getinv::handle(ctx, command),
        "getassoc" | "getassociations" => getassoc::handle(ctx, command),
        "getpref" => return pref::get(ctx, command),
        "setpref" => return pref::set(ctx, command),
        _ => reply(command, ResultCode::NotImplemented, Element::new("data")),
    };
    Reply::Now(now)
}
