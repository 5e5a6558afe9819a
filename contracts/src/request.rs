//! WTO TFA Article 12 information requests between administrations: the request
//! (matter, purpose, legal basis, items, confidentiality; Art. 12.4.1), the 90-day
//! deadline from the request's block time (Art. 12.6.1 e), the answer — provide,
//! postpone or refuse with a ground of Art. 12.7.1 a–e — and breach notices
//! (Art. 12.11.1). `provide` grants the requester purpose-bound access to the named
//! documents: a grant the node honours ([`access_grants`]) and whose reads are recorded
//! with `RecordGrantedAccess` under the request's purpose.
//!
//! Must never: let anyone but the requested administration answer, answer twice with
//! provide or refuse, grant access to a document the answering administration neither
//! issued nor received, or accept a read under a grant for another purpose.

use crate::agreement::DAY_MS;
use crate::codec;
use crate::execute::{
    read_required, state_keys, ExecError, Rules, StateStore, TxEvent, TxFailure, Write,
    MAX_PURPOSE_BYTES,
};
use crate::lifecycle::FILING_ROLES;
use crate::model::{Administration, DocumentRecord};
use crate::tx::Transaction;
use crate::types::{AdminCode, DocumentId, DocumentStatus, Hash32, PublicKey, RequestId};
use crate::ContractError;
use serde::{Deserialize, Serialize};

/// Art. 12.6.1 e: respond within 90 days from the date of the request.
pub const ANSWER_DEADLINE_MS: u64 = 90 * DAY_MS;
/// Most items asked in one request.
pub const MAX_ITEMS: usize = 64;
/// Longest item, bytes.
pub const MAX_ITEM_BYTES: usize = 256;
/// Most documents provided in one answer.
pub const MAX_PROVIDED_DOCUMENTS: usize = 64;
/// Most breach notices on one request.
pub const MAX_BREACHES: usize = 64;
/// Most answers (postponements, then a final answer) on one request.
pub const MAX_ANSWERS: usize = 64;
/// Longest breach details, bytes.
pub const MAX_BREACH_BYTES: usize = 4096;
/// Most requests listed by [`requests`] for one administration.
pub const MAX_LISTED_REQUESTS: usize = 10_000;

/// What the request is about (Art. 12.4.1 a): a consignment by UCR index, or a
/// declaration on the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matter {
    Ucr {
        #[serde(with = "crate::hex32")]
        ucr_index: Hash32,
    },
    Document {
        id: DocumentId,
    },
}

/// Grounds for postponing or refusing a request, WTO TFA Art. 12.7.1 a–e.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalGround {
    A,
    B,
    C,
    D,
    E,
}

impl RefusalGround {
    pub const ALL: [RefusalGround; 5] = [
        RefusalGround::A,
        RefusalGround::B,
        RefusalGround::C,
        RefusalGround::D,
        RefusalGround::E,
    ];

    /// The letter, `a` to `e`.
    pub fn letter(&self) -> &'static str {
        match self {
            RefusalGround::A => "a",
            RefusalGround::B => "b",
            RefusalGround::C => "c",
            RefusalGround::D => "d",
            RefusalGround::E => "e",
        }
    }

    /// Parses `a`..`e`.
    pub fn parse(s: &str) -> Result<Self, ContractError> {
        Self::ALL
            .iter()
            .copied()
            .find(|g| g.letter() == s)
            .ok_or_else(|| {
                ContractError::BadInput(format!(
                    "reason code `{s}`: TFA Art. 12.7.1 grounds are a, b, c, d, e"
                ))
            })
    }

    /// The text of the ground in Art. 12.7.1.
    pub fn text(&self) -> &'static str {
        match self {
            RefusalGround::A => "it would be contrary to the public interest as reflected in the domestic law and legal system of the requested Member",
            RefusalGround::B => "its domestic law and legal system prevents the release of the information",
            RefusalGround::C => "the provision of the information would impede law enforcement or otherwise interfere with an on-going administrative or judicial investigation, prosecution or proceeding",
            RefusalGround::D => "the consent of the importer or exporter is required by domestic law and legal system that govern the collection, protection, use, disclosure, retention and disposal of confidential information or personal data and that consent is not given",
            RefusalGround::E => "the request for information is received after the expiration of the legal requirement of the requested Member for the retention of documents",
        }
    }
}

/// The requested administration's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestAnswer {
    /// Grants the requester access to these documents for the request's purpose.
    Provide { documents: Vec<DocumentId> },
    /// Not yet; the request may be answered again later.
    Postpone { reason: String },
    Refuse {
        reason_code: RefusalGround,
        reason: String,
    },
}

/// Where a request stands. `Provided` and `Refused` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    Open,
    Postponed,
    Provided,
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub answer: RequestAnswer,
    pub officer: PublicKey,
    pub height: u64,
    pub time_ms: u64,
}

/// A notice of unauthorized use or disclosure (Art. 12.11.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachNotice {
    pub details: String,
    pub officer: PublicKey,
    pub height: u64,
    pub time_ms: u64,
}

/// An information request as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRequest {
    pub id: RequestId,
    pub requester: AdminCode,
    pub to: AdminCode,
    pub matter: Matter,
    pub purpose: String,
    pub legal_basis: String,
    pub items: Vec<String>,
    pub confidentiality: String,
    pub requested_by: PublicKey,
    pub height: u64,
    pub time_ms: u64,
    /// Request block time + 90 days.
    pub deadline_ms: u64,
    pub status: RequestStatus,
    pub answers: Vec<AnswerRecord>,
    pub breaches: Vec<BreachNotice>,
}

impl InfoRequest {
    /// Open (never answered, not even postponed) and past its deadline at `at_ms`.
    pub fn overdue_at(&self, at_ms: u64) -> bool {
        self.status == RequestStatus::Open && at_ms > self.deadline_ms
    }
}

/// A request with its overdue flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub request: InfoRequest,
    pub overdue: bool,
}

/// Purpose-bound access to a document given by a `provide` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub document: DocumentId,
    /// Versions 1 to this one (the latest at grant time) may be read.
    pub up_to_version: u32,
    /// The requesting administration, which may now read.
    pub administration: AdminCode,
    pub request: RequestId,
    /// Reads must be recorded under exactly this purpose.
    pub purpose: String,
    pub granted_by: AdminCode,
    pub height: u64,
    pub time_ms: u64,
}

/// The arguments of `CreateRequest`, borrowed from the action.
pub(crate) struct NewRequest<'a> {
    pub id: &'a RequestId,
    pub to: &'a AdminCode,
    pub matter: &'a Matter,
    pub purpose: &'a str,
    pub legal_basis: &'a str,
    pub items: &'a [String],
    pub confidentiality: &'a str,
}

/// One request.
pub fn request<S: StateStore>(state: &S, id: &RequestId) -> Result<Option<InfoRequest>, ExecError> {
    match state.get(&state_keys::request(id))? {
        Some(bytes) => crate::execute::decode_state(&state_keys::request(id), &bytes).map(Some),
        None => Ok(None),
    }
}

/// Requests `admin` made or received, in id order (at most [`MAX_LISTED_REQUESTS`]).
/// `overdue` is computed at `overdue_at_ms` (the caller's notion of now, e.g. the last
/// block time); with `None` no request is flagged. Filter on the flag for `--overdue`.
pub fn requests<S: StateStore>(
    state: &S,
    admin: &AdminCode,
    overdue_at_ms: Option<u64>,
) -> Result<Vec<RequestView>, ExecError> {
    let prefix = state_keys::request_by_prefix(admin);
    let mut out = Vec::new();
    for (key, _) in state.scan_prefix(&prefix, MAX_LISTED_REQUESTS)? {
        let id: [u8; 16] = key
            .get(prefix.len()..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                ExecError::Corrupt(format!("request index key {}", hex::encode(&key)))
            })?;
        let found = request(state, &RequestId(id))?.ok_or_else(|| {
            ExecError::Corrupt(format!(
                "request index points to missing request {}",
                hex::encode(id)
            ))
        })?;
        let overdue = overdue_at_ms.is_some_and(|at| found.overdue_at(at));
        out.push(RequestView {
            request: found,
            overdue,
        });
    }
    Ok(out)
}

/// Grants that let `admin` read `document`, one per answered request, in request order.
pub fn access_grants<S: StateStore>(
    state: &S,
    document: &DocumentId,
    admin: &AdminCode,
) -> Result<Vec<AccessGrant>, ExecError> {
    state
        .scan_prefix(
            &state_keys::grant_prefix(document, admin),
            MAX_LISTED_REQUESTS,
        )?
        .iter()
        .map(|(k, v)| crate::execute::decode_state(k, v))
        .collect()
}

fn text_ok(field: &str, text: &str, max: usize) -> Result<(), ContractError> {
    if text.trim().is_empty() || text.len() > max {
        return Err(ContractError::BadInput(format!(
            "{field}: must be 1 to {max} bytes"
        )));
    }
    Ok(())
}

impl<S: StateStore> Rules<'_, '_, S> {
    pub(crate) fn create_request(
        &self,
        tx: &Transaction,
        requester: &Administration,
        new: NewRequest<'_>,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        text_ok("request purpose", new.purpose, MAX_PURPOSE_BYTES)?;
        text_ok("request legal_basis", new.legal_basis, MAX_PURPOSE_BYTES)?;
        text_ok(
            "request confidentiality",
            new.confidentiality,
            MAX_PURPOSE_BYTES,
        )?;
        if new.items.is_empty() || new.items.len() > MAX_ITEMS {
            return Err(ContractError::BadInput(format!(
                "request items: {} named; a request asks for 1 to {MAX_ITEMS}",
                new.items.len()
            ))
            .into());
        }
        for item in new.items {
            text_ok("request item", item, MAX_ITEM_BYTES)?;
        }
        let officer =
            self.acting_officer(tx, &requester.code, &FILING_ROLES, "request information")?;
        if *new.to == requester.code {
            return Err(ContractError::BadInput(format!(
                "request to: {} cannot request information from itself",
                requester.code
            ))
            .into());
        }
        let to: Administration = self.load(&state_keys::member(new.to))?.ok_or_else(|| {
            ContractError::NotFound(format!("request to: {} is not a member", new.to))
        })?;
        if !to.active {
            return Err(ContractError::Denied(format!(
                "request to: {} is not an active member",
                new.to
            ))
            .into());
        }
        let key = state_keys::request(new.id);
        if self.view.get(&key)?.is_some() {
            return Err(
                ContractError::Denied(format!("request id: {} is already in use", new.id)).into(),
            );
        }
        let request = InfoRequest {
            id: *new.id,
            requester: requester.code.clone(),
            to: new.to.clone(),
            matter: new.matter.clone(),
            purpose: new.purpose.to_string(),
            legal_basis: new.legal_basis.to_string(),
            items: new.items.to_vec(),
            confidentiality: new.confidentiality.to_string(),
            requested_by: officer.key,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
            deadline_ms: self.ctx.time_ms.saturating_add(ANSWER_DEADLINE_MS),
            status: RequestStatus::Open,
            answers: Vec::new(),
            breaches: Vec::new(),
        };
        let writes = vec![
            (key, Some(codec::encode(&request))),
            (
                state_keys::request_by(&requester.code, new.id),
                Some(Vec::new()),
            ),
            (state_keys::request_by(new.to, new.id), Some(Vec::new())),
        ];
        Ok((writes, TxEvent::RequestCreated(request)))
    }

    pub(crate) fn answer_request(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &RequestId,
        answer: &RequestAnswer,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        let key = state_keys::request(id);
        let mut request: InfoRequest = self
            .load(&key)?
            .ok_or_else(|| ContractError::NotFound(format!("request: {id} does not exist")))?;
        if request.to != signer.code {
            return Err(ContractError::Denied(format!(
                "answer: only {}, the requested administration, may answer request {id}",
                request.to
            ))
            .into());
        }
        let officer = self.acting_officer(tx, &signer.code, &FILING_ROLES, "answer a request")?;
        match request.status {
            RequestStatus::Open | RequestStatus::Postponed => {}
            RequestStatus::Provided | RequestStatus::Refused => {
                return Err(ContractError::Denied(format!(
                    "answer: request {id} is already answered"
                ))
                .into())
            }
        }
        if request.answers.len() >= MAX_ANSWERS {
            return Err(ContractError::Denied(format!(
                "answer: request {id} already has {MAX_ANSWERS} answers"
            ))
            .into());
        }
        let mut writes = Vec::new();
        match answer {
            RequestAnswer::Postpone { reason } => {
                text_ok("postpone reason", reason, MAX_PURPOSE_BYTES)?;
                request.status = RequestStatus::Postponed;
            }
            RequestAnswer::Refuse { reason, .. } => {
                text_ok("refuse reason", reason, MAX_PURPOSE_BYTES)?;
                request.status = RequestStatus::Refused;
            }
            RequestAnswer::Provide { documents } => {
                if documents.is_empty() || documents.len() > MAX_PROVIDED_DOCUMENTS {
                    return Err(ContractError::BadInput(format!(
                        "provide: {} documents named; 1 to {MAX_PROVIDED_DOCUMENTS}",
                        documents.len()
                    ))
                    .into());
                }
                let mut seen = std::collections::BTreeSet::new();
                for doc in documents {
                    if !seen.insert(doc) {
                        return Err(ContractError::BadInput(format!(
                            "provide: document {doc} named twice"
                        ))
                        .into());
                    }
                    let history = crate::lifecycle::versions(self.view, doc)?;
                    let latest: &DocumentRecord = history.last().ok_or_else(|| {
                        ContractError::NotFound(format!("provide: document {doc} does not exist"))
                    })?;
                    if latest.issuer != signer.code && !latest.recipients.contains(&signer.code) {
                        return Err(ContractError::Denied(format!(
                            "provide: {} is neither issuer nor recipient of document {doc}",
                            signer.code
                        ))
                        .into());
                    }
                    if latest.status == DocumentStatus::Erased {
                        return Err(ContractError::Denied(format!(
                            "provide: document {doc} is erased"
                        ))
                        .into());
                    }
                    let grant = AccessGrant {
                        document: *doc,
                        up_to_version: latest.version,
                        administration: request.requester.clone(),
                        request: *id,
                        purpose: request.purpose.clone(),
                        granted_by: signer.code.clone(),
                        height: self.ctx.height,
                        time_ms: self.ctx.time_ms,
                    };
                    writes.push((
                        state_keys::grant(doc, &request.requester, id),
                        Some(codec::encode(&grant)),
                    ));
                }
                request.status = RequestStatus::Provided;
            }
        }
        request.answers.push(AnswerRecord {
            answer: answer.clone(),
            officer: officer.key,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        });
        writes.push((key, Some(codec::encode(&request))));
        Ok((writes, TxEvent::RequestAnswered(request)))
    }

    pub(crate) fn report_breach(
        &self,
        tx: &Transaction,
        signer: &Administration,
        id: &RequestId,
        details: &str,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        text_ok("breach details", details, MAX_BREACH_BYTES)?;
        let key = state_keys::request(id);
        let mut request: InfoRequest = self
            .load(&key)?
            .ok_or_else(|| ContractError::NotFound(format!("request: {id} does not exist")))?;
        if request.requester != signer.code {
            return Err(ContractError::Denied(format!(
                "breach: only {}, which received the information, reports breaches of request {id}",
                request.requester
            ))
            .into());
        }
        let officer = self.acting_officer(tx, &signer.code, &FILING_ROLES, "report a breach")?;
        if request.status != RequestStatus::Provided {
            return Err(ContractError::Denied(format!(
                "breach: no information was provided under request {id}"
            ))
            .into());
        }
        if request.breaches.len() >= MAX_BREACHES {
            return Err(ContractError::Denied(format!(
                "breach: request {id} already has {MAX_BREACHES} notices"
            ))
            .into());
        }
        request.breaches.push(BreachNotice {
            details: details.to_string(),
            officer: officer.key,
            height: self.ctx.height,
            time_ms: self.ctx.time_ms,
        });
        Ok((
            vec![(key, Some(codec::encode(&request)))],
            TxEvent::BreachReported(request),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_granted_access(
        &self,
        tx: &Transaction,
        reader: &Administration,
        request: &RequestId,
        id: &DocumentId,
        version: u32,
        officer: &PublicKey,
        purpose: &str,
    ) -> Result<(Vec<Write>, TxEvent), TxFailure> {
        if let Some(tx_officer) = tx.officer {
            if tx_officer != *officer {
                return Err(ContractError::BadInput(format!(
                    "officer: transaction names {tx_officer} but the access names {officer}"
                ))
                .into());
            }
        }
        let grant: AccessGrant = self
            .load(&state_keys::grant(id, &reader.code, request))?
            .ok_or_else(|| {
                ContractError::Denied(format!(
                    "grant: request {request} gives {} no access to document {id}",
                    reader.code
                ))
            })?;
        if purpose != grant.purpose {
            return Err(ContractError::Denied(format!(
                "grant purpose: access under request {request} is for `{}` only",
                grant.purpose
            ))
            .into());
        }
        if version == 0 || version > grant.up_to_version {
            return Err(ContractError::Denied(format!(
                "grant: request {request} covers versions 1 to {} of document {id}",
                grant.up_to_version
            ))
            .into());
        }
        let record: DocumentRecord =
            read_required(self.view, &state_keys::document(id, version), || {
                format!("grant names missing document {id} v{version}")
            })?;
        if record.status == DocumentStatus::Erased {
            return Err(ContractError::Denied(format!("grant: document {id} is erased")).into());
        }
        let reader_officer = self.officer_of(officer, &reader.code)?;
        if !reader_officer.active {
            return Err(ContractError::Denied(format!("officer: {officer} is revoked")).into());
        }
        Ok(self.access_writes(id, version, &reader.code, officer, purpose, Some(*request)))
    }
}
