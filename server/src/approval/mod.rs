//! Human approval of REQUIRE_APPROVAL decisions (AuthZEN's Access Request
//! and Approval Profile), with Warden as both the PDP and the access request
//! service:
//!
//! 1. a REQUIRE_APPROVAL whose policy said who may approve carries an
//!    access request: a MAC-protected binding token over the exact request
//!    (`binding`), so nothing is stored per decision;
//! 2. a platform submits it (`submit`): a task, stored;
//! 3. an approver, a person named by their credential, approves it: a
//!    signed approval (`keys`), bound to the request's hash;
//! 4. the platform repeats the check with the approval (`verify`, then the
//!    policy, then `consume`): ALLOW only for the very request, and each
//!    use is a compare-and-swap on the task's one record.

pub mod binding;
pub mod config;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod store;
pub mod task;
pub mod token;
pub mod views;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use warden_proto::v1 as pb;

pub use config::{ApprovalsConfig, RawApprovals};
pub use error::ApprovalError;
pub use store::{TaskRecords, TaskStore};
pub use views::{detail, platform_view};

use self::keys::Keys;
use self::store::now_ms;
use self::task::{Grant, Revocation, State, Task};
use crate::approval_requirement::{Approver, Requirement};
use crate::audit::Auditor;
use crate::audit::record::{admin_record, rfc3339};
use crate::cluster::Cluster;
use crate::control::records::RecordKind;
use crate::killswitch::rfc3339_ms;
use crate::request::CheckRequest;
use crate::snapshot::Snapshot;

/// Where task changes are made durable and ordered.
#[derive(Debug)]
pub enum Backend {
    Local,
    Cluster {
        cluster: Arc<Cluster>,
        kind: Arc<dyn RecordKind>,
    },
}

/// A check's approval, verified: what the policy sees as `input.approval`.
#[derive(Debug, Clone)]
pub struct Verified {
    pub task_id: String,
    pub approval_id: String,
    pub evaluation_id: String,
    pub approver: String,
    pub facts: Json,
}

/// Why a check's approval was refused: an ARAP reason and what the
/// platform should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub detail: Option<String>,
    pub next_action: &'static str,
    pub retry_after: u32,
}

impl Refused {
    fn new(reason: &'static str, next_action: &'static str) -> Self {
        Self {
            reason,
            detail: None,
            next_action,
            retry_after: 0,
        }
    }

    fn because(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn unverifiable() -> Self {
        Self::new("approval_unverifiable", "none")
    }

    fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: 1,
            ..Self::new("approval_unavailable", "retry").because(detail)
        }
    }

    /// The DENY reasons: the ARAP reason, then the detail.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = vec![self.reason.to_owned()];
        reasons.extend(self.detail.clone());
        reasons
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Approvals {
    config: ApprovalsConfig,
    /// `Err`: approvals are off, and why.
    keys: Result<Keys, String>,
    store: Arc<TaskStore>,
    backend: Backend,
    auditor: Arc<Auditor>,
    decided: metrics::ApprovalMetrics,
}

impl Approvals {
    pub fn new(
        config: ApprovalsConfig,
        keys: Result<Keys, String>,
        store: Arc<TaskStore>,
        backend: Backend,
        auditor: Arc<Auditor>,
    ) -> Self {
        Self {
            config,
            keys,
            store,
            backend,
            auditor,
            decided: metrics::ApprovalMetrics::default(),
        }
    }

    /// `enabled`, or `disabled: <why>`, for status.
    pub fn status(&self) -> String {
        match &self.keys {
            Ok(_) => "enabled".into(),
            Err(why) => format!("disabled: {why}"),
        }
    }

    pub fn keys(&self) -> Result<&Keys, ApprovalError> {
        self.keys
            .as_ref()
            .map_err(|why| ApprovalError::NotRequestable(format!("approvals are disabled: {why}")))
    }

    pub fn store(&self) -> &Arc<TaskStore> {
        &self.store
    }

    pub fn metrics(&self) -> &metrics::ApprovalMetrics {
        &self.decided
    }

    /// Tasks by state, for metrics and status.
    pub fn counts(&self) -> Vec<(State, u64)> {
        let now = now_ms();
        let tasks = self.store.all().unwrap_or_default();
        State::ALL
            .iter()
            .map(|state| {
                let n = tasks
                    .iter()
                    .filter(|t| effective_state(t, now) == *state)
                    .count() as u64;
                (*state, n)
            })
            .collect()
    }

    /// The access request for a REQUIRE_APPROVAL decision, when a person
    /// can be asked: approvals on, and the policy said who.
    pub fn access_request(
        &self,
        request: &CheckRequest,
        requirement: Option<&Requirement>,
        reasons: &[String],
        decision_id: &str,
        now: SystemTime,
    ) -> Option<pb::AccessRequest> {
        let requirement = requirement?;
        let keys = self.keys.as_ref().ok()?;
        let now_ms = crate::killswitch::unix_ms(now);
        let expires_ms =
            now_ms.saturating_add(u64::try_from(self.config.request_ttl.as_millis()).ok()?);
        let hash = binding::hash(&binding::bound(request, &self.config.exclude_context));
        let claims = token::Claims {
            v: 1,
            eid: decision_id.to_owned(),
            iat: now_ms,
            exp: expires_ms,
            pl: request.platform.clone(),
            h: hash,
            req: requirement.clone(),
            r: reasons.to_vec(),
        };
        let binding_token = token::mint(keys, &claims)?;
        Some(pb::AccessRequest {
            evaluation_id: decision_id.to_owned(),
            evaluated_at: rfc3339(now),
            expires_at: rfc3339_ms(expires_ms),
            binding_token,
            requirement: Some(views::requirement(requirement)),
        })
    }

    /// A platform's submission of a requestable decision: the task, new or
    /// (for the same submission again) the existing one.
    pub async fn submit(
        &self,
        caller: &str,
        request: &CheckRequest,
        evaluation_id: &str,
        binding_token: &str,
        justification: &str,
    ) -> Result<Task, ApprovalError> {
        let keys = self.keys()?;
        free_text("justification", justification)?;
        let claims = token::open(keys, binding_token)?;
        if claims.eid != evaluation_id {
            return Err(ApprovalError::Binding(
                "it was issued for another evaluation_id".into(),
            ));
        }
        if claims.pl != request.platform {
            return Err(ApprovalError::Binding(
                "it was issued to another platform".into(),
            ));
        }
        let now = now_ms();
        if now > claims.exp {
            return Err(ApprovalError::ExpiredDenial(rfc3339_ms(claims.exp)));
        }
        let bound = binding::bound(request, &self.config.exclude_context);
        if binding::hash(&bound) != claims.h {
            return Err(ApprovalError::Binding(
                "the request differs from the one that required approval".into(),
            ));
        }
        let id = keys.task_id(evaluation_id);
        if let Some(existing) = self.store.get(&id)? {
            return same_submission(existing, justification);
        }
        let task = Task {
            id: id.clone(),
            version: 0,
            state: State::Pending,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(
                u64::try_from(self.config.task_ttl.as_millis()).unwrap_or(u64::MAX),
            ),
            evaluation_id: evaluation_id.to_owned(),
            platform: request.platform.clone(),
            agent_id: request.agent.id.clone(),
            principal_type: request
                .principal
                .kind
                .clone()
                .unwrap_or_else(|| "user".into()),
            principal_id: request.principal.id.clone(),
            action: request.action.name.clone(),
            resource: match &request.resource.id {
                Some(rid) => format!("{}:{rid}", request.resource.kind),
                None => request.resource.kind.clone(),
            },
            request: bound,
            binding_hash: claims.h,
            requirement: claims.req,
            policy_reasons: claims.r,
            justification: justification.to_owned(),
            requested_by: caller.to_owned(),
            decided_at_ms: None,
            decided_by: None,
            note: String::new(),
            grant: None,
        };
        let created = self
            .update(&id, move |current| match current {
                Some(_) => Err(ApprovalError::Duplicate(String::new())),
                None => Ok(task.clone()),
            })
            .await;
        let task = match created {
            Err(ApprovalError::Duplicate(_)) => {
                // Submitted meanwhile (another replica, or a retry).
                let existing = self.current(&id).await?;
                return same_submission(existing, justification);
            }
            other => other?,
        };
        info!(task_id = task.id, evaluation_id, "approval requested");
        self.audit(
            caller,
            "approval.requested",
            &task,
            json!({"justification_bytes": justification.len()}),
        )
        .await;
        Ok(task)
    }

    /// A task as its platform may see it; another platform's is unknown.
    pub fn task_for(
        &self,
        platform_ok: impl Fn(&str) -> bool,
        id: &str,
    ) -> Result<Task, ApprovalError> {
        self.keys()?;
        match self.store.get(id)? {
            Some(task) if platform_ok(&task.platform) => Ok(task),
            _ => Err(ApprovalError::UnknownTask(id.to_owned())),
        }
    }

    pub fn task(&self, id: &str) -> Result<Task, ApprovalError> {
        self.keys()?;
        self.store
            .get(id)?
            .ok_or_else(|| ApprovalError::UnknownTask(id.to_owned()))
    }

    /// Task `id` as the replication backend has it now: in a cluster, as
    /// etcd has it (applied here too), so that a person deciding on one
    /// replica a task submitted on another a moment ago finds it.
    pub async fn current(&self, id: &str) -> Result<Task, ApprovalError> {
        self.keys()?;
        if let Backend::Cluster { cluster, kind } = &self.backend
            && let Some((value, _)) = cluster.record(kind.as_ref(), id).await?
        {
            let task: Task = serde_json::from_slice(&value).map_err(|e| {
                ApprovalError::Internal(format!("a task in etcd does not parse: {e}"))
            })?;
            let store = self.store.clone();
            let merged = task.clone();
            tokio::task::spawn_blocking(move || store.merge(&merged))
                .await
                .map_err(|e| ApprovalError::Internal(e.to_string()))??;
            return Ok(task);
        }
        self.task(id)
    }

    pub fn tasks(&self) -> Result<Vec<Task>, ApprovalError> {
        self.keys()?;
        self.store.all()
    }

    pub async fn cancel(
        &self,
        caller: &str,
        task: Task,
        reason: &str,
    ) -> Result<Task, ApprovalError> {
        free_text("reason", reason)?;
        let reason = reason.to_owned();
        let now = now_ms();
        let task = self
            .update(&task.id, move |current| {
                let mut task = pending(current, now)?;
                task.state = State::Cancelled;
                task.decided_at_ms = Some(now);
                task.note = reason.clone();
                Ok(task)
            })
            .await?;
        self.audit(
            caller,
            "approval.cancelled",
            &task,
            json!({"reason": task.note}),
        )
        .await;
        Ok(task)
    }

    /// Approves a pending task as `user`, for `valid_for` (zero: the
    /// policy's `max_ttl`).
    pub async fn approve(
        &self,
        caller: &str,
        user: &str,
        identity: &Snapshot,
        id: &str,
        note: &str,
        valid_for: Duration,
    ) -> Result<Task, ApprovalError> {
        let keys = self.keys()?;
        let task = self.current(id).await?;
        may_decide(&task.requirement, &task, user, identity)?;
        let max = task.requirement.max_ttl;
        if valid_for > max {
            return Err(ApprovalError::invalid(
                "valid_for_seconds",
                format!(
                    "is more than the policy's max_ttl of {}",
                    humantime::format_duration(max)
                ),
            ));
        }
        let valid_for = if valid_for.is_zero() { max } else { valid_for };
        let now = now_ms();
        let until = now.saturating_add(u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX));
        let suffix = task.id.strip_prefix("arq_").unwrap_or_default();
        let approval_id = format!("apr_{suffix}{}", keys.random_hex(16)?);
        let (approved_at, approved_until) = (rfc3339_ms(now), rfc3339_ms(until));
        let claims = json!({
            "iss": self.config.issuer, "aud": self.config.issuer,
            "iat": now / 1000, "nbf": now / 1000, "exp": until / 1000, "jti": approval_id,
            "approval_id": approval_id, "task_id": task.id, "evaluation_id": task.evaluation_id,
            "approved_at": approved_at, "approved_until": approved_until,
            "approver": {"type": "user", "id": user}, "uses": task.requirement.uses,
            "platform": task.platform, "agent": task.agent_id, "sub": task.principal(),
            "binding_v": 1, "wbh": task.binding_hash,
        });
        let state = keys
            .sign(&claims)
            .map_err(|e| ApprovalError::Internal(e.to_string()))?;
        let grant = Grant {
            id: approval_id,
            approved_at,
            approved_until,
            approved_until_ms: until,
            uses: task.requirement.uses,
            used: 0,
            state_sha256: hex::encode(Sha256::digest(state.as_bytes())),
            state,
            approver: user.to_owned(),
            revoked: None,
            used_by: Vec::new(),
        };
        self.settle(caller, user, id, note, Some(grant), now).await
    }

    pub async fn deny(
        &self,
        caller: &str,
        user: &str,
        identity: &Snapshot,
        id: &str,
        note: &str,
    ) -> Result<Task, ApprovalError> {
        self.keys()?;
        let task = self.current(id).await?;
        may_decide(&task.requirement, &task, user, identity)?;
        self.settle(caller, user, id, note, None, now_ms()).await
    }

    /// Ends a pending task as `user` decided: approved with `grant`, or
    /// denied. Of two people deciding at once, the first write wins and the
    /// other finds the task no longer pending.
    async fn settle(
        &self,
        caller: &str,
        user: &str,
        id: &str,
        note: &str,
        grant: Option<Grant>,
        now: u64,
    ) -> Result<Task, ApprovalError> {
        free_text("note", note)?;
        let (state, outcome, event) = match grant {
            Some(_) => (State::Approved, "approved", "approval.approved"),
            None => (State::Denied, "denied", "approval.denied"),
        };
        let (user_owned, note_owned) = (user.to_owned(), note.to_owned());
        let task = self
            .update(id, move |current| {
                let mut task = pending(current, now)?;
                task.state = state;
                task.decided_at_ms = Some(now);
                task.decided_by = Some(user_owned.clone());
                task.note = note_owned.clone();
                task.grant = grant.clone();
                Ok(task)
            })
            .await?;
        self.decided
            .decided(outcome, now.saturating_sub(task.created_at_ms));
        let until = task.grant.as_ref().map(|g| g.approved_until.clone());
        self.audit(
            caller,
            event,
            &task,
            json!({"by": user, "note": note, "approved_until": until}),
        )
        .await;
        Ok(task)
    }

    /// Withdraws an approval that is not used up or expired.
    pub async fn revoke(
        &self,
        caller: &str,
        by: &str,
        id: &str,
        reason: &str,
    ) -> Result<Task, ApprovalError> {
        self.keys()?;
        free_text("reason", reason)?;
        let now = now_ms();
        let (by_owned, reason_owned) = (by.to_owned(), reason.to_owned());
        let task = self
            .update(id, move |current| {
                let mut task = current
                    .cloned()
                    .ok_or_else(|| ApprovalError::UnknownTask(String::new()))?;
                let grant = match (&task.state, task.grant.as_mut()) {
                    (State::Approved, Some(grant)) => grant,
                    _ => {
                        return Err(ApprovalError::TaskState(format!(
                            "task `{}` is {}, not approved",
                            task.id,
                            task.state.as_str()
                        )));
                    }
                };
                if grant.revoked.is_some()
                    || grant.uses_left() == 0
                    || now >= grant.approved_until_ms
                {
                    return Err(ApprovalError::TaskState(format!(
                        "approval `{}` is already revoked, used up or expired",
                        grant.id
                    )));
                }
                grant.revoked = Some(Revocation {
                    at_ms: now,
                    by: by_owned.clone(),
                    reason: reason_owned.clone(),
                });
                Ok(task)
            })
            .await
            .map_err(|e| match e {
                ApprovalError::UnknownTask(_) => ApprovalError::UnknownTask(id.to_owned()),
                other => other,
            })?;
        self.audit(
            caller,
            "approval.revoked",
            &task,
            json!({"by": by, "reason": reason}),
        )
        .await;
        Ok(task)
    }

    /// Checks a presented approval against the stored one and the request,
    /// without using it. Pure but for one store read.
    pub fn verify(
        &self,
        presented: &pb::ApprovalRef,
        request: &CheckRequest,
        now: SystemTime,
    ) -> Result<Verified, Refused> {
        if self.keys.is_err() {
            return Err(Refused::unverifiable().because("approvals are disabled"));
        }
        if let Some(why) = self.store.failed() {
            return Err(Refused::unavailable(why));
        }
        let task_id = task::task_of(&presented.id).ok_or_else(Refused::unverifiable)?;
        let task = match self.store.get(&task_id) {
            Ok(Some(task)) => task,
            Ok(None) => return Err(Refused::unverifiable()),
            Err(e) => return Err(Refused::unavailable(e.to_string())),
        };
        let Some(grant) = task.grant.as_ref().filter(|g| g.id == presented.id) else {
            return Err(Refused::unverifiable());
        };
        let presented_sha = Sha256::digest(presented.state.as_bytes());
        let issued_sha = hex::decode(&grant.state_sha256).unwrap_or_default();
        let same_state: bool =
            subtle::ConstantTimeEq::ct_eq(presented_sha.as_slice(), issued_sha.as_slice()).into();
        if !same_state
            || presented.approved_at != grant.approved_at
            || presented.approved_until != grant.approved_until
        {
            return Err(Refused::unverifiable());
        }
        if grant.revoked.is_some() {
            return Err(Refused::new("approval_expired", "request").because("approval_revoked"));
        }
        if crate::killswitch::unix_ms(now) >= grant.approved_until_ms {
            return Err(Refused::new("approval_expired", "request"));
        }
        if binding::hash(&binding::bound(request, &self.config.exclude_context))
            != task.binding_hash
        {
            return Err(Refused::new("out_of_scope", "request"));
        }
        if grant.uses_left() == 0 {
            return Err(Refused::new("approval_used_up", "request"));
        }
        Ok(Verified {
            facts: json!({
                "id": grant.id, "task_id": task.id, "evaluation_id": task.evaluation_id,
                "approved_at": grant.approved_at, "approved_until": grant.approved_until,
                "approver": {"type": "user", "id": grant.approver},
                "uses": grant.uses, "uses_left": grant.uses_left(),
            }),
            task_id: task.id,
            approval_id: grant.id.clone(),
            evaluation_id: task.evaluation_id,
            approver: grant.approver.clone(),
        })
    }

    /// `verify`, and in a cluster, when this replica does not yet hold the
    /// approval (its watch lags the replica that gave it), once more after
    /// reading the task from etcd. Only a state this key signed for that
    /// approval is worth the read, so forged ids cost no etcd traffic.
    pub async fn verify_current(
        &self,
        presented: &pb::ApprovalRef,
        request: &CheckRequest,
        now: SystemTime,
    ) -> Result<Verified, Refused> {
        let first = self.verify(presented, request, now);
        let Backend::Cluster { cluster, kind } = &self.backend else {
            return first;
        };
        if !matches!(&first, Err(refused) if refused.reason == "approval_unverifiable") {
            return first;
        }
        let signed_for_it = self
            .keys
            .as_ref()
            .ok()
            .and_then(|keys| keys.verified_claims(&presented.state))
            .is_some_and(|claims| claims["approval_id"] == presented.id.as_str());
        let Some(task_id) = task::task_of(&presented.id).filter(|_| signed_for_it) else {
            return first;
        };
        match cluster.record(kind.as_ref(), &task_id).await {
            Ok(Some((value, _))) => {
                let store = self.store.clone();
                let merged = tokio::task::spawn_blocking(move || {
                    let task: Task = serde_json::from_slice(&value)
                        .map_err(|e| ApprovalError::Internal(e.to_string()))?;
                    store.merge(&task)
                })
                .await;
                match merged {
                    Ok(Ok(_)) => self.verify(presented, request, now),
                    Ok(Err(e)) => Err(Refused::unavailable(e.to_string())),
                    Err(e) => Err(Refused::unavailable(e.to_string())),
                }
            }
            Ok(None) => first,
            Err(e) => Err(Refused {
                reason: "grant_pending",
                detail: Some(e.to_string()),
                next_action: "retry",
                retry_after: 1,
            }),
        }
    }

    /// Whether the approver is still one the policy's current requirement
    /// allows (a person who left the group no longer approves).
    pub fn still_eligible(
        &self,
        verified: &Verified,
        requirement: &Requirement,
        request: &CheckRequest,
        identity: &Snapshot,
    ) -> bool {
        eligible(
            requirement,
            &verified.approver,
            request.principal.kind.as_deref().unwrap_or("user"),
            &request.principal.id,
            identity,
        )
        .is_ok()
    }

    /// Uses the approval once for `decision_id`: exactly one of any number
    /// of concurrent uses of the last use succeeds. The uses left.
    pub async fn consume(&self, verified: &Verified, decision_id: &str) -> Result<u32, Refused> {
        let approval_id = verified.approval_id.clone();
        let decision_id = decision_id.to_owned();
        let now = now_ms();
        let result = self
            .update(&verified.task_id, move |current| {
                let mut task = current
                    .cloned()
                    .ok_or_else(|| ApprovalError::UnknownTask(String::new()))?;
                let grant = task
                    .grant
                    .as_mut()
                    .filter(|g| g.id == approval_id)
                    .ok_or_else(|| ApprovalError::UnknownTask(String::new()))?;
                if grant.revoked.is_some() || now >= grant.approved_until_ms {
                    return Err(ApprovalError::TaskState("approval_expired".into()));
                }
                if grant.uses_left() == 0 {
                    return Err(ApprovalError::TaskState("approval_used_up".into()));
                }
                grant.used += 1;
                if grant.used_by.len() < 100 {
                    grant.used_by.push(decision_id.clone());
                }
                Ok(task)
            })
            .await;
        match result {
            Ok(task) => Ok(task.grant.map_or(0, |g| g.uses_left())),
            Err(ApprovalError::TaskState(reason)) if reason == "approval_used_up" => {
                Err(Refused::new("approval_used_up", "request"))
            }
            Err(ApprovalError::TaskState(_)) => Err(Refused::new("approval_expired", "request")),
            Err(ApprovalError::UnknownTask(_)) => Err(Refused::unverifiable()),
            Err(e) => Err(Refused::unavailable(e.to_string())),
        }
    }

    /// Expires pending tasks past their time (audited once, by the replica
    /// whose compare-and-swap wins) and drops records past retention.
    pub async fn sweep(&self) -> Result<(), ApprovalError> {
        if self.keys.is_err() {
            return Ok(());
        }
        let now = now_ms();
        let retention = u64::try_from(self.config.retention.as_millis()).unwrap_or(u64::MAX);
        for task in self.store.all()? {
            if task.state == State::Pending && now >= task.expires_at_ms {
                let expired = self
                    .update(&task.id, move |current| {
                        let mut task = current
                            .cloned()
                            .ok_or_else(|| ApprovalError::UnknownTask(String::new()))?;
                        if task.state != State::Pending {
                            return Err(ApprovalError::TaskState(String::new()));
                        }
                        task.state = State::Expired;
                        task.decided_at_ms = Some(now);
                        Ok(task)
                    })
                    .await;
                if let Ok(task) = expired {
                    self.decided
                        .decided("expired", now.saturating_sub(task.created_at_ms));
                    self.audit("warden", "approval.expired", &task, json!({}))
                        .await;
                }
            } else if task.prunable_at_ms(retention).is_some_and(|at| now >= at) {
                if let Backend::Cluster { cluster, kind } = &self.backend
                    && let Ok(Some((_, revision))) = cluster.record(kind.as_ref(), &task.id).await
                {
                    // Whichever replica gets there first; the others find
                    // it gone, which is what they wanted.
                    let _ = cluster
                        .delete_record(kind.as_ref(), &task.id, revision)
                        .await;
                }
                self.store.remove(&task.id)?;
            }
        }
        Ok(())
    }

    /// Changes task `id` through the backend; durable (locally or in etcd)
    /// and applied here when this returns.
    async fn update<F>(&self, id: &str, change: F) -> Result<Task, ApprovalError>
    where
        F: Fn(Option<&Task>) -> Result<Task, ApprovalError> + Send + Sync + 'static,
    {
        match &self.backend {
            Backend::Local => {
                let store = self.store.clone();
                let id = id.to_owned();
                tokio::task::spawn_blocking(move || store.update(&id, &change))
                    .await
                    .map_err(|e| ApprovalError::Internal(format!("approval task failed: {e}")))?
            }
            Backend::Cluster { cluster, kind } => {
                // A lost race re-reads and decides again; a few rounds settle
                // any realistic contention, the rest retry later.
                for _ in 0..8 {
                    let shared = cluster.record(kind.as_ref(), id).await?;
                    let (current, revision) = match &shared {
                        Some((value, revision)) => (
                            Some(serde_json::from_slice::<Task>(value).map_err(|e| {
                                ApprovalError::Internal(format!(
                                    "a task in etcd does not parse: {e}"
                                ))
                            })?),
                            *revision,
                        ),
                        None => (None, 0),
                    };
                    let mut task = change(current.as_ref())?;
                    task.version = current.as_ref().map_or(1, |c| c.version + 1);
                    let value = store::encode(&task)?;
                    if cluster
                        .put_record(kind.as_ref(), id, value.clone(), revision)
                        .await?
                    {
                        cluster.apply_shared(kind, id, value).await?;
                        return Ok(task);
                    }
                }
                Err(ApprovalError::Unavailable(format!(
                    "approval task `{id}` is changing on other replicas; retry"
                )))
            }
        }
    }

    async fn audit(&self, caller: &str, event: &str, task: &Task, extra: Json) {
        let mut details = json!({
            "task_id": task.id, "evaluation_id": task.evaluation_id, "state": task.state.as_str(),
            "platform": task.platform, "agent_id": task.agent_id, "principal": task.principal(),
            "action": task.action, "resource": task.resource,
        });
        if let Some(grant) = &task.grant {
            details["approval_id"] = json!(grant.id);
        }
        if let (Some(object), Json::Object(extra)) = (details.as_object_mut(), extra) {
            object.extend(extra);
        }
        let record = admin_record(event, caller, details, SystemTime::now());
        if let Err(e) = self.auditor.record_admin(&record).await {
            warn!(event, error = %e, "an approval change was made but could not be audited");
        }
    }
}

/// The state a task is in now: a pending one past its time has expired,
/// whether or not the sweeper has written it yet.
pub fn effective_state(task: &Task, now_ms: u64) -> State {
    if task.state == State::Pending && now_ms >= task.expires_at_ms {
        State::Expired
    } else {
        task.state
    }
}

fn pending(current: Option<&Task>, now: u64) -> Result<Task, ApprovalError> {
    let task = current
        .cloned()
        .ok_or_else(|| ApprovalError::UnknownTask(String::new()))?;
    match effective_state(&task, now) {
        State::Pending => Ok(task),
        state => Err(ApprovalError::TaskState(format!(
            "task `{}` is {}, no longer pending",
            task.id,
            state.as_str()
        ))),
    }
}

/// Text people read (justifications, notes, reasons): bounded, and free of
/// control and invisible characters (line breaks and tabs aside) that could
/// rewrite a terminal or hide what an approver is shown.
fn free_text(field: &str, text: &str) -> Result<(), ApprovalError> {
    if text.len() > 4096 {
        return Err(ApprovalError::invalid(field, "is longer than 4096 bytes"));
    }
    let unsafe_char = |c: &char| {
        (c.is_control() && !matches!(c, '\n' | '\t')) || crate::request::is_invisible(*c)
    };
    if let Some(c) = text.chars().find(unsafe_char) {
        return Err(ApprovalError::invalid(
            field,
            format!(
                "must not contain control or invisible characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(())
}

fn same_submission(existing: Task, justification: &str) -> Result<Task, ApprovalError> {
    if existing.justification == justification {
        Ok(existing)
    } else {
        Err(ApprovalError::Duplicate(format!(
            "task `{}` was already submitted for this decision with another justification",
            existing.id
        )))
    }
}

/// Whether `user` may decide `task` under `requirement`.
pub fn may_decide(
    requirement: &Requirement,
    task: &Task,
    user: &str,
    identity: &Snapshot,
) -> Result<(), ApprovalError> {
    eligible(
        requirement,
        user,
        &task.principal_type,
        &task.principal_id,
        identity,
    )
    .map_err(ApprovalError::Forbidden)
}

/// Separation of duties: an approver is a person known to the identity
/// snapshot, never an agent; the principal approves their own agent's
/// action only when the policy says `self`, and then always may.
fn eligible(
    requirement: &Requirement,
    user: &str,
    principal_type: &str,
    principal_id: &str,
    identity: &Snapshot,
) -> Result<(), String> {
    let doc = &identity.document;
    if doc["agents"][user] != regorus::Value::Undefined {
        return Err(format!("`{user}` is an agent; agents never approve"));
    }
    let person = &doc["users"][user];
    if *person == regorus::Value::Undefined {
        return Err(format!("`{user}` is not a user in the identity snapshot"));
    }
    let is_principal = principal_type == "user" && principal_id == user;
    if is_principal {
        return if requirement.self_approval {
            Ok(())
        } else {
            Err(format!(
                "`{user}` is the principal the agent acts for, and this action needs someone else's approval"
            ))
        };
    }
    let groups: Vec<String> = person["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| g.as_string().ok().map(|s| s.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let listed = requirement.approvers.iter().any(|approver| match approver {
        Approver::User(id) => id == user,
        Approver::Group(group) => groups.iter().any(|g| g == group),
    });
    if listed {
        Ok(())
    } else {
        Err(format!(
            "`{user}` is not among the approvers this action needs ({})",
            requirement
                .approvers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}
