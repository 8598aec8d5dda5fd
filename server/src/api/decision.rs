//! `warden.v1.DecisionService`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, debug, warn};
use warden_proto::v1 as pb;
use warden_proto::v1::decision_service_server::DecisionService;

use super::killswitch::scope_to_proto;
use super::status::{invalid_argument, invalid_field};
use crate::approval::{Approvals, Refused, Verified};
use crate::audit::record::{self, ApprovalIds, DecisionFacts};
use crate::audit::{AuditError, Auditor, Durability};
use crate::auth::Caller;
use crate::changes::{Applied, Change, Changes};
use crate::decision::{Decision, Stage, Verdict, decide, refuse};
use crate::generation::{Generation, Generations};
use crate::killswitch::{KillSwitches, SwitchIndex, unix_ms};
use crate::limits::{Admission, Budget, Refusal, Reservation, Trip, UsageLimits};
use crate::metrics::{Api, Metrics};
use crate::platform_limits::PlatformLimits;
use crate::request::{CheckRequest, InvalidRequest, Limits, validate};
use crate::snapshot::SnapshotKind;
use crate::stats::Stats;

/// Serves checks from the published generation.
#[derive(Debug, Clone)]
pub struct DecisionApi {
    pub(super) generations: Arc<Generations>,
    pub(super) switches: Arc<KillSwitches>,
    pub(super) auditor: Arc<Auditor>,
    pub(super) limits: Arc<Limits>,
    pub(super) platforms: Arc<PlatformLimits>,
    stats: Arc<Stats>,
    pub(super) metrics: Arc<Metrics>,
    /// `None`: checks get no access requests, and carried approvals are
    /// refused.
    approvals: Option<Arc<Approvals>>,
    /// `None`: the bundle's limits and tripwires are not enforced (tests
    /// and benches that build the API alone).
    pub(super) usage: Option<Usage>,
    /// The threads searches run on, started by the first search.
    pub(super) search_pool: Arc<std::sync::OnceLock<crate::search::pool::SearchPool>>,
    /// How long one search call may evaluate before it returns a page.
    pub(super) search_budget: std::time::Duration,
    /// Decision calls being answered; searches slow down while any is.
    pub(super) checking: Arc<crate::giveway::Busy>,
}

/// Budgets and tripwires, and where a tripwire's switch is engaged.
#[derive(Debug, Clone)]
pub(super) struct Usage {
    pub(super) limits: Arc<UsageLimits>,
    changes: Arc<Changes>,
}

impl DecisionApi {
    pub fn new(
        generations: Arc<Generations>,
        switches: Arc<KillSwitches>,
        auditor: Arc<Auditor>,
        limits: Limits,
        platforms: Arc<PlatformLimits>,
        stats: Arc<Stats>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            generations,
            switches,
            auditor,
            limits: Arc::new(limits),
            platforms,
            stats,
            metrics,
            approvals: None,
            usage: None,
            search_pool: Arc::default(),
            search_budget: std::time::Duration::from_secs(4),
            checking: Arc::default(),
        }
    }

    /// The checks in flight, for background work to give way to.
    pub fn checks_in_flight(&self) -> Arc<crate::giveway::Busy> {
        self.checking.clone()
    }

    /// How long one search call may evaluate: a little less than the
    /// call's own limit (`check_timeout`), so that it answers with a page
    /// rather than being cut off.
    pub fn with_search_budget(mut self, call_timeout: std::time::Duration) -> Self {
        self.search_budget = call_timeout.mul_f64(0.8);
        self
    }

    /// Enforces the bundle's limits, and engages tripwires' switches
    /// through `changes` (so they are replicated and audited like any).
    pub fn with_usage_limits(mut self, limits: Arc<UsageLimits>, changes: Arc<Changes>) -> Self {
        self.usage = Some(Usage { limits, changes });
        self
    }

    /// Serves the approval workflow on the decision path.
    pub fn with_approvals(mut self, approvals: Arc<Approvals>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// Decides one validated request on `generation` and builds its answer
    /// and its audit record (none when auditing is off). The kill switches
    /// are read here, per check (and per batch item), so that an engage
    /// acknowledged a moment ago applies to this check.
    fn answer(&self, request: &CheckRequest, generation: &Generation, caller: &str) -> Answered {
        let started = Instant::now();
        let now = SystemTime::now();
        let decision_id = uuid::Uuid::now_v7().to_string();
        let switches = self.switches.current();
        let mut decision = decide(request, generation, &switches, now);
        let mut extra = Extra::default();
        self.admit(request, generation, &mut decision, &mut extra, now, false);
        extra.access_request = self.access_request(request, &decision, &decision_id, now);
        let trips = self.observe(request, generation, &decision, &switches, now);
        let (response, record) = self.finish(
            request,
            decision,
            extra,
            decision_id,
            generation,
            caller,
            (started, now),
        );
        Answered {
            response,
            record,
            trips,
        }
    }

    /// After the policy: a check it allowed is reserved in every limit
    /// that applies, or refused by the first it would exceed (and reserved
    /// in none). `approved`: the check carries a verified approval, which
    /// lets `require_approval` limits count it rather than refuse it.
    fn admit(
        &self,
        request: &CheckRequest,
        generation: &Generation,
        decision: &mut Decision,
        extra: &mut Extra,
        now: SystemTime,
        approved: bool,
    ) -> Option<Reservation> {
        let usage = self.usage.as_ref()?;
        let rules = &generation.policy.limits;
        let decided = decision.stage == Stage::Policy
            && (decision.verdict == Verdict::Allow
                || (approved && decision.verdict == Verdict::RequireApproval));
        if rules.limits.is_empty() || !decided {
            return None;
        }
        match usage.limits.admit(rules, request, unix_ms(now), approved) {
            Admission::Admitted {
                reservation,
                budgets,
            } => {
                extra.budgets = budgets;
                Some(reservation)
            }
            Admission::Refused(refusal) => {
                refuse(decision, &refusal);
                extra.limit = Some(refusal);
                None
            }
        }
    }

    /// Counts a decided check for the tripwires; the ones it trips. Checks
    /// a kill switch or stale data decided are not the agent's doing, and
    /// are not counted.
    fn observe(
        &self,
        request: &CheckRequest,
        generation: &Generation,
        decision: &Decision,
        switches: &SwitchIndex,
        now: SystemTime,
    ) -> Vec<Trip> {
        let Some(usage) = &self.usage else {
            return Vec::new();
        };
        let rules = &generation.policy.limits;
        if rules.tripwires.is_empty() || decision.stage != Stage::Policy {
            return Vec::new();
        }
        usage.limits.observe(
            rules,
            request,
            decision.verdict.as_str(),
            &decision.reasons,
            unix_ms(now),
            switches,
        )
    }

    /// Engages the switches of tripped tripwires, before the check that
    /// tripped them is answered: the agent's next check meets the switch.
    /// A switch that cannot be engaged leaves the tripwire armed.
    async fn trip(&self, trips: Vec<Trip>) {
        let Some(usage) = &self.usage else {
            return;
        };
        for trip in trips {
            let engaged = usage
                .changes
                .submit(
                    crate::limits::TRIPWIRE_ACTOR,
                    Change::EngageSwitch(trip.engage_spec()),
                )
                .await;
            match engaged {
                Ok(Applied::Switch(change)) => {
                    warn!(
                        rule = trip.rule,
                        switch = change.switch.id,
                        count = trip.count,
                        scope = ?change.switch.scope,
                        "tripwire fired: kill switch engaged"
                    );
                    usage.limits.fired(&trip, Some(&change.switch.id));
                    let limits = usage.limits.clone();
                    match tokio::task::spawn_blocking(move || limits.persist()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            warn!(error = %e, "tripwire fired but its state could not be saved")
                        }
                        Err(e) => {
                            warn!(error = %e, "tripwire fired but its state could not be saved")
                        }
                    }
                }
                Ok(_) => usage.limits.fired(&trip, None),
                Err(e) => {
                    warn!(rule = trip.rule, error = %e, "tripwire fired but its kill switch could not be engaged; it stays armed");
                    usage.limits.fired(&trip, None);
                }
            }
        }
    }

    /// `answer` for a check that carries an approval: verified first (so
    /// the policy sees `input.approval`), then decided, then, if the policy
    /// still allows, used, before the answer and its record are built. A
    /// kill switch or stale data decides before any of it and uses nothing.
    async fn answer_approved(
        &self,
        request: &CheckRequest,
        presented: &pb::ApprovalRef,
        generation: &Generation,
        caller: &str,
    ) -> Answered {
        let started = Instant::now();
        let now = SystemTime::now();
        let decision_id = uuid::Uuid::now_v7().to_string();
        let verified = match &self.approvals {
            Some(approvals) => approvals.verify_current(presented, request, now).await,
            None => Err(Refused {
                reason: "approval_unverifiable",
                detail: Some("approvals are disabled".into()),
                next_action: "none",
                retry_after: 0,
            }),
        };
        let with_facts;
        let evaluated = match &verified {
            Ok(v) => {
                let mut request = request.clone();
                request.approval = Some(v.facts.clone());
                with_facts = request;
                &with_facts
            }
            Err(_) => request,
        };
        let switches = self.switches.current();
        let mut decision = decide(evaluated, generation, &switches, now);
        let mut extra = Extra::default();
        if decision.stage == Stage::Policy {
            // Limits first: a check a limit refuses does not use its approval.
            let reservation = match &verified {
                Ok(_) => self.admit(request, generation, &mut decision, &mut extra, now, true),
                Err(_) => None,
            };
            if extra.limit.is_none() {
                let outcome = match verified {
                    Err(refused) => Err(refused),
                    Ok(v) => {
                        self.use_approval(v, &decision, request, generation, &decision_id)
                            .await
                    }
                };
                if outcome.is_err()
                    && let (Some(usage), Some(reservation)) = (&self.usage, reservation)
                {
                    usage.limits.rollback(reservation);
                }
                match outcome {
                    Ok((v, uses_left)) => {
                        let mut reasons = vec![format!("approved:{}", v.approval_id)];
                        if decision.verdict == Verdict::Allow {
                            reasons.extend(std::mem::take(&mut decision.reasons));
                        }
                        decision.verdict = Verdict::Allow;
                        decision.reasons = reasons;
                        extra.used = Some((v, uses_left));
                    }
                    Err(refused) => {
                        if refused.next_action == "request" {
                            extra.access_request =
                                self.access_request(request, &decision, &decision_id, now);
                        }
                        decision.verdict = Verdict::Deny;
                        decision.reasons = refused.reasons();
                        extra.refused = Some(refused);
                    }
                }
                if let Some(approvals) = &self.approvals {
                    approvals.metrics().used(match &extra.refused {
                        None => "allowed",
                        Some(refused) => refused.reason,
                    });
                }
            }
        }
        let trips = self.observe(request, generation, &decision, &switches, now);
        let (response, record) = self.finish(
            request,
            decision,
            extra,
            decision_id,
            generation,
            caller,
            (started, now),
        );
        Answered {
            response,
            record,
            trips,
        }
    }

    /// How to ask for approval of a REQUIRE_APPROVAL, when a person can
    /// be asked.
    fn access_request(
        &self,
        request: &CheckRequest,
        decision: &Decision,
        decision_id: &str,
        now: SystemTime,
    ) -> Option<pb::AccessRequest> {
        if decision.verdict != Verdict::RequireApproval {
            return None;
        }
        self.approvals.as_ref()?.access_request(
            request,
            decision.approval.as_ref(),
            &decision.reasons,
            decision_id,
            now,
        )
    }

    /// What the policy's answer makes of a verified approval: used (and the
    /// uses left), or refused.
    async fn use_approval(
        &self,
        verified: Verified,
        decision: &Decision,
        request: &CheckRequest,
        generation: &Generation,
        decision_id: &str,
    ) -> Result<(Verified, u32), Refused> {
        let Some(approvals) = &self.approvals else {
            return Err(Refused {
                reason: "approval_unverifiable",
                detail: None,
                next_action: "none",
                retry_after: 0,
            });
        };
        match decision.verdict {
            Verdict::Deny => {
                let mut refused = Refused {
                    reason: "policy_denied",
                    detail: None,
                    next_action: "none",
                    retry_after: 0,
                };
                refused.detail = (!decision.reasons.is_empty()).then(|| decision.reasons.join(","));
                return Err(refused);
            }
            // Approval does not override conditions still in force: the
            // approver must still be one the policy's requirement names.
            Verdict::RequireApproval => {
                let identity = generation.snapshot(SnapshotKind::Identity);
                let eligible = decision.approval.as_ref().is_some_and(|requirement| {
                    approvals.still_eligible(&verified, requirement, request, identity)
                });
                if !eligible {
                    return Err(Refused {
                        reason: "approval_expired",
                        detail: Some("approval_superseded".into()),
                        next_action: "request",
                        retry_after: 0,
                    });
                }
            }
            Verdict::Allow => {}
        }
        let uses_left = approvals.consume(&verified, decision_id).await?;
        Ok((verified, uses_left))
    }

    /// Logs a decided check and builds its answer and record.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        request: &CheckRequest,
        decision: Decision,
        extra: Extra,
        decision_id: String,
        generation: &Generation,
        caller: &str,
        (started, now): (Instant, SystemTime),
    ) -> (pb::CheckResponse, Option<String>) {
        if decision.stage == Stage::Policy {
            self.metrics
                .evaluated(generation.policy.engine(), started.elapsed());
        }
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
        let used = extra.used.as_ref();
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
                    replica: self.auditor.replica(),
                    approval: used.map(|(v, _)| ApprovalIds {
                        approval_id: &v.approval_id,
                        task_id: &v.task_id,
                        evaluation_id: &v.evaluation_id,
                    }),
                },
                self.auditor.redaction(),
            )
        });
        let mut response = response(decision, decision_id, request, generation);
        response.access_request = extra.access_request;
        if let Some((verified, uses_left)) = extra.used {
            response.approval = Some(pb::ApprovalUse {
                approved_until: verified.facts["approved_until"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                id: verified.approval_id,
                uses_left,
            });
        }
        if let Some(refused) = extra.refused {
            response.next_action = refused.next_action.to_owned();
            response.retry_after_seconds = refused.retry_after;
        }
        if let Some(limit) = extra.limit {
            let retry_ms = limit
                .retry_after
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            response.next_action = if response.access_request.is_some() {
                "request"
            } else if retry_ms > 0 {
                "retry"
            } else {
                "none"
            }
            .to_owned();
            response.retry_after_seconds =
                u32::try_from(retry_ms.div_ceil(1000)).unwrap_or(u32::MAX);
            response.limit = Some(pb::LimitRefusal {
                rule: limit.rule,
                used: limit.used,
                max: limit.max,
                retry_after_ms: retry_ms,
            });
        }
        response.budgets = extra.budgets.into_iter().map(budget_to_proto).collect();
        (response, record)
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
        approval: None,
        access_request: None,
        budgets: Vec::new(),
        audience: None,
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
        audience: decision.audience.map(|gap| pb::AudienceGap {
            members: gap.members,
            lacking_count: gap.lacking_count,
            lacking: gap.lacking,
        }),
        ..Default::default()
    }
}

/// What a check's answer carries besides the decision.
#[derive(Default)]
struct Extra {
    access_request: Option<pb::AccessRequest>,
    used: Option<(Verified, u32)>,
    refused: Option<Refused>,
    limit: Option<Refusal>,
    budgets: Vec<Budget>,
}

/// One decided check: its answer, its audit record (none when auditing is
/// off), and the tripwires it tripped.
struct Answered {
    response: pb::CheckResponse,
    record: Option<String>,
    trips: Vec<Trip>,
}

fn budget_to_proto(budget: Budget) -> pb::Budget {
    pb::Budget {
        rule: budget.rule,
        used: budget.used,
        max: budget.max,
        remaining: (budget.max - budget.used).max(0.0),
        window_seconds: budget.window.as_secs(),
    }
}

impl DecisionApi {
    /// The most items one call may carry.
    pub fn max_batch_items(&self) -> usize {
        self.limits.max_batch_items
    }

    /// The request limits checks are validated against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The largest one check may be, encoded.
    pub fn max_request_bytes(&self) -> usize {
        self.limits.max_request_bytes
    }

    /// The decision path every entry point shares: the caller may act for
    /// each item's platform (a spoofed item refuses the whole call: it is
    /// the caller, not the item, that is out of bounds), the platforms'
    /// quotas admit the call, then each item is validated, decided on one
    /// generation and audited. An invalid item gets its own error.
    ///
    /// `list` names the field the items came in (`items` for `BatchCheck`),
    /// for refusals that blame one of them; `None` for a single check.
    pub async fn decide_items(
        &self,
        items: &[pb::CheckRequest],
        list: Option<&str>,
        caller: &Caller,
    ) -> Result<Vec<Result<pb::CheckResponse, InvalidRequest>>, Status> {
        self.decide_items_until(items, list, caller, |_| false)
            .await
    }

    /// `decide_items`, stopping after the first item for which `until` is
    /// true (before its record is written): the items after it are neither
    /// decided nor audited, and the answer ends with it. `until` sees the
    /// policy's answer; a record that then cannot be written turns that
    /// item into a DENY (never the reverse), so a stop can only err towards
    /// denying.
    pub async fn decide_items_until(
        &self,
        items: &[pb::CheckRequest],
        list: Option<&str>,
        caller: &Caller,
        until: impl Fn(Result<&pb::CheckResponse, &InvalidRequest>) -> bool,
    ) -> Result<Vec<Result<pb::CheckResponse, InvalidRequest>>, Status> {
        self.decide_prepared(items, as_request, list, caller, until)
            .await
    }

    /// `decide_items_until` over items some of which were refused before
    /// they became checks (`get` gives the refusal): those are answered
    /// in place with their error, as invalid checks are, and cost nothing.
    pub async fn decide_prepared<T>(
        &self,
        items: &[T],
        get: impl Fn(&T) -> Result<&pb::CheckRequest, &InvalidRequest>,
        list: Option<&str>,
        caller: &Caller,
        until: impl Fn(Result<&pb::CheckResponse, &InvalidRequest>) -> bool,
    ) -> Result<Vec<Result<pb::CheckResponse, InvalidRequest>>, Status> {
        let mut per_platform: Vec<(&str, usize)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Ok(item) = get(item) else {
                continue;
            };
            match list {
                None => caller.check_platform(&item.platform, "platform")?,
                Some(list) => {
                    caller.check_platform(&item.platform, &format!("{list}[{index}].platform"))?;
                }
            }
            match per_platform.iter_mut().find(|(p, _)| *p == item.platform) {
                Some((_, count)) => *count += 1,
                None => per_platform.push((&item.platform, 1)),
            }
        }
        let admitted = self.platforms.admit(per_platform.iter().copied())?;
        let _checking = self.checking.enter();
        let label = caller.label();
        // One generation for the whole call: every item sees the same
        // bundle and snapshots.
        let generation = self.generations.current();
        let mut answers = Vec::new();
        let mut slots = Vec::with_capacity(items.len());
        for item in items {
            let item = match get(item) {
                Ok(item) => item,
                Err(refused) => {
                    let stop = until(Err(refused));
                    slots.push(Some(refused.clone()));
                    if stop {
                        break;
                    }
                    continue;
                }
            };
            let stop = match validate(item, &self.limits) {
                Ok(valid) => {
                    let Answered {
                        response,
                        record,
                        trips,
                    } = match &item.approval {
                        None => self.answer(&valid, &generation, &label),
                        Some(presented) => {
                            self.answer_approved(&valid, presented, &generation, &label)
                                .await
                        }
                    };
                    if !trips.is_empty() {
                        self.trip(trips).await;
                    }
                    let answer = (response, record);
                    if items.len() == 1 {
                        // Before the audit wait, so that everything logged
                        // from here on carries the decision id.
                        tracing::Span::current()
                            .record("decision_id", answer.0.decision_id.as_str());
                    }
                    let stop = until(Ok(&answer.0));
                    answers.push(answer);
                    slots.push(None);
                    stop
                }
                Err(invalid) => {
                    let stop = until(Err(&invalid));
                    slots.push(Some(invalid));
                    stop
                }
            };
            if stop {
                break;
            }
        }
        // Items after a stop were never decided; they cost no evaluation.
        for (platform, _) in &per_platform {
            let skipped = items
                .iter()
                .skip(slots.len())
                .filter(|item| get(item).is_ok_and(|item| item.platform == *platform))
                .count();
            if skipped > 0 {
                admitted.refund(platform, skipped);
            }
        }
        // Every item's record is queued before any is waited for, so a
        // `sync` batch costs one group commit.
        let mut responses = self.audit(answers).await.into_iter();
        let mut results = Vec::with_capacity(slots.len());
        for slot in slots {
            results.push(match slot {
                Some(invalid) => Err(invalid),
                None => match responses.next() {
                    Some(response) => {
                        self.metrics
                            .decided(verdict_of(&response), &response.reasons);
                        Ok(response)
                    }
                    None => return Err(Status::internal("an answered item has no response")),
                },
            });
        }
        if let [Ok(only)] = results.as_slice() {
            tracing::Span::current().record("decision", verdict_of(only).as_str());
        }
        Ok(results)
    }
}

fn as_request(request: &pb::CheckRequest) -> Result<&pb::CheckRequest, &InvalidRequest> {
    Ok(request)
}

fn verdict_of(response: &pb::CheckResponse) -> Verdict {
    match response.decision() {
        pb::Decision::Allow => Verdict::Allow,
        pb::Decision::RequireApproval => Verdict::RequireApproval,
        pb::Decision::Deny | pb::Decision::Unspecified => Verdict::Deny,
    }
}

/// The span a check (or a batch) runs in; `decide_items` fills in the
/// decision once there is one, so a trace and the audit record share the
/// decision id.
pub fn check_span(api: Api, items: usize) -> tracing::Span {
    tracing::info_span!(
        "check",
        api = api.as_str(),
        items,
        decision_id = tracing::field::Empty,
        decision = tracing::field::Empty,
    )
}

#[tonic::async_trait]
impl DecisionService for DecisionApi {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let started = Instant::now();
        let caller = Caller::of(&request);
        let items = std::slice::from_ref(request.get_ref());
        let mut results = self
            .decide_items(items, None, &caller)
            .instrument(check_span(Api::GrpcCheck, 1))
            .await?;
        self.metrics.answered(Api::GrpcCheck, started.elapsed());
        match results.pop() {
            Some(Ok(response)) => Ok(Response::new(response)),
            Some(Err(invalid)) => Err(invalid_argument(&invalid)),
            None => Err(Status::internal("no answer")),
        }
    }

    async fn search_actions(
        &self,
        request: Request<pb::SearchActionsRequest>,
    ) -> Result<Response<pb::SearchActionsResponse>, Status> {
        self.search_actions_rpc(request)
            .instrument(tracing::info_span!("search", target = "actions"))
            .await
    }

    async fn search_resources(
        &self,
        request: Request<pb::SearchResourcesRequest>,
    ) -> Result<Response<pb::SearchResourcesResponse>, Status> {
        self.search_resources_rpc(request)
            .instrument(tracing::info_span!("search", target = "resources"))
            .await
    }

    async fn search_subjects(
        &self,
        request: Request<pb::SearchSubjectsRequest>,
    ) -> Result<Response<pb::SearchSubjectsResponse>, Status> {
        self.search_subjects_rpc(request)
            .instrument(tracing::info_span!("search", target = "subjects"))
            .await
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let started = Instant::now();
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
        let caller = Caller::of(&request);
        let results = self
            .decide_items(items, Some("items"), &caller)
            .instrument(check_span(Api::GrpcBatchCheck, items.len()))
            .await?;
        self.metrics
            .answered(Api::GrpcBatchCheck, started.elapsed());
        let results = results
            .into_iter()
            .map(|result| pb::BatchCheckResult {
                result: Some(match result {
                    Ok(response) => pb::batch_check_result::Result::Response(response),
                    Err(invalid) => pb::batch_check_result::Result::Error(pb::BatchItemError {
                        code: Code::InvalidArgument as i32,
                        message: invalid.to_string(),
                        field: invalid.field,
                    }),
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchCheckResponse { results }))
    }
}
