//! The chat core: protocol-agnostic state and decisions. It never sees XML or SIP.

pub mod chat;
pub mod directory;
pub mod manage;
pub mod model;
pub mod policy;
pub mod snapshot;

pub use directory::{Directory, User};
pub use snapshot::{Snapshot, SnapshotHandle};
