//! `cargo bench -p carnet-node --bench storage`: the storage layer under many documents.
//!
//! Fills a fresh store with `CARNET_BENCH_DOCS` documents (default 20,000; set it to
//! 10000000 for the issue-7 figure) through the real path a finalized block takes —
//! `ledger::execute` over blocks of `CARNET_BENCH_BLOCK_TXS` document submissions (default
//! 1,000), then `Store::commit_block`, one synced write batch per block — and reports
//! that replay rate (execution + commit, no consensus and no signature checks: those
//! belong to the mempool and the block check). Then it flushes the memtables and times
//! finding documents by UCR index (`ledger::documents_by_ucr`, what `GET
//! /v1/documents?ucr=` and `carnet doc find --ucr` do after computing the index): every
//! UCR has two documents (an export and an import declaration), half of the lookups hit,
//! half ask for an unknown UCR. Prints p50/p99/max; asserts nothing about time.
//!
//! Memory stays bounded by the block size: documents are generated block by block.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use carnet_consensus::{Block, Certificate, VoteKind};
use carnet_contracts::block::BlockBody;
use carnet_contracts::{
    Action, AdminCode, Administration, DocumentId, DocumentKind, DocumentSubmission, Genesis,
    Officer, PublicKey, Role, SignedTransaction, Transaction,
};
use carnet_node::storage::{BlockWrite, Head, Store, StoredBlock, TxLocation};
use carnet_node::{ledger, node};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "carnet-bench";
const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
const LOOKUPS: usize = 20_000;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a positive number, not {v:?}")),
        Err(_) => default,
    }
}

fn member(code: &str, seed: u8) -> Administration {
    Administration {
        code: AdminCode(code.into()),
        name: format!("Land {code}"),
        node_key: PublicKey(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        ),
        validator_key: PublicKey(
            SigningKey::from_bytes(&[seed + 1; 32])
                .verifying_key()
                .to_bytes(),
        ),
        encryption_key: carnet_contracts::keys::x25519_public(&[seed + 2; 32]),
        voting_power: 1,
        active: true,
    }
}

fn officer_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: GENESIS_TIME_MS,
        administrations: vec![
            member("XA", 10),
            member("XB", 20),
            member("XC", 30),
            member("XD", 40),
        ],
        officers: vec![Officer {
            key: PublicKey(officer_key().verifying_key().to_bytes()),
            administration: AdminCode("XA".into()),
            name: "Bench officer".into(),
            roles: vec![Role::Officer],
            active: true,
        }],
        agreements: Vec::new(),
        epoch_length_blocks: carnet_contracts::DEFAULT_EPOCH_LENGTH_BLOCKS,
    }
}

/// The UCR index of UCR number `n` (a keyed hash in real life; any 32 bytes here).
fn ucr_index(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

/// Document `n`: UCR `n / 2`, an export (even) or import (odd) declaration from XA to XB.
fn submission(n: u64, time_ms: u64) -> SignedTransaction {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let kind = if n.is_multiple_of(2) {
        DocumentKind::ExportDeclaration
    } else {
        DocumentKind::ImportDeclaration
    };
    let tx = Transaction {
        chain_id: CHAIN.into(),
        signer: PublicKey(SigningKey::from_bytes(&[10; 32]).verifying_key().to_bytes()),
        officer: Some(PublicKey(officer_key().verifying_key().to_bytes())),
        nonce: n,
        expires_at_ms: time_ms + 60_000,
        action: Action::SubmitDocument(DocumentSubmission {
            id: DocumentId(id),
            kind,
            recipients: vec![AdminCode("XB".into())],
            ucr_index: ucr_index(n / 2),
            commitment: *blake3::hash(&id).as_bytes(),
            ciphertext_hash: *blake3::hash(&n.to_be_bytes()).as_bytes(),
            ciphertext_len: 2088,
        }),
    };
    // Execution does not verify signatures (the mempool and the block check do).
    SignedTransaction {
        tx,
        signature: vec![0; 64],
    }
}

/// Executes and commits one block of `txs` on top of `head`, as the driver does.
fn commit(store: &Store, head: &Head, txs: Vec<SignedTransaction>) -> Head {
    let height = head.height + 1;
    let time_ms = GENESIS_TIME_MS + height;
    let body = BlockBody::new(time_ms, AdminCode("XA".into()), txs, None);
    let executed = ledger::execute(store, height, &body).expect("execution");
    if let Some((i, Err(e))) = executed
        .receipts
        .iter()
        .enumerate()
        .find(|(_, r)| r.is_err())
    {
        panic!("bench transaction {i} of block {height} refused: {e}");
    }
    let block = Block {
        view: height,
        height,
        parent: head.digest,
        payload: body.encode(),
    };
    let finalization = Certificate {
        kind: VoteKind::Finalize,
        view: height,
        digest: Some(block.digest()),
        signers: vec![0b111],
        signatures: vec![vec![1; 64], vec![2; 64], vec![3; 64]],
    };
    let tx_locations = body
        .txs
        .iter()
        .enumerate()
        .map(|(index, tx)| {
            (
                tx.hash(),
                TxLocation {
                    height,
                    index: index as u32,
                },
            )
        })
        .collect();
    store
        .commit_block(BlockWrite {
            stored: Some(StoredBlock {
                boundary: Vec::new(),
                block,
                finalization,
                app_hash: executed.app_hash,
                time_ms,
                tx_count: body.txs.len() as u32,
            }),
            tx_locations,
            state: executed.changes,
            payloads: Vec::new(),
            outbox: Vec::new(),
            meta: Vec::new(),
        })
        .expect("commit")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let docs = env_usize("CARNET_BENCH_DOCS", 20_000) as u64;
    let block_txs = env_usize("CARNET_BENCH_BLOCK_TXS", 1_000).max(1) as u64;
    assert!(docs >= 2, "CARNET_BENCH_DOCS must be at least 2");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let mut head = node::prepare_store(&store, &genesis()).expect("genesis");

    let started = Instant::now();
    let mut next = 0u64;
    while next < docs {
        let end = (next + block_txs).min(docs);
        let time_ms = GENESIS_TIME_MS + head.height + 1;
        let txs = (next..end).map(|n| submission(n, time_ms)).collect();
        head = commit(&store, &head, txs);
        next = end;
    }
    let fill = started.elapsed();
    store.flush().expect("flush");
    println!(
        "storage: {docs} documents in {} blocks of {block_txs}: execute + commit {:.0} docs/s ({:.1} s)",
        head.height,
        docs as f64 / fill.as_secs_f64(),
        fill.as_secs_f64()
    );

    // Lookups: a fixed pseudo-random walk over the UCRs, every other one unknown.
    let ucrs = docs.div_ceil(2);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut found: BTreeMap<bool, Vec<Duration>> = BTreeMap::new();
    for i in 0..LOOKUPS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let known = i % 2 == 0;
        let ucr = if known {
            state % ucrs
        } else {
            ucrs + state % ucrs
        };
        let t = Instant::now();
        let records = ledger::documents_by_ucr(&store, &ucr_index(ucr), 100).expect("lookup");
        let took = t.elapsed();
        let expected = if known {
            (2 * ucr + 2).min(docs) - 2 * ucr
        } else {
            0
        };
        assert_eq!(records.len() as u64, expected, "UCR {ucr}");
        found.entry(known).or_default().push(took);
    }
    for (known, mut times) in found {
        times.sort();
        println!(
            "storage: find by UCR ({}), {} lookups: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            if known { "2 documents" } else { "unknown UCR" },
            times.len(),
            micros(percentile(&times, 0.5)),
            micros(percentile(&times, 0.99)),
            micros(times[times.len() - 1]),
        );
    }
}
