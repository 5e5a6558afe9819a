//! `carnet ucr match UCR`: the export declaration, import declarations and certificates
//! of one consignment, with the shared elements whose values differ.
//!
//! Mismatches are findings, not failures: the command succeeds (exit 0) whatever it finds.
//! Must never: send a UCR that is empty or has control characters.

use super::check_ucr;
use crate::api::UcrMatch;
use crate::client::NodeClient;
use crate::error::CliError;

/// `carnet ucr match UCR`. Every document the node reads to compare is an access
/// record on the ledger (purpose `UCR match`).
pub fn match_ucr(client: &NodeClient, ucr: &str) -> Result<UcrMatch, CliError> {
    client.ucr_match(&check_ucr(ucr)?)
}
