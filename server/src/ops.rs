//! The ops listener: liveness, readiness and Prometheus metrics over plain
//! HTTP, for load balancers, orchestrators and scrapers that do not speak
//! gRPC.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::metrics;

/// Whether the server should receive traffic: true once the first
/// generation is published, false again when shutdown begins, and false
/// while something that makes every check deny is unresolved.
#[derive(Debug, Default)]
pub struct Readiness {
    serving: AtomicBool,
    blocked: Mutex<Option<String>>,
    /// Serving, and ready, but with a caveat operators must see: a replica
    /// that lost etcd answers from its last known state.
    degraded: Mutex<Option<String>>,
    /// Not ready yet for this reason, without being blocked: a replica
    /// that has not yet read the cluster's state might lack a switch.
    pending: Mutex<Option<String>>,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.serving.store(ready, Ordering::SeqCst);
    }

    /// Serving, but not ready, for `reason`.
    pub fn set_blocked(&self, reason: String) {
        self.serving.store(true, Ordering::SeqCst);
        *self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }

    pub fn get(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
            && self.blocked_reason().is_none()
            && self.pending_reason().is_none()
    }

    pub fn set_pending(&self, reason: Option<String>) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    fn pending_reason(&self) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_degraded(&self, reason: Option<String>) {
        *self
            .degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    pub fn degraded_reason(&self) -> Option<String> {
        self.degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn blocked_reason(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Arc<Readiness>,
    registry: Arc<Registry>,
}

pub fn router(readiness: Arc<Readiness>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .with_state(OpsState {
            readiness,
            registry,
        })
}

async fn scrape(State(state): State<OpsState>) -> Response {
    match metrics::encode(&state.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, String) {
    let readiness = &state.readiness;
    if readiness.get() {
        // Still ready: taking every replica out of rotation when etcd is
        // lost would turn an etcd outage into a decision outage.
        match readiness.degraded_reason() {
            Some(reason) => (StatusCode::OK, format!("ready, degraded: {reason}\n")),
            None => (StatusCode::OK, "ready\n".into()),
        }
    } else {
        let reason = readiness
            .blocked_reason()
            .or_else(|| readiness.pending_reason())
            .unwrap_or_default();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready {reason}").trim_end().to_owned() + "\n",
        )
    }
}
