//! The mempool: transactions waiting for a block, with the ciphertexts that travel
//! beside them. Bounded in count; admission verifies signatures in batches and checks
//! each ciphertext against the hash its transaction commits to.
//!
//! Must never hold more than `max_transactions` entries, never admit a transaction whose
//! signature or ciphertext does not check, and never drop a transaction merely because
//! it was proposed (only finalization or expiry removes one).

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

/// Pending transactions in arrival order.
#[derive(Debug)]
pub struct Mempool {
    chain_id: String,
    max_transactions: usize,
    max_batch_transactions: usize,
    entries: HashMap<[u8; 32], Entry>,
    order: VecDeque<[u8; 32]>,
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
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.entries.contains_key(hash)
    }

    pub fn ciphertext(&self, hash_of_ciphertext: &[u8; 32]) -> Option<Vec<u8>> {
        self.entries.values().find_map(|e| {
            match (e.tx.tx.action.document_submission(), &e.ciphertext) {
                (Some(sub), Some(ct)) if &sub.ciphertext_hash == hash_of_ciphertext => {
                    Some(ct.clone())
                }
                _ => None,
            }
        })
    }

    pub fn ciphertext_of_tx(&self, tx_hash: &[u8; 32]) -> Option<Vec<u8>> {
        self.entries.get(tx_hash).and_then(|e| e.ciphertext.clone())
    }

    /// Admits a batch; signatures are verified together. Results are in input order and
    /// carry the transaction hash on success.
    pub fn admit_batch(
        &mut self,
        batch: Vec<(SignedTransaction, Option<Vec<u8>>)>,
    ) -> Vec<Result<[u8; 32], AdmissionError>> {
        let txs: Vec<SignedTransaction> = batch.iter().map(|(tx, _)| tx.clone()).collect();
        let signatures = verify_batch(&txs);
        let mut results = Vec::with_capacity(batch.len());
        for ((tx, ciphertext), signature) in batch.into_iter().zip(signatures) {
            results.push(self.admit_verified(tx, ciphertext, signature.map_err(|e| e.to_string())));
        }
        results
    }

    fn admit_verified(
        &mut self,
        tx: SignedTransaction,
        ciphertext: Option<Vec<u8>>,
        signature: Result<(), String>,
    ) -> Result<[u8; 32], AdmissionError> {
        let hash = tx.hash();
        if self.entries.contains_key(&hash) {
            return Err(AdmissionError::Duplicate);
        }
        if self.entries.len() >= self.max_transactions {
            return Err(AdmissionError::Overloaded(self.max_transactions));
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
        self.entries.insert(
            hash,
            Entry {
                tx,
                ciphertext,
                encoded_len,
            },
        );
        self.order.push_back(hash);
        Ok(hash)
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
        let limit = self.max_batch_transactions.min(max_txs);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for hash in &self.order {
            if out.len() >= limit {
                break;
            }
            if exclude.contains(hash) {
                continue;
            }
            let Some(entry) = self.entries.get(hash) else {
                continue;
            };
            if entry.tx.tx.expires_at_ms <= now_ms {
                continue;
            }
            if bytes + entry.encoded_len > MAX_PROPOSAL_BYTES {
                break;
            }
            bytes += entry.encoded_len;
            out.push(entry.tx.clone());
        }
        out
    }

    /// Removes finalized transactions; returns their ciphertexts (to store with the
    /// block).
    pub fn remove(&mut self, hashes: &[[u8; 32]]) -> Vec<([u8; 32], Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for hash in hashes {
            if let Some(entry) = self.entries.remove(hash) {
                out.push((*hash, entry.ciphertext));
            }
        }
        if !out.is_empty() {
            let entries = &self.entries;
            self.order.retain(|h| entries.contains_key(h));
        }
        out
    }

    /// Drops transactions that expired before `now_ms`; returns how many.
    pub fn prune_expired(&mut self, now_ms: u64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.tx.tx.expires_at_ms > now_ms);
        let entries = &self.entries;
        self.order.retain(|h| entries.contains_key(h));
        before - self.entries.len()
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
}
