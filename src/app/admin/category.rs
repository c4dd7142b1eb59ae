//! `perch admin category create|set|remove|list|show`: categories hold rooms and say who
//! may be on them (allowed minus denied), who may create rooms, and what rooms may do.

use clap::Subcommand;

use crate::core::Snapshot;
use crate::core::manage::CategoryChange;
use crate::core::model::Category;
use crate::core::service;

use super::{
    AdminError, AllowedFlags, Context, CreatorFlags, DeniedFlags, Lines, found, names, row, show,
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a category. Nobody is in its scope until `set --add-allowed`.
    Create {
        name: String,
        /// What the category holds.
        #[arg(long)]
        description: Option<String>,
        /// Adding members to its rooms does not invite them.
        #[arg(long)]
        no_invitations: bool,
        /// Its rooms take no file uploads.
        #[arg(long)]
        no_file_upload: bool,
        /// Its rooms keep no history.
        #[arg(long)]
        no_chat_history: bool,
    },
    /// Change a category. Room principals the new scope excludes are removed from its rooms.
    Set {
        name: String,
        /// Rename the category.
        #[arg(long = "name", value_name = "NEW")]
        new_name: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Whether adding members to its rooms invites them.
        #[arg(long, value_name = "true|false")]
        invitations: Option<bool>,
        /// Whether its rooms take file uploads.
        #[arg(long, value_name = "true|false")]
        file_upload: Option<bool>,
        /// Whether its rooms keep history.
        #[arg(long, value_name = "true|false")]
        chat_history: Option<bool>,
        #[command(flatten)]
        allowed: AllowedFlags,
        #[command(flatten)]
        denied: DeniedFlags,
        #[command(flatten)]
        creators: CreatorFlags,
        /// Say what the change would do (the principals it would take out of rooms)
        /// without doing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a category that holds no rooms.
    Remove { name: String },
    /// List categories: name, number of rooms, description.
    List,
    /// Show every property of a category and its rooms.
    Show { name: String },
}

pub fn run(ctx: &Context, command: Command) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    match command {
        Command::Create {
            name,
            description,
            no_invitations,
            no_file_upload,
            no_chat_history,
        } => {
            let change = CategoryChange {
                name: Some(name),
                description,
                invitations: Some(!no_invitations),
                file_upload: Some(!no_file_upload),
                chat_history: Some(!no_chat_history),
                ..CategoryChange::default()
            };
            save(ctx, None, change)
        }
        Command::Set {
            name,
            new_name,
            description,
            invitations,
            file_upload,
            chat_history,
            allowed,
            denied,
            creators,
            dry_run,
        } => {
            let current = found(snapshot.category_by_name(&name), "category", &name)?;
            let change = CategoryChange {
                name: new_name,
                description,
                invitations,
                file_upload,
                chat_history,
                allowed: allowed.edits(&current.allowed)?,
                denied: denied.edits(&current.denied)?,
                creators: creators.edits(&current.creators)?,
            };
            if dry_run {
                let preview = service::preview_category(snapshot, Some(&name), change)?;
                return Ok(report(&preview, "would update", "would remove"));
            }
            save(ctx, Some(&name), change)
        }
        Command::Remove { name } => {
            let removed = service::remove_category(ctx.store, snapshot, &name)?;
            Ok(vec![format!("removed category {}", removed.name)])
        }
        Command::List => Ok(snapshot
            .categories()
            .into_iter()
            .map(|c| {
                let rooms = format!("{} room(s)", rooms_of(snapshot, c).len());
                row(&[c.name.as_str(), &rooms, &c.description])
            })
            .collect()),
        Command::Show { name } => {
            let c = found(snapshot.category_by_name(&name), "category", &name)?;
            Ok(show(vec![
                ("name", c.name.clone()),
                ("description", c.description.clone()),
                ("invitations", c.invitations.to_string()),
                ("file upload", c.file_upload.to_string()),
                ("chat history", c.chat_history.to_string()),
                ("allowed", names(&c.allowed)),
                ("denied", names(&c.denied)),
                ("creators", names(&c.creators)),
                ("rooms", rooms_of(snapshot, c).join(", ")),
            ]))
        }
    }
}

fn rooms_of(snapshot: &Snapshot, category: &Category) -> Vec<String> {
    snapshot
        .rooms()
        .into_iter()
        .filter(|r| r.category == category.id)
        .map(|r| r.name.clone())
        .collect()
}

/// Stores a category and says what happened, the rooms the change purged included.
fn save(
    ctx: &Context,
    existing: Option<&str>,
    change: CategoryChange,
) -> Result<Lines, AdminError> {
    let saved = service::save_category(ctx.store, &ctx.snapshot, existing, change)?;
    let verb = if saved.created { "created" } else { "updated" };
    Ok(report(&saved, verb, "removed"))
}

fn report(saved: &service::SavedCategory, verb: &str, removal: &str) -> Lines {
    let mut lines = vec![format!("{verb} category {}", saved.category.name)];
    lines.extend(saved.purged.iter().map(|(room, removed)| {
        format!(
            "{removal} from room {} (outside the category's scope now): {}",
            room.name,
            super::names(removed)
        )
    }));
    lines
}
