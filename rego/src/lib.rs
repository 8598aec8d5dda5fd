//! Rego for Warden, engine-neutral: one place that decides how a bundle's
//! Rego is compiled and evaluated, used both by the server's native engine
//! and by the Wasm runtime that `warden build` emits, so the two agree.
//!
//! A policy is compiled to RVM bytecode. Where the RVM compiler cannot take
//! it (the `with` keyword, some partial-object forms), the policy runs on
//! regorus's interpreter instead; `Policy::mode` says which, and why.

pub mod audience;
pub mod host;

use std::sync::Arc;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::{ExecutionMode, ExecutionState, SuspendReason, VmError};
use regorus::rvm::{Program, RegoVM};
use regorus::unstable::{Expr, Rule, RuleHead};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

pub use host::Host;

/// One Rego source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path inside the bundle; compiler messages name it.
    pub path: String,
    pub source: String,
    /// Rego v0 syntax (OPA 1.x defaults to v1).
    pub rego_v0: bool,
}

/// Why Rego could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    #[error("`{path}`: {message}")]
    Parse { path: String, message: String },
    #[error("cannot compile entrypoint `{entrypoint}`: {message}")]
    Compile { entrypoint: String, message: String },
    #[error("cannot load data: {0}")]
    Data(String),
}

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("evaluation exceeded its time limit")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// Bounds on one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget, checked by the engine itself. `None` where there
    /// is no clock (Wasm), whose host enforces the deadline instead.
    pub timeout: Option<Duration>,
    /// Instruction budget (RVM only).
    pub max_instructions: usize,
}

/// Work units between clock reads; reading the clock on every instruction
/// would cost more than most policies.
const TIMER_CHECK_INTERVAL: u32 = 256;

/// Parsed modules, not yet compiled.
#[derive(Debug, Clone)]
pub struct Parsed {
    engine: Engine,
}

/// Parses `modules`; errors name the module.
pub fn parse(modules: &[Module]) -> Result<Parsed, RegoError> {
    let mut engine = Engine::new();
    register_extensions(&mut engine, Arc::new(Host::default()))?;
    for module in modules {
        host::check_calls(&module.source).map_err(|message| RegoError::Parse {
            path: module.path.clone(),
            message,
        })?;
        engine.set_rego_v0(module.rego_v0);
        engine
            .add_policy(module.path.clone(), module.source.clone())
            .map_err(|e| RegoError::Parse {
                path: module.path.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(Parsed { engine })
}

impl Parsed {
    /// Each module's file and package path (`["warden", "authz"]`).
    pub fn packages(&self) -> Result<Vec<(String, Vec<String>)>, RegoError> {
        let packages =
            self.engine
                .get_policy_package_components()
                .map_err(|e| RegoError::Parse {
                    path: String::new(),
                    message: e.to_string(),
                })?;
        Ok(packages
            .into_iter()
            .map(|p| (p.source_file, p.components))
            .collect())
    }

    /// Full paths of the `test_*` rules, as `opa test` finds them.
    pub fn test_rules(&mut self) -> Result<Vec<String>, RegoError> {
        let packages = self.packages()?;
        let mut names = std::collections::BTreeSet::new();
        for (module, (_, package)) in self.engine.get_modules().iter().zip(&packages) {
            for rule in &module.policy {
                if let Some(name) = test_rule_name(rule) {
                    names.insert(format!("data.{}.{name}", package.join(".")));
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The interpreter with these modules, for running unit tests.
    pub fn into_engine(self) -> Engine {
        self.engine
    }

    /// Compiles the rule at `entrypoint` (`data.warden.authz.decision`).
    pub fn compile(mut self, entrypoint: &str) -> Result<Policy, RegoError> {
        let compile_error = |message: String| RegoError::Compile {
            entrypoint: entrypoint.to_owned(),
            message,
        };
        let rule: regorus::Rc<str> = entrypoint.into();
        let compiled = self
            .engine
            .compile_with_entrypoint(&rule)
            .map_err(|e| compile_error(e.to_string()))?;
        let inner = match Compiler::compile_from_policy_with_host_await(
            &compiled,
            &[entrypoint],
            host::BUILTINS,
        ) {
            Ok(program) => Inner::Rvm(program),
            // The interpreter accepted the policy (above); only the bytecode
            // compiler could not, so the interpreter runs it.
            Err(e) => Inner::Interpreter {
                engine: Box::new(self.engine),
                reason: e.to_string(),
            },
        };
        Ok(Policy {
            entrypoint: entrypoint.to_owned(),
            inner,
        })
    }
}

/// Makes Warden's builtins callable on the interpreter (and known to its
/// checks, which the RVM compiler relies on too).
fn register_extensions(engine: &mut Engine, host: Arc<Host>) -> Result<(), RegoError> {
    for &(name, args) in host::BUILTINS {
        let host = host.clone();
        let nargs = u8::try_from(args).map_err(|e| RegoError::Data(e.to_string()))?;
        engine
            .add_extension(
                name.to_owned(),
                nargs,
                Box::new(move |args: Vec<Value>| {
                    host.call(name, &args).map_err(|e| anyhow::anyhow!(e))
                }),
            )
            .map_err(|e| RegoError::Parse {
                path: String::new(),
                message: e.to_string(),
            })?;
    }
    Ok(())
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

/// How a policy runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// RVM bytecode.
    Rvm,
    /// regorus's interpreter, because the RVM compiler refused the policy.
    Interpreter { reason: String },
}

#[derive(Debug, Clone)]
enum Inner {
    Rvm(Arc<Program>),
    Interpreter { engine: Box<Engine>, reason: String },
}

/// A compiled policy; immutable, shared by every evaluator.
#[derive(Debug, Clone)]
pub struct Policy {
    entrypoint: String,
    inner: Inner,
}

impl Policy {
    pub fn entrypoint(&self) -> &str {
        &self.entrypoint
    }

    pub fn mode(&self) -> Mode {
        match &self.inner {
            Inner::Rvm(_) => Mode::Rvm,
            Inner::Interpreter { reason, .. } => Mode::Interpreter {
                reason: reason.clone(),
            },
        }
    }

    /// An evaluator over `data` (the whole data document). Each evaluator is
    /// used by one thread at a time; make one per worker, all sharing the
    /// `host` made for this data.
    pub fn evaluator(
        &self,
        data: &Value,
        limits: Limits,
        host: Arc<Host>,
    ) -> Result<Evaluator, RegoError> {
        let timer = limits.timeout.map(|limit| ExecutionTimerConfig {
            limit,
            check_interval: std::num::NonZeroU32::MIN.saturating_add(TIMER_CHECK_INTERVAL - 1),
        });
        match &self.inner {
            Inner::Rvm(program) => {
                let mut vm = RegoVM::new();
                vm.load_program(program.clone());
                vm.set_max_instructions(limits.max_instructions);
                vm.set_execution_timer_config(timer);
                vm.set_data(data.clone())
                    .map_err(|e| RegoError::Data(e.to_string()))?;
                Ok(Evaluator::Rvm {
                    vm: Box::new(vm),
                    host,
                    awaits: program.has_host_await(),
                })
            }
            Inner::Interpreter { engine, .. } => {
                let mut engine = engine.as_ref().clone();
                if let Some(timer) = timer {
                    engine.set_execution_timer_config(timer);
                }
                engine
                    .add_data(data.clone())
                    .map_err(|e| RegoError::Data(e.to_string()))?;
                Ok(Evaluator::Interpreter {
                    engine: Box::new(engine),
                    rule: self.entrypoint.clone(),
                })
            }
        }
    }

    /// Whether evaluations may call host builtins (so their host is worth
    /// warming). The interpreter is not asked: it builds on first use.
    pub fn calls_host(&self) -> bool {
        matches!(&self.inner, Inner::Rvm(program) if program.has_host_await())
    }
}

/// Evaluates the entrypoint for one input at a time.
#[derive(Debug)]
pub enum Evaluator {
    Rvm {
        vm: Box<RegoVM>,
        host: Arc<Host>,
        /// The program calls host builtins.
        awaits: bool,
    },
    Interpreter {
        engine: Box<Engine>,
        rule: String,
    },
}

fn vm_error(error: VmError) -> EvalError {
    match error {
        VmError::TimeLimitExceeded { .. } => EvalError::Timeout,
        other => EvalError::Failed(other.to_string()),
    }
}

/// Runs the entrypoint so that it may stop at host builtins, answering each.
fn run_with_host(vm: &mut RegoVM, host: &Host) -> Result<Value, EvalError> {
    let mut value = vm.execute_entry_point_by_index(0).map_err(vm_error)?;
    loop {
        let (name, argument) = match vm.execution_state() {
            ExecutionState::Suspended {
                reason:
                    SuspendReason::HostAwait {
                        argument,
                        identifier,
                        ..
                    },
                ..
            } => (identifier.clone(), argument.clone()),
            ExecutionState::Suspended { reason, .. } => {
                return Err(EvalError::Failed(format!(
                    "the policy stopped unexpectedly: {reason:?}"
                )));
            }
            _ => return Ok(value),
        };
        let Value::String(name) = name else {
            return Err(EvalError::Failed("a host call without a name".into()));
        };
        let args: Vec<Value> = match argument {
            Value::Array(items) => items.iter().cloned().collect(),
            other => vec![other],
        };
        let answer = host.call(&name, &args).map_err(EvalError::Failed)?;
        value = vm.resume(Some(answer)).map_err(vm_error)?;
    }
}

impl Evaluator {
    /// The entrypoint's value for `input`; `Value::Undefined` when undefined.
    ///
    /// After an error the evaluator may hold partial state: drop it.
    pub fn eval(&mut self, input: Value) -> Result<Value, EvalError> {
        match self {
            Evaluator::Rvm { vm, host, awaits } => {
                // Suspendable runs cost about twice as much, so only a check
                // that can reach a host call gets one. Every host call takes
                // `input.audience` first (`host::check_calls`), so without
                // it the call is undefined either way: run to completion,
                // an unanswered call fails its body, which is the same.
                let calls = *awaits && input[host::GATE] != Value::Undefined;
                vm.set_input(input);
                if calls {
                    vm.set_execution_mode(ExecutionMode::Suspendable);
                    let result = run_with_host(vm, host);
                    vm.set_execution_mode(ExecutionMode::RunToCompletion);
                    return result;
                }
                vm.execute_entry_point_by_index(0).map_err(vm_error)
            }
            Evaluator::Interpreter { engine, rule } => {
                engine.set_input(input);
                engine.eval_rule(rule.clone()).map_err(|e| {
                    let timed_out = e.chain().any(|cause| {
                        matches!(
                            cause.downcast_ref::<regorus::LimitError>(),
                            Some(regorus::LimitError::TimeLimitExceeded { .. })
                        )
                    });
                    if timed_out {
                        EvalError::Timeout
                    } else {
                        EvalError::Failed(e.to_string())
                    }
                })
            }
        }
    }
}
