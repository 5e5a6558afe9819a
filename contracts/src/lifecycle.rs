//! Document lifecycle: amending (a new version; the previous one becomes `amended`),
//! cancelling (the latest version becomes `cancelled`), and the history of every
//! version.
//!
//! Must never: overwrite a version's metadata other than its status, let anyone but the
//! issuing administration's officers amend or cancel, change a document's kind, or amend
//! or cancel a document that is cancelled or erased.

use crate::codec;
use crate::execute::{
    query, read_required, state_keys, BlockView, ExecError, Rules, StateStore, TxEvent, TxFailure,
    Write, MAX_DOCUMENT_VERSIONS, MAX_PURPOSE_BYTES,
};
use crate::model::{Administration, DocumentRecord};
use crate::tx::{DocumentSubmission, Transaction};
use crate::types::{AdminCode, AgreementId, DocumentId, DocumentStatus, PublicKey, Role};
use crate::ContractError;
use serde::{Deserialize, Serialize};

/// Roles that may file, amend and cancel documents.
pub const FILING_ROLES: [Role; 3] = [Role::Officer, Role::Supervisor, Role::Admin];

/// Why and by whom a document was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub reason: String,
    pub officer: PublicKey,
    pub height: u64,
    pub time_ms: u64,
}

/// What the ledger knows about a document beyond its versions. Absent for a document
/// filed with plain `SubmitDocument` and never cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DocumentMeta {
    /// The agreement it was filed under (`SubmitUnderAgreement`).
    pub agreement: Option<AgreementId>,
    /// When the agreement's retention period ends (block time of version 1 plus the
    /// retention period; amendments do not extend it).
    pub expires_at_ms: Option<u64>,
    pub cancellation: Option<Cancellation>,
}

/// Every version of a document present in the block's view, oldest first.
pub(crate) fn versions<S: StateStore>(
    view: &BlockView<'_, S>,
    id: &DocumentId,
) -> Result<Vec<DocumentRecord>, ExecError> {
    let mut out = Vec::new();
    for version in 1..=MAX_DOCUMENT_VERSIONS as u32 {
        match crate::execute::read_record(view, &state_keys::document(id, version))? {
            Some(record) => out.push(record),
            None => break,
        }
    }
    Ok(out)
}

/// Every version of a document, oldest first; empty when unknown. Nothing is ever
/// overwritten but a version's status.
pub fn document_history<S: StateStore>(
    state: &S,
    id: &DocumentId,
) -> Result<Vec<DocumentRecord>, ExecError> {
    state
        .scan_prefix(&state_keys::document_prefix(id), MAX_DOCUMENT_VERSIONS)?
        .iter()
        .map(|(k, v)| crate::execute::decode_state(k, v))
        .collect()
}

/// The document's agreement, retention expiry and cancellation, if any was recorded.
pub fn document_meta<S: StateStore>(
    state: &S,
    id: &DocumentId,
) -> Result<Option<DocumentMeta>, ExecError> {
    match state.get(&state_keys::doc_meta(id))? {
        Some(bytes) => crate::execute::decode_state(&state_keys::doc_meta(id), &bytes).map(Some),
        None => Ok(None),
    }
}

impl<S: StateStore> Rules<'_, '_, S> {
    /// The latest version of a document the signer issued and may still change.
    fn changeable(
        &self,
        issuer: &Administration,
        id: &DocumentId,
        what: &str,
    ) -> Result<Vec<DocumentRecord>, TxFailure> {
        let history = versions(self.view, id)?;
        let Some(latest) = history.last() else {
            return Err(ContractError::NotFound(format!("document: {id} does not exist")).into());
        };
        if latest.issuer != issuer.code {
            return Err(ContractError::Denied(format!(
                "{what}: only the issuer {} may {what} document {id}, not {}",
                latest.issuer, issuer.code
            ))
            .into());
        }
        match latest.status {
            DocumentStatus::Active => Ok(history),
            DocumentStatus::Cancelled => {
                Err(ContractError::Denied(format!("{what}: document {id} is cancelled")).into())
            }
            DocumentStatus::Erased => {
                Err(ContractError::Denied(format!("{what}: document {id} is erased")).into())
            }
            DocumentStatus::Amended => Err(ExecError::Corrupt(format!(
                "latest version of document {id} is marked amended"
            ))
            .into()),
        }
    }

    pub(crate) fn amend_document(
        &self,
        tx: &Transaction,
        issuer: &Administration,
        id: &DocumentId,
        doc: &DocumentSubmission,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        if doc.id != *id {
            return Err(ContractError::BadInput(format!(
                "amend: the new version names document {}, not {id}",
                doc.id
            ))
            .into());
        }
        let officer = self.acting_officer(tx, &issuer.code, &FILING_ROLES, "amend a document")?;
        let history = self.changeable(issuer, id, "amend")?;
        let latest = history
            .last()
            .ok_or_else(|| ContractError::NotFound(format!("document: {id} does not exist")))?;
        if doc.kind != latest.kind {
            return Err(ContractError::BadInput(format!(
                "amend: kind {} differs from the document's kind {}",
                doc.kind, latest.kind
            ))
            .into());
        }
        if history.len() >= MAX_DOCUMENT_VERSIONS {
            return Err(ContractError::Denied(format!(
                "amend: document {id} already has {MAX_DOCUMENT_VERSIONS} versions"
            ))
            .into());
        }
        self.check_recipients(issuer, &doc.recipients)?;
        self.check_ciphertext_len(doc)?;
        let meta: Option<DocumentMeta> = self.load(&state_keys::doc_meta(id))?;
        if let Some(agreement_id) = meta.as_ref().and_then(|m| m.agreement) {
            let record: crate::agreement::AgreementRecord =
                read_required(self.view, &state_keys::agreement(&agreement_id), || {
                    format!("document {id} names missing agreement {agreement_id}")
                })?;
            for recipient in &doc.recipients {
                if !record.terms.has_party(recipient) {
                    return Err(ContractError::Denied(format!(
                        "agreement: recipient {recipient} is not a party to agreement {agreement_id}"
                    ))
                    .into());
                }
            }
        }
        let mut previous = latest.clone();
        previous.status = DocumentStatus::Amended;
        let version = latest.version.saturating_add(1);
        // `doc.id == *id`, checked above.
        let record = self.document_record(doc, version, issuer, officer.key);
        let writes = vec![
            (
                state_keys::document(id, previous.version),
                Some(codec::encode(&previous)),
            ),
            (
                state_keys::document(id, version),
                Some(codec::encode(&record)),
            ),
            (
                state_keys::ucr(&doc.ucr_index, id, version),
                Some(Vec::new()),
            ),
        ];
        Ok((writes, TxEvent::DocumentAmended { previous, record }))
    }

    pub(crate) fn cancel_document(
        &self,
        tx: &Transaction,
        issuer: &Administration,
        id: &DocumentId,
        reason: &str,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        if reason.trim().is_empty() || reason.len() > MAX_PURPOSE_BYTES {
            return Err(ContractError::BadInput(format!(
                "cancel reason: must be 1 to {MAX_PURPOSE_BYTES} bytes"
            ))
            .into());
        }
        let officer = self.acting_officer(tx, &issuer.code, &FILING_ROLES, "cancel a document")?;
        let history = self.changeable(issuer, id, "cancel")?;
        let mut record = history
            .last()
            .cloned()
            .ok_or_else(|| ContractError::NotFound(format!("document: {id} does not exist")))?;
        record.status = DocumentStatus::Cancelled;
        let mut meta: DocumentMeta = self.load(&state_keys::doc_meta(id))?.unwrap_or_default();
        meta.cancellation = Some(Cancellation {
            reason: reason.to_string(),
            officer: officer.key,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        });
        let writes = vec![
            (
                state_keys::document(id, record.version),
                Some(codec::encode(&record)),
            ),
            (state_keys::doc_meta(id), Some(codec::encode(&meta))),
        ];
        Ok((writes, TxEvent::DocumentCancelled(record)))
    }
}

/// Most delivery acknowledgements listed for one document.
pub const MAX_LISTED_ACKS: usize = 4096;

/// A recipient administration's acknowledgement that a pushed document version
/// reached it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAck {
    pub document: DocumentId,
    pub version: u32,
    pub administration: AdminCode,
    pub officer: Option<PublicKey>,
    pub height: u64,
    pub time_ms: u64,
}

impl<S: StateStore> Rules<'_, '_, S> {
    /// `AcknowledgeDelivery`: an officer of a recipient administration of that version
    /// acknowledges it, once; not for an erased document.
    pub(crate) fn acknowledge_delivery(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &DocumentId,
        version: u32,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let officer =
            self.acting_officer(tx, &signer.code, &FILING_ROLES, "acknowledge a delivery")?;
        let record: DocumentRecord =
            self.load(&state_keys::document(id, version))?
                .ok_or_else(|| {
                    ContractError::NotFound(format!("document: {id} has no version {version}"))
                })?;
        if !record.recipients.contains(&signer.code) {
            return Err(ContractError::Denied(format!(
                "delivery: {} is not a recipient of document {id} version {version}",
                signer.code
            ))
            .into());
        }
        if record.status == DocumentStatus::Erased {
            return Err(ContractError::Denied(format!("delivery: document {id} is erased")).into());
        }
        let key = state_keys::delivery_ack(id, version, &signer.code);
        if self.view.get(&key)?.is_some() {
            return Err(ContractError::Denied(format!(
                "delivery: {} already acknowledged document {id} version {version}",
                signer.code
            ))
            .into());
        }
        let ack = DeliveryAck {
            document: *id,
            version,
            administration: signer.code.clone(),
            officer: Some(officer.key),
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        };
        Ok((
            vec![(key, Some(codec::encode(&ack)))],
            TxEvent::DeliveryAcknowledged(ack),
        ))
    }
}

/// Every delivery acknowledgement of a document, by version then administration.
pub fn delivery_acks<S: StateStore>(
    state: &S,
    id: &DocumentId,
) -> Result<Vec<DeliveryAck>, ExecError> {
    state
        .scan_prefix(&state_keys::delivery_ack_prefix(id), MAX_LISTED_ACKS)?
        .iter()
        .map(|(k, v)| crate::execute::decode_record(k, v))
        .collect()
}

/// The latest version of a document in the committed state (re-exported for symmetry
/// with [`document_history`]).
pub fn latest<S: StateStore>(
    state: &S,
    id: &DocumentId,
) -> Result<Option<DocumentRecord>, ExecError> {
    query::document(state, id)
}
