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

use crate::core::chat::{ChatCore, ChatError, SessionKey};
use crate::core::policy::Denial;

use super::envelope::{Command, ResultCode, reply};
use super::xml::Element;

/// Who is asking, on which dialog.
pub struct Context<'a> {
    pub core: &'a ChatCore,
    pub user: &'a str,
    pub session: &'a SessionKey,
    pub domain: &'a str,
    pub chat_uri: &'a str,
    /// Rooms one bjoin may name.
    pub max_bjoin: usize,
}

/// A notice for other sessions: serialised once and delivered to each of them.
pub struct Notice {
    pub to: Vec<SessionKey>,
    pub element: Element,
}

/// A reply now, or once a store write has committed.
pub enum Reply {
    Now(Element),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Element> + Send>>),
}

pub struct Outcome {
    pub reply: Reply,
    pub notices: Vec<Notice>,
}

impl Outcome {
    pub fn reply(reply: Element) -> Self {
        Self {
            reply: Reply::Now(reply),
            notices: Vec::new(),
        }
    }

    pub fn with_notices(reply: Element, notices: Vec<Notice>) -> Self {
        Self {
            reply: Reply::Now(reply),
            notices,
        }
    }
}

/// The room a command names in `data/chanib/@uri`, if it is one of this server's URIs.
pub fn chanib_room<'a>(ctx: &Context<'_>, command: &'a Command) -> Option<&'a str> {
    let uri = command.data.child("chanib")?.attr("uri")?;
    super::uri::room_uid(uri, ctx.domain)
}

/// The one mapping from chat-core failures to XCCOS result codes.
pub fn result_code(error: &ChatError) -> ResultCode {
    match error {
        ChatError::Denied(Denial::NotFound) => ResultCode::NotFound,
        ChatError::Denied(_) => ResultCode::Forbidden,
        ChatError::Invalid(_) | ChatError::TooLarge { .. } => ResultCode::BadRequest,
        ChatError::Store(_) => ResultCode::ServerError,
    }
}

/// An error reply with empty data; the reason goes in the log, the code to the client.
pub fn failure(command: &Command, error: &ChatError) -> Element {
    tracing::debug!(command = %command.name, %error, "command refused");
    reply(command, result_code(error), Element::new("data"))
}

/// Commands whose answer may need a disk read (history, invitations, preferences).
pub fn reads_store(command: &Command) -> bool {
    matches!(command.name.as_str(), "bccontext" | "getinv" | "getpref")
}

pub fn dispatch(ctx: &Context<'_>, command: &Command) -> Outcome {
    match command.name.as_str() {
        "requri" => Outcome::reply(requri::handle(command, ctx.chat_uri)),
        "getserverinfo" => Outcome::reply(getserverinfo::handle(ctx, command)),
        "chansrch" => Outcome::reply(chansrch::handle(ctx, command)),
        "join" => join::join(ctx, command),
        "bjoin" => join::bjoin(ctx, command),
        "part" => part::handle(ctx, command),
        "bccontext" => Outcome::reply(bccontext::handle(ctx, command)),
        "getinv" => Outcome::reply(getinv::handle(ctx, command)),
        "getassoc" | "getassociations" => Outcome::reply(getassoc::handle(ctx, command)),
        "getpref" => Outcome::reply(pref::get(ctx, command)),
        "setpref" => Outcome {
            reply: pref::set(ctx, command),
            notices: Vec::new(),
        },
        _ => Outcome::reply(reply(
            command,
            ResultCode::NotImplemented,
            Element::new("data"),
        )),
    }
}
