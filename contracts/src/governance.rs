//! Membership governance: proposals to admit or remove an administration, votes by the
//! active members, and the change taking effect at a stated later height.
//!
//! A proposal passes when the voting power of the members voting yes reaches two thirds
//! of the voting power of all active members (counted at each vote); it is rejected once
//! that can no longer happen. A passed proposal takes effect at the start of block
//! `pass height + effective_delay_blocks` ([`apply_due`], run by `execute_block` before the
//! block's transactions); the block's outcome then reports `validator_set_changed`, and
//! the validator set for the following blocks is [`validator_set`].
//!
//! Must never: count a vote twice or a vote of an inactive member, apply a change before
//! its height, apply more than [`MAX_DUE_PER_BLOCK`] changes in one block, remove the
//! last active member, or admit a code or node key already in use.

use crate::codec;
use crate::execute::{
    read_record, read_required, state_keys, BlockContext, BlockView, ExecError, Rules, StateStore,
    TxEvent, TxFailure, Write, MAX_ADMINISTRATIONS,
};
use crate::model::{Administration, Officer};
use crate::tx::Transaction;
use crate::types::{AdminCode, ProposalId, PublicKey, Role};
use crate::ContractError;
use serde::{Deserialize, Serialize};

/// Longest delay between passing and taking effect, in blocks.
pub const MAX_EFFECTIVE_DELAY_BLOCKS: u64 = 1_000_000;
/// Most membership changes applied at the start of one block; the rest follow.
pub const MAX_DUE_PER_BLOCK: usize = 16;
/// Most officers an admission may register for the admitted administration.
pub const MAX_INITIAL_OFFICERS: usize = 16;
/// Largest voting power of one member.
pub const MAX_VOTING_POWER: u64 = 1_000_000;
/// Most proposals listed by [`proposals`].
pub const MAX_LISTED_PROPOSALS: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalKind {
    AddMember(Administration),
    RemoveMember(AdminCode),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalStatus {
    Open,
    /// Passed; takes effect at the start of block `effective_height`.
    Passed {
        effective_height: u64,
    },
    Rejected,
    Applied {
        height: u64,
    },
    /// Passed, but could not be applied at its height (e.g. the code got taken).
    Failed {
        height: u64,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub kind: ProposalKind,
    pub proposed_by: AdminCode,
    pub effective_delay_blocks: u64,
    /// One vote per member, in voting order; the proposer's implicit yes first.
    pub votes: Vec<(AdminCode, bool)>,
    pub status: ProposalStatus,
    pub height: u64,
    /// For an admission: the admitted administration's first officers (at least one
    /// `admin`), registered when it takes effect, so that it can act on the ledger.
    #[serde(default)]
    pub officers: Vec<Officer>,
}

/// What [`apply_due`] changed.
#[derive(Debug, Default)]
pub(crate) struct MembershipChanges {
    pub added: Vec<AdminCode>,
    pub removed: Vec<AdminCode>,
}

/// One proposal.
pub fn proposal<S: StateStore>(state: &S, id: &ProposalId) -> Result<Option<Proposal>, ExecError> {
    match state.get(&state_keys::proposal(id))? {
        Some(bytes) => crate::execute::decode_state(&state_keys::proposal(id), &bytes).map(Some),
        None => Ok(None),
    }
}

/// Every proposal, in id order (at most [`MAX_LISTED_PROPOSALS`]).
pub fn proposals<S: StateStore>(state: &S) -> Result<Vec<Proposal>, ExecError> {
    state
        .scan_prefix(state_keys::PROPOSAL, MAX_LISTED_PROPOSALS)?
        .iter()
        .map(|(k, v)| crate::execute::decode_state(k, v))
        .collect()
}

/// The validators: (validator key, voting power) of every active member, by code.
pub fn validator_set<S: StateStore>(state: &S) -> Result<Vec<(PublicKey, u64)>, ExecError> {
    Ok(crate::execute::query::administrations(state)?
        .into_iter()
        .filter(|a| a.active)
        .map(|a| (a.validator_key, a.voting_power))
        .collect())
}

fn active_members<S: StateStore>(
    view: &BlockView<'_, S>,
) -> Result<Vec<Administration>, ExecError> {
    let mut out = Vec::new();
    for (key, value) in view.scan_prefix(state_keys::MEMBER_CODE, MAX_ADMINISTRATIONS)? {
        let admin: Administration = crate::execute::decode_state(&key, &value)?;
        if admin.active {
            out.push(admin);
        }
    }
    Ok(out)
}

/// Applies the passed proposals whose height has come (at most [`MAX_DUE_PER_BLOCK`]).
pub(crate) fn apply_due<S: StateStore>(
    view: &mut BlockView<'_, S>,
    ctx: &BlockContext,
) -> Result<MembershipChanges, ExecError> {
    let mut changes = MembershipChanges::default();
    let due = view.scan_prefix(state_keys::DUE, MAX_DUE_PER_BLOCK)?;
    for (key, _) in due {
        let suffix = key.get(state_keys::DUE.len()..).unwrap_or_default();
        let corrupt = || ExecError::Corrupt(format!("due key {}", hex::encode(&key)));
        let height: [u8; 8] = suffix
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        if u64::from_be_bytes(height) > ctx.height {
            break;
        }
        let id: [u8; 16] = suffix
            .get(8..24)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let id = ProposalId(id);
        let proposal_key = state_keys::proposal(&id);
        let mut proposal: Proposal = read_required(&*view, &proposal_key, || {
            format!("due entry names missing proposal {id}")
        })?;
        let mut writes: Vec<Write> = vec![(key.clone(), None)];
        let outcome: Result<(), String> = match &proposal.kind {
            ProposalKind::AddMember(admin) => {
                let code_taken = view.get(&state_keys::member(&admin.code))?.is_some();
                let node_taken = view
                    .get(&state_keys::member_by_node(&admin.node_key))?
                    .is_some();
                let mut officer_taken = None;
                for officer in &proposal.officers {
                    if view.get(&state_keys::officer(&officer.key))?.is_some() {
                        officer_taken = Some(officer.key);
                        break;
                    }
                }
                if code_taken {
                    Err(format!("{} is already a member", admin.code))
                } else if node_taken {
                    Err(format!("node key {} is already in use", admin.node_key))
                } else if let Some(key) = officer_taken {
                    Err(format!("officer key {key} is already registered"))
                } else {
                    for officer in &proposal.officers {
                        writes.push((
                            state_keys::officer(&officer.key),
                            Some(codec::encode(officer)),
                        ));
                    }
                    let mut admitted = admin.clone();
                    admitted.active = true;
                    writes.push((
                        state_keys::member(&admin.code),
                        Some(codec::encode(&admitted)),
                    ));
                    writes.push((
                        state_keys::member_by_node(&admin.node_key),
                        Some(admin.code.as_str().as_bytes().to_vec()),
                    ));
                    changes.added.push(admin.code.clone());
                    Ok(())
                }
            }
            ProposalKind::RemoveMember(code) => {
                let member: Option<Administration> =
                    read_record(&*view, &state_keys::member(code))?;
                let active = active_members(view)?;
                match member {
                    Some(m) if m.active && active.len() > 1 => {
                        let mut removed = m;
                        removed.active = false;
                        writes.push((state_keys::member(code), Some(codec::encode(&removed))));
                        changes.removed.push(code.clone());
                        Ok(())
                    }
                    Some(m) if m.active => Err(format!("{code} is the last active member")),
                    _ => Err(format!("{code} is not an active member")),
                }
            }
        };
        proposal.status = match outcome {
            Ok(()) => ProposalStatus::Applied { height: ctx.height },
            Err(reason) => ProposalStatus::Failed {
                height: ctx.height,
                reason,
            },
        };
        writes.push((proposal_key, Some(codec::encode(&proposal))));
        view.apply(writes);
    }
    Ok(changes)
}

impl<S: StateStore> Rules<'_, '_, S> {
    /// Tallies the votes; a passed proposal gets its due entry.
    fn tally(&self, proposal: &mut Proposal) -> Result<Vec<Write>, TxFailure> {
        let members = active_members(self.view)?;
        let power = |code: &AdminCode| {
            members
                .iter()
                .find(|m| m.code == *code)
                .map_or(0u128, |m| u128::from(m.voting_power))
        };
        let total: u128 = members.iter().map(|m| u128::from(m.voting_power)).sum();
        let yes: u128 = proposal
            .votes
            .iter()
            .filter(|(_, y)| *y)
            .map(|(c, _)| power(c))
            .sum();
        let no: u128 = proposal
            .votes
            .iter()
            .filter(|(_, y)| !*y)
            .map(|(c, _)| power(c))
            .sum();
        let mut writes = Vec::new();
        if yes * 3 >= total * 2 {
            let effective_height = self
                .ctx
                .height
                .saturating_add(proposal.effective_delay_blocks);
            proposal.status = ProposalStatus::Passed { effective_height };
            writes.push((
                state_keys::due(effective_height, &proposal.id),
                Some(Vec::new()),
            ));
        } else if (total.saturating_sub(no)) * 3 < total * 2 {
            proposal.status = ProposalStatus::Rejected;
        }
        Ok(writes)
    }

    pub(crate) fn propose(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &ProposalId,
        kind: ProposalKind,
        effective_delay_blocks: u64,
        officers: &[Officer],
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        self.acting_officer(
            tx,
            &signer.code,
            &[Role::Admin],
            "propose a membership change",
        )?;
        if effective_delay_blocks == 0 || effective_delay_blocks > MAX_EFFECTIVE_DELAY_BLOCKS {
            return Err(ContractError::BadInput(format!(
                "effective_delay_blocks: {effective_delay_blocks}; must be 1 to {MAX_EFFECTIVE_DELAY_BLOCKS}"
            ))
            .into());
        }
        match &kind {
            ProposalKind::AddMember(admin) => {
                AdminCode::parse(admin.code.as_str())?;
                if admin.name.trim().is_empty() || admin.name.len() > 256 {
                    return Err(ContractError::BadInput(
                        "member name: must be 1 to 256 bytes".into(),
                    )
                    .into());
                }
                if admin.voting_power == 0 || admin.voting_power > MAX_VOTING_POWER {
                    return Err(ContractError::BadInput(format!(
                        "member voting_power: {}; must be 1 to {MAX_VOTING_POWER}",
                        admin.voting_power
                    ))
                    .into());
                }
                if self.view.get(&state_keys::member(&admin.code))?.is_some() {
                    return Err(ContractError::Denied(format!(
                        "member: {} already exists; codes are never reused",
                        admin.code
                    ))
                    .into());
                }
                if self
                    .view
                    .get(&state_keys::member_by_node(&admin.node_key))?
                    .is_some()
                {
                    return Err(ContractError::Denied(format!(
                        "member: node key {} is already in use",
                        admin.node_key
                    ))
                    .into());
                }
                let count = self
                    .view
                    .scan_prefix(state_keys::MEMBER_CODE, MAX_ADMINISTRATIONS)?
                    .len();
                if count >= MAX_ADMINISTRATIONS {
                    return Err(ContractError::Denied(format!(
                        "member: the network already has {MAX_ADMINISTRATIONS} administrations"
                    ))
                    .into());
                }
                self.check_initial_officers(&admin.code, officers)?;
            }
            ProposalKind::RemoveMember(_) if !officers.is_empty() => {
                return Err(ContractError::BadInput(
                    "officers: only an admission registers officers".into(),
                )
                .into());
            }
            ProposalKind::RemoveMember(code) => {
                let member: Administration =
                    self.load(&state_keys::member(code))?.ok_or_else(|| {
                        ContractError::NotFound(format!("member: {code} is not a member"))
                    })?;
                if !member.active {
                    return Err(ContractError::Denied(format!(
                        "member: {code} is not an active member"
                    ))
                    .into());
                }
            }
        }
        let key = state_keys::proposal(id);
        if self.view.get(&key)?.is_some() {
            return Err(
                ContractError::Denied(format!("proposal id: {id} is already in use")).into(),
            );
        }
        let mut proposal = Proposal {
            id: *id,
            kind,
            proposed_by: signer.code.clone(),
            effective_delay_blocks,
            votes: vec![(signer.code.clone(), true)],
            status: ProposalStatus::Open,
            height: self.ctx.height,
            officers: officers.to_vec(),
        };
        let mut writes = self.tally(&mut proposal)?;
        writes.push((key, Some(codec::encode(&proposal))));
        Ok((writes, TxEvent::ProposalCreated(proposal)))
    }

    /// The first officers of an administration to admit: 1 to
    /// [`MAX_INITIAL_OFFICERS`], all of `code`, active, named, with distinct roles, at
    /// least one `admin`, keys distinct and not registered yet.
    fn check_initial_officers(
        &self,
        code: &AdminCode,
        officers: &[Officer],
    ) -> Result<(), TxFailure> {
        let bad = |m: String| -> TxFailure { ContractError::BadInput(m).into() };
        if officers.is_empty() || officers.len() > MAX_INITIAL_OFFICERS {
            return Err(bad(format!(
                "officers: an admission names 1 to {MAX_INITIAL_OFFICERS} first officers of {code} (at least one admin), got {}",
                officers.len()
            )));
        }
        if !officers.iter().any(|o| o.roles.contains(&Role::Admin)) {
            return Err(bad(format!(
                "officers: none has the admin role; {code} could not manage its officers"
            )));
        }
        let mut keys = std::collections::BTreeSet::new();
        for (i, officer) in officers.iter().enumerate() {
            if &officer.administration != code || !officer.active {
                return Err(bad(format!(
                    "officers[{i}]: must be an active officer of {code}"
                )));
            }
            if officer.name.trim().is_empty() || officer.name.len() > 256 {
                return Err(bad(format!("officers[{i}].name: must be 1 to 256 bytes")));
            }
            let mut roles = officer.roles.clone();
            roles.sort();
            roles.dedup();
            if roles.is_empty() || roles.len() != officer.roles.len() {
                return Err(bad(format!(
                    "officers[{i}].roles: at least one, none twice"
                )));
            }
            if !keys.insert(officer.key) {
                return Err(bad(format!(
                    "officers[{i}].key: {} named twice",
                    officer.key
                )));
            }
            if self.view.get(&state_keys::officer(&officer.key))?.is_some() {
                return Err(ContractError::Denied(format!(
                    "officers[{i}].key: {} is already registered; keys are never reused",
                    officer.key
                ))
                .into());
            }
        }
        Ok(())
    }

    pub(crate) fn vote(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &ProposalId,
        yes: bool,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let key = state_keys::proposal(id);
        let mut proposal: Proposal = self
            .load(&key)?
            .ok_or_else(|| ContractError::NotFound(format!("proposal: {id} does not exist")))?;
        self.acting_officer(tx, &signer.code, &[Role::Admin], "vote")?;
        if proposal.status != ProposalStatus::Open {
            return Err(
                ContractError::Denied(format!("vote: proposal {id} is no longer open")).into(),
            );
        }
        if proposal.votes.iter().any(|(c, _)| *c == signer.code) {
            return Err(ContractError::Denied(format!(
                "vote: {} already voted on proposal {id}",
                signer.code
            ))
            .into());
        }
        proposal.votes.push((signer.code.clone(), yes));
        let mut writes = self.tally(&mut proposal)?;
        writes.push((key, Some(codec::encode(&proposal))));
        Ok((writes, TxEvent::VoteCast(proposal)))
    }
}
