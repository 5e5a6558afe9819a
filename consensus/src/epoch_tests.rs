//! Tests of the epoch boundary: an engine finalizes exactly up to its last height, empty
//! boundary blocks carry finality to it when its own view could not finalize it, and
//! the next epoch's engines (another set, another namespace) continue from it.

use std::collections::{BTreeMap, VecDeque};

use ed25519_dalek::SigningKey;

use crate::*;

const NS: &[u8] = b"carnet-epoch-test";

fn keys(seeds: &[u8]) -> Vec<SigningKey> {
    seeds
        .iter()
        .map(|s| SigningKey::from_bytes(&[*s; 32]))
        .collect()
}

fn set(keys: &[SigningKey]) -> ValidatorSet {
    ValidatorSet::new(keys.iter().map(|k| k.verifying_key()).collect()).unwrap()
}

fn engines(
    keys: &[SigningKey],
    epoch: Epoch,
    last_height: Height,
    start: Option<(Block, Certificate)>,
) -> Vec<Engine<Ed25519Signer>> {
    let validators = set(keys);
    let namespace = epoch_namespace(NS, epoch, &validators);
    (0..keys.len())
        .map(|i| {
            let mut config = Config::new(namespace.clone(), validators.clone());
            config.last_height = Some(last_height);
            Engine::new(
                config,
                Ed25519Signer::new(i as ValidatorIndex, keys[i].clone()),
                Restored {
                    safety: Vec::new(),
                    last_finalized: start.clone(),
                },
            )
        })
        .collect()
}

/// What a run of [`pump`] observed.
#[derive(Default)]
struct Run {
    finalized: Vec<Vec<(Block, Certificate)>>,
    /// Heights the application was asked to build a payload for.
    requested_heights: Vec<Height>,
    /// Votes dropped by the filter.
    dropped: usize,
}

/// Delivers every output to every engine (no timers, no loss except what `drop`
/// filters) until the queue is empty or `max_steps` is reached.
fn pump(
    engines: &mut [Engine<Ed25519Signer>],
    drop: impl Fn(&Message, &BTreeMap<Digest, Height>) -> bool,
    max_steps: usize,
) -> Run {
    let n = engines.len();
    let mut run = Run {
        finalized: vec![Vec::new(); n],
        ..Run::default()
    };
    let mut heights: BTreeMap<Digest, Height> = BTreeMap::new();
    let mut queue: VecDeque<(usize, Output)> = VecDeque::new();
    for (i, e) in engines.iter_mut().enumerate() {
        queue.extend(e.start().into_iter().map(|o| (i, o)));
    }
    let mut steps = 0;
    while let Some((i, o)) = queue.pop_front() {
        steps += 1;
        if steps > max_steps {
            break;
        }
        let inputs: Vec<(usize, Input)> = match o {
            Output::Broadcast(m) => {
                if let Message::Proposal { block, .. } = &m {
                    heights.insert(block.digest(), block.height);
                }
                if drop(&m, &heights) {
                    run.dropped += 1;
                    vec![]
                } else {
                    (0..n)
                        .filter(|&j| j != i)
                        .map(|j| {
                            (
                                j,
                                Input::Message {
                                    from: i as ValidatorIndex,
                                    message: m.clone(),
                                },
                            )
                        })
                        .collect()
                }
            }
            Output::RequestProposal { view, height, .. } => {
                run.requested_heights.push(height);
                vec![(
                    i,
                    Input::ProposalReady {
                        view,
                        payload: format!("payload of view {view}").into_bytes(),
                    },
                )]
            }
            Output::VerifyBlock { block } => vec![(
                i,
                Input::BlockVerified {
                    digest: block.digest(),
                    valid: true,
                },
            )],
            Output::Finalized {
                block,
                finalization,
            } => {
                run.finalized[i].push((block, finalization));
                vec![]
            }
            _ => vec![],
        };
        for (j, input) in inputs {
            if let Ok(out) = engines[j].handle(input) {
                queue.extend(out.into_iter().map(|o| (j, o)));
            }
        }
    }
    run
}

fn assert_same_chain(run: &Run, from_height: Height, to_height: Height) {
    let first: Vec<Block> = run.finalized[0].iter().map(|(b, _)| b.clone()).collect();
    let heights: Vec<Height> = first.iter().map(|b| b.height).collect();
    assert_eq!(heights, (from_height..=to_height).collect::<Vec<_>>());
    for other in &run.finalized[1..] {
        let blocks: Vec<Block> = other.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(blocks, first);
    }
}

#[test]
fn an_epoch_ends_at_its_last_height_and_the_next_set_continues_from_it() {
    let old = keys(&[1, 2, 3, 4]);
    let mut epoch0 = engines(&old, 0, 3, None);
    let run = pump(&mut epoch0, |_, _| false, 50_000);
    assert_same_chain(&run, 1, 3);
    assert!(epoch0.iter().all(Engine::finished), "every engine ends");
    assert!(
        run.requested_heights.iter().all(|h| *h <= 3),
        "no payload asked above the last height: {:?}",
        run.requested_heights
    );
    // A finished engine ignores everything.
    let (last_block, last_cert) = run.finalized[0].last().unwrap().clone();
    assert!(epoch0[0]
        .handle(Input::TimerFired {
            view: 99,
            timer: TimerKind::Leader
        })
        .unwrap()
        .is_empty());

    // Epoch 1: validator 4 leaves, validator 5 joins; the chain continues from height 3.
    let new = keys(&[1, 2, 3, 5]);
    let mut epoch1 = engines(&new, 1, 6, Some((last_block.clone(), last_cert.clone())));
    let run1 = pump(&mut epoch1, |_, _| false, 50_000);
    assert_same_chain(&run1, 4, 6);
    assert_eq!(run1.finalized[0][0].0.parent, last_block.digest());
    assert!(epoch1.iter().all(Engine::finished));
    // Every epoch-1 finalization verifies under epoch 1 only.
    let new_set = set(&new);
    let ns1 = epoch_namespace(NS, 1, &new_set);
    for (_, cert) in &run1.finalized[0] {
        assert!(verify_certificate(&new_set, &ns1, cert).is_ok());
        assert!(verify_certificate(&new_set, NS, cert).is_err());
    }
    // Validator 4's old-epoch signature is worthless in epoch 1 (unknown key there),
    // and a vote signed by a kept key under the old namespace does not verify either.
    let mut fresh = engines(&new, 1, 6, Some((last_block, last_cert)));
    fresh[0].start();
    let digest = [9u8; 32];
    let view = fresh[0].view();
    let old_namespace_vote = SignedVote {
        kind: VoteKind::Notarize,
        view,
        digest: Some(digest),
        signer: 1,
        signature: Ed25519Signer::new(1, new[1].clone())
            .sign(&vote_message(NS, VoteKind::Notarize, view, Some(&digest)))
            .unwrap()
            .to_bytes()
            .to_vec(),
    };
    assert_eq!(
        fresh[0]
            .handle(Input::Message {
                from: 1,
                message: Message::Vote(old_namespace_vote)
            })
            .unwrap_err(),
        ConsensusError::InvalidSignature
    );
}

#[test]
fn boundary_blocks_finalize_the_last_block_when_its_own_view_cannot() {
    let k = keys(&[1, 2, 3, 4]);
    let mut epoch0 = engines(&k, 0, 3, None);
    // Nobody's finalize vote for the block at height 3 arrives: its view is notarized
    // but never finalized by its own certificate.
    let run = pump(
        &mut epoch0,
        |m, heights| match m {
            Message::Vote(v) if v.kind == VoteKind::Finalize => {
                v.digest.and_then(|d| heights.get(&d)) == Some(&3)
            }
            _ => false,
        },
        50_000,
    );
    assert!(run.dropped > 0, "the filter must have bitten");
    assert_same_chain(&run, 1, 3);
    assert!(epoch0.iter().all(Engine::finished));
    for (finalized, engine) in run.finalized.iter().zip(&epoch0) {
        let (block, cert) = finalized.last().unwrap();
        assert_eq!(block.height, 3);
        assert_ne!(
            cert.digest,
            Some(block.digest()),
            "height 3 is finalized through a boundary block's certificate"
        );
        // The engine hands out the boundary chain that proves it.
        let boundary = engine.boundary_blocks();
        assert!(!boundary.is_empty());
        assert_eq!(boundary[0].parent, block.digest());
        assert!(boundary
            .iter()
            .all(|b| b.payload.is_empty() && b.height > 3));
        assert_eq!(Some(boundary.last().unwrap().digest()), cert.digest);
    }
    assert!(run.requested_heights.iter().all(|h| *h <= 3));
}

#[test]
fn a_payload_beyond_the_epoch_is_refused_and_changes_nothing() {
    let k = keys(&[1, 2, 3, 4]);
    let mut e = engines(&k, 0, 1, None).remove(2);
    e.start();
    let before = e.describe();
    let genesis = Block::genesis(NS);
    let b1 = Block {
        view: 1,
        height: 1,
        parent: genesis.digest(),
        payload: b"one".to_vec(),
    };
    let b2 = Block {
        view: 2,
        height: 2,
        parent: b1.digest(),
        payload: b"two".to_vec(),
    };
    let signer = Ed25519Signer::new(2, k[2].clone());
    let vote = SignedVote {
        kind: VoteKind::Notarize,
        view: 2,
        digest: Some(b2.digest()),
        signer: 2,
        signature: signer
            .sign(&vote_message(NS, VoteKind::Notarize, 2, Some(&b2.digest())))
            .unwrap()
            .to_bytes()
            .to_vec(),
    };
    let err = e
        .handle(Input::Message {
            from: 2,
            message: Message::Proposal { block: b2, vote },
        })
        .unwrap_err();
    assert_eq!(
        err,
        ConsensusError::BeyondEpoch {
            height: 2,
            last_height: 1
        }
    );
    assert_eq!(e.describe(), before);
}
