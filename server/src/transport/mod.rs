//! Accepting connections for the gRPC listeners: a cap on open connections,
//! a bounded TLS handshake, and the client certificate checked once per
//! connection so the auth layer can answer each call with a precise status.

pub mod config;
pub mod oversize;
pub mod tls;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::auth::Authenticator;
pub use crate::auth::{ConnInfo, PeerCert};
pub use tls::{TlsError, TlsSetup};

/// How a listener accepts connections.
#[derive(Debug, Clone)]
pub struct AcceptOptions {
    pub tls: Option<Arc<TlsSetup>>,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
}

/// Connections refused because the listener was at its limit.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub refused: AtomicU64,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// One accepted connection; holds its slot under the listener's connection
/// limit until it closes.
pub struct Conn {
    io: Io,
    info: ConnInfo,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Accepts on `listener` until `stop` or until the server stops taking
/// connections, handing tonic only connections that completed their
/// handshake in time.
pub fn incoming(
    name: &'static str,
    listener: TcpListener,
    options: AcceptOptions,
    auth: Arc<Authenticator>,
    stats: Arc<ConnectionStats>,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<Result<Conn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin; the listener itself is still good.
                    warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                debug!(listener = name, %remote, "connection refused: at the connection limit");
                continue;
            };
            // Checks are small request/response pairs; Nagle would hold
            // each answer back for the client's delayed ACK.
            if let Err(e) = stream.set_nodelay(true) {
                debug!(listener = name, error = %e, "cannot set TCP_NODELAY");
            }
            let tx = tx.clone();
            let options = options.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let conn = match &options.tls {
                    None => Conn {
                        io: Io::Plain(stream),
                        info: ConnInfo {
                            remote: Some(remote),
                            peer: Arc::new(PeerCert::None),
                        },
                        _slot: slot,
                    },
                    Some(tls) => {
                        let handshake =
                            tokio::time::timeout(options.handshake_timeout, tls.accept(stream))
                                .await;
                        let stream = match handshake {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                debug!(listener = name, %remote, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(listener = name, %remote, "TLS handshake timed out");
                                return;
                            }
                        };
                        let peer = tls.peer_cert(stream.get_ref().1, &auth);
                        Conn {
                            io: Io::Tls(Box::new(stream)),
                            info: ConnInfo {
                                remote: Some(remote),
                                peer: Arc::new(peer),
                            },
                            _slot: slot,
                        }
                    }
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
