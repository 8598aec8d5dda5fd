//! Policy bundles in OPA's bundle format: Rego modules, `data.json` files, an
//! optional `.manifest`, optionally a `policy.wasm`.
//!
//! Loading checks everything that does not need a compiler: safe paths and
//! sizes, the manifest, data placement and roots. Compiling the modules is
//! the engine's job.

pub mod config;
mod manifest;

use std::path::Path;

use regorus::Value;
use sha2::{Digest, Sha256};

pub use warden_bundle::{ArchiveLimits, Files, Limit, signature, write_tar_gz};

/// Reads every regular file of a bundle archive (see `warden_bundle`).
pub fn read_tar_gz(bytes: &[u8], limits: &ArchiveLimits) -> Result<Files, BundleError> {
    warden_bundle::read_tar_gz(bytes, limits).map_err(BundleError::from)
}

/// Reads every file under a bundle directory (see `warden_bundle`).
pub fn read_dir(root: &Path, limits: &ArchiveLimits) -> Result<Files, BundleError> {
    warden_bundle::read_dir(root, limits).map_err(BundleError::from)
}
pub use manifest::Manifest;

/// The entrypoint a bundle gets unless its manifest names another.
pub const DEFAULT_ENTRYPOINT: &str = "warden/authz/decision";

/// Top-level data paths that Warden fills itself; a bundle may not write
/// there, so no bundle can replace the identities, entitlements or kill
/// switches that bind the agents.
pub const RESERVED_ROOTS: [&str; 3] = ["identity", "entitlements", "killswitch"];

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read bundle: {0}")]
    Io(String),
    #[error("bundle archive {reason}")]
    Archive {
        reason: String,
        limit: Option<Limit>,
    },
    #[error("bundle manifest: {0}")]
    Manifest(String),
    #[error("bundle data `{path}`: {reason}")]
    Data { path: String, reason: String },
    #[error("bundle roots: {0}")]
    Roots(String),
    #[error("bundle module `{path}`: {message}")]
    Module { path: String, message: String },
    #[error("bundle has no policy: it holds no `.rego` module and no `policy.wasm`")]
    Empty,
}

impl From<warden_bundle::ArchiveError> for BundleError {
    fn from(e: warden_bundle::ArchiveError) -> Self {
        BundleError::Archive {
            reason: e.reason,
            limit: e.limit,
        }
    }
}

impl BundleError {
    /// The archive bound the bundle went over, if that is why it was refused.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            BundleError::Archive { limit, .. } => *limit,
            _ => None,
        }
    }
}

/// One Rego module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoModule {
    /// Path inside the bundle, used in compiler messages.
    pub path: String,
    pub source: String,
    /// Whether the module is in Rego v0 syntax (manifest `rego_version: 0`).
    pub rego_v0: bool,
}

/// A compiled Wasm module shipped in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmModule {
    /// Path inside the bundle.
    pub path: String,
    /// The entrypoint the manifest pairs with this module.
    pub entrypoint: String,
    pub bytes: Vec<u8>,
}

/// A loaded, checked bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The manifest's revision, or `sha256:<digest prefix>` when it has none.
    pub revision: String,
    /// SHA-256 over every file's path and content, hex.
    pub digest: String,
    /// Slash-separated path of the decision rule (`warden/authz/decision`).
    pub entrypoint: String,
    pub manifest: Manifest,
    pub modules: Vec<RegoModule>,
    pub wasm: Vec<WasmModule>,
    /// All `data.json` files merged into one document, parsed straight
    /// into the engines' representation with equal strings shared: the
    /// compiled policy and the bundle's tests share this one copy.
    pub data: Value,
}

impl Bundle {
    /// Loads a bundle from a directory or a `.tar.gz` file.
    pub fn load(path: &Path, limits: &ArchiveLimits) -> Result<Self, BundleError> {
        let files = if path.is_dir() {
            read_dir(path, limits)?
        } else {
            let bytes = std::fs::read(path)
                .map_err(|e| BundleError::Io(format!("`{}`: {e}", path.display())))?;
            read_tar_gz(&bytes, limits)?
        };
        Self::from_files(files)
    }

    /// Builds a bundle from its files.
    ///
    /// Consumes the files: each `data.json`'s bytes are freed once parsed,
    /// and module sources and Wasm bytes are moved, not copied.
    pub fn from_files(files: Files) -> Result<Self, BundleError> {
        let manifest = match files.get(".manifest") {
            Some(bytes) => Manifest::parse(bytes)?,
            None => Manifest::default(),
        };
        manifest.check_reserved_roots()?;
        let digest = digest(&files);

        let wanted: Vec<&str> = manifest
            .wasm
            .iter()
            .map(|entry| entry.module.trim_start_matches('/'))
            .collect();
        let mut wasm_files = Files::new();
        let mut modules = Vec::new();
        let mut data = Value::new_object();
        for (path, content) in files {
            let name = path.rsplit('/').next().unwrap_or(&path);
            if path.ends_with(".rego") {
                let source = String::from_utf8(content).map_err(|_| BundleError::Module {
                    path: path.clone(),
                    message: "is not UTF-8".into(),
                })?;
                let rego_v0 = manifest.rego_v0(&path);
                modules.push(RegoModule {
                    path,
                    source,
                    rego_v0,
                });
            } else if name == "data.json" {
                let document = crate::intern::parse(&content).map_err(|e| BundleError::Data {
                    path: path.clone(),
                    reason: format!("is not valid JSON: {e}"),
                })?;
                drop(content);
                let at: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
                let at = &at[..at.len().saturating_sub(1)];
                manifest.check_data(at, &document, &path)?;
                merge_at(&mut data, at, document, &path)?;
            } else if name == "data.yaml" || name == "data.yml" {
                return Err(BundleError::Data {
                    path: path.clone(),
                    reason: "YAML data is not supported; use data.json".into(),
                });
            } else if wanted.contains(&path.as_str()) {
                wasm_files.insert(path, content);
            }
        }

        let mut wasm = Vec::new();
        for entry in &manifest.wasm {
            let path = entry.module.trim_start_matches('/');
            // Several entrypoints may share one module.
            let bytes = wasm_files.get(path).cloned().ok_or_else(|| {
                BundleError::Manifest(format!(
                    "wasm module `{}` for entrypoint `{}` is not in the bundle",
                    entry.module, entry.entrypoint
                ))
            })?;
            wasm.push(WasmModule {
                path: path.to_owned(),
                entrypoint: entry.entrypoint.clone(),
                bytes,
            });
        }
        if modules.is_empty() && wasm.is_empty() {
            return Err(BundleError::Empty);
        }

        let revision = match &manifest.revision {
            Some(revision) if !revision.is_empty() => revision.clone(),
            _ => format!("sha256:{}", &digest[..16]),
        };
        let entrypoint = manifest
            .entrypoint()
            .unwrap_or(DEFAULT_ENTRYPOINT)
            .trim_matches('/')
            .to_owned();
        Ok(Bundle {
            revision,
            digest,
            entrypoint,
            manifest,
            modules,
            wasm,
            data,
        })
    }

    /// The entrypoint as a Rego reference (`data.warden.authz.decision`).
    pub fn entrypoint_ref(&self) -> String {
        format!("data.{}", self.entrypoint.replace('/', "."))
    }

    /// Parses the Rego modules, checking that every package lies inside the
    /// bundle's roots and outside Warden's reserved paths.
    pub fn parse_modules(&self) -> Result<warden_rego::Parsed, BundleError> {
        let modules: Vec<warden_rego::Module> = self
            .modules
            .iter()
            .map(|m| warden_rego::Module {
                path: m.path.clone(),
                source: m.source.clone(),
                rego_v0: m.rego_v0,
            })
            .collect();
        let module_error = |e: warden_rego::RegoError| match e {
            warden_rego::RegoError::Parse { path, message } => {
                BundleError::Module { path, message }
            }
            other => BundleError::Module {
                path: String::new(),
                message: other.to_string(),
            },
        };
        let parsed = warden_rego::parse(&modules).map_err(module_error)?;
        for (module, package) in parsed.packages().map_err(module_error)? {
            let package: Vec<&str> = package.iter().map(String::as_str).collect();
            self.manifest
                .check_package(&package)
                .map_err(|reason| BundleError::Module {
                    path: module,
                    message: reason,
                })?;
        }
        Ok(parsed)
    }
}

/// Content digest: path and content of every file, in path order, each
/// length-prefixed so that no two different bundles hash alike.
fn digest(files: &Files) -> String {
    let mut hasher = Sha256::new();
    for (path, content) in files {
        hasher.update((path.len() as u64).to_be_bytes());
        hasher.update(path.as_bytes());
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content);
    }
    hex::encode(hasher.finalize())
}

/// Places `document` at `at` inside `data`, merging objects; two files that
/// set the same non-object value conflict.
fn merge_at(data: &mut Value, at: &[&str], document: Value, file: &str) -> Result<(), BundleError> {
    let mut target = data;
    for segment in at {
        let Ok(map) = target.as_object_mut() else {
            return Err(conflict(file));
        };
        target = map.get_or_insert_with(Value::from(*segment), Value::new_object);
    }
    merge(target, document).map_err(|()| conflict(file))
}

fn merge(target: &mut Value, document: Value) -> Result<(), ()> {
    match (target, document) {
        (Value::Object(existing), Value::Object(incoming)) => {
            let existing = regorus::Rc::make_mut(existing);
            for (key, value) in regorus::Rc::unwrap_or_clone(incoming) {
                match existing.get_mut(&key) {
                    Some(slot) => merge(slot, value)?,
                    None => {
                        existing.insert(key, value);
                    }
                }
            }
            Ok(())
        }
        (target @ Value::Object(_), value)
            if target.as_object().is_ok_and(|map| map.is_empty()) =>
        {
            *target = value;
            Ok(())
        }
        _ => Err(()),
    }
}

fn conflict(file: &str) -> BundleError {
    BundleError::Data {
        path: file.to_owned(),
        reason: "overlaps data set by another file".into(),
    }
}

#[cfg(test)]
mod tests;
