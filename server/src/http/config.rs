//! `[authzen]`: the section as written, and its validation into
//! `AuthzenConfig`.

use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;

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

pub fn authzen_config(raw: &RawAuthzen) -> Result<AuthzenConfig, ConfigError> {
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
