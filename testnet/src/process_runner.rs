//! The process runner: a scenario's nodes as local `carnet-node` processes.
//!
//! Processes are managed by [`Network`] (spawn, SIGKILL, SIGTERM, pids in
//! `testnet.json`); pause and resume are SIGSTOP and SIGCONT. Links are cut in network
//! namespaces (docs/adr/0010-partitions-in-the-process-runner.md): each node runs in its
//! own namespace (`ip netns exec`, which execs in place) with one veth into a bridge that
//! lives in a hub namespace of this run; the host reaches every node's API through one
//! more veth into that bridge. Cutting node A from node B installs, inside A's namespace
//! only, iptables rules that refuse every packet to and from B (TCP with a reset, so
//! connections break at once and the nodes redial after the heal); healing flushes them.
//! The host's own firewall, routes (but one /24 on the host veth) and other namespaces
//! are never touched. Without root, `ip` or `iptables-restore` the runner falls back to
//! loopback (every scenario but those that cut links still runs).
//!
//! Everything it creates is removed by [`ProcessRunner::stop_all`], on drop, and — for a
//! process that installed [`install_interrupt_cleanup`] — on Ctrl-C or SIGTERM. A slot
//! (namespace names, subnet) left behind by a process that died is reclaimed by the next
//! run that finds its owner gone. Must never delete a namespace or interface it cannot
//! show is its own or an abandoned one of this runner.

use crate::layout::{NodeEntry, Testnet};
use crate::network::Network;
use crate::process::{self, Launch};
use crate::runner::{Runner, RunnerError, RunnerNode};
use crate::scenario::{self, NodeSpec, Scenario};
use crate::{Result, TestnetError};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First two octets of the subnets; slot `k` gets `10.213.k.0/24`.
pub const SUBNET_PREFIX: [u8; 2] = [10, 213];
/// Slots tried (`1..=MAX_SLOT`).
pub const MAX_SLOT: u8 = 250;
/// Where slot owners are recorded (`slot-K.pid`).
pub const OWNER_DIR: &str = "/run/carnet-testnet";
/// Host address inside a slot's subnet; node `i` gets `NODE_HOST_BASE + i`.
const HOST_OCTET: u8 = 1;
const NODE_HOST_BASE: u8 = 10;
/// Poll interval while waiting for `/healthz`.
const HEALTH_POLL_MS: u64 = 200;
/// Log lines shown when a node fails to start.
const LOG_TAIL_LINES: usize = 25;

/// How nodes are isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces when the machine allows them, else loopback.
    Auto,
    /// One network namespace per node (root, iproute2, iptables); links can be cut.
    Namespaces,
    /// Every node on 127.0.0.1; links cannot be cut.
    Loopback,
}

/// What the runner starts.
#[derive(Clone, Debug)]
pub struct ProcessRunnerOptions {
    /// The release `carnet-node`.
    pub node_binary: PathBuf,
    /// `carnet-node` built with `byzantine,test-hooks`; required when the scenario
    /// declares a Byzantine node.
    pub faulty_binary: Option<PathBuf>,
    /// `carnet-node` built with `mutation-weak-quorum`: when set, every node that is not
    /// Byzantine runs it (the suite's proof that the invariants catch an unsafe node).
    pub mutant_binary: Option<PathBuf>,
    pub isolation: Isolation,
}

impl ProcessRunnerOptions {
    /// The release binary next to this executable (see [`process::locate_binary`]), the
    /// faulty binary from `CARNET_FAULTY_BIN` if set, no mutant, automatic isolation.
    pub fn from_env() -> Result<ProcessRunnerOptions> {
        Ok(ProcessRunnerOptions {
            node_binary: process::locate_binary(process::NODE_BINARY)?,
            faulty_binary: std::env::var_os(scenario::FAULTY_BIN_ENV).map(PathBuf::from),
            mutant_binary: None,
            isolation: Isolation::Auto,
        })
    }
}

fn failed(message: impl Into<String>) -> RunnerError {
    RunnerError::Failed(message.into())
}

fn to_runner(e: TestnetError) -> RunnerError {
    RunnerError::Failed(e.to_string())
}

// ---------------------------------------------------------------- system commands

/// Runs a command; a non-zero exit is an error carrying its stderr.
fn run_command(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> std::result::Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{program}: writing its input: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> std::result::Result<(), String> {
    run_command("ip", args, None)
}

/// Standard output of `ip ARGS` (empty on failure).
fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Why namespaces cannot be used here, if they cannot.
pub fn namespaces_unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        });
    if uid.as_deref() != Some("0") {
        return Some("not running as root".into());
    }
    for (program, arg) in [("ip", "-V"), ("iptables-restore", "--version")] {
        if run_command(program, &[arg], None).is_err() {
            return Some(format!(
                "`{program}` is missing (install iproute2 / iptables)"
            ));
        }
    }
    None
}

fn slot_names(slot: u8) -> (String, String) {
    (format!("carnet{slot}-hub"), format!("cnh{slot}"))
}

fn node_ns(slot: u8, index: usize) -> String {
    format!("carnet{slot}-n{index}")
}

fn owner_file(slot: u8) -> PathBuf {
    Path::new(OWNER_DIR).join(format!("slot-{slot}.pid"))
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every namespace of `slot` that exists.
fn slot_namespaces(slot: u8) -> Vec<String> {
    let prefix = format!("carnet{slot}-");
    ip_output(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Removes every namespace and the host link of `slot`, and its owner file.
fn destroy_slot(slot: u8) {
    let (_, host_link) = slot_names(slot);
    let mut namespaces = slot_namespaces(slot);
    // The hub last: the node veths hang off its bridge.
    namespaces.sort_by_key(|n| n.ends_with("-hub"));
    for ns in namespaces {
        let _ = ip(&["netns", "del", &ns]);
    }
    let _ = ip(&["link", "del", &host_link]);
    let _ = std::fs::remove_file(owner_file(slot));
}

/// Claims a free slot: its hub namespace is created (creation is the atomic claim) and
/// its owner file written. A slot whose owner process is gone is reclaimed.
fn claim_slot() -> std::result::Result<u8, String> {
    std::fs::create_dir_all(OWNER_DIR).map_err(|e| format!("{OWNER_DIR}: {e}"))?;
    let routes = ip_output(&["-4", "route", "show"]);
    let addresses = ip_output(&["-4", "-o", "addr", "show"]);
    for slot in 1..=MAX_SLOT {
        let subnet = format!("{}.{}.{slot}.", SUBNET_PREFIX[0], SUBNET_PREFIX[1]);
        let (hub, _) = slot_names(slot);
        let taken_by_others = (routes.contains(&subnet) || addresses.contains(&subnet))
            && slot_namespaces(slot).is_empty();
        if taken_by_others {
            continue;
        }
        if !slot_namespaces(slot).is_empty() {
            let owner = std::fs::read_to_string(owner_file(slot))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            // Nodes left running (`--keep-running`) keep the slot theirs.
            let occupied = slot_namespaces(slot)
                .iter()
                .any(|ns| !ip_output(&["netns", "pids", ns]).trim().is_empty());
            match owner {
                Some(pid) if !pid_alive(pid) && !occupied => destroy_slot(slot),
                // Owned by a live process, or being set up right now.
                _ => continue,
            }
        }
        if ip(&["netns", "add", &hub]).is_ok() {
            std::fs::write(owner_file(slot), std::process::id().to_string())
                .map_err(|e| format!("{}: {e}", owner_file(slot).display()))?;
            return Ok(slot);
        }
    }
    Err(format!(
        "no free slot among {}.{}.1-{MAX_SLOT}.0/24 for the scenario's namespaces",
        SUBNET_PREFIX[0], SUBNET_PREFIX[1]
    ))
}

/// The namespaces of one run.
#[derive(Debug)]
struct Namespaces {
    slot: u8,
    /// Per node code: namespace and address.
    nodes: BTreeMap<String, (String, String)>,
    destroyed: bool,
}

impl Namespaces {
    /// Creates the hub with its bridge and host link, and one namespace per node.
    fn create(codes: &[String]) -> std::result::Result<Namespaces, String> {
        let slot = claim_slot()?;
        let mut namespaces = Namespaces {
            slot,
            nodes: BTreeMap::new(),
            destroyed: false,
        };
        let result = namespaces.build(codes);
        if let Err(e) = result {
            namespaces.destroy();
            return Err(e);
        }
        Ok(namespaces)
    }

    fn address(&self, octet: u8) -> String {
        format!(
            "{}.{}.{}.{octet}",
            SUBNET_PREFIX[0], SUBNET_PREFIX[1], self.slot
        )
    }

    fn build(&mut self, codes: &[String]) -> std::result::Result<(), String> {
        let (hub, host_link) = slot_names(self.slot);
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", "uplink", "netns", &hub,
        ])?;
        ip(&["-n", &hub, "link", "set", "uplink", "master", "br0"])?;
        ip(&["-n", &hub, "link", "set", "uplink", "up"])?;
        let host = format!("{}/24", self.address(HOST_OCTET));
        ip(&["addr", "add", &host, "dev", &host_link])?;
        ip(&["link", "set", &host_link, "up"])?;
        for (index, code) in codes.iter().enumerate() {
            let ns = node_ns(self.slot, index);
            let veth = format!("v{index}");
            let octet = NODE_HOST_BASE
                .checked_add(u8::try_from(index).map_err(|_| "too many nodes".to_string())?)
                .ok_or("too many nodes")?;
            let address = self.address(octet);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &veth, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &veth, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            self.nodes.insert(code.clone(), (ns, address));
        }
        Ok(())
    }

    fn namespace(&self, code: &str) -> std::result::Result<&(String, String), RunnerError> {
        self.nodes
            .get(code)
            .ok_or_else(|| failed(format!("no node {code} in this network")))
    }

    /// Inside `code`'s namespace, refuses every packet to and from each of `peers`.
    fn cut(&self, code: &str, peers: &[String]) -> std::result::Result<(), RunnerError> {
        let (ns, _) = self.namespace(code)?;
        let mut rules = String::from("*filter\n");
        for peer in peers {
            let (_, address) = self.namespace(peer)?;
            rules.push_str(&format!(
                "-A INPUT -s {address} -p tcp -j REJECT --reject-with tcp-reset\n\
                 -A INPUT -s {address} -j DROP\n\
                 -A OUTPUT -d {address} -p tcp -j REJECT --reject-with tcp-reset\n\
                 -A OUTPUT -d {address} -j DROP\n"
            ));
        }
        rules.push_str("COMMIT\n");
        run_command(
            "ip",
            &["netns", "exec", ns, "iptables-restore", "--noflush"],
            Some(&rules),
        )
        .map_err(failed)
    }

    /// Removes every rule in every node namespace.
    fn heal(&self) -> std::result::Result<(), RunnerError> {
        let empty =
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        for (ns, _) in self.nodes.values() {
            run_command(
                "ip",
                &["netns", "exec", ns, "iptables-restore"],
                Some(empty),
            )
            .map_err(failed)?;
        }
        Ok(())
    }

    /// Deletes every namespace and the host link (idempotent).
    fn destroy(&mut self) {
        if !self.destroyed {
            destroy_slot(self.slot);
            self.destroyed = true;
        }
    }
}

// ---------------------------------------------------------------- interrupt cleanup

/// What an interrupted process must undo: node processes (from `testnet.json`) and
/// namespaces of a slot.
#[derive(Clone, Debug)]
struct Registered {
    dir: PathBuf,
    slot: Option<u8>,
}

static REGISTERED: Mutex<BTreeMap<u64, Registered>> = Mutex::new(BTreeMap::new());
static NEXT_REGISTRATION: AtomicU64 = AtomicU64::new(1);

fn register(entry: Registered) -> u64 {
    let id = NEXT_REGISTRATION.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut map) = REGISTERED.lock() {
        map.insert(id, entry);
    }
    id
}

fn unregister(id: u64) {
    if let Ok(mut map) = REGISTERED.lock() {
        map.remove(&id);
    }
}

/// Kills the nodes and removes the namespaces of every live runner of this process.
pub fn cleanup_registered() {
    let entries: Vec<Registered> = REGISTERED
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for entry in entries {
        if let Ok(testnet) = Testnet::load(&entry.dir) {
            for node in &testnet.nodes {
                if let Some(pid) = node.pid {
                    process::signal_node(pid, &node.home, Signal::SIGKILL);
                }
            }
        }
        if let Some(slot) = entry.slot {
            destroy_slot(slot);
        }
    }
}

/// On SIGINT or SIGTERM: clean up every runner of this process, then exit with 130.
/// For command-line use; tests rely on drop.
pub fn install_interrupt_cleanup() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestnetError::Invalid(format!("cannot start the signal runtime: {e}")))?;
    // Register the handlers before returning, so no signal slips through.
    let (mut interrupt, mut terminate) = runtime
        .block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .map_err(|e| TestnetError::Invalid(format!("cannot catch signals: {e}")))?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        eprintln!("carnet-testnet: interrupted; stopping nodes and removing namespaces");
        cleanup_registered();
        std::process::exit(130);
    });
    Ok(())
}

// ---------------------------------------------------------------- the runner

/// A scenario's network as local processes.
#[derive(Debug)]
pub struct ProcessRunner {
    network: Network,
    specs: Vec<NodeSpec>,
    namespaces: Option<Namespaces>,
    /// Why links cannot be cut (loopback mode).
    no_cuts: Option<String>,
    paused: BTreeSet<String>,
    registration: u64,
    stopped: bool,
}

/// Port of `/ip4/A/tcp/PORT` or `http://A:PORT`.
fn port_of(address: &str) -> Option<u16> {
    address
        .trim_end_matches('/')
        .rsplit([':', '/'])
        .next()
        .and_then(|p| p.parse().ok())
}

impl ProcessRunner {
    /// Creates the scenario's testnet in `dir` (which must not hold one) and lays it out
    /// for processes; nothing is started yet.
    pub fn create(
        scenario: &Scenario,
        dir: &Path,
        options: &ProcessRunnerOptions,
    ) -> Result<ProcessRunner> {
        let specs = scenario.node_specs();
        let faulty: Vec<String> = specs
            .iter()
            .filter_map(|s| s.byzantine.map(|m| format!("{} ({})", s.code, m.name())))
            .collect();
        let faulty_binary = match (&options.faulty_binary, faulty.is_empty()) {
            (_, true) => None,
            (Some(path), false) if path.is_file() => Some(path.clone()),
            (Some(path), false) => {
                return Err(TestnetError::BinaryNotFound {
                    name: scenario::FAULTY_BIN_ENV.into(),
                    message: format!(
                        "{} does not exist; scenario {} runs {} on the faulty binary",
                        path.display(),
                        scenario.name,
                        faulty.join(", ")
                    ),
                })
            }
            (None, false) => {
                return Err(TestnetError::BinaryNotFound {
                    name: scenario::FAULTY_BIN_ENV.into(),
                    message: format!(
                        "scenario {} runs {} on the faulty binary, and {} is not set; build \
                         it with `{}`",
                        scenario.name,
                        faulty.join(", "),
                        scenario::FAULTY_BIN_ENV,
                        scenario::FAULTY_BUILD_HINT
                    ),
                })
            }
        };
        if let Some(mutant) = &options.mutant_binary {
            if !mutant.is_file() {
                return Err(TestnetError::BinaryNotFound {
                    name: scenario::MUTANT_BIN_ENV.into(),
                    message: format!("{} does not exist", mutant.display()),
                });
            }
        }
        let reason = match options.isolation {
            Isolation::Loopback => Some("loopback isolation was asked for".to_string()),
            Isolation::Auto => namespaces_unavailable(),
            Isolation::Namespaces => match namespaces_unavailable() {
                Some(why) => {
                    return Err(TestnetError::Invalid(format!(
                        "network namespaces are not available: {why}"
                    )))
                }
                None => None,
            },
        };
        if let (Some(why), true) = (&reason, scenario.cuts_links()) {
            return Err(TestnetError::Invalid(format!(
                "scenario {} disconnects or partitions nodes, which the process runner does \
                 with network namespaces; they are not available: {why} (run as root with \
                 iproute2 and iptables)",
                scenario.name
            )));
        }

        let mut testnet = scenario::prepare_testnet(scenario, dir, &options.node_binary)?;
        let codes = testnet.codes();
        let (namespaces, registration) = if reason.is_none() {
            let namespaces = Namespaces::create(&codes).map_err(TestnetError::Invalid)?;
            let registration = register(Registered {
                dir: testnet.dir.clone(),
                slot: Some(namespaces.slot),
            });
            if let Err(e) = relocate(&mut testnet, &namespaces) {
                let mut namespaces = namespaces;
                namespaces.destroy();
                unregister(registration);
                return Err(e);
            }
            (Some(namespaces), registration)
        } else {
            let registration = register(Registered {
                dir: testnet.dir.clone(),
                slot: None,
            });
            (None, registration)
        };

        let mut runner = ProcessRunner {
            network: Network::new(testnet, options.node_binary.clone()),
            specs: specs.clone(),
            namespaces,
            no_cuts: reason,
            paused: BTreeSet::new(),
            registration,
            stopped: false,
        };
        // From here on, an error drops the runner, which removes what it created.
        for spec in &specs {
            let mut launch = Launch::default();
            if let Some(mode) = spec.byzantine {
                launch.binary = faulty_binary.clone();
                launch.extra_args = scenario::faulty_node_args(mode);
            } else if let Some(mutant) = &options.mutant_binary {
                launch.binary = Some(mutant.clone());
                launch.extra_args = scenario::mutant_node_args();
            }
            if let Some(ns) = &runner.namespaces {
                let (name, _) = ns
                    .namespace(&spec.code)
                    .map_err(|e| TestnetError::Invalid(e.to_string()))?;
                launch.wrapper = vec!["ip".into(), "netns".into(), "exec".into(), name.clone()];
            }
            runner.network.set_launch(&spec.code, launch)?;
        }
        Ok(runner)
    }

    /// The underlying network (pids, testnet directory).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Whether nodes run in their own namespaces (links can be cut).
    pub fn isolated(&self) -> bool {
        self.namespaces.is_some()
    }

    fn namespaces(&self) -> std::result::Result<&Namespaces, RunnerError> {
        self.namespaces.as_ref().ok_or_else(|| {
            failed(format!(
                "links can only be cut when nodes run in network namespaces; this runner \
                 uses loopback ({})",
                self.no_cuts.as_deref().unwrap_or("namespaces unavailable")
            ))
        })
    }

    fn entry(&self, code: &str) -> std::result::Result<NodeEntry, RunnerError> {
        self.network.testnet.node(code).cloned().map_err(to_runner)
    }

    fn signal(&mut self, code: &str, signal: Signal) -> std::result::Result<(), RunnerError> {
        let node = self.entry(code)?;
        let sent = node
            .pid
            .is_some_and(|pid| process::signal_node(pid, &node.home, signal));
        if sent {
            Ok(())
        } else {
            Err(failed(format!("{code} is not running")))
        }
    }
}

/// Moves every node of `testnet` to its namespace address: `listen_p2p`, `listen_api`
/// and `peers` in each `config.toml`, `testnet.json` and the CLI profiles.
fn relocate(testnet: &mut Testnet, namespaces: &Namespaces) -> Result<()> {
    for node in testnet.nodes.iter_mut() {
        let (_, address) = namespaces
            .nodes
            .get(&node.code)
            .ok_or_else(|| TestnetError::Invalid(format!("no namespace for {}", node.code)))?;
        let p2p_port = port_of(&node.p2p)
            .ok_or_else(|| TestnetError::Invalid(format!("no port in {}", node.p2p)))?;
        let api_port = port_of(&node.api)
            .ok_or_else(|| TestnetError::Invalid(format!("no port in {}", node.api)))?;
        node.p2p = format!("/ip4/{address}/tcp/{p2p_port}");
        node.api = format!("http://{address}:{api_port}");
    }
    let entries = testnet.nodes.clone();
    for node in &entries {
        let original = node.code.strip_suffix("-twin");
        let peers: Vec<String> = entries
            .iter()
            .filter(|p| !p.code.ends_with("-twin"))
            .filter(|p| p.code != node.code && Some(p.code.as_str()) != original)
            .map(NodeEntry::dial_addr)
            .collect();
        let listen_api = node.api.trim_start_matches("http://").to_string();
        let listen_p2p = node.p2p.clone();
        crate::init::edit_config(&node.home, |table| {
            table.insert("listen_p2p".into(), toml::Value::String(listen_p2p));
            table.insert("listen_api".into(), toml::Value::String(listen_api));
            table.insert(
                "peers".into(),
                toml::Value::Array(peers.into_iter().map(toml::Value::String).collect()),
            );
        })?;
        let path = testnet.profile_path(&node.code);
        let mut profile = carnet_cli::profile::Profile::load(&path)?;
        profile.node = Some(node.api.clone());
        profile.save(&path)?;
    }
    testnet.save()
}

impl Runner for ProcessRunner {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn nodes(&self) -> Vec<RunnerNode> {
        self.network
            .testnet
            .nodes
            .iter()
            .map(|n| RunnerNode {
                code: n.code.clone(),
                api_url: n.api.clone(),
                profile_path: self.network.testnet.profile_path(&n.code),
            })
            .collect()
    }

    fn start_all(&mut self, timeout: Duration) -> std::result::Result<(), RunnerError> {
        self.stopped = false;
        self.network.start_all().map_err(to_runner)?;
        let deadline = Instant::now() + timeout;
        let codes: Vec<String> = self.specs.iter().map(|s| s.code.clone()).collect();
        loop {
            let mut waiting = None;
            for code in &codes {
                if !self.network.is_running(code) {
                    // Not a node yet is not dead: the child may not have exec'd the
                    // node (or `ip netns exec`) yet. Dead is: gone or a zombie (the
                    // check above reaps our own children).
                    if let Ok(node) = self.network.testnet.node(code) {
                        let alive = node.pid.is_some_and(process::is_alive);
                        if !alive {
                            return Err(failed(format!(
                                "node {code} exited while starting{}",
                                process::log_tails(node, LOG_TAIL_LINES)
                            )));
                        }
                    }
                    waiting = Some(format!("{code} starting"));
                    continue;
                }
                if let Err(e) = self.network.health(code) {
                    waiting = Some(format!("{code} not answering: {e}"));
                }
            }
            let Some(why) = waiting else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let tails = codes
                    .iter()
                    .filter_map(|c| self.network.testnet.node(c).ok())
                    .map(|n| process::log_tails(n, LOG_TAIL_LINES))
                    .next()
                    .unwrap_or_default();
                return Err(failed(format!(
                    "the network did not answer within {} s ({why}){tails}",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(HEALTH_POLL_MS));
        }
    }

    fn start(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.paused.remove(code);
        self.network.start(code).map_err(to_runner)
    }

    fn kill(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.paused.remove(code);
        self.network.kill(code).map(|_| ()).map_err(to_runner)
    }

    fn pause(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.signal(code, Signal::SIGSTOP)?;
        self.paused.insert(code.to_string());
        Ok(())
    }

    fn resume(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.signal(code, Signal::SIGCONT)?;
        self.paused.remove(code);
        Ok(())
    }

    fn disconnect(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        let namespaces = self.namespaces()?;
        let others: Vec<String> = namespaces
            .nodes
            .keys()
            .filter(|c| c.as_str() != code)
            .cloned()
            .collect();
        namespaces.cut(code, &others)
    }

    fn partition(&mut self, groups: &[Vec<String>]) -> std::result::Result<(), RunnerError> {
        let namespaces = self.namespaces()?;
        let all: Vec<String> = namespaces.nodes.keys().cloned().collect();
        for code in &all {
            let own: &[String] = groups
                .iter()
                .find(|g| g.contains(code))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let others: Vec<String> = all
                .iter()
                .filter(|c| *c != code && !own.contains(c))
                .cloned()
                .collect();
            namespaces.cut(code, &others)?;
        }
        Ok(())
    }

    fn heal(&mut self) -> std::result::Result<(), RunnerError> {
        self.namespaces()?.heal()
    }

    fn stop_all(&mut self) -> std::result::Result<(), RunnerError> {
        if self.stopped {
            return Ok(());
        }
        // A stopped process would sit on SIGTERM until the grace period ends.
        for code in std::mem::take(&mut self.paused) {
            let _ = self.signal(&code, Signal::SIGCONT);
        }
        let result = self.network.down().map(|_| ()).map_err(to_runner);
        if let Some(namespaces) = self.namespaces.as_mut() {
            namespaces.destroy();
        }
        unregister(self.registration);
        self.stopped = true;
        result
    }

    fn logs(&self, code: &str) -> std::result::Result<String, RunnerError> {
        let node = self.entry(code)?;
        let mut text = String::new();
        for path in [node.stdout_log(), node.node_log()] {
            match std::fs::read(&path) {
                Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RunnerError::Io(e)),
            }
        }
        Ok(text)
    }

    fn is_running(&mut self, code: &str) -> bool {
        self.network.is_running(code)
    }
}

impl Drop for ProcessRunner {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_from_multiaddrs_and_urls() {
        assert_eq!(port_of("/ip4/127.0.0.1/tcp/7101"), Some(7101));
        assert_eq!(port_of("http://127.0.0.1:7201"), Some(7201));
        assert_eq!(port_of("http://10.213.4.10:7201/"), Some(7201));
        assert_eq!(port_of("/ip4/127.0.0.1/tcp/"), None);
    }

    #[test]
    fn a_scenario_that_cuts_links_is_refused_on_loopback_before_anything_is_created() {
        let scenario = Scenario::parse(
            "nodes = 4\n[load]\nrate = 1\nduration_secs = 1\n[[timeline]]\nat_secs = 1\naction = \"disconnect\"\nnode = \"XA\"\n",
            "cut",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = ProcessRunnerOptions {
            node_binary: PathBuf::from("/nonexistent/carnet-node"),
            faulty_binary: None,
            mutant_binary: None,
            isolation: Isolation::Loopback,
        };
        let err = ProcessRunner::create(&scenario, &dir.path().join("net"), &options).unwrap_err();
        assert!(err.to_string().contains("network namespaces"), "{err}");
        assert!(!dir.path().join("net").exists(), "nothing was created");
    }

    #[test]
    fn a_byzantine_scenario_without_the_faulty_binary_is_refused_naming_it() {
        let scenario = Scenario::parse(
            "nodes = 4\n[load]\nrate = 1\nduration_secs = 1\n[[byzantine]]\nnode = \"XD\"\nmode = \"silent\"\n",
            "silent",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = ProcessRunnerOptions {
            node_binary: PathBuf::from("/nonexistent/carnet-node"),
            faulty_binary: Some(dir.path().join("missing-carnet-node")),
            mutant_binary: None,
            isolation: Isolation::Loopback,
        };
        let err = ProcessRunner::create(&scenario, &dir.path().join("net"), &options).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("CARNET_FAULTY_BIN") && text.contains("XD (silent)"),
            "{text}"
        );
    }
}
