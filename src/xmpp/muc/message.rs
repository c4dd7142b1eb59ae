//! A groupchat message to a room (XEP-0045 §7.4): a post through the core, durable before
//! anyone sees it; the sender hears it back from the hub like everyone else, with the
//! room's stanza-id and the origin-id it sent. Lync rooms have no private messages and
//! their subject is the description a manager sets, so both are refused.

use crate::core::hub::ChatError;
use crate::core::ids::Gateway;
use crate::core::ports::Extension;
use crate::xml::Element;
use crate::xmpp::c2s::{Answer, C2s};
use crate::xmpp::errors::stanza_error;
use crate::xmpp::jid::Jid;
use crate::xmpp::stanza::{ErrorType, NS_SID, StanzaError};

/// The longest origin-id kept with a post.
const MAX_ORIGIN_ID_BYTES: usize = 256;

pub fn handle(c2s: &mut C2s, message: Element, to: &Jid) {
    let (Some(user), Some(session), Some(uid)) =
        (c2s.user.clone(), c2s.session(), to.local.clone())
    else {
        return;
    };
    let kind = message.attr("type").unwrap_or("normal");
    if kind == "error" {
        return;
    }
    if to.resource.is_some() {
        let refusal = StanzaError::new(ErrorType::Cancel, "not-acceptable")
            .with_text("Lync rooms have no private messages");
        return c2s.refuse(&message, &refusal);
    }
    if kind != "groupchat" {
        let refusal = StanzaError::new(ErrorType::Modify, "bad-request")
            .with_text("messages to a room are of type groupchat");
        return c2s.refuse(&message, &refusal);
    }
    let body = message.child("body").map(|body| body.text.clone());
    let Some(body) = body else {
        if message.child("subject").is_some() {
            let refusal = StanzaError::new(ErrorType::Auth, "forbidden")
                .with_text("the subject is the room's description, which its managers set");
            c2s.refuse(&message, &refusal);
        }
        // Chat states and receipts without a body are not posts.
        return;
    };
    let extension = message
        .child_in("origin-id", NS_SID)
        .and_then(|origin| origin.attr("id"))
        .filter(|id| id.len() <= MAX_ORIGIN_ID_BYTES)
        .map(|id| Extension {
            gateway: Gateway::Xmpp,
            markup: Element::new("origin-id")
                .with_attr("xmlns", NS_SID)
                .with_attr("id", id)
                .to_xml(),
        });
    let core = c2s.shared.core.clone();
    match core.post(&user, &session, &uid, body, extension) {
        Ok(accepted) => c2s.defer(async move {
            let result = accepted.completed().await.map(|_| ());
            Answer::Posted {
                stanza: message,
                result,
            }
        }),
        Err(error) => c2s.refuse(&message, &stanza_error(&error)),
    }
}

/// A post the store refused goes back to its sender as an error.
pub fn posted(c2s: &mut C2s, stanza: &Element, result: Result<(), ChatError>) {
    if let Err(error) = result {
        c2s.refuse(stanza, &stanza_error(&error));
    }
}
