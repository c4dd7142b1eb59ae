//! iq to the MUC service and its rooms: service discovery (XEP-0030, XEP-0045 §6) and
//! the archive (XEP-0313, `mam`). The rooms listed are those the user may see; a secret
//! room the user may not see answers like a missing one.

use crate::core::hub::RoomSummary;
use crate::core::model::{Privacy, RoomType};
use crate::xml::Element;
use crate::xmpp::c2s::C2s;
use crate::xmpp::errors::stanza_error;
use crate::xmpp::jid::Jid;
use crate::xmpp::muc::{self, admin, mam, owner};
use crate::xmpp::stanza::{
    self, ErrorType, NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MAM, NS_MUC, NS_OCCUPANT_ID,
    NS_PING, NS_SID, StanzaError,
};

pub fn iq(c2s: &mut C2s, iq: &Element, to: &Jid) {
    let Some(user) = c2s.user.clone() else {
        return;
    };
    let kind = iq.attr("type").unwrap_or_default();
    let Some(payload) = iq.children.first() else {
        return;
    };
    let what = (kind, payload.namespace.as_str(), payload.name.as_str());
    let core = c2s.shared.core.clone();
    let client = c2s.client();
    let muc_domain = c2s.shared.settings.muc_domain.clone();
    let answer = |payload: Option<Element>| stanza::iq_result(iq, &client, payload);
    let reply = match (&to.local, &to.resource, what) {
        (None, _, ("get", NS_DISCO_INFO, "query")) => {
            let mut query = Element::new("query")
                .with_namespace(NS_DISCO_INFO)
                .with_child(
                    Element::new("identity")
                        .with_attr("category", "conference")
                        .with_attr("type", "text")
                        .with_attr("name", "Rooms"),
                );
            for feature in [NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING] {
                query = query.with_child(Element::new("feature").with_attr("var", feature));
            }
            answer(Some(query))
        }
        (None, _, ("get", NS_DISCO_ITEMS, "query")) => match core.search(&user, "", false) {
            Ok(rooms) => {
                let mut query = Element::new("query").with_namespace(NS_DISCO_ITEMS);
                for summary in rooms {
                    query = query.with_child(
                        Element::new("item")
                            .with_attr("jid", muc::room_jid(&summary.room.uid, &muc_domain))
                            .with_attr("name", summary.room.name.clone()),
                    );
                }
                answer(Some(query))
            }
            Err(error) => return c2s.refuse(iq, &stanza_error(&error)),
        },
        (None, _, ("get", NS_PING, "ping")) => answer(None),
        // Configuration: of a room its managers may change, or a new room its creators make.
        (Some(uid), None, ("get" | "set", owner::NS_MUC_OWNER, "query")) => {
            return owner::query(c2s, iq, uid);
        }
        (Some(uid), None, what) => {
            let summary = match core.describe(&user, uid) {
                Ok(summary) => summary,
                Err(error) => return c2s.refuse(iq, &stanza_error(&error)),
            };
            match what {
                ("get", NS_DISCO_INFO, "query") => answer(Some(room_info(&summary))),
                // Occupants are not listed to outsiders (XEP-0045 §6.5); joining shows them.
                ("get", NS_DISCO_ITEMS, "query") => {
                    answer(Some(Element::new("query").with_namespace(NS_DISCO_ITEMS)))
                }
                ("get", NS_PING, "ping") => answer(None),
                ("get", NS_MAM, "query") => answer(Some(mam::form())),
                ("set", NS_MAM, "query") => return mam::query(c2s, iq, uid),
                ("get" | "set", admin::NS_MUC_ADMIN, "query") => return admin::query(c2s, iq, uid),
                _ => {
                    let refusal = StanzaError::new(ErrorType::Cancel, "feature-not-implemented");
                    return c2s.refuse(iq, &refusal);
                }
            }
        }
        _ => {
            let refusal = StanzaError::new(ErrorType::Cancel, "service-unavailable");
            return c2s.refuse(iq, &refusal);
        }
    };
    c2s.send(&reply);
}

/// disco#info of a room: XEP-0045's room features from Lync's properties, the archive,
/// and the room info form (description, occupants).
fn room_info(summary: &RoomSummary) -> Element {
    let room = &summary.room;
    let mut query = Element::new("query")
        .with_namespace(NS_DISCO_INFO)
        .with_child(
            Element::new("identity")
                .with_attr("category", "conference")
                .with_attr("type", "text")
                .with_attr("name", room.name.clone()),
        );
    let features = [
        NS_MUC,
        NS_DISCO_INFO,
        NS_MAM,
        NS_SID,
        NS_OCCUPANT_ID,
        "muc_persistent",
        "muc_nonanonymous",
        "muc_unsecured",
        if room.privacy == Privacy::Secret {
            "muc_hidden"
        } else {
            "muc_public"
        },
        if room.privacy == Privacy::Open {
            "muc_open"
        } else {
            "muc_membersonly"
        },
        if room.kind == RoomType::Auditorium {
            "muc_moderated"
        } else {
            "muc_unmoderated"
        },
    ];
    for feature in features {
        query = query.with_child(Element::new("feature").with_attr("var", feature));
    }
    let field = |var: &str, label: &str, value: String| {
        Element::new("field")
            .with_attr("var", var)
            .with_attr("label", label)
            .with_child(Element::new("value").with_text(value))
    };
    let form = Element::new("x")
        .with_namespace(NS_DATA)
        .with_attr("type", "result")
        .with_child(
            Element::new("field")
                .with_attr("var", "FORM_TYPE")
                .with_attr("type", "hidden")
                .with_child(
                    Element::new("value").with_text("http://jabber.org/protocol/muc#roominfo"),
                ),
        )
        .with_child(field(
            "muc#roominfo_description",
            "Description",
            room.description.clone(),
        ))
        .with_child(field(
            "muc#roominfo_occupants",
            "Number of occupants",
            summary.occupants.to_string(),
        ))
        .with_child(field("muc#roomconfig_roomname", "Name", room.name.clone()))
        .with_child(field(
            "x-perch#category",
            "Category",
            summary.category.name.clone(),
        ));
    query.with_child(form)
}
