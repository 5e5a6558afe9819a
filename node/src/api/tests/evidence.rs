//! Equivocation evidence: a node's report becomes a ledger record that every officer
//! can list; a report whose evidence does not verify never reaches the mempool.

use axum::http::{Method, StatusCode};
use carnet_consensus::{vote_message, Equivocation, SignedVote, VoteKind};
use carnet_contracts::evidence::EquivocationReport;
use carnet_contracts::{Action, AdminCode};
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};

use super::*;
use crate::mempool::AdmissionError;
use crate::p2p::TxGossip;

/// XC is validator 2; its validator key is seed 30 + 1 (`test_support::admin`).
const XC_VALIDATOR: u16 = 2;

/// A vote of XC's validator under the namespace the nodes run consensus with.
fn xc_vote(net: &Net, kind: VoteKind, view: u64, digest: Option<u8>) -> SignedVote {
    let digest = digest.map(|d| [d; 32]);
    let namespace = net.node("XA").shared.namespace();
    let message = vote_message(&namespace, kind, view, digest.as_ref());
    SignedVote {
        kind,
        view,
        digest,
        signer: XC_VALIDATOR,
        signature: key(31).sign(&message).to_bytes().to_vec(),
    }
}

fn double_notarize(net: &Net, view: u64) -> Equivocation {
    Equivocation {
        validator: XC_VALIDATOR,
        first: xc_vote(net, VoteKind::Notarize, view, Some(1)),
        second: xc_vote(net, VoteKind::Notarize, view, Some(2)),
    }
}

async fn list(net: &Net, query: &str) -> (StatusCode, Value) {
    net.call(
        "XA",
        &xa_plain(),
        Method::GET,
        &format!("/v1/evidence{query}"),
        Value::Null,
    )
    .await
}

#[tokio::test]
async fn a_reported_equivocation_is_on_the_ledger_for_every_officer() {
    let net = Net::new();
    let (status, body) = list(&net, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"evidence": []}));

    let evidence = double_notarize(&net, 5);
    crate::evidence::report(&net.node("XA").shared, &evidence);
    net.settle().await;
    // XB saw it too: its report is final but refused by the ledger as a duplicate.
    let tx = crate::evidence::report_tx(&net.node("XB").shared, &evidence).unwrap();
    let hash = tx.hash();
    let waiter = net.node("XB").shared.wait_for(hash).unwrap();
    net.node("XB").shared.submit_one(tx, None).unwrap().unwrap();
    let outcome = waiter.await.unwrap();
    assert!(
        outcome
            .result
            .as_ref()
            .is_err_and(|e| e.contains("already recorded")),
        "{:?}",
        outcome.result
    );

    let (status, body) = list(&net, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = body["evidence"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    let record = &records[0];
    assert_eq!(record["accused"], "XC");
    assert_eq!(record["view"], 5);
    assert_eq!(record["validator"], XC_VALIDATOR);
    assert_eq!(
        record["first"],
        json!({"kind": "notarize", "digest": hex::encode([1u8; 32])})
    );
    assert_eq!(
        record["second"],
        json!({"kind": "notarize", "digest": hex::encode([2u8; 32])})
    );
    assert_eq!(record["reporter"], "XA");
    assert!(record["height"].as_u64().unwrap() >= 1);
    assert!(record["time_ms"].as_u64().unwrap() > 0);
    assert_eq!(
        record["evidence"],
        hex::encode(evidence.to_bytes().unwrap())
    );

    // Every node holds the same record; any of its officers may list it.
    let (status, on_xb) = net
        .call(
            "XB",
            &xb_auditor(),
            Method::GET,
            "/v1/evidence",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(on_xb, body);

    let (_, by_xc) = list(&net, "?accused=XC").await;
    assert_eq!(by_xc, body);
    let (_, by_xb) = list(&net, "?accused=XB").await;
    assert_eq!(by_xb, json!({"evidence": []}));
    let answer = list(&net, "?accused=xc").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["accused"]);
    let answer = list(&net, "?suspect=XC").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["unknown parameter"]);
    let answer = net
        .call("XA", &xb_admin(), Method::GET, "/v1/evidence", Value::Null)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["node of XA"]);
}

#[tokio::test]
async fn reports_whose_evidence_fails_are_refused_on_admission() {
    let net = Net::new();
    let xb = &net.node("XB").shared;
    let evidence = double_notarize(&net, 8);
    let report = |accused: &str, view: u64, bytes: Vec<u8>| {
        xb.node_tx(
            None,
            Action::ReportEquivocation(EquivocationReport {
                accused: AdminCode(accused.into()),
                view,
                evidence: bytes,
            }),
        )
    };
    let mut forged = evidence.clone();
    forged.second.signature[5] ^= 1;
    let honest = Equivocation {
        validator: XC_VALIDATOR,
        first: xc_vote(&net, VoteKind::Notarize, 8, Some(1)),
        second: xc_vote(&net, VoteKind::Nullify, 8, None),
    };
    let cases = [
        (
            "wrong accused",
            report("XB", 8, evidence.to_bytes().unwrap()),
            "run by XC, but the report accuses XB",
        ),
        (
            "wrong view",
            report("XC", 9, evidence.to_bytes().unwrap()),
            "for view 8, the report says view 9",
        ),
        (
            "forged signature",
            report("XC", 8, forged.to_bytes().unwrap()),
            "invalid signature",
        ),
        (
            "not a conflict",
            report("XC", 8, honest.to_bytes().unwrap()),
            "do not conflict",
        ),
        (
            "not evidence at all",
            report("XC", 8, vec![7; 40]),
            "does not decode",
        ),
    ];
    let batch: Vec<TxGossip> = cases
        .iter()
        .map(|(_, tx, _)| TxGossip {
            tx: tx.clone(),
            ciphertext: None,
        })
        .chain(std::iter::once(TxGossip {
            tx: report("XC", 8, evidence.to_bytes().unwrap()),
            ciphertext: None,
        }))
        .collect();
    let results = crate::evidence::submit_screened(xb, batch);
    assert_eq!(results.len(), cases.len() + 1);
    for ((name, _, needle), result) in cases.iter().zip(&results) {
        match result {
            Err(AdmissionError::Invalid(reason)) => {
                assert!(
                    reason.contains(needle),
                    "{name}: `{reason}` lacks `{needle}`"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The valid report in the same batch is admitted and becomes a record.
    assert!(results[cases.len()].is_ok(), "{:?}", results[cases.len()]);
    net.settle().await;
    let (status, body) = list(&net, "").await;
    assert_eq!(status, StatusCode::OK);
    let records = body["evidence"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["reporter"], "XB");
    assert_eq!(records[0]["view"], 8);
}
