use bytes::BytesMut;

use super::*;

const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0' xml:lang='en'>";

/// Everything the framer gives for `input` fed in one read, until `Ok(None)` or an error.
fn frame_all(
    framer: &mut StreamFramer,
    buf: &mut BytesMut,
) -> (Vec<StreamEvent>, Option<StreamError>) {
    let mut events = Vec::new();
    loop {
        match framer.next(buf) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(error) => return (events, Some(error)),
        }
    }
}

fn frame(input: &str) -> (Vec<StreamEvent>, Option<StreamError>) {
    frame_with(input, StreamLimits::default())
}

fn frame_with(input: &str, limits: StreamLimits) -> (Vec<StreamEvent>, Option<StreamError>) {
    let mut framer = StreamFramer::new(limits);
    frame_all(&mut framer, &mut BytesMut::from(input))
}

/// The error a stream with `body` after the header ends in.
fn error_after_header(body: &str) -> StreamError {
    let (_, error) = frame(&format!("{HEADER}{body}"));
    error.unwrap_or_else(|| panic!("{body:?} was accepted"))
}

fn stanzas(events: &[StreamEvent]) -> Vec<&Element> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Stanza(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn header_with_and_without_declaration() {
    for prefix in [
        "",
        "<?xml version='1.0'?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    ] {
        let (events, error) = frame(&format!("{prefix}{HEADER}"));
        assert_eq!(error, None, "{prefix:?}");
        assert_eq!(
            events,
            vec![StreamEvent::Open(StreamHeader {
                to: Some("example.test".into()),
                version: Some("1.0".into()),
                lang: Some("en".into()),
                ..StreamHeader::default()
            })],
            "{prefix:?}"
        );
    }
    let (_, error) = frame(&format!(
        "<?xml version='1.0' encoding='ISO-8859-1'?>{HEADER}"
    ));
    assert_eq!(error.unwrap().condition(), "unsupported-encoding");
}

#[test]
fn several_stanzas_in_one_buffer_and_keepalives() {
    let input = format!(
        "{HEADER} <message to='a@b'><body>hi &amp; bye</body></message>\n\n<presence/> \t<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
    );
    let (events, error) = frame(&input);
    assert_eq!(error, None);
    assert_eq!(events.len(), 5);
    let got = stanzas(&events);
    assert_eq!(
        got.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["message", "presence", "iq"]
    );
    assert_eq!(got[0].child("body").unwrap().text, "hi & bye");
    assert_eq!(events.last(), Some(&StreamEvent::Close));
}

#[test]
fn a_stanza_split_at_every_offset_frames_alike() {
    let stanza = "<message to='a@b' id=\"x>y\"><body>a<![CDATA[<b>]]]>]]>&lt;c</body><x xmlns='urn:x'><y/></x></message>";
    let input = format!("<?xml version='1.0'?>{HEADER}{stanza}</stream:stream>");
    let (whole, error) = frame(&input);
    assert_eq!(error, None);
    assert_eq!(whole.len(), 3);
    for split in 0..=input.len() {
        let mut framer = StreamFramer::new(StreamLimits::default());
        let mut buf = BytesMut::from(&input[..split]);
        let (mut events, error) = frame_all(&mut framer, &mut buf);
        assert_eq!(error, None, "split at {split}");
        buf.extend_from_slice(&input.as_bytes()[split..]);
        let (rest, error) = frame_all(&mut framer, &mut buf);
        assert_eq!(error, None, "split at {split}");
        events.extend(rest);
        assert_eq!(events, whole, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn namespaces_default_and_prefixed() {
    let input = format!(
        "{HEADER}<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
         <iq><query xmlns='jabber:iq:roster'><item/></query><p:x xmlns:p='urn:p' p:a='1'><p:y/><z/></p:x></iq>\
         <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><n xmlns=''/>"
    );
    let (events, error) = frame(&input);
    assert_eq!(error, None);
    let got = stanzas(&events);
    assert_eq!(
        (got[0].name.as_str(), got[0].namespace.as_str()),
        ("error", STREAMS_NS)
    );
    assert!(
        got[0]
            .child_in("not-well-formed", STREAM_ERRORS_NS)
            .is_some()
    );
    let iq = got[1];
    assert_eq!(iq.namespace, JABBER_CLIENT);
    let query = iq.child("query").unwrap();
    assert_eq!(query.namespace, "jabber:iq:roster");
    assert_eq!(query.child("item").unwrap().namespace, "jabber:iq:roster");
    let x = iq.child("x").unwrap();
    assert_eq!(x.namespace, "urn:p");
    assert_eq!(x.attr("p:a"), Some("1"));
    assert_eq!(x.child("y").unwrap().namespace, "urn:p");
    // The default namespace is still the stream's under a prefixed element.
    assert_eq!(x.child("z").unwrap().namespace, JABBER_CLIENT);
    assert_eq!(got[2].namespace, "urn:ietf:params:xml:ns:xmpp-tls");
    assert_eq!(got[3].namespace, "");
    // Rendered in the server's stream and framed again: the same trees.
    let mut text = String::from(HEADER);
    for stanza in &got {
        render_stanza(&mut text, stanza);
    }
    assert!(text.contains("<stream:error><not-well-formed xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/></stream:error>"), "{text}");
    let (again, error) = frame(&text);
    assert_eq!(error, None, "{text}");
    assert_eq!(stanzas(&again), got);
}

#[test]
fn forbidden_constructs_and_their_conditions() {
    for (body, condition) in [
        ("<!-- hi -->", "restricted-xml"),
        ("<message><!-- hi --></message>", "restricted-xml"),
        ("<?pi x?>", "restricted-xml"),
        ("<message><?pi x?></message>", "restricted-xml"),
        ("<!DOCTYPE x>", "restricted-xml"),
        ("<message><!ENTITY x 'y'></message>", "restricted-xml"),
        ("<message>&lol;</message>", "restricted-xml"),
        ("<message a='&lol;'/>", "restricted-xml"),
        ("<message><body>&#0;</body></message>", "not-well-formed"),
        ("<message><a></b></message>", "not-well-formed"),
        ("<message><![CDAT[x]]></message>", "not-well-formed"),
        ("<p:message/>", "not-well-formed"),
        ("<message xmlns:p=''/>", "not-well-formed"),
        ("hello", "bad-format"),
        ("<![CDATA[x]]>", "bad-format"),
        ("</stream:strea>", "not-well-formed"),
        ("<message>\u{0}</message>", "not-well-formed"),
    ] {
        assert_eq!(error_after_header(body).condition(), condition, "{body}");
    }
    let mut invalid_utf8 = BytesMut::from(format!("{HEADER}<message>").as_str());
    invalid_utf8.extend_from_slice(b"\xff</message>");
    let (_, error) = frame_all(
        &mut StreamFramer::new(StreamLimits::default()),
        &mut invalid_utf8,
    );
    assert_eq!(error.unwrap().condition(), "not-well-formed");
}

#[test]
fn stream_header_and_namespace_errors() {
    let streams = "xmlns:stream='http://etherx.jabber.org/streams'";
    for (input, condition) in [
        (
            "<message xmlns='jabber:client'/>".to_owned(),
            "invalid-namespace",
        ),
        ("hello".to_owned(), "invalid-namespace"),
        ("</stream:stream>".to_owned(), "invalid-namespace"),
        (
            format!("<stream:stream xmlns='jabber:server' {streams}>"),
            "invalid-namespace",
        ),
        (format!("<stream:stream {streams}>"), "invalid-namespace"),
        (
            "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>".to_owned(),
            "invalid-namespace",
        ),
        (
            "<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>"
                .to_owned(),
            "bad-namespace-prefix",
        ),
        (
            "<stream:stream xmlns='jabber:client'>".to_owned(),
            "not-well-formed",
        ),
        (
            format!("<stream:stream xmlns='jabber:client' {streams}/>"),
            "invalid-namespace",
        ),
        (
            format!(
                "<?xml version='1.0'?><?xml version='1.0'?><stream:stream xmlns='jabber:client' {streams}>"
            ),
            "restricted-xml",
        ),
        (
            format!("<!-- x --><stream:stream xmlns='jabber:client' {streams}>"),
            "restricted-xml",
        ),
        (
            format!("<!DOCTYPE stream><stream:stream xmlns='jabber:client' {streams}>"),
            "restricted-xml",
        ),
    ] {
        let (events, error) = frame(&input);
        assert!(events.is_empty(), "{input}");
        let error = error.unwrap_or_else(|| panic!("{input} accepted"));
        assert_eq!(error.condition(), condition, "{input}: {error}");
    }
    // Nothing may follow the stream's end but white space.
    let (events, error) = frame(&format!("{HEADER}</stream:stream> \n"));
    assert_eq!((events.len(), error), (2, None));
    let (_, error) = frame(&format!("{HEADER}</stream:stream><message/>"));
    assert_eq!(error, Some(StreamError::NoStream));
}

#[test]
fn limits_exceeded() {
    let small = StreamLimits {
        max_header_bytes: HEADER.len(),
        max_stanza_bytes: 64,
        xml: XmlLimits {
            max_depth: 3,
            max_elements: 5,
            max_attributes: 5,
            max_value_bytes: 40,
        },
    };
    let after = |body: &str| {
        let (events, error) = frame_with(&format!("{HEADER}{body}"), small);
        assert!(!events.is_empty(), "the header fits its limit exactly");
        error
    };
    // A stanza of exactly the limit passes; one byte more does not.
    let exact = format!("<m>{}</m>", "x".repeat(64 - 7));
    assert_eq!(exact.len(), 64);
    assert_eq!(
        after(&exact),
        Some(StreamError::Xml(XmlError::ValueTooLong(40)))
    );
    assert_eq!(
        after(&format!("<m a='{}'/>", "x".repeat(64 - 9))),
        Some(StreamError::Xml(XmlError::ValueTooLong(40)))
    );
    let over = format!("<m>{}", "x".repeat(64 - 3 + 1));
    let error = after(&over).unwrap();
    assert_eq!(error, StreamError::StanzaTooLarge { limit: 64 });
    assert_eq!(error.condition(), "policy-violation");
    // Too deep is refused as the fourth level opens, before the stanza is complete.
    let error = after("<a><b><c><d>").unwrap();
    assert_eq!(error, StreamError::Xml(XmlError::TooDeep(3)));
    assert_eq!(error.condition(), "policy-violation");
    assert_eq!(after("<a><b><c/></b></a>"), None);
    assert_eq!(
        after("<a b='1' c='2' d='3' e='4' f='5' g='6'/>"),
        Some(StreamError::Xml(XmlError::TooManyAttributes(5)))
    );
    assert_eq!(
        after("<a><b/><b/><b/><b/><b/></a>"),
        Some(StreamError::Xml(XmlError::TooManyElements(5)))
    );
    for error in [
        after("<a b='1' c='2' d='3' e='4' f='5' g='6'/>"),
        after("<a><b/><b/><b/><b/><b/></a>"),
    ] {
        assert_eq!(error.unwrap().condition(), "policy-violation");
    }
    // A longer header than its limit.
    let (events, error) = frame_with(&format!("<?xml version='1.0'?>{HEADER}"), small);
    assert!(events.is_empty());
    assert_eq!(
        error,
        Some(StreamError::HeaderTooLarge {
            limit: HEADER.len()
        })
    );
}

#[test]
fn restart_expects_a_new_header() {
    let mut framer = StreamFramer::new(StreamLimits::default());
    let mut buf = BytesMut::from(
        format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_str(),
    );
    let (events, error) = frame_all(&mut framer, &mut buf);
    assert_eq!((events.len(), error), (2, None));
    framer.restart();
    // A stanza where the new header is due is refused...
    let mut stray = framer.clone();
    let (_, error) = frame_all(&mut stray, &mut BytesMut::from("<message/>"));
    assert_eq!(error, Some(StreamError::NoStream));
    // ...and a header (with its declaration, as after TLS) opens the stream again.
    buf.extend_from_slice(format!("<?xml version='1.0'?>{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGE=</auth>").as_bytes());
    let (events, error) = frame_all(&mut framer, &mut buf);
    assert_eq!(error, None);
    assert!(matches!(events[0], StreamEvent::Open(_)));
    assert_eq!(stanzas(&events)[0].name, "auth");
    // A restart forgets a partial unit of the old stream.
    buf.extend_from_slice(b"<message><bo");
    assert_eq!(framer.next(&mut buf), Ok(None));
    framer.restart();
    buf.clear();
    buf.extend_from_slice(HEADER.as_bytes());
    assert!(matches!(
        framer.next(&mut buf),
        Ok(Some(StreamEvent::Open(_)))
    ));
}

#[test]
fn a_large_stanza_fed_a_byte_at_a_time_is_scanned_once() {
    let body = "x".repeat(256 * 1024 - 64);
    let stanza = format!("<message><body>{body}</body></message>");
    let input = format!("{HEADER}{stanza}");
    let mut framer = StreamFramer::new(StreamLimits::default());
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for &byte in input.as_bytes() {
        buf.extend_from_slice(&[byte]);
        if let Some(event) = framer.next(&mut buf).unwrap() {
            events.push(event);
        }
    }
    assert_eq!(events.len(), 2);
    assert_eq!(
        stanzas(&events)[0].child("body").unwrap().text.len(),
        body.len()
    );
    // Each byte is looked at once, not once per read.
    assert_eq!(framer.scanned, input.len());
}

#[test]
fn renders_the_server_header_close_and_errors() {
    let mut out = String::new();
    render_header(
        &mut out,
        &ServerHeader {
            id: "s1",
            from: "example.test",
            to: Some("a@example.test"),
            lang: "en",
        },
    );
    assert_eq!(
        out,
        "<?xml version='1.0'?><stream:stream xmlns=\"jabber:client\" xmlns:stream=\"http://etherx.jabber.org/streams\" id=\"s1\" from=\"example.test\" to=\"a@example.test\" version=\"1.0\" xml:lang=\"en\">"
    );
    render_stanza(&mut out, &stream_error("policy-violation"));
    render_close(&mut out);
    assert!(out.ends_with("<stream:error><policy-violation xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/></stream:error></stream:stream>"));
    // perch's own stream frames as a client's would.
    let (events, error) = frame(&out);
    assert_eq!(error, None);
    assert_eq!(stanzas(&events)[0], &stream_error("policy-violation"));
    assert_eq!(events.last(), Some(&StreamEvent::Close));
}

mod round_trip {
    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,8}".prop_filter("xmlns is a declaration", |n| n != "xmlns")
    }

    fn namespace() -> impl Strategy<Value = String> {
        proptest::sample::select(vec![JABBER_CLIENT, STREAMS_NS, "urn:a", "urn:b", ""])
            .prop_map(str::to_owned)
    }

    fn xml_text() -> impl Strategy<Value = String> {
        let char = prop_oneof![
            3 => proptest::sample::select(vec!['<', '>', '&', '"', '\'', '\r', '\n', '\t', ' ', ']']),
            3 => proptest::char::range(' ', '~'),
            1 => proptest::char::range('\u{80}', '\u{D7FF}'),
            1 => proptest::char::range('\u{10000}', '\u{10FFFF}'),
        ];
        prop::collection::vec(char, 0..16).prop_map(String::from_iter)
    }

    fn attributes() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::btree_map(name(), xml_text(), 0..4)
            .prop_map(|map| map.into_iter().collect())
    }

    fn element() -> impl Strategy<Value = Element> {
        let leaf = (name(), namespace(), attributes(), xml_text()).prop_map(
            |(name, namespace, attributes, text)| Element {
                name,
                namespace,
                attributes,
                text,
                ..Element::default()
            },
        );
        leaf.prop_recursive(4, 24, 4, |inner| {
            (
                name(),
                namespace(),
                attributes(),
                xml_text(),
                prop::collection::vec(inner, 1..4),
            )
                .prop_map(|(name, namespace, attributes, text, children)| {
                    // White space beside children is indentation, not content.
                    let text = if text.bytes().all(is_space) {
                        String::new()
                    } else {
                        text
                    };
                    Element {
                        name,
                        namespace,
                        attributes,
                        children,
                        text,
                        ..Element::default()
                    }
                })
        })
    }

    proptest! {
        /// render → frame gives the stanza back, however the bytes arrive.
        #[test]
        fn render_then_frame(stanza in element(), split in any::<prop::sample::Index>()) {
            let mut text = String::from(HEADER);
            render_stanza(&mut text, &stanza);
            let split = split.index(text.len() + 1);
            let mut framer = StreamFramer::new(StreamLimits::default());
            let mut buf = BytesMut::from(&text.as_bytes()[..split]);
            let (mut events, error) = frame_all(&mut framer, &mut buf);
            prop_assert_eq!(error, None);
            buf.extend_from_slice(&text.as_bytes()[split..]);
            let (rest, error) = frame_all(&mut framer, &mut buf);
            prop_assert_eq!(error, None, "{}", text);
            events.extend(rest);
            prop_assert_eq!(stanzas(&events), vec![&stanza], "{}", text);
        }
    }
}
