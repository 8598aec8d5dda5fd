//! The decision path end to end: the real `warden` binary on loopback, the
//! real client, the default policy and demo snapshots.

use tonic::Code;
use tonic_types::StatusExt;
use warden_client::{
    CheckBuilder, CheckRequest, CheckResponse, ClientError, Decision, batch_check_result,
};
use warden_e2e::Demo;
use warden_e2e::process::Warden;

fn expense(platform: &str, agent: &str, user: &str, action: &str) -> CheckBuilder {
    CheckBuilder::new(platform, agent, user, action, "expense").resource_id("exp-1")
}

fn finance_user() -> String {
    Demo::load().member_of("finance")
}

fn assert_decision(response: &CheckResponse, decision: Decision, reasons: &[&str]) {
    assert_eq!(response.decision(), decision, "{response:?}");
    assert_eq!(response.reasons, reasons, "{response:?}");
}

/// The field a `google.rpc.BadRequest` detail blames.
fn blamed_field(error: &ClientError) -> (Code, String) {
    let status = error
        .status()
        .unwrap_or_else(|| panic!("expected a status, got {error}"));
    let field = status
        .get_details_bad_request()
        .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default();
    assert!(
        status.message().contains(&field),
        "message `{}` should name `{field}`",
        status.message()
    );
    (status.code(), field)
}

#[tokio::test]
async fn allows_what_both_agent_and_principal_may_do() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let response = client
        .check(
            expense(
                "copilot-studio",
                "expense-assistant",
                &finance_user(),
                "expenses.submit",
            )
            .request_id("corr-1")
            .context("purpose", serde_json::json!("month-end"))
            .build(),
        )
        .await
        .unwrap();
    assert_decision(&response, Decision::Allow, &[]);
    assert_eq!(response.request_id, "corr-1");
    let id = response.decision_id.parse::<uuid_like::Id>().unwrap();
    assert_eq!(
        id.version(),
        7,
        "decision ids are UUIDv7: {}",
        response.decision_id
    );
    assert!(
        response.policy_revision.starts_with("sha256:"),
        "{}",
        response.policy_revision
    );
    assert_eq!(response.snapshot_versions["identity"], "identity-7-300");
    assert_eq!(
        response.snapshot_versions["entitlements"],
        "entitlements-7-300"
    );
    assert!(response.kill_switch.is_none());
}

#[tokio::test]
async fn denies_with_one_reason_per_broken_rule() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let demo = Demo::load();
    let finance = demo.member_of("finance");
    let outsider = demo.outsider(&["finance", "finance-infra-1"]);

    let cases: Vec<(CheckRequest, &[&str])> = vec![
        (
            expense("copilot-studio", "ghost", &finance, "expenses.submit").build(),
            &["agent_unknown"],
        ),
        (
            expense(
                "agentforce",
                "expense-assistant",
                &finance,
                "expenses.submit",
            )
            .build(),
            &["platform_mismatch"],
        ),
        // The principal may post to the ledger, but this agent holds no such grant.
        (
            CheckBuilder::new(
                "copilot-studio",
                "expense-assistant",
                &finance,
                "ledger.post",
                "ledger",
            )
            .resource_id("gl-2026")
            .build(),
            // `ledger.post` matches the disclosing `*.post` too.
            &["agent_not_granted", "audience_missing"],
        ),
        // The agent may submit expenses, but this person may not.
        (
            expense(
                "copilot-studio",
                "expense-assistant",
                &outsider,
                "expenses.submit",
            )
            .build(),
            &["principal_not_entitled"],
        ),
        (
            expense(
                "copilot-studio",
                "expense-assistant",
                "nobody.here",
                "expenses.submit",
            )
            .build(),
            &["principal_not_entitled", "principal_unknown"],
        ),
        (
            expense(
                "copilot-studio",
                "expense-assistant",
                &finance,
                "expenses.submit",
            )
            .principal_type("service")
            .build(),
            &["principal_not_entitled"],
        ),
    ];
    for (request, reasons) in cases {
        let response = client.check(request.clone()).await.unwrap();
        assert_decision(&response, Decision::Deny, reasons);
        assert!(!response.decision_id.is_empty());
    }
}

#[tokio::test]
async fn sensitive_actions_require_approval() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let admin = Demo::load().member_of("it-ops");
    let response = client
        .check(
            CheckBuilder::new(
                "support-desk",
                "access-admin",
                &admin,
                "permissions.grant",
                "role",
            )
            .resource_id("finance-approver")
            .build(),
        )
        .await
        .unwrap();
    assert_decision(&response, Decision::RequireApproval, &["sensitive_action"]);
}

#[tokio::test]
async fn batch_answers_every_item_on_its_own() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let demo = Demo::load();
    let finance = demo.member_of("finance");
    let admin = demo.member_of("it-ops");
    let mut invalid = expense(
        "copilot-studio",
        "expense-assistant",
        &finance,
        "expenses.submit",
    )
    .build();
    invalid.agent.as_mut().unwrap().id.clear();
    let items = vec![
        expense(
            "copilot-studio",
            "expense-assistant",
            &finance,
            "expenses.submit",
        )
        .request_id("a")
        .build(),
        expense("copilot-studio", "ghost", &finance, "expenses.submit")
            .request_id("b")
            .build(),
        invalid,
        CheckBuilder::new(
            "support-desk",
            "access-admin",
            &admin,
            "iam.roles.assign",
            "role",
        )
        .request_id("d")
        .build(),
    ];
    let results = client.batch_check(items).await.unwrap();
    assert_eq!(results.len(), 4);
    let response = |i: usize| match &results[i].result {
        Some(batch_check_result::Result::Response(r)) => r.clone(),
        other => panic!("item {i}: expected a response, got {other:?}"),
    };
    assert_decision(&response(0), Decision::Allow, &[]);
    assert_eq!(response(0).request_id, "a");
    assert_decision(&response(1), Decision::Deny, &["agent_unknown"]);
    match &results[2].result {
        Some(batch_check_result::Result::Error(e)) => {
            assert_eq!(e.code, Code::InvalidArgument as i32);
            assert_eq!(e.field, "agent.id");
        }
        other => panic!("item 2: expected an error, got {other:?}"),
    }
    assert_decision(
        &response(3),
        Decision::RequireApproval,
        &["sensitive_action"],
    );
    assert_eq!(response(3).request_id, "d");
    // One generation for the batch.
    assert_eq!(response(0).policy_revision, response(3).policy_revision);
    let ids: std::collections::HashSet<_> = [0, 1, 3]
        .map(|i| response(i).decision_id)
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 3, "every item has its own decision id");
}

#[tokio::test]
async fn every_validation_rule_names_its_field() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let valid = || {
        expense(
            "copilot-studio",
            "expense-assistant",
            "someone",
            "expenses.submit",
        )
        .request_id("r")
        .delegated_by("client:chat-ui")
        .build()
    };
    let long = "x".repeat(257);
    let nan = prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
    };
    let nested = |levels: usize| {
        (0..levels).fold(
            serde_json::json!(1),
            |inner, _| serde_json::json!({ "a": inner }),
        )
    };
    let deep = nested(20);
    // The default limit is 16 levels below `context`; the 17th is refused.
    let deep_field = format!("context{}", ".a".repeat(17));

    type Mutation = Box<dyn Fn(&mut CheckRequest)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("platform", Box::new(|r| r.platform.clear())),
        ("agent", Box::new(|r| r.agent = None)),
        (
            "agent.id",
            Box::new(|r| r.agent.as_mut().unwrap().id.clear()),
        ),
        ("agent.id", {
            let long = long.clone();
            Box::new(move |r| r.agent.as_mut().unwrap().id = long.clone())
        }),
        (
            "agent.id",
            Box::new(|r| r.agent.as_mut().unwrap().id = "a\nb".into()),
        ),
        ("principal", Box::new(|r| r.principal = None)),
        (
            "principal.id",
            Box::new(|r| r.principal.as_mut().unwrap().id.clear()),
        ),
        (
            "principal.type",
            Box::new(|r| r.principal.as_mut().unwrap().r#type = "group:admins".into()),
        ),
        ("action", Box::new(|r| r.action = None)),
        (
            "action.name",
            Box::new(|r| r.action.as_mut().unwrap().name.clear()),
        ),
        (
            "action.name",
            Box::new(|r| r.action.as_mut().unwrap().name = "documents..read".into()),
        ),
        (
            "action.name",
            Box::new(|r| r.action.as_mut().unwrap().name = "documents.*".into()),
        ),
        ("resource", Box::new(|r| r.resource = None)),
        (
            "resource.type",
            Box::new(|r| r.resource.as_mut().unwrap().r#type.clear()),
        ),
        ("resource.id", {
            let long = long.clone();
            Box::new(move |r| r.resource.as_mut().unwrap().id = long.clone())
        }),
        (
            "delegation_chain",
            Box::new(|r| r.delegation_chain = vec!["a".into(); 17]),
        ),
        (
            "delegation_chain[1]",
            Box::new(|r| r.delegation_chain = vec!["client:a".into(), String::new()]),
        ),
        ("request_id", {
            let long = long.clone();
            Box::new(move |r| r.request_id = long.clone())
        }),
        ("agent.attributes.score", {
            let nan = nan.clone();
            Box::new(move |r| {
                r.agent.as_mut().unwrap().attributes = Some(prost_types::Struct {
                    fields: [("score".to_string(), nan.clone())].into_iter().collect(),
                })
            })
        }),
        (
            "context.tags[1]",
            Box::new(|r| {
                let list = prost_types::Value {
                    kind: Some(prost_types::value::Kind::ListValue(
                        prost_types::ListValue {
                            values: vec![
                                warden_proto::convert::to_value(serde_json::json!("ok")),
                                prost_types::Value { kind: None },
                            ],
                        },
                    )),
                };
                r.context = Some(prost_types::Struct {
                    fields: [("tags".to_string(), list)].into_iter().collect(),
                });
            }),
        ),
        (&deep_field, {
            let deep = deep.clone();
            Box::new(move |r| {
                r.context = Some(warden_proto::convert::to_struct(
                    deep.as_object().unwrap().clone(),
                ));
            })
        }),
        (
            "request",
            Box::new(|r| {
                r.action.as_mut().unwrap().attributes = Some(warden_proto::convert::to_struct(
                    serde_json::json!({ "blob": "y".repeat(70 * 1024) })
                        .as_object()
                        .unwrap()
                        .clone(),
                ));
            }),
        ),
    ];

    for (field, mutate) in &cases {
        let mut request = valid();
        mutate(&mut request);
        let error = client.check(request.clone()).await.expect_err(field);
        assert_eq!(
            blamed_field(&error),
            (Code::InvalidArgument, field.to_string()),
            "{error}"
        );

        // In a batch the same item gets the same verdict, alone.
        let results = client.batch_check(vec![valid(), request]).await.unwrap();
        assert!(matches!(
            results[0].result,
            Some(batch_check_result::Result::Response(_))
        ));
        match &results[1].result {
            Some(batch_check_result::Result::Error(e)) => assert_eq!(&e.field, field),
            other => panic!("{field}: expected an item error, got {other:?}"),
        }
    }

    // Nesting beyond what protobuf decoding allows is refused by the codec,
    // still as the caller's error.
    let mut request = valid();
    request.context = Some(warden_proto::convert::to_struct(
        nested(60).as_object().unwrap().clone(),
    ));
    let status = client
        .check(request)
        .await
        .unwrap_err()
        .status()
        .cloned()
        .unwrap();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("cannot be decoded"), "{status:?}");

    // The batch itself: empty, and more than the limit.
    let error = client.batch_check(Vec::new()).await.unwrap_err();
    assert_eq!(
        blamed_field(&error),
        (Code::InvalidArgument, "items".to_string())
    );
    let error = client.batch_check(vec![valid(); 257]).await.unwrap_err();
    assert_eq!(
        blamed_field(&error),
        (Code::InvalidArgument, "items".to_string())
    );
    assert_eq!(
        client.batch_check(vec![valid(); 256]).await.unwrap().len(),
        256
    );
}

#[tokio::test]
async fn limits_are_configurable() {
    let warden = Warden::builder()
        .env("WARDEN_LIMITS_MAX_BATCH_ITEMS", "2")
        .env("WARDEN_LIMITS_MAX_ID_BYTES", "32")
        .start()
        .await;
    let mut client = warden.client().await;
    let request = expense("p", "agent", "user", "expenses.submit").build();
    let error = client
        .batch_check(vec![request.clone(); 3])
        .await
        .unwrap_err();
    assert_eq!(blamed_field(&error).1, "items");
    let long = expense("p", &"a".repeat(33), "user", "expenses.submit").build();
    assert_eq!(
        blamed_field(&client.check(long).await.unwrap_err()).1,
        "agent.id"
    );
    assert_eq!(client.batch_check(vec![request; 2]).await.unwrap().len(), 2);
}

/// UUID parsing without a dependency: version nibble of a canonical UUID.
mod uuid_like {
    pub struct Id(String);
    impl std::str::FromStr for Id {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let hex: String = s.chars().filter(|c| *c != '-').collect();
            if s.len() == 36 && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(Id(hex))
            } else {
                Err(format!("`{s}` is not a UUID"))
            }
        }
    }
    impl Id {
        pub fn version(&self) -> u32 {
            self.0[12..13]
                .chars()
                .next()
                .and_then(|c| c.to_digit(16))
                .unwrap_or(0)
        }
    }
}
