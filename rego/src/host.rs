//! Warden's own builtins, answered by the host rather than by Rego.
//!
//! The RVM compiles a call to a registered name into a `HostAwait`
//! instruction and suspends there; the interpreter calls an extension. Both
//! land in `Host::call`, so every engine (native, and the Wasm runtime that
//! embeds this crate) answers them with the same code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use regorus::{Rc, Value};

use crate::audience::AudienceIndex;

/// `warden.audience_gaps(audience, resource, action, identity, entitlements)`:
/// `{members, lacking_count, lacking}` for the audience's members who may
/// not take `action` on `resource` under `entitlements`.
pub const AUDIENCE_GAPS: &str = "warden.audience_gaps";

/// Every host builtin and its number of arguments.
pub const BUILTINS: &[(&str, usize)] = &[(AUDIENCE_GAPS, 5)];

/// The input member every host call must take first (see `check_calls`).
pub const GATE: &str = "audience";

/// Refuses a module that calls a host builtin with anything but
/// `input.audience` as the first argument.
///
/// Only checks whose input has an audience run suspendable, the mode in
/// which the host can answer (it costs about twice as much); elsewhere an
/// unanswered call reads as undefined. Tying every call to
/// `input.audience` makes that exact: without it the call is undefined in
/// Rego anyway, so no policy can be answered "undefined" where it would
/// have had a value.
pub fn check_calls(source: &str) -> Result<(), String> {
    let code = code_only(source);
    for (at, _) in code.match_indices(AUDIENCE_GAPS) {
        let rest = code[at + AUDIENCE_GAPS.len()..].trim_start();
        let Some(args) = rest.strip_prefix('(') else {
            return Err(format!(
                "`{AUDIENCE_GAPS}` may only be called, with `input.{GATE}` as its first argument"
            ));
        };
        let args = args.trim_start();
        let gated = args
            .strip_prefix("input.")
            .and_then(|a| a.strip_prefix(GATE))
            .is_some_and(|a| a.trim_start().starts_with([',', ')']));
        if !gated {
            return Err(format!(
                "`{AUDIENCE_GAPS}` must take `input.{GATE}` as its first argument, so that checks without an audience never need the host"
            ));
        }
    }
    Ok(())
}

/// `source` with comments and string literals blanked out, so that only
/// code is searched: a name in a comment is no call, and a `#` in a string
/// is no comment.
fn code_only(source: &str) -> String {
    enum State {
        Code,
        Quoted { escaped: bool },
        Raw,
        Comment,
    }
    let mut state = State::Code;
    source
        .chars()
        .map(|c| {
            let (keep, next) = match state {
                State::Code => match c {
                    '"' => (false, State::Quoted { escaped: false }),
                    '`' => (false, State::Raw),
                    '#' => (false, State::Comment),
                    _ => (true, State::Code),
                },
                State::Quoted { escaped: true } => (false, State::Quoted { escaped: false }),
                State::Quoted { escaped: false } => match c {
                    '\\' => (false, State::Quoted { escaped: true }),
                    '"' => (false, State::Code),
                    _ => (false, State::Quoted { escaped: false }),
                },
                State::Raw => (false, if c == '`' { State::Code } else { State::Raw }),
                State::Comment => (
                    c == '\n',
                    if c == '\n' {
                        State::Code
                    } else {
                        State::Comment
                    },
                ),
            };
            state = next;
            if keep { c } else { ' ' }
        })
        .collect()
}

/// The index for the documents it was built from. Holding the documents
/// keeps their allocations alive, so comparing pointers is sound.
#[derive(Debug)]
struct Cached {
    identity: Value,
    entitlements: Value,
    index: Arc<AudienceIndex>,
}

/// What host builtins keep between calls: the audience index of the data
/// they were last asked about. Share one per data document.
#[derive(Debug, Default)]
pub struct Host {
    audience: Mutex<Option<Cached>>,
    builds: AtomicUsize,
}

/// Whether two documents are the same allocation: the policy passes
/// `data.identity` through unchanged, so this is how a call recognises the
/// generation's data (and a `with` override gets an index of its own).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
        (Value::Undefined, Value::Undefined) | (Value::Null, Value::Null) => true,
        _ => false,
    }
}

impl Host {
    /// Builds the index for `data` now, so the first check with an audience
    /// does not pay for it.
    pub fn warm(&self, data: &Value) {
        let _ = self.index(&data["identity"], &data["entitlements"]);
    }

    /// How many indexes this host has built: one per data document unless
    /// calls pass documents of their own.
    pub fn builds(&self) -> usize {
        self.builds.load(Ordering::Relaxed)
    }

    /// The index for these documents, built on first use.
    pub fn index(&self, identity: &Value, entitlements: &Value) -> Arc<AudienceIndex> {
        let mut cached = match self.audience.lock() {
            Ok(cached) => cached,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(hit) = cached.as_ref()
            && same(&hit.identity, identity)
            && same(&hit.entitlements, entitlements)
        {
            return hit.index.clone();
        }
        let index = Arc::new(AudienceIndex::build(identity, entitlements));
        self.builds.fetch_add(1, Ordering::Relaxed);
        *cached = Some(Cached {
            identity: identity.clone(),
            entitlements: entitlements.clone(),
            index: index.clone(),
        });
        index
    }

    /// Answers a call of the host builtin `name`.
    pub fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        match name {
            AUDIENCE_GAPS => {
                let [audience, resource, action, identity, entitlements] = args else {
                    return Err(format!(
                        "{AUDIENCE_GAPS}: expects 5 arguments, got {}",
                        args.len()
                    ));
                };
                // An undefined argument makes the call undefined, as in
                // Rego; the interpreter passes it rather than skipping.
                if args.contains(&Value::Undefined) {
                    return Ok(Value::Undefined);
                }
                if !matches!(audience, Value::Array(_) | Value::Set(_)) {
                    return Err(format!("{AUDIENCE_GAPS}: the audience must be a list"));
                }
                if !matches!(resource, Value::Object(_)) {
                    return Err(format!("{AUDIENCE_GAPS}: the resource must be an object"));
                }
                let Value::String(action) = action else {
                    return Err(format!("{AUDIENCE_GAPS}: the action must be a string"));
                };
                let index = self.index(identity, entitlements);
                Ok(index.gaps(audience, resource, action).to_value())
            }
            other => Err(format!("`{other}` is not a Warden builtin")),
        }
    }
}
