//! Epochs: fixed runs of heights, each finalized by one validator set under its own
//! signing namespace (ADR 0011). This module is arithmetic and hashing only; who the
//! validators of an epoch are is the application's decision (a function of its
//! finalized state at the previous epoch's last height), never this crate's.
//!
//! Must never: let two epochs share a namespace, or make a height's epoch depend on
//! anything but the height and the schedule.

use crate::types::Height;
use crate::validators::ValidatorSet;

/// Index of an epoch; epoch 0 starts at genesis.
pub type Epoch = u64;

/// Tag placed between the chain namespace and the epoch number. Its first byte (`/`,
/// 0x2F) differs from every vote kind tag (1, 2, 3), so an epoch-0 vote message (chain
/// namespace directly followed by a kind tag) can never equal an epoch ≥ 1 message.
const EPOCH_TAG: &[u8] = b"/epoch/";

/// Epoch `e` covers heights `e·L + 1 ..= (e + 1)·L` for `L = length_blocks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    length_blocks: u64,
}

impl EpochSchedule {
    /// `None` for a length of 0.
    pub fn new(length_blocks: u64) -> Option<Self> {
        (length_blocks > 0).then_some(EpochSchedule { length_blocks })
    }

    pub fn length_blocks(&self) -> u64 {
        self.length_blocks
    }

    /// The epoch of a block at `height` (genesis, height 0, belongs to epoch 0).
    pub fn epoch_of(&self, height: Height) -> Epoch {
        height.saturating_sub(1) / self.length_blocks
    }

    /// Highest height of `epoch`: the last block its validator set finalizes.
    pub fn last_height(&self, epoch: Epoch) -> Height {
        epoch.saturating_add(1).saturating_mul(self.length_blocks)
    }

    /// Lowest height of `epoch`.
    pub fn first_height(&self, epoch: Epoch) -> Height {
        epoch.saturating_mul(self.length_blocks).saturating_add(1)
    }
}

/// The signing namespace of `epoch` under a chain namespace.
///
/// Epoch 0 signs under the chain namespace itself. Every later epoch appends the epoch
/// number and a digest of its validator set, so that a vote or certificate of one epoch
/// never verifies in another, even when the same keys sign in both, and validators that
/// disagree on a set cannot form a certificate together.
pub fn epoch_namespace(chain_namespace: &[u8], epoch: Epoch, validators: &ValidatorSet) -> Vec<u8> {
    if epoch == 0 {
        return chain_namespace.to_vec();
    }
    let mut out = Vec::with_capacity(chain_namespace.len() + EPOCH_TAG.len() + 8 + 32);
    out.extend_from_slice(chain_namespace);
    out.extend_from_slice(EPOCH_TAG);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&validators.digest());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{vote_message, VoteKind};
    use ed25519_dalek::SigningKey;

    fn set(seeds: &[u8]) -> ValidatorSet {
        ValidatorSet::new(
            seeds
                .iter()
                .map(|s| SigningKey::from_bytes(&[*s; 32]).verifying_key())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn heights_map_to_epochs_without_gaps() {
        assert!(EpochSchedule::new(0).is_none());
        let s = EpochSchedule::new(4).unwrap();
        let epochs: Vec<Epoch> = (0..=9).map(|h| s.epoch_of(h)).collect();
        assert_eq!(epochs, vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 2]);
        for e in 0..5 {
            assert_eq!(s.epoch_of(s.first_height(e)), e);
            assert_eq!(s.epoch_of(s.last_height(e)), e);
            assert_eq!(s.first_height(e + 1), s.last_height(e) + 1);
        }
        let one = EpochSchedule::new(1).unwrap();
        assert_eq!((one.epoch_of(1), one.epoch_of(2)), (0, 1));
    }

    #[test]
    fn namespaces_differ_per_epoch_and_set() {
        let a = set(&[1, 2, 3, 4]);
        let b = set(&[1, 2, 3, 5]);
        assert_eq!(epoch_namespace(b"chain", 0, &a), b"chain".to_vec());
        let n1 = epoch_namespace(b"chain", 1, &a);
        assert_ne!(n1, epoch_namespace(b"chain", 2, &a));
        assert_ne!(n1, epoch_namespace(b"chain", 1, &b));
        // An epoch-0 vote message never equals an epoch-1 one.
        for kind in [VoteKind::Notarize, VoteKind::Nullify, VoteKind::Finalize] {
            let zero = vote_message(b"chain", kind, 9, Some(&[7; 32]));
            let one = vote_message(&n1, kind, 9, Some(&[7; 32]));
            assert_ne!(zero[..b"chain".len() + 1], one[..b"chain".len() + 1]);
        }
    }
}
