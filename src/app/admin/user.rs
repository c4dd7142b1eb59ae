//! `perch admin user add|set|remove|list`.

use std::io::BufRead;

use crate::core::credentials::Credentials;
use crate::core::ids::user_id;
use crate::core::ports::{Store, UserChange, UserRecord, wait};

use super::AdminError;

/// Where a new password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// The first line of standard input.
    Stdin,
    /// Asked for twice on the terminal.
    Prompt,
}

pub fn read_password(source: PasswordSource) -> Result<String, AdminError> {
    let password = match source {
        PasswordSource::Stdin => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(AdminError::Password)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
        PasswordSource::Prompt => {
            let first = rpassword::prompt_password("Password: ").map_err(AdminError::Password)?;
            let second =
                rpassword::prompt_password("Password again: ").map_err(AdminError::Password)?;
            if first != second {
                return Err(AdminError::Invalid("the passwords do not match".into()));
            }
            first
        }
    };
    if password.is_empty() {
        return Err(AdminError::Invalid("the password is empty".into()));
    }
    Ok(password)
}

pub fn canonical_aor(text: &str) -> Result<String, AdminError> {
    user_id(text).ok_or_else(|| {
        AdminError::Invalid(format!(
            "{text:?} is not a SIP user URI (expected user@domain or sip:user@domain)"
        ))
    })
}

pub fn add(
    store: &dyn Store,
    uri: &str,
    display_name: Option<&str>,
    password: Option<&str>,
    enabled: bool,
) -> Result<UserRecord, AdminError> {
    let aor = canonical_aor(uri)?;
    let user = UserRecord {
        credentials: password.map(|p| Credentials::derive(&aor, p)),
        display_name: display_name.unwrap_or_default().to_owned(),
        enabled,
        aor,
    };
    Ok(wait(store.add_user(user))?)
}

pub fn set(
    store: &dyn Store,
    uri: &str,
    display_name: Option<&str>,
    password: Option<&str>,
    enabled: Option<bool>,
) -> Result<UserRecord, AdminError> {
    let aor = canonical_aor(uri)?;
    let change = UserChange {
        display_name: display_name.map(str::to_owned),
        enabled,
        credentials: password.map(|p| Credentials::derive(&aor, p)),
    };
    Ok(wait(store.update_user(&aor, change))?)
}

pub fn remove(store: &dyn Store, uri: &str) -> Result<(), AdminError> {
    let aor = canonical_aor(uri)?;
    Ok(wait(store.remove_user(&aor))?)
}

/// One line per user: URI, state, password or not, display name, and the sign-in
/// mechanisms the user lacks a verifier for (set up before perch derived them; the next
/// password change adds them).
pub fn list(store: &dyn Store) -> Result<Vec<String>, AdminError> {
    Ok(store
        .users()?
        .into_iter()
        .map(|u| {
            let missing = u.credentials.as_ref().map(Credentials::missing);
            let mut line = format!(
                "sip:{}\t{}\t{}\t{}",
                u.aor,
                if u.enabled { "enabled" } else { "disabled" },
                if u.credentials.is_some() {
                    "password"
                } else {
                    "no-password"
                },
                u.display_name
            );
            if let Some(missing) = missing.filter(|m| !m.is_empty()) {
                line.push_str(&format!(
                    "\tneeds a new password for: {}",
                    missing.join(", ")
                ));
            }
            line
        })
        .collect())
}
