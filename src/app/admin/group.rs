//! `perch admin group add|member|remove|list`: groups of users and groups, usable in
//! category and room lists and as a policy scope.

use clap::{Args, Subcommand};

use crate::core::model::Group;
use crate::core::service;

use super::{AdminError, Context, Lines, names, principals, row};

#[derive(Subcommand)]
pub enum Command {
    /// Add a group.
    Add {
        name: String,
        /// What the group is.
        #[arg(long)]
        description: Option<String>,
    },
    /// Add members to or remove members from a group.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Remove a group that no group, category, room or policy names any more.
    Remove { name: String },
    /// List groups: name, description, members.
    List,
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Add users or groups (sip:user@domain, group:NAME) to a group.
    Add(Members),
    /// Remove members from a group.
    Remove(Members),
}

#[derive(Args)]
pub struct Members {
    group: String,
    #[arg(required = true, value_name = "PRINCIPAL")]
    principals: Vec<String>,
}

pub fn run(ctx: &Context, command: Command) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    match command {
        Command::Add { name, description } => {
            let group = service::add_group(ctx.store, snapshot, &name, description.as_deref())?;
            Ok(vec![format!("added group {}", group.name)])
        }
        Command::Member(command) => {
            let (members, add) = match command {
                MemberCommand::Add(members) => (members, true),
                MemberCommand::Remove(members) => (members, false),
            };
            let listed = principals(&members.principals)?;
            let group =
                service::edit_group_members(ctx.store, snapshot, &members.group, listed, add)?;
            Ok(vec![format!("updated group {}", group.name)])
        }
        Command::Remove { name } => {
            let group = service::remove_group(ctx.store, snapshot, &name)?;
            Ok(vec![format!("removed group {}", group.name)])
        }
        Command::List => {
            let mut groups: Vec<&Group> = snapshot.directory.groups().collect();
            groups.sort_by_key(|g| g.name.to_lowercase());
            Ok(groups
                .into_iter()
                .map(|g| row(&[g.name.as_str(), &g.description, &names(&g.members)]))
                .collect())
        }
    }
}
