//! Delivery to connections from elsewhere in the server: each connection registers a
//! bounded queue; a gateway's fan-out pushes already-serialised bodies into it. A
//! connection whose queue is full is cut off rather than allowed to grow the server's
//! memory. Generic over what a protocol delivers (`D`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

struct Outbox<D> {
    sender: mpsc::Sender<D>,
    cut_off: Arc<Notify>,
}

// Not derived: that would ask `D: Clone`, and only the handles are cloned.
impl<D> Clone for Outbox<D> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            cut_off: self.cut_off.clone(),
        }
    }
}

/// What a connection keeps to receive deliveries.
pub struct Mailbox<D> {
    pub receiver: mpsc::Receiver<D>,
    /// Signalled when the connection fell too far behind and must close.
    pub cut_off: Arc<Notify>,
}

pub struct Outboxes<D> {
    by_connection: Mutex<HashMap<u64, Outbox<D>>>,
}

impl<D> Default for Outboxes<D> {
    fn default() -> Self {
        Self {
            by_connection: Mutex::new(HashMap::new()),
        }
    }
}

impl<D> Outboxes<D> {
    pub fn register(&self, connection: u64, capacity: usize) -> Mailbox<D> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let cut_off = Arc::new(Notify::new());
        let outbox = Outbox {
            sender,
            cut_off: cut_off.clone(),
        };
        self.lock().insert(connection, outbox);
        Mailbox { receiver, cut_off }
    }

    pub fn unregister(&self, connection: u64) {
        self.lock().remove(&connection);
    }

    /// Whether deliveries to `key` still have a queue (not unregistered, not cut off).
    pub fn is_registered(&self, key: u64) -> bool {
        self.lock().contains_key(&key)
    }

    /// From now on deliveries addressed to `from` go to `to`'s queue, and cutting `from`
    /// off closes `to`: a session that outlives its connection (XMPP stream resumption)
    /// keeps the address the rest of the server knows it by. Returns false, changing
    /// nothing, when either has no queue (`from` was cut off: deliveries were lost).
    pub fn redirect(&self, from: u64, to: u64) -> bool {
        let mut map = self.lock();
        let Some(outbox) = map.get(&to).cloned() else {
            return false;
        };
        match map.get_mut(&from) {
            Some(entry) => {
                *entry = outbox;
                true
            }
            None => false,
        }
    }

    /// Asks the connection behind `key` to close, keeping its queue: what is queued stays
    /// for whoever takes the session over.
    pub fn kick(&self, key: u64) {
        if let Some(outbox) = self.lock().get(&key) {
            outbox.cut_off.notify_one();
        }
    }

    /// Queues a delivery; a full queue cuts the connection off. Returns whether it was queued.
    pub fn deliver(&self, connection: u64, outbound: D) -> bool {
        Self::deliver_locked(&mut self.lock(), connection, outbound)
    }

    /// Queues many deliveries under one lock (a post to a large room).
    pub fn deliver_all(&self, deliveries: impl IntoIterator<Item = (u64, D)>) {
        let mut map = self.lock();
        for (connection, outbound) in deliveries {
            Self::deliver_locked(&mut map, connection, outbound);
        }
    }

    /// Queues deliveries that may be lost (presence notices) under one lock: to a queue
    /// already half full they are dropped instead, so a reader who keeps up with messages
    /// is never cut off for notices a burst of sign-ins produced.
    pub fn deliver_droppable_all(&self, deliveries: impl IntoIterator<Item = (u64, D)>) {
        let mut map = self.lock();
        for (connection, outbound) in deliveries {
            let under_pressure = map
                .get(&connection)
                .is_some_and(|outbox| outbox.sender.capacity() * 2 < outbox.sender.max_capacity());
            if under_pressure {
                tracing::debug!(connection, "queue half full: a presence notice dropped");
                continue;
            }
            Self::deliver_locked(&mut map, connection, outbound);
        }
    }

    fn deliver_locked(map: &mut HashMap<u64, Outbox<D>>, connection: u64, outbound: D) -> bool {
        let Some(outbox) = map.get(&connection) else {
            return false;
        };
        match outbox.sender.try_send(outbound) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Cut off once: later deliveries find no outbox and are dropped quietly.
                tracing::warn!(
                    connection,
                    "outgoing queue full: disconnecting a slow client"
                );
                super::metrics::metrics().cut_off.inc();
                outbox.cut_off.notify_one();
                map.remove(&connection);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Outbox<D>>> {
        // Entries are inserted and removed whole; a poisoned map is still consistent.
        self.by_connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn droppable_deliveries_give_way_before_anyone_is_cut_off() {
        let outboxes = Outboxes::<&'static str>::default();
        let mut mailbox = outboxes.register(7, 4);
        outboxes.deliver_droppable_all([(7, "notice")]);
        assert!(outboxes.deliver(7, "post"));
        assert!(outboxes.deliver(7, "post"));
        // Half full: notices are dropped, posts still queue, nobody is cut off.
        outboxes.deliver_droppable_all([(7, "notice"), (7, "notice")]);
        assert!(outboxes.deliver(7, "post"));
        let mut received = Vec::new();
        while let Ok(item) = mailbox.receiver.try_recv() {
            received.push(item);
        }
        assert_eq!(received, ["notice", "post", "post", "post"]);
        // Room again: notices flow.
        outboxes.deliver_droppable_all([(7, "notice")]);
        assert_eq!(mailbox.receiver.try_recv().ok(), Some("notice"));
    }

    #[tokio::test]
    async fn a_redirected_address_queues_to_its_new_connection() {
        let outboxes = Outboxes::<&'static str>::default();
        let mut old = outboxes.register(1, 4);
        let mut new = outboxes.register(2, 4);
        assert!(outboxes.deliver(1, "before"));
        assert!(outboxes.redirect(1, 2));
        assert!(outboxes.deliver(1, "after"));
        assert_eq!(old.receiver.try_recv().ok(), Some("before"));
        assert!(old.receiver.try_recv().is_err());
        assert_eq!(new.receiver.try_recv().ok(), Some("after"));
        // Kicking the old address wakes the new connection and keeps the queue.
        outboxes.kick(1);
        new.cut_off.notified().await;
        assert!(outboxes.is_registered(1));
        assert!(!outboxes.redirect(1, 3));
        assert!(!outboxes.redirect(4, 2), "a cut-off address stays cut off");
    }

    #[tokio::test]
    async fn full_queue_cuts_off() {
        let outboxes = Outboxes::<&'static str>::default();
        let mut mailbox = outboxes.register(7, 2);
        let info = || "x";
        assert!(outboxes.deliver(7, info()));
        assert!(outboxes.deliver(7, info()));
        assert!(!outboxes.deliver(7, info()));
        // Cut off: nothing more is queued for it, and no more warnings.
        assert!(!outboxes.deliver(7, info()));
        // The notification is stored until the connection looks.
        mailbox.cut_off.notified().await;
        assert!(mailbox.receiver.recv().await.is_some());
        outboxes.unregister(7);
        assert!(!outboxes.deliver(7, info()));
    }
}
