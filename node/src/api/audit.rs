//! The read audit: every decryption a node served is an access record on the ledger;
//! this shows them by document (to the issuer's officers and to auditors of the issuer
//! or a recipient) or by officer (to the officer itself and to auditors and admins of its
//! administration).
//!
//! Must never show the accesses of a document or an officer to anyone else.

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use carnet_contracts::execute::query;
use carnet_contracts::officers::access_log_by_officer;
use carnet_contracts::{AccessRecord, PublicKey, Role};
use serde_json::{json, Value};

use super::documents::find_document;
use super::{
    has_any_role, internal, own_node, parse_document_id, query_params, ApiError, ApiState, Caller,
};
use crate::ledger::Committed;

/// Most access records one audit query returns (oldest first).
pub const MAX_AUDIT_RECORDS: usize = 1000;

fn access_json(access: &AccessRecord) -> Value {
    json!({
        "document": access.document.to_string(),
        "version": access.version,
        "officer": access.officer.to_string(),
        "administration": access.administration.as_str(),
        "purpose": access.purpose,
        "request": access.request.map(|r| r.to_string()),
        "height": access.height,
        "time_ms": access.time_ms,
    })
}

pub(super) async fn accesses(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let params = query_params(raw, &["document", "officer"])?;
    let committed = Committed(&s.store);
    let admin = &caller.officer.administration;
    let records = match (params.get("document"), params.get("officer")) {
        (Some(id), None) => {
            let id = parse_document_id(id.trim()).map_err(|_| {
                ApiError::bad_input(format!("document: `{id}` is not a document id"))
            })?;
            let latest = find_document(&s.store, &id)?;
            let history = crate::ledger::document_history(&s.store, &id).map_err(internal)?;
            let recipient = history.iter().any(|v| v.recipients.contains(admin));
            let auditor = has_any_role(&caller.officer, &[Role::Auditor]);
            if !(latest.issuer == *admin || (auditor && recipient)) {
                return Err(ApiError::forbidden(format!(
                    "the accesses of document {id} are shown to officers of its issuer {} and to auditors of its recipients",
                    latest.issuer
                )));
            }
            query::access_log(&committed, &id, MAX_AUDIT_RECORDS).map_err(internal)?
        }
        (None, Some(key)) => {
            let key = PublicKey::from_hex(key.trim())
                .map_err(|e| ApiError::bad_input(format!("officer: {e}")))?;
            let officer = crate::ledger::officer(&s.store, &key)
                .map_err(internal)?
                .ok_or_else(|| ApiError::not_found(format!("no officer {key}")))?;
            let itself = caller.key == key;
            let overseer = officer.administration == *admin
                && has_any_role(&caller.officer, &[Role::Auditor, Role::Admin]);
            if !(itself || overseer) {
                return Err(ApiError::forbidden(format!(
                    "the accesses of officer {key} are shown to the officer and to auditors and admins of {}",
                    officer.administration
                )));
            }
            access_log_by_officer(&committed, &key, MAX_AUDIT_RECORDS).map_err(internal)?
        }
        _ => {
            return Err(ApiError::bad_input(
                "document, officer: name exactly one of them",
            ))
        }
    };
    Ok(Json(json!({
        "accesses": records.iter().map(access_json).collect::<Vec<_>>(),
    })))
}
