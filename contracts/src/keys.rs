//! Key files: the JSON form of ed25519 signing keys (officer, node, validator) and of
//! X25519 encryption keys, `{"public_key": "<hex32>", "secret_key": "<hex32>"}`.
//!
//! Must never write a file or choose a file mode (the caller does, with 0600), never
//! generate a key (keys come from the caller's RNG), and never print a secret in an error.

use crate::types::PublicKey;
use crate::ContractError;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A key pair as stored on disk. The secret is zeroized when the value is dropped.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct KeyFile {
    pub public_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("public_key", &self.public_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

fn secret_bytes(text: &str) -> Result<Zeroizing<[u8; 32]>, ContractError> {
    let bytes = Zeroizing::new(
        hex::decode(text.trim())
            .map_err(|_| ContractError::BadInput("key file: secret_key is not hex".into()))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(ContractError::BadInput(format!(
            "key file: secret_key is {} bytes, expected 32",
            bytes.len()
        )));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

impl KeyFile {
    /// The key file of an ed25519 signing key.
    pub fn from_signing_key(key: &SigningKey) -> Self {
        Self {
            public_key: hex::encode(key.verifying_key().as_bytes()),
            secret_key: hex::encode(key.to_bytes()),
        }
    }

    /// The ed25519 signing key; fails if the file's public key does not match the secret.
    pub fn to_signing_key(&self) -> Result<SigningKey, ContractError> {
        let secret = secret_bytes(&self.secret_key)?;
        let key = SigningKey::from_bytes(&secret);
        let public = self.public()?;
        if key.verifying_key().as_bytes() != &public.0 {
            return Err(ContractError::BadInput(
                "key file: public_key does not match secret_key".into(),
            ));
        }
        Ok(key)
    }

    /// The public key as written in the file (ed25519 or X25519, 32 bytes).
    pub fn public(&self) -> Result<PublicKey, ContractError> {
        PublicKey::from_hex(self.public_key.trim())
            .map_err(|e| ContractError::BadInput(format!("key file: public_key: {e}")))
    }

    /// The key file of an X25519 static secret (HPKE recipient key).
    pub fn from_x25519_secret(secret: [u8; 32]) -> Self {
        let secret = Zeroizing::new(secret);
        Self {
            public_key: hex::encode(x25519_public(&secret)),
            secret_key: hex::encode(*secret),
        }
    }

    /// The X25519 static secret; fails if the public key does not match it.
    pub fn to_x25519_secret(&self) -> Result<[u8; 32], ContractError> {
        let secret = secret_bytes(&self.secret_key)?;
        if x25519_public(&secret) != self.public()?.0 {
            return Err(ContractError::BadInput(
                "key file: public_key does not match the X25519 secret_key".into(),
            ));
        }
        Ok(*secret)
    }
}

/// The X25519 public key of a static secret.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    let secret = x25519_dalek::StaticSecret::from(*secret);
    x25519_dalek::PublicKey::from(&secret).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_key_file_roundtrips_through_json() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let file = KeyFile::from_signing_key(&key);
        let json = serde_json::to_string(&file).unwrap();
        let back: KeyFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_signing_key().unwrap().to_bytes(), key.to_bytes());
        assert_eq!(back.public().unwrap().0, key.verifying_key().to_bytes());
    }

    #[test]
    fn x25519_key_file_roundtrips_and_checks_public() {
        let file = KeyFile::from_x25519_secret([9u8; 32]);
        assert_eq!(file.to_x25519_secret().unwrap(), [9u8; 32]);
        let mut wrong = file.clone();
        wrong.public_key = hex::encode([1u8; 32]);
        assert!(wrong.to_x25519_secret().is_err());
    }

    #[test]
    fn mismatched_ed25519_public_key_is_refused() {
        let mut file = KeyFile::from_signing_key(&SigningKey::from_bytes(&[7u8; 32]));
        file.public_key = hex::encode(
            SigningKey::from_bytes(&[8u8; 32])
                .verifying_key()
                .as_bytes(),
        );
        let err = file.to_signing_key().unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let file = KeyFile::from_signing_key(&SigningKey::from_bytes(&[7u8; 32]));
        assert!(!format!("{file:?}").contains(&file.secret_key));
    }
}
