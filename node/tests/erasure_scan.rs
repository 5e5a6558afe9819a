//! Erasure leaves nothing on disk: the DEK, the salt and the ciphertext of an erased
//! document are found byte by byte in the data directory before erasure (so the scan
//! can fail), and nowhere in it (WAL, SST, MANIFEST, LOG, OPTIONS...) afterwards.

use std::path::Path;

use carnet_contracts::envelope::{seal, DocumentKeys};
use carnet_contracts::execute::state_keys;
use carnet_contracts::{
    codec, AdminCode, DocumentId, DocumentKind, DocumentRecord, DocumentStatus, PublicKey,
};
use carnet_node::erasure::{self, PendingErasure};
use carnet_node::storage::{Store, CF_META, CF_OUTBOX, CF_PAYLOADS, CF_STATE};
use carnet_node::vault::{KeyVault, RocksVault};
use rand::RngCore;

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.len() >= needle.len() && bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

struct Doc {
    id: DocumentId,
    keys: DocumentKeys,
    ciphertext: Vec<u8>,
    ciphertext_hash: [u8; 32],
    plaintext: Vec<u8>,
}

/// Writes a document the way a node holds it: the ledger record in `state`, keys in
/// the vault, the ciphertext in `payloads`, a pending key delivery in `outbox`.
fn put_document(store: &Store, vault: &dyn KeyVault) -> Doc {
    let id = DocumentId(random());
    let keys = DocumentKeys::from_bytes(&random::<64>()).unwrap();
    let plaintext = format!(
        "{{\"consignee\":\"{}\",\"lines\":\"{}\"}}",
        hex::encode(random::<16>()),
        "x".repeat(3000)
    )
    .into_bytes();
    let kind = DocumentKind::ALL[0];
    let sealed = seal(&plaintext, &keys, random(), &id, 1, kind).unwrap();
    let record = DocumentRecord {
        id,
        version: 1,
        kind,
        issuer: AdminCode("XA".into()),
        submitted_by: PublicKey([5; 32]),
        recipients: vec![AdminCode("XB".into())],
        ucr_index: [6; 32],
        commitment: sealed.commitment,
        ciphertext_hash: sealed.ciphertext_hash,
        ciphertext_len: sealed.ciphertext.len() as u32,
        status: DocumentStatus::Erased,
        height: 3,
        time_ms: 1_700_000_000_000,
    };
    store
        .put_raw(
            CF_STATE,
            &state_keys::document(&id, 1),
            &codec::encode(&record),
        )
        .unwrap();
    vault.put(&id, 1, &keys).unwrap();
    store
        .put_raw(CF_PAYLOADS, &sealed.ciphertext_hash, &sealed.ciphertext)
        .unwrap();
    let (k, v) = carnet_node::delivery::outbox_entry(&id, 1, &AdminCode("XB".into()));
    store.put_raw(CF_OUTBOX, &k, &v).unwrap();
    Doc {
        id,
        keys,
        ciphertext_hash: sealed.ciphertext_hash,
        ciphertext: sealed.ciphertext,
        plaintext,
    }
}

fn needles(doc: &Doc) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("DEK", doc.keys.dek.to_vec()),
        ("salt", doc.keys.salt.to_vec()),
        ("ciphertext head", doc.ciphertext[..64].to_vec()),
        (
            "ciphertext tail",
            doc.ciphertext[doc.ciphertext.len() - 64..].to_vec(),
        ),
    ]
}

#[test]
fn erased_keys_and_ciphertexts_leave_every_file_of_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (erased, kept);
    {
        let store = Store::open(&data).unwrap();
        let vault = RocksVault::new(store.clone());
        erased = put_document(&store, &vault);
        kept = put_document(&store, &vault);
        // Some of it in SST files, and the same again in the WAL.
        store.flush().unwrap();
        vault.put(&erased.id, 1, &erased.keys).unwrap();
        store
            .put_raw(CF_PAYLOADS, &erased.ciphertext_hash, &erased.ciphertext)
            .unwrap();

        for (what, needle) in needles(&erased) {
            assert!(
                !files_containing(&data, &needle).is_empty(),
                "{what} must be on disk before erasure, or the scan proves nothing"
            );
        }

        // The erasure block's batch records the pending erasure; the worker destroys.
        let (k, v) = erasure::pending_entry(&erased.id, 1, 9);
        store.put_raw_synced(CF_META, &k, &v).unwrap();
        assert_eq!(erasure::destroy_pending(&store, &vault).unwrap(), 1);
        assert_eq!(erasure::destroy_pending(&store, &vault).unwrap(), 0);
        assert_eq!(
            erasure::pending(&store).unwrap(),
            vec![PendingErasure {
                document: erased.id,
                versions: 1,
                height: 9,
                destroyed: true
            }]
        );

        assert!(vault.get(&erased.id, 1).unwrap().is_none());
        assert!(store.payload(&erased.ciphertext_hash).unwrap().is_none());
        assert!(store
            .scan_prefix(CF_OUTBOX, &erased.id.0, 10)
            .unwrap()
            .is_empty());
        // A ciphertext fetched late from a peer is never stored again.
        assert!(store.payload_erased(&erased.ciphertext_hash).unwrap());
        // (A batch of fetched ciphertexts stores the others and skips only it.)
        assert_eq!(
            store
                .put_payloads_unless_erased(&[
                    (erased.ciphertext_hash, erased.ciphertext.clone()),
                    (kept.ciphertext_hash, kept.ciphertext.clone()),
                ])
                .unwrap(),
            vec![false, true]
        );
        assert!(store.payload(&erased.ciphertext_hash).unwrap().is_none());
        // The other document is untouched.
        assert!(vault.get(&kept.id, 1).unwrap().is_some());
        assert!(store.payload(&kept.ciphertext_hash).unwrap().is_some());
        assert_eq!(
            store.scan_prefix(CF_OUTBOX, &kept.id.0, 10).unwrap().len(),
            1
        );

        for (what, needle) in needles(&erased) {
            let hits = files_containing(&data, &needle);
            assert!(
                hits.is_empty(),
                "{what} of the erased document still in {hits:?}"
            );
        }
        assert!(files_containing(&data, &erased.plaintext[..48]).is_empty());
        // The kept document is still on disk (the scan sees live data).
        assert!(!files_containing(&data, &kept.keys.dek).is_empty());
    }
    // And after the store is closed and reopened.
    let store = Store::open(&data).unwrap();
    let vault = RocksVault::new(store.clone());
    assert!(vault.get(&erased.id, 1).unwrap().is_none());
    assert!(vault.get(&kept.id, 1).unwrap().is_some());
    drop(vault);
    drop(store);
    for (what, needle) in needles(&erased) {
        let hits = files_containing(dir.path(), &needle);
        assert!(
            hits.is_empty(),
            "{what} of the erased document in {hits:?} after reopen"
        );
    }
}
