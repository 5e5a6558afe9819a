//! Customs flows over several blocks: retention expiry, governance taking effect, the
//! history of amended documents, erasure status, revocation, overdue requests, example
//! agreements and the data cluster check.

mod common;

use carnet_contracts::agreement::{self, check_payload, Agreement, ResolveError};
use carnet_contracts::erasure::DestructionAttestation;
use carnet_contracts::execute::{apply_genesis, execute_block, query, BlockOutcome, MemoryState};
use carnet_contracts::request::{Matter, RequestAnswer};
use carnet_contracts::*;
use common::*;

fn block(state: &mut MemoryState, height: u64, time: u64, txs: Vec<Transaction>) -> BlockOutcome {
    let signed: Vec<_> = txs
        .into_iter()
        .map(|mut t| {
            t.expires_at_ms = time + 60_000;
            sign(t)
        })
        .collect();
    let outcome = execute_block(state, &ctx(height, time), &signed).unwrap();
    for r in &outcome.receipts {
        assert!(r.outcome.is_ok(), "height {height}: {:?}", r.outcome);
    }
    outcome
}

fn fresh() -> MemoryState {
    let mut state = MemoryState::new();
    apply_genesis(&mut state, &genesis()).unwrap();
    state
}

fn example(name: &str) -> Agreement {
    let path = format!(
        "{}/../testnet/agreements/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    with_ucr_key(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

/// XA's admin proposes `a` (nonce `nonce`) and XB's admin accepts it (nonce `nonce + 1`).
fn agreed(a: &Agreement, nonce: u64) -> Vec<Transaction> {
    vec![
        act("XA", XA_ADMIN, nonce, Action::ProposeAgreement(a.clone())),
        act(
            "XB",
            XB_ADMIN,
            nonce + 1,
            Action::AcceptAgreement { id: a.id },
        ),
    ]
}

/// The agreement covering an export declaration from `issuer` to `recipient`.
fn resolve_export(
    state: &MemoryState,
    issuer: &str,
    recipient: &str,
) -> Result<Agreement, ResolveError> {
    agreement::resolve_agreement(
        state,
        &code(issuer),
        &[code(recipient)],
        DocumentKind::ExportDeclaration,
    )
}

const EXAMPLES: [&str; 4] = [
    "export-import.json",
    "eco-push.json",
    "aeo-mra.json",
    "waste-basel.json",
];

#[test]
fn example_agreements_deserialize_and_validate() {
    for name in EXAMPLES {
        let a = example(name);
        a.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            serde_json::from_str::<Agreement>(&json).unwrap(),
            a,
            "{name}"
        );
    }
}

#[test]
fn check_payload_names_every_offending_element() {
    let a = example("export-import.json");
    let ok = serde_json::json!({"UCR": "1XA123", "ExporterName": "Acme", "CommodityCode": "090111", "OriginCountry": "XA", "DestinationCountry": "XB", "Quantity": 10});
    assert!(check_payload(&a, DocumentKind::ExportDeclaration, &ok).is_ok());
    let bad = serde_json::json!({"UCR": "1XA123", "ExporterName": "Acme", "PassportNumber": "X1", "BankAccount": "Y", "Quantity": 10});
    let v = check_payload(&a, DocumentKind::ExportDeclaration, &bad).unwrap_err();
    assert_eq!(v.outside_cluster, vec!["BankAccount", "PassportNumber"]);
    assert_eq!(
        v.missing_required,
        vec!["CommodityCode", "OriginCountry", "DestinationCountry"]
    );
    let text = v.to_string();
    assert!(
        text.contains("BankAccount, PassportNumber") && text.contains("CommodityCode"),
        "{text}"
    );
    let v = check_payload(&a, DocumentKind::AeoStatus, &ok).unwrap_err();
    assert_eq!(v.kind_not_covered, Some(DocumentKind::AeoStatus));
    assert!(
        check_payload(&a, DocumentKind::ExportDeclaration, &serde_json::json!([1]))
            .unwrap_err()
            .not_an_object
    );
}

#[test]
fn resolver_picks_the_one_covering_agreement_or_names_candidates() {
    let mut state = fresh();
    let mut a = example("export-import.json");
    let mut b = a.clone();
    b.id = AgreementId([0xB0; 16]);
    let none = resolve_export(&state, "XA", "XB").unwrap_err();
    assert!(matches!(none, ResolveError::None { .. }), "{none}");
    a.parties = vec![code("XA"), code("XB")];
    block(&mut state, 1, T0, agreed(&a, 1));
    let found = resolve_export(&state, "XA", "XB").unwrap();
    assert_eq!(found.id, a.id);
    block(&mut state, 2, T0 + 1, agreed(&b, 3));
    let several = resolve_export(&state, "XA", "XB").unwrap_err();
    let text = several.to_string();
    assert!(
        text.contains(&a.id.to_string()) && text.contains(&b.id.to_string()),
        "{text}"
    );
    let none = resolve_export(&state, "XA", "XC").unwrap_err();
    assert!(
        none.to_string().contains(&a.id.to_string()),
        "hints name the issuer's agreements: {none}"
    );
}

#[test]
fn retention_expiry_erases_without_a_transaction_and_nodes_attest() {
    let mut state = fresh();
    let mut a = example("export-import.json");
    a.retention_days = Some(1);
    let day = agreement::DAY_MS;
    block(
        &mut state,
        1,
        T0,
        [
            agreed(&a, 1),
            vec![act(
                "XA",
                XA_OFFICER,
                3,
                Action::SubmitUnderAgreement {
                    agreement: a.id,
                    submission: submission(1, &["XB"]),
                },
            )],
        ]
        .concat(),
    );
    assert_eq!(
        query::document_meta(&state, &doc_id(1))
            .unwrap()
            .unwrap()
            .expires_at_ms,
        Some(T0 + day)
    );
    // Exactly at expiry: not yet past it.
    let outcome = block(&mut state, 2, T0 + day, vec![]);
    assert!(outcome.erasures.is_empty());
    let outcome = block(&mut state, 3, T0 + day + 1, vec![]);
    assert_eq!(outcome.erasures, vec![(doc_id(1), 1)]);
    let status = query::erasure_status(&state, &doc_id(1)).unwrap().unwrap();
    assert_eq!(status.status, DocumentStatus::Erased);
    assert_eq!(status.pending, vec![code("XA"), code("XB"), code("XC")]);
    assert!(query::expiring_documents(&state, u64::MAX, 10)
        .unwrap()
        .is_empty());
    let attest = |admin: &str, nonce| {
        act(
            admin,
            0,
            nonce,
            Action::AttestDestruction(DestructionAttestation {
                document: doc_id(1),
                administration: code(admin),
                erasure_height: 3,
                versions: 1,
            }),
        )
    };
    block(
        &mut state,
        4,
        T0 + day + 2,
        vec![attest("XA", 4), attest("XC", 5)],
    );
    let status = query::erasure_status(&state, &doc_id(1)).unwrap().unwrap();
    assert_eq!(status.attestations, vec![(code("XA"), 4), (code("XC"), 4)]);
    assert_eq!(status.pending, vec![code("XB")]);
    // Nothing more expires.
    assert!(block(&mut state, 5, T0 + 10 * day, vec![])
        .erasures
        .is_empty());
}

#[test]
fn amendments_keep_every_version_and_erasure_covers_them_all() {
    let mut state = fresh();
    block(
        &mut state,
        1,
        T0,
        vec![act(
            "XA",
            XA_OFFICER,
            1,
            Action::SubmitDocument(submission(1, &["XB"])),
        )],
    );
    block(
        &mut state,
        2,
        T0 + 1,
        vec![act(
            "XA",
            XA_OFFICER,
            2,
            Action::AmendDocument {
                id: doc_id(1),
                submission: submission(1, &["XB", "XC"]),
            },
        )],
    );
    block(
        &mut state,
        3,
        T0 + 2,
        vec![act(
            "XA",
            XA_OFFICER,
            3,
            Action::AmendDocument {
                id: doc_id(1),
                submission: submission(1, &["XC"]),
            },
        )],
    );
    let history = query::document_history(&state, &doc_id(1)).unwrap();
    let view: Vec<_> = history
        .iter()
        .map(|d| (d.version, d.status, d.recipients.len(), d.height))
        .collect();
    assert_eq!(
        view,
        vec![
            (1, DocumentStatus::Amended, 1, 1),
            (2, DocumentStatus::Amended, 2, 2),
            (3, DocumentStatus::Active, 1, 3),
        ]
    );
    assert_eq!(
        query::documents_by_ucr(&state, &[0xAB; 32], 10)
            .unwrap()
            .len(),
        3
    );
    let outcome = block(
        &mut state,
        4,
        T0 + 3,
        vec![act(
            "XA",
            XA_SUPERVISOR,
            4,
            Action::EraseDocument {
                id: doc_id(1),
                reason: "r".into(),
                legal_basis: "b".into(),
            },
        )],
    );
    assert_eq!(outcome.erasures, vec![(doc_id(1), 3)]);
    assert!(query::document_history(&state, &doc_id(1))
        .unwrap()
        .iter()
        .all(|d| d.status == DocumentStatus::Erased));
}

#[test]
fn membership_change_takes_effect_at_the_stated_height() {
    let mut state = fresh();
    let xe = Administration {
        code: code("XE"),
        name: "Administration XE".into(),
        node_key: public(5),
        validator_key: public(105),
        encryption_key: [5; 32],
        voting_power: 1,
        active: true,
    };
    let xe_admin = Officer {
        key: public(75),
        administration: code("XE"),
        name: "XE first admin".into(),
        roles: vec![Role::Admin],
        active: true,
    };
    let outcome = block(
        &mut state,
        1,
        T0,
        vec![
            act(
                "XA",
                XA_ADMIN,
                1,
                Action::ProposeMember {
                    id: ProposalId([1; 16]),
                    administration: xe.clone(),
                    effective_delay_blocks: 2,
                    officers: vec![xe_admin.clone()],
                },
            ),
            act(
                "XB",
                XB_ADMIN,
                2,
                Action::Vote {
                    proposal: ProposalId([1; 16]),
                    yes: true,
                },
            ),
        ],
    );
    assert!(!outcome.validator_set_changed);
    let p = query::proposal(&state, &ProposalId([1; 16]))
        .unwrap()
        .unwrap();
    assert_eq!(
        p.status,
        governance::ProposalStatus::Passed {
            effective_height: 3
        }
    );
    let outcome = block(&mut state, 2, T0 + 1, vec![]);
    assert_eq!(query::officer(&state, &public(75)).unwrap(), None);
    assert!(
        !outcome.validator_set_changed
            && query::administration(&state, &code("XE"))
                .unwrap()
                .is_none()
    );
    let outcome = block(&mut state, 3, T0 + 2, vec![]);
    assert!(outcome.validator_set_changed);
    assert_eq!(outcome.members_added, vec![code("XE")]);
    assert!(query::validator_set(&state)
        .unwrap()
        .contains(&(public(105), 1)));
    // The admission registered XE's first officer with it, not before.
    assert_eq!(
        query::officer(&state, &public(75)).unwrap(),
        Some(xe_admin.clone())
    );
    // Removal: XA and XB and XE vote yes of 4 (XA, XB, XC, XE) → 3/4 ≥ 2/3.
    block(
        &mut state,
        4,
        T0 + 3,
        vec![
            act(
                "XA",
                XA_ADMIN,
                3,
                Action::ProposeRemoval {
                    id: ProposalId([2; 16]),
                    code: code("XC"),
                    effective_delay_blocks: 1,
                },
            ),
            act(
                "XB",
                XB_ADMIN,
                4,
                Action::Vote {
                    proposal: ProposalId([2; 16]),
                    yes: true,
                },
            ),
        ],
    );
    assert_eq!(
        query::proposal(&state, &ProposalId([2; 16]))
            .unwrap()
            .unwrap()
            .status,
        governance::ProposalStatus::Open,
        "2 of 4 is not 2/3"
    );
    let signed = sign(act(
        "XC",
        XC_OFFICER,
        5,
        Action::Vote {
            proposal: ProposalId([2; 16]),
            yes: false,
        },
    ));
    execute_block(&mut state, &ctx(5, T0 + 4), &[signed]).unwrap();
    assert_eq!(
        query::proposal(&state, &ProposalId([2; 16]))
            .unwrap()
            .unwrap()
            .status,
        governance::ProposalStatus::Open
    );
}

#[test]
fn a_revoked_officer_fails_from_the_next_transaction_on() {
    let mut state = fresh();
    block(
        &mut state,
        1,
        T0,
        vec![act(
            "XA",
            XA_ADMIN,
            1,
            Action::RevokeOfficer {
                key: public(XA_OFFICER),
            },
        )],
    );
    let signed = sign(act(
        "XA",
        XA_OFFICER,
        2,
        Action::SubmitDocument(submission(1, &["XB"])),
    ));
    let outcome = execute_block(&mut state, &ctx(2, T0 + 1), &[signed]).unwrap();
    assert!(outcome.receipts[0]
        .outcome
        .clone()
        .unwrap_err()
        .to_string()
        .contains("revoked"));
    let officers = query::officers_of(&state, &code("XA")).unwrap();
    assert_eq!(officers.iter().filter(|o| o.active).count(), 3);
}

#[test]
fn requests_are_flagged_overdue_after_ninety_days_and_grants_are_audited() {
    let mut state = fresh();
    block(
        &mut state,
        1,
        T0,
        vec![
            act(
                "XA",
                XA_OFFICER,
                1,
                Action::SubmitDocument(submission(1, &["XB"])),
            ),
            act(
                "XB",
                XB_OFFICER,
                2,
                Action::CreateRequest {
                    id: RequestId([1; 16]),
                    to: code("XA"),
                    matter: Matter::Document { id: doc_id(1) },
                    purpose: "origin check".into(),
                    legal_basis: "TFA Art. 12".into(),
                    items: vec!["certificate of origin".into()],
                    confidentiality: "s. 40".into(),
                },
            ),
            act(
                "XC",
                XC_OFFICER,
                3,
                Action::CreateRequest {
                    id: RequestId([2; 16]),
                    to: code("XA"),
                    matter: Matter::Ucr { ucr_index: [1; 32] },
                    purpose: "valuation".into(),
                    legal_basis: "TFA Art. 12".into(),
                    items: vec!["invoice".into()],
                    confidentiality: "s. 40".into(),
                },
            ),
        ],
    );
    let deadline = T0 + request::ANSWER_DEADLINE_MS;
    let listed = query::requests(&state, &code("XA"), Some(deadline + 1)).unwrap();
    assert_eq!(
        listed.iter().map(|r| r.overdue).collect::<Vec<_>>(),
        vec![true, true]
    );
    assert!(query::requests(&state, &code("XA"), Some(deadline))
        .unwrap()
        .iter()
        .all(|r| !r.overdue));
    assert_eq!(query::requests(&state, &code("XB"), None).unwrap().len(), 1);
    block(
        &mut state,
        2,
        T0 + 5,
        vec![act(
            "XA",
            XA_OFFICER,
            4,
            Action::AnswerRequest {
                id: RequestId([2; 16]),
                answer: RequestAnswer::Provide {
                    documents: vec![doc_id(1)],
                },
            },
        )],
    );
    let grants = query::access_grants(&state, &doc_id(1), &code("XC")).unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].purpose, "valuation");
    let overdue: Vec<bool> = query::requests(&state, &code("XA"), Some(deadline + 1))
        .unwrap()
        .iter()
        .map(|r| r.overdue)
        .collect();
    assert_eq!(overdue, vec![true, false]);
    block(
        &mut state,
        3,
        T0 + 6,
        vec![
            act(
                "XC",
                XC_OFFICER,
                5,
                Action::RecordGrantedAccess {
                    request: RequestId([2; 16]),
                    document: doc_id(1),
                    version: 1,
                    officer: public(XC_OFFICER),
                    purpose: "valuation".into(),
                },
            ),
            act(
                "XB",
                XB_OFFICER,
                6,
                Action::RecordAccess {
                    document: doc_id(1),
                    version: 1,
                    officer: public(XB_OFFICER),
                    purpose: "risk".into(),
                },
            ),
        ],
    );
    let by_xc = query::access_log_by_officer(&state, &public(XC_OFFICER), 10).unwrap();
    assert_eq!(by_xc.len(), 1);
    assert_eq!(
        (by_xc[0].administration.as_str(), by_xc[0].purpose.as_str()),
        ("XC", "valuation")
    );
    assert_eq!(
        query::access_log_by_officer(&state, &public(XB_OFFICER), 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(query::access_log(&state, &doc_id(1), 10).unwrap().len(), 2);
}

#[test]
fn each_party_unwraps_the_agreement_ucr_key_and_no_one_else_can() {
    let a = example("export-import.json");
    let info = carnet_contracts::envelope::agreement_key_info(&a.id);
    for party in &a.parties {
        let wrap = a.ucr_key_wrap(party).expect("a wrap per party");
        let key = carnet_contracts::envelope::unwrap_secret(
            wrap,
            &encryption_secret(party.as_str()),
            &info,
        )
        .unwrap();
        assert_eq!(*key, TEST_UCR_KEY, "{party}");
    }
    // XC is not a party: its secret opens no wrap, and a wrap does not open for
    // another agreement's id.
    let wrap = a.ucr_key_wrap(&code("XA")).unwrap();
    let stranger = carnet_contracts::envelope::unwrap_secret(wrap, &encryption_secret("XC"), &info);
    assert!(stranger.unwrap_err().to_string().contains("does not open"));
    let other = carnet_contracts::envelope::agreement_key_info(&AgreementId([0xEE; 16]));
    assert!(
        carnet_contracts::envelope::unwrap_secret(wrap, &encryption_secret("XA"), &other).is_err()
    );
}

#[test]
fn a_genesis_agreement_is_active_from_height_zero_and_files_documents() {
    let mut g = genesis();
    let a = example("export-import.json");
    g.agreements.push(a.clone());
    let mut state = MemoryState::new();
    apply_genesis(&mut state, &g).unwrap();
    let record = agreement::agreement(&state, &a.id).unwrap().unwrap();
    assert_eq!(record.status, agreement::AgreementStatus::Active);
    assert_eq!(record.activated_at, Some(0));
    assert_eq!(record.accepted, a.parties);

    // A genesis whose agreement lacks wraps, or names an inactive party, is refused.
    let mut unwrapped = genesis();
    let mut bare = a.clone();
    bare.ucr_key_wraps.clear();
    unwrapped.agreements.push(bare);
    let err = apply_genesis(&mut MemoryState::new(), &unwrapped).unwrap_err();
    assert!(err.to_string().contains("ucr_key_wraps"), "{err}");
    let mut inactive = genesis();
    let mut with_xd = a.clone();
    with_xd.parties.push(code("XD"));
    inactive.agreements.push(with_ucr_key(with_xd));
    let err = apply_genesis(&mut MemoryState::new(), &inactive).unwrap_err();
    assert!(
        err.to_string()
            .contains("XD is not an active administration"),
        "{err}"
    );
}

#[test]
fn retention_in_seconds_erases_after_that_many_seconds() {
    let mut state = fresh();
    let mut a = example("export-import.json");
    a.retention_days = None;
    a.retention_seconds = Some(20);
    block(
        &mut state,
        1,
        T0,
        [
            agreed(&a, 1),
            vec![act(
                "XA",
                XA_OFFICER,
                3,
                Action::SubmitUnderAgreement {
                    agreement: a.id,
                    submission: submission(1, &["XB"]),
                },
            )],
        ]
        .concat(),
    );
    let meta = query::document_meta(&state, &doc_id(1)).unwrap().unwrap();
    assert_eq!(meta.expires_at_ms, Some(T0 + 20_000));
    assert!(block(&mut state, 2, T0 + 20_000, vec![])
        .erasures
        .is_empty());
    assert_eq!(
        block(&mut state, 3, T0 + 20_001, vec![]).erasures,
        vec![(doc_id(1), 1)]
    );
}

/// Records read once per block (the block's cache of decoded records) must follow the
/// block's own writes: an agreement accepted, and an officer revoked, between two
/// transactions of one block.
#[test]
fn records_changed_mid_block_are_read_as_changed() {
    let mut state = fresh();
    let a = example("export-import.json");
    let propose = act("XA", XA_ADMIN, 1, Action::ProposeAgreement(a.clone()));
    let under = |id: u8, nonce: u64| {
        act(
            "XA",
            XA_OFFICER,
            nonce,
            Action::SubmitUnderAgreement {
                agreement: a.id,
                submission: submission(id, &["XB"]),
            },
        )
    };
    let accept = act("XB", XB_ADMIN, 3, Action::AcceptAgreement { id: a.id });
    let revoke = act(
        "XA",
        XA_ADMIN,
        5,
        Action::RevokeOfficer {
            key: public(XA_OFFICER),
        },
    );
    let signed: Vec<_> = [
        propose,
        under(1, 2),
        accept,
        under(2, 4),
        revoke,
        under(3, 6),
    ]
    .into_iter()
    .map(sign)
    .collect();
    let outcome = execute_block(&mut state, &ctx(1, T0), &signed).unwrap();
    let failure = |i: usize| {
        outcome.receipts[i]
            .outcome
            .clone()
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(failure(0), None);
    assert!(
        failure(1).is_some_and(|e| e.contains("not active")),
        "{:?}",
        failure(1)
    );
    assert_eq!(failure(2), None);
    assert_eq!(
        failure(3),
        None,
        "accepted mid-block: the submission passes"
    );
    assert_eq!(failure(4), None);
    assert!(
        failure(5).is_some_and(|e| e.contains("revoked")),
        "{:?}",
        failure(5)
    );
}
