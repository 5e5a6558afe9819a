//! Delivery of document keys to other administrations: when a document version this
//! node issued becomes final (a new document or an amendment), its DEK and salt are
//! wrapped with HPKE to each recipient's encryption key (from the ledger) and sent
//! node-to-node until acknowledged; when this node's administration answers a TFA
//! request with `provide`, the granted version of each provided document goes the same
//! way to the requester. Pending deliveries live in the `outbox` column family, written
//! in the block's batch (see `ledger::key_deliveries`), so they survive restarts.
//!
//! Must never send keys to anyone but the node of the administration the ledger names
//! (a recipient, or the requester holding a grant), never to a member that is no longer
//! active, never send them unwrapped, and never log them.

use std::sync::Arc;
use std::time::Duration;

use carnet_contracts::envelope::{wrap_info, wrap_keys};
use carnet_contracts::{AdminCode, DocumentId};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::peer_id_of;
use crate::ledger;
use crate::node::{now_ms, Shared};
use crate::p2p::{SyncRequest, SyncResponse};
use crate::storage::{fatal, CF_OUTBOX};

const SCAN_PERIOD: Duration = Duration::from_millis(500);
/// Most outbox entries attempted per scan.
const MAX_PER_SCAN: usize = 256;
const MAX_BACKOFF_MS: u64 = 60_000;

/// One pending delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub document: DocumentId,
    pub version: u32,
    pub recipient: AdminCode,
    pub attempts: u32,
    pub next_attempt_ms: u64,
}

/// Outbox key and value of a new delivery.
pub fn outbox_entry(
    document: &DocumentId,
    version: u32,
    recipient: &AdminCode,
) -> (Vec<u8>, Vec<u8>) {
    let mut key = document.0.to_vec();
    key.extend_from_slice(&version.to_be_bytes());
    key.extend_from_slice(recipient.as_str().as_bytes());
    let entry = OutboxEntry {
        document: *document,
        version,
        recipient: recipient.clone(),
        attempts: 0,
        next_attempt_ms: 0,
    };
    (key, crate::storage::encode(&entry))
}

pub fn spawn(shared: Arc<Shared>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SCAN_PERIOD).await;
            scan(&shared).await;
        }
    });
}

async fn scan(shared: &Arc<Shared>) {
    let entries = match shared.store.scan_prefix(CF_OUTBOX, &[], MAX_PER_SCAN) {
        Ok(e) => e,
        Err(e) => fatal("reading the key-delivery outbox", &e),
    };
    let now = now_ms();
    let mut tasks = Vec::new();
    for (key, value) in entries {
        let entry: OutboxEntry = match bincode_decode(&value) {
            Some(e) => e,
            None => {
                tracing::error!("malformed outbox entry dropped");
                let _ = shared.store.delete_raw(CF_OUTBOX, &key);
                continue;
            }
        };
        if entry.next_attempt_ms > now {
            continue;
        }
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let result = deliver(&shared, &entry).await;
            match result {
                Ok(()) => {
                    shared.metrics.keys_delivered.inc();
                    tracing::info!(document = %entry.document, version = entry.version, recipient = %entry.recipient, "document keys delivered");
                    if let Err(e) = shared.store.delete_raw(CF_OUTBOX, &key) {
                        fatal("updating the key-delivery outbox", &e);
                    }
                }
                Err(Undeliverable::Never(reason)) => {
                    shared.metrics.reject("key_delivery_dropped");
                    tracing::warn!(document = %entry.document, version = entry.version, recipient = %entry.recipient, "key delivery dropped: {reason}");
                    if let Err(e) = shared.store.delete_raw(CF_OUTBOX, &key) {
                        fatal("updating the key-delivery outbox", &e);
                    }
                }
                Err(Undeliverable::NotYet(reason)) => {
                    let attempts = entry.attempts.saturating_add(1);
                    let backoff = (500u64 << attempts.min(10)).min(MAX_BACKOFF_MS);
                    tracing::debug!(document = %entry.document, recipient = %entry.recipient, attempts, "key delivery will be retried: {reason}");
                    let next = OutboxEntry { attempts, next_attempt_ms: now_ms() + backoff, ..entry };
                    if let Err(e) = shared.store.put_raw(CF_OUTBOX, &key, &crate::storage::encode(&next)) {
                        fatal("updating the key-delivery outbox", &e);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn bincode_decode(bytes: &[u8]) -> Option<OutboxEntry> {
    crate::storage::decode_limited(bytes, 4096).ok()
}

/// Why a delivery did not happen.
enum Undeliverable {
    /// Retried later with backoff (peer unreachable, keys or block not there yet).
    NotYet(String),
    /// Dropped: the recipient is no longer an active member, or the document is erased.
    Never(String),
}

impl From<String> for Undeliverable {
    fn from(reason: String) -> Self {
        Undeliverable::NotYet(reason)
    }
}

async fn deliver(shared: &Shared, entry: &OutboxEntry) -> Result<(), Undeliverable> {
    let recipient = ledger::administration(&shared.store, &entry.recipient)
        .map_err(|e| e.to_string())?
        .filter(|a| a.active)
        .ok_or_else(|| Undeliverable::Never("the recipient is not an active member".into()))?;
    let peer = peer_id_of(&recipient.node_key.0)
        .ok_or_else(|| Undeliverable::Never("the recipient node key is not ed25519".into()))?;
    if ledger::document_version(&shared.store, &entry.document, entry.version)
        .map_err(|e| e.to_string())?
        .is_some_and(|r| r.status == carnet_contracts::DocumentStatus::Erased)
    {
        return Err(Undeliverable::Never("the document is erased".into()));
    }
    let keys = shared
        .vault
        .get(&entry.document, entry.version)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "keys are not (or no longer) in the vault".to_string())?;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let wrapped = wrap_keys(
        &keys,
        &recipient.encryption_key,
        seed,
        &wrap_info(&entry.document, entry.version),
    )
    .map_err(|e| e.to_string())?;
    let request = SyncRequest::DeliverKeys {
        document: entry.document,
        version: entry.version,
        wrapped,
    };
    let net = shared
        .net
        .get()
        .ok_or_else(|| "the network is not running".to_string())?;
    match net
        .request(Some(peer), request, Duration::from_secs(10))
        .await?
    {
        SyncResponse::Ack => Ok(()),
        SyncResponse::Nack(reason) => Err(format!("refused: {reason}").into()),
        _ => Err("unexpected response".to_string().into()),
    }
}
