//! `perch admin addin create|set|remove|list`: web add-ins a room can show (name and an
//! http or https URL).

use clap::Subcommand;

use crate::core::manage::{self, ManageError};
use crate::core::ports::wait;

use super::{AdminError, Context, Lines, found, row};

#[derive(Subcommand)]
pub enum Command {
    /// Define an add-in.
    Create { name: String, url: String },
    /// Change an add-in's URL.
    Set {
        name: String,
        #[arg(long)]
        url: String,
    },
    /// Remove an add-in; rooms that used it are left without one.
    Remove { name: String },
    /// List add-ins: name, URL.
    List,
}

pub fn run(ctx: &Context, command: Command) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    let (addin, verb) = match command {
        Command::Create { name, url } => {
            if let Some(existing) = snapshot.addin(&name) {
                return Err(ManageError::Duplicate(format!("add-in {}", existing.name)).into());
            }
            (manage::addin(&name, &url)?, "created")
        }
        Command::Set { name, url } => (
            manage::addin(&found(snapshot.addin(&name), "add-in", &name)?.name, &url)?,
            "updated",
        ),
        Command::Remove { name } => {
            let existing = found(snapshot.addin(&name), "add-in", &name)?;
            wait(ctx.store.remove_addin(&existing.name))?;
            let mut lines = vec![format!("removed add-in {}", existing.name)];
            let rooms = snapshot.rooms().into_iter();
            lines.extend(
                rooms
                    .filter(|r| r.addin.as_ref() == Some(&existing.name))
                    .map(|r| format!("room {} has no add-in now", r.name)),
            );
            return Ok(lines);
        }
        Command::List => {
            return Ok(snapshot
                .addins()
                .into_iter()
                .map(|a| row(&[a.name.as_str(), &a.url]))
                .collect());
        }
    };
    let line = format!("{verb} add-in {} {}", addin.name, addin.url);
    wait(ctx.store.save_addin(addin))?;
    Ok(vec![line])
}
