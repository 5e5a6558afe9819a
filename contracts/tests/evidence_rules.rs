//! Equivocation reports as a rules table: who may report, whom, for which view, and that
//! the ledger keeps one record per (accused, view). Each case is one transaction in the
//! block after [`setup`]; a rejection must leave the state byte-identical to an empty
//! block. The evidence bytes are opaque here (the node verifies them before execution).

mod common;

use carnet_contracts::evidence::{EquivocationReport, MAX_EVIDENCE_BYTES};
use carnet_contracts::execute::{execute_block, query, MemoryState, TxEvent};
use carnet_contracts::*;
use common::*;

use Expect::*;

fn report(accused: &str, view: u64, evidence_len: usize) -> Action {
    Action::ReportEquivocation(EquivocationReport {
        accused: code(accused),
        view,
        evidence: vec![0xE1; evidence_len],
    })
}

/// A report by `reporter`'s node (no officer).
fn by_node(reporter: &str, nonce: u64, action: Action) -> Transaction {
    act(reporter, 0, nonce, action)
}

/// Document 1 (block 1), then XB's node reports XC in view 7 (block 2).
fn setup() -> MemoryState {
    let mut state = state_with_document();
    let outcome = execute_block(
        &mut state,
        &ctx(2, T0 + 100),
        &[sign(by_node("XB", 1, report("XC", 7, 240)))],
    )
    .unwrap();
    assert!(
        outcome.receipts[0].outcome.is_ok(),
        "{:?}",
        outcome.receipts
    );
    state
}

#[test]
#[rustfmt::skip]
fn equivocation_report_rules() {
    let cases = vec![
        Case { name: "a member's node reports another validator", tx: by_node("XA", 10, report("XC", 8, 240)), expect: Accepted },
        Case { name: "the same view of another accused is a new record", tx: by_node("XA", 10, report("XB", 7, 240)), expect: Accepted },
        Case { name: "an inactive member may still be accused", tx: by_node("XA", 10, report("XD", 3, 240)), expect: Accepted },
        Case { name: "evidence of the largest size", tx: by_node("XA", 10, report("XC", 8, MAX_EVIDENCE_BYTES)), expect: Accepted },
        Case { name: "a second report of one (accused, view)", tx: by_node("XA", 10, report("XC", 7, 240)), expect: Rejected("already recorded") },
        Case { name: "the first reporter cannot report it again", tx: by_node("XB", 10, report("XC", 7, 100)), expect: Rejected("already recorded") },
        Case { name: "the accused must be a member", tx: by_node("XA", 10, report("QQ", 8, 240)), expect: Rejected("QQ is not a member") },
        Case { name: "view 0 has no votes", tx: by_node("XA", 10, report("XC", 0, 240)), expect: Rejected("view 0") },
        Case { name: "evidence cannot be empty", tx: by_node("XA", 10, report("XC", 8, 0)), expect: Rejected("0 bytes") },
        Case { name: "evidence is bounded", tx: by_node("XA", 10, report("XC", 8, MAX_EVIDENCE_BYTES + 1)), expect: Rejected("must be 1 to 1024") },
        Case { name: "a report names no officer", tx: act("XA", XA_OFFICER, 10, report("XC", 8, 240)), expect: Rejected("names no officer") },
        Case { name: "a stranger's key cannot report", tx: by_node("ZZ", 10, report("XC", 8, 240)), expect: Rejected("not the node key of any administration") },
        Case { name: "an inactive member cannot report", tx: by_node("XD", 10, report("XC", 8, 240)), expect: Rejected("XD is not active") },
    ];
    run_case_table(&setup(), &ctx(3, T0 + 200), cases);
}

#[test]
fn a_record_names_reporter_height_and_time_and_is_listed_by_accused() {
    let state = setup();
    let all = query::equivocations(&state, None, 100).unwrap();
    assert_eq!(all.len(), 1);
    let record = &all[0];
    assert_eq!(record.report.accused, code("XC"));
    assert_eq!(record.report.view, 7);
    assert_eq!(record.report.evidence, vec![0xE1; 240]);
    assert_eq!(record.reporter, code("XB"));
    assert_eq!(record.signer, public(node_seed("XB")));
    assert_eq!((record.height, record.time_ms), (2, T0 + 100));
    assert_eq!(
        query::equivocations(&state, Some(&code("XC")), 100).unwrap(),
        all
    );
    assert!(query::equivocations(&state, Some(&code("XB")), 100)
        .unwrap()
        .is_empty());
}

#[test]
fn of_two_reports_in_one_block_the_first_is_kept() {
    let mut state = setup();
    let first = sign(by_node("XA", 11, report("XB", 9, 200)));
    let second = sign(by_node("XC", 12, report("XB", 9, 300)));
    let outcome = execute_block(&mut state, &ctx(3, T0 + 200), &[first, second]).unwrap();
    match &outcome.receipts[0].outcome {
        Ok(TxEvent::EquivocationRecorded(r)) => assert_eq!(r.reporter, code("XA")),
        other => panic!("first report: {other:?}"),
    }
    let refused = outcome.receipts[1].outcome.as_ref().unwrap_err();
    assert!(
        refused.to_string().contains("already recorded"),
        "{refused}"
    );
    let listed = query::equivocations(&state, Some(&code("XB")), 100).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reporter, code("XA"));
    assert_eq!(listed[0].report.evidence.len(), 200);
    // Listing is by accused then view, and bounded by the limit asked.
    assert_eq!(query::equivocations(&state, None, 1).unwrap().len(), 1);
    let views: Vec<(String, u64)> = query::equivocations(&state, None, 100)
        .unwrap()
        .iter()
        .map(|r| (r.report.accused.to_string(), r.report.view))
        .collect();
    assert_eq!(views, vec![("XB".into(), 9), ("XC".into(), 7)]);
}
