//! The registrar: REGISTER with NTLM (MS-SIPAE), Digest or trusted-network authentication,
//! answered in the exact shape SIPE requires (xccos-protocol.md §1.3), and the table of
//! bindings.

use crate::core::metrics::metrics;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lync::sip::response::response;
use crate::lync::sip::{Message, NameAddr, SipUri};

use base64::Engine as _;

use super::digest::{self, DigestResponse, NonceCheck};
use super::ntlm::{self, Authenticate, Challenge};
use super::sipae::{self, Association, AuthFields, Pending, Role, Security};
use super::{ConnectionInfo, Shared, SipError, random_token};

/// The registration held by one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub aor: String,
    pub expires_at: Instant,
}

#[derive(Debug, Clone)]
struct Binding {
    connection: u64,
    contact: String,
    expires_at: Instant,
}

/// Which connections each user is registered on.
#[derive(Debug, Default)]
pub struct Bindings {
    by_aor: Mutex<HashMap<String, Vec<Binding>>>,
}

impl Bindings {
    fn bind(&self, aor: &str, connection: u64, contact: String, expires_at: Instant) {
        let Ok(mut map) = self.by_aor.lock() else {
            return;
        };
        let list = map.entry(aor.to_owned()).or_default();
        list.retain(|b| b.connection != connection);
        list.push(Binding {
            connection,
            contact,
            expires_at,
        });
    }

    pub fn unbind(&self, aor: &str, connection: u64) {
        let Ok(mut map) = self.by_aor.lock() else {
            return;
        };
        if let Some(list) = map.get_mut(aor) {
            list.retain(|b| b.connection != connection);
            if list.is_empty() {
                map.remove(aor);
            }
        }
    }

    /// Connections where `aor` holds an unexpired binding, with their contacts.
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<(u64, String)> {
        let Ok(map) = self.by_aor.lock() else {
            return Vec::new();
        };
        map.get(aor)
            .into_iter()
            .flatten()
            .filter(|b| b.expires_at > now)
            .map(|b| (b.connection, b.contact.clone()))
            .collect()
    }
}

/// Caps on the challenges one address and one network may ask for. A challenge costs
/// perch no state, but each is work and bytes on the wire.
#[derive(Debug)]
pub struct ChallengeLimits {
    per_address: crate::net::rate::KeyedBuckets<IpAddr>,
    per_network: crate::net::rate::KeyedBuckets<IpAddr>,
}

/// Addresses and networks remembered by the challenge limits, each.
const CHALLENGE_KEYS: usize = 65_536;

impl ChallengeLimits {
    pub fn new(settings: &super::SessionSettings) -> Self {
        let buckets = |rate: u32| {
            crate::net::rate::KeyedBuckets::new(rate, rate.saturating_mul(5), CHALLENGE_KEYS)
        };
        Self {
            per_address: buckets(settings.challenges_per_address),
            per_network: buckets(settings.challenges_per_network),
        }
    }

    /// Whether `peer` may have another challenge; `Overloaded` (503) if not.
    fn admit(&self, peer: IpAddr, now: Instant) -> Result<(), SipError> {
        use crate::net::limits::{address_group, network_prefix};
        // The network first: a flood from many addresses in one network is stopped
        // before it makes an entry per address.
        if self.per_network.allow(&network_prefix(peer), now)
            && self.per_address.allow(&address_group(peer), now)
        {
            return Ok(());
        }
        tracing::info!(%peer, "challenge refused: too many from this address or network");
        Err(SipError::Overloaded)
    }
}

/// What a successful REGISTER changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    Registered(Registration),
    Unregistered,
}

/// Handles a REGISTER. A challenge is a normal answer (401), not an error. `signed` says
/// whether the request verified under the connection's security association.
pub fn register(
    shared: &Shared,
    connection: &ConnectionInfo,
    current: Option<&Registration>,
    security: &mut Security,
    signed: bool,
    request: &Message,
    now: Instant,
) -> Result<(Message, Change), SipError> {
    let settings = &shared.settings;
    let aor = aor_of(request, "From")?;
    if aor_of(request, "To")? != aor {
        return Err(SipError::Forbidden(
            "third-party registration is not allowed".into(),
        ));
    }
    if let Some(current) = current
        && current.aor != aor
    {
        return Err(SipError::Forbidden(format!(
            "this connection is registered as {}",
            current.aor
        )));
    }
    let expires = requested_expires(request).unwrap_or(settings.default_expires);
    if expires == 0 {
        if let Some(current) = current {
            shared.registrar.unbind(&current.aor, connection.id);
        }
        let mut ok = response(&request.headers, 200, Some(&random_token()));
        ok.headers.push("Expires", "0");
        let change = if current.is_some() {
            Change::Unregistered
        } else {
            Change::None
        };
        return Ok((ok, change));
    }
    if expires < settings.min_expires {
        return Err(SipError::IntervalTooBrief {
            min_expires: settings.min_expires,
        });
    }
    let expires = expires.min(settings.max_expires);

    // Every REGISTER proves who sends it: a refresh under NTLM by its signature (an
    // unsigned one starts a new handshake, as SIPE does before its security association
    // expires), one from a trusted network by its address, a Digest one by the password.
    let proven = current.is_some() && signed;
    if !proven
        && let Some(challenge) =
            authenticate(shared, connection.peer.ip(), &aor, security, request, now)?
    {
        return Ok((challenge, Change::None));
    }

    let contact = request
        .headers
        .get("Contact")
        .unwrap_or_default()
        .to_owned();
    let expires_at = now + Duration::from_secs(u64::from(expires));
    shared
        .registrar
        .bind(&aor, connection.id, contact.clone(), expires_at);

    let mut ok = response(&request.headers, 200, Some(&random_token()));
    // SIPE ignores a 200 without an Expires header greater than zero.
    ok.headers.push("Expires", expires.to_string());
    if !contact.is_empty() {
        ok.headers
            .push("Contact", format!("{contact};expires={expires}"));
    }
    // SIPE compares each Supported header's whole value: one token per line.
    ok.headers.push("Supported", "msrtc-event-categories");
    ok.headers.push("Supported", "adhoclist");
    // SIPE splits on ',' without trimming: no spaces after commas.
    ok.headers
        .push("Allow-Events", "vnd-microsoft-provisioning-v2");
    ok.headers.push(
        "ms-keep-alive",
        format!(
            "UAS; tcp=no; hop-hop=yes; end-point=no; timeout={}",
            settings.keep_alive_secs
        ),
    );
    Ok((ok, Change::Registered(Registration { aor, expires_at })))
}

/// Decides whether the sender has proved who it is. `Ok(None)`: authenticated;
/// `Ok(Some(401))`: a challenge to send; `Err`: refused.
fn authenticate(
    shared: &Shared,
    peer: IpAddr,
    aor: &str,
    security: &mut Security,
    request: &Message,
    now: Instant,
) -> Result<Option<Message>, SipError> {
    if shared
        .settings
        .trusted_networks
        .iter()
        .any(|net| net.contains(&peer))
    {
        return match shared.model.snapshot().directory.active_user(aor) {
            Some(_) => {
                metrics().sign_in("trusted", "success");
                Ok(None)
            }
            None => {
                tracing::info!(
                    user = aor,
                    %peer,
                    "registration refused: unknown or disabled user (trusted network)"
                );
                Err(SipError::Forbidden("unknown or disabled user".into()))
            }
        };
    }
    if shared.throttle.is_blocked(peer, Some(aor), now) {
        metrics().sign_in("any", "throttled");
        return Err(SipError::Forbidden(
            "too many failed attempts; try again later".into(),
        ));
    }
    let answers: Vec<AuthFields> = request
        .headers
        .get_all("Authorization")
        .filter_map(AuthFields::parse)
        .collect();
    if let Some(ntlm) = answers.iter().find(|a| a.is_ntlm())
        && shared.settings.ntlm.is_some()
    {
        return authenticate_ntlm(shared, peer, aor, security, ntlm, request, now);
    }
    let (user_part, realm) = aor.split_once('@').unwrap_or((aor, ""));
    if answers
        .iter()
        .any(|a| a.scheme.eq_ignore_ascii_case("Digest"))
    {
        return authenticate_digest(shared, peer, aor, user_part, realm, request, now);
    }
    if let Some(other) = answers.first() {
        return Err(SipError::Forbidden(format!(
            "authentication scheme {:?} is not offered here; use {}",
            other.scheme.chars().take(32).collect::<String>(),
            if shared.settings.ntlm.is_some() {
                "NTLM or Digest"
            } else {
                "Digest"
            }
        )));
    }
    Ok(Some(challenge(shared, peer, request, realm, false, now)?))
}

fn authenticate_digest(
    shared: &Shared,
    peer: IpAddr,
    aor: &str,
    user_part: &str,
    realm: &str,
    request: &Message,
    now: Instant,
) -> Result<Option<Message>, SipError> {
    let snapshot = shared.model.snapshot();
    let directory = &snapshot.directory;
    let answer = request
        .headers
        .get_all("Authorization")
        .filter_map(DigestResponse::parse)
        .find(|answer| answer.realm == realm);
    let Some(answer) = answer else {
        return Ok(Some(challenge(shared, peer, request, realm, false, now)?));
    };
    let request_uri = match &request.start {
        crate::lync::sip::StartLine::Request { uri, .. } => uri.as_str(),
        crate::lync::sip::StartLine::Response { .. } => "",
    };
    if answer.uri != request_uri {
        return Err(SipError::Malformed(
            "Digest uri does not match the Request-URI".into(),
        ));
    }
    let credentials = directory
        .active_user(aor)
        .filter(|_| answer.username == user_part)
        .and_then(|user| user.credentials.as_ref())
        .and_then(|credentials| credentials.digest.as_ref());
    let proven = credentials.is_some_and(|ha1| answer.verify("REGISTER", ha1));
    if !proven {
        metrics().sign_in("digest", "failure");
        shared.throttle.record_failure(peer, Some(aor), now);
        // Deliberately silent about whether the user exists.
        tracing::info!(user = aor, %peer, "registration refused: bad credentials");
        return Err(SipError::Forbidden("authentication failed".into()));
    }
    match shared.nonces.check(&answer.nonce, answer.nc, now) {
        NonceCheck::Fresh => {
            metrics().sign_in("digest", "success");
            shared.throttle.record_success(peer, aor);
            Ok(None)
        }
        NonceCheck::Stale => Ok(Some(challenge(shared, peer, request, realm, true, now)?)),
        NonceCheck::Replayed => {
            tracing::info!(user = aor, %peer, "registration refused: replayed nonce count");
            Ok(Some(challenge(shared, peer, request, realm, false, now)?))
        }
    }
}

/// The NTLM exchange of MS-SIPAE §3.2.5: an empty token gets a CHALLENGE (second 401,
/// remembered on this connection under its `opaque`); an AUTHENTICATE answering it is
/// checked against the user's NT hash and makes the connection's security association.
fn authenticate_ntlm(
    shared: &Shared,
    peer: IpAddr,
    aor: &str,
    security: &mut Security,
    answer: &AuthFields,
    request: &Message,
    now: Instant,
) -> Result<Option<Message>, SipError> {
    let Some(settings) = shared.settings.ntlm.as_ref() else {
        return Ok(Some(challenge(shared, peer, request, "", false, now)?));
    };
    let token = answer.get("gssapi-data").unwrap_or_default();
    if token.is_empty() {
        shared.challenges.admit(peer, now)?;
        let opaque = random_token();
        let challenge =
            Challenge::new(random_nonce()?, &settings.names, ntlm::filetime(unix_now()));
        let mut reply = response(&request.headers, 401, Some(&random_token()));
        reply.headers.push(
            "WWW-Authenticate",
            format!(
                "NTLM opaque=\"{opaque}\", gssapi-data=\"{}\", targetname=\"{}\", realm=\"{}\", version={}",
                base64::engine::general_purpose::STANDARD.encode(&challenge.message),
                settings.target,
                sipae::REALM,
                sipae::VERSION
            ),
        );
        security.pending = Some(Pending {
            challenge,
            opaque,
            issued_at: now,
        });
        return Ok(Some(reply));
    }
    // The pending challenge is used once, whatever the outcome.
    let pending = security
        .pending
        .take()
        .filter(|p| answer.get("opaque") == Some(p.opaque.as_str()))
        .filter(|p| now.duration_since(p.issued_at) <= sipae::CHALLENGE_LIFETIME);
    let Some(pending) = pending else {
        tracing::info!(user = aor, %peer, "NTLM answer to no current challenge; starting over");
        return Ok(Some(challenge(shared, peer, request, "", false, now)?));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| SipError::Malformed("gssapi-data is not base64".into()))?;
    let message =
        Authenticate::parse(&bytes).map_err(|error| SipError::Malformed(error.to_string()))?;
    let fail = |reason: &str| {
        metrics().sign_in("ntlm", "failure");
        shared.throttle.record_failure(peer, Some(aor), now);
        // Deliberately silent about whether the user exists; the names are bounded.
        tracing::info!(user = aor, %peer, reason, "registration refused: NTLM authentication failed");
        Ok(Some(challenge(shared, peer, request, "", false, now)?))
    };
    let Some(identity) = settings.identity(&message.user, &message.domain) else {
        return fail("NTLM user is not in this domain");
    };
    if identity != aor {
        return Err(SipError::Forbidden(format!(
            "NTLM user does not match the From address {aor}"
        )));
    }
    let snapshot = shared.model.snapshot();
    let nt_hash = snapshot
        .directory
        .active_user(aor)
        .and_then(|user| user.credentials.as_ref())
        .and_then(|credentials| credentials.nt_hash.as_ref());
    let Some(nt_hash) = nt_hash else {
        return fail("no NT hash stored (unknown user, disabled, or no password set since NTLM)");
    };
    let keys = match pending.challenge.verify(&message, nt_hash) {
        Ok(keys) => keys,
        Err(error) => return fail(&error.to_string()),
    };
    let mut association = Association::new(
        Role::Server,
        keys,
        pending.opaque,
        settings.target.clone(),
        now,
    )
    .with_lifetime(settings.association_lifetime, now);
    // Version 4 clients sign the REGISTER that completes the handshake.
    if answer.get("response").is_some()
        && let Err(error) = association.verify(request)
    {
        return fail(&error.to_string());
    }
    metrics().sign_in("ntlm", "success");
    shared.throttle.record_success(peer, aor);
    tracing::info!(user = aor, %peer, "NTLM security association established");
    security.association = Some(association);
    Ok(None)
}

/// The first 401: Digest always, and NTLM for clients that show they speak it. SIPE takes
/// NTLM, Digest clients take Digest.
fn challenge(
    shared: &Shared,
    peer: IpAddr,
    request: &Message,
    realm: &str,
    stale: bool,
    now: Instant,
) -> Result<Message, SipError> {
    shared.challenges.admit(peer, now)?;
    let realm = if realm.is_empty() {
        shared.settings.domain.as_str()
    } else {
        realm
    };
    let nonce = shared.nonces.issue(now);
    let mut reply = response(&request.headers, 401, Some(&random_token()));
    // Digest first, SHA-256 before MD5 (RFC 8760 §2.4), for clients that take the first.
    for value in digest::challenges(realm, &nonce, stale) {
        reply.headers.push("WWW-Authenticate", value);
    }
    if let Some(settings) = shared
        .settings
        .ntlm
        .as_ref()
        .filter(|_| speaks_msrtc(request))
    {
        reply.headers.push(
            "WWW-Authenticate",
            format!(
                "NTLM realm=\"{}\", targetname=\"{}\", version={}",
                sipae::REALM,
                settings.target,
                sipae::VERSION
            ),
        );
        // MS-SIPAE asks for the server's clock beside the first NTLM offer.
        if let Ok(date) = time::OffsetDateTime::now_utc().format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        )) {
            reply.headers.push("Date", date);
        }
    }
    Ok(reply)
}

/// Whether a REGISTER comes from a Microsoft-style client (Lync, Pidgin-SIPE), which is
/// offered NTLM as the client's headers indicate: `Supported: msrtc-event-categories` or an
/// `ms-keep-alive` header. Others get Digest alone: some SIP stacks (PJSIP) drop a whole
/// 401 whose NTLM challenge they cannot parse.
fn speaks_msrtc(request: &Message) -> bool {
    request
        .headers
        .tokens("Supported")
        .any(|option| option.eq_ignore_ascii_case("msrtc-event-categories"))
        || request.headers.get("ms-keep-alive").is_some()
}

/// A server challenge from the OS generator; without it a challenge would be guessable,
/// so none is issued.
fn random_nonce() -> Result<[u8; 8], SipError> {
    use ring::rand::SecureRandom as _;
    let mut nonce = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SipError::Internal("system random generator failed".into()))?;
    Ok(nonce)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Longest address of record perch signs in (bytes). Anything longer is no user of ours,
/// and bounding it here bounds what a failed attempt leaves in the throttle and the log.
pub const MAX_AOR_BYTES: usize = 256;

fn aor_of(request: &Message, header: &'static str) -> Result<String, SipError> {
    let aor = request
        .headers
        .get(header)
        .and_then(NameAddr::parse)
        .and_then(|n| SipUri::parse(&n.uri))
        .and_then(|u| u.aor())
        .ok_or_else(|| SipError::Malformed(format!("{header} is not a SIP URI with a user")))?;
    if aor.len() > MAX_AOR_BYTES {
        return Err(SipError::Malformed(format!(
            "{header} address is longer than {MAX_AOR_BYTES} bytes"
        )));
    }
    Ok(aor)
}

/// Expires header, else the first Contact's `expires` parameter.
fn requested_expires(request: &Message) -> Option<u32> {
    if let Some(value) = request.headers.get("Expires") {
        return value.trim().parse().ok();
    }
    request
        .headers
        .get("Contact")
        .and_then(NameAddr::parse)
        .and_then(|c| c.params.value("expires").and_then(|e| e.parse().ok()))
}
