//! The customs-contracts part of the node API (docs/interfaces.md, "Customs contracts
//! (issue 4)"): agreements, document versions, UCR matching and pre-filling, delivery
//! acknowledgements, TFA Article 12 requests, officers, membership and the read audit.
//!
//! The records mirror the documented JSON field for field; fields the contract marks as
//! optional are `Option` or default to empty. Each call goes through [`NodeClient`], so
//! it is signed and its refusals map to exit codes like every other. Writes use
//! [`NodeClient::call`] (never retried: the node waits for finality and a retry could
//! file twice); reads use [`NodeClient::read`] (503 "not ready" retried for a while).
//!
//! Must never: change a body the officer gave in a file (agreement files are sent byte
//! for byte), or retry a write.

use crate::client::{check_body_size, encode_body, encode_query_value, Document, NodeClient};
use crate::error::CliError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The data elements one document kind may and must carry under an agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCluster {
    pub kind: String,
    pub allowed: Vec<String>,
    #[serde(default)]
    pub required: Vec<String>,
}

/// `<agreement>`: a GNC Utility Block and where it stands on the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub id: String,
    pub title: String,
    pub parties: Vec<String>,
    pub clusters: Vec<DataCluster>,
    /// `on-issue`, `pre-arrival`, `exit`, `entry`.
    pub trigger: String,
    pub legal_basis: String,
    pub purpose: String,
    /// `None`: kept until erased by a transaction.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// `push`, `pull`, `both`.
    pub delivery: String,
    /// `proposed` or `active`.
    pub status: String,
    pub proposed_by: String,
    #[serde(default)]
    pub accepted: Vec<String>,
    #[serde(default)]
    pub pending: Vec<String>,
    /// Height of the proposal.
    pub height: u64,
    /// Height at which the last party accepted.
    #[serde(default)]
    pub activated_at: Option<u64>,
}

/// Answer of `POST /v1/agreements` and `POST /v1/agreements/{id}/accept`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementFiled {
    pub agreement: Agreement,
    /// Height of the block holding the proposal or acceptance.
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementList {
    pub agreements: Vec<Agreement>,
}

/// Body of `POST /v1/documents` with the agreement named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubmissionUnderAgreement<'a> {
    #[serde(flatten)]
    pub submission: &'a crate::client::Submission,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
}

/// Answer of `amend` and `cancel`: the version the transaction made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFiled {
    pub id: String,
    pub version: u32,
    pub height: u64,
    /// `active` after an amendment, `cancelled` after a cancellation.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
}

/// One version in a document's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentVersion {
    pub version: u32,
    pub status: String,
    pub height: u64,
    pub time_ms: u64,
    pub commitment: String,
    pub ciphertext_hash: String,
    pub submitted_by: String,
}

/// Why and by whom a document was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub reason: String,
    pub height: u64,
    /// The cancelling officer's key.
    pub officer: String,
}

/// Answer of `GET /v1/documents/{id}/history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentHistory {
    pub id: String,
    pub kind: String,
    pub issuer: String,
    #[serde(default)]
    pub agreement: Option<String>,
    pub versions: Vec<DocumentVersion>,
    #[serde(default)]
    pub cancellation: Option<Cancellation>,
}

/// Body of `POST /v1/documents/{id}/decrypt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptRequest {
    pub purpose: String,
    /// Default: the latest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Read under the access grant of this provided TFA request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// A shared element whose value differs between an export and an import declaration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub element: String,
    pub export_id: String,
    pub export_value: Value,
    pub import_id: String,
    pub import_value: Value,
}

/// Answer of `GET /v1/ucr-match?ucr=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UcrMatch {
    pub ucr: String,
    #[serde(default)]
    pub exports: Vec<Document>,
    #[serde(default)]
    pub imports: Vec<Document>,
    #[serde(default)]
    pub certificates: Vec<Document>,
    #[serde(default)]
    pub others: Vec<Document>,
    #[serde(default)]
    pub mismatches: Vec<Mismatch>,
    /// Export or import declarations of the UCR this administration cannot read, so not
    /// compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

/// Body of `POST /v1/documents/{id}/prefill`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefillRequest {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// Answer of `POST /v1/documents/{id}/prefill`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefilled {
    /// The source document's id.
    pub from: String,
    pub kind: String,
    /// The pre-filled payload: a JSON object.
    pub payload: Value,
    /// Elements carried over from the source.
    #[serde(default)]
    pub carried: Vec<String>,
    /// Elements of the source the target kind may not carry.
    #[serde(default)]
    pub dropped: Vec<String>,
}

/// `data:` of an `event: document` frame of `GET /v1/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEvent {
    pub id: String,
    pub version: u32,
    pub kind: String,
    pub issuer: String,
    #[serde(default)]
    pub agreement: Option<String>,
    pub height: u64,
    pub time_ms: u64,
    pub status: String,
}

/// Answer of `POST /v1/documents/{id}/ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub id: String,
    pub version: u32,
    pub administration: String,
    pub height: u64,
}

/// What a request is about: a consignment (by its UCR index) or a document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucr_index: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

/// Body of `POST /v1/requests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRequest {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    pub purpose: String,
    pub legal_basis: String,
    pub items: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidentiality: Option<String>,
}

/// Body of `POST /v1/requests/{id}/answer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum AnswerRequest {
    /// Grants the requester purpose-bound access to these documents.
    Provide {
        documents: Vec<String>,
    },
    Postpone {
        reason: String,
    },
    /// `reason_code`: TFA Art. 12.7.1 ground, `a` to `e`.
    Refuse {
        reason_code: String,
        reason: String,
    },
}

/// One answer on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// `provide`, `postpone` or `refuse`.
    pub answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub height: u64,
}

/// A breach notice (Art. 12.11.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachRecord {
    pub details: String,
    pub height: u64,
}

/// `<request>`: a TFA Article 12 information request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRequest {
    pub id: String,
    pub from: String,
    pub to: String,
    pub matter: Matter,
    pub purpose: String,
    pub legal_basis: String,
    pub items: Vec<String>,
    #[serde(default)]
    pub confidentiality: String,
    /// `open`, `postponed`, `provided`, `refused`.
    pub status: String,
    pub height: u64,
    pub time_ms: u64,
    /// Request block time + 90 days.
    pub deadline_ms: u64,
    pub overdue: bool,
    #[serde(default)]
    pub answers: Vec<AnswerRecord>,
    #[serde(default)]
    pub breaches: Vec<BreachRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestList {
    pub requests: Vec<InfoRequest>,
}

/// Body of `POST /v1/officers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOfficer {
    pub key: String,
    pub name: String,
    pub roles: Vec<String>,
}

/// `<officer>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Officer {
    pub key: String,
    pub name: String,
    pub administration: String,
    pub roles: Vec<String>,
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerList {
    pub officers: Vec<Officer>,
}

/// Body of `POST /v1/members/proposals`: exactly one of `add` and `remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProposal {
    /// The administration to admit, as in genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Value>,
    /// The code of the administration to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_delay_blocks: Option<u64>,
}

/// A member administration as `GET /v1/members` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub code: String,
    pub name: String,
    pub voting_power: u64,
    pub active: bool,
    pub node_key: String,
    pub validator_key: String,
}

/// One administration's vote on a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub administration: String,
    pub yes: bool,
}

/// `<proposal>`: a membership change and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    /// `add` or `remove`.
    pub kind: String,
    /// The administration added or removed.
    pub code: String,
    /// The administration record to add (`null` for a removal).
    #[serde(default)]
    pub administration: Option<Value>,
    pub proposed_by: String,
    pub effective_delay_blocks: u64,
    /// In voting order; the proposer's implicit yes first.
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// `open`, `passed`, `rejected`, `applied`, `failed`.
    pub status: String,
    /// Passed: the height it takes effect at; applied or failed: the height it did.
    #[serde(default)]
    pub effective_height: Option<u64>,
    /// Why a passed proposal could not be applied.
    #[serde(default)]
    pub failure: Option<String>,
    /// Height of the proposal.
    pub height: u64,
}

/// Answer of `GET /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub members: Vec<Member>,
    #[serde(default)]
    pub proposals: Vec<Proposal>,
}

/// One read served by a node, as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub document: String,
    pub version: u32,
    /// The reading officer's key.
    pub officer: String,
    pub administration: String,
    pub purpose: String,
    /// The TFA request the read was granted under, if any.
    #[serde(default)]
    pub request: Option<String>,
    pub height: u64,
    pub time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLog {
    pub accesses: Vec<Access>,
}

/// Whose reads `carnet audit` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditSubject {
    Document(String),
    Officer(String),
}

fn path_id(id: &str) -> String {
    encode_query_value(id)
}

impl NodeClient {
    /// `POST /v1/agreements` with the agreement file's exact bytes.
    pub fn propose_agreement(&self, file_text: &str) -> Result<AgreementFiled, CliError> {
        let body = check_body_size("agreement", file_text.as_bytes().to_vec())?;
        self.call("POST", "/v1/agreements", body)
    }

    /// `POST /v1/agreements/{id}/accept`.
    pub fn accept_agreement(&self, id: &str) -> Result<AgreementFiled, CliError> {
        self.call(
            "POST",
            &format!("/v1/agreements/{}/accept", path_id(id)),
            b"{}".to_vec(),
        )
    }

    /// `GET /v1/agreements/{id}`.
    pub fn agreement(&self, id: &str) -> Result<Agreement, CliError> {
        self.read(
            "GET",
            &format!("/v1/agreements/{}", path_id(id)),
            Vec::new(),
        )
    }

    /// `GET /v1/agreements`.
    pub fn agreements(&self) -> Result<Vec<Agreement>, CliError> {
        let list: AgreementList = self.read("GET", "/v1/agreements", Vec::new())?;
        Ok(list.agreements)
    }

    /// `POST /v1/documents` naming the agreement (or letting the node pick it).
    pub fn submit_under_agreement(
        &self,
        submission: &SubmissionUnderAgreement<'_>,
    ) -> Result<crate::client::Submitted, CliError> {
        self.call(
            "POST",
            "/v1/documents",
            encode_body("submission", submission)?,
        )
    }

    /// `POST /v1/documents/{id}/amend`.
    pub fn amend(&self, id: &str, payload: &str) -> Result<VersionFiled, CliError> {
        let body = encode_body("amendment", &serde_json::json!({ "payload": payload }))?;
        self.call(
            "POST",
            &format!("/v1/documents/{}/amend", path_id(id)),
            body,
        )
    }

    /// `POST /v1/documents/{id}/cancel`.
    pub fn cancel(&self, id: &str, reason: &str) -> Result<VersionFiled, CliError> {
        let body = encode_body("cancellation", &serde_json::json!({ "reason": reason }))?;
        self.call(
            "POST",
            &format!("/v1/documents/{}/cancel", path_id(id)),
            body,
        )
    }

    /// `GET /v1/documents/{id}/history`.
    pub fn history(&self, id: &str) -> Result<DocumentHistory, CliError> {
        self.read(
            "GET",
            &format!("/v1/documents/{}/history", path_id(id)),
            Vec::new(),
        )
    }

    /// `POST /v1/documents/{id}/decrypt` with a version or a request; the node records
    /// the access on the ledger.
    pub fn decrypt_with(
        &self,
        id: &str,
        request: &DecryptRequest,
    ) -> Result<crate::client::Decrypted, CliError> {
        self.read(
            "POST",
            &format!("/v1/documents/{}/decrypt", path_id(id)),
            encode_body("decrypt request", request)?,
        )
    }

    /// `POST /v1/documents/{id}/prefill`; the read of the source is an access record.
    pub fn prefill(&self, id: &str, request: &PrefillRequest) -> Result<Prefilled, CliError> {
        self.read(
            "POST",
            &format!("/v1/documents/{}/prefill", path_id(id)),
            encode_body("prefill request", request)?,
        )
    }

    /// `POST /v1/documents/{id}/ack`: records on the ledger that the version arrived.
    pub fn acknowledge(&self, id: &str, version: u32) -> Result<Acknowledged, CliError> {
        self.call(
            "POST",
            &format!("/v1/documents/{}/ack", path_id(id)),
            encode_body(
                "acknowledgement",
                &serde_json::json!({ "version": version }),
            )?,
        )
    }

    /// `GET /v1/ucr-match?ucr=`; each read the node makes is an access record.
    pub fn ucr_match(&self, ucr: &str) -> Result<UcrMatch, CliError> {
        self.read(
            "GET",
            &format!("/v1/ucr-match?ucr={}", encode_query_value(ucr)),
            Vec::new(),
        )
    }

    /// The path of `GET /v1/events` from `from_height` (None: the next block).
    pub fn events_path(from_height: Option<u64>) -> String {
        match from_height {
            Some(h) => format!("/v1/events?from_height={h}"),
            None => "/v1/events".to_string(),
        }
    }

    /// `POST /v1/requests`.
    pub fn create_request(&self, request: &NewRequest) -> Result<InfoRequest, CliError> {
        self.call(
            "POST",
            "/v1/requests",
            encode_body("information request", request)?,
        )
    }

    /// `POST /v1/requests/{id}/answer`.
    pub fn answer_request(
        &self,
        id: &str,
        answer: &AnswerRequest,
    ) -> Result<InfoRequest, CliError> {
        self.call(
            "POST",
            &format!("/v1/requests/{}/answer", path_id(id)),
            encode_body("answer", answer)?,
        )
    }

    /// `POST /v1/requests/{id}/breach`.
    pub fn report_breach(&self, id: &str, details: &str) -> Result<InfoRequest, CliError> {
        self.call(
            "POST",
            &format!("/v1/requests/{}/breach", path_id(id)),
            encode_body("breach notice", &serde_json::json!({ "details": details }))?,
        )
    }

    /// `GET /v1/requests[?overdue=true]`.
    pub fn requests(&self, overdue_only: bool) -> Result<Vec<InfoRequest>, CliError> {
        let path = if overdue_only {
            "/v1/requests?overdue=true"
        } else {
            "/v1/requests"
        };
        let list: RequestList = self.read("GET", path, Vec::new())?;
        Ok(list.requests)
    }

    /// `GET /v1/requests/{id}`.
    pub fn request(&self, id: &str) -> Result<InfoRequest, CliError> {
        self.read("GET", &format!("/v1/requests/{}", path_id(id)), Vec::new())
    }

    /// `POST /v1/officers`.
    pub fn add_officer(&self, officer: &NewOfficer) -> Result<Officer, CliError> {
        self.call("POST", "/v1/officers", encode_body("officer", officer)?)
    }

    /// `POST /v1/officers/{key}/revoke`.
    pub fn revoke_officer(&self, key: &str) -> Result<Officer, CliError> {
        self.call(
            "POST",
            &format!("/v1/officers/{}/revoke", path_id(key)),
            b"{}".to_vec(),
        )
    }

    /// `GET /v1/officers[?administration=XA]`.
    pub fn officers(&self, administration: Option<&str>) -> Result<Vec<Officer>, CliError> {
        let path = match administration {
            Some(code) => format!("/v1/officers?administration={}", encode_query_value(code)),
            None => "/v1/officers".to_string(),
        };
        let list: OfficerList = self.read("GET", &path, Vec::new())?;
        Ok(list.officers)
    }

    /// `POST /v1/members/proposals`.
    pub fn propose_membership(&self, proposal: &NewProposal) -> Result<Proposal, CliError> {
        self.call(
            "POST",
            "/v1/members/proposals",
            encode_body("membership proposal", proposal)?,
        )
    }

    /// `POST /v1/members/proposals/{id}/vote`.
    pub fn vote(&self, id: &str, yes: bool) -> Result<Proposal, CliError> {
        self.call(
            "POST",
            &format!("/v1/members/proposals/{}/vote", path_id(id)),
            encode_body("vote", &serde_json::json!({ "yes": yes }))?,
        )
    }

    /// `GET /v1/members`.
    pub fn members(&self) -> Result<Membership, CliError> {
        self.read("GET", "/v1/members", Vec::new())
    }

    /// `GET /v1/audit?document=` or `?officer=`.
    pub fn audit(&self, subject: &AuditSubject) -> Result<Vec<Access>, CliError> {
        let path = match subject {
            AuditSubject::Document(id) => format!("/v1/audit?document={}", encode_query_value(id)),
            AuditSubject::Officer(key) => format!("/v1/audit?officer={}", encode_query_value(key)),
        };
        let log: AccessLog = self.read("GET", &path, Vec::new())?;
        Ok(log.accesses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_encode_as_the_api_says() {
        let provide = AnswerRequest::Provide {
            documents: vec!["ab".into(), "cd".into()],
        };
        assert_eq!(
            serde_json::to_value(&provide).unwrap(),
            serde_json::json!({"answer": "provide", "documents": ["ab", "cd"]})
        );
        let postpone = AnswerRequest::Postpone {
            reason: "investigation".into(),
        };
        assert_eq!(
            serde_json::to_value(&postpone).unwrap(),
            serde_json::json!({"answer": "postpone", "reason": "investigation"})
        );
        let refuse = AnswerRequest::Refuse {
            reason_code: "c".into(),
            reason: "on-going prosecution".into(),
        };
        assert_eq!(
            serde_json::to_value(&refuse).unwrap(),
            serde_json::json!({"answer": "refuse", "reason_code": "c", "reason": "on-going prosecution"})
        );
    }

    #[test]
    fn optional_fields_are_left_out_of_bodies() {
        let request = NewRequest {
            to: "XB".into(),
            ucr: Some("24XA-0001".into()),
            document: None,
            purpose: "valuation check".into(),
            legal_basis: "TFA Art. 12".into(),
            items: vec!["invoice".into()],
            confidentiality: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"to": "XB", "ucr": "24XA-0001", "purpose": "valuation check",
                "legal_basis": "TFA Art. 12", "items": ["invoice"]})
        );
        let decrypt = DecryptRequest {
            purpose: "p".into(),
            version: Some(2),
            request: None,
        };
        assert_eq!(
            serde_json::to_value(&decrypt).unwrap(),
            serde_json::json!({"purpose": "p", "version": 2})
        );
        let submission = crate::client::Submission {
            kind: "export-declaration".into(),
            ucr: "U".into(),
            recipients: vec!["XB".into()],
            payload: "{}".into(),
        };
        let under = SubmissionUnderAgreement {
            submission: &submission,
            agreement: Some("0a".repeat(16)),
        };
        assert_eq!(
            serde_json::to_value(&under).unwrap(),
            serde_json::json!({"kind": "export-declaration", "ucr": "U", "recipients": ["XB"],
                "payload": "{}", "agreement": "0a".repeat(16)})
        );
    }

    #[test]
    fn a_request_decodes_with_either_matter() {
        let body = serde_json::json!({
            "id": "11".repeat(16), "from": "XA", "to": "XB",
            "matter": {"document": "22".repeat(16)},
            "purpose": "p", "legal_basis": "l", "items": ["a"], "confidentiality": "restricted",
            "status": "provided", "height": 5, "time_ms": 1, "deadline_ms": 2, "overdue": false,
            "answers": [{"answer": "provide", "documents": ["22".repeat(16)], "height": 6}],
            "breaches": []
        });
        let request: InfoRequest = serde_json::from_value(body).unwrap();
        assert_eq!(request.matter.document.as_deref(), Some(&*"22".repeat(16)));
        assert_eq!(request.matter.ucr_index, None);
        assert_eq!(request.answers[0].documents.as_ref().unwrap().len(), 1);
    }
}
