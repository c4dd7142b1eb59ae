//! parse → serialize → parse for the XCCOS element tree. If `xml::parse` accepts the input
//! (default limits), `Element::to_xml` must produce text that parses to an equal tree, and
//! serializing that tree again must give the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perch::lync::xccos::xml::{self, XmlLimits};

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits::default();
    let Ok(tree) = xml::parse(data, &limits) else {
        return;
    };
    let text = tree.to_xml();
    let again = match xml::parse(text.as_bytes(), &limits) {
        Ok(again) => again,
        Err(error) => panic!("serialized tree does not parse: {error}\nserialized: {text:?}"),
    };
    assert_eq!(again, tree, "tree changed\nserialized: {text:?}");
    assert_eq!(again.to_xml(), text, "serialization is not a fixed point");
});
