//! The XMPP gateway: c2s streams, MUC, MAM onto the chat core.

pub mod sasl;
pub mod stream;
