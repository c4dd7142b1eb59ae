//! `perch admin`: administration over the same store a running server uses. Changes bump
//! the store generation, which a running server picks up within a second.
//!
//! The chat-model commands (group, policy, config, category, room, addin) each read a fresh
//! [`Snapshot`], let `core::manage` decide, then write through the [`Store`] trait and wait
//! for the commit. Each returns the lines to print.

pub mod addin;
pub mod category;
pub mod config;
pub mod demo;
pub mod group;
pub mod policy;
pub mod room;
pub mod user;

use crate::core::Snapshot;
use crate::core::manage::{ListEdit, ManageError};
use crate::core::model::Principal;
use crate::core::ports::Store;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::core::ports::StoreError),
    #[error(transparent)]
    Manage(#[from] ManageError),
    #[error(transparent)]
    Service(#[from] crate::core::service::ServiceError),
    #[error("cannot read the password: {0}")]
    Password(std::io::Error),
}

/// What a command prints, one line each.
pub type Lines = Vec<String>;

/// What every chat-model command works on: the store, and the model as stored when the
/// command started.
pub struct Context<'a> {
    pub store: &'a dyn Store,
    /// The configured SIP domain, for room URIs.
    pub domain: &'a str,
    pub snapshot: Snapshot,
}

impl<'a> Context<'a> {
    pub fn load(store: &'a dyn Store, domain: &'a str) -> Result<Self, AdminError> {
        Ok(Self {
            store,
            domain,
            snapshot: Snapshot::from_model(store.load_model()?),
        })
    }
}

/// `item`, or "KIND NAME does not exist".
pub fn found<T>(item: Option<T>, kind: &str, name: &str) -> Result<T, AdminError> {
    item.ok_or_else(|| ManageError::NotFound(format!("{kind} {name}")).into())
}

/// Parses a command-line value, naming it in the error when the parser did not.
pub fn parse<T: std::str::FromStr<Err = String>>(what: &str, text: &str) -> Result<T, AdminError> {
    text.parse().map_err(|error: String| {
        if error.contains(&format!("{:?}", text.trim())) {
            AdminError::Invalid(error)
        } else {
            AdminError::Invalid(format!("{what} {text:?}: {error}"))
        }
    })
}

pub fn principals(texts: &[String]) -> Result<Vec<Principal>, AdminError> {
    texts.iter().map(|t| parse("principal", t)).collect()
}

/// Whether two principals are the same (group names ignore case, as the directory does).
pub fn same_principal(a: &Principal, b: &Principal) -> bool {
    a.to_string().to_lowercase() == b.to_string().to_lowercase()
}

/// `given` as `list` spells them where it has them (group names ignore case), so that edits
/// match the stored entries.
pub fn as_stored(list: &[Principal], given: Vec<Principal>) -> Vec<Principal> {
    let stored = |p: &Principal| list.iter().find(|s| same_principal(s, p)).cloned();
    given.into_iter().map(|p| stored(&p).unwrap_or(p)).collect()
}

/// `--clear-X`, `--remove-X`, `--add-X` of the list `current` as edits, applied in that order.
pub fn list_edits(
    current: &[Principal],
    add: &[String],
    remove: &[String],
    clear: bool,
) -> Result<Vec<ListEdit>, AdminError> {
    let mut edits = Vec::new();
    if clear {
        edits.push(ListEdit::Clear);
    }
    if !remove.is_empty() {
        edits.push(ListEdit::Remove(as_stored(current, principals(remove)?)));
    }
    if !add.is_empty() {
        edits.push(ListEdit::Add(as_stored(current, principals(add)?)));
    }
    Ok(edits)
}

/// Declares the `--add-LIST`, `--remove-LIST` and `--clear-LIST` flags of one principal list.
macro_rules! list_flags {
    ($($ty:ident($add:ident, $remove:ident, $clear:ident) = $list:literal),+ $(,)?) => {$(
        #[derive(clap::Args, Debug, Default)]
        pub struct $ty {
            #[arg(long, value_name = "PRINCIPAL", num_args = 1.., help = concat!(
                "Add principals to the ", $list, " list (sip:user@domain, group:NAME, domain:NAME)"))]
            $add: Vec<String>,
            #[arg(long, value_name = "PRINCIPAL", num_args = 1.., help = concat!(
                "Remove principals from the ", $list, " list"))]
            $remove: Vec<String>,
            #[arg(long, help = concat!("Empty the ", $list, " list (before removing and adding)"))]
            $clear: bool,
        }

        impl $ty {
            /// The edits of `current` (empty for a new category or room).
            pub fn edits(&self, current: &[Principal]) -> Result<Vec<ListEdit>, AdminError> {
                list_edits(current, &self.$add, &self.$remove, self.$clear)
            }
        }
    )+};
}

list_flags!(
    AllowedFlags(add_allowed, remove_allowed, clear_allowed) = "allowed",
    DeniedFlags(add_denied, remove_denied, clear_denied) = "denied",
    CreatorFlags(add_creators, remove_creators, clear_creators) = "creators",
    MemberFlags(add_members, remove_members, clear_members) = "members",
    ManagerFlags(add_managers, remove_managers, clear_managers) = "managers",
    PresenterFlags(add_presenters, remove_presenters, clear_presenters) = "presenters",
);

/// A principal list as one field: comma-separated, empty when the list is.
pub fn names(list: &[Principal]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One list line: tab-separated fields.
pub fn row<S: AsRef<str>>(fields: &[S]) -> String {
    fields
        .iter()
        .map(|f| one_line(f.as_ref()))
        .collect::<Vec<_>>()
        .join("\t")
}

/// Show output: one `key: value` line per property.
pub fn show(properties: Vec<(&str, String)>) -> Lines {
    properties
        .into_iter()
        .map(|(key, value)| format!("{key}: {}", one_line(&value)))
        .collect()
}

/// Control characters (descriptions may hold tabs and newlines) as spaces, so that every
/// item stays on its line and in its field.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn state(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "enabled" }
}

/// 100 ns ticks since the Unix epoch as an RFC 3339 time in UTC, to the second.
pub fn format_ticks(ticks: i64) -> String {
    crate::core::ids::rfc3339_from_ticks(ticks)
}
