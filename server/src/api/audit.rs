//! `warden.v1.AuditService`: query, tail, export and verify the chain.

use std::sync::Arc;

use serde_json::Value as Json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use warden_audit::Entry;
use warden_proto::v1 as pb;
use warden_proto::v1::audit_service_server::AuditService;

use super::status::invalid_field;
use crate::audit::{AuditLog, Auditor};
use crate::killswitch::action_pattern_matches;
use crate::store::StoreError;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Entries one Query call examines at most, so that a selective filter over
/// a long chain cannot hold a thread for long; the page token continues.
const SCAN_LIMIT: usize = 20_000;
const EXPORT_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct AuditApi {
    auditor: Arc<Auditor>,
}

impl AuditApi {
    pub fn new(auditor: Arc<Auditor>) -> Self {
        Self { auditor }
    }
}

fn store_status(e: &StoreError) -> Status {
    Status::unavailable(e.to_string())
}

/// The filters of a Query, parsed once.
struct Filter {
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    request: pb::AuditQueryRequest,
}

impl Filter {
    fn parse(request: pb::AuditQueryRequest) -> Result<Self, Status> {
        let time = |field: &str, value: &str| -> Result<Option<OffsetDateTime>, Status> {
            if value.is_empty() {
                return Ok(None);
            }
            OffsetDateTime::parse(value, &Rfc3339)
                .map(Some)
                .map_err(|e| {
                    let reason = format!("is not an RFC 3339 time: {e}");
                    invalid_field(field, &format!("invalid {field}: {reason}"), &reason)
                })
        };
        if !matches!(
            request.decision.as_str(),
            "" | "allow" | "deny" | "require_approval"
        ) {
            let reason = "is not `allow`, `deny` or `require_approval`";
            return Err(invalid_field(
                "decision",
                &format!("invalid decision: {reason}"),
                reason,
            ));
        }
        if !matches!(
            request.r#type.as_str(),
            "" | "decision" | "admin" | "checkpoint" | "search"
        ) {
            let reason = "is not `decision`, `admin`, `checkpoint` or `search`";
            return Err(invalid_field(
                "type",
                &format!("invalid type: {reason}"),
                reason,
            ));
        }
        Ok(Self {
            start: time("start_time", &request.start_time)?,
            end: time("end_time", &request.end_time)?,
            request,
        })
    }

    fn matches(&self, record: &Json) -> bool {
        let text = |name: &str| record[name].as_str().unwrap_or_default();
        let r = &self.request;
        let exact = |want: &str, name: &str| want.is_empty() || text(name) == want;
        if !(exact(&r.platform, "platform")
            && exact(&r.agent_id, "agent_id")
            && exact(&r.decision, "decision")
            && exact(&r.r#type, "type"))
        {
            return false;
        }
        if !r.principal_id.is_empty() {
            let principal = text("principal");
            let id = principal.split_once(':').map_or(principal, |(_, id)| id);
            if principal != r.principal_id && id != r.principal_id {
                return false;
            }
        }
        if !r.action.is_empty() && !action_pattern_matches(&r.action, text("action")) {
            return false;
        }
        if !r.chain.is_empty()
            && text("decision_id") != r.chain
            && linked(record, "evaluation_id") != r.chain
        {
            return false;
        }
        if self.start.is_some() || self.end.is_some() {
            let Ok(time) = OffsetDateTime::parse(text("time"), &Rfc3339) else {
                return false;
            };
            if self.start.is_some_and(|start| time < start)
                || self.end.is_some_and(|end| time >= end)
            {
                return false;
            }
        }
        true
    }
}

/// An entry as the API shows it.
pub fn to_proto(entry: &Entry, line: &str) -> pb::AuditRecord {
    let record = &entry.record;
    let text = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
    let kind = text("type");
    let (id, decision) = match kind.as_str() {
        "admin" => (text("event_id"), text("event")),
        "search" => (text("search_id"), format!("search:{}", text("target"))),
        _ => (text("decision_id"), text("decision")),
    };
    pb::AuditRecord {
        seq: entry.seq,
        r#type: kind,
        time: text("time"),
        id,
        decision,
        platform: text("platform"),
        agent_id: text("agent_id"),
        principal: text("principal"),
        action: text("action"),
        resource: text("resource"),
        reasons: record["reasons"]
            .as_array()
            .map(|reasons| {
                reasons
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        prev_hash: entry.prev_hash.clone(),
        hash: entry.hash.clone(),
        json: line.to_owned(),
        approval_id: linked(record, "approval_id"),
        evaluation_id: linked(record, "evaluation_id"),
        task_id: linked(record, "task_id"),
    }
}

/// An approval link: on a decision record itself, in an admin event's
/// details.
fn linked(record: &Json, name: &str) -> String {
    record[name]
        .as_str()
        .or_else(|| record["details"][name].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn query(
    log: &AuditLog,
    filter: &Filter,
    page_size: usize,
    from: u64,
) -> Result<pb::AuditQueryResponse, StoreError> {
    let mut records = Vec::new();
    let mut next = None;
    for (examined, item) in log.range(from).enumerate() {
        let (seq, line) = item?;
        if examined >= SCAN_LIMIT || records.len() >= page_size {
            next = Some(seq);
            break;
        }
        let entry = Entry::parse(&line)
            .map_err(|e| StoreError::Corrupt(format!("audit entry {seq}: {e}")))?;
        if filter.matches(&entry.record) {
            records.push(to_proto(&entry, &line));
        }
    }
    Ok(pb::AuditQueryResponse {
        records,
        next_page_token: next.map(|seq| seq.to_string()).unwrap_or_default(),
    })
}

/// Sends stored entries from `from` on; returns the last sequence sent.
async fn send_stored(
    log: &AuditLog,
    from: u64,
    tx: &mpsc::Sender<Result<pb::AuditRecord, Status>>,
) -> Option<u64> {
    let mut last = from.saturating_sub(1);
    for item in log.range(from) {
        let message = item.and_then(|(seq, line)| {
            Entry::parse(&line)
                .map(|entry| (seq, to_proto(&entry, &line)))
                .map_err(|e| StoreError::Corrupt(format!("audit entry {seq}: {e}")))
        });
        match message {
            Ok((seq, record)) => {
                tx.send(Ok(record)).await.ok()?;
                last = seq;
            }
            Err(e) => {
                let _ = tx.send(Err(store_status(&e))).await;
                return None;
            }
        }
    }
    Some(last)
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn query(
        &self,
        request: Request<pb::AuditQueryRequest>,
    ) -> Result<Response<pb::AuditQueryResponse>, Status> {
        let request = request.into_inner();
        let page_size = match request.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let from = if request.page_token.is_empty() {
            0
        } else {
            request.page_token.parse::<u64>().map_err(|_| {
                invalid_field(
                    "page_token",
                    "invalid page_token: not a token from a previous page",
                    "not a token from a previous page",
                )
            })?
        };
        let filter = Filter::parse(request)?;
        let log = self.auditor.log().clone();
        let response = tokio::task::spawn_blocking(move || query(&log, &filter, page_size, from))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(response))
    }

    type TailStream = ReceiverStream<Result<pb::AuditRecord, Status>>;

    async fn tail(
        &self,
        request: Request<pb::AuditTailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let from = request.get_ref().from_seq;
        // Subscribe before reading the store, so nothing written in between
        // is missed; duplicates are skipped by sequence number.
        let mut live = self.auditor.subscribe();
        let log = self.auditor.log().clone();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut last = if from == 0 {
                None
            } else {
                match send_stored(&log, from, &tx).await {
                    Some(last) => Some(last),
                    None => return,
                }
            };
            loop {
                match live.recv().await {
                    Ok((seq, line)) => {
                        if last.is_some_and(|last| seq <= last) {
                            continue;
                        }
                        let Ok(entry) = Entry::parse(&line) else {
                            continue;
                        };
                        if tx.send(Ok(to_proto(&entry, &line))).await.is_err() {
                            return;
                        }
                        last = Some(seq);
                    }
                    // Fell behind the live feed: catch up from the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let next = last.map_or(1, |last| last + 1);
                        match send_stored(&log, next, &tx).await {
                            Some(sent) => last = Some(sent),
                            None => return,
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ExportStream = ReceiverStream<Result<pb::AuditExportChunk, Status>>;

    async fn export(
        &self,
        request: Request<pb::AuditExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let request = request.into_inner();
        let to = if request.to_seq == 0 {
            u64::MAX
        } else {
            request.to_seq
        };
        let log = self.auditor.log().clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
            for item in log.range(request.from_seq) {
                match item {
                    Ok((seq, _)) if seq > to => break,
                    Ok((_, line)) => {
                        chunk.extend_from_slice(line.as_bytes());
                        chunk.push(b'\n');
                        if chunk.len() >= EXPORT_CHUNK {
                            let data =
                                std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK));
                            if tx.send(Ok(pb::AuditExportChunk { data })).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(store_status(&e))).await;
                        return;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(pb::AuditExportChunk { data: chunk })).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn verify(
        &self,
        _: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        let log = self.auditor.log().clone();
        let report = tokio::task::spawn_blocking(move || log.verify())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::AuditVerifyResponse {
            ok: report.broken.is_none(),
            checked: report.checked,
            from_seq: report.from.next_seq,
            from_hash: report.from.prev_hash,
            head_seq: report.head_seq,
            head_hash: report.head_hash,
            broken_seq: report.broken.as_ref().map_or(0, |b| b.seq()),
            problem: report.broken.map(|b| b.to_string()).unwrap_or_default(),
        }))
    }
}
