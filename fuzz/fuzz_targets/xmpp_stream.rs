//! `xmpp::stream::StreamFramer` on a client's byte stream in arbitrary reads.
//!
//! Input layout: 2 control bytes, then the stream.
//! - byte 0 seeds the read sizes: 0 = the whole stream in one read, else a small LCG
//!   gives reads of 1..=64 bytes;
//! - byte 1 bit 0 = 0: default `StreamLimits`; = 1: small limits (stanza 16 + 4·(b1 >> 1)
//!   bytes, depth 1 + b1 % 5, 8 attributes, values of 64 bytes), so the limit paths are
//!   reached with short inputs.
//!
//! After a `starttls` or `auth` nonza the framer restarts, as the session would after
//! `<proceed/>` or `<success/>`.
//! Checks: no panic; the events and the final error are the same in one read and in the
//! chosen reads; every stanza renders (in the scope of its stream header), frames again
//! under a header declaring that scope to an equal tree, and renders again to the same text.
//! (Finding 5 in the README, fixed: the attribute value limit counted escaped bytes.)
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

use perch::xml::{Element, Scope, XmlLimits};
use perch::xmpp::stream::{StreamError, StreamEvent, StreamFramer, StreamLimits};

#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<StreamEvent>,
    /// The scope each stanza was parsed in.
    scopes: Vec<Scope>,
    error: Option<StreamError>,
}

fn run(stream: &[u8], limits: StreamLimits, mut read_size: impl FnMut() -> usize) -> Run {
    let mut framer = StreamFramer::new(limits);
    let mut out = Run {
        events: Vec::new(),
        scopes: Vec::new(),
        error: None,
    };
    let mut buf = BytesMut::new();
    let mut rest = stream;
    loop {
        let take = read_size().min(rest.len());
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match framer.next(&mut buf) {
                Ok(Some(event)) => {
                    if let StreamEvent::Stanza(stanza) = &event {
                        out.scopes.push(framer.scope().clone());
                        if stanza.name == "starttls" || stanza.name == "auth" {
                            framer.restart();
                        }
                    }
                    out.events.push(event);
                }
                Ok(None) => break,
                Err(error) => {
                    out.error = Some(error);
                    return out;
                }
            }
        }
        if rest.is_empty() {
            return out;
        }
    }
}

/// A stream header declaring `scope`.
fn header(scope: &Scope) -> String {
    let mut open = Element::new("stream:stream").with_attr("xmlns", scope.default_namespace());
    for (prefix, namespace) in scope.prefixes() {
        open = open.with_attr(&format!("xmlns:{prefix}"), namespace);
    }
    let mut out = String::new();
    open.write_open(&mut out);
    out
}


fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (control, stream) = data.split_at(2);
    let limits = if control[1] & 1 == 0 {
        StreamLimits::default()
    } else {
        StreamLimits {
            max_header_bytes: 512,
            max_stanza_bytes: 16 + 4 * usize::from(control[1] >> 1),
            xml: XmlLimits {
                max_depth: 1 + usize::from(control[1] % 5),
                max_elements: 64,
                max_attributes: 8,
                max_value_bytes: 64,
            },
        }
    };

    let whole = run(stream, limits, || usize::MAX);
    let mut state = u32::from(control[0]);
    let split = run(stream, limits, || {
        if control[0] == 0 {
            return usize::MAX;
        }
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (state >> 16) as usize % 64
    });
    assert_eq!(split, whole, "the events depend on the reads");

    // Rendered stanzas may be longer than what was read (escaping), not deeper or wider.
    let again_limits = StreamLimits {
        max_header_bytes: usize::MAX,
        max_stanza_bytes: usize::MAX,
        xml: limits.xml,
    };
    let stanzas = whole.events.iter().filter_map(|event| match event {
        StreamEvent::Stanza(stanza) => Some(stanza),
        _ => None,
    });
    for (stanza, scope) in stanzas.zip(&whole.scopes) {
        let mut text = String::new();
        stanza.write_in(&mut text, scope);
        let mut buf = BytesMut::from(format!("{}{text}", header(scope)).as_str());
        let mut framer = StreamFramer::new(again_limits);
        let opened = framer.next(&mut buf);
        assert!(matches!(opened, Ok(Some(StreamEvent::Open(_)))), "header: {opened:?}");
        match framer.next(&mut buf) {
            Ok(Some(StreamEvent::Stanza(again))) => {
                assert_eq!(&again, stanza, "tree changed\nrendered: {text:?}");
                let mut second = String::new();
                again.write_in(&mut second, framer.scope());
                assert_eq!(second, text, "rendering is not a fixed point");
            }
            other => panic!("rendered stanza does not frame: {other:?}\nrendered: {text:?}"),
        }
    }
});
