//! The Lync gateway: SIP framing and parsing ([`sip`]), per-connection SIP sessions with
//! transactions, dialogs, registrar and sign-in ([`session`]), and XCCOS, the group-chat
//! protocol carried in SIP INFO ([`xccos`]). It translates requests into chat-core
//! operations and renders core events as XCCOS; it never touches a store backend.
//! [`client`] is the other side of the same protocol: the client kit of `perch check`,
//! perch-load and the integration tests.

pub mod client;
pub mod session;
pub mod sip;
pub mod xccos;
