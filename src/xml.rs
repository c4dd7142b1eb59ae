//! A small bounded element tree over quick-xml, shared by the gateways. XCCOS envelopes are
//! tiny, and a tree lets each command read its data block directly ([`parse`]: plain names,
//! `xmlns` kept as an attribute, as SIPE ignores namespaces). XMPP stanzas need their
//! namespaces ([`parse_in`], [`open_tag`], [`Element::write_in`]). No DTD, no entity
//! expansion beyond the five predefined entities and character references; depth, element
//! and attribute counts capped. This is a utility layer: it names no other module.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::Reader;
use quick_xml::events::{BytesDecl, BytesStart, Event};

/// The namespace the `xml` prefix is bound to without a declaration.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` itself, which nothing may be declared to.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name; XCCOS uses a default namespace and SIPE ignores prefixes.
    pub name: String,
    /// The namespace name, resolved by the namespace-aware parse ([`parse_in`]); empty
    /// from the plain [`parse`], which leaves `xmlns` among the attributes.
    pub namespace: String,
    /// In namespace-aware trees the `xmlns` declaration is not among them (it is
    /// `namespace`), but `xmlns:p` declarations are, so prefixed attributes stay bound.
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
    /// Already-serialised XML written after the children: content perch keeps without
    /// interpreting (unknown `grpchat` children), produced by [`Element::write`] earlier.
    pub verbatim: String,
}

impl Element {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Attribute by name, case-insensitively (SIPE matches attribute names that way).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child with this local name in this namespace.
    pub fn child_in(&self, name: &str, namespace: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name == name && c.namespace == namespace)
    }

    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.push((name.to_owned(), value.into()));
        self
    }

    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Serializes without declaration or whitespace, as SIPE itself sends. Names are
    /// written as they are and `namespace` is ignored (the plain form of [`parse`]).
    pub fn write(&self, out: &mut String) {
        self.write_tree(out, None);
    }

    /// Serializes a namespace-aware tree inside `scope` (the namespaces its parent
    /// declared): `xmlns="…"` where the namespace differs from the default in force, or a
    /// prefix in force bound to it (`stream:error` inside a stream). `parse_in` with the
    /// same scope gives the tree back.
    pub fn write_in(&self, out: &mut String, scope: &Scope) {
        let mut scope = scope.clone();
        self.write_tree(out, Some(&mut scope));
    }

    /// Writes only the start tag, left open, in the plain form: a stream header.
    pub fn write_open(&self, out: &mut String) {
        write_start_tag(out, &self.name, None, &self.attributes);
        out.push('>');
    }

    fn write_tree(&self, out: &mut String, mut scope: Option<&mut Scope>) {
        let mark = scope.as_deref().map(Scope::mark);
        let (name, xmlns) = match scope.as_deref_mut() {
            None => (Cow::Borrowed(self.name.as_str()), None),
            Some(scope) => scope.qualify(self),
        };
        write_start_tag(out, &name, xmlns, &self.attributes);
        if self.children.is_empty() && self.text.is_empty() && self.verbatim.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            escape_into(&self.text, out);
            for child in &self.children {
                child.write_tree(out, scope.as_deref_mut());
            }
            out.push_str(&self.verbatim);
            out.push_str("</");
            out.push_str(&name);
            out.push('>');
        }
        if let (Some(scope), Some(mark)) = (scope, mark) {
            scope.restore(mark);
        }
    }

    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write(&mut out);
        out
    }
}

/// `<name xmlns="…" a="…"`, without the closing `>` or `/>`.
fn write_start_tag(
    out: &mut String,
    name: &str,
    xmlns: Option<&str>,
    attributes: &[(String, String)],
) {
    out.push('<');
    out.push_str(name);
    let declaration = xmlns.map(|ns| ("xmlns", ns));
    let attributes = attributes.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    for (name, value) in declaration.into_iter().chain(attributes) {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_attribute_into(value, out);
        out.push('"');
    }
}

/// The namespaces in force at a point of a document: the default namespace and the
/// prefixes declared so far, later declarations shadowing earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    default: String,
    prefixes: Vec<(String, String)>,
    /// Writing: an element without a namespace takes its parent's ([`Scope::inheriting`]).
    inherit: bool,
}

/// Where a scope was before an element's declarations, to restore at its end.
type Mark = (String, usize);

impl Scope {
    pub fn new(default: &str) -> Self {
        Self {
            default: default.to_owned(),
            prefixes: Vec::new(),
            inherit: false,
        }
    }

    /// For writing trees that were built, not parsed: an element made without a namespace
    /// takes its parent's, never an `xmlns=""` that would undeclare it.
    pub fn inheriting(mut self) -> Self {
        self.inherit = true;
        self
    }

    pub fn with_prefix(mut self, prefix: &str, namespace: &str) -> Self {
        self.prefixes
            .push((prefix.to_owned(), namespace.to_owned()));
        self
    }

    pub fn default_namespace(&self) -> &str {
        &self.default
    }

    /// The namespace `prefix` is bound to; `xml` always is.
    pub fn namespace_of(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        self.prefixes
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns.as_str())
    }

    /// Every declaration in force, outermost first (shadowed ones included).
    pub fn prefixes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.prefixes
            .iter()
            .map(|(p, ns)| (p.as_str(), ns.as_str()))
    }

    fn mark(&self) -> Mark {
        (self.default.clone(), self.prefixes.len())
    }

    fn restore(&mut self, (default, prefixes): Mark) {
        self.default = default;
        self.prefixes.truncate(prefixes);
    }

    /// A prefix bound to `namespace` and not shadowed. One pass with a set, so a scope of
    /// many declarations costs linear time per element, not quadratic.
    fn prefix_for(&self, namespace: &str) -> Option<&str> {
        // The XML namespace may not be a default namespace; its prefix needs no declaration.
        if namespace == XML_NS {
            return Some("xml");
        }
        let mut seen = HashSet::new();
        self.prefixes
            .iter()
            .rev()
            .filter(|(p, _)| seen.insert(p.as_str()))
            .find(|(_, ns)| ns == namespace)
            .map(|(p, _)| p.as_str())
    }

    /// Enters `element` for writing: its own `xmlns:p` declarations, then the name to
    /// write and the `xmlns` to add, if any.
    fn qualify<'e>(&mut self, element: &'e Element) -> (Cow<'e, str>, Option<&'e str>) {
        for (name, value) in &element.attributes {
            if let Some(prefix) = name.strip_prefix("xmlns:") {
                self.prefixes.push((prefix.to_owned(), value.clone()));
            }
        }
        if element.namespace == self.default || (element.namespace.is_empty() && self.inherit) {
            (Cow::Borrowed(&element.name), None)
        } else if let Some(prefix) = self.prefix_for(&element.namespace) {
            (Cow::Owned(format!("{prefix}:{}", element.name)), None)
        } else {
            self.default.clone_from(&element.namespace);
            (Cow::Borrowed(&element.name), Some(&element.namespace))
        }
    }

    /// Enters a parsed start tag: applies its declarations (removing `xmlns` from the
    /// attributes) and resolves the element's and the attributes' prefixes.
    fn enter(&mut self, prefix: Option<&str>, element: &mut Element) -> Result<(), XmlError> {
        let mut default = None;
        element.attributes.retain(|(name, value)| {
            let is_default = name == "xmlns";
            if is_default {
                default = Some(value.clone());
            }
            !is_default
        });
        if let Some(default) = default {
            if default == XML_NS || default == XMLNS_NS {
                return Err(XmlError::Namespace(format!("xmlns=\"{default}\"")));
            }
            self.default = default;
        }
        for (name, value) in &element.attributes {
            if let Some(declared) = name.strip_prefix("xmlns:") {
                // Namespaces in XML 1.0 §3: no undeclaring a prefix, `xmlns` is never
                // declared, and `xml` is bound to its namespace and only it to that.
                if value.is_empty()
                    || declared == "xmlns"
                    || value == XMLNS_NS
                    || (declared == "xml") != (value == XML_NS)
                {
                    return Err(XmlError::Namespace(format!("xmlns:{declared}=\"{value}\"")));
                }
                self.prefixes.push((declared.to_owned(), value.clone()));
            }
        }
        for (name, _) in &element.attributes {
            if let Some((prefix, _)) = name.split_once(':')
                && prefix != "xmlns"
                && self.namespace_of(prefix).is_none()
            {
                return Err(XmlError::UnboundPrefix(prefix.to_owned()));
            }
        }
        element.namespace = match prefix {
            None => self.default.clone(),
            Some(prefix) => self
                .namespace_of(prefix)
                .ok_or_else(|| XmlError::UnboundPrefix(prefix.to_owned()))?
                .to_owned(),
        };
        Ok(())
    }
}

/// Escapes text content. CR is written as a character reference, because a parser
/// normalises a literal CR LF to LF and SIPE's line breaks are CR LF.
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Escapes an attribute value; line breaks and tabs too, which attribute-value
/// normalisation would otherwise turn into spaces.
pub fn escape_attribute_into(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => escape_into(c.encode_utf8(&mut [0; 4]), out),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct XmlLimits {
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
    /// Longest attribute value, and longest text of one element.
    pub max_value_bytes: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_elements: 4096,
            max_attributes: 32,
            // A story (the longest message kind) is 64,000 bytes by default.
            max_value_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("malformed XML: {0}")]
    Syntax(String),
    #[error("DTDs are not accepted")]
    Doctype,
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
    /// Comments, processing instructions, a misplaced XML declaration: ignored by the
    /// plain parse, refused by the namespace-aware one (RFC 6120 §11.1).
    #[error("{0} are not accepted")]
    Forbidden(&'static str),
    #[error("undeclared namespace prefix {0:?}")]
    UnboundPrefix(String),
    #[error("invalid namespace declaration {0}")]
    Namespace(String),
    #[error("encoding {0:?} is not UTF-8")]
    Encoding(String),
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("more than {0} elements")]
    TooManyElements(usize),
    #[error("more than {0} attributes on one element")]
    TooManyAttributes(usize),
    #[error("an attribute or text longer than {0} bytes")]
    ValueTooLong(usize),
    #[error("no root element")]
    Empty,
}

/// Parses one document in the plain form XCCOS uses: local names, no namespaces, comments
/// and processing instructions skipped.
pub fn parse(input: &[u8], limits: &XmlLimits) -> Result<Element, XmlError> {
    Tree::new(limits, None)
        .run(input, false)
        .map(|(element, _)| element)
}

/// Parses one element namespace-aware, inside `scope` (what its parent declared):
/// element namespaces resolved, comments, processing instructions and XML declarations
/// refused. An XMPP stanza, cut from its stream by the framer.
pub fn parse_in(input: &[u8], limits: &XmlLimits, scope: &Scope) -> Result<Element, XmlError> {
    Tree::new(limits, Some(scope.clone()))
        .run(input, false)
        .map(|(element, _)| element)
}

/// Parses an optional XML declaration (version 1.0, UTF-8 if it names an encoding) and one
/// start tag left open, namespace-aware: an XMPP stream header. Returns the element
/// (without children) and the scope inside it.
pub fn open_tag(input: &[u8], limits: &XmlLimits) -> Result<(Element, Scope), XmlError> {
    Tree::new(limits, Some(Scope::default())).run(input, true)
}

/// One parse: the open elements, and in the namespace-aware form the scope in force.
struct Tree<'l> {
    limits: &'l XmlLimits,
    scope: Option<Scope>,
    marks: Vec<Mark>,
    stack: Vec<Element>,
    root: Option<Element>,
    elements: usize,
}

impl<'l> Tree<'l> {
    fn new(limits: &'l XmlLimits, scope: Option<Scope>) -> Self {
        Self {
            limits,
            scope,
            marks: Vec::new(),
            stack: Vec::new(),
            root: None,
            elements: 0,
        }
    }

    fn run(mut self, input: &[u8], open_only: bool) -> Result<(Element, Scope), XmlError> {
        let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
        let strict = self.scope.is_some();
        // No trimming: around entity references it would eat spaces that belong to a message.
        let mut reader = Reader::from_str(text);
        let mut first = true;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| XmlError::Syntax(e.to_string()))?;
            let at_start = std::mem::replace(&mut first, false);
            match event {
                Event::Start(_) | Event::Empty(_) if self.root.is_some() => {
                    return Err(XmlError::Syntax("content after the root element".into()));
                }
                Event::Empty(_) if open_only => {
                    return Err(XmlError::Syntax("the start tag closes itself".into()));
                }
                Event::Start(start) => {
                    self.open(&start)?;
                    if open_only {
                        return self.opened(&mut reader);
                    }
                }
                Event::Empty(start) => {
                    self.open(&start)?;
                    self.close()?;
                }
                Event::End(_) => self.close()?,
                Event::Text(t) => self.push_text(xml_chars(&t.xml10_content())?)?,
                Event::CData(c) => self.push_text(xml_chars(&c.xml10_content())?)?,
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => predefined_entity(&r)
                            .ok_or_else(|| XmlError::UnknownEntity(r.to_string()))?
                            .to_owned(),
                        Err(e) => return Err(XmlError::Syntax(e.to_string())),
                    };
                    self.push_text(xml_chars(&resolved)?)?;
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Decl(decl) if strict => {
                    if !(open_only && at_start) {
                        return Err(XmlError::Forbidden("XML declarations inside a document"));
                    }
                    check_declaration(&decl)?;
                }
                Event::PI(_) if strict => {
                    return Err(XmlError::Forbidden("processing instructions"));
                }
                Event::Comment(_) if strict => return Err(XmlError::Forbidden("comments")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        // The raw reader reports Eof without error for unclosed elements.
        if !self.stack.is_empty() || open_only {
            return Err(XmlError::Syntax("unclosed element".into()));
        }
        let root = self.root.ok_or(XmlError::Empty)?;
        Ok((root, self.scope.unwrap_or_default()))
    }

    /// After the start tag `open_tag` wants: nothing may follow it.
    fn opened(mut self, reader: &mut Reader<&[u8]>) -> Result<(Element, Scope), XmlError> {
        match reader.read_event() {
            Ok(Event::Eof) => {}
            Ok(_) => return Err(XmlError::Syntax("content after the start tag".into())),
            Err(e) => return Err(XmlError::Syntax(e.to_string())),
        }
        match (self.stack.pop(), self.scope) {
            (Some(element), Some(scope)) => Ok((element, scope)),
            // `open` has just pushed the element, and `open_tag` always has a scope.
            _ => Err(XmlError::Empty),
        }
    }

    fn open(&mut self, start: &BytesStart<'_>) -> Result<(), XmlError> {
        self.elements += 1;
        let depth = self.stack.len() + 1;
        if depth > self.limits.max_depth {
            return Err(XmlError::TooDeep(self.limits.max_depth));
        }
        if self.elements > self.limits.max_elements {
            return Err(XmlError::TooManyElements(self.limits.max_elements));
        }
        let element = match &mut self.scope {
            None => element_from(start, self.limits)?,
            Some(scope) => {
                let (prefix, mut element) = namespaced_element_from(start, self.limits)?;
                self.marks.push(scope.mark());
                scope.enter(prefix.as_deref(), &mut element)?;
                element
            }
        };
        self.stack.push(element);
        Ok(())
    }

    fn close(&mut self) -> Result<(), XmlError> {
        let mut element = self
            .stack
            .pop()
            .ok_or_else(|| XmlError::Syntax("unbalanced end tag".into()))?;
        if let (Some(scope), Some(mark)) = (&mut self.scope, self.marks.pop()) {
            scope.restore(mark);
        }
        // Indentation between child elements is not content.
        if !element.children.is_empty() && element.text.chars().all(is_xml_space) {
            element.text.clear();
        }
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
        Ok(())
    }

    fn push_text(&mut self, text: &str) -> Result<(), XmlError> {
        match self.stack.last_mut() {
            Some(element) => {
                if element.text.len() + text.len() > self.limits.max_value_bytes {
                    return Err(XmlError::ValueTooLong(self.limits.max_value_bytes));
                }
                element.text.push_str(text);
                Ok(())
            }
            None if text.trim().is_empty() => Ok(()),
            None => Err(XmlError::Syntax("text outside the root element".into())),
        }
    }
}

/// XML 1.0 only, and only UTF-8 (RFC 6120 §11.6).
fn check_declaration(decl: &BytesDecl<'_>) -> Result<(), XmlError> {
    let version = decl
        .version()
        .map_err(|e| XmlError::Syntax(e.to_string()))?;
    if version != "1.0" {
        return Err(XmlError::Syntax(format!("XML version {version:?}")));
    }
    if let Some(encoding) = decl.encoding() {
        let encoding = encoding.map_err(|e| XmlError::Syntax(e.to_string()))?;
        if !encoding.eq_ignore_ascii_case("UTF-8") {
            return Err(XmlError::Encoding(encoding.into_owned()));
        }
    }
    Ok(())
}

/// Refuses characters XML 1.0 forbids anywhere in a document, written or referenced
/// (the `Char` production: no C0 controls but tab, CR and LF; no U+FFFE/U+FFFF), as any
/// conforming parser would.
fn xml_chars(text: &str) -> Result<&str, XmlError> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    };
    match text.chars().find(|&c| !allowed(c)) {
        None => Ok(text),
        Some(c) => Err(XmlError::Syntax(format!(
            "character U+{:04X} is not allowed in XML 1.0",
            u32::from(c)
        ))),
    }
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

/// XML white space (the `S` production). Not `char::is_whitespace`: NBSP, NEL and the
/// like are content.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// An XML name perch accepts after dropping one `prefix:`: ASCII letters, digits, `_`, `-`,
/// `.`, not starting with a digit, `-` or `.`. XCCOS and XMPP use nothing else, and a name
/// that could not be written back unchanged is refused rather than mangled.
fn local_name(name: &str) -> Result<String, XmlError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(XmlError::Syntax(format!("unsupported name {name:?}")))
    }
}

/// A qualified name of the namespace-aware form: `local` or `prefix:local`, each part a
/// name [`local_name`] accepts.
fn qualified_name(raw: &str) -> Result<(Option<String>, String), XmlError> {
    match raw.split_once(':') {
        None => Ok((None, local_name(raw)?)),
        Some((prefix, local)) => Ok((Some(local_name(prefix)?), local_name(local)?)),
    }
}

/// The attributes of a start tag, checked: count, value size, no raw `<`, no duplicate
/// name, entities resolved and characters allowed. `name` maps the raw attribute name to
/// the stored one.
fn attributes_of(
    start: &BytesStart<'_>,
    limits: &XmlLimits,
    name: impl Fn(&str) -> Result<String, XmlError>,
) -> Result<Vec<(String, String)>, XmlError> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Syntax(e.to_string()))?;
        if attributes.len() >= limits.max_attributes {
            return Err(XmlError::TooManyAttributes(limits.max_attributes));
        }
        // XML 1.0 §3.1 (AttValue): a literal `<` must be written `&lt;`.
        if attribute.value.contains('<') {
            return Err(XmlError::Syntax("a raw '<' in an attribute value".into()));
        }
        let name = name(attribute.key.as_ref())?;
        if attributes.iter().any(|(existing, _)| *existing == name) {
            return Err(XmlError::Syntax(format!("attribute {name:?} given twice")));
        }
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| match e {
                quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                    _,
                    n,
                )) => XmlError::UnknownEntity(n),
                other => XmlError::Syntax(other.to_string()),
            })?
            .into_owned();
        // The value's own length, not its escaped form's: what is kept is bounded, and a
        // value read once reads again after perch writes it with its quotes escaped.
        if value.len() > limits.max_value_bytes {
            return Err(XmlError::ValueTooLong(limits.max_value_bytes));
        }
        xml_chars(&value)?;
        attributes.push((name, value));
    }
    Ok(attributes)
}

/// The plain form: the local names of the element and its attributes.
fn element_from(start: &BytesStart<'_>, limits: &XmlLimits) -> Result<Element, XmlError> {
    let plain = |raw: &str| {
        // One `prefix:` dropped, as quick-xml's local_name does; the rest must be a name.
        local_name(raw.split_once(':').map_or(raw, |(_, local)| local))
    };
    let mut element = Element::new(&plain(start.name().as_ref())?);
    element.attributes = attributes_of(start, limits, plain)?;
    Ok(element)
}

/// The namespace-aware form: the element's prefix (resolved by [`Scope::enter`]) and its
/// local name; attributes keep their qualified names.
fn namespaced_element_from(
    start: &BytesStart<'_>,
    limits: &XmlLimits,
) -> Result<(Option<String>, Element), XmlError> {
    let (prefix, name) = qualified_name(start.name().as_ref())?;
    let mut element = Element::new(&name);
    element.attributes = attributes_of(start, limits, |raw| {
        let (prefix, local) = qualified_name(raw)?;
        Ok(match prefix {
            None => local,
            Some(prefix) => format!("{prefix}:{local}"),
        })
    })?;
    Ok((prefix, element))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_bounded_by_its_own_length_not_its_escaped_form() {
        let limits = XmlLimits {
            max_value_bytes: 10,
            ..XmlLimits::default()
        };
        let read = parse(br#"<a v="''''''''''"/>"#, &limits).unwrap();
        assert_eq!(read.attr("v"), Some("''''''''''"));
        // Written again, each ' becomes &apos;: 60 bytes of markup for a 10-byte value.
        let written = read.to_xml();
        assert!(written.len() > 60, "{written}");
        assert_eq!(parse(written.as_bytes(), &limits).unwrap(), read);
        let longer = parse(br#"<a v="'''''''''''"/>"#, &limits);
        assert!(
            matches!(longer, Err(XmlError::ValueTooLong(10))),
            "{longer:?}"
        );
    }

    fn p(text: &str) -> Result<Element, XmlError> {
        parse(text.as_bytes(), &XmlLimits::default())
    }

    #[test]
    fn characters_xml_forbids_and_raw_lt_in_attributes_are_malformed() {
        for bad in [
            "<a v=\"ma-chan://x/\u{3}\u{5}\"/>",
            "<a v=\"a<b\"/>",
            "<a>text \u{5} here</a>",
            "<a>&#3;</a>",
            "<a v=\"&#x1F;\"/>",
            "<a>\u{FFFE}</a>",
        ] {
            assert!(
                matches!(p(bad), Err(XmlError::Syntax(_))),
                "{bad:?}: {:?}",
                p(bad)
            );
        }
        // Tab, line ends, markup written as references and characters above the BMP stay.
        let good = p("<a v=\"1&lt;2\ttab\">line\r\nnext &#x1F600; \u{1F600}</a>").unwrap();
        assert_eq!(good.attr("v"), Some("1<2 tab"));
        assert!(good.text.contains('\u{1F600}'));
    }

    #[test]
    fn parses_envelope_and_round_trips() {
        let xml = r#"<?xml version="1.0"?><xccos ver="1" envid="7" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:join" seqid="1"><data><chanib uri="ma-chan://d/1" topic="two&#10;lines"/><chat>a &amp; b &#65;&#13;&#10;c</chat></data></cmd></xccos>"#;
        let root = p(xml).unwrap();
        assert_eq!(root.name, "xccos");
        assert_eq!(root.attr("ENVID"), Some("7"));
        let data = root.child("cmd").unwrap().child("data").unwrap();
        assert_eq!(data.child("chat").unwrap().text, "a & b A\r\nc");
        assert_eq!(
            data.child("chanib").unwrap().attr("topic"),
            Some("two\nlines")
        );
        let again = p(&root.to_xml()).unwrap();
        assert_eq!(again, root);
    }

    #[test]
    fn rejects_attacks_and_garbage() {
        let laughs = r#"<!DOCTYPE lolz [<!ENTITY lol "lol">]><xccos>&lol;</xccos>"#;
        assert_eq!(p(laughs), Err(XmlError::Doctype));
        assert!(matches!(
            p("<xccos>&lol;</xccos>"),
            Err(XmlError::UnknownEntity(_))
        ));
        assert!(matches!(
            p(r#"<xccos a="&lol;"/>"#),
            Err(XmlError::UnknownEntity(_))
        ));
        let deep = "<a>".repeat(100_000);
        assert_eq!(p(&deep), Err(XmlError::TooDeep(16)));
        let wide = format!("<a>{}</a>", "<b/>".repeat(5000));
        assert_eq!(p(&wide), Err(XmlError::TooManyElements(4096)));
        let attrs: String = (0..40).map(|i| format!(" a{i}=\"x\"")).collect();
        assert_eq!(
            p(&format!("<a{attrs}/>")),
            Err(XmlError::TooManyAttributes(32))
        );
        let long = "x".repeat(70_000);
        assert_eq!(
            p(&format!("<a v=\"{long}\"/>")),
            Err(XmlError::ValueTooLong(65_536))
        );
        assert_eq!(
            p(&format!("<a>{long}</a>")),
            Err(XmlError::ValueTooLong(65_536))
        );
        assert!(p("<a><b></a>").is_err());
        // Found by fuzzing: names that could not be written back unchanged.
        for odd in [
            r#"<p:/>"#,
            r#"<a p:q:b="1"/>"#,
            r#"<a b="1" p:b="2"/>"#,
            r#"<a"p:b" c="1"/>"#,
        ] {
            assert!(matches!(p(odd), Err(XmlError::Syntax(_))), "{odd}");
        }
        assert!(p("<a><b>").is_err());
        assert_eq!(p(""), Err(XmlError::Empty));
        assert!(p("<a/><b/>").is_err());
        assert_eq!(
            parse(b"<a>\xff</a>", &XmlLimits::default()),
            Err(XmlError::NotUtf8)
        );
    }

    #[test]
    fn only_xml_white_space_beside_children_is_indentation() {
        // Found by proptest: text of only NBSP (or NEL, U+3000) beside children was
        // dropped as if it were indentation.
        let nbsp = p("<a>\u{a0}<b/></a>").unwrap();
        assert_eq!(nbsp.text, "\u{a0}");
        assert_eq!(p(&nbsp.to_xml()).unwrap(), nbsp);
        assert_eq!(p("<a>\r\n\t <b/>\n</a>").unwrap().text, "");
    }

    #[test]
    fn namespace_aware_parse_resolves_and_checks_declarations() {
        let scope = Scope::new("jabber:client").with_prefix("stream", "urn:s");
        let ns = |text: &str| parse_in(text.as_bytes(), &XmlLimits::default(), &scope);
        let tree = ns("<a xml:lang='en'><stream:b/><xml:c/><d xmlns='urn:d'><e/></d></a>").unwrap();
        assert_eq!(tree.namespace, "jabber:client");
        assert_eq!(tree.attr("xml:lang"), Some("en"));
        assert_eq!(tree.children[0].namespace, "urn:s");
        assert_eq!(tree.children[1].namespace, XML_NS);
        assert_eq!(tree.children[2].children[0].namespace, "urn:d");
        let mut text = String::new();
        tree.write_in(&mut text, &scope);
        assert_eq!(
            text,
            "<a xml:lang=\"en\"><stream:b/><xml:c/><d xmlns=\"urn:d\"><e/></d></a>"
        );
        assert_eq!(ns(&text), Ok(tree));
        for bad in [
            "<a xmlns:p=''/>",
            "<a xmlns:xmlns='urn:x'/>",
            "<a xmlns:xml='urn:x'/>",
            "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
            "<a xmlns='http://www.w3.org/XML/1998/namespace'/>",
        ] {
            assert!(matches!(ns(bad), Err(XmlError::Namespace(_))), "{bad}");
        }
        assert_eq!(ns("<p:a/>"), Err(XmlError::UnboundPrefix("p".into())));
        assert_eq!(ns("<a p:b='1'/>"), Err(XmlError::UnboundPrefix("p".into())));
        assert_eq!(
            ns("<a><!-- x --></a>"),
            Err(XmlError::Forbidden("comments"))
        );
        assert_eq!(
            ns("<a><?x y?></a>"),
            Err(XmlError::Forbidden("processing instructions"))
        );
        // The plain parse keeps ignoring both, as XCCOS always has.
        assert!(p("<a><!-- x --><?x y?></a>").is_ok());
        let (open, inside) = open_tag(
            b"<?xml version='1.0'?>\n<s:s xmlns='urn:c' xmlns:s='urn:s' to='x'>",
            &XmlLimits::default(),
        )
        .unwrap();
        assert_eq!(
            (open.name.as_str(), open.namespace.as_str()),
            ("s", "urn:s")
        );
        assert_eq!(inside.default_namespace(), "urn:c");
        assert_eq!(inside.namespace_of("s"), Some("urn:s"));
        assert!(open_tag(b"<a/>", &XmlLimits::default()).is_err());
        assert!(open_tag(b"<a><b>", &XmlLimits::default()).is_err());
    }

    mod round_trip {
        use proptest::prelude::*;

        use super::*;

        /// The names `parse` keeps: ASCII NCNames.
        fn name() -> impl Strategy<Value = String> {
            "[A-Za-z_][A-Za-z0-9_.-]{0,8}"
        }

        /// Any XML 1.0 character, markup and white space more often than the rest.
        fn xml_char() -> impl Strategy<Value = char> {
            prop_oneof![
                3 => proptest::sample::select(vec!['<', '>', '&', '"', '\'', '\r', '\n', '\t', ' ', ';', '#', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}']),
                3 => proptest::char::range(' ', '~'),
                1 => proptest::char::range('\u{80}', '\u{D7FF}'),
                1 => proptest::char::range('\u{E000}', '\u{FFFD}'),
                1 => proptest::char::range('\u{10000}', '\u{10FFFF}'),
            ]
        }

        fn xml_text() -> impl Strategy<Value = String> {
            prop::collection::vec(xml_char(), 0..24).prop_map(String::from_iter)
        }

        /// Distinct names, as `parse` requires.
        fn attributes() -> impl Strategy<Value = Vec<(String, String)>> {
            prop::collection::btree_map(name(), xml_text(), 0..5)
                .prop_map(|map| map.into_iter().collect())
        }

        fn element() -> impl Strategy<Value = Element> {
            let leaf =
                (name(), attributes(), xml_text()).prop_map(|(name, attributes, text)| Element {
                    name,
                    attributes,
                    text,
                    ..Element::default()
                });
            leaf.prop_recursive(4, 32, 4, move |inner| {
                (
                    name(),
                    attributes(),
                    xml_text(),
                    prop::collection::vec(inner, 1..4),
                )
                    .prop_map(|(name, attributes, text, children)| {
                        let text = if text.chars().all(is_xml_space) {
                            String::new()
                        } else {
                            text
                        };
                        Element {
                            name,
                            attributes,
                            children,
                            text,
                            ..Element::default()
                        }
                    })
            })
        }

        proptest! {
            /// to_xml → parse gives the tree back.
            #[test]
            fn to_xml_then_parse(tree in element()) {
                let text = tree.to_xml();
                prop_assert_eq!(parse(text.as_bytes(), &XmlLimits::default()), Ok(tree), "{}", text);
            }
        }
    }
}
