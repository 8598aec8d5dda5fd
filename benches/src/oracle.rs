//! Real OPA as a test oracle: OPA v1's Go evaluator, built as a C shared
//! library, fetched by `scripts/fetch-opa-oracle`.
//!
//! The library is located through `WARDEN_OPA_ORACLE`, or the fetch
//! script's default cache path. Without it the differential tests fail with
//! instructions rather than pass vacuously.

#![allow(unsafe_code)]
#![allow(
    clippy::expect_used,
    reason = "a test oracle that cannot load must fail loudly"
)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;
use std::sync::OnceLock;

use libloading::{Library, Symbol};
use serde_json::Value as Json;

type NewFn = unsafe extern "C" fn() -> u64;
type DestroyFn = unsafe extern "C" fn(u64);
type FreeFn = unsafe extern "C" fn(*mut c_char);
type AddFn = unsafe extern "C" fn(u64, *const c_char, *const c_char) -> *mut c_char;
type EvalFn = unsafe extern "C" fn(u64, *const c_char, *const c_char, c_int, c_int) -> *mut c_char;

/// Where the fetch script puts the library unless told otherwise.
pub fn default_path() -> PathBuf {
    if let Ok(path) = std::env::var("WARDEN_OPA_ORACLE") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("WARDEN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
                })
                .join("warden")
        });
    cache.join("opa-oracle/0.4.4/opa_bindings/libopabridge.so")
}

fn library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let path = default_path();
        assert!(
            path.exists(),
            "OPA oracle not found at {}; run `scripts/fetch-opa-oracle` (or `scripts/test`, which does) \
             or set WARDEN_OPA_ORACLE",
            path.display()
        );
        // SAFETY: the library is OPA's bridge, loaded once and never
        // unloaded (a Go runtime cannot be unloaded).
        unsafe { Library::new(&path) }.unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
    })
}

fn symbol<T>(name: &[u8]) -> Symbol<'static, T> {
    // SAFETY: each symbol is looked up with the signature the bridge's C ABI
    // documents (see scripts/fetch-opa-oracle and the bindings it ships).
    unsafe { library().get(name) }
        .unwrap_or_else(|e| panic!("OPA oracle lacks {}: {e}", String::from_utf8_lossy(name)))
}

/// One OPA engine: policies and data added, then evaluated.
pub struct Opa {
    handle: u64,
}

impl Opa {
    pub fn new() -> Self {
        let new: Symbol<NewFn> = symbol(b"OpaNew");
        // SAFETY: OpaNew takes no arguments and returns a handle.
        Opa {
            handle: unsafe { new() },
        }
    }

    fn call(&self, function: &[u8], a: &str, b: &str) -> Json {
        let f: Symbol<AddFn> = symbol(function);
        let a = CString::new(a).expect("no NUL in argument");
        let b = CString::new(b).expect("no NUL in argument");
        // SAFETY: both strings are NUL-terminated and outlive the call; the
        // returned envelope is freed with OpaFreeString after copying.
        let envelope = unsafe { f(self.handle, a.as_ptr(), b.as_ptr()) };
        take_envelope(envelope)
    }

    /// Adds a Rego module; panics with OPA's message if it does not compile.
    pub fn add_policy(&self, name: &str, source: &str) {
        let result = self.call(b"OpaAddPolicy", name, source);
        assert!(
            result.get("error").is_none(),
            "OPA refused {name}: {result}"
        );
    }

    /// Deep-merges `data` at the dotted `path` ("" is the root).
    pub fn add_data(&self, path: &str, data: &Json) {
        let result = self.call(b"OpaAddData", path, &data.to_string());
        assert!(
            result.get("error").is_none(),
            "OPA refused data at `{path}`: {result}"
        );
    }

    /// The value of `data.<path>` for `input`; `None` when undefined.
    pub fn eval(&self, path: &str, input: &Json) -> Result<Option<Json>, String> {
        let f: Symbol<EvalFn> = symbol(b"OpaEvalDocument");
        let path = CString::new(path).expect("no NUL in path");
        let input = CString::new(input.to_string()).expect("no NUL in input");
        // SAFETY: as in `call`.
        let envelope = unsafe { f(self.handle, path.as_ptr(), input.as_ptr(), 0, 0) };
        let result = take_envelope(envelope);
        if let Some(error) = result.get("error") {
            return Err(error.to_string());
        }
        Ok(result["result"]
            .as_array()
            .and_then(|rows| rows.first())
            .map(|row| row["expressions"][0]["value"].clone()))
    }

    /// Evaluates a query and returns its first expression's value.
    pub fn query(&self, query: &str) -> Result<Option<Json>, String> {
        let f: Symbol<EvalFn> = symbol(b"OpaEvalQuery");
        let query = CString::new(query).expect("no NUL in query");
        let input = CString::new("null").expect("no NUL");
        // SAFETY: as in `call`.
        let envelope = unsafe { f(self.handle, query.as_ptr(), input.as_ptr(), 0, 0) };
        let result = take_envelope(envelope);
        if let Some(error) = result.get("error") {
            return Err(error.to_string());
        }
        Ok(result["result"]
            .as_array()
            .and_then(|rows| rows.first())
            .map(|row| row["expressions"][0]["value"].clone()))
    }
}

impl Default for Opa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Opa {
    fn drop(&mut self) {
        let destroy: Symbol<DestroyFn> = symbol(b"OpaDestroy");
        // SAFETY: the handle came from OpaNew and is destroyed once.
        unsafe { destroy(self.handle) };
    }
}

fn take_envelope(envelope: *mut c_char) -> Json {
    assert!(!envelope.is_null(), "OPA returned no envelope");
    // SAFETY: the bridge returns a NUL-terminated string it allocated.
    let text = unsafe { CStr::from_ptr(envelope) }
        .to_string_lossy()
        .into_owned();
    let free: Symbol<FreeFn> = symbol(b"OpaFreeString");
    // SAFETY: freed exactly once, after copying.
    unsafe { free(envelope) };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("OPA envelope is not JSON ({e}): {text}"))
}
