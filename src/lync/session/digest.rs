//! SIP Digest authentication (RFC 2617 MD5 and RFC 8760 SHA-256, qop=auth): credential
//! hashing, challenges, nonce bookkeeping with nonce-count replay protection, and a
//! throttle on failed attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use md5::Md5;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};

use crate::core::credentials::DigestHa1;
use crate::lync::sip::header::{Params, unquote};
use crate::net::limits::address_group;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// In the order challenges are offered: strongest first (RFC 8760 §2.4).
    pub const OFFERED: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(name: Option<&str>) -> Option<Self> {
        match name {
            None => Some(Algorithm::Md5),
            Some(n) if n.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(n) if n.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    /// The qop=auth request-digest (RFC 2617 §3.2.2.1, RFC 8760 §3).
    pub fn response(
        self,
        ha1: &str,
        method: &str,
        uri: &str,
        nonce: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let ha2 = self.hash(&format!("{method}:{uri}"));
        self.hash(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"))
    }

    pub fn hash(self, input: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(input.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        }
    }
}

/// The fields of an `Authorization: Digest ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: String,
    pub nc: u32,
}

impl DigestResponse {
    /// Parses an Authorization value; `None` if it is not a complete qop=auth Digest answer.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let fields: HashMap<String, String> = crate::lync::sip::message::split_list(rest)
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), unquote(v.trim())))
            .collect();
        let field = |name: &str| fields.get(name).cloned();
        if !field("qop")?.eq_ignore_ascii_case("auth") {
            return None;
        }
        Some(Self {
            username: field("username")?,
            realm: field("realm")?,
            nonce: field("nonce")?,
            uri: field("uri")?,
            response: field("response")?.to_ascii_lowercase(),
            algorithm: Algorithm::parse(fields.get("algorithm").map(String::as_str))?,
            cnonce: field("cnonce")?,
            nc: u32::from_str_radix(&field("nc")?, 16).ok()?,
        })
    }

    /// Whether the response proves knowledge of the password behind `ha1`.
    pub fn verify(&self, method: &str, ha1: &DigestHa1) -> bool {
        let ha1 = match self.algorithm {
            Algorithm::Md5 => &ha1.md5,
            Algorithm::Sha256 => &ha1.sha256,
        };
        let expected =
            self.algorithm
                .response(ha1, method, &self.uri, &self.nonce, self.nc, &self.cnonce);
        // Compare without an early exit, so timing does not reveal how much matched.
        expected.len() == self.response.len()
            && expected
                .bytes()
                .zip(self.response.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// What the nonce store says about a nonce and nonce-count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Not ours (forged, or issued before a restart) or past its lifetime.
    Stale,
    /// The nonce-count did not increase: a replay.
    Replayed,
}

/// Bytes of a nonce before hex: issue time (ms since the table was made), 8 random bytes,
/// and 16 bytes of HMAC-SHA-256 over both under a per-process key.
const NONCE_BYTES: usize = 8 + 8 + 16;

/// Digest nonces. Issuing one stores nothing: a nonce carries its issue time and a MAC, so
/// no number of challenges can crowd out a client's (a flood used to fill a fixed table and
/// make every correct answer stale). Replay protection needs state only for nonces that
/// were answered with the right password, which strangers cannot produce; that table is
/// bounded, its oldest entries evicted first.
pub struct Nonces {
    lifetime: Duration,
    capacity: usize,
    epoch: Instant,
    key: ring::hmac::Key,
    random: SystemRandom,
    /// Answered nonces: issue time (ms) and the highest nonce-count seen.
    answered: Mutex<HashMap<[u8; 16], (u64, u32)>>,
}

impl Nonces {
    /// `capacity` bounds the answered-nonce table (entries of 28 bytes plus map overhead).
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        let random = SystemRandom::new();
        let mut secret = [0u8; 32];
        // Without the OS generator the key is fixed: nonces could then be made by anyone,
        // which only lets them skip the challenge step, not the password proof.
        if random.fill(&mut secret).is_err() {
            tracing::error!("system random generator failed; Digest nonces use a fixed key");
        }
        Self {
            lifetime,
            capacity: capacity.max(1),
            epoch: Instant::now(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            random,
            answered: Mutex::new(HashMap::new()),
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn issue(&self, now: Instant) -> String {
        let mut bytes = [0u8; NONCE_BYTES];
        bytes[..8].copy_from_slice(&self.millis(now).to_be_bytes());
        // Uniqueness also comes from the time; the MAC is what makes a nonce ours.
        let _ = self.random.fill(&mut bytes[8..16]);
        let tag = ring::hmac::sign(&self.key, &bytes[..16]);
        bytes[16..].copy_from_slice(&tag.as_ref()[..16]);
        hex::encode(bytes)
    }

    /// Checks a nonce and records its nonce-count if it is fresh. Call it only for answers
    /// whose password proof has been verified.
    pub fn check(&self, nonce: &str, nc: u32, now: Instant) -> NonceCheck {
        let mut bytes = [0u8; NONCE_BYTES];
        if nonce.len() != NONCE_BYTES * 2 || hex::decode_to_slice(nonce, &mut bytes).is_err() {
            return NonceCheck::Stale;
        }
        let tag = ring::hmac::sign(&self.key, &bytes[..16]);
        if !crate::core::credentials::constant_time_eq(&tag.as_ref()[..16], &bytes[16..]) {
            return NonceCheck::Stale;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&bytes[..8]);
        let issued = u64::from_be_bytes(issued);
        let lifetime = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX);
        let now_ms = self.millis(now);
        if now_ms.saturating_sub(issued) >= lifetime || issued > now_ms {
            return NonceCheck::Stale;
        }
        let Ok(mut answered) = self.answered.lock() else {
            return NonceCheck::Stale;
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        if let Some((_, highest)) = answered.get_mut(&id) {
            if nc <= *highest {
                return NonceCheck::Replayed;
            }
            *highest = nc;
            return NonceCheck::Fresh;
        }
        if answered.len() >= self.capacity {
            answered.retain(|_, (at, _)| now_ms.saturating_sub(*at) < lifetime);
        }
        if answered.len() >= self.capacity
            && let Some(oldest) = answered
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| *k)
        {
            answered.remove(&oldest);
        }
        answered.insert(id, (issued, nc));
        NonceCheck::Fresh
    }
}

/// `WWW-Authenticate` values for a fresh challenge, one per offered algorithm.
pub fn challenges(realm: &str, nonce: &str, stale: bool) -> Vec<String> {
    Algorithm::OFFERED
        .iter()
        .map(|algorithm| {
            let mut value = format!(
                "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                algorithm.name()
            );
            if stale {
                value.push_str(", stale=true");
            }
            value
        })
        .collect()
}

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
    /// The user is at most `registrar::MAX_AOR_BYTES` long.
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

/// Reads `realm` etc. from a challenge; used by tests and the load generator as a client.
pub fn parse_challenge(value: &str) -> Option<Params> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("Digest")
        .then(|| Params::parse(&rest.replace(',', ";")))
}

/// A client's Digest answer, for tests and the load generator.
pub struct ClientDigest<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    pub nc: u32,
    pub cnonce: &'a str,
}

impl ClientDigest<'_> {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        let algorithm = self.algorithm;
        let ha1 = algorithm.hash(&format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        let response = algorithm.response(
            &ha1,
            self.method,
            self.uri,
            self.nonce,
            self.nc,
            self.cnonce,
        );
        format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", \
             response=\"{response}\", algorithm={}, cnonce=\"{}\", qop=auth, nc={:08x}",
            self.username,
            self.realm,
            self.nonce,
            self.uri,
            algorithm.name(),
            self.cnonce,
            self.nc
        )
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
    fn rfc_2617_md5_example() {
        // RFC 2617 §3.5 (with the RFC's own values; qop=auth).
        let creds = DigestHa1 {
            md5: Algorithm::Md5.hash("Mufasa:testrealm@host.com:Circle Of Life"),
            sha256: String::new(),
        };
        let header = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let parsed = DigestResponse::parse(header).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Md5);
        assert!(parsed.verify("GET", &creds));
        assert!(!parsed.verify("POST", &creds));
    }

    #[test]
    fn sha256_round_trip() {
        let creds = DigestHa1::derive("alice@example.test", "s3cret");
        let header = ClientDigest {
            algorithm: Algorithm::Sha256,
            username: "alice",
            realm: "example.test",
            password: "s3cret",
            method: "REGISTER",
            uri: "sip:example.test",
            nonce: "abc",
            nc: 1,
            cnonce: "xyz",
        }
        .authorization();
        let parsed = DigestResponse::parse(&header).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Sha256);
        assert!(parsed.verify("REGISTER", &creds));
        let wrong = DigestHa1::derive("alice@example.test", "guess");
        assert!(!parsed.verify("REGISTER", &wrong));
    }

    #[test]
    fn rejects_incomplete_or_foreign_headers() {
        assert!(DigestResponse::parse("Basic YWxhZGRpbjpvcGVuc2VzYW1l").is_none());
        assert!(DigestResponse::parse(r#"Digest username="a", realm="r""#).is_none());
        assert!(
            DigestResponse::parse(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-512-256, qop=auth, nc=1, cnonce="c""#
            )
            .is_none()
        );
    }

    #[test]
    fn a_flood_of_challenges_cannot_make_a_correct_answer_stale() {
        // Far more challenges than the replay table holds, all unanswered (a stranger's
        // flood); a legitimate client's nonce from the middle of it still works.
        let nonces = Nonces::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        let mut legitimate = String::new();
        for n in 0..1000 {
            let nonce = nonces.issue(t0);
            if n == 500 {
                legitimate = nonce;
            }
        }
        assert_eq!(nonces.check(&legitimate, 1, t0), NonceCheck::Fresh);
        assert_eq!(nonces.check(&legitimate, 1, t0), NonceCheck::Replayed);
        // Nonces are unforgeable: an altered one is unknown.
        let mut forged = legitimate.clone().into_bytes();
        forged[50] = if forged[50] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(nonces.check(&forged, 1, t0), NonceCheck::Stale);
    }

    #[test]
    fn nonce_count_must_increase_and_nonces_expire() {
        let nonces = Nonces::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        let n = nonces.issue(t0);
        assert_eq!(nonces.check(&n, 1, t0), NonceCheck::Fresh);
        assert_eq!(nonces.check(&n, 1, t0), NonceCheck::Replayed);
        assert_eq!(nonces.check(&n, 2, t0), NonceCheck::Fresh);
        assert_eq!(nonces.check("unknown", 1, t0), NonceCheck::Stale);
        assert_eq!(
            nonces.check(&n, 3, t0 + Duration::from_secs(31)),
            NonceCheck::Stale
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
