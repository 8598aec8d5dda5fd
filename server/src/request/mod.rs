//! Validated check requests: what the rest of the server sees instead of the
//! wire types.
//!
//! Conversion from `warden.v1.CheckRequest` checks every rule in DESIGN
//! (required fields, sizes, well-formed values) and fails with the path of the
//! offending field, so a bad request is refused before it can reach a policy.

mod attributes;
mod invisible;
mod path;
mod validate;

pub use attributes::struct_to_json;
pub use invisible::{first_invisible, is_invisible};
pub use path::{DEFAULT_SESSION_PATH, InputPath, PathError, PathValue};
pub use validate::{InvalidRequest, Varied, validate, vary};

use serde_json::{Map, Value as Json};

/// Free-form attributes, as JSON objects.
pub type Attributes = Map<String, Json>;

/// Size limits applied to every request; all configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest id, name or type, in bytes.
    pub max_id_bytes: usize,
    /// Largest encoded `CheckRequest` (or batch item), in bytes.
    pub max_request_bytes: usize,
    /// Most entries in `delegation_chain`.
    pub max_delegation_chain: usize,
    /// Deepest nesting of objects and lists inside attributes and context.
    pub max_attribute_depth: usize,
    /// Most items in one `BatchCheck`.
    pub max_batch_items: usize,
    /// Most entries in `audience` (a group is one entry).
    pub max_audience: usize,
    /// Most candidates one search call evaluates; the rest come in pages.
    pub max_search_evaluations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_id_bytes: 256,
            max_request_bytes: 64 * 1024,
            max_delegation_chain: 16,
            max_attribute_depth: 16,
            max_batch_items: 256,
            max_audience: 64,
            max_search_evaluations: 10_000,
        }
    }
}

/// The agent that wants to act.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub attributes: Attributes,
}

/// The party the agent acts for.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `None` when the caller left the type empty.
    pub kind: Option<String>,
    pub id: String,
    pub attributes: Attributes,
}

/// What the agent wants to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub attributes: Attributes,
}

/// What the action applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: String,
    /// `None` when the caller left the id empty.
    pub id: Option<String>,
    pub attributes: Attributes,
}

/// A validated check request.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRequest {
    pub platform: String,
    pub agent: Agent,
    pub principal: Principal,
    /// Each entry `kind:id` (validated).
    pub delegation_chain: Vec<String>,
    /// Who will see what the action produces: `user:ID`, `group:ID`,
    /// `public`, `external:DOMAIN` (validated).
    pub audience: Vec<String>,
    pub action: Action,
    pub resource: Resource,
    pub context: Attributes,
    /// `None` when the caller sent none.
    pub request_id: Option<String>,
    /// A verified approval's facts (`input.approval`); never read from the
    /// wire, set only once Warden has verified the approval the check
    /// carried.
    pub approval: Option<serde_json::Value>,
}

/// A delegation chain entry's kind and id (`agent:planner` → `agent`,
/// `planner`). Validation guarantees the colon; an entry without one would
/// be all id.
pub fn split_actor(entry: &str) -> (&str, &str) {
    entry.split_once(':').unwrap_or(("", entry))
}

#[cfg(test)]
mod tests;
