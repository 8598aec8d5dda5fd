//! Search equals brute force: on generated organisations, what a search
//! returns is exactly the set of candidates for which `decide` (the function
//! `Check` runs) allows, for the default policy (which proposes candidates
//! with its generators) and for the same policy without them (candidates
//! from the snapshots).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use warden::bundle::{ArchiveLimits, Bundle, read_dir};
use warden::decision::{Verdict, decide};
use warden::engine::EngineOptions;
use warden::generation::{Generation, LoadedPolicy, MaxAge};
use warden::killswitch::SwitchIndex;
use warden::request::{Limits, validate};
use warden::search::{Bounds, Candidate, Judge, Query, Target, candidates, run};
use warden::snapshot::{Snapshot, SnapshotKind};
use warden_e2e::repo_root;
use warden_proto::v1 as pb;

const TYPES: &[&str] = &["document", "report"];
const KEYS: &[&str] = &["*", "d1", "d2", "d3", "d4"];
/// Patterns for grants: exact catalogue names, wildcards, and names no
/// catalogue lists.
const PATTERNS: &[&str] = &[
    "documents.read",
    "documents.*",
    "*",
    "*.read",
    "reports.read",
    "reports.export",
    "documents.write",
    "documents.archive",
    "reports.*",
];
/// Every action name the organisations can allow: the catalogue's and the
/// exact names above.
const ACTIONS: &[&str] = &[
    "documents.read",
    "documents.write",
    "documents.search",
    "documents.share",
    "documents.delete",
    "documents.archive",
    "reports.read",
    "reports.export",
    "reports.share",
];

#[derive(Debug, Clone)]
struct Org {
    users: usize,
    groups: usize,
    members: Vec<(usize, usize)>,
    /// (subject, type, key, pattern): users, then groups, then ids nobody has.
    grants: Vec<(usize, usize, usize, usize)>,
    /// The agent's grants (pattern indices).
    agent: Vec<usize>,
}

fn org() -> impl Strategy<Value = Org> {
    (1usize..30, 1usize..5).prop_flat_map(|(users, groups)| {
        let subjects = users + groups + 2;
        (
            prop::collection::vec((0..users, 0..groups), 0..users * 2),
            prop::collection::vec(
                (
                    0..subjects,
                    0..TYPES.len(),
                    0..KEYS.len(),
                    0..PATTERNS.len(),
                ),
                0..30,
            ),
            prop::collection::vec(0..PATTERNS.len(), 0..4),
        )
            .prop_map(move |(members, grants, agent)| Org {
                users,
                groups,
                members,
                grants,
                agent,
            })
    })
}

impl Org {
    fn identity(&self) -> Json {
        let mut users = serde_json::Map::new();
        for u in 0..self.users {
            let groups: BTreeSet<String> = self
                .members
                .iter()
                .filter(|(user, _)| *user == u)
                .map(|(_, g)| format!("g{g}"))
                .collect();
            users.insert(
                format!("u{u:02}"),
                json!({"groups": groups, "attributes": {}}),
            );
        }
        let agent: Vec<&str> = self.agent.iter().map(|p| PATTERNS[*p]).collect();
        json!({
            "version": "identity-test",
            "generated_at": "2026-12-01T00:00:00Z",
            "users": users,
            "groups": {},
            "agents": {"helper": {"platform": "p", "grants": agent, "owner": "u00", "attributes": {}}},
        })
    }

    fn entitlements(&self) -> Json {
        let mut subjects: BTreeMap<String, BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>>> =
            BTreeMap::new();
        for &(subject, kind, key, pattern) in &self.grants {
            let name = if subject < self.users {
                format!("user:u{subject:02}")
            } else if subject < self.users + self.groups {
                format!("group:g{}", subject - self.users)
            } else {
                format!("user:nobody{subject}")
            };
            subjects
                .entry(name)
                .or_default()
                .entry(TYPES[kind])
                .or_default()
                .entry(KEYS[key])
                .or_default()
                .insert(PATTERNS[pattern]);
        }
        json!({
            "version": "entitlements-test",
            "generated_at": "2026-12-01T00:00:00Z",
            "subjects": subjects,
        })
    }

    /// The action names the default generator can propose for `ask`.
    fn named_for(&self, ask: &Ask) -> BTreeSet<&'static str> {
        let catalogue: &[&str] = match TYPES[ask.kind] {
            "document" => &[
                "documents.read",
                "documents.write",
                "documents.search",
                "documents.share",
                "documents.delete",
            ],
            _ => &["reports.read", "reports.export", "reports.share"],
        };
        let groups: BTreeSet<usize> = self
            .members
            .iter()
            .filter(|(user, _)| *user == ask.user)
            .map(|(_, g)| *g)
            .collect();
        let own = |subject: usize| {
            subject == ask.user && ask.user < self.users
                || (subject >= self.users
                    && subject < self.users + self.groups
                    && groups.contains(&(subject - self.users)))
        };
        let on_resource = |key: usize| key == 0 || ask.key == Some(key);
        let exact = |p: &&str| !p.contains('*');
        catalogue
            .iter()
            .copied()
            .chain(
                self.grants
                    .iter()
                    .filter(|(subject, kind, key, _)| {
                        own(*subject) && *kind == ask.kind && on_resource(*key)
                    })
                    .map(|g| PATTERNS[g.3])
                    .filter(exact),
            )
            .chain(self.agent.iter().map(|p| PATTERNS[*p]).filter(exact))
            .collect()
    }

    fn generation(&self, bundle: &Bundle) -> Generation {
        let snapshot = |kind, document: Json| {
            Snapshot::parse(kind, document.to_string().as_bytes(), 256).unwrap()
        };
        let policy = LoadedPolicy::compile(bundle, &EngineOptions::default()).unwrap();
        Generation::build(
            1,
            Arc::new(policy),
            Arc::new(snapshot(SnapshotKind::Identity, self.identity())),
            Arc::new(snapshot(SnapshotKind::Entitlements, self.entitlements())),
            MaxAge::default(),
        )
        .unwrap()
    }
}

/// The default policy, and the same bundle without its generators.
fn bundles() -> (Bundle, Bundle) {
    let root = repo_root().join("policies");
    let files = read_dir(&root, &ArchiveLimits::default()).unwrap();
    let with = Bundle::from_files(files.clone()).unwrap();
    let without: warden::bundle::Files = files
        .into_iter()
        .filter(|(path, _)| !path.contains("warden/search/"))
        .collect();
    let without = Bundle::from_files(without).unwrap();
    assert!(with.modules.len() > without.modules.len());
    (with, without)
}

#[derive(Debug, Clone)]
struct Ask {
    target: Target,
    user: usize,
    action: usize,
    kind: usize,
    key: Option<usize>,
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        prop_oneof![
            Just(Target::Actions),
            Just(Target::Resources),
            Just(Target::Subjects)
        ],
        0usize..32,
        0..ACTIONS.len(),
        0..TYPES.len(),
        prop::option::of(1..KEYS.len() + 1),
    )
        .prop_map(|(target, user, action, kind, key)| Ask {
            target,
            user,
            action,
            kind,
            key,
        })
}

fn key_name(key: usize) -> String {
    KEYS.get(key).map_or("zz".to_owned(), |k| (*k).to_owned())
}

impl Ask {
    /// The check for `value` in the searched field (None: no resource id).
    fn check(&self, value: Option<&str>) -> pb::CheckRequest {
        let user = format!("u{:02}", self.user);
        let resource_id = self.key.map(key_name).unwrap_or_default();
        let mut request = pb::CheckRequest {
            platform: "p".into(),
            agent: Some(pb::Agent {
                id: "helper".into(),
                attributes: None,
            }),
            principal: Some(pb::Principal {
                r#type: "user".into(),
                id: user,
                attributes: None,
            }),
            action: Some(pb::Action {
                name: ACTIONS[self.action].into(),
                attributes: None,
            }),
            resource: Some(pb::Resource {
                r#type: TYPES[self.kind].into(),
                id: resource_id,
                attributes: None,
            }),
            ..Default::default()
        };
        let value = value.unwrap_or_default().to_owned();
        match self.target {
            Target::Actions => request.action.as_mut().unwrap().name = value,
            Target::Resources => request.resource.as_mut().unwrap().id = value,
            Target::Subjects => request.principal.as_mut().unwrap().id = value,
        }
        request
    }

    /// Every value a check could put in the searched field that the
    /// organisation could allow, and some it never could.
    fn universe(&self, org: &Org) -> Vec<Candidate> {
        let values: Vec<String> = match self.target {
            Target::Actions => ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
            Target::Resources => (1..=KEYS.len()).map(key_name).collect(),
            Target::Subjects => (0..org.users + 2)
                .map(|u| format!("u{u:02}"))
                .chain((0..org.users + org.groups + 2).map(|s| format!("nobody{s}")))
                .collect(),
        };
        let every = (self.target == Target::Resources).then_some(Candidate::Every);
        every
            .into_iter()
            .chain(values.into_iter().map(Candidate::Value))
            .collect()
    }
}

fn query(ask: &Ask, limits: &Limits) -> Query {
    let placeholder = match ask.target {
        Target::Actions => Some("warden-search"),
        Target::Resources => None,
        Target::Subjects => Some("warden-search"),
    };
    Query {
        target: ask.target,
        base: validate(&ask.check(placeholder), limits).unwrap(),
    }
}

/// What the search finds: candidate → verdict.
fn searched(ask: &Ask, generation: &Generation, limits: &Limits) -> BTreeMap<Candidate, Verdict> {
    let query = query(ask, limits);
    let proposed = candidates(&query, None, generation).unwrap();
    let bounds = Bounds {
        start: 0,
        limit: 0,
        cap: usize::MAX,
        deadline: Instant::now() + Duration::from_secs(600),
        every_outcome: false,
        yield_every: None,
    };
    let judge = Judge {
        generation,
        switches: &SwitchIndex::default(),
        usage: None,
        limits,
        now: SystemTime::now(),
    };
    let page = run(&query, &proposed, judge, &bounds);
    assert_eq!(page.next, None);
    page.found
        .into_iter()
        .map(|found| (found.candidate, found.decision.verdict))
        .collect()
}

/// What checks allow, candidate by candidate.
fn brute_force(
    ask: &Ask,
    org: &Org,
    generation: &Generation,
    limits: &Limits,
) -> BTreeMap<Candidate, Verdict> {
    let mut allowed = BTreeMap::new();
    for candidate in ask.universe(org) {
        let value = match &candidate {
            Candidate::Every => None,
            Candidate::Value(v) => Some(v.as_str()),
        };
        let Ok(request) = validate(&ask.check(value), limits) else {
            continue;
        };
        let decision = decide(
            &request,
            generation,
            &SwitchIndex::default(),
            SystemTime::now(),
        );
        if decision.verdict != Verdict::Deny {
            allowed.insert(candidate, decision.verdict);
        }
    }
    allowed
}

/// Search = brute force, but for a grant on every resource of a type: it
/// is reported once (`Every`), and the ids it covers need not be listed.
fn assert_equal(
    ask: &Ask,
    found: &BTreeMap<Candidate, Verdict>,
    brute: &BTreeMap<Candidate, Verdict>,
    what: &str,
) {
    for (candidate, verdict) in found {
        assert_eq!(
            brute.get(candidate),
            Some(verdict),
            "{what}: {ask:?} found {candidate:?} which a check does not give"
        );
    }
    let every = found.contains_key(&Candidate::Every);
    for (candidate, verdict) in brute {
        let covered = found.get(candidate) == Some(verdict)
            || (ask.target == Target::Resources && every && *candidate != Candidate::Every);
        assert!(
            covered,
            "{what}: {ask:?} missed {candidate:?} ({verdict:?}); found {found:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn search_equals_brute_force(org in org(), asks in prop::collection::vec(ask(), 1..12)) {
        let (with, without) = bundles_cached();
        let limits = Limits::default();
        let generated = org.generation(with);
        let scanned = org.generation(without);
        for ask in &asks {
            let brute = brute_force(ask, &org, &generated, &limits);
            prop_assert_eq!(&brute, &brute_force(ask, &org, &scanned, &limits));
            if ask.target == Target::Actions {
                // The generator proposes the names the catalogue, the
                // agent's grants or the principal's entitlements on the
                // resource spell out; an action allowed only through a
                // pattern and named nowhere is not proposed.
                let named = org.named_for(ask);
                let brute: BTreeMap<Candidate, Verdict> = brute
                    .clone()
                    .into_iter()
                    .filter(|(c, _)| matches!(c, Candidate::Value(v) if named.contains(v.as_str())))
                    .collect();
                assert_equal(ask, &searched(ask, &generated, &limits), &brute, "generators");
            } else {
                assert_equal(ask, &searched(ask, &generated, &limits), &brute, "generators");
            }
            let from_snapshots = searched(ask, &scanned, &limits);
            if ask.target == Target::Actions {
                // Without generators the vocabulary is the names the
                // snapshots spell out, so only those can be found.
                let named: BTreeSet<&str> = org
                    .grants
                    .iter()
                    .map(|g| PATTERNS[g.3])
                    .chain(org.agent.iter().map(|p| PATTERNS[*p]))
                    .filter(|p| !p.contains('*'))
                    .collect();
                let brute: BTreeMap<Candidate, Verdict> = brute
                    .into_iter()
                    .filter(|(c, _)| matches!(c, Candidate::Value(v) if named.contains(v.as_str())))
                    .collect();
                assert_equal(ask, &from_snapshots, &brute, "snapshots");
            } else {
                assert_equal(ask, &from_snapshots, &brute, "snapshots");
            }
        }
    }
}

fn bundles_cached() -> &'static (Bundle, Bundle) {
    static BUNDLES: std::sync::OnceLock<(Bundle, Bundle)> = std::sync::OnceLock::new();
    BUNDLES.get_or_init(bundles)
}

/// The search finds something in most generated cases, so the equality
/// above is not vacuous.
#[test]
fn generated_searches_find_things() {
    let (with, _) = bundles_cached();
    let limits = Limits::default();
    let org = Org {
        users: 4,
        groups: 2,
        members: vec![(0, 0), (1, 0), (2, 1)],
        grants: vec![(4, 0, 0, 0), (0, 0, 1, 6), (3, 1, 2, 8)],
        agent: vec![1, 8],
    };
    let generation = org.generation(with);
    let subjects = searched(
        &Ask {
            target: Target::Subjects,
            user: 0,
            action: 0,
            kind: 0,
            key: Some(2),
        },
        &generation,
        &limits,
    );
    let users: Vec<&Candidate> = subjects.keys().collect();
    assert_eq!(
        users,
        [
            &Candidate::Value("u00".into()),
            &Candidate::Value("u01".into())
        ]
    );
    let resources = searched(
        &Ask {
            target: Target::Resources,
            user: 0,
            action: 1,
            kind: 0,
            key: None,
        },
        &generation,
        &limits,
    );
    assert_eq!(
        resources.keys().collect::<Vec<_>>(),
        [&Candidate::Value("d1".into())]
    );
    let actions = searched(
        &Ask {
            target: Target::Actions,
            user: 3,
            action: 0,
            kind: 1,
            key: Some(2),
        },
        &generation,
        &limits,
    );
    assert_eq!(
        actions.keys().collect::<Vec<_>>(),
        [
            &Candidate::Value("reports.export".into()),
            &Candidate::Value("reports.read".into())
        ]
    );
}

/// A generator that does not give strings fails its search: no partial
/// answer, never a fallback to other candidates.
#[test]
fn a_broken_generator_fails_the_search() {
    let root = repo_root().join("policies");
    let mut files = read_dir(&root, &ArchiveLimits::default()).unwrap();
    files.insert(
        "warden/search/search.rego".into(),
        b"package warden.search\n\nsubjects contains 7 if input.resource\n\ndefault actions := [\"documents.read\"]\n"
            .to_vec(),
    );
    let bundle = Bundle::from_files(files).unwrap();
    let org = Org {
        users: 2,
        groups: 1,
        members: vec![],
        grants: vec![(0, 0, 0, 0)],
        agent: vec![0],
    };
    let generation = org.generation(&bundle);
    let limits = Limits::default();
    let ask = |target| Ask {
        target,
        user: 0,
        action: 0,
        kind: 0,
        key: Some(1),
    };
    let subjects = query(&ask(Target::Subjects), &limits);
    let error = candidates(&subjects, None, &generation).unwrap_err();
    assert!(error.contains("data.warden.search.subjects"), "{error}");
    assert!(error.contains("not a string"), "{error}");
    // A `default` rule declares a generator too; the one not declared
    // (resources) falls back to the snapshots.
    let actions = candidates(&query(&ask(Target::Actions), &limits), None, &generation).unwrap();
    assert_eq!(actions, [Candidate::Value("documents.read".into())]);
    let resources =
        candidates(&query(&ask(Target::Resources), &limits), None, &generation).unwrap();
    assert_eq!(resources, [Candidate::Every]);
}
