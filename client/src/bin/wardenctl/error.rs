//! How a command fails, and the exit code each failure gets.

use warden_client::ClientError;

use crate::exit;

pub enum CtlError {
    Client(ClientError),
    /// The operator's input will not do: a file that cannot be read, a
    /// malformed value, a confirmation not given.
    Usage(String),
    /// Something failed on this machine, such as writing a file.
    Local(String),
    /// The command worked and found a problem (a broken audit chain, a
    /// replayed decision that changes).
    Finding(String),
    /// The command worked but could not cover everything (a replay with
    /// records it could not replay).
    Incomplete(String),
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Client(e) => exit::for_client(e),
            CtlError::Usage(_) => exit::USAGE,
            CtlError::Local(_) => exit::FAILED,
            CtlError::Finding(_) => exit::DENY,
            CtlError::Incomplete(_) => exit::REQUIRE_APPROVAL,
        }
    }
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Client(e) => e.fmt(f),
            CtlError::Usage(message)
            | CtlError::Local(message)
            | CtlError::Finding(message)
            | CtlError::Incomplete(message) => f.write_str(message),
        }
    }
}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> Self {
        CtlError::Client(e)
    }
}

pub fn usage(message: impl std::fmt::Display) -> CtlError {
    CtlError::Usage(message.to_string())
}

pub fn local(message: impl std::fmt::Display) -> CtlError {
    CtlError::Local(message.to_string())
}
