//! Serving a listener: accept, admit (`admission`), TLS, the preface, then
//! hyper with the idle timeout, and a graceful drain at shutdown. Every
//! step before a connection has carried an admitted call runs under a
//! deadline, and the whole connection yields its place if evicted.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::Service;
use tracing::{debug, warn};

use super::activity::{Activity, Tracked, Tracking};
use super::config::TransportLimits;
use super::conn::{Conn, Io};
use super::min_rate::{MinRate, MinRateBody};
use super::preface::read_preface;
use super::stats::{Closed, ListenerStats};
use super::tls::TlsSetup;
use crate::auth::{Authenticator, ConnInfo, PeerCert, Proof};

/// What a listener needs besides its protocol.
#[derive(Clone)]
pub struct Listening {
    pub stats: Arc<ListenerStats>,
    pub tls: Option<Arc<TlsSetup>>,
    pub limits: Arc<TransportLimits>,
    pub auth: Arc<Authenticator>,
}

/// How a listener talks once a connection is ready.
pub trait Protocol: Clone + Send + 'static {
    /// Whether connections must open with the HTTP/2 client preface.
    const HTTP2: bool;

    fn serve(
        self,
        conn: Conn,
        info: ConnInfo,
        limits: Arc<TransportLimits>,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = Closed> + Send;
}

/// Accepts on `listener` until `stop`, then waits for the connections to
/// drain (each is asked to finish gracefully).
pub async fn serve<P: Protocol>(
    listener: TcpListener,
    listening: Listening,
    protocol: P,
    mut stop: watch::Receiver<bool>,
) {
    let name = listening.stats.name();
    // Each connection holds a sender; all dropped means all closed.
    let (drain, mut drained) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
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
        let proof = Arc::new(Proof::default());
        let stats = &listening.stats;
        let (ticket, evicted) = match stats.admission().admit(remote.ip(), proof.clone()) {
            Ok(admitted) => admitted,
            Err(full) => {
                stats.count_refused(full);
                debug!(listener = name, %remote, ?full, "connection refused: full of proven connections");
                continue;
            }
        };
        stats.count_accepted();
        debug!(listener = name, %remote, ?evicted, "connection accepted");
        // Checks are small request/response pairs; Nagle would hold each
        // answer back for the client's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(listener = name, error = %e, "cannot set TCP_NODELAY");
        }
        let listening = listening.clone();
        let protocol = protocol.clone();
        let stop = stop.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let closed = tokio::select! {
                biased;
                closed = connection(stream, remote, proof, &listening, protocol, stop) => closed,
                () = ticket.evicted() => Closed::Evicted,
            };
            debug!(listener = listening.stats.name(), %remote, closed = closed.as_str(), "connection closed");
            listening.stats.count_closed(closed);
            drop((ticket, drain));
        });
    }
    // Close the listening socket now, so that new clients are refused
    // rather than left waiting through the drain.
    drop(listener);
    drop(drain);
    let _ = drained.recv().await;
}

async fn connection<P: Protocol>(
    stream: TcpStream,
    remote: SocketAddr,
    proof: Arc<Proof>,
    listening: &Listening,
    protocol: P,
    stop: watch::Receiver<bool>,
) -> Closed {
    let mut stopping = stop.clone();
    let ready = tokio::select! {
        ready = prepare(stream, remote, proof, listening, P::HTTP2) => ready,
        // Nothing has been asked on it yet: nothing to drain.
        _ = stopping.wait_for(|stopped| *stopped) => return Closed::Ended,
    };
    match ready {
        Ok((conn, info)) => {
            protocol
                .serve(conn, info, listening.limits.clone(), stop)
                .await
        }
        Err(closed) => closed,
    }
}

/// The TLS handshake and the HTTP/2 preface, each under its deadline.
async fn prepare(
    stream: TcpStream,
    remote: SocketAddr,
    proof: Arc<Proof>,
    listening: &Listening,
    http2: bool,
) -> Result<(Conn, ConnInfo), Closed> {
    let limits = &listening.limits;
    let name = listening.stats.name();
    let (io, peer) = match &listening.tls {
        None => (Io::Plain(stream), PeerCert::None),
        Some(tls) => match tokio::time::timeout(limits.handshake_timeout, tls.accept(stream)).await
        {
            Ok(Ok(stream)) => {
                let peer = tls.peer_cert(stream.get_ref().1, &listening.auth);
                (Io::Tls(Box::new(stream)), peer)
            }
            Ok(Err(e)) => {
                debug!(listener = name, %remote, error = %e, "TLS handshake failed");
                return Err(Closed::TlsHandshakeFailed);
            }
            Err(_) => return Err(Closed::TlsHandshakeTimeout),
        },
    };
    let mut conn = Conn::new(io);
    if http2 {
        match tokio::time::timeout(limits.preface_timeout, read_preface(conn.io_mut())).await {
            Ok(Ok(read)) => conn.replay(read),
            Ok(Err(e)) => {
                debug!(listener = name, %remote, error = %e, "no HTTP/2 preface");
                return Err(Closed::NotHttp2);
            }
            Err(_) => return Err(Closed::PrefaceTimeout),
        }
    }
    let info = ConnInfo {
        remote: Some(remote),
        peer: Arc::new(peer),
        proof,
    };
    Ok((conn, info))
}

/// A hyper connection that can be asked to finish.
trait Graceful: Future<Output = hyper::Result<()>> {
    fn finish(self: Pin<&mut Self>);
}

impl<I, S, E> Graceful for http2::Connection<I, S, E>
where
    Self: Future<Output = hyper::Result<()>>,
    S: hyper::service::HttpService<Incoming>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for http1::Connection<I, S>
where
    Self: Future<Output = hyper::Result<()>>,
    S: hyper::service::HttpService<Incoming>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// When a connection has been quiet long enough: `unproven` until a call
/// on it has been admitted, `proven` after.
struct Idle {
    activity: Arc<Activity>,
    proof: Arc<Proof>,
    unproven: Duration,
    proven: Duration,
    seen: u64,
    quiet_since: Instant,
}

impl Idle {
    fn limit(&self) -> Duration {
        if self.proof.is_proven() {
            self.proven
        } else {
            self.unproven
        }
    }

    /// Looked at four times per limit, so a connection closes between one
    /// and one and a quarter limits after its last use, and an idle
    /// connection costs a timer wake-up now and then, nothing per call.
    fn period(&self) -> Duration {
        (self.limit() / 4).max(Duration::from_millis(10))
    }

    fn expired(&mut self) -> bool {
        let word = self.activity.word();
        let now = Instant::now();
        if word != self.seen || Activity::busy(word) {
            self.seen = word;
            self.quiet_since = now;
            return false;
        }
        now.duration_since(self.quiet_since) >= self.limit()
    }
}

/// Drives `conn` to its end: gracefully on `stop`, or when `idle` says so.
/// HTTP/2's graceful close waits for the client to acknowledge a PING; a
/// client that went quiet may never do so, so an idle close that has not
/// finished within `grace` is cut. hyper's own timer running out (HTTP/1
/// headers, HTTP/2 keepalive) ends it as `timed_out`.
async fn drive<C: Graceful>(
    conn: C,
    mut idle: Option<Idle>,
    grace: Duration,
    timed_out: Closed,
    mut stop: watch::Receiver<bool>,
) -> Closed {
    let mut conn = pin!(conn);
    let mut closing = None;
    let mut cut_at = None;
    loop {
        let wake = match (closing, &idle) {
            (None, Some(idle)) => Some(Instant::now() + idle.period()),
            (Some(_), _) => cut_at,
            (None, None) => None,
        };
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                return match (closing, result) {
                    (Some(reason), _) => reason,
                    (None, Err(e)) if e.is_timeout() => timed_out,
                    (None, Err(e)) => {
                        debug!(error = %e, "connection ended with an error");
                        Closed::Ended
                    }
                    (None, Ok(())) => Closed::Ended,
                };
            }
            _ = stop.wait_for(|stopped| *stopped), if closing.is_none() => {
                // The server's own drain deadline bounds this one.
                closing = Some(Closed::Ended);
                conn.as_mut().finish();
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                if let Some(reason) = closing {
                    return reason;
                }
                if idle.as_mut().is_some_and(Idle::expired) {
                    closing = Some(Closed::Idle);
                    cut_at = Some(Instant::now() + grace);
                    conn.as_mut().finish();
                }
            }
        }
    }
}

/// gRPC over HTTP/2 (the decision and admin listeners).
#[derive(Clone)]
pub struct Grpc<S> {
    service: S,
    builder: http2::Builder<TokioExecutor>,
}

impl<S> Grpc<S> {
    pub fn new(service: S, limits: &TransportLimits) -> Self {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_streams_per_connection)
            .keep_alive_interval(limits.keepalive_interval)
            .keep_alive_timeout(limits.keepalive_timeout);
        Self { service, builder }
    }
}

impl<S> Protocol for Grpc<S>
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    const HTTP2: bool = true;

    async fn serve(
        self,
        mut conn: Conn,
        info: ConnInfo,
        limits: Arc<TransportLimits>,
        stop: watch::Receiver<bool>,
    ) -> Closed {
        let activity = Arc::new(Activity::default());
        conn.watch_pings(activity.clone(), info.proof.clone());
        let idle = Idle {
            activity: activity.clone(),
            proof: info.proof.clone(),
            unproven: limits.preface_timeout,
            proven: limits.idle_timeout,
            seen: activity.word(),
            quiet_since: Instant::now(),
        };
        let service = TowerToHyperService::new(GrpcCall {
            inner: self.service,
            info,
            activity,
        });
        let conn = self.builder.serve_connection(TokioIo::new(conn), service);
        let grace = limits.preface_timeout;
        drive(conn, Some(idle), grace, Closed::KeepaliveTimeout, stop).await
    }
}

/// One connection's view of the gRPC services: its facts attached to every
/// call, and every call counted while in flight.
#[derive(Clone)]
struct GrpcCall<S> {
    inner: S,
    info: ConnInfo,
    activity: Arc<Activity>,
}

impl<S> Service<http::Request<Incoming>> for GrpcCall<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>,
{
    type Response = http::Response<Tracked<tonic::body::Body>>;
    type Error = S::Error;
    type Future = Tracking<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let guard = self.activity.begin();
        let mut request = request.map(tonic::body::Body::new);
        request.extensions_mut().insert(self.info.clone());
        Tracking::new(self.inner.call(request), guard)
    }
}

/// HTTP/1.1 (the AuthZEN and ops listeners): hyper's header-read timeout
/// bounds each request's headers and the wait for the next one; bodies must
/// arrive at the minimum rate.
#[derive(Clone)]
pub struct Http1<S> {
    service: S,
}

impl<S> Http1<S> {
    pub fn new(service: S) -> Self {
        Self { service }
    }
}

impl<S> Protocol for Http1<S>
where
    S: Service<
            http::Request<MinRateBody<Incoming>>,
            Response = http::Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    const HTTP2: bool = false;

    async fn serve(
        self,
        conn: Conn,
        info: ConnInfo,
        limits: Arc<TransportLimits>,
        stop: watch::Receiver<bool>,
    ) -> Closed {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let service = TowerToHyperService::new(Http1Call {
            inner: self.service,
            info,
            body: limits.body,
        });
        let conn = builder.serve_connection(TokioIo::new(conn), service);
        let grace = limits.preface_timeout;
        drive(conn, None, grace, Closed::HeaderTimeout, stop).await
    }
}

#[derive(Clone)]
struct Http1Call<S> {
    inner: S,
    info: ConnInfo,
    body: MinRate,
}

impl<S> Service<http::Request<Incoming>> for Http1Call<S>
where
    S: Service<http::Request<MinRateBody<Incoming>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let rate = self.body;
        let mut request = request.map(|body| MinRateBody::new(body, rate));
        request.extensions_mut().insert(self.info.clone());
        self.inner.call(request)
    }
}
