//! Validating an engage request before anything is stored.

use std::time::SystemTime;

use super::{Mode, Scope, unix_ms};
use crate::request::first_invisible;

/// The longest `reason` an operator may give.
pub const MAX_REASON_BYTES: usize = 1024;

/// A request to engage a switch, as the admin API received it.
#[derive(Debug, Clone, Default)]
pub struct EngageSpec {
    pub scope: Scope,
    pub mode: Option<Mode>,
    pub reason: String,
    /// RFC 3339, or empty.
    pub expires_at: String,
    /// Zero when absent.
    pub ttl_seconds: u64,
    pub global: bool,
    pub engaged_by: String,
    /// Chosen by the caller (a fan-out to several replicas), or empty.
    pub id: String,
}

/// Why an engage or release request was refused; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct SpecError {
    pub field: String,
    pub reason: String,
}

fn error(field: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A validated engage request: the scope with empty fields dropped, and the
/// expiry resolved to milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEngage {
    /// The caller's id for the switch, if it chose one.
    pub id: Option<String>,
    pub scope: Scope,
    pub mode: Mode,
    pub reason: String,
    pub expires_at_ms: Option<u64>,
    pub engaged_by: String,
}

/// Checks an engage request against the id limits checks use, at `now`.
pub fn validate_engage(
    spec: EngageSpec,
    max_id_bytes: usize,
    now: SystemTime,
) -> Result<ValidEngage, SpecError> {
    let scope = Scope {
        platform: id_field("scope.platform", spec.scope.platform, max_id_bytes)?,
        agent_id: id_field("scope.agent_id", spec.scope.agent_id, max_id_bytes)?,
        principal_id: id_field("scope.principal_id", spec.scope.principal_id, max_id_bytes)?,
        action: id_field("scope.action", spec.scope.action, max_id_bytes)?,
        resource_type: id_field(
            "scope.resource_type",
            spec.scope.resource_type,
            max_id_bytes,
        )?,
        session_id: id_field("scope.session_id", spec.scope.session_id, max_id_bytes)?,
    };
    if let Some(pattern) = &scope.action {
        check_action_pattern(pattern)?;
    }
    match (scope.is_global(), spec.global) {
        (true, false) => {
            return Err(error(
                "scope",
                "is empty; set `global` to stop every check, or name what to stop",
            ));
        }
        (false, true) => {
            return Err(error(
                "global",
                "is set but the scope is not empty; a global switch has no scope",
            ));
        }
        _ => {}
    }
    let reason = text_field("reason", spec.reason, true)?;
    let engaged_by = text_field("engaged_by", spec.engaged_by, false)?;
    let now_ms = unix_ms(now);
    let expires_at_ms = match (spec.expires_at.is_empty(), spec.ttl_seconds) {
        (true, 0) => None,
        (false, 0) => {
            let at = time::OffsetDateTime::parse(
                &spec.expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| error("expires_at", format!("is not an RFC 3339 time: {e}")))?;
            let ms = at.unix_timestamp_nanos() / 1_000_000;
            let ms = u64::try_from(ms).map_err(|_| error("expires_at", "is before 1970"))?;
            if ms <= now_ms {
                return Err(error("expires_at", "is not in the future"));
            }
            Some(ms)
        }
        (true, ttl) => Some(now_ms.saturating_add(ttl.saturating_mul(1000))),
        (false, _) => {
            return Err(error(
                "ttl_seconds",
                "cannot be given together with expires_at",
            ));
        }
    };
    Ok(ValidEngage {
        id: switch_id(spec.id)?,
        scope,
        mode: spec.mode.unwrap_or(Mode::DenyAll),
        reason,
        expires_at_ms,
        engaged_by,
    })
}

/// A caller-chosen switch id: `ks-` and 1 to 64 ASCII letters, digits or
/// dashes, so that it is safe in etcd keys, logs and reasons.
fn switch_id(id: String) -> Result<Option<String>, SpecError> {
    if id.is_empty() {
        return Ok(None);
    }
    let valid = id.strip_prefix("ks-").is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !valid {
        return Err(error(
            "id",
            "must be `ks-` followed by 1 to 64 letters, digits or dashes",
        ));
    }
    Ok(Some(id))
}

/// Validates a release or other free-text field.
pub fn text_field(field: &str, value: String, required: bool) -> Result<String, SpecError> {
    if required && value.trim().is_empty() {
        return Err(error(field, "is required"));
    }
    if value.len() > MAX_REASON_BYTES {
        return Err(error(
            field,
            format!("is {} bytes, more than {MAX_REASON_BYTES}", value.len()),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(error(field, "contains control characters"));
    }
    Ok(value)
}

fn id_field(
    field: &str,
    value: Option<String>,
    max_id_bytes: usize,
) -> Result<Option<String>, SpecError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > max_id_bytes {
        return Err(error(
            field,
            format!("is {} bytes, more than {max_id_bytes}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(error(field, "contains control characters"));
    }
    // A scope id is matched against check ids, which refuse these; one that
    // hides a character would also show the wrong target in audit and lists.
    if let Some(c) = first_invisible(&value) {
        return Err(error(
            field,
            format!(
                "contains invisible format or separator characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if value.trim() != value {
        return Err(error(field, "has leading or trailing whitespace"));
    }
    Ok(Some(value))
}

/// Patterns are dotted names, where a last segment `*` matches any suffix
/// (`documents.*`), or `*` alone. A `*` anywhere else would need a scan of
/// every switch per check, which the index exists to avoid.
fn check_action_pattern(pattern: &str) -> Result<(), SpecError> {
    if pattern == "*" {
        return Ok(());
    }
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    for segment in body.split('.') {
        if segment.is_empty() {
            return Err(error("scope.action", "has an empty segment"));
        }
        if segment.contains('*') {
            return Err(error(
                "scope.action",
                "may hold `*` only as its last segment (`documents.*`) or alone",
            ));
        }
    }
    Ok(())
}

/// Whether `name` matches a validated action pattern.
pub fn action_pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(scope: Scope) -> EngageSpec {
        EngageSpec {
            scope,
            reason: "incident 42".into(),
            ..EngageSpec::default()
        }
    }

    #[test]
    fn an_empty_scope_needs_the_global_flag() {
        let now = SystemTime::now();
        let refused = validate_engage(spec(Scope::default()), 256, now);
        assert_eq!(refused.map_err(|e| e.field), Err("scope".to_owned()));
        let global = EngageSpec {
            global: true,
            ..spec(Scope::default())
        };
        assert!(validate_engage(global, 256, now).is_ok());
        let both = EngageSpec {
            global: true,
            ..spec(Scope {
                platform: Some("p".into()),
                ..Scope::default()
            })
        };
        assert_eq!(
            validate_engage(both, 256, now).map_err(|e| e.field),
            Err("global".to_owned())
        );
    }

    #[test]
    fn empty_scope_fields_count_as_absent() {
        let scope = Scope {
            platform: Some(String::new()),
            ..Scope::default()
        };
        let refused = validate_engage(spec(scope), 256, SystemTime::now());
        assert_eq!(refused.map_err(|e| e.field), Err("scope".to_owned()));
    }

    #[test]
    fn scope_ids_refuse_invisible_format_and_separator_characters() {
        let now = SystemTime::now();
        type Slot = fn(&mut Scope) -> &mut Option<String>;
        let fields: [(&str, Slot); 6] = [
            ("scope.platform", |s| &mut s.platform),
            ("scope.agent_id", |s| &mut s.agent_id),
            ("scope.principal_id", |s| &mut s.principal_id),
            ("scope.action", |s| &mut s.action),
            ("scope.resource_type", |s| &mut s.resource_type),
            ("scope.session_id", |s| &mut s.session_id),
        ];
        for (field, slot) in fields {
            for c in [
                '\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}', '\u{2066}', '\u{00AD}',
            ] {
                let mut scope = Scope::default();
                *slot(&mut scope) = Some(format!("docs{c}read"));
                let refused = validate_engage(spec(scope), 256, now).map(|_| ());
                assert_eq!(
                    refused,
                    Err(SpecError {
                        field: field.to_owned(),
                        reason: format!(
                            "contains invisible format or separator characters (found U+{:04X})",
                            u32::from(c)
                        ),
                    })
                );
            }
            // The same id without the character is accepted.
            let mut scope = Scope::default();
            *slot(&mut scope) = Some("docs.read".to_owned());
            assert!(validate_engage(spec(scope), 256, now).is_ok(), "{field}");
        }
    }

    #[test]
    fn a_session_alone_is_a_scope_and_is_held_to_the_id_limits() {
        let now = SystemTime::now();
        let session = |id: &str| {
            spec(Scope {
                session_id: Some(id.into()),
                ..Scope::default()
            })
        };
        let valid = validate_engage(session("s1"), 256, now).map(|v| v.scope);
        assert_eq!(
            valid,
            Ok(Scope {
                session_id: Some("s1".into()),
                ..Scope::default()
            })
        );
        // A session is not global: the global flag is refused beside it.
        let both = EngageSpec {
            global: true,
            ..session("s1")
        };
        assert_eq!(
            validate_engage(both, 256, now).map_err(|e| e.field),
            Err("global".to_owned())
        );
        // Empty is absent, which leaves an empty scope.
        assert_eq!(
            validate_engage(session(""), 256, now).map_err(|e| e.field),
            Err("scope".to_owned())
        );
        for bad in ["s".repeat(9), " s1".into(), "s\n1".into()] {
            assert_eq!(
                validate_engage(session(&bad), 8, now).map_err(|e| e.field),
                Err("scope.session_id".to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn action_patterns_take_a_star_only_at_the_end() {
        for good in ["*", "documents.*", "documents.read", "a.b.*"] {
            assert!(check_action_pattern(good).is_ok(), "{good}");
        }
        for bad in ["doc*", "*.delete", "a..b", "a.*.b", ".*", "documents."] {
            assert!(check_action_pattern(bad).is_err(), "{bad}");
        }
        assert!(action_pattern_matches("documents.*", "documents.read"));
        assert!(!action_pattern_matches("documents.*", "documents"));
        assert!(!action_pattern_matches("documents.*", "documentsx.read"));
        assert!(action_pattern_matches("*", "x.y"));
        assert!(action_pattern_matches("a.b", "a.b"));
        assert!(!action_pattern_matches("a.b", "a.bc"));
    }

    #[test]
    fn expiry_is_a_time_in_the_future_or_a_ttl_never_both() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let scoped = || {
            spec(Scope {
                agent_id: Some("a".into()),
                ..Scope::default()
            })
        };
        let ttl = EngageSpec {
            ttl_seconds: 60,
            ..scoped()
        };
        let valid = validate_engage(ttl, 256, now).map(|v| v.expires_at_ms);
        assert_eq!(valid, Ok(Some(1_800_000_060_000)));
        let past = EngageSpec {
            expires_at: "2020-01-01T00:00:00Z".into(),
            ..scoped()
        };
        assert_eq!(
            validate_engage(past, 256, now).map_err(|e| e.field),
            Err("expires_at".to_owned())
        );
        let both = EngageSpec {
            expires_at: "2030-01-01T00:00:00Z".into(),
            ttl_seconds: 5,
            ..scoped()
        };
        assert_eq!(
            validate_engage(both, 256, now).map_err(|e| e.field),
            Err("ttl_seconds".to_owned())
        );
        let at = EngageSpec {
            expires_at: "2030-01-01T00:00:00.5Z".into(),
            ..scoped()
        };
        assert_eq!(
            validate_engage(at, 256, now).map(|v| v.expires_at_ms),
            Ok(Some(1_893_456_000_500))
        );
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        let scope = Scope {
            agent_id: Some("a".into()),
            ..Scope::default()
        };
        let empty = EngageSpec {
            reason: " ".into(),
            ..spec(scope.clone())
        };
        assert_eq!(
            validate_engage(empty, 256, SystemTime::now()).map_err(|e| e.field),
            Err("reason".to_owned())
        );
        let long = EngageSpec {
            reason: "x".repeat(MAX_REASON_BYTES + 1),
            ..spec(scope)
        };
        assert!(validate_engage(long, 256, SystemTime::now()).is_err());
    }
}
