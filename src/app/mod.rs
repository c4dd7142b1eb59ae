//! The application: configuration, `perch serve` wiring ([`server`]) and the `perch admin`
//! command line ([`admin`]). The only layer that sees every other one.

pub mod admin;
pub mod config;
pub mod server;
