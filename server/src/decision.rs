//! The decision core: a synchronous function of a validated request and one
//! generation. No I/O, no async, no locks; the server wraps it, and tests and
//! benches call it directly.

use std::time::SystemTime;

use serde_json::Value as Json;

use crate::approval_requirement::{self, Requirement};
use crate::engine::{BoundPolicy, EvalError};
use crate::generation::Generation;
use crate::killswitch::{Hit, Scope, SwitchIndex, unix_ms};
use crate::limits::{OnExceed, Refusal};
use crate::request::CheckRequest;
use crate::snapshot::SnapshotKind;

/// The three answers a check can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    Deny,
    RequireApproval,
}

impl Verdict {
    /// Reads `as_str`'s names back.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(Verdict::Allow),
            "deny" => Some(Verdict::Deny),
            "require_approval" => Some(Verdict::RequireApproval),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::RequireApproval => "require_approval",
        }
    }
}

/// Which stage settled the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// An engaged kill switch matched, or the switch state is unknown; the
    /// policy was not consulted.
    KillSwitch,
    /// A snapshot was older than its `max_age`; the policy was not consulted.
    Staleness,
    /// The policy decided (or failed, and the check was denied).
    Policy,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// Machine-readable reasons; never empty for a DENY.
    pub reasons: Vec<String>,
    pub stage: Stage,
    /// What the shadow bundle said, when one is set and the policy ran.
    pub shadow: Option<ShadowOutcome>,
    /// The switch that denied the check.
    pub kill_switch: Option<SwitchMatch>,
    /// REQUIRE_APPROVAL: who may approve, when the policy said.
    pub approval: Option<Requirement>,
    /// DENY for the audience: who in it lacks access, as the policy said.
    pub audience: Option<AudienceGap>,
}

/// The policy's `audience` member: who in a check's audience may not read
/// what it discloses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceGap {
    pub members: u32,
    pub lacking_count: u32,
    /// `user:ID`, at most `AUDIENCE_SAMPLE`.
    pub lacking: Vec<String>,
}

/// Most lacking members a response and an audit record name.
pub const AUDIENCE_SAMPLE: usize = 10;

impl AudienceGap {
    /// Reads the member; a malformed one is the policy's error.
    fn parse(value: &Json) -> Result<Self, String> {
        let count = |name: &str| {
            value
                .get(name)
                .and_then(Json::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("`audience.{name}` is not a count"))
        };
        let lacking = match value.get("lacking") {
            Some(Json::Array(items)) => items
                .iter()
                .take(AUDIENCE_SAMPLE)
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        "`audience.lacking` holds a value that is not a string".to_owned()
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("`audience.lacking` is not a list".into()),
        };
        Ok(Self {
            members: count("members")?,
            lacking_count: count("lacking_count")?,
            lacking,
        })
    }
}

/// The kill switch that decided a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchMatch {
    pub id: String,
    pub scope: Scope,
}

/// The shadow bundle's answer to the same check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowOutcome {
    pub revision: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// Whether it differs from the active bundle's verdict or reasons.
    pub diverged: bool,
}

impl Decision {
    /// A decision read back from an audit record.
    pub fn recorded(verdict: Verdict, reasons: Vec<String>) -> Self {
        Self {
            verdict,
            reasons,
            stage: Stage::Policy,
            shadow: None,
            kill_switch: None,
            approval: None,
            audience: None,
        }
    }

    fn deny(reason: impl Into<String>, stage: Stage) -> Self {
        Self {
            verdict: Verdict::Deny,
            reasons: vec![reason.into()],
            stage,
            shadow: None,
            kill_switch: None,
            approval: None,
            audience: None,
        }
    }
}

/// Decides `request` against `generation` at time `now`, in DESIGN's order:
/// kill switches, stale data, then the policy. Anything but a clear ALLOW or
/// REQUIRE_APPROVAL from the policy is a DENY.
pub fn decide(
    request: &CheckRequest,
    generation: &Generation,
    switches: &SwitchIndex,
    now: SystemTime,
) -> Decision {
    match switches.check(request, unix_ms(now)) {
        None => {}
        Some(Hit::Switch(switch)) => {
            return Decision {
                verdict: Verdict::Deny,
                reasons: vec![format!("kill_switch:{}", switch.id), switch.reason.clone()],
                stage: Stage::KillSwitch,
                shadow: None,
                kill_switch: Some(SwitchMatch {
                    id: switch.id.clone(),
                    scope: switch.scope.clone(),
                }),
                approval: None,
                audience: None,
            };
        }
        Some(Hit::Unavailable(_)) => {
            return Decision::deny("kill_switch_state_unavailable", Stage::KillSwitch);
        }
    }
    for kind in SnapshotKind::ALL {
        if let Some(max_age) = generation.max_age.of(kind)
            && generation.snapshot(kind).age(now) > max_age
        {
            return Decision::deny(format!("stale_snapshot:{kind}"), Stage::Staleness);
        }
    }
    let mut decision = evaluate(generation.policy(), request);
    if let Some((policy, bound)) = generation.shadow() {
        let shadow = evaluate(bound, request);
        decision.shadow = Some(ShadowOutcome {
            revision: policy.revision.clone(),
            diverged: shadow.verdict != decision.verdict || shadow.reasons != decision.reasons,
            verdict: shadow.verdict,
            reasons: shadow.reasons,
        });
    }
    decision
}

/// What `generation`'s policy alone decides: no kill switch, no staleness,
/// no shadow. Replay judges a bundle with it.
pub fn policy_decision(request: &CheckRequest, generation: &Generation) -> Decision {
    evaluate(generation.policy(), request)
}

fn evaluate(policy: &dyn BoundPolicy, request: &CheckRequest) -> Decision {
    match policy.evaluate(request) {
        Ok(value) => interpret(value.as_ref()),
        Err(EvalError::Timeout(_)) => Decision::deny("evaluation_timeout", Stage::Policy),
        Err(EvalError::Failed(message)) => {
            Decision::deny(format!("evaluation_error: {message}"), Stage::Policy)
        }
    }
}

/// Reads the entrypoint's value as DESIGN defines it:
/// - `true`, or an object with `allow: true` and no `require_approval: true`: ALLOW;
/// - an object with `require_approval: true` (and `allow` not `false`): REQUIRE_APPROVAL;
/// - anything else, including undefined and malformed objects: DENY.
///
/// An explicit `allow: false` wins over `require_approval: true`: asking a
/// person to approve what the policy refused would weaken it.
pub fn interpret(value: Option<&Json>) -> Decision {
    let deny = |reason: &str| Decision::deny(reason, Stage::Policy);
    let Some(value) = value else {
        return deny("undefined_decision");
    };
    let object = match value {
        Json::Bool(true) => {
            return Decision {
                verdict: Verdict::Allow,
                reasons: Vec::new(),
                stage: Stage::Policy,
                shadow: None,
                kill_switch: None,
                approval: None,
                audience: None,
            };
        }
        Json::Bool(false) => return deny("denied_by_policy"),
        Json::Object(object) => object,
        _ => return deny("invalid_decision: expected a boolean or an object"),
    };

    let flag = |name: &str| match object.get(name) {
        None => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("invalid_decision: `{name}` is not a boolean")),
    };
    let allow = match flag("allow") {
        Ok(allow) => allow,
        Err(reason) => return deny(&reason),
    };
    let require_approval = match flag("require_approval") {
        Ok(flag) => flag,
        Err(reason) => return deny(&reason),
    };
    let reasons = match object.get("reasons") {
        None => Vec::new(),
        Some(Json::Array(items)) => {
            let mut reasons = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Json::String(reason) => reasons.push(reason.clone()),
                    _ => {
                        return deny(
                            "invalid_decision: `reasons` holds a value that is not a string",
                        );
                    }
                }
            }
            reasons
        }
        Some(_) => return deny("invalid_decision: `reasons` is not a list"),
    };

    // Validated whatever the verdict, like `reasons`: a policy whose member
    // is malformed is wrong everywhere, not only where it would matter.
    let approval = match object.get("approval") {
        None => None,
        Some(value) => match approval_requirement::parse(value) {
            Ok(requirement) => Some(requirement),
            Err(why) => return deny(&format!("invalid_decision: {why}")),
        },
    };
    let audience = match object.get("audience") {
        None => None,
        Some(value) => match AudienceGap::parse(value) {
            Ok(gap) => Some(gap),
            Err(why) => return deny(&format!("invalid_decision: {why}")),
        },
    };
    let verdict = match (allow, require_approval) {
        (Some(false), _) => Verdict::Deny,
        (_, Some(true)) => Verdict::RequireApproval,
        (Some(true), _) => Verdict::Allow,
        (None, _) => Verdict::Deny,
    };
    let mut decision = Decision {
        verdict,
        reasons,
        stage: Stage::Policy,
        shadow: None,
        kill_switch: None,
        approval: approval.filter(|_| verdict == Verdict::RequireApproval),
        audience: audience.filter(|_| verdict == Verdict::Deny),
    };
    if verdict == Verdict::Deny && decision.reasons.is_empty() {
        decision.reasons.push("denied_by_policy".into());
    }
    decision
}

/// Turns a check the policy allowed into a limit's refusal: DENY, or
/// REQUIRE_APPROVAL (with the rule's approvers, when it names them).
pub fn refuse(decision: &mut Decision, refusal: &Refusal) {
    let ask = refusal.reason.starts_with("limit_exceeded:");
    match &refusal.on_exceed {
        OnExceed::RequireApproval(requirement) if ask => {
            decision.verdict = Verdict::RequireApproval;
            decision.approval = requirement.clone();
        }
        _ => {
            decision.verdict = Verdict::Deny;
            decision.approval = None;
        }
    }
    decision.reasons = vec![refusal.reason.clone()];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verdict(value: Json) -> (Verdict, Vec<String>) {
        let d = interpret(Some(&value));
        (d.verdict, d.reasons)
    }

    #[test]
    fn reads_every_shape_design_defines() {
        assert_eq!(verdict(json!(true)), (Verdict::Allow, vec![]));
        assert_eq!(verdict(json!({"allow": true})), (Verdict::Allow, vec![]));
        assert_eq!(
            verdict(json!({"allow": true, "require_approval": false, "reasons": ["ok"]})),
            (Verdict::Allow, vec!["ok".into()])
        );
        assert_eq!(
            verdict(json!({"require_approval": true})).0,
            Verdict::RequireApproval
        );
        assert_eq!(
            verdict(
                json!({"allow": true, "require_approval": true, "reasons": ["sensitive_action"]})
            ),
            (Verdict::RequireApproval, vec!["sensitive_action".into()])
        );
    }

    #[test]
    fn reads_the_approval_member_of_a_require_approval() {
        let d = interpret(Some(&json!({"allow": true, "require_approval": true,
            "reasons": ["sensitive_action"],
            "approval": {"approvers": ["group:security"], "self": false, "max_ttl": "1h", "uses": 1,
                "template": "acl_change"}})));
        assert_eq!(d.verdict, Verdict::RequireApproval);
        let approval = d.approval.unwrap();
        assert_eq!(approval.template, "acl_change");
        // Only a REQUIRE_APPROVAL carries it on.
        let d = interpret(Some(&json!({"allow": true, "approval": {"self": true}})));
        assert_eq!((d.verdict, d.approval), (Verdict::Allow, None));
    }

    #[test]
    fn everything_else_denies_with_a_reason() {
        assert_eq!(
            verdict(json!(false)),
            (Verdict::Deny, vec!["denied_by_policy".into()])
        );
        assert_eq!(
            verdict(json!({})),
            (Verdict::Deny, vec!["denied_by_policy".into()])
        );
        assert_eq!(
            verdict(json!({"allow": false, "require_approval": true, "reasons": ["x"]})),
            (Verdict::Deny, vec!["x".into()])
        );
        assert_eq!(verdict(json!({"allow": "yes"})).0, Verdict::Deny);
        assert_eq!(
            verdict(json!({"allow": true, "reasons": "x"})).0,
            Verdict::Deny
        );
        assert_eq!(
            verdict(json!({"allow": true, "reasons": [1]})).0,
            Verdict::Deny
        );
        assert_eq!(verdict(json!({"allow": 1})).0, Verdict::Deny);
        assert_eq!(verdict(json!("allow")).0, Verdict::Deny);
        assert_eq!(verdict(json!(null)).0, Verdict::Deny);
        assert_eq!(verdict(json!([true])).0, Verdict::Deny);
        assert_eq!(
            verdict(
                json!({"allow": true, "require_approval": true, "approval": {"approvers": "x"}})
            ),
            (
                Verdict::Deny,
                vec!["invalid_decision: `approval.approvers` is not a list".into()]
            )
        );
        assert_eq!(
            verdict(json!({"allow": true, "approval": {"self": true, "typo": 1}})).0,
            Verdict::Deny
        );
        let undefined = interpret(None);
        assert_eq!(
            (undefined.verdict, undefined.reasons),
            (Verdict::Deny, vec!["undefined_decision".into()])
        );
    }
}
