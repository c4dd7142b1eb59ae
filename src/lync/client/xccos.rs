//! The XCCOS a client writes (bjoin, chansrch, grpchat, bccontext) and readings of what it
//! gets back. The readings a client makes of every message ([`classify`], [`history_page`])
//! go by substring, not by parsing: a load client receives every post of its rooms, and a
//! full XML parse per delivery would make the load generator, not the server, the
//! bottleneck on a small machine. [`posts`] and [`rooms_found`], for checks that look at a
//! few messages, parse with the server's own XML reader.

use std::fmt::Write as _;

use crate::lync::xccos::xml::{self, Element, XmlLimits};

const NS: &str = "urn:parlano:xml:ns:xccos";

pub fn bjoin(envid: u64, domain: &str, uids: &[String]) -> String {
    let mut body = format!(
        r#"<xccos ver="1" envid="{envid}" xmlns="{NS}"><cmd id="cmd:bjoin" seqid="1"><data>"#
    );
    for (key, uid) in uids.iter().enumerate() {
        let _ = write!(
            body,
            r#"<chanid key="{key}" domain="{domain}" value="{uid}"/>"#
        );
    }
    body.push_str("</data></cmd></xccos>");
    body
}

pub use crate::lync::xccos::uri::{ROOM_SCHEME, room_uid, room_uri};

/// A post of `text` (written as it is: the caller escapes what needs it) by `author`.
pub fn grpchat(envid: u64, room_uri: &str, author: &str, text: &str) -> String {
    format!(
        r#"<xccos ver="1" envid="{envid}" xmlns="{NS}"><grpchat id="grpchat" seqid="1" chanUri="{room_uri}" author="sip:{author}"><chat>{text}</chat></grpchat></xccos>"#
    )
}

/// `cmd:chansrch` for the rooms whose name contains `criteria` (SIPE's room list).
pub fn chansrch(envid: u64, criteria: &str) -> String {
    format!(
        r#"<xccos ver="1" envid="{envid}" xmlns="{NS}"><cmd id="cmd:chansrch" seqid="1"><data><qib qtype="BYNAME" criteria="{}" extended="false"/></data></cmd></xccos>"#,
        escape(criteria)
    )
}

/// A history query: the child of `<bcq>` in a `cmd:bccontext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bcq {
    /// The room's last `cnt` messages.
    Last { cnt: u32 },
    /// The `cnt` messages before message `msgid`.
    Before { msgid: i64, cnt: u32 },
    /// The newest `cnt` messages containing all the words of `text`.
    Search { text: String, cnt: u32 },
}

/// `cmd:bccontext` for room `uid`, as SIPE sends it after a join, with any query form.
pub fn bccontext(envid: u64, domain: &str, uid: &str, query: &Bcq) -> String {
    let uri = room_uri(domain, uid);
    let form = match query {
        Bcq::Last { cnt } => format!(r#"<last cnt="{cnt}"/>"#),
        Bcq::Before { msgid, cnt } => format!(r#"<before msgid="{msgid}" cnt="{cnt}"/>"#),
        Bcq::Search { text, cnt } => format!(r#"<search cnt="{cnt}">{}</search>"#, escape(text)),
    };
    format!(
        r#"<xccos ver="1" envid="{envid}" xmlns="{NS}"><cmd id="cmd:bccontext" seqid="1"><data><chanib uri="{uri}"/><bcq>{form}</bcq></data></cmd></xccos>"#
    )
}

/// `text` with `&`, `<` and `>` escaped, for element text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    xml::escape_into(text, &mut out);
    out
}

/// What an `rpl:bccontext` carried: its messages (`msg` in the first `chanib`), oldest
/// first, and the ids of the first and last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: usize,
    pub oldest_msgid: Option<i64>,
    pub newest_msgid: Option<i64>,
}

/// The messages of an `rpl:bccontext`, or `None` for any other body. Message text is
/// escaped in XML, so `<msg ` can only start an element.
pub fn history_page(body: &[u8]) -> Option<HistoryPage> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("rpl:bccontext") {
        return None;
    }
    let msgid = |at: Option<usize>| {
        at.and_then(|at| attribute(&text[at..], "msgid"))
            .and_then(|v| v.parse::<i64>().ok())
    };
    Some(HistoryPage {
        messages: text.matches("<msg ").count(),
        oldest_msgid: msgid(text.find("<msg ")),
        newest_msgid: msgid(text.rfind("<msg ")),
    })
}

/// What a server INFO carried, at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A post delivered to a room we are in (ours included).
    Post,
    /// The answer to one of our commands: perch's `rpl:*` (or the null responder's echo of
    /// the command itself).
    Reply {
        envid: u64,
        code: Option<String>,
        /// Rooms entered (`chanib` in an rpl:bjoin, `chanid` in an echo).
        joined: usize,
        /// Rooms refused (`fib`).
        failed: usize,
    },
    Notice,
    Other,
}

pub fn classify(body: &[u8]) -> Incoming {
    let Ok(text) = std::str::from_utf8(body) else {
        return Incoming::Other;
    };
    if text.contains("<grpchat") {
        return Incoming::Post;
    }
    if let Some(rpl) = text.find("<rpl ") {
        let rest = &text[rpl..];
        let envid = rest
            .find("<commandid")
            .and_then(|at| number_after(&rest[at..], "envid=\""))
            .unwrap_or(0);
        let code = rest
            .find("<resp ")
            .and_then(|at| attribute(&rest[at..], "code"))
            .map(str::to_owned);
        return Incoming::Reply {
            envid,
            code,
            joined: rest.matches("<chanib ").count(),
            failed: rest.matches("<fib ").count(),
        };
    }
    if text.contains("<cmd ") {
        return Incoming::Reply {
            envid: number_after(text, "envid=\"").unwrap_or(0),
            code: Some("200".into()),
            joined: text.matches("<chanid ").count(),
            failed: 0,
        };
    }
    if text.contains("<ntc ") {
        return Incoming::Notice;
    }
    Incoming::Other
}

/// Whether an INFO body is a post (for the null responder).
pub fn is_post(body: &[u8]) -> bool {
    memfind(body, b"<grpchat").is_some()
}

/// The room id of a post's `chanUri` (the part after the last `/`).
pub fn post_room(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let uri = attribute(text, "chanUri")?;
    Some(uri.rsplit('/').next().unwrap_or(uri).to_owned())
}

/// The room ids a join or bjoin names (`chanid/@value`).
pub fn joined_rooms(body: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    if !(text.contains("cmd:bjoin") || text.contains("cmd:join")) {
        return Vec::new();
    }
    text.split("<chanid ")
        .skip(1)
        .filter_map(|chanid| attribute(chanid, "value"))
        .map(str::to_owned)
        .collect()
}

/// A post as a delivery or a history page carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub msgid: Option<i64>,
    /// The room's URI (`chanUri`).
    pub room: String,
    /// The author's SIP URI.
    pub author: String,
    /// The `chat` text, unescaped.
    pub text: String,
}

/// Every post in a body: the `grpchat` of a delivery, or the `msg`s of an `rpl:bccontext`,
/// in order. Nothing for a body that is not XCCOS.
pub fn posts(body: &[u8]) -> Vec<Post> {
    fn walk(element: &Element, out: &mut Vec<Post>) {
        if matches!(element.name.as_str(), "grpchat" | "msg") {
            out.push(Post {
                msgid: element.attr("msgid").and_then(|v| v.parse().ok()),
                room: element.attr("chanUri").unwrap_or_default().to_owned(),
                author: element.attr("author").unwrap_or_default().to_owned(),
                text: element
                    .child("chat")
                    .map(|chat| chat.text.clone())
                    .unwrap_or_default(),
            });
            return;
        }
        for child in &element.children {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    if let Ok(root) = xml::parse(body, &reply_limits()) {
        walk(&root, &mut out);
    }
    out
}

/// The rooms an `rpl:chansrch` lists: (name, URI) of each `chanib`.
pub fn rooms_found(body: &[u8]) -> Vec<(String, String)> {
    let Ok(root) = xml::parse(body, &reply_limits()) else {
        return Vec::new();
    };
    root.child("rpl")
        .and_then(|rpl| rpl.child("data"))
        .map(|data| {
            data.children
                .iter()
                .filter(|c| c.name == "chanib")
                .filter_map(|c| Some((c.attr("name")?.to_owned(), c.attr("uri")?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Replies list whole rooms and pages of history: bounds far above what one carries.
fn reply_limits() -> XmlLimits {
    XmlLimits {
        max_elements: 1_000_000,
        ..XmlLimits::default()
    }
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of the first `name="..."` in `text`.
fn attribute<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = text[from..].find(name) {
        let start = from + at;
        let rest = &text[start + name.len()..];
        // A whole attribute name: preceded by a space, followed by ="
        let whole = start > 0 && text.as_bytes()[start - 1] == b' ';
        if whole && let Some(value) = rest.strip_prefix("=\"") {
            return value.split('"').next();
        }
        from = start + name.len();
    }
    None
}

/// The decimal number right after the first `marker`.
pub fn number_after(text: &str, marker: &str) -> Option<u64> {
    let at = text.find(marker)? + marker.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_read_from_deliveries_and_history() {
        let body = grpchat(
            9,
            "ma-chan://example.test/abc",
            "a@example.test",
            "hi &amp; bye",
        );
        assert!(is_post(body.as_bytes()));
        assert_eq!(post_room(body.as_bytes()).as_deref(), Some("abc"));
        // As perch delivers it: attributes added, text unchanged.
        let delivered = format!(
            r#"<xccos ver="1" envid="77" xmlns="{NS}"><grpchat id="grpchat" seqid="1" chanUri="ma-chan://example.test/abc" author="sip:a@example.test" ts="2026-11-24T10:00:00.0000000Z" msgid="5"><chat>hi &amp; bye</chat></grpchat></xccos>"#
        );
        assert_eq!(classify(delivered.as_bytes()), Incoming::Post);
        assert_eq!(
            posts(delivered.as_bytes()),
            [Post {
                msgid: Some(5),
                room: "ma-chan://example.test/abc".into(),
                author: "sip:a@example.test".into(),
                text: "hi & bye".into(),
            }]
        );
        assert!(posts(b"not xml").is_empty());
    }

    #[test]
    fn search_finds_rooms_by_name() {
        let body = chansrch(3, "Lo\"b<y");
        assert!(
            body.contains(r#"<qib qtype="BYNAME" criteria="Lo&quot;b&lt;y" extended="false"/>"#),
            "{body}"
        );
        let rpl = r#"<xccos ver="1" envid="9" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:chansrch" seqid="1"><commandid seqid="1" envid="3"/><resp code="200">SUCCESS_OK</resp><data><chanib name="Lobby" description="d" uri="ma-chan://x/u1"><info id="i">1</info></chanib><chanib name="Lobby 2" uri="ma-chan://x/u2"/></data></rpl></xccos>"#;
        assert_eq!(
            rooms_found(rpl.as_bytes()),
            [
                ("Lobby".to_owned(), "ma-chan://x/u1".to_owned()),
                ("Lobby 2".to_owned(), "ma-chan://x/u2".to_owned())
            ]
        );
    }

    #[test]
    fn replies_and_echoes() {
        let rpl = r#"<xccos ver="1" envid="900" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:bjoin" seqid="1"><commandid seqid="1" envid="41"/><resp code="200">SUCCESS_OK</resp><data><uib id="0" uri="sip:a@x"/><chanib name="A" uri="u1"/><chanib name="B" uri="u2"/><fib key="OPERATION_FAILED" domain="x" value="nope"/></data></rpl></xccos>"#;
        assert_eq!(
            classify(rpl.as_bytes()),
            Incoming::Reply {
                envid: 41,
                code: Some("200".into()),
                joined: 2,
                failed: 1
            }
        );
        let body = bjoin(42, "x", &["r1".into(), "r2".into(), "r3".into()]);
        assert_eq!(
            classify(body.as_bytes()),
            Incoming::Reply {
                envid: 42,
                code: Some("200".into()),
                joined: 3,
                failed: 0
            }
        );
        assert_eq!(joined_rooms(body.as_bytes()), ["r1", "r2", "r3"]);
        let ntc = r#"<xccos ver="1" envid="3" xmlns="urn:parlano:xml:ns:xccos"><ntc id="ntc:join" seqid="1"><data/></ntc></xccos>"#;
        assert_eq!(classify(ntc.as_bytes()), Incoming::Notice);
        assert_eq!(classify(b"\xff\xfe"), Incoming::Other);
    }

    #[test]
    fn history_queries_and_pages() {
        let last = bccontext(5, "example.test", "abc", &Bcq::Last { cnt: 30 });
        assert!(last.contains(r#"<cmd id="cmd:bccontext" seqid="1"><data><chanib uri="ma-chan://example.test/abc"/><bcq><last cnt="30"/></bcq>"#), "{last}");
        assert!(last.contains(r#"envid="5""#));
        let before = bccontext(
            6,
            "x",
            "r",
            &Bcq::Before {
                msgid: 77,
                cnt: 100,
            },
        );
        assert!(
            before.contains(r#"<bcq><before msgid="77" cnt="100"/></bcq>"#),
            "{before}"
        );
        let search = bccontext(
            7,
            "x",
            "r",
            &Bcq::Search {
                text: "a<b pmk100".into(),
                cnt: 30,
            },
        );
        assert!(
            search.contains(r#"<bcq><search cnt="30">a&lt;b pmk100</search></bcq>"#),
            "{search}"
        );
        // As perch answers (grpchat::message_element inside the chanib), oldest first.
        let rpl = r#"<xccos ver="1" envid="9" xmlns="urn:parlano:xml:ns:xccos"><rpl id="rpl:bccontext" seqid="1"><commandid seqid="1" envid="5"/><resp code="200">SUCCESS_OK</resp><data><chanib uri="ma-chan://x/r"><msg id="grpchat" seqid="1" chanUri="ma-chan://x/r" author="sip:a@x" ts="2026-11-24T10:00:00.0000000Z" msgid="41"><chat>one &lt;msg msgid="3"</chat></msg><msg id="grpchat" seqid="1" chanUri="ma-chan://x/r" author="sip:a@x" ts="2026-11-24T10:00:01.0000000Z" msgid="57"><chat>two</chat></msg></chanib></data></rpl></xccos>"#;
        assert_eq!(
            history_page(rpl.as_bytes()),
            Some(HistoryPage {
                messages: 2,
                oldest_msgid: Some(41),
                newest_msgid: Some(57)
            })
        );
        assert!(matches!(
            classify(rpl.as_bytes()),
            Incoming::Reply { envid: 5, .. }
        ));
        let empty = rpl.replace(
            &rpl[rpl.find("<msg ").unwrap()..rpl.find("</chanib>").unwrap()],
            "",
        );
        assert_eq!(history_page(empty.as_bytes()), Some(HistoryPage::default()));
        let texts: Vec<_> = posts(rpl.as_bytes())
            .into_iter()
            .map(|p| (p.msgid, p.text))
            .collect();
        assert_eq!(
            texts,
            [
                (Some(41), r#"one <msg msgid="3""#.to_owned()),
                (Some(57), "two".to_owned())
            ]
        );
        // The null responder's echo of the command is no page.
        assert_eq!(history_page(last.as_bytes()), None);
    }

    #[test]
    fn attributes_are_whole_names() {
        assert_eq!(attribute(r#"<a xcode="1" code="2"/>"#, "code"), Some("2"));
        assert_eq!(attribute(r#"<a code=1/>"#, "code"), None);
    }
}
