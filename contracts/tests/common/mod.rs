//! A small network for contract tests: administrations XA, XB, XC (active) and XD
//! (inactive), and officers with different roles and states.
#![allow(dead_code)]

use carnet_contracts::execute::{apply_genesis, execute_block, BlockContext, MemoryState};
use carnet_contracts::*;
use ed25519_dalek::SigningKey;

pub const CHAIN: &str = "carnet-test";
pub const T0: u64 = 1_700_000_000_000;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn public(seed: u8) -> PublicKey {
    PublicKey(key(seed).verifying_key().to_bytes())
}

pub fn code(s: &str) -> AdminCode {
    AdminCode(s.to_string())
}

/// Node key seeds: XA=1, XB=2, XC=3, XD=4, and a stranger=9.
pub fn node_seed(admin: &str) -> u8 {
    match admin {
        "XA" => 1,
        "XB" => 2,
        "XC" => 3,
        "XD" => 4,
        _ => 9,
    }
}

/// Officer key seeds.
pub const XA_OFFICER: u8 = 21;
pub const XA_AUDITOR: u8 = 22;
pub const XA_REVOKED: u8 = 23;
pub const XB_OFFICER: u8 = 31;
pub const XC_OFFICER: u8 = 41;
pub const XA_ADMIN: u8 = 24;
pub const XA_SUPERVISOR: u8 = 25;
pub const XB_ADMIN: u8 = 32;

fn admin(c: &str, active: bool) -> Administration {
    let seed = node_seed(c);
    Administration {
        code: code(c),
        name: format!("Administration {c}"),
        node_key: public(seed),
        validator_key: public(seed + 100),
        encryption_key: carnet_contracts::keys::x25519_public(&[seed + 200; 32]),
        voting_power: 1,
        active,
    }
}

/// The X25519 secret of administration `c`'s node (seed + 200, as in [`genesis`]).
pub fn encryption_secret(c: &str) -> [u8; 32] {
    [node_seed(c) + 200; 32]
}

/// The UCR key every test agreement uses.
pub const TEST_UCR_KEY: [u8; 32] = [0x5A; 32];

/// `agreement` with [`TEST_UCR_KEY`] wrapped to each party, as a proposing node does.
pub fn with_ucr_key(mut agreement: agreement::Agreement) -> agreement::Agreement {
    let mut n = 0u8;
    agreement
        .wrap_ucr_key(
            &TEST_UCR_KEY,
            |c| {
                Some(carnet_contracts::keys::x25519_public(&encryption_secret(
                    c.as_str(),
                )))
            },
            || {
                n += 1;
                [n; 32]
            },
        )
        .unwrap();
    agreement
}

fn officer(seed: u8, c: &str, roles: &[Role], active: bool) -> Officer {
    Officer {
        key: public(seed),
        administration: code(c),
        name: format!("officer {seed}"),
        roles: roles.to_vec(),
        active,
    }
}

pub fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.to_string(),
        genesis_time_ms: T0,
        administrations: vec![
            admin("XA", true),
            admin("XB", true),
            admin("XC", true),
            admin("XD", false),
        ],
        officers: vec![
            officer(XA_OFFICER, "XA", &[Role::Officer], true),
            officer(XA_AUDITOR, "XA", &[Role::Auditor], true),
            officer(XA_REVOKED, "XA", &[Role::Officer], false),
            officer(XB_OFFICER, "XB", &[Role::Supervisor], true),
            officer(XC_OFFICER, "XC", &[Role::Admin, Role::Auditor], true),
            officer(XA_ADMIN, "XA", &[Role::Admin], true),
            officer(XA_SUPERVISOR, "XA", &[Role::Supervisor], true),
            officer(XB_ADMIN, "XB", &[Role::Admin], true),
        ],
        agreements: vec![],
        epoch_length_blocks: carnet_contracts::DEFAULT_EPOCH_LENGTH_BLOCKS,
    }
}

pub fn doc_id(n: u8) -> DocumentId {
    DocumentId([n; 16])
}

pub fn submission(id: u8, recipients: &[&str]) -> DocumentSubmission {
    DocumentSubmission {
        id: doc_id(id),
        kind: DocumentKind::ExportDeclaration,
        recipients: recipients.iter().map(|c| code(c)).collect(),
        ucr_index: [0xAB; 32],
        commitment: [0xC0; 32],
        ciphertext_hash: [0xC1; 32],
        ciphertext_len: 1000,
    }
}

/// A submission by XA's officer of document `id` to `recipients`.
pub fn submit_tx(id: u8, recipients: &[&str], nonce: u64) -> Transaction {
    Transaction {
        chain_id: CHAIN.to_string(),
        signer: public(node_seed("XA")),
        officer: Some(public(XA_OFFICER)),
        nonce,
        expires_at_ms: T0 + 60_000,
        action: Action::SubmitDocument(submission(id, recipients)),
    }
}

/// A read of document `id` version 1 by `admin`'s node on behalf of `officer_seed`.
pub fn access_tx(admin: &str, officer_seed: u8, id: u8, nonce: u64) -> Transaction {
    Transaction {
        chain_id: CHAIN.to_string(),
        signer: public(node_seed(admin)),
        officer: Some(public(officer_seed)),
        nonce,
        expires_at_ms: T0 + 60_000,
        action: Action::RecordAccess {
            document: doc_id(id),
            version: 1,
            officer: public(officer_seed),
            purpose: "risk assessment".to_string(),
        },
    }
}

/// Signs with the node key matching `tx.signer` (or the stranger's key).
pub fn sign(tx: Transaction) -> SignedTransaction {
    let seed = [1u8, 2, 3, 4, 9]
        .into_iter()
        .find(|s| public(*s) == tx.signer)
        .unwrap_or(9);
    tx.sign(&key(seed))
}

pub fn ctx(height: u64, time_ms: u64) -> BlockContext {
    BlockContext {
        height,
        time_ms,
        proposer: code("XA"),
    }
}

/// Genesis applied, then block 1 holding document 1 (XA → XB).
pub fn state_with_document() -> MemoryState {
    let mut state = MemoryState::new();
    apply_genesis(&mut state, &genesis()).unwrap();
    let outcome =
        execute_block(&mut state, &ctx(1, T0), &[sign(submit_tx(1, &["XB"], 0))]).unwrap();
    assert!(
        outcome.receipts[0].outcome.is_ok(),
        "{:?}",
        outcome.receipts
    );
    state
}

/// A transaction by `admin`'s node on behalf of `officer_seed` (0: no officer).
pub fn act(admin: &str, officer_seed: u8, nonce: u64, action: Action) -> Transaction {
    Transaction {
        chain_id: CHAIN.to_string(),
        signer: public(node_seed(admin)),
        officer: (officer_seed != 0).then(|| public(officer_seed)),
        nonce,
        expires_at_ms: T0 + 60_000,
        action,
    }
}

/// The expected outcome of one case of a rules table.
pub enum Expect {
    Accepted,
    /// Rejected with a message containing this text (the rule's name).
    Rejected(&'static str),
}

/// One case of a rules table: one transaction, alone in a block.
pub struct Case {
    pub name: &'static str,
    pub tx: Transaction,
    pub expect: Expect,
}

/// Runs each case as the one transaction of a block `block_ctx` on top of `base`, and
/// fails listing every case whose outcome is not the one expected. An accepted case must
/// write something; a rejected one must leave the state and app hash exactly those of an
/// empty block.
pub fn run_case_table(base: &MemoryState, block_ctx: &BlockContext, cases: Vec<Case>) {
    // What the block leaves behind when it carries nothing.
    let mut empty = base.clone();
    let empty_outcome = execute_block(&mut empty, block_ctx, &[]).unwrap();

    let mut failures = Vec::new();
    for case in cases {
        let mut state = base.clone();
        let signed = sign(case.tx);
        let outcome = execute_block(&mut state, block_ctx, std::slice::from_ref(&signed)).unwrap();
        assert_eq!(outcome.receipts.len(), 1);
        assert_eq!(outcome.receipts[0].tx_hash, signed.hash());
        match (&case.expect, &outcome.receipts[0].outcome) {
            (Expect::Accepted, Ok(_)) => {
                if state == empty {
                    failures.push(format!("{}: accepted but wrote nothing", case.name));
                }
            }
            (Expect::Rejected(needle), Err(e)) => {
                if !e.to_string().contains(needle) {
                    failures.push(format!("{}: error `{e}` lacks `{needle}`", case.name));
                }
                if state.to_bytes() != empty.to_bytes()
                    || outcome.app_hash != empty_outcome.app_hash
                {
                    failures.push(format!("{}: rejected but changed the state", case.name));
                }
            }
            (Expect::Accepted, Err(e)) => failures.push(format!("{}: rejected: {e}", case.name)),
            (Expect::Rejected(needle), Ok(ev)) => failures.push(format!(
                "{}: accepted ({ev:?}), expected `{needle}`",
                case.name
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
