//! Ledger records: what the replicated state holds about administrations, officers and
//! documents. Pure data; the rules that change it live in `execute`.

use crate::types::{AdminCode, DocumentId, DocumentKind, DocumentStatus, Hash32, PublicKey, Role};
use serde::{Deserialize, Serialize};

/// A member customs administration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Administration {
    pub code: AdminCode,
    pub name: String,
    /// ed25519 key of the node: libp2p identity and signer of the node's transactions.
    pub node_key: PublicKey,
    /// ed25519 key the administration's validator votes with (may live in an HSM).
    pub validator_key: PublicKey,
    /// X25519 public key document keys are wrapped to (HPKE).
    #[serde(with = "crate::hex32")]
    pub encryption_key: [u8; 32],
    pub voting_power: u64,
    pub active: bool,
}

/// A customs officer registered by an administration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Officer {
    pub key: PublicKey,
    pub administration: AdminCode,
    pub name: String,
    pub roles: Vec<Role>,
    pub active: bool,
}

/// One version of a document as the ledger holds it: metadata, never plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub id: DocumentId,
    pub version: u32,
    pub kind: DocumentKind,
    pub issuer: AdminCode,
    /// Officer who submitted it (key), for audit.
    pub submitted_by: PublicKey,
    pub recipients: Vec<AdminCode>,
    /// Keyed hash of the UCR (never the UCR in clear).
    #[serde(with = "crate::hex32")]
    pub ucr_index: Hash32,
    /// `blake3::keyed_hash(salt, payload)`.
    #[serde(with = "crate::hex32")]
    pub commitment: Hash32,
    /// blake3 of the ciphertext; the ciphertext itself is stored apart and prunable.
    #[serde(with = "crate::hex32")]
    pub ciphertext_hash: Hash32,
    pub ciphertext_len: u32,
    pub status: DocumentStatus,
    /// Height of the block that made this version final.
    pub height: u64,
    /// Block time (ms since Unix epoch) of that block.
    pub time_ms: u64,
}

/// A read served by a node: recorded on the ledger so reading is auditable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub document: DocumentId,
    pub version: u32,
    pub administration: AdminCode,
    pub officer: PublicKey,
    pub purpose: String,
    pub height: u64,
    pub time_ms: u64,
    /// The answered TFA Article 12 request whose grant allowed the read, if any.
    #[serde(default)]
    pub request: Option<crate::types::RequestId>,
}

/// Founding state of a network (`genesis.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub administrations: Vec<Administration>,
    pub officers: Vec<Officer>,
    /// Agreements active from height 0 (every party accepted by signing the genesis),
    /// e.g. the default agreement among all members of a testnet.
    #[serde(default)]
    pub agreements: Vec<crate::agreement::Agreement>,
    /// Heights per consensus epoch: the validator set follows membership changes at
    /// the first epoch boundary at or after the height they take effect (ADR 0011).
    #[serde(default = "default_epoch_length_blocks")]
    pub epoch_length_blocks: u64,
}

/// Epoch length when genesis names none: with a block every second when idle, a
/// membership change reaches the validator set within about four minutes.
pub const DEFAULT_EPOCH_LENGTH_BLOCKS: u64 = 256;

fn default_epoch_length_blocks() -> u64 {
    DEFAULT_EPOCH_LENGTH_BLOCKS
}
