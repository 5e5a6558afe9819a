//! Equivocation evidence that anyone holding the validator set can check: two votes
//! one validator signed in one view that no honest validator would ever sign together.
//!
//! The engine emits [`crate::Output::Evidence`] when it sees such a pair; the node puts
//! the pair on the ledger. This module is the one place that says, independently of the
//! engine's state, whether a pair *is* evidence ([`Equivocation::verify`]), and how it
//! travels as bytes ([`Equivocation::to_bytes`], [`Equivocation::from_bytes`]).
//!
//! Conflicting pairs are exactly those the engine reports (`engine.rs`, `on_vote` and
//! `evidence_from_certificate`):
//!
//! - two `notarize` votes for different digests (the paper's "vote for one block per
//!   iteration"), or two `finalize` votes for different digests;
//! - a `finalize` and a `nullify` (a finalize promises the validator never timed out in
//!   that view).
//!
//! A `notarize` beside a `nullify` is *not* a conflict: an honest validator that voted
//! for the proposal and then timed out sends both.
//!
//! Must never: call a pair evidence unless both signatures verify under the accused
//! validator's key and the namespace; accept bytes that are not the canonical encoding
//! of the pair, or more than [`MAX_EVIDENCE_BYTES`] of them.

use bincode::Options as _;

use crate::error::ConsensusError;
use crate::types::{Equivocation, SignedVote, ValidatorIndex, View, VoteKind};
use crate::validators::{verify_vote, ValidatorSet};

/// Largest encoded evidence accepted. A well-formed pair is 240 bytes.
pub const MAX_EVIDENCE_BYTES: usize = 1024;

/// Why a pair of votes is not equivocation evidence, or its bytes are not a pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence of {size} bytes exceeds {MAX_EVIDENCE_BYTES} bytes")]
    TooLarge { size: usize },
    #[error("evidence does not decode: {0}")]
    Encoding(String),
    #[error("evidence bytes are not the canonical encoding of the votes")]
    NotCanonical,
    #[error(
        "evidence names validator {validator}, but the votes are signed by {first} and {second}"
    )]
    SignerMismatch {
        validator: ValidatorIndex,
        first: ValidatorIndex,
        second: ValidatorIndex,
    },
    #[error("the votes are for different views ({first} and {second})")]
    ViewMismatch { first: View, second: View },
    #[error("the votes do not conflict: {0}")]
    NotConflicting(&'static str),
    #[error("{which} vote: {source}")]
    Vote {
        which: &'static str,
        source: ConsensusError,
    },
}

/// The bincode options of evidence: bincode 1's default encoding (fixed-width
/// little-endian integers, `u64` length prefixes), bounded, no trailing bytes.
fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_EVIDENCE_BYTES as u64)
        .reject_trailing_bytes()
}

/// Whether two votes of one validator in one view conflict, as the engine judges it.
fn conflict(first: &SignedVote, second: &SignedVote) -> Result<(), EvidenceError> {
    use VoteKind::{Finalize, Notarize, Nullify};
    match (first.kind, second.kind) {
        (Notarize, Notarize) | (Finalize, Finalize) => {
            if first.digest == second.digest {
                Err(EvidenceError::NotConflicting(
                    "both votes are for the same block",
                ))
            } else {
                Ok(())
            }
        }
        (Finalize, Nullify) | (Nullify, Finalize) => Ok(()),
        (Nullify, Nullify) => Err(EvidenceError::NotConflicting(
            "two nullify votes are the same vote",
        )),
        (Notarize, Nullify) | (Nullify, Notarize) => Err(EvidenceError::NotConflicting(
            "a notarize and a nullify may both come from an honest validator that timed out",
        )),
        (Notarize, Finalize) | (Finalize, Notarize) => Err(EvidenceError::NotConflicting(
            "a notarize and a finalize are not a conflicting pair",
        )),
    }
}

impl Equivocation {
    /// Checks that this is evidence of equivocation by `self.validator`: both votes
    /// signed by it, in one view, conflicting (see the module docs), well-formed, and
    /// with valid signatures under its key in `validators` over `namespace`.
    pub fn verify(&self, namespace: &[u8], validators: &ValidatorSet) -> Result<(), EvidenceError> {
        let (first, second) = (&self.first, &self.second);
        if first.signer != self.validator || second.signer != self.validator {
            return Err(EvidenceError::SignerMismatch {
                validator: self.validator,
                first: first.signer,
                second: second.signer,
            });
        }
        if first.view != second.view {
            return Err(EvidenceError::ViewMismatch {
                first: first.view,
                second: second.view,
            });
        }
        conflict(first, second)?;
        verify_vote(validators, namespace, first).map_err(|source| EvidenceError::Vote {
            which: "first",
            source,
        })?;
        verify_vote(validators, namespace, second).map_err(|source| EvidenceError::Vote {
            which: "second",
            source,
        })?;
        Ok(())
    }

    /// The view both votes are for.
    pub fn view(&self) -> View {
        self.first.view
    }

    /// Canonical bytes: bincode 1's default encoding of the pair; at most
    /// [`MAX_EVIDENCE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, EvidenceError> {
        let bytes = options().serialize(self).map_err(|e| match *e {
            bincode::ErrorKind::SizeLimit => EvidenceError::TooLarge {
                size: usize::try_from(bincode::serialized_size(self).unwrap_or(u64::MAX))
                    .unwrap_or(usize::MAX),
            },
            other => EvidenceError::Encoding(other.to_string()),
        })?;
        Ok(bytes)
    }

    /// Decodes [`Equivocation::to_bytes`]; refuses more than [`MAX_EVIDENCE_BYTES`],
    /// trailing bytes and any encoding that is not the canonical one. Does not verify
    /// the votes: call [`Equivocation::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Equivocation, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(EvidenceError::TooLarge { size: bytes.len() });
        }
        let evidence: Equivocation = options()
            .deserialize(bytes)
            .map_err(|e| EvidenceError::Encoding(e.to_string()))?;
        if evidence.to_bytes()? != bytes {
            return Err(EvidenceError::NotCanonical);
        }
        Ok(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::vote_message;
    use crate::validators::{Ed25519Signer, Signer as _};
    use ed25519_dalek::SigningKey;

    const NS: &[u8] = b"carnet-test";

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i + 1; 32])
    }

    fn validators() -> ValidatorSet {
        ValidatorSet::new((0..4).map(|i| key(i).verifying_key()).collect()).unwrap()
    }

    fn vote(signer: u8, kind: VoteKind, view: View, digest: Option<u8>) -> SignedVote {
        let digest = digest.map(|d| [d; 32]);
        let message = vote_message(NS, kind, view, digest.as_ref());
        let signature = Ed25519Signer::new(u16::from(signer), key(signer))
            .sign(&message)
            .unwrap();
        SignedVote {
            kind,
            view,
            digest,
            signer: u16::from(signer),
            signature: signature.to_bytes().to_vec(),
        }
    }

    fn pair(first: SignedVote, second: SignedVote) -> Equivocation {
        Equivocation {
            validator: first.signer,
            first,
            second,
        }
    }

    #[test]
    fn conflicting_pairs_are_evidence_in_either_order() {
        let set = validators();
        let cases = [
            (
                vote(3, VoteKind::Notarize, 7, Some(1)),
                vote(3, VoteKind::Notarize, 7, Some(2)),
            ),
            (
                vote(3, VoteKind::Finalize, 7, Some(1)),
                vote(3, VoteKind::Finalize, 7, Some(2)),
            ),
            (
                vote(3, VoteKind::Finalize, 7, Some(1)),
                vote(3, VoteKind::Nullify, 7, None),
            ),
        ];
        for (a, b) in cases {
            assert_eq!(pair(a.clone(), b.clone()).verify(NS, &set), Ok(()));
            assert_eq!(pair(b, a).verify(NS, &set), Ok(()));
        }
    }

    #[test]
    fn pairs_that_are_not_evidence_are_refused_by_rule() {
        let set = validators();
        let notarize = vote(2, VoteKind::Notarize, 5, Some(1));
        let mut forged = vote(2, VoteKind::Notarize, 5, Some(2));
        forged.signature[0] ^= 1;
        let mut wrong_length = vote(2, VoteKind::Notarize, 5, Some(2));
        wrong_length.signature.pop();
        let other_network = {
            let digest = [2u8; 32];
            let message = vote_message(b"other", VoteKind::Notarize, 5, Some(&digest));
            let mut v = vote(2, VoteKind::Notarize, 5, Some(2));
            v.signature = Ed25519Signer::new(2, key(2))
                .sign(&message)
                .unwrap()
                .to_bytes()
                .to_vec();
            v
        };
        let mut malformed = vote(2, VoteKind::Notarize, 5, Some(2));
        malformed.digest = None;
        let mut unknown_first = vote(2, VoteKind::Notarize, 5, Some(1));
        unknown_first.signer = 9;
        let mut unknown_second = vote(2, VoteKind::Notarize, 5, Some(2));
        unknown_second.signer = 9;

        let cases: Vec<(&str, Equivocation, EvidenceError)> = vec![
            (
                "identical votes",
                pair(notarize.clone(), notarize.clone()),
                EvidenceError::NotConflicting("both votes are for the same block"),
            ),
            (
                "different views",
                pair(notarize.clone(), vote(2, VoteKind::Notarize, 6, Some(2))),
                EvidenceError::ViewMismatch {
                    first: 5,
                    second: 6,
                },
            ),
            (
                "different signers",
                pair(notarize.clone(), vote(1, VoteKind::Notarize, 5, Some(2))),
                EvidenceError::SignerMismatch {
                    validator: 2,
                    first: 2,
                    second: 1,
                },
            ),
            (
                "evidence names another validator than the signer",
                Equivocation {
                    validator: 1,
                    first: notarize.clone(),
                    second: vote(2, VoteKind::Notarize, 5, Some(2)),
                },
                EvidenceError::SignerMismatch {
                    validator: 1,
                    first: 2,
                    second: 2,
                },
            ),
            (
                "notarize and nullify",
                pair(notarize.clone(), vote(2, VoteKind::Nullify, 5, None)),
                EvidenceError::NotConflicting(
                    "a notarize and a nullify may both come from an honest validator that timed out",
                ),
            ),
            (
                "notarize and finalize",
                pair(notarize.clone(), vote(2, VoteKind::Finalize, 5, Some(2))),
                EvidenceError::NotConflicting(
                    "a notarize and a finalize are not a conflicting pair",
                ),
            ),
            (
                "two nullifies",
                pair(
                    vote(2, VoteKind::Nullify, 5, None),
                    vote(2, VoteKind::Nullify, 5, None),
                ),
                EvidenceError::NotConflicting("two nullify votes are the same vote"),
            ),
            (
                "finalize twice for one block",
                pair(
                    vote(2, VoteKind::Finalize, 5, Some(1)),
                    vote(2, VoteKind::Finalize, 5, Some(1)),
                ),
                EvidenceError::NotConflicting("both votes are for the same block"),
            ),
            (
                "bad signature",
                pair(notarize.clone(), forged),
                EvidenceError::Vote {
                    which: "second",
                    source: ConsensusError::InvalidSignature,
                },
            ),
            (
                "signature of the wrong length",
                pair(notarize.clone(), wrong_length),
                EvidenceError::Vote {
                    which: "second",
                    source: ConsensusError::InvalidSignature,
                },
            ),
            (
                "signed for another network",
                pair(notarize.clone(), other_network),
                EvidenceError::Vote {
                    which: "second",
                    source: ConsensusError::InvalidSignature,
                },
            ),
            (
                "malformed vote (notarize without digest)",
                pair(notarize.clone(), malformed),
                EvidenceError::Vote {
                    which: "second",
                    source: ConsensusError::MalformedVote,
                },
            ),
            (
                "unknown signer",
                Equivocation {
                    validator: 9,
                    first: unknown_first,
                    second: unknown_second,
                },
                EvidenceError::Vote {
                    which: "first",
                    source: ConsensusError::UnknownSigner(9),
                },
            ),
        ];
        let mut failures = Vec::new();
        for (name, evidence, expected) in cases {
            match evidence.verify(NS, &set) {
                Err(e) if e == expected => {}
                other => failures.push(format!("{name}: got {other:?}, expected {expected:?}")),
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn evidence_signed_by_a_key_outside_the_set_is_refused() {
        // Validator 2's slot now holds another key: the same votes no longer verify.
        let mut keys: Vec<_> = (0..4).map(|i| key(i).verifying_key()).collect();
        keys[2] = SigningKey::from_bytes(&[99; 32]).verifying_key();
        let other_set = ValidatorSet::new(keys).unwrap();
        let evidence = pair(
            vote(2, VoteKind::Notarize, 5, Some(1)),
            vote(2, VoteKind::Notarize, 5, Some(2)),
        );
        assert_eq!(evidence.verify(NS, &validators()), Ok(()));
        assert_eq!(
            evidence.verify(NS, &other_set),
            Err(EvidenceError::Vote {
                which: "first",
                source: ConsensusError::InvalidSignature
            })
        );
    }

    #[test]
    fn bytes_round_trip_canonically_and_are_bounded() {
        let evidence = pair(
            vote(1, VoteKind::Finalize, 42, Some(7)),
            vote(1, VoteKind::Nullify, 42, None),
        );
        let bytes = evidence.to_bytes().unwrap();
        // Byte-for-byte bincode 1 with its default options.
        assert_eq!(bytes, bincode::serialize(&evidence).unwrap());
        assert!(bytes.len() <= 240, "{} bytes", bytes.len());
        assert_eq!(Equivocation::from_bytes(&bytes).unwrap(), evidence);
        assert_eq!(evidence.view(), 42);

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Equivocation::from_bytes(&trailing),
            Err(EvidenceError::Encoding(_))
        ));
        assert!(matches!(
            Equivocation::from_bytes(&bytes[..bytes.len() - 1]),
            Err(EvidenceError::Encoding(_))
        ));
        assert_eq!(
            Equivocation::from_bytes(&vec![0; MAX_EVIDENCE_BYTES + 1]),
            Err(EvidenceError::TooLarge {
                size: MAX_EVIDENCE_BYTES + 1
            })
        );
        // A signature claiming a huge length is refused by the limit, not allocated.
        let mut huge = bytes.clone();
        let sig_len_at = 2 + 4 + 8 + 33 + 2;
        huge[sig_len_at..sig_len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Equivocation::from_bytes(&huge),
            Err(EvidenceError::Encoding(_))
        ));
        // An oversized pair cannot be encoded either.
        let mut big = evidence.clone();
        big.first.signature = vec![0; MAX_EVIDENCE_BYTES];
        assert!(matches!(
            big.to_bytes(),
            Err(EvidenceError::TooLarge { .. })
        ));
    }
}
