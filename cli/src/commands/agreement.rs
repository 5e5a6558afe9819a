//! `carnet agreement ...`: proposing, accepting and reading agreements (GNC Utility
//! Blocks).
//!
//! An agreement file is checked locally for its shape (the fields the API names, known
//! kinds, triggers, delivery modes and administration codes) so that a typo is named
//! before any node is asked; the node checks the rest (distinct parties, data-cluster
//! rules) and answers 400 naming the rule. Must never: send anything but the file's exact
//! text.

use super::{check_admin_code, check_ledger_id, contract_message, read_json_object_file};
use crate::api::{Agreement, AgreementFiled};
use crate::client::NodeClient;
use crate::error::CliError;
use carnet_contracts::agreement::{Delivery, Trigger};
use carnet_contracts::DocumentKind;
use serde::Deserialize;
use std::path::Path;

/// The shape of an agreement file (`testnet/agreements/*.json`). Only deserialized, to
/// check the shape: the file's text itself is what is sent, so most fields are not read.
#[derive(Deserialize)]
#[allow(dead_code)]
struct AgreementFile {
    #[serde(default)]
    id: Option<String>,
    title: String,
    parties: Vec<String>,
    clusters: Vec<ClusterFile>,
    trigger: Trigger,
    legal_basis: String,
    purpose: String,
    #[serde(default)]
    retention_days: Option<u32>,
    delivery: Delivery,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ClusterFile {
    kind: String,
    allowed: Vec<String>,
    #[serde(default)]
    required: Vec<String>,
}

/// Reads and checks an agreement file; returns its exact text.
pub fn read_agreement_file(path: &Path) -> Result<String, CliError> {
    let text = read_json_object_file(path, "agreement file")?;
    let file: AgreementFile = serde_json::from_str(&text).map_err(|e| {
        CliError::bad_input(format!(
            "agreement file {} does not follow the agreement format: {e}",
            path.display()
        ))
    })?;
    if let Some(id) = &file.id {
        check_ledger_id("agreement id", id)?;
    }
    for party in &file.parties {
        check_admin_code(party).map_err(|e| {
            CliError::bad_input(format!("agreement file {}: parties: {e}", path.display()))
        })?;
    }
    for cluster in &file.clusters {
        DocumentKind::parse(&cluster.kind).map_err(|e| {
            CliError::bad_input(format!(
                "agreement file {}: clusters: {}",
                path.display(),
                contract_message(&e)
            ))
        })?;
    }
    Ok(text)
}

/// `carnet agreement propose --file UB.json`: puts the agreement on the ledger; the
/// proposer's administration accepts it by proposing.
pub fn propose(client: &NodeClient, file: &Path) -> Result<AgreementFiled, CliError> {
    let text = read_agreement_file(file)?;
    client.propose_agreement(&text)
}

/// `carnet agreement accept ID`: your administration accepts; active once every party has.
pub fn accept(client: &NodeClient, id: &str) -> Result<AgreementFiled, CliError> {
    client.accept_agreement(&check_ledger_id("agreement id", id)?)
}

/// `carnet agreement show ID`.
pub fn show(client: &NodeClient, id: &str) -> Result<Agreement, CliError> {
    client.agreement(&check_ledger_id("agreement id", id)?)
}

/// `carnet agreement list`: every agreement on the ledger.
pub fn list(client: &NodeClient) -> Result<Vec<Agreement>, CliError> {
    client.agreements()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::temp_dir;

    const EXPORT_IMPORT: &str = r#"{
  "title": "Your export is my entry",
  "parties": ["XA", "XB"],
  "clusters": [
    {"kind": "export-declaration", "allowed": ["UCR", "CommodityCode"], "required": ["UCR"]},
    {"kind": "import-declaration", "allowed": ["UCR", "CommodityCode"]}
  ],
  "trigger": "exit",
  "legal_basis": "XA-XB mutual assistance agreement, Art. 4",
  "purpose": "risk management at entry",
  "retention_days": 1825,
  "delivery": "push"
}
"#;

    #[test]
    fn a_well_formed_file_is_sent_byte_for_byte() {
        let dir = temp_dir("agreement");
        let path = dir.join("ub.json");
        std::fs::write(&path, EXPORT_IMPORT).unwrap();
        assert_eq!(read_agreement_file(&path).unwrap(), EXPORT_IMPORT);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn typos_are_named_before_any_node_is_asked() {
        let dir = temp_dir("agreement-bad");
        let cases = [
            (
                EXPORT_IMPORT.replace("\"exit\"", "\"departure\""),
                "departure",
            ),
            (EXPORT_IMPORT.replace("\"push\"", "\"fax\""), "fax"),
            (EXPORT_IMPORT.replace("\"XB\"", "\"xb\""), "xb"),
            (
                EXPORT_IMPORT.replace("import-declaration", "import-decl"),
                "import-decl",
            ),
            (EXPORT_IMPORT.replace("\"title\"", "\"name\""), "title"),
            (
                EXPORT_IMPORT.replace("{\n  \"title\"", "{\n  \"id\": \"12\",\n  \"title\""),
                "agreement id",
            ),
        ];
        for (i, (text, named)) in cases.iter().enumerate() {
            let path = dir.join(format!("{i}.json"));
            std::fs::write(&path, text).unwrap();
            let e = read_agreement_file(&path).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{i}");
            assert!(e.message.contains(named), "{i}: {}", e.message);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
