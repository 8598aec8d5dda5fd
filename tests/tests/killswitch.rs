//! Kill switches end to end: every scope dimension, both modes, expiry,
//! release, restart, batches, policy visibility, refusals, an unreadable
//! store, and a race between an engage and thousands of checks in flight.
//!
//! The server runs an allow-everything bundle here, so that any DENY comes
//! from a switch and nothing else.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tonic::Code;
use warden_client::admin::{
    BundleTarget, EngageKillSwitchRequest, KillSwitch, KillSwitchMode, KillSwitchScope,
    KillSwitchState,
};
use warden_client::{
    AdminClient, CheckBuilder, CheckRequest, CheckResponse, ClientError, Decision, WardenClient,
    batch_check_result,
};
use warden_e2e::http_get;
use warden_e2e::process::Warden;

fn bundle(revision: &str, policy: &str) -> Vec<u8> {
    let files: BTreeMap<String, Vec<u8>> = [
        (
            ".manifest".to_owned(),
            format!(r#"{{"revision": "{revision}", "roots": ["warden"]}}"#).into_bytes(),
        ),
        (
            "warden/authz/policy.rego".to_owned(),
            policy.as_bytes().to_vec(),
        ),
    ]
    .into_iter()
    .collect();
    warden_bundle::write_tar_gz(&files).unwrap()
}

const ALLOW_ALL: &str = "package warden.authz\n\ndecision := true\n";

/// A server that allows every check unless a switch stops it.
async fn allow_all(builder: warden_e2e::process::WardenBuilder) -> (Warden, AdminClient) {
    let warden = builder.start().await;
    let mut admin = warden.admin().await;
    admin
        .put_bundle(bundle("allow-all", ALLOW_ALL), BundleTarget::Active)
        .await
        .unwrap();
    (warden, admin)
}

fn request(platform: &str, agent: &str, principal: &str, action: &str, kind: &str) -> CheckRequest {
    CheckBuilder::new(platform, agent, principal, action, kind).build()
}

/// The check most tests stop and let through.
fn base() -> CheckRequest {
    request("p1", "a1", "u1", "documents.write", "document")
}

fn scope(fields: &[(&str, &str)]) -> KillSwitchScope {
    let mut scope = KillSwitchScope::default();
    for (name, value) in fields {
        let value = (*value).to_owned();
        match *name {
            "platform" => scope.platform = value,
            "agent_id" => scope.agent_id = value,
            "principal_id" => scope.principal_id = value,
            "action" => scope.action = value,
            "resource_type" => scope.resource_type = value,
            "session_id" => scope.session_id = value,
            other => panic!("no scope field {other}"),
        }
    }
    scope
}

fn engage_request(scope: KillSwitchScope, mode: KillSwitchMode) -> EngageKillSwitchRequest {
    EngageKillSwitchRequest {
        global: scope == KillSwitchScope::default(),
        scope: Some(scope),
        mode: mode as i32,
        reason: "incident 7".into(),
        engaged_by: "tests".into(),
        ..Default::default()
    }
}

async fn engage(
    admin: &mut AdminClient,
    scope: KillSwitchScope,
    mode: KillSwitchMode,
) -> KillSwitch {
    admin
        .engage_kill_switch(engage_request(scope, mode))
        .await
        .unwrap()
}

async fn check(client: &mut WardenClient, request: CheckRequest) -> CheckResponse {
    client.check(request).await.unwrap()
}

fn stopped_by(response: &CheckResponse, switch: &KillSwitch) -> bool {
    response.decision() == Decision::Deny
        && response.reasons == [format!("kill_switch:{}", switch.id), switch.reason.clone()]
        && response.kill_switch.as_ref().map(|k| k.id.as_str()) == Some(switch.id.as_str())
        && response.policy_revision.is_empty()
}

fn field_of(error: &ClientError) -> (Code, String) {
    match error {
        ClientError::Status(status) => {
            use tonic_types::StatusExt;
            let field = status
                .get_details_bad_request()
                .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
                .unwrap_or_default();
            (status.code(), field)
        }
        other => panic!("expected a status, got {other}"),
    }
}

type Case<'a> = (
    &'a [(&'a str, &'a str)],
    &'a [CheckRequest],
    &'a [CheckRequest],
);

#[tokio::test]
async fn every_scope_dimension_alone_and_combined_stops_exactly_its_checks() {
    let (warden, mut admin) = allow_all(Warden::builder()).await;
    let mut client = warden.client().await;
    // (scope, checks it stops, checks it lets through)
    let cases: &[Case] = &[
        (
            &[("platform", "p1")],
            &[base()],
            &[request("p2", "a1", "u1", "documents.write", "document")],
        ),
        (
            &[("agent_id", "a1")],
            &[base()],
            &[request("p1", "a2", "u1", "documents.write", "document")],
        ),
        (
            &[("principal_id", "u1")],
            &[base()],
            &[request("p1", "a1", "u2", "documents.write", "document")],
        ),
        (
            &[("action", "documents.*")],
            &[base(), request("p1", "a1", "u1", "documents.v2.read", "x")],
            &[
                request("p1", "a1", "u1", "mail.send", "document"),
                request("p1", "a1", "u1", "documentsx.write", "document"),
            ],
        ),
        (
            &[("action", "documents.write")],
            &[base()],
            &[request("p1", "a1", "u1", "documents.read", "document")],
        ),
        (
            &[("resource_type", "document")],
            &[base()],
            &[request("p1", "a1", "u1", "documents.write", "folder")],
        ),
        (
            &[
                ("platform", "p1"),
                ("agent_id", "a1"),
                ("action", "documents.*"),
            ],
            &[base()],
            &[
                request("p2", "a1", "u1", "documents.write", "document"),
                request("p1", "a2", "u1", "documents.write", "document"),
                request("p1", "a1", "u1", "mail.send", "document"),
            ],
        ),
        (
            &[("principal_id", "u1"), ("resource_type", "document")],
            &[base(), request("p9", "a9", "u1", "x.y", "document")],
            &[
                request("p1", "a1", "u2", "documents.write", "document"),
                request("p1", "a1", "u1", "documents.write", "folder"),
            ],
        ),
        (
            &[],
            &[base(), request("p9", "a9", "u9", "x.read", "y")],
            &[],
        ),
    ];
    for (fields, stopped, passed) in cases {
        let switch = engage(&mut admin, scope(fields), KillSwitchMode::DenyAll).await;
        for request in *stopped {
            let response = check(&mut client, request.clone()).await;
            assert!(
                stopped_by(&response, &switch),
                "{fields:?} should stop {request:?}: {response:?}"
            );
        }
        for request in *passed {
            let response = check(&mut client, request.clone()).await;
            assert_eq!(
                response.decision(),
                Decision::Allow,
                "{fields:?} should not stop {request:?}: {response:?}"
            );
        }
        let released = admin
            .release_kill_switch(&switch.id, "case done", "tests")
            .await
            .unwrap();
        assert_eq!(released.state(), KillSwitchState::Released);
        assert_eq!(check(&mut client, base()).await.decision(), Decision::Allow);
    }
}

#[tokio::test]
async fn deny_mutating_lets_reads_through_and_batches_are_checked_item_by_item() {
    let (warden, mut admin) = allow_all(Warden::builder()).await;
    let mut client = warden.client().await;
    let switch = engage(
        &mut admin,
        scope(&[("agent_id", "a1")]),
        KillSwitchMode::DenyMutating,
    )
    .await;
    for (action, stopped) in [
        ("documents.read", false),
        ("documents.search", false),
        ("documents.write", true),
        ("permissions.grant", true),
    ] {
        let response = check(&mut client, request("p1", "a1", "u1", action, "doc")).await;
        assert_eq!(stopped_by(&response, &switch), stopped, "{action}");
        if !stopped {
            assert_eq!(response.decision(), Decision::Allow, "{action}");
        }
    }

    let results = client
        .batch_check(vec![
            request("p1", "a1", "u1", "documents.write", "doc"),
            request("p1", "a2", "u1", "documents.write", "doc"),
            request("p1", "a1", "u1", "documents.read", "doc"),
        ])
        .await
        .unwrap();
    let decisions: Vec<(Decision, bool)> = results
        .iter()
        .map(|r| match &r.result {
            Some(batch_check_result::Result::Response(response)) => {
                (response.decision(), stopped_by(response, &switch))
            }
            other => panic!("unexpected batch result {other:?}"),
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (Decision::Deny, true),
            (Decision::Allow, false),
            (Decision::Allow, false)
        ]
    );
}

#[tokio::test]
async fn switches_expire_on_time_and_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (mut warden, mut admin) = allow_all(Warden::builder().data_dir(data.path())).await;
    let mut client = warden.client().await;

    let mut expiring = engage_request(scope(&[("agent_id", "a1")]), KillSwitchMode::DenyAll);
    expiring.ttl_seconds = 1;
    let expiring = admin.engage_kill_switch(expiring).await.unwrap();
    assert!(!expiring.expires_at.is_empty());
    let lasting = engage(
        &mut admin,
        scope(&[("agent_id", "a2")]),
        KillSwitchMode::DenyAll,
    )
    .await;
    assert_eq!(admin.status().await.unwrap().active_kill_switches, 2);

    assert!(stopped_by(&check(&mut client, base()).await, &expiring));
    // Past the expiry (and a few expiry-task ticks): no operator action.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(check(&mut client, base()).await.decision(), Decision::Allow);
    let list = admin.list_kill_switches(0).await.unwrap();
    assert_eq!(
        list.active
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        [lasting.id.as_str()]
    );
    let ended = list.ended.iter().find(|s| s.id == expiring.id).unwrap();
    assert_eq!(ended.state(), KillSwitchState::Expired);
    assert_eq!(ended.ended_at, expiring.expires_at);

    warden.terminate().await;
    let warden = Warden::builder().data_dir(data.path()).start().await;
    let mut client = warden.client().await;
    let mut admin = warden.admin().await;
    let a2 = request("p1", "a2", "u1", "documents.write", "document");
    assert!(stopped_by(&check(&mut client, a2.clone()).await, &lasting));
    let list = admin.list_kill_switches(0).await.unwrap();
    assert_eq!(list.active.len(), 1);
    assert_eq!(list.ended.len(), 1);
    assert_eq!(list.ended[0].state(), KillSwitchState::Expired);

    // A released switch stays released across a restart too.
    admin
        .release_kill_switch(&lasting.id, "contained", "tests")
        .await
        .unwrap();
    drop(warden);
    let warden = Warden::builder().data_dir(data.path()).start().await;
    let mut client = warden.client().await;
    assert_ne!(
        check(&mut client, a2).await.kill_switch.map(|k| k.id),
        Some(lasting.id)
    );
}

#[tokio::test]
async fn a_session_switch_stops_only_that_sessions_checks() {
    let (warden, mut admin) = allow_all(Warden::builder()).await;
    let mut client = warden.client().await;
    let in_session = |session: &str| {
        CheckBuilder::new("p1", "a1", "u1", "documents.write", "document")
            .context("session_id", session.into())
            .build()
    };
    let switch = engage(
        &mut admin,
        scope(&[("session_id", "s1")]),
        KillSwitchMode::DenyAll,
    )
    .await;
    assert_eq!(
        switch.scope.as_ref().map(|s| s.session_id.as_str()),
        Some("s1")
    );
    let response = check(&mut client, in_session("s1")).await;
    assert!(stopped_by(&response, &switch), "{response:?}");
    for passed in [in_session("s2"), base()] {
        let response = check(&mut client, passed.clone()).await;
        assert_eq!(response.decision(), Decision::Allow, "{passed:?}");
    }
    let listed = admin.list_kill_switches(0).await.unwrap();
    let scopes: Vec<_> = listed.active.iter().map(|s| s.scope.as_ref()).collect();
    assert_eq!(scopes, [switch.scope.as_ref()]);

    // Policies see the session in the switch's scope.
    admin
        .put_bundle(
            bundle(
                "session-watch",
                r#"package warden.authz

watched if {
    some s in data.killswitch.active
    s.scope.session_id == "s1"
}

decision := {"allow": true} if not watched

decision := {"require_approval": true, "reasons": ["session_under_watch"]} if watched
"#,
            ),
            BundleTarget::Active,
        )
        .await
        .unwrap();
    let response = check(&mut client, in_session("s2")).await;
    assert_eq!(response.decision(), Decision::RequireApproval);
    assert_eq!(response.reasons, ["session_under_watch"]);
}

#[tokio::test]
async fn policies_see_the_engaged_switches_read_only() {
    let (warden, mut admin) = allow_all(Warden::builder()).await;
    let mut client = warden.client().await;
    // Reads by an agent under a deny_mutating switch need a person's
    // approval: the switch lets reads through, the policy sees the switch.
    admin
        .put_bundle(
            bundle(
                "watchful",
                r#"package warden.authz

watched if {
    some s in data.killswitch.active
    s.scope.agent_id == input.agent.id
}

decision := {"allow": true} if not watched

decision := {"require_approval": true, "reasons": ["agent_under_watch"]} if watched
"#,
            ),
            BundleTarget::Active,
        )
        .await
        .unwrap();
    let read = request("p1", "a1", "u1", "documents.read", "doc");
    assert_eq!(
        check(&mut client, read.clone()).await.decision(),
        Decision::Allow
    );
    let switch = engage(
        &mut admin,
        scope(&[("agent_id", "a1")]),
        KillSwitchMode::DenyMutating,
    )
    .await;
    let response = check(&mut client, read.clone()).await;
    assert_eq!(response.decision(), Decision::RequireApproval);
    assert_eq!(response.reasons, ["agent_under_watch"]);
    admin
        .release_kill_switch(&switch.id, "cleared", "tests")
        .await
        .unwrap();
    assert_eq!(check(&mut client, read).await.decision(), Decision::Allow);

    // No bundle may write where the switches live.
    let error = admin
        .put_bundle(
            warden_bundle::write_tar_gz(
                &[
                    (
                        ".manifest".to_owned(),
                        br#"{"roots": ["warden", "killswitch"]}"#.to_vec(),
                    ),
                    (
                        "warden/authz/p.rego".to_owned(),
                        ALLOW_ALL.as_bytes().to_vec(),
                    ),
                ]
                .into_iter()
                .collect(),
            )
            .unwrap(),
            BundleTarget::Active,
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&error), (Code::InvalidArgument, "bundle".into()));
}

#[tokio::test]
async fn bad_engage_and_release_requests_are_refused_precisely() {
    let (warden, mut admin) = allow_all(Warden::builder()).await;
    let mut client = warden.client().await;
    let cases: Vec<(EngageKillSwitchRequest, &str)> = vec![
        (
            EngageKillSwitchRequest {
                global: false,
                ..engage_request(KillSwitchScope::default(), KillSwitchMode::DenyAll)
            },
            "scope",
        ),
        (
            EngageKillSwitchRequest {
                global: true,
                ..engage_request(scope(&[("agent_id", "a1")]), KillSwitchMode::DenyAll)
            },
            "global",
        ),
        (
            engage_request(scope(&[("action", "doc*")]), KillSwitchMode::DenyAll),
            "scope.action",
        ),
        (
            EngageKillSwitchRequest {
                reason: String::new(),
                ..engage_request(scope(&[("agent_id", "a1")]), KillSwitchMode::DenyAll)
            },
            "reason",
        ),
        (
            EngageKillSwitchRequest {
                expires_at: "2001-01-01T00:00:00Z".into(),
                ..engage_request(scope(&[("agent_id", "a1")]), KillSwitchMode::DenyAll)
            },
            "expires_at",
        ),
        (
            EngageKillSwitchRequest {
                mode: 42,
                ..engage_request(scope(&[("agent_id", "a1")]), KillSwitchMode::DenyAll)
            },
            "mode",
        ),
        (
            engage_request(
                scope(&[("agent_id", &"x".repeat(300))]),
                KillSwitchMode::DenyAll,
            ),
            "scope.agent_id",
        ),
    ];
    for (request, field) in cases {
        let error = admin.engage_kill_switch(request).await.unwrap_err();
        assert_eq!(field_of(&error), (Code::InvalidArgument, field.to_owned()));
    }
    // Nothing was engaged by any of them.
    assert!(admin.list_kill_switches(0).await.unwrap().active.is_empty());
    assert_eq!(check(&mut client, base()).await.decision(), Decision::Allow);

    let error = admin
        .release_kill_switch("ks-missing", "x", "tests")
        .await
        .unwrap_err();
    assert_eq!(field_of(&error).0, Code::NotFound);
    let switch = engage(
        &mut admin,
        scope(&[("agent_id", "a1")]),
        KillSwitchMode::DenyAll,
    )
    .await;
    let error = admin
        .release_kill_switch(&switch.id, "", "tests")
        .await
        .unwrap_err();
    assert_eq!(field_of(&error), (Code::InvalidArgument, "reason".into()));
    admin
        .release_kill_switch(&switch.id, "done", "tests")
        .await
        .unwrap();
    let error = admin
        .release_kill_switch(&switch.id, "again", "tests")
        .await
        .unwrap_err();
    assert_eq!(field_of(&error).0, Code::FailedPrecondition);
}

#[tokio::test]
async fn an_unreadable_switch_store_denies_everything_and_is_not_ready() {
    let data = tempfile::tempdir().unwrap();
    let (warden, _) = allow_all(Warden::builder().data_dir(data.path())).await;
    drop(warden);
    warden_e2e::edit_store(data.path(), |db| {
        let tree = db.open_tree("killswitches").unwrap();
        tree.insert("ks-damaged", &b"{not json"[..]).unwrap();
    });

    let warden = Warden::builder().data_dir(data.path()).start_listening();
    let (status, body) = http_get(warden.ops_addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("kill_switch_state_unavailable"), "{body}");
    let mut client = WardenClient::connect(warden.endpoint(), Default::default())
        .await
        .unwrap();
    let response = check(&mut client, base()).await;
    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(response.reasons, ["kill_switch_state_unavailable"]);
    let mut admin = warden.admin().await;
    let error = admin
        .engage_kill_switch(engage_request(
            scope(&[("agent_id", "a1")]),
            KillSwitchMode::DenyAll,
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(&error).0, Code::FailedPrecondition);
    assert!(warden.stderr().contains("ks-damaged"));
    drop(warden);

    // Repaired (the damaged record removed): ready, and allowing again.
    warden_e2e::edit_store(data.path(), |db| {
        db.open_tree("killswitches")
            .unwrap()
            .remove("ks-damaged")
            .unwrap();
    });
    let warden = Warden::builder().data_dir(data.path()).start().await;
    assert_eq!(http_get(warden.ops_addr, "/readyz").0, 200);
    let mut client = warden.client().await;
    assert_eq!(check(&mut client, base()).await.decision(), Decision::Allow);
}

/// One check of the race: when it was sent, when its answer came, what it was.
struct Timed {
    stoppable: bool,
    sent: Instant,
    answered: Instant,
    response: CheckResponse,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engage_applies_to_every_check_that_starts_after_its_acknowledgement() {
    const TASKS: usize = 8;
    const IN_FLIGHT_PER_TASK: usize = 256;
    let (warden, mut admin) = allow_all(Warden::builder()).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = warden.client().await;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut timed = Vec::new();
            let mut in_flight = tokio::task::JoinSet::new();
            let mut n = 0usize;
            loop {
                while in_flight.len() < IN_FLIGHT_PER_TASK
                    && !stop.load(std::sync::atomic::Ordering::SeqCst)
                {
                    let mut client = client.clone();
                    // Half the checks are by the agent the switch will stop.
                    let stoppable = n.is_multiple_of(2);
                    let agent = if stoppable { "a1" } else { "a2" };
                    let request =
                        request("p1", agent, &format!("u{task}"), "documents.write", "doc");
                    n += 1;
                    in_flight.spawn(async move {
                        let sent = Instant::now();
                        let response = client.check(request).await.unwrap();
                        Timed {
                            stoppable,
                            sent,
                            answered: Instant::now(),
                            response,
                        }
                    });
                }
                match in_flight.join_next().await {
                    Some(joined) => timed.push(joined.unwrap()),
                    None => break,
                }
            }
            timed
        }));
    }

    // Let the load build up, then engage while thousands are in flight.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let engage_sent = Instant::now();
    let switch = engage(
        &mut admin,
        scope(&[("agent_id", "a1")]),
        KillSwitchMode::DenyAll,
    )
    .await;
    let acknowledged = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut checks = Vec::new();
    for task in tasks {
        checks.extend(task.await.unwrap());
    }
    let (mut after, mut before, mut overlapping) = (0, 0, 0);
    for check in &checks {
        let stopped = stopped_by(&check.response, &switch);
        if !check.stoppable {
            assert_eq!(
                check.response.decision(),
                Decision::Allow,
                "another agent was stopped"
            );
        } else if check.sent > acknowledged {
            assert!(stopped, "a check sent after the acknowledgement passed");
            after += 1;
        } else if check.answered < engage_sent {
            assert_eq!(
                check.response.decision(),
                Decision::Allow,
                "a check answered before the engage was stopped"
            );
            before += 1;
        } else {
            // In flight across the engage: either answer is right, but only
            // these two.
            assert!(stopped || check.response.decision() == Decision::Allow);
            overlapping += 1;
        }
    }
    eprintln!(
        "{} checks: {after} stoppable sent after the acknowledgement, {before} answered before the engage, {overlapping} in flight across it",
        checks.len()
    );
    assert!(
        after > 100 && before > 100 && overlapping > 100,
        "the race did not happen: {after} after, {before} before, {overlapping} in flight across the engage"
    );
}

#[tokio::test]
async fn an_engage_with_a_chosen_id_is_answered_once_and_conflicts_are_refused() {
    let (warden, mut admin) = allow_all(Warden::builder()).await;
    let mut client = warden.client().await;
    let with_id =
        |fields: &[(&str, &str)], mode: KillSwitchMode, id: &str| EngageKillSwitchRequest {
            id: id.into(),
            ..engage_request(scope(fields), mode)
        };
    let id = "ks-fanout-0001";
    let first = admin
        .engage_kill_switch_answer(with_id(&[("agent_id", "a1")], KillSwitchMode::DenyAll, id))
        .await
        .unwrap();
    let switch = first.kill_switch.unwrap();
    assert_eq!((switch.id.as_str(), first.already_engaged), (id, false));
    assert!(!switch.pending_replication, "no cluster, nothing pending");
    let stopped = check(&mut client, base()).await;
    assert_eq!(stopped.kill_switch.map(|k| k.id).as_deref(), Some(id));

    // The same switch again (a fan-out retried): answered, nothing changes.
    let again = admin
        .engage_kill_switch_answer(with_id(&[("agent_id", "a1")], KillSwitchMode::DenyAll, id))
        .await
        .unwrap();
    assert!(again.already_engaged);
    assert_eq!(again.kill_switch.unwrap().engaged_at, switch.engaged_at);
    assert_eq!(admin.list_kill_switches(10).await.unwrap().active.len(), 1);

    // Another scope or mode under that id is a conflict.
    for request in [
        with_id(&[("agent_id", "a2")], KillSwitchMode::DenyAll, id),
        with_id(&[("agent_id", "a1")], KillSwitchMode::DenyMutating, id),
    ] {
        let error = admin.engage_kill_switch(request).await.unwrap_err();
        assert_eq!(field_of(&error).0, Code::FailedPrecondition, "{error}");
    }
    // A released id stays released.
    admin
        .release_kill_switch(id, "done", "tests")
        .await
        .unwrap();
    let error = admin
        .engage_kill_switch(with_id(&[("agent_id", "a1")], KillSwitchMode::DenyAll, id))
        .await
        .unwrap_err();
    assert_eq!(field_of(&error).0, Code::FailedPrecondition, "{error}");
    // Ids that could not be one.
    for bad in [
        "fanout",
        "ks-",
        "ks-a b",
        "ks-ü",
        &format!("ks-{}", "x".repeat(65)),
    ] {
        let error = admin
            .engage_kill_switch(with_id(&[("agent_id", "a1")], KillSwitchMode::DenyAll, bad))
            .await
            .unwrap_err();
        assert_eq!(
            field_of(&error),
            (Code::InvalidArgument, "id".into()),
            "{bad}"
        );
    }
    assert!(
        admin
            .list_kill_switches(10)
            .await
            .unwrap()
            .active
            .is_empty()
    );
}
