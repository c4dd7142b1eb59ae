//! SIP message model, parser and serializer (RFC 3261 §7), written for perch instead of
//! using rsip: rsip rejects Microsoft's extension methods, compact names, folded lines and
//! bare LF, and has no size limits (see docs/ARCHITECTURE.md).

use std::fmt::{self, Write as _};

use bytes::{BufMut, Bytes, BytesMut};

use super::header::{NameAddr, SipUri, is_uri_text, via_is_well_formed};

/// Request methods. Extension methods are kept by name and answered by the session layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Ack,
    Benotify,
    Bye,
    Cancel,
    Info,
    Invite,
    Message,
    Negotiate,
    Notify,
    Options,
    Prack,
    Publish,
    Refer,
    Register,
    Service,
    Subscribe,
    Update,
    Extension(String),
}

const METHOD_NAMES: &[(Method, &str)] = &[
    (Method::Ack, "ACK"),
    (Method::Benotify, "BENOTIFY"),
    (Method::Bye, "BYE"),
    (Method::Cancel, "CANCEL"),
    (Method::Info, "INFO"),
    (Method::Invite, "INVITE"),
    (Method::Message, "MESSAGE"),
    (Method::Negotiate, "NEGOTIATE"),
    (Method::Notify, "NOTIFY"),
    (Method::Options, "OPTIONS"),
    (Method::Prack, "PRACK"),
    (Method::Publish, "PUBLISH"),
    (Method::Refer, "REFER"),
    (Method::Register, "REGISTER"),
    (Method::Service, "SERVICE"),
    (Method::Subscribe, "SUBSCRIBE"),
    (Method::Update, "UPDATE"),
];

impl Method {
    /// Parses a method token; method names are case-sensitive (RFC 3261 §7.1).
    pub fn parse(token: &str) -> Result<Self, ParseError> {
        if token.is_empty() || !token.bytes().all(is_token_byte) {
            return Err(ParseError::BadMethod);
        }
        Ok(METHOD_NAMES
            .iter()
            .find(|(_, name)| *name == token)
            .map(|(method, _)| method.clone())
            .unwrap_or_else(|| Method::Extension(token.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Extension(name) => name,
            known => METHOD_NAMES
                .iter()
                .find(|(method, _)| method == known)
                .map_or("", |(_, name)| name),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

/// One header field. Known names (and their compact forms) are stored in canonical
/// spelling; unknown names keep the sender's spelling and compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Values of a list-valued header across all its lines, split on commas (quoted
    /// strings and angle brackets are not split).
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(split_list)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is not valid UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    BadStartLine,
    #[error("unsupported SIP version")]
    BadVersion,
    #[error("invalid method token")]
    BadMethod,
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    #[error("malformed Request-URI")]
    BadRequestUri,
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
}

/// Canonical spelling for well-known headers, including every compact form of RFC 3261
/// §7.3.3 and its extensions.
const CANONICAL: &[(&str, Option<&str>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some("a")),
    ("Allow", None),
    ("Allow-Events", Some("u")),
    ("Authentication-Info", None),
    ("Authorization", None),
    ("Call-ID", Some("i")),
    ("Contact", Some("m")),
    ("Content-Encoding", Some("e")),
    ("Content-Length", Some("l")),
    ("Content-Type", Some("c")),
    ("CSeq", None),
    ("Event", Some("o")),
    ("Expires", None),
    ("From", Some("f")),
    ("Identity", Some("y")),
    ("Max-Forwards", None),
    ("Min-Expires", None),
    ("Min-SE", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("Record-Route", None),
    ("Refer-To", Some("r")),
    ("Referred-By", Some("b")),
    ("Reject-Contact", Some("j")),
    ("Request-Disposition", Some("d")),
    ("Require", None),
    ("Route", None),
    ("Server", None),
    ("Session-Expires", Some("x")),
    ("Subject", Some("s")),
    ("Supported", Some("k")),
    ("To", Some("t")),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some("v")),
    ("WWW-Authenticate", None),
];

fn canonical_name(name: &str) -> String {
    CANONICAL
        .iter()
        .find(|(full, compact)| {
            full.eq_ignore_ascii_case(name) || compact.is_some_and(|c| c.eq_ignore_ascii_case(name))
        })
        .map_or_else(|| name.to_owned(), |(full, _)| (*full).to_owned())
}

/// White space around a header value or continuation (RFC 3261 §7.3.1), and a CR left by a
/// `CR CR LF` line end. Not `str::trim`: other Unicode white space belongs to the value.
const LWS: [char; 3] = [' ', '\t', '\r'];

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

impl Message {
    /// Parses a header block as cut by the framer (start line and headers, without the blank
    /// line) plus its body. Folded lines are joined and bare LF is accepted.
    pub fn parse(head: &[u8], body: Bytes) -> Result<Self, ParseError> {
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start = parse_start_line(lines.next().unwrap_or_default())?;

        // One header per line at most: no regrowing while parsing.
        let mut headers = Headers::with_capacity(head.bytes().filter(|&b| b == b'\n').count());
        for line in lines {
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A folded line continues the previous value after one space, so that
                // serialising on one line and parsing again gives the same value.
                let last = headers.0.last_mut().ok_or(ParseError::BadHeaderLine)?;
                let continuation = line.trim_matches(LWS);
                if !continuation.is_empty() {
                    if !last.value.is_empty() {
                        last.value.push(' ');
                    }
                    last.value.push_str(continuation);
                }
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::BadHeaderLine)?;
            let name = name.trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ParseError::BadHeaderLine);
            }
            headers.push(canonical_name(name), value.trim_matches(LWS));
        }
        let message = Message {
            start,
            headers,
            body,
        };
        message.check_essentials()?;
        Ok(message)
    }

    /// The headers every request and response needs for us to answer or match it, present
    /// once where they may be present only once (RFC 4475 §3.3.8), and well-formed where
    /// perch reads or echoes them (RFC 4475 §3.1.2.1, §3.1.2.6, §3.1.2.13 to §3.1.2.15).
    fn check_essentials(&self) -> Result<(), ParseError> {
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if self.headers.get(name).is_none_or(str::is_empty) {
                return Err(ParseError::MissingHeader(name));
            }
        }
        for name in ["From", "To", "Call-ID", "CSeq", "Max-Forwards"] {
            if self.headers.get_all(name).nth(1).is_some() {
                return Err(ParseError::DuplicateHeader(name));
            }
        }
        for name in ["From", "To"] {
            if self.headers.get(name).and_then(NameAddr::parse).is_none() {
                return Err(ParseError::BadHeader(name));
            }
        }
        if !self.headers.get_all("Via").all(via_is_well_formed) {
            return Err(ParseError::BadHeader("Via"));
        }
        let contact_ok = |entry: &str| {
            let entry = entry.trim_matches([' ', '\t']);
            entry == "*" || NameAddr::parse(entry).is_some()
        };
        if !self
            .headers
            .get_all("Contact")
            .all(|value| split_list(value).all(contact_ok))
        {
            return Err(ParseError::BadHeader("Contact"));
        }
        let cseq = self.cseq()?;
        if let StartLine::Request { method, .. } = &self.start
            && *method != cseq.method
        {
            return Err(ParseError::BadHeader("CSeq"));
        }
        Ok(())
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn call_id(&self) -> &str {
        self.headers.get("Call-ID").unwrap_or_default()
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        self.headers
            .get("CSeq")
            .and_then(CSeq::parse)
            .ok_or(ParseError::BadHeader("CSeq"))
    }

    /// Serializes with a Content-Length computed from the body; any Content-Length among
    /// the headers is ignored so the two can never disagree.
    pub fn encode(&self) -> Bytes {
        let mut text = String::with_capacity(256 + self.headers.len() * 40);
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(text, "{method} {uri} SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                let _ = write!(text, "SIP/2.0 {code} {reason}\r\n");
            }
        }
        for header in self
            .headers
            .iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("Content-Length"))
        {
            let _ = write!(text, "{}: {}\r\n", header.name, header.value);
        }
        let _ = write!(text, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = BytesMut::with_capacity(text.len() + self.body.len());
        out.put_slice(text.as_bytes());
        out.put_slice(&self.body);
        out.freeze()
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest.split_once(' ').ok_or(ParseError::BadStartLine)?;
        if version != "2.0" {
            return Err(ParseError::BadVersion);
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| ParseError::BadStartLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if version.starts_with("SIP/") {
            ParseError::BadVersion
        } else {
            ParseError::BadStartLine
        });
    }
    if uri.is_empty() || !uri.contains(':') {
        return Err(ParseError::BadStartLine);
    }
    if !request_uri_is_well_formed(uri) {
        return Err(ParseError::BadRequestUri);
    }
    Ok(StartLine::Request {
        method: Method::parse(method)?,
        uri: uri.to_owned(),
    })
}

/// A Request-URI perch will act on: an absolute URI without white space, quotes or angle
/// brackets (RFC 4475 §3.1.2.7), and for `sip:`/`sips:` one that parses and carries no
/// headers (RFC 3261 §19.1.1, RFC 4475 §3.1.2.11). Other schemes pass: answering them is
/// the session's business (RFC 4475 §3.3.2).
fn request_uri_is_well_formed(uri: &str) -> bool {
    if !is_uri_text(uri) {
        return false;
    }
    let scheme = uri.split_once(':').map_or("", |(scheme, _)| scheme);
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        return SipUri::parse(uri).is_some_and(|parsed| parsed.headers.is_none());
    }
    true
}

/// Splits a header value on commas that are outside quotes and angle brackets.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let current = rest?;
        // A comma only counts outside quotes and `<>`, so each entry starts outside both.
        let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
        for (i, c) in current.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '<' if !in_quotes => in_angle = true,
                '>' if !in_quotes => in_angle = false,
                ',' if !in_quotes && !in_angle => {
                    rest = Some(&current[i + 1..]);
                    return Some(&current[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub number: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split_ascii_whitespace();
        let number = parts.next()?.parse().ok()?;
        let method = Method::parse(parts.next()?).ok()?;
        parts.next().is_none().then_some(Self { number, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number, self.method)
    }
}

/// Best-effort extraction of the headers needed to answer a message that failed to frame
/// or parse, so the peer still gets a 400/413/513 where one can be formed.
pub fn salvage_response_headers(head: &[u8]) -> Option<Headers> {
    let text = String::from_utf8_lossy(head);
    let mut headers = Headers::default();
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let start = lines.next()?;
    if start.starts_with("SIP/") {
        return None; // never answer a response
    }
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = canonical_name(name.trim());
            if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name.as_str()) {
                headers.push(name, value.trim());
            }
        }
    }
    let complete = ["Via", "From", "To", "Call-ID", "CSeq"]
        .iter()
        .all(|n| headers.get(n).is_some());
    complete.then_some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Message, ParseError> {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        Message::parse(head.as_bytes(), Bytes::copy_from_slice(body.as_bytes()))
    }

    const BASE: &str = "Via: SIP/2.0/tls 10.0.0.5:53412\r\nf: <sip:alice@example.test>;tag=1\r\nt: <sip:ocschat@example.test>\r\ni: abc\r\n";

    #[test]
    fn request_with_compact_and_folded_headers() {
        let msg = parse(&format!(
            "SERVICE sip:example.test SIP/2.0\r\n{BASE}CSeq: 7 SERVICE\r\nSubject: one\r\n  two\r\nk: a\r\nk: b, c\r\n\r\nxyz"
        ))
        .unwrap();
        assert_eq!(msg.method(), Some(&Method::Service));
        assert_eq!(msg.call_id(), "abc");
        assert_eq!(msg.headers.get("subject"), Some("one two"));
        assert_eq!(
            msg.headers.get("FROM"),
            Some("<sip:alice@example.test>;tag=1")
        );
        assert_eq!(
            msg.headers.tokens("Supported").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(&msg.body[..], b"xyz");
        assert_eq!(msg.cseq().unwrap().number, 7);
    }

    #[test]
    fn folding_round_trips() {
        // Found by fuzzing: a value that starts on a continuation line, and a blank one.
        for (fold, value) in [("\r\n c", "c"), ("\r\n  \r\n", ""), (" a\r\n\tb", "a b")] {
            let text =
                format!("OPTIONS sip:x@y SIP/2.0\r\n{BASE}CSeq: 1 OPTIONS\r\nSubject:{fold}\r\n");
            let msg = parse(&text).unwrap();
            assert_eq!(msg.headers.get("Subject"), Some(value));
            let again = parse(std::str::from_utf8(&msg.encode()).unwrap()).unwrap();
            assert_eq!(again.headers.get("Subject"), Some(value));
        }
    }

    #[test]
    fn values_keep_other_white_space() {
        // Found by proptest: `str::trim` took a trailing VT (and NBSP, U+3000, …) off values.
        let text = format!(
            "OPTIONS sip:x@y SIP/2.0\r\n{BASE}CSeq: 1 OPTIONS\r\nX-A: a\u{b}\r\nSubject: \u{a0}b\u{3000}\r\n  \u{c}c \r\n"
        );
        let msg = parse(&text).unwrap();
        assert_eq!(msg.headers.get("X-A"), Some("a\u{b}"));
        assert_eq!(msg.headers.get("Subject"), Some("\u{a0}b\u{3000} \u{c}c"));
        let again = parse(std::str::from_utf8(&msg.encode()).unwrap()).unwrap();
        assert_eq!(again.headers.get("X-A"), Some("a\u{b}"));
        assert_eq!(again.headers.get("Subject"), msg.headers.get("Subject"));
    }

    #[test]
    fn extension_methods_round_trip() {
        for name in ["BENOTIFY", "NEGOTIATE", "PUBLISH", "FROBNICATE"] {
            let msg = parse(&format!(
                "{name} sip:x@y SIP/2.0\r\n{BASE}CSeq: 1 {name}\r\n"
            ))
            .unwrap();
            assert_eq!(msg.method().unwrap().as_str(), name);
            let again = parse(std::str::from_utf8(&msg.encode()).unwrap()).unwrap();
            assert_eq!(again.start, msg.start);
            assert_eq!(again.headers.get("Content-Length"), Some("0"));
        }
    }

    #[test]
    fn response_parses() {
        let msg = parse(&format!("SIP/2.0 200 OK\r\n{BASE}CSeq: 2 INFO\r\n")).unwrap();
        assert_eq!(
            msg.start,
            StartLine::Response {
                code: 200,
                reason: "OK".into()
            }
        );
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            "INVITE sip:x SIP/3.0\r\n",
            "INVITE  sip:x SIP/2.0\r\n",
            "INVITE sip:x\r\n",
            "INV@TE sip:x SIP/2.0\r\n",
            "SIP/2.0 99 Odd\r\n",
            "garbage\r\n",
        ];
        for start in cases {
            assert!(
                parse(&format!("{start}{BASE}CSeq: 1 INVITE\r\n")).is_err(),
                "{start}"
            );
        }
        assert_eq!(
            parse(&format!("INFO sip:x SIP/2.0\r\n{BASE}")),
            Err(ParseError::MissingHeader("CSeq"))
        );
        assert_eq!(
            parse(&format!("INFO sip:x SIP/2.0\r\n{BASE}CSeq: 1 BYE\r\n")),
            Err(ParseError::BadHeader("CSeq"))
        );
        assert_eq!(
            parse(&format!(
                "INFO sip:x SIP/2.0\r\n{BASE}CSeq: 1 INFO\r\nno colon\r\n"
            )),
            Err(ParseError::BadHeaderLine)
        );
        assert_eq!(
            Message::parse(b"INFO sip:x SIP/2.0\r\n\xff: 1", Bytes::new()),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn rejects_what_rfc_4475_calls_invalid() {
        let request = |start: &str, extra: &str| {
            let method = start.split(' ').next().unwrap();
            parse(&format!("{start}\r\n{BASE}CSeq: 1 {method}\r\n{extra}"))
        };
        // §3.1.2.7 ltgtruri, §3.1.2.11 escruri, and an empty sip: URI.
        for start in [
            "INVITE <sip:user@example.com> SIP/2.0",
            "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
            "OPTIONS sip: SIP/2.0",
            "OPTIONS sip:@example.com SIP/2.0",
            "OPTIONS 1sip:x SIP/2.0",
        ] {
            assert_eq!(
                request(start, ""),
                Err(ParseError::BadRequestUri),
                "{start}"
            );
        }
        // §3.3.8 multi01.
        assert_eq!(
            request("INFO sip:x SIP/2.0", "To: <sip:other@example.net>\r\n"),
            Err(ParseError::DuplicateHeader("To"))
        );
        assert_eq!(
            request(
                "INFO sip:x SIP/2.0",
                "Max-Forwards: 70\r\nMax-Forwards: 5\r\n"
            ),
            Err(ParseError::DuplicateHeader("Max-Forwards"))
        );
        // §3.1.2.1 badinv01 (Via and Contact), §3.1.2.13 regbadct, §3.1.2.6 quotbal.
        assert_eq!(
            request(
                "INFO sip:x SIP/2.0",
                "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
            ),
            Err(ParseError::BadHeader("Via"))
        );
        for contact in [
            r#""Joe" <sip:joe@example.org>;;;;"#,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b>,",
        ] {
            assert_eq!(
                request("REGISTER sip:x SIP/2.0", &format!("Contact: {contact}\r\n")),
                Err(ParseError::BadHeader("Contact")),
                "{contact}"
            );
        }
        assert_eq!(
            parse(
                "INFO sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: \"Mr. J. User <sip:j.user@example.com>\r\ni: c\r\nCSeq: 1 INFO\r\n"
            ),
            Err(ParseError::BadHeader("To"))
        );
    }

    #[test]
    fn accepts_what_rfc_4475_calls_valid() {
        let request = |start: &str, extra: &str| {
            let method = start.split(' ').next().unwrap();
            parse(&format!("{start}\r\n{BASE}CSeq: 1 {method}\r\n{extra}"))
        };
        // §3.3.2 unkscm, §3.3.3 novelsc: other schemes are the session's to answer.
        for start in [
            "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0",
            "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
            "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
        ] {
            assert!(request(start, "").is_ok(), "{start}");
        }
        for contact in [
            "*",
            "<sip:a@b>, \"B, C\" <sip:c@d>;q=0.5",
            "sip:+19725552222@gw1.example.net;unknownparam",
            "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
        ] {
            let msg = request("REGISTER sip:x SIP/2.0", &format!("m: {contact}\r\n"));
            assert!(msg.is_ok(), "{contact}");
        }
    }

    #[test]
    fn list_split_respects_quotes() {
        let parts: Vec<_> = split_list(r#"Digest realm="a,b", nonce="x", <sip:a,b>;q=1"#).collect();
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn salvage_finds_essentials() {
        let head = format!(
            "INVITE sip:x SIP/2.0\r\n{BASE}CSeq: 1 INVITE\r\nX: {}",
            "a".repeat(50)
        );
        let headers = salvage_response_headers(head.as_bytes()).unwrap();
        assert_eq!(headers.get("Call-ID"), Some("abc"));
        assert!(salvage_response_headers(b"SIP/2.0 200 OK\r\n").is_none());
    }
}

/// proptest strategies for structurally valid messages, shared with the framer's tests.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;

    use super::*;

    /// Headers `Message::parse` checks, counts or computes; generated apart from the rest.
    const CHECKED: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Contact",
        "Content-Length",
    ];

    const TOKEN: &str = "[A-Za-z0-9.!%*_+`'~-]";

    fn token(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("{TOKEN}{{1,{max}}}")).expect("token regex")
    }

    fn host() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9.-]{0,14}"
    }

    fn method() -> impl Strategy<Value = Method> {
        let known = proptest::sample::select(
            METHOD_NAMES
                .iter()
                .map(|(_, name)| (*name).to_owned())
                .collect::<Vec<_>>(),
        );
        prop_oneof![known, token(12)]
            .prop_map(|name| Method::parse(&name).expect("a token is a method"))
    }

    /// `sip:`/`sips:` URIs without headers, and opaque URIs of other schemes.
    fn request_uri() -> impl Strategy<Value = String> {
        let sip = (
            prop_oneof!["sip", "sips", "SIP"],
            proptest::option::of("[A-Za-z0-9_.!~*'()&=+$,;?/%-]{1,12}@"),
            host(),
            proptest::option::of(any::<u16>()),
            "(;[a-z]{1,6}(=[a-z0-9]{1,6})?){0,3}",
        )
            .prop_map(|(scheme, user, host, port, params)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{scheme}:{}{host}{port}{params}", user.unwrap_or_default())
            });
        let other = (
            "[A-Za-z][A-Za-z0-9+.-]{0,8}",
            "[^\\x00-\\x20\\x7f<>\"]{1,20}",
        )
            .prop_filter("not a SIP scheme", |(scheme, _)| {
                !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips")
            })
            .prop_map(|(scheme, rest)| format!("{scheme}:{rest}"));
        prop_oneof![3 => sip, 1 => other]
    }

    fn name_addr(tag: bool) -> impl Strategy<Value = String> {
        let display = prop_oneof![
            Just(String::new()),
            "[A-Za-z0-9.!%*_+`'~-]{1,8}( [A-Za-z0-9-]{1,8}){0,2} ",
            "\"[^\"\\\\\r\n]{0,12}\" ",
        ];
        let tag = if tag {
            token(10).prop_map(|t| format!(";tag={t}")).boxed()
        } else {
            Just(String::new()).boxed()
        };
        (display, "[a-z0-9._-]{1,10}", host(), tag)
            .prop_map(|(display, user, host, tag)| format!("{display}<sip:{user}@{host}>{tag}"))
    }

    /// A value without CR or LF and without SP or HTAB at either end.
    fn value() -> impl Strategy<Value = String> {
        "[^\r\n]{0,40}".prop_map(|v| v.trim_matches([' ', '\t']).to_owned())
    }

    /// Any header but the checked ones, in canonical spelling as the parser stores it.
    fn other_header() -> impl Strategy<Value = Header> {
        (token(16), value())
            .prop_map(|(name, value)| Header {
                name: canonical_name(&name),
                value,
            })
            .prop_filter("a checked header", |h| !CHECKED.contains(&h.name.as_str()))
    }

    fn start_line() -> impl Strategy<Value = StartLine> {
        prop_oneof![
            (method(), request_uri()).prop_map(|(method, uri)| StartLine::Request { method, uri }),
            (100u16..=699, "[^\r\n]{0,20}")
                .prop_map(|(code, reason)| StartLine::Response { code, reason }),
        ]
    }

    /// Request or response with the essential headers, other headers and a body, all in a
    /// random order but for Content-Length, which comes last as `encode` writes it.
    pub(crate) fn message() -> impl Strategy<Value = Message> {
        (start_line(), method()).prop_flat_map(|(start, response_method)| {
            let cseq_method = match &start {
                StartLine::Request { method, .. } => method.clone(),
                StartLine::Response { .. } => response_method,
            };
            let via = (
                prop_oneof!["TCP", "TLS", "UDP"],
                host(),
                proptest::option::of(any::<u16>()),
                token(12),
            )
                .prop_map(|(transport, host, port, branch)| {
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    format!("SIP/2.0/{transport} {host}{port};branch=z9hG4bK{branch}")
                });
            let essentials = (
                prop::collection::vec(via, 1..3),
                name_addr(true),
                name_addr(false),
                "[A-Za-z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,16}(@[a-z0-9.]{1,10})?",
                any::<u32>(),
                proptest::option::of(name_addr(false)),
                proptest::option::of(0u8..=70),
            );
            (
                Just(start),
                Just(cseq_method),
                essentials,
                prop::collection::vec(other_header(), 0..12),
                prop::collection::vec(any::<u8>(), 0..300),
            )
                .prop_flat_map(|(start, cseq_method, essentials, others, body)| {
                    let (vias, from, to, call_id, number, contact, max_forwards) = essentials;
                    let mut headers: Vec<Header> = others;
                    let mut add = |name: &str, value: String| {
                        headers.push(Header {
                            name: name.to_owned(),
                            value,
                        });
                    };
                    for via in vias {
                        add("Via", via);
                    }
                    add("From", from);
                    add("To", to);
                    add("Call-ID", call_id);
                    add("CSeq", format!("{number} {cseq_method}"));
                    if let Some(contact) = contact {
                        add("Contact", contact);
                    }
                    if let Some(hops) = max_forwards {
                        add("Max-Forwards", hops.to_string());
                    }
                    (Just(start), Just(headers).prop_shuffle(), Just(body))
                })
                .prop_map(|(start, mut headers, body)| {
                    headers.push(Header {
                        name: "Content-Length".to_owned(),
                        value: body.len().to_string(),
                    });
                    Message {
                        start,
                        headers: Headers(headers),
                        body: Bytes::from(body),
                    }
                })
        })
    }
}

#[cfg(test)]
mod round_trip {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::strategy::message;
    use super::*;
    use crate::lync::sip::framer::{self, Frame, FrameLimits};

    proptest! {
        /// encode → frame → parse gives the message back, Content-Length included.
        #[test]
        fn encode_frame_parse(message in message()) {
            let encoded = message.encode();
            let mut buf = BytesMut::from(&encoded[..]);
            let frame = framer::decode(&mut buf, &FrameLimits::default());
            let Ok(Some(Frame::Message { head, body })) = frame else {
                return Err(TestCaseError::fail(format!("{frame:?} from {encoded:?}")));
            };
            prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
            prop_assert_eq!(Message::parse(&head, body), Ok(message));
        }
    }
}
