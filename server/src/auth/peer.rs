//! What a connection proved before any call on it: its address and its
//! client certificate, judged once by the transport and read by every call;
//! and whether a call on it has been admitted since.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Set once a call on the connection passes authentication and its
/// method's rule. The transport reads it to decide which connections may be
/// evicted when a listener is full, and how long one may stay silent:
/// holding a socket open proves nothing, carrying an admitted call does.
#[derive(Debug, Default)]
pub struct Proof(AtomicBool);

impl Proof {
    pub fn record(&self) {
        // A plain load first: after the first call this is a read of a
        // shared cache line, not a write contended by every stream.
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_proven(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Attached by the transport to every request on a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    pub peer: Arc<PeerCert>,
    pub proof: Arc<Proof>,
}

impl ConnInfo {
    /// A connection's facts before any call on it.
    pub fn new(remote: Option<SocketAddr>, peer: PeerCert) -> Self {
        Self {
            remote,
            peer: Arc::new(peer),
            proof: Arc::default(),
        }
    }
}
