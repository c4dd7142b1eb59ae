//! `cmd:getserverinfo`: the service's limits and identity (xccos-protocol.md §2.5.2).

use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::uri::{root_category_uri, timestamp};
use crate::lync::xccos::xml::Element;

use super::Context;

/// Identifies the schema generation of this server's store to clients.
const DB_VERSION: &str = "7b1f0c52-5e0a-4c55-9a3e-70657263682d";

pub fn handle(ctx: &Context<'_>, command: &Command) -> Element {
    let settings = ctx.core.snapshot().settings;
    let info_type = command
        .data
        .child("sib")
        .and_then(|s| s.attr("infoType"))
        .unwrap_or("123");
    let sib = Element::new("sib")
        .with_attr("infoType", info_type)
        .with_attr("serverTime", timestamp(crate::core::ids::now_ticks()))
        .with_attr("searchLimit", settings.search_limit.to_string())
        .with_attr("messageSizeLimit", settings.message_size_limit.to_string())
        .with_attr("storySizeLimit", settings.story_size_limit.to_string())
        .with_attr("rootUri", root_category_uri(ctx.domain))
        .with_attr("dbVersion", DB_VERSION);
    reply(
        command,
        ResultCode::Ok,
        Element::new("data").with_child(sib),
    )
}
