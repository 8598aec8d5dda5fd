//! Mapping domain errors to gRPC statuses with machine-readable details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::control::ControlError;
use crate::request::InvalidRequest;

/// `INVALID_ARGUMENT`, naming the field both in the message and in a
/// `google.rpc.BadRequest` detail that clients can read without parsing text.
pub fn invalid_argument(error: &InvalidRequest) -> Status {
    invalid_field(&error.field, &error.to_string(), &error.reason)
}

pub fn invalid_field(field: &str, message: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request_violation(field, reason),
    )
}

/// Maps a refused change to the status that says why.
pub fn status(error: &ControlError) -> Status {
    match error {
        ControlError::Invalid { field, reason } => invalid_field(field, &error.to_string(), reason),
        ControlError::FailedPrecondition(message) => Status::failed_precondition(message),
        ControlError::NotFound(message) => Status::not_found(message),
        ControlError::Store(e) => Status::unavailable(e.to_string()),
        ControlError::Unavailable(message) => Status::unavailable(message),
        ControlError::Aborted(message) => Status::aborted(message),
        ControlError::Internal(message) => Status::internal(message),
    }
}
