//! Membership governance: proposals to admit or remove an administration, votes by the
//! members' `admin` officers, and the member list with every proposal.
//!
//! Must never propose or vote for another administration than this node's.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use carnet_contracts::execute::query;
use carnet_contracts::governance::{
    Proposal, ProposalKind, ProposalStatus, MAX_EFFECTIVE_DELAY_BLOCKS,
};
use carnet_contracts::{Action, AdminCode, Administration, Officer, ProposalId, PublicKey, Role};
use rand::RngCore;
use serde_json::{json, Value};

use super::{
    internal, own_node, require_role, submit_and_wait, ApiError, ApiState, Caller, Fields,
};
use crate::ledger::Committed;
use crate::node::Shared;

/// Blocks between a proposal passing and taking effect when the body names none.
pub const DEFAULT_EFFECTIVE_DELAY_BLOCKS: u64 = 10;

/// The JSON of a proposal (docs/interfaces.md `<proposal>`).
pub(super) fn proposal_json(proposal: &Proposal) -> Value {
    let (kind, code, administration) = match &proposal.kind {
        ProposalKind::AddMember(a) => (
            "add",
            a.code.as_str(),
            serde_json::to_value(a).unwrap_or(Value::Null),
        ),
        ProposalKind::RemoveMember(code) => ("remove", code.as_str(), Value::Null),
    };
    let (status, effective_height, failure) = match &proposal.status {
        ProposalStatus::Open => ("open", None, None),
        ProposalStatus::Passed { effective_height } => ("passed", Some(*effective_height), None),
        ProposalStatus::Rejected => ("rejected", None, None),
        ProposalStatus::Applied { height } => ("applied", Some(*height), None),
        ProposalStatus::Failed { height, reason } => ("failed", Some(*height), Some(reason)),
    };
    json!({
        "id": proposal.id.to_string(),
        "kind": kind,
        "code": code,
        "administration": administration,
        "proposed_by": proposal.proposed_by.as_str(),
        "effective_delay_blocks": proposal.effective_delay_blocks,
        "votes": proposal.votes.iter().map(|(c, yes)| json!({"administration": c.as_str(), "yes": yes})).collect::<Vec<_>>(),
        "status": status,
        "effective_height": effective_height,
        "failure": failure,
        "height": proposal.height,
    })
}

fn parse_proposal_id(id: &str) -> Result<ProposalId, ApiError> {
    ProposalId::from_hex(id.trim()).map_err(|e| ApiError::bad_input(format!("id: {e}")))
}

fn find_proposal(s: &Shared, id: &ProposalId) -> Result<Proposal, ApiError> {
    query::proposal(&Committed(&s.store), id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no proposal {id}")))
}

/// The administration to admit, as in genesis (`active` may be left out), with its first
/// officers (`officers`: `[{"key","name","roles"}]`, at least one `admin`); errors name
/// the field (`add.node_key: ...`).
fn new_member(value: Value) -> Result<(Administration, Vec<Officer>), ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_input(
            "add: must be an administration object as in genesis",
        ));
    };
    let named = |e: ApiError| ApiError::bad_input(format!("add.{}", e.message));
    let mut fields = Fields(map);
    let code: String = fields.required("code").map_err(named)?;
    let name: String = fields.required("name").map_err(named)?;
    let node_key: PublicKey = fields.required("node_key").map_err(named)?;
    let validator_key: PublicKey = fields.required("validator_key").map_err(named)?;
    let encryption_key: String = fields.required("encryption_key").map_err(named)?;
    let voting_power: u64 = fields.required("voting_power").map_err(named)?;
    let _active: Option<bool> = fields.optional("active").map_err(named)?;
    let officers: Option<Vec<FirstOfficer>> = fields.optional("officers").map_err(named)?;
    fields
        .finish()
        .map_err(|e| ApiError::bad_input(e.message.replacen("body:", "add:", 1)))?;
    let code =
        AdminCode::parse(code.trim()).map_err(|e| ApiError::bad_input(format!("add.code: {e}")))?;
    let officers: Vec<Officer> = officers
        .unwrap_or_default()
        .into_iter()
        .map(|o| Officer {
            key: o.key,
            administration: code.clone(),
            name: o.name,
            roles: o.roles,
            active: true,
        })
        .collect();
    for (field, key) in [("node_key", &node_key), ("validator_key", &validator_key)] {
        if ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_err() {
            return Err(ApiError::bad_input(format!(
                "add.{field}: {key} is not an ed25519 public key"
            )));
        }
    }
    let encryption_key: [u8; 32] = hex::decode(encryption_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad_input("add.encryption_key: not 32 bytes of hex"))?;
    Ok((
        Administration {
            code,
            name,
            node_key,
            validator_key,
            encryption_key,
            voting_power,
            active: true,
        },
        officers,
    ))
}

/// A first officer of an administration to admit, as the member file names it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstOfficer {
    key: PublicKey,
    name: String,
    roles: Vec<Role>,
}

pub(super) async fn propose(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    require_role(&caller, &[Role::Admin], "proposing membership changes")?;
    let mut fields = Fields::parse(&body)?;
    let add: Option<Value> = fields.optional("add")?;
    let remove: Option<String> = fields.optional("remove")?;
    let delay: Option<u64> = fields.optional("effective_delay_blocks")?;
    let id: Option<String> = fields.optional("id")?;
    fields.finish()?;
    let effective_delay_blocks = delay.unwrap_or(DEFAULT_EFFECTIVE_DELAY_BLOCKS);
    if effective_delay_blocks == 0 || effective_delay_blocks > MAX_EFFECTIVE_DELAY_BLOCKS {
        return Err(ApiError::bad_input(format!(
            "effective_delay_blocks: {effective_delay_blocks}; must be 1 to {MAX_EFFECTIVE_DELAY_BLOCKS}"
        )));
    }
    let id = match id {
        Some(text) => parse_proposal_id(&text)?,
        None => {
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            ProposalId(bytes)
        }
    };
    if query::proposal(&Committed(&s.store), &id)
        .map_err(internal)?
        .is_some()
    {
        return Err(ApiError::bad_input(format!(
            "id: proposal {id} already exists"
        )));
    }
    let action = match (add, remove) {
        (Some(add), None) => {
            let (administration, officers) = new_member(add)?;
            if crate::ledger::administration(&s.store, &administration.code)
                .map_err(internal)?
                .is_some()
            {
                return Err(ApiError::bad_input(format!(
                    "add: {} is already a member; codes are never reused",
                    administration.code
                )));
            }
            Action::ProposeMember {
                id,
                administration,
                effective_delay_blocks,
                officers,
            }
        }
        (None, Some(code)) => {
            let code = AdminCode::parse(code.trim())
                .map_err(|e| ApiError::bad_input(format!("remove: {e}")))?;
            if !crate::ledger::administration(&s.store, &code)
                .map_err(internal)?
                .is_some_and(|a| a.active)
            {
                return Err(ApiError::bad_input(format!(
                    "remove: {code} is not an active member"
                )));
            }
            Action::ProposeRemoval {
                id,
                code,
                effective_delay_blocks,
            }
        }
        _ => return Err(ApiError::bad_input("add, remove: name exactly one of them")),
    };
    let tx = s.node_tx(Some(caller.key), action);
    submit_and_wait(&s, tx, &format!("proposal {id}")).await?;
    Ok(Json(proposal_json(&find_proposal(&s, &id)?)))
}

pub(super) async fn vote(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_proposal_id(&id)?;
    let mut fields = Fields::parse(&body)?;
    let yes: bool = fields.required("yes")?;
    fields.finish()?;
    own_node(&s, &caller)?;
    require_role(&caller, &[Role::Admin], "voting")?;
    let proposal = find_proposal(&s, &id)?;
    if proposal.status != ProposalStatus::Open {
        return Err(ApiError::bad_input(format!(
            "proposal {id} is no longer open"
        )));
    }
    if proposal.votes.iter().any(|(c, _)| *c == s.admin) {
        return Err(ApiError::bad_input(format!(
            "{} already voted on proposal {id}",
            s.admin
        )));
    }
    let tx = s.node_tx(Some(caller.key), Action::Vote { proposal: id, yes });
    submit_and_wait(&s, tx, &format!("vote on proposal {id}")).await?;
    Ok(Json(proposal_json(&find_proposal(&s, &id)?)))
}

pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let committed = Committed(&s.store);
    let members = query::administrations(&committed).map_err(internal)?;
    let proposals = query::proposals(&committed).map_err(internal)?;
    Ok(Json(json!({
        "members": members.iter().map(|m| json!({
            "code": m.code.as_str(),
            "name": m.name,
            "voting_power": m.voting_power,
            "active": m.active,
            "node_key": m.node_key.to_string(),
            "validator_key": m.validator_key.to_string(),
        })).collect::<Vec<_>>(),
        "proposals": proposals.iter().map(proposal_json).collect::<Vec<_>>(),
    })))
}
