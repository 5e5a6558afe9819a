//! Fault scenarios as data (`testnet/scenarios/*.toml`) and the engine that runs them.
//!
//! A scenario names the network (4–7 validators, some declared Byzantine), the load
//! (documents per second through the real HTTP API, for how long, how large) and a
//! timeline of perturbations at offsets from the start of the load: `kill`, `restart`,
//! `pause`, `resume`, `disconnect`, `partition`, `heal`. [`engine::run`] drives any
//! [`crate::runner::Runner`] through it and checks the invariants
//! ([`crate::invariants`]); the format is documented in `testnet/scenarios/README.md`.
//!
//! Parsing refuses anything it does not understand, naming the entry and its line:
//! an unknown action, node or field, offsets out of order, a partition that leaves a
//! node out, more Byzantine validators than the network tolerates. A scenario that
//! parses is valid; the engine never meets a malformed one.

pub mod engine;
pub mod report;
pub mod traffic;

use crate::layout::{Testnet, ADMINISTRATIONS, MAX_NODES, MIN_NODES};
use crate::{init, Result, TestnetError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Largest offset of a timeline step, and longest load.
pub const MAX_SCENARIO_SECS: f64 = 3600.0;
/// Highest offered load accepted (documents per second).
pub const MAX_RATE: f64 = 500.0;
/// Largest payload of one load document (the API takes 1 MiB bodies).
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;
/// Most requests in flight accepted for `load.concurrency`.
pub const MAX_CONCURRENCY: usize = 256;
/// Most timeline steps in one scenario.
pub const MAX_STEPS: usize = 200;

/// Environment variable naming the `carnet-node` built with `--features byzantine`.
pub const FAULTY_BIN_ENV: &str = "CARNET_FAULTY_BIN";
/// Environment variable naming the `carnet-node` built with `--features mutation-weak-quorum`.
pub const MUTANT_BIN_ENV: &str = "CARNET_MUTANT_BIN";

/// How a Byzantine node misbehaves (`carnet-node start --byzantine MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ByzantineMode {
    Equivocate,
    Silent,
    InvalidBlocks,
    Twin,
}

impl ByzantineMode {
    pub const ALL: [ByzantineMode; 4] = [
        ByzantineMode::Equivocate,
        ByzantineMode::Silent,
        ByzantineMode::InvalidBlocks,
        ByzantineMode::Twin,
    ];

    /// The name `carnet-node start --byzantine` takes.
    pub fn name(self) -> &'static str {
        match self {
            ByzantineMode::Equivocate => "equivocate",
            ByzantineMode::Silent => "silent",
            ByzantineMode::InvalidBlocks => "invalid-blocks",
            ByzantineMode::Twin => "twin",
        }
    }

    fn parse(name: &str) -> Option<ByzantineMode> {
        ByzantineMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The `carnet-node start` arguments (after `--home HOME`) of a node running the faulty
/// binary in `mode`. The faulty binary is built with `byzantine,test-hooks`, so it also
/// needs `--enable-test-hooks`.
pub fn faulty_node_args(mode: ByzantineMode) -> Vec<String> {
    vec![
        "--byzantine".into(),
        mode.name().into(),
        "--i-understand-this-node-misbehaves".into(),
        "--enable-test-hooks".into(),
    ]
}

/// The `carnet-node start` arguments of a node running the mutant (weak quorum) binary.
pub fn mutant_node_args() -> Vec<String> {
    vec!["--i-understand-this-node-misbehaves".into()]
}

/// The code of the second instance of validator `code` in a `twin` scenario.
pub fn twin_code(code: &str) -> String {
    format!("{code}-twin")
}

/// The binary named by environment variable `var`, which must exist.
pub fn binary_from_env(var: &str, build_hint: &str) -> Result<PathBuf> {
    let path =
        std::env::var_os(var)
            .map(PathBuf::from)
            .ok_or_else(|| TestnetError::BinaryNotFound {
                name: var.to_string(),
                message: format!("{var} is not set; build it with `{build_hint}`"),
            })?;
    if !path.is_file() {
        return Err(TestnetError::BinaryNotFound {
            name: var.to_string(),
            message: format!(
                "{var}={} does not exist; build it with `{build_hint}`",
                path.display()
            ),
        });
    }
    Ok(path)
}

/// How to build the faulty binary (as scripts/test.sh does).
pub const FAULTY_BUILD_HINT: &str = "cargo build --release -p carnet-node --features \
     byzantine,test-hooks && mkdir -p target/faulty && cp target/release/carnet-node \
     target/faulty/carnet-node && cargo build --release -p carnet-node` and export \
     `CARNET_FAULTY_BIN=$PWD/target/faulty/carnet-node";

/// How to build the mutant binary (as scripts/test.sh does).
pub const MUTANT_BUILD_HINT: &str = "cargo build --release -p carnet-node --features \
     mutation-weak-quorum && mkdir -p target/mutant && cp target/release/carnet-node \
     target/mutant/carnet-node && cargo build --release -p carnet-node` and export \
     `CARNET_MUTANT_BIN=$PWD/target/mutant/carnet-node";

/// `CARNET_FAULTY_BIN`, checked.
pub fn faulty_binary() -> Result<PathBuf> {
    binary_from_env(FAULTY_BIN_ENV, FAULTY_BUILD_HINT)
}

/// `CARNET_MUTANT_BIN`, checked.
pub fn mutant_binary() -> Result<PathBuf> {
    binary_from_env(MUTANT_BIN_ENV, MUTANT_BUILD_HINT)
}

/// Who may act as a node in a timeline step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One node by code (`XB`, or `XB-twin`).
    Node(String),
    /// The leader of the current view, looked up when the step runs.
    Leader,
    /// Every node (validators and twins).
    All,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(code) => f.write_str(code),
            Target::Leader => f.write_str("leader"),
            Target::All => f.write_str("all"),
        }
    }
}

/// One perturbation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// SIGKILL (docker kill).
    Kill { node: Target },
    /// Start a killed node again (a running one is killed first); without a node, every
    /// node this scenario killed.
    Restart { node: Option<Target> },
    /// Freeze the process (SIGSTOP; docker pause).
    Pause { node: Target },
    /// Unfreeze; without a node, every paused node.
    Resume { node: Option<Target> },
    /// Cut one node off from every other node.
    Disconnect { node: Target },
    /// Only nodes of the same group can talk.
    Partition { groups: Vec<Vec<String>> },
    /// Undo every disconnect and partition.
    Heal,
}

impl Action {
    /// The action's name as the scenario file spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Kill { .. } => "kill",
            Action::Restart { .. } => "restart",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::Disconnect { .. } => "disconnect",
            Action::Partition { .. } => "partition",
            Action::Heal => "heal",
        }
    }

    /// One line for reports: `kill leader`, `partition [XA XB] [XC XD]`.
    pub fn describe(&self) -> String {
        match self {
            Action::Kill { node } | Action::Pause { node } | Action::Disconnect { node } => {
                format!("{} {node}", self.name())
            }
            Action::Restart { node } | Action::Resume { node } => match node {
                Some(node) => format!("{} {node}", self.name()),
                None => format!("{} (every {} node)", self.name(), self.undoes()),
            },
            Action::Partition { groups } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| format!("[{}]", g.join(" ")))
                    .collect();
                format!("partition {}", groups.join(" "))
            }
            Action::Heal => "heal".into(),
        }
    }

    fn undoes(&self) -> &'static str {
        match self {
            Action::Restart { .. } => "killed",
            _ => "paused",
        }
    }
}

/// A timeline entry: `action` at `at_secs` after the load started.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub at_secs: f64,
    #[serde(flatten)]
    pub action: Action,
    /// Line of the entry in the scenario file (for messages), when known.
    #[serde(skip)]
    pub line: Option<usize>,
}

/// The offered load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Documents per second, sent open-loop (on schedule, whatever the answers).
    pub rate: f64,
    pub duration_secs: f64,
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    /// Most submissions in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Nodes that receive submissions, round-robin (default: every honest validator).
    #[serde(default)]
    pub to: Option<Vec<String>>,
}

fn default_payload_bytes() -> usize {
    512
}

fn default_concurrency() -> usize {
    32
}

/// A Byzantine validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ByzantineSpec {
    pub node: String,
    pub mode: ByzantineMode,
}

/// What must hold at the end, beyond the safety invariants that always apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Commits must resume within this many seconds of the last timeline step (without
    /// steps: of the end of the load).
    #[serde(default = "default_liveness_secs")]
    pub liveness_secs: f64,
    /// "Resumed" means every honest node this many blocks above the highest honest
    /// height at the last step.
    #[serde(default = "default_resume_blocks")]
    pub resume_blocks: u64,
    /// Validators whose equivocation evidence honest nodes must record (default: every
    /// node declared `equivocate`).
    #[serde(default)]
    pub evidence: Option<Vec<String>>,
    /// At least this fraction of the documents sent must be acknowledged (so a run in
    /// which nothing got through cannot pass on its document checks).
    #[serde(default = "default_min_acknowledged_fraction")]
    pub min_acknowledged_fraction: f64,
}

fn default_liveness_secs() -> f64 {
    30.0
}

fn default_resume_blocks() -> u64 {
    2
}

fn default_min_acknowledged_fraction() -> f64 {
    0.2
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            liveness_secs: default_liveness_secs(),
            resume_blocks: default_resume_blocks(),
            evidence: None,
            min_acknowledged_fraction: default_min_acknowledged_fraction(),
        }
    }
}

/// One node of a scenario's network and how to start it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    /// `XA`.. or `XB-twin`.
    pub code: String,
    /// Validator index (genesis order); a twin shares its original's.
    pub validator: usize,
    /// The administration whose keys it runs with (its own code, or the original's).
    pub administration: String,
    /// `Some` for a node started from the faulty binary with `--byzantine MODE`.
    pub byzantine: Option<ByzantineMode>,
    /// Honest nodes are the ones the invariants speak for: neither declared Byzantine
    /// nor either instance of a twinned validator.
    pub honest: bool,
}

/// A parsed, validated scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Validators `XA`.. in genesis order.
    pub nodes: usize,
    pub load: LoadSpec,
    pub byzantine: Vec<ByzantineSpec>,
    pub timeline: Vec<Step>,
    pub expect: Expect,
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

// ------------------------------------------------------------------ raw file format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: String,
    nodes: usize,
    load: LoadSpec,
    #[serde(default)]
    byzantine: Vec<RawByzantine>,
    #[serde(default)]
    timeline: Vec<RawStep>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawByzantine {
    node: String,
    mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at_secs: f64,
    action: String,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    groups: Option<Vec<Vec<String>>>,
}

const ACTIONS: [&str; 7] = [
    "kill",
    "restart",
    "pause",
    "resume",
    "disconnect",
    "partition",
    "heal",
];

/// Line numbers (1-based) of each `[[header]]` line, in order.
fn header_lines(text: &str, header: &str) -> Vec<usize> {
    let wanted = format!("[[{header}]]");
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            l == wanted
                || l.starts_with(&format!("{wanted} "))
                || l.starts_with(&format!("{wanted}#"))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Where an entry is, for messages: `timeline entry 3 (line 27)`.
fn place(kind: &str, index: usize, lines: &[usize]) -> String {
    match lines.get(index) {
        Some(line) => format!("{kind} entry {} (line {line})", index + 1),
        None => format!("{kind} entry {}", index + 1),
    }
}

impl Scenario {
    /// Reads and validates a scenario file; errors name the file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(TestnetError::io(path))?;
        let default_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let mut scenario = Scenario::parse(&text, &default_name)
            .map_err(|e| TestnetError::Invalid(format!("{}: {e}", path.display())))?;
        scenario.source = Some(path.to_path_buf());
        Ok(scenario)
    }

    /// Parses and validates scenario text; `default_name` names it if the text does not.
    pub fn parse(text: &str, default_name: &str) -> std::result::Result<Scenario, String> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| e.to_string())?;
        if !(MIN_NODES..=MAX_NODES).contains(&raw.nodes) {
            return Err(format!(
                "nodes = {}: a scenario network has {MIN_NODES} to {MAX_NODES} validators",
                raw.nodes
            ));
        }
        let validators: Vec<String> = ADMINISTRATIONS
            .iter()
            .take(raw.nodes)
            .map(|(c, _)| c.to_string())
            .collect();
        let f = (raw.nodes - 1) / 3;

        // Byzantine validators.
        let byz_lines = header_lines(text, "byzantine");
        let mut byzantine: Vec<ByzantineSpec> = Vec::new();
        for (i, b) in raw.byzantine.iter().enumerate() {
            let at = place("byzantine", i, &byz_lines);
            if !validators.contains(&b.node) {
                return Err(format!(
                    "{at}: unknown node `{}` (this network has {})",
                    b.node,
                    validators.join(", ")
                ));
            }
            let mode = ByzantineMode::parse(&b.mode).ok_or_else(|| {
                let known: Vec<&str> = ByzantineMode::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "{at}: unknown mode `{}` (known: {})",
                    b.mode,
                    known.join(", ")
                )
            })?;
            if byzantine.iter().any(|o| o.node == b.node) {
                return Err(format!("{at}: node {} is declared Byzantine twice", b.node));
            }
            byzantine.push(ByzantineSpec {
                node: b.node.clone(),
                mode,
            });
        }
        if byzantine.len() > f {
            return Err(format!(
                "{} Byzantine validators among {}: the network tolerates at most f = {f}",
                byzantine.len(),
                raw.nodes
            ));
        }

        let mut scenario = Scenario {
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            description: raw.description,
            nodes: raw.nodes,
            load: raw.load,
            byzantine,
            timeline: Vec::new(),
            expect: raw.expect,
            source: None,
        };
        let codes: Vec<String> = scenario.node_specs().into_iter().map(|s| s.code).collect();
        let known = |code: &str| codes.iter().any(|c| c == code);
        let list = codes.join(", ");

        // Load.
        let load = &scenario.load;
        if !(load.rate.is_finite() && load.rate > 0.0 && load.rate <= MAX_RATE) {
            return Err(format!(
                "load.rate = {}: documents per second must be above 0 and at most {MAX_RATE}",
                load.rate
            ));
        }
        if !(load.duration_secs.is_finite()
            && load.duration_secs > 0.0
            && load.duration_secs <= MAX_SCENARIO_SECS)
        {
            return Err(format!(
                "load.duration_secs = {}: must be above 0 and at most {MAX_SCENARIO_SECS}",
                load.duration_secs
            ));
        }
        if !(64..=MAX_PAYLOAD_BYTES).contains(&load.payload_bytes) {
            return Err(format!(
                "load.payload_bytes = {}: must be 64 to {MAX_PAYLOAD_BYTES}",
                load.payload_bytes
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&load.concurrency) {
            return Err(format!(
                "load.concurrency = {}: must be 1 to {MAX_CONCURRENCY}",
                load.concurrency
            ));
        }
        if let Some(to) = &load.to {
            if to.is_empty() {
                return Err("load.to is empty: name at least one node, or leave it out".into());
            }
            for code in to {
                if !known(code) {
                    return Err(format!("load.to: unknown node `{code}` (nodes: {list})"));
                }
            }
        }

        // Expectations.
        let expect = &scenario.expect;
        if !(expect.liveness_secs.is_finite()
            && expect.liveness_secs > 0.0
            && expect.liveness_secs <= MAX_SCENARIO_SECS)
        {
            return Err(format!(
                "expect.liveness_secs = {}: must be above 0 and at most {MAX_SCENARIO_SECS}",
                expect.liveness_secs
            ));
        }
        if !(0.0..=1.0).contains(&expect.min_acknowledged_fraction) {
            return Err(format!(
                "expect.min_acknowledged_fraction = {}: must be between 0 and 1",
                expect.min_acknowledged_fraction
            ));
        }
        if let Some(evidence) = &expect.evidence {
            for code in evidence {
                if !scenario.byzantine.iter().any(|b| &b.node == code) {
                    return Err(format!(
                        "expect.evidence: `{code}` is not a Byzantine validator of this scenario"
                    ));
                }
            }
        }

        // Timeline.
        let step_lines = header_lines(text, "timeline");
        if raw.timeline.len() > MAX_STEPS {
            return Err(format!(
                "{} timeline entries: at most {MAX_STEPS}",
                raw.timeline.len()
            ));
        }
        let mut previous: Option<(f64, String)> = None;
        for (i, raw_step) in raw.timeline.into_iter().enumerate() {
            let at = place("timeline", i, &step_lines);
            let secs = raw_step.at_secs;
            if !(secs.is_finite() && (0.0..=MAX_SCENARIO_SECS).contains(&secs)) {
                return Err(format!(
                    "{at}: at_secs = {secs} must be 0 to {MAX_SCENARIO_SECS}"
                ));
            }
            if let Some((before, before_at)) = &previous {
                if secs < *before {
                    return Err(format!(
                        "{at}: at_secs = {secs} comes before the previous entry's {before} \
                         ({before_at}); offsets must not go back in time"
                    ));
                }
            }
            let target =
                |node: Option<String>, required: bool, allow_all: bool| match node.as_deref() {
                    None if required => Err(format!(
                        "{at}: `{}` needs `node = \"CODE\"`",
                        raw_step.action
                    )),
                    None => Ok(None),
                    Some("leader") => Ok(Some(Target::Leader)),
                    Some("all") if allow_all => Ok(Some(Target::All)),
                    Some(code) if known(code) => Ok(Some(Target::Node(code.to_string()))),
                    Some(code) => Err(format!(
                        "{at}: unknown node `{code}` (nodes: {list}, or `leader`{})",
                        if allow_all { ", `all`" } else { "" }
                    )),
                };
            let no_groups = |groups: &Option<Vec<Vec<String>>>| match groups {
                Some(_) => Err(format!(
                    "{at}: `groups` belongs to `partition`, not `{}`",
                    raw_step.action
                )),
                None => Ok(()),
            };
            let action = match raw_step.action.as_str() {
                "kill" | "pause" | "disconnect" => {
                    no_groups(&raw_step.groups)?;
                    let allow_all = raw_step.action != "disconnect";
                    let node = target(raw_step.node.clone(), true, allow_all)?
                        .ok_or_else(|| format!("{at}: a node is required"))?;
                    match raw_step.action.as_str() {
                        "kill" => Action::Kill { node },
                        "pause" => Action::Pause { node },
                        _ => Action::Disconnect { node },
                    }
                }
                "restart" | "resume" => {
                    no_groups(&raw_step.groups)?;
                    let node = target(raw_step.node.clone(), false, true)?;
                    if raw_step.action == "restart" {
                        Action::Restart { node }
                    } else {
                        Action::Resume { node }
                    }
                }
                "partition" => {
                    if raw_step.node.is_some() {
                        return Err(format!("{at}: `partition` takes `groups`, not `node`"));
                    }
                    let groups = raw_step.groups.clone().ok_or_else(|| {
                        format!("{at}: `partition` needs `groups = [[..], [..]]`")
                    })?;
                    scenario
                        .check_groups(&groups, &codes)
                        .map_err(|e| format!("{at}: {e}"))?;
                    Action::Partition { groups }
                }
                "heal" => {
                    no_groups(&raw_step.groups)?;
                    if raw_step.node.is_some() {
                        return Err(format!("{at}: `heal` heals every cut; it takes no node"));
                    }
                    Action::Heal
                }
                other => {
                    return Err(format!(
                        "{at}: unknown action `{other}` (known: {})",
                        ACTIONS.join(", ")
                    ))
                }
            };
            previous = Some((secs, at.clone()));
            scenario.timeline.push(Step {
                at_secs: secs,
                action,
                line: step_lines.get(i).copied(),
            });
        }
        Ok(scenario)
    }

    /// A partition's groups: known nodes, each in at most one group, at least two
    /// groups, and every validator placed (a twin not listed goes with its original).
    fn check_groups(
        &self,
        groups: &[Vec<String>],
        codes: &[String],
    ) -> std::result::Result<(), String> {
        if groups.len() < 2 {
            return Err("a partition needs at least two groups".into());
        }
        let mut seen = BTreeSet::new();
        for group in groups {
            if group.is_empty() {
                return Err("a partition group is empty".into());
            }
            for code in group {
                if !codes.contains(code) {
                    return Err(format!(
                        "unknown node `{code}` in a partition group (nodes: {})",
                        codes.join(", ")
                    ));
                }
                if !seen.insert(code.clone()) {
                    return Err(format!("node {code} is in two partition groups"));
                }
            }
        }
        for spec in self.node_specs() {
            if spec.code == spec.administration && !seen.contains(&spec.code) {
                return Err(format!("node {} is in no partition group", spec.code));
            }
        }
        Ok(())
    }

    /// Every node of the network: the validators in genesis order, then one twin per
    /// validator declared `twin`.
    pub fn node_specs(&self) -> Vec<NodeSpec> {
        let mut specs = Vec::new();
        let mut twins = Vec::new();
        for (index, (code, _)) in ADMINISTRATIONS.iter().take(self.nodes).enumerate() {
            let declared = self
                .byzantine
                .iter()
                .find(|b| b.node == *code)
                .map(|b| b.mode);
            let twinned = declared == Some(ByzantineMode::Twin);
            specs.push(NodeSpec {
                code: code.to_string(),
                validator: index,
                administration: code.to_string(),
                // The original of a twinned validator runs the honest binary.
                byzantine: declared.filter(|_| !twinned),
                honest: declared.is_none(),
            });
            if twinned {
                twins.push(NodeSpec {
                    code: twin_code(code),
                    validator: index,
                    administration: code.to_string(),
                    byzantine: Some(ByzantineMode::Twin),
                    honest: false,
                });
            }
        }
        specs.extend(twins);
        specs
    }

    /// Extra `carnet-node start` arguments per node that runs the faulty binary.
    pub fn byzantine_args(&self) -> BTreeMap<String, Vec<String>> {
        self.node_specs()
            .into_iter()
            .filter_map(|s| s.byzantine.map(|m| (s.code, faulty_node_args(m))))
            .collect()
    }

    /// Validators whose equivocation evidence honest nodes must record.
    pub fn expected_evidence(&self) -> Vec<String> {
        match &self.expect.evidence {
            Some(codes) => codes.clone(),
            None => self
                .byzantine
                .iter()
                .filter(|b| b.mode == ByzantineMode::Equivocate)
                .map(|b| b.node.clone())
                .collect(),
        }
    }

    /// Whether a step cuts links (needs a runner that can).
    pub fn cuts_links(&self) -> bool {
        self.timeline.iter().any(|s| {
            matches!(
                s.action,
                Action::Disconnect { .. } | Action::Partition { .. }
            )
        })
    }

    /// Offset of the last timeline step (0 without steps).
    pub fn last_step_secs(&self) -> f64 {
        self.timeline.last().map(|s| s.at_secs).unwrap_or(0.0)
    }
}

/// Creates the scenario's testnet in `dir`: `carnet-testnet init` of its validators,
/// then one extra node home per twin (see [`add_twin`]). Shared by both runners.
pub fn prepare_testnet(scenario: &Scenario, dir: &Path, node_binary: &Path) -> Result<Testnet> {
    let mut testnet = init::init(scenario.nodes, dir, node_binary)?;
    for spec in scenario.node_specs() {
        if spec.code != spec.administration {
            add_twin(&mut testnet, &spec.administration)?;
        }
    }
    Ok(testnet)
}

/// Adds the second instance of validator `original`: a home `nodes/XB-twin` holding a
/// copy of XB's configuration and keys (node key *and* validator key — with only the
/// validator key, the p2p allow-list would refuse it), its own ports and an empty data
/// directory, peers = every other validator (it cannot dial its own peer id); a
/// `testnet.json` entry with the same peer id and a CLI profile for XB's officer.
pub fn add_twin(testnet: &mut Testnet, original: &str) -> Result<crate::layout::NodeEntry> {
    let source = testnet.node(original)?.clone();
    let code = twin_code(original);
    if testnet.node(&code).is_ok() {
        return Err(TestnetError::Invalid(format!("{code} already exists")));
    }
    let home = testnet.dir.join("nodes").join(&code);
    std::fs::create_dir_all(&home).map_err(TestnetError::io(&home))?;
    // Every file of the home (configuration, genesis, keys), not its data directory or
    // logs; copies keep the 0600 mode of key files.
    let entries = std::fs::read_dir(&source.home).map_err(TestnetError::io(&source.home))?;
    for entry in entries {
        let entry = entry.map_err(TestnetError::io(&source.home))?;
        let from = entry.path();
        let is_log = from.extension().is_some_and(|e| e == "log");
        if !from.is_file() || is_log {
            continue;
        }
        std::fs::copy(&from, home.join(entry.file_name())).map_err(TestnetError::io(&from))?;
    }
    for required in ["config.toml", "node.key", "validator.key"] {
        if !home.join(required).is_file() {
            return Err(TestnetError::Invalid(format!(
                "{} has no {required} to give its twin",
                source.home.display()
            )));
        }
    }
    let ports = init::free_ports(2)?;
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", ports[0]);
    let api = format!("http://127.0.0.1:{}", ports[1]);
    let peers: Vec<String> = testnet
        .nodes
        .iter()
        .filter(|n| n.code != original && !n.code.ends_with("-twin"))
        .map(crate::layout::NodeEntry::dial_addr)
        .collect();
    let listen_api = api.trim_start_matches("http://").to_string();
    init::edit_config(&home, |table| {
        table.insert("listen_p2p".into(), toml::Value::String(p2p.clone()));
        table.insert("listen_api".into(), toml::Value::String(listen_api));
        table.insert(
            "peers".into(),
            toml::Value::Array(peers.into_iter().map(toml::Value::String).collect()),
        );
    })?;
    let entry = crate::layout::NodeEntry {
        code: code.clone(),
        name: format!("{} (twin)", source.name),
        home,
        api: api.clone(),
        p2p,
        peer_id: source.peer_id.clone(),
        pid: None,
    };
    carnet_cli::profile::Profile {
        administration: Some(original.to_string()),
        node: Some(api),
        key: Some(testnet.officer_key_path(original)),
    }
    .save(&testnet.profile_path(&code))?;
    testnet.nodes.push(entry.clone());
    testnet.save()?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
nodes = 4
[load]
rate = 2.0
duration_secs = 10
"#;

    fn parse(extra: &str) -> std::result::Result<Scenario, String> {
        Scenario::parse(&format!("{BASE}{extra}"), "t")
    }

    #[test]
    fn a_full_scenario_parses_with_defaults_filled_in() {
        let s = parse(
            r#"
[[byzantine]]
node = "XD"
mode = "equivocate"

[[timeline]]
at_secs = 2
action = "kill"
node = "leader"

[[timeline]]
at_secs = 3
action = "partition"
groups = [["XA", "XB", "XC"], ["XD"]]

[[timeline]]
at_secs = 5
action = "heal"

[[timeline]]
at_secs = 5
action = "restart"
"#,
        )
        .unwrap();
        assert_eq!(s.nodes, 4);
        assert_eq!(s.load.payload_bytes, 512);
        assert_eq!(s.load.concurrency, 32);
        assert_eq!(s.expect.resume_blocks, 2);
        assert_eq!(s.timeline.len(), 4);
        assert_eq!(
            s.timeline[0].action,
            Action::Kill {
                node: Target::Leader
            }
        );
        assert_eq!(s.timeline[3].action, Action::Restart { node: None });
        assert_eq!(s.expected_evidence(), vec!["XD".to_string()]);
        let specs = s.node_specs();
        assert_eq!(specs.len(), 4);
        assert!(specs[..3].iter().all(|n| n.honest && n.byzantine.is_none()));
        assert_eq!(specs[3].byzantine, Some(ByzantineMode::Equivocate));
        assert!(!specs[3].honest);
        assert!(s.cuts_links());
    }

    #[test]
    fn an_unknown_action_is_named_with_its_entry_and_line() {
        let err = parse(
            r#"
[[timeline]]
at_secs = 1
action = "kill"
node = "XA"

[[timeline]]
at_secs = 2
action = "explode"
node = "XA"
"#,
        )
        .unwrap_err();
        assert!(
            err.contains("timeline entry 2 (line 13)") && err.contains("unknown action `explode`"),
            "{err}"
        );
        assert!(err.contains("partition"), "lists the known actions: {err}");
    }

    #[test]
    fn an_unknown_node_is_named_with_the_nodes_there_are() {
        let err =
            parse("[[timeline]]\nat_secs = 1\naction = \"pause\"\nnode = \"XQ\"\n").unwrap_err();
        assert!(
            err.contains("timeline entry 1 (line 7)") && err.contains("unknown node `XQ`"),
            "{err}"
        );
        assert!(err.contains("XA, XB, XC, XD"), "{err}");
        let err = parse("[[byzantine]]\nnode = \"XE\"\nmode = \"silent\"\n").unwrap_err();
        assert!(
            err.contains("byzantine entry 1 (line 7)") && err.contains("`XE`"),
            "{err}"
        );
    }

    #[test]
    fn offsets_out_of_order_are_refused_naming_both_entries() {
        let err = parse(
            "[[timeline]]\nat_secs = 5\naction = \"heal\"\n[[timeline]]\nat_secs = 4\naction = \"heal\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("timeline entry 2 (line 10)")
                && err.contains("timeline entry 1 (line 7)")
                && err.contains("back in time"),
            "{err}"
        );
    }

    #[test]
    fn malformed_entries_are_refused_with_a_reason() {
        let cases = [
            ("[[timeline]]\nat_secs = 1\naction = \"kill\"\n", "needs `node"),
            (
                "[[timeline]]\nat_secs = 1\naction = \"partition\"\ngroups = [[\"XA\",\"XB\"],[\"XC\"]]\n",
                "XD is in no partition group",
            ),
            (
                "[[timeline]]\nat_secs = 1\naction = \"partition\"\ngroups = [[\"XA\",\"XB\"],[\"XB\",\"XC\",\"XD\"]]\n",
                "two partition groups",
            ),
            (
                "[[timeline]]\nat_secs = 1\naction = \"heal\"\nnode = \"XA\"\n",
                "takes no node",
            ),
            (
                "[[timeline]]\nat_secs = 1\naction = \"disconnect\"\nnode = \"all\"\n",
                "unknown node `all`",
            ),
            (
                "[[timeline]]\nat_secs = -1\naction = \"heal\"\n",
                "at_secs = -1",
            ),
            (
                "[[timeline]]\nat_secs = 1\naction = \"heal\"\nwhen = 3\n",
                "unknown field `when`",
            ),
            (
                "[[byzantine]]\nnode = \"XA\"\nmode = \"liar\"\n",
                "unknown mode `liar`",
            ),
            (
                "[[byzantine]]\nnode = \"XA\"\nmode = \"silent\"\n[[byzantine]]\nnode = \"XB\"\nmode = \"silent\"\n",
                "at most f = 1",
            ),
            ("[expect]\nevidence = [\"XA\"]\n", "not a Byzantine validator"),
        ];
        for (extra, expected) in cases {
            let err = parse(extra).unwrap_err();
            assert!(err.contains(expected), "{extra}\n→ {err}");
        }
        let err =
            Scenario::parse("nodes = 9\n[load]\nrate = 1\nduration_secs = 1\n", "t").unwrap_err();
        assert!(err.contains("4 to 7"), "{err}");
        let err = Scenario::parse("nodes = 4\n", "t").unwrap_err();
        assert!(err.contains("load"), "{err}");
    }

    #[test]
    fn a_twin_adds_a_second_instance_and_both_are_not_honest() {
        let s = parse("[[byzantine]]\nnode = \"XB\"\nmode = \"twin\"\n").unwrap();
        let specs = s.node_specs();
        assert_eq!(specs.len(), 5);
        let original = &specs[1];
        assert_eq!((original.code.as_str(), original.honest), ("XB", false));
        assert_eq!(
            original.byzantine, None,
            "the original runs the honest binary"
        );
        let twin = &specs[4];
        assert_eq!(twin.code, "XB-twin");
        assert_eq!((twin.validator, twin.administration.as_str()), (1, "XB"));
        assert_eq!(twin.byzantine, Some(ByzantineMode::Twin));
        assert_eq!(
            s.byzantine_args()["XB-twin"],
            vec![
                "--byzantine",
                "twin",
                "--i-understand-this-node-misbehaves",
                "--enable-test-hooks"
            ]
        );
        assert!(s.expected_evidence().is_empty());
        // A partition may leave the twin out (it goes with XB).
        parse(
            "[[byzantine]]\nnode = \"XB\"\nmode = \"twin\"\n[[timeline]]\nat_secs = 1\naction = \"partition\"\ngroups = [[\"XA\",\"XB\"],[\"XC\",\"XD\"]]\n",
        )
        .unwrap();
    }

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut count = 0;
        for sub in [dir.clone(), dir.join("soak")] {
            for entry in std::fs::read_dir(&sub).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                    count += 1;
                }
            }
        }
        assert!(count >= 8, "only {count} scenario files");
    }
}
