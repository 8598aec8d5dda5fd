//! Search on the decision listener, shared by gRPC (`SearchActions`,
//! `SearchResources`, `SearchSubjects`) and AuthZEN's search endpoints:
//! the same caller rules and platform quotas as `Check`, one generation
//! and one kill-switch index per call, evaluation on the search threads,
//! and one audit record per call.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use tonic::{Request, Response, Status};
use tracing::debug;
use warden_proto::v1 as pb;

use super::decision::DecisionApi;
use super::status::invalid_argument;
use crate::audit::record::{SearchFacts, search_record};
use crate::auth::Caller;
use crate::decision::Verdict;
use crate::metrics::Api;
use crate::request::{InvalidRequest, validate};
use crate::search::pool::SearchPool;
use crate::search::token::{self, Position, TokenError};
use crate::search::{Bounds, Candidate, Found, Judge, Page, Query, Target, candidates, run};

/// How long a search runs before it offers its core to checks.
pub const YIELD_EVERY: std::time::Duration = std::time::Duration::from_micros(200);

/// The placeholder a search's own field holds while the rest is validated.
const PLACEHOLDER: &str = "warden-search";

/// One search call, in check terms.
#[derive(Debug, Clone)]
pub struct SearchCall {
    pub target: Target,
    /// The checks' shared part. The searched field is ignored.
    pub request: pb::CheckRequest,
    /// Action searches: the names to decide; empty to have them proposed.
    pub candidates: Vec<String>,
    pub token: String,
    /// Most results; 0 for no limit but the evaluation cap.
    pub limit: usize,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct Searched {
    pub found: Vec<Found>,
    /// Empty when the search is complete.
    pub next_token: String,
    /// The whole search's results, on its last page.
    pub total: Option<u64>,
    pub evaluated: usize,
    pub search_id: String,
    pub policy_revision: String,
    pub snapshot_versions: BTreeMap<String, String>,
}

/// Why a search was not run: a field of the call, or a status.
#[derive(Debug)]
pub enum SearchError {
    Invalid(InvalidRequest),
    Status(Status),
}

impl From<Status> for SearchError {
    fn from(status: Status) -> Self {
        SearchError::Status(status)
    }
}

impl SearchError {
    /// The gRPC status, with `rename` applied to the field it names.
    pub fn into_status(self, rename: impl Fn(&str) -> String) -> Status {
        match self {
            SearchError::Invalid(mut invalid) => {
                invalid.field = rename(&invalid.field);
                invalid_argument(&invalid)
            }
            SearchError::Status(status) => status,
        }
    }
}

impl DecisionApi {
    fn search_pool(&self) -> &SearchPool {
        self.search_pool.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            SearchPool::new(cores.div_ceil(2), 64)
        })
    }

    /// Runs one page of a search.
    pub async fn search(&self, call: SearchCall, caller: &Caller) -> Result<Searched, SearchError> {
        caller.check_platform(&call.request.platform, "platform")?;
        let target = call.target;
        let mut request = call.request;
        // A search uses no approval: it answers what checks without one get.
        request.approval = None;
        match target {
            Target::Actions => {
                request.action = Some(pb::Action {
                    name: PLACEHOLDER.into(),
                    attributes: None,
                });
            }
            Target::Resources => {
                if let Some(resource) = &mut request.resource {
                    resource.id.clear();
                }
            }
            Target::Subjects => {
                if let Some(principal) = &mut request.principal {
                    principal.id = PLACEHOLDER.into();
                }
            }
        }
        let query = Query {
            target,
            base: validate(&request, &self.limits).map_err(SearchError::Invalid)?,
        };
        let cap = self.limits.max_search_evaluations;
        let explicit = self.explicit_candidates(&query, call.candidates)?;

        let generation = self.generations.current();
        let binding = query.binding(explicit.as_deref(), &generation);
        let position = match call.token.as_str() {
            "" => Position {
                next: 0,
                returned: 0,
            },
            token => token::read(token, &binding).map_err(|e| match e {
                TokenError::Stale => {
                    SearchError::Status(Status::failed_precondition(format!("page.token {e}")))
                }
                e => SearchError::Invalid(InvalidRequest::new("page.token", e.to_string())),
            })?,
        };
        let named = explicit.as_ref().map(Vec::len);
        let deadline = Instant::now() + self.search_budget;
        let now = SystemTime::now();
        let switches = self.switches.current();
        let usage = self.usage.as_ref().map(|u| u.limits.clone());
        let limits = self.limits.clone();
        let platforms = self.platforms.clone();
        let platform = request.platform.clone();
        let work_generation = generation.clone();
        let work_query = query.clone();
        let limit = call.limit;
        let checking = self.checking.clone();
        // Proposing (a generator, perhaps the index's first build) and
        // deciding both run on the search threads, never on the runtime's.
        let (start, page) = self
            .search_pool()
            .run(move || -> Result<(usize, Page), SearchError> {
                let candidates = candidates(&work_query, explicit, &work_generation)
                    .map_err(|e| SearchError::Status(Status::failed_precondition(e)))?;
                let start = usize::try_from(position.next)
                    .unwrap_or(usize::MAX)
                    .min(candidates.len());
                // A search costs its evaluations against the platform's
                // rate; what it did not evaluate is given back.
                // A platform under a rate gets pages of at most its burst.
                let cap = platforms
                    .most_per_call(&platform)
                    .map_or(cap, |most| most.min(cap));
                let most = (candidates.len() - start).min(cap);
                let admitted = platforms.admit([(platform.as_str(), most)])?;
                let bounds = Bounds {
                    start,
                    limit,
                    cap,
                    deadline,
                    every_outcome: named.is_some(),
                    yield_every: Some((YIELD_EVERY, checking)),
                };
                let judge = Judge {
                    generation: &work_generation,
                    switches: &switches,
                    usage: usage.as_deref(),
                    limits: &limits,
                    now,
                };
                let page = run(&work_query, &candidates, judge, &bounds);
                if page.evaluated < most {
                    admitted.refund(&platform, most - page.evaluated);
                }
                Ok((start, page))
            })
            .await
            .map_err(|busy| Status::resource_exhausted(busy.to_string()))??;

        let search_id = uuid::Uuid::now_v7().to_string();
        let returned = position.returned.saturating_add(page.found.len() as u64);
        let policy_revision = generation.policy.revision.clone();
        let snapshot_versions = generation.snapshot_versions();
        self.audit_search(SearchFacts {
            search_id: &search_id,
            target: target.rule(),
            query: query.generator_input(),
            candidates: named,
            results: page.found.len(),
            evaluated: page.evaluated,
            page_start: start,
            complete: page.next.is_none(),
            policy_revision: &policy_revision,
            snapshot_versions: snapshot_versions.clone(),
            time: now,
            caller: &caller.label(),
            replica: self.auditor.replica(),
        })
        .await?;
        debug!(
            search_id,
            target = target.rule(),
            generation = generation.id,
            results = page.found.len(),
            evaluated = page.evaluated,
            complete = page.next.is_none(),
            "search answered"
        );
        Ok(Searched {
            next_token: match page.next {
                Some(next) => token::issue(
                    &binding,
                    Position {
                        next: next as u64,
                        returned,
                    },
                ),
                None => String::new(),
            },
            total: page.next.is_none().then_some(returned),
            evaluated: page.evaluated,
            found: page.found,
            search_id,
            policy_revision,
            snapshot_versions,
        })
    }
}

impl DecisionApi {
    /// The caller's candidates, checked as the field they fill and
    /// without repeats (first occurrence kept); `None` when it named none.
    fn explicit_candidates(
        &self,
        query: &Query,
        names: Vec<String>,
    ) -> Result<Option<Vec<String>>, SearchError> {
        if names.is_empty() {
            return Ok(None);
        }
        let cap = self.limits.max_search_evaluations;
        if names.len() > cap {
            return Err(SearchError::Invalid(InvalidRequest::new(
                "candidates",
                format!("has {} entries, more than the limit of {cap}", names.len()),
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        let mut kept = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let candidate = Candidate::Value(name);
            if let Err(invalid) = query.check(&candidate, &self.limits) {
                return Err(SearchError::Invalid(InvalidRequest::new(
                    format!("candidates[{i}]"),
                    invalid.reason,
                )));
            }
            if let Candidate::Value(name) = candidate
                && seen.insert(name.clone())
            {
                kept.push(name);
            }
        }
        Ok(Some(kept))
    }

    /// Writes the search's record; a search whose record cannot be written
    /// is not answered (its results would be unaccounted for).
    async fn audit_search(&self, facts: SearchFacts<'_>) -> Result<(), SearchError> {
        if self.auditor.durability() == crate::audit::Durability::Off {
            return Ok(());
        }
        let record = search_record(facts, self.auditor.redaction());
        let waited = match self.auditor.submit_decision(record) {
            Ok(waiter) => waiter.wait().await,
            Err(e) => Err(e),
        };
        waited.map_err(|e| {
            SearchError::Status(Status::unavailable(format!(
                "the search's audit record cannot be written: {e}"
            )))
        })
    }
}

fn decision_to_proto(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Allow => pb::Decision::Allow as i32,
        Verdict::Deny => pb::Decision::Deny as i32,
        Verdict::RequireApproval => pb::Decision::RequireApproval as i32,
    }
}

fn page_to_proto(searched: &Searched) -> pb::PageResponse {
    pb::PageResponse {
        next_token: searched.next_token.clone(),
        count: u32::try_from(searched.found.len()).unwrap_or(u32::MAX),
        total: searched.total,
        evaluated: u32::try_from(searched.evaluated).unwrap_or(u32::MAX),
    }
}

fn page_of(page: Option<&pb::PageRequest>) -> (String, usize) {
    page.map_or((String::new(), 0), |page| {
        (page.token.clone(), page.limit as usize)
    })
}

/// The search's fields in the gRPC request's own names.
fn grpc_field(target: Target) -> impl Fn(&str) -> String {
    move |field: &str| match (target, field) {
        (Target::Resources, "resource.type") => "resource_type".into(),
        (Target::Subjects, "principal.type") => "subject_type".into(),
        (_, other) => other.to_owned(),
    }
}

impl DecisionApi {
    async fn search_grpc(&self, call: SearchCall, caller: &Caller) -> Result<Searched, Status> {
        let started = Instant::now();
        let target = call.target;
        let searched = self
            .search(call, caller)
            .await
            .map_err(|e| e.into_status(grpc_field(target)))?;
        self.metrics.answered(Api::GrpcSearch, started.elapsed());
        Ok(searched)
    }

    pub(super) async fn search_actions_rpc(
        &self,
        request: Request<pb::SearchActionsRequest>,
    ) -> Result<Response<pb::SearchActionsResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let (token, limit) = page_of(r.page.as_ref());
        let call = SearchCall {
            target: Target::Actions,
            request: pb::CheckRequest {
                platform: r.platform,
                agent: r.agent,
                principal: r.principal,
                delegation_chain: r.delegation_chain,
                resource: r.resource,
                context: r.context,
                request_id: r.request_id,
                audience: r.audience,
                ..Default::default()
            },
            candidates: r.candidates,
            token,
            limit,
        };
        let searched = self.search_grpc(call, &caller).await?;
        Ok(Response::new(pb::SearchActionsResponse {
            page: Some(page_to_proto(&searched)),
            results: searched
                .found
                .into_iter()
                .map(|found| pb::ActionResult {
                    name: value_of(found.candidate),
                    decision: decision_to_proto(found.decision.verdict),
                    reasons: found.decision.reasons,
                })
                .collect(),
            search_id: searched.search_id,
            policy_revision: searched.policy_revision,
            snapshot_versions: searched.snapshot_versions.into_iter().collect(),
        }))
    }

    pub(super) async fn search_resources_rpc(
        &self,
        request: Request<pb::SearchResourcesRequest>,
    ) -> Result<Response<pb::SearchResourcesResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let (token, limit) = page_of(r.page.as_ref());
        let call = SearchCall {
            target: Target::Resources,
            request: pb::CheckRequest {
                platform: r.platform,
                agent: r.agent,
                principal: r.principal,
                delegation_chain: r.delegation_chain,
                action: r.action,
                resource: Some(pb::Resource {
                    r#type: r.resource_type,
                    ..Default::default()
                }),
                context: r.context,
                request_id: r.request_id,
                audience: r.audience,
                ..Default::default()
            },
            candidates: Vec::new(),
            token,
            limit,
        };
        let searched = self.search_grpc(call, &caller).await?;
        Ok(Response::new(pb::SearchResourcesResponse {
            page: Some(page_to_proto(&searched)),
            results: searched
                .found
                .into_iter()
                .map(|found| pb::ResourceResult {
                    every_resource: found.candidate == Candidate::Every,
                    id: value_of(found.candidate),
                    decision: decision_to_proto(found.decision.verdict),
                    reasons: found.decision.reasons,
                })
                .collect(),
            search_id: searched.search_id,
            policy_revision: searched.policy_revision,
            snapshot_versions: searched.snapshot_versions.into_iter().collect(),
        }))
    }

    pub(super) async fn search_subjects_rpc(
        &self,
        request: Request<pb::SearchSubjectsRequest>,
    ) -> Result<Response<pb::SearchSubjectsResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let (token, limit) = page_of(r.page.as_ref());
        let kind = r.subject_type.clone();
        let call = SearchCall {
            target: Target::Subjects,
            request: pb::CheckRequest {
                platform: r.platform,
                agent: r.agent,
                principal: Some(pb::Principal {
                    r#type: r.subject_type,
                    ..Default::default()
                }),
                delegation_chain: r.delegation_chain,
                action: r.action,
                resource: r.resource,
                context: r.context,
                request_id: r.request_id,
                audience: r.audience,
                ..Default::default()
            },
            candidates: Vec::new(),
            token,
            limit,
        };
        let searched = self.search_grpc(call, &caller).await?;
        let kind = if kind.is_empty() {
            "user".to_owned()
        } else {
            kind
        };
        Ok(Response::new(pb::SearchSubjectsResponse {
            page: Some(page_to_proto(&searched)),
            results: searched
                .found
                .into_iter()
                .map(|found| pb::SubjectResult {
                    r#type: kind.clone(),
                    id: value_of(found.candidate),
                    decision: decision_to_proto(found.decision.verdict),
                    reasons: found.decision.reasons,
                })
                .collect(),
            search_id: searched.search_id,
            policy_revision: searched.policy_revision,
            snapshot_versions: searched.snapshot_versions.into_iter().collect(),
        }))
    }
}

fn value_of(candidate: Candidate) -> String {
    match candidate {
        Candidate::Every => String::new(),
        Candidate::Value(value) => value,
    }
}
