//! `perch admin config show|set`: the server's chat settings (DefaultChatHistory, ...).

use clap::Subcommand;

use crate::core::model::SETTING_NAMES;
use crate::core::service;

use super::{AdminError, Context, Lines, show};

#[derive(Subcommand)]
pub enum Command {
    /// Show every setting with its current value.
    Show,
    /// Set one setting, e.g. `DefaultChatHistory 100`.
    Set {
        /// DefaultChatHistory (messages a joiner gets, 1-500), ParticipantUpdateLimit
        /// (occupants above which roster notices stop), MaxFileSizeKB, MessageSizeLimit,
        /// StorySizeLimit (bytes of a post), SearchLimit (results of a search).
        #[arg(value_name = "SETTING")]
        name: String,
        /// A whole number.
        value: String,
    },
}

pub fn run(ctx: &Context, command: Command) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    match command {
        Command::Show => Ok(show(
            SETTING_NAMES
                .iter()
                .map(|name| {
                    let value = snapshot.settings.get(name).unwrap_or_default();
                    (*name, value.to_string())
                })
                .collect(),
        )),
        Command::Set { name, value } => {
            let number: u32 = value.trim().parse().map_err(|_| {
                AdminError::Invalid(format!("{name} must be a whole number, not {value:?}"))
            })?;
            let name = service::set_setting(ctx.store, snapshot, &name, number)?;
            Ok(vec![format!("{name} set to {number}")])
        }
    }
}
