//! Customs rules as tables a customs expert can read: agreements (GNC Utility Blocks),
//! document versions, TFA Article 12 requests, officers, membership governance and
//! erasure. Each case is one transaction in the block after [`setup`]; the expected
//! outcome is "accepted" or "rejected, naming this rule". A rejection must leave the
//! state byte-identical to an empty block.

mod common;

use carnet_contracts::agreement::{Agreement, DataCluster, Delivery, Trigger};
use carnet_contracts::erasure::DestructionAttestation;
use carnet_contracts::execute::{execute_block, BlockOutcome, MemoryState};
use carnet_contracts::request::{Matter, RefusalGround, RequestAnswer};
use carnet_contracts::*;
use common::*;

use Expect::*;

pub fn agreement_id(n: u8) -> AgreementId {
    AgreementId([n; 16])
}
pub fn request_id(n: u8) -> RequestId {
    RequestId([n; 16])
}
pub fn proposal_id(n: u8) -> ProposalId {
    ProposalId([n; 16])
}

/// An export→import agreement between `parties`, export declarations only.
pub fn agreement(n: u8, parties: &[&str], retention_days: Option<u32>) -> Agreement {
    with_ucr_key(Agreement {
        id: agreement_id(n),
        title: format!("agreement {n}"),
        parties: parties.iter().map(|c| code(c)).collect(),
        clusters: vec![DataCluster {
            kind: DocumentKind::ExportDeclaration,
            allowed: vec![
                "UCR".into(),
                "ExporterName".into(),
                "CommodityCode".into(),
                "OriginCountry".into(),
            ],
            required: vec!["UCR".into(), "CommodityCode".into()],
        }],
        trigger: Trigger::Exit,
        legal_basis: "bilateral agreement, Art. 4".into(),
        purpose: "pre-arrival risk management".into(),
        retention_days,
        retention_seconds: None,
        delivery: Delivery::Push,
        ucr_key_wraps: vec![],
    })
}

fn under(agreement: u8, id: u8, recipients: &[&str]) -> Action {
    Action::SubmitUnderAgreement {
        agreement: agreement_id(agreement),
        submission: submission(id, recipients),
    }
}

fn create_request(id: u8, to: &str) -> Action {
    Action::CreateRequest {
        id: request_id(id),
        to: code(to),
        matter: Matter::Ucr {
            ucr_index: [0xAB; 32],
        },
        purpose: "valuation check".into(),
        legal_basis: "TFA Art. 12; domestic customs code s. 12".into(),
        items: vec!["commercial invoice".into(), "export declaration".into()],
        confidentiality: "confidential under domestic law s. 40".into(),
    }
}

fn answer(id: u8, answer: RequestAnswer) -> Action {
    Action::AnswerRequest {
        id: request_id(id),
        answer,
    }
}

fn provide(docs: &[u8]) -> RequestAnswer {
    RequestAnswer::Provide {
        documents: docs.iter().map(|d| doc_id(*d)).collect(),
    }
}

fn erase(id: u8) -> Action {
    Action::EraseDocument {
        id: doc_id(id),
        reason: "data subject request".into(),
        legal_basis: "data protection act s. 17".into(),
    }
}

fn attest(id: u8, admin: &str, erasure_height: u64, versions: u32) -> Action {
    Action::AttestDestruction(DestructionAttestation {
        document: doc_id(id),
        administration: code(admin),
        erasure_height,
        versions,
    })
}

fn amend(id: u8, recipients: &[&str]) -> Action {
    Action::AmendDocument {
        id: doc_id(id),
        submission: submission(id, recipients),
    }
}

fn new_member(c: &str, node_seed: u8) -> Administration {
    Administration {
        code: code(c),
        name: format!("Administration {c}"),
        node_key: public(node_seed),
        validator_key: public(node_seed.wrapping_add(100)),
        encryption_key: [7; 32],
        voting_power: 1,
        active: true,
    }
}

/// The first officers of an administration to admit: one admin of `c`.
fn first_admin(c: &str, seed: u8) -> Vec<Officer> {
    vec![Officer {
        key: public(seed),
        administration: code(c),
        name: format!("{c} first admin"),
        roles: vec![Role::Admin, Role::Officer],
        active: true,
    }]
}

fn granted_read(request: u8, doc: u8, purpose: &str) -> Action {
    Action::RecordGrantedAccess {
        request: request_id(request),
        document: doc_id(doc),
        version: 1,
        officer: public(XB_OFFICER),
        purpose: purpose.into(),
    }
}

fn run_ok(state: &mut MemoryState, height: u64, time: u64, txs: Vec<Transaction>) -> BlockOutcome {
    let signed: Vec<_> = txs.into_iter().map(sign).collect();
    let outcome = execute_block(state, &ctx(height, time), &signed).unwrap();
    for r in &outcome.receipts {
        assert!(
            r.outcome.is_ok(),
            "setup at height {height}: {:?}",
            r.outcome
        );
    }
    outcome
}

/// Height of the setup block that erased document 4.
pub const ERASED_AT: u64 = 3;

/// Block 1: document 1 (XA → XB). Block 2: agreement 1 (XA, XB, retention 1 day) proposed
/// and accepted; agreement 2 (XA, XB, XC) proposed only; documents 3 (under agreement 1),
/// 4, 5, 6 (XA → XC); requests 1 (XB → XA), 2 (XA → XB), 3 (XB → XA); proposal 1 (remove
/// XC). Block 3: document 4 erased, XA attests; document 5 cancelled; request 3 provided
/// (document 1).
pub fn setup() -> MemoryState {
    let mut state = state_with_document();
    run_ok(
        &mut state,
        2,
        T0 + 100,
        vec![
            act(
                "XA",
                XA_ADMIN,
                100,
                Action::ProposeAgreement(agreement(1, &["XA", "XB"], Some(1))),
            ),
            act(
                "XB",
                XB_ADMIN,
                101,
                Action::AcceptAgreement {
                    id: agreement_id(1),
                },
            ),
            act(
                "XA",
                XA_ADMIN,
                102,
                Action::ProposeAgreement(agreement(2, &["XA", "XB", "XC"], None)),
            ),
            act("XA", XA_OFFICER, 103, under(1, 3, &["XB"])),
            act(
                "XA",
                XA_OFFICER,
                104,
                Action::SubmitDocument(submission(4, &["XB"])),
            ),
            act(
                "XA",
                XA_OFFICER,
                105,
                Action::SubmitDocument(submission(5, &["XB"])),
            ),
            act(
                "XA",
                XA_OFFICER,
                106,
                Action::SubmitDocument(submission(6, &["XC"])),
            ),
            act("XB", XB_OFFICER, 107, create_request(1, "XA")),
            act("XA", XA_OFFICER, 108, create_request(2, "XB")),
            act("XB", XB_OFFICER, 109, create_request(3, "XA")),
            act(
                "XA",
                XA_ADMIN,
                110,
                Action::ProposeRemoval {
                    id: proposal_id(1),
                    code: code("XC"),
                    effective_delay_blocks: 5,
                },
            ),
        ],
    );
    run_ok(
        &mut state,
        ERASED_AT,
        T0 + 200,
        vec![
            act("XA", XA_SUPERVISOR, 200, erase(4)),
            act("XA", 0, 201, attest(4, "XA", ERASED_AT, 1)),
            act(
                "XA",
                XA_OFFICER,
                202,
                Action::CancelDocument {
                    id: doc_id(5),
                    reason: "declared in error".into(),
                },
            ),
            act("XA", XA_OFFICER, 203, answer(3, provide(&[1]))),
            act("XB", XB_OFFICER, 204, ack(3, 1)),
        ],
    );
    state
}

fn ack(document: u8, version: u32) -> Action {
    Action::AcknowledgeDelivery {
        document: doc_id(document),
        version,
    }
}

fn with_action(mut tx: Transaction, change: impl FnOnce(&mut Action)) -> Transaction {
    change(&mut tx.action);
    tx
}

#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
    let mut bad_cluster = agreement(9, &["XA", "XB"], None);
    bad_cluster.clusters[0].required.push("ConsigneeName".into());
    let mut both_retentions = agreement(9, &["XA", "XB"], Some(3));
    both_retentions.retention_seconds = Some(30);
    let mut no_wraps = agreement(9, &["XA", "XB"], None);
    no_wraps.ucr_key_wraps.clear();
    let mut stranger_wrap = agreement(9, &["XA", "XB"], None);
    stranger_wrap.ucr_key_wraps[1].party = code("XC");
    let mut bad_name = agreement(9, &["XA", "XB"], None);
    bad_name.clusters[0].allowed.push("exporter name".into());
    let mut import_doc = submission(8, &["XB"]);
    import_doc.kind = DocumentKind::ImportDeclaration;
    let mut kind_change = submission(1, &["XB"]);
    kind_change.kind = DocumentKind::ImportDeclaration;
    let mut used_node = new_member("XE", 2);
    used_node.code = code("XE");
    vec![
        // --- Agreements (GNC Utility Blocks) ---
        Case { name: "an admin of a party proposes an agreement", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(agreement(9, &["XA", "XB"], None))), expect: Accepted },
        Case { name: "a plain officer cannot propose", tx: act("XA", XA_OFFICER, 1, Action::ProposeAgreement(agreement(9, &["XA", "XB"], None))), expect: Rejected("officer role") },
        Case { name: "the proposer must be a party", tx: act("XC", XC_OFFICER, 1, Action::ProposeAgreement(agreement(9, &["XA", "XB"], None))), expect: Rejected("not one of its parties") },
        Case { name: "every party must be a member", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(agreement(9, &["XA", "QQ"], None))), expect: Rejected("QQ is not a member") },
        Case { name: "every party must be active", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(agreement(9, &["XA", "XD"], None))), expect: Rejected("XD is not an active member") },
        Case { name: "agreement id already used", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(agreement(1, &["XA", "XB"], None))), expect: Rejected("agreement id") },
        Case { name: "a required element must be allowed", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(bad_cluster)), expect: Rejected("`ConsigneeName` is not among the allowed") },
        Case { name: "element names are WCO style", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(bad_name)), expect: Rejected("not a WCO-style name") },
        Case { name: "an agreement needs two parties", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(agreement(9, &["XA"], None))), expect: Rejected("binds 2") },
        Case { name: "zero-day retention", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(agreement(9, &["XA", "XB"], Some(0)))), expect: Rejected("retention_days") },
        Case { name: "a party's admin accepts", tx: act("XB", XB_ADMIN, 1, Action::AcceptAgreement { id: agreement_id(2) }), expect: Accepted },
        Case { name: "the proposer accepted implicitly", tx: act("XA", XA_ADMIN, 1, Action::AcceptAgreement { id: agreement_id(2) }), expect: Rejected("already accepted") },
        Case { name: "a supervisor cannot accept", tx: act("XB", XB_OFFICER, 1, Action::AcceptAgreement { id: agreement_id(2) }), expect: Rejected("officer role") },
        Case { name: "accept an unknown agreement", tx: act("XB", XB_ADMIN, 1, Action::AcceptAgreement { id: agreement_id(77) }), expect: Rejected("does not exist") },
        Case { name: "a non-party cannot accept", tx: act("XC", XC_OFFICER, 1, Action::AcceptAgreement { id: agreement_id(1) }), expect: Rejected("XC is not a party") },
        // --- Documents under agreements ---
        Case { name: "a document under an active agreement", tx: act("XA", XA_OFFICER, 1, under(1, 8, &["XB"])), expect: Accepted },
        Case { name: "agreement not yet active", tx: act("XA", XA_OFFICER, 1, under(2, 8, &["XB"])), expect: Rejected("is not active; waiting for acceptance by XB, XC") },
        Case { name: "recipient outside the agreement", tx: act("XA", XA_OFFICER, 1, under(1, 8, &["XC"])), expect: Rejected("recipient XC is not a party") },
        Case { name: "kind outside the agreement", tx: act("XA", XA_OFFICER, 1, Action::SubmitUnderAgreement { agreement: agreement_id(1), submission: import_doc }), expect: Rejected("kind import-declaration is not covered") },
        Case { name: "unknown agreement", tx: act("XA", XA_OFFICER, 1, under(77, 8, &["XB"])), expect: Rejected("does not exist") },
        Case { name: "issuer outside the agreement", tx: act("XC", XC_OFFICER, 1, under(1, 8, &["XB"])), expect: Rejected("issuer XC is not a party") },
        Case { name: "submission rules still apply (revoked officer)", tx: act("XA", XA_REVOKED, 1, under(1, 8, &["XB"])), expect: Rejected("revoked") },
        Case { name: "submission rules still apply (id in use)", tx: act("XA", XA_OFFICER, 1, under(1, 1, &["XB"])), expect: Rejected("document id") },
        // --- Versions: amend and cancel ---
        Case { name: "the issuer amends", tx: act("XA", XA_OFFICER, 1, amend(1, &["XB", "XC"])), expect: Accepted },
        Case { name: "another administration cannot amend", tx: act("XB", XB_OFFICER, 1, amend(1, &["XA"])), expect: Rejected("only the issuer XA may amend") },
        Case { name: "an amendment keeps the kind", tx: act("XA", XA_OFFICER, 1, Action::AmendDocument { id: doc_id(1), submission: kind_change }), expect: Rejected("differs from the document's kind") },
        Case { name: "the new version names the same document", tx: act("XA", XA_OFFICER, 1, Action::AmendDocument { id: doc_id(1), submission: submission(2, &["XB"]) }), expect: Rejected("names document") },
        Case { name: "amend an unknown document", tx: act("XA", XA_OFFICER, 1, amend(9, &["XB"])), expect: Rejected("does not exist") },
        Case { name: "amend a cancelled document", tx: act("XA", XA_OFFICER, 1, amend(5, &["XB"])), expect: Rejected("is cancelled") },
        Case { name: "amend an erased document", tx: act("XA", XA_OFFICER, 1, amend(4, &["XB"])), expect: Rejected("is erased") },
        Case { name: "an auditor cannot amend", tx: act("XA", XA_AUDITOR, 1, amend(1, &["XB"])), expect: Rejected("officer role") },
        Case { name: "amended recipients stay within the agreement", tx: act("XA", XA_OFFICER, 1, amend(3, &["XC"])), expect: Rejected("recipient XC is not a party") },
        Case { name: "amended recipients follow the recipient rules", tx: act("XA", XA_OFFICER, 1, amend(1, &["XA"])), expect: Rejected("own recipient") },
        Case { name: "the issuer cancels", tx: act("XA", XA_OFFICER, 1, Action::CancelDocument { id: doc_id(1), reason: "withdrawn".into() }), expect: Accepted },
        Case { name: "a cancellation gives a reason", tx: act("XA", XA_OFFICER, 1, Action::CancelDocument { id: doc_id(1), reason: " ".into() }), expect: Rejected("cancel reason") },
        Case { name: "another administration cannot cancel", tx: act("XB", XB_OFFICER, 1, Action::CancelDocument { id: doc_id(1), reason: "x".into() }), expect: Rejected("only the issuer XA may cancel") },
        Case { name: "cancel twice", tx: act("XA", XA_OFFICER, 1, Action::CancelDocument { id: doc_id(5), reason: "x".into() }), expect: Rejected("is cancelled") },
        // --- TFA Article 12 requests ---
        Case { name: "a request to another member", tx: act("XB", XB_OFFICER, 1, create_request(9, "XA")), expect: Accepted },
        Case { name: "a request to oneself", tx: act("XB", XB_OFFICER, 1, create_request(9, "XB")), expect: Rejected("from itself") },
        Case { name: "a request to a non-member", tx: act("XB", XB_OFFICER, 1, create_request(9, "QQ")), expect: Rejected("QQ is not a member") },
        Case { name: "a request names its items", tx: with_action(act("XB", XB_OFFICER, 1, create_request(9, "XA")), |a| if let Action::CreateRequest { items, .. } = a { items.clear() }), expect: Rejected("request items") },
        Case { name: "a request states its legal basis", tx: with_action(act("XB", XB_OFFICER, 1, create_request(9, "XA")), |a| if let Action::CreateRequest { legal_basis, .. } = a { legal_basis.clear() }), expect: Rejected("legal_basis") },
        Case { name: "request id already used", tx: act("XB", XB_OFFICER, 1, create_request(1, "XA")), expect: Rejected("request id") },
        Case { name: "an auditor cannot request", tx: act("XA", XA_AUDITOR, 1, create_request(9, "XB")), expect: Rejected("officer role") },
        Case { name: "the requested administration provides", tx: act("XA", XA_OFFICER, 1, answer(1, provide(&[1]))), expect: Accepted },
        Case { name: "the requested administration postpones", tx: act("XA", XA_OFFICER, 1, answer(1, RequestAnswer::Postpone { reason: "investigation pending".into() })), expect: Accepted },
        Case { name: "refusal on ground c (on-going investigation)", tx: act("XA", XA_OFFICER, 1, answer(1, RequestAnswer::Refuse { reason_code: RefusalGround::C, reason: "case 2024/17".into() })), expect: Accepted },
        Case { name: "a refusal gives a reason", tx: act("XA", XA_OFFICER, 1, answer(1, RequestAnswer::Refuse { reason_code: RefusalGround::A, reason: "".into() })), expect: Rejected("refuse reason") },
        Case { name: "only the requested administration answers", tx: act("XC", XC_OFFICER, 1, answer(1, provide(&[1]))), expect: Rejected("only XA, the requested administration") },
        Case { name: "answer an unknown request", tx: act("XA", XA_OFFICER, 1, answer(9, provide(&[1]))), expect: Rejected("does not exist") },
        Case { name: "provide an unknown document", tx: act("XA", XA_OFFICER, 1, answer(1, provide(&[9]))), expect: Rejected("document 09090909090909090909090909090909 does not exist") },
        Case { name: "provide what one does not hold", tx: act("XB", XB_OFFICER, 1, answer(2, provide(&[6]))), expect: Rejected("neither issuer nor recipient") },
        Case { name: "provide an erased document", tx: act("XA", XA_OFFICER, 1, answer(1, provide(&[4]))), expect: Rejected("is erased") },
        Case { name: "answer twice", tx: act("XA", XA_OFFICER, 1, answer(3, provide(&[1]))), expect: Rejected("already answered") },
        Case { name: "the requester reports a breach", tx: act("XB", XB_OFFICER, 1, Action::ReportBreach { id: request_id(3), details: "forwarded to a third agency".into() }), expect: Accepted },
        Case { name: "only the requester reports a breach", tx: act("XA", XA_OFFICER, 1, Action::ReportBreach { id: request_id(3), details: "x".into() }), expect: Rejected("only XB, which received") },
        Case { name: "no breach without provided information", tx: act("XB", XB_OFFICER, 1, Action::ReportBreach { id: request_id(1), details: "x".into() }), expect: Rejected("no information was provided") },
        Case { name: "a read under a grant, for the request's purpose", tx: act("XB", XB_OFFICER, 1, granted_read(3, 1, "valuation check")), expect: Accepted },
        Case { name: "a read under a grant for another purpose", tx: act("XB", XB_OFFICER, 1, granted_read(3, 1, "marketing")), expect: Rejected("grant purpose") },
        Case { name: "a read without a grant", tx: act("XC", XB_OFFICER, 1, granted_read(3, 1, "valuation check")), expect: Rejected("gives XC no access") },
        // --- Officers ---
        Case { name: "an admin adds an officer", tx: act("XA", XA_ADMIN, 1, Action::AddOfficer { key: public(60), name: "new officer".into(), roles: vec![Role::Officer, Role::Auditor] }), expect: Accepted },
        Case { name: "a plain officer cannot add officers", tx: act("XA", XA_OFFICER, 1, Action::AddOfficer { key: public(60), name: "x".into(), roles: vec![Role::Officer] }), expect: Rejected("officer role") },
        Case { name: "a key is registered once", tx: act("XA", XA_ADMIN, 1, Action::AddOfficer { key: public(XB_OFFICER), name: "x".into(), roles: vec![Role::Officer] }), expect: Rejected("already registered to XB") },
        Case { name: "a revoked key is never reused", tx: act("XA", XA_ADMIN, 1, Action::AddOfficer { key: public(XA_REVOKED), name: "x".into(), roles: vec![Role::Officer] }), expect: Rejected("never reused") },
        Case { name: "an officer holds a role", tx: act("XA", XA_ADMIN, 1, Action::AddOfficer { key: public(60), name: "x".into(), roles: vec![] }), expect: Rejected("officer roles: none named") },
        Case { name: "an admin revokes an officer", tx: act("XA", XA_ADMIN, 1, Action::RevokeOfficer { key: public(XA_OFFICER) }), expect: Accepted },
        Case { name: "an admin manages only its own officers", tx: act("XA", XA_ADMIN, 1, Action::RevokeOfficer { key: public(XB_OFFICER) }), expect: Rejected("manages only its own officers") },
        Case { name: "revoke twice", tx: act("XA", XA_ADMIN, 1, Action::RevokeOfficer { key: public(XA_REVOKED) }), expect: Rejected("already revoked") },
        Case { name: "an admin cannot revoke itself", tx: act("XA", XA_ADMIN, 1, Action::RevokeOfficer { key: public(XA_ADMIN) }), expect: Rejected("cannot revoke itself") },
        Case { name: "revoke an unknown key", tx: act("XA", XA_ADMIN, 1, Action::RevokeOfficer { key: public(61) }), expect: Rejected("is not registered") },
        // --- Membership governance ---
        Case { name: "an admin proposes a new member", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XE", 5), effective_delay_blocks: 3, officers: first_admin("XE", 70) }), expect: Accepted },
        Case { name: "a member code is never reused", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XD", 5), effective_delay_blocks: 3, officers: first_admin("XD", 70) }), expect: Rejected("XD already exists") },
        Case { name: "a node key belongs to one member", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: used_node, effective_delay_blocks: 3, officers: first_admin("XE", 70) }), expect: Rejected("node key") },
        Case { name: "a change takes effect later", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XE", 5), effective_delay_blocks: 0, officers: first_admin("XE", 70) }), expect: Rejected("effective_delay_blocks") },
        Case { name: "an admission names its first officers", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XE", 5), effective_delay_blocks: 3, officers: vec![] }), expect: Rejected("first officers of XE") },
        Case { name: "one first officer is an admin", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XE", 5), effective_delay_blocks: 3, officers: vec![Officer { roles: vec![Role::Officer], ..first_admin("XE", 70).remove(0) }] }), expect: Rejected("none has the admin role") },
        Case { name: "first officers belong to the admitted administration", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XE", 5), effective_delay_blocks: 3, officers: first_admin("XA", 70) }), expect: Rejected("must be an active officer of XE") },
        Case { name: "a first officer's key is new", tx: act("XA", XA_ADMIN, 1, Action::ProposeMember { id: proposal_id(9), administration: new_member("XE", 5), effective_delay_blocks: 3, officers: first_admin("XE", XB_OFFICER) }), expect: Rejected("already registered") },
        Case { name: "remove a non-member", tx: act("XA", XA_ADMIN, 1, Action::ProposeRemoval { id: proposal_id(9), code: code("QQ"), effective_delay_blocks: 3 }), expect: Rejected("QQ is not a member") },
        Case { name: "remove an inactive member", tx: act("XA", XA_ADMIN, 1, Action::ProposeRemoval { id: proposal_id(9), code: code("XD"), effective_delay_blocks: 3 }), expect: Rejected("XD is not an active member") },
        Case { name: "proposal id already used", tx: act("XA", XA_ADMIN, 1, Action::ProposeRemoval { id: proposal_id(1), code: code("XB"), effective_delay_blocks: 3 }), expect: Rejected("proposal id") },
        Case { name: "a member votes", tx: act("XB", XB_ADMIN, 1, Action::Vote { proposal: proposal_id(1), yes: true }), expect: Accepted },
        Case { name: "the proposer voted implicitly", tx: act("XA", XA_ADMIN, 1, Action::Vote { proposal: proposal_id(1), yes: true }), expect: Rejected("already voted") },
        Case { name: "vote on an unknown proposal", tx: act("XB", XB_ADMIN, 1, Action::Vote { proposal: proposal_id(9), yes: true }), expect: Rejected("does not exist") },
        Case { name: "only an admin votes", tx: act("XB", XB_OFFICER, 1, Action::Vote { proposal: proposal_id(1), yes: true }), expect: Rejected("officer role") },
        // --- Erasure ---
        Case { name: "the issuer's supervisor erases", tx: act("XA", XA_SUPERVISOR, 1, erase(1)), expect: Accepted },
        Case { name: "the issuer's admin erases", tx: act("XA", XA_ADMIN, 1, erase(1)), expect: Accepted },
        Case { name: "erase an unknown document", tx: act("XA", XA_SUPERVISOR, 1, erase(9)), expect: Rejected("erase: document 09090909090909090909090909090909 does not exist") },
        Case { name: "erase twice", tx: act("XA", XA_SUPERVISOR, 1, erase(4)), expect: Rejected("is already erased") },
        Case { name: "a recipient cannot erase", tx: act("XB", XB_OFFICER, 1, erase(1)), expect: Rejected("only the issuer XA may erase") },
        Case { name: "a plain officer cannot erase", tx: act("XA", XA_OFFICER, 1, erase(1)), expect: Rejected("holds none of supervisor, admin") },
        Case { name: "an auditor cannot erase", tx: act("XA", XA_AUDITOR, 1, erase(1)), expect: Rejected("holds none of supervisor, admin") },
        Case { name: "an erasure states its legal basis", tx: act("XA", XA_SUPERVISOR, 1, Action::EraseDocument { id: doc_id(1), reason: "r".into(), legal_basis: "".into() }), expect: Rejected("erase legal_basis") },
        Case { name: "a node attests destruction", tx: act("XB", 0, 1, attest(4, "XB", ERASED_AT, 1)), expect: Accepted },
        Case { name: "a node attests only for itself", tx: act("XB", 0, 1, attest(4, "XC", ERASED_AT, 1)), expect: Rejected("signed by the node of XB, names XC") },
        Case { name: "an attestation names the erasure", tx: act("XB", 0, 1, attest(4, "XB", 2, 1)), expect: Rejected("was erased at height 3") },
        Case { name: "attest a document that is not erased", tx: act("XB", 0, 1, attest(1, "XB", ERASED_AT, 1)), expect: Rejected("is not erased") },
        Case { name: "attest twice", tx: act("XA", 0, 1, attest(4, "XA", ERASED_AT, 1)), expect: Rejected("already attested") },
        Case { name: "retention in days and seconds at once", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(both_retentions)), expect: Rejected("not both") },
        Case { name: "an agreement without its UCR key wraps", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(no_wraps)), expect: Rejected("ucr_key_wraps: 0 wraps for 2 parties") },
        Case { name: "a wrap for a non-party", tx: act("XA", XA_ADMIN, 1, Action::ProposeAgreement(stranger_wrap)), expect: Rejected("ucr_key_wraps: XC is not a party") },
        Case { name: "a recipient acknowledges a delivery", tx: act("XB", XB_OFFICER, 1, ack(1, 1)), expect: Accepted },
        Case { name: "the issuer is not a recipient", tx: act("XA", XA_OFFICER, 1, ack(1, 1)), expect: Rejected("XA is not a recipient of document") },
        Case { name: "acknowledge a version that does not exist", tx: act("XB", XB_OFFICER, 1, ack(1, 9)), expect: Rejected("has no version 9") },
        Case { name: "acknowledge an erased document", tx: act("XB", XB_OFFICER, 1, ack(4, 1)), expect: Rejected("is erased") },
        Case { name: "acknowledge twice", tx: act("XB", XB_OFFICER, 1, ack(3, 1)), expect: Rejected("already acknowledged document") },
        Case { name: "an acknowledgement names its officer", tx: act("XB", 0, 1, ack(1, 1)), expect: Rejected("must name its officer") },
    ]
}

#[test]
fn customs_rules_table() {
    run_case_table(&setup(), &ctx(ERASED_AT + 1, T0 + 1_000), cases());
}
