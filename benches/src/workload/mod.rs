//! A deterministic, realistic workload: an organisation's people, groups,
//! agents and entitlements, and a stream of checks against them with a mix of
//! allows, denials and approvals.
//!
//! The demo snapshots in `policies/demo/`, the benchmarks, the load generator
//! and the differential tests all come from here, so they agree on what a
//! realistic request looks like.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};
use warden_proto::convert::to_struct as prost_struct;
use warden_proto::v1 as pb;

use crate::rng::Rng;

mod catalog;
use catalog::{AGENTS, CATALOG, DEPARTMENTS, FIRST, LAST, LOCATIONS, TEAMS, TITLES};

/// How big an organisation to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub users: usize,
    pub agents: usize,
    pub groups: usize,
    /// Resources each user owns outright (one grant each).
    pub owned_per_user: usize,
    pub seed: u64,
}

impl Spec {
    /// The demo organisation shipped in `policies/demo/`.
    pub const DEMO: Spec = Spec {
        users: 300,
        agents: 30,
        groups: 24,
        owned_per_user: 3,
        seed: 7,
    };
}

/// A generated organisation.
#[derive(Debug, Clone)]
pub struct Workload {
    pub spec: Spec,
    /// Identity snapshot document, with `version` and `generated_at`.
    pub identity: Json,
    /// Entitlement snapshot document, with `version` and `generated_at`.
    pub entitlements: Json,
    users: Vec<String>,
    /// Resource ids each user owns, by type.
    owned: Vec<Vec<(&'static str, String)>>,
    agents: Vec<(String, &'static str, &'static [&'static str])>,
    /// For each catalog action, the users whose groups entitle them to it on
    /// every resource of its type.
    entitled: BTreeMap<&'static str, Vec<usize>>,
}

impl Workload {
    pub fn generate(spec: Spec) -> Self {
        let mut rng = Rng::new(spec.seed);

        let groups: Vec<String> = (0..spec.groups)
            .map(|i| {
                let (department, _) = DEPARTMENTS[i % DEPARTMENTS.len()];
                match i / DEPARTMENTS.len() {
                    0 => department.to_owned(),
                    round => format!("{department}-{}-{round}", TEAMS[i % TEAMS.len()]),
                }
            })
            .collect();

        let mut users = Vec::with_capacity(spec.users);
        let mut user_docs = Map::new();
        let mut owned = Vec::with_capacity(spec.users);
        let mut subjects = Map::new();
        let mut entitled: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
        for i in 0..spec.users {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            let id = if i < FIRST.len() * LAST.len() / 4
                && !user_docs.contains_key(&format!("{first}.{last}"))
            {
                format!("{first}.{last}")
            } else {
                format!("{first}.{last}{i}")
            };
            let home = rng.below(groups.len().min(DEPARTMENTS.len()).max(1));
            let mut member_of = vec![groups[home].clone()];
            for _ in 0..rng.below(3) {
                let extra = groups[rng.below(groups.len())].clone();
                if !member_of.contains(&extra) {
                    member_of.push(extra);
                }
            }
            let department = DEPARTMENTS[home % DEPARTMENTS.len()].0;
            for group in &member_of {
                if let Some(g) = groups.iter().position(|x| x == group) {
                    let (_, rights) = DEPARTMENTS[g % DEPARTMENTS.len()];
                    for (kind, actions) in CATALOG {
                        for action in *actions {
                            let covered = rights.iter().any(|(k, patterns)| {
                                k == kind && patterns.iter().any(|p| matches(p, action))
                            });
                            if covered {
                                let users = entitled.entry(*action).or_default();
                                if users.last() != Some(&i) {
                                    users.push(i);
                                }
                            }
                        }
                    }
                }
            }
            user_docs.insert(
                id.clone(),
                json!({
                    "groups": member_of,
                    "attributes": {
                        "name": format!("{} {}", capitalise(first), capitalise(last)),
                        "email": format!("{id}@example.com"),
                        "department": department,
                        "title": rng.pick(TITLES),
                        "location": rng.pick(LOCATIONS),
                    }
                }),
            );
            let mut mine = Vec::with_capacity(spec.owned_per_user);
            let mut grants = Map::new();
            for n in 0..spec.owned_per_user {
                let (kind, actions) = CATALOG[rng.below(CATALOG.len())];
                let resource = format!("{}-{i}-{n}", short(kind));
                let pattern = match actions[0].rsplit_once('.') {
                    Some((prefix, _)) => format!("{prefix}.*"),
                    None => actions[0].to_owned(),
                };
                grants
                    .entry(kind.to_owned())
                    .or_insert_with(|| Json::Object(Map::new()))
                    .as_object_mut()
                    .map(|by_id| by_id.insert(resource.clone(), json!([pattern])));
                mine.push((kind, resource));
            }
            if !grants.is_empty() {
                subjects.insert(format!("user:{id}"), Json::Object(grants));
            }
            owned.push(mine);
            users.push(id);
        }

        let group_docs: Map<String, Json> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let department = DEPARTMENTS[i % DEPARTMENTS.len()].0;
                (g.clone(), json!({"attributes": {"department": department, "display_name": g.replace('-', " ")}}))
            })
            .collect();
        for (i, group) in groups.iter().enumerate() {
            let (_, rights) = DEPARTMENTS[i % DEPARTMENTS.len()];
            let by_type: Map<String, Json> = rights
                .iter()
                .map(|(kind, patterns)| ((*kind).to_owned(), json!({"*": patterns})))
                .collect();
            subjects.insert(format!("group:{group}"), Json::Object(by_type));
        }

        let mut agents = Vec::with_capacity(spec.agents);
        let mut agent_docs = Map::new();
        for i in 0..spec.agents {
            let (kind, platform, grants) = AGENTS[i % AGENTS.len()];
            let id = match i / AGENTS.len() {
                0 => kind.to_owned(),
                round => format!("{kind}-{round:02}"),
            };
            let owner = users
                .get(rng.below(users.len().max(1)))
                .cloned()
                .unwrap_or_default();
            agent_docs.insert(
                id.clone(),
                json!({
                    "owner": owner,
                    "platform": platform,
                    "grants": grants,
                    "attributes": {"model": rng.pick(&["gpt-5", "claude-opus", "gemini-pro", "llama-4"]), "tier": rng.pick(&["production", "pilot"])}
                }),
            );
            agents.push((id, platform, grants));
        }

        let stamp = |kind: &str| json!({"version": format!("{kind}-{}-{}", spec.seed, spec.users), "generated_at": "2026-11-01T00:00:00Z"});
        let mut identity = stamp("identity");
        let mut entitlements = stamp("entitlements");
        if let (Some(identity), Some(entitlements)) =
            (identity.as_object_mut(), entitlements.as_object_mut())
        {
            identity.insert("users".into(), Json::Object(user_docs));
            identity.insert("agents".into(), Json::Object(agent_docs));
            identity.insert("groups".into(), Json::Object(group_docs));
            entitlements.insert("subjects".into(), Json::Object(subjects));
        }
        Workload {
            spec,
            identity,
            entitlements,
            users,
            owned,
            agents,
            entitled,
        }
    }

    /// `count` check requests, deterministic for a given `seed`: about half
    /// are plausible requests an agent would make for its user, the rest
    /// stray in one way each (unknown ids, wrong platform, actions outside
    /// the agent's grants or the user's rights, sensitive actions).
    pub fn requests(&self, count: usize, seed: u64) -> Vec<pb::CheckRequest> {
        let mut rng = Rng::new(seed);
        (0..count).map(|i| self.request(&mut rng, i)).collect()
    }

    fn request(&self, rng: &mut Rng, i: usize) -> pb::CheckRequest {
        let roll = rng.below(20);
        // Sensitive actions go through the agents that hold them.
        let (agent, platform, grants) = if (8..10).contains(&roll) {
            let sensitive = [
                "permissions.grant",
                "permissions.revoke",
                "iam.roles.assign",
            ];
            let holders: Vec<_> = self
                .agents
                .iter()
                .filter(|(_, _, grants)| {
                    grants
                        .iter()
                        .any(|g| sensitive.iter().any(|a| matches(g, a)))
                })
                .collect();
            match holders.len() {
                0 => self.agents[rng.below(self.agents.len())].clone(),
                n => holders[rng.below(n)].clone(),
            }
        } else {
            self.agents[rng.below(self.agents.len())].clone()
        };
        let mut platform = platform.to_owned();
        let mut agent = agent;

        // An action the agent holds a grant for, on a resource of its type,
        // for a person entitled to it: what a well-behaved agent asks.
        let grant = grants[rng.below(grants.len())];
        let (mut kind, mut action) = concrete(grant, rng);
        if (8..10).contains(&roll) {
            let sensitive: Vec<_> = [
                "permissions.grant",
                "permissions.revoke",
                "iam.roles.assign",
            ]
            .into_iter()
            .filter(|a| grants.iter().any(|g| matches(g, a)))
            .collect();
            if !sensitive.is_empty() {
                kind = "role";
                action = sensitive[rng.below(sensitive.len())];
            }
        }
        let user = match self.entitled.get(action) {
            Some(users) if !users.is_empty() => users[rng.below(users.len())],
            _ => rng.below(self.users.len()),
        };
        let mut principal_type = "user".to_owned();
        let mut principal = self.users[user].clone();
        let mut resource_id = match self.owned[user].iter().find(|(k, _)| *k == kind) {
            Some((_, id)) if rng.chance(0.5) => Some(id.clone()),
            _ => Some(format!("{}-{}", short(kind), rng.below(5000))),
        };

        // Half the requests stray in one way each.
        match roll {
            0 => agent = format!("ghost-agent-{}", rng.below(100)),
            1 => {
                platform = rng
                    .pick(&[
                        "copilot-studio",
                        "agentforce",
                        "internal-chat",
                        "rogue-platform",
                    ])
                    .to_owned()
            }
            2 => principal = format!("former.employee{}", rng.below(1000)),
            3 => principal_type = "service".to_owned(),
            4 => resource_id = None,
            5 | 6 => {
                // Any action at all, most of them outside the agent's grants.
                let (k, actions) = CATALOG[rng.below(CATALOG.len())];
                kind = k;
                action = actions[rng.below(actions.len())];
            }
            // Anyone at all, most of them not entitled.
            7 => principal = self.users[rng.below(self.users.len())].clone(),
            _ => {}
        }

        let attributes = |pairs: Vec<(&str, Json)>| {
            prost_struct(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        pb::CheckRequest {
            platform,
            agent: Some(pb::Agent {
                id: agent,
                attributes: Some(attributes(vec![
                    ("session", json!(format!("s-{}", rng.below(1 << 20)))),
                    ("model", json!("gpt-5")),
                ])),
            }),
            principal: Some(pb::Principal {
                r#type: principal_type,
                id: principal,
                attributes: None,
            }),
            audience: Vec::new(),
            delegation_chain: if rng.chance(0.3) {
                vec!["client:chat-ui".into()]
            } else {
                Vec::new()
            },
            action: Some(pb::Action {
                name: action.to_owned(),
                attributes: Some(attributes(vec![("dry_run", json!(rng.chance(0.1)))])),
            }),
            resource: Some(pb::Resource {
                r#type: kind.to_owned(),
                id: resource_id.unwrap_or_default(),
                attributes: Some(attributes(vec![(
                    "classification",
                    json!(rng.pick(&["public", "internal", "confidential"])),
                )])),
            }),
            context: Some(attributes(vec![
                (
                    "risk",
                    json!({"score": rng.below(100), "signals": ["new_device"]}),
                ),
                ("purpose", json!("assist")),
            ])),
            request_id: format!("req-{i}"),
            approval: None,
        }
    }
}

/// Whether an action pattern matches an action, as the default policy reads
/// patterns.
fn matches(pattern: &str, action: &str) -> bool {
    pattern == "*"
        || pattern == action
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| prefix.ends_with('.') && action.starts_with(prefix))
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| suffix.starts_with('.') && action.ends_with(suffix))
}

/// A concrete action matching `grant`, and a resource type it applies to.
fn concrete(grant: &str, rng: &mut Rng) -> (&'static str, &'static str) {
    let matching: Vec<(&'static str, &'static str)> = CATALOG
        .iter()
        .flat_map(|(kind, actions)| actions.iter().map(move |a| (*kind, *a)))
        .filter(|(_, action)| matches(grant, action))
        .collect();
    match matching.len() {
        0 => ("document", "documents.read"),
        n => matching[rng.below(n)],
    }
}

fn short(kind: &str) -> &str {
    kind.split('_').next().unwrap_or(kind)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}
