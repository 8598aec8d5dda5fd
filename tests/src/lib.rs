//! Test support: the real `warden` binary started on loopback ports, and
//! real OPA loaded as an oracle.

pub mod pki;
pub mod process;

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
        stream.write_all(body).unwrap();
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
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
