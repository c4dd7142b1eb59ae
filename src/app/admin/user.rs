//! `perch admin user add|set|remove|list`.

use std::io::BufRead;

use crate::core::credentials::Credentials;
use crate::core::ports::Store;
use crate::core::service;

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
            let prompt = |text| {
                rpassword::prompt_password(text).map_err(|error| {
                    AdminError::Invalid(format!(
                        "cannot ask for the password on a terminal ({error}): give it on standard input with --password-stdin"
                    ))
                })
            };
            let first = prompt("Password: ")?;
            let second = prompt("Password again: ")?;
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

/// One line per user: URI, state, password or not, display name, and the sign-in
/// mechanisms the user lacks a verifier for (set up before perch derived them; the next
/// password change adds them).
pub fn list(store: &dyn Store) -> Result<Vec<String>, AdminError> {
    Ok(service::users(store)?
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
