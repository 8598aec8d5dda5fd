//! `warden.audience_gaps` equals its naive definition: on generated
//! organisations (random users, groups, memberships and grants) the
//! builtin's answer is what real OPA computes from
//! tests/policies/audience_gaps_naive.rego over the same documents.

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use warden::input::json_to_rego;
use warden_bench::oracle::Opa;
use warden_rego::Host;
use warden_rego::host::AUDIENCE_GAPS;

const TYPES: &[&str] = &["document", "report"];
const KEYS: &[&str] = &["*", "d1", "d2", "d3"];
const PATTERNS: &[&str] = &[
    "documents.read",
    "documents.*",
    "*",
    "*.read",
    "reports.read",
    "documents.write",
    "documents.read.all",
];
const ACTIONS: &[&str] = &[
    "documents.read",
    "reports.read",
    "documents.read.all",
    "read",
];

#[derive(Debug, Clone)]
struct Org {
    users: usize,
    groups: usize,
    /// (user, group) memberships.
    members: Vec<(usize, usize)>,
    /// (subject, type, key, pattern): subject < users is a user, then
    /// groups, then ids nobody has.
    grants: Vec<(usize, usize, usize, usize)>,
}

fn org() -> impl Strategy<Value = Org> {
    (1usize..100, 1usize..8).prop_flat_map(|(users, groups)| {
        let subjects = users + groups + 2;
        (
            prop::collection::vec((0..users, 0..groups + 1), 0..users * 3),
            prop::collection::vec(
                (
                    0..subjects,
                    0..TYPES.len(),
                    0..KEYS.len(),
                    0..PATTERNS.len(),
                ),
                0..40,
            ),
        )
            .prop_map(move |(members, grants)| Org {
                users,
                groups,
                members,
                grants,
            })
    })
}

fn group_name(g: usize) -> String {
    format!("g{g}")
}

impl Org {
    fn identity(&self) -> Json {
        let mut users = serde_json::Map::new();
        for u in 0..self.users {
            // Group `groups` exists only in memberships, not in `groups`.
            let groups: Vec<String> = self
                .members
                .iter()
                .filter(|(user, _)| *user == u)
                .map(|(_, g)| group_name(*g))
                .collect();
            users.insert(
                format!("u{u:02}"),
                json!({"groups": groups, "attributes": {}}),
            );
        }
        let groups: serde_json::Map<String, Json> = (0..self.groups)
            .map(|g| (group_name(g), json!({"attributes": {}})))
            .collect();
        json!({"users": users, "groups": groups, "agents": {}})
    }

    fn entitlements(&self) -> Json {
        let mut subjects = serde_json::Map::new();
        for &(subject, kind, key, pattern) in &self.grants {
            let name = if subject < self.users {
                format!("user:u{subject:02}")
            } else if subject < self.users + self.groups {
                format!("group:{}", group_name(subject - self.users))
            } else {
                format!("user:nobody{subject}")
            };
            let list = subjects
                .entry(name)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .entry(TYPES[kind])
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .entry(KEYS[key])
                .or_insert_with(|| json!([]));
            list.as_array_mut().unwrap().push(json!(PATTERNS[pattern]));
        }
        json!({"subjects": subjects})
    }
}

fn audience() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..110).prop_map(|u| format!("user:u{u:02}")),
            (0usize..10).prop_map(|g| format!("group:{}", group_name(g))),
            Just("public".to_owned()),
        ],
        0..6,
    )
}

fn naive_opa() -> Opa {
    let opa = Opa::new();
    opa.add_policy("naive.rego", &warden_e2e::audience::naive_module());
    opa.add_policy(
        "read_action.rego",
        "package warden.authz\n\nread_action := input.read_action\n",
    );
    opa
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn builtin_equals_the_naive_definition(
        org in org(),
        queries in prop::collection::vec(
            (audience(), 0..TYPES.len(), prop::option::of(1..KEYS.len()), 0..ACTIONS.len()),
            1..6,
        ),
    ) {
        let opa = naive_opa();
        let identity = org.identity();
        let entitlements = org.entitlements();
        opa.add_data("identity", &identity);
        opa.add_data("entitlements", &entitlements);
        let (identity, entitlements) = (json_to_rego(&identity), json_to_rego(&entitlements));
        let host = Host::default();
        for (audience, kind, key, action) in queries {
            let mut resource = json!({"type": TYPES[kind]});
            if let Some(key) = key {
                resource["id"] = json!(KEYS[key]);
            }
            let input = json!({
                "audience": audience,
                "resource": resource,
                "read_action": ACTIONS[action],
            });
            let expected = opa.eval("warden.authz.audience_gaps", &input).unwrap();
            let args = [
                json_to_rego(&input["audience"]),
                json_to_rego(&resource),
                json_to_rego(&json!(ACTIONS[action])),
                identity.clone(),
                entitlements.clone(),
            ];
            let ours = host.call(AUDIENCE_GAPS, &args).unwrap();
            let ours: Json = serde_json::to_value(&ours).unwrap();
            prop_assert_eq!(Some(ours), expected, "input: {}", input);
        }
        // One index for the documents, however many calls.
        prop_assert_eq!(host.builds(), 1);
    }
}
