//! Equivocation evidence between the consensus engine and the ledger.
//!
//! When the engine reports that a validator signed two conflicting votes
//! (`Output::Evidence`), the driver calls [`report`]: this node signs a
//! `ReportEquivocation` transaction naming the administration that runs the validator
//! and puts it into its mempool, from where it is gossiped and proposed like any other.
//!
//! The contracts crate cannot check the evidence (it does not know consensus), so the
//! node does, in one function, [`check_report`], before a report goes anywhere near the
//! ledger: on admission of gossiped transactions ([`submit_screened`]), before this
//! node's own report is pooled, and when a proposed block is verified before voting
//! (the driver's `check_payload` calls [`check_tx`]). A report passes when its bytes
//! decode canonically to two conflicting votes of its `view`, both signed by one
//! validator of the set the node runs consensus with, under this network's namespace,
//! and that validator is run by the `accused` administration.
//!
//! Must never: admit, propose or vote for a block holding a report that fails
//! [`check_report`]; hold the mempool lock while verifying signatures.

use carnet_consensus::{Equivocation, EvidenceError, ValidatorIndex, ValidatorSet, VoteKind};
use carnet_contracts::evidence::EquivocationReport;
use carnet_contracts::{Action, AdminCode, SignedTransaction, Transaction};

use crate::mempool::AdmissionError;
use crate::node::Shared;
use crate::p2p::TxGossip;

// The ledger's bound on evidence bytes is the consensus encoding's bound.
const _: () =
    assert!(carnet_contracts::evidence::MAX_EVIDENCE_BYTES == carnet_consensus::MAX_EVIDENCE_BYTES);

/// Why a report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("equivocation evidence: {0}")]
    Evidence(#[from] EvidenceError),
    #[error("equivocation evidence is for view {evidence}, the report says view {report}")]
    ViewMismatch { report: u64, evidence: u64 },
    #[error("equivocation evidence accuses validator {0}, which no administration runs")]
    UnknownValidator(ValidatorIndex),
    #[error("equivocation evidence accuses validator {validator}, run by {runs}, but the report accuses {accused}")]
    WrongAccused {
        validator: ValidatorIndex,
        runs: String,
        accused: AdminCode,
    },
}

/// Checks a report against the validator set the node runs consensus with:
/// `validators`, `namespace`, and `admin_of` (the administration of a validator index).
/// Returns the decoded evidence.
pub fn check_report(
    namespace: &[u8],
    validators: &ValidatorSet,
    admin_of: impl Fn(ValidatorIndex) -> Option<AdminCode>,
    report: &EquivocationReport,
) -> Result<Equivocation, ReportError> {
    let evidence = Equivocation::from_bytes(&report.evidence)?;
    if evidence.view() != report.view {
        return Err(ReportError::ViewMismatch {
            report: report.view,
            evidence: evidence.view(),
        });
    }
    evidence.verify(namespace, validators)?;
    match admin_of(evidence.validator) {
        Some(code) if code == report.accused => Ok(evidence),
        runs => Err(ReportError::WrongAccused {
            validator: evidence.validator,
            runs: runs.map_or_else(|| "no administration".into(), |c| c.to_string()),
            accused: report.accused.clone(),
        }),
    }
}

/// [`check_report`] with the namespace and validator set this node currently runs
/// consensus with, for any transaction: `Ok` for every action but `ReportEquivocation`.
pub fn check_tx(shared: &Shared, tx: &Transaction) -> Result<(), ReportError> {
    match &tx.action {
        Action::ReportEquivocation(report) => check_report(
            &shared.namespace(),
            &shared.validators(),
            |i| shared.validator_admin(i),
            report,
        )
        .map(|_| ()),
        _ => Ok(()),
    }
}

/// Admits a batch as [`Shared::submit`] does (without gossiping it again), after
/// refusing every `ReportEquivocation` whose evidence fails [`check_tx`]. Results are
/// in input order. Verifies signatures: call it off the async runtime.
pub fn submit_screened(
    shared: &Shared,
    batch: Vec<TxGossip>,
) -> Vec<Result<[u8; 32], AdmissionError>> {
    let mut refused: Vec<Option<AdmissionError>> = Vec::with_capacity(batch.len());
    let mut kept = Vec::with_capacity(batch.len());
    for g in batch {
        match check_tx(shared, &g.tx.tx) {
            Ok(()) => {
                refused.push(None);
                kept.push(g);
            }
            Err(e) => {
                shared.metrics.reject("invalid_evidence");
                refused.push(Some(AdmissionError::Invalid(e.to_string())));
            }
        }
    }
    let mut admitted = shared.submit(kept, false).into_iter();
    refused
        .into_iter()
        .map(|r| match r {
            Some(e) => Err(e),
            None => admitted
                .next()
                .unwrap_or(Err(AdmissionError::Invalid("not processed".into()))),
        })
        .collect()
}

/// The `ReportEquivocation` transaction this node signs for `evidence`, after checking
/// it as every other node will.
pub fn report_tx(
    shared: &Shared,
    evidence: &Equivocation,
) -> Result<SignedTransaction, ReportError> {
    let accused = shared
        .validator_admin(evidence.validator)
        .ok_or(ReportError::UnknownValidator(evidence.validator))?;
    let report = EquivocationReport {
        accused,
        view: evidence.view(),
        evidence: evidence.to_bytes()?,
    };
    let tx = shared.node_tx(None, Action::ReportEquivocation(report));
    check_tx(shared, &tx.tx)?;
    Ok(tx)
}

/// A validator that keeps equivocating is reported at most once per this many views:
/// one record proves the fact, and a report per view would fill blocks (and, as every
/// report wakes the proposer, make the chain spin) for as long as it misbehaves.
pub const REPORT_EVERY_VIEWS: u64 = 1000;

/// Whether a report against `accused` is pending in the mempool, or the ledger holds
/// one for a view less than [`REPORT_EVERY_VIEWS`] before `view`.
fn already_reported(shared: &Shared, accused: &AdminCode, view: u64) -> bool {
    let pending = shared.mempool().equivocation_reports().iter().any(
        |(_, tx)| matches!(&tx.tx.action, Action::ReportEquivocation(r) if r.accused == *accused),
    );
    if pending {
        return true;
    }
    match carnet_contracts::execute::query::equivocations(
        &crate::ledger::Committed(&shared.store),
        Some(accused),
        carnet_contracts::evidence::MAX_LISTED_EQUIVOCATIONS,
    ) {
        Ok(records) => records
            .iter()
            .any(|r| r.report.view.saturating_add(REPORT_EVERY_VIEWS) > view),
        Err(e) => {
            tracing::warn!("reading recorded equivocations: {e}");
            false
        }
    }
}

/// The driver's answer to `Output::Evidence`: signs a report and puts it into the
/// mempool (gossiped when admitted). A refusal (full mempool, bad evidence) is logged;
/// other honest nodes that saw the equivocation report it too.
pub fn report(shared: &Shared, evidence: &Equivocation) {
    if let Some(accused) = shared.validator_admin(evidence.validator) {
        if already_reported(shared, &accused, evidence.view()) {
            return;
        }
    }
    let tx = match report_tx(shared, evidence) {
        Ok(tx) => tx,
        Err(e) => {
            shared.metrics.reject("invalid_evidence");
            tracing::error!(
                validator = evidence.validator,
                view = evidence.view(),
                "equivocation evidence from the engine does not verify: {e}"
            );
            return;
        }
    };
    let hash = hex::encode(tx.hash());
    match shared.submit_one(tx, None) {
        Some(Ok(_)) => tracing::info!(
            validator = evidence.validator,
            view = evidence.view(),
            tx = %hash,
            "equivocation report submitted to the ledger"
        ),
        Some(Err(e)) => tracing::warn!(
            validator = evidence.validator,
            view = evidence.view(),
            "equivocation report not admitted to the mempool: {e}"
        ),
        None => tracing::warn!(
            validator = evidence.validator,
            view = evidence.view(),
            "equivocation report not admitted to the mempool"
        ),
    }
}

/// Drops from the mempool every equivocation report that no longer passes
/// [`check_tx`], once per consensus namespace: when the epoch (and with it the
/// namespace and validator set) changes, reports of the previous epoch that are not yet
/// final cannot be verified any more, and a proposal carrying one would be refused by
/// every honest validator. Verifies without holding the mempool lock.
pub fn purge_stale_reports(shared: &Shared) {
    let namespace = shared.namespace();
    let pooled = {
        let mut pool = shared.mempool();
        if !pool.note_reports_namespace(&namespace) {
            return;
        }
        pool.equivocation_reports()
    };
    let stale: Vec<[u8; 32]> = pooled
        .into_iter()
        .filter(|(_, tx)| check_tx(shared, &tx.tx).is_err())
        .map(|(hash, _)| hash)
        .collect();
    if !stale.is_empty() {
        let dropped = shared.mempool().remove(&stale).len();
        tracing::info!(
            dropped,
            "equivocation reports of a previous epoch dropped from the mempool"
        );
    }
}

/// `notarize`, `nullify` or `finalize` (docs/interfaces.md).
pub fn kind_name(kind: VoteKind) -> &'static str {
    match kind {
        VoteKind::Notarize => "notarize",
        VoteKind::Nullify => "nullify",
        VoteKind::Finalize => "finalize",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carnet_consensus::{vote_message, SignedVote, View};
    use ed25519_dalek::{Signer as _, SigningKey};

    const NS: &[u8] = b"carnet-test";

    fn key(i: u16) -> SigningKey {
        SigningKey::from_bytes(&[i as u8 + 1; 32])
    }

    fn validators() -> ValidatorSet {
        ValidatorSet::new((0..4).map(|i| key(i).verifying_key()).collect()).unwrap()
    }

    fn admin_of(i: ValidatorIndex) -> Option<AdminCode> {
        ["XA", "XB", "XC", "XD"]
            .get(usize::from(i))
            .map(|c| AdminCode((*c).into()))
    }

    fn vote(signer: u16, view: View, digest: u8) -> SignedVote {
        let digest = [digest; 32];
        let message = vote_message(NS, VoteKind::Notarize, view, Some(&digest));
        SignedVote {
            kind: VoteKind::Notarize,
            view,
            digest: Some(digest),
            signer,
            signature: key(signer).sign(&message).to_bytes().to_vec(),
        }
    }

    fn report(accused: &str, view: u64, evidence: &Equivocation) -> EquivocationReport {
        EquivocationReport {
            accused: AdminCode(accused.into()),
            view,
            evidence: evidence.to_bytes().unwrap(),
        }
    }

    #[test]
    fn a_report_passes_only_with_verified_evidence_against_the_accused() {
        let set = validators();
        let evidence = Equivocation {
            validator: 3,
            first: vote(3, 9, 1),
            second: vote(3, 9, 2),
        };
        assert_eq!(
            check_report(NS, &set, admin_of, &report("XD", 9, &evidence)),
            Ok(evidence.clone())
        );
        assert!(matches!(
            check_report(NS, &set, admin_of, &report("XC", 9, &evidence)),
            Err(ReportError::WrongAccused { validator: 3, .. })
        ));
        assert_eq!(
            check_report(NS, &set, admin_of, &report("XD", 8, &evidence)),
            Err(ReportError::ViewMismatch {
                report: 8,
                evidence: 9
            })
        );
        assert!(matches!(
            check_report(
                b"other-network",
                &set,
                admin_of,
                &report("XD", 9, &evidence)
            ),
            Err(ReportError::Evidence(EvidenceError::Vote { .. }))
        ));
        assert!(matches!(
            check_report(NS, &set, |_| None, &report("XD", 9, &evidence)),
            Err(ReportError::WrongAccused { .. })
        ));
        let mut garbage = report("XD", 9, &evidence);
        garbage.evidence.truncate(10);
        assert!(matches!(
            check_report(NS, &set, admin_of, &garbage),
            Err(ReportError::Evidence(EvidenceError::Encoding(_)))
        ));
        let honest = Equivocation {
            validator: 3,
            first: vote(3, 9, 1),
            second: vote(3, 9, 1),
        };
        assert!(matches!(
            check_report(NS, &set, admin_of, &report("XD", 9, &honest)),
            Err(ReportError::Evidence(EvidenceError::NotConflicting(_)))
        ));
    }
}
