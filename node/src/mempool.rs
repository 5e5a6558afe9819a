//! The mempool: transactions waiting for a block, with the ciphertexts that travel
//! beside them. Bounded in count; admission verifies signatures in batches and checks
//! each ciphertext against the hash its transaction commits to.
//!
//! Signatures are verified once per node: [`check_signatures`] runs without the mempool
//! lock (callers verify first, then lock and [`Mempool::admit_checked`]), and block
//! verification asks [`Mempool::verified_mask`] which transactions of a proposal the pool
//! already holds with the very same signature bytes, so only the others are verified
//! again.
//!
//! Must never hold more than `max_transactions` entries, never admit a transaction whose
//! signature or ciphertext does not check, never call a signature verified that it did
//! not verify, and never drop a transaction merely because it was proposed (only
//! finalization or expiry removes one).

use std::collections::{HashMap, HashSet, VecDeque};

use carnet_contracts::{verify_batch, SignedTransaction, MAX_CIPHERTEXT_BYTES};

/// Largest total of encoded transactions put into one proposal.
pub const MAX_PROPOSAL_BYTES: usize = 3 * 1024 * 1024;

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("mempool is full ({0} transactions)")]
    Overloaded(usize),
    #[error("transaction already in the mempool")]
    Duplicate,
    #[error("bad transaction: {0}")]
    Invalid(String),
}

impl AdmissionError {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AdmissionError::Overloaded(_) => "mempool_full",
            AdmissionError::Duplicate => "duplicate_tx",
            AdmissionError::Invalid(_) => "invalid_tx",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    tx: SignedTransaction,
    ciphertext: Option<Vec<u8>>,
    encoded_len: usize,
}

impl Entry {
    fn ciphertext_hash(&self) -> Option<[u8; 32]> {
        self.tx
            .tx
            .action
            .document_submission()
            .map(|s| s.ciphertext_hash)
    }
}

/// Pending transactions in arrival order.
#[derive(Debug)]
pub struct Mempool {
    chain_id: String,
    max_transactions: usize,
    max_batch_transactions: usize,
    entries: HashMap<[u8; 32], Entry>,
    order: VecDeque<[u8; 32]>,
    /// Ciphertext hash → hash of the transaction that carries it.
    by_ciphertext: HashMap<[u8; 32], [u8; 32]>,
    /// Gossiped batches handed to the admission worker so far (the next ticket).
    gossip_queued: u64,
    /// The last ticket the admission worker finished (tickets finish in order).
    gossip_admitted: tokio::sync::watch::Sender<u64>,
    /// Consensus namespace under which the pooled equivocation reports were last
    /// checked (`crate::evidence::purge_stale_reports`).
    reports_namespace: Vec<u8>,
}

/// One transaction of a batch after its signature check, ready for
/// [`Mempool::admit_checked`].
#[derive(Debug)]
pub struct CheckedTx {
    tx: SignedTransaction,
    ciphertext: Option<Vec<u8>>,
    hash: [u8; 32],
    signature: Result<(), String>,
}

impl CheckedTx {
    /// The transaction hash.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Verifies the signatures of `batch` (one ed25519 batch) and hashes each transaction.
/// Touches no mempool: call it without holding the mempool lock, then admit the result
/// with [`Mempool::admit_checked`].
pub fn check_signatures(batch: Vec<(SignedTransaction, Option<Vec<u8>>)>) -> Vec<CheckedTx> {
    check_hashed_signatures(
        batch
            .into_iter()
            .map(|(tx, ciphertext)| {
                let hash = tx.hash();
                (tx, ciphertext, hash)
            })
            .collect(),
    )
}

/// [`check_signatures`] for transactions whose hashes the caller computed (`hash` must
/// be `tx.hash()`).
pub fn check_hashed_signatures(
    batch: Vec<(SignedTransaction, Option<Vec<u8>>, [u8; 32])>,
) -> Vec<CheckedTx> {
    let mut txs = Vec::with_capacity(batch.len());
    let mut rest = Vec::with_capacity(batch.len());
    for (tx, ciphertext, hash) in batch {
        txs.push(tx);
        rest.push((ciphertext, hash));
    }
    let signatures = verify_batch(&txs);
    txs.into_iter()
        .zip(rest)
        .zip(signatures)
        .map(|((tx, (ciphertext, hash)), signature)| CheckedTx {
            tx,
            ciphertext,
            hash,
            signature: signature.map_err(|e| e.to_string()),
        })
        .collect()
}

/// A transaction to admit: with its ciphertext, its hash, and whether this node signed
/// it ([`check_signatures_except_own`]).
pub type Candidate = (SignedTransaction, Option<Vec<u8>>, [u8; 32], bool);

/// [`check_hashed_signatures`] for a batch in which the transactions marked `true` were
/// signed by this node with its in-memory node key a moment ago ([`Shared::node_tx`]):
/// their signatures are right by construction and are not verified again; the others
/// are verified as one batch. The result keeps the input's order.
///
/// [`Shared::node_tx`]: crate::node::Shared::node_tx
pub fn check_signatures_except_own(batch: Vec<Candidate>) -> Vec<CheckedTx> {
    let mut slots: Vec<Option<CheckedTx>> = Vec::with_capacity(batch.len());
    let mut others = Vec::new();
    let mut other_slots = Vec::new();
    for (tx, ciphertext, hash, own) in batch {
        if own {
            slots.push(Some(CheckedTx {
                tx,
                ciphertext,
                hash,
                signature: Ok(()),
            }));
        } else {
            other_slots.push(slots.len());
            slots.push(None);
            others.push((tx, ciphertext, hash));
        }
    }
    for (slot, checked) in other_slots.into_iter().zip(check_hashed_signatures(others)) {
        slots[slot] = Some(checked);
    }
    slots.into_iter().flatten().collect()
}

/// Checks that the ciphertext beside a transaction is the one it commits to.
pub fn check_ciphertext(tx: &SignedTransaction, ciphertext: Option<&[u8]>) -> Result<(), String> {
    match (tx.tx.action.document_submission(), ciphertext) {
        (Some(sub), Some(ct)) => {
            if ct.len() > MAX_CIPHERTEXT_BYTES {
                return Err(format!("ciphertext of {} bytes is too large", ct.len()));
            }
            if ct.len() as u64 != u64::from(sub.ciphertext_len) {
                return Err("ciphertext length differs from the transaction's".into());
            }
            if blake3::hash(ct).as_bytes() != &sub.ciphertext_hash {
                return Err("ciphertext does not match the transaction's ciphertext_hash".into());
            }
            Ok(())
        }
        (Some(_), None) => Err("document transaction without ciphertext".into()),
        (_, Some(_)) => Err("ciphertext beside a transaction that carries none".into()),
        (_, None) => Ok(()),
    }
}

impl Mempool {
    pub fn new(chain_id: String, max_transactions: usize, max_batch_transactions: usize) -> Self {
        assert!(max_transactions > 0 && max_batch_transactions > 0);
        Self {
            chain_id,
            max_transactions,
            max_batch_transactions,
            entries: HashMap::new(),
            order: VecDeque::new(),
            by_ciphertext: HashMap::new(),
            gossip_queued: 0,
            gossip_admitted: tokio::sync::watch::Sender::new(0),
            reports_namespace: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hands a gossiped batch to the admission worker: `queue(ticket)` queues it and
    /// says whether it was queued. Tickets are handed out in queue order; the worker
    /// calls [`Mempool::gossip_admitted`] with each ticket when it is done with it.
    pub fn queue_gossip(&mut self, queue: impl FnOnce(u64) -> bool) -> bool {
        let ticket = self.gossip_queued + 1;
        let queued = queue(ticket);
        if queued {
            self.gossip_queued = ticket;
        }
        queued
    }

    /// The admission worker is done with the batch of `ticket` (and every earlier one).
    pub fn gossip_admitted(&self, ticket: u64) {
        self.gossip_admitted.send_if_modified(|done| {
            let advance = ticket > *done;
            if advance {
                *done = ticket;
            }
            advance
        });
    }

    /// The ticket of the last batch queued so far and a receiver of finished tickets:
    /// once it shows that ticket, every transaction gossiped before this call has been
    /// admitted or refused.
    pub fn gossip_barrier(&self) -> (u64, tokio::sync::watch::Receiver<u64>) {
        (self.gossip_queued, self.gossip_admitted.subscribe())
    }

    /// How many more transactions the pool would take now.
    pub fn room(&self) -> usize {
        self.max_transactions.saturating_sub(self.entries.len())
    }

    /// Whether the pool holds `max_transactions` (admission would answer
    /// [`Mempool::overloaded`]).
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_transactions
    }

    /// The refusal of a full pool.
    pub fn overloaded(&self) -> AdmissionError {
        AdmissionError::Overloaded(self.max_transactions)
    }

    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.entries.contains_key(hash)
    }

    pub fn ciphertext(&self, hash_of_ciphertext: &[u8; 32]) -> Option<Vec<u8>> {
        let tx_hash = self.by_ciphertext.get(hash_of_ciphertext)?;
        self.ciphertext_of_tx(tx_hash)
    }

    pub fn ciphertext_of_tx(&self, tx_hash: &[u8; 32]) -> Option<Vec<u8>> {
        self.entries.get(tx_hash).and_then(|e| e.ciphertext.clone())
    }

    /// Per transaction of a proposal (`hashes[i]` is the hash of `txs[i]`): whether the
    /// pool holds that transaction with the very same signature bytes. Its signature was
    /// verified on admission (and its ciphertext checked), so block verification need
    /// not verify it again. A transaction whose bytes differ in any way is `false`.
    pub fn verified_mask(&self, hashes: &[[u8; 32]], txs: &[SignedTransaction]) -> Vec<bool> {
        hashes
            .iter()
            .zip(txs)
            .map(|(hash, tx)| {
                // Equal hashes mean equal signed bytes (blake3 over them).
                self.entries
                    .get(hash)
                    .is_some_and(|e| e.tx.signature == tx.signature)
            })
            .collect()
    }

    /// Admits a batch; signatures are verified together. Results are in input order and
    /// carry the transaction hash on success. Verifies under `&mut self`: callers that
    /// share the pool behind a lock use [`check_signatures`] first, then
    /// [`Mempool::admit_checked`].
    pub fn admit_batch(
        &mut self,
        batch: Vec<(SignedTransaction, Option<Vec<u8>>)>,
    ) -> Vec<Result<[u8; 32], AdmissionError>> {
        self.admit_checked(check_signatures(batch))
    }

    /// Admits transactions whose signatures [`check_signatures`] checked. Results are in
    /// input order and carry the transaction hash on success.
    pub fn admit_checked(
        &mut self,
        batch: Vec<CheckedTx>,
    ) -> Vec<Result<[u8; 32], AdmissionError>> {
        batch.into_iter().map(|c| self.admit_one(c)).collect()
    }

    fn admit_one(&mut self, checked: CheckedTx) -> Result<[u8; 32], AdmissionError> {
        let CheckedTx {
            tx,
            ciphertext,
            hash,
            signature,
        } = checked;
        if self.entries.contains_key(&hash) {
            return Err(AdmissionError::Duplicate);
        }
        if self.is_full() {
            return Err(self.overloaded());
        }
        signature.map_err(AdmissionError::Invalid)?;
        if tx.tx.chain_id != self.chain_id {
            return Err(AdmissionError::Invalid(format!(
                "chain id `{}` is not this network's",
                tx.tx.chain_id
            )));
        }
        check_ciphertext(&tx, ciphertext.as_deref()).map_err(AdmissionError::Invalid)?;
        let encoded_len = tx.encode().len();
        if encoded_len > carnet_contracts::MAX_TX_BYTES {
            return Err(AdmissionError::Invalid(format!(
                "transaction of {encoded_len} bytes is over the limit"
            )));
        }
        let entry = Entry {
            tx,
            ciphertext,
            encoded_len,
        };
        if let Some(ct_hash) = entry.ciphertext_hash() {
            self.by_ciphertext.insert(ct_hash, hash);
        }
        self.entries.insert(hash, entry);
        self.order.push_back(hash);
        Ok(hash)
    }

    /// The transactions a block may carry, in admission order: not in `exclude`, not
    /// expired at `now_ms`, at most `max_txs` (and the node's batch size) and
    /// [`MAX_PROPOSAL_BYTES`] in all.
    fn selectable<'a>(
        &'a self,
        exclude: &'a HashSet<[u8; 32]>,
        now_ms: u64,
        max_txs: usize,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let mut bytes = 0usize;
        self.order
            .iter()
            .filter(|hash| !exclude.contains(*hash))
            .filter_map(|hash| self.entries.get(hash))
            .filter(move |entry| entry.tx.tx.expires_at_ms > now_ms)
            .take_while(move |entry| {
                bytes += entry.encoded_len;
                bytes <= MAX_PROPOSAL_BYTES
            })
            .take(self.max_batch_transactions.min(max_txs))
    }

    /// How many transactions [`Mempool::select`] would return, counting up to `max_txs`
    /// (without copying them).
    pub fn count_selectable(
        &self,
        exclude: &HashSet<[u8; 32]>,
        now_ms: u64,
        max_txs: usize,
    ) -> usize {
        self.selectable(exclude, now_ms, max_txs).count()
    }

    /// Up to `max_batch_transactions` transactions (and [`MAX_PROPOSAL_BYTES`]) in
    /// arrival order, skipping `exclude` and transactions expired at `now_ms`. They stay
    /// in the mempool until a finalized block removes them.
    pub fn select(
        &self,
        exclude: &HashSet<[u8; 32]>,
        now_ms: u64,
        max_txs: usize,
    ) -> Vec<SignedTransaction> {
        self.selectable(exclude, now_ms, max_txs)
            .map(|entry| entry.tx.clone())
            .collect()
    }

    fn forget(&mut self, entry: &Entry) {
        if let Some(ct_hash) = entry.ciphertext_hash() {
            self.by_ciphertext.remove(&ct_hash);
        }
    }

    /// Removes finalized transactions; returns their ciphertexts (to store with the
    /// block).
    pub fn remove(&mut self, hashes: &[[u8; 32]]) -> Vec<([u8; 32], Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for hash in hashes {
            if let Some(entry) = self.entries.remove(hash) {
                self.forget(&entry);
                out.push((*hash, entry.ciphertext));
            }
        }
        if !out.is_empty() {
            let entries = &self.entries;
            self.order.retain(|h| entries.contains_key(h));
        }
        out
    }

    /// Records that the pooled equivocation reports are being checked under `namespace`;
    /// `false` when they already were (nothing to do).
    pub fn note_reports_namespace(&mut self, namespace: &[u8]) -> bool {
        if self.reports_namespace == namespace {
            return false;
        }
        self.reports_namespace = namespace.to_vec();
        true
    }

    /// The pooled `ReportEquivocation` transactions with their hashes (at most the
    /// pool's size).
    pub fn equivocation_reports(&self) -> Vec<([u8; 32], SignedTransaction)> {
        self.order
            .iter()
            .filter_map(|h| self.entries.get(h).map(|e| (h, e)))
            .filter(|(_, e)| {
                matches!(
                    e.tx.tx.action,
                    carnet_contracts::Action::ReportEquivocation(_)
                )
            })
            .map(|(h, e)| (*h, e.tx.clone()))
            .collect()
    }

    /// Drops transactions that expired before `now_ms`; returns how many.
    pub fn prune_expired(&mut self, now_ms: u64) -> usize {
        let expired: Vec<[u8; 32]> = self
            .entries
            .iter()
            .filter(|(_, e)| e.tx.tx.expires_at_ms <= now_ms)
            .map(|(h, _)| *h)
            .collect();
        self.remove(&expired).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carnet_contracts::{Action, DocumentId, PublicKey, Transaction};
    use ed25519_dalek::SigningKey;

    fn access_tx(nonce: u64, key: &SigningKey) -> SignedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: PublicKey(key.verifying_key().to_bytes()),
            officer: None,
            nonce,
            expires_at_ms: 10_000,
            action: Action::RecordAccess {
                document: DocumentId([1; 16]),
                version: 1,
                officer: PublicKey([2; 32]),
                purpose: "audit".into(),
            },
        }
        .sign(key)
    }

    #[test]
    fn own_transactions_skip_the_check_and_the_rest_keep_their_order() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut forged = access_tx(1, &key);
        forged.tx.nonce = 99; // the signature no longer matches
        let good = access_tx(2, &key);
        let batch = vec![
            (good.clone(), None, good.hash(), false),
            (forged.clone(), None, forged.hash(), false),
            (good.clone(), None, good.hash(), true),
        ];
        let checked = check_signatures_except_own(batch);
        let outcome: Vec<(u64, bool)> = checked
            .iter()
            .map(|c| (c.tx.tx.nonce, c.signature.is_ok()))
            .collect();
        assert_eq!(outcome, vec![(2, true), (99, false), (2, true)]);
    }

    #[test]
    fn bounded_dedup_and_overload() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut pool = Mempool::new("test".into(), 3, 2);
        let results = pool.admit_batch((0..4).map(|n| (access_tx(n, &key), None)).collect());
        assert!(results[..3].iter().all(|r| r.is_ok()));
        assert_eq!(results[3], Err(AdmissionError::Overloaded(3)));
        assert_eq!(pool.len(), 3);
        let dup = pool.admit_batch(vec![(access_tx(0, &key), None)]);
        assert_eq!(dup[0], Err(AdmissionError::Duplicate));
        let batch = pool.select(&HashSet::new(), 0, usize::MAX);
        assert_eq!(
            batch.len(),
            2,
            "a proposal takes at most max_batch_transactions"
        );
        let hashes: Vec<_> = batch.iter().map(|t| t.hash()).collect();
        pool.remove(&hashes);
        assert_eq!(pool.len(), 1);
        assert!(pool.admit_batch(vec![(access_tx(9, &key), None)])[0].is_ok());
    }

    #[test]
    fn bad_signature_wrong_chain_and_stray_ciphertext_are_refused() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut pool = Mempool::new("test".into(), 10, 10);
        let mut forged = access_tx(1, &key);
        forged.tx.nonce = 2;
        let mut other_chain = access_tx(3, &key);
        other_chain.tx.chain_id = "other".into();
        let other_chain = other_chain.tx.sign(&key);
        let results = pool.admit_batch(vec![
            (forged, None),
            (other_chain, None),
            (access_tx(4, &key), Some(vec![1, 2, 3])),
        ]);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(AdmissionError::Invalid(_)))),
            "{results:?}"
        );
        assert!(pool.is_empty());
    }

    #[test]
    fn expired_transactions_are_not_proposed_and_are_pruned() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut pool = Mempool::new("test".into(), 10, 10);
        pool.admit_batch(vec![(access_tx(1, &key), None)]);
        assert!(pool.select(&HashSet::new(), 20_000, 10).is_empty());
        assert_eq!(pool.prune_expired(20_000), 1);
        assert!(pool.is_empty());
    }

    fn document_tx(nonce: u64, key: &SigningKey, ciphertext: &[u8]) -> SignedTransaction {
        Transaction {
            chain_id: "test".into(),
            signer: PublicKey(key.verifying_key().to_bytes()),
            officer: None,
            nonce,
            expires_at_ms: 10_000,
            action: Action::SubmitDocument(carnet_contracts::DocumentSubmission {
                id: DocumentId([nonce as u8; 16]),
                kind: carnet_contracts::DocumentKind::ExportDeclaration,
                recipients: vec![carnet_contracts::AdminCode("XB".into())],
                ucr_index: [3; 32],
                commitment: [4; 32],
                ciphertext_hash: *blake3::hash(ciphertext).as_bytes(),
                ciphertext_len: ciphertext.len() as u32,
            }),
        }
        .sign(key)
    }

    #[test]
    fn only_transactions_held_with_the_same_signature_count_as_verified() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut pool = Mempool::new("test".into(), 10, 10);
        let held = access_tx(1, &key);
        let absent = access_tx(2, &key);
        let checked = check_signatures(vec![(held.clone(), None)]);
        assert_eq!(pool.admit_checked(checked), vec![Ok(held.hash())]);
        // Same signed bytes, other signature bytes: not verified by this pool.
        let mut other_signature = held.clone();
        other_signature.signature[0] ^= 1;
        let txs = vec![held.clone(), other_signature, absent.clone()];
        let hashes: Vec<[u8; 32]> = txs.iter().map(|t| t.hash()).collect();
        assert_eq!(pool.verified_mask(&hashes, &txs), vec![true, false, false]);
        // Once finalized (removed) it is no longer vouched for.
        pool.remove(&[held.hash()]);
        assert_eq!(pool.verified_mask(&hashes[..1], &txs[..1]), vec![false]);
    }

    #[test]
    fn a_bad_signature_found_outside_the_lock_is_refused_on_admission() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut forged = access_tx(1, &key);
        forged.tx.nonce = 7;
        let good = access_tx(2, &key);
        let checked = check_signatures(vec![(forged.clone(), None), (good.clone(), None)]);
        assert_eq!(checked[0].hash(), &forged.hash());
        let mut pool = Mempool::new("test".into(), 10, 10);
        let results = pool.admit_checked(checked);
        assert!(matches!(results[0], Err(AdmissionError::Invalid(_))));
        assert_eq!(results[1], Ok(good.hash()));
        assert!(!pool.contains(&forged.hash()));
    }

    #[test]
    fn ciphertexts_are_found_by_hash_until_their_transaction_leaves() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut pool = Mempool::new("test".into(), 10, 10);
        let (ct1, ct2) = (vec![1u8; 100], vec![2u8; 50]);
        let (tx1, tx2) = (document_tx(1, &key, &ct1), document_tx(2, &key, &ct2));
        let results = pool.admit_batch(vec![
            (tx1.clone(), Some(ct1.clone())),
            (tx2.clone(), Some(ct2.clone())),
        ]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let h1 = *blake3::hash(&ct1).as_bytes();
        let h2 = *blake3::hash(&ct2).as_bytes();
        assert_eq!(pool.ciphertext(&h1), Some(ct1));
        assert_eq!(pool.ciphertext(&h2), Some(ct2));
        assert_eq!(pool.ciphertext(&[9; 32]), None);
        pool.remove(&[tx1.hash()]);
        assert_eq!(pool.ciphertext(&h1), None);
        assert_eq!(pool.prune_expired(20_000), 1);
        assert_eq!(pool.ciphertext(&h2), None);
        assert!(pool.is_empty());
    }

    #[test]
    fn the_gossip_barrier_opens_once_every_earlier_batch_is_done() {
        let mut pool = Mempool::new("test".into(), 10, 10);
        assert!(pool.queue_gossip(|ticket| ticket == 1));
        assert!(
            !pool.queue_gossip(|ticket| {
                assert_eq!(ticket, 2);
                false
            }),
            "a batch the queue refused takes no ticket"
        );
        assert!(pool.queue_gossip(|ticket| ticket == 2));
        let (ticket, admitted) = pool.gossip_barrier();
        assert_eq!(ticket, 2);
        assert_eq!(*admitted.borrow(), 0);
        pool.gossip_admitted(1);
        assert_eq!(*admitted.borrow(), 1);
        pool.gossip_admitted(2);
        assert_eq!(*admitted.borrow(), 2);
        pool.gossip_admitted(1);
        assert_eq!(*admitted.borrow(), 2, "finished tickets never go back");
    }
}
