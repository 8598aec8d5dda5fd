//! Per-platform admission for checks: a token bucket (checks per second,
//! a batch costing one per item) and a cap on calls in flight, so that one
//! platform's burst cannot starve the others. Refusals are
//! `RESOURCE_EXHAUSTED` with a `RetryInfo` saying when to come back.

pub mod config;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Platforms tracked one by one at most; beyond this (only reachable in open
/// mode, where the platform is whatever the request says) the rest share
/// one bucket.
const MAX_TRACKED: usize = 10_000;

/// One platform's allowance. Zero means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Checks per second, sustained.
    pub rate: f64,
    /// Checks that may arrive at once above the rate.
    pub burst: f64,
    /// Check calls in flight at once.
    pub max_in_flight: usize,
}

impl Quota {
    pub const UNLIMITED: Quota = Quota {
        rate: 0.0,
        burst: 0.0,
        max_in_flight: 0,
    };

    fn is_unlimited(&self) -> bool {
        self.rate <= 0.0 && self.max_in_flight == 0
    }
}

#[derive(Debug)]
struct Bucket {
    quota: Quota,
    /// Tokens left and when they were counted.
    tokens: Mutex<(f64, Instant)>,
    in_flight: AtomicUsize,
}

impl Bucket {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            tokens: Mutex::new((quota.burst, Instant::now())),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Returns `cost` tokens taken for checks that were never made.
    fn give_back(&self, cost: f64) {
        if self.quota.rate <= 0.0 {
            return;
        }
        if let Ok(mut state) = self.tokens.lock() {
            state.0 = (state.0 + cost).min(self.quota.burst);
        }
    }

    /// Takes `cost` tokens, or says how long until there are enough.
    fn take(&self, cost: f64, now: Instant) -> Result<(), Duration> {
        if self.quota.rate <= 0.0 {
            return Ok(());
        }
        let Ok(mut state) = self.tokens.lock() else {
            // A poisoned bucket is one whose holder panicked mid-update;
            // refusing is the safe answer.
            return Err(Duration::from_secs(1));
        };
        let (tokens, counted) = *state;
        let refilled = (tokens
            + now.saturating_duration_since(counted).as_secs_f64() * self.quota.rate)
            .min(self.quota.burst);
        if refilled >= cost {
            *state = (refilled - cost, now);
            Ok(())
        } else {
            *state = (refilled, now);
            Err(Duration::from_secs_f64(
                ((cost - refilled) / self.quota.rate).min(3600.0),
            ))
        }
    }
}

/// Admission for every platform.
#[derive(Debug)]
pub struct PlatformLimits {
    default: Quota,
    overrides: HashMap<String, Quota>,
    buckets: RwLock<HashMap<String, Arc<Bucket>>>,
    overflow: Arc<Bucket>,
}

/// A call admitted; leaving the flight when dropped.
#[derive(Debug, Default)]
pub struct Admitted {
    buckets: Vec<(String, Arc<Bucket>)>,
}

impl Admitted {
    /// Gives `platform` back the tokens of `checks` checks the call did
    /// not make (an AuthZEN batch that stopped early): the rate limits
    /// evaluations, and these cost none.
    pub fn refund(&self, platform: &str, checks: usize) {
        if let Some((_, bucket)) = self.buckets.iter().find(|(p, _)| p == platform) {
            bucket.give_back(checks as f64);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for (_, bucket) in &self.buckets {
            bucket.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl PlatformLimits {
    pub fn new(default: Quota, overrides: HashMap<String, Quota>) -> Self {
        Self {
            default,
            overrides,
            buckets: RwLock::new(HashMap::new()),
            overflow: Arc::new(Bucket::new(default)),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(Quota::UNLIMITED, HashMap::new())
    }

    fn bucket(&self, platform: &str) -> Option<Arc<Bucket>> {
        if let Ok(buckets) = self.buckets.read()
            && let Some(bucket) = buckets.get(platform)
        {
            return Some(bucket.clone());
        }
        let quota = self
            .overrides
            .get(platform)
            .copied()
            .unwrap_or(self.default);
        if quota.is_unlimited() {
            return None;
        }
        let Ok(mut buckets) = self.buckets.write() else {
            return Some(self.overflow.clone());
        };
        if buckets.len() >= MAX_TRACKED && !self.overrides.contains_key(platform) {
            return Some(self.overflow.clone());
        }
        Some(
            buckets
                .entry(platform.to_owned())
                .or_insert_with(|| Arc::new(Bucket::new(quota)))
                .clone(),
        )
    }

    /// The most checks one call may carry for `platform` under its rate
    /// (its burst); `None` when no rate applies. A search sizes its pages
    /// by it, so that it is paged rather than refused.
    pub fn most_per_call(&self, platform: &str) -> Option<usize> {
        if self.default.is_unlimited() && self.overrides.is_empty() {
            return None;
        }
        let bucket = self.bucket(platform)?;
        (bucket.quota.rate > 0.0).then_some(bucket.quota.burst.floor().max(1.0) as usize)
    }

    /// Admits one call carrying `checks` checks for each platform listed
    /// (a batch may speak for several).
    pub fn admit<'a>(
        &self,
        platforms: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> Result<Admitted, Status> {
        if self.default.is_unlimited() && self.overrides.is_empty() {
            return Ok(Admitted::default());
        }
        let now = Instant::now();
        let mut admitted = Admitted::default();
        for (platform, checks) in platforms {
            let Some(bucket) = self.bucket(platform) else {
                continue;
            };
            let max = bucket.quota.max_in_flight;
            let before = bucket.in_flight.fetch_add(1, Ordering::AcqRel);
            if max > 0 && before >= max {
                bucket.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(exhausted(
                    format!(
                        "platform `{platform}` has {max} check calls in flight, its limit \
                         (limits.platform_max_in_flight)"
                    ),
                    Duration::from_millis(10),
                ));
            }
            admitted.buckets.push((platform.to_owned(), bucket.clone()));
            let cost = checks as f64;
            if bucket.quota.rate > 0.0 && cost > bucket.quota.burst {
                return Err(Status::resource_exhausted(format!(
                    "a call of {checks} checks for platform `{platform}` exceeds its burst of {} \
                     (limits.platform_burst); split it",
                    bucket.quota.burst
                )));
            }
            if let Err(wait) = bucket.take(cost, now) {
                return Err(exhausted(
                    format!(
                        "platform `{platform}` is over its rate of {} checks/s \
                         (limits.platform_rate)",
                        bucket.quota.rate
                    ),
                    wait,
                ));
            }
        }
        Ok(admitted)
    }
}

fn exhausted(message: String, retry_after: Duration) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(rate: f64, burst: f64, max_in_flight: usize) -> Quota {
        Quota {
            rate,
            burst,
            max_in_flight,
        }
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_burst() {
        let bucket = Bucket::new(quota(10.0, 5.0, 0));
        let start = Instant::now();
        for _ in 0..5 {
            assert!(bucket.take(1.0, start).is_ok());
        }
        let wait = bucket.take(1.0, start).err();
        assert!(wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_millis(100)));
        // 0.3 s later: three tokens back.
        let later = start + Duration::from_millis(300);
        for _ in 0..3 {
            assert!(bucket.take(1.0, later).is_ok());
        }
        assert!(bucket.take(1.0, later).is_err());
        // Long idle: never more than the burst.
        let much_later = later + Duration::from_secs(60);
        assert!(bucket.take(5.0, much_later).is_ok());
        assert!(bucket.take(1.0, much_later).is_err());
    }

    #[test]
    fn in_flight_is_capped_per_platform_and_released_on_drop() {
        let limits = PlatformLimits::new(quota(0.0, 0.0, 2), HashMap::new());
        let a1 = limits.admit([("a", 1)]);
        let a2 = limits.admit([("a", 1)]);
        assert!(a1.is_ok() && a2.is_ok());
        let refused = limits.admit([("a", 1)]).err();
        assert_eq!(refused.map(|s| s.code()), Some(Code::ResourceExhausted));
        // Another platform has its own allowance.
        assert!(limits.admit([("b", 1)]).is_ok());
        drop(a1);
        assert!(limits.admit([("a", 1)]).is_ok());
    }

    #[test]
    fn overrides_apply_to_their_platform_only() {
        let limits = PlatformLimits::new(
            Quota::UNLIMITED,
            HashMap::from([("small".to_owned(), quota(1.0, 1.0, 0))]),
        );
        assert!(limits.admit([("small", 1)]).is_ok());
        assert!(limits.admit([("small", 1)]).is_err());
        for _ in 0..100 {
            assert!(limits.admit([("big", 1)]).is_ok());
        }
    }

    #[test]
    fn a_batch_costs_one_token_per_check_and_may_not_exceed_the_burst() {
        let limits = PlatformLimits::new(quota(1.0, 10.0, 0), HashMap::new());
        assert!(limits.admit([("a", 10)]).is_ok());
        assert!(limits.admit([("a", 1)]).is_err());
        let too_big = limits.admit([("b", 11)]).err();
        assert!(too_big.is_some_and(|s| s.message().contains("burst")));
    }

    #[test]
    fn checks_not_made_are_refunded_up_to_the_burst() {
        let limits = PlatformLimits::new(quota(0.001, 10.0, 0), HashMap::new());
        let admitted = limits.admit([("a", 10), ("b", 4)]).unwrap();
        admitted.refund("a", 7);
        admitted.refund("c", 100);
        drop(admitted);
        assert!(limits.admit([("a", 7)]).is_ok());
        assert!(limits.admit([("a", 1)]).is_err());
        // Never past the burst, whatever is refunded.
        let admitted = limits.admit([("b", 6)]).unwrap();
        admitted.refund("b", 100);
        assert!(limits.admit([("b", 10)]).is_ok());
        assert!(limits.admit([("b", 1)]).is_err());
    }
}
