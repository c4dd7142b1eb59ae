//! The XCCOS of a load client: the kit's builders and readings
//! (`perch::lync::client::xccos`), and the text of a load post, which carries its send
//! time so that its delivery can be timed.

pub use perch::lync::client::xccos::*;

use crate::random::Random;
use crate::text::Vocabulary;

/// Marker that starts the text of every post this tool sends: `plt=<send ns>`.
const SEND_TIME: &str = "plt=";

/// A post's text: its send time, who sent it, a sequence number, then words of the shared
/// vocabulary up to at least `size` bytes, so the server indexes what a chat message would
/// give it. Only ASCII letters, digits, `=` and spaces: nothing to escape.
pub fn post_text(
    sent_ns: u64,
    client: usize,
    seq: u64,
    size: usize,
    random: &mut Random,
) -> String {
    let mut text = format!("{SEND_TIME}{sent_ns} c={client} n={seq}");
    let vocabulary = Vocabulary::shared();
    while text.len() < size {
        text.push(' ');
        text.push_str(vocabulary.pick(random));
    }
    text
}

/// The send time a post of this tool carries (`None`: somebody else's post).
pub fn sent_time(body: &[u8]) -> Option<u64> {
    number_after(std::str::from_utf8(body).ok()?, SEND_TIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_carry_their_send_time() {
        let text = post_text(123_456_789, 4, 17, 80, &mut Random::new(1));
        assert!((80..100).contains(&text.len()), "{text}");
        // Words, not padding: about as many as a chat line of that length has.
        assert!(text.split(' ').count() >= 10, "{text}");
        // As perch delivers it: attributes added, text unchanged.
        let delivered = format!(
            r#"<xccos ver="1" envid="77" xmlns="urn:parlano:xml:ns:xccos"><grpchat id="grpchat" seqid="1" chanUri="ma-chan://example.test/abc" author="sip:a@example.test" ts="2026-11-24T10:00:00.0000000Z" msgid="5"><chat>{text}</chat></grpchat></xccos>"#
        );
        assert_eq!(classify(delivered.as_bytes()), Incoming::Post);
        assert_eq!(sent_time(delivered.as_bytes()), Some(123_456_789));
        let foreign = delivered.replace("plt=", "hello ");
        assert_eq!(sent_time(foreign.as_bytes()), None);
    }
}
