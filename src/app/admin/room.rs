//! `perch admin room create|set|disable|enable|remove|clear|show|list`.

use clap::{Args, Subcommand};

use crate::core::Snapshot;
use crate::core::ids::new_room_uid;
use crate::core::ids::now_ticks;
use crate::core::manage::{self, RoomChange};
use crate::core::model::{Invitations, Principal, Privacy, Room, RoomType};
use crate::core::ports::wait;
use crate::lync::xccos::uri::room_uri;

use super::{
    AdminError, Context, Lines, ManagerFlags, MemberFlags, PresenterFlags, found, names, parse,
    row, same_principal, show, state,
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a room in a category (closed and normal unless told otherwise).
    Create {
        name: String,
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
        #[command(flatten)]
        options: RoomOptions,
    },
    /// Disable a room: hidden, and nobody can enter it until it is enabled.
    Disable { name: String },
    /// Enable a disabled room.
    Enable { name: String },
    /// Remove a room and its history.
    Remove { name: String },
    /// Delete a room's messages up to and including a time (all of them without --until).
    Clear {
        name: String,
        /// RFC 3339 time, e.g. 2024-05-01T12:00:00Z.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Show every property of a room and its URI.
    Show { name: String },
    /// List rooms: name, category, privacy, type, state, URI.
    List(Filter),
}

/// Properties `create` and `set` share.
#[derive(Args)]
pub struct RoomOptions {
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
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    privacy: Option<Privacy>,
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
    #[arg(long)]
    addin: Option<String>,
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
            save(ctx, Some(&name), change)
        }
        Command::Disable { name } => set_disabled(ctx, &name, true),
        Command::Enable { name } => set_disabled(ctx, &name, false),
        Command::Remove { name } => {
            let room = found(snapshot.room_by_name(&name), "room", &name)?;
            wait(ctx.store.remove_room(room.id))?;
            Ok(vec![format!("removed room {}", room.name)])
        }
        Command::Clear { name, until } => {
            let room = found(snapshot.room_by_name(&name), "room", &name)?;
            let until = until.as_deref().map(ticks).transpose()?;
            let deleted = wait(ctx.store.clear_room(room.id, until))?;
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

/// Validates and stores a room (new when `existing` is `None`), then records invitations.
fn save(ctx: &Context, existing: Option<&str>, change: RoomChange) -> Result<Lines, AdminError> {
    let outcome = manage::room(&ctx.snapshot, existing, &new_room_uid(), change)?;
    let room = wait(ctx.store.save_room(outcome.room))?;
    let verb = if existing.is_some() {
        "updated"
    } else {
        "created"
    };
    let mut lines = vec![format!(
        "{verb} room {} {}",
        room.name,
        room_uri(ctx.domain, &room.uid)
    )];
    if !outcome.invite.is_empty() {
        let count = outcome.invite.len();
        let invitations = outcome.invite.into_iter().map(|u| (u, room.id)).collect();
        wait(ctx.store.add_invitations(invitations, now_ticks()))?;
        lines.push(format!("invited {count} user(s)"));
    }
    Ok(lines)
}

/// An RFC 3339 time as 100 ns ticks since the Unix epoch.
fn ticks(text: &str) -> Result<i64, AdminError> {
    let time =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                AdminError::Invalid(format!(
                    "{text:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z ({e})"
                ))
            })?;
    i64::try_from(time.unix_timestamp_nanos() / 100)
        .map_err(|_| AdminError::Invalid(format!("{text:?} is out of range")))
}

fn list(ctx: &Context, filter: &Filter) -> Result<Lines, AdminError> {
    let snapshot = &ctx.snapshot;
    let category = match &filter.category {
        Some(name) => Some(found(snapshot.category_by_name(name), "category", name)?.id),
        None => None,
    };
    if let Some(name) = &filter.addin {
        found(snapshot.addin(name), "add-in", name)?;
    }
    let member: Option<Principal> = filter
        .member
        .as_deref()
        .map(|p| parse("principal", p))
        .transpose()?;
    let manager: Option<Principal> = filter
        .manager
        .as_deref()
        .map(|p| parse("principal", p))
        .transpose()?;
    let text = filter.filter.as_deref().map(str::to_lowercase);
    let lists = |list: &[Principal], who: &Option<Principal>| match who {
        None => true,
        Some(Principal::User(aor)) => snapshot.directory.listed(list, aor),
        Some(other) => list.iter().any(|p| same_principal(p, other)),
    };
    let matches = |room: &Room| {
        category.is_none_or(|id| room.category == id)
            && filter.privacy.is_none_or(|p| room.privacy == p)
            && filter.kind.is_none_or(|k| room.kind == k)
            && filter.invitations.is_none_or(|i| room.invitations == i)
            && (!filter.disabled || room.disabled)
            && (!filter.enabled || !room.disabled)
            && filter.addin.as_deref().is_none_or(|a| {
                room.addin
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(a))
            })
            && lists(&room.members, &member)
            && lists(&room.managers, &manager)
            && text.as_deref().is_none_or(|t| {
                room.name.to_lowercase().contains(t)
                    || (filter.search_description && room.description.to_lowercase().contains(t))
            })
    };
    Ok(snapshot
        .rooms()
        .into_iter()
        .filter(|room| matches(room))
        .take(filter.result_size.unwrap_or(usize::MAX))
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
