//! Audiences and delegation chains for differential tests: OPA given the
//! naive definition of `warden.audience_gaps`, and workload requests that
//! disclose to generated audiences through generated chains.

use serde_json::Value as Json;
use warden::bundle::Bundle;
use warden_bench::oracle::Opa;
use warden_bench::rng::Rng;
use warden_proto::v1 as pb;

use crate::repo_root;

/// The module that calls `warden.audience_gaps`, which OPA lacks.
const FAST: &str = "authz/disclosure_gaps.rego";

/// OPA with `bundle`'s modules, the builtin call replaced by its naive Rego
/// definition (tests/policies/audience_gaps_naive.rego), and no data.
pub fn opa_with(bundle: &Bundle) -> Opa {
    let opa = Opa::new();
    let mut swapped = false;
    for module in &bundle.modules {
        if module.path.ends_with(FAST) {
            opa.add_policy("audience_gaps_naive.rego", &naive_module());
            swapped = true;
        } else {
            opa.add_policy(&module.path, &module.source);
        }
    }
    assert!(
        swapped
            || !bundle
                .modules
                .iter()
                .any(|m| m.source.contains("warden.audience_gaps")),
        "a module calls warden.audience_gaps but is not {FAST}"
    );
    opa
}

pub fn naive_module() -> String {
    std::fs::read_to_string(repo_root().join("tests/policies/audience_gaps_naive.rego"))
        .expect("tests/policies/audience_gaps_naive.rego")
}

fn keys(document: &Json, section: &str) -> Vec<String> {
    document[section]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `requests` rewritten so that most disclose (`documents.share`,
/// `reports.share`, `messages.post`) to an audience of known and unknown
/// users and groups, `public` and external domains, and many pass through
/// a chain of known, foreign, unknown and ungranted agents.
pub fn disclosing(
    requests: Vec<pb::CheckRequest>,
    identity: &Json,
    seed: u64,
) -> Vec<pb::CheckRequest> {
    let users = keys(identity, "users");
    let groups = keys(identity, "groups");
    let agents = keys(identity, "agents");
    let mut rng = Rng::new(seed);
    requests
        .into_iter()
        .map(|mut request| {
            if rng.chance(0.7) {
                let (kind, action) = match rng.below(4) {
                    0 => ("report", "reports.share"),
                    1 => ("document", "messages.post"),
                    _ => ("document", "documents.share"),
                };
                if let Some(resource) = request.resource.as_mut()
                    && let Some(a) = request.action.as_mut()
                {
                    if resource.r#type != kind {
                        resource.r#type = kind.into();
                    }
                    a.name = action.into();
                    if rng.chance(0.1) {
                        resource.attributes = Some(warden_proto::convert::to_struct(
                            serde_json::json!({"classification": "public"})
                                .as_object()
                                .cloned()
                                .unwrap_or_default(),
                        ));
                    }
                }
            }
            let entries = rng.below(5);
            for _ in 0..entries {
                let entry = match rng.below(20) {
                    0 => format!("user:ghost-{}", rng.below(3)),
                    1 => format!("group:nobody-{}", rng.below(3)),
                    2 => "public".to_owned(),
                    3 => format!("external:partner{}.example", rng.below(2)),
                    4..=10 => format!("group:{}", groups[rng.below(groups.len())]),
                    _ => format!("user:{}", users[rng.below(users.len())]),
                };
                request.audience.push(entry);
            }
            if rng.chance(0.4) {
                for _ in 0..=rng.below(2) {
                    let link = match rng.below(6) {
                        0 => format!("agent:ghost-{}", rng.below(2)),
                        1 => "client:chat-ui".to_owned(),
                        2 => format!("user:{}", users[rng.below(users.len())]),
                        _ => format!("agent:{}", agents[rng.below(agents.len())]),
                    };
                    request.delegation_chain.push(link);
                }
            }
            request
        })
        .collect()
}
