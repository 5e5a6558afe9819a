//! UCR queries, export/import matching and pre-filling: the UCR is never on the ledger
//! in clear, so the node computes its index under the UCR key of every agreement its
//! administration is party to, and reads (decrypts, with an access record) what it must
//! compare.
//!
//! Must never read a payload the caller's administration could not decrypt itself,
//! never read one without submitting its access record, and never return a UCR key.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use carnet_contracts::agreement::AgreementStatus;
use carnet_contracts::envelope::ucr_index;
use carnet_contracts::execute::{query, MAX_PURPOSE_BYTES};
use carnet_contracts::{DocumentId, DocumentKind, DocumentRecord, DocumentStatus, Hash32};
use serde_json::{json, Map, Value};

use super::documents::{
    agreement_of, document_json, find_document, may_see, open_payload, record_access,
};
use super::{
    check_text, internal, own_node, parse_document_id, query_params, ApiError, ApiState, Caller,
    Fields, MAX_UCR_CHARS,
};
use crate::ledger::Committed;
use crate::node::Shared;

/// Most document versions a UCR query returns.
const MAX_UCR_RESULTS: usize = 1000;
/// Most documents one UCR match decrypts.
const MAX_MATCH_READS: usize = 32;
/// Purpose of the reads a UCR match makes.
pub const UCR_MATCH_PURPOSE: &str = "UCR match";

/// A UCR from a query parameter: trimmed, 1 to `MAX_UCR_CHARS` characters.
fn ucr_param(ucr: Option<&String>) -> Result<String, ApiError> {
    let ucr = ucr.map(|u| u.trim()).unwrap_or_default();
    if ucr.is_empty() || ucr.chars().count() > MAX_UCR_CHARS {
        return Err(ApiError::bad_input(format!(
            "ucr: must be 1 to {MAX_UCR_CHARS} characters"
        )));
    }
    Ok(ucr.to_string())
}

/// The UCR's index under the key of every agreement this node's administration is party
/// to (proposed or active), without duplicates. An agreement whose wrap does not open
/// is skipped with a warning.
pub(super) fn ucr_indexes(s: &Shared, ucr: &str) -> Result<Vec<Hash32>, ApiError> {
    let mut out = Vec::new();
    for record in query::agreements(&Committed(&s.store)).map_err(internal)? {
        if !record.terms.has_party(&s.admin) {
            continue;
        }
        match s.agreement_ucr_key(&record.terms) {
            Ok(Some(key)) => {
                let index = ucr_index(&key, ucr);
                if !out.contains(&index) {
                    out.push(index);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(agreement = %record.agreement, "skipping agreement: {e}"),
        }
    }
    Ok(out)
}

/// Every document version filed under the UCR that the caller may see, at most
/// `MAX_UCR_RESULTS`.
fn visible_by_ucr(s: &Shared, caller: &Caller, ucr: &str) -> Result<Vec<DocumentRecord>, ApiError> {
    let mut out = Vec::new();
    for index in ucr_indexes(s, ucr)? {
        let remaining = MAX_UCR_RESULTS.saturating_sub(out.len());
        if remaining == 0 {
            break;
        }
        let records =
            crate::ledger::documents_by_ucr(&s.store, &index, remaining).map_err(internal)?;
        out.extend(records.into_iter().filter(|r| may_see(caller, r)));
    }
    Ok(out)
}

pub(super) async fn documents_by_ucr(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let params = query_params(raw, &["ucr"])?;
    let ucr = ucr_param(params.get("ucr"))?;
    let mut documents = Vec::new();
    for record in visible_by_ucr(s, &caller, &ucr)? {
        let agreement = agreement_of(&s.store, &record.id)?;
        documents.push(document_json(&record, agreement));
    }
    Ok(Json(json!({ "documents": documents })))
}

/// Where a kind goes in a UCR match.
fn group(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::ExportDeclaration => "exports",
        DocumentKind::ImportDeclaration => "imports",
        DocumentKind::CertificateOfOrigin | DocumentKind::PhytosanitaryCertificate => {
            "certificates"
        }
        _ => "others",
    }
}

/// The shared elements of two payloads whose values differ, in element order.
pub(crate) fn differing_elements<'a>(
    export: &'a Map<String, Value>,
    import: &'a Map<String, Value>,
) -> Vec<(&'a str, &'a Value, &'a Value)> {
    let mut out: Vec<(&str, &Value, &Value)> = export
        .iter()
        .filter_map(|(name, value)| match import.get(name) {
            Some(other) if other != value => Some((name.as_str(), value, other)),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// Whether this node can open `record` for its own administration right now.
fn readable_here(s: &Shared, record: &DocumentRecord) -> Result<bool, ApiError> {
    if record.status != DocumentStatus::Active
        || !(record.issuer == s.admin || record.recipients.contains(&s.admin))
    {
        return Ok(false);
    }
    let keys = s.vault.get(&record.id, record.version).map_err(internal)?;
    let ciphertext = s.store.payload(&record.ciphertext_hash).map_err(internal)?;
    Ok(keys.is_some() && ciphertext.is_some())
}

/// Opens `record` for the caller and records the access; the payload as a JSON object.
fn read_object(
    s: &Shared,
    caller: &Caller,
    record: &DocumentRecord,
    purpose: &str,
) -> Result<Map<String, Value>, ApiError> {
    let text = open_payload(s, record)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        internal(format!(
            "payload of document {} is not JSON: {e}",
            record.id
        ))
    })?;
    drop(text);
    let Value::Object(object) = value else {
        return Err(internal(format!(
            "payload of document {} is not a JSON object",
            record.id
        )));
    };
    record_access(s, caller, record, purpose, None)?;
    Ok(object)
}

pub(super) async fn ucr_match(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    let params = query_params(raw, &["ucr"])?;
    let ucr = ucr_param(params.get("ucr"))?;
    // The latest visible version of each document.
    let mut latest: BTreeMap<DocumentId, DocumentRecord> = BTreeMap::new();
    for record in visible_by_ucr(&s, &caller, &ucr)? {
        if latest
            .get(&record.id)
            .is_none_or(|r| r.version < record.version)
        {
            latest.insert(record.id, record);
        }
    }
    let mut groups: BTreeMap<&str, Vec<Value>> = ["exports", "imports", "certificates", "others"]
        .into_iter()
        .map(|g| (g, Vec::new()))
        .collect();
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut unread = Vec::new();
    for record in latest.values() {
        let agreement = agreement_of(&s.store, &record.id)?;
        groups
            .entry(group(record.kind))
            .or_default()
            .push(document_json(record, agreement));
        let side = match record.kind {
            DocumentKind::ExportDeclaration => &mut exports,
            DocumentKind::ImportDeclaration => &mut imports,
            _ => continue,
        };
        if readable_here(&s, record)? {
            side.push(record.clone());
        } else if record.status == DocumentStatus::Active {
            unread.push(record.id.to_string());
        }
    }
    // Read only when there is a pair to compare, and at most MAX_MATCH_READS documents.
    let mut mismatches = Vec::new();
    if !exports.is_empty() && !imports.is_empty() {
        if exports.len() + imports.len() > MAX_MATCH_READS {
            return Err(ApiError::bad_input(format!(
                "ucr: {} export and {} import declarations share this UCR; a match reads at most {MAX_MATCH_READS}",
                exports.len(),
                imports.len()
            )));
        }
        let mut read = Vec::new();
        for record in exports.iter().chain(&imports) {
            read.push(read_object(&s, &caller, record, UCR_MATCH_PURPOSE)?);
        }
        let (export_payloads, import_payloads) = read.split_at(exports.len());
        for (export, export_payload) in exports.iter().zip(export_payloads) {
            for (import, import_payload) in imports.iter().zip(import_payloads) {
                for (element, export_value, import_value) in
                    differing_elements(export_payload, import_payload)
                {
                    mismatches.push(json!({
                        "element": element,
                        "export_id": export.id.to_string(),
                        "export_value": export_value,
                        "import_id": import.id.to_string(),
                        "import_value": import_value,
                    }));
                }
            }
        }
    }
    let mut answer = json!({ "ucr": ucr, "mismatches": mismatches, "unread": unread });
    for (name, documents) in groups {
        answer[name] = Value::Array(documents);
    }
    Ok(Json(answer))
}

pub(super) async fn prefill(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_document_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let kind: String = fields.required("kind")?;
    let purpose: Option<String> = fields.optional("purpose")?;
    fields.finish()?;
    let kind = DocumentKind::parse(&kind).map_err(|e| ApiError::bad_input(format!("kind: {e}")))?;
    let purpose = match purpose {
        Some(p) => {
            check_text("purpose", p.trim(), MAX_PURPOSE_BYTES)?;
            p.trim().to_string()
        }
        None => format!("prefill {kind}"),
    };
    own_node(&s, &caller)?;
    let record = find_document(&s.store, &id)?;
    if !(record.issuer == s.admin || record.recipients.contains(&s.admin)) {
        return Err(ApiError::forbidden(format!(
            "{} is not issuer or recipient of document {id}",
            s.admin
        )));
    }
    if record.status == DocumentStatus::Erased {
        return Err(ApiError::erased(format!(
            "document {id} is erased; its keys are destroyed"
        )));
    }
    // Elements `kind` may carry under the caller's active agreements covering it.
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    let mut covered = false;
    for agreement in query::agreements(&Committed(&s.store)).map_err(internal)? {
        if agreement.status != AgreementStatus::Active || !agreement.terms.has_party(&s.admin) {
            continue;
        }
        if let Some(cluster) = agreement.terms.cluster(kind) {
            covered = true;
            allowed.extend(cluster.allowed.iter().cloned());
        }
    }
    let source = read_object(&s, &caller, &record, &purpose)?;
    let mut payload = Map::new();
    let mut carried = Vec::new();
    let mut dropped = Vec::new();
    for (element, value) in source {
        if !covered || allowed.contains(&element) {
            carried.push(element.clone());
            payload.insert(element, value);
        } else {
            dropped.push(element);
        }
    }
    carried.sort();
    dropped.sort();
    Ok(Json(json!({
        "from": id.to_string(),
        "kind": kind.as_str(),
        "payload": payload,
        "carried": carried,
        "dropped": dropped,
    })))
}
