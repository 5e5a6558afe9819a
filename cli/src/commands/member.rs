//! `carnet member ...`: membership governance. An `admin` proposes to admit or remove an
//! administration, the members' admins vote; two thirds of the voting power passes a
//! proposal, which takes effect a stated number of blocks later (the validator set
//! follows).
//!
//! Must never: send a member file that is not an administration record as in genesis, or
//! a vote other than yes or no.

use super::{check_admin_code, check_ledger_id, read_json_object_file};
use crate::api::{Membership, NewProposal, Proposal};
use crate::client::NodeClient;
use crate::error::CliError;
use carnet_contracts::governance::MAX_EFFECTIVE_DELAY_BLOCKS;
use carnet_contracts::PublicKey;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// The shape of a member file. Only deserialized, to check the shape: the file's JSON is
/// what is sent, so most fields are not read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MemberFile {
    code: String,
    name: String,
    node_key: PublicKey,
    validator_key: PublicKey,
    /// X25519 public key, hex.
    encryption_key: String,
    voting_power: u64,
    #[serde(default)]
    active: Option<bool>,
    /// The administration's first officers, registered when the admission takes effect
    /// (at least one with the `admin` role): `[{"key","name","roles"}]`.
    officers: Vec<FirstOfficer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FirstOfficer {
    key: PublicKey,
    name: String,
    roles: Vec<String>,
}

/// Reads a member file: an administration as in `genesis.json` (`code`, `name`,
/// `node_key`, `validator_key`, `encryption_key`, `voting_power`; `active` may be left
/// out) with its first officers (`officers`, at least one `admin`), who can act for it
/// once it is admitted.
pub fn read_member_file(path: &Path) -> Result<Value, CliError> {
    let text = read_json_object_file(path, "member file")?;
    let at = |e: String| CliError::bad_input(format!("member file {}: {e}", path.display()));
    let member: MemberFile = serde_json::from_str(&text)
        .map_err(|e| at(format!("not an administration as in genesis.json: {e}")))?;
    check_admin_code(&member.code).map_err(|e| at(format!("code: {}", e.message)))?;
    match hex::decode(member.encryption_key.trim()) {
        Ok(bytes) if bytes.len() == 32 => {}
        _ => return Err(at("encryption_key: not 32 bytes of hex".to_string())),
    }
    serde_json::from_str(&text).map_err(|e| at(e.to_string()))
}

/// Checks `--effective-delay-blocks`.
pub fn check_delay(delay_blocks: Option<u64>) -> Result<Option<u64>, CliError> {
    match delay_blocks {
        Some(d) if d == 0 || d > MAX_EFFECTIVE_DELAY_BLOCKS => Err(CliError::bad_input(format!(
            "--effective-delay-blocks must be 1 to {MAX_EFFECTIVE_DELAY_BLOCKS}"
        ))),
        other => Ok(other),
    }
}

/// `carnet member propose-add --file MEMBER.json [--effective-delay-blocks N]`.
pub fn propose_add(
    client: &NodeClient,
    file: &Path,
    delay_blocks: Option<u64>,
) -> Result<Proposal, CliError> {
    let proposal = NewProposal {
        add: Some(read_member_file(file)?),
        remove: None,
        effective_delay_blocks: check_delay(delay_blocks)?,
    };
    client.propose_membership(&proposal)
}

/// `carnet member propose-remove CODE [--effective-delay-blocks N]`.
pub fn propose_remove(
    client: &NodeClient,
    code: &str,
    delay_blocks: Option<u64>,
) -> Result<Proposal, CliError> {
    let proposal = NewProposal {
        add: None,
        remove: Some(check_admin_code(code)?),
        effective_delay_blocks: check_delay(delay_blocks)?,
    };
    client.propose_membership(&proposal)
}

/// `carnet member vote ID yes|no`.
pub fn vote(client: &NodeClient, id: &str, yes: bool) -> Result<Proposal, CliError> {
    client.vote(&check_ledger_id("proposal id", id)?, yes)
}

/// `carnet member list`: members and proposals.
pub fn list(client: &NodeClient) -> Result<Membership, CliError> {
    client.members()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::temp_dir;

    #[test]
    fn a_member_file_is_an_administration_as_in_genesis() {
        let dir = temp_dir("member");
        let good = serde_json::json!({
            "code": "XD", "name": "Katanga",
            "node_key": "11".repeat(32), "validator_key": "22".repeat(32),
            "encryption_key": "33".repeat(32), "voting_power": 1, "active": true,
            "officers": [{"key": "44".repeat(32), "name": "XD admin", "roles": ["admin"]}]
        });
        let path = dir.join("XD.json");
        std::fs::write(&path, good.to_string()).unwrap();
        assert_eq!(read_member_file(&path).unwrap(), good);
        let mut no_key = good.clone();
        no_key.as_object_mut().unwrap().remove("validator_key");
        std::fs::write(&path, no_key.to_string()).unwrap();
        let e = read_member_file(&path).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("validator_key"), "{}", e.message);
        // Without first officers the admitted administration could not act.
        let mut no_officers = good.clone();
        no_officers.as_object_mut().unwrap().remove("officers");
        std::fs::write(&path, no_officers.to_string()).unwrap();
        let e = read_member_file(&path).unwrap_err();
        assert!(e.message.contains("officers"), "{}", e.message);
        let mut bad_code = good;
        bad_code["code"] = "Katanga".into();
        std::fs::write(&path, bad_code.to_string()).unwrap();
        assert!(read_member_file(&path)
            .unwrap_err()
            .message
            .contains("Katanga"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn delays_are_bounded() {
        assert_eq!(check_delay(None).unwrap(), None);
        assert_eq!(check_delay(Some(10)).unwrap(), Some(10));
        assert_eq!(check_delay(Some(0)).unwrap_err().exit_code(), 2);
        assert_eq!(
            check_delay(Some(MAX_EFFECTIVE_DELAY_BLOCKS + 1))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
