//! The CI fault-scenario suite, with the process runner on real `carnet-node` processes:
//! leader kill under load, an f-node partition and heal, an equivocating validator, a
//! paused node, a full-network restart, a 2 | 2 split — and the proof that the checks
//! bite: the split against nodes built with `mutation-weak-quorum` (quorum f + 1) must
//! fail, naming a safety invariant.
//!
//! Scenarios run one at a time (they share two cores). Binaries: the release
//! `carnet-node` from `CARNET_BIN_DIR` or `target/release/`; `CARNET_FAULTY_BIN` for
//! Byzantine nodes and `CARNET_MUTANT_BIN` for the mutation check (scripts/test.sh builds
//! both). A test missing one skips with a loud message, unless `CI` is set: then it fails.

use carnet_testnet::process;
use carnet_testnet::process_runner::{
    namespaces_unavailable, Isolation, ProcessRunner, ProcessRunnerOptions,
};
use carnet_testnet::scenario::report::{names, render_table, ScenarioReport};
use carnet_testnet::scenario::{self, engine, Scenario};
use std::path::PathBuf;
use std::sync::Mutex;

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenario_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// The binary in `var`, or `None` after a loud skip message; panics under CI.
fn optional_binary(var: &str, hint: &str, test: &str) -> Option<PathBuf> {
    match scenario::binary_from_env(var, hint) {
        Ok(path) => Some(path),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI is set but {e}")
        }
        Err(e) => {
            eprintln!("\n!!!!!!!!!! SKIPPED {test}: {e}\n!!!!!!!!!! (CI would fail here)\n");
            None
        }
    }
}

/// Whether a scenario that cuts links can run here; a loud skip message if not, a
/// panic under CI.
fn can_cut_links(test: &str) -> bool {
    match namespaces_unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI is set but network namespaces are unavailable: {why}")
        }
        Some(why) => {
            eprintln!(
                "\n!!!!!!!!!! SKIPPED {test}: it cuts links, which needs network namespaces: \
                 {why}\n!!!!!!!!!! (CI would fail here)\n"
            );
            false
        }
    }
}

/// Runs scenario `name` on fresh processes; returns the report, or `None` after a loud
/// skip when the scenario cuts links and this machine cannot.
fn run(name: &str, faulty: Option<PathBuf>, mutant: Option<PathBuf>) -> Option<ScenarioReport> {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scenario = Scenario::load(&scenario_file(name)).expect("scenario parses");
    if scenario.cuts_links() && !can_cut_links(name) {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("carnet-scn-{name}-"))
        .tempdir()
        .expect("temp dir");
    let net = dir.path().join("net");
    let options = ProcessRunnerOptions {
        node_binary: process::locate_binary(process::NODE_BINARY).expect("carnet-node binary"),
        faulty_binary: faulty,
        mutant_binary: mutant,
        isolation: Isolation::Auto,
    };
    let mut runner = ProcessRunner::create(&scenario, &net, &options)
        .unwrap_or_else(|e| panic!("{name}: cannot lay out the network: {e}"));
    let report = engine::run(&scenario, &mut runner, &net, &engine::RunOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("{}", render_table(&report));
    assert!(
        net.join(engine::REPORT_FILE).is_file(),
        "the report is written into the testnet dir"
    );
    if !report.passed {
        // Keep the logs and the report (not the stores) for whoever reads the failure.
        let kept = dir.keep();
        if let Ok(nodes) = std::fs::read_dir(kept.join("net").join("nodes")) {
            for node in nodes.flatten() {
                let _ = std::fs::remove_dir_all(node.path().join("data"));
            }
        }
        eprintln!("[{name}] logs and report kept in {}", kept.display());
    }
    Some(report)
}

/// The scenario passed; otherwise the failure names the invariants and their findings.
fn assert_passed(report: &ScenarioReport) {
    let failures: Vec<String> = report
        .invariants
        .iter()
        .filter(|i| !i.passed)
        .map(|i| format!("{}: {}", i.name, i.detail))
        .collect();
    assert!(
        report.passed,
        "scenario {} failed (logs in {}):\n{}",
        report.scenario,
        report.dir.display(),
        failures.join("\n")
    );
    // The report states what a reader needs, and the checks saw real data.
    assert!(report.load.acknowledged > 0);
    assert_eq!(
        report.documents.found_on_every_node, report.load.acknowledged,
        "every acknowledged document found on every honest node"
    );
    assert!(report.heights.compared >= 1);
    assert!(report.recovery.recovered_after_secs.is_some());
}

#[test]
fn leader_kill_under_load() {
    let report = run("leader-kill", None, None).expect("needs no namespaces");
    assert_passed(&report);
    assert!(
        report.timeline[0].nodes.len() == 1,
        "the leader was resolved to one node"
    );
}

#[test]
fn minority_partition_and_heal() {
    if let Some(report) = run("minority-partition", None, None) {
        assert_passed(&report);
    }
}

#[test]
fn equivocating_validator() {
    let Some(faulty) = optional_binary(
        scenario::FAULTY_BIN_ENV,
        scenario::FAULTY_BUILD_HINT,
        "equivocating_validator",
    ) else {
        return;
    };
    let report = run("equivocating-validator", Some(faulty), None).expect("needs no namespaces");
    assert_passed(&report);
    let evidence = report
        .invariant(names::EQUIVOCATION_EVIDENCE)
        .expect("evidence checked");
    assert!(
        evidence.detail.contains("XD recorded by"),
        "{}",
        evidence.detail
    );
}

#[test]
fn paused_node() {
    let report = run("paused-node", None, None).expect("needs no namespaces");
    assert_passed(&report);
}

#[test]
fn full_network_restart() {
    let report = run("full-restart", None, None).expect("needs no namespaces");
    assert_passed(&report);
    assert_eq!(report.timeline[0].nodes.len(), 4, "every node was killed");
}

#[test]
fn split_brain_halts_and_resumes() {
    if let Some(report) = run("split-brain", None, None) {
        assert_passed(&report);
    }
}

/// The proof the checks bite: with the quorum lowered to f + 1, both halves of a 2 | 2
/// split finalize different blocks, and the report must name the broken invariant.
#[test]
fn a_weak_quorum_build_fails_with_a_named_safety_invariant() {
    let Some(mutant) = optional_binary(
        scenario::MUTANT_BIN_ENV,
        scenario::MUTANT_BUILD_HINT,
        "a_weak_quorum_build_fails_with_a_named_safety_invariant",
    ) else {
        return;
    };
    let Some(report) = run("split-brain", None, Some(mutant)) else {
        return;
    };
    assert!(!report.passed, "a weak-quorum network passed split-brain");
    let safety = [names::SAME_BLOCKS, names::NO_HEIGHT_FINALIZED_TWICE];
    assert!(
        report.failed.iter().any(|f| safety.contains(&f.as_str())),
        "the failure names a safety invariant: {:?}",
        report.failed
    );
    let detail = &report
        .invariant(names::NO_HEIGHT_FINALIZED_TWICE)
        .expect("checked")
        .detail;
    eprintln!("[mutation] caught: {:?}; {detail}", report.failed);
}
