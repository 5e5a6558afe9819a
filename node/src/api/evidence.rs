//! `GET /v1/evidence[?accused=XA]`: the equivocations recorded on the ledger — which
//! administration's validator signed two conflicting votes in which view, the two votes,
//! who reported it and when. Any officer of this node's administration may list them.
//!
//! Must never show anything but committed records, nor change anything.

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use carnet_consensus::{Equivocation, SignedVote};
use carnet_contracts::evidence::EquivocationRecord;
use carnet_contracts::execute::query;
use carnet_contracts::AdminCode;
use serde_json::{json, Value};

use super::{internal, own_node, query_params, ApiError, ApiState, Caller};
use crate::evidence::kind_name;
use crate::ledger::Committed;

/// Most records one query returns (by accused, then view).
pub const MAX_EVIDENCE_RECORDS: usize = 1000;

fn vote_json(vote: &SignedVote) -> Value {
    json!({
        "kind": kind_name(vote.kind),
        "digest": vote.digest.map(hex::encode),
    })
}

/// The JSON of a record (docs/interfaces.md `<evidence>`). Evidence was verified before
/// the block was voted for; should it not decode, the votes are `null`.
fn record_json(record: &EquivocationRecord) -> Value {
    let decoded = Equivocation::from_bytes(&record.report.evidence).ok();
    json!({
        "accused": record.report.accused.as_str(),
        "view": record.report.view,
        "validator": decoded.as_ref().map(|e| e.validator),
        "first": decoded.as_ref().map(|e| vote_json(&e.first)),
        "second": decoded.as_ref().map(|e| vote_json(&e.second)),
        "reporter": record.reporter.as_str(),
        "height": record.height,
        "time_ms": record.time_ms,
        "evidence": hex::encode(&record.report.evidence),
    })
}

pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    own_node(s, &caller)?;
    let params = query_params(raw, &["accused"])?;
    let accused = params
        .get("accused")
        .map(|c| {
            AdminCode::parse(c.trim()).map_err(|e| ApiError::bad_input(format!("accused: {e}")))
        })
        .transpose()?;
    let records =
        query::equivocations(&Committed(&s.store), accused.as_ref(), MAX_EVIDENCE_RECORDS)
            .map_err(internal)?;
    Ok(Json(json!({
        "evidence": records.iter().map(record_json).collect::<Vec<_>>(),
    })))
}
