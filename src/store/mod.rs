//! Storage backends. Each implements the ports the chat core defines in
//! [`crate::core::ports`]; the core never sees which one it runs on. SQLite is the embedded
//! default; a PostgreSQL pool store will sit beside it.

pub mod sqlite;

pub use sqlite::SqliteStore;
