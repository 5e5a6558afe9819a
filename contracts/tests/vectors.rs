//! Checked-in test vectors: fixed inputs and the exact bytes Carnet must produce, so an
//! accidental change of encoding, domain tag or algorithm fails here, and other
//! implementations can check themselves against `testdata/`.
//!
//! Regenerate (only for a deliberate format change, with a new domain version):
//! `CARNET_REGEN_VECTORS=1 cargo test -p carnet-contracts --test vectors`.

use carnet_contracts::auth::{request_signing_bytes, sign_request};
use carnet_contracts::block::merkle_root;
use carnet_contracts::envelope::*;
use carnet_contracts::keys::x25519_public;
use carnet_contracts::*;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Writes `computed` when regenerating, else compares it with the checked-in file.
fn check(name: &str, computed: Value) {
    let file = path(name);
    if std::env::var("CARNET_REGEN_VECTORS").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(&file, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}; run with CARNET_REGEN_VECTORS=1", file.display()));
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stored, computed,
        "{name} differs from the checked-in vectors"
    );
}

fn tx_vector(key: &SigningKey, tx: Transaction) -> Value {
    let signed = tx.clone().sign(key);
    json!({
        "tx_json": serde_json::to_value(&tx).unwrap(),
        "signing_bytes": hex::encode(tx.signing_bytes()),
        "hash": hex::encode(signed.hash()),
        "signature": hex::encode(&signed.signature),
        "encoded": hex::encode(signed.encode()),
    })
}

#[test]
fn transaction_vectors() {
    let key = SigningKey::from_bytes(&[0x11; 32]);
    let signer = PublicKey(key.verifying_key().to_bytes());
    let officer = PublicKey([0x22; 32]);
    let submit = Transaction {
        chain_id: "carnet-vectors".into(),
        signer,
        officer: Some(officer),
        nonce: 1,
        expires_at_ms: 1_700_000_600_000,
        action: Action::SubmitDocument(DocumentSubmission {
            id: DocumentId([0x33; 16]),
            kind: DocumentKind::CertificateOfOrigin,
            recipients: vec![AdminCode("XB".into()), AdminCode("XC".into())],
            ucr_index: [0x44; 32],
            commitment: [0x55; 32],
            ciphertext_hash: [0x66; 32],
            ciphertext_len: 1234,
        }),
    };
    let access = Transaction {
        chain_id: "carnet-vectors".into(),
        signer,
        officer: None,
        nonce: 2,
        expires_at_ms: 1_700_000_600_000,
        action: Action::RecordAccess {
            document: DocumentId([0x33; 16]),
            version: 1,
            officer,
            purpose: "risk assessment".into(),
        },
    };
    let computed = json!({
        "secret_key": hex::encode(key.to_bytes()),
        "public_key": hex::encode(signer.0),
        "vectors": [tx_vector(&key, submit), tx_vector(&key, access)],
        "merkle": {
            "empty": hex::encode(merkle_root(&[])),
            "one": hex::encode(merkle_root(&[[1; 32]])),
            "three": hex::encode(merkle_root(&[[1; 32], [2; 32], [3; 32]])),
        },
        "api_request": {
            "method": "POST",
            "path_and_query": "/v1/documents",
            "timestamp_ms": 1_700_000_000_000u64,
            "body": "{\"kind\":\"export-declaration\"}",
            "signing_bytes": hex::encode(request_signing_bytes("POST", "/v1/documents", 1_700_000_000_000, b"{\"kind\":\"export-declaration\"}")),
            "signature": sign_request(&key, "POST", "/v1/documents", 1_700_000_000_000, b"{\"kind\":\"export-declaration\"}"),
        },
    });
    check("tx_vectors.json", computed);
}

#[test]
fn envelope_vectors() {
    let keys = DocumentKeys {
        dek: [0x01; 32],
        salt: [0x02; 32],
    };
    let nonce = [0x03; 24];
    let id = DocumentId([0x04; 16]);
    let payload = br#"{"exporter":"ACME","ucr":"5GB123456789000-ABC"}"#;
    let kind = DocumentKind::PhytosanitaryCertificate;
    let sealed = seal(payload, &keys, nonce, &id, 3, kind).unwrap();
    let recipient_secret = [0x05; 32];
    let seed = [0x06; 32];
    let info = wrap_info(&id, 3);
    let wrapped = wrap_keys(&keys, &x25519_public(&recipient_secret), seed, &info).unwrap();
    // The vectors also prove the stored values open.
    assert_eq!(
        open_and_check(&sealed.ciphertext, &keys, &id, 3, kind, &sealed.commitment).unwrap(),
        payload
    );
    assert_eq!(
        unwrap_keys(&wrapped, &recipient_secret, &info).unwrap(),
        keys
    );
    let computed = json!({
        "payload": {
            "dek": hex::encode(keys.dek),
            "salt": hex::encode(keys.salt),
            "nonce": hex::encode(nonce),
            "id": id.to_string(),
            "version": 3,
            "kind": kind.as_str(),
            "plaintext": String::from_utf8_lossy(payload),
            "associated_data": hex::encode(associated_data(&id, 3, kind)),
            "ciphertext": hex::encode(&sealed.ciphertext),
            "commitment": hex::encode(sealed.commitment),
            "ciphertext_hash": hex::encode(sealed.ciphertext_hash),
        },
        "wrap": {
            "suite": "HPKE base X25519-HKDF-SHA256 / HKDF-SHA256 / ChaCha20Poly1305",
            "recipient_secret": hex::encode(recipient_secret),
            "recipient_public": hex::encode(x25519_public(&recipient_secret)),
            "ephemeral_seed": hex::encode(seed),
            "info": hex::encode(&info),
            "enc": hex::encode(&wrapped.enc),
            "ciphertext": hex::encode(&wrapped.ciphertext),
        },
        "ucr_index": {
            "key": hex::encode([0x07; 32]),
            "ucr": " 5gb123456789000-abc ",
            "index": hex::encode(ucr_index(&[0x07; 32], " 5gb123456789000-abc ")),
        },
    });
    check("envelope_vectors.json", computed);
}
