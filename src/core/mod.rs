//! The chat core: protocol-agnostic state and decisions. In this release it holds the user
//! directory; categories, rooms, policy and fan-out build on it.

pub mod directory;

pub use directory::{Directory, DirectoryHandle, User};
