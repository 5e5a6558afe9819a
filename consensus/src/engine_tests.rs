//! Unit tests of the engine's rules: rejections (which must change nothing), safety
//! persistence ordering, restart, equivocation evidence, quorum arithmetic.

use ed25519_dalek::SigningKey;

use crate::*;

const NS: &[u8] = b"carnet-test";

fn keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 7; 32]))
        .collect()
}

fn set(keys: &[SigningKey]) -> ValidatorSet {
    ValidatorSet::new(keys.iter().map(|k| k.verifying_key()).collect()).unwrap()
}

fn config(keys: &[SigningKey]) -> Config {
    let mut c = Config::new(NS.to_vec(), set(keys));
    c.max_views_ahead = 10;
    c.max_block_bytes = 100;
    c
}

fn engine(keys: &[SigningKey], me: usize, restored: Restored) -> Engine<Ed25519Signer> {
    let signer = Ed25519Signer::new(me as ValidatorIndex, keys[me].clone());
    Engine::new(config(keys), signer, restored)
}

fn vote(
    keys: &[SigningKey],
    who: usize,
    kind: VoteKind,
    view: View,
    d: Option<Digest>,
) -> SignedVote {
    let signer = Ed25519Signer::new(who as ValidatorIndex, keys[who].clone());
    let sig = signer
        .sign(&vote_message(NS, kind, view, d.as_ref()))
        .unwrap();
    SignedVote {
        kind,
        view,
        digest: d,
        signer: who as ValidatorIndex,
        signature: sig.to_bytes().to_vec(),
    }
}

fn msg(from: usize, message: Message) -> Input {
    Input::Message {
        from: from as ValidatorIndex,
        message,
    }
}

fn block_on_genesis(view: View, payload: &[u8]) -> Block {
    Block {
        view,
        height: 1,
        parent: Block::genesis(NS).digest(),
        payload: payload.to_vec(),
    }
}

fn proposal(keys: &[SigningKey], block: &Block) -> Message {
    let leader = (block.view % keys.len() as u64) as usize;
    Message::Proposal {
        block: block.clone(),
        vote: vote(
            keys,
            leader,
            VoteKind::Notarize,
            block.view,
            Some(block.digest()),
        ),
    }
}

#[test]
fn quorum_arithmetic_for_any_n() {
    for (n, f, q) in [
        (1, 0, 1),
        (2, 0, 2),
        (3, 0, 3),
        (4, 1, 3),
        (5, 1, 4),
        (7, 2, 5),
        (10, 3, 7),
        (100, 33, 67),
    ] {
        let s = set(&keys(n));
        assert_eq!((s.len(), s.f(), s.quorum()), (n, f, q), "n={n}");
        assert_eq!(s.leader(n as u64 + 1), 1 % n as ValidatorIndex);
    }
    assert_eq!(
        ValidatorSet::new(vec![]).unwrap_err(),
        ConsensusError::EmptyValidatorSet
    );
    let k = keys(1)[0].verifying_key();
    assert!(matches!(
        ValidatorSet::new(vec![k, k]),
        Err(ConsensusError::DuplicateValidatorKey(1))
    ));
}

#[test]
fn votes_are_persisted_before_they_are_sent() {
    let k = keys(4);
    let mut e = engine(&k, 2, Restored::default());
    let mut all = e.start();
    let b = block_on_genesis(1, b"x");
    all.extend(e.handle(msg(1, proposal(&k, &b))).unwrap());
    all.extend(
        e.handle(Input::BlockVerified {
            digest: b.digest(),
            valid: true,
        })
        .unwrap(),
    );
    all.extend(
        e.handle(Input::TimerFired {
            view: 1,
            timer: TimerKind::Notarization,
        })
        .unwrap(),
    );
    let mut persisted: Vec<SafetyRecord> = Vec::new();
    let mut sent = 0;
    for o in &all {
        match o {
            Output::Persist(r) => persisted.push(r.clone()),
            Output::Broadcast(Message::Vote(v)) if v.signer == 2 => {
                sent += 1;
                let r = persisted
                    .iter()
                    .rev()
                    .find(|r| r.view == v.view)
                    .expect("persisted first");
                match v.kind {
                    VoteKind::Notarize => assert_eq!(r.notarized, v.digest),
                    VoteKind::Nullify => assert!(r.nullified),
                    VoteKind::Finalize => assert_eq!(r.finalized, v.digest),
                }
            }
            _ => {}
        }
    }
    assert_eq!(sent, 2, "notarize then nullify: {all:?}");
}

#[test]
fn restart_cannot_double_vote() {
    let k = keys(4);
    let other = block_on_genesis(1, b"other");
    let restored = Restored {
        safety: vec![SafetyRecord {
            view: 1,
            notarized: Some(other.digest()),
            nullified: false,
            finalized: None,
        }],
        last_finalized: None,
    };
    let mut e = engine(&k, 2, restored);
    e.start();
    let b = block_on_genesis(1, b"x");
    let mut out = e.handle(msg(1, proposal(&k, &b))).unwrap();
    out.extend(
        e.handle(Input::BlockVerified {
            digest: b.digest(),
            valid: true,
        })
        .unwrap_or_default(),
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Broadcast(Message::Vote(v)) if v.signer == 2 && v.kind == VoteKind::Notarize)));

    // Nullified before the crash: a notarization afterwards must not draw a finalize.
    let restored = Restored {
        safety: vec![SafetyRecord {
            view: 1,
            notarized: None,
            nullified: true,
            finalized: None,
        }],
        last_finalized: None,
    };
    let mut e = engine(&k, 2, restored);
    e.start();
    let mut out = Vec::new();
    for who in [0, 1, 3] {
        out.extend(
            e.handle(msg(
                who,
                Message::Vote(vote(&k, who, VoteKind::Notarize, 1, Some(b.digest()))),
            ))
            .unwrap(),
        );
    }
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::EnteredView { view: 2 })));
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Broadcast(Message::Vote(v)) if v.signer == 2)));
}

/// Runs `input` twice on two identical engines, once after a rejected input: a
/// rejection must leave no trace.
fn assert_rejected_without_effect(
    k: &[SigningKey],
    bad: Input,
    expect: fn(&ConsensusError) -> bool,
) {
    let mut e = engine(k, 2, Restored::default());
    let mut twin = engine(k, 2, Restored::default());
    e.start();
    twin.start();
    let err = e.handle(bad).unwrap_err();
    assert!(expect(&err), "unexpected error {err:?}");
    assert_eq!(e.describe(), twin.describe());
    let good = msg(1, proposal(k, &block_on_genesis(1, b"ok")));
    assert_eq!(e.handle(good.clone()).unwrap(), twin.handle(good).unwrap());
}

#[test]
fn rejections_are_typed_and_change_nothing() {
    let k = keys(4);
    let b = block_on_genesis(1, b"x");
    let d = Some(b.digest());
    // Unknown signer.
    let mut v = vote(&k, 0, VoteKind::Notarize, 1, d);
    v.signer = 9;
    assert_rejected_without_effect(&k, msg(0, Message::Vote(v)), |e| {
        matches!(e, ConsensusError::UnknownSigner(9))
    });
    // Bad signature.
    let mut v = vote(&k, 0, VoteKind::Notarize, 1, d);
    v.signature[0] ^= 1;
    assert_rejected_without_effect(&k, msg(0, Message::Vote(v)), |e| {
        *e == ConsensusError::InvalidSignature
    });
    // Signed for another view.
    let mut v = vote(&k, 0, VoteKind::Notarize, 1, d);
    v.view = 2;
    assert_rejected_without_effect(&k, msg(0, Message::Vote(v)), |e| {
        *e == ConsensusError::InvalidSignature
    });
    // Too far ahead, too old.
    let v = vote(&k, 0, VoteKind::Nullify, 50, None);
    assert_rejected_without_effect(&k, msg(0, Message::Vote(v)), |e| {
        matches!(e, ConsensusError::ViewTooFarAhead { .. })
    });
    let v = vote(&k, 0, VoteKind::Nullify, 0, None);
    assert_rejected_without_effect(&k, msg(0, Message::Vote(v)), |e| {
        matches!(e, ConsensusError::ViewTooOld { .. })
    });
    // Malformed vote: nullify with a digest.
    let v = vote(&k, 0, VoteKind::Nullify, 1, d);
    assert_rejected_without_effect(&k, msg(0, Message::Vote(v)), |e| {
        *e == ConsensusError::MalformedVote
    });
    // Proposal from a non-leader (view 1's leader is 1).
    let m = Message::Proposal {
        block: b.clone(),
        vote: vote(&k, 3, VoteKind::Notarize, 1, d),
    };
    assert_rejected_without_effect(&k, msg(3, m), |e| {
        matches!(e, ConsensusError::NotLeader { leader: 1, .. })
    });
    // Parent rule: wrong height on a known parent.
    let mut tall = b.clone();
    tall.height = 5;
    assert_rejected_without_effect(&k, msg(1, proposal(&k, &tall)), |e| {
        matches!(e, ConsensusError::ParentRule(_))
    });
    // Payload above max_block_bytes.
    let big = block_on_genesis(1, &[0; 101]);
    assert_rejected_without_effect(&k, msg(1, proposal(&k, &big)), |e| {
        matches!(e, ConsensusError::PayloadTooLarge { .. })
    });
    // Certificate below quorum, and with a signer counted twice.
    let votes: Vec<SignedVote> = (0..4)
        .map(|i| vote(&k, i, VoteKind::Nullify, 1, None))
        .collect();
    let cert = |signers: u8, sigs: Vec<Vec<u8>>| Certificate {
        kind: VoteKind::Nullify,
        view: 1,
        digest: None,
        signers: vec![signers],
        signatures: sigs,
    };
    let two = cert(
        0b11,
        vec![votes[0].signature.clone(), votes[1].signature.clone()],
    );
    assert_rejected_without_effect(&k, msg(0, Message::Certificate(two)), |e| {
        matches!(
            e,
            ConsensusError::CertificateBelowQuorum { have: 2, need: 3 }
        )
    });
    let repeated = cert(
        0b11,
        vec![
            votes[0].signature.clone(),
            votes[1].signature.clone(),
            votes[1].signature.clone(),
        ],
    );
    assert_rejected_without_effect(&k, msg(0, Message::Certificate(repeated)), |e| {
        matches!(e, ConsensusError::CertificateSignerMismatch { .. })
    });
    let forged = cert(
        0b111,
        vec![
            votes[0].signature.clone(),
            votes[1].signature.clone(),
            votes[3].signature.clone(),
        ],
    );
    assert_rejected_without_effect(&k, msg(0, Message::Certificate(forged)), |e| {
        *e == ConsensusError::InvalidSignature
    });
    // Duplicate vote.
    let mut e = engine(&k, 2, Restored::default());
    e.start();
    let v = vote(&k, 0, VoteKind::Nullify, 1, None);
    e.handle(msg(0, Message::Vote(v.clone()))).unwrap();
    assert!(matches!(
        e.handle(msg(0, Message::Vote(v))),
        Err(ConsensusError::DuplicateVote { .. })
    ));
    // A valid quorum certificate is accepted and moves the view.
    let good = cert(
        0b1011,
        vec![
            votes[0].signature.clone(),
            votes[1].signature.clone(),
            votes[3].signature.clone(),
        ],
    );
    assert!(verify_certificate(&set(&k), NS, &good).is_ok());
    let out = e.handle(msg(0, Message::Certificate(good))).unwrap();
    assert!(out.contains(&Output::EnteredView { view: 2 }));
}

#[test]
fn equivocation_is_reported_once_per_validator_and_view() {
    let k = keys(4);
    let mut e = engine(&k, 2, Restored::default());
    e.start();
    let a = Some([1; 32]);
    let b = Some([2; 32]);
    let c = Some([3; 32]);
    let evidence = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::Evidence(_)))
            .count()
    };
    assert_eq!(
        evidence(
            &e.handle(msg(0, Message::Vote(vote(&k, 0, VoteKind::Notarize, 1, a))))
                .unwrap()
        ),
        0
    );
    assert_eq!(
        evidence(
            &e.handle(msg(0, Message::Vote(vote(&k, 0, VoteKind::Notarize, 1, b))))
                .unwrap()
        ),
        1
    );
    assert_eq!(
        evidence(
            &e.handle(msg(0, Message::Vote(vote(&k, 0, VoteKind::Notarize, 1, c))))
                .unwrap()
        ),
        0
    );
    // finalize vs nullify by another validator
    e.handle(msg(
        3,
        Message::Vote(vote(&k, 3, VoteKind::Nullify, 1, None)),
    ))
    .unwrap();
    let out = e
        .handle(msg(3, Message::Vote(vote(&k, 3, VoteKind::Finalize, 1, a))))
        .unwrap();
    let Some(Output::Evidence(ev)) = out.iter().find(|o| matches!(o, Output::Evidence(_))) else {
        panic!("no evidence for finalize after nullify: {out:?}");
    };
    assert_eq!(ev.validator, 3);
    assert_eq!(
        (ev.first.kind, ev.second.kind),
        (VoteKind::Nullify, VoteKind::Finalize)
    );
}

#[test]
fn four_engines_finalize_in_height_order() {
    let k = keys(4);
    let mut engines: Vec<_> = (0..4).map(|i| engine(&k, i, Restored::default())).collect();
    let mut queue: std::collections::VecDeque<(usize, Output)> = std::collections::VecDeque::new();
    for (i, e) in engines.iter_mut().enumerate() {
        queue.extend(e.start().into_iter().map(|o| (i, o)));
    }
    let mut finalized: Vec<Vec<Block>> = vec![Vec::new(); 4];
    let mut steps = 0;
    while let Some((i, o)) = queue.pop_front() {
        steps += 1;
        if steps > 20_000 || finalized.iter().all(|f| f.len() >= 10) {
            break;
        }
        let inputs: Vec<(usize, Input)> = match o {
            Output::Broadcast(m) => (0..4)
                .filter(|&j| j != i)
                .map(|j| (j, msg(i, m.clone())))
                .collect(),
            Output::RequestProposal { view, .. } => vec![(
                i,
                Input::ProposalReady {
                    view,
                    payload: view.to_le_bytes().to_vec(),
                },
            )],
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
                assert_eq!(finalization.kind, VoteKind::Finalize);
                assert_eq!(block.height, finalized[i].len() as u64 + 1);
                finalized[i].push(block);
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
    assert!(
        finalized.iter().all(|f| f.len() >= 10),
        "{:?}",
        finalized.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for f in &finalized[1..] {
        assert_eq!(f[..10], finalized[0][..10]);
    }
    // Memory is pruned below the last finalized view.
    let (h, _) = engines[0].last_finalized();
    assert!(h >= 10);
    let (views, votes, blocks) = engines[0].retained();
    assert!(
        views <= 4 && votes <= 4 * 3 * 4 && blocks <= 4,
        "{views} {votes} {blocks}"
    );
}

#[test]
fn sync_finalized_jumps_and_prunes() {
    let k = keys(4);
    let mut e = engine(&k, 2, Restored::default());
    e.start();
    let b = Block {
        view: 40,
        height: 12,
        parent: [7; 32],
        payload: vec![1],
    };
    let d = Some(b.digest());
    let sigs: Vec<Vec<u8>> = [0, 1, 3]
        .iter()
        .map(|&i| vote(&k, i, VoteKind::Finalize, 40, d).signature)
        .collect();
    let cert = Certificate {
        kind: VoteKind::Finalize,
        view: 40,
        digest: d,
        signers: vec![0b1011],
        signatures: sigs,
    };
    // A certificate for another block is refused.
    let wrong = Input::SyncFinalized {
        block: block_on_genesis(40, b"x"),
        finalization: cert.clone(),
    };
    assert_eq!(
        e.handle(wrong).unwrap_err(),
        ConsensusError::MalformedCertificate
    );
    let out = e
        .handle(Input::SyncFinalized {
            block: b.clone(),
            finalization: cert,
        })
        .unwrap();
    assert!(out.contains(&Output::EnteredView { view: 41 }));
    assert_eq!(e.last_finalized(), (12, b.digest()));
    // Votes for views at or below the synced block are now stale.
    let stale = vote(&k, 0, VoteKind::Nullify, 39, None);
    assert!(matches!(
        e.handle(msg(0, Message::Vote(stale))),
        Err(ConsensusError::ViewTooOld { .. })
    ));
}

#[test]
fn lagging_validator_asks_for_missing_certificates() {
    let k = keys(4);
    let mut e = engine(&k, 2, Restored::default());
    e.start();
    // Jump to view 4 on a nullification of view 3 (views 1-2 unknown to us).
    let sigs: Vec<Vec<u8>> = [0, 1, 3]
        .iter()
        .map(|&i| vote(&k, i, VoteKind::Nullify, 3, None).signature)
        .collect();
    let cert = Certificate {
        kind: VoteKind::Nullify,
        view: 3,
        digest: None,
        signers: vec![0b1011],
        signatures: sigs,
    };
    e.handle(msg(0, Message::Certificate(cert))).unwrap();
    assert_eq!(e.view(), 4);
    // View 4's leader (0) proposes on genesis; we cannot check views 1-2 yet.
    let b = block_on_genesis(4, b"p");
    let out = e.handle(msg(0, proposal(&k, &b))).unwrap();
    let asked = out.iter().find_map(|o| match o {
        Output::Broadcast(Message::CertificateRequest { views }) => Some(views.clone()),
        _ => None,
    });
    assert_eq!(asked, Some(vec![2, 1]));
    assert!(!out.iter().any(|o| matches!(o, Output::VerifyBlock { .. })));
    // A peer answers only with what it holds.
    let mut peer = engine(&k, 1, Restored::default());
    peer.start();
    let answer = peer
        .handle(msg(2, Message::CertificateRequest { views: vec![2, 1] }))
        .unwrap();
    assert!(answer.is_empty());
    let too_many = Message::CertificateRequest {
        views: (0..65).collect(),
    };
    assert_eq!(
        peer.handle(msg(2, too_many)).unwrap_err(),
        ConsensusError::RequestTooLarge(65)
    );
}

#[test]
fn certificates_expose_equivocators() {
    let k = keys(4);
    let mut e = engine(&k, 2, Restored::default());
    e.start();
    let a = Some([1; 32]);
    let b = Some([2; 32]);
    e.handle(msg(0, Message::Vote(vote(&k, 0, VoteKind::Notarize, 1, a))))
        .unwrap();
    let sigs = [0, 1, 3]
        .iter()
        .map(|&i| vote(&k, i, VoteKind::Notarize, 1, b).signature)
        .collect();
    let cert = Certificate {
        kind: VoteKind::Notarize,
        view: 1,
        digest: b,
        signers: vec![0b1011],
        signatures: sigs,
    };
    let out = e.handle(msg(1, Message::Certificate(cert))).unwrap();
    let evidence: Vec<&Equivocation> = out
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(ev) => Some(ev),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].validator, 0);
    assert!(verify_vote(&set(&k), NS, &evidence[0].second).is_ok());
}

/// The leader timer armed on entering `view`, if any.
fn leader_timer_ms(out: &[Output], view: View) -> Option<u64> {
    out.iter().find_map(|o| match o {
        Output::SetTimer {
            view: v,
            timer: TimerKind::Leader,
            after_ms,
        } if *v == view => Some(*after_ms),
        _ => None,
    })
}

/// Our leader timer for `view` fires (we nullify it) and `voters` nullify it too; the
/// outputs of all of it.
fn nullify_view(
    e: &mut Engine<Ed25519Signer>,
    keys: &[SigningKey],
    view: View,
    voters: &[usize],
) -> Vec<Output> {
    let mut out = e
        .handle(Input::TimerFired {
            view,
            timer: TimerKind::Leader,
        })
        .unwrap();
    for &who in voters {
        let nullify = vote(keys, who, VoteKind::Nullify, view, None);
        out.extend(e.handle(msg(who, Message::Vote(nullify))).unwrap());
    }
    out
}

#[test]
fn a_leader_silent_for_the_window_is_skipped_and_led_again_once_it_votes() {
    let keys = keys(4);
    let mut c = config(&keys);
    c.leader_skip_after_views = 3;
    let signer = Ed25519Signer::new(0, keys[0].clone());
    let mut e = Engine::new(c, signer, Restored::default());
    let start = e.start();
    assert_eq!(leader_timer_ms(&start, 1), Some(1_000));
    // Validators 0, 1 and 2 nullify every view; validator 3 (leader of 3, 7, 11) is
    // silent until it votes in view 9.
    let mut skipped = Vec::new();
    for view in 1..=12 {
        let voters: &[usize] = if view == 9 { &[3, 1, 2] } else { &[1, 2] };
        let out = nullify_view(&mut e, &keys, view, voters);
        assert_eq!(e.view(), view + 1, "view {view} was not nullified");
        match leader_timer_ms(&out, view + 1) {
            Some(0) => skipped.push(view + 1),
            Some(ms) => assert_eq!(ms, 1_000),
            None => panic!("no leader timer armed for view {}", view + 1),
        }
    }
    // View 3 is inside the first window (everyone counts as active at start); view 7
    // comes 6 views after validator 3 was last seen; it voted in 9, so 11 is led again.
    // Our own views (4, 8, 12) are never skipped.
    assert_eq!(skipped, vec![7]);
}

#[test]
fn leader_skipping_is_off_with_a_zero_window() {
    let keys = keys(4);
    let mut c = config(&keys);
    c.leader_skip_after_views = 0;
    let signer = Ed25519Signer::new(0, keys[0].clone());
    let mut e = Engine::new(c, signer, Restored::default());
    e.start();
    for view in 1..=12 {
        let out = nullify_view(&mut e, &keys, view, &[1, 2]);
        assert_eq!(leader_timer_ms(&out, view + 1), Some(1_000));
    }
}
