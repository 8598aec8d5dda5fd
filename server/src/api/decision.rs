//! `warden.v1.DecisionService`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tonic::{Code, Request, Response, Status};
use tracing::debug;
use warden_proto::v1 as pb;
use warden_proto::v1::decision_service_server::DecisionService;

use super::status::{invalid_argument, invalid_field};
use crate::decision::{Decision, Stage, Verdict, decide};
use crate::generation::{Generation, Generations};
use crate::killswitch::{KillSwitches, Scope};
use crate::request::{CheckRequest, Limits, validate};
use crate::stats::Stats;

/// Serves checks from the published generation.
#[derive(Debug, Clone)]
pub struct DecisionApi {
    generations: Arc<Generations>,
    switches: Arc<KillSwitches>,
    limits: Arc<Limits>,
    stats: Arc<Stats>,
}

impl DecisionApi {
    pub fn new(
        generations: Arc<Generations>,
        switches: Arc<KillSwitches>,
        limits: Limits,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            generations,
            switches,
            limits: Arc::new(limits),
            stats,
        }
    }

    /// Decides one validated request on `generation` and builds its answer.
    /// The kill switches are read here, per check (and per batch item), so
    /// that an engage acknowledged a moment ago applies to this check.
    fn answer(&self, request: &CheckRequest, generation: &Generation) -> pb::CheckResponse {
        let started = Instant::now();
        let decision_id = uuid::Uuid::now_v7().to_string();
        let switches = self.switches.current();
        let decision = decide(request, generation, &switches, SystemTime::now());
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
        response(decision, decision_id, request, generation)
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
        let request =
            validate(request.get_ref(), &self.limits).map_err(|e| invalid_argument(&e))?;
        let generation = self.generations.current();
        Ok(Response::new(self.answer(&request, &generation)))
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
        // One generation for the whole batch: every item sees the same
        // bundle and snapshots.
        let generation = self.generations.current();
        let results = items
            .iter()
            .map(|item| match validate(item, &self.limits) {
                Ok(valid) => {
                    pb::batch_check_result::Result::Response(self.answer(&valid, &generation))
                }
                Err(invalid) => pb::batch_check_result::Result::Error(pb::BatchItemError {
                    code: Code::InvalidArgument as i32,
                    message: invalid.to_string(),
                    field: invalid.field,
                }),
            })
            .map(|result| pb::BatchCheckResult {
                result: Some(result),
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
