//! Agreements (GNC Utility Blocks): propose, accept, list, show. Proposing draws the
//! agreement's UCR key and wraps it (HPKE) to every party's encryption key; the wraps go
//! on the ledger with the terms, and each party's node unwraps its own when it needs it.
//!
//! Must never put the UCR key anywhere but in the wraps, never log it, and never propose
//! or accept on behalf of an administration that is not a party.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use carnet_contracts::agreement::{
    Agreement, AgreementRecord, AgreementStatus, DataCluster, Delivery, Trigger,
};
use carnet_contracts::execute::query;
use carnet_contracts::{Action, AdminCode, AgreementId, Role};
use rand::RngCore;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{
    internal, own_node, require_role, submit_and_wait, ApiError, ApiState, Caller, Fields,
};
use crate::ledger::Committed;

/// The JSON of an agreement (docs/interfaces.md `<agreement>`); the UCR key wraps are
/// not shown.
pub(super) fn agreement_json(record: &AgreementRecord) -> Value {
    let terms = &record.terms;
    let pending: Vec<&str> = terms
        .parties
        .iter()
        .filter(|p| !record.accepted.contains(p))
        .map(|p| p.as_str())
        .collect();
    json!({
        "id": record.agreement.to_string(),
        "title": terms.title,
        "parties": terms.parties.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "clusters": serde_json::to_value(&terms.clusters).unwrap_or(Value::Null),
        "trigger": serde_json::to_value(terms.trigger).unwrap_or(Value::Null),
        "legal_basis": terms.legal_basis,
        "purpose": terms.purpose,
        "retention_days": terms.retention_days,
        "retention_seconds": terms.retention_seconds,
        "delivery": serde_json::to_value(terms.delivery).unwrap_or(Value::Null),
        "status": match record.status {
            AgreementStatus::Proposed => "proposed",
            AgreementStatus::Active => "active",
        },
        "proposed_by": record.proposed_by.as_str(),
        "accepted": record.accepted.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "pending": pending,
        "height": record.height,
        "activated_at": record.activated_at,
    })
}

fn parse_agreement_id(id: &str) -> Result<AgreementId, ApiError> {
    AgreementId::from_hex(id.trim()).map_err(|e| ApiError::bad_input(format!("id: {e}")))
}

fn find_agreement(state: &ApiState, id: &AgreementId) -> Result<AgreementRecord, ApiError> {
    query::agreement(&Committed(&state.shared.store), id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no agreement {id}")))
}

/// Reads an agreement file (`testnet/agreements/*.json`): every field named on error,
/// `id` drawn when absent, `ucr_key_wraps` refused (the node makes them).
fn agreement_file(body: &[u8]) -> Result<Agreement, ApiError> {
    let mut fields = Fields::parse(body)?;
    let id: Option<String> = fields.optional("id")?;
    let title: String = fields.required("title")?;
    let parties: Vec<String> = fields.required("parties")?;
    let clusters: Vec<DataCluster> = fields.required("clusters")?;
    let trigger: Trigger = fields.required("trigger")?;
    let legal_basis: String = fields.required("legal_basis")?;
    let purpose: String = fields.required("purpose")?;
    let retention_days: Option<u32> = fields.optional("retention_days")?;
    let retention_seconds: Option<u64> = fields.optional("retention_seconds")?;
    let delivery: Delivery = fields.required("delivery")?;
    fields.finish()?;
    let id = match id {
        Some(text) => AgreementId::from_hex(text.trim())
            .map_err(|e| ApiError::bad_input(format!("id: {e}")))?,
        None => {
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            AgreementId(bytes)
        }
    };
    let parties = parties
        .iter()
        .map(|p| AdminCode::parse(p).map_err(|e| ApiError::bad_input(format!("parties: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Agreement {
        id,
        title,
        parties,
        clusters,
        trigger,
        legal_basis,
        purpose,
        retention_days,
        retention_seconds,
        delivery,
        ucr_key_wraps: Vec::new(),
    })
}

pub(super) async fn propose(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    require_role(&caller, &[Role::Admin], "proposing agreements")?;
    let mut terms = agreement_file(&body)?;
    if !terms.has_party(&s.admin) {
        return Err(ApiError::forbidden(format!(
            "{} proposes agreement {} but is not one of its parties",
            s.admin, terms.id
        )));
    }
    if query::agreement(&Committed(&s.store), &terms.id)
        .map_err(internal)?
        .is_some()
    {
        return Err(ApiError::bad_input(format!(
            "id: agreement {} already exists",
            terms.id
        )));
    }
    let mut members = Vec::new();
    for party in &terms.parties {
        match crate::ledger::administration(&s.store, party).map_err(internal)? {
            Some(member) if member.active => members.push(member),
            Some(_) => {
                return Err(ApiError::bad_input(format!(
                    "parties: {party} is not an active member"
                )))
            }
            None => {
                return Err(ApiError::bad_input(format!(
                    "parties: {party} is not a member"
                )))
            }
        }
    }
    // The agreement's UCR key: drawn here, wrapped to every party, then forgotten.
    let mut ucr_key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut ucr_key[..]);
    terms
        .wrap_ucr_key(
            &ucr_key,
            |party| {
                members
                    .iter()
                    .find(|m| &m.code == party)
                    .map(|m| m.encryption_key)
            },
            || {
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                seed
            },
        )
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    drop(ucr_key);
    terms
        .validate()
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    let id = terms.id;
    let tx = s.node_tx(Some(caller.key), Action::ProposeAgreement(terms));
    tracing::info!(agreement = %id, "agreement proposed");
    let height = submit_and_wait(&s, tx, &format!("agreement {id}")).await?;
    let record = find_agreement(&state, &id)?;
    Ok(Json(
        json!({"agreement": agreement_json(&record), "height": height}),
    ))
}

pub(super) async fn accept(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_agreement_id(&id)?;
    Fields::parse(&body)?.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &[Role::Admin], "accepting agreements")?;
    let record = find_agreement(&state, &id)?;
    if !record.terms.has_party(&s.admin) {
        return Err(ApiError::forbidden(format!(
            "{} is not a party to agreement {id}",
            s.admin
        )));
    }
    if record.accepted.contains(&s.admin) {
        return Err(ApiError::bad_input(format!(
            "{} already accepted agreement {id}",
            s.admin
        )));
    }
    let tx = s.node_tx(Some(caller.key), Action::AcceptAgreement { id });
    let height = submit_and_wait(&s, tx, &format!("acceptance of agreement {id}")).await?;
    let record = find_agreement(&state, &id)?;
    Ok(Json(
        json!({"agreement": agreement_json(&record), "height": height}),
    ))
}

pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    own_node(&state.shared, &caller)?;
    let agreements = query::agreements(&Committed(&state.shared.store)).map_err(internal)?;
    Ok(Json(json!({
        "agreements": agreements.iter().map(agreement_json).collect::<Vec<_>>(),
    })))
}

pub(super) async fn show(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    own_node(&state.shared, &caller)?;
    let id = parse_agreement_id(&id)?;
    Ok(Json(agreement_json(&find_agreement(&state, &id)?)))
}
