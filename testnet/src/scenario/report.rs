//! The report of one scenario run: what was offered and acknowledged, where the
//! documents were found, heights, recovery after the last perturbation, and one verdict
//! per named invariant. A table for people ([`render_table`]), JSON for machines
//! (stable field names; also written to `scenario-report.json` in the testnet dir).
//!
//! A report must never say an invariant passed without the data that shows it.

use super::traffic::LoadOutcome;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Names of the invariants, as reports and tests spell them.
pub mod names {
    /// Identical block (hash, parent, app hash) at every height on all honest nodes.
    pub const SAME_BLOCKS: &str = "same_blocks";
    /// No height finalized with two different blocks, no height going back, none
    /// committed twice (heads sampled during the run, logs).
    pub const NO_HEIGHT_FINALIZED_TWICE: &str = "no_height_finalized_twice";
    /// Block times never decrease and never lie in the future.
    pub const BLOCK_TIMES_SANE: &str = "block_times_sane";
    /// Every acknowledged document present and identical on every honest node.
    pub const DOCUMENTS_EVERYWHERE: &str = "documents_everywhere";
    /// Equivocation evidence recorded for every equivocating validator.
    pub const EQUIVOCATION_EVIDENCE: &str = "equivocation_evidence";
    /// Commits resumed within the bound after the last timeline step (without steps:
    /// after the load).
    pub const LIVENESS_AFTER_HEAL: &str = "liveness_after_heal";
    /// No honest node crashed or logged a fatal error, a panic or a corruption.
    pub const NO_CRASH_OR_CORRUPTION: &str = "no_crash_or_corruption";
    /// Enough of the offered load was acknowledged for the document checks to mean
    /// something.
    pub const LOAD_ACKNOWLEDGED: &str = "load_acknowledged";
    /// Every timeline step was carried out.
    pub const TIMELINE_APPLIED: &str = "timeline_applied";
}

/// One invariant's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvariantResult {
    pub name: String,
    pub passed: bool,
    /// What was checked and found (counts; the first violations).
    pub detail: String,
}

/// One timeline step as carried out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppliedStep {
    pub at_secs: f64,
    /// When it actually ran, seconds after the load started.
    pub applied_at_secs: f64,
    pub action: String,
    /// Nodes it acted on (a `leader` target resolved).
    pub nodes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A node at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeOutcome {
    pub code: String,
    /// `honest`, `byzantine:<mode>`, or `byzantine:twin-original`.
    pub role: String,
    pub running: bool,
    /// Left killed or paused by the timeline (not checked as a crash).
    pub stopped_by_scenario: bool,
    pub height: Option<u64>,
    pub last_block_hash: Option<String>,
    /// Acknowledged documents found identical on this node.
    pub documents_found: u64,
    /// Equivocation evidence this node recorded (administrations).
    pub evidence: Vec<String>,
}

/// The offered load and what came of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadReport {
    pub rate: f64,
    pub duration_secs: f64,
    pub payload_bytes: usize,
    pub offered: u64,
    pub sent: u64,
    pub acknowledged: u64,
    pub failures: BTreeMap<String, u64>,
    /// The first answer seen for each failure reason.
    pub failure_examples: BTreeMap<String, String>,
    pub sent_per_node: BTreeMap<String, u64>,
}

impl LoadReport {
    pub fn from_outcome(
        rate: f64,
        duration_secs: f64,
        payload_bytes: usize,
        o: &LoadOutcome,
    ) -> Self {
        LoadReport {
            rate,
            duration_secs,
            payload_bytes,
            offered: o.offered,
            sent: o.sent,
            acknowledged: o.acknowledged.len() as u64,
            failures: o.failures.clone(),
            failure_examples: o.failure_examples.clone(),
            sent_per_node: o.sent_per_node.clone(),
        }
    }
}

/// Acknowledged documents checked on the honest nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DocumentsReport {
    pub acknowledged: u64,
    /// Honest nodes they were looked up on.
    pub nodes_checked: Vec<String>,
    /// Documents present and identical on every one of them.
    pub found_on_every_node: u64,
    /// Lookups that failed or differed (bounded).
    pub problems: Vec<String>,
}

/// Heights over the run (highest honest height at each moment).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeightsReport {
    pub at_start: Option<u64>,
    pub at_last_step: Option<u64>,
    pub at_end_min: Option<u64>,
    pub at_end_max: Option<u64>,
    /// Heights whose blocks were compared across honest nodes.
    pub compared: u64,
}

/// Recovery after the last timeline step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecoveryReport {
    /// Offset of the last step (seconds after the load started); without steps, the
    /// end of the load.
    pub from_secs: f64,
    pub bound_secs: f64,
    /// Height every honest node had to reach.
    pub target_height: Option<u64>,
    /// Seconds until the last honest node reached it, if it did.
    pub recovered_after_secs: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub description: String,
    pub file: Option<PathBuf>,
    pub runner: String,
    pub dir: PathBuf,
    pub passed: bool,
    /// Names of the invariants that failed.
    pub failed: Vec<String>,
    pub duration_secs: f64,
    pub load: LoadReport,
    pub documents: DocumentsReport,
    pub heights: HeightsReport,
    pub recovery: RecoveryReport,
    pub timeline: Vec<AppliedStep>,
    pub nodes: Vec<NodeOutcome>,
    pub invariants: Vec<InvariantResult>,
}

impl ScenarioReport {
    /// The verdict of invariant `name`, if it was checked.
    pub fn invariant(&self, name: &str) -> Option<&InvariantResult> {
        self.invariants.iter().find(|i| i.name == name)
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

/// The report as a table for people.
pub fn render_table(r: &ScenarioReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} ({} runner): {} in {:.1} s",
        r.scenario,
        r.runner,
        if r.passed { "PASSED" } else { "FAILED" },
        r.duration_secs
    );
    if !r.description.is_empty() {
        let _ = writeln!(out, "  {}", r.description);
    }
    let _ = writeln!(out, "  testnet: {}", r.dir.display());
    let l = &r.load;
    let _ = writeln!(
        out,
        "load: {:.1} docs/s for {:.0} s, {} B payloads: offered {}, sent {}, acknowledged {}",
        l.rate, l.duration_secs, l.payload_bytes, l.offered, l.sent, l.acknowledged
    );
    if !l.failures.is_empty() {
        let failures: Vec<String> = l.failures.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        let _ = writeln!(out, "  not acknowledged: {}", failures.join(", "));
        for (reason, example) in &l.failure_examples {
            let _ = writeln!(out, "    {reason}: {example}");
        }
    }
    let d = &r.documents;
    let _ = writeln!(
        out,
        "documents: {} acknowledged, {} found identical on every honest node ({})",
        d.acknowledged,
        d.found_on_every_node,
        d.nodes_checked.join(" ")
    );
    let h = &r.heights;
    let _ = writeln!(
        out,
        "heights: start {}, last step {}, end {}..{}, {} compared",
        opt(&h.at_start),
        opt(&h.at_last_step),
        opt(&h.at_end_min),
        opt(&h.at_end_max),
        h.compared
    );
    let rc = &r.recovery;
    let _ = writeln!(
        out,
        "recovery: after {} at {:.1} s, every honest node at height {} within {} (bound {:.0} s)",
        if r.timeline.is_empty() {
            "the load"
        } else {
            "the last step"
        },
        rc.from_secs,
        opt(&rc.target_height),
        rc.recovered_after_secs
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "— not reached".into()),
        rc.bound_secs
    );
    if !r.timeline.is_empty() {
        let _ = writeln!(out, "{:>8} {:>8}  STEP", "AT s", "DONE s");
        for s in &r.timeline {
            let _ = writeln!(
                out,
                "{:>8.1} {:>8.1}  {}{}{}",
                s.at_secs,
                s.applied_at_secs,
                s.action,
                if s.nodes.is_empty() {
                    String::new()
                } else {
                    format!(" → {}", s.nodes.join(" "))
                },
                s.error
                    .as_ref()
                    .map(|e| format!("  ERROR: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(
        out,
        "{:<8} {:<24} {:<8} {:>7} {:>6}  {:<16}  EVIDENCE",
        "NODE", "ROLE", "STATE", "HEIGHT", "DOCS", "HEAD"
    );
    for n in &r.nodes {
        let state = match (n.running, n.stopped_by_scenario) {
            (true, false) => "up",
            (true, true) => "paused",
            (false, true) => "killed",
            (false, false) => "DOWN",
        };
        let _ = writeln!(
            out,
            "{:<8} {:<24} {:<8} {:>7} {:>6}  {:<16}  {}",
            n.code,
            n.role,
            state,
            opt(&n.height),
            n.documents_found,
            n.last_block_hash
                .as_deref()
                .map(|h| &h[..h.len().min(16)])
                .unwrap_or("-"),
            n.evidence.join(" ")
        );
    }
    let _ = writeln!(out, "invariants:");
    for i in &r.invariants {
        let _ = writeln!(
            out,
            "  {:<5} {:<26} {}",
            if i.passed { "ok" } else { "FAIL" },
            i.name,
            i.detail
        );
    }
    out
}
