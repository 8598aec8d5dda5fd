//! What a connection proved before any call on it: its address and its
//! client certificate, judged once by the transport and read by every call.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Principal;

/// What the client certificate of a connection showed.
#[derive(Debug)]
pub enum PeerCert {
    /// None was sent (or the listener has no TLS).
    None,
    /// It chains to the configured CA; the caller it names, if any.
    Verified(Option<Arc<Principal>>),
    /// It was sent but does not verify: every call on the connection is
    /// refused with this reason.
    Rejected(String),
}

/// Attached by tonic to every request on a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    pub peer: Arc<PeerCert>,
}
