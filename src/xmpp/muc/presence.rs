//! Joining and leaving a room (XEP-0045 §7.2, §7.14): presence to `<room>/<nick>`.
//! The hub decides who may enter and tells the others; this renders the roster, the
//! joiner's own presence, the history the client asked for, and the subject.

use std::sync::Arc;

use crate::core::ids::{now_ticks, ticks_from_rfc3339};
use crate::core::model::Room;
use crate::core::policy;
use crate::xml::Element;
use crate::xmpp::c2s::{Answer, C2s, HistoryResult};
use crate::xmpp::errors::stanza_error;
use crate::xmpp::jid::Jid;
use crate::xmpp::muc::{self, nick};
use crate::xmpp::stanza::{NS_MUC, StanzaError};

/// XEP-0045 status codes of the joiner's own presence.
const STATUS_NON_ANONYMOUS: u16 = 100;
const STATUS_SELF: u16 = 110;
const STATUS_LOGGED: u16 = 170;
const STATUS_NICK_ASSIGNED: u16 = 210;

/// What `<history/>` asked for (XEP-0045 §7.2.15); `None`: no limit of that kind.
#[derive(Debug, Clone, Default)]
pub struct HistoryRequest {
    pub max_stanzas: Option<u32>,
    pub max_chars: Option<usize>,
    /// Only messages at or after this time (100 ns ticks): `seconds` or `since`.
    pub since: Option<i64>,
}

impl HistoryRequest {
    fn parse(join: Option<&Element>) -> HistoryRequest {
        let Some(history) = join.and_then(|x| x.child("history")) else {
            return HistoryRequest::default();
        };
        let number = |name| {
            history
                .attr(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let since = history
            .attr("since")
            .and_then(|text| ticks_from_rfc3339(text).ok());
        let seconds = number("seconds").map(|s| {
            now_ticks().saturating_sub(
                i64::try_from(s)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(10_000_000),
            )
        });
        HistoryRequest {
            max_stanzas: number("maxstanzas").map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            max_chars: number("maxchars").map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            since: since.max(seconds),
        }
    }

    fn none_wanted(&self) -> bool {
        self.max_stanzas == Some(0) || self.max_chars == Some(0)
    }
}

pub fn handle(c2s: &mut C2s, presence: &Element, to: &Jid) {
    let (Some(user), Some(session), Some(uid)) =
        (c2s.user.clone(), c2s.session(), to.local.clone())
    else {
        return;
    };
    let core = c2s.shared.core.clone();
    let settings = c2s.shared.settings.clone();
    let client = c2s.client();
    match presence.attr("type") {
        None => {}
        Some("unavailable") => {
            if core.is_present(&session, &uid) {
                // The others hear of it from the hub; the leaver gets its own presence back.
                if core.part(&user, &session, &uid).is_ok() {
                    let gone = muc::occupant_presence(
                        &uid,
                        &settings.muc_domain,
                        &settings.domain,
                        &user,
                        muc::Standing {
                            affiliation: "none",
                            role: "none",
                        },
                        Some(&client),
                        false,
                        &[STATUS_SELF],
                    );
                    c2s.send(&gone);
                }
            }
            return;
        }
        // Errors, probes and subscriptions mean nothing to a room.
        Some(_) => return,
    }
    if core.is_present(&session, &uid) {
        // A status change while in the room: Lync rooms carry no occupant status.
        return;
    }
    let joined = match core.join(&user, &session, &uid) {
        Ok(joined) => joined,
        Err(error) => {
            let refusal: StanzaError = stanza_error(&error);
            return c2s.refuse(presence, &refusal);
        }
    };
    let room = joined.room.clone();
    for participant in joined.participants.iter().filter(|p| p.user != user) {
        let standing = muc::standing(&room, participant.roles);
        let present = muc::occupant_presence(
            &uid,
            &settings.muc_domain,
            &settings.domain,
            &participant.user,
            standing,
            Some(&client),
            true,
            &[],
        );
        c2s.send(&present);
    }
    let mut statuses = vec![STATUS_NON_ANONYMOUS, STATUS_SELF];
    let snapshot = core.snapshot();
    if snapshot
        .category(room.category)
        .is_some_and(policy::keeps_history)
    {
        statuses.push(STATUS_LOGGED);
    }
    let own_nick = nick(&user, &settings.domain);
    if to.resource.as_deref() != Some(own_nick.as_str()) {
        statuses.push(STATUS_NICK_ASSIGNED);
    }
    let own = muc::occupant_presence(
        &uid,
        &settings.muc_domain,
        &settings.domain,
        &user,
        muc::standing(&room, joined.roles),
        Some(&client),
        true,
        &statuses,
    );
    c2s.send(&own);
    let request = HistoryRequest::parse(presence.child_in("x", NS_MUC));
    if request.none_wanted() {
        return subject(c2s, &room);
    }
    let default = u32::from(snapshot.settings.default_chat_history);
    let count = request
        .max_stanzas
        .map_or(default, |n| n.min(default.max(1)));
    // Up to the join: posts published since reach the session live.
    let query = joined.history(count);
    c2s.hold_deliveries();
    c2s.defer(async move {
        let result = core.history(&user, &uid, query).await;
        Answer::JoinHistory {
            room_uid: uid,
            request,
            result,
        }
    });
}

/// The history of a join, newest last with their delays, then the subject that ends it.
pub fn history(c2s: &mut C2s, room_uid: &str, request: &HistoryRequest, result: HistoryResult) {
    let settings = c2s.shared.settings.clone();
    let client = c2s.client();
    let room = match result {
        Ok((room, messages)) => {
            let room_jid = muc::room_jid(room_uid, &settings.muc_domain);
            let mut kept: Vec<Element> = Vec::new();
            let mut chars = 0usize;
            for message in messages.iter().rev() {
                if request.since.is_some_and(|since| message.ts < since) {
                    break;
                }
                let mut stanza = muc::groupchat(
                    room_uid,
                    &settings.muc_domain,
                    &settings.domain,
                    message,
                    Some(&client),
                );
                stanza = stanza.with_child(muc::delay(message.ts, &room_jid));
                chars += stanza.to_xml().chars().count();
                if request.max_chars.is_some_and(|max| chars > max) {
                    break;
                }
                kept.push(stanza);
            }
            for stanza in kept.iter().rev() {
                c2s.send(stanza);
            }
            room
        }
        // History that cannot be read now is left out; the join itself stands.
        Err(error) => {
            tracing::info!(%error, room = room_uid, "XMPP join without history");
            match c2s.shared.core.snapshot().room_by_uid(room_uid) {
                Some(room) => room.clone(),
                None => return,
            }
        }
    };
    subject(c2s, &room);
}

/// The subject (the room's description) ends the join (XEP-0045 §7.2.16).
fn subject(c2s: &mut C2s, room: &Arc<Room>) {
    let settings = &c2s.shared.settings;
    let message = Element::new("message")
        .with_attr("from", muc::room_jid(&room.uid, &settings.muc_domain))
        .with_attr("to", c2s.client())
        .with_attr("type", "groupchat")
        .with_child(Element::new("subject").with_text(room.description.clone()));
    c2s.send(&message);
}
