//! The block body the consensus leader proposes: block time, proposer, transactions,
//! their Merkle root and the proposer's last executed (height, app hash) checkpoint.
//!
//! Must never accept a body that breaks a stated bound (count, bytes, duplicate
//! transaction) or whose root does not commit to exactly its transactions.

use crate::codec;
use crate::tx::{verify_batch, SignedTransaction, MAX_TX_BYTES};
use crate::types::{AdminCode, Hash32};
use crate::ContractError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 10_000;
/// Largest encoded block body.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;

/// Domain tags of the transaction Merkle tree and of the block body hash.
const MERKLE_LEAF_TAG: u8 = 0x00;
const MERKLE_NODE_TAG: u8 = 0x01;
const MERKLE_EMPTY: &[u8] = b"carnet/merkle/empty/v1";
const BLOCK_DOMAIN: &[u8] = b"carnet/block/v1";

/// What a block carries besides the consensus certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockBody {
    /// Block time chosen by the proposer, ms since the Unix epoch.
    pub time_ms: u64,
    pub proposer: AdminCode,
    pub txs: Vec<SignedTransaction>,
    /// [`merkle_root`] of the transaction hashes, in order.
    #[serde(with = "crate::hex32")]
    pub tx_root: Hash32,
    /// (height, app hash) of the last block the proposer executed, so that a replica
    /// whose state diverged notices it at the next block.
    pub checkpoint: Option<(u64, Hash32)>,
}

impl BlockBody {
    /// A body with its transaction root computed.
    pub fn new(
        time_ms: u64,
        proposer: AdminCode,
        txs: Vec<SignedTransaction>,
        checkpoint: Option<(u64, Hash32)>,
    ) -> Self {
        let tx_root = tx_root(&txs);
        Self {
            time_ms,
            proposer,
            txs,
            tx_root,
            checkpoint,
        }
    }

    /// Canonical bytes (bincode).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses at most `MAX_BLOCK_BYTES`, no trailing bytes. Checks nothing else: call
    /// [`BlockBody::validate_structure`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ContractError> {
        codec::decode(bytes, MAX_BLOCK_BYTES).map_err(|e| match e {
            ContractError::Encoding(m) => ContractError::Encoding(format!("block body: {m}")),
            ContractError::BadInput(m) => ContractError::BadInput(format!("block body: {m}")),
            other => other,
        })
    }

    /// `blake3(BLOCK_DOMAIN || encode())`: the digest consensus votes on.
    pub fn hash(&self) -> Hash32 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(BLOCK_DOMAIN);
        hasher.update(&self.encode());
        *hasher.finalize().as_bytes()
    }

    /// Checks everything about the body that does not need state: the bounds, the root,
    /// unique transactions and every signature (one ed25519 batch).
    pub fn validate_structure(&self) -> Result<(), ContractError> {
        self.validate_structure_with(|_, txs| vec![false; txs.len()])
    }

    /// [`BlockBody::validate_structure`], except for signatures the caller has verified
    /// before: `verified(hashes, txs)` answers, per transaction, whether the caller
    /// verified that very transaction (same hash, same signature bytes) already; only the
    /// others are verified here, in one batch. An answer of the wrong length counts as
    /// "none verified".
    pub fn validate_structure_with(
        &self,
        verified: impl FnOnce(&[Hash32], &[SignedTransaction]) -> Vec<bool>,
    ) -> Result<(), ContractError> {
        if self.txs.len() > MAX_BLOCK_TXS {
            return Err(ContractError::BadInput(format!(
                "block has {} transactions, over the limit of {MAX_BLOCK_TXS}",
                self.txs.len()
            )));
        }
        let mut seen = BTreeSet::new();
        let mut hashes = Vec::with_capacity(self.txs.len());
        let mut total_bytes = 0usize;
        for (index, tx) in self.txs.iter().enumerate() {
            let len = tx.encode().len();
            if len > MAX_TX_BYTES {
                return Err(ContractError::BadInput(format!(
                    "transaction {index} is {len} bytes, over the limit of {MAX_TX_BYTES}"
                )));
            }
            total_bytes = total_bytes.saturating_add(len);
            let hash = tx.hash();
            if !seen.insert(hash) {
                return Err(ContractError::BadInput(format!(
                    "transaction {index} ({}) appears twice in the block",
                    hex::encode(hash)
                )));
            }
            hashes.push(hash);
        }
        if total_bytes > MAX_BLOCK_BYTES {
            return Err(ContractError::BadInput(format!(
                "block transactions total {total_bytes} bytes, over the limit of {MAX_BLOCK_BYTES}"
            )));
        }
        let root = merkle_root(&hashes);
        if root != self.tx_root {
            return Err(ContractError::BadInput(format!(
                "tx_root {} does not match the transactions (expected {})",
                hex::encode(self.tx_root),
                hex::encode(root)
            )));
        }
        let mut skip = verified(&hashes, &self.txs);
        if skip.len() != self.txs.len() {
            skip = vec![false; self.txs.len()];
        }
        let (indexes, results) = if skip.iter().any(|s| *s) {
            let (indexes, unverified): (Vec<usize>, Vec<SignedTransaction>) = self
                .txs
                .iter()
                .enumerate()
                .filter(|(index, _)| !skip[*index])
                .map(|(index, tx)| (index, tx.clone()))
                .unzip();
            (indexes, verify_batch(&unverified))
        } else {
            ((0..self.txs.len()).collect(), verify_batch(&self.txs))
        };
        for (index, result) in indexes.into_iter().zip(results) {
            if let Err(e) = result {
                return Err(ContractError::BadSignature(format!(
                    "transaction {index} ({}): {e}",
                    hex::encode(hashes.get(index).copied().unwrap_or_default())
                )));
            }
        }
        Ok(())
    }
}

/// [`merkle_root`] of the hashes of `txs`.
pub fn tx_root(txs: &[SignedTransaction]) -> Hash32 {
    let hashes: Vec<Hash32> = txs.iter().map(SignedTransaction::hash).collect();
    merkle_root(&hashes)
}

/// Binary blake3 Merkle tree: leaves are `blake3(0x00 || leaf)`, inner nodes
/// `blake3(0x01 || left || right)`; an odd node at the end of a level is promoted
/// unchanged (never duplicated, so `[a, b, c]` and `[a, b, c, c]` differ). The empty
/// tree is `blake3("carnet/merkle/empty/v1")`.
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return *blake3::hash(MERKLE_EMPTY).as_bytes();
    }
    let mut level: Vec<Hash32> = leaves
        .iter()
        .map(|leaf| {
            let mut h = blake3::Hasher::new();
            h.update(&[MERKLE_LEAF_TAG]);
            h.update(leaf);
            *h.finalize().as_bytes()
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[MERKLE_NODE_TAG]);
                    h.update(left);
                    h.update(right);
                    *h.finalize().as_bytes()
                }
                [single] => *single,
                _ => [0u8; 32],
            })
            .collect();
    }
    level.first().copied().unwrap_or_default()
}
