//! The writer: a bounded queue in front of one thread that seals records
//! into the chain, writes them in groups and flushes them.
//!
//! Group commit: the thread takes everything queued at once, writes it in
//! one batch and flushes once, so `sync` mode costs one flush per group, not
//! per record. In `async` mode a written group is flushed at most
//! `flush_interval` later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;
use tokio::sync::{broadcast, oneshot};
use tracing::{error, info, warn};
use warden_audit::{Entry, canonical};

use super::log::{Anchor, AuditLog};
use super::record::{Redaction, checkpoint_record};
use super::{AuditConfig, Durability, OnFull};
use crate::store::StoreError;

/// Why a record could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit queue is full")]
    QueueFull,
    #[error("the audit writer has stopped")]
    Closed,
    #[error("the audit store failed: {0}")]
    Write(String),
}

/// Told how long each commit took (the metrics implement it), so the
/// audit path needs nothing from the layers that read it.
pub trait CommitObserver: Send + Sync + std::fmt::Debug {
    fn committed(&self, elapsed: Duration);
}

/// What the audit path has done, for status and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records waiting for the writer.
    pub queue_depth: AtomicU64,
    /// Records written to the chain since start.
    pub records: AtomicU64,
    /// Flushes (group commits) since start.
    pub commits: AtomicU64,
    /// Checks denied because the queue was full (`on_full = "deny"`).
    pub refused: AtomicU64,
    /// Records that could not be written.
    pub failed: AtomicU64,
}

struct Job {
    /// The record's canonical encoding.
    body: String,
    /// Told the record's sequence number once it is flushed.
    durable: Option<oneshot::Sender<Result<u64, AuditError>>>,
}

enum Message {
    Record(Job),
    Stop,
}

/// Resolves when a queued record is as durable as its mode promises.
#[derive(Debug)]
pub struct Waiter(Option<oneshot::Receiver<Result<u64, AuditError>>>);

impl Waiter {
    pub async fn wait(self) -> Result<(), AuditError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.map_err(|_| AuditError::Closed)?.map(|_| ()),
        }
    }
}

/// The decision path's handle on the audit chain.
#[derive(Debug)]
pub struct Auditor {
    durability: Durability,
    on_full: OnFull,
    redaction: Redaction,
    replica: Option<String>,
    tx: SyncSender<Message>,
    counters: Arc<Counters>,
    live: broadcast::Sender<(u64, Arc<str>)>,
    log: AuditLog,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Auditor {
    /// Opens the chain at its head and starts the writer thread.
    pub fn start(
        log: AuditLog,
        config: AuditConfig,
        metrics: Arc<dyn CommitObserver>,
    ) -> Result<Arc<Self>, StoreError> {
        let (head_seq, head_hash) = log.head()?;
        let stored_bytes = if config.max_bytes > 0 {
            log.stored_bytes()?
        } else {
            0
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let (live, _) = broadcast::channel(4096);
        let writer = Writer {
            rx,
            log: log.clone(),
            counters: counters.clone(),
            metrics,
            live: live.clone(),
            seq: head_seq,
            prev: head_hash,
            sync: config.durability == Durability::Sync,
            flush_interval: config.flush_interval,
            max_age: config.max_age,
            max_records: config.max_records,
            max_bytes: config.max_bytes,
            stored_bytes,
            retention_interval: config.retention_interval,
        };
        let thread = std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Io(format!("cannot start the audit writer: {e}")))?;
        info!(head_seq, durability = ?config.durability, "audit chain opened");
        Ok(Arc::new(Self {
            durability: config.durability,
            replica: config.replica.clone(),
            on_full: config.on_full,
            redaction: Redaction {
                drop: config.redact_drop,
                hash: config.redact_hash,
            },
            tx,
            counters,
            live,
            log,
            thread: Mutex::new(Some(thread)),
        }))
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// This replica's id in records, in a cluster.
    pub fn replica(&self) -> Option<&str> {
        self.replica.as_deref()
    }

    pub fn redaction(&self) -> &Redaction {
        &self.redaction
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Entries as they are written: `(seq, line)`.
    pub fn subscribe(&self) -> broadcast::Receiver<(u64, Arc<str>)> {
        self.live.subscribe()
    }

    /// Queues a decision's record. In `sync` mode the waiter resolves once
    /// the record is on disk; queue several before waiting on any, and they
    /// share one flush.
    /// `record` is the record's canonical encoding (`record::decision_record`).
    pub fn submit_decision(&self, record: String) -> Result<Waiter, AuditError> {
        match self.durability {
            Durability::Off => Ok(Waiter(None)),
            Durability::Async => self.enqueue(record, None).map(|()| Waiter(None)),
            Durability::Sync => {
                let (tx, rx) = oneshot::channel();
                self.enqueue(record, Some(tx))?;
                Ok(Waiter(Some(rx)))
            }
        }
    }

    /// Records an admin event and waits until it is on disk, whatever the
    /// mode (except `off`): admin changes are rare and must not be lost.
    pub async fn record_admin(&self, record: &Json) -> Result<(), AuditError> {
        match self.durability {
            Durability::Off => Ok(()),
            Durability::Async | Durability::Sync => {
                let body = match (&self.replica, record) {
                    (Some(replica), Json::Object(fields)) => {
                        let mut fields = fields.clone();
                        fields.insert("replica".into(), Json::from(replica.as_str()));
                        canonical(&Json::Object(fields))
                    }
                    _ => canonical(record),
                };
                self.durable(body).await.map(|_| ())
            }
        }
    }

    async fn durable(&self, body: String) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(body, Some(tx))?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    fn enqueue(
        &self,
        body: String,
        durable: Option<oneshot::Sender<Result<u64, AuditError>>>,
    ) -> Result<(), AuditError> {
        self.counters.queue_depth.fetch_add(1, Ordering::Relaxed);
        let result = match self.tx.try_send(Message::Record(Job { body, durable })) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => match self.on_full {
                OnFull::Deny => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    Err(AuditError::QueueFull)
                }
                OnFull::Block => {
                    let send = || self.tx.send(message).map_err(|_| AuditError::Closed);
                    // Waiting on a runtime worker would stall every task on
                    // it; tell the runtime so it can move them.
                    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                            tokio::task::block_in_place(send)
                        }
                        _ => send(),
                    }
                }
            },
            Err(TrySendError::Disconnected(_)) => Err(AuditError::Closed),
        };
        if result.is_err() {
            self.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    /// Writes and flushes everything queued, then stops the writer.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Message::Stop);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            error!("the audit writer panicked");
        }
    }
}

struct Writer {
    rx: Receiver<Message>,
    log: AuditLog,
    counters: Arc<Counters>,
    metrics: Arc<dyn CommitObserver>,
    live: broadcast::Sender<(u64, Arc<str>)>,
    seq: u64,
    prev: String,
    sync: bool,
    flush_interval: Duration,
    max_age: Option<Duration>,
    max_records: u64,
    max_bytes: u64,
    /// Bytes of stored entries, kept up to date when `max_bytes` is set.
    stored_bytes: u64,
    retention_interval: Duration,
}

/// In `sync` mode, the least time between flushes: records arriving within
/// it share a flush. Each flush costs sled a few hundred microseconds of
/// CPU whatever it carries, so spacing them lets concurrent checks form
/// groups large enough to keep throughput, for at most this much latency.
const SYNC_GATHER: Duration = Duration::from_micros(1000);

/// Room left for a checkpoint entry when trimming to `max_bytes`.
const CHECKPOINT_BYTES: u64 = 512;

/// Most records sealed in one group.
const MAX_GROUP: usize = 8192;

impl Writer {
    fn run(mut self) {
        let mut dirty = false;
        let mut last_flush = Instant::now();
        let mut last_retention = Instant::now();
        let mut waiting: Vec<(u64, oneshot::Sender<Result<u64, AuditError>>)> = Vec::new();
        let mut stopping = false;
        while !stopping {
            let wait = if dirty {
                self.flush_interval.saturating_sub(last_flush.elapsed())
            } else {
                self.retention_interval
                    .saturating_sub(last_retention.elapsed())
                    .max(Duration::from_millis(1))
            };
            let mut group = Vec::new();
            match self.rx.recv_timeout(wait) {
                Ok(Message::Record(job)) => group.push(job),
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // In async mode, gather until the flush is due: one write and
            // one flush per interval, and senders find the writer busy
            // rather than parked (no wake-up per record).
            if !group.is_empty() {
                let gather = if self.sync {
                    SYNC_GATHER
                } else {
                    self.flush_interval
                };
                let due = gather.saturating_sub(last_flush.elapsed());
                if !due.is_zero() {
                    std::thread::sleep(due);
                }
            }
            while !stopping && group.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(Message::Record(job)) => group.push(job),
                    Ok(Message::Stop) => stopping = true,
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                // Counted as queued until written, so that a depth of 0
                // means every accepted record is in the chain.
                let queued = group.len() as u64;
                let written = self.write(&group);
                self.counters
                    .queue_depth
                    .fetch_sub(queued, Ordering::Relaxed);
                match written {
                    Ok(lines) => {
                        dirty = true;
                        for (job, (seq, line)) in group.into_iter().zip(lines) {
                            let _ = self.live.send((seq, Arc::from(line)));
                            if let Some(done) = job.durable {
                                waiting.push((seq, done));
                            }
                        }
                    }
                    Err(e) => {
                        error!(error = %e, records = group.len(), "cannot write audit records");
                        self.counters
                            .failed
                            .fetch_add(group.len() as u64, Ordering::Relaxed);
                        for job in group {
                            if let Some(done) = job.durable {
                                let _ = done.send(Err(AuditError::Write(e.to_string())));
                            }
                        }
                    }
                }
            }
            let due = self.sync
                || !waiting.is_empty()
                || stopping
                || last_flush.elapsed() >= self.flush_interval;
            if dirty && due {
                let flushing = Instant::now();
                let flushed = self.log.flush();
                last_flush = Instant::now();
                dirty = false;
                if flushed.is_ok() {
                    self.metrics.committed(flushing.elapsed());
                    self.counters.commits.fetch_add(1, Ordering::Relaxed);
                } else if let Err(e) = &flushed {
                    error!(error = %e, "cannot flush audit records");
                }
                for (seq, done) in waiting.drain(..) {
                    let _ = done.send(match &flushed {
                        Ok(()) => Ok(seq),
                        Err(e) => Err(AuditError::Write(e.to_string())),
                    });
                }
            }
            if last_retention.elapsed() >= self.retention_interval {
                last_retention = Instant::now();
                if let Err(e) = self.retain() {
                    warn!(error = %e, "audit retention failed");
                }
            }
        }
    }

    /// Seals and writes one group; on failure the chain's head is unchanged.
    fn write(&mut self, group: &[Job]) -> Result<Vec<(u64, String)>, StoreError> {
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        let mut lines = Vec::with_capacity(group.len());
        for job in group {
            seq += 1;
            let (line, hash) = Entry::seal_line(seq, &prev, &job.body);
            prev = hash;
            lines.push((seq, line));
        }
        self.log.append(&lines)?;
        self.stored_bytes += lines.iter().map(|(_, l)| l.len() as u64 + 1).sum::<u64>();
        self.seq = seq;
        self.prev = prev;
        self.counters
            .records
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        Ok(lines)
    }

    /// Removes entries past `max_age`, beyond `max_records` or beyond
    /// `max_bytes`, leaving a checkpoint entry at the head that names where
    /// the chain now starts.
    fn retain(&mut self) -> Result<(), StoreError> {
        if self.max_age.is_none() && self.max_records == 0 && self.max_bytes == 0 {
            return Ok(());
        }
        let Some(first) = self.log.first_seq()? else {
            return Ok(());
        };
        let len = (self.seq + 1).saturating_sub(first);
        let mut cutoff = first;
        if self.max_records > 0 && len > self.max_records {
            // Room for the checkpoint this run appends, so that the next
            // run finds exactly `max_records` and leaves them alone.
            cutoff = first + (len + 1 - self.max_records).min(len);
        }
        if self.max_bytes > 0 && self.stored_bytes > self.max_bytes {
            // Drop the oldest entries until the rest, and the checkpoint
            // this run appends, fit.
            let mut excess = self.stored_bytes - self.max_bytes + CHECKPOINT_BYTES;
            for item in self.log.range(first) {
                let (seq, line) = item?;
                if excess == 0 || seq > self.seq {
                    break;
                }
                excess = excess.saturating_sub(line.len() as u64 + 1);
                cutoff = cutoff.max(seq + 1);
            }
        }
        if let Some(max_age) = self.max_age {
            let oldest_kept = SystemTime::now() - max_age;
            for item in self.log.range(cutoff) {
                let (seq, line) = item?;
                let time = Entry::parse(&line)
                    .ok()
                    .and_then(|e| e.record["time"].as_str().map(str::to_owned))
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            &t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .map(SystemTime::from);
                match time {
                    Some(time) if time < oldest_kept => cutoff = seq + 1,
                    _ => break,
                }
            }
        }
        let cutoff = cutoff.min(self.seq + 1);
        if cutoff <= first {
            return Ok(());
        }
        let anchor_hash = match self.log.get(cutoff - 1)? {
            Some(line) => {
                Entry::parse(&line)
                    .map_err(|e| StoreError::Corrupt(format!("audit entry {}: {e}", cutoff - 1)))?
                    .hash
            }
            None => return Ok(()),
        };
        let checkpoint = checkpoint_record(cutoff, &anchor_hash, cutoff - first, SystemTime::now());
        let lines = self.write(&[Job {
            body: canonical(&checkpoint),
            durable: None,
        }])?;
        for (seq, line) in lines {
            let _ = self.live.send((seq, Arc::from(line)));
        }
        self.log.flush()?;
        if self.max_bytes > 0 {
            let mut dropped = 0u64;
            for item in self.log.range(first) {
                let (seq, line) = item?;
                if seq >= cutoff {
                    break;
                }
                dropped += line.len() as u64 + 1;
            }
            self.stored_bytes = self.stored_bytes.saturating_sub(dropped);
        }
        let removed = self.log.truncate(&Anchor {
            next_seq: cutoff,
            prev_hash: anchor_hash,
        })?;
        info!(
            removed,
            first_kept = cutoff,
            "audit retention removed old records"
        );
        Ok(())
    }
}
