//! `carnet evidence list [--accused XX]`: the equivocations recorded on the ledger —
//! which administration's validator signed two conflicting consensus votes, in which
//! view, and who reported it (`GET /v1/evidence`).
//!
//! Must never: ask the node with a malformed administration code (checked first).

use super::check_admin_code;
use crate::client::{encode_query_value, NodeClient};
use crate::error::CliError;
use crate::output::{format_time, render_table};
use serde::{Deserialize, Serialize};

/// One of the two conflicting votes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceVote {
    /// `notarize`, `nullify` or `finalize`.
    pub kind: String,
    /// The block digest voted for (hex); none for `nullify`.
    #[serde(default)]
    pub digest: Option<String>,
}

/// A recorded equivocation, as `GET /v1/evidence` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// The administration that runs the equivocating validator.
    pub accused: String,
    pub view: u64,
    /// The validator's index in the consensus validator set.
    #[serde(default)]
    pub validator: Option<u16>,
    #[serde(default)]
    pub first: Option<EvidenceVote>,
    #[serde(default)]
    pub second: Option<EvidenceVote>,
    /// The administration whose node reported it.
    pub reporter: String,
    pub height: u64,
    pub time_ms: u64,
    /// The two signed votes, canonical bytes (hex).
    pub evidence: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceList {
    pub evidence: Vec<EvidenceRecord>,
}

/// `carnet evidence list`: every recorded equivocation (of `accused` only when named),
/// by accused then view.
pub fn list(client: &NodeClient, accused: Option<&str>) -> Result<Vec<EvidenceRecord>, CliError> {
    let path = match accused {
        Some(code) => format!(
            "/v1/evidence?accused={}",
            encode_query_value(&check_admin_code(code)?)
        ),
        None => "/v1/evidence".to_string(),
    };
    let list: EvidenceList = client.read("GET", &path, Vec::new())?;
    Ok(list.evidence)
}

fn vote_cell(vote: Option<&EvidenceVote>) -> String {
    match vote {
        None => "-".into(),
        Some(v) => match &v.digest {
            Some(d) => format!("{} {}", v.kind, d.get(..16).unwrap_or(d)),
            None => v.kind.clone(),
        },
    }
}

/// The table for people: one line per record.
pub fn render(records: &[EvidenceRecord]) -> String {
    if records.is_empty() {
        return "no equivocation recorded\n".to_string();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.accused.clone(),
                r.view.to_string(),
                vote_cell(r.first.as_ref()),
                vote_cell(r.second.as_ref()),
                r.reporter.clone(),
                r.height.to_string(),
                format_time(r.time_ms),
            ]
        })
        .collect();
    render_table(
        &[
            "ACCUSED",
            "VIEW",
            "FIRST VOTE",
            "SECOND VOTE",
            "REPORTER",
            "HEIGHT",
            "TIME",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_malformed_accused_code_reaches_no_node() {
        // Port 9 (discard): a request would fail as unavailable (5), not bad input (2).
        let client = NodeClient::new(
            "http://127.0.0.1:9",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        assert_eq!(list(&client, Some("xc")).unwrap_err().exit_code(), 2);
        assert_eq!(list(&client, Some("XCD")).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn records_decode_from_the_api_and_render_as_a_table() {
        let body = json!({"evidence": [{
            "accused": "XD", "view": 12, "validator": 3,
            "first": {"kind": "notarize", "digest": "ab".repeat(32)},
            "second": {"kind": "notarize", "digest": "cd".repeat(32)},
            "reporter": "XA", "height": 40, "time_ms": 1_700_000_000_000u64,
            "evidence": "00ff",
        }]});
        let list: EvidenceList = serde_json::from_value(body).unwrap();
        let table = render(&list.evidence);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        for part in ["ACCUSED", "VIEW", "REPORTER"] {
            assert!(lines[0].contains(part), "{table}");
        }
        for part in [
            "XD",
            "12",
            "notarize abababab",
            "notarize cdcdcdcd",
            "XA",
            "40",
        ] {
            assert!(lines[1].contains(part), "{part} in {table}");
        }
        assert_eq!(render(&[]), "no equivocation recorded\n");
    }
}
