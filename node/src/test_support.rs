//! Fixtures shared by the unit tests of several modules.

use carnet_contracts::{AdminCode, Administration, PublicKey};
use ed25519_dalek::SigningKey;

/// A voting member `code` whose node, validator and encryption keys derive from
/// `seed`, `seed + 1` and `seed + 2`.
pub(crate) fn admin(code: &str, seed: u8) -> Administration {
    Administration {
        code: AdminCode(code.into()),
        name: format!("Land {code}"),
        node_key: PublicKey(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        ),
        validator_key: PublicKey(
            SigningKey::from_bytes(&[seed + 1; 32])
                .verifying_key()
                .to_bytes(),
        ),
        encryption_key: carnet_contracts::keys::x25519_public(&[seed + 2; 32]),
        voting_power: 1,
        active: true,
    }
}
