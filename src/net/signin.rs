//! Failed sign-ins, shared by every way of signing in (SIP Digest and NTLM, the room
//! page's password form): one throttle, so that a guesser cannot switch protocols to get
//! more tries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limits::address_group;

/// Failed sign-ins, counted two ways, so that nobody can lock anyone else out:
/// - per source address (an IPv6 /64), all users together, in a fixed window: an address
///   over its limit is abusive and refused until the window ends;
/// - per (user, address): after `per_user_address` failures each further attempt from that
///   address for that user must wait, the wait doubling with every failure (1 s, 2 s, 4 s …
///   up to the window). A success clears it. Failures for a user from other addresses do
///   not matter, so the user signs in from their own machine whoever guesses elsewhere.
pub struct FailureThrottle {
    window: Duration,
    per_address: u32,
    per_user_address: u32,
    failures: Mutex<HashMap<ThrottleKey, Failures>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ThrottleKey {
    Address(IpAddr),
    /// The user is at most the gateway's bound on names (SIP: 256 bytes) long.
    UserAddress(String, IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    last: Instant,
    count: u32,
}

/// Bound on remembered keys, so a scan from many addresses cannot grow memory (each key is
/// at most an address plus a 256-byte user name).
const THROTTLE_CAPACITY: usize = 100_000;

impl FailureThrottle {
    pub fn new(window: Duration, per_address: u32, per_user_address: u32) -> Self {
        Self {
            window,
            per_address,
            per_user_address,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long a (user, address) pair with `count` failures must wait after its last one.
    fn delay(&self, count: u32) -> Duration {
        let Some(over) = count.checked_sub(self.per_user_address) else {
            return Duration::ZERO;
        };
        Duration::from_secs(1u64 << over.min(20)).min(self.window)
    }

    pub fn is_blocked(&self, address: IpAddr, user: Option<&str>, now: Instant) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return true;
        };
        let group = address_group(address);
        let abusive = failures.get(&ThrottleKey::Address(group)).is_some_and(|f| {
            now.duration_since(f.first) < self.window && f.count >= self.per_address
        });
        let waiting = user.is_some_and(|user| {
            failures
                .get(&ThrottleKey::UserAddress(user.to_owned(), group))
                .is_some_and(|f| {
                    f.count >= self.per_user_address
                        && now.duration_since(f.last) < self.delay(f.count)
                })
        });
        abusive || waiting
    }

    pub fn record_failure(&self, address: IpAddr, user: Option<&str>, now: Instant) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= THROTTLE_CAPACITY {
            let window = self.window;
            failures.retain(|_, f| now.duration_since(f.last) < window);
        }
        let group = address_group(address);
        let keys = std::iter::once(ThrottleKey::Address(group))
            .chain(user.map(|u| ThrottleKey::UserAddress(u.to_owned(), group)));
        for key in keys {
            let fresh = Failures {
                first: now,
                last: now,
                count: 0,
            };
            let entry = failures.entry(key.clone()).or_insert(fresh);
            // An address counts in fixed windows; a (user, address) pair until it has been
            // quiet for a window.
            let expired = match key {
                ThrottleKey::Address(_) => now.duration_since(entry.first) >= self.window,
                ThrottleKey::UserAddress(..) => now.duration_since(entry.last) >= self.window,
            };
            if expired {
                *entry = fresh;
            }
            entry.last = now;
            entry.count = entry.count.saturating_add(1);
            // Once per window and key, when the throttle engages: an operator sees a
            // lockout without a line per refused attempt.
            match &key {
                ThrottleKey::Address(group) if entry.count == self.per_address => {
                    tracing::warn!(
                        address = %group,
                        failures = entry.count,
                        "sign-ins from this address refused for the rest of the window: too many failures"
                    );
                }
                ThrottleKey::UserAddress(user, group) if entry.count == self.per_user_address => {
                    tracing::warn!(
                        user,
                        address = %group,
                        failures = entry.count,
                        "sign-ins of this user from this address now wait, 1 s and doubling"
                    );
                }
                _ => {}
            }
        }
    }

    /// Forgets a user's failures from every address.
    pub fn forget_user(&self, user: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|key, _| !matches!(key, ThrottleKey::UserAddress(u, _) if u == user));
        }
    }

    /// A successful sign-in clears that user's failures from that address.
    pub fn record_success(&self, address: IpAddr, user: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ThrottleKey::UserAddress(
                user.to_owned(),
                address_group(address),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `run` logs at WARN and above, as text lines.
    fn warnings(run: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lockouts_are_logged_once_when_they_begin() {
        let throttle = FailureThrottle::new(Duration::from_secs(60), 4, 2);
        let now = Instant::now();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let log = warnings(|| {
            for _ in 0..6 {
                throttle.record_failure(peer, Some("alice@example.test"), now);
            }
        });
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].contains("user=\"alice@example.test\"")
                && lines[0].contains("address=192.0.2.7")
                && lines[0].contains("now wait"),
            "{log}"
        );
        assert!(
            lines[1].contains("address=192.0.2.7") && lines[1].contains("too many failures"),
            "{log}"
        );
    }

    #[test]
    fn a_user_and_address_pair_waits_longer_after_each_failure() {
        let throttle = FailureThrottle::new(Duration::from_secs(60), 100, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!throttle.is_blocked(ip, Some("a@x"), t0));
            throttle.record_failure(ip, Some("a@x"), t0);
        }
        // Three failures: wait 1 s, then 2 s after a fourth, 4 s after a fifth.
        assert!(throttle.is_blocked(ip, Some("a@x"), t0));
        assert!(!throttle.is_blocked(ip, Some("b@x"), t0), "another user");
        let t1 = t0 + Duration::from_secs(1);
        assert!(!throttle.is_blocked(ip, Some("a@x"), t1));
        throttle.record_failure(ip, Some("a@x"), t1);
        assert!(throttle.is_blocked(ip, Some("a@x"), t1 + Duration::from_millis(1900)));
        assert!(!throttle.is_blocked(ip, Some("a@x"), t1 + Duration::from_secs(2)));
        // A success from there clears it.
        throttle.record_success(ip, "a@x");
        for _ in 0..3 {
            throttle.record_failure(ip, Some("a@x"), t1);
        }
        assert_eq!(throttle.delay(3), Duration::from_secs(1));
        assert_eq!(
            throttle.delay(40),
            Duration::from_secs(60),
            "capped at the window"
        );
    }

    #[test]
    fn failures_elsewhere_do_not_lock_a_user_out() {
        // A stranger guesses alice's password from five addresses, five times each.
        let throttle = FailureThrottle::new(Duration::from_secs(300), 20, 5);
        let t0 = Instant::now();
        for host in 1..=5 {
            let ip: IpAddr = format!("192.0.2.{host}").parse().unwrap();
            for _ in 0..5 {
                throttle.record_failure(ip, Some("alice@x"), t0);
            }
            assert!(throttle.is_blocked(ip, Some("alice@x"), t0));
        }
        let own: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!throttle.is_blocked(own, Some("alice@x"), t0));
        // An address that tries many users is abusive for all of them.
        let scanner: IpAddr = "203.0.113.9".parse().unwrap();
        for n in 0..20 {
            throttle.record_failure(scanner, Some(&format!("user{n}@x")), t0);
        }
        assert!(throttle.is_blocked(scanner, Some("alice@x"), t0));
    }

    #[test]
    fn throttle_counts_an_ipv6_64_as_one_address() {
        let throttle = FailureThrottle::new(Duration::from_secs(60), 3, 100);
        let t0 = Instant::now();
        for host in 1..=3 {
            let ip: IpAddr = format!("2001:db8:5:6::{host}").parse().unwrap();
            throttle.record_failure(ip, None, t0);
        }
        let fresh: IpAddr = "2001:db8:5:6:ffff::42".parse().unwrap();
        assert!(throttle.is_blocked(fresh, None, t0), "same /64");
        let other: IpAddr = "2001:db8:5:7::1".parse().unwrap();
        assert!(!throttle.is_blocked(other, None, t0), "another /64");
    }
}
