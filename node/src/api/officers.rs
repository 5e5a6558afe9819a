//! Officers and roles: an administration's `admin` registers and revokes its own
//! officers through its own node; anyone signed in may list an administration's officers.
//!
//! Must never register or revoke an officer of another administration, and never let an
//! admin revoke itself.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use carnet_contracts::officers::{officers_of, role_name, MAX_OFFICER_NAME_BYTES};
use carnet_contracts::{Action, AdminCode, Officer, PublicKey, Role};
use serde_json::{json, Value};

use super::{
    internal, own_node, query_params, require_role, submit_and_wait, ApiError, ApiState, Caller,
    Fields,
};
use crate::ledger::Committed;

/// The JSON of an officer (docs/interfaces.md `<officer>`).
pub(super) fn officer_json(officer: &Officer) -> Value {
    json!({
        "key": officer.key.to_string(),
        "name": officer.name,
        "administration": officer.administration.as_str(),
        "roles": officer.roles.iter().map(|r| role_name(*r)).collect::<Vec<_>>(),
        "active": officer.active,
    })
}

fn parse_role(name: &str) -> Result<Role, ApiError> {
    [Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin]
        .into_iter()
        .find(|r| role_name(*r) == name.trim())
        .ok_or_else(|| {
            ApiError::bad_input(format!(
                "roles: unknown role `{name}`; roles are officer, supervisor, auditor, admin"
            ))
        })
}

fn parse_key(field: &str, text: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_hex(text.trim()).map_err(|e| ApiError::bad_input(format!("{field}: {e}")))
}

pub(super) async fn add(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    require_role(&caller, &[Role::Admin], "managing officers")?;
    let mut fields = Fields::parse(&body)?;
    let key: String = fields.required("key")?;
    let name = fields.text("name", MAX_OFFICER_NAME_BYTES)?;
    let roles: Vec<String> = fields.required("roles")?;
    fields.finish()?;
    let key = parse_key("key", &key)?;
    if ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_err() {
        return Err(ApiError::bad_input(format!(
            "key: {key} is not an ed25519 public key"
        )));
    }
    if roles.is_empty() {
        return Err(ApiError::bad_input("roles: none named"));
    }
    let mut parsed = Vec::new();
    for name in &roles {
        let role = parse_role(name)?;
        if parsed.contains(&role) {
            return Err(ApiError::bad_input(format!(
                "roles: {} named twice",
                role_name(role)
            )));
        }
        parsed.push(role);
    }
    if let Some(existing) = crate::ledger::officer(&s.store, &key).map_err(internal)? {
        return Err(ApiError::bad_input(format!(
            "key: {key} is already registered to {}{}",
            existing.administration,
            if existing.active {
                ""
            } else {
                " (revoked; keys are never reused)"
            }
        )));
    }
    let tx = s.node_tx(
        Some(caller.key),
        Action::AddOfficer {
            key,
            name,
            roles: parsed,
        },
    );
    submit_and_wait(&s, tx, &format!("registration of officer {key}")).await?;
    let officer = crate::ledger::officer(&s.store, &key)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("officer {key} missing after registration")))?;
    Ok(Json(officer_json(&officer)))
}

pub(super) async fn revoke(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let key = parse_key("key", &key)?;
    Fields::parse(&body)?.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &[Role::Admin], "managing officers")?;
    let officer = crate::ledger::officer(&s.store, &key)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no officer {key}")))?;
    if officer.administration != s.admin {
        return Err(ApiError::forbidden(format!(
            "officer {key} is registered to {}; {} manages only its own officers",
            officer.administration, s.admin
        )));
    }
    if !officer.active {
        return Err(ApiError::bad_input(format!(
            "officer {key} is already revoked"
        )));
    }
    if key == caller.key {
        return Err(ApiError::bad_input(format!(
            "officer {key} cannot revoke itself; another admin must"
        )));
    }
    let tx = s.node_tx(Some(caller.key), Action::RevokeOfficer { key });
    submit_and_wait(&s, tx, &format!("revocation of officer {key}")).await?;
    let officer = crate::ledger::officer(&s.store, &key)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("officer {key} missing after revocation")))?;
    Ok(Json(officer_json(&officer)))
}

pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let params = query_params(raw, &["administration"])?;
    let admin = match params.get("administration") {
        None => caller.officer.administration.clone(),
        Some(code) => AdminCode::parse(code.trim())
            .map_err(|e| ApiError::bad_input(format!("administration: {e}")))?,
    };
    if crate::ledger::administration(&s.store, &admin)
        .map_err(internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no administration {admin}")));
    }
    let officers = officers_of(&Committed(&s.store), &admin).map_err(internal)?;
    Ok(Json(json!({
        "officers": officers.iter().map(officer_json).collect::<Vec<_>>(),
    })))
}
