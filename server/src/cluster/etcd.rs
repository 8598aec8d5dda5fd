//! A thin etcd v3 client over Warden's own tonic stack: the unary KV calls
//! cluster mode makes, each bounded by the configured timeout, blobs split
//! into chunks below etcd's request limit, and a watch stream.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use warden_proto::etcd::etcdserverpb as rpc;
use warden_proto::etcd::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use warden_proto::etcd::etcdserverpb::kv_client::KvClient;
use warden_proto::etcd::etcdserverpb::watch_client::WatchClient;
use warden_proto::etcd::mvccpb;

use super::EtcdTls;

/// etcd refuses requests over 1.5 MiB by default; chunks stay well below.
const CHUNK_BYTES: usize = 512 * 1024;

/// Largest response accepted: listings and watch batches hold pointers and
/// switches only (blobs live outside the watched prefix), but a long
/// switch history or a watcher catching up can exceed tonic's 4 MiB.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Largest blob reassembled, whatever its meta claims.
const MAX_BLOB_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("etcd: {0}")]
    Status(#[from] tonic::Status),
    #[error("etcd endpoint `{0}`: {1}")]
    Endpoint(String, String),
    #[error("{0}")]
    Data(String),
}

/// A connection to the etcd cluster (all endpoints, balanced).
#[derive(Debug, Clone)]
pub struct Etcd {
    channel: Channel,
    timeout: Duration,
}

/// A value and the revision that last changed it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// What `range` saw, and at which revision of the whole store.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub revision: i64,
}

/// One change seen by a watch.
#[derive(Debug)]
pub enum Change {
    Put(Entry),
    Delete { key: String },
}

/// The end of a key range covering every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A transaction's guard: each key last changed at its revision (0: absent).
fn unchanged_since(keys: &[(String, i64)]) -> Vec<rpc::Compare> {
    keys.iter()
        .map(|(key, mod_revision)| rpc::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::ModRevision(*mod_revision)),
        })
        .collect()
}

fn entry(kv: mvccpb::KeyValue) -> Entry {
    Entry {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: kv.value,
        mod_revision: kv.mod_revision,
    }
}

impl Etcd {
    /// Connects lazily: a replica starts, and serves, whether or not etcd
    /// is up; calls fail (and the replica reports itself degraded) until it
    /// is.
    /// `tls`: for `https://` endpoints (configuration checked that they
    /// come together).
    pub fn new(
        endpoints: &[String],
        tls: Option<&EtcdTls>,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        let mut built = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let invalid = |e: String| EtcdError::Endpoint(endpoint.clone(), e);
            let mut built_one =
                Endpoint::from_shared(endpoint.clone()).map_err(|e| invalid(e.to_string()))?;
            if let Some(tls) = tls {
                let host = built_one.uri().host().unwrap_or_default();
                // `[::1]` in a URL, `::1` in a certificate.
                let domain = host.trim_matches(['[', ']']).to_owned();
                built_one = built_one
                    .tls_config(tls.client_config(&domain).timeout(timeout))
                    .map_err(|e| invalid(e.to_string()))?;
            }
            let built_one = built_one
                .connect_timeout(timeout)
                // Not more often than etcd's default keepalive minimum (5 s),
                // or it closes the connection (too_many_pings); a dead etcd
                // is noticed sooner by the watch or the probe.
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(timeout)
                .tcp_nodelay(true);
            built.push(built_one);
        }
        Ok(Self {
            channel: Channel::balance_list(built.into_iter()),
            timeout,
        })
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(EtcdError::Status(status)),
            Err(_) => Err(EtcdError::Timeout(self.timeout)),
        }
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Every key under `prefix`, and the store revision they were read at.
    pub async fn range(&self, prefix: &str) -> Result<Listing, EtcdError> {
        let response = self
            .bounded(self.kv().range(rpc::RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                ..rpc::RangeRequest::default()
            }))
            .await?;
        Ok(Listing {
            revision: response.header.map_or(0, |h| h.revision),
            entries: response.kvs.into_iter().map(entry).collect(),
        })
    }

    /// Every key under `prefix` with its revisions, without values.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<Entry>, EtcdError> {
        let response = self
            .bounded(self.kv().range(rpc::RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                keys_only: true,
                ..rpc::RangeRequest::default()
            }))
            .await?;
        Ok(response.kvs.into_iter().map(entry).collect())
    }

    /// Deletes `key` if it was last changed at `mod_revision`; returns
    /// whether it did.
    pub async fn delete_if(&self, key: &str, mod_revision: i64) -> Result<bool, EtcdError> {
        let unchanged = [(key.to_owned(), mod_revision)];
        self.delete_range_if(key.as_bytes().to_vec(), Vec::new(), &unchanged)
            .await
            .map(|deleted| deleted.is_some())
    }

    /// Deletes `key` if every key in `unchanged` was last changed at its
    /// revision (0: absent); returns the revision of the delete.
    pub async fn delete_if_all(
        &self,
        key: &str,
        unchanged: &[(String, i64)],
    ) -> Result<Option<i64>, EtcdError> {
        self.delete_range_if(key.as_bytes().to_vec(), Vec::new(), unchanged)
            .await
    }

    /// Deletes every key under `prefix`, in one step, if `guard` was last
    /// changed at `mod_revision`; returns whether it did.
    pub async fn delete_prefix_if(
        &self,
        prefix: &str,
        guard: &str,
        mod_revision: i64,
    ) -> Result<bool, EtcdError> {
        let start = prefix.as_bytes().to_vec();
        let end = prefix_end(&start);
        self.delete_range_if(start, end, &[(guard.to_owned(), mod_revision)])
            .await
            .map(|deleted| deleted.is_some())
    }

    async fn delete_range_if(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        unchanged: &[(String, i64)],
    ) -> Result<Option<i64>, EtcdError> {
        let delete = rpc::request_op::Request::RequestDeleteRange(rpc::DeleteRangeRequest {
            key,
            range_end,
            ..rpc::DeleteRangeRequest::default()
        });
        self.txn_if(unchanged, delete).await
    }

    /// Runs `request` if every key in `unchanged` was last changed at its
    /// revision; returns the revision it committed at.
    async fn txn_if(
        &self,
        unchanged: &[(String, i64)],
        request: rpc::request_op::Request,
    ) -> Result<Option<i64>, EtcdError> {
        let response = self
            .bounded(self.kv().txn(rpc::TxnRequest {
                compare: unchanged_since(unchanged),
                success: vec![rpc::RequestOp {
                    request: Some(request),
                }],
                failure: Vec::new(),
            }))
            .await?;
        Ok(response
            .succeeded
            .then(|| response.header.map_or(0, |h| h.revision)))
    }

    /// One key's value.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, EtcdError> {
        let response = self
            .bounded(self.kv().range(rpc::RangeRequest {
                key: key.as_bytes().to_vec(),
                ..rpc::RangeRequest::default()
            }))
            .await?;
        Ok(response.kvs.into_iter().next().map(entry))
    }

    /// Writes `value` under `key`; returns the revision of the write.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64, EtcdError> {
        let response = self
            .bounded(self.kv().put(rpc::PutRequest {
                key: key.as_bytes().to_vec(),
                value,
                ..rpc::PutRequest::default()
            }))
            .await?;
        Ok(response.header.map_or(0, |h| h.revision))
    }

    /// Writes `value` under `key` only if the key does not exist; returns
    /// whether it was written.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<bool, EtcdError> {
        self.put_if(key, value, 0)
            .await
            .map(|written| written.is_some())
    }

    /// Writes `value` under `key` only if the key was last changed at
    /// `mod_revision` (0: it does not exist); returns the revision of the
    /// write, or `None` when the key had changed meanwhile.
    pub async fn put_if(
        &self,
        key: &str,
        value: Vec<u8>,
        mod_revision: i64,
    ) -> Result<Option<i64>, EtcdError> {
        self.put_if_all(key, value, &[(key.to_owned(), mod_revision)])
            .await
    }

    /// Writes `value` under `key` only if every key in `unchanged` was last
    /// changed at its revision (0: absent).
    pub async fn put_if_all(
        &self,
        key: &str,
        value: Vec<u8>,
        unchanged: &[(String, i64)],
    ) -> Result<Option<i64>, EtcdError> {
        let put = rpc::request_op::Request::RequestPut(rpc::PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            ..rpc::PutRequest::default()
        });
        self.txn_if(unchanged, put).await
    }

    /// Stores `bytes` under `{base}/{index}` chunks and then `{base}/meta`,
    /// so that a blob whose meta exists is complete. A blob already there
    /// (blobs are named by their hash) only has its meta rewritten: the new
    /// revision tells the collector (`collect`) the blob is about to be
    /// named; if the collector removed it meanwhile, the rewrite fails and
    /// the blob is uploaded again.
    ///
    /// Returns the meta's key and revision: the write that names the blob
    /// guards on them, so it fails if the collector took the blob after all.
    pub async fn put_blob(&self, base: &str, bytes: &[u8]) -> Result<(String, i64), EtcdError> {
        let meta_key = format!("{base}/meta");
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        let meta = serde_json::json!({"size": bytes.len(), "chunks": chunks.len()})
            .to_string()
            .into_bytes();
        if let Some(existing) = self.get(&meta_key).await?
            && let Some(revision) = self
                .put_if(&meta_key, meta.clone(), existing.mod_revision)
                .await?
        {
            return Ok((meta_key, revision));
        }
        for (index, chunk) in chunks.iter().enumerate() {
            self.put(&format!("{base}/{index:06}"), chunk.to_vec())
                .await?;
        }
        let revision = self.put(&meta_key, meta).await?;
        Ok((meta_key, revision))
    }

    /// The blob under `base`, reassembled; the caller verifies its hash.
    pub async fn get_blob(&self, base: &str) -> Result<Vec<u8>, EtcdError> {
        let meta = self
            .get(&format!("{base}/meta"))
            .await?
            .ok_or_else(|| EtcdError::Data(format!("blob `{base}` is not in etcd")))?;
        let meta: serde_json::Value = serde_json::from_slice(&meta.value)
            .map_err(|e| EtcdError::Data(format!("blob `{base}`: bad meta: {e}")))?;
        let (Some(size), Some(chunks)) = (meta["size"].as_u64(), meta["chunks"].as_u64()) else {
            return Err(EtcdError::Data(format!("blob `{base}`: bad meta")));
        };
        if size > MAX_BLOB_BYTES {
            return Err(EtcdError::Data(format!(
                "blob `{base}`: {size} bytes is too large"
            )));
        }
        // Not more than the chunks can hold, whatever the meta claims.
        let capacity = size.min(chunks.saturating_mul(CHUNK_BYTES as u64));
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        for index in 0..chunks {
            let chunk = self
                .get(&format!("{base}/{index:06}"))
                .await?
                .ok_or_else(|| EtcdError::Data(format!("blob `{base}`: chunk {index} missing")))?;
            bytes.extend_from_slice(&chunk.value);
        }
        if bytes.len() as u64 != size {
            return Err(EtcdError::Data(format!(
                "blob `{base}`: {} bytes, meta says {size}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Changes under `prefix` from `start_revision` on, until the stream
    /// fails; the receiver ends when it does (with the error last). Each
    /// batch comes with the revision it brings the watcher up to: its last
    /// event's, or for a progress notice the store's.
    pub async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<mpsc::Receiver<Result<(Vec<Change>, i64), EtcdError>>, EtcdError> {
        let (requests, outgoing) = mpsc::channel(1);
        let create = rpc::WatchRequest {
            request_union: Some(rpc::watch_request::RequestUnion::CreateRequest(
                rpc::WatchCreateRequest {
                    key: prefix.as_bytes().to_vec(),
                    range_end: prefix_end(prefix.as_bytes()),
                    start_revision,
                    progress_notify: true,
                    prev_kv: false,
                },
            )),
        };
        requests
            .send(create)
            .await
            .map_err(|_| EtcdError::Data("the watch request could not be queued".into()))?;
        let mut request = tonic::Request::new(ReceiverStream::new(outgoing));
        // A member cut off from the quorum would keep the watch open and
        // deliver nothing; with this it cancels the watch instead.
        request.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let mut stream = self
            .bounded(
                WatchClient::new(self.channel.clone())
                    .max_decoding_message_size(MAX_RESPONSE_BYTES)
                    .watch(request),
            )
            .await?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // Kept open: etcd ends a watch whose client stops sending.
            let _requests = requests;
            loop {
                let next = tokio::select! {
                    next = stream.message() => next,
                    // The session ended: let the stream go.
                    () = tx.closed() => return,
                };
                let message = match next {
                    Ok(Some(message)) => message,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(EtcdError::Data("etcd closed the watch".into())))
                            .await;
                        return;
                    }
                    Err(status) => {
                        let _ = tx.send(Err(EtcdError::Status(status))).await;
                        return;
                    }
                };
                if message.canceled {
                    let reason = if message.compact_revision > 0 {
                        format!(
                            "the watch start was compacted (compacted at {})",
                            message.compact_revision
                        )
                    } else {
                        format!("etcd cancelled the watch: {}", message.cancel_reason)
                    };
                    let _ = tx.send(Err(EtcdError::Data(reason))).await;
                    return;
                }
                if message.created {
                    continue;
                }
                let last_event = message
                    .events
                    .iter()
                    .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
                    .max();
                // The header's revision is the store's, which may be ahead
                // of events still to come; only a progress notice (no
                // events) vouches that nothing below it is pending.
                let revision =
                    last_event.unwrap_or_else(|| message.header.as_ref().map_or(0, |h| h.revision));
                let changes = message
                    .events
                    .into_iter()
                    .filter_map(|event| {
                        let kv = event.kv?;
                        Some(if event.r#type == mvccpb::event::EventType::Delete as i32 {
                            Change::Delete {
                                key: String::from_utf8_lossy(&kv.key).into_owned(),
                            }
                        } else {
                            Change::Put(entry(kv))
                        })
                    })
                    .collect();
                if tx.send(Ok((changes, revision))).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_range_ends_after_every_key_under_it() {
        assert_eq!(prefix_end(b"/warden/"), b"/warden0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
