//! Reading and layering: defaults, the file, `WARDEN_<SECTION>_<KEY>`
//! variables, and the checks that span sections. `config` and `refusal`
//! make a configuration from variables for each section's own tests.

use super::*;
use std::collections::HashMap;

use crate::engine::EngineKind;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn defaults_are_design_defaults() -> Result<(), ConfigError> {
    let config = Config::try_from(RawConfig::load(None, env(&[]))?)?;
    assert_eq!(config.decision_addr.to_string(), "127.0.0.1:50051");
    assert_eq!(config.ops_addr.to_string(), "127.0.0.1:9090");
    assert_eq!(config.data_dir, PathBuf::from("./warden-data"));
    assert_eq!(config.bundle, PathBuf::from("policies"));
    assert_eq!(config.engine.engine, EngineKind::Native);
    assert_eq!(config.engine.eval.timeout, Duration::from_millis(50));
    assert_eq!(config.max_age, MaxAge::default());
    assert_eq!(config.limits, Limits::default());
    Ok(())
}

#[test]
fn env_overrides_file_and_is_typed_by_the_default() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        "[server]\ndecision_addr = \"127.0.0.1:1\"\n[policy]\neval_timeout_ms = 7\n",
    )?;
    let raw = RawConfig::load(
        Some(&path),
        env(&[
            ("WARDEN_SERVER_DECISION_ADDR", "127.0.0.1:2"),
            ("WARDEN_LIMITS_MAX_BATCH_ITEMS", "9"),
        ]),
    )?;
    let config = Config::try_from(raw)?;
    assert_eq!(config.decision_addr.to_string(), "127.0.0.1:2");
    assert_eq!(config.engine.eval.timeout, Duration::from_millis(7));
    assert_eq!(config.limits.max_batch_items, 9);
    Ok(())
}

#[test]
fn unknown_keys_and_bad_values_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, "[server]\ndecision_adr = \"127.0.0.1:1\"\n")?;
    let err = RawConfig::load(Some(&path), env(&[]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("decision_adr"), "{err}");

    let err = RawConfig::load(None, env(&[("WARDEN_LIMITS_MAX_ID_BYTES", "lots")]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("WARDEN_LIMITS_MAX_ID_BYTES"), "{err}");

    let raw = RawConfig::load(None, env(&[("WARDEN_POLICY_ENGINE", "quantum")]))?;
    let err = Config::try_from(raw)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("policy.engine") && err.contains("quantum"),
        "{err}"
    );

    let raw = RawConfig::load(None, env(&[("WARDEN_SNAPSHOTS_MAX_AGE", "soon")]))?;
    assert!(Config::try_from(raw).is_err());
    Ok(())
}

/// The configuration these variables make, or why there is none.
pub(crate) fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
    RawConfig::load(None, env(vars))
        .map_err(|e| e.to_string())
        .and_then(|raw| Config::try_from(raw).map_err(|e| e.to_string()))
}

pub(crate) fn refusal(vars: &[(&str, &str)]) -> String {
    config(vars).err().unwrap_or_default()
}

#[test]
fn only_loopback_may_run_open_unless_insecure_is_said() {
    let err = refusal(&[("WARDEN_SERVER_ADMIN_ADDR", "0.0.0.0:50052")]);
    assert!(
        err.contains("server.admin_addr") && err.contains("insecure"),
        "{err}"
    );
    let digest = crate::auth::hash_token("t");
    let tokens = format!("[{{ name = \"a\", sha256 = \"{digest}\", roles = [\"auditor\"] }}]");
    // Credentials without TLS would travel in the clear.
    let err = refusal(&[
        ("WARDEN_SERVER_ADMIN_ADDR", "0.0.0.0:50052"),
        ("WARDEN_AUTH_TOKENS", &tokens),
    ]);
    assert!(err.contains("TLS"), "{err}");
    let insecure = config(&[
        ("WARDEN_SERVER_ADMIN_ADDR", "0.0.0.0:50052"),
        ("WARDEN_SERVER_INSECURE", "true"),
    ]);
    assert!(insecure.is_ok_and(|c| c.insecure));
}

#[test]
fn snapshots_and_bundles_keep_their_own_history_lengths() -> Result<(), String> {
    let config = config(&[("WARDEN_SNAPSHOTS_KEEP", "2"), ("WARDEN_BUNDLES_KEEP", "7")])?;
    let control = crate::server::control_config(&config);
    assert_eq!((control.snapshot_keep, control.bundle_keep), (2, 7));
    Ok(())
}

#[test]
fn the_session_path_is_an_input_path() -> Result<(), String> {
    let default = config(&[])?;
    assert_eq!(default.session_path.as_str(), "context.session_id");
    let custom = config(&[("WARDEN_LIMITS_SESSION_PATH", "agent.attributes.session")])?;
    let control = crate::server::control_config(&custom);
    assert_eq!(control.session_path.as_str(), "agent.attributes.session");
    for bad in ["", "session_id", "context", "context..a"] {
        let err = refusal(&[("WARDEN_LIMITS_SESSION_PATH", bad)]);
        assert!(err.contains("limits.session_path"), "{bad}: {err}");
    }
    Ok(())
}
