//! Upload progress for large requests: a request body that reports how many
//! bytes the transport has taken from it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Wraps a request body and calls `progress` with each chunk's size as the
/// transport pulls it.
pub struct Counting<B, F> {
    inner: Pin<Box<B>>,
    progress: F,
}

impl<B, F> Counting<B, F> {
    pub fn new(inner: B, progress: F) -> Self {
        Self {
            inner: Box::pin(inner),
            progress,
        }
    }
}

impl<B, F> Body for Counting<B, F>
where
    B: Body<Data = Bytes>,
    F: FnMut(usize) + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            (this.progress)(data.len());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
