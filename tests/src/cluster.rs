//! Cluster-mode helpers shared by the cluster test files: replicas of the
//! real binary joined to a real etcd, and the checks and switches they use.

use std::time::{Duration, Instant};

use tonic::Code;
use warden_client::admin::{EngageKillSwitchRequest, KillSwitch, KillSwitchMode, KillSwitchScope};
use warden_client::{AdminClient, CheckBuilder, CheckRequest, Decision, WardenClient};

use crate::Demo;
use crate::etcd::Etcd;
use crate::process::{Warden, WardenBuilder};

pub fn replica(etcd: &Etcd, name: &str, data_dir: Option<&std::path::Path>) -> Warden {
    let builder = replica_builder(etcd, name);
    match data_dir {
        Some(dir) => builder.data_dir(dir),
        None => builder,
    }
    .start_listening()
}

pub fn replica_builder(etcd: &Etcd, name: &str) -> WardenBuilder {
    Warden::builder()
        .env("WARDEN_CLUSTER_ETCD_ENDPOINTS", etcd.endpoints_env())
        .env("WARDEN_CLUSTER_REPLICA_ID", name)
        .env("WARDEN_CLUSTER_ETCD_TIMEOUT", "1s")
}

/// Waits until `replica` reports `connected` (or `what` otherwise).
pub async fn wait_status(admin: &mut AdminClient, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = admin.status().await.map(|s| s.cluster);
        if status.as_deref().is_ok_and(|s| s.starts_with(what)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster status stayed {status:?}, never {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Replicas {
    pub servers: Vec<Warden>,
    pub admins: Vec<AdminClient>,
    pub clients: Vec<WardenClient>,
}

pub async fn three(etcd: &Etcd) -> Replicas {
    joined(
        ["r1", "r2", "r3"]
            .iter()
            .map(|name| replica(etcd, name, None))
            .collect(),
    )
    .await
}

/// `servers` once each is serving and in step with etcd.
pub async fn joined(servers: Vec<Warden>) -> Replicas {
    let mut admins = Vec::new();
    let mut clients = Vec::new();
    for server in &servers {
        server.wait_serving().await;
        let mut admin = server.admin().await;
        wait_status(&mut admin, "connected").await;
        admins.push(admin);
        clients.push(server.client().await);
    }
    Replicas {
        servers,
        admins,
        clients,
    }
}

pub fn allowed() -> CheckRequest {
    let finance = Demo::load().member_of("finance");
    CheckBuilder::new(
        "copilot-studio",
        "expense-assistant",
        &finance,
        "expenses.submit",
        "expense",
    )
    .resource_id("exp-1")
    .build()
}

pub fn engage_request(agent: &str) -> EngageKillSwitchRequest {
    EngageKillSwitchRequest {
        scope: Some(KillSwitchScope {
            agent_id: agent.into(),
            ..KillSwitchScope::default()
        }),
        mode: KillSwitchMode::DenyAll as i32,
        reason: "incident".into(),
        engaged_by: "tests".into(),
        ..EngageKillSwitchRequest::default()
    }
}

/// How long until `client` denies `request` because of `switch`.
pub async fn until_stopped(
    client: &mut WardenClient,
    switch: &KillSwitch,
    started: Instant,
) -> Duration {
    loop {
        let response = client.check(allowed()).await.unwrap();
        if response
            .kill_switch
            .as_ref()
            .is_some_and(|k| k.id == switch.id)
        {
            assert_eq!(response.decision(), Decision::Deny);
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "switch {} never reached this replica",
            switch.id
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `result` is a refusal with `code`.
pub fn refused_with<T: std::fmt::Debug>(result: Result<T, warden_client::ClientError>, code: Code) {
    match result {
        Err(error) => assert_eq!(error.status().map(|s| s.code()), Some(code), "{error}"),
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
    }
}

/// A check the `calendar-assistant` switch stops (and no other here).
pub fn calendar() -> CheckRequest {
    CheckBuilder::new(
        "copilot-studio",
        "calendar-assistant",
        "u",
        "calendar.read",
        "calendar",
    )
    .build()
}

/// Stops etcd and waits until every replica says it is degraded.
pub async fn outage(etcd: &mut Etcd, replicas: &mut Replicas) {
    etcd.stop();
    for admin in &mut replicas.admins {
        wait_status(admin, "degraded").await;
    }
}
