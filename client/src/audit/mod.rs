//! The audit trail: query, tail, export, verify — and verifying an export
//! offline, with nothing but the file.

mod chain;
mod merge;
mod spool;
mod verify;

use tonic::Streaming;
use warden_proto::v1 as pb;
use warden_proto::v1::audit_service_client::AuditServiceClient;

use crate::{ClientError, ClientOptions, Transport, connect_channel};

pub use chain::{ChainFault, ChainReport};
pub use merge::{ChainWriter, MERGE_FORMAT, Merge, MergeError};
pub use verify::{
    ExportReport, FileReport, MergedReport, verify_export, verify_file, verify_merged,
};
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
