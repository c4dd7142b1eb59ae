//! Lync's invitations (a member added to a room whose invitations are on) offered to XMPP
//! clients as XEP-0249 direct invitations when the user's stream binds. Each is offered
//! once per user: the newest id offered is kept with the user's client preferences.

use std::sync::Arc;

use crate::core::model::Room;
use crate::xml::Element;
use crate::xmpp::c2s::{Answer, C2s};
use crate::xmpp::muc;

const NS_CONFERENCE: &str = "jabber:x:conference";
/// The preference that remembers the newest invitation offered over XMPP.
const OFFERED: &str = "perch:xmpp-invitations-offered";

/// Looks up the invitations not offered yet, after a stream binds.
pub fn offer(c2s: &mut C2s) {
    let Some(user) = c2s.user.clone() else {
        return;
    };
    let core = c2s.shared.core.clone();
    c2s.defer(async move {
        let after = match core.preference(&user, OFFERED).await {
            Ok(Some((_, content))) => content.trim().parse().unwrap_or(0),
            _ => 0,
        };
        let invitations = core.invitations(&user, after).await.unwrap_or_default();
        if let Some(newest) = invitations.iter().map(|(id, _)| *id).max() {
            // Remembered whether or not the client acts on them: offered is offered.
            let _ = core
                .set_preference(&user, OFFERED, &newest.to_string())
                .await;
        }
        Answer::Invitations(invitations)
    });
}

/// `<message><x xmlns='jabber:x:conference' jid='room'/></message>` for each.
pub fn send(c2s: &mut C2s, invitations: &[(i64, Arc<Room>)]) {
    let muc_domain = c2s.shared.settings.muc_domain.clone();
    let client = c2s.client();
    for (id, room) in invitations {
        let jid = muc::room_jid(&room.uid, &muc_domain);
        let message = Element::new("message")
            .with_attr("from", jid.clone())
            .with_attr("to", client.clone())
            .with_attr("id", format!("invitation-{id}"))
            .with_child(
                Element::new("x")
                    .with_namespace(NS_CONFERENCE)
                    .with_attr("jid", jid)
                    .with_attr("reason", format!("You were added to {}", room.name)),
            );
        c2s.send(&message);
    }
}
