//! Configuration values: the error a refused setting is reported as, and
//! parsers for the kinds of value several sections share. Each section's
//! typed configuration and its validation live with the module that uses
//! it and build on these; `config` only reads and layers the sources.
//!
//! Imports nothing from the crate, so that every section's owner may use it
//! without depending on the loader (which depends on them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

pub fn duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value).map_err(|e| ConfigError::Invalid {
        key,
        message: format!("`{value}` is not a duration such as `30s` or `15m`: {e}"),
    })
}

pub fn nonzero_duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = duration(key, value)?;
    if parsed.is_zero() {
        return Err(ConfigError::Invalid {
            key,
            message: "must be longer than zero".into(),
        });
    }
    Ok(parsed)
}

pub fn nonempty_path(key: &'static str, value: &str) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            message: "must not be empty".into(),
        });
    }
    Ok(PathBuf::from(value))
}

pub fn positive(key: &'static str, value: u64) -> Result<usize, ConfigError> {
    match usize::try_from(value) {
        Ok(0) | Err(_) => Err(ConfigError::Invalid {
            key,
            message: format!("{value} is out of range; expected a positive number"),
        }),
        Ok(value) => Ok(value),
    }
}

pub fn addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|e| ConfigError::Invalid {
        key,
        message: format!("`{value}` is not HOST:PORT: {e}"),
    })
}
