//! WTO TFA Article 12 information requests: create (the UCR indexed under the key of an
//! active agreement shared with the requested administration), answer (provide,
//! postpone, refuse a–e), report a breach, list (with the overdue flag) and show.
//!
//! Must never show a request to an administration that is neither requester nor
//! requested, and never answer for another administration than this node's.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use carnet_contracts::agreement::AgreementStatus;
use carnet_contracts::envelope::ucr_index;
use carnet_contracts::execute::{query, MAX_PURPOSE_BYTES};
use carnet_contracts::lifecycle::FILING_ROLES;
use carnet_contracts::request::{
    InfoRequest, Matter, RefusalGround, RequestAnswer, RequestStatus, MAX_BREACH_BYTES, MAX_ITEMS,
    MAX_ITEM_BYTES, MAX_PROVIDED_DOCUMENTS,
};
use carnet_contracts::{Action, AdminCode, DocumentId, DocumentStatus, RequestId};
use rand::RngCore;
use serde_json::{json, Value};

use super::documents::agreement_ucr_key;
use super::{
    check_text, internal, own_node, query_params, require_role, submit_and_wait, ApiError,
    ApiState, Caller, Fields, MAX_UCR_CHARS,
};
use crate::ledger::Committed;
use crate::node::Shared;

/// Confidentiality stated when a request names none (TFA Art. 12.5).
pub const DEFAULT_CONFIDENTIALITY: &str = "confidential (TFA Art. 12.5)";

fn status_name(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Open => "open",
        RequestStatus::Postponed => "postponed",
        RequestStatus::Provided => "provided",
        RequestStatus::Refused => "refused",
    }
}

/// The JSON of a request (docs/interfaces.md `<request>`); `overdue` at `now_ms`.
pub(super) fn request_json(request: &InfoRequest, now_ms: u64) -> Value {
    let matter = match &request.matter {
        Matter::Ucr { ucr_index } => json!({"ucr_index": hex::encode(ucr_index)}),
        Matter::Document { id } => json!({"document": id.to_string()}),
    };
    let answers: Vec<Value> = request
        .answers
        .iter()
        .map(|a| match &a.answer {
            RequestAnswer::Provide { documents } => json!({
                "answer": "provide",
                "documents": documents.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "height": a.height,
            }),
            RequestAnswer::Postpone { reason } => json!({
                "answer": "postpone", "reason": reason, "height": a.height,
            }),
            RequestAnswer::Refuse {
                reason_code,
                reason,
            } => json!({
                "answer": "refuse", "reason_code": reason_code.letter(), "reason": reason,
                "height": a.height,
            }),
        })
        .collect();
    json!({
        "id": request.id.to_string(),
        "from": request.requester.as_str(),
        "to": request.to.as_str(),
        "matter": matter,
        "purpose": request.purpose,
        "legal_basis": request.legal_basis,
        "items": request.items,
        "confidentiality": request.confidentiality,
        "status": status_name(request.status),
        "height": request.height,
        "time_ms": request.time_ms,
        "deadline_ms": request.deadline_ms,
        "overdue": request.overdue_at(now_ms),
        "answers": answers,
        "breaches": request.breaches.iter().map(|b| json!({"details": b.details, "height": b.height})).collect::<Vec<_>>(),
    })
}

/// "Now" for the overdue flag: the time of the last final block, so every node agrees.
fn ledger_now_ms(s: &Shared) -> u64 {
    s.head().time_ms
}

fn parse_request_id(id: &str) -> Result<RequestId, ApiError> {
    RequestId::from_hex(id.trim()).map_err(|e| ApiError::bad_input(format!("id: {e}")))
}

fn find_request(s: &Shared, id: &RequestId) -> Result<InfoRequest, ApiError> {
    query::request(&Committed(&s.store), id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no request {id}")))
}

/// The request's JSON after its transaction became final.
fn final_request(s: &Shared, id: &RequestId) -> Result<Json<Value>, ApiError> {
    Ok(Json(request_json(&find_request(s, id)?, ledger_now_ms(s))))
}

/// The index of `ucr` under the first (by id) active agreement this administration
/// shares with `to`; 400 when there is none.
fn ucr_matter(s: &Shared, to: &AdminCode, ucr: &str) -> Result<Matter, ApiError> {
    let ucr = ucr.trim();
    if ucr.is_empty() || ucr.chars().count() > MAX_UCR_CHARS {
        return Err(ApiError::bad_input(format!(
            "ucr: must be 1 to {MAX_UCR_CHARS} characters"
        )));
    }
    let shared = query::agreements(&Committed(&s.store))
        .map_err(internal)?
        .into_iter()
        .find(|r| {
            r.status == AgreementStatus::Active && r.terms.has_party(&s.admin) && r.terms.has_party(to)
        })
        .ok_or_else(|| {
            ApiError::bad_input(format!(
                "ucr: {} and {to} share no active agreement to index the UCR under; name a document instead",
                s.admin
            ))
        })?;
    let key = agreement_ucr_key(s, &shared.terms)?;
    Ok(Matter::Ucr {
        ucr_index: ucr_index(&key, ucr),
    })
}

pub(super) async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "requesting information")?;
    let mut fields = Fields::parse(&body)?;
    let to: String = fields.required("to")?;
    let ucr: Option<String> = fields.optional("ucr")?;
    let document: Option<String> = fields.optional("document")?;
    let purpose = fields.text("purpose", MAX_PURPOSE_BYTES)?;
    let legal_basis = fields.text("legal_basis", MAX_PURPOSE_BYTES)?;
    let items: Vec<String> = fields.required("items")?;
    let confidentiality: Option<String> = fields.optional("confidentiality")?;
    let id: Option<String> = fields.optional("id")?;
    fields.finish()?;
    let to = AdminCode::parse(to.trim()).map_err(|e| ApiError::bad_input(format!("to: {e}")))?;
    if to == s.admin {
        return Err(ApiError::bad_input(format!(
            "to: {to} cannot request information from itself"
        )));
    }
    if !crate::ledger::administration(&s.store, &to)
        .map_err(internal)?
        .is_some_and(|a| a.active)
    {
        return Err(ApiError::bad_input(format!(
            "to: {to} is not an active member"
        )));
    }
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(ApiError::bad_input(format!(
            "items: {} named; a request asks for 1 to {MAX_ITEMS}",
            items.len()
        )));
    }
    let items = items
        .iter()
        .map(|i| check_text("items", i.trim(), MAX_ITEM_BYTES).map(|()| i.trim().to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let confidentiality = match confidentiality {
        Some(c) => {
            check_text("confidentiality", c.trim(), MAX_PURPOSE_BYTES)?;
            c.trim().to_string()
        }
        None => DEFAULT_CONFIDENTIALITY.to_string(),
    };
    let matter = match (ucr, document) {
        (Some(ucr), None) => ucr_matter(&s, &to, &ucr)?,
        (None, Some(document)) => {
            let id = DocumentId::from_hex(document.trim())
                .map_err(|e| ApiError::bad_input(format!("document: {e}")))?;
            if crate::ledger::document(&s.store, &id)
                .map_err(internal)?
                .is_none()
            {
                return Err(ApiError::bad_input(format!("document: no document {id}")));
            }
            Matter::Document { id }
        }
        _ => {
            return Err(ApiError::bad_input(
                "ucr, document: name exactly one of them",
            ))
        }
    };
    let id = match id {
        Some(text) => {
            RequestId::from_hex(text.trim()).map_err(|e| ApiError::bad_input(format!("id: {e}")))?
        }
        None => {
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            RequestId(bytes)
        }
    };
    if query::request(&Committed(&s.store), &id)
        .map_err(internal)?
        .is_some()
    {
        return Err(ApiError::bad_input(format!(
            "id: request {id} already exists"
        )));
    }
    let tx = s.node_tx(
        Some(caller.key),
        Action::CreateRequest {
            id,
            to,
            matter,
            purpose,
            legal_basis,
            items,
            confidentiality,
        },
    );
    submit_and_wait(&s, tx, &format!("request {id}")).await?;
    final_request(&s, &id)
}

pub(super) async fn answer(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_request_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let kind: String = fields.required("answer")?;
    let answer = match kind.as_str() {
        "provide" => {
            let documents: Vec<String> = fields.required("documents")?;
            if documents.is_empty() || documents.len() > MAX_PROVIDED_DOCUMENTS {
                return Err(ApiError::bad_input(format!(
                    "documents: {} named; provide 1 to {MAX_PROVIDED_DOCUMENTS}",
                    documents.len()
                )));
            }
            let mut ids = Vec::new();
            for d in &documents {
                let doc = DocumentId::from_hex(d.trim())
                    .map_err(|e| ApiError::bad_input(format!("documents: {e}")))?;
                if ids.contains(&doc) {
                    return Err(ApiError::bad_input(format!("documents: {doc} named twice")));
                }
                ids.push(doc);
            }
            RequestAnswer::Provide { documents: ids }
        }
        "postpone" => RequestAnswer::Postpone {
            reason: fields.text("reason", MAX_PURPOSE_BYTES)?,
        },
        "refuse" => {
            let code: String = fields.required("reason_code")?;
            let reason_code = RefusalGround::parse(code.trim())
                .map_err(|e| ApiError::bad_input(format!("reason_code: {e}")))?;
            RequestAnswer::Refuse {
                reason_code,
                reason: fields.text("reason", MAX_PURPOSE_BYTES)?,
            }
        }
        other => {
            return Err(ApiError::bad_input(format!(
                "answer: `{other}` is not provide, postpone or refuse"
            )))
        }
    };
    fields.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "answering requests")?;
    let request = find_request(&s, &id)?;
    if request.to != s.admin {
        return Err(ApiError::forbidden(format!(
            "only {}, the requested administration, may answer request {id}",
            request.to
        )));
    }
    if matches!(
        request.status,
        RequestStatus::Provided | RequestStatus::Refused
    ) {
        return Err(ApiError::bad_input(format!(
            "request {id} is already answered ({})",
            status_name(request.status)
        )));
    }
    if let RequestAnswer::Provide { documents } = &answer {
        for doc in documents {
            let record = crate::ledger::document(&s.store, doc)
                .map_err(internal)?
                .ok_or_else(|| ApiError::bad_input(format!("documents: no document {doc}")))?;
            if record.issuer != s.admin && !record.recipients.contains(&s.admin) {
                return Err(ApiError::bad_input(format!(
                    "documents: {} is neither issuer nor recipient of document {doc}",
                    s.admin
                )));
            }
            if record.status == DocumentStatus::Erased {
                return Err(ApiError::bad_input(format!(
                    "documents: document {doc} is erased"
                )));
            }
        }
    }
    let tx = s.node_tx(Some(caller.key), Action::AnswerRequest { id, answer });
    submit_and_wait(&s, tx, &format!("answer to request {id}")).await?;
    final_request(&s, &id)
}

pub(super) async fn breach(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_request_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let details = fields.text("details", MAX_BREACH_BYTES)?;
    fields.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &FILING_ROLES, "reporting breaches")?;
    let request = find_request(&s, &id)?;
    if request.requester != s.admin {
        return Err(ApiError::forbidden(format!(
            "only {}, which received the information, reports breaches of request {id}",
            request.requester
        )));
    }
    if request.status != RequestStatus::Provided {
        return Err(ApiError::bad_input(format!(
            "no information was provided under request {id}"
        )));
    }
    let tx = s.node_tx(Some(caller.key), Action::ReportBreach { id, details });
    submit_and_wait(&s, tx, &format!("breach notice on request {id}")).await?;
    final_request(&s, &id)
}

pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let params = query_params(raw, &["overdue"])?;
    let only_overdue = match params.get("overdue").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_input(format!(
                "overdue: `{other}` is neither true nor false"
            )))
        }
    };
    let now = ledger_now_ms(s);
    let views = query::requests(&Committed(&s.store), &s.admin, Some(now)).map_err(internal)?;
    Ok(Json(json!({
        "requests": views
            .iter()
            .filter(|v| !only_overdue || v.overdue)
            .map(|v| request_json(&v.request, now))
            .collect::<Vec<_>>(),
    })))
}

pub(super) async fn show(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let id = parse_request_id(&id)?;
    let request = find_request(s, &id)?;
    if request.requester != s.admin && request.to != s.admin {
        return Err(ApiError::forbidden(format!(
            "{} is neither requester nor requested administration of request {id}",
            s.admin
        )));
    }
    Ok(Json(request_json(&request, ledger_now_ms(s))))
}
