//! `/metrics` on the ops listener, scraped and parsed around real traffic:
//! the counters move by exactly what was done, and the gauges read the
//! state the server is serving.

use std::collections::BTreeMap;

use warden_client::CheckBuilder;
use warden_client::admin::{EngageKillSwitchRequest, KillSwitchMode, KillSwitchScope};
use warden_e2e::process::Warden;
use warden_e2e::{Demo, http_request};

/// Samples by their full name with labels, e.g.
/// `warden_decisions_total{outcome="allow",reason="none"}`.
fn scrape(warden: &Warden) -> BTreeMap<String, f64> {
    let response = http_request(warden.ops_addr, "GET", "/metrics", &[], None);
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        response.headers
    );
    assert!(response.body.ends_with("# EOF\n"), "{}", response.body);
    let mut samples = BTreeMap::new();
    for line in response.body.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("bad value in `{line}`: {e}"));
        samples.insert(name.to_owned(), value);
    }
    samples
}

fn sample(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

/// The one sample whose name starts with `prefix`.
fn only<'a>(samples: &'a BTreeMap<String, f64>, prefix: &str) -> (&'a str, f64) {
    let found: Vec<_> = samples
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}: {found:?}");
    (found[0].0.as_str(), *found[0].1)
}

/// A check the demo data allows.
fn expense_check(finance_user: &str) -> warden_client::CheckRequest {
    CheckBuilder::new(
        "copilot-studio",
        "expense-assistant",
        finance_user,
        "expenses.submit",
        "expense",
    )
    .resource_id("exp-1")
    .build()
}

#[tokio::test]
async fn counters_move_with_traffic_and_gauges_read_the_served_state() {
    let warden = Warden::builder()
        .env("WARDEN_AUDIT_DURABILITY", "sync")
        .start()
        .await;
    let before = scrape(&warden);
    let mut client = warden.client().await;
    let finance = Demo::load().member_of("finance");
    let allow = || expense_check(&finance);
    for _ in 0..3 {
        let response = client.check(allow()).await.unwrap();
        assert_eq!(response.reasons, Vec::<String>::new());
    }
    let unknown = CheckBuilder::new(
        "copilot-studio",
        "nobody",
        &finance,
        "expenses.submit",
        "expense",
    )
    .build();
    let denied = client.check(unknown).await.unwrap();
    assert_eq!(denied.reasons[0], "agent_unknown", "{denied:?}");

    let mut admin = warden.admin().await;
    let switch = admin
        .engage_kill_switch(EngageKillSwitchRequest {
            scope: Some(KillSwitchScope {
                agent_id: "expense-assistant".into(),
                ..KillSwitchScope::default()
            }),
            mode: KillSwitchMode::DenyAll as i32,
            reason: "incident 12".into(),
            engaged_by: "tests".into(),
            ..EngageKillSwitchRequest::default()
        })
        .await
        .unwrap();
    let stopped = client.check(allow()).await.unwrap();
    assert_eq!(stopped.kill_switch.unwrap().id, switch.id);

    let after = scrape(&warden);
    let moved = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(
        moved(r#"warden_decisions_total{outcome="allow",reason="none"}"#),
        3.0
    );
    assert_eq!(
        moved(r#"warden_decisions_total{outcome="deny",reason="agent_unknown"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"warden_decisions_total{outcome="deny",reason="kill_switch"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"warden_check_duration_seconds_count{api="grpc_check"}"#),
        5.0
    );
    assert_eq!(
        moved(r#"warden_check_duration_seconds_bucket{le="+Inf",api="grpc_check"}"#),
        5.0
    );
    assert!(moved(r#"warden_check_duration_seconds_sum{api="grpc_check"}"#) > 0.0);
    // The switched check never reached the policy.
    assert_eq!(
        moved(r#"warden_evaluation_duration_seconds_count{engine="native"}"#),
        4.0
    );
    assert_eq!(sample(&after, "warden_kill_switches_active"), 1.0);
    assert_eq!(sample(&after, "warden_kill_switch_state_available"), 1.0);
    // Sync audit: every decision and the engage are written and committed.
    assert!(moved("warden_audit_records_total") >= 6.0, "{after:?}");
    assert!(moved("warden_audit_commits_total") >= 1.0);
    assert!(moved("warden_audit_commit_duration_seconds_count") >= 1.0);
    assert_eq!(sample(&after, "warden_audit_queue_depth"), 0.0);

    let status = admin.status().await.unwrap();
    let (revision, value) = only(&after, "warden_bundle_revision{");
    assert_eq!(value, 1.0);
    let active = status.active.expect("an active bundle").revision;
    assert!(
        revision.contains(&format!("revision=\"{active}\"")),
        "{revision} vs {active}"
    );
    let (age_name, age) = only(&after, r#"warden_snapshot_age_seconds{kind="identity"}"#);
    assert!(age > 0.0, "{age_name} = {age}");
    assert_eq!(
        only(&after, r#"warden_snapshot_version{kind="identity""#).1,
        1.0
    );
}

/// A stand-in OTLP/HTTP collector: accepts POSTs and keeps their bodies
/// (protobuf; the span's string attributes appear in it verbatim).
fn collector() -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<(String, Vec<u8>)>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send((path, body));
                    let _ = reader.get_mut().write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn checks_are_exported_as_spans_carrying_their_decision_id() {
    let (collector, received) = collector();
    let mut warden = Warden::builder()
        .env(
            "WARDEN_TRACING_OTLP_ENDPOINT",
            format!("http://{collector}"),
        )
        .env("WARDEN_TRACING_SERVICE_NAME", "warden-under-test")
        .start()
        .await;
    let mut client = warden.client().await;
    let finance = Demo::load().member_of("finance");
    let response = client.check(expense_check(&finance)).await.unwrap();
    // Spans are batched; stopping the server flushes them.
    drop(client);
    assert!(warden.terminate().await.success());
    let mut bodies = Vec::new();
    while let Ok((path, body)) = received.recv_timeout(std::time::Duration::from_secs(10)) {
        assert_eq!(path, "/v1/traces");
        bodies.extend(body);
        let contains = |needle: &str| bodies.windows(needle.len()).any(|w| w == needle.as_bytes());
        if contains(&response.decision_id) {
            assert!(
                contains("warden-under-test"),
                "the service name is exported"
            );
            assert!(contains("grpc_check") && contains("allow"));
            return;
        }
    }
    panic!(
        "no exported span carries decision id {}",
        response.decision_id
    );
}
