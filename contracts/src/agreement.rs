//! Agreements: a WCO GNC **Utility Block** as data — who exchanges (parties), which
//! documents (kinds), which data elements each kind may and must carry (the data
//! cluster, WCO Data Model style names such as `ExporterName`, `CommodityCode`,
//! `OriginCountry`, `OriginCriterion`, `UCR`), when (trigger), on what legal basis, for
//! what purpose, how long the data may be kept (retention) and how it travels (push,
//! pull or both).
//!
//! The rules: `ProposeAgreement` by an `admin` officer of a party (the proposer's
//! administration accepts implicitly), `AcceptAgreement` by an `admin` officer of each
//! other party; the agreement is **active** once every party accepted.
//! `SubmitUnderAgreement` files a document under an active agreement (see
//! [`crate::execute`]).
//!
//! The ledger never sees a payload (it is encrypted before it reaches the ledger), so the
//! data cluster is enforced by the submitting node with [`check_payload`] before it
//! encrypts; the ledger enforces parties, kinds and activity.
//!
//! Must never: read a clock or do IO; accept an agreement whose data cluster is
//! ambiguous (an element both required and not allowed, a kind twice); pick an agreement
//! silently when several cover a submission ([`resolve_agreement`] names them instead).

use crate::codec;
use crate::envelope::{WrappedKeys, ENCAPSULATED_KEY_BYTES, WRAPPED_SECRET_BYTES};
use crate::execute::{state_keys, ExecError, StateStore};
use crate::types::{AdminCode, AgreementId, DocumentKind};
use crate::ContractError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Most agreements a network holds (bound of the scans in the queries).
pub const MAX_AGREEMENTS: usize = 4096;
/// Most data elements in one cluster.
pub const MAX_CLUSTER_ELEMENTS: usize = 256;
/// Longest data element name, bytes.
pub const MAX_ELEMENT_NAME_BYTES: usize = 64;
/// Longest title, legal basis or purpose, bytes.
pub const MAX_AGREEMENT_TEXT_BYTES: usize = 1024;
/// Longest retention period: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// When the exchange happens (GNC "trigger").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    OnIssue,
    PreArrival,
    Exit,
    Entry,
}

/// How documents travel: pushed to recipients, pulled on demand, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    Push,
    Pull,
    Both,
}

/// The data elements one document kind may carry under an agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCluster {
    pub kind: DocumentKind,
    /// Every element the payload may carry (WCO Data Model style names).
    pub allowed: Vec<String>,
    /// Elements the payload must carry; each must also be in `allowed`.
    #[serde(default)]
    pub required: Vec<String>,
}

/// A GNC Utility Block as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub id: AgreementId,
    pub title: String,
    pub parties: Vec<AdminCode>,
    /// One cluster per covered document kind.
    pub clusters: Vec<DataCluster>,
    pub trigger: Trigger,
    pub legal_basis: String,
    pub purpose: String,
    /// Documents filed under the agreement are erased this many days after the block
    /// time of their first version; `None` keeps them until erased by a transaction.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// A retention period in seconds instead of days, for short-lived data such as
    /// pre-arrival risk data and for testnets; at most one of the two is set.
    #[serde(default)]
    pub retention_seconds: Option<u64>,
    pub delivery: Delivery,
    /// The agreement's UCR key (a 32-byte secret drawn by the proposing node), wrapped
    /// with HPKE to each party's encryption key: exactly one wrap per party. UCR index
    /// keys of documents filed under the agreement are keyed hashes under it, so only
    /// the parties can compute or match them. Absent from an agreement file; the
    /// proposing node fills it in.
    #[serde(default)]
    pub ucr_key_wraps: Vec<UcrKeyWrap>,
}

/// The agreement's UCR key wrapped to one party's encryption key
/// ([`crate::envelope::wrap_secret`] with [`crate::envelope::agreement_key_info`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UcrKeyWrap {
    pub party: AdminCode,
    pub wrapped: WrappedKeys,
}

/// Proposed (waiting for acceptances) or active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgreementStatus {
    Proposed,
    Active,
}

/// An agreement as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementRecord {
    pub agreement: AgreementId,
    pub terms: Agreement,
    pub proposed_by: AdminCode,
    /// Parties that accepted, in code order (the proposer's included).
    pub accepted: Vec<AdminCode>,
    pub status: AgreementStatus,
    /// Height of the proposal.
    pub height: u64,
    /// Height at which the last party accepted.
    pub activated_at: Option<u64>,
}

fn element_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ELEMENT_NAME_BYTES
        && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn text_ok(field: &str, text: &str) -> Result<(), ContractError> {
    if text.trim().is_empty() || text.len() > MAX_AGREEMENT_TEXT_BYTES {
        return Err(ContractError::BadInput(format!(
            "agreement {field}: must be 1 to {MAX_AGREEMENT_TEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Agreement {
    /// Checks the agreement on its own (not against the ledger): texts present, two or
    /// more distinct parties, every kind once, element names WCO style
    /// (`[A-Z][A-Za-z0-9]*`, at most 64 bytes), each required element allowed,
    /// retention 1 to 36 500 days when set.
    pub fn validate(&self) -> Result<(), ContractError> {
        text_ok("title", &self.title)?;
        text_ok("legal_basis", &self.legal_basis)?;
        text_ok("purpose", &self.purpose)?;
        if self.parties.len() < 2 || self.parties.len() > crate::execute::MAX_ADMINISTRATIONS {
            return Err(ContractError::BadInput(format!(
                "agreement parties: {} named; an agreement binds 2 to {}",
                self.parties.len(),
                crate::execute::MAX_ADMINISTRATIONS
            )));
        }
        let mut seen = BTreeSet::new();
        for party in &self.parties {
            AdminCode::parse(party.as_str())?;
            if !seen.insert(party) {
                return Err(ContractError::BadInput(format!(
                    "agreement parties: {party} named twice"
                )));
            }
        }
        if self.clusters.is_empty() {
            return Err(ContractError::BadInput(
                "agreement clusters: no document kind covered".into(),
            ));
        }
        let mut kinds = BTreeSet::new();
        for cluster in &self.clusters {
            if !kinds.insert(cluster.kind) {
                return Err(ContractError::BadInput(format!(
                    "agreement clusters: kind {} appears twice",
                    cluster.kind
                )));
            }
            if cluster.allowed.is_empty() || cluster.allowed.len() > MAX_CLUSTER_ELEMENTS {
                return Err(ContractError::BadInput(format!(
                    "data cluster of {}: 1 to {MAX_CLUSTER_ELEMENTS} allowed elements",
                    cluster.kind
                )));
            }
            let mut allowed = BTreeSet::new();
            for name in &cluster.allowed {
                if !element_name_ok(name) {
                    return Err(ContractError::BadInput(format!(
                        "data cluster of {}: element `{name}` is not a WCO-style name ([A-Z][A-Za-z0-9]*, at most {MAX_ELEMENT_NAME_BYTES} bytes)",
                        cluster.kind
                    )));
                }
                if !allowed.insert(name.as_str()) {
                    return Err(ContractError::BadInput(format!(
                        "data cluster of {}: element `{name}` allowed twice",
                        cluster.kind
                    )));
                }
            }
            let mut required = BTreeSet::new();
            for name in &cluster.required {
                if !allowed.contains(name.as_str()) {
                    return Err(ContractError::BadInput(format!(
                        "data cluster of {}: required element `{name}` is not among the allowed elements",
                        cluster.kind
                    )));
                }
                if !required.insert(name.as_str()) {
                    return Err(ContractError::BadInput(format!(
                        "data cluster of {}: element `{name}` required twice",
                        cluster.kind
                    )));
                }
            }
        }
        if self.ucr_key_wraps.len() != self.parties.len() {
            return Err(ContractError::BadInput(format!(
                "agreement ucr_key_wraps: {} wraps for {} parties; the UCR key must be wrapped to every party exactly once",
                self.ucr_key_wraps.len(),
                self.parties.len()
            )));
        }
        let mut wrapped_for = BTreeSet::new();
        for wrap in &self.ucr_key_wraps {
            if !self.parties.contains(&wrap.party) {
                return Err(ContractError::BadInput(format!(
                    "agreement ucr_key_wraps: {} is not a party",
                    wrap.party
                )));
            }
            if !wrapped_for.insert(&wrap.party) {
                return Err(ContractError::BadInput(format!(
                    "agreement ucr_key_wraps: {} has two wraps",
                    wrap.party
                )));
            }
            if wrap.wrapped.enc.len() != ENCAPSULATED_KEY_BYTES
                || wrap.wrapped.ciphertext.len() != WRAPPED_SECRET_BYTES
            {
                return Err(ContractError::BadInput(format!(
                    "agreement ucr_key_wraps: the wrap for {} is not an HPKE-wrapped 32-byte key",
                    wrap.party
                )));
            }
        }
        if let Some(seconds) = self.retention_seconds {
            if self.retention_days.is_some() {
                return Err(ContractError::BadInput(
                    "agreement retention: give retention_days or retention_seconds, not both"
                        .into(),
                ));
            }
            if seconds == 0 || seconds > u64::from(MAX_RETENTION_DAYS) * 86_400 {
                return Err(ContractError::BadInput(format!(
                    "agreement retention_seconds: {seconds}; must be 1 to {} (or absent)",
                    u64::from(MAX_RETENTION_DAYS) * 86_400
                )));
            }
        }
        if let Some(days) = self.retention_days {
            if days == 0 || days > MAX_RETENTION_DAYS {
                return Err(ContractError::BadInput(format!(
                    "agreement retention_days: {days}; must be 1 to {MAX_RETENTION_DAYS} (or absent)"
                )));
            }
        }
        Ok(())
    }

    /// The data cluster of `kind`, if the agreement covers it.
    pub fn cluster(&self, kind: DocumentKind) -> Option<&DataCluster> {
        self.clusters.iter().find(|c| c.kind == kind)
    }

    /// The retention period in milliseconds, if any.
    pub fn retention_ms(&self) -> Option<u64> {
        match (self.retention_days, self.retention_seconds) {
            (Some(days), _) => Some(u64::from(days) * DAY_MS),
            (None, Some(seconds)) => Some(seconds.saturating_mul(1000)),
            (None, None) => None,
        }
    }

    /// The wrap of the UCR key addressed to `party`.
    pub fn ucr_key_wrap(&self, party: &AdminCode) -> Option<&WrappedKeys> {
        self.ucr_key_wraps
            .iter()
            .find(|w| &w.party == party)
            .map(|w| &w.wrapped)
    }

    /// Wraps `ucr_key` to every party (replacing any wraps): `encryption_key` gives a
    /// party's X25519 public key, `seed` a fresh CSPRNG seed for each wrap. Errors when a
    /// party has no key.
    pub fn wrap_ucr_key(
        &mut self,
        ucr_key: &[u8; 32],
        encryption_key: impl Fn(&AdminCode) -> Option<[u8; 32]>,
        mut seed: impl FnMut() -> [u8; 32],
    ) -> Result<(), ContractError> {
        let info = crate::envelope::agreement_key_info(&self.id);
        let mut wraps = Vec::with_capacity(self.parties.len());
        for party in &self.parties {
            let public = encryption_key(party).ok_or_else(|| {
                ContractError::NotFound(format!(
                    "agreement parties: {party} is not a member (no encryption key)"
                ))
            })?;
            wraps.push(UcrKeyWrap {
                party: party.clone(),
                wrapped: crate::envelope::wrap_secret(ucr_key, &public, seed(), &info)?,
            });
        }
        self.ucr_key_wraps = wraps;
        Ok(())
    }

    /// Whether `admin` is a party.
    pub fn has_party(&self, admin: &AdminCode) -> bool {
        self.parties.contains(admin)
    }
}

/// Everything wrong with a payload under an agreement: each offending element is named.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PayloadViolations {
    /// The agreement does not cover the kind at all.
    pub kind_not_covered: Option<DocumentKind>,
    /// The payload is not a JSON object.
    pub not_an_object: bool,
    /// Top-level keys outside the data cluster, in key order.
    pub outside_cluster: Vec<String>,
    /// Required elements missing, in cluster order.
    pub missing_required: Vec<String>,
}

impl fmt::Display for PayloadViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(kind) = self.kind_not_covered {
            parts.push(format!("kind {kind} is not covered by the agreement"));
        }
        if self.not_an_object {
            parts.push("payload is not a JSON object".to_string());
        }
        if !self.outside_cluster.is_empty() {
            parts.push(format!(
                "elements outside the data cluster: {}",
                self.outside_cluster.join(", ")
            ));
        }
        if !self.missing_required.is_empty() {
            parts.push(format!(
                "required elements missing: {}",
                self.missing_required.join(", ")
            ));
        }
        write!(f, "data cluster: {}", parts.join("; "))
    }
}

impl std::error::Error for PayloadViolations {}

impl From<PayloadViolations> for ContractError {
    fn from(v: PayloadViolations) -> Self {
        ContractError::BadInput(v.to_string())
    }
}

/// Checks a plaintext payload against the agreement's data cluster for `kind`.
///
/// The data elements are the **top-level keys** of the JSON object: nested values are the
/// content of an element and are not checked (an element such as `GoodsItem` may hold an
/// array of objects). A payload that is not an object, a kind the agreement does not
/// cover, any key outside the cluster and any required element missing are all reported
/// together. Run by the submitting node before encryption: the ledger never sees the
/// payload.
pub fn check_payload(
    agreement: &Agreement,
    kind: DocumentKind,
    payload: &serde_json::Value,
) -> Result<(), PayloadViolations> {
    let mut violations = PayloadViolations::default();
    let Some(cluster) = agreement.cluster(kind) else {
        violations.kind_not_covered = Some(kind);
        return Err(violations);
    };
    let Some(object) = payload.as_object() else {
        violations.not_an_object = true;
        violations.missing_required = cluster.required.clone();
        return Err(violations);
    };
    let allowed: BTreeSet<&str> = cluster.allowed.iter().map(String::as_str).collect();
    let mut outside: Vec<String> = object
        .keys()
        .filter(|k| !allowed.contains(k.as_str()))
        .cloned()
        .collect();
    outside.sort();
    violations.outside_cluster = outside;
    violations.missing_required = cluster
        .required
        .iter()
        .filter(|r| !object.contains_key(r.as_str()))
        .cloned()
        .collect();
    if violations.outside_cluster.is_empty() && violations.missing_required.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// One agreement as recorded, if any.
pub fn agreement<S: StateStore>(
    state: &S,
    id: &AgreementId,
) -> Result<Option<AgreementRecord>, ExecError> {
    match state.get(&state_keys::agreement(id))? {
        Some(bytes) => crate::execute::decode_state(&state_keys::agreement(id), &bytes).map(Some),
        None => Ok(None),
    }
}

/// Every agreement, proposed or active, in id order (at most [`MAX_AGREEMENTS`]).
pub fn agreements<S: StateStore>(state: &S) -> Result<Vec<AgreementRecord>, ExecError> {
    state
        .scan_prefix(state_keys::AGREEMENT, MAX_AGREEMENTS)?
        .iter()
        .map(|(k, v)| crate::execute::decode_state(k, v))
        .collect()
}

/// Active agreements that cover `kind` and bind the issuer and every recipient, in id
/// order.
pub fn covering_agreements<S: StateStore>(
    state: &S,
    issuer: &AdminCode,
    recipients: &[AdminCode],
    kind: DocumentKind,
) -> Result<Vec<Agreement>, ExecError> {
    Ok(
        covering_among(&agreements(state)?, issuer, recipients, kind)
            .into_iter()
            .cloned()
            .collect(),
    )
}

/// [`covering_agreements`] among agreement records already read (e.g. cached by the
/// caller for one committed height).
pub fn covering_among<'a>(
    records: &'a [AgreementRecord],
    issuer: &AdminCode,
    recipients: &[AdminCode],
    kind: DocumentKind,
) -> Vec<&'a Agreement> {
    records
        .iter()
        .filter(|r| r.status == AgreementStatus::Active)
        .map(|r| &r.terms)
        .filter(|a| {
            a.has_party(issuer)
                && recipients.iter().all(|r| a.has_party(r))
                && a.cluster(kind).is_some()
        })
        .collect()
}

/// Why no single agreement could be picked for a submission.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ResolveError {
    #[error(transparent)]
    State(#[from] ExecError),
    /// No active agreement covers the submission; `issuer_agreements` lists the active
    /// agreements the issuer is party to, as hints.
    #[error("agreement: no active agreement covers {kind} from {issuer} to {recipients}; active agreements of {issuer}: {hints}", recipients = show_codes(.recipients), hints = show_ids(.issuer_agreements))]
    None {
        issuer: AdminCode,
        recipients: Vec<AdminCode>,
        kind: DocumentKind,
        issuer_agreements: Vec<AgreementId>,
    },
    /// More than one covers it: the caller must name one.
    #[error("agreement: several active agreements cover {kind}: {}; name one", show_ids(.candidates))]
    Several {
        kind: DocumentKind,
        candidates: Vec<AgreementId>,
    },
}

fn show_codes(codes: &[AdminCode]) -> String {
    codes
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_ids(ids: &[AgreementId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one active agreement covering a submission (used when the caller names none).
pub fn resolve_agreement<S: StateStore>(
    state: &S,
    issuer: &AdminCode,
    recipients: &[AdminCode],
    kind: DocumentKind,
) -> Result<Agreement, ResolveError> {
    resolve_among(&agreements(state)?, issuer, recipients, kind).cloned()
}

/// [`resolve_agreement`] among agreement records already read; borrows the one it picks
/// (an agreement with its data clusters is large: the API resolves one per document).
pub fn resolve_among<'a>(
    records: &'a [AgreementRecord],
    issuer: &AdminCode,
    recipients: &[AdminCode],
    kind: DocumentKind,
) -> Result<&'a Agreement, ResolveError> {
    let mut covering = covering_among(records, issuer, recipients, kind);
    match covering.len() {
        1 => Ok(covering.remove(0)),
        0 => {
            let hints = records
                .iter()
                .filter(|r| r.status == AgreementStatus::Active && r.terms.has_party(issuer))
                .map(|r| r.agreement)
                .collect();
            Err(ResolveError::None {
                issuer: issuer.clone(),
                recipients: recipients.to_vec(),
                kind,
                issuer_agreements: hints,
            })
        }
        _ => Err(ResolveError::Several {
            kind,
            candidates: covering.iter().map(|a| a.id).collect(),
        }),
    }
}

/// Canonical encoding of an agreement record (for the rules).
pub(crate) fn encode_record(record: &AgreementRecord) -> Vec<u8> {
    codec::encode(record)
}

use crate::execute::{Rules, TxEvent, TxFailure, Write};
use crate::model::Administration;
use crate::tx::{DocumentSubmission, Transaction};
use crate::types::Role;

impl<S: StateStore> Rules<'_, '_, S> {
    pub(crate) fn propose_agreement(
        &self,
        tx: &Transaction,
        signer: &Administration,
        terms: &Agreement,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        terms.validate()?;
        if !terms.has_party(&signer.code) {
            return Err(ContractError::Denied(format!(
                "agreement: {} proposes agreement {} but is not one of its parties",
                signer.code, terms.id
            ))
            .into());
        }
        self.acting_officer(tx, &signer.code, &[Role::Admin], "propose an agreement")?;
        for party in &terms.parties {
            let member: Option<Administration> = self.load(&state_keys::member(party))?;
            match member {
                None => {
                    return Err(ContractError::NotFound(format!(
                        "agreement parties: {party} is not a member"
                    ))
                    .into())
                }
                Some(m) if !m.active => {
                    return Err(ContractError::Denied(format!(
                        "agreement parties: {party} is not an active member"
                    ))
                    .into())
                }
                Some(_) => {}
            }
        }
        let key = state_keys::agreement(&terms.id);
        if self.view.get(&key)?.is_some() {
            return Err(ContractError::Denied(format!(
                "agreement id: {} is already in use",
                terms.id
            ))
            .into());
        }
        let record = AgreementRecord {
            agreement: terms.id,
            terms: terms.clone(),
            proposed_by: signer.code.clone(),
            accepted: vec![signer.code.clone()],
            status: AgreementStatus::Proposed,
            height: self.ctx.height,
            activated_at: None,
        };
        Ok((
            vec![(key, Some(encode_record(&record)))],
            TxEvent::AgreementProposed(record),
        ))
    }

    pub(crate) fn accept_agreement(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &AgreementId,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let key = state_keys::agreement(id);
        let mut record: AgreementRecord = self
            .load(&key)?
            .ok_or_else(|| ContractError::NotFound(format!("agreement: {id} does not exist")))?;
        if !record.terms.has_party(&signer.code) {
            return Err(ContractError::Denied(format!(
                "agreement: {} is not a party to agreement {id}",
                signer.code
            ))
            .into());
        }
        self.acting_officer(tx, &signer.code, &[Role::Admin], "accept an agreement")?;
        if record.accepted.contains(&signer.code) {
            return Err(ContractError::Denied(format!(
                "agreement: {} already accepted agreement {id}",
                signer.code
            ))
            .into());
        }
        record.accepted.push(signer.code.clone());
        record.accepted.sort();
        if record
            .terms
            .parties
            .iter()
            .all(|p| record.accepted.contains(p))
        {
            record.status = AgreementStatus::Active;
            record.activated_at = Some(self.ctx.height);
        }
        Ok((
            vec![(key, Some(encode_record(&record)))],
            TxEvent::AgreementAccepted(record),
        ))
    }

    pub(crate) fn submit_under_agreement(
        &self,
        tx: &Transaction,
        issuer: &Administration,
        id: &AgreementId,
        doc: &DocumentSubmission,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let (mut writes, event) = self.submit_document(tx, issuer, doc)?;
        let record = self
            .view
            .cached::<AgreementRecord>(&state_keys::agreement(id))?
            .ok_or_else(|| ContractError::NotFound(format!("agreement: {id} does not exist")))?;
        if record.status != AgreementStatus::Active {
            let waiting: Vec<&str> = record
                .terms
                .parties
                .iter()
                .filter(|p| !record.accepted.contains(p))
                .map(|p| p.as_str())
                .collect();
            return Err(ContractError::Denied(format!(
                "agreement: {id} is not active; waiting for acceptance by {}",
                waiting.join(", ")
            ))
            .into());
        }
        if !record.terms.has_party(&issuer.code) {
            return Err(ContractError::Denied(format!(
                "agreement: issuer {} is not a party to agreement {id}",
                issuer.code
            ))
            .into());
        }
        for recipient in &doc.recipients {
            if !record.terms.has_party(recipient) {
                return Err(ContractError::Denied(format!(
                    "agreement: recipient {recipient} is not a party to agreement {id}"
                ))
                .into());
            }
        }
        if record.terms.cluster(doc.kind).is_none() {
            return Err(ContractError::Denied(format!(
                "agreement: kind {} is not covered by agreement {id}",
                doc.kind
            ))
            .into());
        }
        let expires_at_ms = record
            .terms
            .retention_ms()
            .map(|period_ms| self.ctx.time_ms.saturating_add(period_ms));
        let meta = crate::lifecycle::DocumentMeta {
            agreement: Some(*id),
            expires_at_ms,
            cancellation: None,
        };
        writes.push((state_keys::doc_meta(&doc.id), Some(codec::encode(&meta))));
        if let Some(at) = expires_at_ms {
            writes.push((state_keys::expiry(at, &doc.id), Some(Vec::new())));
        }
        Ok((writes, event))
    }
}
