//! A validator signer whose Ed25519 key lives on a PKCS#11 token (`CKM_EDDSA`): the
//! private key is generated on the token, marked sensitive and non-extractable, and
//! never leaves it.
//!
//! Must never log the user PIN, and never fall back to a software key: if the token is
//! unavailable, signing fails (the engine then does not vote, which is safe).
//!
//! The key pair is found by `CKA_LABEL` (and `CKA_KEY_TYPE = CKK_EC_EDWARDS`); the public
//! half is read from `CKA_EC_POINT` of the public key object. Every signature is checked
//! against that public key before it is handed to consensus, so a token returning a
//! signature from the wrong key is caught here and not by the other validators.

use std::sync::{Arc, Mutex};

use carnet_consensus::{Signer, SignerError, ValidatorIndex};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::vault::VaultError;
use crate::vault_pkcs11::{Pkcs11Config, TokenSession};

/// `CKA_EC_PARAMS` of an Ed25519 key as the PKCS#11 3.0 DER PrintableString
/// "edwards25519" (what SoftHSM2 2.6 and OpenSC generate).
pub const ED25519_EC_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";

/// `CKA_EC_PARAMS` of an Ed25519 key as the DER OID 1.3.6.1.4.1.11591.15.1 (the other form
/// PKCS#11 3.0 allows; some HSMs only know this one).
pub const ED25519_EC_PARAMS_OID: &[u8] = &[
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01,
];

fn signer_error(err: VaultError) -> SignerError {
    match err {
        VaultError::Hsm(message) => SignerError(format!("hardware security module: {message}")),
        other => SignerError(other.to_string()),
    }
}

/// The Ed25519 public key in a `CKA_EC_POINT` value: a DER OCTET STRING around 32 bytes
/// (SoftHSM2, PKCS#11 3.0), or the bare 32 bytes (some HSMs).
pub fn parse_ec_point(point: &[u8]) -> Result<VerifyingKey, String> {
    let raw: &[u8] = match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        bare if bare.len() == 32 => bare,
        other => {
            return Err(format!(
                "CKA_EC_POINT is {} bytes, expected a DER OCTET STRING of 32 bytes",
                other.len()
            ))
        }
    };
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(raw);
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("CKA_EC_POINT is not an Ed25519 key: {e}"))
}

fn key_template(class: ObjectClass, label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// What the token holds under one label.
enum Lookup {
    Found {
        private: ObjectHandle,
        params: Vec<u8>,
        point: Vec<u8>,
    },
    HalfPair,
    Ambiguous(usize),
}

/// Generates an Ed25519 key pair labelled `label` on the token: (public, private).
fn generate(session: &Session, label: &str) -> Result<(ObjectHandle, ObjectHandle), CkError> {
    let id = blake3::hash(label.as_bytes()).as_bytes()[..16].to_vec();
    let mut private = key_template(ObjectClass::PRIVATE_KEY, label);
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Id(id.clone()),
    ]);
    let mut last = None;
    // SoftHSM2 2.6 rejects the OID form with CKR_GENERAL_ERROR; other tokens may reject
    // the name form: try the name, then the OID.
    for params in [ED25519_EC_PARAMS_NAME, ED25519_EC_PARAMS_OID] {
        let mut public = key_template(ObjectClass::PUBLIC_KEY, label);
        public.extend([
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params.to_vec()),
            Attribute::Id(id.clone()),
        ]);
        match session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private) {
            Ok(pair) => return Ok(pair),
            Err(
                e @ CkError::Pkcs11(
                    RvError::GeneralError
                    | RvError::CurveNotSupported
                    | RvError::AttributeValueInvalid
                    | RvError::DomainParamsInvalid,
                    _,
                ),
            ) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(CkError::NotSupported))
}

/// A [`Signer`] backed by an Ed25519 key pair on a PKCS#11 token.
#[derive(Debug)]
pub struct Pkcs11Signer {
    index: ValidatorIndex,
    label: String,
    token: TokenSession,
    key: Mutex<ObjectHandle>,
    public: VerifyingKey,
}

impl Pkcs11Signer {
    /// Finds the key pair labelled `label` on the token, or generates it there
    /// (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, Ed25519) if it does not exist yet.
    pub fn generate_or_load(
        config: &Pkcs11Config,
        label: &str,
        index: ValidatorIndex,
    ) -> Result<Self, SignerError> {
        let token = TokenSession::open(config).map_err(signer_error)?;
        let what = format!("loading or generating validator key {label:?}");
        let lookup = token
            .run(&what, |session| {
                let private =
                    session.find_objects(&key_template(ObjectClass::PRIVATE_KEY, label))?;
                let public = session.find_objects(&key_template(ObjectClass::PUBLIC_KEY, label))?;
                let (private, public) = match (private.as_slice(), public.as_slice()) {
                    ([private], [public]) => (*private, *public),
                    ([], []) => {
                        let (public, private) = generate(session, label)?;
                        (private, public)
                    }
                    ([_], []) | ([], [_]) => return Ok(Lookup::HalfPair),
                    (private, public) => {
                        return Ok(Lookup::Ambiguous(private.len().max(public.len())))
                    }
                };
                let attributes = session
                    .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
                let (mut params, mut point) = (Vec::new(), Vec::new());
                for attribute in attributes {
                    match attribute {
                        Attribute::EcParams(value) => params = value,
                        Attribute::EcPoint(value) => point = value,
                        _ => {}
                    }
                }
                Ok(Lookup::Found {
                    private,
                    params,
                    point,
                })
            })
            .map_err(signer_error)?;
        let fail = |what: String| SignerError(format!("hardware security module: {what}"));
        let token_label = token.token_label().to_owned();
        let (key, point) = match lookup {
            Lookup::Found {
                private,
                params,
                point,
            } => {
                if params != ED25519_EC_PARAMS_NAME && params != ED25519_EC_PARAMS_OID {
                    return Err(fail(format!(
                        "key {label:?} is not an Ed25519 key (CKA_EC_PARAMS {})",
                        hex::encode(&params)
                    )));
                }
                (private, point)
            }
            Lookup::HalfPair => {
                return Err(fail(format!(
                    "only one half of key pair {label:?} is on token {token_label:?}"
                )))
            }
            Lookup::Ambiguous(count) => {
                return Err(fail(format!(
                    "{count} key pairs are labelled {label:?} on token {token_label:?}"
                )))
            }
        };
        let public = parse_ec_point(&point).map_err(|e| fail(format!("key {label:?}: {e}")))?;
        Ok(Self {
            index,
            label: label.to_owned(),
            token,
            key: Mutex::new(key),
            public,
        })
    }

    /// The validator's public key, as read from the token.
    pub fn public_key(&self) -> VerifyingKey {
        self.public
    }

    fn key_handle(&self) -> ObjectHandle {
        *self
            .key
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sign_on_token(&self, message: &[u8]) -> Result<Vec<u8>, VaultError> {
        let what = format!("signing with validator key {:?}", self.label);
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        self.token.run(&what, |session| {
            match session.sign(&mechanism, self.key_handle(), message) {
                // The handle went stale (token re-inserted, module reloaded): find it again.
                Err(CkError::Pkcs11(
                    RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                    _,
                )) => {
                    let template = key_template(ObjectClass::PRIVATE_KEY, &self.label);
                    let [key] = session.find_objects(&template)?[..] else {
                        return Err(CkError::Pkcs11(
                            RvError::KeyHandleInvalid,
                            cryptoki::context::Function::FindObjects,
                        ));
                    };
                    *self
                        .key
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
                    session.sign(&mechanism, key, message)
                }
                other => other,
            }
        })
    }
}

impl Signer for Pkcs11Signer {
    fn index(&self) -> ValidatorIndex {
        self.index
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        let bytes = self.sign_on_token(message).map_err(signer_error)?;
        let bytes: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
            SignerError(format!(
                "hardware security module: CKM_EDDSA returned {} bytes, expected 64",
                bytes.len()
            ))
        })?;
        let signature = Signature::from_bytes(&bytes);
        self.public
            .verify_strict(message, &signature)
            .map_err(|_| {
                SignerError(format!(
                    "hardware security module: a signature by key {:?} does not verify",
                    self.label
                ))
            })?;
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_hsm_signer_parses_ec_point_forms() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(key.as_bytes());
        assert_eq!(parse_ec_point(&der).unwrap(), key);
        assert_eq!(parse_ec_point(key.as_bytes()).unwrap(), key);
        assert!(parse_ec_point(&der[..20]).is_err());
    }
}

/// The validator signer a node runs with: `validator.key` or a key pair on the token
/// (`[validator] key` in config.toml).
#[derive(Debug)]
pub enum ValidatorSigner {
    File(Box<carnet_consensus::Ed25519Signer>),
    Hsm(Box<Pkcs11Signer>),
}

impl Signer for ValidatorSigner {
    fn index(&self) -> ValidatorIndex {
        match self {
            ValidatorSigner::File(s) => s.index(),
            ValidatorSigner::Hsm(s) => s.index(),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        match self {
            ValidatorSigner::File(s) => s.sign(message),
            ValidatorSigner::Hsm(s) => s.sign(message),
        }
    }
}

/// The validator key with the index it holds in the current epoch's set: the key stays,
/// the index changes from epoch to epoch (ADR 0011).
#[derive(Clone)]
pub struct EpochSigner {
    key: Arc<ValidatorSigner>,
    index: ValidatorIndex,
}

impl EpochSigner {
    pub fn new(key: Arc<ValidatorSigner>, index: ValidatorIndex) -> Self {
        EpochSigner { key, index }
    }
}

impl std::fmt::Debug for EpochSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochSigner")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Signer for EpochSigner {
    fn index(&self) -> ValidatorIndex {
        self.index
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        self.key.sign(message)
    }
}
