//! `warden.v1.AdminService`: bundles, snapshots, status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::{Instant, SystemTime};

use tonic::{Request, Response, Status};
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_server::AdminService;

use super::status::{invalid_field, status};
use super::{killswitch, limits};
use crate::audit::record::admin_record;
use crate::audit::{Auditor, Durability};
use crate::auth::Caller;
use crate::changes::{Applied, Change, Changes, Replication, SwitchChange};
use crate::cluster::{ClearedShadow, Link};
use crate::control::{Control, ControlError, Target, blocking};
use crate::generation::LoadedPolicy;
use crate::killswitch::{Switch, unix_ms};
use crate::limits::UsageLimits;
use crate::snapshot::{Snapshot, SnapshotKind};
use crate::stats::Stats;
use crate::store::BundleRecord;

/// Serves admin calls; changes run on blocking threads (compiling a bundle
/// takes a while) and never hold up checks.
#[derive(Debug, Clone)]
pub struct AdminApi {
    control: Arc<Control>,
    pub(super) auditor: Arc<Auditor>,
    stats: Arc<Stats>,
    started: Instant,
    /// Where every change goes.
    changes: Arc<Changes>,
    approvals: Option<Arc<crate::approval::Approvals>>,
    /// This replica's limit counters, for listing and resetting keys.
    usage_limits: Option<Arc<UsageLimits>>,
    /// Where replays run.
    pub(super) replays: super::replay_stream::Replays,
}

impl AdminApi {
    pub fn new(
        control: Arc<Control>,
        changes: Arc<Changes>,
        auditor: Arc<Auditor>,
        stats: Arc<Stats>,
        started: Instant,
    ) -> Self {
        Self {
            control,
            auditor,
            stats,
            started,
            changes,
            approvals: None,
            usage_limits: None,
            replays: super::replay_stream::Replays::new(Arc::default()),
        }
    }

    pub(super) fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Replays give way to the checks `checks` counts.
    pub fn with_replays_giving_way_to(mut self, checks: Arc<crate::giveway::Busy>) -> Self {
        self.replays = super::replay_stream::Replays::new(checks);
        self
    }

    /// Reports the approval workflow in status.
    pub fn with_approvals(mut self, approvals: Arc<crate::approval::Approvals>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// Lists and resets limit keys, and reports them in status.
    pub fn with_usage_limits(mut self, usage_limits: Arc<UsageLimits>) -> Self {
        self.usage_limits = Some(usage_limits);
        self
    }

    /// Submits a change on behalf of `caller` (the request's, labelled).
    async fn submit(&self, caller: &str, change: Change) -> Result<Applied, Status> {
        self.changes
            .submit(caller, change)
            .await
            .map_err(|e| status(&e))
    }

    pub(super) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Control) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, Status> {
        blocking(&self.control, work).await.map_err(|e| status(&e))
    }

    /// Ids of the kill switches made here and not yet published.
    fn pending(&self) -> Result<Vec<String>, Status> {
        self.changes.pending_switches().map_err(|e| status(&e))
    }

    fn bundle_info(&self, record: &BundleRecord) -> pb::BundleInfo {
        let current = self.control.generations().current();
        pb::BundleInfo {
            revision: record.revision.clone(),
            digest: record.digest.clone(),
            entrypoint: record.entrypoint.clone(),
            engine: record.engine.clone(),
            pushed_at: record.pushed_at.clone(),
            size_bytes: record.size_bytes,
            signed_by: record.signed_by.clone().unwrap_or_default(),
            active: current.policy.digest == record.digest,
            shadow: current
                .shadow()
                .is_some_and(|(p, _)| p.digest == record.digest),
            tests_passed: record.tests_passed,
        }
    }

    /// Info for a serving policy; its record may have been pruned only if
    /// the store was damaged, in which case the policy itself still answers.
    fn serving_info(&self, policy: &LoadedPolicy) -> pb::BundleInfo {
        match self.control.store().bundle_record(&policy.digest) {
            Ok(Some(record)) => self.bundle_info(&record),
            _ => pb::BundleInfo {
                revision: policy.revision.clone(),
                digest: policy.digest.clone(),
                entrypoint: policy.entrypoint.clone(),
                engine: policy.engine().as_str().to_owned(),
                ..Default::default()
            },
        }
    }
}

fn target(value: i32, allow_stored: bool) -> Result<Target, Status> {
    match pb::BundleTarget::try_from(value) {
        Ok(pb::BundleTarget::Unspecified | pb::BundleTarget::Active) => Ok(Target::Active),
        Ok(pb::BundleTarget::Shadow) => Ok(Target::Shadow),
        Ok(pb::BundleTarget::Stored) if allow_stored => Ok(Target::Stored),
        _ => Err(invalid_field(
            "target",
            "invalid target: not a valid bundle target here",
            "not a valid bundle target here",
        )),
    }
}

pub fn snapshot_info(
    snapshot: &Snapshot,
    max_age: Option<std::time::Duration>,
) -> pb::SnapshotInfo {
    let age = snapshot.age(SystemTime::now());
    pb::SnapshotInfo {
        kind: snapshot.kind.as_str().to_owned(),
        version: snapshot.version.clone(),
        generated_at: snapshot
            .generated_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        age_seconds: age.as_secs(),
        stale: max_age.is_some_and(|max| age > max),
        sha256: snapshot.sha256.clone(),
        size_bytes: snapshot.size as u64,
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    type ReplayBundleStream = super::replay_stream::ReplayStream;

    async fn replay_bundle(
        &self,
        request: Request<pb::ReplayBundleRequest>,
    ) -> Result<Response<Self::ReplayBundleStream>, Status> {
        AdminApi::replay_bundle(self, request).await
    }

    async fn put_bundle(
        &self,
        request: Request<pb::PutBundleRequest>,
    ) -> Result<Response<pb::PutBundleResponse>, Status> {
        let caller = Caller::of(&request).label();
        let request = request.into_inner();
        let target = target(request.target, true)?;
        let change = Change::PutBundle {
            archive: request.bundle,
            target,
        };
        let record = bundle(self.submit(&caller, change).await?)?;
        Ok(Response::new(pb::PutBundleResponse {
            bundle: Some(self.bundle_info(&record)),
        }))
    }

    async fn list_bundles(
        &self,
        _: Request<pb::ListBundlesRequest>,
    ) -> Result<Response<pb::ListBundlesResponse>, Status> {
        let records = self.read(|c| Ok(c.store().bundles()?)).await?;
        Ok(Response::new(pb::ListBundlesResponse {
            bundles: records.iter().map(|r| self.bundle_info(r)).collect(),
        }))
    }

    async fn activate_bundle(
        &self,
        request: Request<pb::ActivateBundleRequest>,
    ) -> Result<Response<pb::ActivateBundleResponse>, Status> {
        let caller = Caller::of(&request).label();
        let request = request.into_inner();
        let target = target(request.target, false)?;
        let change = Change::ActivateBundle {
            digest: request.digest,
            target,
        };
        let record = bundle(self.submit(&caller, change).await?)?;
        Ok(Response::new(pb::ActivateBundleResponse {
            bundle: Some(self.bundle_info(&record)),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::ActivateBundleResponse>, Status> {
        let caller = Caller::of(&request).label();
        let record = bundle(self.submit(&caller, Change::Rollback).await?)?;
        Ok(Response::new(pb::ActivateBundleResponse {
            bundle: Some(self.bundle_info(&record)),
        }))
    }

    async fn clear_shadow_bundle(
        &self,
        request: Request<pb::ClearShadowBundleRequest>,
    ) -> Result<Response<pb::ClearShadowBundleResponse>, Status> {
        let caller = Caller::of(&request).label();
        let cleared = match self.submit(&caller, Change::ClearShadow).await? {
            Applied::ShadowCleared(cleared) => cleared,
            other => return Err(unexpected(&other)),
        };
        let info = match cleared {
            Some(ClearedShadow::Stored(record)) => Some(self.bundle_info(&record)),
            Some(ClearedShadow::Named { digest, revision }) => Some(pb::BundleInfo {
                digest,
                revision,
                ..pb::BundleInfo::default()
            }),
            None => None,
        };
        Ok(Response::new(pb::ClearShadowBundleResponse {
            cleared: info,
        }))
    }

    async fn put_snapshot(
        &self,
        request: Request<pb::PutSnapshotRequest>,
    ) -> Result<Response<pb::PutSnapshotResponse>, Status> {
        let caller = Caller::of(&request).label();
        let request = request.into_inner();
        let change = Change::PutSnapshot {
            kind: request.kind,
            document: request.document,
        };
        let snapshot = match self.submit(&caller, change).await? {
            Applied::Snapshot(snapshot) => snapshot,
            other => return Err(unexpected(&other)),
        };
        let max_age = self.control.config().max_age.of(snapshot.kind);
        Ok(Response::new(pb::PutSnapshotResponse {
            snapshot: Some(snapshot_info(&snapshot, max_age)),
        }))
    }

    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let current = self.control.generations().current();
        let counters = self.auditor.counters();
        let replication = self.changes.replication();
        let pending = self.pending()?.len() as u64;
        Ok(Response::new(pb::GetStatusResponse {
            active: Some(self.serving_info(&current.policy)),
            shadow: current
                .shadow()
                .map(|(policy, _)| self.serving_info(policy)),
            snapshots: SnapshotKind::ALL
                .into_iter()
                .map(|kind| snapshot_info(current.snapshot(kind), current.max_age.of(kind)))
                .collect(),
            generation: current.id,
            shadow_divergences: self.stats.shadow_divergences(),
            active_kill_switches: self
                .control
                .kill_switches()
                .current()
                .in_force(unix_ms(SystemTime::now()))
                .count() as u64,
            audit_records: counters.records.load(Ordering::Relaxed),
            audit_queue_depth: counters.queue_depth.load(Ordering::Relaxed),
            audit_commits: counters.commits.load(Ordering::Relaxed),
            audit_refused: counters.refused.load(Ordering::Relaxed),
            audit_failed: counters.failed.load(Ordering::Relaxed),
            audit_durability: match self.auditor.durability() {
                Durability::Async => "async",
                Durability::Sync => "sync",
                Durability::Off => "off",
            }
            .to_owned(),
            uptime_seconds: self.started.elapsed().as_secs(),
            instance_id: self.control.store().instance_id().to_owned(),
            cluster: match &replication {
                Replication::SingleNode => "single-node".to_owned(),
                Replication::Cluster { link, .. } => match link {
                    Link::Connected => "connected".to_owned(),
                    Link::Starting => "degraded: etcd not reached yet".to_owned(),
                    Link::Degraded(reason) => format!("degraded: {reason}"),
                },
            },
            replica_id: match &replication {
                Replication::SingleNode => String::new(),
                Replication::Cluster { replica, .. } => replica.clone(),
            },
            pending_kill_switches: pending,
            pending_approval_tasks: self.approvals.as_ref().map_or(0, |a| {
                a.counts()
                    .into_iter()
                    .find(|(state, _)| *state == crate::approval::task::State::Pending)
                    .map_or(0, |(_, n)| n)
            }),
            approvals: self
                .approvals
                .as_ref()
                .map_or_else(|| "disabled: not configured".to_owned(), |a| a.status()),
            partition_mode: match replication {
                Replication::Cluster {
                    partitioned: Some(mode),
                    ..
                } => mode.as_str().to_owned(),
                _ => String::new(),
            },
            limit_keys: self.usage_limits.as_ref().map_or(0, |u| u.keys() as u64),
            limits: match &self.usage_limits {
                Some(usage) => limits::summary(
                    &current.policy.limits,
                    usage.keys(),
                    usage.config().max_keys,
                ),
                None => "disabled: not configured".to_owned(),
            },
        }))
    }

    async fn engage_kill_switch(
        &self,
        request: Request<pb::EngageKillSwitchRequest>,
    ) -> Result<Response<pb::EngageKillSwitchResponse>, Status> {
        let caller = Caller::of(&request).label();
        let spec = killswitch::engage_spec(request.into_inner(), &caller)?;
        let change = switch(self.submit(&caller, Change::EngageSwitch(spec)).await?)?;
        Ok(Response::new(pb::EngageKillSwitchResponse {
            kill_switch: Some(killswitch::switch_to_proto(change.switch, change.pending)),
            already_engaged: change.already,
        }))
    }

    async fn release_kill_switch(
        &self,
        request: Request<pb::ReleaseKillSwitchRequest>,
    ) -> Result<Response<pb::ReleaseKillSwitchResponse>, Status> {
        let caller = Caller::of(&request).label();
        let request = request.into_inner();
        let change = Change::ReleaseSwitch {
            by: killswitch::actor(request.released_by, &caller),
            id: request.id,
            reason: request.reason,
        };
        let change = switch(self.submit(&caller, change).await?)?;
        Ok(Response::new(pb::ReleaseKillSwitchResponse {
            kill_switch: Some(killswitch::switch_to_proto(change.switch, change.pending)),
        }))
    }

    async fn list_kill_switches(
        &self,
        request: Request<pb::ListKillSwitchesRequest>,
    ) -> Result<Response<pb::ListKillSwitchesResponse>, Status> {
        let limit = killswitch::ended_limit(request.get_ref().ended_limit);
        let list = self
            .read(move |c| c.list_switches(limit, SystemTime::now()))
            .await?;
        let pending = self.pending()?;
        let to_proto = |switch: Switch| {
            let pending = pending.contains(&switch.id);
            killswitch::switch_to_proto(switch, pending)
        };
        Ok(Response::new(pb::ListKillSwitchesResponse {
            active: list.active.into_iter().map(to_proto).collect(),
            ended: list.ended.into_iter().map(to_proto).collect(),
        }))
    }

    async fn list_limits(
        &self,
        request: Request<pb::ListLimitsRequest>,
    ) -> Result<Response<pb::ListLimitsResponse>, Status> {
        let request = request.into_inner();
        let policy = self.control.generations().current().policy.clone();
        let rules = policy.limits.clone();
        let rule = (!request.rule.is_empty()).then_some(request.rule);
        if let Some(rule) = &rule
            && !rules.limits.iter().any(|r| &r.id == rule)
            && !rules.tripwires.iter().any(|r| &r.id == rule)
        {
            return Err(Status::not_found(format!(
                "no rule `{rule}` in the active bundle's data.warden.limits"
            )));
        }
        let top = limits::top(request.top);
        let (keys, keys_tracked, max_keys) = match self.usage_limits.clone() {
            None => (Vec::new(), 0, 0),
            Some(usage) => {
                let rules = rules.clone();
                // Reading every shard takes each lock in turn: off the
                // async threads, like any scan of the whole table.
                tokio::task::spawn_blocking(move || {
                    let now = unix_ms(SystemTime::now());
                    let keys = usage.hottest(&rules, rule.as_deref(), top, now);
                    (keys, usage.keys(), usage.config().max_keys)
                })
                .await
                .map_err(|e| Status::internal(format!("listing limit keys failed: {e}")))?
            }
        };
        Ok(Response::new(pb::ListLimitsResponse {
            rules: limits::rules_to_proto(&rules),
            keys: keys.into_iter().map(limits::key_to_proto).collect(),
            keys_tracked: keys_tracked as u64,
            max_keys: max_keys as u64,
            policy_revision: policy.revision.clone(),
        }))
    }

    async fn reset_limit_key(
        &self,
        request: Request<pb::ResetLimitKeyRequest>,
    ) -> Result<Response<pb::ResetLimitKeyResponse>, Status> {
        let caller = Caller::of(&request).label();
        let rules = self.control.generations().current().policy.limits.clone();
        let reset = limits::reset_request(request.into_inner(), &rules)?;
        let Some(usage) = self.usage_limits.clone() else {
            return Err(Status::failed_precondition(
                "this server keeps no limit counters",
            ));
        };
        let (rule, key) = (reset.rule.clone(), reset.key.clone());
        let keys_reset = tokio::task::spawn_blocking(move || usage.reset(&rule, &key, &rules))
            .await
            .map_err(|e| Status::internal(format!("resetting limit keys failed: {e}")))?
            as u64;
        // The reset is done and cannot be taken back, so a failure to
        // record it is logged rather than returned, as for other changes.
        let record = admin_record(
            "limits.key_reset",
            &caller,
            serde_json::json!({
                "rule": reset.rule,
                "key": reset.key_json(),
                "keys_reset": keys_reset,
                "reason": reset.reason,
            }),
            SystemTime::now(),
        );
        if let Err(e) = self.auditor.record_admin(&record).await {
            tracing::error!(error = %e, "limit keys were reset but the reset could not be audited");
        }
        Ok(Response::new(pb::ResetLimitKeyResponse { keys_reset }))
    }
}

/// A change that answered with the wrong kind of result: a bug, reported
/// as one rather than trusted.
fn unexpected(applied: &Applied) -> Status {
    Status::internal(format!(
        "the change answered with an unexpected result: {applied:?}"
    ))
}

fn bundle(applied: Applied) -> Result<BundleRecord, Status> {
    match applied {
        Applied::Bundle(record) => Ok(record),
        other => Err(unexpected(&other)),
    }
}

fn switch(applied: Applied) -> Result<SwitchChange, Status> {
    match applied {
        Applied::Switch(change) => Ok(change),
        other => Err(unexpected(&other)),
    }
}
