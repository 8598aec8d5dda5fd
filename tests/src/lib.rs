//! Test support: the real `warden` binary started on loopback ports, and
//! real OPA loaded as an oracle.

pub mod audience;
pub mod cluster;
pub mod etcd;
pub mod pki;
pub mod process;
pub mod proxy;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// The repository's root, where `policies/` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The default policy bundle with `limits` as its `data.warden.limits`
/// (the default bundle's own demo limits left out), under `revision`.
/// A copy of the default policy without its demo limits, as
/// `scripts/loadgen` serves it: under load (or a long differential run) the
/// tripwire would contain the generated agents, and every verdict but DENY
/// would soon be gone.
pub fn policy_without_limits(into: &std::path::Path) -> PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let policy = into.join("policies");
    copy(&repo_root().join("policies"), &policy);
    std::fs::remove_dir_all(policy.join("warden/limits")).unwrap();
    policy
}

pub fn bundle_with_limits(revision: &str, limits: &serde_json::Value) -> Vec<u8> {
    let root = repo_root().join("policies");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".manifest")).unwrap()).unwrap();
    manifest["revision"] = serde_json::json!(revision);
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        ".manifest".to_owned(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let mut pending = vec![root.join("warden")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if name == "warden/limits" {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files.insert(
        "warden/limits/data.json".to_owned(),
        serde_json::to_vec(limits).unwrap(),
    );
    warden_bundle::write_tar_gz(&files).unwrap()
}

/// `[auth] tokens` as TOML (an inline array): for each `(name, role)`, the
/// token `token(name)` with that one role.
pub fn token_table(entries: &[(&str, String)], token: impl Fn(&str) -> String) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|(name, role)| {
            format!(
                "{{ name = \"{name}\", sha256 = \"{}\", roles = [\"{role}\"] }}",
                warden::auth::hash_token(&token(name))
            )
        })
        .collect();
    format!("[{}]", entries.join(", "))
}

/// The demo snapshots the server loads by default.
pub struct Demo {
    pub identity: serde_json::Value,
    pub entitlements: serde_json::Value,
}

impl Demo {
    pub fn load() -> Self {
        let read = |name: &str| {
            let path = repo_root().join("policies/demo").join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
        };
        Demo {
            identity: read("identity.json"),
            entitlements: read("entitlements.json"),
        }
    }

    /// A user whose first group is `group`.
    pub fn member_of(&self, group: &str) -> String {
        self.identity["users"]
            .as_object()
            .and_then(|users| {
                users
                    .iter()
                    .find(|(_, user)| user["groups"][0] == group)
                    .map(|(id, _)| id.clone())
            })
            .unwrap_or_else(|| panic!("no demo user in group {group}"))
    }

    /// A user in none of `groups`.
    pub fn outsider(&self, groups: &[&str]) -> String {
        self.identity["users"]
            .as_object()
            .and_then(|users| {
                users
                    .iter()
                    .find(|(_, user)| {
                        user["groups"]
                            .as_array()
                            .is_some_and(|gs| gs.iter().all(|g| !groups.iter().any(|x| g == x)))
                    })
                    .map(|(id, _)| id.clone())
            })
            .unwrap_or_else(|| panic!("every demo user is in one of {groups:?}"))
    }
}

/// A plain HTTP/1.1 GET; returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_request(addr, "GET", path, &[], None);
    (response.status, response.body)
}

/// An HTTP/1.1 response, headers with lower-case names.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the
/// body is everything the server sends after the headers).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    exchange(&mut stream, addr, method, path, headers, body)
}

/// TLS for `https_request`: the CA the server's certificate chains to, and
/// optionally a client certificate and key (PEM).
pub struct TlsClient<'a> {
    pub ca_pem: &'a [u8],
    pub identity: Option<(&'a [u8], &'a [u8])>,
    /// ALPN protocols offered; empty offers none.
    pub alpn: &'a [&'a [u8]],
}

/// `http_request` over TLS (the server's certificate names 127.0.0.1).
pub fn https_request(
    addr: SocketAddr,
    tls: &TlsClient<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<HttpResponse> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match tls.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    // Handshake first, so that a refused handshake is an error, not a
    // response with status 0.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(exchange(&mut stream, addr, method, path, headers, body))
}

fn exchange(
    stream: &mut (impl Read + Write),
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        // A server that refuses early may close before reading it all.
        let _ = stream.write_all(body);
    }
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
            // A TLS peer that closes without close_notify, or a reset after
            // an early refusal: what arrived is the response.
            Err(_) if !response.is_empty() => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Opens the store in `data_dir` (no server running on it), lets `edit`
/// change it, and flushes it. sled's background threads keep its lock a
/// moment after a `Db` is dropped, here or in a server that just stopped,
/// so the lock is waited for before opening and after closing: the next
/// opening, a server's included, finds it free.
pub fn edit_store<T>(data_dir: &std::path::Path, edit: impl FnOnce(&sled::Db) -> T) -> T {
    let dir = data_dir.join("db");
    wait_store_unlocked(&dir);
    let db = sled::open(&dir).expect("open the store");
    let result = edit(&db);
    db.flush().expect("flush the store");
    drop(db);
    wait_store_unlocked(&dir);
    result
}

fn wait_store_unlocked(dir: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // sled's lock is an flock on `db/db`; std's try_lock is the same.
        let free = match std::fs::File::open(dir.join("db")) {
            Ok(file) => file.try_lock().is_ok(),
            Err(_) => true,
        };
        if free {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store in {} stayed locked",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
