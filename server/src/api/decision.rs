//! `warden.v1.DecisionService`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tonic::{Code, Request, Response, Status};
use tracing::{debug, warn};
use warden_proto::v1 as pb;
use warden_proto::v1::decision_service_server::DecisionService;

use super::status::{invalid_argument, invalid_field};
use crate::audit::record::{self, DecisionFacts};
use crate::audit::{AuditError, Auditor, Durability};
use crate::auth::Caller;
use crate::decision::{Decision, Stage, Verdict, decide};
use crate::generation::{Generation, Generations};
use crate::killswitch::{KillSwitches, Scope};
use crate::platform_limits::PlatformLimits;
use crate::request::{CheckRequest, Limits, validate};
use crate::stats::Stats;

/// Serves checks from the published generation.
#[derive(Debug, Clone)]
pub struct DecisionApi {
    generations: Arc<Generations>,
    switches: Arc<KillSwitches>,
    auditor: Arc<Auditor>,
    limits: Arc<Limits>,
    platforms: Arc<PlatformLimits>,
    stats: Arc<Stats>,
}

impl DecisionApi {
    pub fn new(
        generations: Arc<Generations>,
        switches: Arc<KillSwitches>,
        auditor: Arc<Auditor>,
        limits: Limits,
        platforms: Arc<PlatformLimits>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            generations,
            switches,
            auditor,
            limits: Arc::new(limits),
            platforms,
            stats,
        }
    }

    /// Decides one validated request on `generation` and builds its answer
    /// and its audit record (none when auditing is off). The kill switches
    /// are read here, per check (and per batch item), so that an engage
    /// acknowledged a moment ago applies to this check.
    fn answer(
        &self,
        request: &CheckRequest,
        generation: &Generation,
        caller: &str,
    ) -> (pb::CheckResponse, Option<String>) {
        let started = Instant::now();
        let now = SystemTime::now();
        let decision_id = uuid::Uuid::now_v7().to_string();
        let switches = self.switches.current();
        let decision = decide(request, generation, &switches, now);
        if decision.shadow.as_ref().is_some_and(|s| s.diverged) {
            self.stats.shadow_diverged();
        }
        debug!(
            decision_id,
            generation = generation.id,
            verdict = decision.verdict.as_str(),
            reasons = ?decision.reasons,
            platform = request.platform,
            agent = request.agent.id,
            action = request.action.name,
            latency_us = started.elapsed().as_micros() as u64,
            "check decided"
        );
        let record = (self.auditor.durability() != Durability::Off).then(|| {
            record::decision_record(
                &DecisionFacts {
                    request,
                    decision: &decision,
                    decision_id: &decision_id,
                    policy_revision: &generation.policy.revision,
                    snapshot_versions: generation.snapshot_versions(),
                    time: now,
                    latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    caller,
                },
                self.auditor.redaction(),
            )
        });
        (response(decision, decision_id, request, generation), record)
    }

    /// Writes the records of answered checks; a check whose record cannot be
    /// written is denied instead (fail closed), keeping its decision id.
    async fn audit(
        &self,
        answers: Vec<(pb::CheckResponse, Option<String>)>,
    ) -> Vec<pb::CheckResponse> {
        let mut pending = Vec::with_capacity(answers.len());
        for (response, record) in answers {
            let outcome = record.map(|record| self.auditor.submit_decision(record));
            pending.push((response, outcome));
        }
        let mut responses = Vec::with_capacity(pending.len());
        for (response, outcome) in pending {
            let result = match outcome {
                None => Ok(()),
                Some(Ok(waiter)) => waiter.wait().await,
                Some(Err(e)) => Err(e),
            };
            responses.push(match result {
                Ok(()) => response,
                // Counted in `audit_refused`; one line per refusal would
                // flood the log exactly when the server is overloaded.
                Err(e @ AuditError::QueueFull) => {
                    debug!(decision_id = response.decision_id, "check denied: the audit queue is full");
                    unaudited(response, &e)
                }
                Err(e) => {
                    warn!(decision_id = response.decision_id, error = %e, "check denied: its audit record cannot be written");
                    unaudited(response, &e)
                }
            });
        }
        responses
    }
}

/// The answer for a check whose record could not be written.
fn unaudited(response: pb::CheckResponse, error: &AuditError) -> pb::CheckResponse {
    let reason = match error {
        AuditError::QueueFull => "audit_queue_full".to_owned(),
        other => format!("audit_unavailable: {other}"),
    };
    pb::CheckResponse {
        decision: pb::Decision::Deny as i32,
        reasons: vec![reason],
        kill_switch: None,
        policy_revision: String::new(),
        ..response
    }
}

fn response(
    decision: Decision,
    decision_id: String,
    request: &CheckRequest,
    generation: &Generation,
) -> pb::CheckResponse {
    let verdict = match decision.verdict {
        Verdict::Allow => pb::Decision::Allow,
        Verdict::Deny => pb::Decision::Deny,
        Verdict::RequireApproval => pb::Decision::RequireApproval,
    };
    pb::CheckResponse {
        decision: verdict as i32,
        reasons: decision.reasons,
        decision_id,
        request_id: request.request_id.clone().unwrap_or_default(),
        policy_revision: match decision.stage {
            Stage::Policy => generation.policy.revision.clone(),
            Stage::Staleness | Stage::KillSwitch => String::new(),
        },
        snapshot_versions: generation.snapshot_versions().into_iter().collect(),
        kill_switch: decision.kill_switch.map(|hit| pb::KillSwitchMatch {
            id: hit.id,
            scope: Some(scope_to_proto(hit.scope)),
        }),
    }
}

#[tonic::async_trait]
impl DecisionService for DecisionApi {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let caller = Caller::of(&request);
        caller.check_platform(&request.get_ref().platform, "platform")?;
        let _admitted = self
            .platforms
            .admit([(request.get_ref().platform.as_str(), 1)])?;
        let request =
            validate(request.get_ref(), &self.limits).map_err(|e| invalid_argument(&e))?;
        let generation = self.generations.current();
        let answer = self.answer(&request, &generation, &caller.label());
        let mut responses = self.audit(vec![answer]).await;
        responses
            .pop()
            .map(Response::new)
            .ok_or_else(|| Status::internal("no answer"))
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let items = &request.get_ref().items;
        if items.is_empty() {
            return Err(invalid_field(
                "items",
                "invalid items: at least one item is required",
                "is empty",
            ));
        }
        if items.len() > self.limits.max_batch_items {
            let reason = format!(
                "has {} items, more than the limit of {}",
                items.len(),
                self.limits.max_batch_items
            );
            return Err(invalid_field(
                "items",
                &format!("invalid items: {reason}"),
                &reason,
            ));
        }
        // A spoofed item refuses the whole batch: it is the caller, not the
        // item, that is out of bounds.
        let caller = Caller::of(&request);
        let mut per_platform: Vec<(&str, usize)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            caller.check_platform(&item.platform, &format!("items[{index}].platform"))?;
            match per_platform.iter_mut().find(|(p, _)| *p == item.platform) {
                Some((_, count)) => *count += 1,
                None => per_platform.push((&item.platform, 1)),
            }
        }
        let _admitted = self.platforms.admit(per_platform)?;
        let caller = caller.label();
        // One generation for the whole batch: every item sees the same
        // bundle and snapshots.
        let generation = self.generations.current();
        let mut answers = Vec::new();
        let mut slots = Vec::with_capacity(items.len());
        for item in items {
            slots.push(match validate(item, &self.limits) {
                Ok(valid) => {
                    answers.push(self.answer(&valid, &generation, &caller));
                    None
                }
                Err(invalid) => Some(pb::batch_check_result::Result::Error(pb::BatchItemError {
                    code: Code::InvalidArgument as i32,
                    message: invalid.to_string(),
                    field: invalid.field,
                })),
            });
        }
        // Every item's record is queued before any is waited for, so a
        // `sync` batch costs one group commit.
        let mut responses = self.audit(answers).await.into_iter();
        let results = slots
            .into_iter()
            .map(|slot| pb::BatchCheckResult {
                result: slot.or_else(|| {
                    responses
                        .next()
                        .map(pb::batch_check_result::Result::Response)
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchCheckResponse { results }))
    }
}

/// A switch scope on the wire: absent fields are empty strings.
pub fn scope_to_proto(scope: Scope) -> pb::KillSwitchScope {
    pb::KillSwitchScope {
        platform: scope.platform.unwrap_or_default(),
        agent_id: scope.agent_id.unwrap_or_default(),
        principal_id: scope.principal_id.unwrap_or_default(),
        action: scope.action.unwrap_or_default(),
        resource_type: scope.resource_type.unwrap_or_default(),
    }
}
