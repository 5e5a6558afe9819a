//! Equivocation evidence on the ledger: a member's node reports that a consensus
//! validator signed two conflicting votes in one view, and the ledger keeps one record
//! per (accused administration, view) for everyone to see (`GET /v1/evidence`).
//!
//! # Precondition: the evidence is verified before execution
//!
//! This crate does not know the consensus protocol (it must not depend on
//! `carnet-consensus`), so it treats [`EquivocationReport::evidence`] as opaque bytes,
//! exactly as it treats transaction signatures: the caller verifies them before the
//! transaction reaches [`crate::execute::execute_block`]. The node does so on admission
//! to its mempool and when it verifies a proposed block before voting for it
//! (`node/src/evidence.rs`): the bytes must decode to two conflicting votes of one view,
//! both validly signed by the validator that the `accused` administration runs, for
//! `view`. A block carrying a report whose evidence does not verify is never voted
//! for, so it cannot become final.
//!
//! # Rules
//!
//! - the signer is the node key of an active member, and the report names no officer;
//! - the accused is a member (active or not: evidence outlives membership);
//! - `view` is not 0 (genesis has no votes) and the evidence is 1 to
//!   [`MAX_EVIDENCE_BYTES`] bytes;
//! - one record per (accused, view): a second report, by anyone, is rejected as already
//!   recorded and writes nothing. Every honest node that saw the equivocation reports
//!   it; the first to be final is kept.
//!
//! Must never: write anything on a rejected report, or keep two records for one
//! (accused, view).

use crate::codec;
use crate::execute::{state_keys, ExecError, Rules, StateStore, TxEvent, TxFailure, Write};
use crate::model::Administration;
use crate::tx::Transaction;
use crate::types::{AdminCode, PublicKey};
use crate::ContractError;
use serde::{Deserialize, Serialize};

/// Largest evidence accepted, bytes; equal to `carnet_consensus::MAX_EVIDENCE_BYTES`
/// (the node checks that they agree).
pub const MAX_EVIDENCE_BYTES: usize = 1024;

/// Most records one query lists.
pub const MAX_LISTED_EQUIVOCATIONS: usize = 1000;

/// What a node signs to report an equivocating validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquivocationReport {
    /// The administration that runs the equivocating validator.
    pub accused: AdminCode,
    /// The consensus view both votes are for.
    pub view: u64,
    /// The two signed votes, in the canonical encoding of the consensus crate
    /// (`carnet_consensus::Equivocation::to_bytes`); hex in JSON.
    #[serde(with = "crate::hex32::bytes")]
    pub evidence: Vec<u8>,
}

/// A recorded report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquivocationRecord {
    pub report: EquivocationReport,
    /// The administration whose node reported it.
    pub reporter: AdminCode,
    /// The reporting node's key (the transaction's signer).
    pub signer: PublicKey,
    pub height: u64,
    pub time_ms: u64,
}

impl<S: StateStore> Rules<'_, '_, S> {
    /// `ReportEquivocation`: see the module docs.
    pub(crate) fn report_equivocation(
        &self,
        tx: &Transaction,
        signer: &Administration,
        report: &EquivocationReport,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        if tx.officer.is_some() {
            return Err(ContractError::BadInput(
                "evidence: a report is signed by the node alone and names no officer".into(),
            )
            .into());
        }
        let accused = &report.accused;
        if self.view.get(&state_keys::member(accused))?.is_none() {
            return Err(ContractError::NotFound(format!(
                "evidence: accused administration {accused} is not a member"
            ))
            .into());
        }
        if report.view == 0 {
            return Err(
                ContractError::BadInput("evidence: view 0 belongs to genesis".into()).into(),
            );
        }
        let size = report.evidence.len();
        if size == 0 || size > MAX_EVIDENCE_BYTES {
            return Err(ContractError::BadInput(format!(
                "evidence: {size} bytes, must be 1 to {MAX_EVIDENCE_BYTES}"
            ))
            .into());
        }
        let key = state_keys::equivocation(accused, report.view);
        if self.view.get(&key)?.is_some() {
            return Err(ContractError::Denied(format!(
                "evidence: equivocation of {accused} in view {} is already recorded",
                report.view
            ))
            .into());
        }
        let record = EquivocationRecord {
            report: report.clone(),
            reporter: signer.code.clone(),
            signer: tx.signer,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        };
        Ok((
            vec![(key, Some(codec::encode(&record)))],
            TxEvent::EquivocationRecorded(record),
        ))
    }
}

/// Recorded equivocations, by accused administration then view, at most `limit`
/// (capped at [`MAX_LISTED_EQUIVOCATIONS`]); only those of `accused` when named.
pub fn equivocations<S: StateStore>(
    state: &S,
    accused: Option<&AdminCode>,
    limit: usize,
) -> Result<Vec<EquivocationRecord>, ExecError> {
    let prefix = match accused {
        Some(code) => state_keys::equivocation_prefix(code),
        None => state_keys::EQUIVOCATION.to_vec(),
    };
    state
        .scan_prefix(&prefix, limit.min(MAX_LISTED_EQUIVOCATIONS))?
        .iter()
        .map(|(k, v)| crate::execute::decode_record(k, v))
        .collect()
}
