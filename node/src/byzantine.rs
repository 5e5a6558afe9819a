//! Deliberately misbehaving validator modes, for fault-injection testnets only.
//!
//! Compiled only with the cargo feature `byzantine`, and enabled only by
//! `carnet-node start --byzantine MODE --i-understand-this-node-misbehaves` (main.rs
//! refuses to start a `byzantine` build without both). A release binary never carries
//! this module; `scripts/test.sh` builds the faulty binary apart, into `target/faulty/`.
//!
//! The modes act on what the consensus driver sends, never on what it stores or checks:
//!
//! * `equivocate` — as leader, every proposal goes out together with a second, different
//!   block for the same view (its time one millisecond later) and a notarize vote for
//!   each; as voter, every notarize vote goes out together with a notarize vote for a
//!   different (made-up) digest. Consensus messages are gossiped (gossipsub floods every
//!   message to every member), so both versions reach every peer; the order in which
//!   each peer sees them — hence what it notarizes — differs.
//! * `silent` — sends no consensus message at all (proposals, votes, certificates,
//!   certificate requests); still follows the chain from what it receives.
//! * `invalid-blocks` — as leader, proposes blocks that fail validation, in turn: a block
//!   time an hour in the future, a proposer that is not the view's leader, a payload that
//!   does not decode.
//! * `twin` — no code path changes. What makes a twin Byzantine is how it is started: a
//!   second process holding another validator's node key *and* validator key, from its
//!   own data directory. The node key makes the p2p allow-list admit it as that member
//!   (a fresh node key would be refused at the connection), the validator key makes its
//!   votes count as that validator's; the two instances then vote independently.
//!
//! Must never be reachable from a build without the `byzantine` feature, and never act
//! before [`enable`] was called from the command line.

use std::sync::OnceLock;

use carnet_consensus::{vote_message, Block, Message, SignedVote, View, VoteKind};
use carnet_contracts::block::BlockBody;
use carnet_contracts::AdminCode;
use ed25519_dalek::{Signer as _, SigningKey};

/// The misbehaviour a faulty node was started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Equivocate,
    Silent,
    InvalidBlocks,
    Twin,
}

impl Mode {
    /// Every mode, by its command-line name.
    pub const ALL: [(&'static str, Mode); 4] = [
        ("equivocate", Mode::Equivocate),
        ("silent", Mode::Silent),
        ("invalid-blocks", Mode::InvalidBlocks),
        ("twin", Mode::Twin),
    ];

    /// Parses a command-line name; the error lists the known modes.
    pub fn parse(name: &str) -> Result<Mode, String> {
        Mode::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let names: Vec<&str> = Mode::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown byzantine mode `{name}` (known: {})",
                    names.join(", ")
                )
            })
    }

    pub fn name(self) -> &'static str {
        Mode::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// The enabled mode and the validator key it signs its extra votes with.
struct Misbehaviour {
    mode: Mode,
    key: SigningKey,
}

static ENABLED: OnceLock<Misbehaviour> = OnceLock::new();

/// Turns misbehaviour on for this process (once; later calls are ignored). `key` is the
/// validator key from `validator.key`: conflicting votes are signed outside the engine,
/// which would refuse to sign them.
pub fn enable(mode: Mode, key: SigningKey) {
    let _ = ENABLED.set(Misbehaviour { mode, key });
}

/// The enabled mode, if any.
pub fn mode() -> Option<Mode> {
    ENABLED.get().map(|m| m.mode)
}

/// Domain tag of the made-up digests an equivocating voter signs.
const CONFLICT_DOMAIN: &[u8] = b"carnet/byzantine/conflicting-digest";

fn sign_notarize(
    key: &SigningKey,
    namespace: &[u8],
    view: View,
    digest: [u8; 32],
    signer: u16,
) -> SignedVote {
    let message = vote_message(namespace, VoteKind::Notarize, view, Some(&digest));
    SignedVote {
        kind: VoteKind::Notarize,
        view,
        digest: Some(digest),
        signer,
        signature: key.sign(&message).to_bytes().to_vec(),
    }
}

/// A second block for the same view and parent as `block`, differing only in its block
/// time (one millisecond later), so both are otherwise valid. `None` if the payload
/// does not decode.
fn twin_block(block: &Block) -> Option<Block> {
    let mut body = BlockBody::decode(&block.payload).ok()?;
    body.time_ms += 1;
    Some(Block {
        payload: body.encode(),
        ..block.clone()
    })
}

/// What actually leaves the node in place of the consensus `message` the engine wants
/// sent, and the extra blocks the driver must remember (so peers can fetch them). With
/// no misbehaviour enabled: the message itself.
pub fn outgoing(message: Message, namespace: &[u8]) -> (Vec<Message>, Vec<Block>) {
    let Some(m) = ENABLED.get() else {
        return (vec![message], Vec::new());
    };
    match m.mode {
        Mode::Silent => (Vec::new(), Vec::new()),
        Mode::Twin | Mode::InvalidBlocks => (vec![message], Vec::new()),
        Mode::Equivocate => match &message {
            Message::Proposal { block, vote } => match twin_block(block) {
                Some(second) => {
                    let second_vote =
                        sign_notarize(&m.key, namespace, block.view, second.digest(), vote.signer);
                    let conflicting = Message::Proposal {
                        block: second.clone(),
                        vote: second_vote,
                    };
                    // Alternate which version goes out first, so peers split.
                    let pair = if block.view % 2 == 0 {
                        vec![message, conflicting]
                    } else {
                        vec![conflicting, message]
                    };
                    (pair, vec![second])
                }
                None => (vec![message], Vec::new()),
            },
            Message::Vote(vote) if vote.kind == VoteKind::Notarize => {
                let Some(digest) = vote.digest else {
                    return (vec![message], Vec::new());
                };
                let mut hasher = blake3::Hasher::new();
                hasher.update(CONFLICT_DOMAIN);
                hasher.update(&digest);
                hasher.update(&vote.view.to_le_bytes());
                let made_up = *hasher.finalize().as_bytes();
                let conflicting = sign_notarize(&m.key, namespace, vote.view, made_up, vote.signer);
                (
                    vec![message.clone(), Message::Vote(conflicting)],
                    Vec::new(),
                )
            }
            _ => (vec![message], Vec::new()),
        },
    }
}

/// The payload this node proposes in `view` in place of the honest `body`. With
/// `invalid-blocks`, one that fails validation (see the module docs); otherwise the
/// honest encoding.
pub fn proposal_payload(body: BlockBody, view: View, others: &[AdminCode]) -> Vec<u8> {
    if mode() != Some(Mode::InvalidBlocks) {
        return body.encode();
    }
    match view % 3 {
        0 => BlockBody::new(
            body.time_ms + 3_600_000,
            body.proposer,
            body.txs,
            body.checkpoint,
        )
        .encode(),
        1 => {
            let impostor = others
                .iter()
                .find(|c| **c != body.proposer)
                .cloned()
                .unwrap_or_else(|| AdminCode("ZZ".into()));
            BlockBody::new(body.time_ms, impostor, body.txs, body.checkpoint).encode()
        }
        _ => b"carnet/byzantine/this payload does not decode".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_by_name_and_unknown_ones_are_named() {
        for (name, mode) in Mode::ALL {
            assert_eq!(Mode::parse(name), Ok(mode));
            assert_eq!(mode.name(), name);
        }
        let err = Mode::parse("liar").unwrap_err();
        assert!(
            err.contains("liar") && err.contains("invalid-blocks"),
            "{err}"
        );
    }

    #[test]
    fn a_twin_block_differs_only_in_time() {
        let body = BlockBody::new(1_000, AdminCode("XA".into()), Vec::new(), None);
        let block = Block {
            view: 4,
            height: 2,
            parent: [7; 32],
            payload: body.encode(),
        };
        let second = twin_block(&block).unwrap();
        assert_ne!(second.digest(), block.digest());
        assert_eq!((second.view, second.height, second.parent), (4, 2, [7; 32]));
        let decoded = BlockBody::decode(&second.payload).unwrap();
        assert_eq!(decoded.time_ms, 1_001);
        assert_eq!(decoded.proposer, AdminCode("XA".into()));
    }
}
