//! `[log]` and `[tracing]`: the sections as written, and their validation
//! into `TelemetryConfig`.

use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A `tracing` filter, e.g. `info` or `warden=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
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

/// `[log]` and `[tracing]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub log_level: String,
    pub log_json: bool,
    /// Where to export spans (`<endpoint>/v1/traces`), if anywhere.
    pub otlp_traces: Option<String>,
    pub service_name: String,
}

pub fn telemetry_config(
    log: &RawLog,
    tracing: &RawTracing,
) -> Result<TelemetryConfig, ConfigError> {
    let log_json = match log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(ConfigError::Invalid {
                key: "log.format",
                message: format!("`{other}` is not a format; expected `text` or `json`"),
            });
        }
    };
    Ok(TelemetryConfig {
        log_level: log.level.clone(),
        log_json,
        otlp_traces: otlp_traces(&tracing.otlp_endpoint)?,
        service_name: match tracing.service_name.as_str() {
            "" => {
                return Err(ConfigError::Invalid {
                    key: "tracing.service_name",
                    message: "must not be empty".into(),
                });
            }
            name => name.to_owned(),
        },
    })
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
