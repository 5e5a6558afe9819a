//! The key vault: where a node keeps the document keys (DEK and salt) that open the
//! payloads it issued or received. The trait is small so that a PKCS#11 (HSM) vault can
//! replace the RocksDB one.
//!
//! Must never log, print or return key material anywhere but to the caller that opens a
//! document; `destroy` must leave nothing that can open the payload.

use std::sync::Arc;

use carnet_contracts::envelope::DocumentKeys;
use carnet_contracts::DocumentId;
use zeroize::Zeroizing;

use crate::storage::{StorageError, Store, CF_VAULT};

/// Errors of a vault. A failed `put` or `destroy` is fatal to the caller.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("vault entry for {0} is malformed")]
    Malformed(String),
    #[error("hardware security module: {0}")]
    Hsm(String),
}

/// Storage of document keys by (document, version).
pub trait KeyVault: Send + Sync {
    /// Stores the keys of one document version (idempotent).
    fn put(
        &self,
        document: &DocumentId,
        version: u32,
        keys: &DocumentKeys,
    ) -> Result<(), VaultError>;
    /// The keys, if this node holds them.
    fn get(&self, document: &DocumentId, version: u32) -> Result<Option<DocumentKeys>, VaultError>;
    /// Destroys the keys; afterwards `get` returns `None`.
    fn destroy(&self, document: &DocumentId, version: u32) -> Result<(), VaultError>;
}

fn vault_key(document: &DocumentId, version: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&document.0);
    key[16..].copy_from_slice(&version.to_be_bytes());
    key
}

/// A vault in the `vault` column family of the node's RocksDB store.
#[derive(Debug, Clone)]
pub struct RocksVault {
    store: Arc<Store>,
}

impl RocksVault {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
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
}
