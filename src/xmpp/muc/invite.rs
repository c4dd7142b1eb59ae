//! Lync's invitations (a member added to a room whose invitations are on) offered to XMPP
//! clients as XEP-0249 direct invitations: those made before a stream binds when it binds,
//! later ones as they are made (the hub's `Event::Invited`, rendered by the sink). The hub
//! records each as offered, so a user is offered each once.

use std::sync::Arc;

use crate::core::model::Room;
use crate::xml::Element;
use crate::xmpp::c2s::{Answer, C2s};
use crate::xmpp::muc;

const NS_CONFERENCE: &str = "jabber:x:conference";

/// After binding: the hub tells the stream of invitations as they are made from now on,
/// and answers with those not offered yet. Run on the stream's own task, so it registers
/// the stream before its end (`leave_all`) or not at all.
pub fn offer(c2s: &mut C2s) {
    let (Some(user), Some(session)) = (c2s.user.clone(), c2s.session()) else {
        return;
    };
    let core = c2s.shared.core.clone();
    c2s.defer(async move {
        let invitations = core.online(&user, &session).await.unwrap_or_default();
        Answer::Invitations(invitations)
    });
}

/// `<message><x xmlns='jabber:x:conference' jid='room' reason=…/></message>`, without `to`.
pub fn invitation(muc_domain: &str, id: i64, room: &Room) -> Element {
    let jid = muc::room_jid(&room.uid, muc_domain);
    Element::new("message")
        .with_attr("from", jid.clone())
        .with_attr("id", format!("invitation-{id}"))
        .with_child(
            Element::new("x")
                .with_namespace(NS_CONFERENCE)
                .with_attr("jid", jid)
                .with_attr("reason", format!("You were added to {}", room.name)),
        )
}

/// The invitations offered as a stream binds, each to the stream's JID.
pub fn send(c2s: &mut C2s, invitations: &[(i64, Arc<Room>)]) {
    let muc_domain = c2s.shared.settings.muc_domain.clone();
    let client = c2s.client();
    for (id, room) in invitations {
        let message = invitation(&muc_domain, *id, room).with_attr("to", client.clone());
        c2s.send(&message);
    }
}
