//! Invariants every scenario ends with, checked over the API and the nodes' own words.
//!
//! [`same_blocks`] and [`compare_chains`] fetch blocks (`GET /v1/blocks/{h}`) and compare
//! hash, parent and application hash at every height on every node; [`HeadWatch`] holds
//! the heads sampled while a scenario runs and every contradiction among honest nodes;
//! [`scan_logs`] reads a node's logs for fatal stops, panics, corruption, double
//! finalizations and equivocation evidence; [`ledger_evidence`] asks every node which
//! equivocations are final on its ledger (`GET /v1/evidence`). Must never report
//! agreement from fewer blocks than it was asked to compare.

use crate::{Result, TestnetError};
use carnet_cli::client::Block;
use carnet_cli::NodeClient;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Compares blocks `from..=to` across `nodes` (name, client). Returns the number of
/// heights compared, or the first divergence.
pub fn same_blocks(nodes: &[(String, NodeClient)], from: u64, to: u64) -> Result<u64> {
    if nodes.len() < 2 {
        return Err(TestnetError::Invalid(
            "comparing blocks needs at least two nodes".into(),
        ));
    }
    let mut compared = 0;
    for height in from..=to {
        let mut first: Option<(&str, Block)> = None;
        for (name, client) in nodes {
            let block = client
                .block(height)
                .map_err(|e| TestnetError::Invalid(format!("node {name}: block {height}: {e}")))?;
            if block.height != height {
                return Err(TestnetError::Invalid(format!(
                    "node {name} answered block {} when asked for {height}",
                    block.height
                )));
            }
            match &first {
                None => first = Some((name, block)),
                Some((first_name, expected)) => {
                    if block.hash != expected.hash
                        || block.parent != expected.parent
                        || block.app_hash != expected.app_hash
                    {
                        return Err(TestnetError::Invalid(format!(
                            "divergence at height {height}: {first_name} has {} (app {}), {name} has {} (app {})",
                            expected.hash, expected.app_hash, block.hash, block.app_hash
                        )));
                    }
                }
            }
        }
        compared += 1;
    }
    Ok(compared)
}

/// Waits until every node reports the same height (via `/v1/status`) and returns it.
pub fn agreed_height(nodes: &[(String, NodeClient)], timeout: Duration) -> Result<u64> {
    let started = Instant::now();
    loop {
        let heights: Vec<std::result::Result<u64, String>> = nodes
            .iter()
            .map(|(_, c)| c.healthz().map(|h| h.height).map_err(|e| e.message))
            .collect();
        if let Some(Ok(first)) = heights.first() {
            if heights.iter().all(|h| h.as_ref() == Ok(first)) {
                return Ok(*first);
            }
        }
        if started.elapsed() >= timeout {
            let shown: Vec<String> = nodes
                .iter()
                .zip(&heights)
                .map(|((name, _), h)| format!("{name}={h:?}"))
                .collect();
            return Err(TestnetError::Timeout(format!(
                "nodes did not agree on a height within {} ms: {}",
                timeout.as_millis(),
                shown.join(" ")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------ scenario invariants
//
// The checks below serve `scenario::engine`: they compare what honest nodes say over the
// API, what they were seen to report while the scenario ran, and what they logged.
// Each returns findings, never a verdict it did not compute from data: an empty
// comparison is reported as such, not as agreement.

/// Most findings of one kind kept for a report.
pub const MAX_FINDINGS: usize = 10;
/// Most head samples kept per node (heights change a few times per second).
pub const MAX_SAMPLES_PER_NODE: usize = 100_000;
/// A block time may run this far ahead of the checker's clock (the node's own bound).
pub const MAX_BLOCK_CLOCK_SKEW_MS: u64 = 5_000;

fn push_bounded(list: &mut Vec<String>, item: String) {
    if list.len() < MAX_FINDINGS {
        list.push(item);
    }
}

/// Blocks `1..=to` compared across nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChainComparison {
    /// Heights every node answered for.
    pub compared: u64,
    /// Heights where two nodes hold different blocks.
    pub divergent_heights: u64,
    /// The first divergences, described.
    pub divergences: Vec<String>,
    /// Block times that go back in time or lie in the future.
    pub time_violations: Vec<String>,
    /// Nodes that did not answer for a height.
    pub errors: Vec<String>,
}

/// Fetches blocks `1..=to` from every node and compares hash, parent and application
/// hash; checks along the first node's chain that block times never decrease and are
/// not beyond `now_ms` + [`MAX_BLOCK_CLOCK_SKEW_MS`].
pub fn compare_chains(nodes: &[(String, NodeClient)], to: u64, now_ms: u64) -> ChainComparison {
    let mut out = ChainComparison::default();
    let mut previous_time: Option<u64> = None;
    for height in 1..=to {
        let mut first: Option<(&str, Block)> = None;
        let mut answered = 0;
        let mut divergent = false;
        for (name, client) in nodes {
            let block = match client.block(height) {
                Ok(b) if b.height == height => b,
                Ok(b) => {
                    push_bounded(
                        &mut out.errors,
                        format!("{name} answered block {} when asked for {height}", b.height),
                    );
                    continue;
                }
                Err(e) => {
                    push_bounded(&mut out.errors, format!("{name}: block {height}: {e}"));
                    continue;
                }
            };
            answered += 1;
            match &first {
                None => {
                    if let Some(before) = previous_time {
                        if block.time_ms < before {
                            push_bounded(
                                &mut out.time_violations,
                                format!(
                                    "height {height}: block time {} is before its parent's {before}",
                                    block.time_ms
                                ),
                            );
                        }
                    }
                    if block.time_ms > now_ms + MAX_BLOCK_CLOCK_SKEW_MS {
                        push_bounded(
                            &mut out.time_violations,
                            format!(
                                "height {height}: block time {} is {} ms in the future",
                                block.time_ms,
                                block.time_ms - now_ms
                            ),
                        );
                    }
                    previous_time = Some(block.time_ms);
                    first = Some((name, block));
                }
                Some((first_name, expected)) => {
                    if block.hash != expected.hash
                        || block.parent != expected.parent
                        || block.app_hash != expected.app_hash
                    {
                        let first_at_height = !divergent;
                        divergent = true;
                        if !first_at_height {
                            continue;
                        }
                        push_bounded(
                            &mut out.divergences,
                            format!(
                                "height {height}: {first_name} has {} (app {}), {name} has {} (app {})",
                                expected.hash, expected.app_hash, block.hash, block.app_hash
                            ),
                        );
                    }
                }
            }
        }
        if answered == nodes.len() {
            out.compared += 1;
        }
        if divergent {
            out.divergent_heights += 1;
        }
    }
    out
}

/// Heads (height, last block hash) seen on each node while a scenario runs, as samples
/// over time, and every contradiction among honest nodes: two hashes for one height
/// (across nodes or on one node over time) or a height going back.
#[derive(Clone, Debug, Default)]
pub struct HeadWatch {
    /// First hash an honest node reported for each height, and who.
    first_seen: BTreeMap<u64, (String, String)>,
    /// Contradictions, described (bounded).
    pub conflicts: Vec<String>,
    /// Contradictions counted.
    pub conflict_count: u64,
    /// Per node: (ms since the scenario started, height) each time the height changed.
    samples: BTreeMap<String, Vec<(u64, u64)>>,
}

impl HeadWatch {
    /// Records one `/healthz` answer of `code` at `t_ms`. Only honest nodes' heads are
    /// checked for contradictions; every node's heights are kept.
    pub fn record(&mut self, code: &str, honest: bool, t_ms: u64, height: u64, hash: Option<&str>) {
        let samples = self.samples.entry(code.to_string()).or_default();
        let last = samples.last().map(|(_, h)| *h);
        if honest {
            if let Some(last) = last {
                if height < last {
                    self.conflict_count += 1;
                    push_bounded(
                        &mut self.conflicts,
                        format!("{code} went back from height {last} to {height} at {t_ms} ms"),
                    );
                }
            }
        }
        if last != Some(height) && samples.len() < MAX_SAMPLES_PER_NODE {
            samples.push((t_ms, height));
        }
        let (Some(hash), true) = (hash, honest) else {
            return;
        };
        if height == 0 {
            return;
        }
        match self.first_seen.get(&height) {
            None => {
                self.first_seen
                    .insert(height, (hash.to_string(), code.to_string()));
            }
            Some((seen, by)) if seen != hash => {
                self.conflict_count += 1;
                push_bounded(
                    &mut self.conflicts,
                    format!(
                        "height {height} finalized twice: {by} reported {seen}, {code} reported {hash} (at {t_ms} ms)"
                    ),
                );
            }
            Some(_) => {}
        }
    }

    /// Highest height any of `codes` reported at or before `t_ms`.
    pub fn max_height_at(&self, codes: &[String], t_ms: u64) -> Option<u64> {
        codes
            .iter()
            .filter_map(|c| self.samples.get(c))
            .flat_map(|s| s.iter().filter(|(t, _)| *t <= t_ms).map(|(_, h)| *h))
            .max()
    }

    /// Highest of the first heights `codes` reported.
    pub fn first_height(&self, codes: &[String]) -> Option<u64> {
        codes
            .iter()
            .filter_map(|c| self.samples.get(c).and_then(|s| s.first()))
            .map(|(_, h)| *h)
            .max()
    }

    /// Latest height `code` reported.
    pub fn height(&self, code: &str) -> Option<u64> {
        self.samples
            .get(code)
            .and_then(|s| s.last())
            .map(|(_, h)| *h)
    }

    /// When `code` first reported a height ≥ `height` at or after `after_ms`.
    pub fn reached_at(&self, code: &str, height: u64, after_ms: u64) -> Option<u64> {
        let samples = self.samples.get(code)?;
        // The latest sample before `after_ms` counts as reached at `after_ms`.
        let before = samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= after_ms)
            .filter(|(_, h)| *h >= height)
            .map(|_| after_ms);
        before.or_else(|| {
            samples
                .iter()
                .find(|(t, h)| *t >= after_ms && *h >= height)
                .map(|(t, _)| *t)
        })
    }
}

/// What a node's logs say, for the crash/corruption, double-finalization and evidence
/// checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFindings {
    /// Lines announcing a fatal stop, a panic or a corruption (bounded).
    pub alarming: Vec<String>,
    /// Heights logged as finalized more than once.
    pub finalized_twice: Vec<u64>,
    /// Heights logged as finalized.
    pub finalized: u64,
    /// Administrations (or `validator N` where the line names no administration) of
    /// which this node recorded equivocation evidence.
    pub evidence: BTreeSet<String>,
}

/// The value of `key=VALUE` in a tracing line (`VALUE` up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("{key}=");
    let mut rest = line;
    while let Some(at) = rest.find(&pattern) {
        let boundary = at == 0 || rest.as_bytes()[at - 1] == b' ';
        let value = &rest[at + pattern.len()..];
        if boundary {
            return value.split_whitespace().next().map(|v| v.trim_matches('"'));
        }
        rest = value;
    }
    None
}

/// Scans a node's logs (stdout and tracing output).
pub fn scan_logs(text: &str) -> LogFindings {
    let mut out = LogFindings::default();
    let mut heights: BTreeMap<u64, u32> = BTreeMap::new();
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if line.contains("FATAL") || lower.contains("panicked at") || lower.contains("corrupt") {
            push_bounded(&mut out.alarming, line.trim().to_string());
        }
        if line.contains("block finalized") {
            if let Some(h) = field(line, "height").and_then(|v| v.parse::<u64>().ok()) {
                *heights.entry(h).or_default() += 1;
            }
        }
        if line.contains("EQUIVOCATION") {
            let who = field(line, "administration")
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .or_else(|| field(line, "validator").map(|v| format!("validator {v}")));
            if let Some(who) = who {
                out.evidence.insert(who);
            }
        }
    }
    out.finalized = heights.len() as u64;
    out.finalized_twice = heights
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(h, _)| h)
        .take(MAX_FINDINGS)
        .collect();
    out
}

/// Pause between two polls of the nodes' evidence.
const EVIDENCE_POLL: Duration = Duration::from_millis(500);

/// What each node's ledger says about equivocation (`GET /v1/evidence`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerEvidence {
    /// Per node: the administrations accused by a final record, or why the node could
    /// not be asked.
    pub accused: BTreeMap<String, std::result::Result<BTreeSet<String>, String>>,
}

impl LedgerEvidence {
    /// Per node, the administrations of `wanted` its ledger does not accuse (an
    /// unreachable node misses all of them).
    pub fn missing(&self, wanted: &[String]) -> BTreeMap<String, Vec<String>> {
        self.accused
            .iter()
            .map(|(node, accused)| {
                let missing = wanted
                    .iter()
                    .filter(|w| !accused.as_ref().is_ok_and(|a| a.contains(*w)))
                    .cloned()
                    .collect::<Vec<_>>();
                (node.clone(), missing)
            })
            .filter(|(_, missing)| !missing.is_empty())
            .collect()
    }

    /// Administrations of `honest` that some node's ledger accuses (must never happen:
    /// evidence is two votes signed by the accused).
    pub fn falsely_accused(&self, honest: &BTreeSet<String>) -> BTreeSet<String> {
        self.accused
            .values()
            .flatten()
            .flatten()
            .filter(|a| honest.contains(*a))
            .cloned()
            .collect()
    }
}

/// Asks every node in `nodes` for the equivocations on its ledger until each of them
/// lists a record against every administration in `wanted` (reports take a few blocks
/// to become final), or until `bound` has passed; returns the last answers. Asks once
/// when `wanted` is empty.
pub fn ledger_evidence(
    nodes: &[(String, NodeClient)],
    wanted: &[String],
    bound: Duration,
) -> LedgerEvidence {
    let deadline = Instant::now() + bound;
    loop {
        let answers = LedgerEvidence {
            accused: nodes
                .iter()
                .map(|(name, client)| {
                    let accused = carnet_cli::commands::evidence::list(client, None)
                        .map(|records| records.into_iter().map(|r| r.accused).collect())
                        .map_err(|e| e.to_string());
                    (name.clone(), accused)
                })
                .collect(),
        };
        if answers.missing(wanted).is_empty() || Instant::now() >= deadline {
            return answers;
        }
        std::thread::sleep(EVIDENCE_POLL);
    }
}

#[cfg(test)]
mod scenario_tests {
    use super::*;

    #[test]
    fn two_hashes_for_one_height_among_honest_nodes_are_a_conflict() {
        let mut watch = HeadWatch::default();
        watch.record("XA", true, 0, 5, Some("aa"));
        watch.record("XB", true, 10, 5, Some("aa"));
        assert_eq!(watch.conflict_count, 0);
        // A Byzantine node's head is never held against anyone.
        watch.record("XD", false, 20, 5, Some("ff"));
        assert_eq!(watch.conflict_count, 0);
        watch.record("XC", true, 30, 5, Some("bb"));
        assert_eq!(watch.conflict_count, 1);
        assert!(
            watch.conflicts[0].contains("height 5 finalized twice"),
            "{:?}",
            watch.conflicts
        );
        watch.record("XA", true, 40, 4, Some("cc"));
        assert!(
            watch.conflicts.iter().any(|c| c.contains("went back")),
            "{:?}",
            watch.conflicts
        );
    }

    #[test]
    fn heights_over_time_answer_when_a_node_got_there() {
        let mut watch = HeadWatch::default();
        for (t, h) in [(0, 1), (100, 1), (200, 2), (900, 5)] {
            watch.record("XA", true, t, h, None);
        }
        watch.record("XB", true, 150, 3, None);
        let codes = vec!["XA".to_string(), "XB".to_string()];
        assert_eq!(watch.max_height_at(&codes, 100), Some(1));
        assert_eq!(watch.max_height_at(&codes, 150), Some(3));
        assert_eq!(watch.reached_at("XA", 4, 300), Some(900));
        assert_eq!(watch.reached_at("XA", 2, 300), Some(300), "already there");
        assert_eq!(watch.reached_at("XA", 6, 0), None);
        assert_eq!(watch.height("XA"), Some(5));
    }

    #[test]
    fn logs_yield_alarms_double_finalizations_and_evidence() {
        let log = "\
2025 INFO carnet_node::driver: block finalized height=1 view=1 txs=0
2025 INFO carnet_node::driver: block finalized height=2 view=2 txs=3
2025 WARN carnet_node::driver: EQUIVOCATION: validator signed two conflicting votes validator=3 administration=XD view=7
2025 WARN carnet_node::driver: EQUIVOCATION: validator signed two conflicting votes validator=2 view=9
2025 INFO carnet_node::driver: block finalized height=2 view=4 txs=0
2025 ERROR carnet::fatal: FATAL: writing a finalized block: io; stopping the node
thread 'main' panicked at node/src/x.rs:1:1
";
        let found = scan_logs(log);
        assert_eq!(found.finalized, 2);
        assert_eq!(found.finalized_twice, vec![2]);
        assert_eq!(found.alarming.len(), 2);
        let evidence: Vec<&str> = found.evidence.iter().map(String::as_str).collect();
        assert_eq!(evidence, vec!["XD", "validator 2"]);
        assert_eq!(scan_logs("INFO all quiet\n"), LogFindings::default());
    }

    #[test]
    fn ledger_evidence_names_what_each_node_lacks_and_any_false_accusation() {
        let set = |codes: &[&str]| Ok(codes.iter().map(|c| c.to_string()).collect());
        let ledger = LedgerEvidence {
            accused: BTreeMap::from([
                ("XA".to_string(), set(&["XD"])),
                ("XB".to_string(), set(&[])),
                ("XC".to_string(), Err("unavailable".to_string())),
            ]),
        };
        let wanted = vec!["XD".to_string()];
        let missing = ledger.missing(&wanted);
        assert_eq!(
            missing.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["XB", "XC"]
        );
        assert_eq!(missing["XB"], wanted);
        assert!(ledger.missing(&[]).is_empty());
        let honest: BTreeSet<String> = ["XA", "XB", "XC"].iter().map(|c| c.to_string()).collect();
        assert!(ledger.falsely_accused(&honest).is_empty());
        let framed = LedgerEvidence {
            accused: BTreeMap::from([("XA".to_string(), set(&["XB", "XD"]))]),
        };
        assert_eq!(
            framed
                .falsely_accused(&honest)
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["XB".to_string()]
        );
    }
}
