//! Configuration: a TOML file, then `WARDEN_<SECTION>_<KEY>` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every key has a default. The raw form mirrors the file; `Config` is the
//! validated form the server runs with. Invalid configuration stops the
//! server before any listener opens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::{Authenticator, CertMatch, CertRule, Principal, Role, TokenTable};
use crate::cluster::{EtcdFile, EtcdTls};
use crate::platform_limits::Quota;
use crate::transport::TlsSetup;

use crate::audit::{AuditConfig, Durability, OnFull};
use crate::bundle::ArchiveLimits;
use crate::bundle::signature::{self, VerificationKey};
use crate::engine::{EngineKind, EngineOptions, EvalLimits};
use crate::generation::MaxAge;
use crate::request::Limits;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error("config file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable `{name}`: {message}")]
    Env { name: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

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
}

/// `[cluster]`: replicas sharing kill switches, the active bundle and the
/// snapshots through etcd. No endpoints: a single node (the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCluster {
    /// etcd client URLs, e.g. `["http://10.0.0.5:2379"]`.
    pub etcd_endpoints: Vec<String>,
    /// Key prefix, so that several Warden clusters can share one etcd.
    pub prefix: String,
    /// This replica's name in audit records; empty: the store's instance id.
    pub replica_id: String,
    /// How long an etcd call may take before the replica counts etcd as lost.
    pub etcd_timeout: String,
    /// How long a blob (bundle archive, snapshot) no pointer names stays in
    /// etcd after it was last written, before replicas remove it.
    pub blob_grace: String,
    /// PEM CA certificates etcd's serving certificate must chain to; set
    /// for `https://` endpoints.
    pub etcd_ca_file: String,
    /// PEM client certificate chain (and its key) presented to etcd, which
    /// authenticates Warden with them (`--client-cert-auth`).
    pub etcd_cert_file: String,
    pub etcd_key_file: String,
    /// Allow etcd endpoints off loopback without TLS and a client
    /// certificate: etcd must then sit on a network only Warden's replicas
    /// reach.
    pub insecure_etcd: bool,
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            etcd_endpoints: Vec::new(),
            prefix: "/warden".into(),
            replica_id: String::new(),
            etcd_timeout: "2s".into(),
            blob_grace: "1h".into(),
            etcd_ca_file: String::new(),
            etcd_cert_file: String::new(),
            etcd_key_file: String::new(),
            insecure_etcd: false,
        }
    }
}

/// `[tracing]`: OpenTelemetry export of spans (a `check` span per check,
/// carrying its `decision_id`). Empty endpoint: no export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTracing {
    /// OTLP/HTTP (protobuf) collector base URL, e.g. `http://127.0.0.1:4318`;
    /// spans go to `<endpoint>/v1/traces`.
    pub otlp_endpoint: String,
    pub service_name: String,
}

impl Default for RawTracing {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "warden".into(),
        }
    }
}

/// `[authzen]`: how an AuthZEN request on the HTTP listener names the
/// platform and agent that Warden's input needs and AuthZEN has no field
/// for. Each is taken from its header, else from its `context` key, else
/// from the default (for the platform, a caller whose credential names one
/// platform is that platform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuthzen {
    pub platform_header: String,
    pub agent_header: String,
    pub platform_context_key: String,
    pub agent_context_key: String,
    pub default_platform: String,
    pub default_agent: String,
    /// The PDP's public URL for the metadata document; empty: the scheme
    /// and `Host` each request used.
    pub base_url: String,
}

impl Default for RawAuthzen {
    fn default() -> Self {
        Self {
            platform_header: "x-warden-platform".into(),
            agent_header: "x-warden-agent".into(),
            platform_context_key: "platform".into(),
            agent_context_key: "agent".into(),
            default_platform: String::new(),
            default_agent: String::new(),
            base_url: String::new(),
        }
    }
}

/// `[tls]`: TLS on both gRPC listeners. Empty files: plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA certificates that client certificates must chain to; empty:
    /// client certificates are not asked for.
    pub client_ca_file: String,
    /// `optional` (a certificate, when sent, must verify) or `required`.
    pub client_auth: String,
    /// A connection that has not finished its handshake by then is closed.
    pub handshake_timeout: String,
}

impl Default for RawTls {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            client_auth: "optional".into(),
            handshake_timeout: "10s".into(),
        }
    }
}

/// `[auth]`: the callers Warden knows. None: open mode (anonymous callers
/// with every right), allowed on loopback or with `server.insecure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub tokens: Vec<RawToken>,
    pub clients: Vec<RawClient>,
}

/// A bearer token, stored as its SHA-256 (`warden token` makes one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub sha256: String,
    pub roles: Vec<String>,
}

/// A client certificate identity: exactly one of `cn` and `san`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    #[serde(default)]
    pub cn: String,
    #[serde(default)]
    pub san: String,
    pub roles: Vec<String>,
}

/// `[[limits.platform]]`: one platform's own allowance. A field left out
/// takes the `limits.platform_*` default: an override written to raise the
/// rate must not silently lift the in-flight cap as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlatformLimit {
    pub id: String,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub burst: Option<f64>,
    #[serde(default)]
    pub max_in_flight: Option<u64>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    pub bundle: String,
    pub engine: String,
    pub eval_timeout_ms: u64,
    pub max_instructions: u64,
    /// Memory cap of one Wasm instance, in MiB.
    pub wasm_max_memory_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSnapshots {
    pub identity: String,
    pub entitlements: String,
    pub max_age: String,
    /// Overrides `max_age` for the identity snapshot; empty = `max_age`.
    pub identity_max_age: String,
    /// Overrides `max_age` for the entitlement snapshot; empty = `max_age`.
    pub entitlements_max_age: String,
    /// How many snapshots of each kind the store keeps.
    pub keep: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBundles {
    /// Largest pushed bundle archive, compressed.
    pub max_push_bytes: u64,
    /// How many pushed bundles the store keeps (active, shadow and rollback
    /// targets are always kept).
    pub keep: u64,
    /// Run a pushed bundle's own `test_*` rules and refuse it if one fails.
    pub run_tests: bool,
    /// `auto` (required when keys are configured), `true` or `false`.
    pub require_signed: String,
    /// Keys that may sign bundles.
    pub keys: Vec<RawKey>,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAudit {
    /// `async` (group-committed every `flush_interval`), `sync` (a response
    /// waits until its record is on disk), or `off`.
    pub durability: String,
    /// Records waiting for the writer, at most.
    pub queue_capacity: u64,
    /// When the queue is full: `block` the check until there is room, or
    /// `deny` it (fail closed).
    pub on_full: String,
    /// In `async` mode, the longest a written record waits to be flushed.
    pub flush_interval: String,
    /// Delete records older than this (`0s`: keep forever).
    pub max_age: String,
    /// Keep at most this many records (0: no limit).
    pub max_records: u64,
    /// Keep at most this many bytes of stored entries (0: no limit).
    pub max_bytes: u64,
    /// How often retention runs.
    pub retention_interval: String,
    /// Input paths (`action.attributes.card`) removed from stored inputs.
    pub redact_drop: Vec<String>,
    /// Input paths whose values are stored as their SHA-256 instead.
    pub redact_hash: Vec<String>,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            durability: "async".into(),
            queue_capacity: 65_536,
            on_full: "block".into(),
            flush_interval: "5ms".into(),
            max_age: "0s".into(),
            max_records: 0,
            max_bytes: 0,
            retention_interval: "60s".into(),
            redact_drop: Vec::new(),
            redact_hash: Vec::new(),
        }
    }
}

/// `[killswitch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKillSwitch {
    /// Last action segments that `deny_mutating` switches let through.
    pub read_verbs: Vec<String>,
}

impl Default for RawKillSwitch {
    fn default() -> Self {
        Self {
            read_verbs: ["read", "get", "list", "search"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// The key id signatures name (`keyid`).
    pub id: String,
    /// `RS256`, `ES256` or `HS256`.
    pub algorithm: String,
    /// PEM public key (RS256, ES256) or file holding the shared secret (HS256).
    pub key_file: String,
    /// When set, signatures must carry this scope.
    #[serde(default)]
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_request_bytes: u64,
    pub max_id_bytes: u64,
    pub max_batch_items: u64,
    pub max_delegation_chain: u64,
    pub max_attribute_depth: u64,
    pub max_bundle_files: u64,
    pub max_bundle_bytes: u64,
    /// Open connections per gRPC listener; more are closed at once.
    pub max_connections: u64,
    /// Concurrent calls on one HTTP/2 connection.
    pub max_streams_per_connection: u64,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A `tracing` filter, e.g. `info` or `warden=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
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

impl Default for RawPolicy {
    fn default() -> Self {
        let limits = EvalLimits::default();
        Self {
            bundle: "policies".into(),
            engine: "native".into(),
            eval_timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(50),
            max_instructions: limits.max_instructions as u64,
            wasm_max_memory_mb: EngineOptions::default().wasm_max_memory_bytes / (1024 * 1024),
        }
    }
}

impl Default for RawSnapshots {
    fn default() -> Self {
        Self {
            identity: "policies/demo/identity.json".into(),
            entitlements: "policies/demo/entitlements.json".into(),
            max_age: "0s".into(),
            identity_max_age: String::new(),
            entitlements_max_age: String::new(),
            keep: 10,
        }
    }
}

impl Default for RawBundles {
    fn default() -> Self {
        Self {
            max_push_bytes: 64 * 1024 * 1024,
            keep: 10,
            run_tests: true,
            require_signed: "auto".into(),
            keys: Vec::new(),
        }
    }
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
            max_attribute_depth: request.max_attribute_depth as u64,
            max_bundle_files: archive.max_files as u64,
            max_bundle_bytes: archive.max_total_bytes,
            max_connections: 4096,
            max_streams_per_connection: 1024,
            check_timeout: "5s".into(),
            admin_timeout: "120s".into(),
            platform_rate: 0.0,
            platform_burst: 0.0,
            platform_max_in_flight: 4096,
            platform: Vec::new(),
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
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
    pub audit: AuditConfig,
    pub log_level: String,
    pub log_json: bool,
    /// Where to export spans (`<endpoint>/v1/traces`), if anywhere.
    pub otlp_traces: Option<String>,
    pub service_name: String,
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
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub etcd_endpoints: Vec<String>,
    /// Without a trailing `/`.
    pub prefix: String,
    /// Empty: the store's instance id.
    pub replica_id: String,
    pub etcd_timeout: Duration,
    pub blob_grace: Duration,
    /// `Some` for `https://` endpoints.
    pub etcd_tls: Option<EtcdTls>,
}

fn cluster_config(raw: &RawCluster) -> Result<Option<ClusterConfig>, ConfigError> {
    if raw.etcd_endpoints.is_empty() {
        return Ok(None);
    }
    let mut https = None;
    let mut remote = None;
    for endpoint in &raw.etcd_endpoints {
        let invalid = |message: String| ConfigError::Invalid {
            key: "cluster.etcd_endpoints",
            message,
        };
        let uri = endpoint
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")));
        let Some((scheme, host)) = uri.as_ref().and_then(|u| u.scheme_str().zip(u.host())) else {
            return Err(invalid(format!(
                "`{endpoint}` is not an http:// or https:// URL with a host"
            )));
        };
        let is_https = scheme == "https";
        if https.is_some_and(|earlier| earlier != is_https) {
            return Err(invalid(
                "mixes http:// and https:// endpoints; one etcd cluster takes one".into(),
            ));
        }
        https = Some(is_https);
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && remote.is_none() {
            remote = Some(endpoint);
        }
    }
    let etcd_tls = etcd_tls(raw, https == Some(true))?;
    // Whoever can write to etcd can release every kill switch: off
    // loopback, etcd must know it is Warden (a client certificate over
    // TLS), unless the operator vouches for the network.
    let authenticated = etcd_tls
        .as_ref()
        .is_some_and(EtcdTls::has_client_certificate);
    if let Some(endpoint) = remote.filter(|_| !authenticated && !raw.insecure_etcd) {
        return Err(ConfigError::Invalid {
            key: "cluster.etcd_endpoints",
            message: format!(
                "`{endpoint}` is not on loopback, and Warden would reach it without TLS and a \
                 client certificate; use https:// with cluster.etcd_ca_file, \
                 cluster.etcd_cert_file and cluster.etcd_key_file (etcd's --client-cert-auth), \
                 or put etcd on a network only the replicas reach and set \
                 cluster.insecure_etcd = true"
            ),
        });
    }
    let prefix = raw.prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            key: "cluster.prefix",
            message: format!("`{}` is not a key prefix such as `/warden`", raw.prefix),
        });
    }
    if raw.replica_id.chars().any(char::is_control) || raw.replica_id.len() > 256 {
        return Err(ConfigError::Invalid {
            key: "cluster.replica_id",
            message: "must be at most 256 bytes without control characters".into(),
        });
    }
    let etcd_timeout = nonzero_duration("cluster.etcd_timeout", &raw.etcd_timeout)?;
    // A writer names a blob within a few etcd calls of renewing it; the
    // grace must outlast that, or a collector could take it in between.
    let blob_grace = nonzero_duration("cluster.blob_grace", &raw.blob_grace)?;
    if blob_grace < etcd_timeout.saturating_mul(2) {
        return Err(ConfigError::Invalid {
            key: "cluster.blob_grace",
            message: format!(
                "must be at least twice cluster.etcd_timeout ({})",
                raw.etcd_timeout
            ),
        });
    }
    Ok(Some(ClusterConfig {
        etcd_endpoints: raw.etcd_endpoints.clone(),
        prefix: prefix.to_owned(),
        replica_id: raw.replica_id.clone(),
        etcd_timeout,
        blob_grace,
        etcd_tls,
    }))
}

/// `cluster.etcd_*_file`, read and checked; they belong with `https://`.
fn etcd_tls(raw: &RawCluster, https: bool) -> Result<Option<EtcdTls>, ConfigError> {
    let optional = |value: &str| (!value.is_empty()).then(|| PathBuf::from(value));
    let ca = optional(&raw.etcd_ca_file);
    let identity = match (optional(&raw.etcd_cert_file), optional(&raw.etcd_key_file)) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => {
            return Err(ConfigError::Invalid {
                key: "cluster.etcd_key_file",
                message: "cluster.etcd_cert_file is set but its key is not".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "cluster.etcd_cert_file",
                message: "cluster.etcd_key_file is set but the certificate is not".into(),
            });
        }
    };
    if !https {
        let key = match (&ca, &identity) {
            (Some(_), _) => "cluster.etcd_ca_file",
            (None, Some(_)) => "cluster.etcd_cert_file",
            (None, None) => return Ok(None),
        };
        return Err(ConfigError::Invalid {
            key,
            message: "TLS to etcd needs https:// endpoints in cluster.etcd_endpoints".into(),
        });
    }
    let Some(ca) = ca else {
        return Err(ConfigError::Invalid {
            key: "cluster.etcd_ca_file",
            message: "https:// endpoints need the CA that signed etcd's certificate".into(),
        });
    };
    EtcdTls::load(
        &ca,
        identity
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path())),
    )
    .map(Some)
    .map_err(|(file, e)| ConfigError::Invalid {
        key: match file {
            EtcdFile::Ca => "cluster.etcd_ca_file",
            EtcdFile::Cert => "cluster.etcd_cert_file",
            EtcdFile::Key => "cluster.etcd_key_file",
        },
        message: e.to_string(),
    })
}

/// `[authzen]`, validated: header names are lower-case HTTP header names.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthzenConfig {
    pub platform_header: http::HeaderName,
    pub agent_header: http::HeaderName,
    pub platform_context_key: String,
    pub agent_context_key: String,
    pub default_platform: Option<String>,
    pub default_agent: Option<String>,
    /// Without a trailing `/`.
    pub base_url: Option<String>,
}

/// The traces URL for an OTLP/HTTP base endpoint. Only `http://`: the
/// exporter has no TLS here, so spans go to a collector on the same host or
/// network segment (a sidecar or node agent).
fn otlp_traces(endpoint: &str) -> Result<Option<String>, ConfigError> {
    if endpoint.is_empty() {
        return Ok(None);
    }
    let invalid = |message: String| ConfigError::Invalid {
        key: "tracing.otlp_endpoint",
        message,
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| invalid(format!("`{endpoint}` is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(invalid(format!(
            "`{endpoint}` is not an http:// URL with a host (OTLP/HTTP without TLS)"
        )));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(Some(if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }))
}

fn authzen_config(raw: &RawAuthzen) -> Result<AuthzenConfig, ConfigError> {
    let header = |key: &'static str, value: &str| {
        http::HeaderName::from_bytes(value.as_bytes()).map_err(|_| ConfigError::Invalid {
            key,
            message: format!("`{value}` is not an HTTP header name"),
        })
    };
    let nonempty = |key: &'static str, value: &str| {
        if value.is_empty() {
            Err(ConfigError::Invalid {
                key,
                message: "must not be empty".into(),
            })
        } else {
            Ok(value.to_owned())
        }
    };
    Ok(AuthzenConfig {
        platform_header: header("authzen.platform_header", &raw.platform_header)?,
        agent_header: header("authzen.agent_header", &raw.agent_header)?,
        platform_context_key: nonempty("authzen.platform_context_key", &raw.platform_context_key)?,
        agent_context_key: nonempty("authzen.agent_context_key", &raw.agent_context_key)?,
        default_platform: (!raw.default_platform.is_empty()).then(|| raw.default_platform.clone()),
        default_agent: (!raw.default_agent.is_empty()).then(|| raw.default_agent.clone()),
        base_url: base_url(&raw.base_url)?,
    })
}

/// An `http(s)://host[:port][/path]` URL with no query or fragment, as
/// AuthZEN requires of a PDP identifier.
fn base_url(value: &str) -> Result<Option<String>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let invalid = |message: String| ConfigError::Invalid {
        key: "authzen.base_url",
        message,
    };
    let uri: http::Uri = value
        .parse()
        .map_err(|e| invalid(format!("`{value}` is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https"))
        || uri.host().is_none()
        || uri.query().is_some()
        || value.contains('#')
    {
        return Err(invalid(format!(
            "`{value}` is not an http(s) URL with a host and no query or fragment"
        )));
    }
    Ok(Some(value.trim_end_matches('/').to_owned()))
}

/// Connection and call limits of the gRPC listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportLimits {
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    pub handshake_timeout: Duration,
    pub check_timeout: Duration,
    pub admin_timeout: Duration,
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let max_age = duration("snapshots.max_age", &raw.snapshots.max_age)?;
        let per_kind = |key: &'static str, value: &str| -> Result<Option<Duration>, ConfigError> {
            let age = if value.is_empty() {
                max_age
            } else {
                duration(key, value)?
            };
            Ok((!age.is_zero()).then_some(age))
        };
        let max_age = MaxAge {
            identity: per_kind(
                "snapshots.identity_max_age",
                &raw.snapshots.identity_max_age,
            )?,
            entitlements: per_kind(
                "snapshots.entitlements_max_age",
                &raw.snapshots.entitlements_max_age,
            )?,
        };
        let keys = raw
            .bundles
            .keys
            .iter()
            .map(|key| {
                let algorithm =
                    signature::algorithm(&key.algorithm).ok_or_else(|| ConfigError::Invalid {
                        key: "bundles.keys.algorithm",
                        message: format!(
                            "`{}` is not supported; expected RS256, ES256 or HS256",
                            key.algorithm
                        ),
                    })?;
                let material = std::fs::read(&key.key_file).map_err(|e| ConfigError::Invalid {
                    key: "bundles.keys.key_file",
                    message: format!("cannot read `{}`: {e}", key.key_file),
                })?;
                let scope = (!key.scope.is_empty()).then(|| key.scope.clone());
                VerificationKey::new(&key.id, algorithm, &material, scope).map_err(|e| {
                    ConfigError::Invalid {
                        key: "bundles.keys",
                        message: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let require_signed = match raw.bundles.require_signed.as_str() {
            "auto" => !keys.is_empty(),
            "true" => true,
            "false" => false,
            other => {
                return Err(ConfigError::Invalid {
                    key: "bundles.require_signed",
                    message: format!("`{other}` is not `auto`, `true` or `false`"),
                });
            }
        };
        if require_signed && keys.is_empty() {
            return Err(ConfigError::Invalid {
                key: "bundles.require_signed",
                message: "signatures are required but no keys are configured".into(),
            });
        }
        let engine =
            raw.policy
                .engine
                .parse::<EngineKind>()
                .map_err(|message| ConfigError::Invalid {
                    key: "policy.engine",
                    message,
                })?;
        let log_json = match raw.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::Invalid {
                    key: "log.format",
                    message: format!("`{other}` is not a format; expected `text` or `json`"),
                });
            }
        };
        let eval_timeout_ms = positive("policy.eval_timeout_ms", raw.policy.eval_timeout_ms)?;
        if let Some(bad) = raw
            .killswitch
            .read_verbs
            .iter()
            .find(|v| v.is_empty() || v.contains('.') || v.contains('*'))
        {
            return Err(ConfigError::Invalid {
                key: "killswitch.read_verbs",
                message: format!("`{bad}` is not a verb: one action segment, without `.` or `*`"),
            });
        }
        let tls = tls_setup(&raw.tls)?;
        let auth = authenticator(&raw.auth, &raw.tls, tls.is_some())?;
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
        let (platform_quota, platform_quotas) = platform_quotas(&raw.limits)?;
        let authzen = authzen_config(&raw.authzen)?;
        let cluster = cluster_config(&raw.cluster)?;
        Ok(Config {
            decision_addr,
            admin_addr,
            http_addr,
            authzen,
            cluster,
            ops_addr: addr("server.ops_addr", &raw.server.ops_addr)?,
            data_dir: nonempty_path("server.data_dir", &raw.server.data_dir)?,
            shutdown_grace: duration("server.shutdown_grace", &raw.server.shutdown_grace)?,
            bundle: nonempty_path("policy.bundle", &raw.policy.bundle)?,
            engine: EngineOptions {
                engine,
                eval: EvalLimits {
                    timeout: Duration::from_millis(eval_timeout_ms as u64),
                    max_instructions: positive(
                        "policy.max_instructions",
                        raw.policy.max_instructions,
                    )?,
                },
                wasm_max_memory_bytes: (positive(
                    "policy.wasm_max_memory_mb",
                    raw.policy.wasm_max_memory_mb,
                )? as u64)
                    .saturating_mul(1024 * 1024),
            },
            identity: nonempty_path("snapshots.identity", &raw.snapshots.identity)?,
            entitlements: nonempty_path("snapshots.entitlements", &raw.snapshots.entitlements)?,
            max_age,
            snapshot_keep: positive("snapshots.keep", raw.snapshots.keep)?,
            max_push_bytes: positive("bundles.max_push_bytes", raw.bundles.max_push_bytes)?,
            bundle_keep: positive("bundles.keep", raw.bundles.keep)?,
            run_tests: raw.bundles.run_tests,
            keys,
            require_signed,
            read_verbs: raw.killswitch.read_verbs.clone(),
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
            },
            archive: ArchiveLimits {
                max_files: positive("limits.max_bundle_files", raw.limits.max_bundle_files)?,
                max_file_bytes: raw.limits.max_bundle_bytes,
                max_total_bytes: raw.limits.max_bundle_bytes,
            },
            log_level: raw.log.level,
            log_json,
            otlp_traces: otlp_traces(&raw.tracing.otlp_endpoint)?,
            service_name: match raw.tracing.service_name.as_str() {
                "" => {
                    return Err(ConfigError::Invalid {
                        key: "tracing.service_name",
                        message: "must not be empty".into(),
                    });
                }
                name => name.to_owned(),
            },
            insecure: raw.server.insecure,
            transport: TransportLimits {
                max_connections: positive("limits.max_connections", raw.limits.max_connections)?,
                max_streams_per_connection: u32::try_from(positive(
                    "limits.max_streams_per_connection",
                    raw.limits.max_streams_per_connection,
                )?)
                .unwrap_or(u32::MAX),
                handshake_timeout: nonzero_duration(
                    "tls.handshake_timeout",
                    &raw.tls.handshake_timeout,
                )?,
                check_timeout: nonzero_duration("limits.check_timeout", &raw.limits.check_timeout)?,
                admin_timeout: nonzero_duration("limits.admin_timeout", &raw.limits.admin_timeout)?,
            },
            tls,
            auth: Arc::new(auth),
            platform_quota,
            platform_quotas,
        })
    }
}

fn addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|e| ConfigError::Invalid {
        key,
        message: format!("`{value}` is not HOST:PORT: {e}"),
    })
}

fn nonzero_duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = duration(key, value)?;
    if parsed.is_zero() {
        return Err(ConfigError::Invalid {
            key,
            message: "must be longer than zero".into(),
        });
    }
    Ok(parsed)
}

fn tls_setup(raw: &RawTls) -> Result<Option<Arc<TlsSetup>>, ConfigError> {
    let optional = |value: &str| (!value.is_empty()).then(|| PathBuf::from(value));
    let client_ca = optional(&raw.client_ca_file);
    match (optional(&raw.cert_file), optional(&raw.key_file)) {
        (None, None) => {
            if client_ca.is_some() {
                return Err(ConfigError::Invalid {
                    key: "tls.client_ca_file",
                    message: "client certificates need TLS: set tls.cert_file and tls.key_file"
                        .into(),
                });
            }
            Ok(None)
        }
        (Some(cert), Some(key)) => TlsSetup::load(&cert, &key, client_ca.as_deref())
            .map(|setup| Some(Arc::new(setup)))
            .map_err(|e| ConfigError::Invalid {
                key: "tls",
                message: e.to_string(),
            }),
        (Some(_), None) => Err(ConfigError::Invalid {
            key: "tls.key_file",
            message: "tls.cert_file is set but its key is not".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Invalid {
            key: "tls.cert_file",
            message: "tls.key_file is set but the certificate is not".into(),
        }),
    }
}

fn roles(key: &'static str, name: &str, raw: &[String]) -> Result<Arc<Principal>, ConfigError> {
    let roles = raw
        .iter()
        .map(|role| Role::parse(role))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| ConfigError::Invalid { key, message })?;
    Principal::new(name.to_owned(), roles)
        .map(Arc::new)
        .map_err(|message| ConfigError::Invalid { key, message })
}

fn authenticator(raw: &RawAuth, tls: &RawTls, has_tls: bool) -> Result<Authenticator, ConfigError> {
    let mut names = std::collections::HashSet::new();
    let mut unique = |key: &'static str, name: &str| {
        if names.insert(name.to_owned()) {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                key,
                message: format!("caller `{name}` is configured twice"),
            })
        }
    };
    let mut tokens = TokenTable::default();
    for token in &raw.tokens {
        unique("auth.tokens.name", &token.name)?;
        let principal = roles("auth.tokens", &token.name, &token.roles)?;
        tokens
            .add(&token.sha256, principal)
            .map_err(|message| ConfigError::Invalid {
                key: "auth.tokens.sha256",
                message,
            })?;
    }
    let mut certs = Vec::new();
    for client in &raw.clients {
        unique("auth.clients.name", &client.name)?;
        let matches = match (client.cn.is_empty(), client.san.is_empty()) {
            (false, true) => CertMatch::CommonName(client.cn.clone()),
            (true, false) => CertMatch::San(client.san.clone()),
            _ => {
                return Err(ConfigError::Invalid {
                    key: "auth.clients",
                    message: format!(
                        "client `{}` needs exactly one of `cn` and `san`",
                        client.name
                    ),
                });
            }
        };
        certs.push(CertRule {
            matches,
            principal: roles("auth.clients", &client.name, &client.roles)?,
        });
    }
    let required = match tls.client_auth.as_str() {
        "optional" => false,
        "required" => true,
        other => {
            return Err(ConfigError::Invalid {
                key: "tls.client_auth",
                message: format!("`{other}` is not `optional` or `required`"),
            });
        }
    };
    if (required || !certs.is_empty()) && (!has_tls || tls.client_ca_file.is_empty()) {
        return Err(ConfigError::Invalid {
            key: "tls.client_ca_file",
            message: "client certificates are required or mapped to callers, but no client CA \
                      is configured"
                .into(),
        });
    }
    Ok(Authenticator::new(tokens, certs, required))
}

fn platform_quotas(raw: &RawLimits) -> Result<(Quota, HashMap<String, Quota>), ConfigError> {
    let quota = |keys: [&'static str; 2], rate: f64, burst: f64, max_in_flight: u64| {
        for (key, value) in keys.into_iter().zip([rate, burst]) {
            if !value.is_finite() || value < 0.0 {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("{value} must be finite and not negative"),
                });
            }
        }
        Ok(Quota {
            rate,
            // A bucket smaller than one check could never admit anything.
            burst: if burst > 0.0 {
                burst.max(1.0)
            } else {
                rate.max(1.0)
            },
            max_in_flight: usize::try_from(max_in_flight).unwrap_or(usize::MAX),
        })
    };
    let default = quota(
        ["limits.platform_rate", "limits.platform_burst"],
        raw.platform_rate,
        raw.platform_burst,
        raw.platform_max_in_flight,
    )?;
    let mut overrides = HashMap::new();
    for entry in &raw.platform {
        if entry.id.is_empty() {
            return Err(ConfigError::Invalid {
                key: "limits.platform.id",
                message: "must not be empty".into(),
            });
        }
        let limit = quota(
            ["limits.platform.rate", "limits.platform.burst"],
            entry.rate.unwrap_or(raw.platform_rate),
            entry.burst.unwrap_or(raw.platform_burst),
            entry.max_in_flight.unwrap_or(raw.platform_max_in_flight),
        )?;
        if overrides.insert(entry.id.clone(), limit).is_some() {
            return Err(ConfigError::Invalid {
                key: "limits.platform.id",
                message: format!("platform `{}` is listed twice", entry.id),
            });
        }
    }
    Ok((default, overrides))
}

fn duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value).map_err(|e| ConfigError::Invalid {
        key,
        message: format!("`{value}` is not a duration such as `30s` or `15m`: {e}"),
    })
}

fn nonempty_path(key: &'static str, value: &str) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            message: "must not be empty".into(),
        });
    }
    Ok(PathBuf::from(value))
}

fn positive(key: &'static str, value: u64) -> Result<usize, ConfigError> {
    match usize::try_from(value) {
        Ok(0) | Err(_) => Err(ConfigError::Invalid {
            key,
            message: format!("{value} is out of range; expected a positive number"),
        }),
        Ok(value) => Ok(value),
    }
}

fn audit_config(raw: &RawAudit) -> Result<AuditConfig, ConfigError> {
    let durability = match raw.durability.as_str() {
        "async" => Durability::Async,
        "sync" => Durability::Sync,
        "off" => Durability::Off,
        other => {
            return Err(ConfigError::Invalid {
                key: "audit.durability",
                message: format!("`{other}` is not `async`, `sync` or `off`"),
            });
        }
    };
    let on_full = match raw.on_full.as_str() {
        "block" => OnFull::Block,
        "deny" => OnFull::Deny,
        other => {
            return Err(ConfigError::Invalid {
                key: "audit.on_full",
                message: format!("`{other}` is not `block` or `deny`"),
            });
        }
    };
    let paths = |key: &'static str, list: &[String]| -> Result<Vec<Vec<String>>, ConfigError> {
        list.iter()
            .map(|path| {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(ConfigError::Invalid {
                        key,
                        message: format!("`{path}` is not a dotted path such as `context.prompt`"),
                    });
                }
                Ok(segments)
            })
            .collect()
    };
    let max_age = duration("audit.max_age", &raw.max_age)?;
    Ok(AuditConfig {
        durability,
        queue_capacity: positive("audit.queue_capacity", raw.queue_capacity)?,
        on_full,
        flush_interval: duration("audit.flush_interval", &raw.flush_interval)?,
        max_age: (!max_age.is_zero()).then_some(max_age),
        max_records: raw.max_records,
        max_bytes: raw.max_bytes,
        retention_interval: duration("audit.retention_interval", &raw.retention_interval)?
            .max(Duration::from_millis(10)),
        redact_drop: paths("audit.redact_drop", &raw.redact_drop)?,
        redact_hash: paths("audit.redact_hash", &raw.redact_hash)?,
        replica: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        RawConfig::load(None, env(vars))
            .map_err(|e| e.to_string())
            .and_then(|raw| Config::try_from(raw).map_err(|e| e.to_string()))
    }

    fn refusal(vars: &[(&str, &str)]) -> String {
        config(vars).err().unwrap_or_default()
    }

    #[test]
    fn cluster_mode_needs_a_loopback_etcd_unless_told_otherwise() {
        assert!(config(&[]).is_ok_and(|c| c.cluster.is_none()));
        let local = config(&[(
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            r#"["http://127.0.0.1:2379", "http://localhost:2380"]"#,
        )]);
        let local = local.ok().and_then(|c| c.cluster);
        assert!(local.as_ref().is_some_and(|c| c.prefix == "/warden"
            && c.etcd_timeout == Duration::from_secs(2)
            && c.etcd_endpoints.len() == 2));
        let remote = [(
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            r#"["http://10.0.0.5:2379"]"#,
        )];
        let err = refusal(&remote);
        assert!(
            err.contains("cluster.etcd_endpoints") && err.contains("insecure_etcd"),
            "{err}"
        );
        assert!(
            config(&[remote[0], ("WARDEN_CLUSTER_INSECURE_ETCD", "true")])
                .is_ok_and(|c| c.cluster.is_some())
        );
        for (name, value, key) in [
            (
                "WARDEN_CLUSTER_ETCD_ENDPOINTS",
                r#"["etcd:2379"]"#,
                "cluster.etcd_endpoints",
            ),
            (
                "WARDEN_CLUSTER_ETCD_ENDPOINTS",
                r#"["https://127.0.0.1:2379"]"#,
                "cluster.etcd_ca_file",
            ),
            (
                "WARDEN_CLUSTER_ETCD_ENDPOINTS",
                r#"["http://127.0.0.1:2379", "https://127.0.0.1:2380"]"#,
                "cluster.etcd_endpoints",
            ),
            (
                "WARDEN_CLUSTER_ETCD_CA_FILE",
                "ca.pem",
                "cluster.etcd_ca_file",
            ),
            (
                "WARDEN_CLUSTER_ETCD_CERT_FILE",
                "c.pem",
                "cluster.etcd_key_file",
            ),
            (
                "WARDEN_CLUSTER_ETCD_KEY_FILE",
                "c.key",
                "cluster.etcd_cert_file",
            ),
            ("WARDEN_CLUSTER_PREFIX", "warden", "cluster.prefix"),
            ("WARDEN_CLUSTER_ETCD_TIMEOUT", "0s", "cluster.etcd_timeout"),
            ("WARDEN_CLUSTER_BLOB_GRACE", "0s", "cluster.blob_grace"),
            ("WARDEN_CLUSTER_BLOB_GRACE", "3s", "cluster.blob_grace"),
        ] {
            let err = refusal(&[
                (
                    "WARDEN_CLUSTER_ETCD_ENDPOINTS",
                    r#"["http://127.0.0.1:2379"]"#,
                ),
                (name, value),
            ]);
            assert!(err.contains(key), "{name}={value}: {err}");
        }
    }

    #[test]
    fn etcd_off_loopback_needs_tls_with_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = crate::cluster::tls::issued();
        let write = |name: &str, contents: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            path.display().to_string()
        };
        let (ca_file, cert_file, key_file) = (
            write("ca.pem", ca),
            write("client.pem", cert),
            write("client.key", key),
        );
        let remote = (
            "WARDEN_CLUSTER_ETCD_ENDPOINTS",
            r#"["https://etcd-1:2379"]"#,
        );
        let ca_only = [remote, ("WARDEN_CLUSTER_ETCD_CA_FILE", ca_file.as_str())];
        let err = refusal(&ca_only);
        assert!(
            err.contains("client certificate") && err.contains("insecure_etcd"),
            "{err}"
        );
        let cluster = config(&[
            ca_only[0],
            ca_only[1],
            ("WARDEN_CLUSTER_ETCD_CERT_FILE", cert_file.as_str()),
            ("WARDEN_CLUSTER_ETCD_KEY_FILE", key_file.as_str()),
        ])
        .ok()
        .and_then(|c| c.cluster);
        assert!(
            cluster.is_some_and(|c| c.etcd_tls.is_some_and(|tls| tls.has_client_certificate()))
        );
        // The server's CA as the client's key: refused at start-up, naming it.
        let err = refusal(&[
            ca_only[0],
            ca_only[1],
            ("WARDEN_CLUSTER_ETCD_CERT_FILE", cert_file.as_str()),
            ("WARDEN_CLUSTER_ETCD_KEY_FILE", ca_file.as_str()),
        ]);
        assert!(
            err.contains("ca.pem") && err.contains("private key"),
            "{err}"
        );
    }

    #[test]
    fn credentials_are_checked_before_anything_listens() {
        let digest = crate::auth::hash_token("t");
        let token =
            |roles: &str| format!("[{{ name = \"a\", sha256 = \"{digest}\", roles = {roles} }}]");
        let err = refusal(&[("WARDEN_AUTH_TOKENS", &token(r#"["platform:x", "auditor"]"#))]);
        assert!(err.contains("mixes platform and admin roles"), "{err}");
        let err = refusal(&[("WARDEN_AUTH_TOKENS", &token(r#"["root"]"#))]);
        assert!(err.contains("`root` is not a role"), "{err}");
        let err = refusal(&[(
            "WARDEN_AUTH_TOKENS",
            r#"[{ name = "a", sha256 = "abc", roles = ["auditor"] }]"#,
        )]);
        assert!(err.contains("auth.tokens.sha256"), "{err}");
        let err = refusal(&[(
            "WARDEN_AUTH_CLIENTS",
            r#"[{ name = "a", cn = "a", roles = ["auditor"] }]"#,
        )]);
        assert!(err.contains("tls.client_ca_file"), "{err}");
        let err = refusal(&[("WARDEN_TLS_CERT_FILE", "/nonexistent.pem")]);
        assert!(err.contains("tls.key_file"), "{err}");
        let err = refusal(&[("WARDEN_TLS_CLIENT_AUTH", "sometimes")]);
        assert!(err.contains("tls.client_auth"), "{err}");
        let err = refusal(&[("WARDEN_LIMITS_PLATFORM_RATE", "-1")]);
        assert!(err.contains("limits.platform_rate"), "{err}");
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
    fn platform_overrides_take_the_defaults_for_what_they_leave_out() -> Result<(), String> {
        let config = config(&[
            ("WARDEN_LIMITS_PLATFORM_RATE", "100"),
            (
                "WARDEN_LIMITS_PLATFORM",
                r#"[{ id = "fast", rate = 2000 }, { id = "open", max_in_flight = 0 }]"#,
            ),
        ])?;
        let fast = config.platform_quotas["fast"];
        assert_eq!((fast.rate, fast.max_in_flight), (2000.0, 4096));
        let open = config.platform_quotas["open"];
        assert_eq!((open.rate, open.max_in_flight), (100.0, 0));
        let err = refusal(&[("WARDEN_LIMITS_PLATFORM_BURST", "-1")]);
        assert!(err.contains("limits.platform_burst"), "{err}");
        let err = refusal(&[("WARDEN_LIMITS_PLATFORM", r#"[{ id = "x", burst = -1 }]"#)]);
        assert!(err.contains("limits.platform.burst"), "{err}");
        Ok(())
    }

    #[test]
    fn snapshots_and_bundles_keep_their_own_history_lengths() -> Result<(), String> {
        let config = config(&[("WARDEN_SNAPSHOTS_KEEP", "2"), ("WARDEN_BUNDLES_KEEP", "7")])?;
        let control = crate::server::control_config(&config);
        assert_eq!((control.snapshot_keep, control.bundle_keep), (2, 7));
        Ok(())
    }
}
