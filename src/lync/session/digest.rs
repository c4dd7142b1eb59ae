//! SIP Digest authentication (RFC 2617 MD5 and RFC 8760 SHA-256, qop=auth): credential
//! hashing, challenges, and nonce bookkeeping with nonce-count replay protection. Failed
//! attempts count in [`crate::net::signin::FailureThrottle`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use md5::Md5;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};

use crate::core::credentials::DigestHa1;
use crate::lync::sip::header::{Params, unquote};

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
}
