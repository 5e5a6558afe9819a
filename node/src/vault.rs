//! The key vault: where a node keeps the document keys (DEK and salt) that open the
//! payloads it issued or received. The trait is small so that a PKCS#11 (HSM) vault can
//! replace the RocksDB one.
//!
//! The RocksDB vault commits puts in groups ([`KeyVault::put_queued`]): concurrent
//! submissions queue their keys and one synced write batch makes many of them durable at
//! once, off the async workers. A put is acknowledged only after its batch's WAL sync.
//!
//! Must never log, print or return key material anywhere but to the caller that opens a
//! document; never acknowledge a put before it is durable; `destroy` must leave nothing
//! that can open the payload.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use carnet_contracts::envelope::DocumentKeys;
use carnet_contracts::DocumentId;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::storage::{StorageError, Store, CF_VAULT};

/// Most puts waiting for a group commit; beyond it [`KeyVault::put_queued`] refuses with
/// [`VaultError::Busy`] (the API answers 503).
pub const MAX_QUEUED_PUTS: usize = 8192;
/// Most puts made durable by one synced write batch.
pub const MAX_GROUP_PUTS: usize = 1024;

/// Errors of a vault. A failed `put` or `destroy` is fatal to the caller.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("vault entry for {0} is malformed")]
    Malformed(String),
    #[error("hardware security module: {0}")]
    Hsm(String),
    /// Too many puts are waiting for their group commit; nothing was queued.
    #[error("key vault busy: {0} puts waiting for a durable write")]
    Busy(usize),
    /// The synced write of a group failed (fatal to the caller, as for `put`).
    #[error("group commit of vault keys failed: {0}")]
    GroupCommit(String),
    /// The group commit ended without answering (the node is stopping).
    #[error("key vault write abandoned")]
    Abandoned,
}

/// The answer to a queued put: resolves once the keys are durable (or the write failed).
pub type QueuedPut = oneshot::Receiver<Result<(), VaultError>>;

/// Storage of document keys by (document, version).
pub trait KeyVault: Send + Sync {
    /// Stores the keys of one document version (idempotent).
    fn put(
        &self,
        document: &DocumentId,
        version: u32,
        keys: &DocumentKeys,
    ) -> Result<(), VaultError>;
    /// Stores the keys of many document versions (idempotent), durable when it returns:
    /// the keys a peer delivered in one batch. The default puts them one by one; the
    /// RocksDB vault writes them in one synced batch.
    fn put_batch(&self, entries: &[(DocumentId, u32, DocumentKeys)]) -> Result<(), VaultError> {
        for (document, version, keys) in entries {
            self.put(document, *version, keys)?;
        }
        Ok(())
    }
    /// The keys, if this node holds them.
    fn get(&self, document: &DocumentId, version: u32) -> Result<Option<DocumentKeys>, VaultError>;
    /// Destroys the keys; afterwards `get` returns `None`.
    fn destroy(&self, document: &DocumentId, version: u32) -> Result<(), VaultError>;
    /// Stores the keys like `put`, possibly together with other queued puts in one
    /// durable write; the receiver answers once they are durable. `Err(Busy)` when too
    /// many puts wait (nothing queued). The default is a plain `put`, answered at once.
    fn put_queued(
        &self,
        document: &DocumentId,
        version: u32,
        keys: &DocumentKeys,
    ) -> Result<QueuedPut, VaultError> {
        let (done, answer) = oneshot::channel();
        let _ = done.send(self.put(document, version, keys));
        Ok(answer)
    }
}

fn vault_key(document: &DocumentId, version: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&document.0);
    key[16..].copy_from_slice(&version.to_be_bytes());
    key
}

/// One put waiting for its group commit.
struct PendingPut {
    key: [u8; 20],
    value: Zeroizing<[u8; 64]>,
    done: oneshot::Sender<Result<(), VaultError>>,
}

/// Puts waiting for a durable write, and whether a flush is running.
#[derive(Default)]
struct GroupQueue {
    pending: VecDeque<PendingPut>,
    flushing: bool,
}

/// Group commit of vault puts: the first put that finds no flush running starts one (on
/// the blocking pool, or inline without a tokio runtime); the flush writes everything
/// queued, up to [`MAX_GROUP_PUTS`] per synced batch, until the queue is empty.
#[derive(Default)]
struct GroupCommit {
    queue: Mutex<GroupQueue>,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupQueue> {
        // A poisoned lock means a panic elsewhere; the queue (bounded) is usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next group, or ends the flush when nothing is queued.
    fn next_group(&self) -> Vec<PendingPut> {
        let mut queue = self.lock();
        let take = queue.pending.len().min(MAX_GROUP_PUTS);
        if take == 0 {
            queue.flushing = false;
        }
        queue.pending.drain(..take).collect()
    }

    /// Writes groups until the queue is empty; answers every put of a group after its
    /// synced write.
    fn flush(&self, store: &Store) {
        loop {
            let group = self.next_group();
            if group.is_empty() {
                return;
            }
            let entries: Vec<(&[u8], &[u8])> =
                group.iter().map(|p| (&p.key[..], &p.value[..])).collect();
            let result = store.put_many_synced(CF_VAULT, &entries);
            drop(entries);
            for put in group {
                let answer = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(VaultError::GroupCommit(e.to_string())),
                };
                let _ = put.done.send(answer);
            }
        }
    }
}

/// A vault in the `vault` column family of the node's RocksDB store.
#[derive(Clone)]
pub struct RocksVault {
    store: Arc<Store>,
    group: Arc<GroupCommit>,
}

impl std::fmt::Debug for RocksVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksVault").finish_non_exhaustive()
    }
}

impl RocksVault {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            group: Arc::new(GroupCommit::default()),
        }
    }
}

impl KeyVault for RocksVault {
    fn put(
        &self,
        document: &DocumentId,
        version: u32,
        keys: &DocumentKeys,
    ) -> Result<(), VaultError> {
        let value = keys.to_bytes();
        self.store
            .put_raw_synced(CF_VAULT, &vault_key(document, version), &value[..])?;
        Ok(())
    }

    fn put_batch(&self, entries: &[(DocumentId, u32, DocumentKeys)]) -> Result<(), VaultError> {
        if entries.is_empty() {
            return Ok(());
        }
        let values: Vec<([u8; 20], Zeroizing<[u8; 64]>)> = entries
            .iter()
            .map(|(document, version, keys)| (vault_key(document, *version), keys.to_bytes()))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = values.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        self.store.put_many_synced(CF_VAULT, &refs)?;
        Ok(())
    }

    fn get(&self, document: &DocumentId, version: u32) -> Result<Option<DocumentKeys>, VaultError> {
        let Some(value) = self
            .store
            .get_raw(CF_VAULT, &vault_key(document, version))?
        else {
            return Ok(None);
        };
        let value = Zeroizing::new(value);
        DocumentKeys::from_bytes(&value)
            .map(Some)
            .map_err(|_| VaultError::Malformed(format!("{document} v{version}")))
    }

    fn destroy(&self, document: &DocumentId, version: u32) -> Result<(), VaultError> {
        self.store
            .delete_raw_synced(CF_VAULT, &vault_key(document, version))?;
        self.store.compact(CF_VAULT);
        Ok(())
    }

    fn put_queued(
        &self,
        document: &DocumentId,
        version: u32,
        keys: &DocumentKeys,
    ) -> Result<QueuedPut, VaultError> {
        let (done, answer) = oneshot::channel();
        let start_flush = {
            let mut queue = self.group.lock();
            if queue.pending.len() >= MAX_QUEUED_PUTS {
                return Err(VaultError::Busy(queue.pending.len()));
            }
            queue.pending.push_back(PendingPut {
                key: vault_key(document, version),
                value: keys.to_bytes(),
                done,
            });
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start_flush {
            let (store, group) = (self.store.clone(), self.group.clone());
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn_blocking(move || group.flush(&store));
                }
                Err(_) => group.flush(&store),
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_keys(dek: [u8; 32], salt: [u8; 32]) -> DocumentKeys {
        DocumentKeys { dek, salt }
    }

    /// The suite every vault backend must pass.
    fn vault_suite(vault: &dyn KeyVault) {
        let id = DocumentId([7u8; 16]);
        assert!(vault.get(&id, 1).unwrap().is_none());
        vault.put(&id, 1, &doc_keys([1u8; 32], [2u8; 32])).unwrap();
        vault.put(&id, 2, &doc_keys([3u8; 32], [4u8; 32])).unwrap();
        let keys = vault.get(&id, 1).unwrap().unwrap();
        assert_eq!(keys.dek[..], [1u8; 32]);
        assert_eq!(keys.salt[..], [2u8; 32]);
        vault.destroy(&id, 1).unwrap();
        assert!(vault.get(&id, 1).unwrap().is_none());
        assert_eq!(vault.get(&id, 2).unwrap().unwrap().dek[..], [3u8; 32]);
        assert!(vault.get(&DocumentId([8u8; 16]), 2).unwrap().is_none());
    }

    #[test]
    fn rocks_vault_passes_the_suite_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            vault_suite(&RocksVault::new(store));
        }
        let store = Store::open(dir.path()).unwrap();
        let vault = RocksVault::new(store);
        let id = DocumentId([7u8; 16]);
        assert!(
            vault.get(&id, 1).unwrap().is_none(),
            "destroyed keys stay destroyed"
        );
        assert_eq!(vault.get(&id, 2).unwrap().unwrap().salt[..], [4u8; 32]);
    }

    /// Answers of queued puts, in order (each must arrive).
    fn answers(puts: Vec<QueuedPut>) -> Vec<Result<(), VaultError>> {
        puts.into_iter()
            .map(|mut p| p.try_recv().expect("the put was answered"))
            .collect()
    }

    #[test]
    fn queued_puts_are_durable_in_one_group_when_answered_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3 * MAX_GROUP_PUTS as u32 + 7;
        {
            let store = Store::open(dir.path()).unwrap();
            let vault = RocksVault::new(store.clone());
            // A flush is running (and stalled): puts wait, the queue bound holds.
            vault.group.lock().flushing = true;
            let mut queued = Vec::new();
            for v in 0..n {
                queued.push(
                    vault
                        .put_queued(&DocumentId([1; 16]), v, &doc_keys([v as u8; 32], [9; 32]))
                        .unwrap(),
                );
            }
            assert!(
                queued.iter_mut().all(|p| p.try_recv().is_err()),
                "nothing is answered before its group is written"
            );
            assert!(vault.get(&DocumentId([1; 16]), 0).unwrap().is_none());
            for v in n..MAX_QUEUED_PUTS as u32 {
                let put = vault.put_queued(&DocumentId([2; 16]), v, &doc_keys([1; 32], [2; 32]));
                queued.push(put.unwrap());
            }
            let refused = vault.put_queued(&DocumentId([3; 16]), 1, &doc_keys([1; 32], [2; 32]));
            assert!(matches!(refused, Err(VaultError::Busy(MAX_QUEUED_PUTS))));
            // The flush writes every group and ends.
            vault.group.flush(&store);
            assert!(answers(queued).iter().all(Result::is_ok));
            assert!(!vault.group.lock().flushing);
            assert!(vault.group.lock().pending.is_empty());
        }
        // Answered puts survive a reopen.
        let vault = RocksVault::new(Store::open(dir.path()).unwrap());
        for v in [0, MAX_GROUP_PUTS as u32, n - 1] {
            let keys = vault.get(&DocumentId([1; 16]), v).unwrap().unwrap();
            assert_eq!(keys.dek, [v as u8; 32]);
        }
        assert!(vault.get(&DocumentId([3; 16]), 1).unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_queued_puts_are_answered_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(RocksVault::new(Store::open(dir.path()).unwrap()));
        let mut tasks = Vec::new();
        for v in 0..200u32 {
            let vault = vault.clone();
            tasks.push(tokio::spawn(async move {
                let put = vault
                    .put_queued(&DocumentId([4; 16]), v, &doc_keys([v as u8; 32], [5; 32]))
                    .unwrap();
                put.await.unwrap().unwrap();
                // Once answered, the keys are there.
                vault.get(&DocumentId([4; 16]), v).unwrap().unwrap().dek
            }));
        }
        for (v, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), [v as u8; 32]);
        }
        // Without a runtime the put is written inline.
        let vault = RocksVault::new(vault.store.clone());
        let answer = std::thread::spawn(move || {
            let mut put = vault
                .put_queued(&DocumentId([6; 16]), 1, &doc_keys([6; 32], [6; 32]))
                .unwrap();
            put.try_recv().expect("answered at once")
        })
        .join()
        .unwrap();
        assert!(answer.is_ok());
    }
}
