//! Starting the real `warden` binary on `127.0.0.1:0` and talking to it.
//!
//! The binaries are built once per test process with the same cargo and
//! profile as the tests, so a test never runs a stale server.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use warden_client::{AdminClient, ClientOptions, WardenClient};

use crate::repo_root;

/// Paths of the binaries under test.
#[derive(Debug)]
pub struct Binaries {
    pub warden: PathBuf,
    pub wardenctl: PathBuf,
}

/// The `warden` and `wardenctl` binaries cargo built for these tests: this
/// package's `e2e-*` targets, which cargo builds before running its
/// integration tests, next to them in `target/<profile>/`.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executables live in target/<profile>/deps")
            .to_path_buf();
        let binaries = Binaries {
            warden: dir.join("e2e-warden"),
            wardenctl: dir.join("e2e-wardenctl"),
        };
        for binary in [&binaries.warden, &binaries.wardenctl] {
            assert!(
                binary.exists(),
                "{} is missing; run the tests with `cargo test`",
                binary.display()
            );
        }
        binaries
    })
}

/// How to start a server; defaults to the repository's policy and demo
/// snapshots, ephemeral ports and a fresh data directory.
#[derive(Debug, Default)]
pub struct WardenBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl WardenBuilder {
    /// Adds a flag to `warden serve` (they override the defaults set here).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Uses `dir` as the data directory instead of a fresh temporary one.
    /// Serves a copy of the default policy without its demo limits, made
    /// in `dir` (see `crate::policy_without_limits`).
    pub fn without_demo_limits(self, dir: &std::path::Path) -> Self {
        let policy = crate::policy_without_limits(dir);
        self.env("WARDEN_POLICY_BUNDLE", policy.display().to_string())
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Starts the server and waits until gRPC health reports SERVING.
    pub async fn start(self) -> Warden {
        match self.spawn() {
            Ok(warden) => {
                warden.wait_serving().await;
                warden
            }
            Err(failure) => panic!("warden did not start: {failure}"),
        }
    }

    /// Starts the server and returns once it listens, without waiting for
    /// it to report SERVING (for servers expected to start not ready).
    pub fn start_listening(self) -> Warden {
        match self.spawn() {
            Ok(warden) => warden,
            Err(failure) => panic!("warden did not start: {failure}"),
        }
    }

    /// Starts the server and expects it to exit before listening; returns
    /// its exit status and standard error.
    pub fn start_expecting_failure(self) -> (ExitStatus, String) {
        match self.spawn() {
            Ok(mut warden) => {
                let _ = warden.child.kill();
                panic!("warden started but was expected to fail");
            }
            Err(StartFailure { status, stderr }) => (status.expect("warden exited"), stderr),
        }
    }

    fn spawn(self) -> Result<Warden, StartFailure> {
        let temp = tempfile::tempdir().expect("temporary directory");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let root = repo_root();
        let mut command = Command::new(&binaries().warden);
        command
            .current_dir(&root)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.args)
            .args(
                // Ephemeral loopback ports unless the test names its own.
                [
                    "--decision-addr",
                    "--admin-addr",
                    "--http-addr",
                    "--ops-addr",
                ]
                .into_iter()
                .filter(|flag| !self.args.iter().any(|a| a == flag))
                .flat_map(|flag| [flag, "127.0.0.1:0"]),
            )
            .env_remove("WARDEN_CONFIG")
            .env("WARDEN_LOG_LEVEL", "warden=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn warden");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_reader = None;
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = stderr.clone();
            stderr_reader = Some(std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .expect("stderr buffer")
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }));
        }

        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut decision_addr = None;
        let mut admin_addr = None;
        let mut ops_addr = None;
        let mut http_addr = None;
        // Only `--http-addr ""` turns the HTTP listener off here: the flag
        // added above overrides the variable and the config file.
        let http_off = self
            .args
            .windows(2)
            .any(|pair| pair[0] == "--http-addr" && pair[1].is_empty());
        while decision_addr.is_none()
            || admin_addr.is_none()
            || ops_addr.is_none()
            || (http_addr.is_none() && !http_off)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    let addr = event["addr"]
                        .as_str()
                        .and_then(|a| a.parse::<SocketAddr>().ok());
                    match event["listener"].as_str() {
                        Some("decision") => decision_addr = addr,
                        Some("admin") => admin_addr = addr,
                        Some("ops") => ops_addr = addr,
                        Some("http") => http_addr = addr,
                        _ => {}
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // The pipe closes with the process; read it to the end.
                        if let Some(reader) = stderr_reader.take() {
                            let _ = reader.join();
                        }
                        return Err(StartFailure {
                            status: Some(status),
                            stderr: stderr.lock().expect("stderr buffer").clone(),
                        });
                    }
                    if left.is_zero() {
                        let _ = child.kill();
                        return Err(StartFailure {
                            status: None,
                            stderr: stderr.lock().expect("stderr buffer").clone(),
                        });
                    }
                }
            }
        }
        Ok(Warden {
            child,
            decision_addr: decision_addr.expect("decision address"),
            admin_addr: admin_addr.expect("admin address"),
            ops_addr: ops_addr.expect("ops address"),
            http_addr,
            data_dir,
            stderr,
            _temp: temp,
        })
    }
}

#[derive(Debug)]
struct StartFailure {
    status: Option<ExitStatus>,
    stderr: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status {:?}\n--- stderr ---\n{}",
            self.status, self.stderr
        )
    }
}

/// A running `warden serve`, killed when dropped.
#[derive(Debug)]
pub struct Warden {
    child: Child,
    pub decision_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    /// `None` when the test turned the HTTP listener off.
    pub http_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    _temp: tempfile::TempDir,
}

impl Warden {
    pub fn builder() -> WardenBuilder {
        WardenBuilder::default()
    }

    /// A server with every default.
    pub async fn start() -> Warden {
        Warden::builder().start().await
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.decision_addr)
    }

    pub fn admin_endpoint(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    pub async fn admin(&self) -> AdminClient {
        AdminClient::connect(self.admin_endpoint(), ClientOptions::default())
            .await
            .expect("connect to warden's admin listener")
    }

    pub async fn client(&self) -> WardenClient {
        WardenClient::connect(self.endpoint(), ClientOptions::default())
            .await
            .expect("connect to warden")
    }

    /// What the server has written to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Polls gRPC health until the decision service reports SERVING.
    pub async fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut delay = Duration::from_millis(5);
        loop {
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(self.endpoint())
                .expect("endpoint")
                .connect()
                .await
            {
                let status = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: "warden.v1.DecisionService".into(),
                    })
                    .await
                    .map(|r| r.into_inner().status);
                if status.is_ok_and(|s| s == ServingStatus::Serving as i32) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "warden never reported SERVING\n--- stderr ---\n{}",
                self.stderr()
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// Polls gRPC health at `endpoint`, connecting with `options` (TLS, a
    /// token), until it answers: for servers `wait_serving`'s plaintext
    /// probe cannot reach.
    pub async fn wait_health(&self, endpoint: String, options: &ClientOptions) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(channel) = warden_client::connect_channel(endpoint.clone(), options).await
                && HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: "warden.v1.DecisionService".into(),
                    })
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never served:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    /// Sends SIGTERM and waits for the exit while the test's runtime goes
    /// on: its idle client connections must answer the server's GOAWAY
    /// ping, or the drain waits its whole grace period for them.
    pub async fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for warden") {
                return status;
            }
            assert!(Instant::now() < deadline, "warden did not exit in 30 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `terminate` for a test without a runtime (and so without client
    /// connections to keep alive).
    pub fn terminate_blocking(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit(Duration::from_secs(30))
    }

    /// Kills the process outright, as a crash would.
    pub fn kill9(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.wait_exit(Duration::from_secs(30))
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for warden") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "warden did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- warden stderr ---\n{}", self.stderr());
        }
    }
}
