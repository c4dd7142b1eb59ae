//! XEP-0198 resumption across connections: sessions that may be resumed, by resumption
//! id. A session keeps the outbox address of the connection that bound it for life (the
//! hub knows it by that address); when its connection drops, the session is parked with
//! that connection's mailbox, which goes on collecting the rooms' traffic, until a new
//! stream of the same user resumes it or it expires. A resumption that finds the old
//! connection still up (a phone that changed networks before the server noticed) asks
//! it to close and takes the session over when it has.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::core::hub::ChatCore;
use crate::core::ids::SessionRef;
use crate::net::metrics::metrics;
use crate::net::outbox::{Mailbox, Outboxes};
use crate::xmpp::c2s::sm::{SmError, StreamManagement};
use crate::xmpp::jid::Jid;

/// Parked sessions one user may have; parking one more gives up their oldest.
const PARKED_PER_USER: usize = 4;
/// Resumable sessions (live and parked) the server tracks; past it, `<enable/>` is
/// granted without resumption.
const MAX_RESUMABLE: usize = 4096;

/// A session whose connection is gone, waiting to be resumed.
pub struct Parked {
    pub user: String,
    pub jid: Jid,
    /// The hub's session: its `connection` is the outbox address it keeps for life.
    pub session: SessionRef,
    pub sm: StreamManagement,
    /// What was delivered to the session since its connection dropped, not yet moved into
    /// `sm`'s queue.
    pub mailbox: Mailbox<Bytes>,
    expires: Instant,
}

impl Parked {
    pub fn new(
        user: String,
        jid: Jid,
        session: SessionRef,
        sm: StreamManagement,
        mailbox: Mailbox<Bytes>,
        expires: Instant,
    ) -> Self {
        Self {
            user,
            jid,
            session,
            sm,
            mailbox,
            expires,
        }
    }

    /// Moves what the mailbox holds into the unacknowledged queue, to be sent on
    /// resumption after what was sent before.
    pub fn collect(&mut self) -> Result<(), SmError> {
        while let Ok(delivery) = self.mailbox.receiver.try_recv() {
            if let Some(unacked) = &mut self.sm.unacked {
                unacked.push(delivery)?;
            }
        }
        Ok(())
    }
}

enum Stage {
    /// On a connection, reachable through the session's outbox address.
    Live,
    /// A new stream waits for the live connection to close and hand the session over.
    Claimed(oneshot::Sender<Box<Parked>>),
    Parked(Box<Parked>),
}

struct Slot {
    user: String,
    session: SessionRef,
    stage: Stage,
}

/// What a `<resume/>` finds.
pub enum Claim {
    Ready(Box<Parked>),
    /// The session is still on a connection, asked to close: it arrives on the receiver.
    Waiting(oneshot::Receiver<Box<Parked>>),
    NotFound,
}

pub struct Resumption {
    slots: Mutex<HashMap<String, Slot>>,
    /// Longest a session may wait to be resumed; zero: resumption is off.
    pub max_wait: Duration,
    /// Bound of a session's unacknowledged stanzas, in bytes.
    pub buffer_bytes: usize,
}

impl Resumption {
    pub fn new(max_wait: Duration, buffer_bytes: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max_wait,
            buffer_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // Every change is one insert, replace or remove: a poisoned map is consistent.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new resumption id for a live session; `None` when resumption is off or full.
    pub fn enable(&self, user: &str, session: &SessionRef) -> Option<String> {
        if self.max_wait.is_zero() {
            return None;
        }
        let mut slots = self.lock();
        if slots.len() >= MAX_RESUMABLE {
            return None;
        }
        let id = crate::core::ids::new_token()?;
        slots.insert(
            id.clone(),
            Slot {
                user: user.to_owned(),
                session: session.clone(),
                stage: Stage::Live,
            },
        );
        Some(id)
    }

    /// The session is on a connection again (after a resumption), under the same id.
    pub fn relive(&self, id: &str, user: &str, session: &SessionRef) {
        self.lock().insert(
            id.to_owned(),
            Slot {
                user: user.to_owned(),
                session: session.clone(),
                stage: Stage::Live,
            },
        );
    }

    /// The session ended for good (a clean close, a stream error).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The session's connection dropped: park it, or hand it to the stream that claimed
    /// it. `Err` gives it back when nobody will take it (the caller ends it); the other
    /// sessions it displaced are the caller's to end as well.
    pub fn park(&self, id: &str, parked: Box<Parked>) -> Result<Vec<Box<Parked>>, Box<Parked>> {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(id) else {
            return Err(parked);
        };
        match std::mem::replace(&mut slot.stage, Stage::Live) {
            Stage::Claimed(taker) => {
                slots.remove(id);
                taker.send(parked).map(|()| Vec::new())
            }
            earlier => {
                // A session parks from its one live connection: an earlier parking of
                // the same id is not expected, and is replaced, not counted twice.
                if !matches!(earlier, Stage::Parked(_)) {
                    metrics().sessions_waiting.inc();
                }
                slot.stage = Stage::Parked(parked);
                let user = slot.user.clone();
                Ok(Self::over_user_limit(&mut slots, &user))
            }
        }
    }

    /// The user's oldest parked sessions past [`PARKED_PER_USER`], taken out.
    // Boxed like every parked session, so none is moved out of its box on the way.
    #[allow(clippy::vec_box)]
    fn over_user_limit(slots: &mut HashMap<String, Slot>, user: &str) -> Vec<Box<Parked>> {
        let mut theirs: Vec<(Instant, String)> = slots
            .iter()
            .filter_map(|(id, slot)| match &slot.stage {
                Stage::Parked(parked) if slot.user == user => Some((parked.expires, id.clone())),
                _ => None,
            })
            .collect();
        theirs.sort();
        let excess = theirs.len().saturating_sub(PARKED_PER_USER);
        theirs
            .into_iter()
            .take(excess)
            .filter_map(|(_, id)| match slots.remove(&id)?.stage {
                Stage::Parked(parked) => {
                    metrics().sessions_waiting.dec();
                    Some(parked)
                }
                _ => None,
            })
            .collect()
    }

    /// A `<resume previd=id/>` of `user`. A live session is asked to close (through
    /// `outboxes`) and claimed; another user's id is not found, like an unknown one.
    pub fn claim(&self, id: &str, user: &str, outboxes: &Outboxes<Bytes>) -> Claim {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(id) else {
            return Claim::NotFound;
        };
        if slot.user != user {
            return Claim::NotFound;
        }
        match &slot.stage {
            Stage::Parked(_) => match slots.remove(id).map(|slot| slot.stage) {
                Some(Stage::Parked(parked)) => {
                    metrics().sessions_waiting.dec();
                    Claim::Ready(parked)
                }
                _ => Claim::NotFound,
            },
            Stage::Live => {
                let (taker, waiting) = oneshot::channel();
                slot.stage = Stage::Claimed(taker);
                outboxes.kick(slot.session.connection);
                Claim::Waiting(waiting)
            }
            Stage::Claimed(_) => Claim::NotFound,
        }
    }

    /// Collects each parked session's deliveries; gives up those expired, over their
    /// bound, or cut off (deliveries were lost: a resumption could not be whole).
    pub fn sweep(&self, now: Instant, outboxes: &Outboxes<Bytes>) -> Vec<Box<Parked>> {
        let mut slots = self.lock();
        let mut ended = Vec::new();
        slots.retain(|_, slot| {
            let Stage::Parked(parked) = &mut slot.stage else {
                return true;
            };
            let whole =
                parked.collect().is_ok() && outboxes.is_registered(parked.session.connection);
            if whole && now < parked.expires {
                return true;
            }
            if let Stage::Parked(parked) = std::mem::replace(&mut slot.stage, Stage::Live) {
                metrics().sessions_waiting.dec();
                ended.push(parked);
            }
            false
        });
        ended
    }
}

/// Ends sessions that will not be resumed.
pub fn end_all(ended: Vec<Box<Parked>>, core: &ChatCore, outboxes: &Outboxes<Bytes>) {
    for parked in ended {
        metrics().sessions_not_resumed.inc();
        end_session(&parked.user, &parked.session, core, outboxes);
    }
}

/// A session over for good: it leaves its rooms, and its address goes.
pub fn end_session(user: &str, session: &SessionRef, core: &ChatCore, outboxes: &Outboxes<Bytes>) {
    tracing::debug!(%session, "XMPP session ended");
    core.leave_all(user, session);
    outboxes.unregister(session.connection);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::ids::Gateway;

    struct Rig {
        resumption: Resumption,
        outboxes: Outboxes<Bytes>,
        now: Instant,
    }

    impl Rig {
        fn new() -> Self {
            Self {
                resumption: Resumption::new(Duration::from_secs(60), 1024),
                outboxes: Outboxes::default(),
                now: Instant::now(),
            }
        }

        /// A live resumable session of `user` on connection `id`; its resumption id.
        fn live(&self, user: &str, id: u64) -> (String, SessionRef) {
            let session = SessionRef {
                gateway: Gateway::Xmpp,
                connection: id,
                stream: Arc::from(format!("{user}/r{id}")),
            };
            (self.resumption.enable(user, &session).unwrap(), session)
        }

        fn parked(&self, user: &str, session: &SessionRef, wait: u64) -> Box<Parked> {
            Box::new(Parked::new(
                user.to_owned(),
                Jid::parse(&session.stream).unwrap(),
                session.clone(),
                StreamManagement::new(Some(1024)),
                self.outboxes.register(session.connection, 8),
                self.now + Duration::from_secs(wait),
            ))
        }
    }

    #[test]
    fn a_users_oldest_parked_session_gives_way_past_the_limit() {
        let rig = Rig::new();
        let mut ids = Vec::new();
        for n in 0..=PARKED_PER_USER as u64 {
            let (id, session) = rig.live("alice@x", n + 1);
            // The first parked expires first: it is the oldest.
            let displaced = rig
                .resumption
                .park(&id, rig.parked("alice@x", &session, 10 + n));
            let displaced = displaced.ok().unwrap();
            if n < PARKED_PER_USER as u64 {
                assert!(displaced.is_empty());
            } else {
                let gone: Vec<u64> = displaced.iter().map(|p| p.session.connection).collect();
                assert_eq!(gone, [1]);
            }
            ids.push(id);
        }
        // Another user's sessions are not counted against alice.
        let (bob, session) = rig.live("bob@x", 99);
        assert!(
            rig.resumption
                .park(&bob, rig.parked("bob@x", &session, 1))
                .ok()
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            rig.resumption.claim(&ids[0], "alice@x", &rig.outboxes),
            Claim::NotFound
        ));
        assert!(matches!(
            rig.resumption.claim(&ids[1], "alice@x", &rig.outboxes),
            Claim::Ready(_)
        ));
        assert!(matches!(
            rig.resumption.claim(&bob, "alice@x", &rig.outboxes),
            Claim::NotFound
        ));
    }

    #[test]
    fn the_sweep_collects_deliveries_and_ends_the_expired_the_overfull_and_the_cut_off() {
        let rig = Rig::new();
        let park = |user: &str, connection: u64, wait: u64| {
            let (id, session) = rig.live(user, connection);
            let parked = rig.parked(user, &session, wait);
            rig.resumption.park(&id, parked).ok().unwrap();
            id
        };
        let waiting = park("a@x", 1, 60);
        park("b@x", 2, 1);
        park("c@x", 3, 60);
        park("d@x", 4, 60);
        assert!(rig.outboxes.deliver(1, Bytes::from_static(b"<message/>")));
        // Over c's 1024 bytes once collected.
        for _ in 0..2 {
            assert!(rig.outboxes.deliver(3, Bytes::from(vec![b'x'; 600])));
        }
        rig.outboxes.unregister(4);
        let ended = rig
            .resumption
            .sweep(rig.now + Duration::from_secs(2), &rig.outboxes);
        let mut gone: Vec<u64> = ended.iter().map(|p| p.session.connection).collect();
        gone.sort();
        assert_eq!(gone, [2, 3, 4]);
        let Claim::Ready(parked) = rig.resumption.claim(&waiting, "a@x", &rig.outboxes) else {
            panic!("a's session waits");
        };
        let kept: Vec<&Bytes> = parked.sm.unacked.as_ref().unwrap().pending().collect();
        assert_eq!(kept, [&Bytes::from_static(b"<message/>")]);
    }
}
