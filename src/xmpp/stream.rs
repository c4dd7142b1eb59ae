//! XMPP stream framing (RFC 6120 §4): cuts a client's byte stream into the stream header,
//! each top-level element (stanzas and nonzas such as `<starttls/>`), and the stream's end.
//! Sans-I/O, like the SIP framer: the caller owns the buffer and feeds whatever the socket
//! returned; "not enough bytes yet" is `Ok(None)`, not an error.
//!
//! Framing is separate from parsing: a small lexer finds where a top-level element ends
//! (tags, quotes, CDATA, depth) and keeps its position between calls, so a stanza arriving
//! a byte at a time is scanned once; the complete element then goes to the shared bounded
//! tree parser ([`crate::xml::parse_in`]) with the namespaces of the stream header.

use bytes::{Buf, BytesMut};

use crate::xml::{self, Element, Scope, XmlError, XmlLimits};

/// The namespace of `<stream:stream>`, `<stream:features>` and `<stream:error>`.
pub const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
/// The content namespace of client-to-server streams.
pub const JABBER_CLIENT: &str = "jabber:client";
/// The namespace of the condition inside `<stream:error>`.
pub const STREAM_ERRORS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// Bounds on what a client can make perch hold, each checked in bytes before parsing.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// The XML declaration and the stream header together.
    pub max_header_bytes: usize,
    /// One top-level element, from its `<` to its last `>`.
    pub max_stanza_bytes: usize,
    /// Depth (the stanza is level 1), elements, attributes per element, value sizes.
    pub xml: XmlLimits,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 4 * 1024,
            // The same order as the SIP body bound.
            max_stanza_bytes: 256 * 1024,
            xml: XmlLimits {
                // One message body may take the whole stanza.
                max_value_bytes: 256 * 1024,
                ..XmlLimits::default()
            },
        }
    }
}

/// What the client's stream header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header (again after [`StreamFramer::restart`]).
    Open(StreamHeader),
    /// A complete top-level element, namespaces resolved (`<stream:error>` is `error` in
    /// [`STREAMS_NS`]).
    Stanza(Element),
    /// `</stream:stream>`.
    Close,
}

/// Why the stream cannot go on; [`StreamError::condition`] names the `<stream:error>`.
/// After an error the framer's state is undefined: the stream is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("stream header over {limit} bytes")]
    HeaderTooLarge { limit: usize },
    #[error("stanza over {limit} bytes")]
    StanzaTooLarge { limit: usize },
    /// Comments, processing instructions, DTDs (RFC 6120 §11.1), found by the lexer.
    #[error("{0} are not allowed in XMPP")]
    Restricted(&'static str),
    #[error("not well-formed: {0}")]
    NotWellFormed(&'static str),
    /// Character data between stanzas other than white space.
    #[error("text between stanzas")]
    TextBetweenStanzas,
    /// Anything but a stream header where one is due, or anything after the stream's end.
    #[error("XML outside an open stream")]
    NoStream,
    #[error("namespace {0:?} is not the one expected")]
    InvalidNamespace(String),
    #[error("the streams namespace must have the prefix `stream`")]
    BadNamespacePrefix,
}

impl StreamError {
    /// The RFC 6120 §4.9.3 condition to send as `<stream:error>`.
    pub fn condition(&self) -> &'static str {
        match self {
            Self::Xml(error) => match error {
                XmlError::NotUtf8
                | XmlError::Syntax(_)
                | XmlError::Empty
                | XmlError::UnboundPrefix(_)
                | XmlError::Namespace(_) => "not-well-formed",
                XmlError::Doctype | XmlError::UnknownEntity(_) | XmlError::Forbidden(_) => {
                    "restricted-xml"
                }
                XmlError::Encoding(_) => "unsupported-encoding",
                XmlError::TooDeep(_)
                | XmlError::TooManyElements(_)
                | XmlError::TooManyAttributes(_)
                | XmlError::ValueTooLong(_) => "policy-violation",
            },
            Self::HeaderTooLarge { .. } | Self::StanzaTooLarge { .. } => "policy-violation",
            Self::Restricted(_) => "restricted-xml",
            Self::NotWellFormed(_) => "not-well-formed",
            Self::TextBetweenStanzas => "bad-format",
            // As Prosody answers a stanza before the stream header.
            Self::NoStream | Self::InvalidNamespace(_) => "invalid-namespace",
            Self::BadNamespacePrefix => "bad-namespace-prefix",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A stream header is due (at the start and after a restart).
    Header,
    Open,
    Closed,
}

/// Where the lexer is inside the unit it is cutting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Nothing of the unit read yet (white space before it is dropped).
    Start,
    /// After `<`.
    Lt,
    /// Inside `<?xml … ?>` before the header; `true` after a `?`.
    Declaration(bool),
    /// Between the declaration and the header's `<`.
    Prolog,
    /// Inside `<!`, having matched this much of `[CDATA[`.
    Bang(usize),
    /// Inside a CDATA section, after this many `]` (at most 2).
    CData(usize),
    /// Inside a start tag: the open quote, and whether the last byte was `/`.
    Tag {
        quote: Option<u8>,
        slash: bool,
    },
    EndTag,
    /// Content between tags.
    Text,
}

/// What a unit turned out to be, and where it ends.
enum Unit {
    Header,
    Stanza,
    Close,
}

/// Cuts one XMPP stream. Feed it the connection's read buffer after each read; it takes
/// whole units off the front and leaves partial ones in place. The caller only appends to
/// the buffer between calls.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    limits: StreamLimits,
    phase: Phase,
    lex: Lex,
    /// Bytes of the current unit scanned so far: the resumable position.
    pos: usize,
    /// Open elements inside the current stanza.
    depth: usize,
    /// Where the last tag of the current unit began.
    tag_start: usize,
    /// The header's qualified name, which `</…>` must repeat.
    header_name: Vec<u8>,
    scope: Scope,
    #[cfg(test)]
    scanned: usize,
}

impl StreamFramer {
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            phase: Phase::Header,
            lex: Lex::Start,
            pos: 0,
            depth: 0,
            tag_start: 0,
            header_name: Vec::new(),
            scope: Scope::default(),
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// Expects a new stream header: after STARTTLS and after SASL success (RFC 6120
    /// §5.3.3, §6.4.6). Whatever was read of a unit is forgotten with the old stream.
    pub fn restart(&mut self) {
        self.phase = Phase::Header;
        self.reset_unit();
        self.header_name.clear();
        self.scope = Scope::default();
    }

    /// The namespaces the current stream header declared: the scope stanzas are parsed
    /// in, and the one to render them back in.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Cuts the next unit off the front of `buf`. White space between units (keep-alives)
    /// is consumed silently.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<StreamEvent>, StreamError> {
        if self.lex == Lex::Start {
            let blank = buf.iter().take_while(|b| is_space(**b)).count();
            buf.advance(blank);
            if buf.is_empty() {
                return Ok(None);
            }
            if self.phase == Phase::Closed {
                return Err(StreamError::NoStream);
            }
        }
        let Some(unit) = self.scan(buf)? else {
            return Ok(None);
        };
        let bytes = buf.split_to(self.pos);
        let tag_start = self.tag_start;
        self.reset_unit();
        match unit {
            Unit::Header => self.open(&bytes, tag_start).map(Some),
            Unit::Stanza => {
                let stanza = xml::parse_in(&bytes, &self.limits.xml, &self.scope)?;
                Ok(Some(StreamEvent::Stanza(stanza)))
            }
            Unit::Close => {
                self.phase = Phase::Closed;
                Ok(Some(StreamEvent::Close))
            }
        }
    }

    fn reset_unit(&mut self) {
        self.lex = Lex::Start;
        self.pos = 0;
        self.depth = 0;
        self.tag_start = 0;
    }

    /// Checks and reads a complete stream header (declaration included).
    fn open(&mut self, bytes: &[u8], tag_start: usize) -> Result<StreamEvent, StreamError> {
        let (element, scope) = xml::open_tag(bytes, &self.limits.xml)?;
        if element.name != "stream" {
            return Err(StreamError::NoStream);
        }
        if element.namespace != STREAMS_NS {
            return Err(StreamError::InvalidNamespace(element.namespace));
        }
        let name = tag_name(&bytes[tag_start + 1..]);
        if name != b"stream:stream" {
            return Err(StreamError::BadNamespacePrefix);
        }
        if scope.default_namespace() != JABBER_CLIENT {
            return Err(StreamError::InvalidNamespace(
                scope.default_namespace().to_owned(),
            ));
        }
        self.header_name = name.to_vec();
        self.scope = scope;
        self.phase = Phase::Open;
        let attr = |name: &str| element.attr(name).map(str::to_owned);
        Ok(StreamEvent::Open(StreamHeader {
            to: attr("to"),
            from: attr("from"),
            id: attr("id"),
            version: attr("version"),
            lang: attr("xml:lang"),
        }))
    }

    /// Scans on from the saved position; returns the kind of unit once `buf[..self.pos]`
    /// holds all of it. Each byte is looked at once however the unit arrives.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<Unit>, StreamError> {
        let header = self.phase == Phase::Header;
        let limit = if header {
            self.limits.max_header_bytes
        } else {
            self.limits.max_stanza_bytes
        };
        while let Some(&b) = buf.get(self.pos) {
            if self.pos >= limit {
                return Err(if header {
                    StreamError::HeaderTooLarge { limit }
                } else {
                    StreamError::StanzaTooLarge { limit }
                });
            }
            let at = self.pos;
            self.pos += 1;
            #[cfg(test)]
            {
                self.scanned += 1;
            }
            self.lex = match self.lex {
                Lex::Start if b == b'<' => Lex::Lt,
                Lex::Start if header => return Err(StreamError::NoStream),
                Lex::Start => return Err(StreamError::TextBetweenStanzas),
                Lex::Lt => match b {
                    // Only the header's own declaration, first in the unit.
                    b'?' if header && at == 1 => Lex::Declaration(false),
                    b'?' => return Err(StreamError::Restricted("processing instructions")),
                    b'!' => Lex::Bang(0),
                    b'/' if header => return Err(StreamError::NoStream),
                    b'/' => Lex::EndTag,
                    _ => Lex::Tag {
                        quote: None,
                        slash: false,
                    },
                },
                Lex::Declaration(question) => match b {
                    b'>' if question => Lex::Prolog,
                    _ => Lex::Declaration(b == b'?'),
                },
                Lex::Prolog if is_space(b) => Lex::Prolog,
                Lex::Prolog if b == b'<' => {
                    self.tag_start = at;
                    Lex::Lt
                }
                Lex::Prolog => return Err(StreamError::NoStream),
                Lex::Bang(matched) => {
                    const CDATA: &[u8] = b"[CDATA[";
                    match b {
                        b'-' if matched == 0 => return Err(StreamError::Restricted("comments")),
                        _ if matched == 0 && b != b'[' => {
                            return Err(StreamError::Restricted("document type declarations"));
                        }
                        _ if CDATA.get(matched) != Some(&b) => {
                            return Err(StreamError::NotWellFormed("a malformed CDATA section"));
                        }
                        _ if matched + 1 < CDATA.len() => Lex::Bang(matched + 1),
                        _ if self.depth == 0 && header => return Err(StreamError::NoStream),
                        _ if self.depth == 0 => return Err(StreamError::TextBetweenStanzas),
                        _ => Lex::CData(0),
                    }
                }
                Lex::CData(brackets) => match b {
                    b']' => Lex::CData((brackets + 1).min(2)),
                    b'>' if brackets == 2 => Lex::Text,
                    _ => Lex::CData(0),
                },
                Lex::Tag {
                    quote: Some(quote), ..
                } => Lex::Tag {
                    quote: (b != quote).then_some(quote),
                    slash: false,
                },
                Lex::Tag { quote: None, slash } => match b {
                    b'"' | b'\'' => Lex::Tag {
                        quote: Some(b),
                        slash: false,
                    },
                    b'<' => return Err(StreamError::NotWellFormed("'<' inside a tag")),
                    b'>' if header && slash => return Err(StreamError::NoStream),
                    b'>' if header => return Ok(Some(Unit::Header)),
                    b'>' if slash && self.depth == 0 => return Ok(Some(Unit::Stanza)),
                    b'>' if slash => Lex::Text,
                    b'>' => {
                        self.depth += 1;
                        if self.depth > self.limits.xml.max_depth {
                            return Err(XmlError::TooDeep(self.limits.xml.max_depth).into());
                        }
                        Lex::Text
                    }
                    _ => Lex::Tag {
                        quote: None,
                        slash: b == b'/',
                    },
                },
                Lex::EndTag if b != b'>' => Lex::EndTag,
                Lex::EndTag if self.depth == 0 => {
                    // The end of the stream itself.
                    let name = &buf[self.tag_start + 2..at];
                    let name = &name[..name.len() - trailing_spaces(name)];
                    if name != self.header_name.as_slice() {
                        return Err(StreamError::NotWellFormed(
                            "an end tag that does not close the stream",
                        ));
                    }
                    return Ok(Some(Unit::Close));
                }
                Lex::EndTag => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Ok(Some(Unit::Stanza));
                    }
                    Lex::Text
                }
                Lex::Text if b == b'<' => {
                    self.tag_start = at;
                    Lex::Lt
                }
                Lex::Text => Lex::Text,
            };
        }
        Ok(None)
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trailing_spaces(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(|b| is_space(**b)).count()
}

/// The qualified name at the start of a tag's bytes (after its `<`).
fn tag_name(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| is_space(b) || b == b'>' || b == b'/')
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// The namespaces in force inside the server's own stream header: stanzas are rendered in
/// it.
pub fn server_scope() -> Scope {
    Scope::new(JABBER_CLIENT).with_prefix("stream", STREAMS_NS)
}

/// What the server's stream header says.
#[derive(Debug, Clone, Copy)]
pub struct ServerHeader<'a> {
    /// A fresh stream id for each header, restarts included.
    pub id: &'a str,
    /// The service domain.
    pub from: &'a str,
    /// The client's JID, once known.
    pub to: Option<&'a str>,
    pub lang: &'a str,
}

/// `<?xml version='1.0'?><stream:stream xmlns=… xmlns:stream=… id=… from=… version="1.0">`.
pub fn render_header(out: &mut String, header: &ServerHeader<'_>) {
    let mut open = Element::new("stream:stream")
        .with_attr("xmlns", JABBER_CLIENT)
        .with_attr("xmlns:stream", STREAMS_NS)
        .with_attr("id", header.id)
        .with_attr("from", header.from);
    if let Some(to) = header.to {
        open = open.with_attr("to", to);
    }
    open = open
        .with_attr("version", "1.0")
        .with_attr("xml:lang", header.lang);
    out.push_str("<?xml version='1.0'?>");
    open.write_open(out);
}

pub fn render_close(out: &mut String) {
    out.push_str("</stream:stream>");
}

/// A stanza or nonza in the server's stream ([`server_scope`]), as parsed: an element
/// without a namespace is written with `xmlns=""`.
pub fn render_stanza(out: &mut String, stanza: &Element) {
    stanza.write_in(out, &server_scope());
}

/// A stanza the server built: elements made without a namespace are in their parent's
/// (a stanza's own is `jabber:client`).
pub fn render_built(out: &mut String, stanza: &Element) {
    stanza.write_in(out, &server_scope().inheriting());
}

/// `<stream:error><condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`.
pub fn stream_error(condition: &str) -> Element {
    Element::new("error")
        .with_namespace(STREAMS_NS)
        .with_child(Element::new(condition).with_namespace(STREAM_ERRORS_NS))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
