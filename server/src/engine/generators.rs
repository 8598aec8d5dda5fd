//! Candidate generators: Rego rules a bundle declares at
//! `data.warden.search.{actions,resources,subjects}`, evaluated with the
//! search's fixed part as `input`, each a set (or array) of strings: the
//! candidates a search then decides one by one with the real policy. A
//! generator only proposes; what it proposes too much is denied, and what
//! it leaves out is not found, never wrongly allowed.
//!
//! Generators always run on regorus, whatever engine decides: they are
//! Rego modules of the bundle. Beside the bundle's data they see
//! `data.search_index`, built from the snapshots when first needed:
//! `grantees[type][resource id or "*"]` lists `{kind, id, actions}` for
//! each entitlement, and `members[group]` the group's users, so that "who
//! may act on this resource" is a lookup, not a scan of every user.

use std::collections::BTreeMap;
use std::sync::Arc;

use regorus::Value;
use regorus::unstable::{Expr, Rule, RuleHead};
use warden_rego::{Host, Limits, Policy};

use super::EvalLimits;
use crate::bundle::{Bundle, BundleError};

/// The least time one generator evaluation may take.
const GENERATOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The package generators live in.
const PACKAGE: [&str; 2] = ["warden", "search"];

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Actions,
    Resources,
    Subjects,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Actions, Target::Resources, Target::Subjects];

    /// The generator rule's name, and the word in records and metrics.
    pub fn rule(self) -> &'static str {
        match self {
            Target::Actions => "actions",
            Target::Resources => "resources",
            Target::Subjects => "subjects",
        }
    }

    /// The check field a candidate fills.
    pub fn varied(self) -> crate::request::Varied {
        use crate::request::Varied;
        match self {
            Target::Actions => Varied::ActionName,
            Target::Resources => Varied::ResourceId,
            Target::Subjects => Varied::PrincipalId,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Target::Actions => 1,
            Target::Resources => 2,
            Target::Subjects => 3,
        }
    }
}

/// A bundle's generators, compiled.
#[derive(Debug)]
pub struct Generators {
    actions: Option<Policy>,
    resources: Option<Policy>,
    subjects: Option<Policy>,
    limits: Limits,
}

impl Generators {
    /// Compiles the generators `bundle` declares; none when it has no
    /// Rego or no `warden.search` package.
    pub fn compile(bundle: &Bundle, limits: EvalLimits) -> Result<Self, BundleError> {
        // A generator proposes for a whole search, so it gets a search's
        // budget rather than a check's; the search's own deadline still
        // bounds the call.
        let limits = Limits {
            timeout: Some(limits.timeout.max(GENERATOR_TIMEOUT)),
            max_instructions: limits.max_instructions.saturating_mul(100),
        };
        if bundle.modules.is_empty() {
            return Ok(Self {
                actions: None,
                resources: None,
                subjects: None,
                limits,
            });
        }
        let declared = declared(bundle)?;
        let compile = |target: Target| -> Result<Option<Policy>, BundleError> {
            if !declared.contains(&target.rule()) {
                return Ok(None);
            }
            let entrypoint = format!("data.warden.search.{}", target.rule());
            bundle
                .parse_modules()?
                .compile(&entrypoint)
                .map(Some)
                .map_err(|e| BundleError::Module {
                    path: entrypoint,
                    message: e.to_string(),
                })
        };
        Ok(Self {
            actions: compile(Target::Actions)?,
            resources: compile(Target::Resources)?,
            subjects: compile(Target::Subjects)?,
            limits,
        })
    }

    pub fn declares(&self, target: Target) -> bool {
        self.policy(target).is_some()
    }

    fn policy(&self, target: Target) -> Option<&Policy> {
        match target {
            Target::Actions => self.actions.as_ref(),
            Target::Resources => self.resources.as_ref(),
            Target::Subjects => self.subjects.as_ref(),
        }
    }

    /// The generator's candidates for `input`; `None` when the bundle
    /// declares no generator for `target`. `data` must hold the search
    /// index (see [`with_index`]).
    pub fn candidates(
        &self,
        target: Target,
        data: &Value,
        input: Value,
    ) -> Option<Result<Vec<String>, String>> {
        let policy = self.policy(target)?;
        Some(run(policy, data, self.limits, input))
    }
}

fn run(policy: &Policy, data: &Value, limits: Limits, input: Value) -> Result<Vec<String>, String> {
    let mut evaluator = policy
        .evaluator(data, limits, Arc::new(Host::default()))
        .map_err(|e| e.to_string())?;
    let value = evaluator.eval(input).map_err(|e| e.to_string())?;
    let items = match &value {
        Value::Undefined => return Ok(Vec::new()),
        Value::Set(items) => items.iter().collect::<Vec<_>>(),
        Value::Array(items) => items.iter().collect(),
        _ => {
            return Err(format!(
                "`{}` is not a set or an array",
                policy.entrypoint()
            ));
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) => Ok(text.to_string()),
            _ => Err(format!(
                "`{}` holds a value that is not a string",
                policy.entrypoint()
            )),
        })
        .collect()
}

/// The rule names the bundle's `warden.search` package defines.
fn declared(bundle: &Bundle) -> Result<Vec<&'static str>, BundleError> {
    let parsed = bundle.parse_modules()?;
    let packages = parsed.packages().map_err(|e| BundleError::Module {
        path: String::new(),
        message: e.to_string(),
    })?;
    let mut engine = parsed.into_engine();
    let mut found = Vec::new();
    for (module, (_, package)) in engine.get_modules().iter().zip(&packages) {
        if package.iter().map(String::as_str).ne(PACKAGE) {
            continue;
        }
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec {
                    head: RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. },
                    ..
                }
                | Rule::Default { refr, .. } => refr,
                _ => continue,
            };
            if let Expr::Var {
                value: Value::String(name),
                ..
            } = refr.as_ref()
            {
                for target in Target::ALL {
                    if name.as_ref() == target.rule() && !found.contains(&target.rule()) {
                        found.push(target.rule());
                    }
                }
            }
        }
    }
    Ok(found)
}

/// `data` with `search_index` built from its `identity` and `entitlements`.
pub fn with_index(data: &Value) -> Value {
    let mut data = data.clone();
    let index = index(&data["identity"], &data["entitlements"]);
    if let Ok(object) = data.as_object_mut() {
        object.insert(Value::from("search_index"), index);
    }
    data
}

/// `{grantees: {type: {key: [{kind, id, actions}]}}, members: {group: [user]}}`.
fn index(identity: &Value, entitlements: &Value) -> Value {
    let mut grantees: BTreeMap<Value, BTreeMap<Value, Vec<Value>>> = BTreeMap::new();
    if let Ok(subjects) = entitlements["subjects"].as_object() {
        for (subject, types) in subjects.iter() {
            let Value::String(subject) = subject else {
                continue;
            };
            let Some((kind, id)) = subject.split_once(':') else {
                continue;
            };
            let Ok(types) = types.as_object() else {
                continue;
            };
            for (kind_of_resource, keys) in types.iter() {
                let Ok(keys) = keys.as_object() else {
                    continue;
                };
                let by_key = grantees.entry(kind_of_resource.clone()).or_default();
                for (key, actions) in keys.iter() {
                    let mut grant = BTreeMap::new();
                    grant.insert(Value::from("kind"), Value::from(kind));
                    grant.insert(Value::from("id"), Value::from(id));
                    grant.insert(Value::from("actions"), actions.clone());
                    by_key
                        .entry(key.clone())
                        .or_default()
                        .push(Value::from(grant));
                }
            }
        }
    }
    let mut members: BTreeMap<Value, Vec<Value>> = BTreeMap::new();
    if let Ok(users) = identity["users"].as_object() {
        for (user, record) in users.iter() {
            if let Ok(groups) = record["groups"].as_array() {
                for group in groups.iter() {
                    members.entry(group.clone()).or_default().push(user.clone());
                }
            }
        }
    }
    let grantees = grantees
        .into_iter()
        .map(|(kind, keys)| {
            let keys = keys
                .into_iter()
                .map(|(key, list)| (key, Value::from(list)))
                .collect::<BTreeMap<_, _>>();
            (kind, Value::from(keys))
        })
        .collect::<BTreeMap<_, _>>();
    let members = members
        .into_iter()
        .map(|(group, list)| (group, Value::from(list)))
        .collect::<BTreeMap<_, _>>();
    let mut index = BTreeMap::new();
    index.insert(Value::from("grantees"), Value::from(grantees));
    index.insert(Value::from("members"), Value::from(members));
    Value::from(index)
}
