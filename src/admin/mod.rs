//! `perch admin`: administration over the same store a running server uses. Changes bump
//! the store generation, which a running server picks up within a second.

pub mod demo;
pub mod user;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot read the password: {0}")]
    Password(std::io::Error),
}
