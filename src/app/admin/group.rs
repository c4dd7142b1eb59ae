//! `perch admin group add|member|remove|list`: groups of users and groups, usable in
//! category and room lists and as a policy scope.

use clap::{Args, Subcommand};

use crate::core::Snapshot;
use crate::core::manage::{self, ListEdit, ManageError};
use crate::core::model::{Group, PolicyScope, Principal};
use crate::core::ports::wait;

use super::{AdminError, Context, Lines, as_stored, found, names, principals, row, same_principal};

#[derive(Subcommand)]
pub enum Command {
    /// Add a group.
    Add {
        name: String,
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
            if let Some(existing) = snapshot.directory.group(&name) {
                return Err(ManageError::Duplicate(format!("group {}", existing.name)).into());
            }
            let group = manage::group(snapshot, &name, description.as_deref(), &[])?;
            save(ctx, group, "added")
        }
        Command::Member(command) => {
            let (members, add) = match command {
                MemberCommand::Add(members) => (members, true),
                MemberCommand::Remove(members) => (members, false),
            };
            let group = found(
                snapshot.directory.group(&members.group),
                "group",
                &members.group,
            )?;
            let listed = principals(&members.principals)?;
            let edit = if add {
                ListEdit::Add(listed)
            } else {
                ListEdit::Remove(stored_members(group, listed)?)
            };
            let group = manage::group(snapshot, &group.name, None, &[edit])?;
            save(ctx, group, "updated")
        }
        Command::Remove { name } => {
            let group = found(snapshot.directory.group(&name), "group", &name)?;
            let uses = references(snapshot, &Principal::Group(group.name.clone()));
            if !uses.is_empty() {
                return Err(AdminError::Invalid(format!(
                    "group {} is still named by {}; remove it there first",
                    group.name,
                    uses.join(", ")
                )));
            }
            wait(ctx.store.remove_group(&group.name))?;
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

/// The group's own spelling of each principal; refuses principals that are not members.
fn stored_members(group: &Group, listed: Vec<Principal>) -> Result<Vec<Principal>, AdminError> {
    let stored = as_stored(&group.members, listed);
    match stored.iter().find(|p| !group.members.contains(p)) {
        Some(p) => Err(AdminError::Invalid(format!(
            "{p} is not a member of group {}",
            group.name
        ))),
        None => Ok(stored),
    }
}

fn save(ctx: &Context, group: Group, verb: &str) -> Result<Lines, AdminError> {
    let line = format!("{verb} group {}", group.name);
    wait(ctx.store.save_group(group))?;
    Ok(vec![line])
}

/// Where the model names `principal`: groups, category and room lists, policies.
pub fn references(snapshot: &Snapshot, principal: &Principal) -> Vec<String> {
    let groups = snapshot.directory.groups();
    let groups = groups.map(|g| (format!("group {}", g.name), g.members.clone()));
    let categories = snapshot.categories().into_iter().map(|c| {
        let lists = [&c.allowed[..], &c.denied, &c.creators].concat();
        (format!("category {}", c.name), lists)
    });
    let rooms = snapshot.rooms().into_iter().map(|r| {
        let lists = [&r.members[..], &r.managers, &r.presenters].concat();
        (format!("room {}", r.name), lists)
    });
    let mut uses: Vec<String> = groups
        .chain(categories)
        .chain(rooms)
        .filter(|(_, list)| list.iter().any(|p| same_principal(p, principal)))
        .map(|(owner, _)| owner)
        .collect();
    let scope = match principal {
        Principal::User(aor) => Some(PolicyScope::User(aor.clone())),
        Principal::Group(name) => Some(PolicyScope::Group(name.to_lowercase())),
        Principal::Domain(_) => None,
    };
    if scope.is_some_and(|s| snapshot.directory.policies().any(|(p, _)| *p == s)) {
        uses.push(format!("a policy ({principal})"));
    }
    uses
}
