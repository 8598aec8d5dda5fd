//! `data.warden.limits`: the limit and tripwire rules a bundle declares,
//! validated when the bundle is pushed so that a bad rule never becomes
//! active.
//!
//! ```json
//! {"rules": [{"id": "doc-reads", "match": {"action": "documents.read"},
//!             "per": ["agent", "principal"], "window": "1m", "max": 600}],
//!  "tripwires": [{"id": "entitlement-denials", "per": ["agent"], "window": "5m",
//!                 "count": {"outcomes": ["deny"], "reasons": ["principal_not_entitled"]},
//!                 "threshold": 30, "switch": {"mode": "deny_all", "ttl": "1h"}}]}
//! ```

use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::approval_requirement::{self, Requirement};
use crate::killswitch::{Mode, action_pattern_matches};
use crate::request::{CheckRequest, InputPath};

pub const MIN_WINDOW: Duration = Duration::from_secs(1);
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// More rules than this is a mistake in the bundle, not a policy.
pub const MAX_RULES: usize = 256;
/// Sums are kept in millionths, so that decimals add up exactly.
pub const SUM_SCALE: f64 = 1_000_000.0;
const MAX_ID_BYTES: usize = 128;

/// A refused rule, named the way the bundle wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RuleError {
    /// `data.warden.limits.rules[2] (doc-reads)`.
    pub path: String,
    pub reason: String,
}

/// What a rule counts by; the key is the check's values of these, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    Agent,
    Principal,
    Platform,
    Action,
    ResourceType,
    Resource,
    Session,
}

impl Dim {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "agent" => Dim::Agent,
            "principal" => Dim::Principal,
            "platform" => Dim::Platform,
            "action" => Dim::Action,
            "resource_type" => Dim::ResourceType,
            "resource" => Dim::Resource,
            "session" => Dim::Session,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Agent => "agent",
            Dim::Principal => "principal",
            Dim::Platform => "platform",
            Dim::Action => "action",
            Dim::ResourceType => "resource_type",
            Dim::Resource => "resource",
            Dim::Session => "session",
        }
    }
}

/// Which checks a rule applies to; the same fields and matching as a kill
/// switch's scope. `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub platform: Option<String>,
    pub agent_id: Option<String>,
    pub principal_id: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
}

impl Match {
    pub fn matches(&self, request: &CheckRequest) -> bool {
        let field = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        field(&self.platform, &request.platform)
            && field(&self.agent_id, &request.agent.id)
            && field(&self.principal_id, &request.principal.id)
            && field(&self.resource_type, &request.resource.kind)
            && self
                .action
                .as_deref()
                .is_none_or(|p| action_pattern_matches(p, &request.action.name))
    }
}

/// What a limit does to a check that would go over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnExceed {
    Deny,
    /// REQUIRE_APPROVAL; with a requirement, people can be asked.
    RequireApproval(Option<Requirement>),
}

/// A budget: at most `max` (decisions, or the sum of an input number) per
/// key within any `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    pub id: String,
    pub matcher: Match,
    pub per: Vec<Dim>,
    pub window: Duration,
    /// Decisions, or millionths of the summed value.
    pub max: u64,
    pub sum: Option<InputPath>,
    pub on_exceed: OnExceed,
    /// Allowed checks report the budget left.
    pub expose: bool,
    /// Changes when the rule's counting changes: counters kept under an
    /// older fingerprint start again.
    pub fingerprint: u64,
}

impl LimitRule {
    /// `max` as the bundle wrote it (a sum's in its own unit).
    pub fn max_display(&self) -> f64 {
        match self.sum {
            Some(_) => self.max as f64 / SUM_SCALE,
            None => self.max as f64,
        }
    }
}

/// Which decisions a tripwire counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Outcomes {
    /// Empty: any verdict.
    pub verdicts: Vec<VerdictName>,
    /// Empty: any reasons; else at least one reason matches one of these
    /// (a final `*` matches any suffix).
    pub reasons: Vec<String>,
}

/// `Verdict`, hashable for fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerdictName {
    Allow,
    Deny,
    RequireApproval,
}

impl VerdictName {
    /// From `Verdict::as_str`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(VerdictName::Allow),
            "deny" => Some(VerdictName::Deny),
            "require_approval" => Some(VerdictName::RequireApproval),
            _ => None,
        }
    }
}

impl Outcomes {
    /// `verdict`: `allow`, `deny` or `require_approval`.
    pub fn counts(&self, verdict: &str, reasons: &[String]) -> bool {
        (self.verdicts.is_empty()
            || VerdictName::parse(verdict).is_some_and(|v| self.verdicts.contains(&v)))
            && (self.reasons.is_empty()
                || reasons.iter().any(|reason| {
                    self.reasons
                        .iter()
                        .any(|p| action_pattern_matches(p, reason))
                }))
    }
}

/// Containment: when `threshold` counted decisions for one key fall
/// within `window`, a kill switch is engaged on that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripwire {
    pub id: String,
    pub matcher: Match,
    pub per: Vec<Dim>,
    pub window: Duration,
    pub threshold: u64,
    pub outcomes: Outcomes,
    pub mode: Mode,
    pub ttl: Duration,
    pub fingerprint: u64,
}

/// Every rule of the active bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub limits: Vec<LimitRule>,
    pub tripwires: Vec<Tripwire>,
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.tripwires.is_empty()
    }

    /// Reads `data.warden.limits` from the whole data document (absent: no
    /// rules).
    pub fn from_data(data: &Json) -> Result<Self, RuleError> {
        match data.get("warden").and_then(|w| w.get("limits")) {
            None => Ok(Self::default()),
            Some(document) => Self::from_limits(document),
        }
    }

    /// Reads the `data.warden.limits` document itself.
    pub fn from_limits(document: &Json) -> Result<Self, RuleError> {
        let root = "data.warden.limits";
        let Json::Object(document) = document else {
            return Err(error(root, "is not an object"));
        };
        for key in document.keys() {
            if key != "rules" && key != "tripwires" {
                return Err(error(
                    root,
                    format!("unknown member `{key}` (expected `rules`, `tripwires`)"),
                ));
            }
        }
        let list = |name: &str| -> Result<&[Json], RuleError> {
            match document.get(name) {
                None => Ok(&[]),
                Some(Json::Array(items)) if items.len() <= MAX_RULES => Ok(items),
                Some(Json::Array(_)) => Err(error(
                    &format!("{root}.{name}"),
                    format!("more than {MAX_RULES} rules"),
                )),
                Some(_) => Err(error(&format!("{root}.{name}"), "is not a list")),
            }
        };
        let mut set = RuleSet::default();
        let mut ids = std::collections::HashSet::new();
        for (index, item) in list("rules")?.iter().enumerate() {
            let rule = limit_rule(item).map_err(|reason| {
                error(&format!("{root}.rules[{index}]{}", named(item)), reason)
            })?;
            if !ids.insert(rule.id.clone()) {
                return Err(error(
                    &format!("{root}.rules[{index}]{}", named(item)),
                    "another rule has this id",
                ));
            }
            set.limits.push(rule);
        }
        for (index, item) in list("tripwires")?.iter().enumerate() {
            let rule = tripwire(item).map_err(|reason| {
                error(&format!("{root}.tripwires[{index}]{}", named(item)), reason)
            })?;
            if !ids.insert(rule.id.clone()) {
                return Err(error(
                    &format!("{root}.tripwires[{index}]{}", named(item)),
                    "another rule has this id",
                ));
            }
            set.tripwires.push(rule);
        }
        Ok(set)
    }
}

fn error(path: &str, reason: impl Into<String>) -> RuleError {
    RuleError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// ` (id)` for messages, when the item has a readable id.
fn named(item: &Json) -> String {
    match item.get("id").and_then(Json::as_str) {
        Some(id) if id.len() <= MAX_ID_BYTES => format!(" (`{id}`)"),
        _ => String::new(),
    }
}

type Fields<'a> = &'a Map<String, Json>;

fn object<'a>(item: &'a Json, allowed: &[&str]) -> Result<Fields<'a>, String> {
    let Json::Object(fields) = item else {
        return Err("is not an object".into());
    };
    for key in fields.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "unknown member `{key}` (expected one of {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(fields)
}

fn id(fields: Fields<'_>) -> Result<String, String> {
    match fields.get("id") {
        Some(Json::String(id))
            if !id.is_empty()
                && id.len() <= MAX_ID_BYTES
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            Ok(id.clone())
        }
        Some(_) => Err(format!(
            "`id` must be 1 to {MAX_ID_BYTES} letters, digits, `-`, `_` or `.`"
        )),
        None => Err("`id` is missing".into()),
    }
}

fn matcher(fields: Fields<'_>) -> Result<Match, String> {
    let Some(item) = fields.get("match") else {
        return Ok(Match::default());
    };
    let fields = object(
        item,
        &[
            "platform",
            "agent_id",
            "principal_id",
            "action",
            "resource_type",
        ],
    )
    .map_err(|e| format!("`match` {e}"))?;
    let text = |name: &str| -> Result<Option<String>, String> {
        match fields.get(name) {
            None => Ok(None),
            Some(Json::String(value)) if !value.is_empty() => Ok(Some(value.clone())),
            Some(_) => Err(format!("`match.{name}` must be a non-empty string")),
        }
    };
    let action = text("action")?;
    if let Some(action) = &action
        && action.trim_end_matches('*').contains('*')
    {
        return Err("`match.action` may hold `*` only at its end".into());
    }
    Ok(Match {
        platform: text("platform")?,
        agent_id: text("agent_id")?,
        principal_id: text("principal_id")?,
        action,
        resource_type: text("resource_type")?,
    })
}

fn per(fields: Fields<'_>) -> Result<Vec<Dim>, String> {
    let items: Vec<&Json> = match fields.get("per") {
        Some(Json::Array(items)) => items.iter().collect(),
        Some(one @ Json::String(_)) => vec![one],
        Some(_) => return Err("`per` must be a non-empty list of dimensions".into()),
        None => return Err("`per` is missing".into()),
    };
    let mut dims = Vec::with_capacity(items.len());
    for item in items {
        let dim = item.as_str().and_then(Dim::parse).ok_or_else(|| {
            format!(
                "`per` holds {item}; expected agent, principal, platform, action, \
                 resource_type, resource or session"
            )
        })?;
        if dims.contains(&dim) {
            return Err(format!("`per` names `{}` twice", dim.as_str()));
        }
        dims.push(dim);
    }
    if dims.is_empty() {
        return Err("`per` must be a non-empty list of dimensions".into());
    }
    Ok(dims)
}

fn duration(
    fields: Fields<'_>,
    name: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, String> {
    let text = match fields.get(name) {
        Some(Json::String(text)) => text,
        Some(_) => return Err(format!("`{name}` must be a duration string such as \"5m\"")),
        None => return Err(format!("`{name}` is missing")),
    };
    let value = humantime::parse_duration(text)
        .map_err(|e| format!("`{name}` `{text}` is not a duration: {e}"))?;
    if value < min || value > max {
        return Err(format!(
            "`{name}` must be from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(value)
}

fn positive_number(fields: Fields<'_>, name: &str) -> Result<f64, String> {
    match fields.get(name).and_then(Json::as_f64) {
        Some(n) if n.is_finite() && n > 0.0 => Ok(n),
        Some(_) => Err(format!("`{name}` must be above 0")),
        None if fields.contains_key(name) => Err(format!("`{name}` must be a number")),
        None => Err(format!("`{name}` is missing")),
    }
}

fn whole(value: f64, name: &str) -> Result<u64, String> {
    if value.fract() != 0.0 || value > 1e15 {
        return Err(format!("`{name}` must be a whole number up to 10^15"));
    }
    Ok(value as u64)
}

fn limit_rule(item: &Json) -> Result<LimitRule, String> {
    let fields = object(
        item,
        &[
            "id",
            "match",
            "per",
            "window",
            "max",
            "sum",
            "on_exceed",
            "expose",
            "approval",
        ],
    )?;
    let id = id(fields)?;
    let matcher = matcher(fields)?;
    let per = per(fields)?;
    let window = duration(fields, "window", MIN_WINDOW, MAX_WINDOW)?;
    let max = positive_number(fields, "max")?;
    let sum = match fields.get("sum") {
        None => None,
        Some(Json::String(path)) => Some(
            path.parse::<InputPath>()
                .map_err(|e| format!("`sum` `{path}`: {e}"))?,
        ),
        Some(_) => {
            return Err(
                "`sum` must be an input path such as \"action.attributes.amount_usd\"".into(),
            );
        }
    };
    let max = match sum {
        Some(_) if max * SUM_SCALE > 1e18 => return Err("`max` is too large".into()),
        Some(_) => (max * SUM_SCALE).round() as u64,
        None => whole(max, "max")?,
    };
    let approval = match fields.get("approval") {
        None => None,
        Some(value) => Some(approval_requirement::parse(value)?),
    };
    let on_exceed = match fields.get("on_exceed").map(|v| v.as_str()) {
        None | Some(Some("deny")) if approval.is_none() => OnExceed::Deny,
        None | Some(Some("deny")) => {
            return Err("`approval` is set but `on_exceed` is not \"require_approval\"".into());
        }
        Some(Some("require_approval")) => OnExceed::RequireApproval(approval),
        Some(_) => return Err("`on_exceed` must be \"deny\" or \"require_approval\"".into()),
    };
    let expose = match fields.get("expose") {
        None => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err("`expose` must be a boolean".into()),
    };
    let fingerprint = fingerprint(&(
        "limit",
        &matcher,
        &per,
        window,
        max,
        sum.as_ref().map(InputPath::as_str),
    ));
    Ok(LimitRule {
        id,
        matcher,
        per,
        window,
        max,
        sum,
        on_exceed,
        expose,
        fingerprint,
    })
}

fn tripwire(item: &Json) -> Result<Tripwire, String> {
    let fields = object(
        item,
        &[
            "id",
            "match",
            "per",
            "window",
            "threshold",
            "count",
            "switch",
        ],
    )?;
    let id = id(fields)?;
    let matcher = matcher(fields)?;
    let per = per(fields)?;
    if let Some(dim) = per.iter().find(|d| matches!(d, Dim::Resource)) {
        return Err(format!(
            "`per` names `{}`: a kill switch cannot be scoped to one resource",
            dim.as_str()
        ));
    }
    let window = duration(fields, "window", MIN_WINDOW, MAX_WINDOW)?;
    let threshold = whole(positive_number(fields, "threshold")?, "threshold")?;
    let outcomes = match fields.get("count") {
        None => Outcomes::default(),
        Some(count) => {
            let count =
                object(count, &["outcomes", "reasons"]).map_err(|e| format!("`count` {e}"))?;
            let strings = |name: &str| -> Result<Vec<String>, String> {
                match count.get(name) {
                    None => Ok(Vec::new()),
                    Some(Json::Array(items)) => items
                        .iter()
                        .map(|item| match item {
                            Json::String(s) if !s.is_empty() => Ok(s.clone()),
                            _ => Err(format!("`count.{name}` must hold non-empty strings")),
                        })
                        .collect(),
                    Some(_) => Err(format!("`count.{name}` must be a list")),
                }
            };
            let verdicts = strings("outcomes")?
                .iter()
                .map(|name| {
                    VerdictName::parse(name).ok_or_else(|| {
                        format!(
                            "`count.outcomes` holds `{name}`; expected allow, deny or require_approval"
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Outcomes {
                verdicts,
                reasons: strings("reasons")?,
            }
        }
    };
    let (mode, ttl) = match fields.get("switch") {
        None => {
            return Err("`switch` is missing (`{\"mode\": \"deny_all\", \"ttl\": \"1h\"}`)".into());
        }
        Some(switch) => {
            let switch = object(switch, &["mode", "ttl"]).map_err(|e| format!("`switch` {e}"))?;
            let mode = match switch.get("mode").map(|m| m.as_str()) {
                None | Some(Some("deny_all")) => Mode::DenyAll,
                Some(Some("deny_mutating")) => Mode::DenyMutating,
                Some(_) => {
                    return Err("`switch.mode` must be \"deny_all\" or \"deny_mutating\"".into());
                }
            };
            let ttl = duration(switch, "ttl", MIN_WINDOW, MAX_WINDOW)
                .map_err(|e| e.replace("`ttl`", "`switch.ttl`"))?;
            (mode, ttl)
        }
    };
    let fingerprint = fingerprint(&("tripwire", &matcher, &per, window, threshold, &outcomes));
    Ok(Tripwire {
        id,
        matcher,
        per,
        window,
        threshold,
        outcomes,
        mode,
        ttl,
        fingerprint,
    })
}

fn fingerprint(value: &impl Hash) -> u64 {
    // Stable across restarts within one build, which is all persisted
    // counters need: a different build may reset them, never mix them.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
