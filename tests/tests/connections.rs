//! Nobody without a credential can lock the listeners: floods of idle,
//! half-open or half-sent connections give way to a caller with a token;
//! the deadlines before a connection has proved anything, the idle timeout
//! after, and the minimum body rate, each seen from a real socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};
use warden_client::{CheckBuilder, CheckRequest, ClientOptions, TlsOptions, WardenClient};
use warden_e2e::http_get;
use warden_e2e::pki::Authority;
use warden_e2e::process::{Warden, WardenBuilder};

const FLOOD: usize = 5_000;
const TOKEN: &str = "test-token-acme-0123456789abcdef";
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// `[auth]` with one platform token, and `[authzen]` so that the HTTP
/// listener can answer it, plus `extra`.
fn with_token(dir: &tempfile::TempDir, extra: &str) -> WardenBuilder {
    let config = format!(
        "[auth]\ntokens = [{{ name = \"acme\", sha256 = \"{}\", roles = [\"platform:acme\"] }}]\n\
         [authzen]\ndefault_agent = \"agent-1\"\n{extra}",
        warden::auth::hash_token(TOKEN),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config).unwrap();
    Warden::builder().env("WARDEN_CONFIG", path.display().to_string())
}

fn check() -> CheckRequest {
    CheckBuilder::new(
        "acme",
        "agent-1",
        "amelia.hughes",
        "documents.read",
        "document",
    )
    .build()
}

fn options() -> ClientOptions {
    ClientOptions {
        token: Some(TOKEN.into()),
        ..ClientOptions::default()
    }
}

/// A metric's value from `/metrics`, 0 when absent.
async fn metric(warden: &Warden, name: &str, labels: &str) -> f64 {
    let ops = warden.ops_addr;
    let (status, text) = tokio::task::spawn_blocking(move || http_get(ops, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let series = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `name{labels}` reaches `at_least`.
async fn wait_metric(warden: &Warden, name: &str, labels: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = metric(warden, name, labels).await;
        if value >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{{{labels}}} stayed at {value}, short of {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until at least `at_least` decision-listener connections were
/// evicted or closed at the preface deadline: on a slow machine the flood's
/// first sockets may reach their deadline before the listener is full.
async fn wait_sent_away(warden: &Warden, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut gone = 0.0;
        for reason in ["evicted", "preface_timeout"] {
            let labels = format!("listener=\"decision\",reason=\"{reason}\"");
            gone += metric(warden, "warden_connections_closed_total", &labels).await;
        }
        if gone >= at_least as f64 {
            return;
        }
        assert!(Instant::now() < deadline, "only {gone} sent away");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connection to `to` from `from` (any loopback address works on Linux).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// The flood's sources: five addresses, so that each stays under the
/// per-source share while together they fill the listener.
fn sources(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (n % 5) as u8)
}

/// A gRPC `Check` with a token, timed from before the connection.
async fn timed_check(endpoint: String, options: ClientOptions) -> Duration {
    let started = Instant::now();
    let answered = timeout(Duration::from_secs(30), async {
        let mut client = WardenClient::connect(endpoint, options).await?;
        client.check(check()).await
    })
    .await
    .expect("the check was never answered");
    answered.expect("the check failed");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_sockets_do_not_keep_a_caller_with_a_token_out() {
    let dir = tempfile::tempdir().unwrap();
    let warden = with_token(&dir, "").start().await;
    let before = metric(
        &warden,
        "warden_connections_accepted_total",
        "listener=\"decision\"",
    )
    .await;
    let mut idle = Vec::with_capacity(FLOOD);
    for n in 0..FLOOD {
        idle.push(connect_from(sources(n), warden.decision_addr).await);
    }
    wait_metric(
        &warden,
        "warden_connections_accepted_total",
        "listener=\"decision\"",
        before + FLOOD as f64,
    )
    .await;
    let took = timed_check(warden.endpoint(), options()).await;
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    wait_sent_away(&warden, FLOOD - 4096).await;
    let open = metric(&warden, "warden_connections_open", "listener=\"decision\"").await;
    assert!(open <= 4096.0, "{open} open");
    // Whoever holds a place now is still refused nothing: the caller's
    // connection carried a call, so the flood cannot evict it.
    let mut client = WardenClient::connect(warden.endpoint(), options())
        .await
        .unwrap();
    client.check(check()).await.unwrap();
    for n in 0..FLOOD {
        idle.push(connect_from(sources(n), warden.decision_addr).await);
    }
    client.check(check()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_tls_handshakes_without_a_preface_do_not_keep_a_caller_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "ca");
    let server = ca.server("server");
    let tls = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        server.cert.display(),
        server.key.display()
    );
    let warden = with_token(&dir, &tls).start_listening();
    let tls_options = || ClientOptions {
        tls: Some(TlsOptions {
            ca_pem: Some(ca.ca_pem()),
            ..TlsOptions::default()
        }),
        ..options()
    };
    let endpoint = format!("https://{}", warden.decision_addr);
    warden.wait_health(endpoint.clone(), &tls_options()).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca.ca_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let before = metric(
        &warden,
        "warden_connections_accepted_total",
        "listener=\"decision\"",
    )
    .await;
    let mut idle = Vec::with_capacity(FLOOD);
    // Handshakes in batches: each completes, then the connection says
    // nothing at all.
    for batch in 0..FLOOD / 50 {
        let handshakes = (0..50).map(|i| {
            let connector = connector.clone();
            let name = name.clone();
            let addr = warden.decision_addr;
            tokio::spawn(async move {
                let tcp = connect_from(sources(batch * 50 + i), addr).await;
                connector.connect(name, tcp).await
            })
        });
        for handshake in handshakes {
            // An evicted connection may fail its handshake; what counts is
            // that the server took it.
            if let Ok(stream) = handshake.await.unwrap() {
                idle.push(stream);
            }
        }
    }
    wait_metric(
        &warden,
        "warden_connections_accepted_total",
        "listener=\"decision\"",
        before + FLOOD as f64,
    )
    .await;
    let took = timed_check(endpoint, tls_options()).await;
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    wait_sent_away(&warden, FLOOD - 4096).await;
}

/// The AuthZEN evaluation a caller with the token sends.
fn evaluation_request(http: SocketAddr) -> warden_e2e::HttpResponse {
    let body = serde_json::json!({
        "subject": {"type": "user", "id": "amelia.hughes"},
        "action": {"name": "documents.read"},
        "resource": {"type": "document", "id": "d1"},
    })
    .to_string();
    warden_e2e::http_request(
        http,
        "POST",
        "/access/v1/evaluation",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {TOKEN}")),
        ],
        Some(body.as_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_half_sent_headers_do_not_keep_an_http_caller_out() {
    let dir = tempfile::tempdir().unwrap();
    let warden = with_token(&dir, "").start().await;
    let http = warden.http_addr.unwrap();
    // All from one address: the per-source share fills first, and its own
    // oldest give way.
    let mut stalled = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let mut stream = connect_from(Ipv4Addr::LOCALHOST, http).await;
        // A write to a connection already evicted may fail; it was taken.
        let _ = stream
            .write_all(b"POST /access/v1/evaluation HTTP/1.1\r\nHost: warden\r\nContent-Ty")
            .await;
        stalled.push(stream);
    }
    wait_metric(
        &warden,
        "warden_connections_accepted_total",
        "listener=\"http\"",
        FLOOD as f64,
    )
    .await;
    let started = Instant::now();
    let response = tokio::task::spawn_blocking(move || evaluation_request(http))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let open = metric(&warden, "warden_connections_open", "listener=\"http\"").await;
    assert!(open <= 1024.0, "{open} open from one address");
}

/// Reads until the server closes; the HTTP/2 frame types seen on the way.
async fn frames_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read.extend_from_slice(&buffer[..n]),
        }
    }
    let mut kinds = Vec::new();
    let mut rest = read.as_slice();
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        kinds.push(rest[3]);
        rest = &rest[(9 + length).min(rest.len())..];
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_connections_are_closed_and_a_pinging_client_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let warden = with_token(
        &dir,
        "[limits]\npreface_timeout = \"1s\"\nidle_timeout = \"2s\"\n",
    )
    .start()
    .await;
    let addr = warden.decision_addr;

    // Nothing sent: closed at the preface deadline.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let closed = timeout(Duration::from_secs(10), frames_until_closed(&mut silent)).await;
    assert_eq!(closed.ok(), Some(Vec::new()));
    wait_metric(
        &warden,
        "warden_connections_closed_total",
        "listener=\"decision\",reason=\"preface_timeout\"",
        1.0,
    )
    .await;

    // A preface and then nothing: an HTTP/2 connection that never carried
    // a call gets the preface deadline again as its idle allowance, then a
    // GOAWAY (frame type 7).
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    quiet.write_all(PREFACE).await.unwrap();
    quiet.write_all(SETTINGS).await.unwrap();
    let kinds = timeout(Duration::from_secs(10), frames_until_closed(&mut quiet))
        .await
        .expect("the quiet connection was never closed");
    assert!(kinds.contains(&7), "no GOAWAY among {kinds:?}");
    wait_metric(
        &warden,
        "warden_connections_closed_total",
        "listener=\"decision\",reason=\"idle\"",
        1.0,
    )
    .await;

    // A client that pings every 200 ms keeps its connection across the
    // idle timeout: no new connection is accepted for its second call.
    let mut pinging = WardenClient::connect(
        warden.endpoint(),
        ClientOptions {
            keepalive: Some(Duration::from_millis(200)),
            ..options()
        },
    )
    .await
    .unwrap();
    pinging.check(check()).await.unwrap();
    let idle_before = metric(
        &warden,
        "warden_connections_closed_total",
        "listener=\"decision\",reason=\"idle\"",
    )
    .await;
    let accepted = metric(
        &warden,
        "warden_connections_accepted_total",
        "listener=\"decision\"",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    pinging.check(check()).await.unwrap();
    assert_eq!(
        metric(
            &warden,
            "warden_connections_accepted_total",
            "listener=\"decision\""
        )
        .await,
        accepted,
        "the pinging client had to reconnect"
    );
    assert_eq!(
        metric(
            &warden,
            "warden_connections_closed_total",
            "listener=\"decision\",reason=\"idle\"",
        )
        .await,
        idle_before
    );

    // A client that does not ping is sent away after the idle timeout, and
    // simply reconnects for its next call.
    let mut quiet_client = WardenClient::connect(warden.endpoint(), options())
        .await
        .unwrap();
    quiet_client.check(check()).await.unwrap();
    wait_metric(
        &warden,
        "warden_connections_closed_total",
        "listener=\"decision\",reason=\"idle\"",
        idle_before + 1.0,
    )
    .await;
    quiet_client.check(check()).await.unwrap();
    drop(pinging);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let warden = with_token(
        &dir,
        "[limits]\nheader_read_timeout = \"1s\"\nbody_timeout = \"1s\"\nbody_min_rate = 100\n\
         check_timeout = \"60s\"\n",
    )
    .start()
    .await;
    let http = warden.http_addr.unwrap();

    // Half a request header, then silence: closed at the header deadline.
    let mut half = TcpStream::connect(http).await.unwrap();
    half.write_all(b"POST /access/v1/evaluation HTTP/1.1\r\nHost: w")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = timeout(Duration::from_secs(10), half.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the half-sent header was never cut off");
    wait_metric(
        &warden,
        "warden_connections_closed_total",
        "listener=\"http\",reason=\"header_timeout\"",
        1.0,
    )
    .await;

    // Whole headers with a token, then a byte every 300 ms of a 2,000-byte
    // body: under 100 bytes a second after the 1 s grace, so 408 long
    // before the 60 s call timeout.
    let mut slow = TcpStream::connect(http).await.unwrap();
    slow.write_all(
        format!(
            "POST /access/v1/evaluation HTTP/1.1\r\nHost: w\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Length: 2000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..2000 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let started = Instant::now();
    let mut response = Vec::new();
    let read = timeout(Duration::from_secs(20), reader.read_to_end(&mut response)).await;
    trickle.abort();
    assert!(read.is_ok(), "the slow body was never cut off");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("slower than 100 bytes a second"),
        "{response}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
