//! XEP-0198 stream management's bookkeeping, without I/O: the count of stanzas received
//! from the client, and, once resumption is on, every stanza perch sent that the client
//! has not acknowledged yet, in a queue bounded in bytes.

use std::collections::VecDeque;

use bytes::Bytes;

/// Unacknowledged stanzas past which perch asks for an acknowledgement (`<r/>`).
const REQUEST_EVERY: usize = 16;

/// A stream's stream management, from `<enable/>` on.
#[derive(Debug)]
pub struct StreamManagement {
    /// Stanzas received from the client, modulo 2^32: the `h` perch reports.
    pub handled: u32,
    /// Present when the session may be resumed: what a resumption would send again.
    pub unacked: Option<Unacked>,
}

impl StreamManagement {
    pub fn new(resumable: Option<usize>) -> Self {
        Self {
            handled: 0,
            unacked: resumable.map(Unacked::new),
        }
    }

    pub fn received(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }
}

/// What the client sent back does not fit what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmError {
    /// The client acknowledged stanzas perch never sent (XEP-0198 §4,
    /// handled-count-too-high).
    HandledCountTooHigh { h: u32, sent: u32 },
    /// More unacknowledged bytes than the bound: the client does not acknowledge.
    Overflow { bytes: usize, limit: usize },
}

/// Stanzas sent and not yet acknowledged, oldest first.
#[derive(Debug)]
pub struct Unacked {
    /// The client's last `h`: how many of perch's stanzas it has, modulo 2^32.
    acked: u32,
    queue: VecDeque<Bytes>,
    bytes: usize,
    limit: usize,
    /// An `<r/>` went out and its `<a/>` has not come back.
    requested: bool,
}

impl Unacked {
    fn new(limit: usize) -> Self {
        Self {
            acked: 0,
            queue: VecDeque::new(),
            bytes: 0,
            limit,
            requested: false,
        }
    }

    /// Stanzas sent so far, modulo 2^32.
    pub fn sent(&self) -> u32 {
        // The queue never holds 2^32 stanzas: the byte bound stops it long before.
        self.acked.wrapping_add(self.queue.len() as u32)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records a stanza sent (or queued for sending). `Ok(true)`: time to ask the client
    /// for an acknowledgement.
    pub fn push(&mut self, stanza: Bytes) -> Result<bool, SmError> {
        self.bytes += stanza.len();
        self.queue.push_back(stanza);
        if self.bytes > self.limit {
            return Err(SmError::Overflow {
                bytes: self.bytes,
                limit: self.limit,
            });
        }
        let due = self.queue.len() >= REQUEST_EVERY || self.bytes * 2 >= self.limit;
        if due && !self.requested {
            self.requested = true;
            return Ok(true);
        }
        Ok(false)
    }

    /// The client has `h` of perch's stanzas: those leave the queue.
    pub fn acknowledge(&mut self, h: u32) -> Result<(), SmError> {
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.queue.len() {
            return Err(SmError::HandledCountTooHigh {
                h,
                sent: self.sent(),
            });
        }
        for stanza in self.queue.drain(..newly) {
            self.bytes -= stanza.len();
        }
        self.acked = h;
        self.requested = false;
        Ok(())
    }

    /// Everything unacknowledged, to send again on a resumed stream.
    pub fn pending(&self) -> impl Iterator<Item = &Bytes> {
        self.queue.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(n: usize) -> Bytes {
        Bytes::from(format!("<message id='{n}'/>"))
    }

    #[test]
    fn acknowledged_stanzas_leave_the_queue() {
        let mut unacked = Unacked::new(1 << 20);
        for n in 0..5 {
            assert_eq!(unacked.push(stanza(n)), Ok(false));
        }
        assert_eq!(unacked.sent(), 5);
        unacked.acknowledge(3).unwrap();
        let left: Vec<&Bytes> = unacked.pending().collect();
        assert_eq!(left, [&stanza(3), &stanza(4)]);
        assert_eq!(unacked.bytes(), stanza(3).len() + stanza(4).len());
        // The same h again changes nothing.
        unacked.acknowledge(3).unwrap();
        assert_eq!(unacked.pending().count(), 2);
    }

    #[test]
    fn an_ack_beyond_what_was_sent_is_an_error() {
        let mut unacked = Unacked::new(1 << 20);
        unacked.push(stanza(0)).unwrap();
        assert_eq!(
            unacked.acknowledge(2),
            Err(SmError::HandledCountTooHigh { h: 2, sent: 1 })
        );
        // An h from before the last one is one too far ahead, modulo 2^32.
        unacked.acknowledge(1).unwrap();
        assert!(unacked.acknowledge(0).is_err());
    }

    #[test]
    fn counts_wrap_at_two_to_the_thirty_second() {
        let mut unacked = Unacked::new(1 << 20);
        unacked.acked = u32::MAX - 1;
        for n in 0..4 {
            unacked.push(stanza(n)).unwrap();
        }
        assert_eq!(unacked.sent(), 2);
        unacked.acknowledge(1).unwrap();
        assert_eq!(unacked.pending().count(), 1);
    }

    #[test]
    fn asks_for_an_ack_once_until_it_comes() {
        let mut unacked = Unacked::new(1 << 20);
        let asks: Vec<bool> = (0..40).map(|n| unacked.push(stanza(n)).unwrap()).collect();
        assert_eq!(asks.iter().filter(|ask| **ask).count(), 1);
        assert!(asks[REQUEST_EVERY - 1]);
        unacked.acknowledge(40).unwrap();
        // Asked again only when enough is unacknowledged again.
        assert_eq!(unacked.push(stanza(41)), Ok(false));
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let one = stanza(0).len();
        let mut unacked = Unacked::new(one * 3);
        unacked.push(stanza(0)).unwrap();
        // Half the bound reached: an ack is asked for.
        assert_eq!(unacked.push(stanza(1)), Ok(true));
        unacked.push(stanza(2)).unwrap();
        assert_eq!(
            unacked.push(stanza(3)),
            Err(SmError::Overflow {
                bytes: one * 4,
                limit: one * 3
            })
        );
    }

    #[test]
    fn received_stanzas_are_counted_modulo_two_to_the_thirty_second() {
        let mut sm = StreamManagement::new(None);
        sm.handled = u32::MAX;
        sm.received();
        assert_eq!(sm.handled, 0);
        assert!(sm.unacked.is_none());
    }
}
