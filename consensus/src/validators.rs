//! The validator set, the signing boundary and signature/certificate verification.
//! Nothing here holds a clock or draws randomness; the only secret it may hold is the
//! in-memory key of [`Ed25519Signer`], which a node can replace by an HSM-backed
//! [`Signer`].

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::error::{ConsensusError, SignerError};
use crate::types::{vote_message, Certificate, SignedVote, ValidatorIndex, View, VoteKind};

/// The ordered list of validators. Index `i` is validator `i`; the leader of view `v` is
/// `v mod n`.
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    keys: Vec<VerifyingKey>,
    /// Test-only mutation of the quorum rule (see [`ValidatorSet::weaken_quorum_to_f_plus_one`]).
    quorum_override: Option<usize>,
}

impl ValidatorSet {
    /// At least one and at most `u16::MAX` distinct keys.
    pub fn new(keys: Vec<VerifyingKey>) -> Result<Self, ConsensusError> {
        if keys.is_empty() {
            return Err(ConsensusError::EmptyValidatorSet);
        }
        if keys.len() > usize::from(ValidatorIndex::MAX) {
            return Err(ConsensusError::TooManyValidators(keys.len()));
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].contains(key) {
                return Err(ConsensusError::DuplicateValidatorKey(i));
            }
        }
        Ok(ValidatorSet {
            keys,
            quorum_override: None,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a set has at least one validator.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Faults tolerated: `f = (n - 1) / 3`.
    pub fn f(&self) -> usize {
        (self.keys.len().saturating_sub(1)) / 3
    }

    /// Votes needed for a certificate: `n - f` (= 2f+1 when n = 3f+1).
    pub fn quorum(&self) -> usize {
        self.quorum_override
            .unwrap_or_else(|| self.keys.len() - self.f())
    }

    /// Deterministic rotation: `view mod n`.
    pub fn leader(&self, view: View) -> ValidatorIndex {
        // n <= u16::MAX, so the remainder fits.
        (view % self.keys.len() as u64) as ValidatorIndex
    }

    pub fn key(&self, i: ValidatorIndex) -> Option<&VerifyingKey> {
        self.keys.get(usize::from(i))
    }

    pub fn index_of(&self, key: &VerifyingKey) -> Option<ValidatorIndex> {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| ValidatorIndex::try_from(i).ok())
    }

    /// blake3 over the keys in index order: names the set in an epoch's namespace.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"carnet/consensus/validator-set/v1");
        hasher.update(&(self.keys.len() as u64).to_le_bytes());
        for key in &self.keys {
            hasher.update(key.as_bytes());
        }
        *hasher.finalize().as_bytes()
    }

    /// The keys in index order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Bytes in a certificate's signer bitmap.
    pub fn bitmap_len(&self) -> usize {
        self.keys.len().div_ceil(8)
    }

    /// MUTATION KNOB, never for production: lowers the quorum to `f + 1`, which breaks
    /// quorum intersection. Exists only so that tests can show the safety checker
    /// catches the resulting forks. Compiled only in this crate's own tests or with the
    /// non-default cargo feature `mutation-weak-quorum`.
    #[cfg(any(test, feature = "mutation-weak-quorum"))]
    pub fn weaken_quorum_to_f_plus_one(&mut self) {
        self.quorum_override = Some(self.f() + 1);
    }
}

/// Where votes get signed. A node may implement this over an HSM; the engine calls it
/// only after the matching [`crate::SafetyRecord`] has been queued for persistence.
pub trait Signer {
    /// This validator's index in the validator set.
    fn index(&self) -> ValidatorIndex;
    /// Signs `message` with the validator's ed25519 key.
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError>;
}

/// In-memory ed25519 signer.
pub struct Ed25519Signer {
    index: ValidatorIndex,
    key: SigningKey,
}

impl Ed25519Signer {
    pub fn new(index: ValidatorIndex, key: SigningKey) -> Self {
        Ed25519Signer { index, key }
    }
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Signer for Ed25519Signer {
    fn index(&self) -> ValidatorIndex {
        self.index
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(message))
    }
}

/// Checks that a vote's digest presence matches its kind.
pub(crate) fn check_vote_shape(kind: VoteKind, digest: Option<&[u8; 32]>) -> bool {
    match kind {
        VoteKind::Nullify => digest.is_none(),
        VoteKind::Notarize | VoteKind::Finalize => digest.is_some(),
    }
}

fn verify_one(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), ConsensusError> {
    let signature =
        Signature::from_slice(signature).map_err(|_| ConsensusError::InvalidSignature)?;
    key.verify_strict(message, &signature)
        .map_err(|_| ConsensusError::InvalidSignature)
}

/// Verifies one vote: known signer, well-formed, valid signature.
pub fn verify_vote(
    validators: &ValidatorSet,
    namespace: &[u8],
    vote: &SignedVote,
) -> Result<(), ConsensusError> {
    let key = validators
        .key(vote.signer)
        .ok_or(ConsensusError::UnknownSigner(vote.signer))?;
    if !check_vote_shape(vote.kind, vote.digest.as_ref()) {
        return Err(ConsensusError::MalformedVote);
    }
    let message = vote_message(namespace, vote.kind, vote.view, vote.digest.as_ref());
    verify_one(key, &message, &vote.signature)
}

/// Verifies a certificate: well-formed, bitmap of the right length naming only known
/// validators, at least a quorum of distinct signers, one valid signature per signer.
pub fn verify_certificate(
    validators: &ValidatorSet,
    namespace: &[u8],
    cert: &Certificate,
) -> Result<(), ConsensusError> {
    verify_certificate_skipping(validators, namespace, cert, |_, _| false)
}

/// [`verify_certificate`], except that signatures for which `already_verified(signer,
/// signature)` holds are not checked again (the engine passes the votes it verified).
pub(crate) fn verify_certificate_skipping(
    validators: &ValidatorSet,
    namespace: &[u8],
    cert: &Certificate,
    already_verified: impl Fn(ValidatorIndex, &[u8]) -> bool,
) -> Result<(), ConsensusError> {
    if !check_vote_shape(cert.kind, cert.digest.as_ref()) {
        return Err(ConsensusError::MalformedCertificate);
    }
    if cert.signers.len() != validators.bitmap_len() {
        return Err(ConsensusError::MalformedCertificate);
    }
    let signers = cert.signer_indices();
    if let Some(&unknown) = signers
        .iter()
        .find(|&&i| usize::from(i) >= validators.len())
    {
        return Err(ConsensusError::UnknownSigner(unknown));
    }
    // The bitmap names each signer at most once; a signature list longer or shorter than
    // the bitmap would let one signer count twice or hide a missing signature.
    if signers.len() != cert.signatures.len() {
        return Err(ConsensusError::CertificateSignerMismatch {
            signers: signers.len(),
            signatures: cert.signatures.len(),
        });
    }
    if signers.len() < validators.quorum() {
        return Err(ConsensusError::CertificateBelowQuorum {
            have: signers.len(),
            need: validators.quorum(),
        });
    }
    let message = vote_message(namespace, cert.kind, cert.view, cert.digest.as_ref());
    for (signer, signature) in signers.iter().zip(&cert.signatures) {
        if already_verified(*signer, signature) {
            continue;
        }
        let key = validators
            .key(*signer)
            .ok_or(ConsensusError::UnknownSigner(*signer))?;
        verify_one(key, &message, signature)?;
    }
    Ok(())
}

/// Builds a certificate from votes of one kind on one (view, digest); the caller
/// guarantees they are verified and from distinct signers.
pub(crate) fn assemble_certificate(
    validators: &ValidatorSet,
    kind: VoteKind,
    view: View,
    digest: Option<[u8; 32]>,
    votes: &[&SignedVote],
) -> Certificate {
    let mut signers = vec![0u8; validators.bitmap_len()];
    let mut sorted: Vec<&SignedVote> = votes.to_vec();
    sorted.sort_by_key(|v| v.signer);
    sorted.dedup_by_key(|v| v.signer);
    let mut signatures = Vec::with_capacity(sorted.len());
    for vote in sorted {
        let i = usize::from(vote.signer);
        if let Some(byte) = signers.get_mut(i / 8) {
            *byte |= 1 << (i % 8);
            signatures.push(vote.signature.clone());
        }
    }
    Certificate {
        kind,
        view,
        digest,
        signers,
        signatures,
    }
}
