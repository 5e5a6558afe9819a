//! Replicas agree: the same blocks applied to fresh states give byte-identical states and
//! app hashes, and the state holds exactly what the receipts announced.

mod common;

use carnet_contracts::execute::{
    apply_genesis, execute_block, query, BlockOutcome, MemoryState, TxEvent,
};
use carnet_contracts::*;
use common::*;
use proptest::prelude::*;

const ADMINS: [&str; 4] = ["XA", "XB", "XC", "XD"];
const OFFICERS: [u8; 5] = [XA_OFFICER, XA_AUDITOR, XA_REVOKED, XB_OFFICER, XC_OFFICER];

/// Officer indices 0..5 pick from `OFFICERS`; 5..10 pick the administration's own
/// officer, so that most generated transactions pass the officer rules.
fn officer_key(admin: usize, officer: usize) -> PublicKey {
    match (officer, ADMINS[admin]) {
        (i, _) if i < OFFICERS.len() => public(OFFICERS[i]),
        (_, "XA") => public(XA_OFFICER),
        (_, "XB") => public(XB_OFFICER),
        (_, "XC") => public(XC_OFFICER),
        _ => public(99),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Submit {
        admin: usize,
        officer: usize,
        id: u8,
        recipients: u8,
        ttl_ms: u64,
    },
    Access {
        admin: usize,
        officer: usize,
        id: u8,
    },
    /// Re-send an earlier transaction of the run.
    Replay { index: usize },
    /// Amend (`cancel` false) or cancel a document.
    Change {
        admin: usize,
        officer: usize,
        id: u8,
        cancel: bool,
    },
    /// Erase a document (issuer's supervisor XA_SUPERVISOR when `officer` ≥ 5).
    Erase {
        admin: usize,
        officer: usize,
        id: u8,
    },
    /// A node attests destruction, naming an erasure height near the current one.
    Attest { admin: usize, id: u8, back: u64 },
    /// XA's admin adds or revokes an officer.
    Officer { seed: u8, revoke: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..10usize, 0..20u8, any::<u8>(), 0..120_000u64).prop_map(
            |(admin, officer, id, recipients, ttl_ms)| Op::Submit {
                admin,
                officer,
                id,
                recipients,
                ttl_ms
            }
        ),
        (0..4usize, 0..10usize, 0..20u8).prop_map(|(admin, officer, id)| Op::Access {
            admin,
            officer,
            id
        }),
        any::<usize>().prop_map(|index| Op::Replay { index }),
        (0..4usize, 0..10usize, 0..20u8, any::<bool>()).prop_map(|(admin, officer, id, cancel)| {
            Op::Change {
                admin,
                officer,
                id,
                cancel,
            }
        }),
        (0..4usize, 0..10usize, 0..20u8).prop_map(|(admin, officer, id)| Op::Erase {
            admin,
            officer,
            id
        }),
        (0..4usize, 0..20u8, 0..3u64).prop_map(|(admin, id, back)| Op::Attest { admin, id, back }),
        (20..26u8, any::<bool>()).prop_map(|(seed, revoke)| Op::Officer { seed, revoke }),
    ]
}

/// Blocks: (milliseconds since the previous block, operations).
fn blocks() -> impl Strategy<Value = Vec<(u64, Vec<Op>)>> {
    proptest::collection::vec((0..40_000u64, proptest::collection::vec(op(), 0..8)), 1..12)
}

fn build(ops: &[(u64, Vec<Op>)]) -> Vec<(u64, Vec<SignedTransaction>)> {
    let mut time = T0;
    let mut sent: Vec<SignedTransaction> = Vec::new();
    let mut out = Vec::new();
    for (nonce_base, (step, block_ops)) in ops.iter().enumerate() {
        time += step;
        let mut txs = Vec::new();
        for (i, op) in block_ops.iter().enumerate() {
            let nonce = (nonce_base * 100 + i) as u64;
            let signed = match op {
                Op::Submit {
                    admin,
                    officer,
                    id,
                    recipients,
                    ttl_ms,
                } => {
                    // The high bit keeps the mask as drawn; otherwise it is made valid.
                    let mut mask = *recipients;
                    if mask & 0x80 == 0 {
                        mask &= !(1 << admin) & !(1 << 3);
                        if mask & 0x0F == 0 {
                            mask |= 1 << ((admin + 1) % 3);
                        }
                    }
                    let recipients: Vec<&str> = ADMINS
                        .iter()
                        .enumerate()
                        .filter(|(b, _)| mask & (1 << b) != 0)
                        .map(|(_, c)| *c)
                        .collect();
                    let mut tx = submit_tx(*id, &recipients, nonce);
                    tx.signer = public(node_seed(ADMINS[*admin]));
                    tx.officer = Some(officer_key(*admin, *officer));
                    tx.expires_at_ms = time + ttl_ms;
                    sign(tx)
                }
                Op::Access { admin, officer, id } => {
                    let mut tx = access_tx(ADMINS[*admin], 0, *id, nonce);
                    let reader = officer_key(*admin, *officer);
                    tx.officer = Some(reader);
                    if let Action::RecordAccess { officer, .. } = &mut tx.action {
                        *officer = reader;
                    }
                    tx.expires_at_ms = time + 1;
                    sign(tx)
                }
                Op::Change {
                    admin,
                    officer,
                    id,
                    cancel,
                } => {
                    let action = if *cancel {
                        Action::CancelDocument {
                            id: doc_id(*id),
                            reason: "withdrawn".into(),
                        }
                    } else {
                        Action::AmendDocument {
                            id: doc_id(*id),
                            submission: submission(*id, &["XB"]),
                        }
                    };
                    let mut tx = act(ADMINS[*admin], 0, nonce, action);
                    tx.officer = Some(officer_key(*admin, *officer));
                    tx.expires_at_ms = time + 1;
                    sign(tx)
                }
                Op::Erase { admin, officer, id } => {
                    let mut tx = act(
                        ADMINS[*admin],
                        0,
                        nonce,
                        Action::EraseDocument {
                            id: doc_id(*id),
                            reason: "r".into(),
                            legal_basis: "b".into(),
                        },
                    );
                    tx.officer = Some(if *officer >= 5 {
                        public(XA_SUPERVISOR)
                    } else {
                        officer_key(*admin, *officer)
                    });
                    tx.expires_at_ms = time + 1;
                    sign(tx)
                }
                Op::Attest { admin, id, back } => {
                    let height = (out.len() as u64 + 1).saturating_sub(*back);
                    let mut tx = act(
                        ADMINS[*admin],
                        0,
                        nonce,
                        Action::AttestDestruction(erasure::DestructionAttestation {
                            document: doc_id(*id),
                            administration: code(ADMINS[*admin]),
                            erasure_height: height,
                            versions: 1,
                        }),
                    );
                    tx.expires_at_ms = time + 1;
                    sign(tx)
                }
                Op::Officer { seed, revoke } => {
                    let action = if *revoke {
                        Action::RevokeOfficer { key: public(*seed) }
                    } else {
                        Action::AddOfficer {
                            key: public(*seed),
                            name: "n".into(),
                            roles: vec![Role::Officer],
                        }
                    };
                    let mut tx = act("XA", XA_ADMIN, nonce, action);
                    tx.expires_at_ms = time + 1;
                    sign(tx)
                }
                Op::Replay { index } if !sent.is_empty() => sent[index % sent.len()].clone(),
                Op::Replay { .. } => continue,
            };
            sent.push(signed.clone());
            txs.push(signed);
        }
        out.push((time, txs));
    }
    out
}

fn run(blocks: &[(u64, Vec<SignedTransaction>)]) -> (MemoryState, Vec<BlockOutcome>) {
    let mut state = MemoryState::new();
    apply_genesis(&mut state, &genesis()).unwrap();
    let outcomes = blocks
        .iter()
        .enumerate()
        .map(|(h, (time, txs))| execute_block(&mut state, &ctx(h as u64 + 1, *time), txs).unwrap())
        .collect();
    (state, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replicas_reach_identical_state_and_app_hash(ops in blocks()) {
        let blocks = build(&ops);
        let (a, outcomes_a) = run(&blocks);
        let (b, outcomes_b) = run(&blocks);
        prop_assert_eq!(a.to_bytes(), b.to_bytes());
        prop_assert_eq!(&outcomes_a, &outcomes_b);
        prop_assert_eq!(query::app_hash(&a).unwrap(), outcomes_a.last().unwrap().app_hash);

        // The state holds exactly what the receipts announced.
        let mut documents = 0;
        for outcome in &outcomes_a {
            for receipt in &outcome.receipts {
                match &receipt.outcome {
                    Ok(TxEvent::DocumentFinal(record)) => {
                        documents += 1;
                        // Later blocks may amend, cancel or erase it: compare the version
                        // this receipt announced, apart from its status.
                        let found = query::document_version(&a, &record.id, record.version).unwrap();
                        let found = found.map(|f| DocumentRecord { status: record.status, ..f });
                        prop_assert_eq!(found.as_ref(), Some(record));
                    }
                    Ok(TxEvent::AccessRecorded(access)) => {
                        let log = query::access_log(&a, &access.document, 10_000).unwrap();
                        prop_assert!(log.contains(access));
                    }
                    Ok(TxEvent::DocumentAmended { record, .. }) => {
                        documents += 1;
                        let found = query::document_version(&a, &record.id, record.version).unwrap();
                        prop_assert_eq!(found.map(|f| f.version), Some(record.version));
                    }
                    Ok(_) | Err(_) => {}
                }
            }
        }
        let stored = a.entries().keys().filter(|k| k.starts_with(b"doc/")).count();
        prop_assert_eq!(stored, documents);
        // No transaction hash was accepted twice.
        let mut accepted: Vec<_> = outcomes_a.iter().flat_map(|o| &o.receipts).filter(|r| r.outcome.is_ok()).map(|r| r.tx_hash).collect();
        let total = accepted.len();
        accepted.sort();
        accepted.dedup();
        prop_assert_eq!(accepted.len(), total);
    }

    #[test]
    fn app_hash_detects_a_diverging_replica(ops in blocks()) {
        let blocks = build(&ops);
        let (_, honest) = run(&blocks);
        // A replica whose state differs by one officer's status ends with another hash.
        let mut state = MemoryState::new();
        let mut g = genesis();
        g.officers[2].active = true;
        apply_genesis(&mut state, &g).unwrap();
        let mut last = [0; 32];
        for (h, (time, txs)) in blocks.iter().enumerate() {
            last = execute_block(&mut state, &ctx(h as u64 + 1, *time), txs).unwrap().app_hash;
        }
        prop_assert_ne!(last, honest.last().unwrap().app_hash);
    }
}
