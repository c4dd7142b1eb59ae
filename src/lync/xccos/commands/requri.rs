//! `cmd:requri`: which channel server to use (xccos-protocol.md §2.5.1). perch is lookup
//! and channel server at once, so the answer is the chat endpoint URI itself; SIPE then
//! ends this dialog and INVITEs that URI again.

use crate::lync::xccos::envelope::{Command, ResultCode, reply};
use crate::lync::xccos::xml::Element;

pub fn handle(command: &Command, chat_uri: &str) -> Element {
    let data = Element::new("data").with_child(Element::new("uib").with_attr("uri", chat_uri));
    reply(command, ResultCode::Ok, data)
}
