//! Running a bundle's own Rego unit tests (`test_*` rules), as `opa test`
//! does: each test rule must evaluate to `true` against the bundle's data.

use regorus::Value;

use crate::bundle::{Bundle, BundleError};

/// The result of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// Full rule path, e.g. `data.warden.authz_test.test_allow`.
    pub name: String,
    pub passed: bool,
    /// Why it failed: an error, or the value it had instead of `true`.
    pub failure: Option<String>,
}

/// Runs every `test_*` rule of every module in `bundle`, on the interpreter
/// (tests use `with`, which only the interpreter supports).
pub fn run(bundle: &Bundle) -> Result<Vec<TestOutcome>, BundleError> {
    let mut parsed = bundle.parse_modules()?;
    let names = parsed.test_rules().map_err(|e| BundleError::Module {
        path: String::new(),
        message: e.to_string(),
    })?;
    let mut engine = parsed.into_engine();
    engine
        .add_data(bundle.data.clone())
        .map_err(|e| BundleError::Module {
            path: "data.json".into(),
            message: format!("cannot load bundle data for tests: {e}"),
        })?;
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
