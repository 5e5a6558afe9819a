//! Wire and storage types of the consensus protocol: blocks, votes, certificates, the
//! safety record. Encodings here are canonical; they must never depend on map order,
//! platform word size or anything but the value itself.

use serde::{Deserialize, Serialize};

/// A Simplex view (iteration). View 0 belongs to genesis; the protocol starts in view 1.
pub type View = u64;
/// Height of a block in the chain; genesis is height 0.
pub type Height = u64;
/// blake3 digest of a block's canonical encoding.
pub type Digest = [u8; 32];
/// Position of a validator in the [`crate::ValidatorSet`].
pub type ValidatorIndex = u16;

/// Domain tag hashed in front of every block encoding.
const BLOCK_DOMAIN: &[u8] = b"carnet/consensus/block/v1";

/// A proposed block. The payload is opaque to consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub view: View,
    pub height: Height,
    pub parent: Digest,
    pub payload: Vec<u8>,
}

impl Block {
    /// blake3 over a domain tag and the block's bincode encoding.
    ///
    /// The encoding is written by hand so that it is infallible; it is byte-for-byte
    /// bincode 1 with its default options (fixed-width little-endian integers, `u64`
    /// length prefixes), which a unit test checks.
    pub fn digest(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(BLOCK_DOMAIN);
        hasher.update(&self.view.to_le_bytes());
        hasher.update(&self.height.to_le_bytes());
        hasher.update(&self.parent);
        hasher.update(&(self.payload.len() as u64).to_le_bytes());
        hasher.update(&self.payload);
        *hasher.finalize().as_bytes()
    }

    /// The genesis block: view 0, height 0, zero parent, empty payload. Every validator
    /// treats it as finalized. The namespace is accepted for API stability; networks are
    /// kept apart by the namespace in every signed vote, not by the genesis digest.
    pub fn genesis(_namespace: &[u8]) -> Block {
        Block {
            view: 0,
            height: 0,
            parent: [0; 32],
            payload: Vec::new(),
        }
    }
}

/// The three votes of Simplex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VoteKind {
    Notarize,
    Nullify,
    Finalize,
}

impl VoteKind {
    /// Domain-separation tag placed after the namespace in signed messages.
    pub(crate) fn tag(self) -> u8 {
        match self {
            VoteKind::Notarize => 1,
            VoteKind::Nullify => 2,
            VoteKind::Finalize => 3,
        }
    }
}

/// One validator's signed vote. `digest` is `Some` for notarize/finalize and `None` for
/// nullify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    pub kind: VoteKind,
    pub view: View,
    pub digest: Option<Digest>,
    pub signer: ValidatorIndex,
    /// 64-byte ed25519 signature over [`crate::vote_message`].
    pub signature: Vec<u8>,
}

/// A quorum of votes of one kind on one (view, digest): a notarization, nullification or
/// finalization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub kind: VoteKind,
    pub view: View,
    pub digest: Option<Digest>,
    /// Bitmap of signers, bit `i % 8` of byte `i / 8` for validator `i`; exactly
    /// `ceil(n / 8)` bytes.
    pub signers: Vec<u8>,
    /// One signature per set bit, in increasing signer order.
    pub signatures: Vec<Vec<u8>>,
}

impl Certificate {
    /// Indices of the signers named by the bitmap, in increasing order.
    pub fn signer_indices(&self) -> Vec<ValidatorIndex> {
        let mut out = Vec::new();
        for (byte_index, byte) in self.signers.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    let index = byte_index * 8 + bit;
                    if let Ok(index) = ValidatorIndex::try_from(index) {
                        out.push(index);
                    }
                }
            }
        }
        out
    }
}

/// Everything validators send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The leader's block together with its own notarize vote for it.
    Proposal {
        block: Block,
        vote: SignedVote,
    },
    Vote(SignedVote),
    Certificate(Certificate),
    /// "Send me the notarizations/nullifications you hold for these views." Sent by a
    /// validator that cannot check the parent rule because it missed certificates (after
    /// a restart or partition). At most [`MAX_CERTIFICATE_REQUEST`] views.
    CertificateRequest {
        views: Vec<View>,
    },
}

/// Largest number of views one [`Message::CertificateRequest`] may name.
pub const MAX_CERTIFICATE_REQUEST: usize = 64;

/// What this validator has signed in one view. Cumulative: the latest record for a view
/// supersedes earlier ones. The driver must persist it durably before it sends any vote
/// that follows it in the same output batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyRecord {
    pub view: View,
    pub notarized: Option<Digest>,
    pub nullified: bool,
    pub finalized: Option<Digest>,
}

/// Two conflicting votes signed by one validator in one view: proof of Byzantine
/// behaviour that can be shown to anyone holding the validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    pub validator: ValidatorIndex,
    pub first: SignedVote,
    pub second: SignedVote,
}

/// Canonical bytes signed by a vote: `namespace || kind tag || bincode((view, digest))`.
///
/// Written by hand (infallible) and byte-for-byte equal to bincode 1's default encoding
/// of `(u64, Option<[u8; 32]>)`.
pub fn vote_message(
    namespace: &[u8],
    kind: VoteKind,
    view: View,
    digest: Option<&Digest>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(namespace.len() + 1 + 8 + 33);
    out.extend_from_slice(namespace);
    out.push(kind.tag());
    out.extend_from_slice(&view.to_le_bytes());
    match digest {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_encoding_is_bincode() {
        let block = Block {
            view: 7,
            height: 3,
            parent: [9; 32],
            payload: vec![1, 2, 3],
        };
        let mut expected = blake3::Hasher::new();
        expected.update(BLOCK_DOMAIN);
        expected.update(&bincode::serialize(&block).unwrap());
        assert_eq!(block.digest(), *expected.finalize().as_bytes());
    }

    #[test]
    fn vote_encoding_is_bincode() {
        let d = [4u8; 32];
        for (digest, kind) in [(Some(d), VoteKind::Notarize), (None, VoteKind::Nullify)] {
            let mut expected = b"ns".to_vec();
            expected.push(kind.tag());
            expected.extend(bincode::serialize(&(11u64, digest)).unwrap());
            assert_eq!(vote_message(b"ns", kind, 11, digest.as_ref()), expected);
        }
    }
}
