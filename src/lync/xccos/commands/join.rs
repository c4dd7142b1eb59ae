//! `cmd:join` and `cmd:bjoin`: enter rooms (xccos-protocol.md §2.5.3–2.5.4). The reply
//! lists the room and everyone present; the others get `ntc:join`.

use std::collections::HashMap;

use crate::core::hub::{ChatError, Joined};
use crate::core::policy::{Denial, Roles};
use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::{room_uri, user_uri};
use crate::lync::xccos::xml::Element;

use super::{Context, failure};

/// Role codes of `aib/@key`: an ordinary participant and a room operator (manager).
pub const ROLE_MEMBER: &str = "3984";
pub const ROLE_MANAGER: &str = "12276";

fn role_key(roles: Roles) -> &'static str {
    if roles.manager {
        ROLE_MANAGER
    } else {
        ROLE_MEMBER
    }
}

/// The room id a `chanid` names (`value`, in this server's domain).
fn chanid_uid<'a>(ctx: &Context<'_>, chanid: &'a Element) -> Option<&'a str> {
    let domain = chanid.attr("domain").unwrap_or(ctx.domain);
    let value = chanid.attr("value")?;
    (domain.eq_ignore_ascii_case(ctx.domain) && !value.is_empty()).then_some(value)
}

/// Builds the shared `uib` list and one `chanib` per joined room, as rpl:join/bjoin carry.
fn joined_data(ctx: &Context<'_>, joined: &[Joined]) -> Vec<Element> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut users = Vec::new();
    let mut rooms = Vec::new();
    for entry in joined {
        let mut by_role: Vec<(&str, Vec<String>)> = Vec::new();
        for participant in &entry.participants {
            let id = *ids.entry(participant.user.clone()).or_insert_with(|| {
                users.push(
                    Element::new("uib")
                        .with_attr("id", users.len().to_string())
                        .with_attr("uri", user_uri(&participant.user)),
                );
                users.len() - 1
            });
            let key = role_key(participant.roles);
            match by_role.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push(id.to_string()),
                None => by_role.push((key, vec![id.to_string()])),
            }
        }
        let room = &entry.room;
        let mut chanib = Element::new("chanib")
            .with_attr("name", room.name.clone())
            .with_attr("description", room.description.clone())
            .with_attr("uri", room_uri(ctx.domain, &room.uid))
            .with_attr("topic", room.description.clone());
        for (key, list) in by_role {
            // SIPE splits on ',' without trimming.
            chanib = chanib.with_child(
                Element::new("aib")
                    .with_attr("key", key)
                    .with_attr("value", list.join(",")),
            );
        }
        rooms.push(chanib);
    }
    users.extend(rooms);
    users
}

/// `ntc:join` telling the others that the user entered `joined.room`.
/// `ntc:join` for the others in a room.
pub fn join_notice(domain: &str, room_uid: &str, user: &str, roles: Roles) -> Element {
    let uib = Element::new("uib")
        .with_attr("uri", user_uri(user))
        .with_child(
            Element::new("aib")
                .with_attr("key", role_key(roles))
                .with_attr("domain", domain)
                .with_attr("value", room_uid),
        );
    Element::new("ntc")
        .with_attr("id", "ntc:join")
        .with_attr("seqid", "1")
        .with_child(Element::new("data").with_child(uib))
}

pub fn join(ctx: &Context<'_>, command: &Command) -> Element {
    let Some(uid) = command
        .data
        .child("chanid")
        .and_then(|c| chanid_uid(ctx, c))
    else {
        return failure(command, &ChatError::Denied(Denial::NotFound));
    };
    match ctx.core.join(ctx.user, ctx.session, uid) {
        Ok(joined) => {
            let mut data = Element::new("data");
            data.children = joined_data(ctx, std::slice::from_ref(&joined));
            reply(command, ResultCode::Ok, data)
        }
        Err(error) => failure(command, &error),
    }
}

/// Joins every listed room it can; each refusal is a `fib` entry, and a room the user may
/// not know about fails exactly like one that does not exist.
pub fn bjoin(ctx: &Context<'_>, command: &Command) -> Element {
    let mut joined = Vec::new();
    let mut failed = Vec::new();
    let chanids = command.data.children.iter().filter(|c| c.name == "chanid");
    for (index, chanid) in chanids.enumerate() {
        let value = chanid.attr("value").unwrap_or_default().to_owned();
        if index >= ctx.max_bjoin {
            failed.push(value);
            continue;
        }
        match chanid_uid(ctx, chanid).map(|uid| ctx.core.join(ctx.user, ctx.session, uid)) {
            Some(Ok(entry)) => joined.push(entry),
            Some(Err(error)) => {
                tracing::debug!(room = %value, %error, "bjoin entry refused");
                failed.push(value);
            }
            None => failed.push(value),
        }
    }
    let mut data = Element::new("data");
    data.children = joined_data(ctx, &joined);
    for value in failed {
        data.children.push(
            Element::new("fib")
                .with_attr("key", "OPERATION_FAILED")
                .with_attr("domain", ctx.domain)
                .with_attr("value", value),
        );
    }
    reply(command, ResultCode::Ok, data)
}
