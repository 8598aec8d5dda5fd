//! `[auth]`: the callers Warden knows, as written, and their validation
//! into the `Authenticator`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Authenticator, CertMatch, CertRule, Principal, Role, TokenTable};
use crate::settings::ConfigError;

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

/// `[auth]` with the `[tls]` keys about client certificates, validated.
/// Client certificates are judged against the `[tls]` section's
/// `client_auth` and `client_ca_file`, which the loader passes in.
pub fn authenticator(
    raw: &RawAuth,
    client_auth: &str,
    client_ca_file: &str,
    has_tls: bool,
) -> Result<Authenticator, ConfigError> {
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
    let required = match client_auth {
        "optional" => false,
        "required" => true,
        other => {
            return Err(ConfigError::Invalid {
                key: "tls.client_auth",
                message: format!("`{other}` is not `optional` or `required`"),
            });
        }
    };
    if (required || !certs.is_empty()) && (!has_tls || client_ca_file.is_empty()) {
        return Err(ConfigError::Invalid {
            key: "tls.client_ca_file",
            message: "client certificates are required or mapped to callers, but no client CA \
                      is configured"
                .into(),
        });
    }
    Ok(Authenticator::new(tokens, certs, required))
}

#[cfg(test)]
mod tests;
