//! `carnet officer ...`: an administration's `admin` registers and revokes its own
//! officers; anyone lists them.
//!
//! A revoked officer's signed requests fail (401) from the next block on. Must never:
//! send a malformed key, an empty name or an unknown role.

use super::{check_admin_code, check_officer_key, check_text};
use crate::api::{NewOfficer, Officer};
use crate::client::NodeClient;
use crate::error::CliError;
use carnet_contracts::officers::MAX_OFFICER_NAME_BYTES;
use carnet_contracts::Role;

/// The roles an officer can hold, as the API spells them.
pub const ROLES: [&str; 4] = ["officer", "supervisor", "auditor", "admin"];

/// Checks a role name against [`ROLES`].
pub fn parse_role(role: &str) -> Result<String, CliError> {
    let role = role.trim();
    serde_json::from_value::<Role>(serde_json::Value::String(role.to_string()))
        .map(|_| role.to_string())
        .map_err(|_| {
            CliError::bad_input(format!("role `{role}` is not one of {}", ROLES.join(", ")))
        })
}

/// Checks a registration: a 64-hex ed25519 key, a name, one or more roles.
pub fn new_officer(key: &str, name: &str, roles: &[String]) -> Result<NewOfficer, CliError> {
    let key = check_officer_key(key)?;
    let name = check_text("--name", "who the officer is", name, MAX_OFFICER_NAME_BYTES)?;
    let mut checked: Vec<String> = Vec::new();
    for role in roles {
        let role = parse_role(role)?;
        if !checked.contains(&role) {
            checked.push(role);
        }
    }
    if checked.is_empty() {
        return Err(CliError::bad_input(format!(
            "--roles names no role (one or more of {})",
            ROLES.join(", ")
        )));
    }
    Ok(NewOfficer {
        key,
        name,
        roles: checked,
    })
}

/// `carnet officer add --key PUB --name NAME --roles officer,auditor`.
pub fn add(
    client: &NodeClient,
    key: &str,
    name: &str,
    roles: &[String],
) -> Result<Officer, CliError> {
    client.add_officer(&new_officer(key, name, roles)?)
}

/// `carnet officer revoke KEY`.
pub fn revoke(client: &NodeClient, key: &str) -> Result<Officer, CliError> {
    client.revoke_officer(&check_officer_key(key)?)
}

/// `carnet officer list [--administration XA]` (default: your administration).
pub fn list(client: &NodeClient, administration: Option<&str>) -> Result<Vec<Officer>, CliError> {
    let administration = administration.map(check_admin_code).transpose()?;
    client.officers(administration.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_needs_a_key_a_name_and_known_roles() {
        let key = "AB".repeat(32);
        let roles = vec!["officer".to_string(), "auditor".into(), "officer".into()];
        let officer = new_officer(&key, " Ada Mensah ", &roles).unwrap();
        assert_eq!(officer.key, "ab".repeat(32));
        assert_eq!(officer.name, "Ada Mensah");
        assert_eq!(officer.roles, vec!["officer", "auditor"]);
        assert_eq!(new_officer("ab", "n", &roles).unwrap_err().exit_code(), 2);
        assert_eq!(new_officer(&key, " ", &roles).unwrap_err().exit_code(), 2);
        let e = new_officer(&key, "n", &["customs-god".to_string()]).unwrap_err();
        assert!(e.message.contains("customs-god"), "{}", e.message);
        assert_eq!(new_officer(&key, "n", &[]).unwrap_err().exit_code(), 2);
        for role in ROLES {
            assert_eq!(parse_role(role).unwrap(), role);
        }
    }
}
