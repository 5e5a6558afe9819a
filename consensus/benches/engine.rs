//! `cargo bench -p carnet-consensus`: messages per second processed by one engine
//! (n = 4 and n = 100; every vote pre-signed outside the timed loop, every signature
//! still verified inside it), then the simulated happy-path report.

use std::time::Instant;

use carnet_consensus::{
    vote_message, Block, Config, Digest, Ed25519Signer, Engine, Input, Message, Output, Restored,
    SignedVote, Signer, ValidatorIndex, ValidatorSet, View, VoteKind,
};
use ed25519_dalek::SigningKey;

const NS: &[u8] = b"carnet-bench";

fn signed(
    key: &SigningKey,
    who: usize,
    kind: VoteKind,
    view: View,
    d: Option<Digest>,
) -> SignedVote {
    let signer = Ed25519Signer::new(who as ValidatorIndex, key.clone());
    let signature = match signer.sign(&vote_message(NS, kind, view, d.as_ref())) {
        Ok(s) => s.to_bytes().to_vec(),
        Err(e) => panic!("in-memory signer failed: {e}"),
    };
    SignedVote {
        kind,
        view,
        digest: d,
        signer: who as ValidatorIndex,
        signature,
    }
}

fn bench(n: usize, views: u64) {
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| {
            SigningKey::from_bytes(&[
                (i % 250) as u8 + 1,
                (i / 250) as u8 + 1,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
            ])
        })
        .collect();
    let set = match ValidatorSet::new(keys.iter().map(|k| k.verifying_key()).collect()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let me = n - 1;
    let mut config = Config::new(NS.to_vec(), set);
    config.max_views_ahead = views + 1;
    let mut engine = Engine::new(
        config,
        Ed25519Signer::new(me as ValidatorIndex, keys[me].clone()),
        Restored::default(),
    );
    // Pre-build the chain and sign every message outside the timed loop.
    let mut script: Vec<(Option<Vec<u8>>, Vec<Input>)> = Vec::new();
    let mut parent = Block::genesis(NS).digest();
    for view in 1..=views {
        let leader = (view % n as u64) as usize;
        let block = Block {
            view,
            height: view,
            parent,
            payload: view.to_le_bytes().to_vec(),
        };
        let d = Some(block.digest());
        let mut inputs = Vec::new();
        let own_payload = if leader == me {
            Some(block.payload.clone())
        } else {
            let vote = signed(&keys[leader], leader, VoteKind::Notarize, view, d);
            inputs.push(Input::Message {
                from: leader as ValidatorIndex,
                message: Message::Proposal {
                    block: block.clone(),
                    vote,
                },
            });
            None
        };
        for who in (0..n).filter(|&w| w != me && w != leader) {
            inputs.push(Input::Message {
                from: who as ValidatorIndex,
                message: Message::Vote(signed(&keys[who], who, VoteKind::Notarize, view, d)),
            });
        }
        for who in (0..n).filter(|&w| w != me) {
            inputs.push(Input::Message {
                from: who as ValidatorIndex,
                message: Message::Vote(signed(&keys[who], who, VoteKind::Finalize, view, d)),
            });
        }
        script.push((own_payload, inputs));
        parent = block.digest();
    }
    let messages: usize = script.iter().map(|(_, i)| i.len()).sum();
    let start = Instant::now();
    let mut finalized = 0u64;
    let mut pending = engine.start();
    for (view, (own_payload, inputs)) in (1u64..).zip(script) {
        if let Some(payload) = own_payload {
            pending.extend(
                engine
                    .handle(Input::ProposalReady { view, payload })
                    .unwrap_or_default(),
            );
        }
        for input in inputs {
            pending.extend(engine.handle(input).unwrap_or_default());
            // Answer the application's questions at once.
            while let Some(o) = pending.pop() {
                match o {
                    Output::VerifyBlock { block } => pending.extend(
                        engine
                            .handle(Input::BlockVerified {
                                digest: block.digest(),
                                valid: true,
                            })
                            .unwrap_or_default(),
                    ),
                    Output::Finalized { .. } => finalized += 1,
                    _ => {}
                }
            }
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(finalized, views, "the benchmark chain must finalize");
    println!(
        "engine n={n:3}: {messages} messages in {:.1} ms -> {:.0} msgs/s ({views} views finalized)",
        elapsed.as_secs_f64() * 1e3,
        messages as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    bench(4, 3_000);
    bench(100, 40);
    let f = carnet_consensus::sim::happy_path_figures(4, 100, 100_000);
    println!(
        "happy path n=4 (simulated, uniform δ): {:.3} blocks/δ (one block per {:.2}δ), finality {:.2}δ",
        f.blocks_per_delta, f.block_interval_delta, f.finality_delta
    );
}
