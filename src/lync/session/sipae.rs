//! MS-SIPAE message signing over NTLM: the authentication header fields, the signature
//! buffer SIPE computes (`<NTLM><rand><num><realm><targetname><Call-ID><CSeq#><method>
//! <From-URL><From-tag><To-URL><To-tag><PAI-sip><PAI-tel><Expires>` and `<code>` for
//! responses), and a security association that signs what one side sends and verifies
//! what the other side sends. Sans-I/O; used by the registrar and sessions (server side)
//! and by perch's test and load clients (client side).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ntlm::{Challenge, Direction, SessionKeys, TargetNames};
use crate::lync::sip::header::unquote;
use crate::lync::sip::message::split_list;
use crate::lync::sip::{Message, StartLine};

/// The realm every MS-SIPAE NTLM exchange names.
pub const REALM: &str = "SIP Communications Service";
/// MS-SIPAE protocol version perch speaks: version 4 signs the REGISTER that completes the
/// handshake and includes To-URL and P-Asserted-Identity in the signature buffer.
pub const VERSION: u32 = 4;
/// SIPE (and MS-SIPAE over connectionless NTLM) signs every message with sequence 100;
/// replay protection comes from the strictly rising `cnum`/`snum` instead.
pub const SEQUENCE: u32 = 100;
/// How long a CHALLENGE may wait for its AUTHENTICATE.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a security association lives. SIPE re-authenticates 5 minutes before 8 hours.
pub const ASSOCIATION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Bound on an authentication header perch will look at (bytes).
const MAX_AUTH_HEADER: usize = 8192;

/// A parsed `Authorization`/`WWW-Authenticate`/`Authentication-Info` value: its scheme and
/// its `name=value` fields, unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFields {
    pub scheme: String,
    fields: HashMap<String, String>,
}

impl AuthFields {
    pub fn parse(value: &str) -> Option<AuthFields> {
        if value.len() > MAX_AUTH_HEADER {
            return None;
        }
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        let fields = split_list(rest)
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), unquote(v.trim())))
            .collect();
        Some(AuthFields {
            scheme: scheme.to_owned(),
            fields,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn is_ntlm(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("NTLM")
    }
}

/// The NTLM `Authorization` a request carries, if any.
pub fn ntlm_authorization(message: &Message) -> Option<AuthFields> {
    message
        .headers
        .get_all("Authorization")
        .filter_map(AuthFields::parse)
        .find(AuthFields::is_ntlm)
}

/// The parts of a SIP message that its MS-SIPAE signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub call_id: &'a str,
    /// The CSeq number as written.
    pub cseq: &'a str,
    /// The request's method, or for a response the method in its CSeq.
    pub method: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub asserted_identity: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub code: Option<u16>,
}

impl<'a> SignedParts<'a> {
    pub fn of(message: &'a Message) -> SignedParts<'a> {
        let headers = &message.headers;
        let cseq = headers.get("CSeq").unwrap_or_default().trim();
        let (cseq_number, cseq_method) = cseq.split_once(char::is_whitespace).unwrap_or((cseq, ""));
        let (method, code) = match &message.start {
            StartLine::Request { method, .. } => (method.as_str(), None),
            StartLine::Response { code, .. } => (cseq_method.trim(), Some(*code)),
        };
        SignedParts {
            call_id: message.call_id(),
            cseq: cseq_number,
            method,
            from: headers.get("From").unwrap_or_default(),
            to: headers.get("To").unwrap_or_default(),
            asserted_identity: headers
                .get("P-Asserted-Identity")
                .or_else(|| headers.get("P-Preferred-Identity")),
            expires: headers.get("Expires"),
            code,
        }
    }

    /// The signature buffer, given the fields of the authentication header that carries
    /// (or will carry) the signature.
    pub fn buffer(&self, rand: &str, num: &str, realm: &str, target: &str) -> String {
        let (pai_sip, pai_tel) = asserted_uris(self.asserted_identity);
        let mut text = format!(
            "<NTLM><{rand}><{num}><{realm}><{target}><{}><{}><{}><{}><{}><{}><{}><{pai_sip}><{pai_tel}><{}>",
            self.call_id,
            self.cseq,
            self.method,
            address(self.from),
            tag(self.from),
            address(self.to),
            tag(self.to),
            self.expires.unwrap_or_default(),
        );
        if let Some(code) = self.code {
            text.push_str(&format!("<{code}>"));
        }
        text
    }
}

/// The URI of a From/To value: what is inside `<>`, else everything before the first `;`.
fn address(value: &str) -> &str {
    match value.split_once('<') {
        Some((_, rest)) => rest.split_once('>').map_or("", |(uri, _)| uri),
        None => value.split(';').next().unwrap_or_default().trim(),
    }
}

/// The `tag` parameter of a From/To value, up to the next `;`.
fn tag(value: &str) -> &str {
    value
        .split_once(";tag=")
        .map_or("", |(_, rest)| rest.split(';').next().unwrap_or_default())
}

/// The sip: and tel: URIs of a P-Asserted-Identity value.
fn asserted_uris(value: Option<&str>) -> (&str, &str) {
    let Some(value) = value else { return ("", "") };
    if value
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("tel:"))
    {
        return ("", value);
    }
    let (mut sip, mut tel) = ("", "");
    for part in value.split(',') {
        let Some(uri) = part
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map(|(u, _)| u)
        else {
            continue;
        };
        if uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:")) && sip.is_empty() {
            sip = uri;
        } else if uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:")) && tel.is_empty() {
            tel = uri;
        }
    }
    (sip, tel)
}

/// Which end of the association this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Why a message's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("message is not signed")]
    Unsigned,
    #[error("message is signed for another security association")]
    WrongAssociation,
    #[error("message number does not advance (replayed or reordered)")]
    Replayed,
    #[error("message signature is invalid")]
    Invalid,
}

/// An established MS-SIPAE security association: the NTLM keys plus the numbers that make
/// each signature unique.
#[derive(Debug, Clone)]
pub struct Association {
    role: Role,
    keys: SessionKeys,
    pub opaque: String,
    pub target: String,
    /// The number of the last message this side signed.
    sent: u32,
    /// The number of the last message from the other side that verified.
    received: u32,
    pub expires_at: Instant,
}

impl Association {
    pub fn new(
        role: Role,
        keys: SessionKeys,
        opaque: String,
        target: String,
        now: Instant,
    ) -> Self {
        Association {
            role,
            keys,
            opaque,
            target,
            sent: 0,
            received: 0,
            expires_at: now + ASSOCIATION_LIFETIME,
        }
    }

    /// The same association, expiring `lifetime` after `now` instead.
    pub fn with_lifetime(mut self, lifetime: Duration, now: Instant) -> Self {
        self.expires_at = now + lifetime;
        self
    }

    fn directions(&self) -> (Direction, Direction) {
        match self.role {
            Role::Server => (Direction::ServerToClient, Direction::ClientToServer),
            Role::Client => (Direction::ClientToServer, Direction::ServerToClient),
        }
    }

    /// Signs an outgoing message and returns the header to add: `Authentication-Info`
    /// (server) or `Authorization` (client), with its value.
    pub fn sign(&mut self, parts: &SignedParts<'_>) -> (&'static str, String) {
        self.sent = self.sent.wrapping_add(1);
        let rand = random_hex8();
        let num = self.sent.to_string();
        let buffer = parts.buffer(&rand, &num, REALM, &self.target);
        let signature = hex::encode_upper(self.keys.sign(
            self.directions().0,
            SEQUENCE,
            buffer.as_bytes(),
        ));
        match self.role {
            Role::Server => (
                "Authentication-Info",
                format!(
                    "NTLM rspauth=\"{signature}\", srand=\"{rand}\", snum=\"{num}\", opaque=\"{}\", qop=\"auth\", targetname=\"{}\", realm=\"{REALM}\"",
                    self.opaque, self.target
                ),
            ),
            Role::Client => (
                "Authorization",
                format!(
                    "NTLM qop=\"auth\", opaque=\"{}\", realm=\"{REALM}\", targetname=\"{}\", crand=\"{rand}\", cnum=\"{num}\", response=\"{signature}\"",
                    self.opaque, self.target
                ),
            ),
        }
    }

    /// Verifies the signature on a message from the other side; on success its number
    /// becomes the one later messages must exceed.
    pub fn verify(&mut self, message: &Message) -> Result<(), SignatureError> {
        let (header, rand_name, num_name, signature_name) = match self.role {
            Role::Server => ("Authorization", "crand", "cnum", "response"),
            Role::Client => ("Authentication-Info", "srand", "snum", "rspauth"),
        };
        let fields = message
            .headers
            .get_all(header)
            .filter_map(AuthFields::parse)
            .find(|f| f.is_ntlm() && f.get(signature_name).is_some())
            .ok_or(SignatureError::Unsigned)?;
        if fields.get("opaque") != Some(self.opaque.as_str()) {
            return Err(SignatureError::WrongAssociation);
        }
        let (Some(rand), Some(num), Some(signature)) = (
            fields.get(rand_name),
            fields.get(num_name),
            fields.get(signature_name),
        ) else {
            return Err(SignatureError::Unsigned);
        };
        let number: u32 = num.parse().map_err(|_| SignatureError::Invalid)?;
        if number <= self.received {
            return Err(SignatureError::Replayed);
        }
        let realm = fields.get("realm").unwrap_or(REALM);
        let target = fields.get("targetname").unwrap_or(&self.target);
        let buffer = SignedParts::of(message).buffer(rand, num, realm, target);
        let signature = hex::decode(signature).map_err(|_| SignatureError::Invalid)?;
        if !self
            .keys
            .verify(self.directions().1, SEQUENCE, buffer.as_bytes(), &signature)
        {
            return Err(SignatureError::Invalid);
        }
        self.received = number;
        Ok(())
    }
}

/// How NTLM names map onto perch's users, and what perch's CHALLENGE announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtlmSettings {
    pub names: TargetNames,
    /// The `targetname` of every header: the server's host name.
    pub target: String,
    /// The SIP domain every accepted NTLM identity belongs to.
    pub sip_domain: String,
    /// NTLM domain names (upper case) that mean `sip_domain`.
    pub domains: Vec<String>,
    /// How long a security association lasts before the client must authenticate again.
    pub association_lifetime: Duration,
}

impl NtlmSettings {
    pub fn new(sip_domain: &str, target: &str, aliases: &[String]) -> NtlmSettings {
        let netbios = sip_domain
            .split('.')
            .next()
            .unwrap_or(sip_domain)
            .to_ascii_uppercase();
        let host = target
            .split('.')
            .next()
            .unwrap_or(target)
            .to_ascii_uppercase();
        let mut domains = vec![netbios.clone(), sip_domain.to_ascii_uppercase()];
        for alias in aliases {
            let alias = alias.to_ascii_uppercase();
            if !domains.contains(&alias) {
                domains.push(alias);
            }
        }
        NtlmSettings {
            names: TargetNames {
                netbios_domain: netbios,
                netbios_computer: host,
                dns_domain: sip_domain.to_owned(),
                dns_computer: target.to_owned(),
            },
            target: target.to_owned(),
            sip_domain: sip_domain.to_owned(),
            domains,
            association_lifetime: ASSOCIATION_LIFETIME,
        }
    }

    /// The perch user an NTLM user and domain name: `alice` in `EXAMPLE` (or in no domain)
    /// and `alice@example.test` are `alice@example.test`; case never matters. `None` for
    /// a domain that is not ours.
    pub fn identity(&self, user: &str, domain: &str) -> Option<String> {
        let ours = |d: &str| d.is_empty() || self.domains.iter().any(|n| n.eq_ignore_ascii_case(d));
        let aor = if user.contains('@') {
            crate::core::ids::user_id(user)?
        } else {
            crate::core::ids::user_id(&format!("{user}@{}", self.sip_domain))?
        };
        let in_domain = aor
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&self.sip_domain));
        (ours(domain) && in_domain).then_some(aor)
    }
}

/// A CHALLENGE sent on a connection, waiting for its AUTHENTICATE.
#[derive(Debug, Clone)]
pub struct Pending {
    pub challenge: Challenge,
    pub opaque: String,
    pub issued_at: Instant,
}

/// One connection's MS-SIPAE state: at most one handshake in progress and at most one
/// established association. Bounded by construction: a client cannot make perch hold more.
#[derive(Debug, Default)]
pub struct Security {
    pub pending: Option<Pending>,
    pub association: Option<Association>,
}

impl Security {
    /// Signs `message` if an association exists. 401 challenges stay unsigned: they start a
    /// new handshake, and the client has dropped its old context by then.
    pub fn sign_message(&mut self, message: &mut Message) {
        let Some(association) = self.association.as_mut() else {
            return;
        };
        if matches!(message.start, StartLine::Response { code: 401, .. }) {
            return;
        }
        let (name, value) = association.sign(&SignedParts::of(message));
        message.headers.push(name, value);
    }
}

/// Both ends of one NTLM exchange run in memory: the server's association and the
/// client's, for `user` in `domain` with `password`, opaque `op1`, target
/// `chat.example.test`. For tests, fuzz targets and tools that need a signing pair
/// without a server.
pub fn in_memory_pair(
    user: &str,
    domain: &str,
    password: &str,
) -> Option<(Association, Association)> {
    use super::ntlm::{self, ClientEntropy, ClientIdentity, ReceivedChallenge};
    let names = TargetNames {
        netbios_domain: "EXAMPLE".into(),
        netbios_computer: "CHAT".into(),
        dns_domain: "example.test".into(),
        dns_computer: "chat.example.test".into(),
    };
    let challenge = Challenge::new([5; 8], &names, ntlm::filetime(1_800_000_000));
    let hash = crate::core::credentials::NtHash::derive(password);
    let identity = ClientIdentity {
        user,
        domain,
        workstation: "W",
        nt_hash: &hash,
    };
    let entropy = ClientEntropy {
        client_challenge: [1; 8],
        exported_session_key: [2; 16],
        filetime: 0,
    };
    let received = ReceivedChallenge::parse(&challenge.message).ok()?;
    let (answer, client_keys) = ntlm::respond(&received, &identity, &entropy).ok()?;
    let server_keys = challenge.verify(&answer, &hash).ok()?;
    let now = Instant::now();
    let target = "chat.example.test".to_owned();
    Some((
        Association::new(Role::Server, server_keys, "op1".into(), target.clone(), now),
        Association::new(Role::Client, client_keys, "op1".into(), target, now),
    ))
}

fn random_hex8() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 4];
    // The random part only makes signatures differ; a fixed value on RNG failure is safe.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(text: &str) -> Message {
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        Message::parse(
            format!("{head}\r\n\r\n").as_bytes(),
            Bytes::from(body.to_owned()),
        )
        .unwrap()
    }

    const INFO: &str = "INFO sip:alice@192.0.2.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.9:5061;branch=z9hG4bK1\r\nFrom: <sip:ocschat@example.test>;tag=abc\r\nTo: <sip:alice@example.test>;tag=x1;epid=e1\r\nCall-ID: call-1\r\nCSeq: 7 INFO\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn the_buffer_has_sipes_shape() {
        let request = message(INFO);
        let parts = SignedParts::of(&request);
        assert_eq!(
            parts.buffer("0a1b2c3d", "5", REALM, "chat.example.test"),
            "<NTLM><0a1b2c3d><5><SIP Communications Service><chat.example.test><call-1><7><INFO><sip:ocschat@example.test><abc><sip:alice@example.test><x1><><><>"
        );
        let response = message(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1\r\nFrom: sip:alice@example.test;tag=t9\r\nTo: <sip:alice@example.test>\r\nCall-ID: c\r\nCSeq: 3 REGISTER\r\nExpires: 7200\r\nP-Asserted-Identity: <sip:alice@example.test>, <tel:+15550100>\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            SignedParts::of(&response).buffer("r", "1", REALM, "t"),
            "<NTLM><r><1><SIP Communications Service><t><c><3><REGISTER><sip:alice@example.test><t9><sip:alice@example.test><><sip:alice@example.test><tel:+15550100><7200><200>"
        );
    }

    fn pair() -> (Association, Association) {
        in_memory_pair("alice", "EXAMPLE", "pw").unwrap()
    }

    fn with_header(mut message: Message, (name, value): (&str, String)) -> Message {
        message.headers.push(name, value);
        message
    }

    #[test]
    fn each_side_verifies_the_other_and_refuses_replays_and_tampering() {
        let (mut server, mut client) = pair();
        let request = message(INFO);
        let header = server.sign(&SignedParts::of(&request));
        assert_eq!(header.0, "Authentication-Info");
        let signed = with_header(request.clone(), header);
        client.verify(&signed).unwrap();
        assert_eq!(client.verify(&signed), Err(SignatureError::Replayed));

        let answer = message(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.9:5061;branch=z9hG4bK1\r\nFrom: <sip:ocschat@example.test>;tag=abc\r\nTo: <sip:alice@example.test>;tag=x1;epid=e1\r\nCall-ID: call-1\r\nCSeq: 7 INFO\r\nContent-Length: 0\r\n\r\n",
        );
        let header = client.sign(&SignedParts::of(&answer));
        assert_eq!(header.0, "Authorization");
        let signed_answer = with_header(answer.clone(), header.clone());
        server.verify(&signed_answer).unwrap();
        assert_eq!(server.verify(&signed_answer), Err(SignatureError::Replayed));

        // A signed header moved onto a different message does not verify.
        let mut other = answer.clone();
        other.headers = crate::lync::sip::Headers::default();
        for h in answer.headers.iter() {
            let value = if h.name == "CSeq" {
                "8 INFO".to_owned()
            } else {
                h.value.clone()
            };
            other.headers.push(h.name.clone(), value);
        }
        let next = client.sign(&SignedParts::of(&answer));
        let moved = with_header(other, next);
        assert_eq!(server.verify(&moved), Err(SignatureError::Invalid));
        assert_eq!(server.verify(&answer), Err(SignatureError::Unsigned));
        let foreign = with_header(answer, (header.0, header.1.replace("op1", "op2")));
        assert_eq!(
            server.verify(&foreign),
            Err(SignatureError::WrongAssociation)
        );
    }

    #[test]
    fn ntlm_names_map_onto_perch_users_without_regard_to_case() {
        let settings = NtlmSettings::new("example.test", "chat.example.test", &["CORP".into()]);
        assert_eq!(settings.names.netbios_domain, "EXAMPLE");
        for (user, domain) in [
            ("alice", "EXAMPLE"),
            ("ALICE", "example"),
            ("Alice", "CORP"),
            ("alice", "example.test"),
            ("alice", ""),
            ("alice@example.test", ""),
            ("ALICE@EXAMPLE.TEST", ""),
        ] {
            assert_eq!(
                settings.identity(user, domain).as_deref(),
                Some("alice@example.test"),
                "{user} in {domain:?}"
            );
        }
        assert_eq!(settings.identity("alice", "OTHER"), None);
        assert_eq!(settings.identity("alice@other.test", ""), None);
        assert_eq!(settings.identity("", "EXAMPLE"), None);
    }
}
