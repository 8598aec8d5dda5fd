//! A request body that must keep arriving: after `grace`, at least
//! `min_rate` bytes a second on average (Apache's mod_reqtimeout model), or
//! the read fails with [`SlowBody`]. Without it a caller trickling a byte at
//! a time holds a connection and a request buffer for as long as the call's
//! own timeout allows.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body did not arrive fast enough.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived slower than {min_rate} bytes a second (after a grace of {grace:?}); \
     {received} bytes had arrived"
)]
pub struct SlowBody {
    pub min_rate: u64,
    pub grace: Duration,
    pub received: u64,
}

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub grace: Duration,
    /// Bytes a second.
    pub min_rate: u64,
}

impl MinRate {
    /// How long `received` bytes may take.
    fn allowance(&self, received: u64) -> Duration {
        let rate = self.min_rate.max(1);
        self.grace
            .saturating_add(Duration::from_secs(received / rate))
            .saturating_add(Duration::from_nanos(
                (received % rate).saturating_mul(1_000_000_000) / rate,
            ))
    }
}

pin_project_lite::pin_project! {
    pub struct MinRateBody<B> {
        #[pin]
        body: B,
        rate: MinRate,
        received: u64,
        // The clock starts at the first read: the body is not late while
        // the handler has not asked for it yet.
        started: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> MinRateBody<B> {
    pub fn new(body: B, rate: MinRate) -> Self {
        Self {
            body,
            rate,
            received: 0,
            started: None,
            timer: None,
        }
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let started = *this.started.get_or_insert_with(Instant::now);
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.received = this.received.saturating_add(data.remaining() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = started + this.rate.allowance(*this.received);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SlowBody {
                        min_rate: this.rate.min_rate,
                        grace: this.rate.grace,
                        received: *this.received,
                    })))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
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
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use tokio_stream::StreamExt;

    use super::*;

    fn rate(grace_ms: u64, min_rate: u64) -> MinRate {
        MinRate {
            grace: Duration::from_millis(grace_ms),
            min_rate,
        }
    }

    #[test]
    fn each_byte_buys_time_at_the_minimum_rate() {
        let r = rate(2000, 1000);
        assert_eq!(r.allowance(0), Duration::from_secs(2));
        assert_eq!(r.allowance(1500), Duration::from_millis(3500));
        assert_eq!(rate(0, 3).allowance(1), Duration::from_nanos(333_333_333));
        assert_eq!(
            rate(0, 0).allowance(u64::MAX),
            Duration::from_secs(u64::MAX)
        );
    }

    /// `chunks` bytes, one every `every`.
    fn trickle(
        chunks: usize,
        every: Duration,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        let stream = tokio_stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok(Frame::data(Bytes::from_static(b"x")))
        });
        StreamBody::new(Box::pin(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_off_and_a_steady_body_is_not() {
        let slow = MinRateBody::new(trickle(100, Duration::from_millis(500)), rate(1000, 10));
        let error = slow.collect().await.err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("slower than 10 bytes a second")),
            "{error:?}"
        );
        let steady = MinRateBody::new(trickle(100, Duration::from_millis(50)), rate(1000, 10));
        let body = steady.collect().await.map(|b| b.to_bytes().len());
        assert_eq!(body.ok(), Some(100));
    }
}
