//! Transactions of one connection. Server transactions are keyed on Call-ID + CSeq number +
//! method, because SIPE sends no Via branch inside dialogs; a retransmitted request gets the
//! stored response again. Client transactions track the requests perch sends (INFO, BYE).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::lync::sip::Method;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    pub call_id: String,
    pub cseq: u32,
    pub method: Method,
}

/// How long a final response is kept for retransmissions (64 × T1, RFC 3261 Timer J).
const SERVER_LINGER: Duration = Duration::from_secs(32);
/// Bound on transactions remembered per connection, so a flood of distinct requests
/// cannot grow memory; each costs a hashed key (the Call-ID itself is not kept).
const SERVER_CAPACITY: usize = 256;
/// What the client transactions keep allocated once none is open.
const SETTLED_CAPACITY: usize = 8;

/// Bytes of responses kept for retransmission by all connections together.
#[derive(Debug)]
pub struct RetransmissionBudget {
    limit: usize,
    used: AtomicUsize,
}

impl RetransmissionBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// What a request's key says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Not seen before: handle it.
    New,
    /// A retransmission: send the stored response again.
    Answer(Bytes),
    /// A retransmission whose response was not kept (over the byte bounds): drop it rather
    /// than run it twice. Clients do not retransmit over TCP or TLS, so nothing is lost.
    Absorb,
}

/// Requests this connection answered, each remembered by a hash of its key for
/// `SERVER_LINGER`, with the response bytes while they fit the per-connection and total
/// budgets.
#[derive(Debug)]
pub struct ServerTransactions {
    hasher: RandomState,
    responses: HashMap<u64, Option<Bytes>>,
    order: VecDeque<(Instant, u64)>,
    bytes: usize,
    per_connection: usize,
    budget: Arc<RetransmissionBudget>,
}

impl ServerTransactions {
    pub fn new(per_connection: usize, budget: Arc<RetransmissionBudget>) -> Self {
        Self {
            hasher: RandomState::new(),
            responses: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            per_connection,
            budget,
        }
    }

    fn hash(&self, key: &ServerKey) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn retransmission(&self, key: &ServerKey) -> Repeat {
        match self.responses.get(&self.hash(key)) {
            None => Repeat::New,
            Some(Some(response)) => Repeat::Answer(response.clone()),
            Some(None) => Repeat::Absorb,
        }
    }

    pub fn completed(&mut self, key: ServerKey, response: Bytes, now: Instant) {
        let hash = self.hash(&key);
        if self.responses.contains_key(&hash) {
            return;
        }
        if self.order.len() >= SERVER_CAPACITY {
            self.forget_oldest();
        }
        // Make room in this connection's share by forgetting the oldest responses' bytes
        // (their keys stay, so their retransmissions are absorbed).
        let len = response.len();
        let mut kept = None;
        if len <= self.per_connection {
            let mut next = 0;
            while self.bytes + len > self.per_connection && next < self.order.len() {
                let oldest = self.order[next].1;
                self.drop_bytes(oldest);
                next += 1;
            }
            if self.budget.reserve(len) {
                self.bytes += len;
                kept = Some(response);
            }
        }
        self.responses.insert(hash, kept);
        self.order.push_back((now, hash));
    }

    fn drop_bytes(&mut self, hash: u64) {
        if let Some(slot) = self.responses.get_mut(&hash)
            && let Some(response) = slot.take()
        {
            self.bytes -= response.len();
            self.budget.release(response.len());
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, hash)) = self.order.pop_front() {
            self.drop_bytes(hash);
            self.responses.remove(&hash);
        }
    }

    /// Bytes of responses this connection keeps.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    /// Whether an INVITE with this Call-ID and CSeq number was answered (for CANCEL).
    pub fn answered_invite(&self, call_id: &str, cseq: u32) -> bool {
        self.responses.contains_key(&self.hash(&ServerKey {
            call_id: call_id.to_owned(),
            cseq,
            method: Method::Invite,
        }))
    }

    /// When the oldest stored response may be dropped.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|(at, _)| *at + SERVER_LINGER)
    }

    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < SERVER_LINGER {
                break;
            }
            self.forget_oldest();
        }
    }
}

impl Drop for ServerTransactions {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub call_id: String,
    pub cseq: u32,
}

#[derive(Debug, Clone)]
pub struct Outstanding {
    pub method: Method,
    pub sent: Instant,
}

/// Requests perch sent and is waiting to hear back about.
#[derive(Debug, Default)]
pub struct ClientTransactions {
    outstanding: HashMap<ClientKey, Outstanding>,
    /// Send times in order, so the oldest is found without a scan; entries whose
    /// transaction has ended are dropped when they reach the front.
    order: VecDeque<(Instant, ClientKey)>,
}

impl ClientTransactions {
    pub fn sent(&mut self, key: ClientKey, method: Method, now: Instant) {
        self.order.push_back((now, key.clone()));
        self.outstanding
            .insert(key, Outstanding { method, sent: now });
    }

    /// When the oldest open transaction times out.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Instant> {
        while let Some((sent, key)) = self.order.front() {
            if self.outstanding.get(key).is_some_and(|o| o.sent == *sent) {
                return Some(*sent + timeout);
            }
            self.order.pop_front();
        }
        None
    }

    /// A final response ends the transaction; provisional ones leave it open.
    pub fn response(&mut self, key: &ClientKey, code: u16) -> Option<Outstanding> {
        if code < 200 {
            return self.outstanding.get(key).cloned();
        }
        let ended = self.outstanding.remove(key);
        if self.outstanding.is_empty() {
            self.settle();
        }
        ended
    }

    /// Nothing is open: forget the send order and give back what a burst (a sign-in's
    /// roster notices) made the two collections grow to.
    fn settle(&mut self) {
        self.order.clear();
        self.order.shrink_to(SETTLED_CAPACITY);
        self.outstanding.shrink_to(SETTLED_CAPACITY);
    }

    /// Removes and returns the transactions that have waited longer than `timeout`.
    pub fn timed_out(&mut self, now: Instant, timeout: Duration) -> Vec<(ClientKey, Outstanding)> {
        let mut expired = Vec::new();
        while let Some((sent, _)) = self.order.front() {
            if now.duration_since(*sent) < timeout {
                break;
            }
            let Some((sent, key)) = self.order.pop_front() else {
                break;
            };
            if self.outstanding.get(&key).is_some_and(|o| o.sent == sent)
                && let Some(outstanding) = self.outstanding.remove(&key)
            {
                expired.push((key, outstanding));
            }
        }
        expired
    }

    pub fn forget_call(&mut self, call_id: &str) {
        self.outstanding.retain(|k, _| k.call_id != call_id);
        if self.outstanding.is_empty() {
            self.settle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> ServerKey {
        ServerKey {
            call_id: "c".into(),
            cseq: n,
            method: Method::Info,
        }
    }

    #[test]
    fn server_cache_is_bounded_and_expires() {
        let mut txns = ServerTransactions::new(1 << 20, RetransmissionBudget::new(1 << 20));
        let t0 = Instant::now();
        for n in 0..(SERVER_CAPACITY as u32 + 10) {
            txns.completed(key(n), Bytes::from_static(b"r"), t0);
        }
        assert_eq!(txns.retransmission(&key(0)), Repeat::New);
        assert!(matches!(
            txns.retransmission(&key(SERVER_CAPACITY as u32)),
            Repeat::Answer(_)
        ));
        txns.expire(t0 + SERVER_LINGER);
        assert_eq!(
            txns.retransmission(&key(SERVER_CAPACITY as u32)),
            Repeat::New
        );
        assert_eq!(txns.held_bytes(), 0);
    }

    #[test]
    fn response_bytes_are_bounded_per_connection_and_in_total() {
        let budget = RetransmissionBudget::new(3000);
        let t0 = Instant::now();
        let response = Bytes::from(vec![b'x'; 1000]);
        let mut one = ServerTransactions::new(2000, budget.clone());
        for n in 0..5 {
            one.completed(key(n), response.clone(), t0);
        }
        assert_eq!(one.held_bytes(), 2000);
        assert_eq!(one.retransmission(&key(0)), Repeat::Absorb);
        assert!(matches!(one.retransmission(&key(4)), Repeat::Answer(_)));
        // The total leaves another connection room for one response only.
        let mut two = ServerTransactions::new(2000, budget.clone());
        two.completed(key(0), response.clone(), t0);
        two.completed(key(1), response.clone(), t0);
        assert!(matches!(two.retransmission(&key(0)), Repeat::Answer(_)));
        assert_eq!(two.retransmission(&key(1)), Repeat::Absorb);
        assert_eq!(budget.used(), 2000 + 1000);
        drop(one);
        assert_eq!(budget.used(), 1000);
        drop(two);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn client_transactions_complete_and_time_out() {
        let mut txns = ClientTransactions::default();
        let t0 = Instant::now();
        let k = |n| ClientKey {
            call_id: "c".into(),
            cseq: n,
        };
        txns.sent(k(1), Method::Info, t0);
        txns.sent(k(2), Method::Info, t0);
        assert!(txns.response(&k(1), 100).is_some());
        assert!(txns.response(&k(1), 200).is_some());
        assert!(txns.response(&k(1), 200).is_none());
        let late = txns.timed_out(t0 + Duration::from_secs(40), Duration::from_secs(32));
        assert_eq!(late.len(), 1);
        assert!(
            txns.timed_out(t0 + Duration::from_secs(99), Duration::ZERO)
                .is_empty()
        );
    }

    #[test]
    fn the_next_timeout_is_the_oldest_open_transaction() {
        let mut txns = ClientTransactions::default();
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let timeout = Duration::from_secs(32);
        let k = |n| ClientKey {
            call_id: format!("c{n}"),
            cseq: 1,
        };
        assert_eq!(txns.next_timeout(timeout), None);
        for n in 0..3 {
            txns.sent(k(n), Method::Info, t0 + second * n);
        }
        txns.response(&k(0), 200);
        assert_eq!(txns.next_timeout(timeout), Some(t0 + second + timeout));
        txns.forget_call("c1");
        assert_eq!(txns.next_timeout(timeout), Some(t0 + second * 2 + timeout));
        // The same key sent again later: only the later send is open.
        txns.sent(k(2), Method::Info, t0 + second * 5);
        let late = txns.timed_out(t0 + second * 2 + timeout, timeout);
        assert!(late.is_empty());
        assert_eq!(txns.next_timeout(timeout), Some(t0 + second * 5 + timeout));
        assert_eq!(txns.timed_out(t0 + second * 5 + timeout, timeout).len(), 1);
        assert_eq!(txns.next_timeout(timeout), None);
    }
}
