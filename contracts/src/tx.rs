//! Transactions: `SignedTransaction` = an `Action` signed by a node key over a
//! domain-separated canonical bincode encoding, with a nonce and an expiry against replay.
//!
//! Must never: accept a signature over anything but `signing_bytes()`, or hash a
//! non-canonical encoding.

use crate::agreement::Agreement;
use crate::codec;
use crate::erasure::DestructionAttestation;
pub use crate::evidence::EquivocationReport;
use crate::request::{Matter, RequestAnswer};
use crate::types::{
    AdminCode, AgreementId, DocumentId, DocumentKind, Hash32, ProposalId, PublicKey, RequestId,
    Role,
};
use crate::Administration;
use crate::ContractError;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Largest encoded transaction accepted anywhere (mempool, block, API).
pub const MAX_TX_BYTES: usize = 16 * 1024;
/// Largest ciphertext accepted for one document version.
pub const MAX_CIPHERTEXT_BYTES: usize = 1024 * 1024;
/// Longest allowed time between a block's time and a transaction's expiry.
pub const MAX_TX_TTL_MS: u64 = 10 * 60 * 1000;
/// Domain-separation tag for transaction signatures and hashes.
pub const TX_DOMAIN: &[u8] = b"carnet/tx/v1";

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A new document (version 1). The ciphertext travels beside the transaction.
    SubmitDocument(DocumentSubmission),
    /// A node served a decryption to one of its officers.
    RecordAccess {
        document: DocumentId,
        version: u32,
        officer: PublicKey,
        purpose: String,
    },
    /// Proposes an agreement (GNC Utility Block); the proposer's administration accepts
    /// it implicitly. Signed by a party's node on behalf of its `admin` officer.
    ProposeAgreement(Agreement),
    /// A node served a decryption to one of its officers under an access grant from an
    /// answered TFA Article 12 request; `purpose` must be the request's purpose.
    RecordGrantedAccess {
        request: RequestId,
        document: DocumentId,
        version: u32,
        officer: PublicKey,
        purpose: String,
    },
    /// A party accepts a proposed agreement; active once every party accepted.
    AcceptAgreement { id: AgreementId },
    /// A new document (version 1) under an active agreement: every `SubmitDocument` rule
    /// plus the agreement rules; the agreement is recorded for retention.
    SubmitUnderAgreement {
        agreement: AgreementId,
        submission: DocumentSubmission,
    },
    /// A new version of a document; the previous version becomes `amended`.
    /// `submission.id` must equal `id`. The ciphertext travels beside the transaction.
    AmendDocument {
        id: DocumentId,
        submission: DocumentSubmission,
    },
    /// The latest version of a document becomes `cancelled`.
    CancelDocument { id: DocumentId, reason: String },
    /// A WTO TFA Article 12 information request to another administration.
    CreateRequest {
        id: RequestId,
        to: AdminCode,
        matter: Matter,
        purpose: String,
        legal_basis: String,
        items: Vec<String>,
        confidentiality: String,
    },
    /// The requested administration answers: provide, postpone or refuse (Art. 12.7.1).
    AnswerRequest {
        id: RequestId,
        answer: RequestAnswer,
    },
    /// The requester notifies unauthorized use or disclosure (Art. 12.11.1).
    ReportBreach { id: RequestId, details: String },
    /// An administration's `admin` registers an officer of the same administration.
    AddOfficer {
        key: PublicKey,
        name: String,
        roles: Vec<Role>,
    },
    /// An administration's `admin` revokes one of its officers.
    RevokeOfficer { key: PublicKey },
    /// Proposes admitting a member; effective `effective_delay_blocks` after it passes.
    ProposeMember {
        id: ProposalId,
        administration: Administration,
        effective_delay_blocks: u64,
        /// The admitted administration's first officers (at least one `admin`),
        /// registered when the admission takes effect.
        officers: Vec<crate::Officer>,
    },
    /// Proposes removing a member; effective `effective_delay_blocks` after it passes.
    ProposeRemoval {
        id: ProposalId,
        code: AdminCode,
        effective_delay_blocks: u64,
    },
    /// A member votes on an open membership proposal.
    Vote { proposal: ProposalId, yes: bool },
    /// Erases a document by key destruction (issuer's `supervisor` or `admin`).
    EraseDocument {
        id: DocumentId,
        reason: String,
        legal_basis: String,
    },
    /// A node attests it destroyed the keys and ciphertexts of an erased document.
    /// Signed by that node's key; no officer.
    AttestDestruction(DestructionAttestation),
    /// A recipient administration acknowledges that a document version pushed to it
    /// (`GET /v1/events`) reached its systems. Once per administration and version.
    AcknowledgeDelivery { document: DocumentId, version: u32 },
    /// A member's node reports that a validator signed two conflicting consensus votes
    /// in one view. Signed by the reporting node's key; no officer. The evidence is
    /// verified by the node before execution ([`crate::evidence`]).
    ReportEquivocation(EquivocationReport),
}

impl Action {
    /// The document version this action brings, if any: the node must carry its
    /// ciphertext beside the transaction (`SubmitDocument`, `SubmitUnderAgreement`,
    /// `AmendDocument`).
    pub fn document_submission(&self) -> Option<&DocumentSubmission> {
        match self {
            Action::SubmitDocument(s)
            | Action::SubmitUnderAgreement { submission: s, .. }
            | Action::AmendDocument { submission: s, .. } => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSubmission {
    pub id: DocumentId,
    pub kind: DocumentKind,
    pub recipients: Vec<AdminCode>,
    #[serde(with = "crate::hex32")]
    pub ucr_index: Hash32,
    #[serde(with = "crate::hex32")]
    pub commitment: Hash32,
    #[serde(with = "crate::hex32")]
    pub ciphertext_hash: Hash32,
    pub ciphertext_len: u32,
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: String,
    /// Node key of the administration that submits it.
    pub signer: PublicKey,
    /// Officer on whose behalf the node acts (authenticated by the node's API).
    pub officer: Option<PublicKey>,
    /// Makes otherwise identical transactions distinct. Replay protection is by
    /// transaction hash: a hash already executed (kept until its expiry) is rejected.
    pub nonce: u64,
    /// Block time after which the transaction may no longer be included.
    pub expires_at_ms: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    /// ed25519 signature (64 bytes) by `tx.signer` over `tx.signing_bytes()`; hex in JSON.
    #[serde(with = "crate::hex32::bytes")]
    pub signature: Vec<u8>,
}

impl Transaction {
    /// The exact bytes that are signed and hashed: `TX_DOMAIN || bincode(self)`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = TX_DOMAIN.to_vec();
        bytes.extend_from_slice(&codec::encode(self));
        bytes
    }

    /// Signs the transaction with the node key. The caller must pass the key whose
    /// public half is `self.signer`; `verify` rejects anything else.
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        let signature = key.sign(&self.signing_bytes()).to_bytes().to_vec();
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

impl SignedTransaction {
    /// Transaction hash: `blake3(signing_bytes)`. The signature is not part of it, so a
    /// re-signed (malleated) copy has the same hash and is caught by the replay rule.
    pub fn hash(&self) -> Hash32 {
        *blake3::hash(&self.tx.signing_bytes()).as_bytes()
    }

    /// Checks the signature of `tx.signer` over `tx.signing_bytes()`.
    pub fn verify(&self) -> Result<(), ContractError> {
        let (key, signature) = self.parts()?;
        key.verify_strict(&self.tx.signing_bytes(), &signature)
            .map_err(|_| {
                ContractError::BadSignature(format!(
                    "transaction {} is not signed by its signer {}",
                    hex::encode(self.hash()),
                    self.tx.signer
                ))
            })
    }

    fn parts(&self) -> Result<(VerifyingKey, Signature), ContractError> {
        let key = VerifyingKey::from_bytes(&self.tx.signer.0).map_err(|_| {
            ContractError::BadSignature(format!(
                "signer {} is not a valid ed25519 public key",
                self.tx.signer
            ))
        })?;
        let bytes: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| {
            ContractError::BadSignature(format!(
                "signature is {} bytes, expected 64",
                self.signature.len()
            ))
        })?;
        Ok((key, Signature::from_bytes(&bytes)))
    }

    /// Canonical wire form (bincode).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parses the wire form: at most `MAX_TX_BYTES`, no trailing bytes. Does not verify
    /// the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContractError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(ContractError::BadInput(format!(
                "transaction is {} bytes, over the limit of {MAX_TX_BYTES}",
                bytes.len()
            )));
        }
        codec::decode(bytes, MAX_TX_BYTES).map_err(|e| match e {
            ContractError::Encoding(m) => ContractError::Encoding(format!("transaction: {m}")),
            other => other,
        })
    }
}

/// Verifies every signature of `txs`, in one ed25519 batch when all are valid.
///
/// Returns one result per transaction, in order. When the batch fails, each
/// transaction is checked on its own to name the offenders.
pub fn verify_batch(txs: &[SignedTransaction]) -> Vec<Result<(), ContractError>> {
    if txs.is_empty() {
        return Vec::new();
    }
    let mut messages = Vec::with_capacity(txs.len());
    let mut signatures = Vec::with_capacity(txs.len());
    let mut keys = Vec::with_capacity(txs.len());
    let mut well_formed = true;
    // A batch holds few distinct signers (one node key per administration): each key is
    // decompressed, and checked for weakness, once per batch.
    let mut decompressed: std::collections::HashMap<[u8; 32], (VerifyingKey, bool)> =
        std::collections::HashMap::new();
    for signed in txs {
        let key = match decompressed.get(&signed.tx.signer.0) {
            Some(known) => Ok(*known),
            None => VerifyingKey::from_bytes(&signed.tx.signer.0).map(|key| {
                let known = (key, key.is_weak());
                decompressed.insert(signed.tx.signer.0, known);
                known
            }),
        };
        let signature = <[u8; 64]>::try_from(signed.signature.as_slice());
        match (key, signature) {
            (Ok((key, _)), Ok(signature)) => {
                messages.push(signed.tx.signing_bytes());
                signatures.push(Signature::from_bytes(&signature));
                keys.push(key);
            }
            _ => {
                well_formed = false;
                break;
            }
        }
    }
    if well_formed {
        let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        if ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok() {
            // The batch equation is cofactored; also run the strict per-key checks that
            // `verify` does on weak keys so both paths agree on which keys are acceptable.
            return txs
                .iter()
                .map(|signed| {
                    let weak = decompressed
                        .get(&signed.tx.signer.0)
                        .is_none_or(|(_, weak)| *weak);
                    if weak {
                        Err(ContractError::BadSignature(format!(
                            "signer {} is a weak (small-order) key",
                            signed.tx.signer
                        )))
                    } else {
                        Ok(())
                    }
                })
                .collect();
        }
    }
    let results: Vec<Result<(), ContractError>> = txs.iter().map(|s| s.verify()).collect();
    if results.iter().all(Result::is_ok) {
        // The batch failed although every signature passes alone: refuse them all rather
        // than accept what the batch refused.
        return txs
            .iter()
            .map(|_| {
                Err(ContractError::BadSignature(
                    "batch signature verification failed".to_string(),
                ))
            })
            .collect();
    }
    results
}
