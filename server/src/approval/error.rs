//! Why an approval call was refused; each maps to one gRPC status and one
//! ARAP error (`urn:openid:authzen:access-request:error:<type>`).

use crate::control::ControlError;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Approvals are off, or the decision cannot be requested.
    #[error("{0}")]
    NotRequestable(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The submission is not for the denied request, or the token is not
    /// Warden's.
    #[error("invalid binding_token: {0}")]
    Binding(String),
    #[error("the decision's access request expired at {0}; check again for a new one")]
    ExpiredDenial(String),
    #[error("{0}")]
    Duplicate(String),
    #[error("no approval task `{0}`")]
    UnknownTask(String),
    #[error("{0}")]
    TaskState(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApprovalError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApprovalError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// ARAP's error type and the HTTP status for it.
    pub fn arap(&self) -> (&'static str, u16) {
        match self {
            ApprovalError::NotRequestable(_) => ("not_requestable", 400),
            ApprovalError::Invalid { .. } => ("invalid_request", 400),
            ApprovalError::Binding(_) => ("invalid_denial_binding", 400),
            ApprovalError::ExpiredDenial(_) => ("expired_denial", 410),
            ApprovalError::Duplicate(_) => ("duplicate_request", 409),
            ApprovalError::UnknownTask(_) => ("unknown_task", 404),
            ApprovalError::TaskState(_) => ("invalid_task_state", 409),
            ApprovalError::Forbidden(_) => ("forbidden", 403),
            ApprovalError::Unavailable(_) => ("temporarily_unavailable", 503),
            ApprovalError::Internal(_) => ("server_error", 500),
        }
    }
}

impl From<super::keys::KeyError> for ApprovalError {
    fn from(e: super::keys::KeyError) -> Self {
        ApprovalError::Internal(e.to_string())
    }
}

impl From<ControlError> for ApprovalError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Invalid { field, reason } => ApprovalError::Invalid { field, reason },
            ControlError::FailedPrecondition(m) | ControlError::Aborted(m) => {
                ApprovalError::TaskState(m)
            }
            ControlError::NotFound(m) => ApprovalError::UnknownTask(m),
            ControlError::Unavailable(m) => ApprovalError::Unavailable(m),
            ControlError::Store(e) => ApprovalError::Unavailable(e.to_string()),
            ControlError::Internal(m) => ApprovalError::Internal(m),
        }
    }
}
