//! Typed rejections. Every error returned by [`crate::Engine::handle`] means the input
//! was refused and the engine's state is exactly what it was before the call.

use crate::types::{Digest, ValidatorIndex, View};

/// Why the signing boundary could not produce a signature (e.g. HSM unavailable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signer failed: {0}")]
pub struct SignerError(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    #[error("validator set is empty")]
    EmptyValidatorSet,
    #[error("validator set has {0} keys, more than a u16 index can name")]
    TooManyValidators(usize),
    #[error("validator key at index {0} appears twice")]
    DuplicateValidatorKey(usize),
    #[error("signer index {0} is not in the validator set")]
    UnknownSigner(ValidatorIndex),
    #[error("invalid signature")]
    InvalidSignature,
    #[error("vote kind and digest disagree")]
    MalformedVote,
    #[error("malformed certificate")]
    MalformedCertificate,
    #[error("certificate names {signers} signers but carries {signatures} signatures")]
    CertificateSignerMismatch { signers: usize, signatures: usize },
    #[error("certificate has {have} distinct signers, quorum is {need}")]
    CertificateBelowQuorum { have: usize, need: usize },
    #[error("view {view} is at or below the last finalized view {finalized}")]
    ViewTooOld { view: View, finalized: View },
    #[error("view {view} is more than {max_ahead} views ahead of current view {current}")]
    ViewTooFarAhead {
        view: View,
        current: View,
        max_ahead: u64,
    },
    #[error("view {view} is below the vote window starting at {horizon}")]
    ViewBehindWindow { view: View, horizon: View },
    #[error("duplicate vote from validator {signer} in view {view}")]
    DuplicateVote { signer: ValidatorIndex, view: View },
    #[error("proposal for view {view} signed by {signer}, but the leader is {leader}")]
    NotLeader {
        view: View,
        signer: ValidatorIndex,
        leader: ValidatorIndex,
    },
    #[error("proposal is malformed: {0}")]
    MalformedProposal(&'static str),
    #[error("proposal violates the parent rule: {0}")]
    ParentRule(&'static str),
    #[error("block at height {height} carries a payload, but this epoch ends at height {last_height}: only empty boundary blocks may follow")]
    BeyondEpoch { height: u64, last_height: u64 },
    #[error("payload of {size} bytes exceeds max_block_bytes {max}")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("block {0:?} was not requested or does not match the requested digest")]
    UnexpectedBlock(Digest),
    #[error("finalized chain does not link to our last finalized block")]
    FinalizedConflict,
    #[error("certificate request names {0} views, more than allowed")]
    RequestTooLarge(usize),
    #[error(transparent)]
    Signer(#[from] SignerError),
}
