//! The admin plane end to end: pushing bundles and snapshots, activation,
//! rollback, persistence, and every reason a push is refused — each time
//! checking that a refused push changed nothing.

use std::collections::BTreeMap;

use tonic::Code;
use warden_bundle::testing::{Entry, tar_gz};
use warden_client::admin::BundleTarget;
use warden_client::{AdminClient, CheckBuilder, CheckRequest, ClientError, Decision, WardenClient};
use warden_e2e::Demo;
use warden_e2e::process::Warden;

/// A bundle archive holding `files`.
fn bundle(files: &[(&str, &str)]) -> Vec<u8> {
    let files: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(path, content)| ((*path).to_owned(), content.as_bytes().to_vec()))
        .collect();
    warden_bundle::write_tar_gz(&files).unwrap()
}

/// Denies everything with reason `frozen`.
fn frozen() -> Vec<u8> {
    bundle(&[
        (
            ".manifest",
            r#"{"revision": "frozen-1", "roots": ["warden"]}"#,
        ),
        (
            "warden/authz/policy.rego",
            "package warden.authz\n\ndecision := {\"allow\": false, \"reasons\": [\"frozen\"]}\n\ntest_frozen if not decision.allow\n",
        ),
    ])
}

fn allowed_request() -> CheckRequest {
    CheckBuilder::new(
        "copilot-studio",
        "expense-assistant",
        Demo::load().member_of("finance"),
        "expenses.read",
        "expense",
    )
    .resource_id("exp-7")
    .build()
}

async fn decide(client: &mut WardenClient) -> (Decision, Vec<String>, String) {
    let response = client.check(allowed_request()).await.unwrap();
    (
        response.decision(),
        response.reasons.clone(),
        response.policy_revision.clone(),
    )
}

#[tokio::test]
async fn push_changes_decisions_rollback_restores_and_restart_keeps_the_active_revision() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder().data_dir(dir.path()).start().await;
    let mut client = warden.client().await;
    let mut admin = warden.admin().await;
    let (decision, _, original) = decide(&mut client).await;
    assert_eq!(decision, Decision::Allow);

    let pushed = admin
        .put_bundle(frozen(), BundleTarget::Active)
        .await
        .unwrap();
    assert!(pushed.active);
    assert_eq!(pushed.revision, "frozen-1");
    assert_eq!(pushed.tests_passed, 1);
    assert_eq!(
        decide(&mut client).await,
        (Decision::Deny, vec!["frozen".into()], "frozen-1".into())
    );

    let back = admin.rollback().await.unwrap();
    assert_eq!(back.revision, original);
    assert_eq!(decide(&mut client).await.0, Decision::Allow);
    assert_eq!(
        admin
            .rollback()
            .await
            .unwrap_err()
            .status()
            .map(|s| s.code()),
        Some(Code::FailedPrecondition),
        "nothing further to roll back to"
    );

    let again = admin
        .activate(&pushed.digest[..12], BundleTarget::Active)
        .await
        .unwrap();
    assert_eq!(again.revision, "frozen-1");
    assert_eq!(decide(&mut client).await.2, "frozen-1");
    let listed = admin.list_bundles().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].active && listed[0].revision == "frozen-1");

    // A restart serves exactly what was active, not the configured bundle.
    let mut warden = warden;
    warden.terminate().await;
    drop(warden);
    let warden = Warden::builder().data_dir(dir.path()).start().await;
    let mut client = warden.client().await;
    assert_eq!(
        decide(&mut client).await,
        (Decision::Deny, vec!["frozen".into()], "frozen-1".into())
    );
    let status = warden.admin().await.status().await.unwrap();
    assert_eq!(status.active.unwrap().revision, "frozen-1");
}

/// Asserts that `error` carries `code` and mentions `expected`.
fn assert_refused(error: ClientError, code: Code, expected: &str) {
    let status = error
        .status()
        .unwrap_or_else(|| panic!("expected a status, got {error}"));
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(expected),
        "expected `{expected}` in `{}`",
        status.message()
    );
}

async fn assert_unchanged(admin: &mut AdminClient, client: &mut WardenClient, generation: u64) {
    let status = admin.status().await.unwrap();
    assert_eq!(
        status.generation, generation,
        "a refused push must not publish a generation"
    );
    assert_eq!(decide(client).await.0, Decision::Allow);
}

#[tokio::test]
async fn every_validation_rule_refuses_precisely_and_changes_nothing() {
    let warden = Warden::builder()
        .env("WARDEN_BUNDLES_MAX_PUSH_BYTES", "200000")
        .env("WARDEN_LIMITS_MAX_BUNDLE_BYTES", "1048576")
        .start()
        .await;
    let mut client = warden.client().await;
    let mut admin = warden.admin().await;
    let generation = admin.status().await.unwrap().generation;
    let policy = "package warden.authz\n\ndecision := true\n";
    // Hex digits of a pseudo-random sequence: compresses only about 2:1.
    let big: String = (0..800_000u64)
        .scan(0x2545_f491_4f6c_dd1du64, |state, _| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            Some(char::from_digit((*state % 16) as u32, 16).unwrap_or('0'))
        })
        .collect();
    let hostile_wasm = wat::parse_str(r#"(module (import "env" "memory" (memory 1)))"#).unwrap();

    let cases: Vec<(Vec<u8>, Code, &str)> = vec![
        (
            Vec::new(),
            Code::InvalidArgument,
            "invalid bundle: is required",
        ),
        (
            bundle(&[("p.rego", policy), ("big.txt", &big)]),
            Code::InvalidArgument,
            "more than the limit of 200000 bytes (bundles.max_push_bytes)",
        ),
        // A decompression bomb: under 100 KB pushed, 16 MiB unpacked.
        (
            tar_gz(&[
                Entry::File("p.rego", policy.as_bytes()),
                Entry::Zeros("data.json", 16 * 1024 * 1024),
            ]),
            Code::InvalidArgument,
            "bytes decompressed, more than the limit of 1048576 bytes (limits.max_bundle_bytes)",
        ),
        (
            b"definitely not gzip".to_vec(),
            Code::InvalidArgument,
            "bundle archive",
        ),
        (
            tar_gz(&[
                Entry::File("p.rego", policy.as_bytes()),
                Entry::File("../escape.rego", policy.as_bytes()),
            ]),
            Code::InvalidArgument,
            "points outside the bundle",
        ),
        (
            tar_gz(&[
                Entry::File("p.rego", policy.as_bytes()),
                Entry::Symlink("link.rego", "/etc/passwd"),
            ]),
            Code::InvalidArgument,
            "Symlink",
        ),
        (
            tar_gz(&[
                Entry::File("p.rego", policy.as_bytes()),
                Entry::CharDevice("tty"),
            ]),
            Code::InvalidArgument,
            "Char",
        ),
        (
            bundle(&[("p.rego", policy), ("big.txt", &big[..100_000])])[..100].to_vec(),
            Code::InvalidArgument,
            "bundle archive",
        ),
        (
            bundle(&[
                (".manifest", r#"{"roots": ["identity"]}"#),
                ("p.rego", policy),
            ]),
            Code::InvalidArgument,
            "overlaps `identity`",
        ),
        (
            bundle(&[
                ("p.rego", policy),
                ("entitlements/data.json", r#"{"subjects": {}}"#),
            ]),
            Code::InvalidArgument,
            "data.entitlements",
        ),
        (
            bundle(&[(
                "warden/authz/broken.rego",
                "package warden.authz\n\ndecision := {\n",
            )]),
            Code::InvalidArgument,
            "broken.rego",
        ),
        (
            bundle(&[("p.rego", "package other\n\nx := 1\n")]),
            Code::InvalidArgument,
            "data.warden.authz.decision",
        ),
        (
            bundle(&[(
                "p.rego",
                "package warden.authz\n\ndecision := false\n\ntest_expects_allow if decision\n",
            )]),
            Code::FailedPrecondition,
            "test_expects_allow",
        ),
        (
            bundle(&[
                ("p.rego", policy),
                ("warden/authz/decision/data.json", "{\"x\": 1}"),
            ]),
            Code::InvalidArgument,
            "conflict",
        ),
        (
            {
                let mut files = BTreeMap::new();
                files.insert(".manifest".to_owned(), br#"{"wasm": [{"entrypoint": "warden/authz/decision", "module": "/policy.wasm"}]}"#.to_vec());
                files.insert("policy.wasm".to_owned(), hostile_wasm);
                warden_bundle::write_tar_gz(&files).unwrap()
            },
            Code::InvalidArgument,
            "lacks the export `eval`",
        ),
    ];
    for (archive, code, expected) in cases {
        let error = admin
            .put_bundle(archive, BundleTarget::Active)
            .await
            .expect_err(&format!(
                "a bundle that should fail with `{expected}` was accepted"
            ));
        assert_refused(error, code, expected);
        assert_unchanged(&mut admin, &mut client, generation).await;
    }

    // Snapshots: unknown kind, malformed document, schema, version order.
    let demo = Demo::load();
    let mut older = demo.identity.clone();
    older["version"] = serde_json::json!("identity-7-299");
    let mut unknown_key = demo.identity.clone();
    unknown_key["robots"] = serde_json::json!({});
    let snapshot_cases: Vec<(&str, Vec<u8>, Code, &str)> = vec![
        (
            "people",
            b"{}".to_vec(),
            Code::InvalidArgument,
            "invalid kind",
        ),
        (
            "identity",
            b"{not json".to_vec(),
            Code::InvalidArgument,
            "not valid JSON",
        ),
        (
            "identity",
            serde_json::to_vec(&unknown_key).unwrap(),
            Code::InvalidArgument,
            "`robots` is not a known key",
        ),
        (
            "identity",
            serde_json::to_vec(&older).unwrap(),
            Code::FailedPrecondition,
            "is not newer than the current `identity-7-300`",
        ),
        (
            "identity",
            serde_json::to_vec(&demo.identity).unwrap(),
            Code::FailedPrecondition,
            "is not newer",
        ),
    ];
    for (kind, document, code, expected) in snapshot_cases {
        let error = admin.put_snapshot(kind, document).await.unwrap_err();
        assert_refused(error, code, expected);
        assert_unchanged(&mut admin, &mut client, generation).await;
    }
}

#[tokio::test]
async fn snapshots_swap_and_staleness_denies_per_kind() {
    // Entitlements may be an hour old; identity has no limit.
    let warden = Warden::builder()
        .env("WARDEN_SNAPSHOTS_ENTITLEMENTS_MAX_AGE", "1h")
        .start()
        .await;
    let mut client = warden.client().await;
    let mut admin = warden.admin().await;
    // The demo entitlements were generated on 2026-11-01.
    assert_eq!(
        decide(&mut client).await.1,
        vec!["stale_snapshot:entitlements".to_string()]
    );

    let mut fresh = Demo::load().entitlements;
    fresh["version"] = serde_json::json!("entitlements-7-301");
    fresh["generated_at"] = serde_json::json!(time_now());
    let info = admin
        .put_snapshot("entitlements", serde_json::to_vec(&fresh).unwrap())
        .await
        .unwrap();
    assert_eq!(info.version, "entitlements-7-301");
    assert!(!info.stale);
    let response = client.check(allowed_request()).await.unwrap();
    assert_eq!(response.decision(), Decision::Allow);
    assert_eq!(
        response.snapshot_versions["entitlements"],
        "entitlements-7-301"
    );

    // Taking the finance group's rights away takes effect on the next check.
    let mut revoked = fresh.clone();
    revoked["version"] = serde_json::json!("entitlements-7-302");
    revoked["subjects"]["group:finance"] = serde_json::json!({});
    revoked["subjects"]["group:finance-infra-1"] = serde_json::json!({});
    admin
        .put_snapshot("entitlements", serde_json::to_vec(&revoked).unwrap())
        .await
        .unwrap();
    let response = client.check(allowed_request()).await.unwrap();
    assert_eq!(response.decision(), Decision::Deny, "{response:?}");
    assert!(
        response
            .reasons
            .contains(&"principal_not_entitled".to_string())
    );
}

fn time_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Civil date from Unix time (days since 1970-01-01), UTC.
    let days = seconds / 86_400;
    let (mut year, mut day) = (1970u64, days);
    loop {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let length = if leap { 366 } else { 365 };
        if day < length {
            break;
        }
        day -= length;
        year += 1;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let months = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while day >= months[month] {
        day -= months[month];
        month += 1;
    }
    let rest = seconds % 86_400;
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        day + 1,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[tokio::test]
async fn a_shadow_bundle_is_compared_but_never_answers() {
    let warden = Warden::start().await;
    let mut client = warden.client().await;
    let mut admin = warden.admin().await;
    let shadow = admin
        .put_bundle(frozen(), BundleTarget::Shadow)
        .await
        .unwrap();
    assert!(shadow.shadow && !shadow.active);
    for _ in 0..5 {
        assert_eq!(decide(&mut client).await.0, Decision::Allow);
    }
    let status = admin.status().await.unwrap();
    assert_eq!(status.shadow.unwrap().revision, "frozen-1");
    assert_eq!(status.shadow_divergences, 5);

    // Cleared, it is no longer evaluated, but stays stored; clearing again
    // finds nothing. Both requests are audited.
    let cleared = admin.clear_shadow().await.unwrap().unwrap();
    assert_eq!(cleared.digest, shadow.digest);
    assert!(!cleared.shadow, "{cleared:?}");
    for _ in 0..3 {
        assert_eq!(decide(&mut client).await.0, Decision::Allow);
    }
    let status = admin.status().await.unwrap();
    assert!(status.shadow.is_none(), "{:?}", status.shadow);
    assert_eq!(status.shadow_divergences, 5);
    assert!(admin.clear_shadow().await.unwrap().is_none());
    let records = warden_client::AuditClient::connect(
        warden.admin_endpoint(),
        warden_client::ClientOptions::default(),
    )
    .await
    .unwrap()
    .query_all(
        warden_client::audit::AuditQueryRequest {
            r#type: "admin".into(),
            ..Default::default()
        },
        100,
    )
    .await
    .unwrap();
    let clears: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.json).unwrap())
        .filter(|entry| entry["record"]["event"] == "bundle.shadow_cleared")
        .collect();
    assert_eq!(clears.len(), 2, "{clears:?}");
    assert_eq!(
        clears[0]["record"]["details"]["digest"],
        shadow.digest.as_str()
    );

    // Promoting it makes it answer.
    admin
        .activate(&shadow.digest, BundleTarget::Active)
        .await
        .unwrap();
    assert_eq!(decide(&mut client).await.0, Decision::Deny);
}

#[tokio::test]
async fn a_store_that_cannot_be_read_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut warden = Warden::builder().data_dir(dir.path()).start().await;
    let active = warden
        .admin()
        .await
        .status()
        .await
        .unwrap()
        .active
        .unwrap()
        .digest;
    warden.terminate().await;
    drop(warden);

    // The active bundle's archive goes missing.
    warden_e2e::edit_store(dir.path(), |db| {
        db.open_tree("bundle_archives")
            .unwrap()
            .remove(active.as_bytes())
            .unwrap();
    });
    let (status, stderr) = Warden::builder()
        .data_dir(dir.path())
        .start_expecting_failure();
    assert!(!status.success());
    assert!(
        stderr.contains("store is corrupt") && stderr.contains("not stored"),
        "{stderr}"
    );

    // The serving record itself is garbage.
    warden_e2e::edit_store(dir.path(), |db| {
        db.open_tree("meta")
            .unwrap()
            .insert("serving", &b"\xff\x00garbage"[..])
            .unwrap();
    });
    let (status, stderr) = Warden::builder()
        .data_dir(dir.path())
        .start_expecting_failure();
    assert!(!status.success());
    assert!(
        stderr.contains("store is corrupt: serving state"),
        "{stderr}"
    );
}

/// Pushes sent at once take turns in their heavy phase (unpacking,
/// compiling, parsing): each waits for the ones before it, none is refused,
/// and every bundle is stored.
#[tokio::test]
async fn concurrent_pushes_take_turns_and_all_land() {
    let warden = Warden::start().await;
    let mut bundles = Vec::new();
    for n in 0..4 {
        let mut admin = warden.admin().await;
        let archive = bundle(&[
            (
                ".manifest",
                &format!(r#"{{"revision": "turn-{n}", "roots": ["warden"]}}"#),
            ),
            (
                "warden/authz/p.rego",
                "package warden.authz\n\ndecision := {\"allow\": true}\n",
            ),
        ]);
        bundles.push(tokio::spawn(async move {
            admin.put_bundle(archive, BundleTarget::Active).await
        }));
    }
    let mut identity = Demo::load().identity.clone();
    identity["version"] = serde_json::json!("identity-7-301");
    let mut admin = warden.admin().await;
    let snapshot = tokio::spawn(async move {
        admin
            .put_snapshot("identity", serde_json::to_vec(&identity).unwrap())
            .await
    });

    let mut pushed = std::collections::BTreeSet::new();
    for push in bundles {
        pushed.insert(push.await.unwrap().unwrap().revision);
    }
    assert_eq!(pushed.len(), 4);
    snapshot.await.unwrap().unwrap();
    let mut admin = warden.admin().await;
    let stored: std::collections::BTreeSet<String> = admin
        .list_bundles()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.revision)
        .collect();
    assert!(
        pushed.is_subset(&stored),
        "{pushed:?} not all in {stored:?}"
    );
    let status = admin.status().await.unwrap();
    assert!(pushed.contains(&status.active.unwrap().revision));
}

/// Every response must come from one generation: the policy echoes its own
/// revision and the identity snapshot's version through its reasons, and
/// the response's metadata must name the same ones.
#[tokio::test]
async fn pushes_under_load_never_fail_a_check_or_mix_generations() {
    let marker_bundle = |n: usize| {
        bundle(&[
            (
                ".manifest",
                &format!(r#"{{"revision": "race-{n}", "roots": ["warden"]}}"#),
            ),
            ("warden/data.json", &format!(r#"{{"marker": "race-{n}"}}"#)),
            (
                "warden/authz/p.rego",
                "package warden.authz\n\ndecision := {\"allow\": true, \"reasons\": [concat(\":\", [\"bundle\", data.warden.marker]), concat(\":\", [\"identity\", data.identity.users.marker.attributes.version])]}\n",
            ),
        ])
    };
    let identity = |n: usize| {
        serde_json::to_vec(&serde_json::json!({
            "version": format!("identity-{n:04}"),
            "generated_at": "2026-11-01T00:00:00Z",
            "users": {"marker": {"attributes": {"version": format!("identity-{n:04}")}}},
        }))
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(seed.join("warden/authz")).unwrap();
    let seed_files = warden_bundle::read_tar_gz(&marker_bundle(0), &Default::default()).unwrap();
    for (path, content) in &seed_files {
        std::fs::create_dir_all(seed.join(path).parent().unwrap()).unwrap();
        std::fs::write(seed.join(path), content).unwrap();
    }
    std::fs::write(dir.path().join("identity.json"), identity(0)).unwrap();
    let warden = Warden::builder()
        .arg("--bundle")
        .arg(seed.to_str().unwrap())
        .arg("--identity")
        .arg(dir.path().join("identity.json").to_str().unwrap())
        .start()
        .await;

    // Four clients run 800 checks each while bundles and snapshots are
    // pushed over and over.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut client = warden.client().await;
        workers.push(tokio::spawn(async move {
            let request = CheckBuilder::new("p", "a", "u", "x.y", "t").build();
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..800 {
                let response = client
                    .check(request.clone())
                    .await
                    .expect("no check fails during pushes");
                assert_eq!(response.decision(), Decision::Allow);
                assert_eq!(
                    response.reasons,
                    vec![
                        format!("bundle:{}", response.policy_revision),
                        format!("identity:{}", response.snapshot_versions["identity"]),
                    ],
                    "a response mixed generations"
                );
                seen.insert(response.policy_revision.clone());
            }
            seen
        }));
    }
    let mut admin = warden.admin().await;
    let mut pushes = 0;
    while !workers.iter().all(|w| w.is_finished()) {
        pushes += 1;
        admin
            .put_bundle(marker_bundle(pushes), BundleTarget::Active)
            .await
            .unwrap();
        admin
            .put_snapshot("identity", identity(pushes))
            .await
            .unwrap();
    }
    let mut revisions = std::collections::BTreeSet::new();
    for worker in workers {
        revisions.extend(worker.await.unwrap());
    }
    assert!(
        pushes >= 3,
        "only {pushes} pushes happened during the checks"
    );
    assert!(revisions.len() >= 2, "the checks saw only {revisions:?}");
    let status = admin.status().await.unwrap();
    assert_eq!(status.active.unwrap().revision, format!("race-{pushes}"));
}
