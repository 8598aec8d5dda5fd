//! Per-listener connection counts, read by `/metrics` when scraped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::admission::{Admission, AdmissionLimits, Full};

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The client or the server ended it in the ordinary way (including a
    /// graceful drain at shutdown).
    Ended,
    /// A newcomer took its place while it had carried no admitted call.
    Evicted,
    TlsHandshakeFailed,
    TlsHandshakeTimeout,
    /// It did not open with the HTTP/2 client preface and SETTINGS.
    NotHttp2,
    PrefaceTimeout,
    /// It carried nothing for the idle timeout (HTTP/2 GOAWAY sent).
    Idle,
    /// An HTTP/1.1 request's headers did not arrive in time.
    HeaderTimeout,
    /// The client did not acknowledge the server's keepalive PING in time.
    KeepaliveTimeout,
}

impl Closed {
    pub const ALL: [Closed; 9] = [
        Closed::Ended,
        Closed::Evicted,
        Closed::TlsHandshakeFailed,
        Closed::TlsHandshakeTimeout,
        Closed::NotHttp2,
        Closed::PrefaceTimeout,
        Closed::Idle,
        Closed::HeaderTimeout,
        Closed::KeepaliveTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Ended => "ended",
            Closed::Evicted => "evicted",
            Closed::TlsHandshakeFailed => "tls_handshake_failed",
            Closed::TlsHandshakeTimeout => "tls_handshake_timeout",
            Closed::NotHttp2 => "not_http2",
            Closed::PrefaceTimeout => "preface_timeout",
            Closed::Idle => "idle",
            Closed::HeaderTimeout => "header_timeout",
            Closed::KeepaliveTimeout => "keepalive_timeout",
        }
    }
}

/// One listener's connections: who is admitted, and what happened to the
/// rest.
pub struct ListenerStats {
    name: &'static str,
    admission: Arc<Admission>,
    accepted: AtomicU64,
    refused: [AtomicU64; 2],
    closed: [AtomicU64; Closed::ALL.len()],
}

impl std::fmt::Debug for ListenerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerStats")
            .field("name", &self.name)
            .field("open", &self.open())
            .finish_non_exhaustive()
    }
}

impl ListenerStats {
    pub fn new(name: &'static str, limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            name,
            admission: Admission::new(limits),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
            closed: Default::default(),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    pub fn open(&self) -> usize {
        self.admission.open()
    }

    pub(super) fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_refused(&self, full: Full) {
        self.refused[full as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_closed(&self, closed: Closed) {
        self.closed[closed as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Refusals by the limit that was full: `listener_full`, `source_full`.
    pub fn refused(&self) -> [(&'static str, u64); 2] {
        [
            (
                "listener_full",
                self.refused[Full::Listener as usize].load(Ordering::Relaxed),
            ),
            (
                "source_full",
                self.refused[Full::Source as usize].load(Ordering::Relaxed),
            ),
        ]
    }

    pub fn closed(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Closed::ALL
            .iter()
            .map(|c| (c.as_str(), self.closed[*c as usize].load(Ordering::Relaxed)))
    }
}
