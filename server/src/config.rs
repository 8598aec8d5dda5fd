//! Configuration: a TOML file, then `WARDEN_<SECTION>_<KEY>` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every key has a default. The raw form mirrors the file; `Config` is the
//! validated form the server runs with. Invalid configuration stops the
//! server before any listener opens.
//!
//! This module reads and layers the sources. Each section's raw form, its
//! validated form and its validation live with the module that uses it (a
//! `config` submodule there); the loader names them in `RawConfig` and calls
//! them in `Config::try_from`. The sections read by no single module
//! (`[server]`, and `[limits]`, whose keys several modules share out) stay
//! here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::AuditConfig;
use crate::audit::config::audit_config;
use crate::auth::Authenticator;
use crate::auth::config::authenticator;
use crate::bundle::ArchiveLimits;
use crate::bundle::config::{BundleConfig, bundle_config};
use crate::bundle::signature::VerificationKey;
use crate::cluster::config::cluster_config;
use crate::engine::EngineOptions;
use crate::engine::config::{PolicyConfig, policy_config};
use crate::generation::MaxAge;
use crate::http::config::authzen_config;
use crate::killswitch::config::read_verbs;
use crate::limits::config::{LimitsConfig, limits_config};
use crate::platform_limits::Quota;
use crate::platform_limits::config::platform_quotas;
use crate::request::{DEFAULT_SESSION_PATH, InputPath, Limits};
use crate::settings::{addr, duration, nonempty_path, positive};
use crate::snapshot::config::{SnapshotConfig, snapshot_config};
use crate::telemetry::config::telemetry_config;
use crate::transport::TlsSetup;
use crate::transport::config::{RawTransportLimits, tls_setup, transport_limits};

// Each section's types under the names they had when this module held them.
use crate::approval::config::approvals_config;
pub use crate::approval::config::{ApprovalsConfig, RawApprovals};
pub use crate::audit::config::RawAudit;
pub use crate::auth::config::{RawAuth, RawClient, RawToken};
pub use crate::bundle::config::{RawBundles, RawKey};
pub use crate::cluster::config::{ClusterConfig, RawCluster};
pub use crate::engine::config::RawPolicy;
pub use crate::http::config::{AuthzenConfig, RawAuthzen};
pub use crate::killswitch::config::RawKillSwitch;
pub use crate::platform_limits::config::RawPlatformLimit;
pub use crate::settings::ConfigError;
pub use crate::snapshot::config::RawSnapshots;
pub use crate::telemetry::config::{RawLog, RawTracing, TelemetryConfig};
pub use crate::transport::config::{RawTls, TransportLimits};

/// The configuration file's shape. Unknown keys are refused so that a typo
/// cannot silently leave a default in place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub policy: RawPolicy,
    pub snapshots: RawSnapshots,
    pub limits: RawLimits,
    pub bundles: RawBundles,
    pub killswitch: RawKillSwitch,
    pub audit: RawAudit,
    pub tls: RawTls,
    pub auth: RawAuth,
    pub authzen: RawAuthzen,
    pub log: RawLog,
    pub tracing: RawTracing,
    pub cluster: RawCluster,
    pub approvals: RawApprovals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub decision_addr: String,
    pub admin_addr: String,
    /// AuthZEN over HTTP; empty: no HTTP listener.
    pub http_addr: String,
    pub ops_addr: String,
    pub data_dir: String,
    /// How long in-flight checks get to finish after SIGTERM.
    pub shutdown_grace: String,
    /// Allow a non-loopback gRPC listener without TLS and credentials.
    pub insecure: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            decision_addr: "127.0.0.1:50051".into(),
            admin_addr: "127.0.0.1:50052".into(),
            http_addr: "127.0.0.1:8080".into(),
            ops_addr: "127.0.0.1:9090".into(),
            data_dir: "./warden-data".into(),
            shutdown_grace: "10s".into(),
            insecure: false,
        }
    }
}

/// `[limits]`: one table whose keys several modules use; the loader hands
/// each its own (`request`, `bundle`, `transport`, `platform_limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_request_bytes: u64,
    pub max_id_bytes: u64,
    pub max_batch_items: u64,
    pub max_delegation_chain: u64,
    pub max_audience: u64,
    /// Candidates one search call evaluates at most.
    pub max_search_evaluations: u64,
    pub max_attribute_depth: u64,
    pub max_bundle_files: u64,
    pub max_bundle_bytes: u64,
    /// Open connections per listener. When full, a newcomer takes the place
    /// of the oldest connection that never carried an admitted call.
    pub max_connections: u64,
    /// Open connections per listener from one source address.
    pub max_connections_per_source: u64,
    /// Concurrent calls on one HTTP/2 connection.
    pub max_streams_per_connection: u64,
    /// For the HTTP/2 preface after accept (or TLS), and the longest a
    /// connection that has carried no admitted call may stay quiet.
    pub preface_timeout: String,
    /// For an HTTP/1.1 request's headers, and the wait for the next request.
    pub header_read_timeout: String,
    /// An HTTP/1.1 request body's allowance before `body_min_rate` applies.
    pub body_timeout: String,
    /// Bytes a second an HTTP/1.1 request body must average after
    /// `body_timeout`.
    pub body_min_rate: u64,
    /// A connection that carried a call but has none in flight, and whose
    /// client has not pinged, is closed (HTTP/2 GOAWAY) after this long.
    pub idle_timeout: String,
    /// The server's HTTP/2 PINGs to an idle connection, and how long it
    /// waits for the acknowledgement before closing a dead one.
    pub keepalive_interval: String,
    pub keepalive_timeout: String,
    /// Longest a decision-listener call may take, whatever its deadline.
    pub check_timeout: String,
    /// Longest an admin-listener call may take (pushing a large bundle
    /// compiles it).
    pub admin_timeout: String,
    /// Checks per second per platform (0: no limit).
    pub platform_rate: f64,
    /// Checks a platform may send at once above its rate (0: one second's
    /// worth).
    pub platform_burst: f64,
    /// Check calls in flight per platform (0: no limit).
    pub platform_max_in_flight: u64,
    /// Per-platform overrides of the three above.
    pub platform: Vec<RawPlatformLimit>,
    /// Where a check's agent session id is read (`context.session_id`), for
    /// kill switches and limits scoped to one session.
    pub session_path: String,
    /// Budget and tripwire counter keys held at most.
    pub max_keys: u64,
    /// `deny` or `allow`: a check that needs a new counter key when
    /// `max_keys` live ones are held.
    pub on_full: String,
    /// How often counters are written to the store (the most a crash can
    /// forget).
    pub counter_snapshot_interval: String,
    /// Cluster mode: how often a replica publishes its limit usage.
    pub usage_publish_interval: String,
}

impl Default for RawLimits {
    fn default() -> Self {
        let request = Limits::default();
        let archive = ArchiveLimits::default();
        Self {
            max_request_bytes: request.max_request_bytes as u64,
            max_id_bytes: request.max_id_bytes as u64,
            max_batch_items: request.max_batch_items as u64,
            max_delegation_chain: request.max_delegation_chain as u64,
            max_audience: request.max_audience as u64,
            max_search_evaluations: request.max_search_evaluations as u64,
            max_attribute_depth: request.max_attribute_depth as u64,
            max_bundle_files: archive.max_files as u64,
            max_bundle_bytes: archive.max_total_bytes,
            max_connections: 4096,
            max_connections_per_source: 1024,
            max_streams_per_connection: 1024,
            preface_timeout: "10s".into(),
            header_read_timeout: "10s".into(),
            body_timeout: "5s".into(),
            body_min_rate: 1024,
            idle_timeout: "5m".into(),
            keepalive_interval: "30s".into(),
            keepalive_timeout: "20s".into(),
            check_timeout: "5s".into(),
            admin_timeout: "120s".into(),
            platform_rate: 0.0,
            platform_burst: 0.0,
            platform_max_in_flight: 4096,
            platform: Vec::new(),
            session_path: DEFAULT_SESSION_PATH.into(),
            max_keys: 1_000_000,
            on_full: "deny".into(),
            counter_snapshot_interval: "1s".into(),
            usage_publish_interval: "250ms".into(),
        }
    }
}

impl RawConfig {
    /// Reads `path` (when given) and applies `WARDEN_<SECTION>_<KEY>`
    /// variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.map_or_else(|| PathBuf::from("(environment)"), Path::to_owned),
                message: e.to_string(),
            })
    }
}

/// Overlays every `WARDEN_<SECTION>_<KEY>` that is set. The keys are the
/// defaults' keys, so the list can never drift from the structs above.
fn apply_env(
    table: &mut toml::Table,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let defaults =
        toml::Table::try_from(RawConfig::default()).map_err(|e| ConfigError::Invalid {
            key: "(defaults)",
            message: e.to_string(),
        })?;
    for (section, keys) in &defaults {
        let Some(keys) = keys.as_table() else {
            continue;
        };
        for (key, default) in keys {
            let name = format!("WARDEN_{}_{}", section.to_uppercase(), key.to_uppercase());
            let Some(raw) = env(&name) else { continue };
            let value = if default.is_str() {
                toml::Value::String(raw)
            } else {
                // Numbers, booleans and lists are written as in TOML.
                let parsed: toml::Table =
                    format!("v = {raw}").parse().map_err(|e: toml::de::Error| {
                        ConfigError::Env {
                            name: name.clone(),
                            message: e.message().to_owned(),
                        }
                    })?;
                parsed.get("v").cloned().ok_or_else(|| ConfigError::Env {
                    name: name.clone(),
                    message: "has no value".into(),
                })?
            };
            let section_table = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section_table) = section_table.as_table_mut() else {
                return Err(ConfigError::Env {
                    name,
                    message: format!("`{section}` in the config file is not a table"),
                });
            };
            section_table.insert(key.clone(), value);
        }
    }
    Ok(())
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub decision_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// `None`: the HTTP (AuthZEN) listener is off.
    pub http_addr: Option<SocketAddr>,
    pub ops_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub shutdown_grace: Duration,
    pub bundle: PathBuf,
    pub engine: EngineOptions,
    pub identity: PathBuf,
    pub entitlements: PathBuf,
    pub max_age: MaxAge,
    pub snapshot_keep: usize,
    pub limits: Limits,
    pub archive: ArchiveLimits,
    pub max_push_bytes: usize,
    pub bundle_keep: usize,
    pub run_tests: bool,
    pub keys: Vec<VerificationKey>,
    pub require_signed: bool,
    pub read_verbs: Vec<String>,
    /// `limits.session_path`.
    pub session_path: Arc<InputPath>,
    /// `[limits]` keys of budgets and tripwires.
    pub usage_limits: LimitsConfig,
    pub audit: AuditConfig,
    /// `[log]` and `[tracing]`.
    pub telemetry: TelemetryConfig,
    pub insecure: bool,
    /// TLS for both gRPC listeners.
    pub tls: Option<Arc<TlsSetup>>,
    pub auth: Arc<Authenticator>,
    pub transport: TransportLimits,
    pub platform_quota: Quota,
    pub platform_quotas: HashMap<String, Quota>,
    pub authzen: AuthzenConfig,
    /// `None`: a single node.
    pub cluster: Option<ClusterConfig>,
    pub approvals: ApprovalsConfig,
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let SnapshotConfig {
            identity,
            entitlements,
            max_age,
            keep: snapshot_keep,
        } = snapshot_config(&raw.snapshots)?;
        let BundleConfig {
            max_push_bytes,
            keep: bundle_keep,
            run_tests,
            keys,
            require_signed,
        } = bundle_config(&raw.bundles)?;
        let PolicyConfig { bundle, engine } = policy_config(&raw.policy)?;
        let telemetry = telemetry_config(&raw.log, &raw.tracing)?;
        let read_verbs = read_verbs(&raw.killswitch)?;
        let session_path =
            InputPath::parse(&raw.limits.session_path).map_err(|e| ConfigError::Invalid {
                key: "limits.session_path",
                message: e.to_string(),
            })?;
        let tls = tls_setup(&raw.tls)?;
        let auth = authenticator(
            &raw.auth,
            &raw.tls.client_auth,
            &raw.tls.client_ca_file,
            tls.is_some(),
        )?;
        let decision_addr = addr("server.decision_addr", &raw.server.decision_addr)?;
        let admin_addr = addr("server.admin_addr", &raw.server.admin_addr)?;
        let http_addr = match raw.server.http_addr.as_str() {
            "" => None,
            value => Some(addr("server.http_addr", value)?),
        };
        if !raw.server.insecure {
            let listeners = [
                ("server.decision_addr", Some(decision_addr)),
                ("server.admin_addr", Some(admin_addr)),
                ("server.http_addr", http_addr),
            ];
            for (key, listener) in listeners
                .into_iter()
                .filter_map(|(key, listener)| Some((key, listener?)))
            {
                if listener.ip().is_loopback() {
                    continue;
                }
                let missing = match (tls.is_some(), auth.is_open()) {
                    (true, false) => continue,
                    (false, true) => "TLS ([tls]) and credentials ([auth])",
                    (false, false) => "TLS ([tls])",
                    (true, true) => "credentials ([auth] tokens or clients)",
                };
                return Err(ConfigError::Invalid {
                    key,
                    message: format!(
                        "`{listener}` is reachable from other machines but {missing} are not \
                         configured; configure them, or set server.insecure = true (--insecure) \
                         if this is really meant"
                    ),
                });
            }
        }
        let (platform_quota, platform_quotas) = platform_quotas(
            raw.limits.platform_rate,
            raw.limits.platform_burst,
            raw.limits.platform_max_in_flight,
            &raw.limits.platform,
        )?;
        let authzen = authzen_config(&raw.authzen)?;
        let cluster = cluster_config(&raw.cluster)?;
        Ok(Config {
            approvals: approvals_config(&raw.approvals)?,
            decision_addr,
            admin_addr,
            http_addr,
            authzen,
            cluster,
            ops_addr: addr("server.ops_addr", &raw.server.ops_addr)?,
            data_dir: nonempty_path("server.data_dir", &raw.server.data_dir)?,
            shutdown_grace: duration("server.shutdown_grace", &raw.server.shutdown_grace)?,
            bundle,
            engine,
            identity,
            entitlements,
            max_age,
            snapshot_keep,
            max_push_bytes,
            bundle_keep,
            run_tests,
            keys,
            require_signed,
            read_verbs,
            session_path: Arc::new(session_path),
            usage_limits: limits_config(
                raw.limits.max_keys,
                &raw.limits.on_full,
                &raw.limits.counter_snapshot_interval,
                &raw.limits.usage_publish_interval,
            )?,
            audit: audit_config(&raw.audit)?,
            limits: Limits {
                max_request_bytes: positive(
                    "limits.max_request_bytes",
                    raw.limits.max_request_bytes,
                )?,
                max_id_bytes: positive("limits.max_id_bytes", raw.limits.max_id_bytes)?,
                max_batch_items: positive("limits.max_batch_items", raw.limits.max_batch_items)?,
                max_delegation_chain: positive(
                    "limits.max_delegation_chain",
                    raw.limits.max_delegation_chain,
                )?,
                max_attribute_depth: positive(
                    "limits.max_attribute_depth",
                    raw.limits.max_attribute_depth,
                )?,
                max_audience: positive("limits.max_audience", raw.limits.max_audience)?,
                max_search_evaluations: positive(
                    "limits.max_search_evaluations",
                    raw.limits.max_search_evaluations,
                )?,
            },
            archive: ArchiveLimits {
                max_files: positive("limits.max_bundle_files", raw.limits.max_bundle_files)?,
                max_file_bytes: raw.limits.max_bundle_bytes,
                max_total_bytes: raw.limits.max_bundle_bytes,
            },
            telemetry,
            insecure: raw.server.insecure,
            transport: transport_limits(
                &raw.tls,
                RawTransportLimits {
                    max_connections: raw.limits.max_connections,
                    max_connections_per_source: raw.limits.max_connections_per_source,
                    max_streams_per_connection: raw.limits.max_streams_per_connection,
                    preface_timeout: &raw.limits.preface_timeout,
                    header_read_timeout: &raw.limits.header_read_timeout,
                    body_timeout: &raw.limits.body_timeout,
                    body_min_rate: raw.limits.body_min_rate,
                    idle_timeout: &raw.limits.idle_timeout,
                    keepalive_interval: &raw.limits.keepalive_interval,
                    keepalive_timeout: &raw.limits.keepalive_timeout,
                    check_timeout: &raw.limits.check_timeout,
                    admin_timeout: &raw.limits.admin_timeout,
                },
            )?,
            tls,
            auth: Arc::new(auth),
            platform_quota,
            platform_quotas,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
