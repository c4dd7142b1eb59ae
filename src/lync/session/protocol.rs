//! The Lync gateway as the network layer sees it: a SIP [`Session`] per connection, fed
//! whole messages cut by the SIP framer (framing stays apart from parsing: an incomplete
//! message is not an error, it waits for more bytes).

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::lync::sip::framer;
use crate::net::outbox::Mailbox;
use crate::net::{self, ConnectionInfo, Retention};

use super::{Answer, Outbound, Outboxes, Output, Session, Shared};

pub struct LyncProtocol {
    shared: Arc<Shared>,
}

impl LyncProtocol {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl net::Protocol for LyncProtocol {
    const NAME: &'static str = "sip";
    type Connection = Session;
    type Delivery = Outbound;

    fn open(&self, info: ConnectionInfo) -> Session {
        Session::new(info, self.shared.clone())
    }

    fn outboxes(&self) -> &Arc<Outboxes> {
        &self.shared.outboxes
    }
}

impl net::Connection for Session {
    type Delivery = Outbound;
    type Answer = Answer;

    fn receive(&mut self, buffer: &mut BytesMut, now: Instant) -> bool {
        let limits = self.frame_limits();
        loop {
            match framer::decode(buffer, &limits) {
                Ok(Some(frame)) => self.handle_frame(frame, now),
                Ok(None) => return true,
                Err(error) => {
                    self.handle_frame_error(&error);
                    return false;
                }
            }
        }
    }

    fn deliver(&mut self, delivery: Outbound, now: Instant) {
        Session::deliver(self, delivery, now);
    }

    fn finish_deferred(&mut self, id: u64, answer: Answer, now: Instant) {
        Session::finish_deferred(self, id, answer, now);
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        Session::next_deadline(self)
    }

    fn tick(&mut self, now: Instant) {
        Session::tick(self, now);
    }

    fn take_outputs(&mut self) -> Vec<Output> {
        Session::take_outputs(self)
    }

    fn closed(&mut self, _mailbox: Mailbox<Self::Delivery>) -> Retention {
        Session::closed(self);
        Retention::Released
    }
}
