//! The client kit: perch's own SIP/XCCOS client half, shared by `perch check`, perch-load
//! and the integration tests, on the codec, Digest, NTLM and MS-SIPAE code the server runs.
//!
//! - [`connect`]: TCP or TLS connections (a pinned certificate or the system's roots).
//! - [`wire`]: one framed connection; the server's requests answered 200, MS-SIPAE
//!   signatures made and checked.
//! - [`auth`]: the answers to perch's 401s (Digest, NTLM).
//! - [`xccos`]: the commands a client sends and readings of what comes back.
//! - [`client`]: a SIPE-like client: REGISTER, the chat dialog, bjoin, posts, history;
//!   what it does not wait for goes to its [`Observer`].

pub mod auth;
// `lync::client::client::Client`: the kit is `client`, and its SIPE-like client is one part.
#[allow(clippy::module_inception)]
pub mod client;
pub mod connect;
pub mod wire;
pub mod xccos;

pub use auth::SignIn;
pub use client::{Client, ClientError, Observer, RegisterAttempt, Reply, Settings};
pub use connect::{ConnectError, Connector, Trust};
pub use wire::{Event, SipConn, Stream, WireError};
