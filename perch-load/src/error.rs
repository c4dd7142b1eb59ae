//! What can stop `perch-load` as a whole (a client's failures are counted, not raised).

use perch::core::ports::StoreError;

use crate::null_responder::NullError;
use crate::prefill::PrefillError;
use crate::provision::ProvisionError;
use crate::sqlite_baseline::SqliteBaselineError;
use crate::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("reading the data directory: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Null(#[from] NullError),
    #[error("prefill: {0}")]
    Prefill(#[from] PrefillError),
    #[error(transparent)]
    Sqlite(#[from] SqliteBaselineError),
    #[error("{0}")]
    Plan(String),
    #[error("the run did not finish within its hard deadline")]
    Deadline,
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot print the report: {0}")]
    Json(#[from] serde_json::Error),
}
