//! A real Warden server inside the benchmark's process, on loopback ports,
//! with the repository's policy and demo snapshots.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use warden::config::{Config, RawConfig};
use warden::server::ServeError;
use warden_proto::v1 as pb;

/// The default configuration on ephemeral ports, storing in `data`.
pub fn raw_config(data: &Path) -> RawConfig {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut raw = RawConfig::default();
    raw.server.decision_addr = "127.0.0.1:0".into();
    raw.server.admin_addr = "127.0.0.1:0".into();
    raw.server.http_addr = "127.0.0.1:0".into();
    raw.server.ops_addr = "127.0.0.1:0".into();
    raw.server.data_dir = data.display().to_string();
    raw.policy.bundle = root.join("policies").display().to_string();
    raw.snapshots.identity = root
        .join("policies/demo/identity.json")
        .display()
        .to_string();
    raw.snapshots.entitlements = root
        .join("policies/demo/entitlements.json")
        .display()
        .to_string();
    raw
}

/// A running server; `stop` drains it.
pub struct Running {
    pub decision: SocketAddr,
    pub admin: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts a server on the current runtime and waits until it listens.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<(&'static str, SocketAddr)>();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(warden::server::serve(
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |listener, addr| {
            let _ = addr_tx.send((listener, addr));
        },
    ));
    let (mut decision, mut admin) = (None, None);
    while decision.is_none() || admin.is_none() {
        let (listener, addr) =
            tokio::task::block_in_place(|| addr_rx.recv_timeout(Duration::from_secs(60)))
                .context("the server did not start")?;
        match listener {
            "decision" => decision = Some(addr),
            "admin" => admin = Some(addr),
            _ => {}
        }
    }
    Ok(Running {
        decision: decision.context("no decision listener")?,
        admin: admin.context("no admin listener")?,
        stop,
        task,
    })
}

impl Running {
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// A check the default policy allows: the demo's expense assistant reading
/// an expense for a finance member. Allowed, so that a bench repeating it
/// never trips the default bundle's tripwire (30 entitlement denials) and
/// measures kill-switch denials instead.
pub fn check_request(agent: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        platform: "copilot-studio".into(),
        agent: Some(pb::Agent {
            id: agent.into(),
            attributes: None,
        }),
        principal: Some(pb::Principal {
            r#type: "user".into(),
            id: "arjun.cohen".into(),
            attributes: None,
        }),
        action: Some(pb::Action {
            name: "expenses.read".into(),
            attributes: None,
        }),
        resource: Some(pb::Resource {
            r#type: "expense".into(),
            id: "exp-1".into(),
            attributes: None,
        }),
        ..Default::default()
    }
}
