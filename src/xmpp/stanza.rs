//! Namespaces and the shapes every handler answers with: iq results and stanza errors
//! (RFC 6120 §8.3), with `from` and `to` swapped from the request's.

use crate::xml::Element;

pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_SM: &str = "urn:xmpp:sm:3";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_MAM: &str = "urn:xmpp:mam:2";
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
pub const NS_DELAY: &str = "urn:xmpp:delay";
pub const NS_SID: &str = "urn:xmpp:sid:0";
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
pub const NS_DATA: &str = "jabber:x:data";

/// The error types of RFC 6120 §8.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Modify,
    Wait,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// A stanza error: its type, its defined condition and a human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub kind: ErrorType,
    pub condition: &'static str,
    pub text: Option<String>,
}

impl StanzaError {
    pub fn new(kind: ErrorType, condition: &'static str) -> Self {
        Self {
            kind,
            condition,
            text: None,
        }
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn element(&self) -> Element {
        let mut error = Element::new("error")
            .with_attr("type", self.kind.as_str())
            .with_child(Element::new(self.condition).with_namespace(NS_STANZAS));
        if let Some(text) = &self.text {
            error = error.with_child(
                Element::new("text")
                    .with_namespace(NS_STANZAS)
                    .with_text(text.clone()),
            );
        }
        error
    }
}

/// A reply of `name` (iq, message, presence) to `request`: its id, and `from`/`to`
/// swapped. A request that named no `to` was for the user's own account, and its answer
/// names no `from` (RFC 6120 §8.1.2.1): clients match answers by it.
pub fn reply_to(request: &Element, name: &str, client: &str) -> Element {
    let mut reply = Element::new(name);
    if let Some(id) = request.attr("id") {
        reply = reply.with_attr("id", id);
    }
    if let Some(to) = request.attr("to") {
        reply = reply.with_attr("from", to);
    }
    reply.with_attr("to", client)
}

/// `<iq type='result'>` for `iq`, with `payload` if any.
pub fn iq_result(iq: &Element, client: &str, payload: Option<Element>) -> Element {
    let mut result = reply_to(iq, "iq", client).with_attr("type", "result");
    if let Some(payload) = payload {
        result = result.with_child(payload);
    }
    result
}

/// The error reply to any stanza.
pub fn error_reply(request: &Element, client: &str, error: &StanzaError) -> Element {
    reply_to(request, &request.name, client)
        .with_attr("type", "error")
        .with_child(error.element())
}
