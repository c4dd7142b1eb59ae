//! The chat core: protocol-neutral identities, the Persistent Chat model, every permission
//! decision ([`policy`]), the hub that runs every chat operation and publishes its events
//! ([`hub`]), and the ports it needs from storage ([`ports`]). It never sees XML, SIP or
//! SQL, and imports nothing from the gateways, the network layer or a store backend.

pub mod credentials;
pub mod directory;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod hub;
pub mod ids;
pub mod manage;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod ports;
pub mod service;
pub mod snapshot;

pub use directory::{Directory, User};
pub use snapshot::{Snapshot, SnapshotHandle};
