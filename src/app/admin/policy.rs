//! `perch admin policy set|remove|list`: `EnablePersistentChat` for everyone (global), a
//! group or a user. The most specific setting wins; without any, chat is enabled.

use clap::Subcommand;

use crate::core::Snapshot;
use crate::core::manage::ManageError;
use crate::core::model::{PolicyScope, Principal};
use crate::core::ports::wait;

use super::{AdminError, Context, Lines, parse, row, state};

#[derive(Subcommand)]
pub enum Command {
    /// Turn persistent chat on or off for SCOPE: global, group:NAME or sip:user@domain.
    #[command(group = clap::ArgGroup::new("state").required(true).args(["enable", "disable"]))]
    Set {
        scope: String,
        #[arg(long)]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Remove SCOPE's setting (for global: back to the default, enabled).
    Remove { scope: String },
    /// List the settings: scope, enabled or disabled.
    List,
}

pub fn run(ctx: &Context, command: Command) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    match command {
        Command::Set { scope, enable, .. } => {
            let scope = known_scope(snapshot, &scope)?;
            wait(ctx.store.set_policy(scope.clone(), Some(enable)))?;
            Ok(vec![format!(
                "persistent chat {} for {scope}",
                state(!enable)
            )])
        }
        Command::Remove { scope } => {
            let scope = canonical(&scope)?;
            if !snapshot.directory.policies().any(|(s, _)| *s == scope) {
                return Err(ManageError::NotFound(format!("a policy for {scope}")).into());
            }
            wait(ctx.store.set_policy(scope.clone(), None))?;
            Ok(vec![format!("removed the policy for {scope}")])
        }
        Command::List => {
            let policies = snapshot.directory.policies();
            let mut lines: Lines = policies
                .map(|(scope, enabled)| row(&[scope.to_string().as_str(), state(!enabled)]))
                .collect();
            if !snapshot
                .directory
                .policies()
                .any(|(s, _)| *s == PolicyScope::Global)
            {
                lines.insert(0, row(&["global", "enabled", "(default)"]));
            }
            Ok(lines)
        }
    }
}

/// The scope as stored: group names in lower case, as the directory matches them (the
/// store compares scopes as text).
fn canonical(text: &str) -> Result<PolicyScope, AdminError> {
    Ok(match parse::<PolicyScope>("policy scope", text)? {
        PolicyScope::Group(name) => PolicyScope::Group(name.to_lowercase()),
        other => other,
    })
}

/// A canonical scope whose group or user exists.
fn known_scope(snapshot: &Snapshot, text: &str) -> Result<PolicyScope, AdminError> {
    let scope = canonical(text)?;
    let principal = match &scope {
        PolicyScope::Global => return Ok(scope),
        PolicyScope::Group(name) => Principal::Group(name.clone()),
        PolicyScope::User(aor) => Principal::User(aor.clone()),
    };
    if !snapshot.directory.exists(&principal) {
        return Err(ManageError::NotFound(format!("principal {principal}")).into());
    }
    Ok(scope)
}
