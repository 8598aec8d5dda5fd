//! Identity and entitlement snapshots: parsed, schema-checked, ready to be
//! placed in the data document at `data.identity` and `data.entitlements`.
//!
//! A snapshot is parsed straight into a regorus value and checked by walking
//! it, so a snapshot of a million grants is held once, not once per layer.

pub mod config;

use std::fmt;
use std::time::{Duration, SystemTime};

use regorus::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The two kinds of snapshot; each lives at `data.<kind>`.
/// How old each snapshot kind may be before checks deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxAge {
    pub identity: Option<Duration>,
    pub entitlements: Option<Duration>,
}

impl MaxAge {
    pub fn of(&self, kind: SnapshotKind) -> Option<Duration> {
        match kind {
            SnapshotKind::Identity => self.identity,
            SnapshotKind::Entitlements => self.entitlements,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SnapshotKind {
    Identity,
    Entitlements,
}

impl SnapshotKind {
    pub const ALL: [SnapshotKind; 2] = [SnapshotKind::Identity, SnapshotKind::Entitlements];

    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Identity => "identity",
            SnapshotKind::Entitlements => "entitlements",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The keys the document may carry besides `version` and `generated_at`.
    fn sections(self) -> &'static [&'static str] {
        match self {
            SnapshotKind::Identity => &["users", "agents", "groups"],
            SnapshotKind::Entitlements => &["subjects"],
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a snapshot was refused; `path` points into the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("{kind} snapshot is not valid JSON: {message}")]
    Json { kind: SnapshotKind, message: String },
    #[error("{kind} snapshot: `{path}` {reason}")]
    Schema {
        kind: SnapshotKind,
        path: String,
        reason: String,
    },
}

/// A validated snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub kind: SnapshotKind,
    pub version: String,
    pub generated_at: OffsetDateTime,
    /// What policies see at `data.<kind>`: the document without `version`
    /// and `generated_at`.
    pub document: Value,
    /// SHA-256 of the bytes the snapshot was parsed from, hex.
    pub sha256: String,
    /// Size of those bytes.
    pub size: usize,
}

impl Snapshot {
    /// Parses and checks a snapshot document. `max_id_bytes` bounds every id
    /// and key.
    pub fn parse(
        kind: SnapshotKind,
        bytes: &[u8],
        max_id_bytes: usize,
    ) -> Result<Self, SnapshotError> {
        let value: Value = crate::intern::parse(bytes).map_err(|e| SnapshotError::Json {
            kind,
            message: e.to_string(),
        })?;
        let checker = Checker { kind, max_id_bytes };
        let top = checker.object(&value, "")?;

        for (key, _) in top.iter() {
            let name = key.as_string().map(|s| s.as_ref()).unwrap_or_default();
            if name != "version" && name != "generated_at" && !kind.sections().contains(&name) {
                return Err(checker.error(
                    name,
                    format!(
                        "is not a known key; expected `version`, `generated_at` or {}",
                        kind.sections()
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }

        let version = checker.required_string(&value, "version")?;
        if version.is_empty() || version.len() > max_id_bytes {
            return Err(checker.error("version", format!("must be 1 to {max_id_bytes} bytes")));
        }
        let generated_at = checker.required_string(&value, "generated_at")?;
        let generated_at = OffsetDateTime::parse(&generated_at, &Rfc3339)
            .map_err(|e| checker.error("generated_at", format!("is not an RFC 3339 time: {e}")))?;

        let mut document = std::collections::BTreeMap::new();
        for section in kind.sections() {
            let item = &value[*section];
            let item = match item {
                Value::Undefined => Value::new_object(),
                _ => item.clone(),
            };
            match kind {
                SnapshotKind::Identity => checker.identity_section(section, &item)?,
                SnapshotKind::Entitlements => checker.subjects(&item)?,
            }
            document.insert(Value::from(*section), item);
        }

        Ok(Snapshot {
            kind,
            version,
            generated_at,
            document: Value::from(document),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len(),
        })
    }

    /// How long ago the snapshot was generated; zero if it claims the future.
    pub fn age(&self, now: SystemTime) -> Duration {
        let now = OffsetDateTime::from(now);
        (now - self.generated_at)
            .try_into()
            .unwrap_or(Duration::ZERO)
    }
}

struct Checker {
    kind: SnapshotKind,
    max_id_bytes: usize,
}

impl Checker {
    fn error(&self, path: &str, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Schema {
            kind: self.kind,
            path: if path.is_empty() {
                "(document)".into()
            } else {
                path.into()
            },
            reason: reason.into(),
        }
    }

    fn object<'v>(
        &self,
        value: &'v Value,
        path: &str,
    ) -> Result<&'v regorus::value::Object, SnapshotError> {
        value
            .as_object()
            .map_err(|_| self.error(path, "must be an object"))
    }

    fn required_string(&self, value: &Value, key: &str) -> Result<String, SnapshotError> {
        match &value[key] {
            Value::Undefined => Err(self.error(key, "is required")),
            Value::String(s) => Ok(s.to_string()),
            _ => Err(self.error(key, "must be a string")),
        }
    }

    /// Checks an id used as a key or a reference: bounded and printable.
    fn id<'v>(&self, value: &'v Value, path: &str) -> Result<&'v str, SnapshotError> {
        let Value::String(s) = value else {
            return Err(self.error(path, "must be a string"));
        };
        if s.is_empty() || s.len() > self.max_id_bytes {
            return Err(self.error(path, format!("must be 1 to {} bytes", self.max_id_bytes)));
        }
        if s.chars().any(char::is_control) {
            return Err(self.error(path, "must not contain control characters"));
        }
        Ok(s)
    }

    /// Walks an object whose keys are ids, checking each entry with `entry`.
    fn keyed<F>(&self, value: &Value, path: &str, mut entry: F) -> Result<(), SnapshotError>
    where
        F: FnMut(&str, &Value) -> Result<(), SnapshotError>,
    {
        for (key, item) in self.object(value, path)?.iter() {
            let id = self.id(key, path)?;
            entry(&format!("{path}.{id}"), item)?;
        }
        Ok(())
    }

    /// Checks an object against its allowed keys; `required` must be present.
    fn fields(
        &self,
        value: &Value,
        path: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> Result<(), SnapshotError> {
        let object = self.object(value, path)?;
        for (key, _) in object.iter() {
            let name = key.as_string().map(|s| s.as_ref()).unwrap_or_default();
            if !allowed.contains(&name) {
                return Err(self.error(
                    &format!("{path}.{name}"),
                    format!("is not a known key; expected one of {}", allowed.join(", ")),
                ));
            }
        }
        for name in required {
            if matches!(value[*name], Value::Undefined) {
                return Err(self.error(&format!("{path}.{name}"), "is required"));
            }
        }
        if !matches!(value["attributes"], Value::Undefined | Value::Object(_)) {
            return Err(self.error(&format!("{path}.attributes"), "must be an object"));
        }
        Ok(())
    }

    fn id_list(
        &self,
        value: &Value,
        path: &str,
        each: impl Fn(&str, &str) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let items = value
            .as_array()
            .map_err(|_| self.error(path, "must be a list"))?;
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let id = self.id(item, &item_path)?;
            each(id, &item_path)?;
        }
        Ok(())
    }

    fn identity_section(&self, section: &str, value: &Value) -> Result<(), SnapshotError> {
        match section {
            "users" => self.keyed(value, "users", |path, user| {
                self.fields(user, path, &["groups", "attributes"], &[])?;
                match &user["groups"] {
                    Value::Undefined => Ok(()),
                    groups => self.id_list(groups, &format!("{path}.groups"), |_, _| Ok(())),
                }
            }),
            "agents" => self.keyed(value, "agents", |path, agent| {
                self.fields(
                    agent,
                    path,
                    &["owner", "platform", "grants", "attributes"],
                    &["owner", "platform", "grants"],
                )?;
                self.id(&agent["owner"], &format!("{path}.owner"))?;
                self.id(&agent["platform"], &format!("{path}.platform"))?;
                self.id_list(&agent["grants"], &format!("{path}.grants"), |p, at| {
                    self.pattern(p, at)
                })
            }),
            _ => self.keyed(value, "groups", |path, group| {
                self.fields(group, path, &["attributes"], &[])
            }),
        }
    }

    fn subjects(&self, value: &Value) -> Result<(), SnapshotError> {
        self.keyed(value, "subjects", |path, by_type| {
            let subject = path.trim_start_matches("subjects.");
            match subject.split_once(':') {
                Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {}
                _ => {
                    return Err(
                        self.error(path, "is not a subject; expected `user:ID` or `group:ID`")
                    );
                }
            }
            self.keyed(by_type, path, |path, by_id| {
                self.keyed(by_id, path, |path, patterns| {
                    self.id_list(patterns, path, |p, at| self.pattern(p, at))
                })
            })
        })
    }

    /// Action patterns: `*`, or dotted names whose first or last segment may
    /// be `*` (`documents.*`, `*.delete`).
    fn pattern(&self, pattern: &str, path: &str) -> Result<(), SnapshotError> {
        if pattern == "*" {
            return Ok(());
        }
        let segments: Vec<&str> = pattern.split('.').collect();
        let last = segments.len() - 1;
        let well_formed = segments.iter().enumerate().all(|(i, segment)| {
            (*segment == "*" && (i == 0 || i == last) && last > 0)
                || (!segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        }) && !(last > 0 && segments[0] == "*" && segments[last] == "*");
        if well_formed {
            Ok(())
        } else {
            Err(self.error(path, format!("`{pattern}` is not an action pattern such as `documents.read`, `documents.*` or `*.delete`")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: SnapshotKind, document: serde_json::Value) -> Result<Snapshot, SnapshotError> {
        Snapshot::parse(kind, document.to_string().as_bytes(), 64)
    }

    fn identity(extra: serde_json::Value) -> serde_json::Value {
        let mut document = json!({
            "version": "v1",
            "generated_at": "2026-11-01T00:00:00Z",
            "users": {"alice": {"groups": ["finance"], "attributes": {"email": "a@example.com"}}},
            "agents": {"bot": {"owner": "alice", "platform": "p", "grants": ["documents.*", "*.read", "*"], "attributes": {}}},
            "groups": {"finance": {"attributes": {}}}
        });
        if let (Some(target), Some(extra)) = (document.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        document
    }

    fn refusal(kind: SnapshotKind, document: serde_json::Value) -> String {
        parse(kind, document)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "accepted".into())
    }

    #[test]
    fn accepts_design_shapes_and_strips_metadata() {
        let snapshot = parse(SnapshotKind::Identity, identity(json!({}))).unwrap();
        assert_eq!(snapshot.version, "v1");
        assert_eq!(
            snapshot.document["users"]["alice"]["groups"][0],
            Value::from("finance")
        );
        assert_eq!(snapshot.document["version"], Value::Undefined);
        let entitlements = parse(
            SnapshotKind::Entitlements,
            json!({"version": "e1", "generated_at": "2026-11-01T00:00:00+02:00",
                   "subjects": {"user:alice": {"document": {"*": ["documents.read"], "d1": ["documents.*"]}}}}),
        )
        .unwrap();
        assert_eq!(
            entitlements.document["subjects"]["user:alice"]["document"]["*"][0],
            Value::from("documents.read")
        );
        // Missing sections are empty.
        let empty = parse(
            SnapshotKind::Identity,
            json!({"version": "v", "generated_at": "2026-11-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(empty.document["users"], Value::new_object());
    }

    #[test]
    fn refuses_what_does_not_fit_the_schema() {
        use SnapshotKind::*;
        for (kind, document, expected) in [
            (
                Identity,
                identity(json!({"extra": 1})),
                "`extra` is not a known key",
            ),
            (
                Identity,
                json!({"generated_at": "2026-11-01T00:00:00Z"}),
                "`version` is required",
            ),
            (
                Identity,
                identity(json!({"version": ""})),
                "`version` must be",
            ),
            (
                Identity,
                identity(json!({"generated_at": "yesterday"})),
                "RFC 3339",
            ),
            (
                Identity,
                identity(json!({"users": {"bob": {"groups": "finance"}}})),
                "`users.bob.groups` must be a list",
            ),
            (
                Identity,
                identity(json!({"users": {"bob": {"role": "x"}}})),
                "`users.bob.role` is not a known key",
            ),
            (
                Identity,
                identity(json!({"users": {"b\u{7}": {}}})),
                "control characters",
            ),
            (
                Identity,
                identity(json!({"users": {"x".repeat(65): {}}})),
                "must be 1 to 64 bytes",
            ),
            (
                Identity,
                identity(json!({"agents": {"bot": {"owner": "a", "platform": "p"}}})),
                "`agents.bot.grants` is required",
            ),
            (
                Identity,
                identity(
                    json!({"agents": {"bot": {"owner": "a", "platform": "p", "grants": ["documents.**"]}}}),
                ),
                "not an action pattern",
            ),
            (
                Identity,
                identity(
                    json!({"agents": {"bot": {"owner": "a", "platform": "p", "grants": ["a.*.b"]}}}),
                ),
                "not an action pattern",
            ),
            (
                Identity,
                identity(
                    json!({"agents": {"bot": {"owner": "a", "platform": "p", "grants": ["*.*"]}}}),
                ),
                "not an action pattern",
            ),
            (
                Identity,
                identity(json!({"groups": {"g": {"attributes": []}}})),
                "`groups.g.attributes` must be an object",
            ),
            (Identity, json!([1]), "must be an object"),
            (
                Entitlements,
                json!({"version": "v", "generated_at": "2026-11-01T00:00:00Z", "subjects": {"alice": {}}}),
                "not a subject",
            ),
            (
                Entitlements,
                json!({"version": "v", "generated_at": "2026-11-01T00:00:00Z", "subjects": {"user:a": {"doc": {"*": "documents.read"}}}}),
                "must be a list",
            ),
            (
                Entitlements,
                json!({"version": "v", "generated_at": "2026-11-01T00:00:00Z", "users": {}}),
                "`users` is not a known key",
            ),
        ] {
            let message = refusal(kind, document);
            assert!(
                message.contains(expected),
                "expected `{expected}`, got `{message}`"
            );
        }
        let message = Snapshot::parse(Identity, b"{not json", 64)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("not valid JSON"), "{message}");
    }

    #[test]
    fn age_counts_from_generated_at() {
        let snapshot = parse(SnapshotKind::Identity, identity(json!({}))).unwrap();
        let generated: SystemTime = snapshot.generated_at.into();
        assert_eq!(
            snapshot.age(generated + Duration::from_secs(90)),
            Duration::from_secs(90)
        );
        assert_eq!(
            snapshot.age(generated - Duration::from_secs(90)),
            Duration::ZERO
        );
    }
}
