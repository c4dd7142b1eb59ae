//! A token bucket per connection: requests beyond the sustained rate and burst are answered
//! 503 with Retry-After, which Lync clients honour by retrying.

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

#[cfg(test)]
mod tests {
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
