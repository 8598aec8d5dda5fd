//! Kill switches when etcd is out of reach: an engage is taken by the
//! replica it lands on (pending replication) and published when etcd is
//! back, even across a crash; a replica cut off for longer than the grace
//! applies `cluster.on_partition` until it has caught up.

use std::time::{Duration, Instant};

use tonic::Code;
use warden_client::admin::{BundleTarget, KillSwitch};
use warden_client::{AdminClient, CheckBuilder, CheckRequest, Decision, WardenClient};
use warden_e2e::cluster::{
    Replicas, allowed, calendar, engage_request, joined, outage, refused_with, replica,
    replica_builder, three, until_stopped, wait_status,
};
use warden_e2e::etcd::Etcd;
use warden_e2e::process::{Warden, binaries};
use warden_e2e::proxy::Proxy;
use warden_e2e::{Demo, http_get};

/// The switch ids etcd holds.
async fn switches_in_etcd(etcd: &Etcd) -> Vec<String> {
    etcd.entries("/warden/switches/")
        .await
        .into_iter()
        .map(|(key, _, _)| key.trim_start_matches("/warden/switches/").to_owned())
        .collect()
}

/// Which switch (if any) stops `request` on `client` now.
async fn stopped_by(client: &mut WardenClient, request: CheckRequest) -> Option<String> {
    client
        .check(request)
        .await
        .unwrap()
        .kill_switch
        .map(|k| k.id)
}

/// Waits until `admin` reports no pending switches.
async fn wait_published(admin: &mut AdminClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.status().await.unwrap().pending_kill_switches > 0 {
        assert!(
            Instant::now() < deadline,
            "the pending switch was never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn listed(list: &[KillSwitch], id: &str) -> KillSwitch {
    list.iter()
        .find(|k| k.id == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed: {list:?}"))
}

#[tokio::test]
async fn an_engage_during_an_outage_is_pending_survives_a_crash_and_reaches_every_replica() {
    let mut etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = joined(vec![
        replica(&etcd, "r1", Some(dir.path())),
        replica(&etcd, "r2", None),
        replica(&etcd, "r3", None),
    ])
    .await;

    outage(&mut etcd, &mut replicas).await;
    let answer = replicas.admins[0]
        .engage_kill_switch_answer(engage_request("expense-assistant"))
        .await
        .unwrap();
    let switch = answer.kill_switch.unwrap();
    assert!(switch.pending_replication, "{switch:?}");
    assert!(!answer.already_engaged);
    // In force here at once; the others cannot know yet.
    assert_eq!(
        stopped_by(&mut replicas.clients[0], allowed()).await,
        Some(switch.id.clone())
    );
    for client in &mut replicas.clients[1..] {
        assert_eq!(stopped_by(client, allowed()).await, None);
    }
    let status = replicas.admins[0].status().await.unwrap();
    assert_eq!(status.pending_kill_switches, 1);
    let list = replicas.admins[0].list_kill_switches(10).await.unwrap();
    assert!(listed(&list.active, &switch.id).pending_replication);
    // Loosening still needs etcd: other writes are refused as before.
    refused_with(
        replicas.admins[1]
            .put_bundle(vec![1, 2, 3], BundleTarget::Active)
            .await,
        Code::Unavailable,
    );

    // A crash while pending: the switch is durable, and still pending.
    let Replicas {
        mut servers,
        mut admins,
        mut clients,
    } = replicas;
    servers[0].kill9();
    servers[0] = replica(&etcd, "r1", Some(dir.path()));
    servers[0].wait_serving().await;
    admins[0] = servers[0].admin().await;
    clients[0] = servers[0].client().await;
    assert_eq!(
        stopped_by(&mut clients[0], allowed()).await,
        Some(switch.id.clone())
    );
    let list = admins[0].list_kill_switches(10).await.unwrap();
    assert!(listed(&list.active, &switch.id).pending_replication);

    etcd.resume();
    for admin in &mut admins {
        wait_status(admin, "connected").await;
    }
    wait_published(&mut admins[0]).await;
    let started = Instant::now();
    for client in &mut clients {
        until_stopped(client, &switch, started).await;
    }
    assert_eq!(switches_in_etcd(&etcd).await, vec![switch.id.clone()]);
    for admin in &mut admins {
        let list = admin.list_kill_switches(10).await.unwrap();
        let shared = listed(&list.active, &switch.id);
        assert!(!shared.pending_replication);
        // The same switch everywhere: its id, time and caller kept.
        assert_eq!(shared.engaged_at, switch.engaged_at);
        assert_eq!(shared.engaged_by, switch.engaged_by);
    }
}

#[tokio::test]
async fn two_replicas_engage_different_switches_in_one_outage_and_both_are_published() {
    let mut etcd = Etcd::start();
    let mut replicas = three(&etcd).await;
    let published_before = replicas.admins[0]
        .engage_kill_switch(engage_request("travel-assistant"))
        .await
        .unwrap();
    outage(&mut etcd, &mut replicas).await;
    let expense = replicas.admins[0]
        .engage_kill_switch(engage_request("expense-assistant"))
        .await
        .unwrap();
    let calendar_switch = replicas.admins[1]
        .engage_kill_switch(engage_request("calendar-assistant"))
        .await
        .unwrap();
    assert!(expense.pending_replication && calendar_switch.pending_replication);
    // Releasing loosens: a switch the cluster holds waits for etcd, but one
    // this replica alone holds (never published) may go.
    refused_with(
        replicas.admins[2]
            .release_kill_switch(&published_before.id, "over", "tests")
            .await,
        Code::Unavailable,
    );
    let scratch = replicas.admins[2]
        .engage_kill_switch(engage_request("scratch-assistant"))
        .await
        .unwrap();
    let released = replicas.admins[2]
        .release_kill_switch(&scratch.id, "engaged by mistake", "tests")
        .await
        .unwrap();
    assert!(released.pending_replication && !released.ended_at.is_empty());

    etcd.resume();
    for admin in &mut replicas.admins {
        wait_status(admin, "connected").await;
        wait_published(admin).await;
    }
    let started = Instant::now();
    for client in &mut replicas.clients {
        until_stopped(client, &expense, started).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while stopped_by(client, calendar()).await.as_ref() != Some(&calendar_switch.id) {
            assert!(Instant::now() < deadline, "the second switch never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut published = switches_in_etcd(&etcd).await;
    published.sort();
    let mut engaged = vec![
        published_before.id.clone(),
        expense.id.clone(),
        calendar_switch.id.clone(),
        scratch.id.clone(),
    ];
    engaged.sort();
    assert_eq!(published, engaged, "each switch once, none lost");
    for admin in &mut replicas.admins {
        let list = admin.list_kill_switches(10).await.unwrap();
        assert_eq!(list.active.len(), 3, "{list:?}");
        // The local release travelled with the switch.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ended = list.ended;
        while !ended.iter().any(|k| k.id == scratch.id) {
            assert!(
                Instant::now() < deadline,
                "the released switch never arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            ended = admin.list_kill_switches(10).await.unwrap().ended;
        }
    }
}

/// `expenses.read` by a finance member: a read, which `deny_mutating`
/// lets through.
fn read_check() -> CheckRequest {
    let finance = Demo::load().member_of("finance");
    CheckBuilder::new(
        "copilot-studio",
        "expense-assistant",
        &finance,
        "expenses.read",
        "expense",
    )
    .resource_id("exp-1")
    .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_past_the_grace_applies_on_partition_until_it_catches_up() {
    let etcd = Etcd::start();
    let upstream = etcd
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    let grace = Duration::from_secs(3);
    let cut_off = Warden::builder()
        .env(
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            format!("[\"{}\"]", proxy.endpoint()),
        )
        .env("WARDEN_CLUSTER_REPLICA_ID", "r3")
        .env("WARDEN_CLUSTER_ETCD_TIMEOUT", "1s")
        .env("WARDEN_CLUSTER_PARTITION_GRACE", "3s")
        .start_listening();
    let mut replicas = joined(vec![
        replica_builder(&etcd, "r1").start_listening(),
        replica_builder(&etcd, "r2").start_listening(),
        cut_off,
    ])
    .await;
    let ops = replicas.servers[2].ops_addr;
    for client in &mut replicas.clients {
        assert_eq!(
            client.check(allowed()).await.unwrap().decision(),
            Decision::Allow
        );
        assert_eq!(
            client.check(read_check()).await.unwrap().decision(),
            Decision::Allow
        );
    }

    proxy.cut();
    let cut_at = Instant::now();
    wait_status(&mut replicas.admins[2], "degraded").await;
    let switch = replicas.admins[0]
        .engage_kill_switch(engage_request("calendar-assistant"))
        .await
        .unwrap();
    assert!(!switch.pending_replication);
    // Within the grace the cut-off replica serves what it last knew.
    let early = replicas.clients[2].check(allowed()).await.unwrap();
    if cut_at.elapsed() < grace {
        assert_eq!(early.decision(), Decision::Allow, "{early:?}");
    }
    // Past it: on_partition (deny_mutating by default).
    let deadline = Instant::now() + Duration::from_secs(20);
    let denied = loop {
        let response = replicas.clients[2].check(allowed()).await.unwrap();
        if response.decision() == Decision::Deny {
            break response;
        }
        assert!(Instant::now() < deadline, "on_partition never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(cut_at.elapsed() >= grace, "applied before the grace");
    assert!(
        denied.reasons.iter().any(|r| r == "cluster_partitioned"),
        "{:?}",
        denied.reasons
    );
    assert_eq!(
        replicas.clients[2]
            .check(read_check())
            .await
            .unwrap()
            .decision(),
        Decision::Allow,
        "deny_mutating lets reads through"
    );
    // The connected replicas are untouched.
    assert_eq!(
        replicas.clients[0]
            .check(allowed())
            .await
            .unwrap()
            .decision(),
        Decision::Allow
    );
    let status = replicas.admins[2].status().await.unwrap();
    assert_eq!(status.partition_mode, "deny_mutating");
    let (code, body) = http_get(ops, "/readyz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("partitioned"), "{body}");
    let (_, metrics) = http_get(ops, "/metrics");
    assert!(
        metrics.contains("warden_cluster_partitioned 1"),
        "{metrics}"
    );

    // Back in reach: it catches up (the switch engaged meanwhile), then the
    // partition mode is lifted.
    proxy.restore();
    wait_status(&mut replicas.admins[2], "connected").await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    while stopped_by(&mut replicas.clients[2], calendar())
        .await
        .as_ref()
        != Some(&switch.id)
    {
        assert!(Instant::now() < deadline, "the switch never reached r3");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loop {
        let response = replicas.clients[2].check(allowed()).await.unwrap();
        if response.decision() == Decision::Allow {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "on_partition never lifted: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        replicas.admins[2].status().await.unwrap().partition_mode,
        ""
    );
    let (_, metrics) = http_get(ops, "/metrics");
    assert!(
        metrics.contains("warden_cluster_partitioned 0"),
        "{metrics}"
    );
    // Readiness is refreshed apart from the switch: give it a moment.
    loop {
        let (code, body) = http_get(ops, "/readyz");
        if (code, body.trim()) == (200, "ready") {
            break;
        }
        assert!(Instant::now() < deadline, "{code}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `wardenctl --json kill engage --agent AGENT … --replica …` for every
/// server in `replicas` (`--replica` on its admin address).
fn fan_out(replicas: &[&Warden], agent: &str) -> (Option<i32>, serde_json::Value) {
    let mut command = std::process::Command::new(&binaries().wardenctl);
    command.args([
        "--json",
        "--timeout",
        "3s",
        "kill",
        "engage",
        "--agent",
        agent,
        "--reason",
        "INC-4411",
    ]);
    for replica in replicas {
        command.args(["--replica", &replica.admin_addr.to_string()]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout} / {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), json)
}

fn outcomes(answer: &serde_json::Value) -> Vec<(String, bool)> {
    answer["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["pending_replication"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_fan_out_engages_every_replica_without_etcd_and_names_the_one_it_missed() {
    let mut etcd = Etcd::start();
    let mut replicas = three(&etcd).await;

    // With etcd up, the first replica takes it through etcd and the others
    // only confirm it.
    let servers: Vec<&Warden> = replicas.servers.iter().collect();
    let (code, answer) = fan_out(&servers, "calendar-assistant");
    assert_eq!(code, Some(0), "{answer}");
    assert_eq!(
        outcomes(&answer),
        [
            ("engaged".to_owned(), false),
            ("already_engaged".to_owned(), false),
            ("already_engaged".to_owned(), false)
        ]
    );
    let calendar_id = answer["id"].as_str().unwrap().to_owned();
    assert_eq!(switches_in_etcd(&etcd).await, vec![calendar_id.clone()]);

    outage(&mut etcd, &mut replicas).await;
    replicas.servers[2].kill9();
    let servers: Vec<&Warden> = replicas.servers.iter().collect();
    let (code, answer) = fan_out(&servers, "expense-assistant");
    assert_eq!(code, Some(4), "unreachable is exit code 4: {answer}");
    let seen = outcomes(&answer);
    assert_eq!(
        seen[..2],
        [("engaged".to_owned(), true), ("engaged".to_owned(), true)]
    );
    assert_eq!(seen[2].0, "unreachable");
    let id = answer["id"].as_str().unwrap().to_owned();
    for client in &mut replicas.clients[..2] {
        assert_eq!(stopped_by(client, allowed()).await, Some(id.clone()));
    }
    // Listing each replica shows where it holds, and which one is missing.
    let mut command = std::process::Command::new(&binaries().wardenctl);
    command.args(["--json", "--timeout", "3s", "kill", "list"]);
    for server in &replicas.servers {
        command.args(["--replica", &server.admin_addr.to_string()]);
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let per_replica = listing["replicas"].as_array().unwrap();
    for listed_here in &per_replica[..2] {
        let active = listed_here["active"].as_array().unwrap();
        assert!(
            active
                .iter()
                .any(|k| k["id"] == id.as_str() && k["pending_replication"] == true),
            "{listed_here}"
        );
    }
    assert!(per_replica[2]["error"].is_string(), "{}", per_replica[2]);

    // Back together: one switch under that id, in etcd and everywhere.
    etcd.resume();
    for admin in &mut replicas.admins[..2] {
        wait_status(admin, "connected").await;
        wait_published(admin).await;
    }
    let mut published = switches_in_etcd(&etcd).await;
    published.sort();
    let mut expected = vec![calendar_id, id.clone()];
    expected.sort();
    assert_eq!(published, expected);
    for admin in &mut replicas.admins[..2] {
        let active = admin.list_kill_switches(10).await.unwrap().active;
        assert_eq!(active.iter().filter(|k| k.id == id).count(), 1);
        assert!(!listed(&active, &id).pending_replication);
    }
}
