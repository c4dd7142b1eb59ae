//! `grpchat`: a post (xccos-protocol.md §2.5.7). Checked by the core, made durable, then
//! serialised once and delivered to every session in the room, the sender included.

use crate::core::hub::{AcceptedPost, ChatError};
use crate::core::ids::Gateway;
use crate::core::policy::Denial;
use crate::core::ports::{ChatMessage, Extension};
use crate::lync::xccos::uri::{room_uid, room_uri, timestamp, user_uri};
use crate::lync::xccos::xml::Element;

use super::Context;

/// Elements that carry XCCOS's own meaning (a post, a history entry, a command and its
/// data): a post's other parts may not contain them, or a reader could be shown a nested
/// post under someone else's name.
const RESERVED: &[&str] = &[
    "grpchat", "msg", "cmd", "rpl", "ntc", "chat", "chanib", "data",
];

/// Checks a post and starts its store write. The text is the first `chat` child; other
/// children (a rich-text alternative, say) are kept as this gateway's extension parts,
/// re-serialised from the parsed tree, and those holding reserved elements are dropped.
pub fn accept(ctx: &Context<'_>, post: Element) -> Result<AcceptedPost, ChatError> {
    let uri = post.attr("chanUri").unwrap_or_default();
    let uid = room_uid(uri, ctx.domain).ok_or(ChatError::Denied(Denial::NotFound))?;
    let mut text = None;
    let mut markup = String::new();
    for child in &post.children {
        if child.name == "chat" && text.is_none() {
            text = Some(child.text.clone());
        } else if holds_reserved(child) {
            tracing::debug!(user = ctx.user, element = %child.name, "post part with XCCOS elements dropped");
        } else {
            child.write(&mut markup);
        }
    }
    let text = text.ok_or_else(|| ChatError::Invalid("grpchat without a chat element".into()))?;
    let extension = (!markup.is_empty()).then_some(Extension {
        gateway: Gateway::Lync,
        markup,
    });
    ctx.core.post(ctx.user, ctx.session, uid, text, extension)
}

fn holds_reserved(element: &Element) -> bool {
    RESERVED.contains(&element.name.as_str()) || element.children.iter().any(holds_reserved)
}

/// A message as `grpchat` (fan-out) or `msg` (history): `msgid` is the server's id.
pub fn message_element(name: &str, domain: &str, room_uid: &str, message: &ChatMessage) -> Element {
    let mut element = Element::new(name)
        .with_attr("id", "grpchat")
        .with_attr("seqid", "1")
        .with_attr("chanUri", room_uri(domain, room_uid))
        .with_attr("author", user_uri(&message.author))
        .with_attr("ts", timestamp(message.ts));
    if message.id > 0 {
        element = element.with_attr("msgid", message.id.to_string());
    }
    element = element.with_child(Element::new("chat").with_text(message.text.clone()));
    // Only parts that came in through this gateway, which validated them then.
    if let Some(extension) = &message.extension
        && extension.gateway == Gateway::Lync
    {
        element.verbatim = extension.markup.clone();
    }
    element
}
