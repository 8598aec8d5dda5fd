//! The tower layer in front of every gRPC service: authenticates the caller,
//! applies the method's rule, attaches the `Caller` for handlers and audit
//! records, and bounds how long a call may take (the client's `grpc-timeout`
//! or the listener's limit, whichever is sooner).

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
    /// client sent; a shorter `grpc-timeout` from the client bounds its own
    /// call. An expired call gets `DEADLINE_EXCEEDED`.
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
                .inspect(|_| {
                    if let Some(conn) = conn {
                        conn.proof.record();
                    }
                })
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
        let (timeout, whose) = match client_deadline(request.headers()) {
            Some(client) if client < layer.timeout => (client, "the client's deadline"),
            _ => (layer.timeout, "the server's limit"),
        };
        Box::pin(async move {
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(result) => result,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call took longer than {whose} of {timeout:?}"
                ))
                .into_http()),
            }
        })
    }
}

/// The call's `grpc-timeout`: at most 8 digits and a unit (gRPC over
/// HTTP/2). A malformed value is ignored, as tonic did: the listener's own
/// limit still bounds the call.
pub(crate) fn client_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.as_bytes();
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn deadline(value: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", http::HeaderValue::from_str(value).ok()?);
        client_deadline(&headers)
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(deadline("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(deadline("3M"), Some(Duration::from_secs(180)));
        assert_eq!(deadline("5S"), Some(Duration::from_secs(5)));
        assert_eq!(deadline("250m"), Some(Duration::from_millis(250)));
        assert_eq!(deadline("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            deadline("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            "",
            "S",
            "123456789S",
            "1s",
            "-1S",
            "1.5S",
            " 1S",
            "1 S",
            "१S",
        ] {
            assert_eq!(deadline(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn a_well_formed_timeout_reads_back(amount in 0u64..100_000_000, unit in 0usize..6) {
            let (suffix, expected) = [
                ("H", Duration::from_secs(amount * 3600)),
                ("M", Duration::from_secs(amount * 60)),
                ("S", Duration::from_secs(amount)),
                ("m", Duration::from_millis(amount)),
                ("u", Duration::from_micros(amount)),
                ("n", Duration::from_nanos(amount)),
            ][unit];
            prop_assert_eq!(deadline(&format!("{amount}{suffix}")), Some(expected));
        }

        #[test]
        fn any_header_value_is_parsed_without_panicking(value in "\\PC{0,12}") {
            let _ = deadline(&value);
        }
    }
}
