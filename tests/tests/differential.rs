//! Differential tests against real OPA: for the same policy, data and input,
//! Warden's decision must equal OPA's value of `data.warden.authz.decision`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;
use warden::bundle::{ArchiveLimits, Bundle};
use warden::decision::{Verdict, interpret};
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::request::{Limits, validate};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_bench::oracle::Opa;
use warden_bench::workload::{Spec, Workload};
use warden_client::{Decision, batch_check_result};
use warden_e2e::process::Warden;
use warden_e2e::repo_root;

const REQUESTS: usize = 1500;

/// The demo policy and snapshots, loaded the way the server loads them.
struct Setup {
    bundle: Bundle,
    identity: Snapshot,
    entitlements: Snapshot,
}

impl Setup {
    fn demo() -> Self {
        let root = repo_root();
        let bundle = Bundle::load(&root.join("policies"), &ArchiveLimits::default()).unwrap();
        let snapshot = |kind, name: &str| {
            let bytes = std::fs::read(root.join("policies/demo").join(name)).unwrap();
            Snapshot::parse(kind, &bytes, 256).unwrap()
        };
        Setup {
            bundle,
            identity: snapshot(SnapshotKind::Identity, "identity.json"),
            entitlements: snapshot(SnapshotKind::Entitlements, "entitlements.json"),
        }
    }

    fn generation(&self) -> Generation {
        let policy = LoadedPolicy::compile(&self.bundle, &EngineOptions::default()).unwrap();
        Generation::build(
            1,
            Arc::new(policy),
            Arc::new(self.identity.clone()),
            Arc::new(self.entitlements.clone()),
            MaxAge::default(),
        )
        .unwrap()
    }

    /// OPA with the same modules (Warden's builtin replaced by its naive
    /// Rego definition) and the same data document.
    fn opa(&self) -> Opa {
        let opa = warden_e2e::audience::opa_with(&self.bundle);
        opa.add_data("", &serde_json::to_value(&self.bundle.data).unwrap());
        opa.add_data(
            "identity",
            &serde_json::to_value(&self.identity.document).unwrap(),
        );
        opa.add_data(
            "entitlements",
            &serde_json::to_value(&self.entitlements.document).unwrap(),
        );
        opa
    }
}

fn workload_requests() -> Vec<warden_proto::v1::CheckRequest> {
    // The demo snapshots are this workload's organisation.
    Workload::generate(Spec::DEMO).requests(REQUESTS, 2026)
}

const DISCLOSING_REQUESTS: usize = 2_400;

/// Workload requests that disclose to audiences through delegation chains.
fn disclosing_requests() -> Vec<warden_proto::v1::CheckRequest> {
    let workload = Workload::generate(Spec::DEMO);
    let requests = workload.requests(DISCLOSING_REQUESTS, 4242);
    warden_e2e::audience::disclosing(requests, &workload.identity, 4242)
}

impl Coverage {
    /// Every disclosure and delegation reason, and allowed disclosures too.
    fn assert_disclosure(&self) {
        for reason in [
            "audience_missing",
            "audience_unknown",
            "audience_external",
            "audience_not_entitled",
            "sensitive_action",
        ] {
            assert!(
                self.reasons.get(reason).copied().unwrap_or(0) >= 10,
                "too few `{reason}` decisions: {self:?}"
            );
        }
        for prefix in ["delegate_unknown:", "delegate_not_granted:"] {
            assert!(
                self.reasons.keys().any(|r| r.starts_with(prefix)),
                "no `{prefix}` decisions: {self:?}"
            );
        }
        for verdict in ["allow", "deny", "require_approval"] {
            assert!(
                self.verdicts.get(verdict).copied().unwrap_or(0) >= 20,
                "too few {verdict} decisions: {self:?}"
            );
        }
    }
}

#[test]
fn native_engine_equals_opa_on_audiences_and_chains() {
    let setup = Setup::demo();
    let generation = setup.generation();
    let opa = setup.opa();
    let mut coverage = Coverage::default();
    let mut named = 0;
    for (i, request) in disclosing_requests().iter().enumerate() {
        let request = validate(request, &Limits::default()).unwrap();
        let input = warden::input::to_json(&request);
        let ours = generation.policy().evaluate(&request).unwrap();
        let theirs = opa.eval("warden.authz.decision", &input).unwrap();
        assert_eq!(ours, theirs, "request {i} differs\ninput: {input}");
        let decision = interpret(ours.as_ref());
        named += usize::from(decision.audience.is_some_and(|gap| !gap.lacking.is_empty()));
        coverage.add(decision.verdict, &decision.reasons);
    }
    println!("{coverage:?}");
    coverage.assert_disclosure();
    assert!(named >= 10, "only {named} decisions named who lacks access");
}

/// Counts outcomes and reasons, so a run that never exercises a path fails
/// instead of agreeing vacuously.
#[derive(Default, Debug)]
struct Coverage {
    verdicts: BTreeMap<&'static str, usize>,
    reasons: BTreeMap<String, usize>,
}

impl Coverage {
    fn add(&mut self, verdict: Verdict, reasons: &[String]) {
        *self.verdicts.entry(verdict.as_str()).or_default() += 1;
        for reason in reasons {
            *self.reasons.entry(reason.clone()).or_default() += 1;
        }
    }

    fn assert_broad(&self) {
        for verdict in ["allow", "deny", "require_approval"] {
            let n = self.verdicts.get(verdict).copied().unwrap_or(0);
            assert!(n >= REQUESTS / 50, "only {n} {verdict} decisions: {self:?}");
        }
        for reason in [
            "agent_unknown",
            "platform_mismatch",
            "agent_not_granted",
            "principal_not_entitled",
            "principal_unknown",
            "sensitive_action",
        ] {
            assert!(
                self.reasons.contains_key(reason),
                "no `{reason}` decisions: {self:?}"
            );
        }
    }
}

#[test]
fn native_engine_equals_opa_on_generated_requests() {
    let setup = Setup::demo();
    let generation = setup.generation();
    let opa = setup.opa();
    let mut coverage = Coverage::default();
    for (i, request) in workload_requests().iter().enumerate() {
        let request = validate(request, &Limits::default()).unwrap();
        let input = warden::input::to_json(&request);
        let ours = generation.policy().evaluate(&request).unwrap();
        let theirs = opa.eval("warden.authz.decision", &input).unwrap();
        assert_eq!(ours, theirs, "request {i} differs\ninput: {input}");
        let decision = interpret(ours.as_ref());
        coverage.add(decision.verdict, &decision.reasons);
    }
    println!("{coverage:?}");
    coverage.assert_broad();
}

#[tokio::test]
async fn server_decisions_equal_opa_on_generated_requests() {
    let setup = Setup::demo();
    let opa = setup.opa();
    // Thousands of generated denials would trip the demo tripwire.
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::builder()
        .without_demo_limits(dir.path())
        .start()
        .await;
    let mut client = warden.client().await;
    let mut requests = workload_requests();
    requests.extend(disclosing_requests());
    let mut coverage = Coverage::default();
    for (chunk_index, chunk) in requests.chunks(250).enumerate() {
        let results = client.batch_check(chunk.to_vec()).await.unwrap();
        assert_eq!(results.len(), chunk.len());
        for (offset, (request, result)) in chunk.iter().zip(results).enumerate() {
            let i = chunk_index * 250 + offset;
            let valid = validate(request, &Limits::default()).unwrap();
            let input = warden::input::to_json(&valid);
            let expected = interpret(opa.eval("warden.authz.decision", &input).unwrap().as_ref());
            let response = match result.result {
                Some(batch_check_result::Result::Response(response)) => response,
                other => panic!("request {i}: {other:?}"),
            };
            let verdict = match response.decision() {
                Decision::Allow => Verdict::Allow,
                Decision::Deny => Verdict::Deny,
                Decision::RequireApproval => Verdict::RequireApproval,
                Decision::Unspecified => panic!("request {i}: unspecified decision"),
            };
            assert_eq!(
                (verdict, &response.reasons),
                (expected.verdict, &expected.reasons),
                "request {i} differs\ninput: {input}"
            );
            let gap = response
                .audience
                .as_ref()
                .map(|g| (g.members, g.lacking_count, g.lacking.clone()));
            let expected_gap = expected
                .audience
                .as_ref()
                .map(|g| (g.members, g.lacking_count, g.lacking.clone()));
            assert_eq!(
                gap, expected_gap,
                "request {i}: audience differs\ninput: {input}"
            );
            coverage.add(verdict, &response.reasons);
        }
    }
    coverage.assert_broad();
}

/// The policy's own Rego unit tests pass in OPA, as they do in Warden.
#[test]
fn policy_unit_tests_pass_in_opa_and_in_warden() {
    let setup = Setup::demo();
    let ours = warden::regotest::run(&setup.bundle).unwrap();
    assert!(
        ours.len() >= 10,
        "expected the policy's unit tests, found {}",
        ours.len()
    );
    for outcome in &ours {
        assert!(
            outcome.passed,
            "{} failed in Warden: {:?}",
            outcome.name, outcome.failure
        );
    }

    let opa = warden_e2e::audience::opa_with(&setup.bundle);
    opa.add_data("", &serde_json::to_value(&setup.bundle.data).unwrap());
    for outcome in &ours {
        let value = opa.query(&outcome.name).unwrap();
        assert_eq!(
            value,
            Some(Json::Bool(true)),
            "{} does not pass in OPA",
            outcome.name
        );
    }
}
