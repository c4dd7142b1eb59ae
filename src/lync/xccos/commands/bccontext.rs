//! `cmd:bccontext`: room history (xccos-protocol.md §2.5.6). `<bcq>` holds one of
//! `<last cnt>`, `<before msgid cnt>`, `<after msgid cnt>` or `<search cnt>words</search>`;
//! the count defaults to DefaultChatHistory and is kept within 1–500. Oldest first.

use crate::core::hub::ChatError;
use crate::core::policy::Denial;
use crate::core::ports::HistoryQuery;
use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::room_uri;
use crate::lync::xccos::xml::Element;

use super::grpchat::message_element;
use super::{Context, Reply, chanib_room, failure};

const MAX_COUNT: u32 = 500;

fn query(bcq: Option<&Element>, default: u32) -> Result<HistoryQuery, ChatError> {
    let Some(form) = bcq.and_then(|b| b.children.first()) else {
        return Ok(HistoryQuery::Last(default));
    };
    let count = match form.attr("cnt") {
        Some(text) => text
            .trim()
            .parse::<u32>()
            .map_err(|_| ChatError::Invalid(format!("cnt {text:?} is not a number")))?
            .clamp(1, MAX_COUNT),
        None => default,
    };
    let id = || {
        form.attr("msgid")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| ChatError::Invalid("msgid is missing or not a number".into()))
    };
    Ok(match form.name.as_str() {
        "last" => HistoryQuery::Last(count),
        "before" => HistoryQuery::Before { id: id()?, count },
        "after" => HistoryQuery::After { id: id()?, count },
        "search" => HistoryQuery::Search {
            words: form.text.split_whitespace().map(str::to_owned).collect(),
            count,
        },
        other => {
            return Err(ChatError::Invalid(format!(
                "unknown history query <{other}>"
            )));
        }
    })
}

/// Not bounded by the join's [`crate::core::hub::Joined::history_until`] as XMPP's join
/// history is: XCCOS ties no `bccontext` to a join, so a `last` read after posts reached
/// the session live holds them too (SIPE asks right after the join, a round trip later).
pub fn handle(ctx: &Context<'_>, command: &Command) -> Reply {
    let Some(uid) = chanib_room(ctx, command) else {
        return Reply::Now(failure(command, &ChatError::Denied(Denial::NotFound)));
    };
    let default = u32::from(ctx.core.snapshot().settings.default_chat_history);
    let query = match query(command.data.child("bcq"), default) {
        Ok(query) => query,
        Err(error) => return Reply::Now(failure(command, &error)),
    };
    let (core, user, uid) = (ctx.core.clone(), ctx.user.to_owned(), uid.to_owned());
    let (domain, command) = (ctx.domain.to_owned(), command.clone());
    Reply::Later(Box::pin(async move {
        match core.history(&user, &uid, query).await {
            Ok((room, messages)) => {
                let mut chanib =
                    Element::new("chanib").with_attr("uri", room_uri(&domain, &room.uid));
                chanib.children = messages
                    .iter()
                    .map(|m| message_element("msg", &domain, &room.uid, m))
                    .collect();
                reply(
                    &command,
                    ResultCode::Ok,
                    Element::new("data").with_child(chanib),
                )
            }
            Err(error) => failure(&command, &error),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcq(xml: &str) -> Element {
        crate::lync::xccos::xml::parse(xml.as_bytes(), &Default::default()).unwrap()
    }

    #[test]
    fn query_forms() {
        assert_eq!(query(None, 30).unwrap(), HistoryQuery::Last(30));
        assert_eq!(
            query(Some(&bcq(r#"<bcq><last cnt="25"/></bcq>"#)), 30).unwrap(),
            HistoryQuery::Last(25)
        );
        assert_eq!(
            query(Some(&bcq(r#"<bcq><last cnt="9999"/></bcq>"#)), 30).unwrap(),
            HistoryQuery::Last(500)
        );
        assert_eq!(
            query(Some(&bcq(r#"<bcq><last cnt="0"/></bcq>"#)), 30).unwrap(),
            HistoryQuery::Last(1)
        );
        assert_eq!(
            query(Some(&bcq(r#"<bcq><before msgid="7" cnt="2"/></bcq>"#)), 30).unwrap(),
            HistoryQuery::Before { id: 7, count: 2 }
        );
        assert_eq!(
            query(Some(&bcq(r#"<bcq><search>a  b</search></bcq>"#)), 30).unwrap(),
            HistoryQuery::Search {
                words: vec!["a".into(), "b".into()],
                count: 30
            }
        );
        assert!(query(Some(&bcq(r#"<bcq><before cnt="2"/></bcq>"#)), 30).is_err());
        assert!(query(Some(&bcq(r#"<bcq><last cnt="x"/></bcq>"#)), 30).is_err());
        assert!(query(Some(&bcq(r#"<bcq><sideways/></bcq>"#)), 30).is_err());
    }
}
