//! Running a bundle's own Rego unit tests (`test_*` rules), as `opa test`
//! does: each test rule must evaluate to `true` against the bundle's data.

use std::collections::BTreeSet;

use regorus::Value;
use regorus::unstable::{Expr, Rule, RuleHead};

use crate::bundle::{Bundle, BundleError};
use crate::engine::native::parse_modules;
use crate::input::json_to_rego;

/// The result of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// Full rule path, e.g. `data.warden.authz_test.test_allow`.
    pub name: String,
    pub passed: bool,
    /// Why it failed: an error, or the value it had instead of `true`.
    pub failure: Option<String>,
}

/// Runs every `test_*` rule of every module in `bundle`.
pub fn run(bundle: &Bundle) -> Result<Vec<TestOutcome>, BundleError> {
    let mut engine = parse_modules(bundle)?;
    engine
        .add_data(json_to_rego(&bundle.data))
        .map_err(|e| BundleError::Module {
            path: "data.json".into(),
            message: format!("cannot load bundle data for tests: {e}"),
        })?;
    let packages = engine
        .get_policy_package_components()
        .map_err(|e| BundleError::Module {
            path: String::new(),
            message: e.to_string(),
        })?;

    // A rule with several bodies is one test; sets keep each name once.
    let mut names = BTreeSet::new();
    for (module, package) in engine.get_modules().iter().zip(&packages) {
        for rule in &module.policy {
            if let Some(name) = test_rule_name(rule) {
                names.insert(format!("data.{}.{name}", package.components.join(".")));
            }
        }
    }

    Ok(names
        .into_iter()
        .map(|name| {
            let (passed, failure) = match engine.eval_rule(name.clone()) {
                Ok(Value::Bool(true)) => (true, None),
                Ok(Value::Undefined) => (false, Some("undefined".to_owned())),
                Ok(other) => (false, Some(format!("evaluated to {other}"))),
                Err(e) => (false, Some(format!("error: {e}"))),
            };
            TestOutcome {
                name,
                passed,
                failure,
            }
        })
        .collect())
}

fn test_rule_name(rule: &Rule) -> Option<String> {
    let Rule::Spec {
        head: RuleHead::Compr { refr, .. },
        ..
    } = rule
    else {
        return None;
    };
    let Expr::Var {
        value: Value::String(name),
        ..
    } = refr.as_ref()
    else {
        return None;
    };
    name.starts_with("test_").then(|| name.to_string())
}
