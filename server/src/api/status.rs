//! Mapping domain errors to gRPC statuses with machine-readable details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
