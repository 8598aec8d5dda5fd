//! The tower layer in front of every gRPC service: authenticates the caller,
//! applies the method's rule, attaches the `Caller` for handlers and audit
//! records, and bounds how long a call may take.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::debug;

use super::ConnInfo;
use super::rules::{Listener, Requirement, authorize, requirement};
use super::{Authenticator, Caller};

#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    listener: Listener,
    timeout: Duration,
}

impl AuthLayer {
    /// `timeout` bounds every call on this listener, whatever deadline the
    /// client sent; an expired call gets `DEADLINE_EXCEEDED`.
    pub fn new(auth: Arc<Authenticator>, listener: Listener, timeout: Duration) -> Self {
        Self {
            auth,
            listener,
            timeout,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for AuthService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let layer = &self.layer;
        let conn = request.extensions().get::<ConnInfo>();
        let path = request.uri().path();
        // Health is for load balancers, which hold no credentials.
        let admitted = if requirement(layer.listener, path) == Some(Requirement::Public) {
            Ok(Caller::public(conn.and_then(|c| c.remote)))
        } else {
            layer
                .auth
                .authenticate(request.headers(), conn)
                .and_then(|caller| authorize(&caller, layer.listener, path).map(|()| caller))
        };
        let caller: Caller = match admitted {
            Ok(caller) => caller,
            Err(status) => {
                debug!(
                    listener = layer.listener.as_str(),
                    method = request.uri().path(),
                    code = ?status.code(),
                    reason = status.message(),
                    "call refused"
                );
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        request.extensions_mut().insert(caller);
        // The clone is ready only if `self.inner` was; swap so the ready
        // one serves this call (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let timeout = layer.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(result) => result,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call took longer than the server's limit of {timeout:?}"
                ))
                .into_http()),
            }
        })
    }
}
