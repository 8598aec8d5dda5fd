//! The bundle's `.manifest`, as OPA defines it, and the roots it declares.

use std::collections::BTreeMap;

use regorus::Value;
use serde::Deserialize;
use serde_json::Value as Json;

use super::{BundleError, RESERVED_ROOTS};

/// One `wasm` entry: which module implements which entrypoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WasmEntry {
    pub entrypoint: String,
    pub module: String,
}

/// OPA's bundle manifest. Fields OPA defines but Warden does not use are
/// accepted and ignored, so bundles built by OPA load as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub revision: Option<String>,
    /// Slash-separated data paths the bundle owns; `None` when the manifest
    /// does not say, which OPA reads as "everything".
    #[serde(default)]
    pub roots: Option<Vec<String>>,
    #[serde(default)]
    pub wasm: Vec<WasmEntry>,
    #[serde(default)]
    pub metadata: BTreeMap<String, Json>,
    #[serde(default)]
    pub rego_version: Option<u8>,
    #[serde(default)]
    pub file_rego_versions: BTreeMap<String, u8>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::Manifest(format!("is not valid: {e}")))?;
        for version in manifest
            .rego_version
            .iter()
            .chain(manifest.file_rego_versions.values())
        {
            if *version > 1 {
                return Err(BundleError::Manifest(format!(
                    "rego_version {version} is not 0 or 1"
                )));
            }
        }
        if manifest
            .metadata
            .get("entrypoint")
            .is_some_and(|e| !e.is_string())
        {
            return Err(BundleError::Manifest(
                "metadata.entrypoint must be a string".into(),
            ));
        }
        Ok(manifest)
    }

    /// The decision entrypoint: `metadata.entrypoint`, else the first Wasm
    /// entrypoint.
    pub fn entrypoint(&self) -> Option<&str> {
        self.metadata
            .get("entrypoint")
            .and_then(Json::as_str)
            .or_else(|| self.wasm.first().map(|w| w.entrypoint.as_str()))
    }

    /// Whether the module at `path` is Rego v0; OPA 1.x defaults to v1.
    pub fn rego_v0(&self, path: &str) -> bool {
        let version = self
            .file_rego_versions
            .iter()
            .find(|(pattern, _)| pattern.trim_start_matches('/') == path)
            .map(|(_, v)| *v)
            .or(self.rego_version);
        version == Some(0)
    }

    fn roots(&self) -> Option<Vec<Vec<&str>>> {
        self.roots
            .as_ref()
            .map(|roots| roots.iter().map(|root| segments(root)).collect())
    }

    /// Refuses roots that overlap Warden's reserved paths.
    pub fn check_reserved_roots(&self) -> Result<(), BundleError> {
        let Some(roots) = self.roots() else {
            return Ok(());
        };
        for (root, raw) in roots.iter().zip(self.roots.iter().flatten()) {
            for reserved in RESERVED_ROOTS {
                if overlaps(root, &[reserved]) {
                    return Err(BundleError::Roots(format!(
                        "root `{raw}` overlaps `{reserved}`, which only Warden fills (snapshots, kill switches)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks that data placed at `at` stays inside the roots and outside
    /// the reserved paths.
    pub fn check_data(&self, at: &[&str], document: &Value, file: &str) -> Result<(), BundleError> {
        let mut path = at.to_vec();
        self.check_data_at(&mut path, document)
            .map_err(|reason| BundleError::Data {
                path: file.to_owned(),
                reason,
            })
    }

    fn check_data_at<'a>(
        &self,
        path: &mut Vec<&'a str>,
        document: &'a Value,
    ) -> Result<(), String> {
        if RESERVED_ROOTS
            .iter()
            .any(|reserved| path.first() == Some(reserved))
        {
            return Err(format!(
                "writes to `data.{}`, which only Warden fills (snapshots, kill switches)",
                path.join(".")
            ));
        }
        // Reserved paths are one segment long, so only the root lies above them.
        let above_reserved = path.is_empty();
        if self.inside(path) && !above_reserved {
            return Ok(());
        }
        let above_root = self.roots().is_some_and(|roots| {
            roots
                .iter()
                .any(|root| root.len() > path.len() && root.starts_with(path))
        });
        match document {
            // What lies below decides.
            Value::Object(map) if above_reserved || above_root => {
                for (key, value) in map.iter() {
                    // Parsed from JSON, so every key is a string.
                    let Value::String(key) = key else {
                        return Err(format!(
                            "has a non-string key under `data.{}`",
                            path.join(".")
                        ));
                    };
                    path.push(key);
                    self.check_data_at(path, value)?;
                    path.pop();
                }
                Ok(())
            }
            _ if path.is_empty() => Err("must be an object".into()),
            _ => Err(format!(
                "writes to `data.{}`, outside the manifest's roots",
                path.join(".")
            )),
        }
    }

    /// Checks a package path the same way.
    pub fn check_package(&self, package: &[&str]) -> Result<(), String> {
        if RESERVED_ROOTS.iter().any(|r| overlaps(package, &[r])) {
            return Err(format!(
                "package `data.{}` overlaps Warden's snapshots (`data.identity`, `data.entitlements`)",
                package.join(".")
            ));
        }
        if !self.inside(package) {
            return Err(format!(
                "package `data.{}` is outside the manifest's roots",
                package.join(".")
            ));
        }
        Ok(())
    }

    /// Whether `path` lies at or below one of the roots.
    fn inside(&self, path: &[&str]) -> bool {
        match self.roots() {
            None => true,
            Some(roots) => roots.iter().any(|root| path.starts_with(root)),
        }
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Two paths overlap when one is a prefix of the other.
fn overlaps(a: &[&str], b: &[&str]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}
