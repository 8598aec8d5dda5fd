//! Search end to end, against the real binary: the tool-filtering call
//! answers every candidate as `Check` does, kill switches and quotas apply,
//! pages have neither gaps nor duplicates, tokens are bound to their query
//! and generation, each call is one audit record, and AuthZEN's search
//! endpoints (and the Todo example) answer as the spec says.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tonic::Code;
use warden_client::audit::{AuditClient, AuditQueryRequest};
use warden_client::{
    CheckBuilder, ClientError, ClientOptions, Decision, PageRequest, SearchActionsRequest,
};
use warden_e2e::process::{Warden, WardenBuilder};
use warden_e2e::{Demo, HttpResponse, http_request, repo_root};
use warden_proto::v1::{EngageKillSwitchRequest, KillSwitchMode, KillSwitchScope};

/// Forty tools a support platform might offer an agent: most of the
/// catalogue, of every kind, and one that needs approval on an account.
fn catalogue() -> Vec<String> {
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("policies/warden/config/data.json")).unwrap(),
    )
    .unwrap();
    let mut names: Vec<String> = config["actions"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|names| names.as_array().unwrap().iter())
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.truncate(39);
    names.push("accounts.delete".into());
    assert_eq!(names.len(), 40);
    names
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Status(status)) => (status.code(), status.message().to_owned()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn demo_server(builder: WardenBuilder) -> (Warden, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let warden = builder.without_demo_limits(dir.path()).start().await;
    (warden, dir)
}

fn tools_request(user: &str, tools: Vec<String>) -> SearchActionsRequest {
    CheckBuilder::new("support-desk", "access-admin", user, "-", "account")
        .resource_id("acct-7")
        .search_actions(tools)
}

#[tokio::test]
async fn tool_filtering_answers_forty_candidates_as_checks_do() {
    let (warden, _dir) = demo_server(Warden::builder()).await;
    let mut client = warden.client().await;
    let user = Demo::load().member_of("it-ops");
    let tools = catalogue();
    let answer = client
        .search_actions(tools_request(&user, tools.clone()))
        .await
        .unwrap();
    let page = answer.page.clone().unwrap();
    assert_eq!((page.count, page.evaluated, page.total), (40, 40, Some(40)));
    assert!(page.next_token.is_empty());
    assert_eq!(answer.results.len(), 40);
    let mut outcomes = BTreeSet::new();
    for (tool, result) in tools.iter().zip(&answer.results) {
        assert_eq!(&result.name, tool, "results come in the order given");
        let check = CheckBuilder::new("support-desk", "access-admin", &user, tool, "account")
            .resource_id("acct-7")
            .build();
        let checked = client.check(check).await.unwrap();
        assert_eq!(result.decision(), checked.decision(), "{tool}");
        assert_eq!(result.reasons, checked.reasons, "{tool}");
        assert_eq!(answer.policy_revision, checked.policy_revision);
        outcomes.insert(result.decision);
    }
    assert_eq!(
        outcomes.len(),
        3,
        "allow, deny and require approval all occur"
    );

    // Without candidates: only what checks allow (or ask approval for).
    let proposed = client
        .search_actions(tools_request(&user, Vec::new()))
        .await
        .unwrap();
    let names: Vec<&str> = proposed.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["accounts.create", "accounts.read"]);
    assert!(
        proposed
            .results
            .iter()
            .all(|r| r.decision() == Decision::Allow)
    );

    // A kill switch on the agent's access changes take effect on searches too.
    let mut admin = warden.admin().await;
    let switch = admin
        .engage_kill_switch(EngageKillSwitchRequest {
            scope: Some(KillSwitchScope {
                agent_id: "access-admin".into(),
                action: "accounts.*".into(),
                ..Default::default()
            }),
            mode: KillSwitchMode::DenyAll as i32,
            reason: "incident 9".into(),
            engaged_by: "tests".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let switched = client
        .search_actions(tools_request(&user, tools.clone()))
        .await
        .unwrap();
    for (tool, result) in tools.iter().zip(&switched.results) {
        if tool.starts_with("accounts.") {
            assert_eq!(result.decision(), Decision::Deny, "{tool}");
            assert_eq!(result.reasons[0], format!("kill_switch:{}", switch.id));
        }
    }
    let proposed = client
        .search_actions(tools_request(&user, Vec::new()))
        .await
        .unwrap();
    assert!(proposed.results.is_empty(), "{proposed:?}");

    // Bad candidates are named.
    let mut bad = tools.clone();
    bad[1] = "not an action".into();
    let (status, message) = code(client.search_actions(tools_request(&user, bad)).await);
    assert_eq!(status, Code::InvalidArgument, "{message}");
    assert!(message.contains("candidates[1]"), "{message}");
}

#[tokio::test]
async fn searches_are_paged_by_their_cap_and_tokens_are_bound() {
    let (warden, _dir) =
        demo_server(Warden::builder().env("WARDEN_LIMITS_MAX_SEARCH_EVALUATIONS", "7")).await;
    let mut client = warden.client().await;
    let user = Demo::load().member_of("it-ops");
    // More candidates than one call may evaluate is refused outright.
    let (status, message) = code(
        client
            .search_actions(tools_request(&user, catalogue()))
            .await,
    );
    assert_eq!(status, Code::InvalidArgument, "{message}");
    assert!(message.contains("candidates"), "{message}");

    // A subject search walks its pages, at most 7 evaluations each.
    let request = CheckBuilder::new(
        "internal-chat",
        "doc-summarizer",
        "",
        "documents.read",
        "document",
    )
    .resource_id("doc-1")
    .search_subjects();
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut request_page = request.clone();
    let total = loop {
        let answer = client.search_subjects(request_page.clone()).await.unwrap();
        let page = answer.page.unwrap();
        assert!(page.evaluated <= 7, "{page:?}");
        pages += 1;
        seen.extend(answer.results.into_iter().map(|r| r.id));
        if page.next_token.is_empty() {
            break page.total.expect("the last page knows the total");
        }
        assert_eq!(page.total, None);
        // A token is for its own query only, and cannot be altered.
        let mut other = request_page.clone();
        other.action.as_mut().unwrap().name = "documents.write".into();
        other.page = Some(PageRequest {
            token: page.next_token.clone(),
            limit: 0,
        });
        let (status, message) = code(client.search_subjects(other).await);
        assert_eq!(status, Code::InvalidArgument, "{message}");
        assert!(message.contains("page.token"), "{message}");
        let mut forged = page.next_token.clone().into_bytes();
        forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
        let mut altered = request_page.clone();
        altered.page = Some(PageRequest {
            token: String::from_utf8(forged).unwrap(),
            limit: 0,
        });
        let (status, _) = code(client.search_subjects(altered).await);
        assert_eq!(status, Code::InvalidArgument);
        request_page.page = Some(PageRequest {
            token: page.next_token,
            limit: 0,
        });
    };
    assert!(pages > 1, "the search needed several pages");
    assert_eq!(seen.len() as u64, total);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no subject twice");
    assert!(!seen.is_empty());
    // Each found subject is one a check allows.
    for id in &seen {
        let check = CheckBuilder::new(
            "internal-chat",
            "doc-summarizer",
            id,
            "documents.read",
            "document",
        )
        .resource_id("doc-1")
        .build();
        assert_eq!(
            client.check(check).await.unwrap().decision(),
            Decision::Allow,
            "{id}"
        );
    }

    // A token from before a snapshot changed is refused: start again.
    let first = client.search_subjects(request.clone()).await.unwrap();
    let token = first.page.unwrap().next_token;
    assert!(!token.is_empty());
    let mut admin = warden.admin().await;
    let mut identity = Demo::load().identity;
    identity["version"] = json!("identity-next");
    admin
        .put_snapshot("identity", serde_json::to_vec(&identity).unwrap())
        .await
        .unwrap();
    let mut stale = request.clone();
    stale.page = Some(PageRequest { token, limit: 0 });
    let (status, message) = code(client.search_subjects(stale).await);
    assert_eq!(status, Code::FailedPrecondition, "{message}");

    // One audit record per call, naming the query and its count.
    let mut audit = AuditClient::connect(warden.admin_endpoint(), ClientOptions::default())
        .await
        .unwrap();
    let records = audit
        .query_all(
            AuditQueryRequest {
                r#type: "search".into(),
                ..AuditQueryRequest::default()
            },
            1000,
        )
        .await
        .unwrap();
    let searches: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.json).unwrap()["record"].clone())
        .collect();
    assert_eq!(searches.len(), pages + 1, "one per answered call");
    let last = searches.last().unwrap();
    assert_eq!(last["target"], "subjects", "{last}");
    assert_eq!(last["action"], "documents.read", "{last}");
    assert_eq!(last["resource"], "document:doc-1", "{last}");
    assert_eq!(last["evaluated"], 7, "{last}");
    assert!(last["query"]["principal"].get("id").is_none(), "{last}");
    assert!(
        last["policy_revision"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let decisions = audit
        .query_all(
            AuditQueryRequest {
                r#type: "decision".into(),
                ..AuditQueryRequest::default()
            },
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(
        decisions.len(),
        seen.len(),
        "only the checks above made decision records"
    );
}

#[tokio::test]
async fn a_search_costs_its_evaluations_against_the_platform_rate() {
    let (warden, _dir) = demo_server(
        Warden::builder()
            .env("WARDEN_LIMITS_PLATFORM_RATE", "0.001")
            .env("WARDEN_LIMITS_PLATFORM_BURST", "12"),
    )
    .await;
    let mut client = warden.client().await;
    let user = Demo::load().member_of("it-ops");
    let tools: Vec<String> = catalogue().into_iter().take(10).collect();
    client
        .search_actions(tools_request(&user, tools.clone()))
        .await
        .unwrap();
    // Ten spent of twelve: ten more do not fit, two do.
    let (status, message) = code(
        client
            .search_actions(tools_request(&user, tools.clone()))
            .await,
    );
    assert_eq!(status, Code::ResourceExhausted, "{message}");
    client
        .search_actions(tools_request(&user, tools[..2].to_vec()))
        .await
        .unwrap();
}

fn post(warden: &Warden, path: &str, headers: &[(&str, &str)], body: &Value) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let addr = warden.http_addr.expect("the HTTP listener is on");
    http_request(addr, "POST", path, &all, Some(body.to_string().as_bytes()))
}

const DEMO_HEADERS: &[(&str, &str)] = &[
    ("X-Warden-Platform", "internal-chat"),
    ("X-Warden-Agent", "doc-summarizer"),
];

#[tokio::test]
async fn authzen_subject_search_pages_without_gaps_or_duplicates() {
    let (warden, _dir) = demo_server(Warden::builder()).await;
    let query = json!({
        "subject": {"type": "user"},
        "action": {"name": "documents.read"},
        "resource": {"type": "document", "id": "doc-1"},
    });
    let whole = post(&warden, "/access/v1/search/subject", DEMO_HEADERS, &query);
    assert_eq!(whole.status, 200, "{}", whole.body);
    assert_eq!(whole.header("content-type"), Some("application/json"));
    let whole = whole.json();
    let everyone: Vec<String> = whole["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["type"], "user", "{r}");
            r["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(everyone.len() > 10, "{whole}");
    assert_eq!(whole["page"]["next_token"], "");
    assert_eq!(whole["page"]["total"], json!(everyone.len()));

    let mut paged = Vec::new();
    let mut request = query.clone();
    request["page"] = json!({"limit": 4});
    loop {
        let response = post(&warden, "/access/v1/search/subject", DEMO_HEADERS, &request);
        assert_eq!(response.status, 200, "{}", response.body);
        let body = response.json();
        let results = body["results"].as_array().unwrap();
        assert!(results.len() <= 4);
        assert_eq!(body["page"]["count"], json!(results.len()));
        paged.extend(results.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        let token = body["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            assert_eq!(body["page"]["total"], json!(everyone.len()));
            break;
        }
        // Changing the query mid-way is an error, not a silent restart.
        let mut changed = request.clone();
        changed["action"]["name"] = json!("documents.write");
        changed["page"]["token"] = json!(token);
        let refused = post(&warden, "/access/v1/search/subject", DEMO_HEADERS, &changed);
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.body.contains("page.token"), "{}", refused.body);
        request["page"]["token"] = json!(token);
    }
    assert_eq!(paged, everyone, "the pages are the whole, in order");

    // The searched entity's id is ignored.
    let mut with_id = query.clone();
    with_id["subject"]["id"] = json!("someone");
    let again = post(&warden, "/access/v1/search/subject", DEMO_HEADERS, &with_id).json();
    assert_eq!(again["results"], whole["results"]);

    // Resource and action search in AuthZEN's shapes.
    let user = Demo::load().member_of("engineering");
    let resources = post(
        &warden,
        "/access/v1/search/resource",
        DEMO_HEADERS,
        &json!({"subject": {"type": "user", "id": user}, "action": {"name": "documents.read"}, "resource": {"type": "document"}}),
    );
    assert_eq!(resources.status, 200, "{}", resources.body);
    let resources = resources.json();
    assert_eq!(
        resources["results"][0],
        json!({"type": "document", "id": "*", "properties": {"every_resource": true}}),
        "{resources}"
    );
    let actions = post(
        &warden,
        "/access/v1/search/action",
        DEMO_HEADERS,
        &json!({"subject": {"type": "user", "id": user}, "resource": {"type": "document", "id": "doc-1"}}),
    );
    assert_eq!(actions.status, 200, "{}", actions.body);
    let actions = actions.json();
    let names: Vec<&str> = actions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"documents.read"), "{names:?}");
    // Inputs must be whole; unknown ids and types find nothing.
    for (path, body) in [
        (
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "resource": {"type": "document", "id": "doc-1"}}),
        ),
        (
            "/access/v1/search/resource",
            json!({"subject": {"type": "user"}, "action": {"name": "documents.read"}, "resource": {"type": "document"}}),
        ),
        (
            "/access/v1/search/action",
            json!({"subject": {"type": "user", "id": user}}),
        ),
    ] {
        let response = post(&warden, path, DEMO_HEADERS, &body);
        assert_eq!(response.status, 400, "{path}: {}", response.body);
    }
    for (path, body) in [
        (
            "/access/v1/search/action",
            json!({"subject": {"type": "user", "id": "nobody"}, "resource": {"type": "document", "id": "doc-1"}}),
        ),
        (
            "/access/v1/search/subject",
            json!({"subject": {"type": "spaceship"}, "action": {"name": "documents.read"}, "resource": {"type": "document", "id": "doc-1"}}),
        ),
    ] {
        let response = post(&warden, path, DEMO_HEADERS, &body);
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        assert_eq!(response.json()["results"], json!([]), "{path}");
    }
    // The metadata lists the three search endpoints.
    let (status, metadata) = warden_e2e::http_get(
        warden.http_addr.unwrap(),
        "/.well-known/authzen-configuration",
    );
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    for (key, path) in [
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert!(
            metadata[key].as_str().unwrap().ends_with(path),
            "{metadata}"
        );
    }
}

/// The AuthZEN Todo example: an action search for each user returns
/// exactly the actions its evaluations allow.
#[tokio::test]
async fn the_todo_example_answers_action_search_for_each_user() {
    let example = repo_root().join("examples/authzen-todo");
    let path = |name: &str| example.join(name).display().to_string();
    let warden = Warden::builder()
        .arg("--config")
        .arg(path("warden.toml"))
        .arg("--bundle")
        .arg(path("policy"))
        .arg("--identity")
        .arg(path("identity.json"))
        .arg("--entitlements")
        .arg(path("entitlements.json"))
        .start()
        .await;
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(path("identity.json")).unwrap()).unwrap();
    let actions: Vec<String> = identity["agents"]["todo-backend"]["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let users = identity["users"].as_object().unwrap();
    assert_eq!(users.len(), 5);
    let owner = users.values().next().unwrap()["attributes"]["email"].clone();
    let resource = json!({"type": "todo", "id": "t-1", "properties": {"ownerID": owner}});
    let mut distinct = BTreeSet::new();
    for id in users.keys() {
        let search = post(
            &warden,
            "/access/v1/search/action",
            &[],
            &json!({"subject": {"type": "user", "id": id}, "resource": resource}),
        );
        assert_eq!(search.status, 200, "{}", search.body);
        let found: BTreeSet<String> = search.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        let mut allowed = BTreeSet::new();
        for action in &actions {
            let evaluation = post(
                &warden,
                "/access/v1/evaluation",
                &[],
                &json!({"subject": {"type": "user", "id": id}, "action": {"name": action}, "resource": resource}),
            );
            if evaluation.json()["decision"] == json!(true) {
                allowed.insert(action.clone());
            }
        }
        assert_eq!(found, allowed, "{id}");
        distinct.insert(found);
    }
    assert!(distinct.len() >= 3, "the roles differ: {distinct:?}");
}
