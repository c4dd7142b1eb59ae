//! `perch admin room create|set|disable|enable|remove|clear|show|list`.

use clap::{Args, Subcommand};

use crate::core::Snapshot;
use crate::core::manage::RoomChange;
use crate::core::model::{Invitations, Principal, Privacy, Room, RoomType};
use crate::core::service::{self, Actor, RoomFilter};
use crate::lync::xccos::uri::room_uri;

use super::{
    AdminError, Context, Lines, ManagerFlags, MemberFlags, PresenterFlags, found, names, parse,
    row, show, state,
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a room in a category (closed and normal unless told otherwise).
    Create {
        name: String,
        /// The category the room belongs to (its scope decides who may be on the room).
        #[arg(long)]
        category: String,
        #[command(flatten)]
        options: RoomOptions,
    },
    /// Change a room. Moving it to another category removes who that category does not allow.
    Set {
        name: String,
        /// Rename the room.
        #[arg(long = "name", value_name = "NEW")]
        new_name: Option<String>,
        /// Move the room to another category.
        #[arg(long)]
        category: Option<String>,
        /// Take the add-in off the room.
        #[arg(long, conflicts_with = "addin")]
        no_addin: bool,
        /// Say what the change would do (who a move would take out) without doing it.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        options: RoomOptions,
    },
    /// Disable a room: hidden, and nobody can enter it until it is enabled.
    Disable { name: String },
    /// Enable a disabled room.
    Enable { name: String },
    /// Remove a room and its history (asks first on a terminal; --yes to confirm).
    Remove {
        name: String,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Delete a room's messages up to and including a time (all of them without --until;
    /// asks first on a terminal; --yes to confirm).
    Clear {
        name: String,
        /// RFC 3339 time, e.g. 2024-05-01T12:00:00Z.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Show every property of a room and its URI.
    Show { name: String },
    /// List rooms: name, category, privacy, type, state, URI.
    List(Filter),
}

/// Properties `create` and `set` share.
#[derive(Args)]
pub struct RoomOptions {
    /// What the room is for; clients show it as its topic.
    #[arg(long)]
    description: Option<String>,
    /// open, closed or secret.
    #[arg(long)]
    privacy: Option<Privacy>,
    /// normal or auditorium (only auditoriums have presenters).
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<RoomType>,
    /// inherit (the category's setting) or false.
    #[arg(long)]
    invitations: Option<Invitations>,
    /// An add-in defined with `perch admin addin create`.
    #[arg(long)]
    addin: Option<String>,
    #[command(flatten)]
    members: MemberFlags,
    #[command(flatten)]
    managers: ManagerFlags,
    #[command(flatten)]
    presenters: PresenterFlags,
}

impl RoomOptions {
    /// The change to `current` (`None` for a new room).
    fn change(self, current: Option<&Room>) -> Result<RoomChange, AdminError> {
        let (members, managers, presenters) = match current {
            Some(r) => (&r.members[..], &r.managers[..], &r.presenters[..]),
            None => (&[][..], &[][..], &[][..]),
        };
        Ok(RoomChange {
            description: self.description,
            privacy: self.privacy,
            kind: self.kind,
            invitations: self.invitations,
            addin: self.addin.map(Some),
            members: self.members.edits(members)?,
            managers: self.managers.edits(managers)?,
            presenters: self.presenters.edits(presenters)?,
            ..RoomChange::default()
        })
    }
}

#[derive(Args)]
pub struct Filter {
    /// Only rooms in this category.
    #[arg(long)]
    category: Option<String>,
    /// Only open, closed or secret rooms.
    #[arg(long)]
    privacy: Option<Privacy>,
    /// Only normal rooms or only auditoriums.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<RoomType>,
    /// Only disabled rooms.
    #[arg(long, conflicts_with = "enabled")]
    disabled: bool,
    /// Only enabled rooms.
    #[arg(long)]
    enabled: bool,
    /// Rooms whose member list names this principal (a user also through groups and domains).
    #[arg(long, value_name = "PRINCIPAL")]
    member: Option<String>,
    /// Rooms whose manager list names this principal.
    #[arg(long, value_name = "PRINCIPAL")]
    manager: Option<String>,
    /// Only rooms showing this add-in.
    #[arg(long)]
    addin: Option<String>,
    /// Only rooms whose invitations setting is inherit or false.
    #[arg(long)]
    invitations: Option<Invitations>,
    /// Rooms whose name contains TEXT (ignoring case).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Let --filter match the description too.
    #[arg(long, requires = "filter")]
    search_description: bool,
    /// At most N rooms.
    #[arg(long, value_name = "N")]
    result_size: Option<usize>,
}

pub fn run(ctx: &Context, command: Command) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    match command {
        Command::Create {
            name,
            category,
            options,
        } => {
            let change = RoomChange {
                name: Some(name),
                category: Some(category),
                ..options.change(None)?
            };
            save(ctx, None, change)
        }
        Command::Set {
            name,
            new_name,
            category,
            no_addin,
            dry_run,
            options,
        } => {
            let mut change = RoomChange {
                name: new_name,
                category,
                ..options.change(Some(found(snapshot.room_by_name(&name), "room", &name)?))?
            };
            if no_addin {
                change.addin = Some(None);
            }
            if dry_run {
                let preview =
                    service::preview_room(snapshot, &Actor::Operator, Some(&name), change)?;
                return Ok(report(ctx, &preview, true));
            }
            save(ctx, Some(&name), change)
        }
        Command::Disable { name } => set_disabled(ctx, &name, true),
        Command::Enable { name } => set_disabled(ctx, &name, false),
        Command::Remove { name, confirm } => {
            let room = found(snapshot.room_by_name(&name), "room", &name)?;
            confirm.check(&format!(
                "remove room {} and its history of {}",
                room.name,
                room_uri(ctx.domain, &room.uid)
            ))?;
            let room = service::remove_room(ctx.store, snapshot, &Actor::Operator, &name)?;
            Ok(vec![format!("removed room {}", room.name)])
        }
        Command::Clear {
            name,
            until,
            confirm,
        } => {
            let until = until
                .as_deref()
                .map(crate::core::ids::ticks_from_rfc3339)
                .transpose()
                .map_err(AdminError::Invalid)?;
            let room = found(snapshot.room_by_name(&name), "room", &name)?;
            let span = match &until {
                Some(_) => "messages up to the given time",
                None => "every message",
            };
            confirm.check(&format!("delete {span} of room {}", room.name))?;
            let (room, deleted) =
                service::clear_room(ctx.store, snapshot, &Actor::Operator, &name, until)?;
            Ok(vec![format!(
                "deleted {deleted} message(s) from room {}",
                room.name
            )])
        }
        Command::Show { name } => {
            let room = found(snapshot.room_by_name(&name), "room", &name)?;
            Ok(show(vec![
                ("name", room.name.clone()),
                ("uri", room_uri(ctx.domain, &room.uid)),
                ("description", room.description.clone()),
                ("category", category_name(snapshot, room)),
                ("privacy", room.privacy.to_string()),
                ("type", room.kind.to_string()),
                ("invitations", room.invitations.to_string()),
                ("state", state(room.disabled).to_owned()),
                ("addin", room.addin.clone().unwrap_or_default()),
                ("members", names(&room.members)),
                ("managers", names(&room.managers)),
                ("presenters", names(&room.presenters)),
            ]))
        }
        Command::List(filter) => list(ctx, &filter),
    }
}

fn category_name(snapshot: &Snapshot, room: &Room) -> String {
    snapshot
        .category(room.category)
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

fn set_disabled(ctx: &Context, name: &str, disabled: bool) -> Result<Lines, AdminError> {
    let change = RoomChange {
        disabled: Some(disabled),
        ..RoomChange::default()
    };
    save(ctx, Some(name), change)
}

/// Stores a room (new when `existing` is `None`) as the operator and says what happened.
fn save(ctx: &Context, existing: Option<&str>, change: RoomChange) -> Result<Lines, AdminError> {
    let saved = service::save_room(ctx.store, &ctx.snapshot, &Actor::Operator, existing, change)?;
    Ok(report(ctx, &saved, false))
}

/// What a save did, or (`dry_run`) would do.
fn report(ctx: &Context, saved: &service::SavedRoom, dry_run: bool) -> Lines {
    let (verb, removal, invitation) = match (dry_run, saved.created) {
        (true, true) => ("would create", "would remove", "would invite"),
        (true, false) => ("would update", "would remove", "would invite"),
        (false, true) => ("created", "removed", "invited"),
        (false, false) => ("updated", "removed", "invited"),
    };
    let mut lines = vec![format!(
        "{verb} room {} {}",
        saved.room.name,
        room_uri(ctx.domain, &saved.room.uid)
    )];
    if !saved.removed.is_empty() {
        lines.push(format!(
            "{removal} (outside the new category's scope): {}",
            super::names(&saved.removed)
        ));
    }
    if saved.invited > 0 {
        lines.push(format!("{invitation} {} user(s)", saved.invited));
    }
    lines
}

/// `--yes`, or a question on a terminal, before a command that deletes history.
#[derive(Args)]
pub struct Confirm {
    /// Do it without asking.
    #[arg(long)]
    yes: bool,
}

impl Confirm {
    fn check(&self, what: &str) -> Result<(), AdminError> {
        use std::io::{BufRead, IsTerminal, Write};
        if self.yes {
            return Ok(());
        }
        let refused = || AdminError::Invalid(format!("not confirmed: {what} needs --yes"));
        if !std::io::stdin().is_terminal() {
            return Err(refused());
        }
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "{what}? This cannot be undone. [y/N] ");
        let _ = stderr.flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|_| refused())?;
        match answer.trim() {
            "y" | "Y" | "yes" => Ok(()),
            _ => Err(refused()),
        }
    }
}

fn list(ctx: &Context, filter: &Filter) -> Result<Lines, AdminError> {
    let principal = |text: &Option<String>| -> Result<Option<Principal>, AdminError> {
        text.as_deref().map(|p| parse("principal", p)).transpose()
    };
    let filter = RoomFilter {
        category: filter.category.clone(),
        privacy: filter.privacy,
        kind: filter.kind,
        disabled: match (filter.disabled, filter.enabled) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        member: principal(&filter.member)?,
        manager: principal(&filter.manager)?,
        addin: filter.addin.clone(),
        invitations: filter.invitations,
        text: filter.filter.clone(),
        search_description: filter.search_description,
        limit: filter.result_size,
    };
    let snapshot = &ctx.snapshot;
    Ok(service::find_rooms(snapshot, &Actor::Operator, &filter)?
        .into_iter()
        .map(|room| {
            row(&[
                room.name.clone(),
                category_name(snapshot, room),
                room.privacy.to_string(),
                room.kind.to_string(),
                state(room.disabled).to_owned(),
                room_uri(ctx.domain, &room.uid),
            ])
        })
        .collect())
}
