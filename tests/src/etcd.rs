//! A real etcd on loopback for the cluster tests, with its own data
//! directory; it can be stopped and started again on the same ports and
//! data, as an outage would.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts a single-member etcd and waits until it is healthy.
    pub fn start() -> Etcd {
        let mut etcd = Etcd {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().expect("etcd data dir"),
        };
        etcd.resume();
        etcd
    }

    /// The client URL, as `cluster.etcd_endpoints` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `WARDEN_CLUSTER_ETCD_ENDPOINTS`' value for this etcd.
    pub fn endpoints_env(&self) -> String {
        format!("[\"{}\"]", self.endpoint())
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
        let child = Command::new(binary())
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
        let addr = format!("127.0.0.1:{}", self.client_port)
            .parse()
            .expect("address");
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
