//! A real etcd on loopback for the cluster tests, with its own data
//! directory; it can be stopped and started again on the same ports and
//! data, as an outage would.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Pem;

/// The `etcd` binary: `WARDEN_ETCD`, else `etcd` on the PATH (Debian's
/// `etcd-server`, which `scripts/test` installs when it is missing).
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WARDEN_ETCD") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("etcd is not installed: run `scripts/test`, which installs Debian's etcd-server, or set WARDEN_ETCD")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Etcd {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    tls: Option<Tls>,
    dir: tempfile::TempDir,
}

/// Client TLS that requires a client certificate from `ca`; health is then
/// probed on a plaintext metrics port.
struct Tls {
    server: Pem,
    ca_file: PathBuf,
    metrics_port: u16,
}

impl Etcd {
    /// Starts a single-member etcd and waits until it is healthy.
    pub fn start() -> Etcd {
        Self::launch(None)
    }

    /// Starts etcd serving clients over TLS with `server`'s certificate,
    /// admitting only clients whose certificate chains to `ca_file`
    /// (`--client-cert-auth`).
    pub fn start_tls(server: Pem, ca_file: &Path) -> Etcd {
        Self::launch(Some(Tls {
            server,
            ca_file: ca_file.to_owned(),
            metrics_port: free_port(),
        }))
    }

    fn launch(tls: Option<Tls>) -> Etcd {
        let mut etcd = Etcd {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            tls,
            dir: tempfile::tempdir().expect("etcd data dir"),
        };
        etcd.resume();
        etcd
    }

    /// The client URL, as `cluster.etcd_endpoints` takes it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// `WARDEN_CLUSTER_ETCD_ENDPOINTS`' value for this etcd.
    pub fn endpoints_env(&self) -> String {
        format!("[\"{}\"]", self.endpoint())
    }

    /// Every key under `prefix` with its value and the revision that last
    /// changed it, as etcd holds them now (plaintext etcd only).
    pub async fn entries(&self, prefix: &str) -> Vec<(String, Vec<u8>, i64)> {
        use warden_proto::etcd::etcdserverpb::RangeRequest;
        use warden_proto::etcd::etcdserverpb::kv_client::KvClient;
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut kv = KvClient::connect(self.endpoint())
            .await
            .expect("connect to etcd")
            .max_decoding_message_size(usize::MAX);
        let response = kv
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: end,
                ..RangeRequest::default()
            })
            .await
            .expect("etcd range")
            .into_inner();
        response
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.value,
                    kv.mod_revision,
                )
            })
            .collect()
    }

    /// Kills etcd outright; its data stays for `resume`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub fn resume(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.endpoint();
        let mut command = Command::new(binary());
        let mut health_port = self.client_port;
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server.cert)
                .arg("--key-file")
                .arg(&tls.server.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca_file)
                .arg("--client-cert-auth")
                .arg("--listen-metrics-urls")
                .arg(format!("http://127.0.0.1:{}", tls.metrics_port));
            health_port = tls.metrics_port;
        }
        let child = command
            .arg("--name")
            .arg("warden-test")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("warden-test={peer}"))
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = format!("127.0.0.1:{health_port}").parse().expect("address");
        loop {
            if healthy(addr) {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether etcd answers `/health` with `true`; a connection reset while
/// it is still starting is a no, not a failure.
fn healthy(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
        && response.contains("true")
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
