//! Identities the core uses, independent of any protocol: users, rooms, sessions and the
//! server clock. Gateways render them in their own forms (`sip:alice@example.test`,
//! `ma-chan://example.test/<uid>`, and later `alice@example.test/res` or a MUC address).

use std::fmt;
use std::sync::Arc;

/// A canonical user identity, `user@domain` in lower case, from `user@domain` or a URI
/// form of it (`sip:`/`sips:`/`xmpp:` prefix). Refuses ports, parameters and anything a
/// directory name cannot hold.
pub fn user_id(text: &str) -> Option<String> {
    let text = text.trim();
    let bare = ["sip:", "sips:", "xmpp:"]
        .iter()
        .find_map(|scheme| {
            text.get(..scheme.len())
                .filter(|head| head.eq_ignore_ascii_case(scheme))
                .map(|_| &text[scheme.len()..])
        })
        .unwrap_or(text);
    let (user, domain) = bare.split_once('@')?;
    let valid_user = !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b));
    (valid_user && valid_domain(domain))
        .then(|| format!("{}@{}", user.to_lowercase(), domain.to_ascii_lowercase()))
}

/// A DNS-shaped domain name, in lower case.
pub fn domain_name(text: &str) -> Option<String> {
    let text = text.trim();
    valid_domain(text).then(|| text.to_ascii_lowercase())
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A new secret token: 32 random bytes, URL-safe base64 (sessions, resumption ids);
/// `None` when the system's random generator fails.
pub fn new_token() -> Option<String> {
    use base64::Engine as _;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A random GUID-shaped id for a new room: the room's identity for its whole life, kept
/// across renames and moves. Gateways derive their addresses from it.
pub fn new_room_uid() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // Room ids need to be unique, not secret: fall back to the clock if the RNG fails.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        b[..8].copy_from_slice(&now_ticks().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Current time in 100 ns ticks since the Unix epoch: the server time of every message.
pub fn now_ticks() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_nanos() / 100) as i64)
}

/// The front door a session came in through. The hub hands each gateway the events of
/// its own sessions, so one rendering serves all of that gateway's recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gateway {
    /// SIP with XCCOS in INFO: Lync, Skype for Business, Pidgin with SIPE.
    Lync,
    /// XMPP client streams with MUC and MAM: Gajim, Dino, Conversations, bots.
    Xmpp,
}

impl Gateway {
    pub const ALL: [Gateway; 2] = [Gateway::Lync, Gateway::Xmpp];

    pub fn name(self) -> &'static str {
        match self {
            Gateway::Lync => "lync",
            Gateway::Xmpp => "xmpp",
        }
    }

    pub fn from_name(name: &str) -> Option<Gateway> {
        Self::ALL.into_iter().find(|gateway| gateway.name() == name)
    }
}

/// One chat session: a gateway, a connection of that gateway, and a stream on it (the
/// chat dialog's Call-ID for SIP; a full JID or an occupant for XMPP). It is what joins
/// rooms and receives events. Cheap to clone: a post to a large room copies one per
/// recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionRef {
    pub gateway: Gateway,
    pub connection: u64,
    pub stream: Arc<str>,
}

impl fmt::Display for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.gateway.name(),
            self.connection,
            self.stream
        )
    }
}

/// A short plain name: 1 to 64 ASCII letters, digits, '-', '_' or '.' (admin token names,
/// NTLM domain names).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// 100 ns ticks since the Unix epoch as an RFC 3339 time in UTC, to the second
/// (`2024-05-01T12:00:00Z`, also XEP-0082's form).
pub fn rfc3339_from_ticks(ticks: i64) -> String {
    let seconds = ticks.div_euclid(10_000_000);
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ticks.to_string())
}

/// An RFC 3339 time (`2024-05-01T12:00:00Z`) as 100 ns ticks since the Unix epoch.
pub fn ticks_from_rfc3339(text: &str) -> Result<i64, String> {
    let time =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                format!("{text:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z ({e})")
            })?;
    i64::try_from(time.unix_timestamp_nanos() / 100)
        .map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_canonical() {
        assert_eq!(
            user_id("sip:Alice@Example.TEST").as_deref(),
            Some("alice@example.test")
        );
        assert_eq!(
            user_id(" bob@example.test ").as_deref(),
            Some("bob@example.test")
        );
        assert_eq!(
            user_id("xmpp:carol@example.test").as_deref(),
            Some("carol@example.test")
        );
        for bad in [
            "alice",
            "@example.test",
            "alice@",
            "alice@ex ample",
            "sip:a@b:5060",
            "sip:a@b;x=y",
            "a@b@c",
            "tel:+1@x",
        ] {
            assert_eq!(user_id(bad), None, "{bad}");
        }
        assert_eq!(domain_name("Example.Test").as_deref(), Some("example.test"));
        assert_eq!(domain_name("exa mple"), None);
    }

    #[test]
    fn room_uids_are_guid_shaped() {
        let uid = new_room_uid();
        assert_eq!(uid.len(), 36);
        assert_ne!(uid, new_room_uid());
    }
}
