//! SASL for XMPP client streams (RFC 6120 §6), server side: SCRAM-SHA-256 and SCRAM-SHA-1
//! (RFC 5802, RFC 7677) and PLAIN (RFC 4616, over TLS only), checked against the verifiers
//! perch stores ([`Credentials`]).
//!
//! Sans-I/O and without store access: an [`Exchange`] takes the client's bytes (already
//! base64-decoded from `<auth/>` or `<response/>`, see [`decode_payload`]) and answers a
//! [`Step`]. When it has the user's name it asks for the user with [`Step::NeedUser`]; the
//! caller looks the user up (asynchronously, in the store) and hands the result to
//! [`Exchange::user`]. A c2s session drives it like this:
//!
//! ```text
//! let mechanism = Mechanism::from_name(name)?;   // <auth mechanism='…'>; Err is a <failure/>
//! let initial = text.map(decode_payload).transpose()?;   // no text: no initial response
//! let (mut exchange, mut step) = Exchange::start(domain, mechanism, initial.as_deref(), tls);
//! loop {
//!     step = match step {
//!         Step::NeedUser { authcid } => match sasl::admit(&throttle, peer, &mut exchange, now) {
//!             Some(refused) => refused,
//!             None => match store.user(&authcid).await {      // a store error: send
//!                 Ok(user) => exchange.user(                  // TemporaryAuthFailure
//!                     user.as_ref().and_then(|u| u.credentials.as_ref()),
//!                     user.as_ref().is_some_and(|u| u.enabled),
//!                 ),                                          // (PLAIN: a PBKDF2 run, so
//!                 Err(_) => …,                                //  on a blocking thread)
//!             },
//!         },
//!         Step::Challenge(data) => {
//!             send <challenge>base64(data)</challenge>, read the next element;
//!             <response> → exchange.respond(&decode_payload(text)?), <abort/> → exchange.abort()
//!         }
//!         done => {
//!             sasl::record(&throttle, peer, &exchange, &done, now);
//!             send <success>base64(additional_data)</success> or <failure><condition/><text/></failure>;
//!             break;
//!         }
//!     }
//! }
//! ```
//!
//! Sign-ins count where SIP's do ([`admit`] and [`record`] do it, so the exchange stays
//! pure): [`FailureThrottle`] per (user, address), shared with SIP and the room page, is
//! asked once the user is named and before the lookup, and told of every finished exchange
//! that checked a password (success clears it); `metrics().sign_in(mechanism, outcome)` with
//! the mechanism `scram-sha-256`, `scram-sha-1` or `plain` and the outcome `success`,
//! `failure` or `throttled`.
//!
//! An unknown user is not revealed: the exchange goes on with a salt derived from the name
//! and a per-process secret (the same each time for that name, as a real user's would be),
//! and fails `not-authorized` as a wrong password does. A disabled account is reported only
//! to a client that proved the password.
//!
//! perch offers no channel binding (-PLUS): a client that asks for it is refused, and the
//! `y` flag ("I could bind, but you do not offer it") is accepted, as RFC 5802 §6 says.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::core::credentials::{
    Credentials, SCRAM_ITERATIONS, SCRAM_SALT_LEN, SCRAM_SHA_1, SCRAM_SHA_256, ScramHash,
    ScramVerifier,
};
use crate::core::ids::user_id;
use crate::core::metrics::metrics;
use crate::net::signin::FailureThrottle;

/// Longest client message accepted (decoded bytes). A SCRAM message is well under 1 KiB and
/// PLAIN carries a name and a password.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Longest authentication identity, raw or canonical (bytes): the SIP gateway's bound on
/// names, which the shared throttle relies on.
pub const MAX_AUTHCID_BYTES: usize = 256;
/// Random bytes in a server nonce (sent base64-encoded).
pub const NONCE_BYTES: usize = 24;
/// Longest base64 text of a message: [`MAX_MESSAGE_BYTES`] encoded, with padding.
const MAX_PAYLOAD_CHARS: usize = MAX_MESSAGE_BYTES.div_ceil(3) * 4;

/// A SASL mechanism perch offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha256,
    ScramSha1,
    Plain,
}

impl Mechanism {
    /// What `<mechanisms/>` lists, strongest first. PLAIN sends the password itself, so only
    /// inside TLS.
    pub fn offered(tls: bool) -> Vec<Mechanism> {
        let mut offered = vec![Mechanism::ScramSha256, Mechanism::ScramSha1];
        if tls {
            offered.push(Mechanism::Plain);
        }
        offered
    }

    /// The SASL name, as in `<mechanism/>` and `<auth mechanism='…'/>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => ScramHash::Sha256.mechanism(),
            Mechanism::ScramSha1 => ScramHash::Sha1.mechanism(),
            Mechanism::Plain => "PLAIN",
        }
    }

    /// The mechanism `<auth/>` names. SASL names are upper case (RFC 4422 §3.1), so the
    /// match is exact.
    pub fn from_name(name: &str) -> Result<Mechanism, SaslFailure> {
        [
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::Plain,
        ]
        .into_iter()
        .find(|mechanism| mechanism.name() == name)
        .ok_or(SaslFailure::InvalidMechanism)
    }

    /// The `mechanism` label of the sign-in counter, and the name `perch admin` uses for the
    /// verifier.
    pub fn metric(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => SCRAM_SHA_256,
            Mechanism::ScramSha1 => SCRAM_SHA_1,
            Mechanism::Plain => "plain",
        }
    }

    fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha1 => Some(ScramHash::Sha1),
            Mechanism::Plain => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an exchange failed, as the `<failure/>` conditions of RFC 6120 §6.5. Several causes
/// share a condition ([`SaslFailure::condition`]); the variant says whose fault it is and
/// whether a password was tried ([`SaslFailure::tried_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslFailure {
    /// The client sent `<abort/>`.
    #[error("the client aborted the exchange")]
    Aborted,
    /// The password or proof was right, but an administrator disabled the account.
    #[error("this account is disabled")]
    AccountDisabled,
    /// The user exists but has no verifier for this mechanism: made when the password is
    /// next set.
    #[error(
        "no {0} verifier is stored for this user (it is made when the password is next set): \
         sign in with another mechanism, or have the password set again"
    )]
    CredentialsExpired(Mechanism),
    /// PLAIN outside TLS (RFC 6120 §6.5.3: a mechanism that needs the stream protected).
    #[error("PLAIN sends the password itself and is used over TLS only")]
    EncryptionRequired,
    /// Base64 that is not RFC 4648 §4 (in the XML text or in a SCRAM attribute).
    #[error("{0} is not standard base64")]
    IncorrectEncoding(&'static str),
    /// An authorization identity other than the authenticated user: perch lets nobody
    /// act as someone else.
    #[error("the authorization identity must be empty or the authenticated user")]
    InvalidAuthzid,
    #[error("offered mechanisms are SCRAM-SHA-256, SCRAM-SHA-1 and, over TLS, PLAIN")]
    InvalidMechanism,
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// No cause of perch's uses it; kept so that every §6.5 condition has a variant.
    #[error("this mechanism is weaker than the server allows")]
    MechanismTooWeak,
    /// Wrong password or proof, or no such user: deliberately not told apart.
    #[error("authentication failed")]
    NotAuthorized,
    /// A name in another domain: no user of this server, whatever the password.
    #[error("only users of this server's domain sign in here")]
    ForeignUser,
    /// Too many failed sign-ins of this user from this address, or from this address.
    #[error("too many failed attempts; try again later")]
    Throttled,
    /// The server's fault: no random numbers, the user lookup failed, or the caller drove
    /// the exchange out of turn.
    #[error("temporary failure: {0}")]
    TemporaryAuthFailure(&'static str),
}

impl SaslFailure {
    /// The RFC 6120 §6.5 condition element's name.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired(_) => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding(_) => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest(_) => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized | SaslFailure::ForeignUser | SaslFailure::Throttled => {
                "not-authorized"
            }
            SaslFailure::TemporaryAuthFailure(_) => "temporary-auth-failure",
        }
    }

    /// The `<text/>` for the client (and the log): it names no user and no stored data.
    pub fn text(&self) -> String {
        self.to_string()
    }

    /// Whether the exchange got as far as trying the user's password, so the failure counts
    /// in the throttle. Malformed messages test no password.
    pub fn tried_credentials(&self) -> bool {
        matches!(
            self,
            SaslFailure::NotAuthorized
                | SaslFailure::AccountDisabled
                | SaslFailure::CredentialsExpired(_)
        )
    }
}

/// What the caller does next.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look up this user (canonical `user@domain`) and call [`Exchange::user`].
    NeedUser {
        authcid: String,
    },
    /// Send `<challenge/>` with these bytes and pass the `<response/>` to
    /// [`Exchange::respond`]. Empty: "send your first message".
    Challenge(Vec<u8>),
    /// Signed in as `user`; `additional_data` goes in `<success/>` (SCRAM's `v=`).
    Success {
        user: String,
        additional_data: Option<Vec<u8>>,
    },
    Failure(SaslFailure),
}

/// One SASL exchange on one stream, from `<auth/>` to `<success/>` or `<failure/>`.
pub struct Exchange {
    mechanism: Mechanism,
    /// The stream's domain in lower case: the domain of every user signing in here.
    domain: String,
    nonces: NonceSource,
    /// The canonical user, once the client has named one.
    authcid: Option<String>,
    state: State,
}

enum State {
    /// An empty challenge went out: the client's first message comes as a response.
    Initial,
    /// [`Step::NeedUser`] went out.
    Lookup(Lookup),
    /// SCRAM: server-first went out; client-final comes next.
    ScramFinal(Box<ScramFinal>),
    Done,
}

enum Lookup {
    Scram(ScramHash, ClientFirst),
    /// The password waits here for the lookup; it leaves with the exchange.
    Plain {
        aor: String,
        password: String,
    },
}

/// A parsed client-first-message (RFC 5802 §7).
struct ClientFirst {
    /// `n,,` or `y,,` with `a=…` if given: what `c=` must repeat, base64-encoded.
    gs2_header: String,
    /// client-first-message-bare, the first part of AuthMessage.
    bare: String,
    nonce: String,
    aor: String,
}

struct ScramFinal {
    hash: ScramHash,
    first: ClientFirst,
    server_first: String,
    /// Client nonce followed by the server's.
    nonce: String,
    verifier: ScramVerifier,
    standing: Standing,
}

/// What the lookup found, decided on only after the proof is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Enabled,
    Disabled,
    /// No such user, or no password (or disabled without this verifier): the verifier is
    /// a fake.
    Unknown,
    /// An enabled user without this mechanism's verifier; the verifier is a fake.
    NoVerifier,
}

enum NonceSource {
    System,
    /// The RFC examples' server nonces, which are not base64 of random bytes.
    #[cfg(test)]
    Fixed(String),
}

impl NonceSource {
    fn next(&self) -> Result<String, SaslFailure> {
        match self {
            NonceSource::System => {
                let mut bytes = [0u8; NONCE_BYTES];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| SaslFailure::TemporaryAuthFailure("no random numbers"))?;
                Ok(BASE64.encode(bytes))
            }
            #[cfg(test)]
            NonceSource::Fixed(nonce) => Ok(nonce.clone()),
        }
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A PLAIN exchange holds a password while it waits for the lookup.
        let phase = match self.state {
            State::Initial => "initial",
            State::Lookup(_) => "lookup",
            State::ScramFinal(_) => "scram-final",
            State::Done => "done",
        };
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .field("authcid", &self.authcid)
            .field("phase", &phase)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Begins an exchange for `<auth mechanism='…'>` on a stream to `domain`, with the
    /// element's decoded text if it had any (`None`: no initial response; the answer is an
    /// empty challenge). `tls`: whether the stream is encrypted.
    pub fn start(
        domain: &str,
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        tls: bool,
    ) -> (Exchange, Step) {
        Exchange::begin(
            domain,
            mechanism,
            initial_response,
            tls,
            NonceSource::System,
        )
    }

    /// [`Exchange::start`] with the server nonce given, to replay the RFC examples.
    #[cfg(test)]
    fn start_with_nonce(
        domain: &str,
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        tls: bool,
        nonce: &str,
    ) -> (Exchange, Step) {
        let nonces = NonceSource::Fixed(nonce.to_owned());
        Exchange::begin(domain, mechanism, initial_response, tls, nonces)
    }

    fn begin(
        domain: &str,
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        tls: bool,
        nonces: NonceSource,
    ) -> (Exchange, Step) {
        let mut exchange = Exchange {
            mechanism,
            domain: domain.to_ascii_lowercase(),
            nonces,
            authcid: None,
            state: State::Initial,
        };
        // Refused before the message is looked at: a password sent in clear is not read.
        let step = if mechanism == Mechanism::Plain && !tls {
            exchange.fail(SaslFailure::EncryptionRequired)
        } else {
            match initial_response {
                None => Step::Challenge(Vec::new()),
                Some(message) => exchange.first(message),
            }
        };
        (exchange, step)
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The canonical user the client named, once it has.
    pub fn authcid(&self) -> Option<&str> {
        self.authcid.as_deref()
    }

    /// The client's `<response/>`.
    pub fn respond(&mut self, response: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Initial => self.first(response),
            State::ScramFinal(pending) => {
                let result = self.scram_final(*pending, response);
                self.conclude(result)
            }
            State::Lookup(_) => self.fail(SaslFailure::MalformedRequest(
                "a response before the server's challenge",
            )),
            State::Done => self.fail(SaslFailure::MalformedRequest("the exchange is over")),
        }
    }

    /// The lookup [`Step::NeedUser`] asked for: the user's verifiers (`None`: no such user,
    /// or a user without a password) and whether the account is enabled. For PLAIN this
    /// checks the password, which costs a PBKDF2 run: call it off the async threads.
    pub fn user(&mut self, credentials: Option<&Credentials>, enabled: bool) -> Step {
        let result = match std::mem::replace(&mut self.state, State::Done) {
            State::Lookup(Lookup::Scram(hash, first)) => {
                self.server_first(hash, first, credentials, enabled)
            }
            State::Lookup(Lookup::Plain { aor, password }) => {
                plain_verdict(aor, &password, credentials, enabled)
            }
            _ => Err(SaslFailure::TemporaryAuthFailure("user lookup out of turn")),
        };
        self.conclude(result)
    }

    /// The client's `<abort/>`.
    pub fn abort(&mut self) -> Step {
        self.fail(SaslFailure::Aborted)
    }

    /// The first client message, in `<auth/>` or the response to the empty challenge.
    fn first(&mut self, message: &[u8]) -> Step {
        let lookup = bounded(message).and_then(|message| match self.mechanism.scram_hash() {
            Some(hash) => parse_client_first(message, &self.domain)
                .map(|first| (first.aor.clone(), Lookup::Scram(hash, first))),
            None => parse_plain(message, &self.domain)
                .map(|(aor, password)| (aor.clone(), Lookup::Plain { aor, password })),
        });
        match lookup {
            Ok((aor, lookup)) => {
                self.authcid = Some(aor.clone());
                self.state = State::Lookup(lookup);
                Step::NeedUser { authcid: aor }
            }
            Err(failure) => self.fail(failure),
        }
    }

    fn server_first(
        &mut self,
        hash: ScramHash,
        first: ClientFirst,
        credentials: Option<&Credentials>,
        enabled: bool,
    ) -> Result<Step, SaslFailure> {
        let stored = credentials.and_then(|c| match hash {
            ScramHash::Sha1 => c.scram_sha1.as_ref(),
            ScramHash::Sha256 => c.scram_sha256.as_ref(),
        });
        let (verifier, standing) = match (credentials, stored) {
            (Some(_), Some(verifier)) if enabled => (verifier.clone(), Standing::Enabled),
            (Some(_), Some(verifier)) => (verifier.clone(), Standing::Disabled),
            (Some(_), None) if enabled => (fake_verifier(hash, &first.aor)?, Standing::NoVerifier),
            _ => (fake_verifier(hash, &first.aor)?, Standing::Unknown),
        };
        let nonce = format!("{}{}", first.nonce, self.nonces.next()?);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&verifier.salt),
            verifier.iterations
        );
        let challenge = server_first.as_bytes().to_vec();
        self.state = State::ScramFinal(Box::new(ScramFinal {
            hash,
            first,
            server_first,
            nonce,
            verifier,
            standing,
        }));
        Ok(Step::Challenge(challenge))
    }

    /// Checks client-final-message (RFC 5802 §7):
    /// `c=<base64 GS2 header>,r=<nonce>[,ext…],p=<base64 proof>`.
    fn scram_final(&self, pending: ScramFinal, message: &[u8]) -> Result<Step, SaslFailure> {
        let text = bounded(message).and_then(utf8)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(SaslFailure::MalformedRequest("client-final has no p= last"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(SaslFailure::MalformedRequest("client-final must begin c="))?;
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r=")).ok_or(
            SaslFailure::MalformedRequest("client-final must have r= second"),
        )?;
        let binding = BASE64
            .decode(binding)
            .map_err(|_| SaslFailure::IncorrectEncoding("c="))?;
        // No channel binding: c= is the GS2 header alone.
        if binding != pending.first.gs2_header.as_bytes() {
            return Err(SaslFailure::MalformedRequest(
                "c= does not repeat the GS2 header of client-first",
            ));
        }
        if nonce != pending.nonce {
            return Err(SaslFailure::MalformedRequest(
                "r= is not this exchange's nonce",
            ));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| SaslFailure::IncorrectEncoding("p="))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            pending.first.bare, pending.server_first
        );
        // Checked for fake verifiers too, so that unknown users take the same time.
        let proven =
            pending
                .verifier
                .verify_client_proof(pending.hash, auth_message.as_bytes(), &proof);
        match (pending.standing, proven) {
            (Standing::Enabled, true) => {
                let signature = pending
                    .verifier
                    .server_signature(pending.hash, auth_message.as_bytes());
                Ok(Step::Success {
                    user: pending.first.aor,
                    additional_data: Some(format!("v={}", BASE64.encode(signature)).into_bytes()),
                })
            }
            (Standing::Disabled, true) => Err(SaslFailure::AccountDisabled),
            (Standing::NoVerifier, _) => Err(SaslFailure::CredentialsExpired(self.mechanism)),
            _ => Err(SaslFailure::NotAuthorized),
        }
    }

    /// Ends the exchange on a success or failure; a challenge or lookup keeps it going.
    fn conclude(&mut self, result: Result<Step, SaslFailure>) -> Step {
        match result {
            Ok(step @ Step::Success { .. }) => {
                self.state = State::Done;
                step
            }
            Ok(step) => step,
            Err(failure) => self.fail(failure),
        }
    }

    fn fail(&mut self, failure: SaslFailure) -> Step {
        self.state = State::Done;
        Step::Failure(failure)
    }
}

/// PLAIN's answer once the user is known (RFC 4616).
fn plain_verdict(
    aor: String,
    password: &str,
    credentials: Option<&Credentials>,
    enabled: bool,
) -> Result<Step, SaslFailure> {
    // verify_password uses SCRAM-SHA-256, SCRAM-SHA-1 or Digest, whichever it finds first.
    let usable = credentials
        .filter(|c| c.scram_sha256.is_some() || c.scram_sha1.is_some() || c.digest.is_some());
    let Some(credentials) = usable else {
        // The PBKDF2 run a real check costs, so that unknown users take as long.
        let fake = Credentials {
            scram_sha256: Some(fake_verifier(ScramHash::Sha256, &aor)?),
            ..Credentials::default()
        };
        std::hint::black_box(fake.verify_password(&aor, password));
        return Err(match credentials {
            Some(_) if enabled => SaslFailure::CredentialsExpired(Mechanism::Plain),
            _ => SaslFailure::NotAuthorized,
        });
    };
    match (credentials.verify_password(&aor, password), enabled) {
        (true, true) => Ok(Step::Success {
            user: aor,
            additional_data: None,
        }),
        (true, false) => Err(SaslFailure::AccountDisabled),
        (false, _) => Err(SaslFailure::NotAuthorized),
    }
}

/// A SCRAM message: `gs2-header client-first-message-bare`, where the header is
/// `n,[a=authzid],` or `y,[a=authzid],` and the bare part `n=<name>,r=<nonce>[,ext…]`.
fn parse_client_first(message: &[u8], domain: &str) -> Result<ClientFirst, SaslFailure> {
    let text = utf8(message)?;
    let (flag, rest) = text.split_once(',').ok_or(SaslFailure::MalformedRequest(
        "client-first has no GS2 header",
    ))?;
    match flag {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => {
            return Err(SaslFailure::MalformedRequest(
                "channel binding is not offered here (no -PLUS mechanism): use the n flag",
            ));
        }
        _ => {
            return Err(SaslFailure::MalformedRequest("the GS2 flag must be n or y"));
        }
    }
    let (authzid, bare) = rest.split_once(',').ok_or(SaslFailure::MalformedRequest(
        "client-first has no GS2 header",
    ))?;
    let authzid = match authzid {
        "" => None,
        authzid => Some(
            authzid
                .strip_prefix("a=")
                .ok_or(SaslFailure::MalformedRequest("the GS2 authzid must be a="))?,
        ),
    };
    let mut attributes = bare.split(',');
    let name = attributes.next().unwrap_or_default();
    if name.starts_with("m=") {
        return Err(SaslFailure::MalformedRequest(
            "mandatory SCRAM extensions (m=) are not supported",
        ));
    }
    let name = name
        .strip_prefix("n=")
        .ok_or(SaslFailure::MalformedRequest("client-first must begin n="))?;
    let nonce = attributes.next().and_then(|a| a.strip_prefix("r=")).ok_or(
        SaslFailure::MalformedRequest("client-first must have r= second"),
    )?;
    // printable = %x21-2B / %x2D-7E: ASCII without controls, space and ','.
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SaslFailure::MalformedRequest(
            "the client nonce must be printable ASCII",
        ));
    }
    // Further attributes are extensions; RFC 5802 §5.1 says to ignore those not understood.
    let aor = canonical_user(&saslname(name)?, domain)?;
    if let Some(authzid) = authzid {
        check_authzid(&saslname(authzid)?, &aor, domain)?;
    }
    Ok(ClientFirst {
        gs2_header: text[..text.len() - bare.len()].to_owned(),
        bare: bare.to_owned(),
        nonce: nonce.to_owned(),
        aor,
    })
}

/// Decodes a SCRAM saslname: `=2C` is ',' and `=3D` is '='; any other '=' is invalid.
fn saslname(encoded: &str) -> Result<String, SaslFailure> {
    let mut name = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('=') {
        name.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        name.push(match escape {
            Some("=2C") => ',',
            Some("=3D") => '=',
            _ => {
                return Err(SaslFailure::MalformedRequest(
                    "'=' in a SCRAM name must begin =2C or =3D",
                ));
            }
        });
        rest = &rest[at + 3..];
    }
    name.push_str(rest);
    Ok(name)
}

/// PLAIN's message: `authzid NUL authcid NUL password` (RFC 4616 §2).
fn parse_plain(message: &[u8], domain: &str) -> Result<(String, String), SaslFailure> {
    let text = utf8(message)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::MalformedRequest(
            "PLAIN is authzid NUL authcid NUL password",
        ));
    };
    if password.is_empty() {
        return Err(SaslFailure::MalformedRequest("PLAIN has an empty password"));
    }
    let aor = canonical_user(authcid, domain)?;
    if !authzid.is_empty() {
        check_authzid(authzid, &aor, domain)?;
    }
    Ok((aor, password.to_owned()))
}

/// The canonical user for an authentication identity: an XMPP localpart (`alice`) in the
/// stream's domain, or the bare JID (`alice@domain`), normalised as SIP names are
/// ([`user_id`]).
fn canonical_user(name: &str, domain: &str) -> Result<String, SaslFailure> {
    const NOT_A_NAME: SaslFailure = SaslFailure::MalformedRequest(
        "the authentication identity is not a user name of at most 256 bytes",
    );
    // user_id would trim spaces and take a `sip:`/`xmpp:` prefix; a SASL name has neither.
    if name.len() > MAX_AUTHCID_BYTES
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(NOT_A_NAME);
    }
    let full = match name.split_once('@') {
        Some((_, other)) if !other.eq_ignore_ascii_case(domain) => {
            return Err(SaslFailure::ForeignUser);
        }
        Some(_) => name.to_owned(),
        None => format!("{name}@{domain}"),
    };
    user_id(&full)
        .filter(|aor| aor.len() <= MAX_AUTHCID_BYTES)
        .ok_or(NOT_A_NAME)
}

/// An authorization identity must name the authenticated user (in either form).
fn check_authzid(authzid: &str, aor: &str, domain: &str) -> Result<(), SaslFailure> {
    match canonical_user(authzid, domain) {
        Ok(user) if user == aor => Ok(()),
        _ => Err(SaslFailure::InvalidAuthzid),
    }
}

fn bounded(message: &[u8]) -> Result<&[u8], SaslFailure> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(SaslFailure::MalformedRequest("a message over 4 KiB"));
    }
    Ok(message)
}

fn utf8(message: &[u8]) -> Result<&str, SaslFailure> {
    std::str::from_utf8(message).map_err(|_| SaslFailure::MalformedRequest("not UTF-8"))
}

/// The bytes of an `<auth/>` or `<response/>` element's text (RFC 6120 §6.4.2): standard
/// base64, `=` for an empty message. An element without text is the caller's to tell
/// apart (for `<auth/>`, no initial response).
pub fn decode_payload(text: &str) -> Result<Vec<u8>, SaslFailure> {
    // Bounded before decoding, so that no more than 4 KiB is ever allocated.
    if text.len() > MAX_PAYLOAD_CHARS {
        return Err(SaslFailure::MalformedRequest("a message over 4 KiB"));
    }
    if text == "=" {
        return Ok(Vec::new());
    }
    let message = BASE64
        .decode(text)
        .map_err(|_| SaslFailure::IncorrectEncoding("the element's text"))?;
    // The text bound rounds up to whole base64 groups; the message bound is exact.
    bounded(&message)?;
    Ok(message)
}

/// A secret made once per process, from which unknown users' salts come: the same name
/// gets the same salt on every try (as a real user does), and nobody outside can tell it
/// from a real salt. `None` only if the system's generator fails.
fn process_secret() -> Option<&'static [u8; 32]> {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    if let Some(secret) = SECRET.get() {
        return Some(secret);
    }
    let mut fresh = [0u8; 32];
    SystemRandom::new().fill(&mut fresh).ok()?;
    Some(SECRET.get_or_init(|| fresh))
}

/// A verifier for a user who has none, shaped as [`Credentials::derive`] makes real ones
/// (16-byte salt, [`SCRAM_ITERATIONS`]). Its keys match no password.
fn fake_verifier(hash: ScramHash, aor: &str) -> Result<ScramVerifier, SaslFailure> {
    let secret = process_secret().ok_or(SaslFailure::TemporaryAuthFailure("no random numbers"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    // HMAC-SHA256 gives 32 bytes, as long as the longest part taken (salt 16, keys 20 or 32).
    let part = |label: &[u8], len: usize| -> Vec<u8> {
        let mut context = hmac::Context::with_key(&key);
        for field in [label, hash.mechanism().as_bytes(), aor.as_bytes()] {
            context.update(field);
            context.update(b"\0");
        }
        context.sign().as_ref().iter().take(len).copied().collect()
    };
    Ok(ScramVerifier {
        salt: part(b"salt", SCRAM_SALT_LEN),
        iterations: SCRAM_ITERATIONS,
        stored_key: part(b"stored-key", hash.output_len()),
        server_key: part(b"server-key", hash.output_len()),
    })
}

/// Asks the shared throttle about the user and address; call it at [`Step::NeedUser`],
/// before the lookup. `Some(failure)`: send it; the exchange is over and counted as
/// throttled.
pub fn admit(
    throttle: &FailureThrottle,
    peer: IpAddr,
    exchange: &mut Exchange,
    now: Instant,
) -> Option<Step> {
    if !throttle.is_blocked(peer, exchange.authcid(), now) {
        return None;
    }
    metrics().sign_in(exchange.mechanism.metric(), "throttled");
    tracing::info!(
        user = exchange.authcid(),
        %peer,
        mechanism = exchange.mechanism.name(),
        "XMPP sign-in refused: too many failed attempts"
    );
    Some(exchange.fail(SaslFailure::Throttled))
}

/// Counts a finished exchange: the sign-in counter, and the throttle for a success or a
/// failure that tried a password. Challenges and lookups are not finished; nor counted.
pub fn record(
    throttle: &FailureThrottle,
    peer: IpAddr,
    exchange: &Exchange,
    step: &Step,
    now: Instant,
) {
    let mechanism = exchange.mechanism.metric();
    match step {
        Step::Success { user, .. } => {
            metrics().sign_in(mechanism, "success");
            throttle.record_success(peer, user);
        }
        // Counted by admit.
        Step::Failure(SaslFailure::Throttled) => {}
        Step::Failure(failure) => {
            metrics().sign_in(mechanism, "failure");
            if failure.tried_credentials() {
                throttle.record_failure(peer, exchange.authcid(), now);
            }
            // Deliberately the same for unknown users; names are bounded.
            tracing::info!(
                user = exchange.authcid(),
                %peer,
                mechanism = exchange.mechanism.name(),
                condition = failure.condition(),
                reason = %failure,
                "XMPP sign-in refused"
            );
        }
        Step::NeedUser { .. } | Step::Challenge(_) => {}
    }
}

#[cfg(test)]
mod tests;
