//! parse → serialize → parse for SIP. Every message frame the framer cuts from the input
//! (default limits) that `Message::parse` accepts is encoded, framed again and parsed
//! again. Checks: the encoding is exactly one frame; it parses; the start line, the header
//! names and values (in order) and the body are equal. Content-Length is the exception by
//! design: `encode` drops it from the headers and writes one computed from the body, so it
//! is compared against the body length instead. Finally, encoding is a fixed point.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use perch::lync::sip::framer::{self, Frame, FrameLimits};
use perch::lync::sip::{Header, Message};

fn without_length(message: &Message) -> Vec<&Header> {
    message
        .headers
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("Content-Length"))
        .collect()
}

fn round_trip(message: &Message) {
    let encoded = message.encode();
    // Our own output may be a little longer than what we accept; that is not the question.
    let generous = FrameLimits {
        max_header_bytes: usize::MAX / 4,
        max_headers: usize::MAX / 4,
        max_body_bytes: usize::MAX / 4,
    };
    let mut buf = BytesMut::from(&encoded[..]);
    let frame = framer::decode(&mut buf, &generous);
    let Ok(Some(Frame::Message { head, body })) = frame else {
        panic!("encoded message does not frame: {frame:?}\nencoded: {encoded:?}");
    };
    assert!(buf.is_empty(), "encoding frames with {} bytes left over: {encoded:?}", buf.len());
    let again = match Message::parse(&head, body) {
        Ok(again) => again,
        Err(error) => panic!("encoded message does not parse: {error}\nencoded: {encoded:?}"),
    };
    assert_eq!(again.start, message.start, "start line changed\nencoded: {encoded:?}");
    assert_eq!(
        without_length(&again),
        without_length(message),
        "headers changed\nencoded: {encoded:?}"
    );
    assert_eq!(
        again.headers.get_all("Content-Length").collect::<Vec<_>>(),
        [message.body.len().to_string()],
        "Content-Length\nencoded: {encoded:?}"
    );
    assert_eq!(again.body, message.body, "body changed\nencoded: {encoded:?}");
    assert_eq!(again.encode(), encoded, "encoding is not a fixed point");
}

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    let mut buf = BytesMut::from(data);
    loop {
        match framer::decode(&mut buf, &limits) {
            Ok(Some(Frame::Message { head, body })) => {
                if let Ok(message) = Message::parse(&head, body) {
                    round_trip(&message);
                }
            }
            Ok(Some(Frame::Ping)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
