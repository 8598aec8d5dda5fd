//! `limits.platform_*` and `[[limits.platform]]`: each platform's allowance,
//! as written, and its validation into `Quota`s.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Quota;
use crate::settings::ConfigError;

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

/// The default quota (`limits.platform_rate`, `limits.platform_burst`,
/// `limits.platform_max_in_flight`) and each listed platform's own.
pub fn platform_quotas(
    platform_rate: f64,
    platform_burst: f64,
    platform_max_in_flight: u64,
    platform: &[RawPlatformLimit],
) -> Result<(Quota, HashMap<String, Quota>), ConfigError> {
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
        platform_rate,
        platform_burst,
        platform_max_in_flight,
    )?;
    let mut overrides = HashMap::new();
    for entry in platform {
        if entry.id.is_empty() {
            return Err(ConfigError::Invalid {
                key: "limits.platform.id",
                message: "must not be empty".into(),
            });
        }
        let limit = quota(
            ["limits.platform.rate", "limits.platform.burst"],
            entry.rate.unwrap_or(platform_rate),
            entry.burst.unwrap_or(platform_burst),
            entry.max_in_flight.unwrap_or(platform_max_in_flight),
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

#[cfg(test)]
mod tests;
