//! Why a change was refused.

use crate::store::StoreError;

/// Why a change was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
    /// The replication backend cannot take the change now (etcd out of
    /// reach, this replica not in step); nothing changed, or what did is
    /// said in the message.
    #[error("{0}")]
    Unavailable(String),
    /// Another change overtook this one before it was written.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) | StoreError::Ambiguous(_) => {
                ControlError::NotFound(e.to_string())
            }
            other => ControlError::Store(other),
        }
    }
}

impl From<crate::killswitch::SpecError> for ControlError {
    fn from(e: crate::killswitch::SpecError) -> Self {
        ControlError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl ToString) -> ControlError {
    ControlError::Invalid {
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}
