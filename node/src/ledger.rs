//! The node's view of the replicated ledger: contract execution over the RocksDB
//! `state` column family, the key deliveries a finalized block asks of this node, and
//! the read-only queries the API and key delivery make.
//!
//! Must never write the state except through the overlay whose changes are committed in
//! the block's single write batch; queries read committed state only.

use std::collections::BTreeMap;

use carnet_contracts::block::BlockBody;
use carnet_contracts::execute::{
    self, query, state_keys, BlockContext, ExecError, StateStore, StoreError, TxEvent,
};
use carnet_contracts::request::{AccessGrant, RequestAnswer, RequestStatus};
use carnet_contracts::{
    AdminCode, Administration, DocumentId, DocumentRecord, Genesis, Hash32, Officer, PublicKey,
};

use crate::storage::{StateOverlay, Store, CF_STATE};

impl StateStore for StateOverlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(key)
            .map_err(|e| StoreError::Failed(e.to_string()))
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.scan_from(prefix, start, limit)
            .map_err(|e| StoreError::Failed(e.to_string()))
    }
}

/// Committed state, read-only (writes are ignored: nothing may write through it).
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a>(pub &'a Store);

impl StateStore for Committed<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0
            .get_raw(CF_STATE, key)
            .map_err(|e| StoreError::Failed(e.to_string()))
    }
    fn put(&mut self, _key: Vec<u8>, _value: Vec<u8>) {}
    fn delete(&mut self, _key: Vec<u8>) {}
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.0
            .scan_prefix_from(CF_STATE, prefix, start, limit)
            .map_err(|e| StoreError::Failed(e.to_string()))
    }
}

/// Result of executing one block: state changes to commit, receipts and app hash.
#[derive(Debug)]
pub struct Executed {
    pub changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Per transaction: Ok, or the rule that rejected it.
    pub receipts: Vec<Result<(), String>>,
    /// Per transaction: what it did when accepted (`None` when rejected).
    pub events: Vec<Option<TxEvent>>,
    pub app_hash: Hash32,
    /// Documents erased by this block: (document, versions).
    pub erasures: Vec<(DocumentId, u32)>,
    /// Members admitted at the start of this block.
    pub members_added: Vec<AdminCode>,
    /// Members removed (made inactive) at the start of this block.
    pub members_removed: Vec<AdminCode>,
}

/// Applies genesis to an empty state; returns the changes and the app hash of height 0.
pub fn genesis(store: &Store, genesis: &Genesis) -> Result<Executed, ExecError> {
    let mut overlay = StateOverlay::new(store);
    let app_hash = execute::apply_genesis(&mut overlay, genesis)?;
    Ok(Executed {
        changes: overlay.changes,
        receipts: Vec::new(),
        events: Vec::new(),
        app_hash,
        erasures: Vec::new(),
        members_added: Vec::new(),
        members_removed: Vec::new(),
    })
}

/// Executes a finalized block body over the committed state.
pub fn execute(store: &Store, height: u64, body: &BlockBody) -> Result<Executed, ExecError> {
    let mut overlay = StateOverlay::new(store);
    let ctx = BlockContext {
        height,
        time_ms: body.time_ms,
        proposer: body.proposer.clone(),
    };
    let outcome = execute::execute_block(&mut overlay, &ctx, &body.txs)?;
    let (receipts, events) = outcome
        .receipts
        .into_iter()
        .map(|r| match r.outcome {
            Ok(event) => (Ok(()), Some(event)),
            Err(e) => (Err(e.to_string()), None),
        })
        .unzip();
    Ok(Executed {
        changes: overlay.changes,
        receipts,
        events,
        app_hash: outcome.app_hash,
        erasures: outcome.erasures,
        members_added: outcome.members_added,
        members_removed: outcome.members_removed,
    })
}

/// One key delivery this node owes: the keys of `version` of `document`, to the node
/// of `recipient`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDelivery {
    pub document: DocumentId,
    pub version: u32,
    pub recipient: AdminCode,
}

/// The key deliveries an executed block asks of the node whose node key is
/// `own_node_key`: for every accepted transaction that node signed,
/// - a new document or a new version (`DocumentFinal`, `DocumentAmended`): that
///   version's keys to each of its recipients (an amendment carries the recipients
///   over, so the recipients of the old version receive the new one);
/// - a `provide` answer to a TFA request: the keys of the granted (latest) version of
///   each provided document to the requester.
pub fn key_deliveries(
    body: &BlockBody,
    executed: &Executed,
    own_node_key: &[u8; 32],
) -> Result<Vec<KeyDelivery>, ExecError> {
    let mut out = Vec::new();
    for (tx, event) in body.txs.iter().zip(&executed.events) {
        if tx.tx.signer.0 != *own_node_key {
            continue;
        }
        match event {
            Some(TxEvent::DocumentFinal(record))
            | Some(TxEvent::DocumentAmended { record, .. }) => {
                out.extend(record.recipients.iter().map(|r| KeyDelivery {
                    document: record.id,
                    version: record.version,
                    recipient: r.clone(),
                }));
            }
            Some(TxEvent::RequestAnswered(request))
                if request.status == RequestStatus::Provided =>
            {
                let Some(RequestAnswer::Provide { documents }) =
                    request.answers.last().map(|a| &a.answer)
                else {
                    continue;
                };
                for document in documents {
                    let key = state_keys::grant(document, &request.requester, &request.id);
                    let grant: AccessGrant = match executed.changes.get(&key) {
                        Some(Some(bytes)) => carnet_contracts::codec::decode(bytes, 64 * 1024)
                            .map_err(|e| {
                                ExecError::Corrupt(format!("grant of document {document}: {e}"))
                            })?,
                        _ => {
                            return Err(ExecError::Corrupt(format!(
                            "provide answer to request {} wrote no grant for document {document}",
                            request.id
                        )))
                        }
                    };
                    out.push(KeyDelivery {
                        document: *document,
                        version: grant.up_to_version,
                        recipient: request.requester.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

pub fn app_hash(store: &Store) -> Result<Hash32, ExecError> {
    query::app_hash(&Committed(store))
}

pub fn administration(
    store: &Store,
    code: &AdminCode,
) -> Result<Option<Administration>, ExecError> {
    query::administration(&Committed(store), code)
}

/// Every administration on the committed ledger, active or not.
pub fn administrations(store: &Store) -> Result<Vec<Administration>, ExecError> {
    query::administrations(&Committed(store))
}

pub fn officer(store: &Store, key: &PublicKey) -> Result<Option<Officer>, ExecError> {
    query::officer(&Committed(store), key)
}

pub fn document(store: &Store, id: &DocumentId) -> Result<Option<DocumentRecord>, ExecError> {
    query::document(&Committed(store), id)
}

pub fn document_version(
    store: &Store,
    id: &DocumentId,
    version: u32,
) -> Result<Option<DocumentRecord>, ExecError> {
    query::document_version(&Committed(store), id, version)
}

pub fn documents_by_ucr(
    store: &Store,
    index: &Hash32,
    limit: usize,
) -> Result<Vec<DocumentRecord>, ExecError> {
    query::documents_by_ucr(&Committed(store), index, limit)
}

pub fn access_grants(
    store: &Store,
    document: &DocumentId,
    admin: &AdminCode,
) -> Result<Vec<AccessGrant>, ExecError> {
    query::access_grants(&Committed(store), document, admin)
}

/// Every version of a document, oldest first; empty when unknown.
pub fn document_history(store: &Store, id: &DocumentId) -> Result<Vec<DocumentRecord>, ExecError> {
    query::document_history(&Committed(store), id)
}
