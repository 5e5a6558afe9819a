//! # carnet-consensus: Simplex BFT as a sans-IO state machine
//!
//! This crate decides the order of Carnet blocks among a fixed set of `n` validators of
//! which at most `f = (n - 1) / 3` are Byzantine. It is a pure state machine: the node
//! feeds [`Input`]s (messages, timer expiries, application answers) to
//! [`Engine::handle`] and executes the returned [`Output`]s in order. It must never do
//! IO, read a clock, draw randomness or hold a network handle; keys live behind the
//! [`Signer`] trait so a node can keep them in an HSM.
//!
//! ## Protocol (Simplex, Chan & Pass 2023)
//!
//! Time is divided into *views* (the paper's iterations) `1, 2, ...`; view `0` belongs
//! to the genesis block, which everyone treats as finalized. The leader of view `v` is
//! validator `v mod n`. `quorum = n - f` (2f+1 when n = 3f+1).
//!
//! 1. **Enter view `v`** on seeing a notarization *or* a nullification (or a
//!    finalization) for view `v - 1`; start the leader and notarization timers.
//! 2. **Propose.** The leader builds a block on the *parent rule*: the block of the
//!    highest view `p < v` that holds a notarization such that every view in
//!    `(p, v)` holds a nullification (the last finalized block counts as notarized). It
//!    broadcasts the block with its own `notarize` vote.
//! 3. **Notarize.** A validator that has not timed out in `v` and has not voted in `v`
//!    sends `notarize(v, digest)` for the leader's first proposal if the parent rule holds
//!    with the certificates it holds, the height is the parent's plus one, and the
//!    application judged the payload valid. `quorum` notarizes form a *notarization*.
//! 4. **Timeout.** When the leader timer fires without our notarize, or the
//!    notarization timer fires, send `nullify(v)` unless we sent `finalize(v, _)`.
//!    `quorum` nullifies form a *nullification*.
//! 5. **Finalize.** On seeing a notarization for `v`, a validator that did not nullify
//!    `v` sends `finalize(v, digest)`; `quorum` of those form a *finalization*, which
//!    finalizes the block and all its ancestors.
//! 6. **Forward** every new certificate once; on a retry timer, re-broadcast our votes
//!    of the current view and the latest certificates (liveness after partitions heal).
//! 7. **Catch up.** A validator that cannot evaluate the parent rule because it missed
//!    certificates (restart, partition) broadcasts a [`Message::CertificateRequest`]
//!    for the views it lacks; peers answer with the certificates they hold. Blocks it
//!    lacks are requested from the node with [`Output::FetchBlock`].
//!
//! Rejected inputs: [`Engine::handle`] returns `Err(ConsensusError)` and changes no
//! state. Votes and proposals are accepted only within `max_views_ahead` of the current
//! view and above the last finalized view; certificates, being quorum-signed, may move
//! a lagging engine forward any distance. Memory is bounded: everything below the last
//! finalized view is pruned (the last finalized block and certificate are kept), and
//! votes older than the window are dropped.
//!
//! *Why it is safe.* Two quorums intersect in at least `f + 1` validators, one of them
//! honest. So no view notarizes two blocks, and a view cannot have both a finalization
//! and a nullification (an honest validator would have sent `finalize` and `nullify`).
//! Hence if `b` is finalized in view `v`, every later notarized block reaches `b`
//! through the parent rule: skipping `v` would need its nullification.
//!
//! Votes are ed25519 signatures over `namespace || kind tag || bincode((view,
//! digest))` ([`vote_message`]). Certificates carry a signer bitmap and one signature per
//! distinct signer ([`verify_certificate`]).
//!
//! ## Safety data
//!
//! Every vote is preceded in its output batch by [`Output::Persist`] of the validator's
//! cumulative [`SafetyRecord`] for that view. The node writes it durably before sending
//! anything later in the batch; on restart it passes all records back in [`Restored`],
//! and the voting rules in [`rules`] then forbid any conflicting vote.
//!
//! ## Features
//!
//! - `sim`: the seeded deterministic network simulator (module `sim`).
//! - `mutation-weak-quorum`: exposes `ValidatorSet::weaken_quorum_to_f_plus_one`, a
//!   deliberately broken quorum used to prove the safety checkers can fail. Never
//!   enable it in a node.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod engine;
mod epoch;
mod error;
mod evidence;
pub mod rules;
mod types;
mod validators;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod epoch_tests;
#[cfg(test)]
mod model;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod sim_tests;

pub use engine::{Config, Engine, Input, Output, Restored, TimerKind};
pub use epoch::{epoch_namespace, Epoch, EpochSchedule};
pub use error::{ConsensusError, SignerError};
pub use evidence::{EvidenceError, MAX_EVIDENCE_BYTES};
pub use types::{
    vote_message, Block, Certificate, Digest, Equivocation, Height, Message, SafetyRecord,
    SignedVote, ValidatorIndex, View, VoteKind, MAX_CERTIFICATE_REQUEST,
};
pub use validators::{verify_certificate, verify_vote, Ed25519Signer, Signer, ValidatorSet};
