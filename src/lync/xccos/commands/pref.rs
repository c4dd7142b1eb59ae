//! `cmd:getpref` / `cmd:setpref`: opaque per-user preferences with sequence ids
//! (xccos-protocol.md §2.5.10). Get returns the content only when the server's seqid is
//! newer than the client's.

use crate::core::hub::ChatError;
use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::xml::Element;

use super::{Context, Reply, failure};

fn label(command: &Command) -> Result<(&Element, String), ChatError> {
    let pref = command
        .data
        .child("pref")
        .ok_or_else(|| ChatError::Invalid("missing pref element".into()))?;
    // The hub decides what a label may be.
    let label = pref.attr("label").unwrap_or_default().trim();
    Ok((pref, label.to_owned()))
}

pub fn get(ctx: &Context<'_>, command: &Command) -> Reply {
    let (known, label) = match label(command) {
        Ok((pref, label)) => {
            let known: i64 = pref
                .attr("seqid")
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            (known, label)
        }
        Err(error) => return Reply::Now(failure(command, &error)),
    };
    let (core, user, command) = (ctx.core.clone(), ctx.user.to_owned(), command.clone());
    Reply::Later(Box::pin(async move {
        match core.preference(&user, &label).await {
            Ok(stored) => {
                let mut answer = Element::new("pref").with_attr("label", label);
                match stored {
                    Some((seqid, content)) => {
                        answer = answer.with_attr("seqid", seqid.to_string());
                        if seqid > known {
                            answer = answer.with_attr("content", content);
                        }
                    }
                    None => answer = answer.with_attr("seqid", "0"),
                }
                reply(
                    &command,
                    ResultCode::Ok,
                    Element::new("data").with_child(answer),
                )
            }
            Err(error) => failure(&command, &error),
        }
    }))
}

pub fn set(ctx: &Context<'_>, command: &Command) -> Reply {
    let checked = label(command).map(|(pref, label)| {
        let content = pref.attr("content").unwrap_or_default();
        (label, content.to_owned())
    });
    let (label, content) = match checked {
        Ok(pair) => pair,
        Err(error) => return Reply::Now(failure(command, &error)),
    };
    // Submitted now, so the write keeps its place among the dialog's others.
    let saved = ctx.core.set_preference(ctx.user, &label, &content);
    let command = command.clone();
    Reply::Later(Box::pin(async move {
        match saved.await {
            Ok(seqid) => {
                let pref = Element::new("pref")
                    .with_attr("label", label)
                    .with_attr("seqid", seqid.to_string());
                reply(
                    &command,
                    ResultCode::Ok,
                    Element::new("data").with_child(pref),
                )
            }
            Err(error) => failure(&command, &error),
        }
    }))
}
