//! Judgment over time: budgets that a bundle declares per agent, person,
//! tool or session, and tripwires that contain a runaway agent with a kill
//! switch.
//!
//! The policy decides each check alone; this module remembers. After the
//! policy allows a check, `admit` reserves it in every matching limit, or
//! in none and refuses it. After any check the policy decided, `observe`
//! counts it for the tripwires whose outcomes it matches, and reports a
//! key that reached its threshold so that the caller engages its switch.
//! Counting state is in `counters` (sharded, capped), its windows in
//! `window`; `persist` snapshots it to the store and `publish` shares it
//! with the other replicas.

pub mod config;
mod counters;
pub mod metrics;
pub mod persist;
pub mod publish;
pub mod rules;
mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use config::{LimitsConfig, OnFull};
use counters::{Counters, Entry, EntryKind, Full};
pub use metrics::LimitMetrics;
pub use rules::{Dim, LimitRule, OnExceed, RuleError, RuleSet, SUM_SCALE, Tripwire};
use window::{retry_after_ms, width_ms};

use crate::killswitch::{EngageSpec, Mode, Scope, SwitchIndex};
use crate::request::{CheckRequest, InputPath};

/// Budget state shared by every check of this replica.
#[derive(Debug)]
pub struct UsageLimits {
    counters: Counters,
    config: LimitsConfig,
    session_path: Arc<InputPath>,
    metrics: LimitMetrics,
    remote: publish::Remote,
    /// When `make_room` last scanned the table.
    evicted_at_ms: AtomicU64,
    /// Where `persist` saves (the server's store); none in tests.
    store: Option<sled::Db>,
}

/// The budget a `expose: true` rule reports to an allowed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub rule: String,
    /// In the rule's unit (decisions, or the summed value).
    pub used: f64,
    pub max: f64,
    pub window: Duration,
}

/// Why a check the policy allowed is not admitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub rule: String,
    /// `limit_exceeded:<rule>`, `limit_sum_missing:<rule>`,
    /// `limit_sum_invalid:<rule>` or `limit_state_full:<rule>`.
    pub reason: String,
    pub detail: Option<String>,
    /// When the check would pass, if waiting can make it pass.
    pub retry_after: Option<Duration>,
    /// Only for `limit_exceeded`: what the rule does about it.
    pub on_exceed: OnExceed,
    pub used: f64,
    pub max: f64,
}

/// What was reserved for an admitted check, to take back if the check is
/// refused after all (its approval could not be used).
#[derive(Debug, Default)]
pub struct Reservation {
    held: Vec<(Box<str>, u64, u64)>,
}

#[derive(Debug)]
pub enum Admission {
    Admitted {
        reservation: Reservation,
        budgets: Vec<Budget>,
    },
    Refused(Refusal),
}

/// A tripwire that fired: the switch to engage.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub rule: String,
    key: Box<str>,
    pub scope: Scope,
    pub mode: Mode,
    pub ttl: Duration,
    pub count: u64,
}

impl Trip {
    /// The engage request, as `warden:tripwire` makes it.
    pub fn engage_spec(&self) -> EngageSpec {
        EngageSpec {
            scope: self.scope.clone(),
            mode: Some(self.mode),
            reason: format!("tripwire:{}", self.rule),
            expires_at: String::new(),
            ttl_seconds: self.ttl.as_secs().max(1),
            global: false,
            engaged_by: TRIPWIRE_ACTOR.to_owned(),
            id: String::new(),
        }
    }
}

pub const TRIPWIRE_ACTOR: &str = "warden:tripwire";

/// One key's usage, for operators.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyUsage {
    pub rule: String,
    /// `dimension=value` pairs, in the rule's `per` order.
    pub key: Vec<(String, String)>,
    pub used: f64,
    pub max: f64,
    pub tripwire: bool,
    /// A tripwire's switch, once fired.
    pub fired: Option<String>,
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a check adds to `rule`'s usage: 1, or its summed input scaled by
/// `SUM_SCALE`; else the refusal's reason and detail (the amount is missing
/// or not a number from 0 to 10^12).
fn amount(rule: &LimitRule, request: &CheckRequest) -> Result<u64, (&'static str, String)> {
    let Some(path) = &rule.sum else {
        return Ok(1);
    };
    match path.get(request) {
        None => Err(("limit_sum_missing", format!("`{path}` is missing"))),
        Some(value) => match value.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 && n * SUM_SCALE < 1e18 => {
                Ok((n * SUM_SCALE).round() as u64)
            }
            _ => Err((
                "limit_sum_invalid",
                format!("`{path}` is not a number from 0 to 10^12"),
            )),
        },
    }
}

impl UsageLimits {
    pub fn new(config: LimitsConfig, session_path: Arc<InputPath>) -> Self {
        Self {
            counters: Counters::new(config.max_keys),
            config,
            session_path,
            metrics: LimitMetrics::default(),
            remote: publish::Remote::default(),
            evicted_at_ms: AtomicU64::new(0),
            store: None,
        }
    }

    /// Saves into `db` when `persist` is called.
    pub fn with_store(mut self, db: sled::Db) -> Self {
        self.store = Some(db);
        self
    }

    /// Saves the changed counters now (after a tripwire fired: a crash
    /// must not bring back its count without the switch it fired).
    pub fn persist(&self) -> Result<usize, persist::PersistError> {
        match &self.store {
            Some(db) => self.save(db),
            None => Ok(0),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    pub fn metrics(&self) -> &LimitMetrics {
        &self.metrics
    }

    pub fn keys(&self) -> usize {
        self.counters.keys()
    }

    /// The check's values of `per`, or `None` when it lacks one (no session
    /// or no resource id): such a check is not counted by the rule.
    fn values<'r>(&self, per: &[Dim], request: &'r CheckRequest) -> Option<Vec<&'r str>> {
        per.iter()
            .map(|dim| match dim {
                Dim::Agent => Some(request.agent.id.as_str()),
                Dim::Principal => Some(request.principal.id.as_str()),
                Dim::Platform => Some(request.platform.as_str()),
                Dim::Action => Some(request.action.name.as_str()),
                Dim::ResourceType => Some(request.resource.kind.as_str()),
                Dim::Resource => request.resource.id.as_deref(),
                Dim::Session => self
                    .session_path
                    .get(request)
                    .and_then(|v| v.as_text())
                    .filter(|s| !s.is_empty()),
            })
            .collect()
    }

    /// Reserves a check the policy allowed in every limit that applies to
    /// it, or in none. `approved`: the check carries a used approval, which
    /// satisfies `require_approval` limits (counted, not refused).
    pub fn admit(
        &self,
        rules: &RuleSet,
        request: &CheckRequest,
        now_ms: u64,
        approved: bool,
    ) -> Admission {
        let mut reservation = Reservation::default();
        let mut budgets = Vec::new();
        let mut key = String::new();
        for rule in &rules.limits {
            if !rule.matcher.matches(request) {
                continue;
            }
            let Some(values) = self.values(&rule.per, request) else {
                continue;
            };
            let refuse = |reason: &str, detail: String| Refusal {
                rule: rule.id.clone(),
                reason: format!("{reason}:{}", rule.id),
                detail: Some(detail),
                retry_after: None,
                on_exceed: OnExceed::Deny,
                used: 0.0,
                max: rule.max_display(),
            };
            let amount = match amount(rule, request) {
                Ok(amount) => amount,
                Err((reason, detail)) => {
                    self.rollback(reservation);
                    return self.refused(refuse(reason, detail));
                }
            };
            counters::key(&mut key, &rule.id, &values);
            let width = width_ms(ms(rule.window));
            let bucket = now_ms / width;
            let shard_index = self.counters.shard_of(&key);
            self.make_room(now_ms);
            let mut shard = self.counters.lock(shard_index);
            let entry = match self.counters.entry(
                &mut shard,
                &key,
                || Entry::new(EntryKind::Limit, rule.fingerprint, width),
                |e| now_ms / e.width_ms,
            ) {
                Ok(entry) => entry,
                Err(Full) => {
                    drop(shard);
                    self.metrics.full(&rule.id);
                    match self.config.on_full {
                        OnFull::Allow => continue,
                        OnFull::Deny => {
                            self.rollback(reservation);
                            return self.refused(refuse(
                                "limit_state_full",
                                format!(
                                    "{} keys are tracked (limits.max_keys) and none is idle",
                                    self.counters.max_keys()
                                ),
                            ));
                        }
                    }
                }
            };
            entry.align(EntryKind::Limit, rule.fingerprint, width);
            let used = entry.usage_at(bucket);
            let forced = approved && matches!(rule.on_exceed, OnExceed::RequireApproval(_));
            if used.saturating_add(amount) > rule.max && !forced {
                let retry_after = (amount <= rule.max)
                    .then(|| {
                        let windows: Vec<&window::Window> = std::iter::once(&entry.own)
                            .chain(entry.remote.as_deref())
                            .collect();
                        retry_after_ms(&windows, used + amount - rule.max, width, now_ms)
                    })
                    .flatten()
                    .map(Duration::from_millis);
                drop(shard);
                self.rollback(reservation);
                let scale = |n: u64| match rule.sum {
                    Some(_) => n as f64 / SUM_SCALE,
                    None => n as f64,
                };
                return self.refused(Refusal {
                    rule: rule.id.clone(),
                    reason: format!("limit_exceeded:{}", rule.id),
                    detail: Some(format!(
                        "{} of {} used within {}{}",
                        scale(used),
                        rule.max_display(),
                        humantime::format_duration(rule.window),
                        if amount > rule.max {
                            "; this check alone is over the limit"
                        } else {
                            ""
                        }
                    )),
                    retry_after,
                    on_exceed: rule.on_exceed.clone(),
                    used: scale(used),
                    max: rule.max_display(),
                });
            }
            entry.own.add(bucket, amount);
            shard.dirty = true;
            drop(shard);
            reservation.held.push((key.as_str().into(), bucket, amount));
            if rule.expose {
                let used = used.saturating_add(amount);
                budgets.push(Budget {
                    rule: rule.id.clone(),
                    used: match rule.sum {
                        Some(_) => used as f64 / SUM_SCALE,
                        None => used as f64,
                    },
                    max: rule.max_display(),
                    window: rule.window,
                });
            }
        }
        Admission::Admitted {
            reservation,
            budgets,
        }
    }

    /// What `admit` would refuse `request` with, reserving nothing: the
    /// first limit it would exceed, or whose amount it lacks. Searches ask
    /// this, so that a result is what a check would get without spending
    /// the budget. A key not counted yet holds nothing; a full key table is
    /// not reported (nothing would be created here).
    pub fn would_refuse(
        &self,
        rules: &RuleSet,
        request: &CheckRequest,
        now_ms: u64,
    ) -> Option<Refusal> {
        let mut key = String::new();
        for rule in &rules.limits {
            if !rule.matcher.matches(request) {
                continue;
            }
            let Some(values) = self.values(&rule.per, request) else {
                continue;
            };
            let refuse = |reason: &str, detail: String| Refusal {
                rule: rule.id.clone(),
                reason: format!("{reason}:{}", rule.id),
                detail: Some(detail),
                retry_after: None,
                on_exceed: OnExceed::Deny,
                used: 0.0,
                max: rule.max_display(),
            };
            let amount = match amount(rule, request) {
                Ok(amount) => amount,
                Err((reason, detail)) => return Some(refuse(reason, detail)),
            };
            counters::key(&mut key, &rule.id, &values);
            let width = width_ms(ms(rule.window));
            let bucket = now_ms / width;
            let mut shard = self.counters.lock(self.counters.shard_of(&key));
            let used = match shard.map.get_mut(key.as_str()) {
                Some(entry)
                    if entry.kind == EntryKind::Limit
                        && entry.fingerprint == rule.fingerprint
                        && entry.width_ms == width =>
                {
                    entry.usage_at(bucket)
                }
                _ => 0,
            };
            drop(shard);
            if used.saturating_add(amount) > rule.max {
                let scale = |n: u64| match rule.sum {
                    Some(_) => n as f64 / SUM_SCALE,
                    None => n as f64,
                };
                return Some(Refusal {
                    rule: rule.id.clone(),
                    reason: format!("limit_exceeded:{}", rule.id),
                    detail: Some(format!(
                        "{} of {} used within {}",
                        scale(used),
                        rule.max_display(),
                        humantime::format_duration(rule.window)
                    )),
                    retry_after: None,
                    on_exceed: rule.on_exceed.clone(),
                    used: scale(used),
                    max: rule.max_display(),
                });
            }
        }
        None
    }

    fn refused(&self, refusal: Refusal) -> Admission {
        self.metrics.refused(&refusal.rule);
        Admission::Refused(refusal)
    }

    /// Takes back what `reservation` held.
    pub fn rollback(&self, reservation: Reservation) {
        for (key, bucket, amount) in reservation.held {
            let mut shard = self.counters.lock(self.counters.shard_of(&key));
            if let Some(entry) = shard.map.get_mut(&key) {
                entry.own.sub(bucket, amount);
            }
        }
    }

    /// Counts a decided check (`verdict` as `Verdict::as_str` names it) for the tripwires it matches; the ones that
    /// reached their threshold with it, whose switches the caller engages
    /// (then reports with `fired`). `switches`: the index in force, to
    /// re-arm a key whose switch was released or expired.
    pub fn observe(
        &self,
        rules: &RuleSet,
        request: &CheckRequest,
        verdict: &str,
        reasons: &[String],
        now_ms: u64,
        switches: &SwitchIndex,
    ) -> Vec<Trip> {
        let mut trips = Vec::new();
        let mut key = String::new();
        for rule in &rules.tripwires {
            if !rule.matcher.matches(request) || !rule.outcomes.counts(verdict, reasons) {
                continue;
            }
            let Some(values) = self.values(&rule.per, request) else {
                continue;
            };
            counters::key(&mut key, &rule.id, &values);
            let width = width_ms(ms(rule.window));
            let bucket = now_ms / width;
            self.make_room(now_ms);
            let mut shard = self.counters.lock(self.counters.shard_of(&key));
            shard.dirty = true;
            let Ok(entry) = self.counters.entry(
                &mut shard,
                &key,
                || Entry::new(EntryKind::Tripwire, rule.fingerprint, width),
                |e| now_ms / e.width_ms,
            ) else {
                drop(shard);
                self.metrics.full(&rule.id);
                continue;
            };
            entry.align(EntryKind::Tripwire, rule.fingerprint, width);
            if entry.firing {
                continue;
            }
            if let Some(id) = &entry.fired {
                if in_force(switches, id, now_ms) {
                    continue;
                }
                // Released or expired: the tripwire counts afresh.
                entry.fired = None;
                entry.own.clear();
            }
            entry.own.add(bucket, 1);
            let count = entry.usage_at(bucket);
            if count >= rule.threshold {
                entry.firing = true;
                trips.push(Trip {
                    rule: rule.id.clone(),
                    key: key.as_str().into(),
                    scope: scope(&rule.per, &values),
                    mode: rule.mode,
                    ttl: rule.ttl,
                    count,
                });
            }
        }
        trips
    }

    /// The outcome of engaging a trip's switch: its id, or `None` when it
    /// could not be engaged (the tripwire stays armed and fires again).
    pub fn fired(&self, trip: &Trip, switch_id: Option<&str>) {
        let mut shard = self.counters.lock(self.counters.shard_of(&trip.key));
        if let Some(entry) = shard.map.get_mut(&trip.key) {
            entry.firing = false;
            entry.fired = switch_id.map(Into::into);
            shard.dirty = true;
        }
        if switch_id.is_some() {
            self.metrics.tripped(&trip.rule);
        }
    }

    /// Forgets the usage of `rule`'s keys whose values include every one of
    /// `values` (all its keys when empty); how many keys.
    pub fn reset(&self, rule: &str, values: &[(Dim, String)], rules: &RuleSet) -> usize {
        let per: Option<&[Dim]> = rules
            .limits
            .iter()
            .find(|r| r.id == rule)
            .map(|r| r.per.as_slice())
            .or_else(|| {
                rules
                    .tripwires
                    .iter()
                    .find(|r| r.id == rule)
                    .map(|r| r.per.as_slice())
            });
        self.counters.remove_where(|key, _| {
            let Some((id, have)) = counters::split(key) else {
                return false;
            };
            id == rule
                && values.iter().all(|(dim, want)| {
                    per.and_then(|per| per.iter().position(|d| d == dim))
                        .and_then(|at| have.get(at))
                        .is_some_and(|v| v == want)
                })
        })
    }

    /// The `limit` keys with the most usage against their max, at most `n`,
    /// busiest first; `rule` narrows to one rule.
    pub fn hottest(
        &self,
        rules: &RuleSet,
        rule: Option<&str>,
        n: usize,
        now_ms: u64,
    ) -> Vec<KeyUsage> {
        let mut found = Vec::new();
        for index in 0..self.counters.shard_count() {
            let mut shard = self.counters.lock(index);
            for (key, entry) in shard.map.iter_mut() {
                let Some((id, values)) = counters::split(key) else {
                    continue;
                };
                if rule.is_some_and(|r| r != id) {
                    continue;
                }
                let (per, max, scale, tripwire) =
                    if let Some(r) = rules.limits.iter().find(|r| r.id == id) {
                        let scale = if r.sum.is_some() { SUM_SCALE } else { 1.0 };
                        (&r.per, r.max as f64 / scale, scale, false)
                    } else if let Some(r) = rules.tripwires.iter().find(|r| r.id == id) {
                        (&r.per, r.threshold as f64, 1.0, true)
                    } else {
                        continue;
                    };
                let used = entry.usage_at(now_ms / entry.width_ms) as f64 / scale;
                if used == 0.0 && entry.fired.is_none() {
                    continue;
                }
                found.push(KeyUsage {
                    rule: id.to_owned(),
                    key: per
                        .iter()
                        .zip(values)
                        .map(|(d, v)| (d.as_str().to_owned(), v.to_owned()))
                        .collect(),
                    used,
                    max,
                    tripwire,
                    fired: entry.fired.as_deref().map(str::to_owned),
                });
            }
        }
        found.sort_by(|a, b| {
            (b.used / b.max)
                .total_cmp(&(a.used / a.max))
                .then_with(|| a.rule.cmp(&b.rule))
        });
        found.truncate(n);
        found
    }

    /// When the table is full, drops idle keys everywhere — at most once a
    /// second, so that a table full of live keys does not make every check
    /// scan it. Called with no shard locked.
    fn make_room(&self, now_ms: u64) {
        if self.counters.keys() < self.counters.max_keys() {
            return;
        }
        let last = self.evicted_at_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < 1_000 {
            return;
        }
        if self
            .evicted_at_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.evict_idle(now_ms);
        }
    }

    /// Drops keys with nothing left in their windows; how many.
    pub fn evict_idle(&self, now_ms: u64) -> usize {
        self.counters.evict_idle(|e| now_ms / e.width_ms)
    }
}

/// Whether switch `id` is engaged and in force at `now_ms`.
fn in_force(switches: &SwitchIndex, id: &str, now_ms: u64) -> bool {
    let all = switches.switches();
    all.binary_search_by(|s| s.id.as_str().cmp(id))
        .ok()
        .and_then(|at| all.get(at))
        .is_some_and(|s| s.in_force(now_ms))
}

/// The switch scope a tripwire's key names.
fn scope(per: &[Dim], values: &[&str]) -> Scope {
    let mut scope = Scope::default();
    for (dim, value) in per.iter().zip(values) {
        let value = Some((*value).to_owned());
        match dim {
            Dim::Agent => scope.agent_id = value,
            Dim::Principal => scope.principal_id = value,
            Dim::Platform => scope.platform = value,
            Dim::Action => scope.action = value,
            Dim::ResourceType => scope.resource_type = value,
            Dim::Session => scope.session_id = value,
            // Refused at validation: a switch cannot name one resource.
            Dim::Resource => {}
        }
    }
    scope
}

#[cfg(test)]
mod tests;
