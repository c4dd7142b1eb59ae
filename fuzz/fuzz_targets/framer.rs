//! `sip::framer::decode` on a byte stream delivered in two reads.
//!
//! Input layout: 6 control bytes, then the stream.
//! - bytes 0..2 (u16 little-endian) pick the split point: `split % (stream.len() + 1)`;
//!   the first read is `stream[..split]`, the second `stream[split..]`;
//! - byte 2 bit 0 = 0: default `FrameLimits`; = 1: small limits from bytes 3..6:
//!   `max_header_bytes = 8 + 4 * b3` (8..=1028), `max_headers = 1 + b4 % 32`,
//!   `max_body_bytes = 8 * b5` (0..=2040), so the limit paths are reached with short inputs.
//!
//! Each read is followed by `decode` until it returns `Ok(None)` or an error (after an
//! error nothing more is fed, as the connection is closed). Checks: no panic; the buffer
//! never holds more than `max_header_bytes + max_body_bytes + stream.len()`; a framed head
//! is at most `max_header_bytes` long and a body at most `max_body_bytes`; and the frames,
//! the final error (if any) and the bytes left over are the same as when the whole stream
//! arrives in one read.
#![no_main]

use std::mem::{Discriminant, discriminant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use perch::lync::sip::framer::{self, Frame, FrameError, FrameLimits};

#[derive(Debug, PartialEq, Eq)]
enum End {
    NeedMore,
    Error(Discriminant<FrameError>),
}

struct Outcome {
    frames: Vec<Frame>,
    end: End,
}

fn drain(buf: &mut BytesMut, limits: &FrameLimits, bound: usize, out: &mut Outcome) {
    loop {
        let result = framer::decode(buf, limits);
        assert!(
            buf.len() <= bound,
            "buffer holds {} bytes, bound {bound}",
            buf.len()
        );
        match result {
            Ok(Some(frame)) => {
                if let Frame::Message { head, body } = &frame {
                    assert!(
                        head.len() <= limits.max_header_bytes,
                        "head of {} bytes, limit {}",
                        head.len(),
                        limits.max_header_bytes
                    );
                    assert!(
                        body.len() <= limits.max_body_bytes,
                        "body of {} bytes, limit {}",
                        body.len(),
                        limits.max_body_bytes
                    );
                }
                out.frames.push(frame);
            }
            Ok(None) => {
                out.end = End::NeedMore;
                return;
            }
            Err(error) => {
                assert!(error.head().len() <= limits.max_header_bytes);
                out.end = End::Error(discriminant(&error));
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (control, stream) = data.split_at(6);
    let split = usize::from(u16::from_le_bytes([control[0], control[1]])) % (stream.len() + 1);
    let limits = if control[2] & 1 == 0 {
        FrameLimits::default()
    } else {
        FrameLimits {
            max_header_bytes: 8 + usize::from(control[3]) * 4,
            max_headers: 1 + usize::from(control[4] % 32),
            max_body_bytes: usize::from(control[5]) * 8,
        }
    };
    let bound = limits.max_header_bytes + limits.max_body_bytes + stream.len();

    // Two reads, as a socket might deliver them.
    let mut split_run = Outcome {
        frames: Vec::new(),
        end: End::NeedMore,
    };
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&stream[..split]);
    drain(&mut buf, &limits, bound, &mut split_run);
    if split_run.end == End::NeedMore {
        buf.extend_from_slice(&stream[split..]);
        drain(&mut buf, &limits, bound, &mut split_run);
    }
    let split_rest = buf;

    // One read.
    let mut whole_run = Outcome {
        frames: Vec::new(),
        end: End::NeedMore,
    };
    let mut buf = BytesMut::from(stream);
    drain(&mut buf, &limits, bound, &mut whole_run);

    assert_eq!(
        split_run.frames, whole_run.frames,
        "frames depend on the split at {split}"
    );
    assert_eq!(
        split_run.end, whole_run.end,
        "final state depends on the split at {split}"
    );
    if whole_run.end == End::NeedMore {
        assert_eq!(split_rest, buf, "leftover bytes depend on the split at {split}");
    }
});
