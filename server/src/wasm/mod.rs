//! Rego compiled to Wasm modules that implement OPA's Wasm ABI.
//!
//! `build` turns a bundle's Rego into such a module (and an OPA bundle
//! around it) without Go or OPA: it embeds the policy into a prebuilt
//! runtime, `assets/opa-runtime.wasm`, built from `wasm-runtime/` by
//! `scripts/build-wasm-runtime`. `inspect` checks any module claiming the
//! ABI — ours or one built by `opa build -t wasm` — before it is loaded.

pub mod build;
pub mod inspect;

pub use build::{BuildError, build_bundle, build_module};
pub use inspect::{InspectError, inspect};
