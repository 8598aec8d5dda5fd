//! The audit trail: query, tail, export, verify — and verifying an export
//! offline, with nothing but the file.

use std::io::BufRead;

use tonic::Streaming;
use warden_audit::{Break, Verifier};
use warden_proto::v1 as pb;
use warden_proto::v1::audit_service_client::AuditServiceClient;

use crate::{ClientError, ClientOptions, Transport, connect_channel};

pub use warden_proto::v1::{AuditQueryRequest, AuditRecord, AuditVerifyResponse};

/// A connection to the audit service on Warden's admin listener.
#[derive(Debug, Clone)]
pub struct AuditClient {
    inner: AuditServiceClient<Transport>,
}

impl AuditClient {
    pub async fn connect(
        endpoint: impl Into<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let channel = connect_channel(endpoint.into(), &options).await?;
        Ok(Self {
            inner: AuditServiceClient::new(channel),
        })
    }

    /// One page of matching records, and the token for the next.
    pub async fn query(
        &mut self,
        request: AuditQueryRequest,
    ) -> Result<(Vec<AuditRecord>, String), ClientError> {
        let response = self.inner.query(request).await?.into_inner();
        Ok((response.records, response.next_page_token))
    }

    /// Every matching record, following page tokens up to `limit` records.
    pub async fn query_all(
        &mut self,
        mut request: AuditQueryRequest,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, ClientError> {
        let mut records = Vec::new();
        loop {
            let (page, next) = self.query(request.clone()).await?;
            records.extend(page);
            if next.is_empty() || records.len() >= limit {
                records.truncate(limit);
                return Ok(records);
            }
            request.page_token = next;
        }
    }

    /// Records from `from_seq` (0: only new ones), then live.
    pub async fn tail(&mut self, from_seq: u64) -> Result<Streaming<AuditRecord>, ClientError> {
        Ok(self
            .inner
            .tail(pb::AuditTailRequest { from_seq })
            .await?
            .into_inner())
    }

    /// Writes the chain (or `from_seq..=to_seq`; 0 for open ends) as JSON
    /// Lines to `out`; returns the bytes written.
    pub async fn export(
        &mut self,
        from_seq: u64,
        to_seq: u64,
        out: &mut impl std::io::Write,
    ) -> Result<u64, ClientError> {
        let mut stream = self
            .inner
            .export(pb::AuditExportRequest { from_seq, to_seq })
            .await?
            .into_inner();
        let mut written = 0u64;
        while let Some(chunk) = stream.message().await? {
            out.write_all(&chunk.data)
                .map_err(|e| ClientError::Protocol(format!("cannot write the export: {e}")))?;
            written += chunk.data.len() as u64;
        }
        Ok(written)
    }

    /// Asks the server to walk its chain.
    pub async fn verify(&mut self) -> Result<AuditVerifyResponse, ClientError> {
        Ok(self
            .inner
            .verify(pb::AuditVerifyRequest {})
            .await?
            .into_inner())
    }
}

/// What an offline verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub checked: u64,
    pub first_seq: Option<u64>,
    /// The last entry's hash; compare with a head recorded elsewhere.
    pub head_hash: Option<String>,
    /// The first problem, with the 1-based line it is on.
    pub broken: Option<(u64, Break)>,
}

/// Verifies an export read from `input`: every entry's hash, and every link.
/// An export that starts after the genesis (retention, or `--from`) is
/// checked from its first entry on.
pub fn verify_export(input: impl BufRead) -> std::io::Result<ExportReport> {
    let mut verifier = Verifier::from_first_entry();
    let mut first_seq = None;
    let mut position = 0u64;
    for line in input.lines() {
        let line = line?;
        position += 1;
        if line.is_empty() {
            continue;
        }
        if first_seq.is_none() {
            first_seq = warden_audit::Entry::parse(&line).ok().map(|e| e.seq);
            if first_seq == Some(1) {
                verifier = Verifier::from_genesis();
            }
        }
        if let Err(broken) = verifier.push_line(position, &line) {
            return Ok(ExportReport {
                checked: verifier.checked(),
                first_seq,
                head_hash: verifier.head().map(str::to_owned),
                broken: Some((position, broken)),
            });
        }
    }
    Ok(ExportReport {
        checked: verifier.checked(),
        first_seq,
        head_hash: verifier.head().map(str::to_owned),
        broken: None,
    })
}
