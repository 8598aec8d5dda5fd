//! Limits on the admin wire: the rules in force and the hottest keys as
//! messages, and reset requests checked against the active rules.

use std::collections::BTreeMap;

use tonic::Status;
use warden_proto::v1 as pb;

use super::status::invalid_field;
use crate::killswitch::spec::text_field;
use crate::limits::rules::{Match, VerdictName};
use crate::limits::{Dim, KeyUsage, LimitRule, OnExceed, RuleSet, Tripwire};

/// `ListLimits` returns at most this many keys.
pub const MAX_TOP: u32 = 1000;
const DEFAULT_TOP: u32 = 20;

pub fn top(requested: u32) -> usize {
    let top = match requested {
        0 => DEFAULT_TOP,
        n => n.min(MAX_TOP),
    };
    top as usize
}

/// Every rule of `rules`: limits first, then tripwires, in bundle order.
pub fn rules_to_proto(rules: &RuleSet) -> Vec<pb::LimitRuleInfo> {
    rules
        .limits
        .iter()
        .map(limit_info)
        .chain(rules.tripwires.iter().map(tripwire_info))
        .collect()
}

fn match_to_proto(matcher: &Match) -> pb::KillSwitchScope {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    pb::KillSwitchScope {
        platform: text(&matcher.platform),
        agent_id: text(&matcher.agent_id),
        principal_id: text(&matcher.principal_id),
        action: text(&matcher.action),
        resource_type: text(&matcher.resource_type),
        session_id: String::new(),
    }
}

fn per_names(per: &[Dim]) -> Vec<String> {
    per.iter().map(|d| d.as_str().to_owned()).collect()
}

fn limit_info(rule: &LimitRule) -> pb::LimitRuleInfo {
    pb::LimitRuleInfo {
        id: rule.id.clone(),
        kind: "limit".into(),
        r#match: Some(match_to_proto(&rule.matcher)),
        per: per_names(&rule.per),
        window_seconds: rule.window.as_secs(),
        max: rule.max_display(),
        sum: rule
            .sum
            .as_ref()
            .map(|path| path.as_str().to_owned())
            .unwrap_or_default(),
        on_exceed: match rule.on_exceed {
            OnExceed::Deny => "deny",
            OnExceed::RequireApproval(_) => "require_approval",
        }
        .into(),
        expose: rule.expose,
        ..pb::LimitRuleInfo::default()
    }
}

fn tripwire_info(rule: &Tripwire) -> pb::LimitRuleInfo {
    pb::LimitRuleInfo {
        id: rule.id.clone(),
        kind: "tripwire".into(),
        r#match: Some(match_to_proto(&rule.matcher)),
        per: per_names(&rule.per),
        window_seconds: rule.window.as_secs(),
        max: rule.threshold as f64,
        switch_mode: rule.mode.as_str().into(),
        switch_ttl_seconds: rule.ttl.as_secs(),
        count_outcomes: rule
            .outcomes
            .verdicts
            .iter()
            .map(|v| {
                match v {
                    VerdictName::Allow => "allow",
                    VerdictName::Deny => "deny",
                    VerdictName::RequireApproval => "require_approval",
                }
                .to_owned()
            })
            .collect(),
        count_reasons: rule.outcomes.reasons.clone(),
        ..pb::LimitRuleInfo::default()
    }
}

pub fn key_to_proto(usage: KeyUsage) -> pb::LimitKeyUsage {
    pb::LimitKeyUsage {
        rule: usage.rule,
        key: usage
            .key
            .into_iter()
            .map(|(dimension, value)| pb::LimitKeyPart { dimension, value })
            .collect(),
        used: usage.used,
        max: usage.max,
        tripwire: usage.tripwire,
        fired_switch_id: usage.fired.unwrap_or_default(),
    }
}

/// One line for `GetStatus`: `2 rules, 1 tripwire; 1234 keys of 1000000`.
pub fn summary(rules: &RuleSet, keys: usize, max_keys: usize) -> String {
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    format!(
        "{}, {}; {} of {max_keys}",
        plural(rules.limits.len(), "rule"),
        plural(rules.tripwires.len(), "tripwire"),
        plural(keys, "key")
    )
}

/// A reset, checked against the rules in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Reset {
    pub rule: String,
    /// In the rule's `per` order.
    pub key: Vec<(Dim, String)>,
    pub reason: String,
}

impl Reset {
    /// The key as the audit record names it: dimension to value.
    pub fn key_json(&self) -> serde_json::Value {
        let key: BTreeMap<&str, &str> = self
            .key
            .iter()
            .map(|(dim, value)| (dim.as_str(), value.as_str()))
            .collect();
        serde_json::json!(key)
    }
}

/// Why a reset request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("no rule `{0}` in the active bundle's data.warden.limits")]
    UnknownRule(String),
}

impl From<ResetError> for Status {
    fn from(error: ResetError) -> Self {
        match &error {
            ResetError::Invalid { field, reason } => {
                invalid_field(field, &error.to_string(), reason)
            }
            ResetError::UnknownRule(_) => Status::not_found(error.to_string()),
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ResetError {
    ResetError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks `request` against `rules`: the rule must be in force and every
/// dimension of the key one the rule counts by, or the reset would match
/// nothing and look like it worked.
pub fn reset_request(
    request: pb::ResetLimitKeyRequest,
    rules: &RuleSet,
) -> Result<Reset, ResetError> {
    if request.rule.is_empty() {
        return Err(invalid("rule", "is required"));
    }
    let reason =
        text_field("reason", request.reason, true).map_err(|e| invalid(e.field, e.reason))?;
    let per = rules
        .limits
        .iter()
        .find(|r| r.id == request.rule)
        .map(|r| r.per.as_slice())
        .or_else(|| {
            rules
                .tripwires
                .iter()
                .find(|r| r.id == request.rule)
                .map(|r| r.per.as_slice())
        })
        .ok_or_else(|| ResetError::UnknownRule(request.rule.clone()))?;
    let mut key = Vec::with_capacity(request.key.len());
    for (name, value) in request.key {
        let field = format!("key.{name}");
        let Some(dim) = per.iter().copied().find(|d| d.as_str() == name) else {
            let names: Vec<&str> = per.iter().map(|d| d.as_str()).collect();
            return Err(invalid(
                field,
                format!(
                    "rule `{}` counts by {}, not `{name}`",
                    request.rule,
                    names.join(", ")
                ),
            ));
        };
        if value.is_empty() {
            return Err(invalid(field, "must not be empty"));
        }
        key.push((dim, value));
    }
    key.sort_by_key(|(dim, _)| per.iter().position(|d| d == dim));
    Ok(Reset {
        rule: request.rule,
        key,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> RuleSet {
        RuleSet::from_limits(&json!({
            "rules": [{"id": "reads", "match": {"action": "documents.read"},
                       "per": ["agent", "principal"], "window": "1h", "max": 3}],
            "tripwires": [{"id": "denials", "per": ["agent"], "window": "5m", "threshold": 30,
                           "count": {"outcomes": ["deny"], "reasons": ["principal_not_entitled"]},
                           "switch": {"mode": "deny_all", "ttl": "1h"}}]
        }))
        .unwrap()
    }

    fn request(rule: &str, key: &[(&str, &str)], reason: &str) -> pb::ResetLimitKeyRequest {
        pb::ResetLimitKeyRequest {
            rule: rule.into(),
            key: key
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            reason: reason.into(),
        }
    }

    fn field(error: ResetError) -> String {
        match error {
            ResetError::Invalid { field, .. } => field,
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn a_reset_names_a_rule_in_force_and_only_its_dimensions() {
        let rules = rules();
        let reset = reset_request(
            request("reads", &[("principal", "user:p"), ("agent", "a")], "x"),
            &rules,
        )
        .unwrap();
        // In `per` order whatever order the map gave.
        assert_eq!(
            reset.key,
            vec![
                (Dim::Agent, "a".to_owned()),
                (Dim::Principal, "user:p".to_owned())
            ]
        );
        assert_eq!(
            reset.key_json(),
            json!({"agent": "a", "principal": "user:p"})
        );
        // Empty key: every key of the rule; tripwires can be reset too.
        assert!(
            reset_request(request("denials", &[], "x"), &rules)
                .unwrap()
                .key
                .is_empty()
        );

        assert_eq!(
            reset_request(request("nope", &[], "x"), &rules),
            Err(ResetError::UnknownRule("nope".into()))
        );
        assert_eq!(
            field(reset_request(request("", &[], "x"), &rules).unwrap_err()),
            "rule"
        );
        assert_eq!(
            field(reset_request(request("reads", &[], " "), &rules).unwrap_err()),
            "reason"
        );
        assert_eq!(
            field(reset_request(request("reads", &[("session", "s")], "x"), &rules).unwrap_err()),
            "key.session"
        );
        assert_eq!(
            field(
                reset_request(request("denials", &[("principal", "p")], "x"), &rules).unwrap_err()
            ),
            "key.principal"
        );
        assert_eq!(
            field(reset_request(request("reads", &[("agent", "")], "x"), &rules).unwrap_err()),
            "key.agent"
        );
        let status = Status::from(
            reset_request(request("reads", &[("bogus", "v")], "x"), &rules).unwrap_err(),
        );
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("key.bogus"),
            "{}",
            status.message()
        );
        let status = Status::from(reset_request(request("nope", &[], "x"), &rules).unwrap_err());
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[test]
    fn rules_and_status_read_as_the_bundle_wrote_them() {
        let rules = rules();
        let infos = rules_to_proto(&rules);
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].kind, "limit");
        assert_eq!(infos[0].per, vec!["agent", "principal"]);
        assert_eq!(infos[0].window_seconds, 3600);
        assert_eq!(infos[0].max, 3.0);
        assert_eq!(infos[0].on_exceed, "deny");
        assert_eq!(
            infos[0].r#match.as_ref().map(|m| m.action.as_str()),
            Some("documents.read")
        );
        assert_eq!(infos[1].kind, "tripwire");
        assert_eq!(infos[1].max, 30.0);
        assert_eq!(infos[1].switch_mode, "deny_all");
        assert_eq!(infos[1].switch_ttl_seconds, 3600);
        assert_eq!(infos[1].count_outcomes, vec!["deny"]);
        assert_eq!(summary(&rules, 5, 100), "1 rule, 1 tripwire; 5 keys of 100");
        assert_eq!(
            summary(&RuleSet::default(), 0, 10),
            "0 rules, 0 tripwires; 0 keys of 10"
        );
        assert_eq!(top(0), 20);
        assert_eq!(top(5000), 1000);
    }
}
