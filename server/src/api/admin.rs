//! `warden.v1.AdminService`: bundles, snapshots, status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use std::time::{Instant, SystemTime};
use tracing::error;

use tonic::{Request, Response, Status};
use warden_proto::v1 as pb;
use warden_proto::v1::admin_service_server::AdminService;

use super::killswitch;
use super::status::invalid_field;
use crate::audit::record::admin_record;
use crate::audit::{Auditor, Durability};
use crate::auth::Caller;
use crate::cluster::{ClearedShadow, Cluster, Link};
use crate::control::{Control, ControlError, Target};
use crate::generation::LoadedPolicy;
use crate::killswitch::{rfc3339_ms, unix_ms};
use crate::snapshot::{Snapshot, SnapshotKind};
use crate::stats::Stats;
use crate::store::BundleRecord;

/// Serves admin calls; changes run on blocking threads (compiling a bundle
/// takes a while) and never hold up checks.
#[derive(Debug, Clone)]
pub struct AdminApi {
    control: Arc<Control>,
    auditor: Arc<Auditor>,
    stats: Arc<Stats>,
    started: Instant,
    /// In cluster mode, where every change goes first.
    cluster: Option<Arc<Cluster>>,
}

impl AdminApi {
    pub fn new(
        control: Arc<Control>,
        auditor: Arc<Auditor>,
        stats: Arc<Stats>,
        started: Instant,
    ) -> Self {
        Self {
            control,
            auditor,
            stats,
            started,
            cluster: None,
        }
    }

    /// Routes every change through the cluster (etcd) instead of applying
    /// it to this replica alone.
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Control) -> Result<T, ControlError> + Send + 'static,
    {
        let control = self.control.clone();
        tokio::task::spawn_blocking(move || work(&control))
            .await
            .map_err(|e| Status::internal(format!("admin task failed: {e}")))?
            .map_err(|e| status(&e))
    }

    /// Adds an admin event to the audit chain, durably. The change it
    /// records has already been made, so a failure is logged and counted,
    /// not returned.
    async fn audit(&self, caller: &Caller, event: &str, details: serde_json::Value) {
        self.audit_as(&caller.label(), event, details).await;
    }

    async fn audit_as(&self, caller: &str, event: &str, details: serde_json::Value) {
        let record = admin_record(event, caller, details, SystemTime::now());
        if let Err(e) = self.auditor.record_admin(&record).await {
            error!(event, error = %e, "an admin change was made but could not be audited");
        }
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

/// Maps a refused change to the status that says why.
pub(crate) fn status(error: &ControlError) -> Status {
    match error {
        ControlError::Invalid { field, reason } => invalid_field(field, &error.to_string(), reason),
        ControlError::FailedPrecondition(message) => Status::failed_precondition(message),
        ControlError::NotFound(message) => Status::not_found(message),
        ControlError::Store(e) => Status::unavailable(e.to_string()),
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
    async fn put_bundle(
        &self,
        request: Request<pb::PutBundleRequest>,
    ) -> Result<Response<pb::PutBundleResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let target = target(request.target, true)?;
        let size = request.bundle.len();
        let record = match &self.cluster {
            Some(cluster) => cluster.put_bundle(request.bundle, target).await?,
            None => {
                self.blocking(move |c| c.put_bundle(request.bundle, target))
                    .await?
            }
        };
        let event = match target {
            Target::Active => "bundle.activated",
            Target::Shadow => "bundle.shadowed",
            Target::Stored => "bundle.stored",
        };
        self.audit(&caller, event, bundle_details(&record, Some(size)))
            .await;
        Ok(Response::new(pb::PutBundleResponse {
            bundle: Some(self.bundle_info(&record)),
        }))
    }

    async fn list_bundles(
        &self,
        _: Request<pb::ListBundlesRequest>,
    ) -> Result<Response<pb::ListBundlesResponse>, Status> {
        let records = self.blocking(|c| Ok(c.store().bundles()?)).await?;
        Ok(Response::new(pb::ListBundlesResponse {
            bundles: records.iter().map(|r| self.bundle_info(r)).collect(),
        }))
    }

    async fn activate_bundle(
        &self,
        request: Request<pb::ActivateBundleRequest>,
    ) -> Result<Response<pb::ActivateBundleResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let target = target(request.target, false)?;
        let record = match &self.cluster {
            Some(cluster) => cluster.activate(request.digest, target).await?,
            None => {
                self.blocking(move |c| c.activate(&request.digest, target))
                    .await?
            }
        };
        let event = match target {
            Target::Shadow => "bundle.shadowed",
            _ => "bundle.activated",
        };
        self.audit(&caller, event, bundle_details(&record, None))
            .await;
        Ok(Response::new(pb::ActivateBundleResponse {
            bundle: Some(self.bundle_info(&record)),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::ActivateBundleResponse>, Status> {
        let record = match &self.cluster {
            Some(cluster) => cluster.rollback().await?,
            None => self.blocking(|c| c.rollback()).await?,
        };
        self.audit(
            &Caller::of(&request),
            "bundle.rolled_back",
            bundle_details(&record, None),
        )
        .await;
        Ok(Response::new(pb::ActivateBundleResponse {
            bundle: Some(self.bundle_info(&record)),
        }))
    }

    async fn clear_shadow_bundle(
        &self,
        request: Request<pb::ClearShadowBundleRequest>,
    ) -> Result<Response<pb::ClearShadowBundleResponse>, Status> {
        let cleared = match &self.cluster {
            Some(cluster) => cluster.clear_shadow().await?,
            None => self
                .blocking(|c| c.clear_shadow())
                .await?
                .map(ClearedShadow::Stored),
        };
        // Recorded even when there was no shadow: the request was made.
        let (details, info) = match cleared {
            Some(ClearedShadow::Stored(record)) => (
                bundle_details(&record, None),
                Some(self.bundle_info(&record)),
            ),
            Some(ClearedShadow::Named { digest, revision }) => (
                json!({"digest": digest, "revision": revision}),
                Some(pb::BundleInfo {
                    digest,
                    revision,
                    ..pb::BundleInfo::default()
                }),
            ),
            None => (json!({"cleared": null}), None),
        };
        self.audit(&Caller::of(&request), "bundle.shadow_cleared", details)
            .await;
        Ok(Response::new(pb::ClearShadowBundleResponse {
            cleared: info,
        }))
    }

    async fn put_snapshot(
        &self,
        request: Request<pb::PutSnapshotRequest>,
    ) -> Result<Response<pb::PutSnapshotResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let snapshot = match &self.cluster {
            Some(cluster) => cluster.put_snapshot(request.kind, request.document).await?,
            None => {
                self.blocking(move |c| c.put_snapshot(&request.kind, request.document))
                    .await?
            }
        };
        self.audit(
            &caller,
            "snapshot.loaded",
            json!({
                "kind": snapshot.kind.as_str(),
                "version": snapshot.version,
                "sha256": snapshot.sha256,
                "size_bytes": snapshot.size,
            }),
        )
        .await;
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
            cluster: match &self.cluster {
                None => "single-node".to_owned(),
                Some(cluster) => match cluster.link() {
                    Link::Connected => "connected".to_owned(),
                    Link::Starting => "degraded: etcd not reached yet".to_owned(),
                    Link::Degraded(reason) => format!("degraded: {reason}"),
                },
            },
            replica_id: self
                .cluster
                .as_ref()
                .map(|c| c.replica().to_owned())
                .unwrap_or_default(),
        }))
    }

    async fn engage_kill_switch(
        &self,
        request: Request<pb::EngageKillSwitchRequest>,
    ) -> Result<Response<pb::EngageKillSwitchResponse>, Status> {
        let caller = Caller::of(&request).label();
        let spec = killswitch::engage_spec(request.into_inner(), &caller)?;
        let switch = match &self.cluster {
            Some(cluster) => cluster.engage(spec).await?,
            None => {
                self.blocking(move |c| c.engage(spec, SystemTime::now()))
                    .await?
            }
        };
        self.audit_as(
            &caller,
            "kill_switch.engaged",
            json!({
                "id": switch.id,
                "scope": switch.scope,
                "mode": switch.mode.as_str(),
                "reason": switch.reason,
                "engaged_by": switch.engaged_by,
                "expires_at": switch.expires_at_ms.map(rfc3339_ms),
            }),
        )
        .await;
        Ok(Response::new(pb::EngageKillSwitchResponse {
            kill_switch: Some(killswitch::switch_to_proto(switch)),
        }))
    }

    async fn release_kill_switch(
        &self,
        request: Request<pb::ReleaseKillSwitchRequest>,
    ) -> Result<Response<pb::ReleaseKillSwitchResponse>, Status> {
        let caller = Caller::of(&request).label();
        let request = request.into_inner();
        let by = killswitch::actor(request.released_by, &caller);
        let switch = match &self.cluster {
            Some(cluster) => cluster.release(request.id, request.reason, by).await?,
            None => {
                self.blocking(move |c| {
                    c.release(&request.id, request.reason, by, SystemTime::now())
                })
                .await?
            }
        };
        self.audit_as(
            &caller,
            "kill_switch.released",
            json!({
                "id": switch.id,
                "scope": switch.scope,
                "released_by": switch.ended.as_ref().map(|e| e.by.as_str()),
                "reason": switch.ended.as_ref().map(|e| e.reason.as_str()),
            }),
        )
        .await;
        Ok(Response::new(pb::ReleaseKillSwitchResponse {
            kill_switch: Some(killswitch::switch_to_proto(switch)),
        }))
    }

    async fn list_kill_switches(
        &self,
        request: Request<pb::ListKillSwitchesRequest>,
    ) -> Result<Response<pb::ListKillSwitchesResponse>, Status> {
        let limit = killswitch::ended_limit(request.get_ref().ended_limit);
        let list = self
            .blocking(move |c| c.list_switches(limit, SystemTime::now()))
            .await?;
        Ok(Response::new(pb::ListKillSwitchesResponse {
            active: list
                .active
                .into_iter()
                .map(killswitch::switch_to_proto)
                .collect(),
            ended: list
                .ended
                .into_iter()
                .map(killswitch::switch_to_proto)
                .collect(),
        }))
    }
}

fn bundle_details(record: &BundleRecord, pushed_bytes: Option<usize>) -> serde_json::Value {
    json!({
        "revision": record.revision,
        "digest": record.digest,
        "engine": record.engine,
        "signed_by": record.signed_by,
        "tests_passed": record.tests_passed,
        "pushed_bytes": pushed_bytes,
    })
}
