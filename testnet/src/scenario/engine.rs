//! Runs one [`Scenario`] over any [`Runner`]: start the network, watch every node's
//! head, drive the load through the HTTP API, apply the timeline at its offsets, wait
//! for recovery and convergence, then check the invariants and write the report.
//!
//! Every wait has a bound; a node that does not answer is a finding, never a hang. The
//! engine must never count a document as found, or blocks as agreed, without having
//! fetched them from the node in question.

use super::report::{
    names, AppliedStep, DocumentsReport, HeightsReport, InvariantResult, LoadReport, NodeOutcome,
    RecoveryReport, ScenarioReport,
};
use super::traffic::{self, Acknowledged, LoadOutcome, LoadTarget};
use super::{Action, NodeSpec, Scenario, Target};
use crate::invariants::{self, HeadWatch, LogFindings};
use crate::layout::ADMINISTRATIONS;
use crate::runner::{Runner, RunnerError, RunnerNode};
use crate::{Result, TestnetError};
use carnet_cli::client::Health;
use carnet_cli::NodeClient;
use ed25519_dalek::SigningKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often each node's head is sampled.
pub const HEAD_POLL_MS: u64 = 250;
/// Timeout of one head sample (a paused node must not stall the watcher).
pub const HEAD_TIMEOUT_MS: u64 = 1_000;
/// Name of the report file written into the testnet directory.
pub const REPORT_FILE: &str = "scenario-report.json";
/// How long the evidence check waits for equivocation reports to be final on every
/// honest node's ledger.
pub const EVIDENCE_WAIT_SECS: u64 = 30;

/// Bounds of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Start of the network, and its first block on every honest node.
    pub start_timeout: Duration,
    /// After the load and the recovery: every honest node at the highest height.
    pub converge_timeout: Duration,
    /// Leave the nodes running after the run (for inspection).
    pub keep_running: bool,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            start_timeout: Duration::from_secs(90),
            converge_timeout: Duration::from_secs(60),
            keep_running: false,
            progress: true,
        }
    }
}

fn runner_error(what: &str) -> impl FnOnce(RunnerError) -> TestnetError + '_ {
    move |e| TestnetError::Invalid(format!("{what}: {e}"))
}

/// A node as the engine drives it.
struct Member {
    spec: NodeSpec,
    node: RunnerNode,
    /// Signs as the officer of the node's administration.
    client: NodeClient,
    officer: SigningKey,
}

fn officer_key(profile: &Path) -> Result<SigningKey> {
    let profile = carnet_cli::profile::Profile::load(profile)?;
    let key = profile
        .key
        .ok_or_else(|| TestnetError::Invalid("a node's CLI profile names no officer key".into()))?;
    Ok(carnet_cli::profile::read_signing_key(&key)?)
}

/// What the timeline left behind.
#[derive(Default)]
struct TimelineState {
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
}

/// Runs `scenario` on `runner` (whose testnet lives in `dir`), stops the runner unless
/// `keep_running`, writes `DIR/scenario-report.json` and returns the report. `Err` only
/// when the network could not be started or the report not written; every failed
/// check is in the report.
pub fn run(
    scenario: &Scenario,
    runner: &mut dyn Runner,
    dir: &Path,
    options: &RunOptions,
) -> Result<ScenarioReport> {
    let started = Instant::now();
    let outcome = run_started(scenario, runner, dir, options, started);
    if !options.keep_running {
        if let Err(e) = runner.stop_all() {
            eprintln!("[scenario {}] stopping the network: {e}", scenario.name);
        }
    }
    let report = outcome?;
    let path = dir.join(REPORT_FILE);
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| TestnetError::Invalid(format!("cannot encode the report: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(TestnetError::io(&path))?;
    Ok(report)
}

fn run_started(
    scenario: &Scenario,
    runner: &mut dyn Runner,
    dir: &Path,
    options: &RunOptions,
    started: Instant,
) -> Result<ScenarioReport> {
    let say = |message: String| {
        if options.progress {
            eprintln!(
                "[scenario {} +{:.1}s] {message}",
                scenario.name,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let nodes: BTreeMap<String, RunnerNode> = runner
        .nodes()
        .into_iter()
        .map(|n| (n.code.clone(), n))
        .collect();
    let mut members = Vec::new();
    for spec in scenario.node_specs() {
        let node = nodes.get(&spec.code).cloned().ok_or_else(|| {
            TestnetError::Invalid(format!(
                "the {} runner has no node {} that the scenario declares",
                runner.kind(),
                spec.code
            ))
        })?;
        let officer = officer_key(&node.profile_path)?;
        let client = NodeClient::new(&node.api_url, officer.clone())?;
        members.push(Member {
            spec,
            node,
            client,
            officer,
        });
    }
    let honest: Vec<String> = members
        .iter()
        .filter(|m| m.spec.honest)
        .map(|m| m.spec.code.clone())
        .collect();

    say(format!(
        "starting {} nodes with the {} runner",
        members.len(),
        runner.kind()
    ));
    runner
        .start_all(options.start_timeout)
        .map_err(runner_error("starting the network"))?;
    wait_first_block(&members, options.start_timeout)?;
    say("every honest node has a final block".into());

    // Watch heads from now on; the scenario clock starts with the load.
    let t0 = Instant::now();
    let watch = Arc::new(Mutex::new(HeadWatch::default()));
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watchers = spawn_watchers(&members, &watch, &stop_watch, t0)?;

    // Load.
    let load_codes: Vec<String> = scenario.load.to.clone().unwrap_or_else(|| {
        members
            .iter()
            .filter(|m| m.spec.honest && m.spec.code == m.spec.administration)
            .map(|m| m.spec.code.clone())
            .collect()
    });
    let validators: Vec<String> = ADMINISTRATIONS
        .iter()
        .take(scenario.nodes)
        .map(|(c, _)| c.to_string())
        .collect();
    let targets: Vec<LoadTarget> = load_codes
        .iter()
        .filter_map(|code| members.iter().find(|m| &m.spec.code == code))
        .map(|m| LoadTarget {
            code: m.spec.code.clone(),
            api_url: m.node.api_url.clone(),
            officer: m.officer.clone(),
            recipients: validators
                .iter()
                .filter(|v| **v != m.spec.administration)
                .cloned()
                .collect(),
        })
        .collect();
    let stop_load = Arc::new(AtomicBool::new(false));
    let load_thread = {
        let spec = scenario.load.clone();
        let stop = Arc::clone(&stop_load);
        let tag = format!(
            "{}{:x}",
            scenario
                .name
                .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
            rand::random::<u32>()
        );
        std::thread::spawn(move || {
            traffic::run(
                spec.rate,
                spec.duration_secs,
                spec.payload_bytes,
                spec.concurrency,
                &targets,
                &tag,
                &stop,
            )
        })
    };
    say(format!(
        "load: {} docs/s for {} s to {}",
        scenario.load.rate,
        scenario.load.duration_secs,
        load_codes.join(" ")
    ));

    // Timeline.
    let mut state = TimelineState::default();
    let mut applied = Vec::new();
    for step in &scenario.timeline {
        let due = t0 + Duration::from_secs_f64(step.at_secs);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let applied_at_secs = t0.elapsed().as_secs_f64();
        let result = apply(&step.action, runner, &members, scenario.nodes, &mut state);
        let (nodes_acted, error) = match result {
            Ok(nodes) => (nodes, None),
            Err((nodes, e)) => (nodes, Some(e)),
        };
        say(format!(
            "{}{}{}",
            step.action.describe(),
            if nodes_acted.is_empty() {
                String::new()
            } else {
                format!(" → {}", nodes_acted.join(" "))
            },
            error
                .as_ref()
                .map(|e| format!(" FAILED: {e}"))
                .unwrap_or_default()
        ));
        applied.push(AppliedStep {
            at_secs: step.at_secs,
            applied_at_secs,
            action: step.action.describe(),
            nodes: nodes_acted,
            error,
        });
    }
    let load: LoadOutcome = load_thread.join().unwrap_or_else(|_| LoadOutcome {
        failures: BTreeMap::from([("load thread panicked".to_string(), 1)]),
        ..LoadOutcome::default()
    });
    say(format!(
        "load done: sent {}, acknowledged {}",
        load.sent,
        load.acknowledged.len()
    ));
    stop_load.store(true, Ordering::Relaxed);

    // Liveness is measured from the last step — or, without steps, from the end of the
    // load: the chain must go on growing under whatever the scenario declared.
    let last_step_ms = applied
        .last()
        .map(|s| (s.applied_at_secs * 1000.0) as u64)
        .unwrap_or_else(|| t0.elapsed().as_millis() as u64);
    let height_at_last_step = watch_lock(&watch).max_height_at(&honest, last_step_ms);

    // Honest nodes expected up at the end.
    let expected: Vec<&Member> = members
        .iter()
        .filter(|m| {
            m.spec.honest
                && !state.killed.contains(&m.spec.code)
                && !state.paused.contains(&m.spec.code)
        })
        .collect();
    let expected_codes: Vec<String> = expected.iter().map(|m| m.spec.code.clone()).collect();

    // Liveness: every expected node `resume_blocks` above the height at the last step.
    let target_height = height_at_last_step.unwrap_or(0) + scenario.expect.resume_blocks;
    let liveness_deadline = t0
        + Duration::from_millis(last_step_ms)
        + Duration::from_secs_f64(scenario.expect.liveness_secs);
    loop {
        let reached = {
            let w = watch_lock(&watch);
            expected_codes
                .iter()
                .all(|c| w.height(c).is_some_and(|h| h >= target_height))
        };
        if reached || Instant::now() >= liveness_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(HEAD_POLL_MS));
    }
    let recovered_after_secs = {
        let w = watch_lock(&watch);
        let times: Vec<Option<u64>> = expected_codes
            .iter()
            .map(|c| w.reached_at(c, target_height, last_step_ms))
            .collect();
        if !times.is_empty() && times.iter().all(Option::is_some) {
            times
                .into_iter()
                .flatten()
                .max()
                .map(|t| t.saturating_sub(last_step_ms) as f64 / 1000.0)
        } else {
            None
        }
    };
    say(format!(
        "recovery to height {target_height}: {}",
        recovered_after_secs
            .map(|s| format!("{s:.1} s after the last step"))
            .unwrap_or_else(|| "not reached".into())
    ));

    // Convergence: every expected node at the highest height any of them (or any
    // acknowledgement) reached.
    let max_ack = load
        .acknowledged
        .iter()
        .map(|a| a.height)
        .max()
        .unwrap_or(0);
    let converge_to = {
        let w = watch_lock(&watch);
        expected_codes
            .iter()
            .filter_map(|c| w.height(c))
            .max()
            .unwrap_or(0)
            .max(max_ack)
    };
    // Honest nodes that already finalized different blocks will never converge: the
    // verdict is known, do not wait for it.
    let forked = watch_lock(&watch).conflict_count > 0;
    let converge_deadline = if forked {
        Instant::now()
    } else {
        Instant::now() + options.converge_timeout
    };
    loop {
        let done = {
            let w = watch_lock(&watch);
            expected_codes
                .iter()
                .all(|c| w.height(c).is_some_and(|h| h >= converge_to))
        };
        if done || Instant::now() >= converge_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(HEAD_POLL_MS));
    }
    stop_watch.store(true, Ordering::Relaxed);
    for w in watchers {
        let _ = w.join();
    }
    let watch = watch_lock(&watch).clone();
    let height_at_start = watch.first_height(&honest);
    say(format!(
        "checking invariants on {}",
        expected_codes.join(" ")
    ));

    // Heads now.
    let heads: BTreeMap<String, Option<Health>> = members
        .iter()
        .map(|m| (m.spec.code.clone(), m.client.healthz().ok()))
        .collect();
    let end_heights: Vec<u64> = expected_codes
        .iter()
        .filter_map(|c| heads.get(c).and_then(|h| h.as_ref()).map(|h| h.height))
        .collect();
    let compare_to = end_heights.iter().copied().min().unwrap_or(0);
    let expected_clients: Vec<(String, NodeClient)> = expected
        .iter()
        .map(|m| {
            Ok((
                m.spec.code.clone(),
                NodeClient::new(&m.node.api_url, m.officer.clone())?,
            ))
        })
        .collect::<Result<_>>()?;
    let chain =
        invariants::compare_chains(&expected_clients, compare_to, carnet_cli::client::now_ms());

    let (documents, found_per_node) = check_documents(&load.acknowledged, &expected_clients);

    // Logs of every honest node (a killed one's too: it may have crashed first).
    let logs: BTreeMap<String, LogFindings> = members
        .iter()
        .map(|m| {
            let findings = runner
                .logs(&m.spec.code)
                .map(|text| invariants::scan_logs(&text))
                .unwrap_or_else(|e| LogFindings {
                    alarming: vec![format!("logs unreadable: {e}")],
                    ..LogFindings::default()
                });
            (m.spec.code.clone(), findings)
        })
        .collect();
    let running: BTreeMap<String, bool> = members
        .iter()
        .map(|m| (m.spec.code.clone(), runner.is_running(&m.spec.code)))
        .collect();

    let mut results = Vec::new();
    let mut check = |name: &str, passed: bool, detail: String| {
        results.push(InvariantResult {
            name: name.to_string(),
            passed,
            detail,
        })
    };

    // same_blocks
    let same = compare_to >= 1
        && chain.compared == compare_to
        && chain.divergent_heights == 0
        && chain.errors.is_empty();
    check(
        names::SAME_BLOCKS,
        same,
        if compare_to == 0 {
            format!(
                "no block final on every honest node ({})",
                expected_codes.join(" ")
            )
        } else if same {
            format!(
                "heights 1..={compare_to} identical on {}",
                expected_codes.join(" ")
            )
        } else {
            format!(
                "{} of {compare_to} heights compared, {} divergent; {}",
                chain.compared,
                chain.divergent_heights,
                chain
                    .divergences
                    .iter()
                    .chain(&chain.errors)
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
    );

    // no_height_finalized_twice
    let twice_in_logs: Vec<String> = logs
        .iter()
        .filter(|(code, f)| honest.contains(code) && !f.finalized_twice.is_empty())
        .map(|(code, f)| {
            format!(
                "{code} logged heights {:?} finalized twice",
                f.finalized_twice
            )
        })
        .collect();
    check(
        names::NO_HEIGHT_FINALIZED_TWICE,
        watch.conflict_count == 0 && twice_in_logs.is_empty(),
        if watch.conflict_count == 0 && twice_in_logs.is_empty() {
            format!(
                "heads of {} sampled every {HEAD_POLL_MS} ms: one block per height, never back",
                honest.join(" ")
            )
        } else {
            watch
                .conflicts
                .iter()
                .chain(&twice_in_logs)
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
                + &format!(" ({} contradictions)", watch.conflict_count)
        },
    );

    // block_times_sane
    check(
        names::BLOCK_TIMES_SANE,
        chain.time_violations.is_empty() && compare_to >= 1,
        if chain.time_violations.is_empty() {
            format!("{compare_to} block times non-decreasing and not in the future")
        } else {
            chain
                .time_violations
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        },
    );

    // documents_everywhere
    let docs_ok = documents.problems.is_empty()
        && documents.found_on_every_node == documents.acknowledged
        && !expected_codes.is_empty();
    check(
        names::DOCUMENTS_EVERYWHERE,
        docs_ok,
        format!(
            "{} of {} acknowledged documents identical on every honest node ({}){}",
            documents.found_on_every_node,
            documents.acknowledged,
            expected_codes.join(" "),
            if documents.problems.is_empty() {
                String::new()
            } else {
                format!(
                    "; {}",
                    documents
                        .problems
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
    );

    // equivocation_evidence: a final record on every honest node's ledger against every
    // equivocating validator, and none against an honest one.
    let wanted = scenario.expected_evidence();
    let ledger = invariants::ledger_evidence(
        &expected_clients,
        &wanted,
        Duration::from_secs(EVIDENCE_WAIT_SECS),
    );
    let missing = ledger.missing(&wanted);
    let honest_codes: BTreeSet<String> = honest.iter().cloned().collect();
    let falsely = ledger.falsely_accused(&honest_codes);
    let errors: Vec<String> = ledger
        .accused
        .iter()
        .filter_map(|(node, a)| a.as_ref().err().map(|e| format!("{node}: {e}")))
        .collect();
    check(
        names::EQUIVOCATION_EVIDENCE,
        missing.is_empty() && falsely.is_empty(),
        if !falsely.is_empty() {
            format!(
                "honest administration(s) {} accused on the ledger",
                falsely.iter().cloned().collect::<Vec<_>>().join(" ")
            )
        } else if !missing.is_empty() {
            format!(
                "no final record on the ledger within {EVIDENCE_WAIT_SECS} s: {}{}",
                missing
                    .iter()
                    .map(|(node, m)| format!("{node} lacks {}", m.join(" ")))
                    .collect::<Vec<_>>()
                    .join("; "),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors.join("; "))
                }
            )
        } else if wanted.is_empty() {
            format!(
                "no equivocating validator in this scenario; no honest administration accused \
                 on the ledger of {}",
                expected_codes.join(" ")
            )
        } else {
            wanted
                .iter()
                .map(|w| {
                    format!(
                        "{w} recorded by {} (a final record on each one's ledger)",
                        expected_codes.join(" ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    );

    // liveness_after_heal
    let bound = scenario.expect.liveness_secs;
    let live = recovered_after_secs.is_some_and(|s| s <= bound) && !expected_codes.is_empty();
    check(
        names::LIVENESS_AFTER_HEAL,
        live,
        match recovered_after_secs {
            Some(s) => format!(
                "every honest node at height {target_height} {s:.1} s after the last step (bound {bound:.0} s)"
            ),
            None => {
                let w = &watch;
                let lagging: Vec<String> = expected_codes
                    .iter()
                    .map(|c| format!("{c}={}", w.height(c).map(|h| h.to_string()).unwrap_or("-".into())))
                    .collect();
                format!(
                    "honest nodes did not reach height {target_height} within {bound:.0} s of the last step ({})",
                    lagging.join(" ")
                )
            }
        },
    );

    // no_crash_or_corruption
    let mut crashes = Vec::new();
    for m in members.iter().filter(|m| m.spec.honest) {
        let code = &m.spec.code;
        let stopped = state.killed.contains(code);
        if !stopped && !running.get(code).copied().unwrap_or(false) {
            crashes.push(format!("{code} is not running"));
        }
        if let Some(f) = logs.get(code) {
            for line in f.alarming.iter().take(2) {
                crashes.push(format!("{code}: {line}"));
            }
        }
    }
    check(
        names::NO_CRASH_OR_CORRUPTION,
        crashes.is_empty(),
        if crashes.is_empty() {
            format!(
                "{} running, no FATAL/panic/corruption in their logs",
                honest
                    .iter()
                    .filter(|c| !state.killed.contains(*c))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        } else {
            crashes.into_iter().take(4).collect::<Vec<_>>().join("; ")
        },
    );

    // load_acknowledged
    let fraction = scenario.expect.min_acknowledged_fraction;
    let acked = load.acknowledged.len() as u64;
    let load_ok = load.sent > 0 && acked as f64 >= fraction * load.sent as f64 && acked > 0;
    check(
        names::LOAD_ACKNOWLEDGED,
        load_ok,
        format!(
            "{acked} of {} sent acknowledged (at least {:.0} % required)",
            load.sent,
            fraction * 100.0
        ),
    );

    // timeline_applied
    let failed_steps: Vec<String> = applied
        .iter()
        .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.action)))
        .collect();
    check(
        names::TIMELINE_APPLIED,
        failed_steps.is_empty(),
        if failed_steps.is_empty() {
            format!("{} steps carried out", applied.len())
        } else {
            failed_steps.join("; ")
        },
    );

    let node_outcomes: Vec<NodeOutcome> = members
        .iter()
        .map(|m| {
            let code = &m.spec.code;
            let head = heads.get(code).cloned().flatten();
            NodeOutcome {
                code: code.clone(),
                role: match (m.spec.honest, m.spec.byzantine) {
                    (true, _) => "honest".into(),
                    (false, Some(mode)) => format!("byzantine:{}", mode.name()),
                    (false, None) => "byzantine:twin-original".into(),
                },
                running: running.get(code).copied().unwrap_or(false),
                stopped_by_scenario: state.killed.contains(code) || state.paused.contains(code),
                height: head.as_ref().map(|h| h.height),
                last_block_hash: head.and_then(|h| h.last_block_hash),
                documents_found: found_per_node.get(code).copied().unwrap_or(0),
                evidence: logs
                    .get(code)
                    .map(|f| f.evidence.iter().cloned().collect())
                    .unwrap_or_default(),
            }
        })
        .collect();

    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.clone())
        .collect();
    let report = ScenarioReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        file: scenario.source.clone(),
        runner: runner.kind().to_string(),
        dir: dir.to_path_buf(),
        passed: failed.is_empty(),
        failed,
        duration_secs: started.elapsed().as_secs_f64(),
        load: LoadReport::from_outcome(
            scenario.load.rate,
            scenario.load.duration_secs,
            scenario.load.payload_bytes,
            &load,
        ),
        documents,
        heights: HeightsReport {
            at_start: height_at_start,
            at_last_step: height_at_last_step,
            at_end_min: end_heights.iter().copied().min(),
            at_end_max: end_heights.iter().copied().max(),
            compared: chain.compared,
        },
        recovery: RecoveryReport {
            from_secs: last_step_ms as f64 / 1000.0,
            bound_secs: bound,
            target_height: Some(target_height),
            recovered_after_secs,
        },
        timeline: applied,
        nodes: node_outcomes,
        invariants: results,
    };
    say(if report.passed {
        "all invariants hold".to_string()
    } else {
        format!("FAILED: {}", report.failed.join(", "))
    });
    Ok(report)
}

fn watch_lock(watch: &Mutex<HeadWatch>) -> std::sync::MutexGuard<'_, HeadWatch> {
    watch.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until every honest node answers with a height ≥ 1.
fn wait_first_block(members: &[Member], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut lagging = None;
        for m in members.iter().filter(|m| m.spec.honest) {
            match m.client.healthz() {
                Ok(h) if h.height >= 1 => {}
                Ok(h) => lagging = Some(format!("{} at height {}", m.spec.code, h.height)),
                Err(e) => lagging = Some(format!("{} not answering: {e}", m.spec.code)),
            }
        }
        let Some(why) = lagging else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(TestnetError::Timeout(format!(
                "the network did not finalize a first block within {} s: {why}",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One thread per node sampling `GET /healthz` into `watch` until `stop`.
fn spawn_watchers(
    members: &[Member],
    watch: &Arc<Mutex<HeadWatch>>,
    stop: &Arc<AtomicBool>,
    t0: Instant,
) -> Result<Vec<std::thread::JoinHandle<()>>> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(HEAD_TIMEOUT_MS))
        .connect_timeout(Duration::from_millis(HEAD_TIMEOUT_MS))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| TestnetError::Invalid(format!("cannot build the HTTP client: {e}")))?;
    let mut handles = Vec::new();
    for m in members {
        let url = format!("{}/healthz", m.node.api_url.trim_end_matches('/'));
        let code = m.spec.code.clone();
        let honest = m.spec.honest;
        let http = http.clone();
        let watch = Arc::clone(watch);
        let stop = Arc::clone(stop);
        handles.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let sample = http
                    .get(&url)
                    .send()
                    .ok()
                    .filter(|r| r.status().is_success())
                    .and_then(|r| r.json::<Health>().ok());
                if let Some(h) = sample {
                    let t_ms = t0.elapsed().as_millis() as u64;
                    watch_lock(&watch).record(
                        &code,
                        honest,
                        t_ms,
                        h.height,
                        h.last_block_hash.as_deref(),
                    );
                }
                std::thread::sleep(Duration::from_millis(HEAD_POLL_MS));
            }
        }));
    }
    Ok(handles)
}

/// The leader of the current view, asked of the first honest node that answers.
fn current_leader(
    members: &[Member],
    validators: usize,
    state: &TimelineState,
) -> std::result::Result<String, String> {
    for m in members.iter().filter(|m| {
        m.spec.honest
            && !state.killed.contains(&m.spec.code)
            && !state.paused.contains(&m.spec.code)
    }) {
        if let Ok(status) = m.client.status() {
            let index = (status.view % validators as u64) as usize;
            return ADMINISTRATIONS
                .get(index)
                .map(|(c, _)| c.to_string())
                .ok_or_else(|| format!("view {} has no leader among {validators}", status.view));
        }
    }
    Err("no honest node answered /v1/status to tell the current leader".into())
}

type StepResult = std::result::Result<Vec<String>, (Vec<String>, String)>;

/// Carries out one action; returns the nodes acted on.
fn apply(
    action: &Action,
    runner: &mut dyn Runner,
    members: &[Member],
    validators: usize,
    state: &mut TimelineState,
) -> StepResult {
    let all: Vec<String> = members.iter().map(|m| m.spec.code.clone()).collect();
    let resolve = |target: &Target,
                   state: &TimelineState|
     -> std::result::Result<Vec<String>, (Vec<String>, String)> {
        match target {
            Target::Node(code) => Ok(vec![code.clone()]),
            Target::All => Ok(all.clone()),
            Target::Leader => current_leader(members, validators, state)
                .map(|c| vec![c])
                .map_err(|e| (Vec::new(), e)),
        }
    };
    let mut done = Vec::new();
    let fail = |done: &Vec<String>, code: &str, e: RunnerError| {
        Err((done.clone(), format!("{code}: {e}")))
    };
    match action {
        Action::Kill { node } => {
            for code in resolve(node, state)? {
                if let Err(e) = runner.kill(&code) {
                    return fail(&done, &code, e);
                }
                state.killed.insert(code.clone());
                state.paused.remove(&code);
                done.push(code);
            }
        }
        Action::Restart { node } => {
            let codes = match node {
                Some(t) => resolve(t, state)?,
                None => state.killed.iter().cloned().collect(),
            };
            for code in codes {
                if runner.is_running(&code) {
                    if let Err(e) = runner.kill(&code) {
                        return fail(&done, &code, e);
                    }
                }
                if let Err(e) = runner.start(&code) {
                    return fail(&done, &code, e);
                }
                state.killed.remove(&code);
                state.paused.remove(&code);
                done.push(code);
            }
        }
        Action::Pause { node } => {
            for code in resolve(node, state)? {
                if let Err(e) = runner.pause(&code) {
                    return fail(&done, &code, e);
                }
                state.paused.insert(code.clone());
                done.push(code);
            }
        }
        Action::Resume { node } => {
            let codes = match node {
                Some(t) => resolve(t, state)?,
                None => state.paused.iter().cloned().collect(),
            };
            for code in codes {
                if let Err(e) = runner.resume(&code) {
                    return fail(&done, &code, e);
                }
                state.paused.remove(&code);
                done.push(code);
            }
        }
        Action::Disconnect { node } => {
            for code in resolve(node, state)? {
                if let Err(e) = runner.disconnect(&code) {
                    return fail(&done, &code, e);
                }
                done.push(code);
            }
        }
        Action::Partition { groups } => {
            let groups = with_twins(groups, members);
            if let Err(e) = runner.partition(&groups) {
                return Err((Vec::new(), e.to_string()));
            }
            done = groups.concat();
        }
        Action::Heal => {
            if let Err(e) = runner.heal() {
                return Err((Vec::new(), e.to_string()));
            }
        }
    }
    Ok(done)
}

/// Partition groups with every twin not listed placed beside its original.
fn with_twins(groups: &[Vec<String>], members: &[Member]) -> Vec<Vec<String>> {
    let mut groups = groups.to_vec();
    for m in members
        .iter()
        .filter(|m| m.spec.code != m.spec.administration)
    {
        if groups.iter().any(|g| g.contains(&m.spec.code)) {
            continue;
        }
        if let Some(group) = groups
            .iter_mut()
            .find(|g| g.contains(&m.spec.administration))
        {
            group.push(m.spec.code.clone());
        }
    }
    groups
}

/// Looks every acknowledged document up on every node (as that node's officer: each
/// document is addressed to every other administration, so every node's officer may
/// read it) and compares the records with the first node's. Returns the report and the
/// documents found identical per node.
fn check_documents(
    acknowledged: &[Acknowledged],
    nodes: &[(String, NodeClient)],
) -> (DocumentsReport, BTreeMap<String, u64>) {
    let mut report = DocumentsReport {
        acknowledged: acknowledged.len() as u64,
        nodes_checked: nodes.iter().map(|(c, _)| c.clone()).collect(),
        ..DocumentsReport::default()
    };
    // Fetch in parallel, one thread per node.
    let fetched: Vec<Vec<std::result::Result<carnet_cli::client::Document, String>>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|(_, client)| {
                    scope.spawn(move || {
                        acknowledged
                            .iter()
                            .map(|a| client.document(&a.id).map_err(|e| e.to_string()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    let push = |problems: &mut Vec<String>, p: String| {
        if problems.len() < invariants::MAX_FINDINGS {
            problems.push(p);
        }
    };
    for (i, ack) in acknowledged.iter().enumerate() {
        let mut everywhere = !nodes.is_empty();
        let mut reference: Option<&carnet_cli::client::Document> = None;
        for (n, (code, _)) in nodes.iter().enumerate() {
            match fetched.get(n).and_then(|f| f.get(i)) {
                Some(Ok(doc)) => {
                    let matches_ack =
                        doc.id == ack.id && doc.height == ack.height && doc.version == ack.version;
                    let matches_ref = reference.is_none_or(|r| r == doc);
                    if matches_ack && matches_ref {
                        *found.entry(code.clone()).or_default() += 1;
                        reference.get_or_insert(doc);
                    } else {
                        everywhere = false;
                        push(
                            &mut report.problems,
                            format!(
                                "document {} (acknowledged by {} at height {}) differs on {code}: height {}, commitment {}, ciphertext {}",
                                ack.id, ack.node, ack.height, doc.height, doc.commitment, doc.ciphertext_hash
                            ),
                        );
                    }
                }
                Some(Err(e)) => {
                    everywhere = false;
                    push(
                        &mut report.problems,
                        format!(
                            "document {} (acknowledged by {}) on {code}: {e}",
                            ack.id, ack.node
                        ),
                    );
                }
                None => everywhere = false,
            }
        }
        if everywhere {
            report.found_on_every_node += 1;
        }
    }
    (report, found)
}

/// Where a scenario's testnet goes when none is given: a fresh directory under the
/// system temporary directory.
pub fn default_dir(scenario: &Scenario) -> PathBuf {
    std::env::temp_dir().join(format!(
        "carnet-scenario-{}-{}-{:x}",
        scenario.name,
        std::process::id(),
        rand::random::<u32>()
    ))
}
