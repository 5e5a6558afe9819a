//! Erasure by key destruction on this node (docs/erasure.md).
//!
//! A finalized block whose outcome lists an erasure writes, in the block's own batch, a
//! pending-erasure record in the `meta` column family. From then on the document's
//! status on the ledger is `erased`, so the API refuses to decrypt it (410). The
//! pending record is then worked off, here, in two stages that each survive a restart:
//!
//! 1. **destroy**: the DEK and salt of every version leave the vault, pending key
//!    deliveries leave the outbox, the ciphertexts leave the `payloads` column family
//!    (and their hashes are marked so a late fetch never stores them again); then
//!    [`Store::purge_deleted`] flushes the memtables (obsolete WAL files, which held the
//!    keys, are deleted), force-compacts the vault, payloads and outbox column families
//!    and syncs the WAL. A node runs this for pending records before it serves the API.
//! 2. **attest**: the node submits `AttestDestruction` signed by its node key and
//!    resubmits until the ledger shows its attestation; then the record is deleted.
//!
//! Must never: keep a key or ciphertext of an erased document, accept keys for an erased
//! document (see [`KEY_LOCK`]), attest before the destruction stage is durable, or log
//! key material.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carnet_contracts::erasure::DestructionAttestation;
use carnet_contracts::execute::query;
use carnet_contracts::{Action, DocumentId};
use serde::{Deserialize, Serialize};

use crate::ledger::Committed;
use crate::node::Shared;
use crate::storage::{
    encode, fatal, StorageError, Store, CF_META, CF_OUTBOX, CF_PAYLOADS, CF_VAULT,
};
use crate::vault::KeyVault;

/// Meta key prefix of pending erasures: `erasure_pending/<id 16>`.
pub const PENDING_PREFIX: &[u8] = b"erasure_pending/";
/// Most pending erasures worked per round.
const MAX_PER_ROUND: usize = 256;
/// How often the worker looks for work when not woken.
const ROUND_PERIOD: Duration = Duration::from_millis(500);
/// Wait before resubmitting an attestation that is not final yet.
const RESUBMIT_AFTER: Duration = Duration::from_secs(5);

/// Held while keys are stored for a received document and while keys are destroyed,
/// so a delivery racing an erasure either lands before the destruction or is refused.
pub static KEY_LOCK: Mutex<()> = Mutex::new(());

/// An erasure this node has not finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingErasure {
    pub document: DocumentId,
    pub versions: u32,
    /// Height of the block that erased the document.
    pub height: u64,
    /// Keys and ciphertexts destroyed and purged from disk.
    pub destroyed: bool,
}

/// Meta key of a pending erasure.
pub fn pending_key(document: &DocumentId) -> Vec<u8> {
    let mut key = PENDING_PREFIX.to_vec();
    key.extend_from_slice(&document.0);
    key
}

/// Meta key and value recording a new erasure, for the block's batch.
pub fn pending_entry(document: &DocumentId, versions: u32, height: u64) -> (Vec<u8>, Vec<u8>) {
    let record = PendingErasure {
        document: *document,
        versions,
        height,
        destroyed: false,
    };
    (pending_key(document), encode(&record))
}

fn decode_pending(bytes: &[u8]) -> Option<PendingErasure> {
    crate::storage::decode_limited(bytes, 4096).ok()
}

/// The pending erasures, in document order.
pub fn pending(store: &Store) -> Result<Vec<PendingErasure>, StorageError> {
    Ok(store
        .scan_prefix(CF_META, PENDING_PREFIX, MAX_PER_ROUND)?
        .into_iter()
        .filter_map(|(_, v)| decode_pending(&v))
        .collect())
}

/// Deletes (logically) everything this node holds that opens one erased document:
/// the keys of every version, pending key deliveries, the ciphertexts. Does not purge
/// the disk; see [`destroy_pending`].
pub fn destroy_document(
    store: &Store,
    vault: &dyn KeyVault,
    document: &DocumentId,
    versions: u32,
) -> Result<(), String> {
    {
        let _guard = KEY_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        for version in 1..=versions.max(1) {
            vault
                .destroy(document, version)
                .map_err(|e| format!("destroying keys of {document} v{version}: {e}"))?;
        }
    }
    for (key, _) in store
        .scan_prefix(CF_OUTBOX, &document.0, usize::MAX)
        .map_err(|e| e.to_string())?
    {
        store
            .delete_raw_synced(CF_OUTBOX, &key)
            .map_err(|e| e.to_string())?;
    }
    for version in 1..=versions.max(1) {
        let record = query::document_version(&Committed(store), document, version)
            .map_err(|e| e.to_string())?;
        if let Some(record) = record {
            store
                .erase_payload(&record.ciphertext_hash)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Destroys and purges every pending erasure not destroyed yet, then marks them
/// destroyed. Returns how many were destroyed. Blocking (flush and compaction).
pub fn destroy_pending(store: &Store, vault: &dyn KeyVault) -> Result<usize, String> {
    let todo: Vec<PendingErasure> = pending(store)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| !p.destroyed)
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    for p in &todo {
        destroy_document(store, vault, &p.document, p.versions)?;
    }
    store
        .purge_deleted(&[CF_VAULT, CF_PAYLOADS, CF_OUTBOX])
        .map_err(|e| e.to_string())?;
    for p in &todo {
        let done = PendingErasure {
            destroyed: true,
            ..p.clone()
        };
        store
            .put_raw_synced(CF_META, &pending_key(&p.document), &encode(&done))
            .map_err(|e| e.to_string())?;
        tracing::info!(document = %p.document, versions = p.versions, "document keys and ciphertexts destroyed");
    }
    Ok(todo.len())
}

/// Starts the worker that destroys pending erasures and gets this node's destruction
/// attestations final.
pub fn spawn(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut submitted: HashMap<DocumentId, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = shared.erasure_wake.notified() => {}
                _ = tokio::time::sleep(ROUND_PERIOD) => {}
            }
            round(&shared, &mut submitted).await;
        }
    });
}

async fn round(shared: &Arc<Shared>, submitted: &mut HashMap<DocumentId, Instant>) {
    let (store, vault) = (shared.store.clone(), shared.vault.clone());
    match tokio::task::spawn_blocking(move || destroy_pending(&store, vault.as_ref())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => fatal("destroying the keys of an erased document", &e),
        Err(e) => fatal("erasure task", &e),
    }
    let records = match pending(&shared.store) {
        Ok(r) => r,
        Err(e) => fatal("reading pending erasures", &e),
    };
    submitted.retain(|id, _| records.iter().any(|p| p.document == *id));
    for p in records.into_iter().filter(|p| p.destroyed) {
        let status =
            match carnet_contracts::erasure::erasure_status(&Committed(&shared.store), &p.document)
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(document = %p.document, "erasure status unreadable: {e}");
                    continue;
                }
            };
        let waiting = status
            .as_ref()
            .is_some_and(|s| s.pending.contains(&shared.admin));
        if !waiting {
            // Attested (or this administration is not expected to attest): done.
            if let Err(e) = shared
                .store
                .delete_raw_synced(CF_META, &pending_key(&p.document))
            {
                fatal("updating pending erasures", &e);
            }
            submitted.remove(&p.document);
            tracing::info!(document = %p.document, "destruction attested on the ledger");
            continue;
        }
        if submitted
            .get(&p.document)
            .is_some_and(|at| at.elapsed() < RESUBMIT_AFTER)
        {
            continue;
        }
        submitted.insert(p.document, Instant::now());
        let tx = attestation_tx(shared, &p);
        if let Some(Err(e)) = shared.submit_one(tx, None) {
            tracing::debug!(document = %p.document, "attestation not admitted yet: {e}");
        }
    }
}

fn attestation_tx(shared: &Shared, p: &PendingErasure) -> carnet_contracts::SignedTransaction {
    shared.node_tx(
        None,
        Action::AttestDestruction(DestructionAttestation {
            document: p.document,
            administration: shared.admin.clone(),
            erasure_height: p.height,
            versions: p.versions,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::admin;
    use crate::vault::RocksVault;
    use carnet_consensus::{Block, Certificate, VoteKind};
    use carnet_contracts::block::BlockBody;
    use carnet_contracts::envelope::{seal, DocumentKeys};
    use carnet_contracts::{
        AdminCode, DocumentKind, DocumentStatus, DocumentSubmission, Genesis, Officer, Role,
        SignedTransaction,
    };
    use carnet_contracts::{PublicKey, Transaction};
    use ed25519_dalek::SigningKey;
    use rand::RngCore;

    const T0: u64 = 1_700_000_000_000;

    fn tx(signer: &SigningKey, officer: Option<&SigningKey>, action: Action) -> SignedTransaction {
        Transaction {
            chain_id: "carnet-test".into(),
            signer: PublicKey(signer.verifying_key().to_bytes()),
            officer: officer.map(|o| PublicKey(o.verifying_key().to_bytes())),
            nonce: rand::rngs::OsRng.next_u64(),
            expires_at_ms: T0 + 60_000,
            action,
        }
        .sign(signer)
    }

    /// (receipts, erasures, block digest)
    type Committed3 = (Vec<Result<(), String>>, Vec<(DocumentId, u32)>, [u8; 32]);

    /// Executes and commits a block the way the driver does (pending erasures in the
    /// block's batch). Returns the receipts and erasures.
    fn commit(
        store: &Store,
        height: u64,
        parent: [u8; 32],
        txs: Vec<SignedTransaction>,
    ) -> Committed3 {
        let body = BlockBody::new(T0 + height * 1000, AdminCode("XA".into()), txs, None);
        let mut executed = crate::ledger::execute(store, height, &body).unwrap();
        let block = Block {
            view: height,
            height,
            parent,
            payload: body.encode(),
        };
        let digest = block.digest();
        let finalization = Certificate {
            kind: VoteKind::Finalize,
            view: height,
            digest: Some(digest),
            signers: vec![0b11],
            signatures: vec![vec![1; 64], vec![2; 64]],
        };
        let write = crate::driver::block_write(block, finalization, &body, &mut executed);
        store.commit_block(write).unwrap();
        (executed.receipts, executed.erasures, digest)
    }

    #[test]
    fn an_erasure_block_leads_to_destruction_and_an_attestation_the_ledger_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let vault = RocksVault::new(store.clone());
        let supervisor = SigningKey::from_bytes(&[42; 32]);
        let plain = SigningKey::from_bytes(&[43; 32]);
        let officer = |key: &SigningKey, roles: Vec<Role>| Officer {
            key: PublicKey(key.verifying_key().to_bytes()),
            administration: AdminCode("XA".into()),
            name: "o".into(),
            roles,
            active: true,
        };
        let genesis = Genesis {
            chain_id: "carnet-test".into(),
            genesis_time_ms: T0,
            administrations: vec![admin("XA", 10), admin("XB", 20)],
            officers: vec![
                officer(&supervisor, vec![Role::Officer, Role::Supervisor]),
                officer(&plain, vec![Role::Officer]),
            ],
            agreements: Vec::new(),
            epoch_length_blocks: carnet_contracts::DEFAULT_EPOCH_LENGTH_BLOCKS,
        };
        let head = crate::node::prepare_store(&store, &genesis).unwrap();
        let node_xa = SigningKey::from_bytes(&[10; 32]);
        let node_xb = SigningKey::from_bytes(&[20; 32]);

        let id = DocumentId([9; 16]);
        let keys = DocumentKeys::from_bytes(&[7u8; 64]).unwrap();
        let kind = DocumentKind::ALL[0];
        let sealed = seal(b"{\"a\":1}", &keys, [3; 24], &id, 1, kind).unwrap();
        let submit = tx(
            &node_xa,
            Some(&supervisor),
            Action::SubmitDocument(DocumentSubmission {
                id,
                kind,
                recipients: vec![AdminCode("XB".into())],
                ucr_index: [1; 32],
                commitment: sealed.commitment,
                ciphertext_hash: sealed.ciphertext_hash,
                ciphertext_len: sealed.ciphertext.len() as u32,
            }),
        );
        let (receipts, _, d1) = commit(&store, 1, head.digest, vec![submit]);
        assert_eq!(receipts, vec![Ok(())]);
        vault.put(&id, 1, &keys).unwrap();
        store
            .put_raw(CF_PAYLOADS, &sealed.ciphertext_hash, &sealed.ciphertext)
            .unwrap();

        let erase = |who: &SigningKey| {
            tx(
                &node_xa,
                Some(who),
                Action::EraseDocument {
                    id,
                    reason: "court order".into(),
                    legal_basis: "GDPR art. 17".into(),
                },
            )
        };
        // A plain officer's erase is rejected by the ledger and erases nothing.
        let (receipts, erasures, d2) = commit(&store, 2, d1, vec![erase(&plain)]);
        assert!(receipts[0].is_err());
        assert!(erasures.is_empty());
        assert!(pending(&store).unwrap().is_empty());

        let (receipts, erasures, d3) = commit(&store, 3, d2, vec![erase(&supervisor)]);
        assert_eq!(receipts, vec![Ok(())]);
        assert_eq!(erasures, vec![(id, 1)]);
        let record = crate::ledger::document(&store, &id).unwrap().unwrap();
        assert_eq!(record.status, DocumentStatus::Erased);
        assert_eq!(pending(&store).unwrap().len(), 1);

        assert_eq!(destroy_pending(&store, &vault).unwrap(), 1);
        assert!(vault.get(&id, 1).unwrap().is_none());
        assert!(store.payload(&sealed.ciphertext_hash).unwrap().is_none());

        let status = carnet_contracts::erasure::erasure_status(&Committed(&store), &id)
            .unwrap()
            .unwrap();
        assert_eq!(status.status, DocumentStatus::Erased);
        assert!(status.attestations.is_empty());
        assert_eq!(
            status.pending,
            vec![AdminCode("XA".into()), AdminCode("XB".into())]
        );

        // The attestation this node builds is accepted; XB's by its own node key too.
        let p = &pending(&store).unwrap()[0];
        assert!(p.destroyed);
        assert_eq!(p.height, 3);
        let attest = |node: &SigningKey, code: &str| {
            tx(
                node,
                None,
                Action::AttestDestruction(DestructionAttestation {
                    document: id,
                    administration: AdminCode(code.into()),
                    erasure_height: p.height,
                    versions: p.versions,
                }),
            )
        };
        let (receipts, _, _) = commit(
            &store,
            4,
            d3,
            vec![attest(&node_xa, "XA"), attest(&node_xb, "XB")],
        );
        assert_eq!(receipts, vec![Ok(()), Ok(())]);
        let status = carnet_contracts::erasure::erasure_status(&Committed(&store), &id)
            .unwrap()
            .unwrap();
        assert_eq!(
            status.attestations,
            vec![(AdminCode("XA".into()), 4), (AdminCode("XB".into()), 4)]
        );
        assert!(status.pending.is_empty());
    }
}
