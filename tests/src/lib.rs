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
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}
