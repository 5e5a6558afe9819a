//! The crypto envelope of a document version (DESIGN.md, "Payloads, keys and erasure"):
//! XChaCha20-Poly1305 sealing of the payload under a per-version DEK, the salted
//! commitment, HPKE (RFC 9180) wrapping of DEK and salt to each recipient
//! administration, and the keyed UCR index.
//!
//! Must never draw randomness (the DEK, salt, nonce and ephemeral seed come from the
//! caller), never hash a payload without its salt (a bare hash would confirm a guess after
//! erasure), and never keep key material in a value that is not zeroized on drop.

use crate::types::{AgreementId, DocumentId, DocumentKind, Hash32};
use crate::ContractError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::{Deserializable, Serializable};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore as _, SeedableRng};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the XChaCha20-Poly1305 nonce that prefixes every ciphertext.
pub const NONCE_BYTES: usize = 24;
/// Domain tag of the payload associated data.
const PAYLOAD_AD_DOMAIN: &[u8] = b"carnet/payload/v1";
/// Domain tag of the HPKE `info` binding wrapped keys to one document version.
const WRAP_INFO_DOMAIN: &[u8] = b"carnet/wrap/v1";
/// Domain tag of the HPKE `info` binding one wrap to a batch of document versions.
const WRAP_BATCH_INFO_DOMAIN: &[u8] = b"carnet/wrap-batch/v1";
/// HPKE `info` prefix of an agreement's UCR key wrap.
const AGREEMENT_KEY_INFO_DOMAIN: &[u8] = b"carnet/agreement-ucr-key/v1";
/// Bytes of a wrapped 32-byte secret: HPKE ciphertext (32) plus the AEAD tag (16).
pub const WRAPPED_SECRET_BYTES: usize = 48;
/// Bytes of an X25519 encapsulated key.
pub const ENCAPSULATED_KEY_BYTES: usize = 32;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type WrapAead = hpke::aead::ChaCha20Poly1305;

/// The secrets of one document version: DEK (payload key) and commitment salt.
/// Destroying every copy of these is what erases a document.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DocumentKeys {
    pub dek: [u8; 32],
    pub salt: [u8; 32],
}

impl std::fmt::Debug for DocumentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DocumentKeys(<redacted>)")
    }
}

impl DocumentKeys {
    /// `dek || salt`, 64 bytes, zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(&self.dek);
        out[32..].copy_from_slice(&self.salt);
        out
    }

    /// Parses `dek || salt` (exactly 64 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ContractError> {
        if bytes.len() != 64 {
            return Err(ContractError::BadInput(format!(
                "document keys are {} bytes, expected 64 (dek || salt)",
                bytes.len()
            )));
        }
        let mut keys = Self {
            dek: [0; 32],
            salt: [0; 32],
        };
        keys.dek.copy_from_slice(&bytes[..32]);
        keys.salt.copy_from_slice(&bytes[32..]);
        Ok(keys)
    }
}

/// A sealed payload and the two digests that go on the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// `nonce (24 bytes) || XChaCha20-Poly1305 ciphertext with tag`.
    pub ciphertext: Vec<u8>,
    /// `blake3::keyed_hash(salt, payload)`.
    pub commitment: Hash32,
    /// `blake3(ciphertext)`.
    pub ciphertext_hash: Hash32,
}

/// Associated data of a payload: `"carnet/payload/v1" || id (16) || version (u32 BE) ||
/// kind name`. Binds the ciphertext to one version of one document of one kind.
pub fn associated_data(id: &DocumentId, version: u32, kind: DocumentKind) -> Vec<u8> {
    let mut ad = Vec::with_capacity(PAYLOAD_AD_DOMAIN.len() + 16 + 4 + 32);
    ad.extend_from_slice(PAYLOAD_AD_DOMAIN);
    ad.extend_from_slice(&id.0);
    ad.extend_from_slice(&version.to_be_bytes());
    ad.extend_from_slice(kind.as_str().as_bytes());
    ad
}

/// Salted commitment to a payload: `blake3::keyed_hash(salt, payload)`. Without the
/// salt, a guess at the payload cannot be confirmed against it.
pub fn commitment(salt: &[u8; 32], payload: &[u8]) -> Hash32 {
    *blake3::keyed_hash(salt, payload).as_bytes()
}

/// Encrypts `payload` for document `id`, `version`, `kind`. The caller supplies a fresh
/// random nonce (XChaCha's 192-bit nonce is safe to draw at random).
pub fn seal(
    payload: &[u8],
    keys: &DocumentKeys,
    nonce: [u8; NONCE_BYTES],
    id: &DocumentId,
    version: u32,
    kind: DocumentKind,
) -> Result<Sealed, ContractError> {
    let cipher = XChaCha20Poly1305::new((&keys.dek).into());
    let ad = associated_data(id, version, kind);
    let body = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: payload,
                aad: &ad,
            },
        )
        .map_err(|_| ContractError::Crypto("payload could not be sealed".into()))?;
    let mut ciphertext = Vec::with_capacity(NONCE_BYTES + body.len());
    ciphertext.extend_from_slice(&nonce);
    ciphertext.extend_from_slice(&body);
    let ciphertext_hash = *blake3::hash(&ciphertext).as_bytes();
    Ok(Sealed {
        ciphertext,
        commitment: commitment(&keys.salt, payload),
        ciphertext_hash,
    })
}

/// Decrypts a ciphertext made by [`seal`]. Fails if the key, the id, the version or the
/// kind differ, or if a single byte was changed.
pub fn open(
    ciphertext: &[u8],
    keys: &DocumentKeys,
    id: &DocumentId,
    version: u32,
    kind: DocumentKind,
) -> Result<Vec<u8>, ContractError> {
    if ciphertext.len() < NONCE_BYTES + 16 {
        return Err(ContractError::Crypto(format!(
            "ciphertext of document {id} is {} bytes, shorter than nonce and tag",
            ciphertext.len()
        )));
    }
    let (nonce, body) = ciphertext.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new((&keys.dek).into());
    let ad = associated_data(id, version, kind);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &ad,
            },
        )
        .map_err(|_| {
            ContractError::Crypto(format!(
                "ciphertext of document {id} version {version} ({kind}) does not open: wrong key, \
                 wrong document binding or tampered bytes"
            ))
        })
}

/// [`open`], then checks that the plaintext matches the ledger's `commitment`.
pub fn open_and_check(
    ciphertext: &[u8],
    keys: &DocumentKeys,
    id: &DocumentId,
    version: u32,
    kind: DocumentKind,
    expected_commitment: &Hash32,
) -> Result<Vec<u8>, ContractError> {
    let mut payload = open(ciphertext, keys, id, version, kind)?;
    if commitment(&keys.salt, &payload) != *expected_commitment {
        payload.zeroize();
        return Err(ContractError::Crypto(format!(
            "payload of document {id} version {version} does not match its commitment on the ledger"
        )));
    }
    Ok(payload)
}

/// DEK and salt wrapped with HPKE to one recipient administration's X25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKeys {
    /// HPKE encapsulated key (32 bytes for X25519); hex in JSON.
    #[serde(with = "crate::hex32::bytes")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext of `dek || salt` (64 bytes + 16 tag); hex in JSON.
    #[serde(with = "crate::hex32::bytes")]
    pub ciphertext: Vec<u8>,
}

/// HPKE `info` for the keys of one document version: `"carnet/wrap/v1" || id ||
/// version (u32 BE)`.
pub fn wrap_info(id: &DocumentId, version: u32) -> Vec<u8> {
    let mut info = Vec::with_capacity(WRAP_INFO_DOMAIN.len() + 20);
    info.extend_from_slice(WRAP_INFO_DOMAIN);
    info.extend_from_slice(&id.0);
    info.extend_from_slice(&version.to_be_bytes());
    info
}

/// Adapts the ChaCha20 RNG (rand_core 0.6) to the rand_core 0.9 traits `hpke` uses.
struct SeededRng(ChaCha20Rng);

impl hpke::rand_core::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl hpke::rand_core::CryptoRng for SeededRng {}

/// HPKE base-mode single-shot seal of `plaintext` to `recipient_public` (the suite of
/// every wrap: X25519-HKDF-SHA256 / HKDF-SHA256 / ChaCha20Poly1305); `what` names it in
/// errors.
fn hpke_seal(
    plaintext: &[u8],
    recipient_public: &[u8; 32],
    ephemeral_seed: [u8; 32],
    info: &[u8],
    what: &str,
) -> Result<WrappedKeys, ContractError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient_public)
        .map_err(|e| ContractError::Crypto(format!("recipient encryption key: {e}")))?;
    let mut rng = SeededRng(ChaCha20Rng::from_seed(ephemeral_seed));
    let (enc, ciphertext) = hpke::single_shot_seal::<WrapAead, Kdf, Kem, _>(
        &hpke::OpModeS::Base,
        &public,
        info,
        plaintext,
        b"",
        &mut rng,
    )
    .map_err(|e| ContractError::Crypto(format!("wrapping {what}: {e}")))?;
    Ok(WrappedKeys {
        enc: enc.to_bytes().to_vec(),
        ciphertext,
    })
}

/// Opens a [`hpke_seal`] wrap with the recipient's X25519 static secret; `refused` is
/// the error when it does not open.
fn hpke_open(
    wrapped: &WrappedKeys,
    recipient_secret: &[u8; 32],
    info: &[u8],
    refused: &str,
) -> Result<Zeroizing<Vec<u8>>, ContractError> {
    let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(recipient_secret)
        .map_err(|e| ContractError::Crypto(format!("own encryption key: {e}")))?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc)
        .map_err(|e| ContractError::Crypto(format!("wrap: encapsulated key: {e}")))?;
    let plaintext = hpke::single_shot_open::<WrapAead, Kdf, Kem>(
        &hpke::OpModeR::Base,
        &secret,
        &enc,
        info,
        &wrapped.ciphertext,
        b"",
    )
    .map_err(|_| ContractError::Crypto(refused.into()))?;
    Ok(Zeroizing::new(plaintext))
}

/// Wraps `keys` to `recipient_public` (X25519) with HPKE base mode, single shot,
/// X25519-HKDF-SHA256 / HKDF-SHA256 / ChaCha20Poly1305. The ephemeral key is derived
/// from `ephemeral_seed`, which the caller must draw fresh from a CSPRNG for every wrap.
pub fn wrap_keys(
    keys: &DocumentKeys,
    recipient_public: &[u8; 32],
    ephemeral_seed: [u8; 32],
    info: &[u8],
) -> Result<WrappedKeys, ContractError> {
    let plaintext = keys.to_bytes();
    hpke_seal(
        plaintext.as_slice(),
        recipient_public,
        ephemeral_seed,
        info,
        "document keys",
    )
}

/// Unwraps keys made by [`wrap_keys`] with the recipient's X25519 static secret.
pub fn unwrap_keys(
    wrapped: &WrappedKeys,
    recipient_secret: &[u8; 32],
    info: &[u8],
) -> Result<DocumentKeys, ContractError> {
    let plaintext = hpke_open(
        wrapped,
        recipient_secret,
        info,
        "wrapped keys do not open: not addressed to this key or not for this document version",
    )?;
    DocumentKeys::from_bytes(&plaintext)
}

/// Most document versions whose keys travel under one [`wrap_key_batch`] (one HPKE seal:
/// the X25519 work of a delivery is paid once per batch, not once per document).
pub const MAX_KEYS_PER_WRAP: usize = 256;

/// HPKE `info` binding a batch of wrapped keys to its document versions, in order:
/// `"carnet/wrap-batch/v1" || count (u32 BE) || (id || version (u32 BE))*`.
pub fn key_batch_info(versions: &[(DocumentId, u32)]) -> Vec<u8> {
    let mut info = Vec::with_capacity(WRAP_BATCH_INFO_DOMAIN.len() + 4 + versions.len() * 20);
    info.extend_from_slice(WRAP_BATCH_INFO_DOMAIN);
    info.extend_from_slice(&(versions.len() as u32).to_be_bytes());
    for (id, version) in versions {
        info.extend_from_slice(&id.0);
        info.extend_from_slice(&version.to_be_bytes());
    }
    info
}

/// Wraps the keys of several document versions to one recipient under one HPKE seal
/// (same suite as [`wrap_keys`]); the `info` is [`key_batch_info`] of `versions`, so the
/// wrap opens only for exactly these versions in this order. `keys[i]` belongs to
/// `versions[i]`; 1 to [`MAX_KEYS_PER_WRAP`] of them. `ephemeral_seed` must be drawn
/// fresh from a CSPRNG for every wrap.
pub fn wrap_key_batch(
    versions: &[(DocumentId, u32)],
    keys: &[DocumentKeys],
    recipient_public: &[u8; 32],
    ephemeral_seed: [u8; 32],
) -> Result<WrappedKeys, ContractError> {
    check_batch_len(versions.len())?;
    if keys.len() != versions.len() {
        return Err(ContractError::BadInput(format!(
            "key batch: {} keys for {} versions",
            keys.len(),
            versions.len()
        )));
    }
    let mut plaintext = Zeroizing::new(Vec::with_capacity(keys.len() * 64));
    for k in keys {
        plaintext.extend_from_slice(k.to_bytes().as_slice());
    }
    hpke_seal(
        &plaintext,
        recipient_public,
        ephemeral_seed,
        &key_batch_info(versions),
        "a key batch",
    )
}

/// Opens a [`wrap_key_batch`] with the recipient's X25519 static secret: the keys of
/// `versions`, in their order. Fails as a whole if the wrap is not for this key or not
/// for exactly these versions.
pub fn unwrap_key_batch(
    versions: &[(DocumentId, u32)],
    wrapped: &WrappedKeys,
    recipient_secret: &[u8; 32],
) -> Result<Vec<DocumentKeys>, ContractError> {
    check_batch_len(versions.len())?;
    let plaintext = hpke_open(
        wrapped,
        recipient_secret,
        &key_batch_info(versions),
        "key batch does not open: not addressed to this key or not for these document versions",
    )?;
    if plaintext.len() != versions.len() * 64 {
        return Err(ContractError::BadInput(format!(
            "key batch: {} bytes for {} versions",
            plaintext.len(),
            versions.len()
        )));
    }
    plaintext.chunks(64).map(DocumentKeys::from_bytes).collect()
}

fn check_batch_len(len: usize) -> Result<(), ContractError> {
    if len == 0 || len > MAX_KEYS_PER_WRAP {
        return Err(ContractError::BadInput(format!(
            "key batch of {len} versions: 1 to {MAX_KEYS_PER_WRAP} expected"
        )));
    }
    Ok(())
}

/// HPKE `info` for the UCR key of agreement `id`: `"carnet/agreement-ucr-key/v1" || id`.
pub fn agreement_key_info(id: &AgreementId) -> Vec<u8> {
    let mut info = AGREEMENT_KEY_INFO_DOMAIN.to_vec();
    info.extend_from_slice(&id.0);
    info
}

/// Wraps a 32-byte secret (an agreement's UCR key) to `recipient_public` with the same
/// HPKE suite as [`wrap_keys`]. `ephemeral_seed` must be drawn fresh from a CSPRNG.
pub fn wrap_secret(
    secret: &[u8; 32],
    recipient_public: &[u8; 32],
    ephemeral_seed: [u8; 32],
    info: &[u8],
) -> Result<WrappedKeys, ContractError> {
    hpke_seal(secret, recipient_public, ephemeral_seed, info, "a secret")
}

/// Unwraps a secret made by [`wrap_secret`] with the recipient's X25519 static secret.
pub fn unwrap_secret(
    wrapped: &WrappedKeys,
    recipient_secret: &[u8; 32],
    info: &[u8],
) -> Result<Zeroizing<[u8; 32]>, ContractError> {
    let plaintext = hpke_open(
        wrapped,
        recipient_secret,
        info,
        "wrapped secret does not open: not addressed to this key or not for this agreement",
    )?;
    let mut out = Zeroizing::new([0u8; 32]);
    if plaintext.len() != 32 {
        return Err(ContractError::Crypto(format!(
            "wrapped secret is {} bytes, not 32",
            plaintext.len()
        )));
    }
    out.copy_from_slice(&plaintext);
    Ok(out)
}

/// The UCR index of a Unique Consignment Reference: `blake3::keyed_hash(ucr_key,
/// normalized)` where normalized is trimmed and ASCII upper-cased. The UCR never goes on
/// the ledger in clear.
pub fn ucr_index(ucr_key: &[u8; 32], ucr: &str) -> Hash32 {
    let normalized = ucr.trim().to_ascii_uppercase();
    *blake3::keyed_hash(ucr_key, normalized.as_bytes()).as_bytes()
}
