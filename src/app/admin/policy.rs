//! `perch admin policy set|remove|list`: `EnablePersistentChat` for everyone (global), a
//! group or a user. The most specific setting wins; without any, chat is enabled.

use clap::Subcommand;

use crate::core::model::PolicyScope;
use crate::core::service;

use super::{AdminError, Context, Lines, parse, row, state};

#[derive(Subcommand)]
pub enum Command {
    /// Turn persistent chat on or off for SCOPE: global, group:NAME or sip:user@domain.
    #[command(group = clap::ArgGroup::new("state").required(true).args(["enable", "disable"]))]
    Set {
        scope: String,
        /// Persistent chat on.
        #[arg(long)]
        enable: bool,
        /// Persistent chat off: signed-in users of SCOPE cannot use the chat service.
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
            let scope = parse::<PolicyScope>("policy scope", &scope)?;
            let scope = service::set_policy(ctx.store, snapshot, scope, enable)?;
            Ok(vec![format!(
                "persistent chat {} for {scope}",
                state(!enable)
            )])
        }
        Command::Remove { scope } => {
            let scope = parse::<PolicyScope>("policy scope", &scope)?;
            let scope = service::remove_policy(ctx.store, snapshot, scope)?;
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
