//! The node's view of the replicated ledger: contract execution over the RocksDB
//! `state` column family, and the read-only queries the API and key delivery make.
//!
//! Must never write the state except through the overlay whose changes are committed in
//! the block's single write batch; queries read committed state only.

use std::collections::BTreeMap;

use carnet_contracts::block::BlockBody;
use carnet_contracts::execute::{self, query, BlockContext, ExecError, StateStore, StoreError};
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
    fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.scan(prefix, limit)
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
    fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.0
            .scan_prefix(CF_STATE, prefix, limit)
            .map_err(|e| StoreError::Failed(e.to_string()))
    }
}

/// Result of executing one block: state changes to commit, receipts and app hash.
#[derive(Debug)]
pub struct Executed {
    pub changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Per transaction: Ok, or the rule that rejected it.
    pub receipts: Vec<Result<(), String>>,
    pub app_hash: Hash32,
    /// Documents erased by this block: (document, versions).
    pub erasures: Vec<(DocumentId, u32)>,
}

/// Applies genesis to an empty state; returns the changes and the app hash of height 0.
pub fn genesis(store: &Store, genesis: &Genesis) -> Result<Executed, ExecError> {
    let mut overlay = StateOverlay::new(store);
    let app_hash = execute::apply_genesis(&mut overlay, genesis)?;
    Ok(Executed {
        changes: overlay.changes,
        receipts: Vec::new(),
        app_hash,
        erasures: Vec::new(),
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
    Ok(Executed {
        changes: overlay.changes,
        receipts: outcome
            .receipts
            .into_iter()
            .map(|r| r.outcome.map(|_| ()).map_err(|e| e.to_string()))
            .collect(),
        app_hash: outcome.app_hash,
        erasures: outcome.erasures,
    })
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
