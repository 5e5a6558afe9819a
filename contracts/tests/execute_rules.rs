//! Ledger rules as a table: each case is one transaction executed in block 2 on top of
//! a state holding document 1 (XA → XB), with the outcome a user would see.

mod common;

use carnet_contracts::execute::{execute_block, query, MemoryState, TxEvent};
use carnet_contracts::*;
use common::*;

use Expect::*;

fn with(mut tx: Transaction, change: impl FnOnce(&mut Transaction)) -> Transaction {
    change(&mut tx);
    tx
}

fn submission_mut(tx: &mut Transaction) -> &mut DocumentSubmission {
    match &mut tx.action {
        Action::SubmitDocument(s) => s,
        _ => unreachable!("not a submission"),
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let submit = || submit_tx(2, &["XB", "XC"], 7);
    let access = || access_tx("XB", XB_OFFICER, 1, 7);
    let seventeen: Vec<AdminCode> = (0..17u8)
        .map(|i| code(&format!("Y{}", (b'A' + i) as char)))
        .collect();
    vec![
        // --- SubmitDocument ---
        Case { name: "a valid submission is final", tx: submit(), expect: Accepted },
        Case { name: "another chain", tx: with(submit(), |t| t.chain_id = "other".into()), expect: Rejected("chain_id") },
        Case { name: "expired before block time", tx: with(submit(), |t| t.expires_at_ms = T0 + 999), expect: Rejected("expiry: transaction expired") },
        Case { name: "expiry beyond the ttl", tx: with(submit(), |t| { t.expires_at_ms = T0 + 1_000 + MAX_TX_TTL_MS + 1 }), expect: Rejected("expiry") },
        Case { name: "expiry exactly at the ttl", tx: with(submit(), |t| t.expires_at_ms = T0 + 1_000 + MAX_TX_TTL_MS), expect: Accepted },
        Case { name: "replay of document 1's transaction", tx: submit_tx(1, &["XB"], 0), expect: Rejected("replay") },
        Case { name: "signer is no node key", tx: with(submit(), |t| t.signer = public(9)), expect: Rejected("signer: ") },
        Case { name: "signer's administration inactive", tx: with(submit(), |t| t.signer = public(node_seed("XD"))), expect: Rejected("signer: administration XD is not active") },
        Case { name: "no officer named", tx: with(submit(), |t| t.officer = None), expect: Rejected("officer: a document submission must name") },
        Case { name: "unregistered officer", tx: with(submit(), |t| t.officer = Some(public(99))), expect: Rejected("is not registered") },
        Case { name: "officer of another administration", tx: with(submit(), |t| t.officer = Some(public(XB_OFFICER))), expect: Rejected("registered to XB, not to XA") },
        Case { name: "revoked officer", tx: with(submit(), |t| t.officer = Some(public(XA_REVOKED))), expect: Rejected("revoked") },
        Case { name: "auditor cannot submit", tx: with(submit(), |t| t.officer = Some(public(XA_AUDITOR))), expect: Rejected("officer role") },
        Case { name: "no recipients", tx: with(submit(), |t| submission_mut(t).recipients.clear()), expect: Rejected("recipients: none named") },
        Case { name: "seventeen recipients", tx: with(submit(), |t| { submission_mut(t).recipients = seventeen.clone() }), expect: Rejected("at most 16") },
        Case { name: "recipient twice", tx: with(submit(), |t| { submission_mut(t).recipients = vec![code("XB"), code("XB")] }), expect: Rejected("XB named twice") },
        Case { name: "issuer among recipients", tx: with(submit(), |t| submission_mut(t).recipients.push(code("XA"))), expect: Rejected("own recipient") },
        Case { name: "recipient not a member", tx: with(submit(), |t| submission_mut(t).recipients.push(code("QQ"))), expect: Rejected("QQ is not a member") },
        Case { name: "recipient inactive", tx: with(submit(), |t| submission_mut(t).recipients.push(code("XD"))), expect: Rejected("XD is not an active member") },
        Case { name: "ciphertext over the limit", tx: with(submit(), |t| { submission_mut(t).ciphertext_len = MAX_CIPHERTEXT_BYTES as u32 + 1 }), expect: Rejected("ciphertext_len") },
        Case { name: "ciphertext shorter than nonce and tag", tx: with(submit(), |t| submission_mut(t).ciphertext_len = 39), expect: Rejected("ciphertext_len") },
        Case { name: "document id in use", tx: with(submit(), |t| submission_mut(t).id = doc_id(1)), expect: Rejected("document id") },
        // --- RecordAccess ---
        Case { name: "a recipient's read is recorded", tx: access(), expect: Accepted },
        Case { name: "the issuer's read is recorded", tx: access_tx("XA", XA_AUDITOR, 1, 7), expect: Accepted },
        Case { name: "unknown document", tx: access_tx("XB", XB_OFFICER, 9, 7), expect: Rejected("document: ") },
        Case { name: "unknown version", tx: with(access(), |t| { if let Action::RecordAccess { version, .. } = &mut t.action { *version = 2 } }), expect: Rejected("version 2 does not exist") },
        Case { name: "administration not a party", tx: access_tx("XC", XC_OFFICER, 1, 7), expect: Rejected("neither issuer nor recipient") },
        Case { name: "officer of another administration reads", tx: access_tx("XB", XA_OFFICER, 1, 7), expect: Rejected("registered to XA, not to XB") },
        Case { name: "unregistered reader", tx: access_tx("XB", 99, 1, 7), expect: Rejected("is not registered") },
        Case { name: "empty purpose", tx: with(access(), |t| { if let Action::RecordAccess { purpose, .. } = &mut t.action { purpose.clear() } }), expect: Rejected("purpose") },
        Case { name: "officer fields disagree", tx: with(access(), |t| t.officer = Some(public(XA_OFFICER))), expect: Rejected("officer: transaction names") },
    ]
}

#[test]
fn rules_table() {
    run_case_table(&state_with_document(), &ctx(2, T0 + 1_000), cases());
}

#[test]
fn accepted_submission_is_queryable_by_id_and_ucr() {
    let mut state = state_with_document();
    let outcome = execute_block(
        &mut state,
        &ctx(2, T0 + 5),
        &[sign(submit_tx(2, &["XB", "XC"], 1))],
    )
    .unwrap();
    let Ok(TxEvent::DocumentFinal(record)) = &outcome.receipts[0].outcome else {
        panic!("{:?}", outcome.receipts[0]);
    };
    assert_eq!(record.version, 1);
    assert_eq!(record.status, DocumentStatus::Active);
    assert_eq!((record.height, record.time_ms), (2, T0 + 5));
    assert_eq!(record.issuer, code("XA"));
    assert_eq!(record.submitted_by, public(XA_OFFICER));
    assert_eq!(
        query::document(&state, &doc_id(2)).unwrap().as_ref(),
        Some(record)
    );
    let by_ucr = query::documents_by_ucr(&state, &[0xAB; 32], 10).unwrap();
    assert_eq!(
        by_ucr.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![doc_id(1), doc_id(2)]
    );
    assert!(query::documents_by_ucr(&state, &[0xAC; 32], 10)
        .unwrap()
        .is_empty());
    assert_eq!(query::last_height(&state).unwrap(), 2);
    assert_eq!(query::app_hash(&state).unwrap(), outcome.app_hash);
}

#[test]
fn access_log_lists_reads_in_order() {
    let mut state = state_with_document();
    let reads = [
        sign(access_tx("XB", XB_OFFICER, 1, 1)),
        sign(access_tx("XA", XA_OFFICER, 1, 2)),
    ];
    let outcome = execute_block(&mut state, &ctx(2, T0 + 5), &reads).unwrap();
    assert!(
        outcome.receipts.iter().all(|r| r.outcome.is_ok()),
        "{:?}",
        outcome.receipts
    );
    let log = query::access_log(&state, &doc_id(1), 10).unwrap();
    let who: Vec<_> = log
        .iter()
        .map(|a| (a.administration.as_str().to_string(), a.officer))
        .collect();
    assert_eq!(
        who,
        vec![
            ("XB".into(), public(XB_OFFICER)),
            ("XA".into(), public(XA_OFFICER))
        ]
    );
    assert_eq!(query::access_log(&state, &doc_id(1), 1).unwrap().len(), 1);
}

#[test]
fn same_transaction_twice_in_one_block_executes_once() {
    let mut state = state_with_document();
    let tx = sign(submit_tx(2, &["XB"], 1));
    let outcome = execute_block(&mut state, &ctx(2, T0), &[tx.clone(), tx]).unwrap();
    assert!(outcome.receipts[0].outcome.is_ok());
    let err = outcome.receipts[1].outcome.clone().unwrap_err();
    assert!(err.to_string().contains("replay"), "{err}");
}

#[test]
fn two_submissions_of_one_id_in_one_block_keep_the_first() {
    let mut state = state_with_document();
    let first = sign(submit_tx(2, &["XB"], 1));
    let second = sign(submit_tx(2, &["XC"], 2));
    let outcome = execute_block(&mut state, &ctx(2, T0), &[first, second]).unwrap();
    let err = outcome.receipts[1].outcome.clone().unwrap_err();
    assert!(err.to_string().contains("document id"), "{err}");
    let doc = query::document(&state, &doc_id(2)).unwrap().unwrap();
    assert_eq!(doc.recipients, vec![code("XB")]);
}

#[test]
fn replay_entries_are_pruned_after_expiry_and_stay_rejected() {
    let mut state = state_with_document();
    let seen_count = |s: &MemoryState| {
        s.entries()
            .keys()
            .filter(|k| k.starts_with(b"seen/"))
            .count()
    };
    assert_eq!(seen_count(&state), 1, "one replay entry for document 1");
    // Block 2 at a time past the expiry of document 1's transaction.
    let late = T0 + 60_001;
    execute_block(&mut state, &ctx(2, late), &[]).unwrap();
    assert_eq!(seen_count(&state), 0, "expired replay entries are pruned");
    // The old transaction cannot come back, even if a later block's time went backwards.
    let outcome = execute_block(
        &mut state,
        &ctx(3, T0 + 10),
        &[sign(submit_tx(1, &["XB"], 0))],
    )
    .unwrap();
    let err = outcome.receipts[0].outcome.clone().unwrap_err();
    assert!(err.to_string().contains("expiry"), "{err}");
}

#[test]
fn blocks_must_come_in_height_order() {
    let mut state = state_with_document();
    let before = state.clone();
    let err = execute_block(&mut state, &ctx(3, T0), &[]).unwrap_err();
    assert!(err.to_string().contains("does not follow"), "{err}");
    assert_eq!(state, before);
    assert!(execute_block(&mut state, &ctx(1, T0), &[]).is_err());
}

#[test]
fn queries_answer_about_members_and_officers() {
    let state = state_with_document();
    assert_eq!(query::chain_id(&state).unwrap().as_deref(), Some(CHAIN));
    let members = query::administrations(&state).unwrap();
    assert_eq!(
        members.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(),
        ["XA", "XB", "XC", "XD"]
    );
    let xb = query::administration_by_node_key(&state, &public(node_seed("XB")))
        .unwrap()
        .unwrap();
    assert_eq!(xb.code, code("XB"));
    assert!(query::administration_by_node_key(&state, &public(9))
        .unwrap()
        .is_none());
    assert_eq!(
        query::officer(&state, &public(XA_AUDITOR))
            .unwrap()
            .unwrap()
            .roles,
        vec![Role::Auditor]
    );
    assert!(query::administration(&state, &code("QQ"))
        .unwrap()
        .is_none());
    assert!(query::document(&state, &doc_id(9)).unwrap().is_none());
}

/// A state store that records where each scan starts.
struct ScanLog {
    inner: MemoryState,
    starts: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl execute::StateStore for ScanLog {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, execute::StoreError> {
        self.inner.get(key)
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.inner.delete(key)
    }
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<execute::Entry>, execute::StoreError> {
        self.starts.borrow_mut().push(start.to_vec());
        self.inner.scan_prefix_from(prefix, start, limit)
    }
}

#[test]
fn replay_pruning_is_bounded_per_block_and_starts_at_its_watermark() {
    use execute::{state_keys, StateStore, MAX_PRUNE_PER_BLOCK};
    let mut state = ScanLog {
        inner: state_with_document(),
        starts: Default::default(),
    };
    // More expired replay entries than one block prunes, one per millisecond after T0.
    let extra = MAX_PRUNE_PER_BLOCK + 10;
    for i in 0..extra as u64 {
        let hash = blake3::hash(&i.to_be_bytes());
        state.put(state_keys::seen(T0 + 1 + i, hash.as_bytes()), Vec::new());
    }
    let late = T0 + 3_600_000;
    let seen = |s: &ScanLog| {
        s.inner
            .entries()
            .keys()
            .filter(|k| k.starts_with(state_keys::SEEN))
            .count()
    };
    let watermark = |s: &ScanLog| {
        let bytes = s.get(state_keys::PRUNED_BEFORE_MS).unwrap().unwrap();
        u64::from_be_bytes(bytes.try_into().unwrap())
    };
    let before = seen(&state);
    execute_block(&mut state, &ctx(2, late), &[]).unwrap();
    assert_eq!(
        seen(&state),
        before - MAX_PRUNE_PER_BLOCK,
        "one block's worth pruned"
    );
    // The watermark stops at the first entry left (not at the block time): every entry
    // below it is gone, and the next block's scan seeks straight to it.
    let first_left = state
        .inner
        .entries()
        .keys()
        .find(|k| k.starts_with(state_keys::SEEN))
        .map(|k| u64::from_be_bytes(k[state_keys::SEEN.len()..][..8].try_into().unwrap()))
        .unwrap();
    assert_eq!(watermark(&state), first_left);
    state.starts.borrow_mut().clear();
    execute_block(&mut state, &ctx(3, late + 1), &[]).unwrap();
    assert_eq!(seen(&state), 0, "the rest pruned by the next block");
    assert_eq!(watermark(&state), late + 1);
    let replay_scan = state
        .starts
        .borrow()
        .iter()
        .find(|s| s.starts_with(state_keys::SEEN))
        .cloned()
        .unwrap();
    assert_eq!(replay_scan, state_keys::seen(first_left, &[0u8; 32]));
    // A transaction that expired below the watermark stays refused.
    let outcome = execute_block(
        &mut state,
        &ctx(4, T0 + 10),
        &[sign(submit_tx(1, &["XB"], 0))],
    )
    .unwrap();
    let err = outcome.receipts[0].outcome.clone().unwrap_err();
    assert!(err.to_string().contains("expiry"), "{err}");
}
