//! A small bounded element tree over quick-xml: XCCOS envelopes are tiny, and a tree lets
//! each command read its data block directly. No DTD, no entity expansion beyond the five
//! predefined entities and character references; depth, element and attribute counts capped.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name; XCCOS uses a default namespace and SIPE ignores prefixes.
    pub name: String,
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

    /// Serializes without declaration or whitespace, as SIPE itself sends.
    pub fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (name, value) in &self.attributes {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_attribute_into(value, out);
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_empty() && self.verbatim.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        escape_into(&self.text, out);
        for child in &self.children {
            child.write(out);
        }
        out.push_str(&self.verbatim);
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write(&mut out);
        out
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
fn escape_attribute_into(value: &str, out: &mut String) {
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

pub fn parse(input: &[u8], limits: &XmlLimits) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    // No trimming: around entity references it would eat spaces that belong to a message.
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(XmlError::Syntax("content after the root element".into()));
            }
            Event::Start(start) => {
                elements += 1;
                check_counts(elements, stack.len() + 1, limits)?;
                stack.push(element_from(&start, limits)?);
            }
            Event::Empty(start) => {
                elements += 1;
                check_counts(elements, stack.len() + 1, limits)?;
                let element = element_from(&start, limits)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(t) => push_text(&mut stack, xml_chars(&t.xml10_content())?, limits)?,
            Event::CData(c) => push_text(&mut stack, xml_chars(&c.xml10_content())?, limits)?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => predefined_entity(&r)
                        .ok_or_else(|| XmlError::UnknownEntity(r.to_string()))?
                        .to_owned(),
                    Err(e) => return Err(XmlError::Syntax(e.to_string())),
                };
                push_text(&mut stack, xml_chars(&resolved)?, limits)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    // The raw reader reports Eof without error for unclosed elements.
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unclosed element".into()));
    }
    root.ok_or(XmlError::Empty)
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

fn check_counts(elements: usize, depth: usize, limits: &XmlLimits) -> Result<(), XmlError> {
    if depth > limits.max_depth {
        return Err(XmlError::TooDeep(limits.max_depth));
    }
    if elements > limits.max_elements {
        return Err(XmlError::TooManyElements(limits.max_elements));
    }
    Ok(())
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

fn push_text(stack: &mut [Element], text: &str, limits: &XmlLimits) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(element) => {
            if element.text.len() + text.len() > limits.max_value_bytes {
                return Err(XmlError::ValueTooLong(limits.max_value_bytes));
            }
            element.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

fn close(stack: &mut [Element], root: &mut Option<Element>, mut element: Element) {
    // Indentation between child elements is not content.
    if !element.children.is_empty() && element.text.chars().all(is_xml_space) {
        element.text.clear();
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// XML white space (the `S` production). Not `char::is_whitespace`: NBSP, NEL and the
/// like are content.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// An XML name perch accepts after dropping one `prefix:`: ASCII letters, digits, `_`, `-`,
/// `.`, not starting with a digit, `-` or `.`. XCCOS uses nothing else, and a name that
/// could not be written back unchanged is refused rather than mangled.
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

fn element_from(start: &BytesStart<'_>, limits: &XmlLimits) -> Result<Element, XmlError> {
    let mut element = Element::new(&local_name(start.local_name().as_ref())?);
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Syntax(e.to_string()))?;
        if element.attributes.len() >= limits.max_attributes {
            return Err(XmlError::TooManyAttributes(limits.max_attributes));
        }
        if attribute.value.len() > limits.max_value_bytes {
            return Err(XmlError::ValueTooLong(limits.max_value_bytes));
        }
        // XML 1.0 §3.1 (AttValue): a literal `<` must be written `&lt;`.
        if attribute.value.contains('<') {
            return Err(XmlError::Syntax("a raw '<' in an attribute value".into()));
        }
        let name = local_name(attribute.key.local_name().as_ref())?;
        if element
            .attributes
            .iter()
            .any(|(existing, _)| *existing == name)
        {
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
        xml_chars(&value)?;
        element.attributes.push((name, value));
    }
    Ok(element)
}

#[cfg(test)]
mod tests {
    use super::*;

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
