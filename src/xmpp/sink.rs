//! The hub's events as XMPP stanzas for the XMPP sessions in a room: each event is
//! rendered once, then addressed to each recipient's full JID (the session's stream).

use std::sync::Arc;

use bytes::Bytes;

use crate::core::hub::{Event, EventSink};
use crate::core::ids::SessionRef;
use crate::net::outbox::Outboxes;
use crate::xml::Element;
use crate::xmpp::XmppSettings;
use crate::xmpp::muc::{self, Standing};
use crate::xmpp::stream::render_built;

/// XEP-0045 status 321: removed from the room because of an affiliation change (perch:
/// an administrator's change took the user's access, or disabled the room).
const STATUS_REMOVED: u16 = 321;
const STATUS_SELF: u16 = 110;

pub struct XmppSink {
    outboxes: Arc<Outboxes<Bytes>>,
    domain: String,
    muc: String,
}

impl XmppSink {
    pub fn new(outboxes: Arc<Outboxes<Bytes>>, settings: &XmppSettings) -> Self {
        Self {
            outboxes,
            domain: settings.domain.clone(),
            muc: settings.muc_domain.clone(),
        }
    }

    /// Renders `stanza` (without `to`) once, then queues it to each session with its `to`.
    fn send_each(&self, stanza: &Element, to: &[SessionRef]) {
        let mut head = String::new();
        // `to` goes last among the attributes, so one rendering splits at the start tag's
        // name: everything after the element name is shared.
        render_built(&mut head, stanza);
        let name_end = 1 + stanza.name.len();
        let (start, rest) = head.split_at(name_end);
        let deliveries = to.iter().map(|session| {
            let mut to = String::with_capacity(session.stream.len());
            crate::xml::escape_attribute_into(&session.stream, &mut to);
            let bytes = Bytes::from(format!("{start} to=\"{to}\"{rest}"));
            (session.connection, bytes)
        });
        self.outboxes.deliver_all(deliveries);
    }
}

impl EventSink for XmppSink {
    fn deliver(&self, event: &Event, to: &[SessionRef]) {
        match event {
            Event::Posted { room, message } => {
                let stanza = muc::groupchat(&room.uid, &self.muc, &self.domain, message, None);
                self.send_each(&stanza, to);
            }
            Event::Joined { room, user, roles } => {
                let standing = muc::standing(room, *roles);
                let presence = self.presence(&room.uid, user, standing, true, &[]);
                self.send_each(&presence, to);
            }
            Event::Left { room, user } => {
                let presence = self.presence(&room.uid, user, LEFT, false, &[]);
                self.send_each(&presence, to);
            }
            Event::Evicted {
                room,
                user,
                session,
            } => {
                let (own, others): (Vec<SessionRef>, Vec<SessionRef>) =
                    to.iter().cloned().partition(|s| s == session);
                let told =
                    self.presence(&room.uid, user, LEFT, false, &[STATUS_SELF, STATUS_REMOVED]);
                self.send_each(&told, &own);
                let seen = self.presence(&room.uid, user, LEFT, false, &[STATUS_REMOVED]);
                self.send_each(&seen, &others);
            }
            Event::Invited { room, id, .. } => {
                self.send_each(&muc::invite::invitation(&self.muc, *id, room), to);
            }
        }
    }
}

/// Who leaves has no affiliation to show in the unavailable presence.
const LEFT: Standing = Standing {
    affiliation: "none",
    role: "none",
};

impl XmppSink {
    fn presence(
        &self,
        room_uid: &str,
        user: &str,
        standing: Standing,
        available: bool,
        statuses: &[u16],
    ) -> Element {
        // `to` is set per recipient by send_each.
        muc::occupant_presence(
            room_uid,
            &self.muc,
            &self.domain,
            user,
            standing,
            None,
            available,
            statuses,
        )
    }
}
