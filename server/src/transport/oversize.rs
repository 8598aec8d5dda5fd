//! Over-size gRPC messages answered as `RESOURCE_EXHAUSTED`.
//!
//! tonic refuses a request message longer than a service's
//! `max_decoding_message_size` as soon as it reads the message's length
//! prefix, before the body is buffered, but it answers `OUT_OF_RANGE`. The
//! gRPC convention (and what clients retry or alert on) is
//! `RESOURCE_EXHAUSTED`, so this layer rewrites that one answer. Warden's
//! own handlers never answer `OUT_OF_RANGE`, so nothing else is touched.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer, Service};

/// The settings behind each service's message limit, for the refusal.
fn limit_setting(path: &str) -> Option<&'static str> {
    if path.starts_with("/warden.v1.DecisionService/") {
        Some("limits.max_request_bytes × limits.max_batch_items (plus 64 KiB)")
    } else if path.starts_with("/warden.v1.AdminService/") {
        Some("bundles.max_push_bytes (plus 1 MiB)")
    } else {
        None
    }
}

/// Maps tonic's over-size refusal to `RESOURCE_EXHAUSTED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = OversizeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OversizeService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct OversizeService<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for OversizeService<S>
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

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let setting = limit_setting(request.uri().path());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(resource_exhausted(response, setting))
        })
    }
}

/// `response` unchanged, unless it is a trailers-only `OUT_OF_RANGE`
/// (tonic's over-size refusal): then the same refusal as
/// `RESOURCE_EXHAUSTED`, naming the setting behind the limit.
fn resource_exhausted(
    response: http::Response<Body>,
    setting: Option<&'static str>,
) -> http::Response<Body> {
    match Status::from_header_map(response.headers()) {
        Some(status) if status.code() == Code::OutOfRange => {
            let detail = status.message().trim_start_matches("Error, ");
            let message = match setting {
                Some(setting) => format!(
                    "the request message is larger than the limit set by {setting}: {detail}"
                ),
                None => format!("the request message is larger than the limit: {detail}"),
            };
            Status::resource_exhausted(message).into_http()
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oversize() -> http::Response<Body> {
        Status::out_of_range(
            "Error, decoded message length too large: found 99 bytes, the limit is: 10 bytes",
        )
        .into_http()
    }

    #[test]
    fn the_over_size_refusal_becomes_resource_exhausted_naming_the_setting() {
        let mapped = resource_exhausted(
            oversize(),
            limit_setting("/warden.v1.AdminService/PutBundle"),
        );
        let status = Status::from_header_map(mapped.headers());
        assert_eq!(
            status.as_ref().map(Status::code),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(
            status.map(|s| s.message().to_owned()).unwrap_or_default(),
            "the request message is larger than the limit set by bundles.max_push_bytes \
             (plus 1 MiB): decoded message length too large: found 99 bytes, the limit is: 10 bytes"
        );
    }

    #[test]
    fn other_answers_pass_unchanged() {
        for status in [
            Status::invalid_argument("invalid platform: is required"),
            Status::resource_exhausted("over limits.platform_rate"),
            Status::unauthenticated("no credential"),
        ] {
            let code = status.code();
            let message = status.message().to_owned();
            let mapped = resource_exhausted(status.into_http(), None);
            let after = Status::from_header_map(mapped.headers());
            assert_eq!(after.as_ref().map(Status::code), Some(code));
            assert_eq!(after.map(|s| s.message().to_owned()), Some(message));
        }
        // A normal answer has no status in its headers: untouched.
        let ok = http::Response::new(Body::empty());
        assert!(resource_exhausted(ok, None).headers().is_empty());
    }
}
