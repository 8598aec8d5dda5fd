//! Prometheus metrics for the ops listener's `/metrics`.
//!
//! Hot-path metrics (decisions, latencies) are updated as checks are
//! answered; state that already lives elsewhere (switches, audit counters,
//! the generation) is read when scraped, so it can never disagree with what
//! the server is actually serving.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::audit::{Auditor, CommitObserver};
use crate::decision::Verdict;
use crate::engine::EngineKind;
use crate::generation::Generations;
use crate::killswitch::{KillSwitches, unix_ms};
use crate::snapshot::SnapshotKind;
use crate::transport::ListenerStats;

/// Distinct policy `reason` label values kept before the rest are counted
/// as `other`: reasons come from policies, and an unbounded label would let
/// a policy (or an error message) blow up the scrape and the server's
/// memory.
const MAX_REASONS: usize = 256;

/// The server's own reason codes: always their own label, whatever policies
/// did to the cap, so that alerts on them never go blind.
const SERVER_REASONS: [&str; 7] = [
    "kill_switch",
    "kill_switch_state_unavailable",
    "stale_snapshot",
    "evaluation_error",
    "evaluation_timeout",
    "audit_queue_full",
    "audit_unavailable",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    reason: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabels {
    engine: &'static str,
}

/// Which entry point answered a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    GrpcCheck,
    GrpcBatchCheck,
    AuthzenEvaluation,
    AuthzenEvaluations,
    GrpcSearch,
    AuthzenSearch,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::GrpcCheck => "grpc_check",
            Api::GrpcBatchCheck => "grpc_batch_check",
            Api::AuthzenEvaluation => "authzen_evaluation",
            Api::AuthzenEvaluations => "authzen_evaluations",
            Api::GrpcSearch => "grpc_search",
            Api::AuthzenSearch => "authzen_search",
        }
    }
}

/// The metrics the request path updates.
#[derive(Debug)]
pub struct Metrics {
    decisions: Family<DecisionLabels, Counter>,
    check_latency: Family<ApiLabels, Histogram>,
    evaluation_latency: Family<EngineLabels, Histogram>,
    audit_commit_latency: Histogram,
    reasons: RwLock<HashSet<Arc<str>>>,
    reserved: HashSet<Arc<str>>,
    other: Arc<str>,
    none: Arc<str>,
}

fn latency_buckets() -> Histogram {
    // 10 µs to ~5 s: a check is tens of microseconds, a stalled one seconds.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            check_latency: Family::new_with_constructor(latency_buckets),
            evaluation_latency: Family::new_with_constructor(latency_buckets),
            audit_commit_latency: latency_buckets(),
            reasons: RwLock::new(HashSet::new()),
            reserved: SERVER_REASONS.into_iter().map(Arc::from).collect(),
            other: Arc::from("other"),
            none: Arc::from("none"),
        }
    }
}

impl Metrics {
    /// Counts one decision under its first reason's code (the text before
    /// the first `:`, so `kill_switch:<id>` counts as `kill_switch`).
    pub fn decided(&self, verdict: Verdict, reasons: &[String]) {
        let reason = match reasons.first() {
            None => self.none.clone(),
            Some(reason) => self.reason_label(reason_code(reason)),
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                outcome: verdict.as_str(),
                reason,
            })
            .inc();
    }

    /// The time from a request's arrival to its answer.
    pub fn answered(&self, api: Api, elapsed: Duration) {
        self.check_latency
            .get_or_create(&ApiLabels { api: api.as_str() })
            .observe(elapsed.as_secs_f64());
    }

    /// The time a check spent deciding once it reached the policy.
    pub fn evaluated(&self, engine: EngineKind, elapsed: Duration) {
        self.evaluation_latency
            .get_or_create(&EngineLabels {
                engine: engine.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One successful flush of the audit writer: what a `sync` check waits
    /// for once its record is written.
    fn reason_label(&self, code: &str) -> Arc<str> {
        if let Some(label) = self.reserved.get(code) {
            return label.clone();
        }
        let known = self
            .reasons
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(label) = known.get(code) {
            return label.clone();
        }
        drop(known);
        let mut known = self
            .reasons
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(label) = known.get(code) {
            return label.clone();
        }
        if known.len() >= MAX_REASONS {
            return self.other.clone();
        }
        let label: Arc<str> = Arc::from(code);
        known.insert(label.clone());
        label
    }
}

/// A reason's machine-readable part: up to the first `:` or space, and only
/// if it looks like an identifier (error messages do not make labels).
fn reason_code(reason: &str) -> &str {
    let code = reason
        .split([':', ' '])
        .next()
        .unwrap_or_default()
        .trim_end_matches(':');
    let identifier = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if identifier { code } else { "other" }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// What `/metrics` reads at scrape time.
#[derive(Debug, Clone)]
pub struct Sources {
    pub generations: Arc<Generations>,
    pub switches: Arc<KillSwitches>,
    pub auditor: Arc<Auditor>,
    /// In cluster mode.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Every listener's connections.
    pub listeners: Vec<Arc<ListenerStats>>,
    pub approvals: Arc<crate::approval::Approvals>,
    /// Limit counters: the keys held are read at scrape.
    pub usage_limits: Arc<crate::limits::UsageLimits>,
}

#[derive(Debug)]
struct StateCollector(Sources);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
    engine: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    kind: &'static str,
    version: String,
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl Into<f64>,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value.into());
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now();
        let switches = self.0.switches.current();
        let in_force = switches.in_force(unix_ms(now)).count();
        gauge(
            &mut encoder,
            "kill_switches_active",
            "Kill switches engaged and in force",
            None,
            u32::try_from(in_force).unwrap_or(u32::MAX),
        )?;
        gauge(
            &mut encoder,
            "kill_switch_state_available",
            "1 if the kill-switch state is known; 0 means every check is denied",
            None,
            u8::from(switches.unavailable_reason().is_none()),
        )?;

        let counters = self.0.auditor.counters();
        // Gauges carry f64; a depth beyond 2^53 is not a concern.
        gauge(
            &mut encoder,
            "audit_queue_depth",
            "Audit records waiting for the writer",
            None,
            counters.queue_depth.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            &mut encoder,
            "audit_records",
            "Audit records written to the chain",
            counters.records.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "audit_commits",
            "Audit group commits (flushes)",
            counters.commits.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "audit_refused",
            "Checks denied because the audit queue was full",
            counters.refused.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "audit_failed",
            "Audit records that could not be written",
            counters.failed.load(Ordering::Relaxed),
        )?;

        let generation = self.0.generations.current();
        let revision = Family::<RevisionLabels, Gauge>::default();
        revision
            .get_or_create(&RevisionLabels {
                revision: generation.policy.revision.clone(),
                engine: generation.policy.engine().as_str(),
            })
            .set(1);
        revision.encode(encoder.encode_descriptor(
            "bundle_revision",
            "The active bundle's revision (label); always 1",
            None,
            revision.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "generation",
            "The published generation's sequence number; it moves on every bundle or snapshot change",
            None,
            generation.id as f64,
        )?;
        let age = Family::<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let version = Family::<VersionLabels, Gauge>::default();
        for kind in SnapshotKind::ALL {
            let snapshot = generation.snapshot(kind);
            age.get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .set(snapshot.age(now).as_secs_f64());
            version
                .get_or_create(&VersionLabels {
                    kind: kind.as_str(),
                    version: snapshot.version.clone(),
                })
                .set(1);
        }
        age.encode(encoder.encode_descriptor(
            "snapshot_age",
            "Time since the loaded snapshot's generated_at",
            Some(&Unit::Seconds),
            age.metric_type(),
        )?)?;
        version.encode(encoder.encode_descriptor(
            "snapshot_version",
            "The loaded snapshot's version (label); always 1",
            None,
            version.metric_type(),
        )?)?;
        encode_connections(&mut encoder, &self.0.listeners)?;
        encode_approval_tasks(&mut encoder, &self.0.approvals)?;
        gauge(
            &mut encoder,
            "limit_keys",
            "Limit and tripwire counter keys held by this replica (at most limits.max_keys)",
            None,
            self.0.usage_limits.keys() as f64,
        )?;
        if let Some(cluster) = &self.0.cluster {
            gauge(
                &mut encoder,
                "cluster_connected",
                "1 while this replica is in step with etcd; 0 while degraded (serving its last known state, refusing admin writes)",
                None,
                u8::from(cluster.link() == crate::cluster::Link::Connected),
            )?;
            gauge(
                &mut encoder,
                "cluster_partitioned",
                "1 while cluster.on_partition is in force: cut off from etcd for longer than cluster.partition_grace",
                None,
                u8::from(cluster.partitioned().is_some()),
            )?;
            gauge(
                &mut encoder,
                "cluster_applied_revision",
                "The etcd revision this replica has applied",
                None,
                cluster.applied_revision() as f64,
            )?;
        }
        Ok(())
    }
}

fn encode_approval_tasks(
    encoder: &mut DescriptorEncoder,
    approvals: &crate::approval::Approvals,
) -> Result<(), std::fmt::Error> {
    let tasks = Family::<StateLabels, Gauge>::default();
    for (state, count) in approvals.counts() {
        tasks
            .get_or_create(&StateLabels {
                state: state.as_str(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    tasks.encode(encoder.encode_descriptor(
        "approval_tasks",
        "Approval tasks held, by state",
        None,
        tasks.metric_type(),
    )?)
}

fn encode_connections(
    encoder: &mut DescriptorEncoder,
    listeners: &[Arc<ListenerStats>],
) -> Result<(), std::fmt::Error> {
    let open = Family::<ListenerLabels, Gauge>::default();
    let accepted = Family::<ListenerLabels, Counter>::default();
    let refused = Family::<ConnectionLabels, Counter>::default();
    let closed = Family::<ConnectionLabels, Counter>::default();
    for stats in listeners {
        let listener = stats.name();
        let labels = ListenerLabels { listener };
        open.get_or_create(&labels)
            .set(i64::try_from(stats.open()).unwrap_or(i64::MAX));
        accepted.get_or_create(&labels).inc_by(stats.accepted());
        for (reason, count) in stats.refused() {
            refused
                .get_or_create(&ConnectionLabels { listener, reason })
                .inc_by(count);
        }
        for (reason, count) in stats.closed() {
            closed
                .get_or_create(&ConnectionLabels { listener, reason })
                .inc_by(count);
        }
    }
    open.encode(encoder.encode_descriptor(
        "connections_open",
        "Open connections per listener",
        None,
        open.metric_type(),
    )?)?;
    accepted.encode(encoder.encode_descriptor(
        "connections_accepted",
        "Connections given a place on the listener",
        None,
        accepted.metric_type(),
    )?)?;
    refused.encode(encoder.encode_descriptor(
        "connections_refused",
        "Connections closed on accept: the listener (or the source address) was full of connections that had carried admitted calls",
        None,
        refused.metric_type(),
    )?)?;
    closed.encode(encoder.encode_descriptor(
        "connections_closed",
        "Connections closed, by reason (evicted: a newcomer took the place of one that had carried no admitted call)",
        None,
        closed.metric_type(),
    )?)
}

/// The registry `/metrics` encodes: the request path's metrics and the
/// state read at scrape time, all prefixed `warden_`.
pub fn registry(metrics: &Arc<Metrics>, sources: Sources) -> Registry {
    let mut registry = Registry::with_prefix("warden");
    registry.register(
        "decisions",
        "Decisions by outcome and by the code of their first reason",
        metrics.decisions.clone(),
    );
    registry.register_with_unit(
        "check_duration",
        "Time from a check's arrival to its answer, audit included",
        Unit::Seconds,
        metrics.check_latency.clone(),
    );
    registry.register_with_unit(
        "evaluation_duration",
        "Time deciding a check that reached the policy, per engine (shadow evaluation included)",
        Unit::Seconds,
        metrics.evaluation_latency.clone(),
    );
    registry.register_with_unit(
        "audit_commit_duration",
        "Time of one successful audit flush (group commit)",
        Unit::Seconds,
        metrics.audit_commit_latency.clone(),
    );
    let approvals = sources.approvals.metrics().clone();
    registry.register_with_unit(
        "approval_time_to_decision",
        "Time from an approval request to its approval, denial or expiry",
        Unit::Seconds,
        approvals.time_to_decision,
    );
    registry.register(
        "approval_checks",
        "Checks that carried an approval, by outcome (allowed, or the refusal's reason)",
        approvals.uses,
    );
    let limits = sources.usage_limits.metrics().clone();
    registry.register(
        "limit_refusals",
        "Checks the policy allowed that a limit refused, by rule",
        limits.refusals,
    );
    registry.register(
        "tripwires_fired",
        "Tripwires that engaged their kill switch, by rule",
        limits.tripwires_fired,
    );
    registry.register(
        "limit_keys_full",
        "Checks that needed a new counter key while limits.max_keys live keys were held, by rule",
        limits.keys_full,
    );
    registry.register_collector(Box::new(StateCollector(sources)));
    registry
}

/// The OpenMetrics text of `registry`.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

impl CommitObserver for Metrics {
    fn committed(&self, elapsed: Duration) {
        self.audit_commit_latency.observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_bounded_identifiers() {
        assert_eq!(reason_code("kill_switch:019a-…"), "kill_switch");
        assert_eq!(reason_code("stale_snapshot:identity"), "stale_snapshot");
        assert_eq!(
            reason_code("evaluation_error: undefined fn"),
            "evaluation_error"
        );
        assert_eq!(reason_code("agent_not_granted"), "agent_not_granted");
        assert_eq!(reason_code("Kill switch engaged by Ana"), "Kill");
        assert_eq!(reason_code("\"quoted\""), "other");
        assert_eq!(reason_code(""), "other");
        assert_eq!(reason_code(&"x".repeat(65)), "other");
    }

    #[test]
    fn reason_labels_stop_growing_at_the_cap() {
        let metrics = Metrics::default();
        for i in 0..MAX_REASONS + 10 {
            metrics.decided(Verdict::Deny, &[format!("reason_{i}")]);
        }
        metrics.decided(Verdict::Allow, &[]);
        let text = {
            let mut registry = Registry::default();
            registry.register("d", "d", metrics.decisions.clone());
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            text
        };
        assert!(
            text.contains(r#"d_total{outcome="deny",reason="other"} 10"#),
            "{text}"
        );
        assert!(
            text.contains(r#"d_total{outcome="allow",reason="none"} 1"#),
            "{text}"
        );
        assert_eq!(text.matches("outcome=\"deny\"").count(), MAX_REASONS + 1);
        // The server's own codes keep their label past the cap.
        metrics.decided(Verdict::Deny, &["kill_switch:019a".into()]);
        metrics.decided(Verdict::Deny, &["audit_queue_full".into()]);
        let mut registry = Registry::default();
        registry.register("d", "d", metrics.decisions.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"d_total{outcome="deny",reason="kill_switch"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"d_total{outcome="deny",reason="audit_queue_full"} 1"#),
            "{text}"
        );
    }
}
