//! The room's archive (XEP-0313 `urn:xmpp:mam:2`, paged with XEP-0059): the messages
//! XCCOS's `bccontext` reads, with the same ids, in the same order, filtered by `start`,

use crate::core::ids::ticks_from_rfc3339;
use crate::core::ports::{HistoryQuery, HistoryRange};
use crate::xml::Element;
use crate::xmpp::c2s::{Answer, C2s, HistoryResult};
use crate::xmpp::errors::stanza_error;
use crate::xmpp::jid::Jid;
use crate::xmpp::muc;
use crate::xmpp::stanza::{self, ErrorType, NS_DATA, NS_FORWARD, NS_MAM, NS_RSM, StanzaError};
use crate::xmpp::stream::JABBER_CLIENT;

/// The page size when the client names none, and the largest it may ask for.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 250;
const FULLTEXT: &str = "{urn:xmpp:fulltext:0}fulltext";

/// What one query asked for, kept for its answer.
#[derive(Debug, Clone)]
pub struct ArchiveQuery {
    pub queryid: Option<String>,
    pub room_uid: String,
    pub max: u32,
}

/// The search form a client may fill (XEP-0313 §5.1).
pub fn form() -> Element {
    let field = |var: &str, kind: &str| {
        Element::new("field")
            .with_attr("var", var)
            .with_attr("type", kind)
    };
    Element::new("query").with_namespace(NS_MAM).with_child(
        Element::new("x")
            .with_namespace(NS_DATA)
            .with_attr("type", "form")
            .with_child(
                field("FORM_TYPE", "hidden").with_child(Element::new("value").with_text(NS_MAM)),
            )
            .with_child(field("start", "text-single"))
            .with_child(field("end", "text-single"))
            .with_child(field("with", "jid-single"))
            .with_child(field(FULLTEXT, "text-single")),
    )
}

/// The values of the submitted form's fields, by `var`.
fn form_value<'a>(query: &'a Element, var: &str) -> Option<&'a str> {
    query
        .child_in("x", NS_DATA)?
        .children
        .iter()
        .find(|field| field.name == "field" && field.attr("var") == Some(var))?
        .child("value")
        .map(|value| value.text.as_str())
}

pub fn query(c2s: &mut C2s, iq: &Element, room_uid: &str) {
    let Some(user) = c2s.user.clone() else {
        return;
    };
    let Some(query) = iq.child_in("query", NS_MAM) else {
        return;
    };
    let set = query.child_in("set", NS_RSM);
    let text = |name| {
        set.and_then(|set| set.child(name))
            .map(|e| e.text.trim().to_owned())
    };
    let max = text("max")
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let field = |var| {
        form_value(query, var)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let history = match filters(
        &c2s.shared.settings.domain,
        field("start"),
        field("end"),
        field("with"),
    ) {
        Err(refusal) => return c2s.refuse(iq, &refusal),
        Ok(range) => {
            // A full-text search is one more filter: it pages and combines like the others.
            let words: Vec<String> = field(FULLTEXT)
                .map(|words| words.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            let range = HistoryRange {
                words,
                count: max,
                ..range
            };
            match (text("after"), text("before")) {
                (Some(after), _) if !after.is_empty() => match after.parse::<i64>() {
                    Ok(after) => HistoryQuery::Range(HistoryRange { after, ..range }),
                    Err(_) => return c2s.refuse(iq, &not_an_id()),
                },
                // `<before/>`: the last page.
                (_, Some(before)) if before.is_empty() => HistoryQuery::Range(HistoryRange {
                    newest: true,
                    ..range
                }),
                (_, Some(before)) => match before.parse::<i64>() {
                    Ok(before) => HistoryQuery::Range(HistoryRange {
                        before,
                        newest: true,
                        ..range
                    }),
                    Err(_) => return c2s.refuse(iq, &not_an_id()),
                },
                // No paging asked: from the beginning, oldest first (XEP-0313 §4.1).
                (_, None) => HistoryQuery::Range(range),
            }
        }
    };
    let archive = ArchiveQuery {
        queryid: query.attr("queryid").map(str::to_owned),
        room_uid: room_uid.to_owned(),
        max,
    };
    let core = c2s.shared.core.clone();
    let (iq, uid) = (iq.clone(), room_uid.to_owned());
    c2s.defer(async move {
        let result = core.history(&user, &uid, history).await;
        Answer::Archive {
            iq,
            query: archive,
            result,
        }
    });
}

/// The form's `start`, `end` (XEP-0082 times) and `with` (an occupant `room/nick`, or a
/// user's JID) as a range over the whole archive.
fn filters(
    domain: &str,
    start: Option<&str>,
    end: Option<&str>,
    with: Option<&str>,
) -> Result<HistoryRange, StanzaError> {
    let time = |text: &str| {
        ticks_from_rfc3339(text).map_err(|_| {
            StanzaError::new(ErrorType::Modify, "bad-request")
                .with_text(format!("{text:?} is not a time like 2024-05-01T12:00:00Z"))
        })
    };
    let mut range = HistoryRange::all(DEFAULT_PAGE);
    if let Some(start) = start {
        range.since = time(start)?;
    }
    if let Some(end) = end {
        range.until = time(end)?;
    }
    if let Some(with) = with {
        let jid =
            Jid::parse(with).map_err(|_| StanzaError::new(ErrorType::Modify, "jid-malformed"))?;
        // A room occupant is its nick, which is the user's name in perch's domain.
        range.author = Some(match (&jid.local, &jid.resource) {
            (Some(_), Some(nick)) if nick.contains('@') => nick.to_lowercase(),
            (Some(_), Some(nick)) if jid.domain != domain => {
                format!("{}@{domain}", nick.to_lowercase())
            }
            _ => jid.bare(),
        });
    }
    Ok(range)
}

fn not_an_id() -> StanzaError {
    StanzaError::new(ErrorType::Cancel, "item-not-found").with_text("no message with that id")
}

/// Each message forwarded in a `<result/>`, then the `<fin/>` that closes the page.
pub fn answer(c2s: &mut C2s, iq: &Element, query: &ArchiveQuery, result: HistoryResult) {
    let (_room, messages) = match result {
        Ok(found) => found,
        Err(error) => return c2s.refuse(iq, &stanza_error(&error)),
    };
    let settings = c2s.shared.settings.clone();
    let client = c2s.client();
    let room_jid = muc::room_jid(&query.room_uid, &settings.muc_domain);
    for message in &messages {
        let original = muc::groupchat(
            &query.room_uid,
            &settings.muc_domain,
            &settings.domain,
            message,
            None,
        );
        let mut result = Element::new("result")
            .with_namespace(NS_MAM)
            .with_attr("id", message.id.to_string());
        if let Some(queryid) = &query.queryid {
            result = result.with_attr("queryid", queryid.clone());
        }
        let forwarded = Element::new("forwarded")
            .with_namespace(NS_FORWARD)
            .with_child(muc::delay(message.ts, &room_jid))
            .with_child(original.with_namespace(JABBER_CLIENT));
        let wrapper = Element::new("message")
            .with_attr("from", room_jid.clone())
            .with_attr("to", client.clone())
            .with_child(result.with_child(forwarded));
        c2s.send(&wrapper);
    }
    let mut set = Element::new("set").with_namespace(NS_RSM);
    if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
        set = set
            .with_child(Element::new("first").with_text(first.id.to_string()))
            .with_child(Element::new("last").with_text(last.id.to_string()));
    }
    let complete = (messages.len() as u64) < u64::from(query.max);
    let mut fin = Element::new("fin").with_namespace(NS_MAM).with_child(set);
    if complete {
        fin = fin.with_attr("complete", "true");
    }
    let reply = stanza::iq_result(iq, &client, Some(fin));
    c2s.send(&reply);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_filters_become_a_range() {
        let range = filters(
            "example.test",
            Some("2024-05-01T00:00:00Z"),
            Some("2024-05-02T00:00:00Z"),
            Some("room@conference.example.test/bob"),
        )
        .unwrap();
        assert_eq!(
            range.since,
            ticks_from_rfc3339("2024-05-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            range.until,
            ticks_from_rfc3339("2024-05-02T00:00:00Z").unwrap()
        );
        assert_eq!(range.author.as_deref(), Some("bob@example.test"));
        let user = filters("example.test", None, None, Some("Bob@Example.Test/phone")).unwrap();
        assert_eq!(user.author.as_deref(), Some("bob@example.test"));
        let foreign = filters(
            "example.test",
            None,
            None,
            Some("r@conference.example.test/x@other.test"),
        )
        .unwrap();
        assert_eq!(foreign.author.as_deref(), Some("x@other.test"));
        assert_eq!(
            filters("example.test", None, None, None).unwrap(),
            HistoryRange::all(DEFAULT_PAGE)
        );
        let bad = filters("example.test", Some("yesterday"), None, None).unwrap_err();
        assert_eq!(bad.condition, "bad-request");
    }
}
