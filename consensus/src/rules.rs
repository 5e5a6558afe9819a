//! The per-view voting rules of Simplex as pure functions over a validator's
//! [`SafetyRecord`]. The engine consults them before signing anything and the model
//! checker (`model.rs`) explores them exhaustively; keep them free of any other state.

use crate::types::{Digest, SafetyRecord};

/// Paper, "Voting": a validator notarizes at most one block per iteration, and only
/// before it has timed out (nullified) in that iteration.
pub fn may_notarize(record: &SafetyRecord) -> bool {
    record.notarized.is_none() && !record.nullified && record.finalized.is_none()
}

/// Paper, "Timeout": a validator that times out sends `nullify` unless it already sent
/// `finalize` for this iteration (the two are mutually exclusive, which is what makes a
/// finalization and a nullification of one view impossible together).
pub fn may_nullify(record: &SafetyRecord) -> bool {
    record.finalized.is_none()
}

/// Paper, "Finalize": on seeing a notarization for the iteration, a validator that has
/// not timed out sends `finalize` for the notarized block, once.
pub fn may_finalize(record: &SafetyRecord, _notarized: &Digest) -> bool {
    !record.nullified && record.finalized.is_none()
}

/// Two votes of one validator in one view conflict when they are two different
/// notarizes, two different finalizes, or a finalize and a nullify.
pub fn record_is_consistent(record: &SafetyRecord) -> bool {
    !(record.nullified && record.finalized.is_some())
}
