//! Per-user password verifiers, one per authentication mechanism.
//!
//! perch never stores passwords. When a password is set, [`Credentials::derive`] turns it
//! into one verifier per mechanism: Digest HA1 (SIP, RFC 7616/8760), SCRAM-SHA-1 and
//! SCRAM-SHA-256 (RFC 5802/7677, for a later XMPP SASL layer) and the NT hash (NTLM,
//! MS-NLMP). A verifier can only be made while the password is known, so users set up
//! before a mechanism existed lack its verifier until their next password change: every
//! field of [`Credentials`] is an `Option`.
//!
//! Passwords are used as their UTF-8 bytes exactly as given; no SASLprep (RFC 4013) is
//! applied. SASLprep of printable ASCII is the identity, so for ASCII passwords this is
//! exactly RFC 5802. Applying SASLprep here would need Unicode tables (NFKC, prohibited
//! characters) that nothing else in perch needs, and Digest and NTLM do not use it either,
//! so all mechanisms see the same password.
//!
//! HA1 and the NT hash are password-equivalent (anyone holding one can authenticate with
//! that mechanism), so the `Debug` impls here redact all key material.

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md4::Md4;
use md5::Md5;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use sha2::{Digest as _, Sha256};

/// Iteration count for new SCRAM verifiers: the minimum RFC 7677 asks of SCRAM-SHA-256,
/// and what common clients expect; used for SCRAM-SHA-1 as well.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Length of the random salt of a new SCRAM verifier (RFC 7677 example uses 16 bytes).
pub const SCRAM_SALT_LEN: usize = 16;
/// Bounds accepted by [`ScramVerifier::decode`] and [`ScramVerifier::new`]: more
/// iterations would let one stored row make a login cost seconds of CPU.
pub const SCRAM_MAX_ITERATIONS: u32 = 10_000_000;
pub const SCRAM_MAX_SALT_LEN: usize = 64;

/// Mechanism names, as used by [`Credentials::missing`] and [`Credentials::mechanisms`].
pub const DIGEST: &str = "digest";
pub const SCRAM_SHA_1: &str = "scram-sha-1";
pub const SCRAM_SHA_256: &str = "scram-sha-256";
pub const NTLM: &str = "ntlm";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("SCRAM verifier: expected <iterations>$<salt>$<StoredKey>$<ServerKey>")]
    ScramFormat,
    #[error("SCRAM verifier: iteration count must be 1..={SCRAM_MAX_ITERATIONS}")]
    ScramIterations,
    #[error("SCRAM verifier: {field} is not standard base64")]
    ScramBase64 {
        field: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    #[error("SCRAM verifier: salt of {0} bytes, expected 1..={SCRAM_MAX_SALT_LEN}")]
    ScramSaltLength(usize),
    #[error("SCRAM verifier: {field} of {len} bytes, expected {expected} for {hash}")]
    ScramKeyLength {
        field: &'static str,
        len: usize,
        expected: usize,
        hash: ScramHash,
    },
    #[error("NT hash: expected 32 hex digits")]
    NtHash(#[source] hex::FromHexError),
    #[error("system random number generator failed")]
    Random,
}

/// Digest HA1 = H(username ":" realm ":" password) in lower-case hex, for MD5 and SHA-256.
/// For `alice@example.test` the username is `alice` and the realm the domain
/// `example.test`, as the SIP Digest layer challenges with the user's domain as realm.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestHa1 {
    pub md5: String,
    pub sha256: String,
}

impl DigestHa1 {
    pub fn derive(aor: &str, password: &str) -> DigestHa1 {
        // An AOR without '@' is a bare user with an empty realm, as perch's SIP Digest code does.
        let (user, realm) = aor.split_once('@').unwrap_or((aor, ""));
        let a1 = format!("{user}:{realm}:{password}");
        DigestHa1 {
            md5: hex::encode(Md5::digest(a1.as_bytes())),
            sha256: hex::encode(Sha256::digest(a1.as_bytes())),
        }
    }
}

impl fmt::Debug for DigestHa1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestHa1").finish_non_exhaustive()
    }
}

/// The hash function of a SCRAM mechanism. A [`ScramVerifier`] does not record it: the
/// column (or [`Credentials`] field) it is stored in does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// Output length of the hash, and so of StoredKey, ServerKey and ClientProof.
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }

    /// The SASL mechanism name (without -PLUS).
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // SHA-1 is "legacy" to ring, but SCRAM-SHA-1 is specified with it and its use
        // in HMAC/PBKDF2 does not depend on collision resistance.
        let algorithm = match self {
            ScramHash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            ScramHash::Sha256 => hmac::HMAC_SHA256,
        };
        hmac::sign(&hmac::Key::new(algorithm, key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            ScramHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            ScramHash::Sha256 => &digest::SHA256,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }
}

impl fmt::Display for ScramHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mechanism())
    }
}

/// A SCRAM verifier (RFC 5802 §3): what the server needs to check a client's proof and to
/// prove itself, without being able to log in as the user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramVerifier {
    /// The verifier for `password` with the given salt and iteration count:
    /// SaltedPassword = Hi(password, salt, i) (PBKDF2-HMAC), ClientKey = HMAC(SaltedPassword,
    /// "Client Key"), StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword, "Server Key").
    /// The bounds are those of [`ScramVerifier::decode`], so every verifier made here can be
    /// stored and read back.
    pub fn new(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<ScramVerifier, CredentialError> {
        check_salt(salt.len())?;
        let iterations_nz = check_iterations(iterations)?;
        let mut salted_password = vec![0u8; hash.output_len()];
        pbkdf2::derive(
            hash.pbkdf2(),
            iterations_nz,
            salt,
            password.as_bytes(),
            &mut salted_password,
        );
        let client_key = hash.hmac(&salted_password, b"Client Key");
        Ok(ScramVerifier {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted_password, b"Server Key"),
        })
    }

    /// A verifier with a fresh random salt of [`SCRAM_SALT_LEN`] bytes and
    /// [`SCRAM_ITERATIONS`] iterations.
    pub fn generate(
        rng: &dyn SecureRandom,
        hash: ScramHash,
        password: &str,
    ) -> Result<ScramVerifier, CredentialError> {
        let mut salt = [0u8; SCRAM_SALT_LEN];
        rng.fill(&mut salt).map_err(|_| CredentialError::Random)?;
        ScramVerifier::new(hash, password, &salt, SCRAM_ITERATIONS)
    }

    /// Storage form: `<iterations>$<salt>$<StoredKey>$<ServerKey>`, binary fields in
    /// standard base64 with padding. '$' is not in the base64 alphabet, so the split is
    /// unambiguous.
    pub fn encode(&self) -> String {
        format!(
            "{}${}${}${}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }

    /// Parses [`ScramVerifier::encode`]'s form, checking the bounds so that a corrupt or
    /// hostile row cannot make a login arbitrarily expensive or compare keys of the wrong
    /// length.
    pub fn decode(encoded: &str, hash: ScramHash) -> Result<ScramVerifier, CredentialError> {
        let mut fields = encoded.split('$');
        let (Some(iterations), Some(salt), Some(stored_key), Some(server_key), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(CredentialError::ScramFormat);
        };
        // Digits only: u32::from_str would also take a leading '+'.
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CredentialError::ScramIterations);
        }
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| CredentialError::ScramIterations)?;
        check_iterations(iterations)?;
        let salt = decode_field("salt", salt)?;
        check_salt(salt.len())?;
        let stored_key = decode_key("StoredKey", stored_key, hash)?;
        let server_key = decode_key("ServerKey", server_key, hash)?;
        Ok(ScramVerifier {
            salt,
            iterations,
            stored_key,
            server_key,
        })
    }

    /// Checks a client-final-message's proof (RFC 5802 §3): ClientSignature =
    /// HMAC(StoredKey, AuthMessage), ClientKey = ClientProof XOR ClientSignature, and the
    /// proof is good if H(ClientKey) == StoredKey. `auth_message` is
    /// client-first-message-bare "," server-first-message "," client-final-message-without-proof.
    pub fn verify_client_proof(
        &self,
        hash: ScramHash,
        auth_message: &[u8],
        client_proof: &[u8],
    ) -> bool {
        // Lengths are public (fixed by the mechanism), so returning early leaks nothing.
        if client_proof.len() != hash.output_len() || self.stored_key.len() != hash.output_len() {
            return false;
        }
        let client_signature = hash.hmac(&self.stored_key, auth_message);
        let client_key: Vec<u8> = client_proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        constant_time_eq(&hash.hash(&client_key), &self.stored_key)
    }

    /// ServerSignature = HMAC(ServerKey, AuthMessage), sent base64-encoded as `v=` in the
    /// server-final-message so that the client knows the server holds its verifier.
    pub fn server_signature(&self, hash: ScramHash, auth_message: &[u8]) -> Vec<u8> {
        hash.hmac(&self.server_key, auth_message)
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // StoredKey plus one observed exchange lets an attacker log in, and ServerKey lets
        // one impersonate the server: neither belongs in logs.
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

fn check_iterations(iterations: u32) -> Result<NonZeroU32, CredentialError> {
    if iterations > SCRAM_MAX_ITERATIONS {
        return Err(CredentialError::ScramIterations);
    }
    NonZeroU32::new(iterations).ok_or(CredentialError::ScramIterations)
}

fn check_salt(len: usize) -> Result<(), CredentialError> {
    // An empty salt would make the verifier the same for every user with that password.
    if len == 0 || len > SCRAM_MAX_SALT_LEN {
        return Err(CredentialError::ScramSaltLength(len));
    }
    Ok(())
}

fn decode_field(field: &'static str, text: &str) -> Result<Vec<u8>, CredentialError> {
    BASE64
        .decode(text)
        .map_err(|source| CredentialError::ScramBase64 { field, source })
}

fn decode_key(
    field: &'static str,
    text: &str,
    hash: ScramHash,
) -> Result<Vec<u8>, CredentialError> {
    let key = decode_field(field, text)?;
    if key.len() != hash.output_len() {
        return Err(CredentialError::ScramKeyLength {
            field,
            len: key.len(),
            expected: hash.output_len(),
            hash,
        });
    }
    Ok(key)
}

/// Compares without an early exit, so the time taken does not tell how many leading bytes
/// matched. (ring's constant_time module is deprecated for outside use.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into a short-circuit.
    std::hint::black_box(diff) == 0
}

/// The NT hash (MS-NLMP §3.3.1 NTOWFv1): MD4 of the password in UTF-16LE. NTLMv2's
/// NTOWFv2 is derived from it plus the user and domain names, so this is all NTLM needs.
#[derive(Clone, PartialEq, Eq)]
pub struct NtHash(pub [u8; 16]);

impl NtHash {
    pub fn derive(password: &str) -> NtHash {
        let utf16le: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
        NtHash(Md4::digest(&utf16le).into())
    }

    /// Storage form: 32 lower-case hex digits.
    pub fn encode(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex digits (either case).
    pub fn decode(encoded: &str) -> Result<NtHash, CredentialError> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(encoded, &mut bytes).map_err(CredentialError::NtHash)?;
        Ok(NtHash(bytes))
    }
}

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NtHash(..)")
    }
}

/// One user's verifiers, one per mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub digest: Option<DigestHa1>,
    pub scram_sha1: Option<ScramVerifier>,
    pub scram_sha256: Option<ScramVerifier>,
    pub nt_hash: Option<NtHash>,
}

impl Credentials {
    /// Every verifier for `password`, with fresh random SCRAM salts (one per mechanism,
    /// so the two SCRAM verifiers share nothing) from the system random number generator.
    pub fn derive(aor: &str, password: &str) -> Credentials {
        // Invariant: SystemRandom reads the OS generator (getrandom(2) on Linux), which
        // does not fail once the kernel has seeded it; ring documents no other failure.
        // Carrying on without a salt would be worse than stopping: a fixed salt would make
        // verifiers comparable across users.
        Credentials::try_derive(&SystemRandom::new(), aor, password)
            .expect("system random number generator failed")
    }

    /// [`Credentials::derive`] with the random number generator supplied, for callers that
    /// want the (practically impossible) generator failure as an error.
    pub fn try_derive(
        rng: &dyn SecureRandom,
        aor: &str,
        password: &str,
    ) -> Result<Credentials, CredentialError> {
        Ok(Credentials {
            digest: Some(DigestHa1::derive(aor, password)),
            scram_sha1: Some(ScramVerifier::generate(rng, ScramHash::Sha1, password)?),
            scram_sha256: Some(ScramVerifier::generate(rng, ScramHash::Sha256, password)?),
            nt_hash: Some(NtHash::derive(password)),
        })
    }

    /// Mechanisms this record has no verifier for (the user needs a password change before
    /// they can use them), in the order digest, scram-sha-1, scram-sha-256, ntlm.
    pub fn missing(&self) -> Vec<&'static str> {
        self.presence()
            .into_iter()
            .filter_map(|(name, present)| (!present).then_some(name))
            .collect()
    }

    /// Mechanisms this record has a verifier for, in the same order as
    /// [`Credentials::missing`].
    pub fn mechanisms(&self) -> Vec<&'static str> {
        self.presence()
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect()
    }

    /// Whether `password` is this user's, for sign-ins that receive the password itself
    /// (the room page's form, over TLS). Checked against the strongest verifier held:
    /// SCRAM-SHA-256, SCRAM-SHA-1, then the Digest HA1, each compared in constant time.
    /// The SCRAM checks cost a PBKDF2 run, which is the point: run it off the async threads.
    pub fn verify_password(&self, aor: &str, password: &str) -> bool {
        let scram = |hash: ScramHash, verifier: &ScramVerifier| {
            ScramVerifier::new(hash, password, &verifier.salt, verifier.iterations)
                .is_ok_and(|fresh| constant_time_eq(&fresh.stored_key, &verifier.stored_key))
        };
        if let Some(verifier) = &self.scram_sha256 {
            scram(ScramHash::Sha256, verifier)
        } else if let Some(verifier) = &self.scram_sha1 {
            scram(ScramHash::Sha1, verifier)
        } else if let Some(stored) = &self.digest {
            let fresh = DigestHa1::derive(aor, password);
            constant_time_eq(fresh.sha256.as_bytes(), stored.sha256.as_bytes())
        } else {
            false
        }
    }

    fn presence(&self) -> [(&'static str, bool); 4] {
        [
            (DIGEST, self.digest.is_some()),
            (SCRAM_SHA_1, self.scram_sha1.is_some()),
            (SCRAM_SHA_256, self.scram_sha256.is_some()),
            (NTLM, self.nt_hash.is_some()),
        ]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn a_password_is_checked_against_the_strongest_verifier_held() {
        let aor = "alice@example.test";
        let full = Credentials::derive(aor, "right");
        assert!(full.verify_password(aor, "right"));
        assert!(!full.verify_password(aor, "wrong"));
        assert!(!full.verify_password(aor, ""));
        // Older records: only SCRAM-SHA-1, only Digest, nothing.
        let sha1_only = Credentials {
            scram_sha1: full.scram_sha1.clone(),
            ..Credentials::default()
        };
        assert!(sha1_only.verify_password(aor, "right"));
        assert!(!sha1_only.verify_password(aor, "Right"));
        let digest_only = Credentials {
            digest: full.digest.clone(),
            ..Credentials::default()
        };
        assert!(digest_only.verify_password(aor, "right"));
        assert!(!digest_only.verify_password("bob@example.test", "right"));
        assert!(!Credentials::default().verify_password(aor, "right"));
    }

    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        BASE64.decode(text).unwrap()
    }

    /// The client's side of RFC 5802 §3, written out independently of the server code:
    /// ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage).
    pub(crate) fn client_proof(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        i: u32,
        auth: &[u8],
    ) -> Vec<u8> {
        let mut salted = vec![0u8; hash.output_len()];
        pbkdf2::derive(
            hash.pbkdf2(),
            NonZeroU32::new(i).unwrap(),
            salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hash.hmac(&salted, b"Client Key");
        let signature = hash.hmac(&hash.hash(&client_key), auth);
        client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect()
    }

    /// An RFC example exchange (password "pencil"); the XMPP SASL tests replay them too.
    pub(crate) struct Vector {
        pub(crate) hash: ScramHash,
        pub(crate) salt: &'static str,
        pub(crate) client_first_bare: &'static str,
        pub(crate) server_first: &'static str,
        pub(crate) client_final_without_proof: &'static str,
        pub(crate) proof: &'static str,
        pub(crate) server_signature: &'static str,
    }

    // RFC 5802 §5.
    pub(crate) const RFC5802: Vector = Vector {
        hash: ScramHash::Sha1,
        salt: "QSXCR+Q6sek8bf92",
        client_first_bare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        client_final_without_proof: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
        proof: "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        server_signature: "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    };

    // RFC 7677 §3.
    pub(crate) const RFC7677: Vector = Vector {
        hash: ScramHash::Sha256,
        salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
        client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
        server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                       s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        client_final_without_proof: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        proof: "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        server_signature: "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    };

    fn check_vector(v: &Vector) {
        let auth = format!(
            "{},{},{}",
            v.client_first_bare, v.server_first, v.client_final_without_proof
        );
        let verifier = ScramVerifier::new(v.hash, "pencil", &b64(v.salt), 4096).unwrap();
        let proof = b64(v.proof);

        // The independent client computation reproduces the RFC's proof...
        assert_eq!(
            BASE64.encode(client_proof(
                v.hash,
                "pencil",
                &verifier.salt,
                4096,
                auth.as_bytes()
            )),
            v.proof
        );
        // ...and the server side accepts it and signs as the RFC says.
        assert!(verifier.verify_client_proof(v.hash, auth.as_bytes(), &proof));
        assert_eq!(
            BASE64.encode(verifier.server_signature(v.hash, auth.as_bytes())),
            v.server_signature
        );

        // Any changed bit, a changed AuthMessage, a short proof or the wrong password fails.
        for byte in 0..proof.len() {
            let mut bad = proof.clone();
            bad[byte] ^= 0x01;
            assert!(!verifier.verify_client_proof(v.hash, auth.as_bytes(), &bad));
        }
        assert!(!verifier.verify_client_proof(v.hash, b"n=user,r=other", &proof));
        assert!(!verifier.verify_client_proof(v.hash, auth.as_bytes(), &proof[1..]));
        assert!(!verifier.verify_client_proof(v.hash, auth.as_bytes(), &[]));
        let wrong = ScramVerifier::new(v.hash, "pencil2", &verifier.salt, 4096).unwrap();
        assert!(!wrong.verify_client_proof(v.hash, auth.as_bytes(), &proof));

        // The verifier survives storage.
        assert_eq!(
            ScramVerifier::decode(&verifier.encode(), v.hash).unwrap(),
            verifier
        );
    }

    #[test]
    fn scram_sha1_rfc5802_example() {
        check_vector(&RFC5802);
    }

    #[test]
    fn scram_sha256_rfc7677_example() {
        check_vector(&RFC7677);
    }

    #[test]
    fn scram_verifier_for_one_hash_rejects_the_others_proof() {
        let auth = b"n=user,r=a,r=ab,s=c2FsdA==,i=4096,c=biws,r=ab";
        let verifier = ScramVerifier::new(ScramHash::Sha256, "pencil", b"salt", 4096).unwrap();
        let proof = client_proof(ScramHash::Sha1, "pencil", b"salt", 4096, auth);
        assert!(!verifier.verify_client_proof(ScramHash::Sha1, auth, &proof));
        assert!(!verifier.verify_client_proof(ScramHash::Sha256, auth, &proof));
    }

    #[test]
    fn nt_hash_ms_nlmp_example() {
        // MS-NLMP §4.2.1: the password "Password".
        let hash = NtHash::derive("Password");
        assert_eq!(hash.encode(), "a4f49c406510bdcab6824ee7c30fd852");
        assert_eq!(NtHash::decode(&hash.encode()).unwrap(), hash);
        assert_eq!(
            NtHash::decode("A4F49C406510BDCAB6824EE7C30FD852").unwrap(),
            hash
        );
    }

    #[test]
    fn nt_hash_rejects_bad_hex() {
        for bad in [
            "",
            "a4f49c406510bdcab6824ee7c30fd85",   // 31 digits
            "a4f49c406510bdcab6824ee7c30fd8520", // 33 digits
            "a4f49c406510bdcab6824ee7c30fd852a4",
            "g4f49c406510bdcab6824ee7c30fd852",
            " a4f49c406510bdcab6824ee7c30fd85",
        ] {
            assert!(
                matches!(NtHash::decode(bad), Err(CredentialError::NtHash(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn digest_ha1_uses_user_part_and_domain_as_realm() {
        let ha1 = DigestHa1::derive("alice@example.test", "secret");
        let md5 = hex::encode(Md5::digest(b"alice:example.test:secret"));
        let sha256 = hex::encode(Sha256::digest(b"alice:example.test:secret"));
        assert_eq!(ha1.md5, md5);
        assert_eq!(ha1.sha256, sha256);
        assert_eq!(ha1.md5.len(), 32);
        assert_eq!(ha1.sha256.len(), 64);
        assert!(
            ha1.md5
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn digest_ha1_rfc2617_example() {
        // RFC 2617 §3.5 (HA1 taken from the response computation there).
        let ha1 = DigestHa1::derive("Mufasa@testrealm@host.com", "Circle Of Life");
        assert_eq!(ha1.md5, "939e7578ed9e3c518a452acee763bce9");
    }

    #[test]
    fn derive_makes_every_verifier_and_they_work() {
        let credentials = Credentials::derive("alice@example.test", "correct horse");
        assert!(credentials.missing().is_empty());
        assert_eq!(
            credentials.mechanisms(),
            ["digest", "scram-sha-1", "scram-sha-256", "ntlm"]
        );
        assert_eq!(
            credentials.digest,
            Some(DigestHa1::derive("alice@example.test", "correct horse"))
        );
        assert_eq!(credentials.nt_hash, Some(NtHash::derive("correct horse")));

        let sha1 = credentials.scram_sha1.as_ref().unwrap();
        let sha256 = credentials.scram_sha256.as_ref().unwrap();
        for (hash, verifier) in [(ScramHash::Sha1, sha1), (ScramHash::Sha256, sha256)] {
            assert_eq!(verifier.iterations, 4096);
            assert_eq!(verifier.salt.len(), 16);
            assert_eq!(verifier.stored_key.len(), hash.output_len());
            assert_eq!(verifier.server_key.len(), hash.output_len());
            let auth = b"n=alice,r=x,r=xy,s=AAAA,i=4096,c=biws,r=xy";
            let proof = client_proof(hash, "correct horse", &verifier.salt, 4096, auth);
            assert!(verifier.verify_client_proof(hash, auth, &proof));
            assert_eq!(
                ScramVerifier::decode(&verifier.encode(), hash).unwrap(),
                *verifier
            );
        }
        assert_ne!(sha1.salt, sha256.salt);

        // Fresh salts each time: the same password never gives the same verifier.
        let again = Credentials::derive("alice@example.test", "correct horse");
        assert_ne!(again.scram_sha1, credentials.scram_sha1);
        assert_ne!(again.scram_sha256, credentials.scram_sha256);
    }

    #[test]
    fn missing_for_a_digest_only_record() {
        let credentials = Credentials {
            digest: Some(DigestHa1::derive("bob@example.test", "pw")),
            ..Credentials::default()
        };
        assert_eq!(
            credentials.missing(),
            ["scram-sha-1", "scram-sha-256", "ntlm"]
        );
        assert_eq!(credentials.mechanisms(), ["digest"]);
        assert_eq!(
            Credentials::default().missing(),
            ["digest", "scram-sha-1", "scram-sha-256", "ntlm"]
        );
        assert!(Credentials::default().mechanisms().is_empty());
    }

    #[test]
    fn scram_encode_form() {
        let verifier =
            ScramVerifier::new(ScramHash::Sha1, "pencil", &b64(RFC5802.salt), 4096).unwrap();
        let encoded = verifier.encode();
        let fields: Vec<&str> = encoded.split('$').collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[0], "4096");
        assert_eq!(fields[1], "QSXCR+Q6sek8bf92");
        assert_eq!(b64(fields[2]), verifier.stored_key);
        assert_eq!(b64(fields[3]), verifier.server_key);
    }

    #[test]
    fn scram_decode_rejects_bad_encodings() {
        let good = ScramVerifier::new(ScramHash::Sha256, "pencil", &b64(RFC7677.salt), 4096)
            .unwrap()
            .encode();
        let fields: Vec<&str> = good.split('$').collect();
        let with = |index: usize, value: &str| {
            let mut f = fields.clone();
            f[index] = value;
            f.join("$")
        };
        let key20 = BASE64.encode([7u8; 20]);
        let salt65 = BASE64.encode([1u8; 65]);
        let salt64 = BASE64.encode([1u8; 64]);

        use CredentialError as E;
        type Expected = fn(&CredentialError) -> bool;
        let cases: Vec<(String, Expected)> = vec![
            (String::new(), |e| matches!(e, E::ScramFormat)),
            (fields[..3].join("$"), |e| matches!(e, E::ScramFormat)),
            (format!("{good}$"), |e| matches!(e, E::ScramFormat)),
            (with(0, "0"), |e| matches!(e, E::ScramIterations)),
            (with(0, "10000001"), |e| matches!(e, E::ScramIterations)),
            (with(0, "99999999999"), |e| matches!(e, E::ScramIterations)),
            (with(0, "+4096"), |e| matches!(e, E::ScramIterations)),
            (with(0, "-1"), |e| matches!(e, E::ScramIterations)),
            (with(0, ""), |e| matches!(e, E::ScramIterations)),
            (with(0, " 4096"), |e| matches!(e, E::ScramIterations)),
            (with(1, ""), |e| matches!(e, E::ScramSaltLength(0))),
            (with(1, &salt65), |e| matches!(e, E::ScramSaltLength(65))),
            (with(1, "not base64!"), |e| {
                matches!(e, E::ScramBase64 { field: "salt", .. })
            }),
            // Missing padding and URL-safe alphabet are not the stored form.
            (with(1, "W22ZaJ0SNY7soEsUEjb6gQ"), |e| {
                matches!(e, E::ScramBase64 { field: "salt", .. })
            }),
            (with(2, "_-_-"), |e| {
                matches!(
                    e,
                    E::ScramBase64 {
                        field: "StoredKey",
                        ..
                    }
                )
            }),
            (with(2, &key20), |e| {
                matches!(
                    e,
                    E::ScramKeyLength {
                        field: "StoredKey",
                        len: 20,
                        expected: 32,
                        ..
                    }
                )
            }),
            (with(3, &key20), |e| {
                matches!(
                    e,
                    E::ScramKeyLength {
                        field: "ServerKey",
                        len: 20,
                        ..
                    }
                )
            }),
            (with(3, ""), |e| {
                matches!(
                    e,
                    E::ScramKeyLength {
                        field: "ServerKey",
                        len: 0,
                        ..
                    }
                )
            }),
        ];
        for (encoded, expected) in cases {
            match ScramVerifier::decode(&encoded, ScramHash::Sha256) {
                Err(error) => assert!(expected(&error), "{encoded:?}: {error:?}"),
                Ok(v) => panic!("{encoded:?} accepted as {v:?}"),
            }
        }

        // The bounds themselves are accepted.
        assert!(ScramVerifier::decode(&with(0, "1"), ScramHash::Sha256).is_ok());
        assert!(ScramVerifier::decode(&with(0, "10000000"), ScramHash::Sha256).is_ok());
        assert!(ScramVerifier::decode(&with(1, &salt64), ScramHash::Sha256).is_ok());
        // A SHA-256 verifier is not a SHA-1 one.
        assert!(matches!(
            ScramVerifier::decode(&good, ScramHash::Sha1),
            Err(E::ScramKeyLength { expected: 20, .. })
        ));
    }

    #[test]
    fn scram_new_enforces_the_decode_bounds() {
        assert!(matches!(
            ScramVerifier::new(ScramHash::Sha1, "p", b"salt", 0),
            Err(CredentialError::ScramIterations)
        ));
        assert!(matches!(
            ScramVerifier::new(ScramHash::Sha1, "p", b"", 1),
            Err(CredentialError::ScramSaltLength(0))
        ));
        assert!(matches!(
            ScramVerifier::new(ScramHash::Sha1, "p", &[0u8; 65], 1),
            Err(CredentialError::ScramSaltLength(65))
        ));
    }

    #[test]
    fn debug_output_hides_key_material() {
        let credentials = Credentials::derive("alice@example.test", "pw");
        let debug = format!("{credentials:?}");
        let ha1 = credentials.digest.as_ref().unwrap();
        assert!(!debug.contains(&ha1.md5));
        assert!(!debug.contains(&ha1.sha256));
        assert!(!debug.contains(&credentials.nt_hash.as_ref().unwrap().encode()));
        assert!(!debug.contains(&hex::encode(
            &credentials.scram_sha256.as_ref().unwrap().stored_key
        )));
        assert!(debug.contains("iterations: 4096"));
    }
}
