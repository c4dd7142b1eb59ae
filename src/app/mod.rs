//! The application: configuration, `perch serve` wiring ([`server`]), the `perch admin`
//! command line ([`admin`]) and `perch check` ([`check`]). The only layer that sees every
//! other one.

pub mod admin;
pub mod check;
pub mod config;
pub mod server;
