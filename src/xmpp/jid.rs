//! JIDs (RFC 7622) as perch needs them: `local@domain/resource`, each part bounded to
//! 1023 bytes. Local parts are enforced with PRECIS's UsernameCaseMapped profile and
//! resources with OpaqueString (RFC 7622 §3.3, §3.4, through `precis-profiles`), so two
//! spellings of one address compare equal; domains are lower-cased (no IDNA: perch's
//! domains are its configuration's).

use std::fmt;

use precis_profiles::precis_core::profile::PrecisFastInvocation as _;
use precis_profiles::{OpaqueString, UsernameCaseMapped};

/// RFC 7622 §3.1: each part at most 1023 bytes.
const MAX_PART_BYTES: usize = 1023;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jid {
    pub local: Option<String>,
    pub domain: String,
    pub resource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid JID")]
pub struct JidError(pub String);

impl Jid {
    pub fn parse(text: &str) -> Result<Jid, JidError> {
        let invalid = || JidError(text.chars().take(64).collect());
        let (bare, resource) = match text.split_once('/') {
            Some((bare, resource)) => (bare, Some(resource)),
            None => (text, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, bare),
        };
        let part_ok = |part: &str| {
            !part.is_empty()
                && part.len() <= MAX_PART_BYTES
                && !part.chars().any(|c| c.is_control() || c.is_whitespace())
        };
        if !part_ok(domain) || domain.contains('@') {
            return Err(invalid());
        }
        let local = match local {
            Some(local) => {
                let enforced = UsernameCaseMapped::enforce(local).map_err(|_| invalid())?;
                // RFC 7622 §3.3.1: characters a localpart may not hold beyond the profile's.
                let forbidden = enforced.contains(['"', '&', '\'', '/', ':', '<', '>', '@']);
                if forbidden || enforced.len() > MAX_PART_BYTES {
                    return Err(invalid());
                }
                Some(enforced.into_owned())
            }
            None => None,
        };
        // Resources are free-form (RFC 7622 §3.4: nicks like "Carol Q"), as OpaqueString
        // allows: no control characters, width and space variants mapped.
        let resource = match resource {
            Some(resource) => {
                let enforced = OpaqueString::enforce(resource).map_err(|_| invalid())?;
                if enforced.len() > MAX_PART_BYTES || enforced.trim() != enforced {
                    return Err(invalid());
                }
                Some(enforced.into_owned())
            }
            None => None,
        };
        Ok(Jid {
            local,
            domain: domain.trim_end_matches('.').to_lowercase(),
            resource,
        })
    }

    pub fn bare(&self) -> String {
        match &self.local {
            Some(local) => format!("{local}@{}", self.domain),
            None => self.domain.clone(),
        }
    }

    pub fn with_resource(&self, resource: &str) -> Jid {
        Jid {
            resource: Some(resource.to_owned()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.bare())?;
        if let Some(resource) = &self.resource {
            write!(f, "/{resource}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_split_bounded_and_folded() {
        let jid = Jid::parse("Alice@Example.Test/Laptop").unwrap();
        assert_eq!(jid.local.as_deref(), Some("alice"));
        assert_eq!(jid.domain, "example.test");
        assert_eq!(jid.resource.as_deref(), Some("Laptop"));
        assert_eq!(jid.to_string(), "alice@example.test/Laptop");
        assert_eq!(jid.bare(), "alice@example.test");
        let room = Jid::parse("lobby@conference.example.test/bob/x").unwrap();
        assert_eq!(
            room.resource.as_deref(),
            Some("bob/x"),
            "a resource may hold '/'"
        );
        assert_eq!(Jid::parse("example.test").unwrap().local, None);
        let nick = Jid::parse("room@conference.example.test/Carol Q").unwrap();
        assert_eq!(nick.resource.as_deref(), Some("Carol Q"));
        for bad in [
            "",
            "@example.test",
            "alice@",
            "alice@example.test/",
            "a b@example.test",
            "a@example.test/ padded",
            "a@b@c",
            "a<b@example.test",
        ] {
            assert!(Jid::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.test", "a".repeat(1024));
        assert!(Jid::parse(&long).is_err());
    }

    #[test]
    fn precis_makes_two_spellings_of_one_address_equal() {
        // Fullwidth letters are mapped to their ASCII forms, then case-folded
        // (UsernameCaseMapped); a resource's fullwidth space becomes a space (OpaqueString).
        let wide = Jid::parse("\u{FF21}lice@example.test/Carol\u{3000}Q").unwrap();
        assert_eq!(wide, Jid::parse("alice@example.test/Carol Q").unwrap());
        // Composed and decomposed é are one letter (NFC).
        let composed = Jid::parse("jos\u{e9}@example.test").unwrap();
        let decomposed = Jid::parse("jose\u{301}@example.test").unwrap();
        assert_eq!(composed, decomposed);
        // What the profiles refuse: control characters, unassigned code points.
        for bad in [
            "a\u{7}b@example.test",
            "a@example.test/x\u{0}",
            "\u{E0001}a@example.test",
        ] {
            assert!(Jid::parse(bad).is_err(), "{bad:?}");
        }
    }
}
