//! What `ReplayBundle` holds on to: the one-at-a-time permit, the checks
//! it gives way to, and the response stream whose drop cancels it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tonic::Status;
use warden_proto::v1 as pb;

use crate::giveway::Busy;

/// What a replay needs from the server: one runs at a time, on its own
/// thread, and gives way to the checks in flight.
#[derive(Debug, Clone)]
pub struct Replays {
    pub(super) running: Arc<tokio::sync::Semaphore>,
    pub(super) checks: Arc<Busy>,
}

impl Replays {
    pub fn new(checks: Arc<Busy>) -> Self {
        Self {
            running: Arc::new(tokio::sync::Semaphore::new(1)),
            checks,
        }
    }
}

pub(super) type Event = Result<pb::ReplayBundleEvent, Status>;

/// The response stream; dropping it (the client went away) cancels the
/// replay.
pub struct ReplayStream {
    events: mpsc::Receiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl ReplayStream {
    pub(super) fn new(events: mpsc::Receiver<Event>, cancel: Arc<AtomicBool>) -> Self {
        Self { events, cancel }
    }
}

impl Stream for ReplayStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for ReplayStream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
