//! `carnet audit (--doc ID | --officer KEY)`: the reads of a document, or by an officer,
//! that nodes recorded on the ledger.
//!
//! Must never: ask the node with a malformed id or key (they are checked first).

use super::{check_id, check_officer_key};
use crate::api::{Access, AuditSubject};
use crate::client::NodeClient;
use crate::error::CliError;

/// Checks the subject of an audit: a document id or an officer key.
pub fn subject(document: Option<&str>, officer: Option<&str>) -> Result<AuditSubject, CliError> {
    match (document, officer) {
        (Some(id), None) => Ok(AuditSubject::Document(check_id(id)?)),
        (None, Some(key)) => Ok(AuditSubject::Officer(check_officer_key(key)?)),
        _ => Err(CliError::bad_input(
            "name exactly one of --doc ID and --officer KEY",
        )),
    }
}

/// `carnet audit`: the access records, oldest first as the node lists them.
pub fn audit(client: &NodeClient, subject: &AuditSubject) -> Result<Vec<Access>, CliError> {
    client.audit(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_well_formed_subject() {
        assert_eq!(
            subject(Some(&"AB".repeat(16)), None).unwrap(),
            AuditSubject::Document("ab".repeat(16))
        );
        assert_eq!(
            subject(None, Some(&"CD".repeat(32))).unwrap(),
            AuditSubject::Officer("cd".repeat(32))
        );
        assert_eq!(subject(None, None).unwrap_err().exit_code(), 2);
        assert_eq!(
            subject(Some(&"ab".repeat(16)), Some(&"cd".repeat(32)))
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(subject(None, Some("cd")).unwrap_err().exit_code(), 2);
    }
}
