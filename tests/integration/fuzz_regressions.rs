//! Inputs the fuzzers found (tests/data/fuzz-regressions/), replayed through the same
//! checks as the fuzz targets: no panic, bounded framing, and round trips that hold.

use bytes::BytesMut;
use perch::lync::sip::Message;
use perch::lync::sip::framer::{self, Frame, FrameLimits};
use perch::lync::xccos::xml;

fn frames(input: &[u8], limits: &FrameLimits) -> Vec<(bytes::Bytes, bytes::Bytes)> {
    let mut buffer = BytesMut::from(input);
    let mut out = Vec::new();
    while let Ok(Some(frame)) = framer::decode(&mut buffer, limits) {
        if let Frame::Message { head, body } = frame {
            assert!(
                head.len() <= limits.max_header_bytes,
                "a header block over the limit was framed"
            );
            out.push((head, body));
        }
    }
    out
}

#[test]
fn saved_fuzz_inputs_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("regression inputs") {
        let path = entry.expect("entry").path();
        let input = std::fs::read(&path).expect("input");
        seen += 1;
        // The framer targets run with small limits, so edge cases sit near them.
        for limits in [
            FrameLimits::default(),
            FrameLimits {
                max_header_bytes: 12,
                max_headers: 4,
                max_body_bytes: 16,
            },
        ] {
            for (head, body) in frames(&input, &limits) {
                if let Ok(message) = Message::parse(&head, body) {
                    let encoded = message.encode();
                    let (head, body) = frames(&encoded, &FrameLimits::default())
                        .pop()
                        .expect("our own output frames");
                    let again = Message::parse(&head, body).expect("our own output parses");
                    assert_eq!(again.start, message.start, "{}", path.display());
                    let values = |m: &Message| {
                        m.headers
                            .iter()
                            .filter(|h| h.name != "Content-Length")
                            .map(|h| (h.name.clone(), h.value.clone()))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(values(&again), values(&message), "{}", path.display());
                }
            }
        }
        if let Ok(tree) = xml::parse(&input, &Default::default()) {
            let again = xml::parse(tree.to_xml().as_bytes(), &Default::default())
                .expect("our own XML parses");
            assert_eq!(again, tree, "{}", path.display());
        }
    }
    assert!(seen > 0, "no regression inputs in {}", dir.display());
}
