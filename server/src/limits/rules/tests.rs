use serde_json::json;

use super::*;

fn parse(document: serde_json::Value) -> Result<RuleSet, RuleError> {
    RuleSet::from_data(&json!({"warden": {"limits": document}}))
}

fn refused(document: serde_json::Value) -> String {
    match parse(document) {
        Ok(rules) => panic!("accepted: {rules:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn no_document_means_no_rules() {
    assert_eq!(RuleSet::from_data(&json!({})), Ok(RuleSet::default()));
    assert_eq!(
        RuleSet::from_data(&json!({"warden": {"config": {}}})),
        Ok(RuleSet::default())
    );
}

#[test]
fn a_full_rule_reads_as_written() {
    let rules = parse(
        json!({"rules": [{"id": "spend", "match": {"platform": "p", "action": "payments.*"},
        "per": ["principal", "session"], "window": "1d", "sum": "action.attributes.amount_usd",
        "max": 250.5, "on_exceed": "require_approval", "approval": {"approvers": ["group:finance"]},
        "expose": true}]}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rule = &rules.limits[0];
    assert_eq!(rule.id, "spend");
    assert_eq!(rule.per, vec![Dim::Principal, Dim::Session]);
    assert_eq!(rule.window, Duration::from_secs(86_400));
    assert_eq!(rule.max, 250_500_000);
    assert_eq!(rule.max_display(), 250.5);
    assert!(rule.expose);
    assert!(matches!(rule.on_exceed, OnExceed::RequireApproval(Some(_))));
}

#[test]
fn refusals_name_the_rule_and_the_member() {
    let cases = [
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5, "burst": 1}]}),
            "rules[0] (`r`): unknown member `burst`",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "500ms", "max": 5}]}),
            "rules[0] (`r`): `window` must be from 1s to 30days",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "31d", "max": 5}]}),
            "`window` must be from",
        ),
        (
            json!({"rules": [{"id": "r", "window": "1m", "max": 5}]}),
            "`per` is missing",
        ),
        (
            json!({"rules": [{"id": "r", "per": ["agent", "tenant"], "window": "1m", "max": 5}]}),
            "`per` holds \"tenant\"",
        ),
        (
            json!({"rules": [{"id": "r", "per": ["agent", "agent"], "window": "1m", "max": 5}]}),
            "names `agent` twice",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 0}]}),
            "`max` must be above 0",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 1.5}]}),
            "`max` must be a whole number",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5, "sum": "amount"}]}),
            "`sum` `amount`",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5, "on_exceed": "warn"}]}),
            "`on_exceed` must be",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5, "approval": {"approvers": ["group:x"]}}]}),
            "`on_exceed` is not \"require_approval\"",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5, "match": {"action": "a*b"}}]}),
            "`match.action`",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5, "match": {"session": "s"}}]}),
            "`match` unknown member `session`",
        ),
        (
            json!({"rules": [{"id": "bad id", "per": "agent", "window": "1m", "max": 5}]}),
            "`id` must be",
        ),
        (
            json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": 5}, {"id": "r", "per": "agent", "window": "1m", "max": 5}]}),
            "rules[1] (`r`): another rule has this id",
        ),
        (
            json!({"tripwires": [{"id": "t", "per": ["resource"], "window": "1m", "threshold": 5, "switch": {"ttl": "1h"}}]}),
            "tripwires[0] (`t`): `per` names `resource`",
        ),
        (
            json!({"tripwires": [{"id": "t", "per": ["agent"], "window": "1m", "threshold": 5}]}),
            "`switch` is missing",
        ),
        (
            json!({"tripwires": [{"id": "t", "per": ["agent"], "window": "1m", "threshold": 5, "switch": {"ttl": "1h", "mode": "deny"}}]}),
            "`switch.mode`",
        ),
        (
            json!({"tripwires": [{"id": "t", "per": ["agent"], "window": "1m", "threshold": 5, "switch": {"ttl": "1h"}, "count": {"outcomes": ["maybe"]}}]}),
            "`count.outcomes` holds `maybe`",
        ),
        (
            json!({"rules": {}}),
            "data.warden.limits.rules: is not a list",
        ),
        (json!({"limits": []}), "unknown member `limits`"),
        (json!([]), "data.warden.limits: is not an object"),
    ];
    for (document, expected) in cases {
        let message = refused(document.clone());
        assert!(
            message.contains(expected),
            "{document}: `{message}` lacks `{expected}`"
        );
        assert!(message.starts_with("data.warden.limits"), "{message}");
    }
}

#[test]
fn outcomes_match_verdicts_and_reason_patterns() {
    let outcomes = Outcomes {
        verdicts: vec![VerdictName::Deny],
        reasons: vec!["principal_not_entitled".into(), "kill_switch:*".into()],
    };
    assert!(outcomes.counts("deny", &["x".into(), "principal_not_entitled".into()]));
    assert!(outcomes.counts("deny", &["kill_switch:abc".into()]));
    assert!(!outcomes.counts("allow", &["principal_not_entitled".into()]));
    assert!(!outcomes.counts("deny", &["principal_not_entitled_x".into()]));
    assert!(Outcomes::default().counts("require_approval", &[]));
}

#[test]
fn fingerprints_change_with_counting_not_with_presentation() {
    let rule = |max: u64, expose: bool| {
        parse(json!({"rules": [{"id": "r", "per": "agent", "window": "1m", "max": max, "expose": expose}]}))
            .map(|r| r.limits[0].fingerprint)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(rule(5, false), rule(5, true));
    assert_ne!(rule(5, false), rule(6, false));
}
