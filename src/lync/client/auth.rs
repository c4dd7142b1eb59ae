//! How a client signs in: what it answers to perch's 401s. One REGISTER exchange for every
//! mechanism ([`super::Client::register`]); the mechanism only decides how many 401s it may
//! answer and what each answer is:
//!
//! - trusted network: none; perch must trust the client's address.
//! - Digest: one, SIPE's fallback (the strongest algorithm perch offers that we know).
//! - NTLM with MS-SIPAE signing, as Pidgin-SIPE and Lync sign in: two. The first 401 offers
//!   NTLM; we ask for a CHALLENGE (`gssapi-data=""`); the second 401 carries it, and our
//!   AUTHENTICATE makes the security association the REGISTER that carries it is signed
//!   with. From then on every message we send is signed and every message perch sends
//!   must verify (`SipConn` does both).
//!
//! The NTLM and MS-SIPAE parts are perch's own client half (`lync::session::ntlm` and
//! `sipae`), so perch-load, `perch check` and the tests sign in through the code the
//! server runs.

use std::time::Instant;

use crate::core::credentials::NtHash;
use crate::lync::session::digest::{self, Algorithm, ClientDigest};
use crate::lync::session::ntlm::{
    self, ClientEntropy, ClientIdentity, NtlmError, ReceivedChallenge,
};
use crate::lync::session::sipae::{self, Association, AuthFields, Role};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::{SecureRandom as _, SystemRandom};

/// The workstation an NTLM AUTHENTICATE names.
const WORKSTATION: &str = "PERCH-CLIENT";

/// What a client signs in with.
#[derive(Debug, Clone)]
pub enum SignIn {
    /// No answer to a 401: perch must trust the clients' addresses.
    Trusted,
    Digest {
        password: String,
    },
    Ntlm {
        nt_hash: NtHash,
    },
}

/// Why a client could not answer a 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no {0} challenge offered")]
    NotOffered(&'static str),
    #[error("NTLM challenge without {0}")]
    Incomplete(&'static str),
    #[error("NTLM CHALLENGE is not base64")]
    Base64,
    #[error(transparent)]
    Ntlm(#[from] NtlmError),
    #[error("system random generator failed")]
    Random,
}

impl AuthError {
    /// The error kind as reports count it.
    pub fn kind(&self) -> String {
        match self {
            AuthError::Ntlm(_) => "auth: NTLM CHALLENGE refused".to_owned(),
            other => format!("auth: {other}"),
        }
    }
}

/// What the next REGISTER carries.
pub enum Step {
    /// This `Authorization` value, as it is.
    Header(String),
    /// Sign the REGISTER under this new association and put `token` (the AUTHENTICATE,
    /// base64) into the signature's `Authorization`: see [`completing_authorization`].
    Associate {
        association: Association,
        token: String,
    },
}

/// The client's part of an answer.
pub struct Login<'a> {
    pub aor: &'a str,
    /// The REGISTER's Request-URI (Digest covers it).
    pub uri: &'a str,
    /// Digest's client nonce, unique per client and REGISTER.
    pub cnonce: &'a str,
}

impl SignIn {
    /// Digest with `password`.
    pub fn digest(password: &str) -> SignIn {
        SignIn::Digest {
            password: password.to_owned(),
        }
    }

    /// NTLM (with MS-SIPAE signing) with `password`'s NT hash.
    pub fn ntlm(password: &str) -> SignIn {
        SignIn::Ntlm {
            nt_hash: NtHash::derive(password),
        }
    }

    /// The name reports give it.
    pub fn name(&self) -> &'static str {
        match self {
            SignIn::Trusted => "trusted",
            SignIn::Digest { .. } => "digest",
            SignIn::Ntlm { .. } => "ntlm",
        }
    }

    /// How many 401s one REGISTER exchange may answer; one more is a refusal.
    pub fn rounds(&self) -> usize {
        match self {
            SignIn::Trusted => 0,
            SignIn::Digest { .. } => 1,
            SignIn::Ntlm { .. } => 2,
        }
    }

    /// The answer to a 401 carrying `challenges` (its `WWW-Authenticate` values).
    pub fn answer(&self, challenges: &[String], login: &Login<'_>) -> Result<Step, AuthError> {
        match self {
            SignIn::Trusted => Err(AuthError::NotOffered("trusted-network")),
            SignIn::Digest { password } => digest_answer(challenges, password, login),
            SignIn::Ntlm { nt_hash } => ntlm_answer(challenges, nt_hash, login),
        }
    }
}

/// Answers the first Digest challenge whose algorithm we know (perch offers SHA-256 first).
fn digest_answer(
    challenges: &[String],
    password: &str,
    login: &Login<'_>,
) -> Result<Step, AuthError> {
    let (username, _) = login.aor.split_once('@').unwrap_or((login.aor, ""));
    challenges
        .iter()
        .filter_map(|c| digest::parse_challenge(c))
        .find_map(|params| {
            let algorithm = params
                .value("algorithm")
                .map_or(Some(Algorithm::Md5), |name| {
                    Algorithm::OFFERED
                        .into_iter()
                        .find(|a| a.name().eq_ignore_ascii_case(name))
                })?;
            let answer = ClientDigest {
                algorithm,
                username,
                realm: params.value("realm")?,
                password,
                method: "REGISTER",
                uri: login.uri,
                nonce: params.value("nonce")?,
                nc: 1,
                cnonce: login.cnonce,
            };
            Some(Step::Header(answer.authorization()))
        })
        .ok_or(AuthError::NotOffered("Digest"))
}

/// MS-SIPAE §3.2.5: the offer (no `gssapi-data`) is answered with a request for a
/// CHALLENGE; the CHALLENGE with an AUTHENTICATE and the association it makes. The NTLM
/// user is the SIP address with no domain, as SIPE sends it when no separate login is set.
fn ntlm_answer(
    challenges: &[String],
    nt_hash: &NtHash,
    login: &Login<'_>,
) -> Result<Step, AuthError> {
    let offer = challenges
        .iter()
        .filter_map(|c| AuthFields::parse(c))
        .find(AuthFields::is_ntlm)
        .ok_or(AuthError::NotOffered("NTLM"))?;
    let target = offer
        .get("targetname")
        .ok_or(AuthError::Incomplete("targetname"))?;
    let Some(data) = offer.get("gssapi-data").filter(|d| !d.is_empty()) else {
        return Ok(Step::Header(format!(
            "NTLM qop=\"auth\", realm=\"{}\", targetname=\"{target}\", gssapi-data=\"\", version={}",
            sipae::REALM,
            sipae::VERSION
        )));
    };
    let opaque = offer.get("opaque").ok_or(AuthError::Incomplete("opaque"))?;
    let message = BASE64.decode(data).map_err(|_| AuthError::Base64)?;
    let challenge = ReceivedChallenge::parse(&message)?;
    let mut random = [0u8; 24];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| AuthError::Random)?;
    let mut entropy = ClientEntropy {
        client_challenge: [0; 8],
        exported_session_key: [0; 16],
        filetime: ntlm::filetime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
    };
    entropy.client_challenge.copy_from_slice(&random[..8]);
    entropy.exported_session_key.copy_from_slice(&random[8..]);
    let identity = ClientIdentity {
        user: login.aor,
        domain: "",
        workstation: WORKSTATION,
        nt_hash,
    };
    let (authenticate, keys) = ntlm::respond(&challenge, &identity, &entropy)?;
    Ok(Step::Associate {
        association: Association::new(
            Role::Client,
            keys,
            opaque.to_owned(),
            target.to_owned(),
            Instant::now(),
        ),
        token: BASE64.encode(authenticate.encode()),
    })
}

/// The `Authorization` of the REGISTER that completes the handshake: its signature
/// (`signed`, the value `Association::sign` gave) and the AUTHENTICATE in one header, in
/// SIPE's order. `None` if `signed` is not an NTLM signature.
pub fn completing_authorization(signed: &str, token: &str) -> Option<String> {
    let fields = AuthFields::parse(signed).filter(AuthFields::is_ntlm)?;
    Some(format!(
        "NTLM qop=\"auth\", opaque=\"{}\", realm=\"{}\", targetname=\"{}\", gssapi-data=\"{token}\", version={}, crand=\"{}\", cnum=\"{}\", response=\"{}\"",
        fields.get("opaque")?,
        fields.get("realm")?,
        fields.get("targetname")?,
        sipae::VERSION,
        fields.get("crand")?,
        fields.get("cnum")?,
        fields.get("response")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lync::session::ntlm::{Challenge, TargetNames};

    fn login() -> Login<'static> {
        Login {
            aor: "load000001@example.test",
            uri: "sip:example.test",
            cnonce: "pl1c1",
        }
    }

    /// perch's first 401 offers Digest and NTLM: each client takes the scheme it speaks.
    #[test]
    fn digest_skips_the_ntlm_offer() {
        let challenges = vec![
            "NTLM realm=\"SIP Communications Service\", targetname=\"example.test\", version=4"
                .to_owned(),
            "Digest realm=\"example.test\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\""
                .to_owned(),
        ];
        let sign_in = SignIn::digest("pw");
        let Ok(Step::Header(value)) = sign_in.answer(&challenges, &login()) else {
            panic!("no Digest answer");
        };
        assert!(value.starts_with("Digest "), "{value}");
        assert!(value.contains("algorithm=SHA-256"), "{value}");
    }

    /// The whole NTLM exchange against perch's server half: the offer, the CHALLENGE, the
    /// AUTHENTICATE it verifies, and a signed REGISTER header it can read.
    #[test]
    fn ntlm_answers_the_offer_then_the_challenge() {
        let sign_in = SignIn::ntlm("pw");
        let offer = vec![
            "NTLM realm=\"SIP Communications Service\", targetname=\"chat.example.test\", version=4"
                .to_owned(),
        ];
        let Ok(Step::Header(first)) = sign_in.answer(&offer, &login()) else {
            panic!("no request for a CHALLENGE");
        };
        assert_eq!(
            first,
            "NTLM qop=\"auth\", realm=\"SIP Communications Service\", targetname=\"chat.example.test\", gssapi-data=\"\", version=4"
        );
        let names = TargetNames {
            netbios_domain: "EXAMPLE".into(),
            netbios_computer: "CHAT".into(),
            dns_domain: "example.test".into(),
            dns_computer: "chat.example.test".into(),
        };
        let challenge = Challenge::new([7; 8], &names, ntlm::filetime(1_800_000_000));
        let second = vec![format!(
            "NTLM opaque=\"op1\", gssapi-data=\"{}\", targetname=\"chat.example.test\", realm=\"SIP Communications Service\", version=4",
            BASE64.encode(&challenge.message)
        )];
        let Ok(Step::Associate { token, .. }) = sign_in.answer(&second, &login()) else {
            panic!("no AUTHENTICATE");
        };
        let authenticate = ntlm::Authenticate::parse(&BASE64.decode(&token).unwrap()).unwrap();
        assert_eq!(authenticate.user, "load000001@example.test");
        challenge
            .verify(&authenticate, &NtHash::derive("pw"))
            .expect("perch accepts the AUTHENTICATE");
        assert!(
            challenge
                .verify(&authenticate, &NtHash::derive("wrong"))
                .is_err()
        );

        let signed = "NTLM qop=\"auth\", opaque=\"op1\", realm=\"SIP Communications Service\", targetname=\"t\", crand=\"0a0b0c0d\", cnum=\"1\", response=\"ABCD\"";
        assert_eq!(
            completing_authorization(signed, "VE9LRU4=").unwrap(),
            "NTLM qop=\"auth\", opaque=\"op1\", realm=\"SIP Communications Service\", targetname=\"t\", gssapi-data=\"VE9LRU4=\", version=4, crand=\"0a0b0c0d\", cnum=\"1\", response=\"ABCD\""
        );
    }

    #[test]
    fn a_mechanism_not_offered_is_an_error() {
        let digest_only =
            vec!["Digest realm=\"example.test\", nonce=\"n1\", algorithm=MD5".to_owned()];
        let ntlm = SignIn::ntlm("pw");
        assert!(matches!(
            ntlm.answer(&digest_only, &login()),
            Err(AuthError::NotOffered("NTLM"))
        ));
        assert!(SignIn::Trusted.answer(&digest_only, &login()).is_err());
    }
}
