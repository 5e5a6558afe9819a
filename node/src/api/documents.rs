//! Documents: submit under an agreement, metadata, decrypt (as issuer or recipient, or
//! under a TFA access grant), amend, cancel, history, erase, status with delivery
//! acknowledgements, and acknowledging a delivery.
//!
//! Must never seal a payload the agreement's data cluster refuses, never return or log a
//! payload except the decrypted text to an entitled caller, and never serve a decryption
//! whose access record could not be submitted.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use carnet_contracts::agreement::{
    check_payload, resolve_among, Agreement, AgreementStatus, ResolveError,
};
use carnet_contracts::envelope::{open_and_check, seal, ucr_index, DocumentKeys};
use carnet_contracts::execute::{query, MAX_PURPOSE_BYTES, MAX_RECIPIENTS};
use carnet_contracts::lifecycle::FILING_ROLES;
use carnet_contracts::{
    Action, AdminCode, AgreementId, DocumentId, DocumentKind, DocumentRecord, DocumentStatus,
    DocumentSubmission, RequestId,
};
use rand::RngCore;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{
    admission_error, await_finality, internal, lock, own_node, parse_document_id, require_role,
    submit_and_wait, submit_for_finality, ApiError, ApiState, Caller, Fields, MAX_AMENDING,
    MAX_PAYLOAD_BYTES, MAX_UCR_CHARS,
};
use crate::ledger::Committed;
use crate::node::Shared;
use crate::storage::Store;

/// The agreement a document was filed under, if any.
pub(super) fn agreement_of(
    store: &Store,
    id: &DocumentId,
) -> Result<Option<AgreementId>, ApiError> {
    Ok(query::document_meta(&Committed(store), id)
        .map_err(internal)?
        .and_then(|m| m.agreement))
}

/// The JSON of one document version (docs/interfaces.md).
pub(super) fn document_json(record: &DocumentRecord, agreement: Option<AgreementId>) -> Value {
    json!({
        "id": record.id.to_string(),
        "version": record.version,
        "kind": record.kind.as_str(),
        "issuer": record.issuer.as_str(),
        "recipients": record.recipients.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "status": status_name(record.status),
        "height": record.height,
        "time_ms": record.time_ms,
        "commitment": hex::encode(record.commitment),
        "ciphertext_hash": hex::encode(record.ciphertext_hash),
        "submitted_by": record.submitted_by.to_string(),
        "agreement": agreement.map(|a| a.to_string()),
    })
}

pub(super) fn status_name(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Active => "active",
        DocumentStatus::Amended => "amended",
        DocumentStatus::Cancelled => "cancelled",
        DocumentStatus::Erased => "erased",
    }
}

/// Issuer, recipients (any of their officers, auditors included) may see a document's
/// metadata.
pub(super) fn may_see(caller: &Caller, record: &DocumentRecord) -> bool {
    let admin = &caller.officer.administration;
    record.issuer == *admin || record.recipients.contains(admin)
}

/// The committed latest version of document `id`; 404 when there is none.
pub(super) fn find_document(store: &Store, id: &DocumentId) -> Result<DocumentRecord, ApiError> {
    crate::ledger::document(store, id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no document {id}")))
}

/// The latest version of document `id` when the caller's administration may see it
/// (issuer or recipient); 404 or 403 otherwise.
pub(super) fn visible_document(
    store: &Store,
    caller: &Caller,
    id: &DocumentId,
) -> Result<DocumentRecord, ApiError> {
    let record = find_document(store, id)?;
    if !may_see(caller, &record) {
        return Err(ApiError::forbidden(format!(
            "{} is neither issuer nor recipient of document {id}",
            caller.officer.administration
        )));
    }
    Ok(record)
}

/// Checks a payload text: at most `MAX_PAYLOAD_BYTES`, a JSON object. Returns the
/// parsed object.
pub(super) fn parse_payload(text: &str) -> Result<Value, ApiError> {
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::bad_input(format!(
            "payload: over the limit of {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ApiError::bad_input(
            "payload is not a JSON object: it is another JSON value",
        )),
        Err(e) => Err(ApiError::bad_input(format!(
            "payload is not a JSON object: {e}"
        ))),
    }
}

/// The payload of `record` opened with the keys in this node's vault and checked
/// against the commitment on the ledger. 503 when the keys or the ciphertext have not
/// arrived yet.
pub(super) fn open_payload(
    s: &Shared,
    record: &DocumentRecord,
) -> Result<Zeroizing<String>, ApiError> {
    let id = record.id;
    let keys = s
        .vault
        .get(&id, record.version)
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "keys of document {id} version {} not yet delivered to this node",
                record.version
            ))
        })?;
    let ciphertext = s
        .store
        .payload(&record.ciphertext_hash)
        .map_err(internal)?
        .ok_or_else(|| ApiError::unavailable("ciphertext not yet available on this node"))?;
    let payload = Zeroizing::new(
        open_and_check(
            &ciphertext,
            &keys,
            &id,
            record.version,
            record.kind,
            &record.commitment,
        )
        .map_err(internal)?,
    );
    let text = std::str::from_utf8(&payload).map_err(|_| internal("payload is not UTF-8"))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// Submits the access record of a read (before the payload leaves the node): 503 when
/// it cannot be queued, and then nothing is served.
pub(super) fn record_access(
    s: &Shared,
    caller: &Caller,
    record: &DocumentRecord,
    purpose: &str,
    request: Option<RequestId>,
) -> Result<(), ApiError> {
    let action = match request {
        None => Action::RecordAccess {
            document: record.id,
            version: record.version,
            officer: caller.key,
            purpose: purpose.to_string(),
        },
        Some(request) => Action::RecordGrantedAccess {
            request,
            document: record.id,
            version: record.version,
            officer: caller.key,
            purpose: purpose.to_string(),
        },
    };
    let tx = s.node_tx(Some(caller.key), action);
    match s.submit_one(tx, None) {
        Some(Ok(_)) => {
            s.metrics.access_records.inc();
            tracing::info!(document = %record.id, version = record.version, officer = %caller.key, "document decrypted for an officer");
            Ok(())
        }
        Some(Err(e)) => {
            tracing::warn!(document = %record.id, "access record not queued: {e}");
            Err(ApiError::unavailable(format!(
                "the access record could not be queued ({e}); nothing was served"
            )))
        }
        None => Err(ApiError::unavailable(
            "the access record could not be queued; nothing was served",
        )),
    }
}

/// The UCR key of `agreement` held by this node; 400 when it holds none.
pub(super) fn agreement_ucr_key(
    s: &Shared,
    agreement: &Agreement,
) -> Result<Zeroizing<[u8; 32]>, ApiError> {
    match s.agreement_ucr_key(agreement) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(ApiError::bad_input(format!(
            "agreement: {} holds no UCR key for {}",
            agreement.id, s.admin
        ))),
        Err(e) => Err(ApiError::bad_input(format!("agreement: {e}"))),
    }
}

/// The agreement named in a submission, checked against issuer, recipients and kind;
/// each failure is a 400 naming the rule.
fn named_agreement(
    s: &Shared,
    text: &str,
    recipients: &[AdminCode],
    kind: DocumentKind,
) -> Result<Agreement, ApiError> {
    let id = AgreementId::from_hex(text.trim())
        .map_err(|e| ApiError::bad_input(format!("agreement: {e}")))?;
    let record = query::agreement(&Committed(&s.store), &id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::bad_input(format!("agreement: no agreement {id}")))?;
    if record.status != AgreementStatus::Active {
        let waiting: Vec<&str> = record
            .terms
            .parties
            .iter()
            .filter(|p| !record.accepted.contains(p))
            .map(|p| p.as_str())
            .collect();
        return Err(ApiError::bad_input(format!(
            "agreement: {id} is not active; waiting for acceptance by {}",
            waiting.join(", ")
        )));
    }
    let terms = record.terms;
    if !terms.has_party(&s.admin) {
        return Err(ApiError::bad_input(format!(
            "agreement: issuer {} is not a party to agreement {id}",
            s.admin
        )));
    }
    let outsiders: Vec<&str> = recipients
        .iter()
        .filter(|r| !terms.has_party(r))
        .map(|r| r.as_str())
        .collect();
    if !outsiders.is_empty() {
        return Err(ApiError::bad_input(format!(
            "agreement: recipient{} {} not a part{} to agreement {id}",
            if outsiders.len() == 1 { "" } else { "s" },
            if outsiders.len() == 1 {
                format!("{} is", outsiders[0])
            } else {
                format!("{} are", outsiders.join(", "))
            },
            if outsiders.len() == 1 { "y" } else { "ies" },
        )));
    }
    if terms.cluster(kind).is_none() {
        let covered: Vec<&str> = terms.clusters.iter().map(|c| c.kind.as_str()).collect();
        return Err(ApiError::bad_input(format!(
            "agreement: kind {kind} is not covered by agreement {id}; it covers {}",
            covered.join(", ")
        )));
    }
    Ok(terms)
}

/// Fresh keys and nonce for one document version (the only randomness of a submission
/// besides the id and the transaction nonce).
fn draw_keys() -> Result<(DocumentKeys, [u8; 24]), ApiError> {
    let mut rng = rand::rngs::OsRng;
    let mut secret = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(&mut secret[..]);
    let keys = DocumentKeys::from_bytes(&secret[..]).map_err(internal)?;
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    Ok((keys, nonce))
}

/// Keeps the keys of a new version in the vault before its transaction leaves the node:
/// returns once they are durable. Concurrent submissions share one synced write (the
/// vault's group commit), waited for here without holding an async worker. 503 when too
/// many puts wait; a failed vault write stops the node.
async fn keep_keys(
    s: &Shared,
    id: &DocumentId,
    version: u32,
    keys: &DocumentKeys,
) -> Result<(), ApiError> {
    use crate::vault::VaultError;
    let answer = match s.vault.put_queued(id, version, keys) {
        Ok(answer) => answer,
        Err(VaultError::Busy(waiting)) => {
            s.metrics.reject("vault_busy");
            return Err(ApiError::unavailable(format!(
                "node overloaded: {waiting} document keys waiting for a durable write"
            )));
        }
        Err(e) => crate::storage::fatal("storing document keys in the vault", &e),
    };
    match answer.await.unwrap_or(Err(VaultError::Abandoned)) {
        Ok(()) => Ok(()),
        Err(e) => crate::storage::fatal("storing document keys in the vault", &e),
    }
}

/// 503 unless the mempool has room for `count` more transactions (checked before any
/// key is drawn, like [`refuse_when_full`]).
fn refuse_room_for(s: &Shared, count: usize) -> Result<(), ApiError> {
    let pool = s.mempool();
    if pool.room() < count {
        s.metrics.reject("mempool_full");
        return Err(ApiError::unavailable(format!(
            "node overloaded: room for {} of {count} documents in the mempool",
            pool.room()
        )));
    }
    Ok(())
}

/// 503 (with `Retry-After`) before any key is drawn or kept when the mempool is full:
/// the transaction would be refused, and the sealing and the durable key write with it
/// would be wasted exactly when the node is overloaded.
fn refuse_when_full(s: &Shared) -> Result<(), ApiError> {
    let pool = s.mempool();
    if pool.is_full() {
        s.metrics.reject("mempool_full");
        return Err(ApiError::unavailable(format!(
            "node overloaded: {}",
            pool.overloaded()
        )));
    }
    Ok(())
}

/// Forgets the keys of a version the ledger refused (nothing else can open anything
/// with them).
fn forget_keys(s: &Shared, id: &DocumentId, version: u32) {
    if let Err(e) = s.vault.destroy(id, version) {
        crate::storage::fatal("removing refused document keys from the vault", &e);
    }
}

/// A submission checked against the ledger (recipients, agreement, data cluster),
/// ready to be sealed.
struct Filing {
    kind: DocumentKind,
    ucr: String,
    recipients: Vec<AdminCode>,
    payload: Zeroizing<String>,
    agreement: AgreementId,
    ucr_key: Zeroizing<[u8; 32]>,
}

/// Reads and checks the fields of one submission (`kind`, `ucr`, `recipients`,
/// `payload`, `agreement`?); changes nothing.
fn check_filing(s: &Shared, mut fields: Fields) -> Result<Filing, ApiError> {
    let kind: String = fields.required("kind")?;
    let ucr: String = fields.required("ucr")?;
    let named_recipients: Vec<String> = fields.required("recipients")?;
    let payload: Zeroizing<String> = Zeroizing::new(fields.required("payload")?);
    let agreement: Option<String> = fields.optional("agreement")?;
    fields.finish()?;
    let kind = DocumentKind::parse(&kind).map_err(|e| ApiError::bad_input(format!("kind: {e}")))?;
    let ucr = ucr.trim().to_string();
    if ucr.is_empty() || ucr.chars().count() > MAX_UCR_CHARS {
        return Err(ApiError::bad_input(format!(
            "ucr: must be 1 to {MAX_UCR_CHARS} characters"
        )));
    }
    if named_recipients.is_empty() || named_recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::bad_input(format!(
            "recipients: 1 to {MAX_RECIPIENTS} administrations"
        )));
    }
    let mut recipients: Vec<AdminCode> = Vec::new();
    for r in &named_recipients {
        let code =
            AdminCode::parse(r).map_err(|e| ApiError::bad_input(format!("recipients: {e}")))?;
        if code == s.admin {
            return Err(ApiError::bad_input(format!(
                "recipients: {code} is this administration"
            )));
        }
        if recipients.contains(&code) {
            return Err(ApiError::bad_input(format!(
                "recipients: {code} appears twice"
            )));
        }
        let member = crate::ledger::administration(&s.store, &code).map_err(internal)?;
        if !member.is_some_and(|m| m.active) {
            return Err(ApiError::bad_input(format!(
                "recipients: {code} is not an active member"
            )));
        }
        recipients.push(code);
    }
    let value = parse_payload(&payload)?;
    // The resolved agreement is borrowed from the records cached for the head height
    // (cloning its data clusters once per document was 4 % of node CPU in batches).
    let named;
    let records;
    let terms: &Agreement = match agreement {
        Some(text) => {
            named = named_agreement(s, &text, &recipients, kind)?;
            &named
        }
        None => {
            records = s.agreement_records().map_err(internal)?;
            resolve_among(&records, &s.admin, &recipients, kind).map_err(|e| match e {
                ResolveError::State(e) => internal(e),
                refused => ApiError::bad_input(refused.to_string()),
            })?
        }
    };
    check_payload(terms, kind, &value).map_err(|v| ApiError::bad_input(v.to_string()))?;
    drop(value);
    let ucr_key = agreement_ucr_key(s, terms)?;
    Ok(Filing {
        kind,
        ucr,
        recipients,
        payload,
        agreement: terms.id,
        ucr_key,
    })
}

/// A filing sealed under fresh keys (durable in the vault) with its transaction.
struct Sealed {
    id: DocumentId,
    kind: DocumentKind,
    agreement: AgreementId,
    tx: carnet_contracts::SignedTransaction,
    ciphertext: Vec<u8>,
}

/// Seals the payload under fresh keys, keeps the keys durable in the vault, and signs
/// the transaction on the officer's behalf.
async fn seal_filing(s: &Shared, caller: &Caller, filing: Filing) -> Result<Sealed, ApiError> {
    let Filing {
        kind,
        ucr,
        recipients,
        payload,
        agreement,
        ucr_key,
    } = filing;
    let (keys, nonce) = draw_keys()?;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let id = DocumentId(id);
    let sealed = seal(payload.as_bytes(), &keys, nonce, &id, 1, kind).map_err(internal)?;
    drop(payload);
    keep_keys(s, &id, 1, &keys).await?;
    let tx = s.node_tx(
        Some(caller.key),
        Action::SubmitUnderAgreement {
            agreement,
            submission: DocumentSubmission {
                id,
                kind,
                recipients,
                ucr_index: ucr_index(&ucr_key, &ucr),
                commitment: sealed.commitment,
                ciphertext_hash: sealed.ciphertext_hash,
                ciphertext_len: sealed.ciphertext.len() as u32,
            },
        },
    );
    Ok(Sealed {
        id,
        kind,
        agreement,
        tx,
        ciphertext: sealed.ciphertext,
    })
}

/// The answer for one document once final.
fn submitted_json(sealed: &Sealed, height: u64) -> Value {
    json!({
        "id": sealed.id.to_string(),
        "version": 1,
        "height": height,
        "status": "active",
        "kind": sealed.kind.as_str(),
        "agreement": sealed.agreement.to_string(),
    })
}

/// Waits for a submitted document; forgets its keys if the ledger refused it.
async fn await_document(
    s: &Shared,
    sealed: &Sealed,
    waiter: tokio::sync::oneshot::Receiver<crate::node::TxOutcome>,
) -> Result<u64, ApiError> {
    let id = sealed.id;
    await_finality(
        waiter,
        format!("document {id} not final within 30 s; it may still become final"),
    )
    .await
    .inspect_err(|e| {
        if e.status == axum::http::StatusCode::BAD_REQUEST {
            forget_keys(s, &id, 1);
        }
    })
}

pub(super) async fn submit(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "submitting documents")?;
    let filing = check_filing(&s, Fields::parse(&body)?)?;
    refuse_when_full(&s)?;
    let sealed = seal_filing(&s, &caller, filing).await?;
    let waiter = submit_for_finality(&s, sealed.tx.clone(), Some(sealed.ciphertext.clone()))?;
    tracing::info!(document = %sealed.id, kind = %sealed.kind, agreement = %sealed.agreement, "document submitted");
    let height = await_document(&s, &sealed, waiter).await?;
    Ok(Json(submitted_json(&sealed, height)))
}

/// Most documents in one `POST /v1/document-batches` (the body limit, 1 MiB, bounds it
/// too).
pub const MAX_BATCH_DOCUMENTS: usize = 256;

/// `POST /v1/document-batches`: many submissions in one signed request, for a national
/// system filing a backlog. Every document is checked first; any refusal is a 400
/// naming `documents[i]` and nothing is submitted. Then all are sealed, admitted to the
/// mempool together, and answered in order once each is final (or refused by the
/// ledger, or not final in time) with its own result.
pub(super) async fn submit_batch(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "submitting documents")?;
    let mut fields = Fields::parse(&body)?;
    let documents: Vec<Value> = fields.required("documents")?;
    fields.finish()?;
    if documents.is_empty() || documents.len() > MAX_BATCH_DOCUMENTS {
        return Err(ApiError::bad_input(format!(
            "documents: 1 to {MAX_BATCH_DOCUMENTS} in one batch, {} given",
            documents.len()
        )));
    }
    let at = |i: usize| {
        move |e: ApiError| ApiError {
            status: e.status,
            message: format!("documents[{i}]: {}", e.message),
        }
    };
    let mut filings = Vec::with_capacity(documents.len());
    for (i, document) in documents.into_iter().enumerate() {
        let Value::Object(map) = document else {
            return Err(ApiError::bad_input(format!(
                "documents[{i}]: must be a JSON object"
            )));
        };
        filings.push(check_filing(&s, Fields(map)).map_err(at(i))?);
    }
    refuse_room_for(&s, filings.len())?;
    let sealing = filings.into_iter().map(|f| seal_filing(&s, &caller, f));
    let mut sealed = Vec::with_capacity(MAX_BATCH_DOCUMENTS);
    for (i, result) in futures::future::join_all(sealing)
        .await
        .into_iter()
        .enumerate()
    {
        match result {
            Ok(x) => sealed.push(x),
            Err(e) => {
                // Keys already kept belong to transactions never sent: forget them.
                for x in &sealed {
                    forget_keys(&s, &x.id, 1);
                }
                return Err(at(i)(e));
            }
        }
    }
    let mut waiters = Vec::with_capacity(sealed.len());
    for x in &sealed {
        match s.wait_for(x.tx.hash()) {
            Some(waiter) => waiters.push(waiter),
            None => {
                for x in &sealed {
                    forget_keys(&s, &x.id, 1);
                }
                return Err(ApiError::unavailable(
                    "too many requests waiting for finality",
                ));
            }
        }
    }
    let batch = sealed
        .iter()
        .map(|x| crate::p2p::TxGossip {
            tx: x.tx.clone(),
            ciphertext: Some(x.ciphertext.clone()),
        })
        .collect();
    let admitted = s.submit(batch, true);
    tracing::info!(documents = sealed.len(), "document batch submitted");
    let answers = sealed
        .iter()
        .zip(waiters)
        .zip(admitted)
        .map(|((x, waiter), admitted)| {
            let s = &s;
            async move {
                let outcome = match admitted {
                    Ok(_) => await_document(s, x, waiter).await,
                    Err(e) => {
                        // Never admitted: nothing can ever open anything with its keys.
                        forget_keys(s, &x.id, 1);
                        Err(admission_error(s, e))
                    }
                };
                match outcome {
                    Ok(height) => submitted_json(x, height),
                    Err(e) => json!({"error": {"code": e.code(), "message": e.message}}),
                }
            }
        });
    let documents = futures::future::join_all(answers).await;
    Ok(Json(json!({ "documents": documents })))
}

pub(super) async fn show(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_document_id(&id)?;
    let record = visible_document(&state.shared.store, &caller, &id)?;
    let agreement = agreement_of(&state.shared.store, &id)?;
    Ok(Json(document_json(&record, agreement)))
}

/// Version `version` of document `id` (the latest when `None`); 400 for version 0, 404
/// for a version that does not exist.
fn version_of(
    store: &Store,
    id: &DocumentId,
    version: Option<u32>,
) -> Result<(DocumentRecord, DocumentRecord), ApiError> {
    let latest = find_document(store, id)?;
    let record = match version {
        None => latest.clone(),
        Some(0) => return Err(ApiError::bad_input("version: versions start at 1")),
        Some(v) if v == latest.version => latest.clone(),
        Some(v) => crate::ledger::document_version(store, id, v)
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "document {id} has no version {v}; the latest is {}",
                    latest.version
                ))
            })?,
    };
    Ok((latest, record))
}

pub(super) async fn decrypt(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_document_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let purpose = fields.text("purpose", MAX_PURPOSE_BYTES)?;
    let version: Option<u32> = fields.optional("version")?;
    let request: Option<String> = fields.optional("request")?;
    fields.finish()?;
    let request = request
        .map(|r| RequestId::from_hex(r.trim()))
        .transpose()
        .map_err(|e| ApiError::bad_input(format!("request: {e}")))?;
    own_node(&s, &caller)?;
    let (latest, record) = version_of(&s.store, &id, version)?;
    let admin = &caller.officer.administration;
    match request {
        None => {
            if !(record.issuer == *admin || record.recipients.contains(admin)) {
                return Err(ApiError::forbidden(format!(
                    "{admin} is not issuer or recipient of document {id} version {} on this node",
                    record.version
                )));
            }
        }
        Some(request) => {
            let grant = crate::ledger::access_grants(&s.store, &id, admin)
                .map_err(internal)?
                .into_iter()
                .find(|g| g.request == request)
                .ok_or_else(|| {
                    ApiError::forbidden(format!(
                        "request: {request} grants {admin} no access to document {id}"
                    ))
                })?;
            if purpose != grant.purpose {
                return Err(ApiError::forbidden(format!(
                    "purpose: reads under request {request} are for `{}` only",
                    grant.purpose
                )));
            }
            if record.version > grant.up_to_version {
                return Err(ApiError::forbidden(format!(
                    "version: request {request} covers versions 1 to {} of document {id}",
                    grant.up_to_version
                )));
            }
        }
    }
    if record.status == DocumentStatus::Erased || latest.status == DocumentStatus::Erased {
        return Err(ApiError::erased(format!(
            "document {id} is erased; its keys are destroyed"
        )));
    }
    let text = open_payload(&s, &record)?;
    record_access(&s, &caller, &record, &purpose, request)?;
    Ok(Json(json!({
        "id": id.to_string(),
        "version": record.version,
        "kind": record.kind.as_str(),
        "payload": text.as_str(),
    })))
}

/// Longest erase reason or legal basis accepted before the contract checks.
const MAX_ERASE_TEXT_BYTES: usize = MAX_PURPOSE_BYTES;

pub(super) async fn erase(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_document_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let reason = fields.text("reason", MAX_ERASE_TEXT_BYTES)?;
    let legal_basis = fields.text("legal_basis", MAX_ERASE_TEXT_BYTES)?;
    fields.finish()?;
    own_node(&s, &caller)?;
    require_role(
        &caller,
        &carnet_contracts::erasure::ERASING_ROLES,
        "erasing documents",
    )?;
    let record = find_document(&s.store, &id)?;
    let admin = &caller.officer.administration;
    if record.issuer != *admin {
        return Err(ApiError::forbidden(format!(
            "only the issuer {} may erase document {id}",
            record.issuer
        )));
    }
    if record.status == DocumentStatus::Erased {
        return Err(ApiError::bad_input(format!(
            "document {id} is already erased"
        )));
    }
    let tx = s.node_tx(
        Some(caller.key),
        Action::EraseDocument {
            id,
            reason,
            legal_basis,
        },
    );
    tracing::info!(document = %id, officer = %caller.key, "erasure submitted");
    let height = submit_and_wait(&s, tx, &format!("erasure of {id}")).await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "status": "erased",
        "height": height,
    })))
}

pub(super) async fn status(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    let id = parse_document_id(&id)?;
    let record = visible_document(&s.store, &caller, &id)?;
    let committed = Committed(&s.store);
    let status = carnet_contracts::erasure::erasure_status(&committed, &id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no document {id}")))?;
    let height =
        match carnet_contracts::erasure::erasure_record(&committed, &id).map_err(internal)? {
            Some(erasure) => erasure.height,
            None => record.height,
        };
    let deliveries = carnet_contracts::lifecycle::delivery_acks(&committed, &id)
        .map_err(internal)?
        .iter()
        .map(|a| json!({"administration": a.administration.as_str(), "version": a.version, "height": a.height}))
        .collect::<Vec<_>>();
    Ok(Json(json!({
        "id": id.to_string(),
        "status": status_name(status.status),
        "height": height,
        "agreement": agreement_of(&s.store, &id)?.map(|a| a.to_string()),
        "attestations": status.attestations.iter().map(|(a, h)| json!({"administration": a.as_str(), "height": h})).collect::<Vec<_>>(),
        "pending": status.pending.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "deliveries": deliveries,
    })))
}

/// The latest version of a document this node's administration issued and may still
/// change: 404 unknown, 403 another issuer, 400 cancelled or erased.
fn changeable(s: &Shared, id: &DocumentId, what: &str) -> Result<DocumentRecord, ApiError> {
    let latest = find_document(&s.store, id)?;
    if latest.issuer != s.admin {
        return Err(ApiError::forbidden(format!(
            "only the issuer {} may {what} document {id}",
            latest.issuer
        )));
    }
    match latest.status {
        DocumentStatus::Active => Ok(latest),
        DocumentStatus::Cancelled => Err(ApiError::bad_input(format!(
            "document {id} is cancelled; it cannot be {what}ed"
        ))),
        DocumentStatus::Erased => Err(ApiError::erased(format!(
            "document {id} is erased; its keys are destroyed"
        ))),
        DocumentStatus::Amended => Err(internal(format!(
            "latest version of document {id} is marked amended"
        ))),
    }
}

/// Marks a document as having an amendment in flight through this node (one at a time:
/// the new version's number is sealed into its ciphertext).
struct AmendSlot {
    state: ApiState,
    id: DocumentId,
}

impl AmendSlot {
    fn take(state: &ApiState, id: DocumentId) -> Result<Self, ApiError> {
        let mut amending = lock(&state.amending);
        if amending.len() >= MAX_AMENDING {
            return Err(ApiError::unavailable(
                "too many amendments waiting for finality",
            ));
        }
        if !amending.insert(id) {
            return Err(ApiError::unavailable(format!(
                "an amendment of document {id} is already waiting for finality; retry once it is final"
            )));
        }
        Ok(Self {
            state: state.clone(),
            id,
        })
    }
}

impl Drop for AmendSlot {
    fn drop(&mut self) {
        lock(&self.state.amending).remove(&self.id);
    }
}

pub(super) async fn amend(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_document_id(&id)?;
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "amending documents")?;
    let mut fields = Fields::parse(&body)?;
    let payload: Zeroizing<String> = Zeroizing::new(fields.required("payload")?);
    fields.finish()?;
    let value = parse_payload(&payload)?;
    let _slot = AmendSlot::take(&state, id)?;
    let latest = changeable(&s, &id, "amend")?;
    let agreement = agreement_of(&s.store, &id)?;
    if let Some(agreement_id) = agreement {
        let record = query::agreement(&Committed(&s.store), &agreement_id)
            .map_err(internal)?
            .ok_or_else(|| {
                internal(format!(
                    "document {id} names missing agreement {agreement_id}"
                ))
            })?;
        check_payload(&record.terms, latest.kind, &value)
            .map_err(|v| ApiError::bad_input(v.to_string()))?;
    }
    drop(value);
    let version = latest.version.saturating_add(1);
    refuse_when_full(&s)?;
    let (keys, nonce) = draw_keys()?;
    let sealed =
        seal(payload.as_bytes(), &keys, nonce, &id, version, latest.kind).map_err(internal)?;
    drop(payload);
    keep_keys(&s, &id, version, &keys).await?;
    let tx = s.node_tx(
        Some(caller.key),
        Action::AmendDocument {
            id,
            submission: DocumentSubmission {
                id,
                kind: latest.kind,
                recipients: latest.recipients.clone(),
                ucr_index: latest.ucr_index,
                commitment: sealed.commitment,
                ciphertext_hash: sealed.ciphertext_hash,
                ciphertext_len: sealed.ciphertext.len() as u32,
            },
        },
    );
    let waiter = submit_for_finality(&s, tx, Some(sealed.ciphertext))?;
    tracing::info!(document = %id, version, "amendment submitted");
    let height = await_finality(
        waiter,
        format!("amendment of {id} not final within 30 s; it may still become final"),
    )
    .await
    .inspect_err(|e| {
        if e.status == axum::http::StatusCode::BAD_REQUEST {
            forget_keys(&s, &id, version);
        }
    })?;
    Ok(Json(json!({
        "id": id.to_string(),
        "version": version,
        "height": height,
        "status": "active",
        "agreement": agreement.map(|a| a.to_string()),
    })))
}

pub(super) async fn cancel(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_document_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let reason = fields.text("reason", MAX_PURPOSE_BYTES)?;
    fields.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "cancelling documents")?;
    let latest = changeable(&s, &id, "cancel")?;
    let tx = s.node_tx(Some(caller.key), Action::CancelDocument { id, reason });
    let height = submit_and_wait(&s, tx, &format!("cancellation of {id}")).await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "version": latest.version,
        "status": "cancelled",
        "height": height,
    })))
}

pub(super) async fn history(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    let id = parse_document_id(&id)?;
    let latest = visible_document(&s.store, &caller, &id)?;
    let versions = crate::ledger::document_history(&s.store, &id).map_err(internal)?;
    let meta = query::document_meta(&Committed(&s.store), &id).map_err(internal)?;
    let agreement = meta.as_ref().and_then(|m| m.agreement);
    let cancellation = meta
        .and_then(|m| m.cancellation)
        .map(|c| json!({"reason": c.reason, "height": c.height, "officer": c.officer.to_string()}));
    Ok(Json(json!({
        "id": id.to_string(),
        "kind": latest.kind.as_str(),
        "issuer": latest.issuer.as_str(),
        "agreement": agreement.map(|a| a.to_string()),
        "versions": versions.iter().map(|v| json!({
            "version": v.version,
            "status": status_name(v.status),
            "height": v.height,
            "time_ms": v.time_ms,
            "commitment": hex::encode(v.commitment),
            "ciphertext_hash": hex::encode(v.ciphertext_hash),
            "submitted_by": v.submitted_by.to_string(),
        })).collect::<Vec<_>>(),
        "cancellation": cancellation,
    })))
}

pub(super) async fn ack(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_document_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let version: Option<u32> = fields.optional("version")?;
    fields.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "acknowledging deliveries")?;
    let (latest, record) = version_of(&s.store, &id, version)?;
    if !record.recipients.contains(&s.admin) {
        return Err(ApiError::forbidden(format!(
            "{} is not a recipient of document {id} version {}",
            s.admin, record.version
        )));
    }
    if latest.status == DocumentStatus::Erased {
        return Err(ApiError::erased(format!(
            "document {id} is erased; its keys are destroyed"
        )));
    }
    let acks =
        carnet_contracts::lifecycle::delivery_acks(&Committed(&s.store), &id).map_err(internal)?;
    if let Some(done) = acks
        .iter()
        .find(|a| a.version == record.version && a.administration == s.admin)
    {
        return Err(ApiError::bad_input(format!(
            "document {id} version {} is already acknowledged by {} (height {})",
            record.version, s.admin, done.height
        )));
    }
    let tx = s.node_tx(
        Some(caller.key),
        Action::AcknowledgeDelivery {
            document: id,
            version: record.version,
        },
    );
    let height = submit_and_wait(
        &s,
        tx,
        &format!("acknowledgement of {id} version {}", record.version),
    )
    .await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "version": record.version,
        "administration": s.admin.as_str(),
        "height": height,
    })))
}

#[cfg(test)]
mod overload_tests {
    use axum::http::{Method, StatusCode};
    use carnet_contracts::{Action, DocumentId, PublicKey, Transaction};
    use ed25519_dalek::SigningKey;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::super::tests::{export_body, signed, timestamp_ms, xa_admin, Net, CHAIN};
    use crate::node::now_ms;
    use crate::storage::CF_VAULT;

    /// A valid transaction that only fills the mempool (no block is built: the test
    /// network finalizes only when an admission through the node wakes it).
    fn filler(nonce: u64, key: &SigningKey) -> carnet_contracts::SignedTransaction {
        Transaction {
            chain_id: CHAIN.into(),
            signer: PublicKey(key.verifying_key().to_bytes()),
            officer: None,
            nonce,
            expires_at_ms: now_ms() + 60_000,
            action: Action::RecordAccess {
                document: DocumentId([1; 16]),
                version: 1,
                officer: PublicKey([2; 32]),
                purpose: "filler".into(),
            },
        }
        .sign(key)
    }

    #[tokio::test]
    async fn a_full_mempool_answers_503_with_retry_after_and_keeps_nothing() {
        let net = Net::new();
        let node = net.node("XA");
        let key = SigningKey::from_bytes(&[77; 32]);
        let mut nonce = 0;
        while !node.shared.mempool().is_full() {
            let batch = (0..100).map(|_| {
                nonce += 1;
                (filler(nonce, &key), None)
            });
            let results = node.shared.mempool().admit_batch(batch.collect());
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
        let pooled = node.shared.mempool().len();
        let vault_keys = node
            .store
            .scan_prefix(CF_VAULT, &[], 100_000)
            .unwrap()
            .len();

        let payload = json!({"UCR": "UCR-FULL", "CommodityCode": "7208", "Quantity": 3});
        let body = serde_json::to_vec(&export_body("UCR-FULL", &["XB"], payload)).unwrap();
        let request = signed(
            &xa_admin(),
            Method::POST,
            "/v1/documents",
            body,
            timestamp_ms(),
        );
        let response = node.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("mempool is full"), "{message}");
        // Nothing was admitted and no key was kept for the refused document.
        assert_eq!(node.shared.mempool().len(), pooled);
        assert_eq!(
            node.store
                .scan_prefix(CF_VAULT, &[], 100_000)
                .unwrap()
                .len(),
            vault_keys
        );
    }
}
