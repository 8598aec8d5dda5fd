//! The policy's `approval` member: who may approve a REQUIRE_APPROVAL
//! decision, for how long and how many times. Parsed strictly: an unknown
//! key or a bad value makes the decision a DENY (`invalid_decision`), so a
//! typo in a policy never loosens who may approve.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The most approvers one requirement may list.
pub const MAX_APPROVERS: usize = 64;
/// The most uses one approval may give.
pub const MAX_USES: u32 = 100;
const MAX_ID_BYTES: usize = 256;
const MAX_TEMPLATE_BYTES: usize = 256;
/// `max_ttl` when the policy names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The longest validity a policy may allow.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// One entry of `approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Approver {
    Group(String),
    User(String),
}

impl Approver {
    fn parse(text: &str) -> Result<Self, String> {
        let (kind, id) = text
            .split_once(':')
            .ok_or_else(|| format!("approver `{text}` is not `group:<id>` or `user:<id>`"))?;
        if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
            return Err(format!(
                "approver `{text}` has an empty, long or invalid id"
            ));
        }
        match kind {
            "group" => Ok(Approver::Group(id.to_owned())),
            "user" => Ok(Approver::User(id.to_owned())),
            _ => Err(format!(
                "approver `{text}` is not `group:<id>` or `user:<id>`"
            )),
        }
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approver::Group(id) => write!(f, "group:{id}"),
            Approver::User(id) => write!(f, "user:{id}"),
        }
    }
}

/// The `approval` member, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub approvers: Vec<Approver>,
    /// Whether the principal may approve their own agent's action.
    #[serde(rename = "self")]
    pub self_approval: bool,
    pub max_ttl: Duration,
    pub uses: u32,
    pub template: String,
}

/// Reads the member; the error is the DENY reason's detail.
pub fn parse(value: &Json) -> Result<Requirement, String> {
    let Json::Object(object) = value else {
        return Err("`approval` is not an object".into());
    };
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "approvers" | "self" | "max_ttl" | "uses" | "template"
        ) {
            return Err(format!("`approval` has an unknown member `{key}`"));
        }
    }
    let approvers = match object.get("approvers") {
        None => Vec::new(),
        Some(Json::Array(items)) => {
            if items.len() > MAX_APPROVERS {
                return Err(format!(
                    "`approval.approvers` lists more than {MAX_APPROVERS}"
                ));
            }
            items
                .iter()
                .map(|item| match item {
                    Json::String(text) => Approver::parse(text),
                    _ => Err("`approval.approvers` holds a value that is not a string".into()),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err("`approval.approvers` is not a list".into()),
    };
    let self_approval = match object.get("self") {
        None => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err("`approval.self` is not a boolean".into()),
    };
    if approvers.is_empty() && !self_approval {
        return Err("`approval` names no approvers and `self` is not true".into());
    }
    let max_ttl = match object.get("max_ttl") {
        None => DEFAULT_TTL,
        Some(Json::String(text)) => {
            let ttl = humantime::parse_duration(text)
                .map_err(|e| format!("`approval.max_ttl` `{text}` is not a duration: {e}"))?;
            if ttl.is_zero() || ttl > MAX_TTL {
                return Err(format!(
                    "`approval.max_ttl` must be above 0 and at most {}",
                    humantime::format_duration(MAX_TTL)
                ));
            }
            ttl
        }
        Some(_) => return Err("`approval.max_ttl` is not a string".into()),
    };
    let uses = match object.get("uses") {
        None => 1,
        Some(Json::Number(n)) => match n.as_u64() {
            Some(n @ 1..) if n <= u64::from(MAX_USES) => n as u32,
            _ => return Err(format!("`approval.uses` must be an integer 1..={MAX_USES}")),
        },
        Some(_) => return Err("`approval.uses` is not a number".into()),
    };
    let template = match object.get("template") {
        None => String::new(),
        Some(Json::String(text))
            if text.len() <= MAX_TEMPLATE_BYTES
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) =>
        {
            text.clone()
        }
        Some(_) => {
            return Err(
                "`approval.template` is not a short name of letters, digits, `_`, `.`, `-`".into(),
            );
        }
    };
    Ok(Requirement {
        approvers,
        self_approval,
        max_ttl,
        uses,
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_documented_member() {
        let r = parse(
            &json!({"approvers": ["group:security", "user:ana"], "self": false,
            "max_ttl": "1h", "uses": 2, "template": "acl_change"}),
        )
        .unwrap();
        assert_eq!(
            r.approvers,
            vec![
                Approver::Group("security".into()),
                Approver::User("ana".into())
            ]
        );
        assert!(!r.self_approval);
        assert_eq!((r.max_ttl, r.uses), (Duration::from_secs(3600), 2));
        let r = parse(&json!({"self": true})).unwrap();
        assert_eq!((r.uses, r.max_ttl, r.self_approval), (1, DEFAULT_TTL, true));
    }

    #[test]
    fn refuses_every_bad_shape() {
        for bad in [
            json!("group:security"),
            json!({}),
            json!({"approvers": []}),
            json!({"approvers": "group:x"}),
            json!({"approvers": [1]}),
            json!({"approvers": ["team:x"]}),
            json!({"approvers": ["group:"]}),
            json!({"approvers": ["group:x"], "self": "no"}),
            json!({"approvers": ["group:x"], "max_ttl": 3600}),
            json!({"approvers": ["group:x"], "max_ttl": "soon"}),
            json!({"approvers": ["group:x"], "max_ttl": "0s"}),
            json!({"approvers": ["group:x"], "max_ttl": "400d"}),
            json!({"approvers": ["group:x"], "uses": 0}),
            json!({"approvers": ["group:x"], "uses": 1.5}),
            json!({"approvers": ["group:x"], "uses": 101}),
            json!({"approvers": ["group:x"], "template": "a b"}),
            json!({"approvers": ["group:x"], "approver": ["user:typo"]}),
        ] {
            assert!(parse(&bad).is_err(), "{bad} was accepted");
        }
    }
}
