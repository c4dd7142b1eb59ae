//! JIDs (RFC 7622) as perch needs them: `local@domain/resource`, each part bounded to
//! 1023 bytes. Local parts and domains compare case-insensitively, as perch's user names
//! do, so both are lower-cased here; resources are kept as sent. Full PRECIS profiles are
//! not applied (docs/LIMITS.md).

use std::fmt;

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
        let local_ok = |local: &str| {
            part_ok(local) && !local.contains(['"', '&', '\'', '/', ':', '<', '>', '@'])
        };
        if !part_ok(domain) || domain.contains('@') || local.is_some_and(|l| !local_ok(l)) {
            return Err(invalid());
        }
        // Resources are free-form (RFC 7622 §3.4: nicks like "Carol Q"), control characters
        // and surrounding space aside.
        let resource_ok = |r: &str| {
            !r.is_empty()
                && r.len() <= MAX_PART_BYTES
                && !r.chars().any(char::is_control)
                && r.trim() == r
        };
        if resource.is_some_and(|r| !resource_ok(r)) {
            return Err(invalid());
        }
        Ok(Jid {
            local: local.map(str::to_lowercase),
            domain: domain.trim_end_matches('.').to_lowercase(),
            resource: resource.map(str::to_owned),
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
}
