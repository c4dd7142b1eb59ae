//! perch: a persistent group chat server speaking SIP/XCCOS (Lync 2013 Persistent Chat).
//!
//! Layers, requests flowing down and events up: [`net`] (listeners, TLS, the connection
//! driver, generic over the protocol) → [`lync`] (the SIP/XCCOS gateway) → [`core`] (the
//! protocol-neutral chat hub, policy and the store ports it needs) → [`store`] (backends
//! implementing those ports). [`app`] wires them together and holds the admin CLI. The
//! import rules between them are checked by `tests/integration/layers.rs`; see
//! docs/ARCHITECTURE.md.

pub mod app;
pub mod core;
pub mod http;
pub mod lync;
pub mod net;
pub mod store;
pub mod xml;
pub mod xmpp;
