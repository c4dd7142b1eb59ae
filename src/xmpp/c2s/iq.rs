//! iq stanzas of a signed-in stream (RFC 6120 §8.2.3): resource binding, the session
//! no-op, ping (XEP-0199), an empty roster, and service discovery (XEP-0030) of the server
//! itself; those addressed to the MUC service and its rooms go to `muc`.

use std::time::Instant;

use crate::xml::Element;
use crate::xmpp::c2s::C2s;
use crate::xmpp::jid::Jid;
use crate::xmpp::muc;
use crate::xmpp::stanza::{
    self, ErrorType, NS_BIND, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_ROSTER, NS_SESSION,
    StanzaError,
};

/// `<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`.
pub(super) fn is_bind(element: &Element) -> bool {
    element.name == "iq"
        && element.attr("type") == Some("set")
        && element.child_in("bind", NS_BIND).is_some()
}

/// Longest resource a client may ask for.
const MAX_RESOURCE_BYTES: usize = 256;

impl C2s {
    pub(super) fn iq(&mut self, iq: Element, _now: Instant) {
        let kind = iq.attr("type").unwrap_or_default().to_owned();
        if kind == "result" || kind == "error" {
            // Answers to nothing perch asked: dropped.
            return;
        }
        let (Some(payload), true) = (iq.children.first(), kind == "get" || kind == "set") else {
            let error = StanzaError::new(ErrorType::Modify, "bad-request")
                .with_text("an iq get or set carries exactly one payload");
            return self.refuse(&iq, &error);
        };
        let payload = (payload.namespace.clone(), payload.name.clone());
        if is_bind(&iq) {
            return self.bind(&iq);
        }
        let to = match iq.attr("to").map(Jid::parse).transpose() {
            Ok(to) => to,
            Err(_) => {
                let error = StanzaError::new(ErrorType::Modify, "jid-malformed");
                return self.refuse(&iq, &error);
            }
        };
        let settings = &self.shared.settings;
        let own = self.jid.as_ref().map(Jid::bare);
        match to {
            // The server, or the user's own account.
            None => self.server_iq(&iq, &kind, &payload),
            Some(to) if to.local.is_none() && to.domain == settings.domain => {
                self.server_iq(&iq, &kind, &payload)
            }
            Some(to) if to.resource.is_none() && Some(to.bare()) == own => {
                self.server_iq(&iq, &kind, &payload)
            }
            Some(to) if to.domain == settings.muc_domain => muc::disco::iq(self, &iq, &to),
            Some(_) => {
                let error = StanzaError::new(ErrorType::Cancel, "service-unavailable");
                self.refuse(&iq, &error);
            }
        }
    }

    fn server_iq(&mut self, iq: &Element, kind: &str, payload: &(String, String)) {
        let client = self.client();
        let reply = |payload: Option<Element>| stanza::iq_result(iq, &client, payload);
        let answer = match (kind, payload.0.as_str(), payload.1.as_str()) {
            ("set", NS_SESSION, "session") | ("get", NS_PING, "ping") => reply(None),
            ("get", NS_ROSTER, "query") => {
                // perch keeps no contact lists; rooms are found through the MUC service.
                reply(Some(Element::new("query").with_namespace(NS_ROSTER)))
            }
            ("get", NS_DISCO_INFO, "query") => {
                let mut query = Element::new("query")
                    .with_namespace(NS_DISCO_INFO)
                    .with_child(
                        Element::new("identity")
                            .with_attr("category", "server")
                            .with_attr("type", "im")
                            .with_attr("name", "perch"),
                    );
                for feature in [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING] {
                    query = query.with_child(Element::new("feature").with_attr("var", feature));
                }
                reply(Some(query))
            }
            ("get", NS_DISCO_ITEMS, "query") => {
                let item = Element::new("item")
                    .with_attr("jid", self.shared.settings.muc_domain.clone())
                    .with_attr("name", "Rooms");
                reply(Some(
                    Element::new("query")
                        .with_namespace(NS_DISCO_ITEMS)
                        .with_child(item),
                ))
            }
            _ => {
                let error = StanzaError::new(ErrorType::Cancel, "service-unavailable");
                return self.refuse(iq, &error);
            }
        };
        self.send(&answer);
    }

    /// Binds the resource the client asked for, or one of perch's making.
    fn bind(&mut self, iq: &Element) {
        if self.jid.is_some() {
            let error = StanzaError::new(ErrorType::Cancel, "not-allowed")
                .with_text("this stream is bound already");
            return self.refuse(iq, &error);
        }
        let Some(user) = self.user.clone() else {
            return;
        };
        let asked = iq
            .child_in("bind", NS_BIND)
            .and_then(|bind| bind.child("resource"))
            .map(|resource| resource.text.trim().to_owned())
            .filter(|resource| !resource.is_empty());
        let resource = match asked {
            Some(resource) if resource.len() > MAX_RESOURCE_BYTES => {
                let error = StanzaError::new(ErrorType::Modify, "bad-request")
                    .with_text("the resource is too long");
                return self.refuse(iq, &error);
            }
            Some(resource) => resource,
            None => format!("perch-{}", &crate::core::ids::new_room_uid()[..8]),
        };
        let jid = match Jid::parse(&format!("{user}/{resource}")) {
            Ok(jid) => jid,
            Err(_) => {
                let error = StanzaError::new(ErrorType::Modify, "bad-request")
                    .with_text("the resource is not valid");
                return self.refuse(iq, &error);
            }
        };
        let full = jid.to_string();
        tracing::info!(jid = %full, "XMPP resource bound");
        self.bind_to(jid);
        let bound = Element::new("bind")
            .with_namespace(NS_BIND)
            .with_child(Element::new("jid").with_text(full.clone()));
        let result = stanza::iq_result(iq, &full, Some(bound));
        self.send(&result);
        muc::invite::offer(self);
    }
}
