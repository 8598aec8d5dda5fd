//! The ops listener: liveness and readiness over plain HTTP, for load
//! balancers and orchestrators that do not speak gRPC.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// Whether the server should receive traffic: true once the first
/// generation is published, false again when shutdown begins, and false
/// while something that makes every check deny is unresolved.
#[derive(Debug, Default)]
pub struct Readiness {
    serving: AtomicBool,
    blocked: Mutex<Option<String>>,
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
        self.serving.load(Ordering::SeqCst) && self.blocked_reason().is_none()
    }

    pub fn blocked_reason(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> (StatusCode, String) {
    if readiness.get() {
        (StatusCode::OK, "ready\n".into())
    } else {
        let reason = readiness.blocked_reason().unwrap_or_default();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready {reason}").trim_end().to_owned() + "\n",
        )
    }
}
