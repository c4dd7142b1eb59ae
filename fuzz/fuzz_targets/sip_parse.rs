//! The SIP read path: `framer::decode` with default limits over the whole input, then
//! `Message::parse` on every message frame, then the header views the session layer reads
//! from untrusted messages. For frames that fail, `salvage_response_headers` on the head
//! (what the session does to still answer 400/413/513). Checks: no panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use perch::lync::sip::framer::{self, Frame, FrameLimits};
use perch::lync::sip::message::{salvage_response_headers, split_list};
use perch::lync::sip::{NameAddr, Params, SipUri, StartLine, response};
use perch::lync::sip::Message;

fn views(message: &Message) {
    let _ = message.cseq();
    let _ = message.call_id();
    if let StartLine::Request { uri, .. } = &message.start {
        let _ = SipUri::parse(uri).map(|u| u.aor());
        let _ = perch::core::ids::user_id(uri);
    }
    for name in ["From", "To", "Contact", "Record-Route", "Route"] {
        for value in message.headers.get_all(name) {
            if let Some(addr) = NameAddr::parse(value) {
                let _ = addr.tag();
                let _ = SipUri::parse(&addr.uri).map(|u| u.aor());
            }
        }
    }
    for name in ["Supported", "Require", "Allow-Events", "Authorization"] {
        let _ = message.headers.tokens(name).count();
    }
    for header in message.headers.iter() {
        let _ = split_list(&header.value).count();
        let _ = Params::parse(&header.value).value("tag");
    }
    if message.method().is_some() {
        let reply = response::response(&message.headers, 200, Some("fuzz"));
        let _ = reply.encode();
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    let mut buf = BytesMut::from(data);
    loop {
        match framer::decode(&mut buf, &limits) {
            Ok(Some(Frame::Message { head, body })) => match Message::parse(&head, body) {
                Ok(message) => views(&message),
                Err(_) => {
                    let _ = salvage_response_headers(&head);
                }
            },
            Ok(Some(Frame::Ping)) => {}
            Ok(None) => break,
            Err(error) => {
                let _ = salvage_response_headers(error.head());
                break;
            }
        }
    }
});
