//! Cluster mode end to end: a real etcd and three real replicas on
//! loopback, each with its own data directory. Switches and bundles pushed
//! to one reach all; losing etcd leaves replicas serving and refusing
//! bundle and snapshot writes; they converge when it is back, and a
//! restarted replica catches up. Kill switches during an outage:
//! cluster_outage.rs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tonic::Code;
use warden_client::admin::BundleTarget;
use warden_client::{AdminClient, Decision, WardenClient};
use warden_e2e::cluster::{
    Replicas, allowed, calendar, engage_request, joined, refused_with, replica, replica_builder,
    three, until_stopped, wait_status,
};
use warden_e2e::etcd::Etcd;
use warden_e2e::http_get;
use warden_e2e::pki::{Authority, Pem};
use warden_e2e::process::Warden;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test]
async fn an_engage_on_one_replica_is_enforced_by_all_within_a_second() {
    let etcd = Etcd::start();
    let mut replicas = three(&etcd).await;
    for client in &mut replicas.clients {
        assert_eq!(
            client.check(allowed()).await.unwrap().decision(),
            Decision::Allow
        );
    }
    // More rounds for a measurement: WARDEN_PROPAGATION_ROUNDS=200.
    let rounds: usize = std::env::var("WARDEN_PROPAGATION_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    for round in 0..rounds {
        let engager = round % 3;
        let started = Instant::now();
        let switch = replicas.admins[engager]
            .engage_kill_switch(engage_request("expense-assistant"))
            .await
            .unwrap();
        acks.push(started.elapsed());
        // In force on the acknowledging replica the moment it answers.
        let here = replicas.clients[engager].check(allowed()).await.unwrap();
        assert_eq!(here.kill_switch.map(|k| k.id), Some(switch.id.clone()));
        let mut slowest = Duration::ZERO;
        for client in &mut replicas.clients {
            slowest = slowest.max(until_stopped(client, &switch, started).await);
        }
        assert!(
            slowest < Duration::from_secs(1),
            "round {round}: {slowest:?}"
        );
        latencies.push(slowest);
        replicas.admins[(engager + 1) % 3]
            .release_kill_switch(&switch.id, "over", "tests")
            .await
            .unwrap();
        // As on one node, a second release is refused, wherever it is asked.
        refused_with(
            replicas.admins[(engager + 2) % 3]
                .release_kill_switch(&switch.id, "over", "tests")
                .await,
            Code::FailedPrecondition,
        );
        for client in &mut replicas.clients {
            let deadline = Instant::now() + Duration::from_secs(10);
            while client.check(allowed()).await.unwrap().decision() != Decision::Allow {
                assert!(Instant::now() < deadline, "the release never arrived");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    latencies.sort();
    acks.sort();
    eprintln!(
        "engage acknowledged: p50 {:?}, p99 {:?}; enforced on all 3 replicas: p50 {:?}, p99 {:?} ({} engages)",
        percentile(&acks, 0.5),
        percentile(&acks, 0.99),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    drop(replicas.servers);
}

fn bundle(revision: &str) -> Vec<u8> {
    bundle_with_data(revision, 0)
}

/// A bundle that denies everything, with `padding` bytes of incompressible
/// data (to push past what one etcd value or one gRPC message holds).
fn bundle_with_data(revision: &str, padding: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: String = (0..padding)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"0123456789abcdef"[(state % 16) as usize])
        })
        .collect();
    let files: BTreeMap<String, Vec<u8>> = [
        (
            ".manifest".to_owned(),
            format!(r#"{{"revision": "{revision}", "roots": ["warden"]}}"#).into_bytes(),
        ),
        (
            "warden/authz/policy.rego".to_owned(),
            b"package warden.authz\n\ndecision := {\"allow\": false, \"reasons\": [\"closed\"]}\n"
                .to_vec(),
        ),
        (
            "warden/padding/data.json".to_owned(),
            serde_json::to_vec(&serde_json::json!({ "noise": noise })).unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    warden_bundle::write_tar_gz(&files).unwrap()
}

/// Waits until every replica evaluates `digest` as its shadow (`None`: no
/// shadow).
async fn wait_shadows(admins: &mut [AdminClient], digest: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut seen = Vec::new();
        for admin in admins.iter_mut() {
            seen.push(admin.status().await.unwrap().shadow.map(|b| b.digest));
        }
        if seen.iter().all(|s| s.as_deref() == digest) {
            return;
        }
        assert!(Instant::now() < deadline, "shadows: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_bundle_pushed_to_one_replica_is_served_by_all() {
    let etcd = Etcd::start();
    let mut replicas = three(&etcd).await;
    let pushed = replicas.admins[1]
        .put_bundle(bundle("closed-v1"), BundleTarget::Active)
        .await
        .unwrap();
    assert_eq!(pushed.revision, "closed-v1");
    for (admin, client) in replicas.admins.iter_mut().zip(&mut replicas.clients) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let active = admin.status().await.unwrap().active.unwrap();
            if active.digest == pushed.digest {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still serving {}",
                active.revision
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let response = client.check(allowed()).await.unwrap();
        assert_eq!(response.reasons, ["closed"]);
        assert_eq!(response.policy_revision, "closed-v1");
    }
    replicas.admins[0]
        .put_bundle(bundle("closed-v2"), BundleTarget::Active)
        .await
        .unwrap();
    serve_everywhere(&mut replicas.clients, "closed-v2").await;
    // A rollback on another replica goes back everywhere, and a second one
    // (on a third) further back, as on a single node; then there is nothing
    // left to roll back to.
    let back = replicas.admins[2].rollback().await.unwrap();
    assert_eq!(back.revision, "closed-v1");
    serve_everywhere(&mut replicas.clients, "closed-v1").await;
    let back = replicas.admins[1].rollback().await.unwrap();
    assert!(
        back.revision.starts_with("sha256:"),
        "the seed bundle: {back:?}"
    );
    refused_with(
        replicas.admins[0].rollback().await,
        Code::FailedPrecondition,
    );
    for client in &mut replicas.clients {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.check(allowed()).await.unwrap().decision() != Decision::Allow {
            assert!(Instant::now() < deadline, "the rollback never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A shadow set on one replica and cleared on another: every replica
    // evaluates it, then none does.
    let shadow = replicas.admins[0]
        .put_bundle(bundle("closed-shadow"), BundleTarget::Shadow)
        .await
        .unwrap();
    wait_shadows(&mut replicas.admins, Some(&shadow.digest)).await;
    let cleared = replicas.admins[2].clear_shadow().await.unwrap().unwrap();
    assert_eq!(cleared.digest, shadow.digest);
    wait_shadows(&mut replicas.admins, None).await;
    assert!(replicas.admins[1].clear_shadow().await.unwrap().is_none());
    drop(replicas.servers);
}

#[tokio::test]
async fn without_etcd_replicas_serve_report_degraded_refuse_writes_and_converge_after() {
    let mut etcd = Etcd::start();
    let mut replicas = three(&etcd).await;
    let before = replicas.admins[0]
        .engage_kill_switch(engage_request("calendar-assistant"))
        .await
        .unwrap();

    // Everywhere before etcd goes.
    for client in &mut replicas.clients {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client
            .check(calendar())
            .await
            .unwrap()
            .kill_switch
            .is_none()
        {
            assert!(Instant::now() < deadline, "the engage never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    etcd.stop();
    for (i, admin) in replicas.admins.iter_mut().enumerate() {
        wait_status(admin, "degraded").await;
        let (status, body) = http_get(replicas.servers[i].ops_addr, "/readyz");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("degraded"), "{body}");
        // Bundles and snapshots wait for etcd; kill switches do not
        // (cluster_outage.rs).
        refused_with(
            admin
                .put_bundle(bundle("while-down"), BundleTarget::Active)
                .await,
            Code::Unavailable,
        );
    }
    // Still answering, with what they knew: the earlier switch holds.
    for client in &mut replicas.clients {
        assert_eq!(
            client.check(allowed()).await.unwrap().decision(),
            Decision::Allow
        );
        let stopped = client.check(calendar()).await.unwrap();
        assert_eq!(stopped.kill_switch.map(|k| k.id), Some(before.id.clone()));
    }

    etcd.resume();
    for admin in &mut replicas.admins {
        wait_status(admin, "connected").await;
    }
    let after = replicas.admins[2]
        .engage_kill_switch(engage_request("expense-assistant"))
        .await
        .unwrap();
    let started = Instant::now();
    for client in &mut replicas.clients {
        until_stopped(client, &after, started).await;
    }
    let (status, body) = http_get(replicas.servers[0].ops_addr, "/readyz");
    assert_eq!((status, body.trim()), (200, "ready"));
}

#[tokio::test]
async fn a_restarted_replica_catches_up_and_records_carry_the_replica() {
    let etcd = Etcd::start();
    let mut replicas = three(&etcd).await;
    let dir = replicas.servers[2].data_dir.clone();
    replicas.clients.pop();
    replicas.admins.pop();
    let mut stopped = replicas.servers.pop().unwrap();
    stopped.kill9();
    drop(stopped);

    let switch = replicas.admins[0]
        .engage_kill_switch(engage_request("expense-assistant"))
        .await
        .unwrap();
    let pushed = replicas.admins[1]
        .put_bundle(bundle("while-away"), BundleTarget::Stored)
        .await
        .unwrap();
    // Larger than one etcd value and than a default gRPC message: chunked.
    let large = bundle_with_data("large", 9 * 1024 * 1024);
    assert!(large.len() > 4 * 1024 * 1024, "{} bytes", large.len());
    let active = replicas.admins[0]
        .put_bundle(large, BundleTarget::Active)
        .await
        .unwrap();
    let mut snapshot: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(warden_e2e::repo_root().join("policies/demo/identity.json"))
            .unwrap(),
    )
    .unwrap();
    snapshot["version"] = serde_json::json!("identity-9-999");
    replicas.admins[1]
        .put_snapshot("identity", serde_json::to_vec(&snapshot).unwrap())
        .await
        .unwrap();

    let back = replica(&etcd, "r3", Some(&dir));
    back.wait_serving().await;
    let mut admin = back.admin().await;
    wait_status(&mut admin, "connected").await;
    let mut client = back.client().await;
    until_stopped(&mut client, &switch, Instant::now()).await;
    let bundles = admin.list_bundles().await.unwrap();
    assert!(
        bundles.iter().any(|b| b.digest == pushed.digest),
        "the bundle stored while it was away is stored here too"
    );
    let status = admin.status().await.unwrap();
    assert_eq!(status.replica_id, "r3");
    assert_eq!(status.active.map(|b| b.digest), Some(active.digest));
    let identity = status
        .snapshots
        .iter()
        .find(|s| s.kind == "identity")
        .unwrap();
    assert_eq!(identity.version, "identity-9-999");

    // Each replica's audit chain names it.
    let mut audit = warden_client::audit::AuditClient::connect(
        back.admin_endpoint(),
        warden_client::ClientOptions::default(),
    )
    .await
    .unwrap();
    client.check(allowed()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut bytes = Vec::new();
        audit.export(0, 0, &mut bytes).await.unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let decisions: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"type\":\"decision\""))
            .collect();
        if !decisions.is_empty() {
            assert!(
                decisions.iter().all(|l| l.contains("\"replica\":\"r3\"")),
                "{decisions:?}"
            );
            assert!(
                text.contains("cluster.applied"),
                "remote changes are audited"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no decision record yet");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_replica_that_cannot_apply_a_bundle_is_degraded_but_still_takes_and_enforces_switches() {
    let etcd = Etcd::start();
    // r1 and r2 accept bundles whose own tests fail; r3 (the default)
    // refuses them: the same push cannot be applied everywhere.
    let lax = |name: &str| {
        replica_builder(&etcd, name)
            .env("WARDEN_BUNDLES_RUN_TESTS", "false")
            .start_listening()
    };
    let servers = [lax("r1"), lax("r2"), replica(&etcd, "r3", None)];
    let Replicas {
        servers,
        mut admins,
        mut clients,
    } = joined(servers.into()).await;
    let failing: BTreeMap<String, Vec<u8>> = [
        (
            ".manifest".to_owned(),
            br#"{"revision": "untested", "roots": ["warden"]}"#.to_vec(),
        ),
        (
            "warden/authz/policy.rego".to_owned(),
            b"package warden.authz\n\ndecision := true\n\ntest_fails if false\n".to_vec(),
        ),
    ]
    .into_iter()
    .collect();
    admins[0]
        .put_bundle(
            warden_bundle::write_tar_gz(&failing).unwrap(),
            BundleTarget::Active,
        )
        .await
        .unwrap();
    wait_status(&mut admins[2], "degraded: cannot apply").await;
    let (status, body) = http_get(servers[2].ops_addr, "/readyz");
    assert_eq!(status, 200);
    assert!(body.contains("degraded"), "{body}");
    // Its history is not the cluster's: a rollback through it would go a
    // step too far everywhere.
    match admins[2].rollback().await {
        Err(error) => {
            assert_eq!(error.status().map(|s| s.code()), Some(Code::Unavailable));
            assert!(
                error.to_string().contains("roll back from another replica"),
                "{error}"
            );
        }
        Ok(bundle) => panic!("rolled back to {bundle:?}"),
    }
    // It still serves what it had, and switches still go through it.
    let switch = admins[2]
        .engage_kill_switch(engage_request("expense-assistant"))
        .await
        .unwrap();
    let started = Instant::now();
    for client in &mut clients {
        until_stopped(client, &switch, started).await;
    }
    // A bundle it can apply repairs it.
    admins[1]
        .put_bundle(bundle("closed-v2"), BundleTarget::Active)
        .await
        .unwrap();
    wait_status(&mut admins[2], "connected").await;
    let active = admins[2].status().await.unwrap().active.unwrap();
    assert_eq!(active.revision, "closed-v2");
}

/// A replica reaching etcd over TLS: trusting `ca_file`, presenting
/// `client` when given.
fn tls_replica(etcd: &Etcd, name: &str, ca_file: &std::path::Path, client: Option<&Pem>) -> Warden {
    let builder = replica_builder(etcd, name)
        .env("WARDEN_CLUSTER_ETCD_CA_FILE", ca_file.display().to_string());
    match client {
        Some(pem) => builder
            .env(
                "WARDEN_CLUSTER_ETCD_CERT_FILE",
                pem.cert.display().to_string(),
            )
            .env(
                "WARDEN_CLUSTER_ETCD_KEY_FILE",
                pem.key.display().to_string(),
            ),
        None => builder,
    }
    .start_listening()
}

#[tokio::test]
async fn replicas_share_etcd_over_tls_and_etcd_admits_only_certified_warden() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new(dir.path(), "etcd-ca");
    let etcd = Etcd::start_tls(authority.server("etcd-server"), &authority.cert_file);
    let client = authority.valid_client("replica", "warden", None);

    let servers = [
        tls_replica(&etcd, "r1", &authority.cert_file, Some(&client)),
        tls_replica(&etcd, "r2", &authority.cert_file, Some(&client)),
    ];
    let Replicas {
        // Kept: dropping them stops the replicas.
        servers: _servers,
        mut admins,
        mut clients,
    } = joined(servers.into()).await;

    // Without a client certificate etcd refuses the handshake; trusting
    // another CA, the replica refuses etcd's certificate, and so it does a
    // certificate from the right CA for another name. None ever connects,
    // so none takes writes nor sees the others' switches.
    let stranger = Authority::new(dir.path(), "stranger-ca");
    let misnamed = Etcd::start_tls(
        authority.server_named("etcd-misnamed", &["etcd.internal"]),
        &authority.cert_file,
    );
    let outsiders = [
        tls_replica(&etcd, "no-cert", &authority.cert_file, None),
        tls_replica(&etcd, "wrong-ca", &stranger.cert_file, Some(&client)),
        tls_replica(&misnamed, "wrong-name", &authority.cert_file, Some(&client)),
    ];
    let mut outsider_admins = Vec::new();
    for outsider in &outsiders {
        outsider.wait_serving().await;
        outsider_admins.push(outsider.admin().await);
    }

    let started = Instant::now();
    let switch = admins[0]
        .engage_kill_switch(engage_request("expense-assistant"))
        .await
        .unwrap();
    for client in &mut clients {
        until_stopped(client, &switch, started).await;
    }

    // Long enough for several connection attempts (1 s timeout each).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (outsider, admin) in outsiders.iter().zip(&mut outsider_admins) {
        let status = admin.status().await.unwrap().cluster;
        assert!(status.starts_with("degraded"), "{status}");
        // An engage is taken where it lands, but etcd never gets it.
        let pending = admin
            .engage_kill_switch(engage_request("calendar-assistant"))
            .await
            .unwrap();
        assert!(pending.pending_replication, "{pending:?}");
        refused_with(
            admin.put_bundle(vec![1], BundleTarget::Active).await,
            Code::Unavailable,
        );
        let mut client = outsider.client().await;
        let response = client.check(allowed()).await.unwrap();
        assert_eq!(response.decision(), Decision::Allow, "{response:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        for admin in &mut admins {
            let active = admin.list_kill_switches(10).await.unwrap().active;
            assert!(active.iter().all(|k| k.id != pending.id), "{active:?}");
        }
    }
}

/// What etcd holds: blobs by SHA-256 with their meta's revision, the
/// SHA-256s its pointers name, and how many stored-bundle pointers.
struct Held {
    blobs: BTreeMap<String, i64>,
    named: std::collections::BTreeSet<String>,
    stored: usize,
}

async fn held(etcd: &Etcd) -> Held {
    let mut blobs = BTreeMap::new();
    for (key, _, revision) in etcd.entries("/warden-blobs/").await {
        let rest = key.strip_prefix("/warden-blobs/").unwrap();
        let (sha, part) = rest.split_once('/').unwrap();
        let meta = blobs.entry(sha.to_owned()).or_insert(0);
        if part == "meta" {
            *meta = revision;
        }
    }
    let mut named = std::collections::BTreeSet::new();
    let mut stored = 0;
    for (key, value, _) in etcd.entries("/warden/").await {
        if !key.starts_with("/warden/bundle/") && !key.starts_with("/warden/snapshot/") {
            continue;
        }
        let pointer: serde_json::Value = serde_json::from_slice(&value).unwrap();
        stored += usize::from(key.starts_with("/warden/bundle/stored/"));
        let sha = pointer["archive_sha256"]
            .as_str()
            .or(pointer["sha256"].as_str())
            .unwrap();
        named.insert(sha.to_owned());
    }
    Held {
        blobs,
        named,
        stored,
    }
}

/// The blob the active pointer names.
async fn active_blob(etcd: &Etcd) -> String {
    let (_, value, _) = etcd.entries("/warden/bundle/active").await.remove(0);
    let pointer: serde_json::Value = serde_json::from_slice(&value).unwrap();
    pointer["archive_sha256"].as_str().unwrap().to_owned()
}

/// Waits until etcd holds exactly the blobs its pointers name, and
/// `stored` stored-bundle pointers; returns how many blobs that is.
async fn wait_collected(etcd: &Etcd, stored: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = held(etcd).await;
        if now.blobs.keys().eq(now.named.iter()) && now.stored == stored {
            return now.blobs.len();
        }
        assert!(
            Instant::now() < deadline,
            "etcd holds {} blobs, pointers name {}, {} stored pointers",
            now.blobs.len(),
            now.named.len(),
            now.stored
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_everywhere(clients: &mut [WardenClient], revision: &str) {
    for client in clients {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.check(allowed()).await.unwrap().policy_revision != revision {
            assert!(Instant::now() < deadline, "{revision} never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn etcd_sheds_what_no_pointer_names_and_replicas_still_find_what_they_need() {
    let etcd = Etcd::start();
    let start = |name: &str| {
        replica_builder(&etcd, name)
            .env("WARDEN_CLUSTER_BLOB_GRACE", "3s")
            .env("WARDEN_BUNDLES_KEEP", "2")
            .start_listening()
    };
    let servers = [start("r1"), start("r2")];
    let Replicas {
        // Kept: dropping them stops the replicas.
        servers: _servers,
        mut admins,
        mut clients,
    } = joined(servers.into()).await;
    let mut digests = Vec::new();
    let mut v3_blob = String::new();
    for v in 1..=4 {
        if v == 4 {
            // Replaced now, so within its grace below.
            v3_blob = active_blob(&etcd).await;
        }
        let record = admins[0]
            .put_bundle(bundle(&format!("closed-v{v}")), BundleTarget::Active)
            .await
            .unwrap();
        digests.push(record.digest);
    }
    let now = held(&etcd).await;
    assert!(
        now.blobs.contains_key(&v3_blob) && !now.named.contains(&v3_blob),
        "v3's blob went before its grace was over"
    );
    // The active bundle and the two snapshots.
    assert_eq!(wait_collected(&etcd, 0).await, 3);
    let v4_blob = active_blob(&etcd).await;

    // Rolling back needs v3's archive, gone from etcd by now: the replica
    // uploads it again from its own store, and every replica serves it.
    admins[1].rollback().await.unwrap();
    serve_everywhere(&mut clients, "closed-v3").await;
    assert_eq!(active_blob(&etcd).await, v3_blob);
    assert!(held(&etcd).await.blobs.contains_key(&v3_blob));

    // v4's blob, unnamed since the rollback, named again: its meta is
    // rewritten (renewed, or uploaded again had it gone), so the collector
    // leaves it.
    let before = held(&etcd).await.blobs.get(&v4_blob).copied();
    admins[0]
        .activate(&digests[3], BundleTarget::Active)
        .await
        .unwrap();
    serve_everywhere(&mut clients, "closed-v4").await;
    let after = held(&etcd).await.blobs.get(&v4_blob).copied();
    assert!(after.is_some() && after != before, "{before:?} → {after:?}");
    assert_eq!(wait_collected(&etcd, 0).await, 3);
    assert_eq!(active_blob(&etcd).await, v4_blob);

    // Stored bundles past `bundles.keep` lose their pointers, then blobs.
    for v in 1..=3 {
        admins[1]
            .put_bundle(bundle(&format!("stored-v{v}")), BundleTarget::Stored)
            .await
            .unwrap();
    }
    assert_eq!(wait_collected(&etcd, 2).await, 5);

    // A replica joining now finds every blob it needs.
    let late = start("r3");
    late.wait_serving().await;
    let mut admin = late.admin().await;
    wait_status(&mut admin, "connected").await;
    assert_eq!(
        admin.status().await.unwrap().active.unwrap().revision,
        "closed-v4"
    );
    let stored: Vec<String> = admin
        .list_bundles()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.revision)
        .collect();
    for revision in ["stored-v2", "stored-v3"] {
        assert!(stored.iter().any(|r| r == revision), "{stored:?}");
    }
}

mod approvals {
    //! The approval workflow across replicas: tasks and approvals live in
    //! etcd, and a single-use approval is used exactly once in the cluster.

    use super::*;
    use serde_json::json;
    use warden_client::{CheckBuilder, ClientOptions, Transport, connect_channel};
    use warden_e2e::Demo;
    use warden_proto::v1 as pb;
    use warden_proto::v1::approval_service_client::ApprovalServiceClient;
    use warden_proto::v1::approver_service_client::ApproverServiceClient;
    use warden_proto::v1::decision_service_client::DecisionServiceClient;

    fn token(name: &str) -> String {
        format!("cluster-approvals-token-{name}-0123456789")
    }

    async fn channel(endpoint: String, who: &str) -> Transport {
        let options = ClientOptions {
            token: Some(token(who)),
            ..ClientOptions::default()
        };
        connect_channel(endpoint, &options).await.unwrap()
    }

    #[tokio::test]
    async fn requested_on_one_approved_on_another_used_once_across_three() {
        let etcd = Etcd::start();
        let dir = tempfile::tempdir().unwrap();
        let demo = Demo::load();
        let (principal, security) = (demo.member_of("it-ops"), demo.member_of("security"));
        // One signing key for every replica, as the cluster requires.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key_file = dir.path().join("approvals.pem");
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let tokens = warden_e2e::token_table(
            &[
                ("desk", "platform:support-desk".to_owned()),
                ("sec", format!("approver:{security}")),
                ("auditor", "auditor".to_owned()),
            ],
            token,
        );
        let config = dir.path().join("warden.toml");
        std::fs::write(
            &config,
            format!(
                "[auth]\ntokens = {tokens}\n\n[approvals]\nsigning_key_file = \"{}\"\n",
                key_file.display()
            ),
        )
        .unwrap();
        let servers: Vec<Warden> = ["r1", "r2", "r3"]
            .iter()
            .map(|name| {
                replica_builder(&etcd, name)
                    .env("WARDEN_CONFIG", config.display().to_string())
                    .start_listening()
            })
            .collect();
        for server in &servers {
            server.wait_serving().await;
            let options = ClientOptions {
                token: Some(token("auditor")),
                ..ClientOptions::default()
            };
            let mut admin = AdminClient::connect(server.admin_endpoint(), options)
                .await
                .unwrap();
            wait_status(&mut admin, "connected").await;
            assert_eq!(admin.status().await.unwrap().approvals, "enabled");
        }
        let request = CheckBuilder::new(
            "support-desk",
            "access-admin",
            &principal,
            "permissions.grant",
            "role",
        )
        .resource_id("finance-approver")
        .action_attribute("grantee", json!("bob"))
        .build();

        // Asked on r1.
        let mut r1 = DecisionServiceClient::new(channel(servers[0].endpoint(), "desk").await);
        let denied = r1.check(request.clone()).await.unwrap().into_inner();
        let access = denied.access_request.unwrap();
        let task = ApprovalServiceClient::new(channel(servers[0].endpoint(), "desk").await)
            .request_approval(pb::RequestApprovalRequest {
                request: Some(request.clone()),
                evaluation_id: access.evaluation_id.clone(),
                binding_token: access.binding_token.clone(),
                justification: "cluster".into(),
            })
            .await
            .unwrap()
            .into_inner();
        // The same submission on r3 is the same task.
        let again = ApprovalServiceClient::new(channel(servers[2].endpoint(), "desk").await)
            .request_approval(pb::RequestApprovalRequest {
                request: Some(request.clone()),
                evaluation_id: access.evaluation_id,
                binding_token: access.binding_token,
                justification: "cluster".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.id, task.id);

        // Approved on r2: the approver may not even wait for the watch.
        ApproverServiceClient::new(channel(servers[1].admin_endpoint(), "sec").await)
            .approve(pb::ApproveRequest {
                task_id: task.id.clone(),
                note: "ok".into(),
                valid_for_seconds: 0,
            })
            .await
            .unwrap();
        let approval = ApprovalServiceClient::new(channel(servers[1].endpoint(), "desk").await)
            .get_approval_task(pb::GetApprovalTaskRequest {
                task_id: task.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .approval
            .unwrap();

        // Used from all three at once, 64 checks: exactly one ALLOW.
        let mut calls = Vec::new();
        for i in 0..64 {
            let endpoint = servers[i % 3].endpoint();
            let mut r = request.clone();
            r.request_id = format!("race-{i}");
            r.approval = Some(approval.clone());
            calls.push(tokio::spawn(async move {
                let mut client = DecisionServiceClient::new(channel(endpoint, "desk").await);
                client.check(r).await.unwrap().into_inner()
            }));
        }
        let mut allowed = 0;
        for call in calls {
            let answer = call.await.unwrap();
            if answer.decision() == pb::Decision::Allow {
                allowed += 1;
            } else {
                // A check holds its reservation in the default bundle's
                // `permission-changes` limit (20 an hour per agent) while its
                // approval is tried: with 64 racing, some meet the limit
                // first, and never reach the approval.
                assert!(
                    [
                        "approval_used_up",
                        "approval_unavailable",
                        "limit_exceeded:permission-changes"
                    ]
                    .contains(&answer.reasons[0].as_str()),
                    "{answer:?}"
                );
            }
        }
        assert_eq!(allowed, 1);
        // Every replica agrees it is used up.
        for server in &servers {
            let mut client = DecisionServiceClient::new(channel(server.endpoint(), "desk").await);
            let mut r = request.clone();
            r.approval = Some(approval.clone());
            let answer = client.check(r).await.unwrap().into_inner();
            assert_eq!(answer.reasons[0], "approval_used_up", "{answer:?}");
        }
    }
}

mod limits {
    //! Limits are global in intent: every replica publishes its usage to
    //! etcd each `limits.usage_publish_interval` and counts the others'
    //! last publications, so a budget spent on one replica is spent on all,
    //! and racing replicas overshoot it by at most rate × interval ×
    //! replicas (docs/deployment.md, "Limits across replicas").

    use super::*;
    use serde_json::{Value as Json, json};
    use warden_client::{CheckBuilder, CheckRequest, CheckResponse};
    use warden_e2e::Demo;

    const INTERVAL: Duration = Duration::from_millis(250);
    const MAX: u64 = 300;

    fn bundle(revision: &str, limits: &Json) -> Vec<u8> {
        warden_e2e::bundle_with_limits(revision, limits)
    }

    /// An expense submission by `agent` that the default policy allows.
    fn expense(agent: &str) -> CheckRequest {
        let finance = Demo::load().member_of("finance");
        CheckBuilder::new(
            "copilot-studio",
            agent,
            &finance,
            "expenses.submit",
            "expense",
        )
        .resource_id("exp-1")
        .build()
    }

    fn admitted(response: &CheckResponse) -> bool {
        response.decision() == Decision::Allow && response.limit.is_none()
    }

    /// Refused by the `budget` rule at its max.
    fn assert_exceeded(response: &CheckResponse) {
        assert_eq!(response.decision(), Decision::Deny, "{response:?}");
        assert_eq!(response.reasons, ["limit_exceeded:budget"], "{response:?}");
        let limit = response.limit.as_ref().expect("a limit refusal");
        assert_eq!(limit.rule, "budget");
        assert_eq!(limit.max, MAX as f64);
        assert!(limit.used >= MAX as f64, "{limit:?}");
    }

    /// `budget`'s usage as an admitted check reports it (own and heard).
    fn used(response: &CheckResponse) -> f64 {
        assert!(admitted(response), "{response:?}");
        let budget = response
            .budgets
            .iter()
            .find(|b| b.rule == "budget")
            .expect("`budget` is exposed");
        budget.used
    }

    /// Three replicas publishing every 250 ms, serving a bundle whose one
    /// rule allows 300 checks an hour per agent.
    async fn cluster(etcd: &Etcd) -> Replicas {
        let servers = ["r1", "r2", "r3"]
            .iter()
            .map(|name| {
                replica_builder(etcd, name)
                    .env("WARDEN_LIMITS_USAGE_PUBLISH_INTERVAL", "250ms")
                    .start_listening()
            })
            .collect();
        let mut replicas = joined(servers).await;
        let limits = json!({"rules": [{
            "id": "budget", "per": ["agent"], "window": "1h", "max": MAX, "expose": true,
        }]});
        let pushed = replicas.admins[0]
            .put_bundle(bundle("limits-cluster", &limits), BundleTarget::Active)
            .await
            .unwrap();
        // Waiting on the status spends nothing.
        for admin in &mut replicas.admins {
            let deadline = Instant::now() + Duration::from_secs(10);
            while admin.status().await.unwrap().active.unwrap().digest != pushed.digest {
                assert!(Instant::now() < deadline, "the bundle never arrived");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        replicas
    }

    /// What one replica made of the checks sent to it in a race.
    struct Run {
        admitted: u64,
        checks: u64,
        elapsed: Duration,
    }

    /// Checks on `agent`'s key for `run_for` from `tasks` tasks per replica,
    /// each sending one check every `pace` (none: back to back).
    async fn race(
        replicas: &Replicas,
        agent: &str,
        tasks: usize,
        pace: Option<Duration>,
        run_for: Duration,
    ) -> Vec<Run> {
        let started = Instant::now();
        let mut calls = Vec::new();
        for (index, client) in replicas.clients.iter().enumerate() {
            for _ in 0..tasks {
                let (mut client, request) = (client.clone(), expense(agent));
                calls.push(tokio::spawn(async move {
                    let mut tick = pace.map(tokio::time::interval);
                    let (mut allowed, mut checks) = (0u64, 0u64);
                    while started.elapsed() < run_for {
                        if let Some(tick) = &mut tick {
                            tick.tick().await;
                        }
                        let response = client.check(request.clone()).await.unwrap();
                        checks += 1;
                        if admitted(&response) {
                            allowed += 1;
                        } else {
                            assert_exceeded(&response);
                        }
                    }
                    (index, allowed, checks)
                }));
            }
        }
        let mut runs: Vec<Run> = (0..replicas.clients.len())
            .map(|_| Run {
                admitted: 0,
                checks: 0,
                elapsed: Duration::ZERO,
            })
            .collect();
        for call in calls {
            let (index, admitted, checks) = call.await.unwrap();
            runs[index].admitted += admitted;
            runs[index].checks += checks;
        }
        for run in &mut runs {
            run.elapsed = started.elapsed();
        }
        runs
    }

    /// The bound, from the fastest replica's measured check rate: each
    /// replica admits against a view of the others at most one interval
    /// old, so the cluster admits at most `MAX` plus what every replica
    /// admitted in an interval the others had not seen yet.
    fn assert_within_bound(what: &str, runs: &[Run]) -> (u64, f64) {
        let total: u64 = runs.iter().map(|r| r.admitted).sum();
        let rate = runs
            .iter()
            .map(|r| r.checks as f64 / r.elapsed.as_secs_f64())
            .fold(0.0, f64::max);
        let bound = MAX as f64 + rate * INTERVAL.as_secs_f64() * runs.len() as f64;
        let per_replica: Vec<(u64, u64)> = runs.iter().map(|r| (r.admitted, r.checks)).collect();
        eprintln!(
            "{what}: {total} admitted of max {MAX} (overshoot {}), {rate:.0} checks/s per replica, \
             bound {bound:.0}; (admitted, checks) per replica: {per_replica:?}",
            total.saturating_sub(MAX)
        );
        assert!(
            total >= MAX,
            "{what}: the cluster admitted {total}, fewer than max {MAX}: {per_replica:?}"
        );
        assert!(
            total as f64 <= bound,
            "{what}: the cluster admitted {total}, over the bound max + rate × interval × replicas \
             = {MAX} + {rate:.0}/s × {INTERVAL:?} × {} = {bound:.0}: {per_replica:?}",
            runs.len()
        );
        (total, bound)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn limits_a_budget_spent_on_one_replica_is_spent_on_all() {
        let etcd = Etcd::start();
        let mut replicas = cluster(&etcd).await;
        let (agent, canary) = ("expense-assistant", "expense-assistant-01");

        for n in 1..=100 {
            let response = replicas.clients[0].check(expense(agent)).await.unwrap();
            assert_eq!(used(&response), f64::from(n));
        }
        // Published after the 100: once r2 counts the canary's use on r1,
        // it counts those 100 too (a publication is all of r1's usage).
        assert_eq!(
            used(&replicas.clients[0].check(expense(canary)).await.unwrap()),
            1.0
        );
        let started = Instant::now();
        let mut spent_on_r2 = 0.0;
        loop {
            let response = replicas.clients[1].check(expense(canary)).await.unwrap();
            spent_on_r2 += 1.0;
            if used(&response) == spent_on_r2 + 1.0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "r2 never heard of r1's usage"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "r2 counted r1's usage {:?} after it was spent",
            started.elapsed()
        );

        let mut allowed = 0u64;
        loop {
            let response = replicas.clients[1].check(expense(agent)).await.unwrap();
            if !admitted(&response) {
                assert_exceeded(&response);
                assert_eq!(response.limit.as_ref().map(|l| l.used), Some(MAX as f64));
                break;
            }
            allowed += 1;
            assert_eq!(used(&response), 100.0 + allowed as f64);
            assert!(allowed <= MAX, "r2 never refused");
        }
        assert_eq!(allowed, MAX - 100);
        drop(replicas.servers);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn limits_racing_replicas_overshoot_by_at_most_rate_times_interval_times_replicas() {
        let etcd = Etcd::start();
        let replicas = cluster(&etcd).await;
        // Hammered from every replica at once: the budget may be gone
        // before any publication, so the bound is wide.
        let runs = race(
            &replicas,
            "expense-assistant-01",
            8,
            None,
            Duration::from_millis(1500),
        )
        .await;
        assert_within_bound("hammered", &runs);
        // Paced so the budget lasts several intervals: the bound is then
        // below what three replicas counting alone (3 × max) could admit.
        let runs = race(
            &replicas,
            "expense-assistant-02",
            4,
            Some(Duration::from_millis(40)),
            Duration::from_millis(2500),
        )
        .await;
        let (_, bound) = assert_within_bound("paced", &runs);
        assert!(
            bound < (3 * MAX) as f64,
            "paced too fast to tell sharing from none: bound {bound:.0}"
        );
        drop(replicas.servers);
    }
}
