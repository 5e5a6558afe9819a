//! Erasure by key destruction. The record stays; the key that opens it goes.
//!
//! `EraseDocument` (issuer's `supervisor` or `admin` officer) or an expired retention
//! period ([`expire_due`], run by `execute_block` before the block's transactions, without
//! any transaction) marks every version `erased` and records an [`ErasureRecord`]; the
//! block's outcome lists it in `BlockOutcome::erasures`, which tells every node to refuse
//! decryption, destroy the DEK and salt of every version, prune the ciphertexts, and then
//! submit `AttestDestruction` signed by its node key. [`erasure_status`] shows who attested
//! and who is pending.
//!
//! Must never: erase on behalf of anyone but the issuing administration's supervisor or
//! admin; erase twice; write anything on a rejected erase; accept an attestation signed
//! by another node than the attesting administration's, or for another erasure; erase
//! more than [`MAX_EXPIRE_PER_BLOCK`] expired documents in one block (the rest follow in
//! the next blocks, in expiry order).

use crate::codec;
use crate::execute::{
    read_record, state_keys, BlockContext, BlockView, ExecError, Rules, StateStore, TxEvent,
    TxFailure, Write, MAX_ADMINISTRATIONS, MAX_PURPOSE_BYTES,
};
use crate::lifecycle::DocumentMeta;
use crate::model::{Administration, DocumentRecord};
use crate::tx::Transaction;
use crate::types::{AdminCode, AgreementId, DocumentId, DocumentStatus, PublicKey, Role};
use crate::ContractError;
use serde::{Deserialize, Serialize};

/// Most documents erased by retention expiry at the start of one block.
pub const MAX_EXPIRE_PER_BLOCK: usize = 64;

/// Roles that may erase.
pub const ERASING_ROLES: [Role; 2] = [Role::Supervisor, Role::Admin];

/// What a node signs (as the transaction's signer) once it destroyed the keys and
/// pruned the ciphertexts of an erased document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructionAttestation {
    pub document: DocumentId,
    /// The attesting administration; its node key must sign the transaction.
    pub administration: AdminCode,
    /// Height of the block that erased the document (binds the attestation to it).
    pub erasure_height: u64,
    /// Number of versions whose keys were destroyed (must equal the erasure's).
    pub versions: u32,
}

/// Why a document was erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErasureCause {
    Transaction {
        officer: PublicKey,
        reason: String,
        legal_basis: String,
    },
    Retention {
        agreement: AgreementId,
        expired_at_ms: u64,
    },
}

/// An erasure as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub document: DocumentId,
    pub versions: u32,
    pub issuer: AdminCode,
    pub cause: ErasureCause,
    pub height: u64,
    pub time_ms: u64,
    /// Administrations whose nodes must attest: the active members at erasure time.
    pub expected: Vec<AdminCode>,
}

/// An attestation as recorded, with where it became final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationRecord {
    pub attestation: DestructionAttestation,
    pub signer: PublicKey,
    pub height: u64,
    pub time_ms: u64,
}

/// Answer of [`erasure_status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureStatus {
    /// Status of the latest version.
    pub status: DocumentStatus,
    /// (administration, height of its attestation), in code order.
    pub attestations: Vec<(AdminCode, u64)>,
    /// Administrations expected to attest that have not yet, in code order.
    pub pending: Vec<AdminCode>,
}

/// The erasure of a document, if erased.
pub fn erasure_record<S: StateStore>(
    state: &S,
    id: &DocumentId,
) -> Result<Option<ErasureRecord>, ExecError> {
    match state.get(&state_keys::erasure(id))? {
        Some(bytes) => crate::execute::decode_state(&state_keys::erasure(id), &bytes).map(Some),
        None => Ok(None),
    }
}

/// Status, attestations and pending attesters of a document; `None` when unknown. A
/// document that is not erased has no attestations and nothing pending.
pub fn erasure_status<S: StateStore>(
    state: &S,
    id: &DocumentId,
) -> Result<Option<ErasureStatus>, ExecError> {
    let Some(latest) = crate::execute::query::document(state, id)? else {
        return Ok(None);
    };
    let Some(erasure) = erasure_record(state, id)? else {
        return Ok(Some(ErasureStatus {
            status: latest.status,
            attestations: Vec::new(),
            pending: Vec::new(),
        }));
    };
    let mut attestations = Vec::new();
    for (key, value) in state.scan_prefix(&state_keys::attest_prefix(id), MAX_ADMINISTRATIONS)? {
        let record: AttestationRecord = crate::execute::decode_state(&key, &value)?;
        attestations.push((record.attestation.administration, record.height));
    }
    let pending = erasure
        .expected
        .iter()
        .filter(|c| !attestations.iter().any(|(a, _)| a == *c))
        .cloned()
        .collect();
    Ok(Some(ErasureStatus {
        status: latest.status,
        attestations,
        pending,
    }))
}

/// Documents whose retention ends at or before `until_ms`, soonest first, at most
/// `limit`: (expiry, document).
pub fn expiring_documents<S: StateStore>(
    state: &S,
    until_ms: u64,
    limit: usize,
) -> Result<Vec<(u64, DocumentId)>, ExecError> {
    let mut out = Vec::new();
    for (key, _) in state.scan_prefix(state_keys::EXPIRY, limit)? {
        let (at, id) = parse_expiry_key(&key)?;
        if at > until_ms {
            break;
        }
        out.push((at, id));
    }
    Ok(out)
}

fn parse_expiry_key(key: &[u8]) -> Result<(u64, DocumentId), ExecError> {
    let suffix = key.get(state_keys::EXPIRY.len()..).unwrap_or_default();
    let corrupt = || ExecError::Corrupt(format!("expiry key {}", hex::encode(key)));
    let at: [u8; 8] = suffix
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let id: [u8; 16] = suffix
        .get(8..24)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    Ok((u64::from_be_bytes(at), DocumentId(id)))
}

/// The writes that erase every version of `history` (non-empty, not erased).
fn erase_writes<S: StateStore>(
    view: &BlockView<'_, S>,
    ctx: &BlockContext,
    history: &[DocumentRecord],
    cause: ErasureCause,
) -> Result<(Vec<Write>, ErasureRecord), ExecError> {
    let latest = history
        .last()
        .ok_or_else(|| ExecError::Corrupt("erasing a document without versions".into()))?;
    let id = latest.id;
    let mut writes = Vec::with_capacity(history.len() + 2);
    for version in history {
        let mut erased = version.clone();
        erased.status = DocumentStatus::Erased;
        writes.push((
            state_keys::document(&id, erased.version),
            Some(codec::encode(&erased)),
        ));
    }
    let meta: Option<DocumentMeta> = read_record(view, &state_keys::doc_meta(&id))?;
    if let Some(at) = meta.and_then(|m| m.expires_at_ms) {
        writes.push((state_keys::expiry(at, &id), None));
    }
    let mut expected = Vec::new();
    for (key, value) in view.scan_prefix(state_keys::MEMBER_CODE, MAX_ADMINISTRATIONS)? {
        let admin: Administration = crate::execute::decode_state(&key, &value)?;
        if admin.active {
            expected.push(admin.code);
        }
    }
    let record = ErasureRecord {
        document: id,
        versions: u32::try_from(history.len()).unwrap_or(u32::MAX),
        issuer: latest.issuer.clone(),
        cause,
        height: ctx.height,
        time_ms: ctx.time_ms,
        expected,
    };
    writes.push((state_keys::erasure(&id), Some(codec::encode(&record))));
    Ok((writes, record))
}

/// Erases the documents whose retention expired before the block's time (at most
/// [`MAX_EXPIRE_PER_BLOCK`]). Returns (document, versions) for `BlockOutcome::erasures`.
pub(crate) fn expire_due<S: StateStore>(
    view: &mut BlockView<'_, S>,
    ctx: &BlockContext,
) -> Result<Vec<(DocumentId, u32)>, ExecError> {
    let mut erased = Vec::new();
    for (key, _) in view.scan_prefix(state_keys::EXPIRY, MAX_EXPIRE_PER_BLOCK)? {
        let (at, id) = parse_expiry_key(&key)?;
        if at >= ctx.time_ms {
            break;
        }
        let history = crate::lifecycle::versions(view, &id)?;
        let already = history
            .last()
            .is_none_or(|d| d.status == DocumentStatus::Erased);
        if already {
            view.apply(vec![(key, None)]);
            continue;
        }
        let meta: DocumentMeta =
            read_record(&*view, &state_keys::doc_meta(&id))?.unwrap_or_default();
        let agreement = meta.agreement.ok_or_else(|| {
            ExecError::Corrupt(format!("expiring document {id} has no agreement"))
        })?;
        let (writes, record) = erase_writes(
            view,
            ctx,
            &history,
            ErasureCause::Retention {
                agreement,
                expired_at_ms: at,
            },
        )?;
        view.apply(writes);
        erased.push((id, record.versions));
    }
    Ok(erased)
}

fn text_ok(field: &str, text: &str) -> Result<(), ContractError> {
    if text.trim().is_empty() || text.len() > MAX_PURPOSE_BYTES {
        return Err(ContractError::BadInput(format!(
            "{field}: must be 1 to {MAX_PURPOSE_BYTES} bytes"
        )));
    }
    Ok(())
}

impl<S: StateStore> Rules<'_, '_, S> {
    pub(crate) fn erase_document(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &DocumentId,
        reason: &str,
        legal_basis: &str,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        text_ok("erase reason", reason)?;
        text_ok("erase legal_basis", legal_basis)?;
        let history = crate::lifecycle::versions(self.view, id)?;
        let Some(latest) = history.last() else {
            return Err(
                ContractError::NotFound(format!("erase: document {id} does not exist")).into(),
            );
        };
        if latest.status == DocumentStatus::Erased {
            return Err(
                ContractError::Denied(format!("erase: document {id} is already erased")).into(),
            );
        }
        if latest.issuer != signer.code {
            return Err(ContractError::Denied(format!(
                "erase: only the issuer {} may erase document {id}, not {}",
                latest.issuer, signer.code
            ))
            .into());
        }
        let officer = self.acting_officer(tx, &signer.code, &ERASING_ROLES, "erase a document")?;
        let (writes, record) = erase_writes(
            self.view,
            self.ctx,
            &history,
            ErasureCause::Transaction {
                officer: officer.key,
                reason: reason.to_string(),
                legal_basis: legal_basis.to_string(),
            },
        )?;
        Ok((writes, TxEvent::DocumentErased(record)))
    }

    pub(crate) fn attest_destruction(
        &self,
        tx: &Transaction,
        signer: &Administration,
        attestation: &DestructionAttestation,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let id = &attestation.document;
        if attestation.administration != signer.code {
            return Err(ContractError::Denied(format!(
                "attestation: signed by the node of {}, names {}",
                signer.code, attestation.administration
            ))
            .into());
        }
        let erasure: ErasureRecord = self.load(&state_keys::erasure(id))?.ok_or_else(|| {
            ContractError::NotFound(format!("attestation: document {id} is not erased"))
        })?;
        if erasure.height != attestation.erasure_height || erasure.versions != attestation.versions
        {
            return Err(ContractError::BadInput(format!(
                "attestation: document {id} was erased at height {} with {} versions, the attestation says height {} with {}",
                erasure.height, erasure.versions, attestation.erasure_height, attestation.versions
            ))
            .into());
        }
        if !erasure.expected.contains(&signer.code) {
            return Err(ContractError::Denied(format!(
                "attestation: {} was not a member when document {id} was erased",
                signer.code
            ))
            .into());
        }
        let key = state_keys::attest(id, &signer.code);
        if self.view.get(&key)?.is_some() {
            return Err(ContractError::Denied(format!(
                "attestation: {} already attested destruction of document {id}",
                signer.code
            ))
            .into());
        }
        let record = AttestationRecord {
            attestation: attestation.clone(),
            signer: tx.signer,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        };
        Ok((
            vec![(key, Some(codec::encode(&record)))],
            TxEvent::DestructionAttested(record),
        ))
    }
}
