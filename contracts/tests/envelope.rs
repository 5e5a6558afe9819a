//! The crypto envelope as a recipient and an attacker see it.

use carnet_contracts::envelope::*;
use carnet_contracts::keys::x25519_public;
use carnet_contracts::{ucr_index, DocumentId, DocumentKind};

const PAYLOAD: &[u8] = br#"{"declarant":"ACME Ltd","hs":"090111","value":12000}"#;
const ID: DocumentId = DocumentId([0x42; 16]);
const KIND: DocumentKind = DocumentKind::ExportDeclaration;

fn keys() -> DocumentKeys {
    DocumentKeys {
        dek: [1; 32],
        salt: [2; 32],
    }
}

fn sealed() -> Sealed {
    seal(PAYLOAD, &keys(), [3; 24], &ID, 1, KIND).unwrap()
}

#[test]
fn sealed_payload_opens_with_its_keys_and_binding() {
    let s = sealed();
    assert_eq!(open(&s.ciphertext, &keys(), &ID, 1, KIND).unwrap(), PAYLOAD);
    assert_eq!(
        open_and_check(&s.ciphertext, &keys(), &ID, 1, KIND, &s.commitment).unwrap(),
        PAYLOAD
    );
    assert_eq!(s.ciphertext_hash, *blake3::hash(&s.ciphertext).as_bytes());
    assert_eq!(s.commitment, commitment(&[2; 32], PAYLOAD));
    assert_eq!(s.ciphertext.len(), 24 + PAYLOAD.len() + 16);
    assert!(
        !s.ciphertext
            .windows(8)
            .any(|w| PAYLOAD.windows(8).any(|p| p == w)),
        "plaintext leaks"
    );
}

#[test]
fn other_document_version_or_kind_does_not_open() {
    let s = sealed();
    let other_id = DocumentId([0x43; 16]);
    let cases = [
        ("id", other_id, 1, KIND),
        ("version", ID, 2, KIND),
        ("kind", ID, 1, DocumentKind::ImportDeclaration),
    ];
    for (what, id, version, kind) in cases {
        let err = open(&s.ciphertext, &keys(), &id, version, kind).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{what}: {err}");
    }
}

#[test]
fn tampered_ciphertext_does_not_open() {
    let s = sealed();
    for position in [0, 23, 24, s.ciphertext.len() / 2, s.ciphertext.len() - 1] {
        let mut bad = s.ciphertext.clone();
        bad[position] ^= 0x01;
        assert!(
            open(&bad, &keys(), &ID, 1, KIND).is_err(),
            "flip at {position}"
        );
    }
    assert!(open(
        &s.ciphertext[..s.ciphertext.len() - 1],
        &keys(),
        &ID,
        1,
        KIND
    )
    .is_err());
    assert!(open(&s.ciphertext[..10], &keys(), &ID, 1, KIND).is_err());
    let wrong = DocumentKeys {
        dek: [9; 32],
        salt: [2; 32],
    };
    assert!(open(&s.ciphertext, &wrong, &ID, 1, KIND).is_err());
}

#[test]
fn commitment_mismatch_is_detected_on_open() {
    let s = sealed();
    let err = open_and_check(&s.ciphertext, &keys(), &ID, 1, KIND, &[0; 32]).unwrap_err();
    assert!(err.to_string().contains("commitment"), "{err}");
}

#[test]
fn a_guess_cannot_be_confirmed_without_the_salt() {
    // Same payload, different salts: unrelated commitments, and neither equals the
    // unsalted hash an attacker could compute from a guess.
    let a = commitment(&[2; 32], PAYLOAD);
    let b = commitment(&[3; 32], PAYLOAD);
    assert_ne!(a, b);
    assert_ne!(a, *blake3::hash(PAYLOAD).as_bytes());
    assert_ne!(a, commitment(&[0; 32], PAYLOAD));
}

#[test]
fn wrapped_keys_open_only_for_their_recipient_and_document() {
    let recipient_secret = [7u8; 32];
    let info = wrap_info(&ID, 1);
    let wrapped = wrap_keys(&keys(), &x25519_public(&recipient_secret), [5; 32], &info).unwrap();
    assert_eq!(wrapped.enc.len(), 32);
    assert_eq!(wrapped.ciphertext.len(), 64 + 16);
    assert_eq!(
        unwrap_keys(&wrapped, &recipient_secret, &info).unwrap(),
        keys()
    );

    assert!(
        unwrap_keys(&wrapped, &[8u8; 32], &info).is_err(),
        "another administration's key"
    );
    assert!(
        unwrap_keys(&wrapped, &recipient_secret, &wrap_info(&ID, 2)).is_err(),
        "another version"
    );
    let mut tampered = wrapped.clone();
    tampered.ciphertext[0] ^= 1;
    assert!(unwrap_keys(&tampered, &recipient_secret, &info).is_err());
    let mut short = wrapped.clone();
    short.enc.pop();
    assert!(unwrap_keys(&short, &recipient_secret, &info).is_err());
}

#[test]
fn wrapping_is_deterministic_in_the_seed_only() {
    let pk = x25519_public(&[7u8; 32]);
    let info = wrap_info(&ID, 1);
    let a = wrap_keys(&keys(), &pk, [5; 32], &info).unwrap();
    assert_eq!(a, wrap_keys(&keys(), &pk, [5; 32], &info).unwrap());
    let b = wrap_keys(&keys(), &pk, [6; 32], &info).unwrap();
    assert_ne!(a.enc, b.enc);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn wrapped_keys_json_uses_hex() {
    let wrapped = wrap_keys(&keys(), &x25519_public(&[7u8; 32]), [5; 32], b"i").unwrap();
    let json = serde_json::to_value(&wrapped).unwrap();
    assert_eq!(json["enc"].as_str().unwrap(), hex::encode(&wrapped.enc));
    let back: WrappedKeys = serde_json::from_value(json).unwrap();
    assert_eq!(back, wrapped);
}

#[test]
fn document_keys_bytes_roundtrip_and_debug_is_redacted() {
    let bytes = keys().to_bytes();
    assert_eq!(DocumentKeys::from_bytes(bytes.as_slice()).unwrap(), keys());
    assert!(DocumentKeys::from_bytes(&bytes[..63]).is_err());
    assert_eq!(format!("{:?}", keys()), "DocumentKeys(<redacted>)");
}

#[test]
fn ucr_index_normalizes_and_depends_on_the_key() {
    let key = [9u8; 32];
    assert_eq!(
        ucr_index(&key, " 5gb123456789000-abc "),
        ucr_index(&key, "5GB123456789000-ABC")
    );
    assert_ne!(
        ucr_index(&key, "5GB123456789000-ABC"),
        ucr_index(&[8u8; 32], "5GB123456789000-ABC")
    );
    assert_ne!(
        ucr_index(&key, "5GB123456789000-ABC"),
        ucr_index(&key, "5GB123456789000-ABD")
    );
}

#[test]
fn a_key_batch_opens_only_for_its_recipient_and_exactly_its_versions() {
    let recipient_secret = [7u8; 32];
    let pk = x25519_public(&recipient_secret);
    let other = DocumentId([0x43; 16]);
    let versions = [(ID, 1), (ID, 2), (other, 1)];
    let batch: Vec<DocumentKeys> = (0..3u8)
        .map(|i| DocumentKeys {
            dek: [10 + i; 32],
            salt: [20 + i; 32],
        })
        .collect();
    let wrapped = wrap_key_batch(&versions, &batch, &pk, [5; 32]).unwrap();
    assert_eq!(
        wrapped.ciphertext.len(),
        3 * 64 + 16,
        "one seal for all three"
    );
    assert_eq!(
        unwrap_key_batch(&versions, &wrapped, &recipient_secret).unwrap(),
        batch
    );
    assert!(
        unwrap_key_batch(&versions, &wrapped, &[8u8; 32]).is_err(),
        "another administration's key"
    );
    let swapped = [(ID, 2), (ID, 1), (other, 1)];
    assert!(
        unwrap_key_batch(&swapped, &wrapped, &recipient_secret).is_err(),
        "keys cannot be moved to another version of the batch"
    );
    assert!(
        unwrap_key_batch(&versions[..2], &wrapped, &recipient_secret).is_err(),
        "nor the batch shortened"
    );
    // A single-version wrap and a batch of one are not interchangeable.
    let one = wrap_key_batch(&versions[..1], &batch[..1], &pk, [5; 32]).unwrap();
    assert!(unwrap_keys(&one, &recipient_secret, &wrap_info(&ID, 1)).is_err());
    let mut tampered = wrapped.clone();
    tampered.ciphertext[70] ^= 1;
    assert!(unwrap_key_batch(&versions, &tampered, &recipient_secret).is_err());
}

#[test]
fn a_key_batch_is_bounded_and_matched_to_its_keys() {
    let pk = x25519_public(&[7u8; 32]);
    assert!(wrap_key_batch(&[], &[], &pk, [5; 32]).is_err(), "empty");
    let too_many: Vec<(DocumentId, u32)> =
        (0..=MAX_KEYS_PER_WRAP as u32).map(|v| (ID, v)).collect();
    let keys_for_all = vec![keys(); too_many.len()];
    assert!(wrap_key_batch(&too_many, &keys_for_all, &pk, [5; 32]).is_err());
    assert!(
        wrap_key_batch(&[(ID, 1), (ID, 2)], &[keys()], &pk, [5; 32]).is_err(),
        "a key per version"
    );
    let wrapped = wrap_key_batch(&[(ID, 1)], &[keys()], &pk, [5; 32]).unwrap();
    assert!(unwrap_key_batch(&too_many, &wrapped, &[7u8; 32]).is_err());
}
