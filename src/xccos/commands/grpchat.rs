//! `grpchat`: a post (xccos-protocol.md §2.5.7). Checked by the core, made durable, then
//! serialised once and delivered to every session in the room, the sender included.

use crate::core::chat::{AcceptedPost, ChatError};
use crate::core::policy::Denial;
use crate::store::StoredMessage;
use crate::xccos::uri::{room_uid, room_uri, timestamp, user_uri};
use crate::xccos::xml::Element;

use super::Context;

/// Checks a post and starts its store write. The text is the `chat` child; any other
/// child is kept verbatim and forwarded with it.
pub fn accept(ctx: &Context<'_>, post: Element) -> Result<AcceptedPost, ChatError> {
    let uri = post.attr("chanUri").unwrap_or_default();
    let uid = room_uid(uri, ctx.domain).ok_or(ChatError::Denied(Denial::NotFound))?;
    let mut body = None;
    let mut extra = String::new();
    for child in &post.children {
        if child.name == "chat" && body.is_none() {
            body = Some(child.text.clone());
        } else {
            child.write(&mut extra);
        }
    }
    let body = body.ok_or_else(|| ChatError::Invalid("grpchat without a chat element".into()))?;
    ctx.core.post(ctx.user, ctx.session, uid, body, extra)
}

/// A message as `grpchat` (fan-out) or `msg` (history): `msgid` is the server's id.
pub fn message_element(
    name: &str,
    domain: &str,
    room_uid: &str,
    message: &StoredMessage,
) -> Element {
    let mut element = Element::new(name)
        .with_attr("id", "grpchat")
        .with_attr("seqid", "1")
        .with_attr("chanUri", room_uri(domain, room_uid))
        .with_attr("author", user_uri(&message.author))
        .with_attr("ts", timestamp(message.ts));
    if message.id > 0 {
        element = element.with_attr("msgid", message.id.to_string());
    }
    element = element.with_child(Element::new("chat").with_text(message.body.clone()));
    element.verbatim = message.extra.clone();
    element
}
