//! Token buckets for request rates, per connection and per key (an address, a user), the
//! same for every protocol: SIP answers 503 with Retry-After past them, XMPP a stanza error.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: None,
        }
    }

    /// Takes a token if one is available.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl TokenBucket {
    /// Whether the bucket would be full by `now`: it has nothing to remember.
    fn idle(&self, now: Instant) -> bool {
        self.last.is_none_or(|last| {
            self.tokens + now.saturating_duration_since(last).as_secs_f64() * self.per_second
                >= self.burst
        })
    }
}

/// A token bucket per key (an address, a network prefix), for limits shared by every
/// connection from it. At most `capacity` keys are remembered; when the table is full,
/// idle buckets are dropped, and if none is idle the new key is let through unmetered
/// (what is limited costs perch no state, so failing open cannot be used to exhaust it).
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    per_second: u32,
    burst: u32,
    capacity: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq> KeyedBuckets<K> {
    pub fn new(per_second: u32, burst: u32, capacity: usize) -> Self {
        Self {
            per_second,
            burst,
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket. The key is copied only when it gets a bucket, so
    /// a request of a known user costs a lookup, not an allocation.
    pub fn allow<Q>(&self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if let Some(bucket) = buckets.get_mut(key) {
            return bucket.allow(now);
        }
        if buckets.len() >= self.capacity {
            buckets.retain(|_, bucket| !bucket.idle(now));
            if buckets.len() >= self.capacity {
                return true;
            }
        }
        let mut bucket = TokenBucket::new(self.per_second, self.burst);
        let allowed = bucket.allow(now);
        buckets.insert(key.to_owned(), bucket);
        allowed
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyed_buckets_meter_each_key_and_forget_idle_ones() {
        let buckets = KeyedBuckets::new(1, 2, 2);
        let t0 = Instant::now();
        assert!(buckets.allow("a", t0) && buckets.allow("a", t0));
        assert!(!buckets.allow("a", t0), "a is over its burst");
        assert!(buckets.allow("b", t0), "b has its own bucket");
        // The table is full (a, b); c is let through, unmetered, rather than refused.
        assert!(buckets.allow("c", t0));
        // Later a and b are idle again, so c gets a bucket of its own.
        let later = t0 + Duration::from_secs(5);
        assert!(buckets.allow("c", later) && buckets.allow("c", later));
        assert!(!buckets.allow("c", later));
    }

    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let mut bucket = TokenBucket::new(10, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| bucket.allow(t0)));
        assert!(!bucket.allow(t0));
        assert!(bucket.allow(t0 + Duration::from_millis(100)));
        assert!(!bucket.allow(t0 + Duration::from_millis(100)));
        assert!((0..3).all(|_| bucket.allow(t0 + Duration::from_secs(10))));
        assert!(!bucket.allow(t0 + Duration::from_secs(10)));
    }
}
