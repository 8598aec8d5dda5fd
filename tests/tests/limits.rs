//! Limits and tripwires end to end, on the real server with the default
//! policy: budgets at their edges, what spends and what does not, sums,
//! sessions, a race on one key, counters across a crash and a clean stop,
//! refused rules, approval instead of a refusal, and a tripwire that
//! contains an agent with a kill switch that outlives a kill -9.
//!
//! Every window here is an hour or more, so nothing slides during a test:
//! the edges are the counts, never the clock.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tonic::Code;
use warden_client::admin::{BundleTarget, KillSwitch, KillSwitchMode, KillSwitchState};
use warden_client::audit::{AuditClient, AuditQueryRequest};
use warden_client::{
    AdminClient, ApproverClient, CheckBuilder, CheckRequest, CheckResponse, ClientError,
    ClientOptions, Decision, WardenClient,
};
use warden_e2e::Demo;
use warden_e2e::process::{Warden, WardenBuilder};

const PLATFORM: &str = "internal-chat";
/// Granted `documents.read` and `documents.search`.
const AGENT: &str = "doc-summarizer";

/// Demo users the tests act for.
struct People {
    /// Entitled to read and search documents; not a security member.
    readers: Vec<String>,
    /// Entitled to nothing on documents: the policy denies their reads
    /// with `principal_not_entitled`.
    outsider: String,
    security: String,
}

fn people() -> People {
    let demo = Demo::load();
    let users = demo.identity["users"].as_object().unwrap();
    let groups = |user: &Json| -> Vec<String> {
        user["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_owned())
            .collect()
    };
    let readers = users
        .iter()
        .filter(|(_, u)| {
            let groups = groups(u);
            groups.iter().any(|g| g == "engineering") && !groups.iter().any(|g| g == "security")
        })
        .map(|(id, _)| id.clone())
        .take(13)
        .collect::<Vec<_>>();
    assert_eq!(readers.len(), 13, "the demo has engineers outside security");
    let subjects = &demo.entitlements["subjects"];
    let outsider = users
        .iter()
        .find(|(id, u)| {
            std::iter::once(format!("user:{id}"))
                .chain(groups(u).iter().map(|g| format!("group:{g}")))
                .all(|s| subjects[&s].get("document").is_none())
        })
        .map(|(id, _)| id.clone())
        .expect("a demo user entitled to nothing on documents");
    People {
        readers,
        outsider,
        security: demo.member_of("security"),
    }
}

/// The default policy (every file under `policies/warden` but its limits)
/// with `limits` as `data.warden.limits`.
fn bundle(revision: &str, limits: Json) -> Vec<u8> {
    warden_e2e::bundle_with_limits(revision, &limits)
}

async fn push(admin: &mut AdminClient, revision: &str, limits: Json) {
    let pushed = admin
        .put_bundle(bundle(revision, limits), BundleTarget::Active)
        .await
        .unwrap();
    assert!(pushed.active);
}

/// A server running the default policy with `limits`.
async fn start(builder: WardenBuilder, limits: Json) -> (Warden, WardenClient, AdminClient) {
    let warden = builder.start().await;
    let mut admin = warden.admin().await;
    push(&mut admin, "limits-1", limits).await;
    let client = warden.client().await;
    (warden, client, admin)
}

fn read(principal: &str) -> CheckRequest {
    CheckBuilder::new(PLATFORM, AGENT, principal, "documents.read", "document")
        .resource_id("doc-1")
        .build()
}

fn search(principal: &str) -> CheckRequest {
    CheckBuilder::new(PLATFORM, AGENT, principal, "documents.search", "document").build()
}

async fn check(client: &mut WardenClient, request: CheckRequest) -> CheckResponse {
    client.check(request).await.unwrap()
}

fn allowed(response: &CheckResponse) -> bool {
    response.decision() == Decision::Allow && response.limit.is_none()
}

/// Asserts that `rule` refused the check, and returns the refusal.
fn assert_exceeded(response: &CheckResponse, rule: &str) -> warden_proto::v1::LimitRefusal {
    assert_eq!(response.decision(), Decision::Deny, "{response:?}");
    assert_eq!(
        response.reasons,
        [format!("limit_exceeded:{rule}")],
        "{response:?}"
    );
    let limit = response.limit.clone().expect("a limit refusal");
    assert_eq!(limit.rule, rule);
    limit
}

/// Sends `request` until it is refused; how many were allowed first.
async fn allowed_until_refused(client: &mut WardenClient, request: &CheckRequest) -> u64 {
    for n in 0..10_000 {
        let response = check(client, request.clone()).await;
        if !allowed(&response) {
            assert!(response.limit.is_some(), "{response:?}");
            return n;
        }
    }
    panic!("never refused");
}

fn limit(id: &str, per: &[&str], max: f64) -> Json {
    json!({
        "id": id,
        "match": {"action": "documents.*"},
        "per": per,
        "window": "1h",
        "max": max,
    })
}

#[tokio::test]
async fn exactly_max_is_allowed_and_the_next_learns_when_it_would_pass() {
    let people = people();
    let mut rule = limit("reads", &["agent", "principal"], 5.0);
    rule["expose"] = json!(true);
    let (_warden, mut client, _admin) = start(Warden::builder(), json!({ "rules": [rule] })).await;

    let reader = &people.readers[0];
    let started = Instant::now();
    for spent in 1..=5u32 {
        let response = check(&mut client, read(reader)).await;
        assert!(allowed(&response), "{response:?}");
        let budget = &response.budgets[..];
        assert_eq!(budget.len(), 1, "{response:?}");
        assert_eq!(budget[0].rule, "reads");
        assert_eq!(budget[0].used, f64::from(spent));
        assert_eq!(budget[0].max, 5.0);
        assert_eq!(budget[0].remaining, f64::from(5 - spent));
        assert_eq!(budget[0].window_seconds, 3600);
    }
    let refused = check(&mut client, read(reader)).await;
    let limit = assert_exceeded(&refused, "reads");
    assert_eq!((limit.used, limit.max), (5.0, 5.0));
    // The five left the window between W and W + W/20 after they were
    // admitted (its sub-buckets), and all were admitted since `started`.
    let since = u64::try_from(started.elapsed().as_millis()).unwrap();
    assert!(
        limit.retry_after_ms >= 3_600_000 - since && limit.retry_after_ms <= 3_780_000,
        "{limit:?}"
    );
    assert_eq!(refused.next_action, "retry");
    assert_eq!(
        u64::from(refused.retry_after_seconds),
        limit.retry_after_ms.div_ceil(1000)
    );
    assert!(refused.budgets.is_empty());
    // Another principal has a budget of its own.
    assert!(allowed(&check(&mut client, read(&people.readers[1])).await));
    assert_exceeded(&check(&mut client, search(reader)).await, "reads");
}

#[tokio::test]
async fn denied_checks_and_checks_another_rule_refuses_spend_nothing() {
    let people = people();
    // The narrow rule after the wide one: a search it refuses has already
    // been reserved in the wide rule, and must be taken back.
    let (_warden, mut client, _admin) = start(
        Warden::builder(),
        json!({ "rules": [
            limit("wide", &["agent"], 10.0),
            {"id": "narrow", "match": {"action": "documents.search"}, "per": ["agent"],
             "window": "1h", "max": 2},
        ]}),
    )
    .await;

    for _ in 0..25 {
        let response = check(&mut client, read(&people.outsider)).await;
        assert_eq!(response.decision(), Decision::Deny);
        assert_eq!(response.reasons, ["principal_not_entitled"]);
        assert!(response.limit.is_none());
    }
    let reader = &people.readers[0];
    for _ in 0..2 {
        assert!(allowed(&check(&mut client, search(reader)).await));
    }
    for _ in 0..5 {
        assert_exceeded(&check(&mut client, search(reader)).await, "narrow");
    }
    // 10 - the 2 searches: none of the denials or refusals spent.
    assert_eq!(allowed_until_refused(&mut client, &read(reader)).await, 8);
    assert_exceeded(&check(&mut client, read(&people.readers[1])).await, "wide");
}

#[tokio::test]
async fn sums_add_decimals_exactly_and_a_missing_amount_is_denied() {
    let finance = Demo::load().member_of("finance");
    let (_warden, mut client, _admin) = start(
        Warden::builder(),
        json!({ "rules": [{
            "id": "spend", "match": {"action": "expenses.submit"}, "per": ["agent"],
            "window": "1h", "max": 1.0, "sum": "action.attributes.amount_usd",
        }]}),
    )
    .await;
    let submit = |amount: Option<Json>| {
        let builder = CheckBuilder::new(
            "copilot-studio",
            "expense-assistant",
            &finance,
            "expenses.submit",
            "expense",
        );
        match amount {
            Some(amount) => builder.action_attribute("amount_usd", amount),
            None => builder,
        }
        .build()
    };

    for _ in 0..10 {
        let response = check(&mut client, submit(Some(json!(0.1)))).await;
        assert!(allowed(&response), "{response:?}");
    }
    let limit = assert_exceeded(&check(&mut client, submit(Some(json!(0.1)))).await, "spend");
    assert_eq!((limit.used, limit.max), (1.0, 1.0));
    // Nothing is left, and nothing still fits.
    assert!(allowed(&check(&mut client, submit(Some(json!(0)))).await));

    for (amount, reason) in [
        (None, "limit_sum_missing:spend"),
        (Some(json!("0.1")), "limit_sum_invalid:spend"),
        (Some(json!(-1)), "limit_sum_invalid:spend"),
    ] {
        let response = check(&mut client, submit(amount.clone())).await;
        assert_eq!(response.decision(), Decision::Deny, "{amount:?}");
        assert_eq!(response.reasons, [reason], "{amount:?}");
        assert_eq!(response.next_action, "none", "{amount:?}");
    }
}

#[tokio::test]
async fn each_session_has_its_own_budget() {
    let people = people();
    let (_warden, mut client, _admin) = start(
        Warden::builder(),
        json!({ "rules": [limit("per-session", &["agent", "session"], 3.0)] }),
    )
    .await;
    let in_session = |session: &str| {
        CheckBuilder::new(
            PLATFORM,
            AGENT,
            &people.readers[0],
            "documents.read",
            "document",
        )
        .context("session_id", json!(session))
        .build()
    };
    assert_eq!(
        allowed_until_refused(&mut client, &in_session("s1")).await,
        3
    );
    assert_eq!(
        allowed_until_refused(&mut client, &in_session("s2")).await,
        3
    );
    assert_exceeded(&check(&mut client, in_session("s1")).await, "per-session");
    // A check outside any session is not counted by a per-session rule.
    for _ in 0..5 {
        assert!(allowed(&check(&mut client, read(&people.readers[0])).await));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_tasks_on_one_key_get_exactly_max() {
    let people = people();
    let (_warden, client, _admin) = start(
        Warden::builder(),
        json!({ "rules": [limit("race", &["agent"], 1000.0)] }),
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64 {
        let mut client = client.clone();
        let reader = people.readers[task % people.readers.len()].clone();
        tasks.spawn(async move {
            let mut counts = (0u64, 0u64);
            for _ in 0..20 {
                let response = check(&mut client, read(&reader)).await;
                if allowed(&response) {
                    counts.0 += 1;
                } else {
                    assert_exceeded(&response, "race");
                    counts.1 += 1;
                }
            }
            counts
        });
    }
    let (mut admitted, mut refused) = (0, 0);
    while let Some(counts) = tasks.join_next().await {
        let (a, r) = counts.unwrap();
        admitted += a;
        refused += r;
    }
    assert_eq!((admitted, refused), (1000, 280));
}

#[tokio::test]
async fn counters_survive_a_crash_once_saved_and_a_clean_stop_always() {
    let people = people();
    let data = tempfile::tempdir().unwrap();
    let builder = || {
        Warden::builder()
            .data_dir(data.path())
            .env("WARDEN_LIMITS_COUNTER_SNAPSHOT_INTERVAL", "200ms")
    };
    let rules = json!({ "rules": [limit("saved", &["agent", "principal"], 20.0)] });
    let (mut warden, mut client, _admin) = start(builder(), rules).await;
    // Twelve keys through a crash and two restarts: counters are stored by
    // shard, so each key is likely to be saved in another shard by each
    // server, and an older copy must never come back.
    let crashed: Vec<CheckRequest> = people.readers[..12].iter().map(|p| read(p)).collect();
    let stopped = read(&people.readers[12]);
    for request in &crashed {
        for _ in 0..7 {
            assert!(allowed(&check(&mut client, request.clone()).await));
        }
    }
    // Setup, not an assertion: five snapshot intervals, so that a
    // snapshot holding all of them has surely been written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    warden.kill9();
    drop((client, warden));

    let mut warden = builder().start().await;
    let mut client = warden.client().await;
    for request in &crashed {
        assert_eq!(allowed_until_refused(&mut client, request).await, 13);
    }
    for _ in 0..5 {
        assert!(allowed(&check(&mut client, stopped.clone()).await));
    }
    // At once: the last snapshot is the one written on the way out.
    assert!(warden.terminate().await.success());
    drop((client, warden));

    let warden = builder().start().await;
    let mut client = warden.client().await;
    assert_eq!(allowed_until_refused(&mut client, &stopped).await, 15);
    for request in crashed {
        assert_exceeded(&check(&mut client, request).await, "saved");
    }
}

#[tokio::test]
async fn a_bad_rule_is_refused_by_name_and_the_active_bundle_stays() {
    let people = people();
    let (_warden, mut client, mut admin) = start(
        Warden::builder(),
        json!({ "rules": [limit("reads", &["agent"], 1.0)] }),
    )
    .await;
    let before = admin.status().await.unwrap().active.unwrap();
    assert!(allowed(&check(&mut client, read(&people.readers[0])).await));

    let cases = [
        (
            json!({"rules": [{"id": "broken", "per": ["agent"], "window": "1m"}]}),
            "data.warden.limits.rules[0] (`broken`)",
            "`max` is missing",
        ),
        (
            json!({"rules": [{"id": "slow", "per": ["agent"], "window": "90d", "max": 1}]}),
            "data.warden.limits.rules[0] (`slow`)",
            "`window`",
        ),
        (
            json!({"rules": [{"id": "who", "per": ["team"], "window": "1m", "max": 1}]}),
            "data.warden.limits.rules[0] (`who`)",
            "`per`",
        ),
    ];
    for (limits, path, detail) in cases {
        let error = admin
            .put_bundle(bundle("limits-bad", limits.clone()), BundleTarget::Active)
            .await
            .expect_err("a bad rule was accepted");
        let ClientError::Status(status) = error else {
            panic!("expected a status: {error}");
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(path), "{status:?}");
        assert!(status.message().contains(detail), "{status:?}");
        let after = admin.status().await.unwrap().active.unwrap();
        assert_eq!(
            (&after.revision, &after.digest),
            (&before.revision, &before.digest)
        );
        // The rule in force still counts.
        assert_exceeded(&check(&mut client, read(&people.readers[0])).await, "reads");
    }
}

fn token(name: &str) -> String {
    format!("limits-test-token-{name}-0123456789")
}

fn with_token(name: &str) -> ClientOptions {
    ClientOptions {
        token: Some(token(name)),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_limit_can_ask_for_approval_and_an_approval_lets_the_check_through() {
    let people = people();
    let dir = tempfile::tempdir().unwrap();
    let tokens = [
        ("chat", format!("platform:{PLATFORM}")),
        ("sec", format!("approver:{}", people.security)),
        ("policy", "policy_admin".to_owned()),
    ];
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\ntokens = {}\n",
            warden_e2e::token_table(&tokens, token)
        ),
    )
    .unwrap();
    let warden = Warden::builder()
        .env("WARDEN_CONFIG", config.display().to_string())
        .start_listening();
    warden
        .wait_health(warden.endpoint(), &with_token("chat"))
        .await;
    let mut admin = AdminClient::connect(warden.admin_endpoint(), with_token("policy"))
        .await
        .unwrap();
    push(
        &mut admin,
        "limits-approval",
        json!({ "rules": [{
            "id": "reads", "match": {"action": "documents.read"}, "per": ["agent", "principal"],
            "window": "1h", "max": 1,
            "on_exceed": "require_approval", "approval": {"approvers": ["group:security"]},
        }]}),
    )
    .await;
    let mut client = WardenClient::connect(warden.endpoint(), with_token("chat"))
        .await
        .unwrap();

    let request = read(&people.readers[0]);
    assert!(allowed(&check(&mut client, request.clone()).await));
    let asked = check(&mut client, request.clone()).await;
    assert_eq!(asked.decision(), Decision::RequireApproval, "{asked:?}");
    assert_eq!(asked.reasons, ["limit_exceeded:reads"]);
    assert_eq!(asked.next_action, "request");
    assert_eq!(asked.limit.as_ref().map(|l| l.rule.as_str()), Some("reads"));
    let access = asked.access_request.clone().expect("an access request");
    assert_eq!(
        access.requirement.as_ref().map(|r| r.approvers.clone()),
        Some(vec!["group:security".to_owned()])
    );

    let task = client
        .request_approval(request.clone(), &access, "the quarterly review needs it")
        .await
        .unwrap();
    ApproverClient::connect(warden.admin_endpoint(), with_token("sec"))
        .await
        .unwrap()
        .approve(&task.id, "fine", None)
        .await
        .unwrap();
    let approval = client
        .get_approval_task(&task.id)
        .await
        .unwrap()
        .approval
        .expect("an approved task carries its approval");
    let mut approved = request.clone();
    approved.approval = Some(approval.clone());
    let response = check(&mut client, approved.clone()).await;
    assert_eq!(response.decision(), Decision::Allow, "{response:?}");
    assert_eq!(
        response.reasons.first().map(String::as_str),
        Some(format!("approved:{}", approval.id).as_str())
    );
    // Used once: without an approval the limit asks again.
    let again = check(&mut client, request).await;
    assert_eq!(again.decision(), Decision::RequireApproval);
}

async fn audit_events(warden: &Warden, event: &str) -> Vec<Json> {
    let mut admin = warden.admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.status().await.unwrap().audit_queue_depth > 0 {
        assert!(Instant::now() < deadline, "the audit queue never drained");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap()
        .query_all(
            AuditQueryRequest {
                r#type: "admin".into(),
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.decision == event)
        .map(|r| serde_json::from_str::<Json>(&r.json).unwrap()["record"].clone())
        .collect()
}

/// The check the tripwire counts: denied by the policy for lack of
/// entitlement.
async fn denied(client: &mut WardenClient, people: &People) {
    let response = check(client, read(&people.outsider)).await;
    assert_eq!(response.decision(), Decision::Deny, "{response:?}");
    assert_eq!(response.reasons, ["principal_not_entitled"], "{response:?}");
    assert!(response.kill_switch.is_none());
}

/// Whether `switch` stopped the agent's next (otherwise allowed) check.
async fn contained(client: &mut WardenClient, people: &People) -> Option<String> {
    let response = check(client, search(&people.readers[0])).await;
    if response.decision() == Decision::Allow {
        return None;
    }
    let switch = response.kill_switch.clone().expect("stopped by a switch");
    assert_eq!(
        response.reasons,
        [
            format!("kill_switch:{}", switch.id),
            "tripwire:entitlement-denials".to_owned()
        ],
        "{response:?}"
    );
    Some(switch.id)
}

fn tripwire_switch(list: &[KillSwitch]) -> &KillSwitch {
    let switch = list
        .iter()
        .find(|s| s.engaged_by == "warden:tripwire")
        .expect("the tripwire's switch is listed");
    assert_eq!(switch.reason, "tripwire:entitlement-denials");
    assert_eq!(switch.mode(), KillSwitchMode::DenyAll);
    let scope = switch.scope.clone().unwrap();
    assert_eq!(
        (scope.agent_id.as_str(), scope.principal_id.as_str()),
        (AGENT, "")
    );
    assert!(!switch.expires_at.is_empty(), "a TTL: {switch:?}");
    switch
}

#[tokio::test]
async fn a_tripwire_contains_the_agent_durably_and_rearms_on_release() {
    const THRESHOLD: usize = 5;
    let people = people();
    let data = tempfile::tempdir().unwrap();
    let builder = || {
        Warden::builder()
            .data_dir(data.path())
            .env("WARDEN_LIMITS_COUNTER_SNAPSHOT_INTERVAL", "200ms")
    };
    let rules = json!({ "tripwires": [{
        "id": "entitlement-denials", "per": ["agent"], "window": "1h", "threshold": THRESHOLD,
        "count": {"outcomes": ["deny"], "reasons": ["principal_not_entitled"]},
        "switch": {"mode": "deny_all", "ttl": "1h"},
    }]});
    let (mut warden, mut client, mut admin) = start(builder(), rules).await;

    for _ in 1..THRESHOLD {
        denied(&mut client, &people).await;
        // Allowed checks are not counted, and nothing has tripped yet.
        assert_eq!(contained(&mut client, &people).await, None);
    }
    // The check that trips the wire is answered as the policy decided.
    denied(&mut client, &people).await;
    let first = contained(&mut client, &people)
        .await
        .expect("the next check meets the switch");
    let other = CheckBuilder::new(
        PLATFORM,
        "doc-summarizer-01",
        &people.readers[0],
        "documents.search",
        "document",
    )
    .build();
    assert!(
        allowed(&check(&mut client, other).await),
        "other agents go on"
    );

    let list = admin.list_kill_switches(0).await.unwrap();
    assert_eq!(tripwire_switch(&list.active).id, first);
    let engaged = audit_events(&warden, "kill_switch.engaged").await;
    assert_eq!(engaged.len(), 1, "{engaged:?}");
    assert_eq!(engaged[0]["details"]["id"], json!(first));
    assert_eq!(
        engaged[0]["details"]["engaged_by"],
        json!("warden:tripwire")
    );
    assert_eq!(
        engaged[0]["details"]["reason"],
        json!("tripwire:entitlement-denials")
    );

    // Setup, not an assertion: five snapshot intervals, so that the
    // counters saved are the ones that know the wire fired.
    tokio::time::sleep(Duration::from_secs(1)).await;
    warden.kill9();
    drop((client, admin, warden));
    let warden = builder().start().await;
    let mut client = warden.client().await;
    let mut admin = warden.admin().await;
    assert_eq!(contained(&mut client, &people).await, Some(first.clone()));
    let list = admin.list_kill_switches(0).await.unwrap();
    assert_eq!(tripwire_switch(&list.active).id, first);

    let released = admin
        .release_kill_switch(&first, "agent fixed", "tests")
        .await
        .unwrap();
    assert_eq!(released.state(), KillSwitchState::Released);
    assert_eq!(contained(&mut client, &people).await, None);
    // Re-armed, counting afresh.
    for _ in 1..THRESHOLD {
        denied(&mut client, &people).await;
        assert_eq!(contained(&mut client, &people).await, None);
    }
    denied(&mut client, &people).await;
    let second = contained(&mut client, &people)
        .await
        .expect("tripped again");
    assert_ne!(second, first);
    let list = admin.list_kill_switches(0).await.unwrap();
    assert_eq!(tripwire_switch(&list.active).id, second);
}
