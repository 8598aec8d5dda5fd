//! Search: which actions, resources or subjects would a check allow?
//!
//! Exact by construction: a search proposes candidates (the caller's, the
//! bundle's generator's, or the snapshots'), then decides each with
//! [`decide`], the very function `Check` runs, on one generation and one
//! kill-switch index, and asks the limits what they would say without
//! spending them. A result is therefore what a check would have answered
//! at that moment; nothing is inferred.

pub mod candidates;
pub mod pool;
pub mod token;

pub use crate::engine::generators::Target;

use std::time::{Duration, Instant, SystemTime};

use crate::decision::{Decision, Stage, Verdict, decide, refuse};
use crate::generation::Generation;
use crate::giveway::{Busy, GiveWay};
use crate::killswitch::{SwitchIndex, unix_ms};
use crate::limits::UsageLimits;
use crate::request::{CheckRequest, InvalidRequest, Limits, vary};

/// One thing a search may find.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Candidate {
    /// Every resource of the type: the check without a resource id.
    Every,
    Value(String),
}

impl Candidate {
    fn value(&self) -> Option<&str> {
        match self {
            Candidate::Every => None,
            Candidate::Value(value) => Some(value),
        }
    }

    /// How a generator names it: `"*"` is every resource.
    pub fn generated(target: Target, value: String) -> Self {
        if target == Target::Resources && value == "*" {
            Candidate::Every
        } else {
            Candidate::Value(value)
        }
    }
}

/// A candidate and the decision a check for it gets.
#[derive(Debug, Clone)]
pub struct Found {
    pub candidate: Candidate,
    pub decision: Decision,
}

/// How much one call may do, and from where.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// The first candidate to evaluate.
    pub start: usize,
    /// Most results; 0 for no limit but `cap`.
    pub limit: usize,
    /// Most evaluations.
    pub cap: usize,
    /// No evaluation starts after this (at least one always runs).
    pub deadline: Instant,
    /// Keep denied candidates too (the caller named them).
    pub every_outcome: bool,
    /// Give way to checks this often (see [`GiveWay`]).
    pub yield_every: Option<(Duration, std::sync::Arc<Busy>)>,
}

/// One page of a search.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub found: Vec<Found>,
    pub evaluated: usize,
    /// The candidate the next page starts at; `None` when none is left.
    pub next: Option<usize>,
}

/// The shared part of every check of a search, validated, and the field
/// its candidates fill.
#[derive(Debug, Clone)]
pub struct Query {
    pub target: Target,
    pub base: CheckRequest,
}

impl Query {
    /// The check for `candidate`; an invalid candidate is the error.
    pub fn check(
        &self,
        candidate: &Candidate,
        limits: &Limits,
    ) -> Result<CheckRequest, InvalidRequest> {
        let mut request = self.base.clone();
        vary(
            &mut request,
            self.target.varied(),
            candidate.value(),
            limits,
        )?;
        Ok(request)
    }

    /// The input a generator sees: the check's input without the field
    /// searched for.
    pub fn generator_input(&self) -> serde_json::Value {
        let mut input = crate::input::to_json(&self.base);
        if let Some(object) = input.as_object_mut() {
            object.remove("request_id");
            match self.target {
                Target::Actions => {
                    object.remove("action");
                }
                Target::Resources => {
                    if let Some(resource) =
                        object.get_mut("resource").and_then(|r| r.as_object_mut())
                    {
                        resource.remove("id");
                    }
                }
                Target::Subjects => {
                    if let Some(principal) =
                        object.get_mut("principal").and_then(|p| p.as_object_mut())
                    {
                        principal.remove("id");
                    }
                }
            }
        }
        input
    }

    /// What page tokens are bound to: the target, the query (without its
    /// request id, which may differ from page to page) and the explicit
    /// candidates, and the content of `generation`.
    pub fn binding(&self, explicit: Option<&[String]>, generation: &Generation) -> token::Binding {
        let query = warden_audit::canonical(&self.generator_input());
        let listed = explicit.map(|names| names.join("\n"));
        let query = token::digest([
            query.as_bytes(),
            listed.as_deref().unwrap_or("\u{0}").as_bytes(),
        ]);
        token::Binding {
            target: self.target.code(),
            query,
            generation: fingerprint(generation),
        }
    }
}

/// Identifies what a generation decides with: the bundle and both
/// snapshots, by content, so that equal generations on two replicas agree.
fn fingerprint(generation: &Generation) -> [u8; 16] {
    token::digest([
        generation.policy.digest.as_bytes(),
        generation.identity.sha256.as_bytes(),
        generation.entitlements.sha256.as_bytes(),
    ])
}

/// What a search decides, in order: the caller's names as given, else the
/// bundle's generator's proposals, else the snapshots' (both sorted, without
/// repeats). A generator that fails is the error: its search has no
/// answer rather than a partial one.
pub fn candidates(
    query: &Query,
    explicit: Option<Vec<String>>,
    generation: &Generation,
) -> Result<Vec<Candidate>, String> {
    if let Some(names) = explicit {
        return Ok(names.into_iter().map(Candidate::Value).collect());
    }
    let target = query.target;
    match generation.generated(target, &query.generator_input()) {
        Some(Ok(values)) => {
            let mut values: Vec<Candidate> = values
                .into_iter()
                .map(|value| Candidate::generated(target, value))
                .collect();
            values.sort();
            values.dedup();
            Ok(values)
        }
        Some(Err(e)) => Err(format!(
            "the bundle's search generator `data.warden.search.{}` failed: {e}",
            target.rule()
        )),
        None => Ok(candidates::from_snapshots(
            target,
            &query.base,
            &generation.identity.document,
            &generation.entitlements.document,
        )),
    }
}

/// What a search decides with: one generation, one kill-switch index, the
/// limits (consulted, never spent) and the request rules, at one time.
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    pub generation: &'a Generation,
    pub switches: &'a SwitchIndex,
    pub usage: Option<&'a UsageLimits>,
    pub limits: &'a Limits,
    pub now: SystemTime,
}

/// Decides candidates from `bounds.start` on, as `Check` would, until the
/// page is full, the cap is reached, the deadline has passed or none is
/// left. Limits are consulted, never spent.
pub fn run(query: &Query, candidates: &[Candidate], judge: Judge<'_>, bounds: &Bounds) -> Page {
    let Judge {
        generation,
        switches,
        usage,
        limits,
        now,
    } = judge;
    let mut page = Page::default();
    let mut index = bounds.start;
    // One request, its searched field set per candidate: cloning the rest
    // per candidate would cost more than the search saves over checks.
    let mut request = query.base.clone();
    let varied = query.target.varied();
    let mut give_way = bounds
        .yield_every
        .as_ref()
        .map(|(every, checks)| GiveWay::new(*every, checks.clone()));
    while index < candidates.len() {
        if let Some(give_way) = &mut give_way {
            give_way.tick();
        }
        let full = bounds.limit > 0 && page.found.len() >= bounds.limit;
        let spent = page.evaluated >= bounds.cap
            || (page.evaluated > 0 && Instant::now() >= bounds.deadline);
        if full || spent {
            break;
        }
        let candidate = &candidates[index];
        index += 1;
        // A generated candidate no check could carry is not a result.
        if vary(&mut request, varied, candidate.value(), limits).is_err() {
            continue;
        }
        page.evaluated += 1;
        let mut decision = decide(&request, generation, switches, now);
        if decision.stage == Stage::Policy
            && decision.verdict == Verdict::Allow
            && let Some(usage) = usage
            && let Some(refusal) =
                usage.would_refuse(&generation.policy.limits, &request, unix_ms(now))
        {
            refuse(&mut decision, &refusal);
        }
        if bounds.every_outcome || decision.verdict != Verdict::Deny {
            page.found.push(Found {
                candidate: candidate.clone(),
                decision,
            });
        }
    }
    page.next = (index < candidates.len()).then_some(index);
    page
}
