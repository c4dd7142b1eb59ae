//! XCCOS bodies: `xml::parse` and `envelope::parse_incoming` with default limits, plus the
//! room-URI helper the commands use on attribute values. Checks: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perch::lync::xccos::envelope::{Incoming, parse_incoming};
use perch::lync::xccos::uri::room_uid;
use perch::lync::xccos::xml::{self, XmlLimits};

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits::default();
    if let Ok(root) = xml::parse(data, &limits) {
        let _ = root.attr("envid");
    }
    match parse_incoming(data, &limits) {
        Ok(Incoming::Command(command)) => {
            for child in &command.data.children {
                for (_, value) in &child.attributes {
                    let _ = room_uid(value, "example.test");
                }
            }
        }
        Ok(Incoming::Post(post)) => {
            if let Some(uri) = post.attr("chanUri") {
                let _ = room_uid(uri, "example.test");
            }
        }
        Ok(Incoming::Other(_)) | Err(_) => {}
    }
});
