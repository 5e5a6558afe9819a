//! Transactions: `SignedTransaction` = an `Action` signed by a node key over a
//! domain-separated canonical bincode encoding, with a nonce and an expiry against replay.
//!
//! Must never: accept a signature over anything but `signing_bytes()`, or hash a
//! non-canonical encoding.

use crate::types::{AdminCode, DocumentId, DocumentKind, Hash32, PublicKey};
use serde::{Deserialize, Serialize};

/// Largest encoded transaction accepted anywhere (mempool, block, API).
pub const MAX_TX_BYTES: usize = 16 * 1024;
/// Largest ciphertext accepted for one document version.
pub const MAX_CIPHERTEXT_BYTES: usize = 1024 * 1024;
/// Longest allowed time between a block's time and a transaction's expiry.
pub const MAX_TX_TTL_MS: u64 = 10 * 60 * 1000;
/// Domain-separation tag for transaction signatures and hashes.
pub const TX_DOMAIN: &[u8] = b"carnet/tx/v1";

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A new document (version 1). The ciphertext travels beside the transaction.
    SubmitDocument(DocumentSubmission),
    /// A node served a decryption to one of its officers.
    RecordAccess {
        document: DocumentId,
        version: u32,
        officer: PublicKey,
        purpose: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSubmission {
    pub id: DocumentId,
    pub kind: DocumentKind,
    pub recipients: Vec<AdminCode>,
    pub ucr_index: Hash32,
    pub commitment: Hash32,
    pub ciphertext_hash: Hash32,
    pub ciphertext_len: u32,
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: String,
    /// Node key of the administration that submits it.
    pub signer: PublicKey,
    /// Officer on whose behalf the node acts (authenticated by the node's API).
    pub officer: Option<PublicKey>,
    /// Makes otherwise identical transactions distinct. Replay protection is by
    /// transaction hash: a hash already executed (kept until its expiry) is rejected.
    pub nonce: u64,
    /// Block time after which the transaction may no longer be included.
    pub expires_at_ms: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: Vec<u8>,
}
