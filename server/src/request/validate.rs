//! The rules a `CheckRequest` must satisfy before it is decided.

use prost::Message;
use warden_proto::v1 as pb;

use super::invisible::first_invisible;
use super::{Action, Agent, Attributes, CheckRequest, Limits, Principal, Resource, struct_to_json};

/// A request that breaks a rule; `field` is the path of the field to blame,
/// relative to the request (`agent.id`, `context.risk.score`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidRequest {
    pub field: String,
    pub reason: String,
}

impl InvalidRequest {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Checks `request` against `limits` and converts it into the domain type.
pub fn validate(
    request: &pb::CheckRequest,
    limits: &Limits,
) -> Result<CheckRequest, InvalidRequest> {
    let size = request.encoded_len();
    if size > limits.max_request_bytes {
        return Err(InvalidRequest::new(
            "request",
            format!(
                "is {size} bytes, more than the limit of {} bytes",
                limits.max_request_bytes
            ),
        ));
    }
    let depth = limits.max_attribute_depth;

    let platform = required_id("platform", &request.platform, limits)?;

    let agent = request
        .agent
        .as_ref()
        .ok_or_else(|| InvalidRequest::new("agent", "is required"))?;
    let agent = Agent {
        id: required_id("agent.id", &agent.id, limits)?,
        attributes: attributes(agent.attributes.as_ref(), "agent.attributes", depth)?,
    };

    let principal = request
        .principal
        .as_ref()
        .ok_or_else(|| InvalidRequest::new("principal", "is required"))?;
    let principal = Principal {
        kind: optional_kind("principal.type", &principal.r#type, limits)?,
        id: required_id("principal.id", &principal.id, limits)?,
        attributes: attributes(principal.attributes.as_ref(), "principal.attributes", depth)?,
    };

    if request.delegation_chain.len() > limits.max_delegation_chain {
        return Err(InvalidRequest::new(
            "delegation_chain",
            format!(
                "has {} entries, more than the limit of {}",
                request.delegation_chain.len(),
                limits.max_delegation_chain
            ),
        ));
    }
    let delegation_chain = request
        .delegation_chain
        .iter()
        .enumerate()
        .map(|(i, actor)| chain_entry(&format!("delegation_chain[{i}]"), actor, limits))
        .collect::<Result<Vec<_>, _>>()?;

    if request.audience.len() > limits.max_audience {
        return Err(InvalidRequest::new(
            "audience",
            format!(
                "has {} entries, more than the limit of {}",
                request.audience.len(),
                limits.max_audience
            ),
        ));
    }
    let audience = request
        .audience
        .iter()
        .enumerate()
        .map(|(i, entry)| audience_entry(&format!("audience[{i}]"), entry, limits))
        .collect::<Result<Vec<_>, _>>()?;

    let action = request
        .action
        .as_ref()
        .ok_or_else(|| InvalidRequest::new("action", "is required"))?;
    let action = Action {
        name: action_name("action.name", &action.name, limits)?,
        attributes: attributes(action.attributes.as_ref(), "action.attributes", depth)?,
    };

    let resource = request
        .resource
        .as_ref()
        .ok_or_else(|| InvalidRequest::new("resource", "is required"))?;
    let resource = Resource {
        kind: required_id("resource.type", &resource.r#type, limits)?,
        id: optional_id("resource.id", &resource.id, limits)?,
        attributes: attributes(resource.attributes.as_ref(), "resource.attributes", depth)?,
    };

    Ok(CheckRequest {
        platform,
        agent,
        principal,
        delegation_chain,
        audience,
        action,
        resource,
        context: attributes(request.context.as_ref(), "context", depth)?,
        request_id: optional_id("request_id", &request.request_id, limits)?,
        approval: None,
    })
}

fn attributes(
    value: Option<&prost_types::Struct>,
    field: &str,
    max_depth: usize,
) -> Result<Attributes, InvalidRequest> {
    match value {
        Some(value) => struct_to_json(value, field, max_depth),
        None => Ok(Attributes::new()),
    }
}

fn required_id(field: &str, value: &str, limits: &Limits) -> Result<String, InvalidRequest> {
    if value.is_empty() {
        return Err(InvalidRequest::new(field, "is required"));
    }
    check_id(field, value, limits)?;
    Ok(value.to_owned())
}

fn optional_id(
    field: &str,
    value: &str,
    limits: &Limits,
) -> Result<Option<String>, InvalidRequest> {
    if value.is_empty() {
        return Ok(None);
    }
    check_id(field, value, limits)?;
    Ok(Some(value.to_owned()))
}

/// Ids are opaque, but bounded and printable: control characters would let a
/// caller forge lines in logs and audit exports, and invisible format or
/// separator characters (U+202E, U+200B, U+2028, …) would let an id read as
/// another one there.
fn check_id(field: &str, value: &str, limits: &Limits) -> Result<(), InvalidRequest> {
    if value.len() > limits.max_id_bytes {
        return Err(InvalidRequest::new(
            field,
            format!(
                "is {} bytes, more than the limit of {} bytes",
                value.len(),
                limits.max_id_bytes
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidRequest::new(
            field,
            "must not contain control characters",
        ));
    }
    if let Some(c) = first_invisible(value) {
        return Err(InvalidRequest::new(field, invisible_reason(c)));
    }
    Ok(())
}

/// Why an id holding `c` (a Cf, Zl or Zp character) is refused: such a
/// character reorders or hides text, so the id would not read as what it is.
fn invisible_reason(c: char) -> String {
    format!(
        "must not contain invisible format or separator characters (found U+{:04X})",
        u32::from(c)
    )
}

/// Principal types become the `type:` prefix of entitlement subjects
/// (`user:alice`), so they must not contain `:` or anything that could make
/// one subject look like another.
fn optional_kind(
    field: &str,
    value: &str,
    limits: &Limits,
) -> Result<Option<String>, InvalidRequest> {
    let Some(value) = optional_id(field, value, limits)? else {
        return Ok(None);
    };
    if !kind_well_formed(&value) {
        return Err(InvalidRequest::new(
            field,
            format!(
                "`{value}` is not a type: use lowercase letters, digits, `_` or `-`, starting with a letter"
            ),
        ));
    }
    Ok(Some(value))
}

/// A delegation chain entry is `kind:id` (`agent:planner`,
/// `client:chat-ui`): the policy judges `agent:` links, so an entry whose
/// kind cannot be read is refused rather than guessed at.
fn chain_entry(field: &str, value: &str, limits: &Limits) -> Result<String, InvalidRequest> {
    let value = required_id(field, value, limits)?;
    let well_formed = value
        .split_once(':')
        .is_some_and(|(kind, id)| kind_well_formed(kind) && !id.is_empty());
    if !well_formed {
        return Err(InvalidRequest::new(
            field,
            format!("`{value}` is not `kind:id`, such as `agent:planner` or `client:chat-ui`"),
        ));
    }
    Ok(value)
}

/// An audience entry: `user:ID`, `group:ID`, `public` or `external:DOMAIN`.
fn audience_entry(field: &str, value: &str, limits: &Limits) -> Result<String, InvalidRequest> {
    let value = required_id(field, value, limits)?;
    let well_formed = value == "public"
        || ["user:", "group:", "external:"].iter().any(|prefix| {
            value
                .strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty())
        });
    if !well_formed {
        return Err(InvalidRequest::new(
            field,
            format!("`{value}` is not `user:ID`, `group:ID`, `public` or `external:DOMAIN`"),
        ));
    }
    Ok(value)
}

fn kind_well_formed(kind: &str) -> bool {
    let mut chars = kind.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Action names are dotted (`documents.read`): non-empty segments of letters,
/// digits, `_` or `-`. Patterns (`*`) belong in grants, never in a request.
fn action_name(field: &str, value: &str, limits: &Limits) -> Result<String, InvalidRequest> {
    let value = required_id(field, value, limits)?;
    let well_formed = value.split('.').all(|segment| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if !well_formed {
        return Err(InvalidRequest::new(
            field,
            format!("`{value}` is not a dotted action name such as `documents.read`"),
        ));
    }
    Ok(value)
}

/// The field a search fills in with each candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Varied {
    ActionName,
    /// `None`: no resource id (every resource of the type).
    ResourceId,
    PrincipalId,
}

/// Sets `varied` in `request` to `value`, which must pass the rule that
/// field has in a check (so a search decides only what `Check` would
/// accept); on an error `request` is unchanged.
pub fn vary(
    request: &mut CheckRequest,
    varied: Varied,
    value: Option<&str>,
    limits: &Limits,
) -> Result<(), InvalidRequest> {
    let value = value.unwrap_or_default();
    match varied {
        Varied::ActionName => request.action.name = action_name("action.name", value, limits)?,
        Varied::ResourceId => request.resource.id = optional_id("resource.id", value, limits)?,
        Varied::PrincipalId => request.principal.id = required_id("principal.id", value, limits)?,
    }
    Ok(())
}
