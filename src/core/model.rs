//! The Persistent Chat model: principals, groups, policy, categories, rooms, add-ins and
//! server settings (persistent-chat-model.md §2). Plain data; decisions live in `policy`.

use std::fmt;
use std::str::FromStr;

/// Who a list entry names: one user, a group of users and groups, or a whole domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(String),
    Group(String),
    Domain(String),
}

impl Principal {
    /// Equality as the directory sees it: group names ignore case.
    pub fn same_as(&self, other: &Principal) -> bool {
        match (self, other) {
            (Principal::Group(a), Principal::Group(b)) => a.eq_ignore_ascii_case(b),
            _ => self == other,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(aor) => write!(f, "sip:{aor}"),
            Principal::Group(name) => write!(f, "group:{name}"),
            Principal::Domain(domain) => write!(f, "domain:{domain}"),
        }
    }
}

impl FromStr for Principal {
    type Err = String;

    /// `sip:user@domain` or `user@domain`, `group:NAME`, `domain:example.com`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix("group:") {
            let name = name.trim();
            if name.is_empty() {
                return Err("a group principal needs a name (group:NAME)".into());
            }
            return Ok(Principal::Group(name.to_owned()));
        }
        if let Some(domain) = text.strip_prefix("domain:") {
            return super::ids::domain_name(domain)
                .map(Principal::Domain)
                .ok_or_else(|| format!("{domain:?} is not a domain name"));
        }
        super::ids::user_id(text)
            .map(Principal::User)
            .ok_or_else(|| {
                format!("{text:?} is not a principal (sip:user@domain, group:NAME or domain:NAME)")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Privacy {
    Open,
    Closed,
    Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomType {
    Normal,
    Auditorium,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invitations {
    Inherit,
    Off,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $(if text.eq_ignore_ascii_case($text) { return Ok(Self::$variant); })+
                Err(format!("{text:?} is not one of: {}", [$($text),+].join(", ")))
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Privacy { Open = "open", Closed = "closed", Secret = "secret" });
text_enum!(RoomType { Normal = "normal", Auditorium = "auditorium" });
text_enum!(Invitations { Inherit = "inherit", Off = "false" });

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub description: String,
    /// Users and groups (never domains).
    pub members: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub allowed: Vec<Principal>,
    pub denied: Vec<Principal>,
    pub creators: Vec<Principal>,
    pub invitations: bool,
    pub file_upload: bool,
    pub chat_history: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: i64,
    /// The stable part of the room URI `ma-chan://<domain>/<uid>`.
    pub uid: String,
    pub name: String,
    pub description: String,
    pub category: i64,
    pub privacy: Privacy,
    pub kind: RoomType,
    pub invitations: Invitations,
    pub disabled: bool,
    pub addin: Option<String>,
    pub members: Vec<Principal>,
    pub managers: Vec<Principal>,
    pub presenters: Vec<Principal>,
}

impl Room {
    /// A room as Lync creates one by default: closed, normal, invitations inherited,
    /// enabled, no add-in and empty lists; not stored yet (`id` 0).
    pub fn new(uid: &str, name: &str, category: i64) -> Room {
        Room {
            id: 0,
            uid: uid.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            category,
            privacy: Privacy::Closed,
            kind: RoomType::Normal,
            invitations: Invitations::Inherit,
            disabled: false,
            addin: None,
            members: Vec::new(),
            managers: Vec::new(),
            presenters: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addin {
    pub name: String,
    pub url: String,
}

/// Where an `EnablePersistentChat` setting applies; the most specific wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyScope {
    Global,
    Group(String),
    User(String),
}

impl fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyScope::Global => f.write_str("global"),
            PolicyScope::Group(name) => write!(f, "group:{name}"),
            PolicyScope::User(aor) => write!(f, "sip:{aor}"),
        }
    }
}

impl FromStr for PolicyScope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("global") {
            return Ok(PolicyScope::Global);
        }
        match text.parse::<Principal>()? {
            Principal::User(aor) => Ok(PolicyScope::User(aor)),
            Principal::Group(name) => Ok(PolicyScope::Group(name)),
            Principal::Domain(_) => Err("a policy applies to global, a group or a user".into()),
        }
    }
}

/// Server settings with Lync's defaults (persistent-chat-model.md §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatSettings {
    pub default_chat_history: u16,
    pub participant_update_limit: u32,
    pub max_file_size_kb: u32,
    pub message_size_limit: u32,
    pub story_size_limit: u32,
    pub search_limit: u32,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            default_chat_history: 30,
            participant_update_limit: 75,
            max_file_size_kb: 20_000,
            message_size_limit: 8_000,
            story_size_limit: 64_000,
            search_limit: 999,
        }
    }
}

/// Names of the settings as `perch admin config` shows and sets them.
pub const SETTING_NAMES: &[&str] = &[
    "DefaultChatHistory",
    "ParticipantUpdateLimit",
    "MaxFileSizeKB",
    "MessageSizeLimit",
    "StorySizeLimit",
    "SearchLimit",
];

impl ChatSettings {
    pub fn get(&self, name: &str) -> Option<u32> {
        Some(match name {
            "DefaultChatHistory" => u32::from(self.default_chat_history),
            "ParticipantUpdateLimit" => self.participant_update_limit,
            "MaxFileSizeKB" => self.max_file_size_kb,
            "MessageSizeLimit" => self.message_size_limit,
            "StorySizeLimit" => self.story_size_limit,
            "SearchLimit" => self.search_limit,
            _ => return None,
        })
    }

    /// Sets one setting, checking its range.
    pub fn set(&mut self, name: &str, value: u32) -> Result<(), String> {
        match name {
            "DefaultChatHistory" => {
                if !(1..=500).contains(&value) {
                    return Err("DefaultChatHistory must be between 1 and 500".into());
                }
                self.default_chat_history = value as u16;
            }
            "ParticipantUpdateLimit" => self.participant_update_limit = value,
            "MaxFileSizeKB" => self.max_file_size_kb = value,
            "MessageSizeLimit" | "StorySizeLimit" | "SearchLimit" if value == 0 => {
                return Err(format!("{name} must be at least 1"));
            }
            "MessageSizeLimit" => self.message_size_limit = value,
            "StorySizeLimit" => self.story_size_limit = value,
            "SearchLimit" => self.search_limit = value,
            _ => {
                return Err(format!(
                    "unknown setting {name:?}; known: {}",
                    SETTING_NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print() {
        for text in ["sip:alice@example.test", "group:ops", "domain:example.test"] {
            assert_eq!(text.parse::<Principal>().unwrap().to_string(), text);
        }
        assert_eq!(
            "Alice@Example.test".parse::<Principal>().unwrap(),
            Principal::User("alice@example.test".into())
        );
        for bad in ["group:", "domain:bad domain", "nobody", "sip:"] {
            assert!(bad.parse::<Principal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_ranges() {
        let mut s = ChatSettings::default();
        assert!(s.set("DefaultChatHistory", 0).is_err());
        assert!(s.set("DefaultChatHistory", 501).is_err());
        s.set("DefaultChatHistory", 500).unwrap();
        assert_eq!(s.get("DefaultChatHistory"), Some(500));
        assert!(s.set("Colour", 1).is_err());
        assert_eq!("Closed".parse::<Privacy>(), Ok(Privacy::Closed));
        assert!("private".parse::<Privacy>().is_err());
    }
}
