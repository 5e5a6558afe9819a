//! Consensus epochs on a node (ADR 0011): which validator set, under which signing
//! namespace, finalizes which heights. Epoch 0 is the genesis validators in genesis
//! order; the set of every later epoch `e` is the active members of the ledger, by
//! code, as committed at the last height of epoch `e - 1`. The node persists each
//! epoch's set when it starts it, because the ledger moves on during the epoch.
//!
//! Must never: derive an epoch's set from anything but the finalized ledger at the
//! previous boundary (every honest node must derive the same set), or start an epoch
//! whose record cannot be read back.

use carnet_consensus::{epoch_namespace, Epoch, EpochSchedule, Height, ValidatorSet};
use carnet_contracts::{AdminCode, Administration, Genesis, PublicKey};
use serde::{Deserialize, Serialize};

use crate::storage::{encode, StorageError, Store, CF_META};

/// One epoch as the node runs it.
#[derive(Clone, Debug)]
pub struct EpochInfo {
    pub epoch: Epoch,
    pub first_height: Height,
    pub last_height: Height,
    pub validators: ValidatorSet,
    /// Administration of each validator index.
    pub admins: Vec<AdminCode>,
    /// Validator key of each validator index.
    pub keys: Vec<PublicKey>,
    pub namespace: Vec<u8>,
}

/// What the node persists about an epoch it started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct EpochRecord {
    epoch: Epoch,
    validators: Vec<(AdminCode, PublicKey)>,
}

fn record_key(epoch: Epoch) -> Vec<u8> {
    let mut key = b"epoch/".to_vec();
    key.extend_from_slice(&epoch.to_be_bytes());
    key
}

/// Errors deriving or loading an epoch.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("epoch {epoch}: {reason}")]
    Invalid { epoch: Epoch, reason: String },
}

/// The schedule of `genesis` (its epoch length is at least 1).
pub fn schedule(genesis: &Genesis) -> Result<EpochSchedule, EpochError> {
    EpochSchedule::new(genesis.epoch_length_blocks).ok_or(EpochError::Invalid {
        epoch: 0,
        reason: "genesis epoch_length_blocks is 0".into(),
    })
}

impl EpochInfo {
    fn new(
        chain_id: &str,
        schedule: EpochSchedule,
        epoch: Epoch,
        validators: Vec<(AdminCode, PublicKey)>,
    ) -> Result<EpochInfo, EpochError> {
        let invalid = |reason: String| EpochError::Invalid { epoch, reason };
        let keys = validators
            .iter()
            .map(|(code, key)| {
                ed25519_dalek::VerifyingKey::from_bytes(&key.0)
                    .map_err(|e| invalid(format!("validator key of {code}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let set = ValidatorSet::new(keys).map_err(|e| invalid(e.to_string()))?;
        // MUTATION build only (feature `mutation-weak-quorum`, scenario suite).
        #[cfg(feature = "mutation-weak-quorum")]
        let set = {
            let mut weakened = set;
            weakened.weaken_quorum_to_f_plus_one();
            tracing::warn!(
                quorum = weakened.quorum(),
                "MUTATION: quorum lowered to f+1; this node is deliberately unsafe"
            );
            weakened
        };
        Ok(EpochInfo {
            epoch,
            first_height: schedule.first_height(epoch),
            last_height: schedule.last_height(epoch),
            namespace: epoch_namespace(chain_id.as_bytes(), epoch, &set),
            validators: set,
            admins: validators.iter().map(|(code, _)| code.clone()).collect(),
            keys: validators.into_iter().map(|(_, key)| key).collect(),
        })
    }

    /// Epoch 0: the active administrations of genesis, in genesis order.
    pub fn genesis(genesis: &Genesis) -> Result<EpochInfo, EpochError> {
        let validators = genesis
            .administrations
            .iter()
            .filter(|a| a.active)
            .map(|a| (a.code.clone(), a.validator_key))
            .collect();
        EpochInfo::new(&genesis.chain_id, schedule(genesis)?, 0, validators)
    }

    /// Validator index of `code` in this epoch.
    pub fn index_of(&self, code: &AdminCode) -> Option<carnet_consensus::ValidatorIndex> {
        self.admins
            .iter()
            .position(|a| a == code)
            .and_then(|i| carnet_consensus::ValidatorIndex::try_from(i).ok())
    }
}

/// The set of epoch `epoch ≥ 1` from the active members in `administrations` (the
/// committed ledger at the last height of the previous epoch), by code.
pub fn from_members(
    genesis: &Genesis,
    epoch: Epoch,
    administrations: &[Administration],
) -> Result<EpochInfo, EpochError> {
    let mut validators: Vec<(AdminCode, PublicKey)> = administrations
        .iter()
        .filter(|a| a.active)
        .map(|a| (a.code.clone(), a.validator_key))
        .collect();
    validators.sort_by(|a, b| a.0.cmp(&b.0));
    EpochInfo::new(&genesis.chain_id, schedule(genesis)?, epoch, validators)
}

/// Durably records the set of `info.epoch` (before its engine signs anything).
pub fn persist(store: &Store, info: &EpochInfo) -> Result<(), EpochError> {
    let record = EpochRecord {
        epoch: info.epoch,
        validators: info
            .admins
            .iter()
            .cloned()
            .zip(info.keys.iter().copied())
            .collect(),
    };
    store.put_raw_synced(CF_META, &record_key(info.epoch), &encode(&record))?;
    Ok(())
}

/// The epoch a node with committed head `head_height` is in: the one containing
/// `head_height + 1`. Read from its record; at the first height of an epoch whose record
/// is missing (a stop between committing the boundary block and recording the next
/// set) it is derived from the ledger, which is then exactly the boundary state, and
/// recorded.
pub fn current(
    store: &Store,
    genesis: &Genesis,
    head_height: Height,
    ledger_members: impl FnOnce() -> Result<Vec<Administration>, String>,
) -> Result<EpochInfo, EpochError> {
    let schedule = schedule(genesis)?;
    let epoch = schedule.epoch_of(head_height.saturating_add(1));
    if epoch == 0 {
        return EpochInfo::genesis(genesis);
    }
    if let Some(bytes) = store.get_raw(CF_META, &record_key(epoch))? {
        let record: EpochRecord =
            crate::storage::decode_limited(&bytes, 1 << 20).map_err(|e| EpochError::Invalid {
                epoch,
                reason: format!("record does not decode: {e}"),
            })?;
        if record.epoch != epoch {
            return Err(EpochError::Invalid {
                epoch,
                reason: format!("record names epoch {}", record.epoch),
            });
        }
        return EpochInfo::new(&genesis.chain_id, schedule, epoch, record.validators);
    }
    if head_height != schedule.last_height(epoch - 1) {
        return Err(EpochError::Invalid {
            epoch,
            reason: format!(
                "no record of its validator set, and the head {head_height} is past its start"
            ),
        });
    }
    let members = ledger_members().map_err(|reason| EpochError::Invalid { epoch, reason })?;
    let info = from_members(genesis, epoch, &members)?;
    persist(store, &info)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis_for_tests() -> Genesis {
        let administration = |code: &str, seed: u8| Administration {
            code: AdminCode(code.into()),
            name: format!("Administration {code}"),
            node_key: PublicKey([seed; 32]),
            validator_key: PublicKey(
                ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                    .verifying_key()
                    .to_bytes(),
            ),
            encryption_key: [seed; 32],
            voting_power: 1,
            active: true,
        };
        Genesis {
            chain_id: "carnet-epochs".into(),
            genesis_time_ms: 1_700_000_000_000,
            administrations: vec![
                administration("XB", 2),
                administration("XA", 1),
                administration("XC", 3),
            ],
            officers: Vec::new(),
            agreements: Vec::new(),
            epoch_length_blocks: 4,
        }
    }

    #[test]
    fn later_epochs_follow_the_ledger_and_are_read_back_from_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let genesis = genesis_for_tests();
        let zero = current(&store, &genesis, 0, || unreachable!()).unwrap();
        assert_eq!((zero.epoch, zero.first_height, zero.last_height), (0, 1, 4));
        assert_eq!(zero.namespace, genesis.chain_id.as_bytes());
        // Head 3 is still epoch 0.
        assert_eq!(
            current(&store, &genesis, 3, || unreachable!())
                .unwrap()
                .epoch,
            0
        );
        // At the boundary (head 4) epoch 1 is derived from the ledger and recorded.
        let mut members = genesis.administrations.clone();
        members.reverse();
        let one = current(&store, &genesis, 4, || Ok(members.clone())).unwrap();
        assert_eq!((one.epoch, one.first_height, one.last_height), (1, 5, 8));
        let mut codes = one.admins.clone();
        codes.sort();
        assert_eq!(one.admins, codes, "later epochs order validators by code");
        assert_ne!(one.namespace, zero.namespace);
        // Later in epoch 1 the record is read back, not the (moved on) ledger.
        let again = current(&store, &genesis, 6, || Err("must not be read".into())).unwrap();
        assert_eq!(again.admins, one.admins);
        assert_eq!(again.namespace, one.namespace);
        // Past the start of an epoch without a record: refused, loudly.
        let err = current(&store, &genesis, 9, || Ok(members.clone())).unwrap_err();
        assert!(err.to_string().contains("no record"), "{err}");
    }
}
