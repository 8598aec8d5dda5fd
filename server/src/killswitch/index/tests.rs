use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::killswitch::{EndKind, Ended, Scope};
use crate::request::{Action, Agent, Principal, Resource};

fn verbs() -> Arc<[String]> {
    ["read", "get", "list", "search"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn check(platform: &str, agent: &str, principal: &str, action: &str, kind: &str) -> CheckRequest {
    CheckRequest {
        platform: platform.into(),
        agent: Agent {
            id: agent.into(),
            attributes: Default::default(),
        },
        principal: Principal {
            kind: None,
            id: principal.into(),
            attributes: Default::default(),
        },
        delegation_chain: Vec::new(),
        audience: Vec::new(),
        action: Action {
            name: action.into(),
            attributes: Default::default(),
        },
        resource: Resource {
            kind: kind.into(),
            id: None,
            attributes: Default::default(),
        },
        context: Default::default(),
        request_id: None,
        approval: None,
    }
}

/// The index as servers build it, reading sessions at `context.session_id`.
fn build(switches: impl IntoIterator<Item = Arc<Switch>>) -> SwitchIndex {
    SwitchIndex::build(switches, verbs(), Arc::default())
}

/// `request` from session `session` (a JSON string at `context.session_id`).
fn in_session(mut request: CheckRequest, session: serde_json::Value) -> CheckRequest {
    request.context.insert("session_id".into(), session);
    request
}

fn switch(n: u32, scope: Scope, mode: Mode) -> Arc<Switch> {
    Arc::new(Switch {
        id: format!("ks-{n:08}"),
        scope,
        mode,
        reason: "test".into(),
        engaged_by: String::new(),
        engaged_at_ms: 0,
        expires_at_ms: None,
        ended: None,
    })
}

fn hit_id(index: &SwitchIndex, request: &CheckRequest, now_ms: u64) -> Option<String> {
    match index.check(request, now_ms) {
        Some(Hit::Switch(s)) => Some(s.id.clone()),
        Some(Hit::Unavailable(reason)) => Some(format!("unavailable: {reason}")),
        None => None,
    }
}

#[test]
fn each_scope_dimension_alone_and_combined() {
    let base = check("p1", "a1", "u1", "documents.write", "document");
    let cases: Vec<(Scope, bool)> = vec![
        (
            Scope {
                platform: Some("p1".into()),
                ..Scope::default()
            },
            true,
        ),
        (
            Scope {
                platform: Some("p2".into()),
                ..Scope::default()
            },
            false,
        ),
        (
            Scope {
                agent_id: Some("a1".into()),
                ..Scope::default()
            },
            true,
        ),
        (
            Scope {
                principal_id: Some("u1".into()),
                ..Scope::default()
            },
            true,
        ),
        (
            Scope {
                principal_id: Some("u2".into()),
                ..Scope::default()
            },
            false,
        ),
        (
            Scope {
                action: Some("documents.*".into()),
                ..Scope::default()
            },
            true,
        ),
        (
            Scope {
                action: Some("documents.write".into()),
                ..Scope::default()
            },
            true,
        ),
        (
            Scope {
                action: Some("mail.*".into()),
                ..Scope::default()
            },
            false,
        ),
        (
            Scope {
                resource_type: Some("document".into()),
                ..Scope::default()
            },
            true,
        ),
        (
            Scope {
                platform: Some("p1".into()),
                agent_id: Some("a1".into()),
                action: Some("documents.*".into()),
                resource_type: Some("document".into()),
                principal_id: Some("u1".into()),
                session_id: None,
            },
            true,
        ),
        (
            Scope {
                platform: Some("p1".into()),
                agent_id: Some("a2".into()),
                ..Scope::default()
            },
            false,
        ),
        (Scope::default(), true),
    ];
    for (scope, stops) in cases {
        let index = build([switch(1, scope.clone(), Mode::DenyAll)]);
        assert_eq!(
            index.check(&base, 0).is_some(),
            stops,
            "scope {scope:?} should {}stop the check",
            if stops { "" } else { "not " }
        );
    }
}

#[test]
fn deny_mutating_lets_reads_through() {
    let scope = Scope {
        agent_id: Some("a1".into()),
        ..Scope::default()
    };
    let index = build([switch(1, scope, Mode::DenyMutating)]);
    for (action, stopped) in [
        ("documents.read", false),
        ("documents.list", false),
        ("documents.write", true),
        ("documents.reader", true),
        ("permissions.grant", true),
    ] {
        let request = check("p1", "a1", "u1", action, "document");
        assert_eq!(index.check(&request, 0).is_some(), stopped, "{action}");
    }
}

#[test]
fn expired_and_released_switches_stop_nothing() {
    let scope = Scope {
        agent_id: Some("a1".into()),
        ..Scope::default()
    };
    let mut expiring = (*switch(1, scope.clone(), Mode::DenyAll)).clone();
    expiring.expires_at_ms = Some(1_000);
    let mut released = (*switch(2, scope, Mode::DenyAll)).clone();
    released.ended = Some(Ended {
        kind: EndKind::Released,
        at_ms: 0,
        by: String::new(),
        reason: "over".into(),
    });
    let index = build([Arc::new(expiring), Arc::new(released)]);
    let request = check("p1", "a1", "u1", "x.write", "t");
    assert_eq!(
        hit_id(&index, &request, 999).as_deref(),
        Some("ks-00000001")
    );
    assert_eq!(hit_id(&index, &request, 1_000), None);
}

#[test]
fn the_earliest_engaged_switch_is_reported() {
    let later = switch(
        7,
        Scope {
            agent_id: Some("a1".into()),
            ..Scope::default()
        },
        Mode::DenyAll,
    );
    let earlier = switch(
        3,
        Scope {
            platform: Some("p1".into()),
            ..Scope::default()
        },
        Mode::DenyAll,
    );
    let index = build([later, earlier]);
    let request = check("p1", "a1", "u1", "x.write", "t");
    assert_eq!(hit_id(&index, &request, 0).as_deref(), Some("ks-00000003"));
}

#[test]
fn a_session_switch_stops_only_that_session() {
    let session = |id: &str| Scope {
        session_id: Some(id.into()),
        ..Scope::default()
    };
    let index = build([switch(1, session("s1"), Mode::DenyAll)]);
    let base = || check("p1", "a1", "u1", "x.write", "t");
    assert_eq!(
        hit_id(&index, &in_session(base(), "s1".into()), 0).as_deref(),
        Some("ks-00000001")
    );
    assert_eq!(hit_id(&index, &in_session(base(), "s2".into()), 0), None);
    // No session, or one that is not a string, is never in a session scope.
    assert_eq!(hit_id(&index, &base(), 0), None);
    assert_eq!(
        hit_id(&index, &in_session(base(), serde_json::json!(["s1"])), 0),
        None
    );
}

#[test]
fn a_session_combines_with_the_other_dimensions() {
    let scope = Scope {
        session_id: Some("s1".into()),
        agent_id: Some("a1".into()),
        action: Some("x.*".into()),
        ..Scope::default()
    };
    let index = build([switch(1, scope, Mode::DenyMutating)]);
    for (agent, action, session, stopped) in [
        ("a1", "x.write", "s1", true),
        ("a2", "x.write", "s1", false),
        ("a1", "y.write", "s1", false),
        ("a1", "x.read", "s1", false),
        ("a1", "x.write", "s2", false),
    ] {
        let request = in_session(check("p1", agent, "u1", action, "t"), session.into());
        assert_eq!(
            index.check(&request, 0).is_some(),
            stopped,
            "{agent} {action} {session}"
        );
    }
    // Sessions read from another path: the context key no longer counts.
    let scope = Scope {
        session_id: Some("s1".into()),
        ..Scope::default()
    };
    let path = Arc::new(crate::request::InputPath::parse("agent.attributes.run").unwrap());
    let index = SwitchIndex::build([switch(2, scope, Mode::DenyAll)], verbs(), path);
    let mut request = in_session(check("p1", "a1", "u1", "x.write", "t"), "s1".into());
    assert_eq!(hit_id(&index, &request, 0), None);
    request.agent.attributes.insert("run".into(), "s1".into());
    assert_eq!(hit_id(&index, &request, 0).as_deref(), Some("ks-00000002"));
}

#[test]
fn unavailable_state_stops_everything() {
    let index = SwitchIndex::unavailable("corrupt record".into());
    let request = check("p1", "a1", "u1", "x.read", "t");
    assert_eq!(
        hit_id(&index, &request, 0).as_deref(),
        Some("unavailable: corrupt record")
    );
}

/// A deliberately naive matcher: every switch, every field.
fn linear(switches: &[Arc<Switch>], request: &CheckRequest, now_ms: u64) -> Option<String> {
    let mut sorted: Vec<_> = switches.iter().filter(|s| s.ended.is_none()).collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let is_read = |name: &str| {
        let verb = name.rsplit('.').next().unwrap_or(name);
        ["read", "get", "list", "search"].contains(&verb)
    };
    sorted
        .into_iter()
        .find(|s| {
            let f = |w: &Option<String>, h: &str| w.as_ref().is_none_or(|w| w == h);
            let session = request.context.get("session_id").and_then(|v| v.as_str());
            s.expires_at_ms.is_none_or(|at| now_ms < at)
                && s.scope
                    .session_id
                    .as_ref()
                    .is_none_or(|w| session == Some(w.as_str()))
                && f(&s.scope.platform, &request.platform)
                && f(&s.scope.agent_id, &request.agent.id)
                && f(&s.scope.principal_id, &request.principal.id)
                && f(&s.scope.resource_type, &request.resource.kind)
                && s.scope.action.as_ref().is_none_or(|p| {
                    p == "*"
                        || p == &request.action.name
                        || (p.ends_with(".*") && request.action.name.starts_with(&p[..p.len() - 1]))
                })
                && (s.mode == Mode::DenyAll || !is_read(&request.action.name))
        })
        .map(|s| s.id.clone())
}

fn small(values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(values).prop_map(String::from))
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    (
        small(&["p1", "p2"]),
        small(&["a1", "a2", "a3"]),
        small(&["u1", "u2"]),
        small(&[
            "*",
            "docs.*",
            "docs.read",
            "docs.write",
            "docs.v2.*",
            "mail.send",
        ]),
        small(&["doc", "mail"]),
        small(&["s1", "s2"]),
    )
        .prop_map(
            |(platform, agent_id, principal_id, action, resource_type, session_id)| Scope {
                platform,
                agent_id,
                principal_id,
                action,
                resource_type,
                session_id,
            },
        )
}

fn arb_switch() -> impl Strategy<Value = Arc<Switch>> {
    (
        0u32..1000,
        arb_scope(),
        prop::bool::ANY,
        prop::option::of(0u64..20),
        prop::bool::ANY,
    )
        .prop_map(|(n, scope, mutating, expires, released)| {
            let mode = if mutating {
                Mode::DenyMutating
            } else {
                Mode::DenyAll
            };
            let mut s = (*switch(n, scope, mode)).clone();
            s.expires_at_ms = expires;
            if released && n % 3 == 0 {
                s.ended = Some(Ended {
                    kind: EndKind::Released,
                    at_ms: 0,
                    by: String::new(),
                    reason: String::new(),
                });
            }
            Arc::new(s)
        })
}

proptest! {
    #[test]
    fn the_index_agrees_with_a_linear_scan(
        switches in prop::collection::vec(arb_switch(), 0..40),
        platform in prop::sample::select(vec!["p1", "p2", "p3"]),
        agent in prop::sample::select(vec!["a1", "a2", "a3", "a4"]),
        principal in prop::sample::select(vec!["u1", "u2", "u3"]),
        action in prop::sample::select(vec!["docs.read", "docs.write", "docs.v2.read", "docs.v2.delete", "mail.send", "docs"]),
        kind in prop::sample::select(vec!["doc", "mail", "other"]),
        session in prop::option::of(prop::sample::select(vec!["s1", "s2", "s3"])),
        now in 0u64..25,
    ) {
        // Ids must be unique, as UUIDs are.
        let mut seen = std::collections::HashSet::new();
        let switches: Vec<_> = switches.into_iter().filter(|s| seen.insert(s.id.clone())).collect();
        let index = build(switches.clone());
        let mut request = check(platform, agent, principal, action, kind);
        if let Some(session) = session {
            request = in_session(request, session.into());
        }
        prop_assert_eq!(hit_id(&index, &request, now), linear(&switches, &request, now));
    }
}

#[test]
fn records_without_a_session_load_and_policies_see_one_when_set() {
    // A record stored before sessions were scopes.
    let old = r#"{"id":"ks-1","scope":{"agent_id":"a1"},"mode":"deny_all","reason":"r","engaged_by":"","engaged_at_ms":0}"#;
    let stored: Switch = serde_json::from_str(old).unwrap();
    assert_eq!(stored.scope.session_id, None);
    assert_eq!(
        stored.to_policy_json()["scope"],
        serde_json::json!({"agent_id": "a1"})
    );
    let scoped = switch(
        1,
        Scope {
            session_id: Some("s1".into()),
            ..Scope::default()
        },
        Mode::DenyAll,
    );
    assert_eq!(
        scoped.to_policy_json()["scope"],
        serde_json::json!({"session_id": "s1"})
    );
}
