use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::config::{LimitsConfig, OnFull};
use super::*;
use crate::killswitch::SwitchIndex;
use crate::request::{Action, Agent, CheckRequest, InputPath, Principal, Resource};

fn request(agent: &str, action: &str, context: serde_json::Value) -> CheckRequest {
    let attributes = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    CheckRequest {
        platform: "p1".into(),
        agent: Agent {
            id: agent.into(),
            attributes: Default::default(),
        },
        principal: Principal {
            kind: None,
            id: "alice".into(),
            attributes: Default::default(),
        },
        delegation_chain: Vec::new(),
        audience: Vec::new(),
        action: Action {
            name: action.into(),
            attributes: attributes(context.get("action").cloned().unwrap_or(json!({}))),
        },
        resource: Resource {
            kind: "document".into(),
            id: Some("d1".into()),
            attributes: Default::default(),
        },
        context: attributes(context.get("context").cloned().unwrap_or(json!({}))),
        request_id: None,
        approval: None,
    }
}

fn rules(document: serde_json::Value) -> RuleSet {
    match RuleSet::from_data(&json!({"warden": {"limits": document}})) {
        Ok(rules) => rules,
        Err(e) => panic!("rules refused: {e}"),
    }
}

fn limits(max_keys: usize, on_full: OnFull) -> UsageLimits {
    let path = "context.session_id".parse::<InputPath>().map(Arc::new);
    UsageLimits::new(
        LimitsConfig {
            max_keys,
            on_full,
            ..LimitsConfig::default()
        },
        path.unwrap_or_else(|e| panic!("{e}")),
    )
}

fn admitted(admission: &Admission) -> bool {
    matches!(admission, Admission::Admitted { .. })
}

fn refusal(admission: Admission) -> Refusal {
    match admission {
        Admission::Refused(refusal) => refusal,
        Admission::Admitted { .. } => panic!("admitted"),
    }
}

const T0: u64 = 1_800_000_000_000;

#[test]
fn exactly_max_in_a_window_then_refused_until_it_slides() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(
        json!({"rules": [{"id": "reads", "match": {"action": "documents.read"},
        "per": ["agent", "principal"], "window": "1m", "max": 5}]}),
    );
    let check = request("a1", "documents.read", json!({}));
    // Five checks spread over the first 10 s of a bucket-aligned minute.
    for i in 0..5 {
        assert!(
            admitted(&limits.admit(&rules, &check, T0 + i * 2_000, false)),
            "check {i}"
        );
    }
    let refused = refusal(limits.admit(&rules, &check, T0 + 30_000, false));
    assert_eq!(refused.reason, "limit_exceeded:reads");
    // The first check's bucket [T0, T0 + 3 s) leaves at T0 + 63 s.
    assert_eq!(refused.retry_after, Some(Duration::from_millis(33_000)));
    assert_eq!((refused.used, refused.max), (5.0, 5.0));
    // Still refused just before, admitted at that moment.
    assert!(!admitted(&limits.admit(&rules, &check, T0 + 62_999, false)));
    assert!(admitted(&limits.admit(&rules, &check, T0 + 63_000, false)));
    // Other keys have their own budget; other actions are not counted.
    assert!(admitted(&limits.admit(
        &rules,
        &request("a2", "documents.read", json!({})),
        T0 + 30_000,
        false
    )));
    assert!(admitted(&limits.admit(
        &rules,
        &request("a1", "documents.write", json!({})),
        T0 + 30_000,
        false
    )));
}

#[test]
fn no_burst_at_a_window_edge() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(json!({"rules": [{"id": "r", "per": "agent", "window": "10s", "max": 3}]}));
    let check = request("a1", "x.y", json!({}));
    // Three at the very end of one window...
    for _ in 0..3 {
        assert!(admitted(&limits.admit(&rules, &check, T0 + 9_999, false)));
    }
    // ...and none at the start of the next: any 10 s holds at most 3.
    assert!(!admitted(&limits.admit(&rules, &check, T0 + 10_000, false)));
    assert!(!admitted(&limits.admit(&rules, &check, T0 + 19_998, false)));
}

#[test]
fn sums_add_decimals_exactly_and_refuse_a_missing_or_bad_amount() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(
        json!({"rules": [{"id": "spend", "per": ["principal"], "window": "1h",
        "sum": "action.attributes.amount_usd", "max": 1.0, "expose": true}]}),
    );
    let pay = |amount: serde_json::Value| {
        request(
            "a1",
            "payments.send",
            json!({"action": {"amount_usd": amount}}),
        )
    };
    for i in 0..10 {
        match limits.admit(&rules, &pay(json!(0.1)), T0 + i, false) {
            Admission::Admitted { budgets, .. } => {
                assert_eq!(budgets.len(), 1);
                assert!((budgets[0].used - 0.1 * (i + 1) as f64).abs() < 1e-9);
                assert_eq!(budgets[0].max, 1.0);
            }
            Admission::Refused(r) => panic!("payment {i} refused: {r:?}"),
        }
    }
    let refused = refusal(limits.admit(&rules, &pay(json!(0.01)), T0 + 20, false));
    assert_eq!(refused.reason, "limit_exceeded:spend");
    let missing = refusal(limits.admit(
        &rules,
        &request("a1", "payments.send", json!({})),
        T0,
        false,
    ));
    assert_eq!(missing.reason, "limit_sum_missing:spend");
    assert!(
        missing
            .detail
            .unwrap_or_default()
            .contains("action.attributes.amount_usd")
    );
    for bad in [json!("12"), json!(-1), json!(null), json!({"v": 1})] {
        let invalid = refusal(limits.admit(&rules, &pay(bad.clone()), T0, false));
        assert_eq!(invalid.reason, "limit_sum_invalid:spend", "{bad}");
    }
    // One amount above the max can never pass: no retry_after.
    let fresh = super::UsageLimits::new(
        LimitsConfig::default(),
        Arc::new("context.s".parse().unwrap_or_else(|e| panic!("{e}"))),
    );
    let alone = refusal(fresh.admit(&rules, &pay(json!(1.5)), T0, false));
    assert_eq!(alone.retry_after, None);
}

#[test]
fn per_session_counts_each_session_apart_and_skips_checks_without_one() {
    let limits = limits(1000, OnFull::Deny);
    let rules =
        rules(json!({"rules": [{"id": "s", "per": ["session"], "window": "1m", "max": 2}]}));
    let in_session = |s: &str| request("a1", "x.y", json!({"context": {"session_id": s}}));
    for _ in 0..2 {
        assert!(admitted(&limits.admit(
            &rules,
            &in_session("s1"),
            T0,
            false
        )));
    }
    assert!(!admitted(&limits.admit(
        &rules,
        &in_session("s1"),
        T0,
        false
    )));
    assert!(admitted(&limits.admit(
        &rules,
        &in_session("s2"),
        T0,
        false
    )));
    for _ in 0..5 {
        assert!(admitted(&limits.admit(
            &rules,
            &request("a1", "x.y", json!({})),
            T0,
            false
        )));
    }
}

#[test]
fn a_check_refused_by_one_rule_spends_nothing_in_the_others() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(json!({"rules": [
        {"id": "wide", "per": ["agent"], "window": "1m", "max": 10, "expose": true},
        {"id": "narrow", "match": {"action": "files.*"}, "per": ["agent"], "window": "1m", "max": 1}]}));
    assert!(admitted(&limits.admit(
        &rules,
        &request("a1", "files.delete", json!({})),
        T0,
        false
    )));
    for _ in 0..5 {
        let refused =
            refusal(limits.admit(&rules, &request("a1", "files.delete", json!({})), T0, false));
        assert_eq!(refused.rule, "narrow");
    }
    // `wide` holds one use, not six.
    match limits.admit(&rules, &request("a1", "docs.read", json!({})), T0, false) {
        Admission::Admitted { budgets, .. } => assert_eq!(budgets[0].used, 2.0),
        Admission::Refused(r) => panic!("{r:?}"),
    }
}

#[test]
fn rollback_gives_the_reservation_back() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 1}]}));
    let check = request("a1", "x.y", json!({}));
    let Admission::Admitted { reservation, .. } = limits.admit(&rules, &check, T0, false) else {
        panic!("refused");
    };
    limits.rollback(reservation);
    assert!(admitted(&limits.admit(&rules, &check, T0, false)));
}

#[test]
fn an_approval_satisfies_require_approval_limits_only() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(json!({"rules": [
        {"id": "ask", "per": "agent", "window": "1m", "max": 1, "on_exceed": "require_approval",
         "approval": {"approvers": ["group:security"]}}]}));
    let check = request("a1", "x.y", json!({}));
    assert!(admitted(&limits.admit(&rules, &check, T0, false)));
    let refused = refusal(limits.admit(&rules, &check, T0, false));
    assert!(matches!(
        refused.on_exceed,
        OnExceed::RequireApproval(Some(_))
    ));
    assert!(admitted(&limits.admit(&rules, &check, T0, true)));
}

#[test]
fn sixty_four_threads_racing_on_one_key_get_exactly_max() {
    let limits = Arc::new(limits(1000, OnFull::Deny));
    let rules = Arc::new(rules(
        json!({"rules": [{"id": "r", "per": "agent", "window": "1h", "max": 1000}]}),
    ));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (limits, rules) = (limits.clone(), rules.clone());
            std::thread::spawn(move || {
                let check = request("a1", "x.y", json!({}));
                (0..50)
                    .filter(|_| admitted(&limits.admit(&rules, &check, T0, false)))
                    .count()
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    assert_eq!(total, 1000);
}

#[test]
fn a_full_table_refuses_new_keys_or_lets_them_through_uncounted() {
    let rules = rules(json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 1}]}));
    let deny = limits(2, OnFull::Deny);
    let allow = limits(2, OnFull::Allow);
    for limits in [&deny, &allow] {
        assert!(admitted(&limits.admit(
            &rules,
            &request("a1", "x.y", json!({})),
            T0,
            false
        )));
        assert!(admitted(&limits.admit(
            &rules,
            &request("a2", "x.y", json!({})),
            T0,
            false
        )));
    }
    let refused = refusal(deny.admit(&rules, &request("a3", "x.y", json!({})), T0, false));
    assert_eq!(refused.reason, "limit_state_full:r");
    for _ in 0..3 {
        assert!(admitted(&allow.admit(
            &rules,
            &request("a3", "x.y", json!({})),
            T0,
            false
        )));
    }
    // Once the others are idle, the key is taken.
    assert!(admitted(&deny.admit(
        &rules,
        &request("a3", "x.y", json!({})),
        T0 + 3_600_000,
        false
    )));
}

fn tripwire_rules() -> RuleSet {
    rules(
        json!({"tripwires": [{"id": "denials", "per": ["agent"], "window": "5m",
        "count": {"outcomes": ["deny"], "reasons": ["principal_not_entitled"]}, "threshold": 3,
        "switch": {"mode": "deny_all", "ttl": "1h"}}]}),
    )
}

#[test]
fn a_tripwire_fires_once_at_its_threshold_and_rearms_when_its_switch_ends() {
    let limits = limits(1000, OnFull::Deny);
    let rules = tripwire_rules();
    let check = request("a1", "documents.read", json!({}));
    let not_entitled = vec!["principal_not_entitled".to_owned()];
    let none = SwitchIndex::default();
    // Other outcomes and reasons are not counted.
    assert!(
        limits
            .observe(&rules, &check, "allow", &[], T0, &none)
            .is_empty()
    );
    assert!(
        limits
            .observe(&rules, &check, "deny", &["other".into()], T0, &none)
            .is_empty()
    );
    assert!(
        limits
            .observe(&rules, &check, "deny", &not_entitled, T0, &none)
            .is_empty()
    );
    assert!(
        limits
            .observe(&rules, &check, "deny", &not_entitled, T0, &none)
            .is_empty()
    );
    let trips = limits.observe(&rules, &check, "deny", &not_entitled, T0, &none);
    assert_eq!(trips.len(), 1);
    let trip = &trips[0];
    assert_eq!(trip.scope.agent_id.as_deref(), Some("a1"));
    let spec = trip.engage_spec();
    assert_eq!(spec.reason, "tripwire:denials");
    assert_eq!(spec.engaged_by, "warden:tripwire");
    assert_eq!(spec.ttl_seconds, 3600);
    // While it is being engaged, and once engaged, it does not fire again.
    assert!(
        limits
            .observe(&rules, &check, "deny", &not_entitled, T0, &none)
            .is_empty()
    );
    let switch = crate::killswitch::Switch {
        id: "sw1".into(),
        scope: trip.scope.clone(),
        mode: crate::killswitch::Mode::DenyAll,
        reason: spec.reason.clone(),
        engaged_by: spec.engaged_by.clone(),
        engaged_at_ms: T0,
        expires_at_ms: Some(T0 + 3_600_000),
        ended: None,
    };
    limits.fired(trip, Some("sw1"));
    let engaged = SwitchIndex::build(
        [Arc::new(switch)],
        Arc::from(Vec::new()),
        Arc::new(
            "context.session_id"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        ),
    );
    for _ in 0..5 {
        assert!(
            limits
                .observe(&rules, &check, "deny", &not_entitled, T0 + 1, &engaged)
                .is_empty()
        );
    }
    // Released (gone from the index): counting starts again from zero.
    for _ in 0..2 {
        assert!(
            limits
                .observe(&rules, &check, "deny", &not_entitled, T0 + 2, &none)
                .is_empty()
        );
    }
    assert_eq!(
        limits
            .observe(&rules, &check, "deny", &not_entitled, T0 + 2, &none)
            .len(),
        1
    );
}

#[test]
fn a_tripwire_that_could_not_engage_fires_again() {
    let limits = limits(1000, OnFull::Deny);
    let rules = tripwire_rules();
    let check = request("a1", "documents.read", json!({}));
    let reasons = vec!["principal_not_entitled".to_owned()];
    let none = SwitchIndex::default();
    let mut trips = Vec::new();
    for _ in 0..3 {
        trips = limits.observe(&rules, &check, "deny", &reasons, T0, &none);
    }
    assert_eq!(trips.len(), 1);
    limits.fired(&trips[0], None);
    assert_eq!(
        limits
            .observe(&rules, &check, "deny", &reasons, T0, &none)
            .len(),
        1
    );
}

#[test]
fn session_tripwires_scope_their_switch_to_the_session() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(
        json!({"tripwires": [{"id": "perm", "match": {"action": "permissions.*"},
        "per": ["agent", "session"], "window": "10m", "threshold": 2, "switch": {"ttl": "10m"}}]}),
    );
    let check = request(
        "a1",
        "permissions.grant",
        json!({"context": {"session_id": "s9"}}),
    );
    let none = SwitchIndex::default();
    assert!(
        limits
            .observe(&rules, &check, "allow", &[], T0, &none)
            .is_empty()
    );
    let trips = limits.observe(&rules, &check, "deny", &[], T0, &none);
    assert_eq!(trips[0].scope.session_id.as_deref(), Some("s9"));
    assert_eq!(trips[0].scope.agent_id.as_deref(), Some("a1"));
}

#[test]
fn counters_survive_a_save_and_load() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = sled::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let rules = rules(json!({"rules": [{"id": "r", "per": "agent", "window": "1h", "max": 10}]}));
    let check = request("a1", "x.y", json!({}));
    let before = limits(1000, OnFull::Deny);
    for _ in 0..7 {
        assert!(admitted(&before.admit(&rules, &check, T0, false)));
    }
    assert_eq!(before.save(&db).unwrap_or_else(|e| panic!("{e}")), 1);
    // Nothing changed: nothing written.
    assert_eq!(before.save(&db).unwrap_or_else(|e| panic!("{e}")), 0);
    let after = limits(1000, OnFull::Deny);
    assert_eq!(after.load(&db).unwrap_or_else(|e| panic!("{e}")), 1);
    for _ in 0..3 {
        assert!(admitted(&after.admit(&rules, &check, T0 + 1_000, false)));
    }
    assert!(!admitted(&after.admit(&rules, &check, T0 + 1_000, false)));
    // A changed rule starts again.
    let changed = rules_with_max(20);
    assert!(admitted(&after.admit(&changed, &check, T0 + 1_000, false)));
    let hot = after.hottest(&changed, None, 10, T0 + 1_000);
    assert_eq!(hot[0].used, 1.0);
}

fn rules_with_max(max: u64) -> RuleSet {
    rules(json!({"rules": [{"id": "r", "per": "agent", "window": "1h", "max": max}]}))
}

#[test]
fn other_replicas_usage_counts_against_the_budget() {
    let rules = rules_with_max(10);
    let check = request("a1", "x.y", json!({}));
    let one = limits(1000, OnFull::Deny);
    let two = limits(1000, OnFull::Deny);
    for _ in 0..6 {
        assert!(admitted(&one.admit(&rules, &check, T0, false)));
    }
    two.apply_remote(one.publication("one", T0));
    let allowed = (0..10)
        .filter(|_| admitted(&two.admit(&rules, &check, T0, false)))
        .count();
    assert_eq!(allowed, 4);
    // A newer publication replaces the older one, not adds to it.
    two.apply_remote(one.publication("one", T0));
    assert!(!admitted(&two.admit(&rules, &check, T0, false)));
    two.forget_remote("one");
    assert_eq!(
        (0..10)
            .filter(|_| admitted(&two.admit(&rules, &check, T0, false)))
            .count(),
        6
    );
}

#[test]
fn reset_forgets_the_named_keys_only() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules_with_max(1);
    for agent in ["a1", "a2"] {
        assert!(admitted(&limits.admit(
            &rules,
            &request(agent, "x.y", json!({})),
            T0,
            false
        )));
    }
    assert_eq!(limits.reset("r", &[(Dim::Agent, "a1".into())], &rules), 1);
    assert!(admitted(&limits.admit(
        &rules,
        &request("a1", "x.y", json!({})),
        T0,
        false
    )));
    assert!(!admitted(&limits.admit(
        &rules,
        &request("a2", "x.y", json!({})),
        T0,
        false
    )));
    assert_eq!(limits.hottest(&rules, Some("r"), 10, T0).len(), 2);
}

#[test]
fn would_refuse_answers_as_admit_would_and_spends_nothing() {
    let limits = limits(1000, OnFull::Deny);
    let rules = rules(json!({"rules": [
        {"id": "reads", "match": {"action": "documents.read"},
         "per": ["agent"], "window": "1m", "max": 3},
        {"id": "spend", "match": {"action": "payments.send"},
         "per": ["agent"], "window": "1h", "max": 100, "sum": "action.attributes.amount"}
    ]}));
    let check = request("a1", "documents.read", json!({}));
    for i in 0..3 {
        // Asking any number of times leaves the whole budget.
        for _ in 0..10 {
            assert!(limits.would_refuse(&rules, &check, T0 + i).is_none());
        }
        assert!(admitted(&limits.admit(&rules, &check, T0 + i, false)));
    }
    let peeked = limits.would_refuse(&rules, &check, T0 + 10);
    let refused = refusal(limits.admit(&rules, &check, T0 + 10, false));
    let peeked = peeked.unwrap_or_else(|| panic!("the fourth would be refused"));
    assert_eq!(
        (peeked.reason.as_str(), peeked.used, peeked.max),
        (refused.reason.as_str(), refused.used, refused.max)
    );
    // A key nobody counted yet holds nothing, and is not created.
    let keys = limits.keys();
    assert!(
        limits
            .would_refuse(&rules, &request("a9", "documents.read", json!({})), T0)
            .is_none()
    );
    assert_eq!(limits.keys(), keys);
    // A sum's amount is checked as admit checks it.
    let missing = request("a1", "payments.send", json!({}));
    assert_eq!(
        limits.would_refuse(&rules, &missing, T0).map(|r| r.reason),
        Some("limit_sum_missing:spend".to_owned())
    );
    let large = request("a1", "payments.send", json!({"action": {"amount": 101}}));
    assert_eq!(
        limits.would_refuse(&rules, &large, T0).map(|r| r.reason),
        Some("limit_exceeded:spend".to_owned())
    );
    let small = request("a1", "payments.send", json!({"action": {"amount": 60}}));
    assert!(limits.would_refuse(&rules, &small, T0).is_none());
}
