//! Officers and roles: an administration's `admin` officer registers and revokes the
//! administration's own officers; and the read audit by officer.
//!
//! Must never: let an administration manage another's officers, reuse a key (a revoked
//! key stays revoked), let an admin revoke itself (the administration could lock itself
//! out), or delete an officer record (audit needs it).

use crate::codec;
use crate::execute::{
    state_keys, ExecError, Rules, StateStore, TxEvent, TxFailure, Write, MAX_GENESIS_OFFICERS,
};
use crate::model::{AccessRecord, Administration, Officer};
use crate::tx::Transaction;
use crate::types::{AdminCode, DocumentId, PublicKey, Role};
use crate::ContractError;

/// Longest officer name, bytes.
pub const MAX_OFFICER_NAME_BYTES: usize = 256;

/// The kebab-case name of a role, as on the command line.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Officer => "officer",
        Role::Supervisor => "supervisor",
        Role::Auditor => "auditor",
        Role::Admin => "admin",
    }
}

/// Officers registered to `admin` (active and revoked), in key order. Scans at most
/// `MAX_GENESIS_OFFICERS` officer records.
pub fn officers_of<S: StateStore>(state: &S, admin: &AdminCode) -> Result<Vec<Officer>, ExecError> {
    let mut out = Vec::new();
    for (key, value) in state.scan_prefix(state_keys::OFFICER, MAX_GENESIS_OFFICERS)? {
        let officer: Officer = crate::execute::decode_state(&key, &value)?;
        if officer.administration == *admin {
            out.push(officer);
        }
    }
    Ok(out)
}

/// Reads recorded on behalf of one officer, oldest first, at most `limit`.
pub fn access_log_by_officer<S: StateStore>(
    state: &S,
    officer: &PublicKey,
    limit: usize,
) -> Result<Vec<AccessRecord>, ExecError> {
    let prefix = state_keys::access_by_officer_prefix(officer);
    let mut out = Vec::new();
    for (key, value) in state.scan_prefix(&prefix, limit)? {
        let corrupt = || ExecError::Corrupt(format!("access index key {}", hex::encode(&key)));
        let suffix = key.get(prefix.len()..).ok_or_else(corrupt)?;
        let height: [u8; 8] = suffix
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let position: [u8; 4] = suffix
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let id: [u8; 16] = value.as_slice().try_into().map_err(|_| corrupt())?;
        let access_key = state_keys::access(
            &DocumentId(id),
            u64::from_be_bytes(height),
            u32::from_be_bytes(position),
        );
        let bytes = state.get(&access_key)?.ok_or_else(corrupt)?;
        out.push(crate::execute::decode_state(&access_key, &bytes)?);
    }
    Ok(out)
}

impl<S: StateStore> Rules<'_, '_, S> {
    pub(crate) fn add_officer(
        &self,
        tx: &Transaction,
        signer: &Administration,
        key: &PublicKey,
        name: &str,
        roles: &[Role],
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        self.acting_officer(tx, &signer.code, &[Role::Admin], "manage officers")?;
        if name.trim().is_empty() || name.len() > MAX_OFFICER_NAME_BYTES {
            return Err(ContractError::BadInput(format!(
                "officer name: must be 1 to {MAX_OFFICER_NAME_BYTES} bytes"
            ))
            .into());
        }
        if roles.is_empty() {
            return Err(ContractError::BadInput("officer roles: none named".into()).into());
        }
        let mut sorted = roles.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != roles.len() {
            return Err(ContractError::BadInput("officer roles: a role named twice".into()).into());
        }
        let officer_key = state_keys::officer(key);
        if let Some(existing) = self.load::<Officer>(&officer_key)? {
            return Err(ContractError::Denied(format!(
                "officer: {key} is already registered to {}{}",
                existing.administration,
                if existing.active {
                    ""
                } else {
                    " (revoked; keys are never reused)"
                }
            ))
            .into());
        }
        let officer = Officer {
            key: *key,
            administration: signer.code.clone(),
            name: name.to_string(),
            roles: roles.to_vec(),
            active: true,
        };
        Ok((
            vec![(officer_key, Some(codec::encode(&officer)))],
            TxEvent::OfficerAdded(officer),
        ))
    }

    pub(crate) fn revoke_officer(
        &self,
        tx: &Transaction,
        signer: &Administration,
        key: &PublicKey,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let admin = self.acting_officer(tx, &signer.code, &[Role::Admin], "manage officers")?;
        let officer_key = state_keys::officer(key);
        let mut officer: Officer = self
            .load(&officer_key)?
            .ok_or_else(|| ContractError::NotFound(format!("officer: {key} is not registered")))?;
        if officer.administration != signer.code {
            return Err(ContractError::Denied(format!(
                "officer: {key} is registered to {}; {} manages only its own officers",
                officer.administration, signer.code
            ))
            .into());
        }
        if !officer.active {
            return Err(ContractError::Denied(format!("officer: {key} is already revoked")).into());
        }
        if admin.key == *key {
            return Err(ContractError::Denied(format!(
                "officer: {key} cannot revoke itself; another admin must"
            ))
            .into());
        }
        officer.active = false;
        Ok((
            vec![(officer_key, Some(codec::encode(&officer)))],
            TxEvent::OfficerRevoked(officer),
        ))
    }
}
