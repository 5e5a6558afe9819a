//! Transaction and block wire formats: signatures, bounds, Merkle root, JSON form.

mod common;

use carnet_contracts::block::*;
use carnet_contracts::*;
use common::*;
use proptest::prelude::*;

#[test]
fn signed_transaction_verifies_and_roundtrips() {
    let signed = sign(submit_tx(1, &["XB"], 5));
    signed.verify().unwrap();
    let bytes = signed.encode();
    assert_eq!(SignedTransaction::decode(&bytes).unwrap(), signed);
    assert_eq!(
        signed.hash(),
        *blake3::hash(&signed.tx.signing_bytes()).as_bytes()
    );
    assert!(signed.tx.signing_bytes().starts_with(TX_DOMAIN));
}

#[test]
fn changed_transaction_or_wrong_key_fails_verification() {
    let mut signed = sign(submit_tx(1, &["XB"], 5));
    signed.tx.nonce += 1;
    assert!(matches!(
        signed.verify(),
        Err(ContractError::BadSignature(_))
    ));
    let by_other = submit_tx(1, &["XB"], 5).sign(&key(2));
    assert!(by_other.verify().is_err());
    let mut short = sign(submit_tx(1, &["XB"], 5));
    short.signature.pop();
    assert!(short.verify().unwrap_err().to_string().contains("63 bytes"));
}

#[test]
fn decode_refuses_oversize_and_trailing_bytes() {
    let signed = sign(submit_tx(1, &["XB"], 5));
    let mut trailing = signed.encode();
    trailing.push(0);
    assert!(SignedTransaction::decode(&trailing).is_err());
    assert!(SignedTransaction::decode(&vec![0u8; MAX_TX_BYTES + 1])
        .unwrap_err()
        .to_string()
        .contains("limit"));
    assert!(SignedTransaction::decode(&signed.encode()[..10]).is_err());
    // A length prefix claiming a huge string must not allocate it.
    let mut huge = CHAIN.len().to_le_bytes().to_vec();
    huge[7] = 0x7F;
    assert!(SignedTransaction::decode(&huge).is_err());
}

#[test]
fn batch_verification_names_the_offenders() {
    let mut txs: Vec<_> = (0..5)
        .map(|n| sign(submit_tx(n, &["XB"], n as u64)))
        .collect();
    assert!(verify_batch(&txs).iter().all(Result::is_ok));
    txs[3].tx.nonce = 99;
    txs[1].signature = vec![0; 10];
    let results = verify_batch(&txs);
    let bad: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, vec![1, 3]);
    assert!(verify_batch(&[]).is_empty());
}

#[test]
fn json_uses_hex_and_kebab_case() {
    let signed = sign(submit_tx(1, &["XB"], 5));
    let json = serde_json::to_value(&signed).unwrap();
    assert_eq!(json["tx"]["signer"], hex::encode(public(1).0));
    assert_eq!(json["signature"], hex::encode(&signed.signature));
    let sub = &json["tx"]["action"]["SubmitDocument"];
    assert_eq!(sub["id"], hex::encode([1u8; 16]));
    assert_eq!(sub["kind"], "export-declaration");
    assert_eq!(sub["commitment"], hex::encode([0xC0u8; 32]));
    let back: SignedTransaction = serde_json::from_value(json).unwrap();
    assert_eq!(back, signed);
    // bincode keeps raw bytes: the 32-byte key appears verbatim.
    let bin = signed.encode();
    assert!(bin.windows(32).any(|w| w == public(1).0));

    let g = serde_json::to_value(genesis()).unwrap();
    assert_eq!(
        g["administrations"][0]["encryption_key"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(g["officers"][0]["roles"][0], "officer");
    assert_eq!(serde_json::from_value::<Genesis>(g).unwrap(), genesis());
    assert!(serde_json::from_str::<PublicKey>("\"abcd\"").is_err());
}

#[test]
fn merkle_root_is_order_and_count_sensitive() {
    let l = |n: u8| [n; 32];
    let empty = merkle_root(&[]);
    assert_eq!(empty, *blake3::hash(b"carnet/merkle/empty/v1").as_bytes());
    assert_ne!(merkle_root(&[l(1)]), l(1), "leaves are hashed with a tag");
    assert_ne!(merkle_root(&[l(1), l(2)]), merkle_root(&[l(2), l(1)]));
    assert_ne!(
        merkle_root(&[l(1), l(2), l(3)]),
        merkle_root(&[l(1), l(2), l(3), l(3)])
    );
    let roots: std::collections::BTreeSet<_> = (0..=9u8)
        .map(|n| merkle_root(&(0..n).map(l).collect::<Vec<_>>()))
        .collect();
    assert_eq!(roots.len(), 10);
}

fn body(txs: Vec<SignedTransaction>) -> BlockBody {
    BlockBody::new(T0, code("XA"), txs, Some((4, [7; 32])))
}

#[test]
fn valid_block_passes_and_roundtrips() {
    let b = body(
        (0..4)
            .map(|n| sign(submit_tx(n, &["XB"], n as u64)))
            .collect(),
    );
    b.validate_structure().unwrap();
    assert_eq!(BlockBody::decode(&b.encode()).unwrap(), b);
    assert_ne!(b.hash(), body(vec![]).hash());
    body(vec![]).validate_structure().unwrap();
}

#[test]
fn broken_blocks_are_refused_with_the_rule_named() {
    let good: Vec<_> = (0..4)
        .map(|n| sign(submit_tx(n, &["XB"], n as u64)))
        .collect();

    let mut wrong_root = body(good.clone());
    wrong_root.tx_root = [0; 32];
    assert!(wrong_root
        .validate_structure()
        .unwrap_err()
        .to_string()
        .contains("tx_root"));

    let mut dup = good.clone();
    dup.push(good[0].clone());
    assert!(body(dup)
        .validate_structure()
        .unwrap_err()
        .to_string()
        .contains("twice"));

    let mut bad_sig = good.clone();
    bad_sig[2].signature[0] ^= 1;
    let err = body(bad_sig).validate_structure().unwrap_err();
    assert!(err.to_string().contains("transaction 2"), "{err}");

    let mut big = good[0].clone();
    big.tx.chain_id = "x".repeat(MAX_TX_BYTES);
    assert!(body(vec![big])
        .validate_structure()
        .unwrap_err()
        .to_string()
        .contains("limit"));

    let mut trailing = body(good).encode();
    trailing.push(1);
    assert!(BlockBody::decode(&trailing).is_err());
}

#[test]
fn only_signatures_the_caller_did_not_verify_are_checked() {
    let good: Vec<_> = (0..4)
        .map(|n| sign(submit_tx(n, &["XB"], n as u64)))
        .collect();
    let mut bad_sig = good.clone();
    bad_sig[1].signature[0] ^= 1;
    bad_sig[3].signature[0] ^= 1;
    let b = body(bad_sig);
    // The caller sees the hashes the root is built from, once.
    let mut asked = Vec::new();
    let err = b
        .validate_structure_with(|hashes, txs| {
            asked = hashes.to_vec();
            assert_eq!(txs.len(), hashes.len());
            vec![false, true, false, false]
        })
        .unwrap_err();
    assert_eq!(asked, b.txs.iter().map(|t| t.hash()).collect::<Vec<_>>());
    assert!(err.to_string().contains("transaction 3"), "{err}");
    // Vouching for both bad ones skips them; structure is still checked.
    b.validate_structure_with(|_, _| vec![false, true, false, true])
        .unwrap();
    // A wrong-length answer verifies everything.
    let err = b.validate_structure_with(|_, _| vec![true]).unwrap_err();
    assert!(err.to_string().contains("transaction 1"), "{err}");
    let mut wrong_root = body(good);
    wrong_root.tx_root = [0; 32];
    assert!(wrong_root
        .validate_structure_with(|_, txs| vec![true; txs.len()])
        .unwrap_err()
        .to_string()
        .contains("tx_root"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_transaction_roundtrips_through_bincode_and_json(
        nonce in any::<u64>(),
        expiry in any::<u64>(),
        id in any::<[u8; 16]>(),
        purpose in "[ -~]{0,40}",
        access in any::<bool>(),
    ) {
        let action = if access {
            Action::RecordAccess { document: DocumentId(id), version: 1, officer: public(5), purpose }
        } else {
            let mut s = submission(1, &["XB", "XC"]);
            s.id = DocumentId(id);
            Action::SubmitDocument(s)
        };
        let tx = Transaction { chain_id: CHAIN.into(), signer: public(1), officer: None, nonce, expires_at_ms: expiry, action };
        let signed = tx.sign(&key(1));
        prop_assert!(signed.verify().is_ok());
        prop_assert_eq!(&SignedTransaction::decode(&signed.encode()).unwrap(), &signed);
        let json = serde_json::to_string(&signed).unwrap();
        prop_assert_eq!(&serde_json::from_str::<SignedTransaction>(&json).unwrap(), &signed);
    }

    #[test]
    fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedTransaction::decode(&bytes);
        let _ = BlockBody::decode(&bytes);
    }
}

/// A signer whose key is a small-order point (here the identity) is refused even where
/// a cofactored batch equation would let its signature through; the others in the
/// batch pass. Keys are decompressed once per batch, so the check must follow each key.
#[test]
fn batch_verification_refuses_weak_signers() {
    let mut weak = sign(submit_tx(9, &["XB"], 9));
    let mut identity = [0u8; 32];
    identity[0] = 1;
    weak.tx.signer = PublicKey(identity);
    let mut signature = vec![0u8; 64];
    signature[0] = 1; // R = identity, s = 0
    weak.signature = signature;
    let txs = vec![
        sign(submit_tx(1, &["XB"], 1)),
        weak.clone(),
        sign(submit_tx(2, &["XB"], 2)),
        weak,
    ];
    let ok: Vec<bool> = verify_batch(&txs).iter().map(Result::is_ok).collect();
    assert_eq!(ok, vec![true, false, true, false]);
}
