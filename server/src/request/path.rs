//! Dotted paths into a check's input (`context.session_id`,
//! `action.attributes.amount_usd`), parsed once from configuration or
//! policy data and then resolved against every check without allocating.

use std::fmt;
use std::str::FromStr;

use serde_json::Value as Json;

use super::{Attributes, CheckRequest};

/// The path `[limits] session_path` defaults to.
pub const DEFAULT_SESSION_PATH: &str = "context.session_id";

/// The plain fields a path may name, as written.
const FIELDS: [(&str, Field); 7] = [
    ("platform", Field::Platform),
    ("agent.id", Field::AgentId),
    ("principal.id", Field::PrincipalId),
    ("principal.type", Field::PrincipalType),
    ("action.name", Field::ActionName),
    ("resource.type", Field::ResourceType),
    ("resource.id", Field::ResourceId),
];

/// The attribute maps a path may walk into, with the prefix that names them.
const ROOTS: [(&str, Root); 5] = [
    ("context", Root::Context),
    ("agent.attributes", Root::Agent),
    ("principal.attributes", Root::Principal),
    ("action.attributes", Root::Action),
    ("resource.attributes", Root::Resource),
];

/// Why a path was refused; the message quotes the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("`{0}` has an empty segment")]
    EmptySegment(String),
    #[error("`{0}` names no key under `{1}`; add one, such as `{1}.key`")]
    NoKey(String, &'static str),
    #[error(
        "`{0}` is not an input path: expected `context.<key>`, `agent.attributes.<key>`, \
         `principal.attributes.<key>`, `action.attributes.<key>`, \
         `resource.attributes.<key>`, or one of `platform`, `agent.id`, `principal.id`, \
         `principal.type`, `action.name`, `resource.type`, `resource.id`"
    )]
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Platform,
    AgentId,
    PrincipalId,
    PrincipalType,
    ActionName,
    ResourceType,
    ResourceId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Context,
    Agent,
    Principal,
    Action,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Field(Field),
    /// Object keys walked from `root`, at least one.
    Attribute {
        root: Root,
        keys: Box<[Box<str>]>,
    },
}

/// A validated path into a check's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPath {
    text: Box<str>,
    target: Target,
}

/// What a path found in a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PathValue<'a> {
    /// A plain field (`agent.id`).
    Str(&'a str),
    /// An attribute or context value.
    Json(&'a Json),
}

impl<'a> PathValue<'a> {
    /// The value as text: a plain field, or a JSON string.
    pub fn as_text(&self) -> Option<&'a str> {
        match *self {
            PathValue::Str(text) => Some(text),
            PathValue::Json(value) => value.as_str(),
        }
    }

    /// The value as a number: only a JSON number, so that `"12"` in an
    /// attribute is never counted as 12.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            PathValue::Str(_) => None,
            PathValue::Json(value) => value.as_number().and_then(serde_json::Number::as_f64),
        }
    }
}

impl InputPath {
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.split('.').any(str::is_empty) {
            return Err(PathError::EmptySegment(text.to_owned()));
        }
        let target = if let Some((_, field)) = FIELDS.iter().find(|(name, _)| *name == text) {
            Target::Field(*field)
        } else {
            let Some((prefix, root, rest)) = ROOTS.iter().find_map(|(prefix, root)| {
                let rest = text.strip_prefix(prefix)?;
                // `contextual.x` is not under `context`.
                (rest.is_empty() || rest.starts_with('.')).then_some((*prefix, *root, rest))
            }) else {
                return Err(PathError::Unknown(text.to_owned()));
            };
            let Some(rest) = rest.strip_prefix('.') else {
                return Err(PathError::NoKey(text.to_owned(), prefix));
            };
            Target::Attribute {
                root,
                keys: rest.split('.').map(Box::from).collect(),
            }
        };
        Ok(Self {
            text: text.into(),
            target,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the path names in `request`, if it is there. Arrays are not
    /// indexed: a key under a list finds nothing.
    pub fn get<'a>(&self, request: &'a CheckRequest) -> Option<PathValue<'a>> {
        match &self.target {
            Target::Field(field) => match field {
                Field::Platform => Some(request.platform.as_str()),
                Field::AgentId => Some(request.agent.id.as_str()),
                Field::PrincipalId => Some(request.principal.id.as_str()),
                Field::PrincipalType => request.principal.kind.as_deref(),
                Field::ActionName => Some(request.action.name.as_str()),
                Field::ResourceType => Some(request.resource.kind.as_str()),
                Field::ResourceId => request.resource.id.as_deref(),
            }
            .map(PathValue::Str),
            Target::Attribute { root, keys } => {
                let map: &Attributes = match root {
                    Root::Context => &request.context,
                    Root::Agent => &request.agent.attributes,
                    Root::Principal => &request.principal.attributes,
                    Root::Action => &request.action.attributes,
                    Root::Resource => &request.resource.attributes,
                };
                let (first, rest) = keys.split_first()?;
                let mut value = map.get(first.as_ref())?;
                for key in rest {
                    value = value.as_object()?.get(key.as_ref())?;
                }
                Some(PathValue::Json(value))
            }
        }
    }
}

/// `context.session_id`, the only path with a default use (the session a
/// kill switch or limit is scoped to), so that indexes can derive Default.
impl Default for InputPath {
    fn default() -> Self {
        Self {
            text: DEFAULT_SESSION_PATH.into(),
            target: Target::Attribute {
                root: Root::Context,
                keys: Box::new(["session_id".into()]),
            },
        }
    }
}

impl FromStr for InputPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, PathError> {
        Self::parse(text)
    }
}

impl fmt::Display for InputPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::request::{Action, Agent, Principal, Resource};

    fn attributes(value: Json) -> Attributes {
        match value {
            Json::Object(map) => map,
            _ => Attributes::new(),
        }
    }

    fn request() -> CheckRequest {
        CheckRequest {
            platform: "p1".into(),
            agent: Agent {
                id: "a1".into(),
                attributes: attributes(json!({"model": "m"})),
            },
            principal: Principal {
                kind: Some("user".into()),
                id: "u1".into(),
                attributes: attributes(json!({"mfa": true})),
            },
            delegation_chain: Vec::new(),
            audience: Vec::new(),
            action: Action {
                name: "payments.send".into(),
                attributes: attributes(json!({"amount_usd": 12.5, "note": "12"})),
            },
            resource: Resource {
                kind: "account".into(),
                id: None,
                attributes: attributes(json!({"x": {"y": "deep"}, "list": [{"k": 1}]})),
            },
            context: attributes(json!({"session_id": "s1"})),
            request_id: None,
            approval: None,
        }
    }

    fn get<'a>(path: &str, request: &'a CheckRequest) -> Option<PathValue<'a>> {
        InputPath::parse(path).ok()?.get(request)
    }

    #[test]
    fn plain_fields_are_strings() {
        let r = request();
        for (path, want) in [
            ("platform", Some("p1")),
            ("agent.id", Some("a1")),
            ("principal.id", Some("u1")),
            ("principal.type", Some("user")),
            ("action.name", Some("payments.send")),
            ("resource.type", Some("account")),
            ("resource.id", None),
        ] {
            assert_eq!(get(path, &r), want.map(PathValue::Str), "{path}");
        }
    }

    #[test]
    fn attribute_paths_walk_objects_only() {
        let r = request();
        let text = |p| get(p, &r).and_then(|v| v.as_text());
        let number = |p| get(p, &r).and_then(|v| v.as_f64());
        assert_eq!(text("context.session_id"), Some("s1"));
        assert_eq!(text("resource.attributes.x.y"), Some("deep"));
        assert_eq!(number("action.attributes.amount_usd"), Some(12.5));
        // A string that looks like a number is not one.
        assert_eq!(number("action.attributes.note"), None);
        assert_eq!(text("action.attributes.amount_usd"), None);
        assert_eq!(
            get("principal.attributes.mfa", &r),
            Some(PathValue::Json(&json!(true)))
        );
        assert_eq!(get("agent.attributes.model.x", &r), None);
        assert_eq!(get("resource.attributes.list.0.k", &r), None);
        assert_eq!(get("context.missing", &r), None);
        assert_eq!(number("agent.id"), None);
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        assert_eq!(InputPath::parse(""), Err(PathError::Empty));
        for bad in ["context.", ".context.a", "context..a", "platform."] {
            assert_eq!(
                InputPath::parse(bad),
                Err(PathError::EmptySegment(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            InputPath::parse("context"),
            Err(PathError::NoKey("context".into(), "context"))
        );
        assert_eq!(
            InputPath::parse("action.attributes"),
            Err(PathError::NoKey(
                "action.attributes".into(),
                "action.attributes"
            ))
        );
        for bad in [
            "agent",
            "agent.name",
            "contextual.x",
            "platform.x",
            "request_id",
            "delegation_chain",
            "action.attributesx.y",
        ] {
            assert_eq!(
                InputPath::parse(bad),
                Err(PathError::Unknown(bad.into())),
                "{bad}"
            );
        }
        let message = InputPath::parse("agent.name").map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.contains("`agent.name`") && m.contains("context.<key>")));
    }

    #[test]
    fn the_default_is_the_session_path() {
        assert_eq!(
            InputPath::parse(DEFAULT_SESSION_PATH),
            Ok(InputPath::default())
        );
        assert_eq!(InputPath::default().to_string(), "context.session_id");
        assert_eq!(
            "resource.attributes.x.y"
                .parse::<InputPath>()
                .map(|p| p.to_string()),
            Ok("resource.attributes.x.y".to_owned())
        );
    }

    fn arb_path() -> impl Strategy<Value = String> {
        let fixed = prop::sample::select(FIELDS.iter().map(|(name, _)| *name).collect::<Vec<_>>())
            .prop_map(String::from);
        let attribute = (
            prop::sample::select(ROOTS.iter().map(|(prefix, _)| *prefix).collect::<Vec<_>>()),
            prop::collection::vec("[^.]{1,8}", 1..4),
        )
            .prop_map(|(prefix, keys)| format!("{prefix}.{}", keys.join(".")));
        prop_oneof![fixed, attribute]
    }

    proptest! {
        #[test]
        fn valid_paths_round_trip(text in arb_path()) {
            let path = InputPath::parse(&text);
            prop_assert!(path.is_ok(), "{text}: {path:?}");
            if let Ok(path) = path {
                prop_assert_eq!(path.as_str(), text.as_str());
                prop_assert_eq!(InputPath::parse(path.as_str()), Ok(path.clone()));
                prop_assert_eq!(path.to_string().parse::<InputPath>(), Ok(path));
            }
        }

        #[test]
        fn parsing_never_panics(text in any::<String>()) {
            if let Ok(path) = InputPath::parse(&text) {
                prop_assert_eq!(path.as_str(), text.as_str());
                let _ = path.get(&request());
            }
        }

        #[test]
        fn parsing_dotted_noise_never_panics(text in "[a-z.]{0,30}") {
            let _ = InputPath::parse(&text);
        }
    }
}
