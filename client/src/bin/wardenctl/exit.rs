//! Exit codes: the one place where outcomes and gRPC codes become numbers,
//! so that scripts can branch on them and the table in `--help` stays true.

use tonic::Code;
use warden_client::ClientError;

/// Success; for `check`, ALLOW; for `bundle replay`, no decision changes.
pub const SUCCESS: u8 = 0;
/// `check`: DENY. `audit verify`, `audit export`, `audit merge`: a chain is
/// broken. `bundle replay`: some decision changes.
pub const DENY: u8 = 1;
/// `check`: REQUIRE_APPROVAL. `bundle replay`: no replayed decision
/// changes, but some records could not be replayed.
pub const REQUIRE_APPROVAL: u8 = 2;
/// Bad arguments, input or configuration, a confirmation not given, or a
/// request Warden rejected as it stands: sending it again will not help.
pub const USAGE: u8 = 3;
/// Warden could not be reached or could not answer now: retrying may help.
pub const UNAVAILABLE: u8 = 4;
/// Warden does not know the caller, or the caller lacks the role.
pub const NOT_ALLOWED: u8 = 5;
/// Anything else: a server fault, an answer this client does not
/// understand, or a local failure such as writing a file.
pub const FAILED: u8 = 6;

/// Shown by `wardenctl --help`; keep it in step with the constants above
/// and the module doc of `main.rs`.
pub const HELP: &str = "\
Exit codes:
  0  success; check: ALLOW; bundle replay: no decision changes
  1  check: DENY; audit verify, export or merge: a chain is broken;
     bundle replay: some decision changes
  2  check: REQUIRE_APPROVAL; bundle replay: none changes, but some
     records could not be replayed
  3  bad arguments, input or configuration, a confirmation not given, or a
     request Warden rejected (INVALID_ARGUMENT, FAILED_PRECONDITION,
     NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE)
  4  Warden unreachable or unavailable: no connection, UNAVAILABLE,
     DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, CANCELLED (retry later)
  5  UNAUTHENTICATED or PERMISSION_DENIED (check the token and its roles)
  6  anything else: INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED, an
     unexpected answer, or a local failure such as writing a file";

/// The exit code for a gRPC status.
pub fn for_status(status: Code) -> u8 {
    match status {
        Code::Ok => SUCCESS,
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::OutOfRange => USAGE,
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Cancelled => UNAVAILABLE,
        Code::Unauthenticated | Code::PermissionDenied => NOT_ALLOWED,
        Code::Unknown | Code::Internal | Code::DataLoss | Code::Unimplemented => FAILED,
    }
}

/// The exit code for a client error.
pub fn for_client(error: &ClientError) -> u8 {
    match error {
        ClientError::Status(status) => for_status(status.code()),
        ClientError::Endpoint { .. } | ClientError::Config(_) => USAGE,
        ClientError::Connect { .. } => UNAVAILABLE,
        ClientError::Protocol(_) => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_documented_code() {
        let documented = [
            DENY,
            REQUIRE_APPROVAL,
            USAGE,
            UNAVAILABLE,
            NOT_ALLOWED,
            FAILED,
        ]
        .map(|code| format!("\n  {code}  "));
        assert!(documented.iter().all(|line| HELP.contains(line.as_str())));
        for code in 1..=16 {
            let status = Code::from_i32(code);
            let exit = for_status(status);
            assert!((USAGE..=FAILED).contains(&exit), "{status:?} exits {exit}");
            assert!(
                HELP.contains(&screaming(status)),
                "{status:?} is not in --help"
            );
        }
        assert_eq!(for_status(Code::InvalidArgument), USAGE);
        assert_eq!(for_status(Code::Unavailable), UNAVAILABLE);
        assert_eq!(for_status(Code::PermissionDenied), NOT_ALLOWED);
        assert_eq!(for_status(Code::Internal), FAILED);
    }

    /// `DeadlineExceeded` as `DEADLINE_EXCEEDED`, the way the help names it.
    fn screaming(code: Code) -> String {
        let mut name = String::new();
        for (i, c) in format!("{code:?}").chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        name
    }
}
