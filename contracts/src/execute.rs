//! Deterministic execution of finalized blocks over a key-value state: the ledger rules
//! for submitting documents and recording access, replay protection, and the app hash
//! that chains every state change.
//!
//! Must never read a clock (block time comes in [`BlockContext`]), draw randomness,
//! iterate a hash map, or leave a partial write: a rejected transaction writes nothing,
//! and a store failure aborts the whole block ([`ExecError`]); the node then stops.
//!
//! # State layout
//!
//! | key | value |
//! |---|---|
//! | `meta/chain_id` | chain id (UTF-8) |
//! | `meta/app_hash` | 32 bytes |
//! | `meta/height` | last executed height, u64 big-endian |
//! | `meta/pruned_before_ms` | replay entries expiring before this were pruned, u64 BE |
//! | `member/code/<XA>` | [`Administration`] (bincode) |
//! | `member/node/<node key 32>` | administration code |
//! | `officer/<key 32>` | [`Officer`] |
//! | `doc/<id 16>/<version u32 BE>` | [`DocumentRecord`] |
//! | `ucr/<index 32><id 16><version u32 BE>` | empty |
//! | `seen/<expiry u64 BE><tx hash 32>` | empty (replay protection; the expiry is part of the signed transaction, so a replay looks up the same key) |
//! | `access/<id 16><height u64 BE><position u32 BE>` | [`AccessRecord`] |
//! | `accessby/<officer 32><height u64 BE><position u32 BE>` | document id (16) |
//! | `agreement/<id 16>` | [`crate::agreement::AgreementRecord`] |
//! | `docmeta/<id 16>` | [`crate::lifecycle::DocumentMeta`] (agreement, expiry, cancellation) |
//! | `expiry/<expires_at_ms u64 BE><id 16>` | empty (retention index) |
//! | `erasure/<id 16>` | [`crate::erasure::ErasureRecord`] |
//! | `attest/<id 16><code 2>` | [`crate::erasure::AttestationRecord`] |
//! | `request/<id 16>` | [`crate::request::InfoRequest`] |
//! | `reqby/<code 2><id 16>` | empty (requests by requester and requested) |
//! | `grant/<doc id 16><code 2><request id 16>` | [`crate::request::AccessGrant`] |
//! | `proposal/<id 16>` | [`crate::governance::Proposal`] |
//! | `due/<height u64 BE><proposal id 16>` | empty (passed proposals waiting for their height) |
//! | `equivocation/<accused code 2><view u64 BE>` | [`crate::evidence::EquivocationRecord`] |
//!
//! # Block order
//!
//! Before its transactions, every block: prunes expired replay entries, applies the
//! membership changes due at its height ([`crate::governance`]), and erases the documents
//! whose retention expired before its time ([`crate::erasure`]), each bounded per block.
//!
//! # App hash
//!
//! `app_hash(h) = blake3("carnet/app-hash/v1" || app_hash(h-1) || h (u64 LE) ||
//! for each write in order: key_len (u64 LE) || key || (0x01 || value_len (u64 LE) ||
//! value | 0x00 for a delete))`. Genesis is height 0 with a zero previous hash. The
//! `meta/app_hash` and `meta/height` entries themselves are not part of the hashed writes.

use crate::codec;
use crate::model::{AccessRecord, Administration, DocumentRecord, Genesis, Officer};
use crate::tx::{Action, DocumentSubmission, SignedTransaction, Transaction};
use crate::tx::{MAX_CIPHERTEXT_BYTES, MAX_TX_TTL_MS};
use crate::types::{AdminCode, DocumentId, DocumentStatus, Hash32, PublicKey, Role};
use crate::ContractError;
use crate::{agreement, erasure, evidence, governance, lifecycle, officers, request};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

/// Most recipients of one document.
pub const MAX_RECIPIENTS: usize = 16;
/// Most administrations in a network.
pub const MAX_ADMINISTRATIONS: usize = 256;
/// Most officers registered at genesis.
pub const MAX_GENESIS_OFFICERS: usize = 100_000;
/// Longest access purpose, bytes.
pub const MAX_PURPOSE_BYTES: usize = 1024;
/// Most versions of one document.
pub const MAX_DOCUMENT_VERSIONS: usize = 1024;
/// Smallest possible ciphertext: XChaCha20 nonce (24) and Poly1305 tag (16).
pub const MIN_CIPHERTEXT_BYTES: u32 = 40;
/// Most expired replay entries pruned in one block; the rest go in later blocks.
pub const MAX_PRUNE_PER_BLOCK: usize = 4 * crate::block::MAX_BLOCK_TXS;
/// Largest record value decoded from the state.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
const APP_HASH_DOMAIN: &[u8] = b"carnet/app-hash/v1";

/// One state entry: (key, value).
pub type Entry = (Vec<u8>, Vec<u8>);

/// The replicated key-value state, as the node's storage provides it.
///
/// Promises the implementation makes: `scan_prefix` returns entries in ascending key
/// order, at most `limit` of them. Execution buffers its own writes and calls `put` /
/// `delete` only once the block is executed, in the order that the app hash covers, so the
/// store may collect them in one atomic batch. An `Err` from `get` or `scan_prefix` means
/// the store is unusable: execution stops and the node must not carry on.
pub trait StateStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);
    /// Entries whose key starts with `prefix` and is at least `start`, in key order, at
    /// most `limit`. A store should seek to `start` (replay pruning starts at its
    /// watermark so that it never walks the deleted entries before it).
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.scan_prefix_from(prefix, prefix, limit)
    }
}

/// A failure of the state store. Execution of the block is aborted; the node stops.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("state store failure: {0}")]
    Failed(String),
}

/// Why a block (not a transaction) could not be executed. Every variant is fatal for
/// the node: its state cannot be trusted to advance.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode: the store is corrupted.
    #[error("corrupted state: {0}")]
    Corrupt(String),
    /// The genesis file breaks a rule, or the state already holds a genesis.
    #[error("genesis: {0}")]
    Genesis(String),
    /// The block is not the next one after the last executed height.
    #[error("block height {got} does not follow the last executed height {last}")]
    OutOfOrder { last: u64, got: u64 },
}

/// An in-memory [`StateStore`] for tests, simulations and tools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.entries
    }

    /// Canonical bytes of the whole state (for comparing replicas).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(&self.entries)
    }
}

impl StateStore for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.get(key).cloned())
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.entries.remove(&key);
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .entries
            .range(start.max(prefix).to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// What execution knows about the block besides its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockContext {
    pub height: u64,
    /// Block time from the block body, ms since the Unix epoch.
    pub time_ms: u64,
    pub proposer: AdminCode,
}

/// The result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub tx_hash: Hash32,
    /// `Err` names the rule that rejected the transaction; it then wrote nothing.
    pub outcome: Result<TxEvent, ContractError>,
}

/// What an accepted transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxEvent {
    DocumentFinal(DocumentRecord),
    AccessRecorded(AccessRecord),
    AgreementProposed(agreement::AgreementRecord),
    AgreementAccepted(agreement::AgreementRecord),
    /// A new version; `previous` is the prior version, now `amended`.
    DocumentAmended {
        previous: DocumentRecord,
        record: DocumentRecord,
    },
    DocumentCancelled(DocumentRecord),
    RequestCreated(request::InfoRequest),
    RequestAnswered(request::InfoRequest),
    BreachReported(request::InfoRequest),
    OfficerAdded(Officer),
    OfficerRevoked(Officer),
    ProposalCreated(governance::Proposal),
    VoteCast(governance::Proposal),
    /// Every version is erased: nodes destroy keys and prune ciphertexts, then attest.
    DocumentErased(erasure::ErasureRecord),
    DestructionAttested(erasure::AttestationRecord),
    DeliveryAcknowledged(lifecycle::DeliveryAck),
    /// A validator's equivocation, reported by a member's node.
    EquivocationRecorded(evidence::EquivocationRecord),
}

/// The result of a block: one receipt per transaction, in order, and the new app hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutcome {
    pub receipts: Vec<Receipt>,
    pub app_hash: Hash32,
    /// Documents erased in this block (by transaction or by retention expiry), with the
    /// number of versions: every node must destroy their keys and salts, prune their
    /// ciphertexts, and submit an `AttestDestruction`.
    pub erasures: Vec<(DocumentId, u32)>,
    /// Members admitted at the start of this block (passed proposals that fell due).
    pub members_added: Vec<AdminCode>,
    /// Members removed (made inactive) at the start of this block.
    pub members_removed: Vec<AdminCode>,
    /// The active members changed: the validator set for the blocks after this one is
    /// [`query::validator_set`].
    pub validator_set_changed: bool,
}

/// State keys.
pub mod state_keys {
    use crate::types::{
        AdminCode, AgreementId, DocumentId, Hash32, ProposalId, PublicKey, RequestId,
    };

    pub const CHAIN_ID: &[u8] = b"meta/chain_id";
    pub const APP_HASH: &[u8] = b"meta/app_hash";
    pub const HEIGHT: &[u8] = b"meta/height";
    pub const PRUNED_BEFORE_MS: &[u8] = b"meta/pruned_before_ms";
    pub const MEMBER_CODE: &[u8] = b"member/code/";
    pub const MEMBER_NODE: &[u8] = b"member/node/";
    pub const OFFICER: &[u8] = b"officer/";
    pub const DOC: &[u8] = b"doc/";
    pub const UCR: &[u8] = b"ucr/";
    /// Replay entries, in expiry order (ADR 0006).
    pub const SEEN: &[u8] = b"seen/";
    pub const ACCESS: &[u8] = b"access/";
    pub const ACCESS_BY_OFFICER: &[u8] = b"accessby/";
    pub const AGREEMENT: &[u8] = b"agreement/";
    pub const DOC_META: &[u8] = b"docmeta/";
    pub const EXPIRY: &[u8] = b"expiry/";
    pub const ERASURE: &[u8] = b"erasure/";
    pub const ATTEST: &[u8] = b"attest/";
    pub const REQUEST: &[u8] = b"request/";
    pub const REQUEST_BY: &[u8] = b"reqby/";
    pub const GRANT: &[u8] = b"grant/";
    pub const PROPOSAL: &[u8] = b"proposal/";
    pub const DUE: &[u8] = b"due/";
    pub const DELIVERY_ACK: &[u8] = b"ack/";
    pub const EQUIVOCATION: &[u8] = b"equivocation/";

    fn join(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    pub fn member(code: &AdminCode) -> Vec<u8> {
        join(&[MEMBER_CODE, code.as_str().as_bytes()])
    }
    pub fn member_by_node(key: &PublicKey) -> Vec<u8> {
        join(&[MEMBER_NODE, &key.0])
    }
    pub fn officer(key: &PublicKey) -> Vec<u8> {
        join(&[OFFICER, &key.0])
    }
    pub fn document_prefix(id: &DocumentId) -> Vec<u8> {
        join(&[DOC, &id.0, b"/"])
    }
    pub fn document(id: &DocumentId, version: u32) -> Vec<u8> {
        join(&[&document_prefix(id), &version.to_be_bytes()])
    }
    pub fn ucr_prefix(index: &Hash32) -> Vec<u8> {
        join(&[UCR, index])
    }
    pub fn ucr(index: &Hash32, id: &DocumentId, version: u32) -> Vec<u8> {
        join(&[UCR, index, &id.0, &version.to_be_bytes()])
    }
    /// One entry per executed transaction: its expiry (signed, part of its hash) and
    /// its hash. A replay carries the same expiry, hence looks up the same key.
    pub fn seen(expires_at_ms: u64, hash: &Hash32) -> Vec<u8> {
        join(&[SEEN, &expires_at_ms.to_be_bytes(), hash])
    }
    pub fn access_prefix(id: &DocumentId) -> Vec<u8> {
        join(&[ACCESS, &id.0])
    }
    pub fn access(id: &DocumentId, height: u64, position: u32) -> Vec<u8> {
        join(&[
            ACCESS,
            &id.0,
            &height.to_be_bytes(),
            &position.to_be_bytes(),
        ])
    }
    pub fn access_by_officer_prefix(officer: &PublicKey) -> Vec<u8> {
        join(&[ACCESS_BY_OFFICER, &officer.0])
    }
    pub fn access_by_officer(officer: &PublicKey, height: u64, position: u32) -> Vec<u8> {
        join(&[
            ACCESS_BY_OFFICER,
            &officer.0,
            &height.to_be_bytes(),
            &position.to_be_bytes(),
        ])
    }
    pub fn agreement(id: &AgreementId) -> Vec<u8> {
        join(&[AGREEMENT, &id.0])
    }
    pub fn doc_meta(id: &DocumentId) -> Vec<u8> {
        join(&[DOC_META, &id.0])
    }
    pub fn expiry(expires_at_ms: u64, id: &DocumentId) -> Vec<u8> {
        join(&[EXPIRY, &expires_at_ms.to_be_bytes(), &id.0])
    }
    pub fn erasure(id: &DocumentId) -> Vec<u8> {
        join(&[ERASURE, &id.0])
    }
    pub fn attest_prefix(id: &DocumentId) -> Vec<u8> {
        join(&[ATTEST, &id.0])
    }
    pub fn attest(id: &DocumentId, admin: &AdminCode) -> Vec<u8> {
        join(&[ATTEST, &id.0, admin.as_str().as_bytes()])
    }
    pub fn request(id: &RequestId) -> Vec<u8> {
        join(&[REQUEST, &id.0])
    }
    pub fn request_by_prefix(admin: &AdminCode) -> Vec<u8> {
        join(&[REQUEST_BY, admin.as_str().as_bytes()])
    }
    pub fn request_by(admin: &AdminCode, id: &RequestId) -> Vec<u8> {
        join(&[REQUEST_BY, admin.as_str().as_bytes(), &id.0])
    }
    pub fn grant_prefix(doc: &DocumentId, admin: &AdminCode) -> Vec<u8> {
        join(&[GRANT, &doc.0, admin.as_str().as_bytes()])
    }
    pub fn grant(doc: &DocumentId, admin: &AdminCode, request: &RequestId) -> Vec<u8> {
        join(&[GRANT, &doc.0, admin.as_str().as_bytes(), &request.0])
    }
    pub fn delivery_ack_prefix(doc: &DocumentId) -> Vec<u8> {
        join(&[DELIVERY_ACK, &doc.0])
    }
    pub fn delivery_ack(doc: &DocumentId, version: u32, admin: &AdminCode) -> Vec<u8> {
        join(&[
            DELIVERY_ACK,
            &doc.0,
            &version.to_be_bytes(),
            admin.as_str().as_bytes(),
        ])
    }
    pub fn proposal(id: &ProposalId) -> Vec<u8> {
        join(&[PROPOSAL, &id.0])
    }
    pub fn due(height: u64, id: &ProposalId) -> Vec<u8> {
        join(&[DUE, &height.to_be_bytes(), &id.0])
    }
    pub fn equivocation_prefix(accused: &AdminCode) -> Vec<u8> {
        join(&[EQUIVOCATION, accused.as_str().as_bytes()])
    }
    pub fn equivocation(accused: &AdminCode, view: u64) -> Vec<u8> {
        join(&[
            EQUIVOCATION,
            accused.as_str().as_bytes(),
            &view.to_be_bytes(),
        ])
    }
}

pub(crate) type Write = (Vec<u8>, Option<Vec<u8>>);

/// The block's pending writes over the committed state. Reads see earlier writes of the
/// same block; nothing reaches the store before the block is done.
pub(crate) struct BlockView<'a, S: StateStore> {
    base: &'a S,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    journal: Vec<Write>,
    /// Records decoded during this block (members, officers, agreements), so that the
    /// many documents of a block that name the same agreement, issuer and recipients
    /// read and decode them once. An entry is dropped when the block writes its key;
    /// at most [`MAX_DECODED_PER_BLOCK`] entries (then the cache starts over).
    decoded: std::cell::RefCell<HashMap<Vec<u8>, Rc<dyn Any>>>,
}

/// Bound of [`BlockView`]'s cache of decoded records.
const MAX_DECODED_PER_BLOCK: usize = 1024;

impl<'a, S: StateStore> BlockView<'a, S> {
    fn new(base: &'a S) -> Self {
        Self {
            base,
            pending: BTreeMap::new(),
            journal: Vec::new(),
            decoded: std::cell::RefCell::new(HashMap::new()),
        }
    }

    /// Reads and decodes a record through the block's cache of decoded records: the
    /// same value [`read_record`] gives, decoded once per block while its key is not
    /// written.
    pub(crate) fn cached<T: serde::de::DeserializeOwned + 'static>(
        &self,
        key: &[u8],
    ) -> Result<Option<Rc<T>>, ExecError> {
        if let Some(hit) = self.decoded.borrow().get(key) {
            if let Ok(value) = hit.clone().downcast::<T>() {
                return Ok(Some(value));
            }
        }
        let Some(value) = read_record::<T>(self, key)? else {
            return Ok(None);
        };
        let value = Rc::new(value);
        let mut decoded = self.decoded.borrow_mut();
        if decoded.len() >= MAX_DECODED_PER_BLOCK {
            decoded.clear();
        }
        decoded.insert(key.to_vec(), value.clone() as Rc<dyn Any>);
        Ok(Some(value))
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    /// The first `limit` entries under `prefix`, committed state merged with this block's
    /// pending writes, in key order.
    pub(crate) fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let pending: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .pending
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .collect();
        let deleted = pending.iter().filter(|(_, v)| v.is_none()).count();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .base
            .scan_prefix(prefix, limit.saturating_add(deleted))?
            .into_iter()
            .collect();
        for (key, value) in pending {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    pub(crate) fn apply(&mut self, writes: Vec<Write>) {
        let decoded = self.decoded.get_mut();
        for (key, value) in writes {
            decoded.remove(&key);
            self.pending.insert(key.clone(), value.clone());
            self.journal.push((key, value));
        }
    }
}

/// Reads used by both the rules and the queries.
pub(crate) trait Reader {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<S: StateStore> Reader for BlockView<'_, S> {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(key)
    }
}

pub(crate) struct Committed<'a, S: StateStore>(pub(crate) &'a S);

impl<S: StateStore> Reader for Committed<'_, S> {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
}

/// Decodes a state value; a value that does not decode is corruption.
pub(crate) fn decode_state<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ExecError> {
    decode_record(key, bytes)
}

pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ExecError> {
    codec::decode(bytes, MAX_RECORD_BYTES).map_err(|e| {
        ExecError::Corrupt(format!(
            "value of key {} does not decode: {e}",
            show_key(key)
        ))
    })
}

pub(crate) fn read_record<T: serde::de::DeserializeOwned>(
    reader: &impl Reader,
    key: &[u8],
) -> Result<Option<T>, ExecError> {
    match reader.read(key)? {
        Some(bytes) => decode_record(key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Reads and decodes a record that must be there: a missing one is corruption, which
/// `missing` describes.
pub(crate) fn read_required<T: serde::de::DeserializeOwned>(
    reader: &impl Reader,
    key: &[u8],
    missing: impl FnOnce() -> String,
) -> Result<T, ExecError> {
    read_record(reader, key)?.ok_or_else(|| ExecError::Corrupt(missing()))
}

pub(crate) fn read_u64(reader: &impl Reader, key: &[u8]) -> Result<Option<u64>, ExecError> {
    match reader.read(key)? {
        Some(bytes) => {
            let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                ExecError::Corrupt(format!(
                    "{} is {} bytes, expected 8",
                    show_key(key),
                    bytes.len()
                ))
            })?;
            Ok(Some(u64::from_be_bytes(arr)))
        }
        None => Ok(None),
    }
}

pub(crate) fn show_key(key: &[u8]) -> String {
    // Namespaces are ASCII; the rest is shown as hex.
    let split = key.iter().rposition(|b| *b == b'/').map_or(0, |p| p + 1);
    let (namespace, rest) = key.split_at(split);
    format!(
        "{}{}",
        String::from_utf8_lossy(namespace),
        hex::encode(rest)
    )
}

fn app_hash_step(prev: &Hash32, height: u64, writes: &[Write]) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(APP_HASH_DOMAIN);
    hasher.update(prev);
    hasher.update(&height.to_le_bytes());
    for (key, value) in writes {
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key);
        match value {
            Some(value) => {
                hasher.update(&[1]);
                hasher.update(&(value.len() as u64).to_le_bytes());
                hasher.update(value);
            }
            None => {
                hasher.update(&[0]);
            }
        }
    }
    *hasher.finalize().as_bytes()
}

fn flush<S: StateStore>(state: &mut S, journal: Vec<Write>, app_hash: &Hash32, height: u64) {
    for (key, value) in journal {
        match value {
            Some(value) => state.put(key, value),
            None => state.delete(key),
        }
    }
    state.put(state_keys::APP_HASH.to_vec(), app_hash.to_vec());
    state.put(state_keys::HEIGHT.to_vec(), height.to_be_bytes().to_vec());
}

fn genesis_error(message: String) -> ExecError {
    ExecError::Genesis(message)
}

/// Checks a genesis file and writes its administrations and officers into an empty
/// state. Returns the app hash of height 0.
pub fn apply_genesis<S: StateStore>(state: &mut S, genesis: &Genesis) -> Result<Hash32, ExecError> {
    if state.get(state_keys::CHAIN_ID)?.is_some() {
        return Err(genesis_error(
            "the state already holds a genesis; apply it only to an empty store".into(),
        ));
    }
    if genesis.chain_id.trim().is_empty() || genesis.chain_id.len() > 64 {
        return Err(genesis_error("chain_id must be 1 to 64 bytes".into()));
    }
    if genesis.administrations.is_empty() || genesis.administrations.len() > MAX_ADMINISTRATIONS {
        return Err(genesis_error(format!(
            "{} administrations; a network has 1 to {MAX_ADMINISTRATIONS}",
            genesis.administrations.len()
        )));
    }
    if genesis.officers.len() > MAX_GENESIS_OFFICERS {
        return Err(genesis_error(format!(
            "{} officers, over the limit of {MAX_GENESIS_OFFICERS}",
            genesis.officers.len()
        )));
    }
    let mut codes = BTreeSet::new();
    let mut node_keys = BTreeSet::new();
    let mut writes: Vec<Write> = vec![(
        state_keys::CHAIN_ID.to_vec(),
        Some(genesis.chain_id.as_bytes().to_vec()),
    )];
    for admin in &genesis.administrations {
        AdminCode::parse(admin.code.as_str())
            .map_err(|e| genesis_error(format!("administration: {e}")))?;
        if !codes.insert(admin.code.clone()) {
            return Err(genesis_error(format!(
                "administration {} appears twice",
                admin.code
            )));
        }
        if !node_keys.insert(admin.node_key) {
            return Err(genesis_error(format!(
                "node key {} is used by two administrations",
                admin.node_key
            )));
        }
        writes.push((state_keys::member(&admin.code), Some(codec::encode(admin))));
        writes.push((
            state_keys::member_by_node(&admin.node_key),
            Some(admin.code.as_str().as_bytes().to_vec()),
        ));
    }
    let mut officer_keys = BTreeSet::new();
    for officer in &genesis.officers {
        if !codes.contains(&officer.administration) {
            return Err(genesis_error(format!(
                "officer {} belongs to {}, which is not an administration of this genesis",
                officer.key, officer.administration
            )));
        }
        if !officer_keys.insert(officer.key) {
            return Err(genesis_error(format!(
                "officer {} appears twice",
                officer.key
            )));
        }
        writes.push((
            state_keys::officer(&officer.key),
            Some(codec::encode(officer)),
        ));
    }
    if genesis.agreements.len() > agreement::MAX_AGREEMENTS {
        return Err(genesis_error(format!(
            "{} agreements, over the limit of {}",
            genesis.agreements.len(),
            agreement::MAX_AGREEMENTS
        )));
    }
    let mut agreement_ids = BTreeSet::new();
    for terms in &genesis.agreements {
        terms
            .validate()
            .map_err(|e| genesis_error(format!("agreement {}: {e}", terms.id)))?;
        if !agreement_ids.insert(terms.id) {
            return Err(genesis_error(format!(
                "agreement {} appears twice",
                terms.id
            )));
        }
        let mut accepted = terms.parties.clone();
        accepted.sort();
        for party in &accepted {
            let active = genesis
                .administrations
                .iter()
                .any(|a| &a.code == party && a.active);
            if !active {
                return Err(genesis_error(format!(
                    "agreement {}: party {party} is not an active administration of this genesis",
                    terms.id
                )));
            }
        }
        let record = agreement::AgreementRecord {
            agreement: terms.id,
            terms: terms.clone(),
            proposed_by: terms.parties[0].clone(),
            accepted,
            status: agreement::AgreementStatus::Active,
            height: 0,
            activated_at: Some(0),
        };
        writes.push((
            state_keys::agreement(&terms.id),
            Some(agreement::encode_record(&record)),
        ));
    }
    // The BTree order of keys makes the hashed write order independent of file order.
    let ordered: BTreeMap<Vec<u8>, Option<Vec<u8>>> = writes.into_iter().collect();
    let writes: Vec<Write> = ordered.into_iter().collect();
    let app_hash = app_hash_step(&[0u8; 32], 0, &writes);
    flush(state, writes, &app_hash, 0);
    Ok(app_hash)
}

/// A rule rejected the transaction, or the store failed while checking it.
pub(crate) enum TxFailure {
    Rejected(ContractError),
    Fatal(ExecError),
}

impl From<ContractError> for TxFailure {
    fn from(e: ContractError) -> Self {
        TxFailure::Rejected(e)
    }
}

impl From<ExecError> for TxFailure {
    fn from(e: ExecError) -> Self {
        TxFailure::Fatal(e)
    }
}

impl From<StoreError> for TxFailure {
    fn from(e: StoreError) -> Self {
        TxFailure::Fatal(ExecError::Store(e))
    }
}

/// Executes the transactions of a finalized block, in order.
///
/// Signatures must have been verified by the caller (see [`crate::tx::verify_batch`]),
/// and so must the evidence of every `ReportEquivocation` ([`crate::evidence`]).
/// A transaction that breaks a rule gets an `Err` receipt and writes nothing; the block
/// still executes. `Err` is returned only when the state cannot be read or is corrupt,
/// or `ctx.height` is not the next height; then nothing has been written.
pub fn execute_block<S: StateStore>(
    state: &mut S,
    ctx: &BlockContext,
    txs: &[SignedTransaction],
) -> Result<BlockOutcome, ExecError> {
    let committed = Committed(&*state);
    let chain_id = match committed.read(state_keys::CHAIN_ID)? {
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| ExecError::Corrupt("meta/chain_id is not UTF-8".into()))?,
        None => return Err(ExecError::Corrupt("no genesis in the state".into())),
    };
    let last = read_u64(&committed, state_keys::HEIGHT)?
        .ok_or_else(|| ExecError::Corrupt("meta/height is missing".into()))?;
    if ctx.height != last.saturating_add(1) || ctx.height == 0 {
        return Err(ExecError::OutOfOrder {
            last,
            got: ctx.height,
        });
    }
    let prev_app_hash: Hash32 = match committed.read(state_keys::APP_HASH)? {
        Some(bytes) => bytes
            .as_slice()
            .try_into()
            .map_err(|_| ExecError::Corrupt("meta/app_hash is not 32 bytes".into()))?,
        None => return Err(ExecError::Corrupt("meta/app_hash is missing".into())),
    };

    let mut view = BlockView::new(&*state);
    let pruned_before_ms = prune_replay_entries(&mut view, ctx.time_ms)?;
    let membership = governance::apply_due(&mut view, ctx)?;
    let mut erasures = erasure::expire_due(&mut view, ctx)?;

    let mut receipts = Vec::with_capacity(txs.len());
    for (position, signed) in txs.iter().enumerate() {
        let tx_hash = signed.hash();
        let rules = Rules {
            view: &view,
            ctx,
            chain_id: &chain_id,
            pruned_before_ms,
            position: u32::try_from(position).unwrap_or(u32::MAX),
        };
        match rules.check(&signed.tx, &tx_hash) {
            Ok((writes, event)) => {
                view.apply(writes);
                if let TxEvent::DocumentErased(erased) = &event {
                    erasures.push((erased.document, erased.versions));
                }
                receipts.push(Receipt {
                    tx_hash,
                    outcome: Ok(event),
                });
            }
            Err(TxFailure::Rejected(e)) => receipts.push(Receipt {
                tx_hash,
                outcome: Err(e),
            }),
            Err(TxFailure::Fatal(e)) => return Err(e),
        }
    }

    let journal = view.journal;
    let app_hash = app_hash_step(&prev_app_hash, ctx.height, &journal);
    flush(state, journal, &app_hash, ctx.height);
    Ok(BlockOutcome {
        receipts,
        app_hash,
        erasures,
        validator_set_changed: !membership.added.is_empty() || !membership.removed.is_empty(),
        members_added: membership.added,
        members_removed: membership.removed,
    })
}

/// Deletes replay entries that expired before `time_ms` (at most
/// [`MAX_PRUNE_PER_BLOCK`]). Returns the watermark below which no expiry is accepted
/// any more, so a pruned transaction can never come back, even under a block time that
/// goes backwards.
///
/// The watermark never passes an entry still present (it is the lesser of the block
/// time and the first expiry left), so every entry below it is deleted: the scan seeks
/// to it and never walks the deleted entries before it. (Scanning from the start of
/// `seen/` walked every tombstone not yet compacted away, once per block: after
/// 1,000,000 documents that was 35 % of a catching-up node's CPU and 75 % of its
/// peers'.)
fn prune_replay_entries<S: StateStore>(
    view: &mut BlockView<'_, S>,
    time_ms: u64,
) -> Result<u64, ExecError> {
    let previous = read_u64(view, state_keys::PRUNED_BEFORE_MS)?.unwrap_or(0);
    let start = state_keys::seen(previous, &[0u8; 32]);
    let mut writes = Vec::new();
    let mut chunk = 64usize;
    let mut done = false;
    let mut pruned = 0usize;
    // The expiry of the first entry left after this block's pruning, if any.
    let mut first_left: Option<u64> = None;
    while !done {
        // Scans the committed state; entries already queued for deletion are skipped.
        let entries = view
            .base
            .scan_prefix_from(state_keys::SEEN, &start, chunk)?;
        let full = entries.len() == chunk;
        let mut queued = BTreeSet::new();
        for (key, _) in writes.iter() {
            let key: &Vec<u8> = key;
            queued.insert(key.clone());
        }
        for (key, _) in entries {
            if queued.contains(&key) {
                continue;
            }
            let suffix = key.get(state_keys::SEEN.len()..).unwrap_or_default();
            let expiry_bytes: [u8; 8] = suffix
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ExecError::Corrupt(format!("replay key {}", show_key(&key))))?;
            let expiry = u64::from_be_bytes(expiry_bytes);
            if expiry >= time_ms || pruned >= MAX_PRUNE_PER_BLOCK {
                first_left = Some(expiry);
                done = true;
                break;
            }
            writes.push((key.clone(), None));
            pruned += 1;
        }
        if !full {
            done = true;
        }
        chunk = chunk.saturating_mul(2).min(2 * MAX_PRUNE_PER_BLOCK);
    }
    let watermark = previous.max(first_left.map_or(time_ms, |left| left.min(time_ms)));
    if watermark != previous {
        writes.push((
            state_keys::PRUNED_BEFORE_MS.to_vec(),
            Some(watermark.to_be_bytes().to_vec()),
        ));
    }
    view.apply(writes);
    Ok(watermark)
}

pub(crate) struct Rules<'v, 'a, S: StateStore> {
    pub(crate) view: &'v BlockView<'a, S>,
    pub(crate) ctx: &'v BlockContext,
    chain_id: &'v str,
    pruned_before_ms: u64,
    pub(crate) position: u32,
}

impl<S: StateStore> Rules<'_, '_, S> {
    fn check(
        &self,
        tx: &Transaction,
        tx_hash: &Hash32,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        if tx.chain_id != self.chain_id {
            return Err(ContractError::BadInput(format!(
                "chain_id: transaction is for chain `{}`, this chain is `{}`",
                tx.chain_id, self.chain_id
            ))
            .into());
        }
        let earliest = self.ctx.time_ms.max(self.pruned_before_ms);
        if tx.expires_at_ms < earliest {
            return Err(ContractError::BadInput(format!(
                "expiry: transaction expired at {} ms, block time is {} ms",
                tx.expires_at_ms, self.ctx.time_ms
            ))
            .into());
        }
        if tx.expires_at_ms > self.ctx.time_ms.saturating_add(MAX_TX_TTL_MS) {
            return Err(ContractError::BadInput(format!(
                "expiry: {} ms is more than {MAX_TX_TTL_MS} ms after block time {} ms",
                tx.expires_at_ms, self.ctx.time_ms
            ))
            .into());
        }
        // The expiry is within bounds here, so an executed transaction with this hash
        // (same signed expiry) has its entry still under this key.
        if self
            .view
            .get(&state_keys::seen(tx.expires_at_ms, tx_hash))?
            .is_some()
        {
            return Err(ContractError::Denied(format!(
                "replay: transaction {} was already executed",
                hex::encode(tx_hash)
            ))
            .into());
        }
        let signer = self.signer_administration(&tx.signer)?;
        let (mut writes, event) = match &tx.action {
            Action::SubmitDocument(submission) => self.submit_document(tx, &signer, submission)?,
            Action::RecordAccess {
                document,
                version,
                officer,
                purpose,
            } => self.record_access(tx, &signer, document, *version, officer, purpose)?,
            Action::ProposeAgreement(terms) => self.propose_agreement(tx, &signer, terms)?,
            Action::AcceptAgreement { id } => self.accept_agreement(tx, &signer, id)?,
            Action::SubmitUnderAgreement {
                agreement,
                submission,
            } => self.submit_under_agreement(tx, &signer, agreement, submission)?,
            Action::AmendDocument { id, submission } => {
                self.amend_document(tx, &signer, id, submission)?
            }
            Action::CancelDocument { id, reason } => {
                self.cancel_document(tx, &signer, id, reason)?
            }
            Action::CreateRequest {
                id,
                to,
                matter,
                purpose,
                legal_basis,
                items,
                confidentiality,
            } => self.create_request(
                tx,
                &signer,
                request::NewRequest {
                    id,
                    to,
                    matter,
                    purpose,
                    legal_basis,
                    items,
                    confidentiality,
                },
            )?,
            Action::AnswerRequest { id, answer } => self.answer_request(tx, &signer, id, answer)?,
            Action::ReportBreach { id, details } => self.report_breach(tx, &signer, id, details)?,
            Action::RecordGrantedAccess {
                request,
                document,
                version,
                officer,
                purpose,
            } => self.record_granted_access(
                tx, &signer, request, document, *version, officer, purpose,
            )?,
            Action::AddOfficer { key, name, roles } => {
                self.add_officer(tx, &signer, key, name, roles)?
            }
            Action::RevokeOfficer { key } => self.revoke_officer(tx, &signer, key)?,
            Action::ProposeMember {
                id,
                administration,
                effective_delay_blocks,
                officers,
            } => self.propose(
                tx,
                &signer,
                id,
                governance::ProposalKind::AddMember(administration.clone()),
                *effective_delay_blocks,
                officers,
            )?,
            Action::ProposeRemoval {
                id,
                code,
                effective_delay_blocks,
            } => self.propose(
                tx,
                &signer,
                id,
                governance::ProposalKind::RemoveMember(code.clone()),
                *effective_delay_blocks,
                &[],
            )?,
            Action::Vote { proposal, yes } => self.vote(tx, &signer, proposal, *yes)?,
            Action::EraseDocument {
                id,
                reason,
                legal_basis,
            } => self.erase_document(tx, &signer, id, reason, legal_basis)?,
            Action::AttestDestruction(attestation) => {
                self.attest_destruction(tx, &signer, attestation)?
            }
            Action::AcknowledgeDelivery { document, version } => {
                self.acknowledge_delivery(tx, &signer, document, *version)?
            }
            Action::ReportEquivocation(report) => self.report_equivocation(tx, &signer, report)?,
        };
        writes.push((
            state_keys::seen(tx.expires_at_ms, tx_hash),
            Some(Vec::new()),
        ));
        Ok((writes, event))
    }

    /// Reads and decodes one record through the block's view.
    pub(crate) fn load<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, TxFailure> {
        Ok(read_record(self.view, key)?)
    }

    /// The officer named by the transaction, registered to `admin`, active, and holding
    /// one of `roles`, or the rule that fails, naming `what` the officer tried to do.
    pub(crate) fn acting_officer(
        &self,
        tx: &Transaction,
        admin: &AdminCode,
        roles: &[Role],
        what: &str,
    ) -> Result<Officer, TxFailure> {
        let key = tx.officer.ok_or_else(|| {
            ContractError::BadInput(format!(
                "officer: a transaction to {what} must name its officer"
            ))
        })?;
        let officer = self.officer_of(&key, admin)?;
        if !officer.active {
            return Err(ContractError::Denied(format!("officer: {key} is revoked")).into());
        }
        if !officer.roles.iter().any(|r| roles.contains(r)) {
            let names: Vec<&str> = roles.iter().map(|r| officers::role_name(*r)).collect();
            return Err(ContractError::Denied(format!(
                "officer role: {key} holds none of {} needed to {what}",
                names.join(", ")
            ))
            .into());
        }
        Ok(officer)
    }

    fn signer_administration(&self, signer: &PublicKey) -> Result<Administration, TxFailure> {
        let code = self
            .view
            .get(&state_keys::member_by_node(signer))?
            .ok_or_else(|| {
                ContractError::Denied(format!(
                    "signer: {signer} is not the node key of any administration"
                ))
            })?;
        let code = AdminCode(String::from_utf8_lossy(&code).into_owned());
        let admin: Administration = self
            .view
            .cached::<Administration>(&state_keys::member(&code))?
            .map(|admin| (*admin).clone())
            .ok_or_else(|| {
                ExecError::Corrupt(format!("node key {signer} points to missing member {code}"))
            })?;
        if !admin.active {
            return Err(ContractError::Denied(format!(
                "signer: administration {code} is not active"
            ))
            .into());
        }
        Ok(admin)
    }

    pub(crate) fn officer_of(
        &self,
        key: &PublicKey,
        admin: &AdminCode,
    ) -> Result<Officer, TxFailure> {
        let officer: Officer = self
            .view
            .cached::<Officer>(&state_keys::officer(key))?
            .map(|officer| (*officer).clone())
            .ok_or_else(|| ContractError::NotFound(format!("officer: {key} is not registered")))?;
        if officer.administration != *admin {
            return Err(ContractError::Denied(format!(
                "officer: {key} is registered to {}, not to {admin}",
                officer.administration
            ))
            .into());
        }
        Ok(officer)
    }

    pub(crate) fn submit_document(
        &self,
        tx: &Transaction,
        issuer: &Administration,
        doc: &DocumentSubmission,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let officer_key = tx.officer.ok_or_else(|| {
            ContractError::BadInput("officer: a document submission must name its officer".into())
        })?;
        let officer = self.officer_of(&officer_key, &issuer.code)?;
        if !officer.active {
            return Err(ContractError::Denied(format!("officer: {officer_key} is revoked")).into());
        }
        if !officer
            .roles
            .iter()
            .any(|r| matches!(r, Role::Officer | Role::Supervisor | Role::Admin))
        {
            return Err(ContractError::Denied(format!(
                "officer role: {officer_key} holds none of officer, supervisor, admin"
            ))
            .into());
        }
        self.check_recipients(issuer, &doc.recipients)?;
        self.check_ciphertext_len(doc)?;
        let key = state_keys::document(&doc.id, 1);
        if self.view.get(&key)?.is_some() {
            return Err(ContractError::Denied(format!(
                "document id: {} is already in use",
                doc.id
            ))
            .into());
        }
        let record = self.document_record(doc, 1, issuer, officer_key);
        let writes = vec![
            (key, Some(codec::encode(&record))),
            (
                state_keys::ucr(&doc.ucr_index, &doc.id, 1),
                Some(Vec::new()),
            ),
        ];
        Ok((writes, TxEvent::DocumentFinal(record)))
    }

    /// Version `version` of a submitted document, active and final in this block.
    pub(crate) fn document_record(
        &self,
        doc: &DocumentSubmission,
        version: u32,
        issuer: &Administration,
        submitted_by: PublicKey,
    ) -> DocumentRecord {
        DocumentRecord {
            id: doc.id,
            version,
            kind: doc.kind,
            issuer: issuer.code.clone(),
            submitted_by,
            recipients: doc.recipients.clone(),
            ucr_index: doc.ucr_index,
            commitment: doc.commitment,
            ciphertext_hash: doc.ciphertext_hash,
            ciphertext_len: doc.ciphertext_len,
            status: DocumentStatus::Active,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        }
    }

    /// The recipient rules of a document version: 1 to 16, distinct, not the issuer,
    /// each an active member.
    pub(crate) fn check_recipients(
        &self,
        issuer: &Administration,
        recipients: &[AdminCode],
    ) -> Result<(), TxFailure> {
        if recipients.is_empty() {
            return Err(ContractError::BadInput("recipients: none named".into()).into());
        }
        if recipients.len() > MAX_RECIPIENTS {
            return Err(ContractError::BadInput(format!(
                "recipients: {} named, at most {MAX_RECIPIENTS}",
                recipients.len()
            ))
            .into());
        }
        let mut named = BTreeSet::new();
        for recipient in recipients {
            if !named.insert(recipient) {
                return Err(ContractError::BadInput(format!(
                    "recipients: {recipient} named twice"
                ))
                .into());
            }
            if *recipient == issuer.code {
                return Err(ContractError::BadInput(format!(
                    "recipients: the issuer {recipient} cannot be its own recipient"
                ))
                .into());
            }
            let member = self
                .view
                .cached::<Administration>(&state_keys::member(recipient))?
                .ok_or_else(|| {
                    ContractError::NotFound(format!("recipients: {recipient} is not a member"))
                })?;
            if !member.active {
                return Err(ContractError::Denied(format!(
                    "recipients: {recipient} is not an active member"
                ))
                .into());
            }
        }
        Ok(())
    }

    /// The ciphertext length rules of a document version.
    pub(crate) fn check_ciphertext_len(&self, doc: &DocumentSubmission) -> Result<(), TxFailure> {
        if doc.ciphertext_len as usize > MAX_CIPHERTEXT_BYTES {
            return Err(ContractError::BadInput(format!(
                "ciphertext_len: {} bytes, over the limit of {MAX_CIPHERTEXT_BYTES}",
                doc.ciphertext_len
            ))
            .into());
        }
        if doc.ciphertext_len < MIN_CIPHERTEXT_BYTES {
            return Err(ContractError::BadInput(format!(
                "ciphertext_len: {} bytes, shorter than nonce and tag ({MIN_CIPHERTEXT_BYTES})",
                doc.ciphertext_len
            ))
            .into());
        }
        Ok(())
    }

    fn record_access(
        &self,
        tx: &Transaction,
        reader: &Administration,
        id: &DocumentId,
        version: u32,
        officer: &PublicKey,
        purpose: &str,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        if let Some(tx_officer) = tx.officer {
            if tx_officer != *officer {
                return Err(ContractError::BadInput(format!(
                    "officer: transaction names {tx_officer} but the access names {officer}"
                ))
                .into());
            }
        }
        if purpose.trim().is_empty() || purpose.len() > MAX_PURPOSE_BYTES {
            return Err(ContractError::BadInput(format!(
                "purpose: must be 1 to {MAX_PURPOSE_BYTES} bytes"
            ))
            .into());
        }
        let record: DocumentRecord = read_record(self.view, &state_keys::document(id, version))?
            .ok_or_else(|| {
                ContractError::NotFound(format!("document: {id} version {version} does not exist"))
            })?;
        if record.issuer != reader.code && !record.recipients.contains(&reader.code) {
            return Err(ContractError::Denied(format!(
                "access: {} is neither issuer nor recipient of document {id}",
                reader.code
            ))
            .into());
        }
        self.officer_of(officer, &reader.code)?;
        Ok(self.access_writes(id, version, &reader.code, officer, purpose, None))
    }

    /// The access record and its by-officer index entry.
    pub(crate) fn access_writes(
        &self,
        id: &DocumentId,
        version: u32,
        reader: &AdminCode,
        officer: &PublicKey,
        purpose: &str,
        request: Option<crate::types::RequestId>,
    ) -> (Vec<Write>, TxEvent) {
        let access = AccessRecord {
            document: *id,
            version,
            administration: reader.clone(),
            officer: *officer,
            purpose: purpose.to_string(),
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
            request,
        };
        let writes = vec![
            (
                state_keys::access(id, self.ctx.height, self.position),
                Some(codec::encode(&access)),
            ),
            (
                state_keys::access_by_officer(officer, self.ctx.height, self.position),
                Some(id.0.to_vec()),
            ),
        ];
        (writes, TxEvent::AccessRecorded(access))
    }
}

/// Read-only questions about the committed state. Each `Err` is a store failure or
/// corruption, never "not found".
pub mod query {
    use super::*;

    pub use crate::agreement::{agreement, agreements, covering_agreements, resolve_agreement};
    pub use crate::erasure::{erasure_record, erasure_status, expiring_documents};
    pub use crate::evidence::equivocations;
    pub use crate::governance::{proposal, proposals, validator_set};
    pub use crate::lifecycle::{document_history, document_meta};
    pub use crate::officers::{access_log_by_officer, officers_of};
    pub use crate::request::{access_grants, request, requests};

    /// One administration by code.
    pub fn administration<S: StateStore>(
        state: &S,
        code: &AdminCode,
    ) -> Result<Option<Administration>, ExecError> {
        read_record(&Committed(state), &state_keys::member(code))
    }

    /// Every administration, by code.
    pub fn administrations<S: StateStore>(state: &S) -> Result<Vec<Administration>, ExecError> {
        state
            .scan_prefix(state_keys::MEMBER_CODE, MAX_ADMINISTRATIONS)?
            .iter()
            .map(|(k, v)| decode_record(k, v))
            .collect()
    }

    /// The administration whose node signs with `node_key`.
    pub fn administration_by_node_key<S: StateStore>(
        state: &S,
        node_key: &PublicKey,
    ) -> Result<Option<Administration>, ExecError> {
        match state.get(&state_keys::member_by_node(node_key))? {
            Some(code) => administration(
                state,
                &AdminCode(String::from_utf8_lossy(&code).into_owned()),
            ),
            None => Ok(None),
        }
    }

    /// One officer by key.
    pub fn officer<S: StateStore>(
        state: &S,
        key: &PublicKey,
    ) -> Result<Option<Officer>, ExecError> {
        read_record(&Committed(state), &state_keys::officer(key))
    }

    /// The latest version of a document.
    pub fn document<S: StateStore>(
        state: &S,
        id: &DocumentId,
    ) -> Result<Option<DocumentRecord>, ExecError> {
        match state
            .scan_prefix(&state_keys::document_prefix(id), MAX_DOCUMENT_VERSIONS)?
            .last()
        {
            Some((k, v)) => decode_record(k, v).map(Some),
            None => Ok(None),
        }
    }

    /// One version of a document.
    pub fn document_version<S: StateStore>(
        state: &S,
        id: &DocumentId,
        version: u32,
    ) -> Result<Option<DocumentRecord>, ExecError> {
        read_record(&Committed(state), &state_keys::document(id, version))
    }

    /// Document versions filed under a UCR index, oldest id first, at most `limit`.
    pub fn documents_by_ucr<S: StateStore>(
        state: &S,
        ucr_index: &Hash32,
        limit: usize,
    ) -> Result<Vec<DocumentRecord>, ExecError> {
        let prefix = state_keys::ucr_prefix(ucr_index);
        let mut out = Vec::new();
        for (key, _) in state.scan_prefix(&prefix, limit)? {
            let suffix = key.get(prefix.len()..).unwrap_or_default();
            let id: [u8; 16] = suffix
                .get(..16)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ExecError::Corrupt(format!("ucr key {}", show_key(&key))))?;
            let version: [u8; 4] = suffix
                .get(16..20)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ExecError::Corrupt(format!("ucr key {}", show_key(&key))))?;
            let id = DocumentId(id);
            let version = u32::from_be_bytes(version);
            let record = document_version(state, &id, version)?.ok_or_else(|| {
                ExecError::Corrupt(format!(
                    "ucr index points to missing document {id} v{version}"
                ))
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Recorded reads of a document, oldest first, at most `limit`.
    pub fn access_log<S: StateStore>(
        state: &S,
        id: &DocumentId,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, ExecError> {
        state
            .scan_prefix(&state_keys::access_prefix(id), limit)?
            .iter()
            .map(|(k, v)| decode_record(k, v))
            .collect()
    }

    /// App hash after the last executed block (or genesis); zero before genesis.
    pub fn app_hash<S: StateStore>(state: &S) -> Result<Hash32, ExecError> {
        match state.get(state_keys::APP_HASH)? {
            Some(bytes) => bytes
                .as_slice()
                .try_into()
                .map_err(|_| ExecError::Corrupt("meta/app_hash is not 32 bytes".into())),
            None => Ok([0u8; 32]),
        }
    }

    /// Height of the last executed block; 0 at genesis and before.
    pub fn last_height<S: StateStore>(state: &S) -> Result<u64, ExecError> {
        Ok(read_u64(&Committed(state), state_keys::HEIGHT)?.unwrap_or(0))
    }

    /// The chain id, once genesis is applied.
    pub fn chain_id<S: StateStore>(state: &S) -> Result<Option<String>, ExecError> {
        match state.get(state_keys::CHAIN_ID)? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| ExecError::Corrupt("meta/chain_id is not UTF-8".into())),
            None => Ok(None),
        }
    }
}
