//! What a connection is doing, for the idle timeout: calls in flight, and
//! a count of things that happened (calls ending, keepalive PINGs from a
//! proven client). The request path pays one atomic add when a call starts
//! and one when it ends; the idle check reads the word now and then.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};

/// Low half: calls in flight. High half: events, wrapping.
const EVENT: u64 = 1 << 32;

#[derive(Debug, Default)]
pub struct Activity(AtomicU64);

impl Activity {
    /// A call starts; it is in flight until the guard (and whatever it was
    /// moved into) is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Something other than a call happened.
    pub fn touch(&self) {
        self.0.fetch_add(EVENT, Ordering::Relaxed);
    }

    /// The current word: equal words mean nothing happened in between,
    /// and a nonzero low half means a call is in flight.
    pub fn word(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn busy(word: u64) -> bool {
        word & (EVENT - 1) != 0
    }
}

/// One call in flight.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // One fewer in flight and one more event, in a single add.
        self.0.0.fetch_add(EVENT - 1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A call's future, holding its guard until the response exists.
    pub struct Tracking<F> {
        #[pin]
        future: F,
        guard: Option<InFlight>,
    }
}

impl<F> Tracking<F> {
    pub fn new(future: F, guard: InFlight) -> Self {
        Self {
            future,
            guard: Some(guard),
        }
    }
}

impl<F, B, E> Future for Tracking<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.future.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(response.map(|response| response.map(|body| Tracked { body, guard })))
    }
}

pin_project_lite::pin_project! {
    /// A response body: its call is in flight until it has been sent (or
    /// abandoned).
    pub struct Tracked<B> {
        #[pin]
        body: B,
        guard: Option<InFlight>,
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.body.poll_frame(cx));
        if frame.is_none() {
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_in_flight_until_its_guard_goes_and_then_counts_as_an_event() {
        let activity = Arc::new(Activity::default());
        let quiet = activity.word();
        assert!(!Activity::busy(quiet));
        let first = activity.begin();
        let second = activity.begin();
        assert!(Activity::busy(activity.word()));
        drop(first);
        assert!(Activity::busy(activity.word()));
        drop(second);
        let after = activity.word();
        assert!(!Activity::busy(after));
        assert_ne!(after, quiet, "the calls left a trace");
        activity.touch();
        assert_ne!(activity.word(), after);
        assert!(!Activity::busy(activity.word()));
    }
}
