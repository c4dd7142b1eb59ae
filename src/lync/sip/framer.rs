//! Stream framing for SIP over TCP/TLS (RFC 3261 §18.3): splits a byte stream into
//! messages by the blank line and Content-Length. Sans-I/O: the caller owns the buffer and
//! feeds whatever the socket returned; "not enough bytes yet" is `Ok(None)`, not an error.

use bytes::{Buf, Bytes, BytesMut};

/// Bounds applied before a message is parsed, so a hostile peer cannot make us buffer
/// without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Start line plus headers, up to and including the last header's line break (the
    /// blank line that follows is not counted).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 256 * 1024,
        }
    }
}

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A double CRLF keep-alive (RFC 5626 §4.4.1); answer with a single CRLF.
    Ping,
    /// A complete message: the header block (without the blank line) and its body.
    Message { head: Bytes, body: Bytes },
}

/// Why the stream cannot be framed any further. The header block that was read so far is
/// kept where there is one, so the caller can still form an error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header block exceeds {limit} bytes")]
    HeaderBlockTooLarge { limit: usize, head: Bytes },
    #[error("more than {limit} header lines")]
    TooManyHeaders { limit: usize, head: Bytes },
    #[error("body of {length} bytes exceeds {limit} bytes")]
    BodyTooLarge {
        length: usize,
        limit: usize,
        head: Bytes,
    },
    #[error("invalid Content-Length header")]
    BadContentLength { head: Bytes },
}

impl FrameError {
    /// The partial or complete header block, for building an error response.
    pub fn head(&self) -> &Bytes {
        match self {
            Self::HeaderBlockTooLarge { head, .. }
            | Self::TooManyHeaders { head, .. }
            | Self::BodyTooLarge { head, .. }
            | Self::BadContentLength { head } => head,
        }
    }
}

/// Cuts the next frame off the front of `buf`. Leading single CRLFs between messages are
/// skipped; a double CRLF is reported as [`Frame::Ping`].
pub fn decode(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Option<Frame>, FrameError> {
    loop {
        match leading_line_breaks(buf) {
            LeadingBreaks::None => break,
            LeadingBreaks::Incomplete => return Ok(None),
            LeadingBreaks::Ping(len) => {
                buf.advance(len);
                return Ok(Some(Frame::Ping));
            }
            LeadingBreaks::Skip(len) => buf.advance(len),
        }
    }
    if buf.is_empty() {
        return Ok(None);
    }

    let Some((head_len, blank_len)) = find_header_end(buf, limits.max_header_bytes) else {
        // A head of exactly the limit may still be waiting for the LF after its blank
        // line's CR; anything longer without a blank line is over the limit.
        let undecided_cr = buf.len() == limits.max_header_bytes + 1 && buf.last() == Some(&b'\r');
        if buf.len() > limits.max_header_bytes && !undecided_cr {
            let head = Bytes::copy_from_slice(&buf[..limits.max_header_bytes]);
            return Err(FrameError::HeaderBlockTooLarge {
                limit: limits.max_header_bytes,
                head,
            });
        }
        return Ok(None);
    };
    if head_len > limits.max_header_bytes {
        // The window lets the blank line itself sit past the limit, not header bytes.
        return Err(FrameError::HeaderBlockTooLarge {
            limit: limits.max_header_bytes,
            head: Bytes::copy_from_slice(&buf[..limits.max_header_bytes]),
        });
    }
    let head_slice = &buf[..head_len];
    let lines = count_header_lines(head_slice);
    if lines > limits.max_headers {
        return Err(FrameError::TooManyHeaders {
            limit: limits.max_headers,
            head: Bytes::copy_from_slice(head_slice),
        });
    }
    let body_len = match content_length(head_slice) {
        Ok(len) => len.unwrap_or(0),
        Err(()) => {
            return Err(FrameError::BadContentLength {
                head: Bytes::copy_from_slice(head_slice),
            });
        }
    };
    if body_len > limits.max_body_bytes {
        return Err(FrameError::BodyTooLarge {
            length: body_len,
            limit: limits.max_body_bytes,
            head: Bytes::copy_from_slice(head_slice),
        });
    }
    let total = head_len + blank_len + body_len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut message = buf.split_to(total).freeze();
    let head = message.split_to(head_len);
    message.advance(blank_len);
    Ok(Some(Frame::Message {
        head,
        body: message,
    }))
}

enum LeadingBreaks {
    None,
    Incomplete,
    Ping(usize),
    Skip(usize),
}

/// Classifies CR/LF bytes at the front of the buffer. Two line breaks in a row (CRLF CRLF,
/// or bare LF LF) form a ping; a lone line break is skipped once the next byte shows it is
/// not the start of a ping.
fn leading_line_breaks(buf: &[u8]) -> LeadingBreaks {
    let first = match line_break_at(buf, 0) {
        Some(Some(len)) => len,
        Some(None) => return LeadingBreaks::Incomplete,
        None => return LeadingBreaks::None,
    };
    match line_break_at(buf, first) {
        Some(Some(second)) => LeadingBreaks::Ping(first + second),
        Some(None) => LeadingBreaks::Incomplete,
        None if first == buf.len() => LeadingBreaks::Incomplete,
        None => LeadingBreaks::Skip(first),
    }
}

/// `None`: no line break at `at`. `Some(None)`: a CR at the very end, undecided.
/// `Some(Some(len))`: a CRLF (2) or bare LF (1).
fn line_break_at(buf: &[u8], at: usize) -> Option<Option<usize>> {
    match buf.get(at) {
        Some(b'\n') => Some(Some(1)),
        Some(b'\r') => match buf.get(at + 1) {
            Some(b'\n') => Some(Some(2)),
            Some(_) => None,
            None => Some(None),
        },
        _ => None,
    }
}

/// Finds the empty line that ends the header block, looking no further than `limit` bytes.
/// Returns the header length (up to and including the last header's line break) and the
/// length of the empty line itself.
fn find_header_end(buf: &[u8], limit: usize) -> Option<(usize, usize)> {
    let window = &buf[..buf.len().min(limit + 2)];
    let mut pos = 0;
    while let Some(offset) = memchr_newline(&window[pos..]) {
        let after = pos + offset + 1;
        match line_break_at(window, after) {
            Some(Some(len)) => return Some((after, len)),
            Some(None) => return None,
            None => pos = after,
        }
    }
    None
}

fn memchr_newline(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

fn count_header_lines(head: &[u8]) -> usize {
    // The start line is not a header; folded continuation lines belong to their header.
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter(|line| !line.is_empty() && !matches!(line[0], b' ' | b'\t' | b'\r'))
        .count()
}

/// Reads Content-Length (or its compact form `l`) from a header block. `Ok(None)` when absent;
/// `Err` when unparsable or when several headers disagree.
fn content_length(head: &[u8]) -> Result<Option<usize>, ()> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).map_err(|_| ())?;
        let len: usize = value.parse().map_err(|_| ())?;
        match found {
            Some(previous) if previous != len => return Err(()),
            _ => found = Some(len),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 5\r\n\r\nhello";

    fn decode_all(input: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = decode(&mut buf, &FrameLimits::default()).unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn whole_message() {
        let frames = decode_all(MSG);
        assert_eq!(frames.len(), 1);
        let Frame::Message { head, body } = &frames[0] else {
            panic!("not a message")
        };
        assert!(head.starts_with(b"OPTIONS"));
        assert!(head.ends_with(b"Content-Length: 5\r\n"));
        assert_eq!(&body[..], b"hello");
    }

    #[test]
    fn split_at_every_byte_boundary() {
        for cut in 0..=MSG.len() {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&MSG[..cut]);
            let first = decode(&mut buf, &FrameLimits::default()).unwrap();
            if cut < MSG.len() {
                assert_eq!(first, None, "cut at {cut}");
                buf.extend_from_slice(&MSG[cut..]);
            }
            let frame = first.or_else(|| decode(&mut buf, &FrameLimits::default()).unwrap());
            assert!(matches!(frame, Some(Frame::Message { .. })), "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn three_messages_in_one_read() {
        let input = [MSG, MSG, MSG].concat();
        assert_eq!(decode_all(&input).len(), 3);
    }

    #[test]
    fn keep_alives() {
        let input = [b"\r\n\r\n".as_slice(), b"\r\n", MSG, b"\n\n"].concat();
        let frames = decode_all(&input);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Ping);
        assert!(matches!(frames[1], Frame::Message { .. }));
        assert_eq!(frames[2], Frame::Ping);
    }

    #[test]
    fn lone_crlf_waits_for_more() {
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        assert_eq!(decode(&mut buf, &FrameLimits::default()).unwrap(), None);
        let mut buf = BytesMut::from(&b"\r"[..]);
        assert_eq!(decode(&mut buf, &FrameLimits::default()).unwrap(), None);
    }

    #[test]
    fn bare_lf_and_compact_length() {
        let frames = decode_all(b"INFO sip:x SIP/2.0\nl: 3\n\nabc");
        let Frame::Message { body, .. } = &frames[0] else {
            panic!("not a message")
        };
        assert_eq!(&body[..], b"abc");
    }

    #[test]
    fn missing_content_length_means_empty_body() {
        let frames = decode_all(b"ACK sip:x SIP/2.0\r\nCall-ID: y\r\n\r\n");
        let Frame::Message { body, .. } = &frames[0] else {
            panic!("not a message")
        };
        assert!(body.is_empty());
    }

    #[test]
    fn header_block_limit() {
        let limits = FrameLimits {
            max_header_bytes: 64,
            ..FrameLimits::default()
        };
        let mut buf = BytesMut::from(&b"INVITE sip:x SIP/2.0\r\n"[..]);
        buf.extend_from_slice(&[b'a'; 100]);
        let err = decode(&mut buf, &limits).unwrap_err();
        assert!(matches!(err, FrameError::HeaderBlockTooLarge { .. }));
        assert_eq!(err.head().len(), 64);
    }

    #[test]
    fn header_block_of_exactly_the_limit() {
        // Found by fuzzing: a block two bytes over the limit slipped through the window.
        let limits = FrameLimits {
            max_header_bytes: 12,
            ..FrameLimits::default()
        };
        let mut over = BytesMut::from(&b"\t\0\x01\0\0\0ABCDEF\r\n\r\n"[..]);
        assert!(matches!(
            decode(&mut over, &limits),
            Err(FrameError::HeaderBlockTooLarge { .. })
        ));
        let mut fits = BytesMut::from(&b"ABCDEFGHIJ\r\n\r\n"[..]);
        assert!(matches!(
            decode(&mut fits, &limits),
            Ok(Some(Frame::Message { .. }))
        ));
    }

    #[test]
    fn head_of_exactly_the_limit_split_before_the_last_lf() {
        // Found by fuzzing: a read ending on the blank line's CR was refused as too large.
        let limits = FrameLimits {
            max_header_bytes: 10,
            ..FrameLimits::default()
        };
        let mut buf = BytesMut::from(&b"ABCDEFGH\r\n\r"[..]);
        assert_eq!(decode(&mut buf, &limits), Ok(None));
        buf.extend_from_slice(b"\n");
        let Ok(Some(Frame::Message { head, body })) = decode(&mut buf, &limits) else {
            panic!("not framed")
        };
        assert_eq!((&head[..], &body[..]), (&b"ABCDEFGH\r\n"[..], &b""[..]));
        // One byte more is over the limit however the bytes arrive.
        let mut buf = BytesMut::from(&b"ABCDEFGHI\r\n\r"[..]);
        assert!(matches!(
            decode(&mut buf, &limits),
            Err(FrameError::HeaderBlockTooLarge { .. })
        ));
    }

    #[test]
    fn header_count_limit() {
        let limits = FrameLimits {
            max_headers: 2,
            ..FrameLimits::default()
        };
        let mut buf =
            BytesMut::from(&b"INFO sip:x SIP/2.0\r\na: 1\r\nb: 2\r\n c\r\nd: 3\r\n\r\n"[..]);
        assert!(matches!(
            decode(&mut buf, &limits),
            Err(FrameError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn body_limit_and_bad_length() {
        let limits = FrameLimits {
            max_body_bytes: 4,
            ..FrameLimits::default()
        };
        let mut buf = BytesMut::from(MSG);
        assert!(matches!(
            decode(&mut buf, &limits),
            Err(FrameError::BodyTooLarge { length: 5, .. })
        ));
        for bad in [
            &b"INFO sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n"[..],
            b"INFO sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
            b"INFO sip:x SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(matches!(
                decode(&mut buf, &FrameLimits::default()),
                Err(FrameError::BadContentLength { .. })
            ));
        }
    }

    proptest::proptest! {
        /// Two reads split anywhere give the frame one read gives, and nothing before it.
        #[test]
        fn split_reads_frame_alike(
            message in crate::lync::sip::message::strategy::message(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let encoded = message.encode();
            let whole = decode_all(&encoded);
            proptest::prop_assert_eq!(whole.len(), 1);
            let cut = cut.index(encoded.len() + 1);
            let limits = FrameLimits::default();
            let mut buf = BytesMut::from(&encoded[..cut]);
            let mut frames = Vec::new();
            while let Some(frame) = decode(&mut buf, &limits).unwrap() {
                frames.push(frame);
            }
            proptest::prop_assert!(frames.is_empty() || cut == encoded.len());
            buf.extend_from_slice(&encoded[cut..]);
            while let Some(frame) = decode(&mut buf, &limits).unwrap() {
                frames.push(frame);
            }
            proptest::prop_assert_eq!(frames, whole);
            proptest::prop_assert!(buf.is_empty());
        }
    }
}
