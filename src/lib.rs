//! perch: a persistent group chat server speaking SIP/XCCOS (Lync 2013 Persistent Chat).
//!
//! Layers, top to bottom: [`transport`] (listeners, connections), [`sip`] and [`xccos`]
//! (wire codecs), [`session`] (SIP transactions, dialogs, registrar, authentication),
//! [`core`] (directory and chat decisions), [`store`] (SQLite). [`admin`] drives the same
//! store and core from the command line. See docs/ARCHITECTURE.md.

pub mod admin;
pub mod config;
pub mod core;
pub mod server;
pub mod session;
pub mod sip;
pub mod store;
pub mod transport;
pub mod xccos;
