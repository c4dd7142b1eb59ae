//! `perch admin addin create|set|remove|list`: web add-ins a room can show (name and an
//! http or https URL).

use clap::Subcommand;

use crate::core::service;

use super::{AdminError, Context, Lines, row};

#[derive(Subcommand)]
pub enum Command {
    /// Define an add-in.
    Create { name: String, url: String },
    /// Change an add-in's URL.
    Set {
        name: String,
        /// The new http(s) URL of the add-in's page.
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
        Command::Create { name, url } => (
            service::save_addin(ctx.store, snapshot, &name, &url, true)?,
            "created",
        ),
        Command::Set { name, url } => (
            service::save_addin(ctx.store, snapshot, &name, &url, false)?,
            "updated",
        ),
        Command::Remove { name } => {
            let (addin, rooms) = service::remove_addin(ctx.store, snapshot, &name)?;
            let mut lines = vec![format!("removed add-in {}", addin.name)];
            lines.extend(rooms.iter().map(|r| format!("room {r} has no add-in now")));
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
    Ok(vec![format!("{verb} add-in {} {}", addin.name, addin.url)])
}
