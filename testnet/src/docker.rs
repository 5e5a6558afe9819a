//! The docker compose runner: each node of a testnet in its own container.
//!
//! `carnet-testnet compose --nodes N --dir D` (and [`DockerRunner::prepare`]) turns a
//! testnet made by [`crate::init`] into a compose project:
//!
//! * one container per administration, from the image `testnet/docker/build-image.sh`
//!   builds `FROM scratch` (nothing is pulled); read-only root filesystem, a tmpfs on
//!   `/tmp`, every capability dropped, a non-root user, `docker-init` as PID 1 (so SIGTERM
//!   reaches the node); the node home is bind-mounted at `/carnet/home`;
//! * one small internal bridge network per *pair* of nodes (`PROJECT-xa-xb`, a /29 with
//!   fixed addresses): node XA dials XB at XB's address on the XA–XB network. Cutting a
//!   link is `docker network disconnect` of both ends from that one network, so any
//!   partition into groups is exact, and healing reconnects each end with the same
//!   address (TCP connections survive a short cut);
//! * one `PROJECT-api` bridge network that carries only the published API port,
//!   `127.0.0.1:PORT` on the host, so profiles and the CLI work unchanged while a node is
//!   cut off. Nodes never dial each other's API-network address (peers list only pair
//!   addresses, and the node runs no address discovery); docker's isolation rules drop
//!   traffic routed from another network into an internal one.
//!
//! `D/docker-compose.yml` plus `D/.env` (`COMPOSE_PROJECT_NAME`) are a compose project a
//! user can run by hand; `D/docker.json` records the plan (addresses, networks, images)
//! so another process can reopen the runner.
//!
//! Must never stop, remove, connect or disconnect a container or network whose name does
//! not start with this testnet's project name; every docker command runs with a timeout.

use crate::layout::Testnet;
use crate::runner::{Runner, RunnerError, RunnerNode};
use crate::{init, network, process, Result, TestnetError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Image of honest nodes.
pub const DEFAULT_IMAGE: &str = "carnet-node:local";
/// Image of nodes started in a misbehaving mode (the `byzantine` build of carnet-node).
pub const DEFAULT_FAULTY_IMAGE: &str = "carnet-node-faulty:local";
/// The plan, next to `testnet.json`.
pub const PLAN_FILE: &str = "docker.json";
/// The compose file, next to `testnet.json`.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// Where the node home is mounted inside its container.
pub const HOME_IN_CONTAINER: &str = "/carnet/home";
/// The non-root user containers run as when carnet-testnet itself runs as root.
pub const CONTAINER_UID: u32 = 10001;
/// Longest a single docker command may take (pause, connect, inspect, ...).
pub const DOCKER_TIMEOUT_MS: u64 = 60_000;
/// Longest `compose up` / `compose down` / an image build may take.
pub const COMPOSE_TIMEOUT_MS: u64 = 300_000;
/// Seconds a container gets to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE_SECS: u64 = 10;
/// Most bytes kept of one command's stdout or stderr (docker logs is the big one).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;
/// Each testnet gets one /24 out of this /16: pair networks are /29s from its start,
/// the API network is its last /27.
pub const SUBNET_POOL: [u8; 2] = [10, 177];
/// Offset of the API network's /27 inside the testnet's /24 (room for 28 pair networks:
/// every pair of 7 validators and a twin).
const API_SUBNET_OFFSET: u8 = 224;
/// Addresses per pair network (/29: network, gateway, two nodes, spare, broadcast).
const PAIR_SUBNET_SIZE: u8 = 8;

fn invalid(message: impl Into<String>) -> TestnetError {
    TestnetError::Invalid(message.into())
}

/// How `prepare` lays a testnet out in containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerOptions {
    /// Image of honest nodes, built from `node_binary`.
    pub image: String,
    /// The `carnet-node` honest images are built from; `None`: the one
    /// [`process::locate_binary`] finds (`CARNET_BIN_DIR`, `target/release`).
    pub node_binary: Option<PathBuf>,
    /// Image of the nodes in `byzantine`, built from `faulty_binary`.
    pub faulty_image: String,
    /// The `carnet-node` built with `--features byzantine`; `None`: `$CARNET_FAULTY_BIN`.
    /// Needed only when `byzantine` is not empty.
    pub faulty_binary: Option<PathBuf>,
    /// Extra `carnet-node start` arguments per administration (e.g. `XD` →
    /// `["--byzantine", "equivocate", "--i-understand-this-node-misbehaves"]`); a node
    /// listed here runs `faulty_image`.
    pub byzantine: BTreeMap<String, Vec<String>>,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            image: DEFAULT_IMAGE.to_string(),
            node_binary: None,
            faulty_image: DEFAULT_FAULTY_IMAGE.to_string(),
            faulty_binary: None,
            byzantine: BTreeMap::new(),
        }
    }
}

impl DockerOptions {
    /// Image tag → the binary it is built from, for the images a network of `codes`
    /// uses. Fails if `byzantine` names another node or a binary is missing.
    fn image_sources(&self, codes: &[String]) -> Result<BTreeMap<String, PathBuf>> {
        for code in self.byzantine.keys() {
            if !codes.contains(code) {
                return Err(invalid(format!(
                    "no node {code} in this testnet (nodes: {})",
                    codes.join(", ")
                )));
            }
        }
        let mut images = BTreeMap::new();
        if codes.iter().any(|c| !self.byzantine.contains_key(c)) {
            let binary = match &self.node_binary {
                Some(path) => path.clone(),
                None => process::locate_binary(process::NODE_BINARY)?,
            };
            images.insert(self.image.clone(), binary);
        }
        if !self.byzantine.is_empty() {
            let binary = match &self.faulty_binary {
                Some(path) => path.clone(),
                None => std::env::var_os("CARNET_FAULTY_BIN")
                    .map(PathBuf::from)
                    .ok_or_else(|| {
                        invalid(
                            "a byzantine node needs the carnet-node built with `--features \
                             byzantine`: set CARNET_FAULTY_BIN to it",
                        )
                    })?,
            };
            if images.contains_key(&self.faulty_image) {
                return Err(invalid(format!(
                    "the faulty image must differ from the honest one (both `{}`)",
                    self.faulty_image
                )));
            }
            images.insert(self.faulty_image.clone(), binary);
        }
        for binary in images.values() {
            if !binary.is_file() {
                return Err(invalid(format!(
                    "no carnet-node binary at {}",
                    binary.display()
                )));
            }
        }
        Ok(images)
    }
}

/// One end of a pair network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEnd {
    pub code: String,
    pub ip: Ipv4Addr,
}

/// The network that carries traffic between exactly two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLink {
    /// Key in the compose file, e.g. `xa-xb`.
    pub key: String,
    /// Docker network name, `PROJECT-xa-xb`.
    pub network: String,
    pub subnet: String,
    pub ends: [LinkEnd; 2],
}

impl PeerLink {
    fn joins(&self, a: &str, b: &str) -> bool {
        (self.ends[0].code == a && self.ends[1].code == b)
            || (self.ends[0].code == b && self.ends[1].code == a)
    }

    fn touches(&self, code: &str) -> bool {
        self.ends.iter().any(|e| e.code == code)
    }
}

/// One node's container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPlan {
    pub code: String,
    /// Service name in the compose file (`xa`).
    pub service: String,
    /// Container name (`PROJECT-xa`).
    pub container: String,
    pub image: String,
    /// Runs the faulty image (the `byzantine` build of carnet-node).
    #[serde(default)]
    pub faulty: bool,
    /// Host path of the node home (bind-mounted at [`HOME_IN_CONTAINER`]).
    pub home: PathBuf,
    pub api_port: u16,
    pub p2p_port: u16,
    /// The container's command (arguments of `carnet-node`).
    pub command: Vec<String>,
}

/// Everything `D/docker.json` records: enough to rebuild the compose file and to heal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposePlan {
    /// Compose project name; prefix of every container and network name.
    pub project: String,
    /// The testnet's /24.
    pub subnet: String,
    /// `uid:gid` the containers run as.
    pub user: String,
    /// Docker network that carries the published API ports.
    pub api_network: String,
    pub api_subnet: String,
    /// Image tag → the host binary it is built from.
    pub images: BTreeMap<String, PathBuf>,
    pub nodes: Vec<ContainerPlan>,
    pub links: Vec<PeerLink>,
}

impl ComposePlan {
    pub fn node(&self, code: &str) -> Result<&ContainerPlan> {
        self.nodes.iter().find(|n| n.code == code).ok_or_else(|| {
            let codes: Vec<&str> = self.nodes.iter().map(|n| n.code.as_str()).collect();
            invalid(format!(
                "no node {code} in this testnet (nodes: {})",
                codes.join(", ")
            ))
        })
    }

    /// The address `to` has on its link with `from`.
    pub fn address_of(&self, to: &str, from: &str) -> Option<Ipv4Addr> {
        let link = self.links.iter().find(|l| l.joins(from, to))?;
        link.ends.iter().find(|e| e.code == to).map(|e| e.ip)
    }
}

/// The port of a `/ip4/A/tcp/PORT` multiaddr or an `http://HOST:PORT` URL.
fn port_of(address: &str) -> Result<u16> {
    let digits = if let Some((_, rest)) = address.rsplit_once("/tcp/") {
        rest.split('/').next().unwrap_or("")
    } else {
        address
            .trim_end_matches('/')
            .rsplit_once(':')
            .map(|(_, p)| p)
            .unwrap_or("")
    };
    digits
        .parse()
        .map_err(|_| invalid(format!("cannot read a port in `{address}`")))
}

fn subnet_base(subnet: Ipv4Addr) -> u32 {
    u32::from(subnet) & 0xffff_ff00
}

/// Who dials whom: administration code → the codes in its `peers`, in that order.
pub type Dials = BTreeMap<String, Vec<String>>;

/// Reads each node's `peers` from its `config.toml` and names the node behind each
/// address (by its p2p port, unique in a testnet; a twin shares its original's peer id).
/// The docker layout keeps exactly these peer sets and changes only the addresses.
pub fn read_dials(testnet: &Testnet) -> Result<Dials> {
    let mut by_port = BTreeMap::new();
    for entry in &testnet.nodes {
        if let Some(other) = by_port.insert(port_of(&entry.p2p)?, entry.code.clone()) {
            return Err(invalid(format!(
                "{} and {other} share p2p port {}",
                entry.code,
                port_of(&entry.p2p)?
            )));
        }
    }
    let mut dials = Dials::new();
    for entry in &testnet.nodes {
        let path = entry.home.join("config.toml");
        let text = std::fs::read_to_string(&path).map_err(TestnetError::io(&path))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        let mut peers = Vec::new();
        for peer in table
            .get("peers")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let addr = peer.as_str().unwrap_or_default();
            let code = by_port.get(&port_of(addr)?).ok_or_else(|| {
                invalid(format!(
                    "{}: peer {addr} is no node of this testnet",
                    path.display()
                ))
            })?;
            peers.push(code.clone());
        }
        dials.insert(entry.code.clone(), peers);
    }
    Ok(dials)
}

/// Lays `testnet` out on the /24 `subnet`: one pair network for every two nodes of which
/// one dials the other (no docker, no writes; checks the binaries exist).
pub fn plan(
    testnet: &Testnet,
    dials: &Dials,
    options: &DockerOptions,
    subnet: Ipv4Addr,
    project: &str,
    user: &str,
) -> Result<ComposePlan> {
    let images = options.image_sources(&testnet.codes())?;
    let n = testnet.nodes.len();
    let dial = |a: &str, b: &str| dials.get(a).is_some_and(|p| p.iter().any(|c| c == b));
    let pairs = testnet
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, a)| testnet.nodes[i + 1..].iter().map(move |b| (a, b)))
        .filter(|(a, b)| dial(&a.code, &b.code) || dial(&b.code, &a.code))
        .count();
    if pairs * usize::from(PAIR_SUBNET_SIZE) > usize::from(API_SUBNET_OFFSET) {
        return Err(invalid(format!(
            "{n} nodes need {pairs} pair networks; at most {} fit in one /24",
            API_SUBNET_OFFSET / PAIR_SUBNET_SIZE
        )));
    }
    if !project
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || project.is_empty()
    {
        return Err(invalid(format!(
            "project name `{project}` must be lowercase letters, digits and '-'"
        )));
    }
    let base = subnet_base(subnet);
    let mut nodes = Vec::with_capacity(n);
    for entry in &testnet.nodes {
        let service = entry.code.to_ascii_lowercase();
        let (image, faulty, extra) = match options.byzantine.get(&entry.code) {
            Some(args) => (options.faulty_image.clone(), true, args.clone()),
            None => (options.image.clone(), false, Vec::new()),
        };
        let mut command = vec![
            "start".to_string(),
            "--home".to_string(),
            HOME_IN_CONTAINER.to_string(),
        ];
        command.extend(extra);
        nodes.push(ContainerPlan {
            code: entry.code.clone(),
            container: format!("{project}-{service}"),
            service,
            image,
            faulty,
            home: entry.home.clone(),
            api_port: port_of(&entry.api)?,
            p2p_port: port_of(&entry.p2p)?,
            command,
        });
    }
    let mut links = Vec::with_capacity(pairs);
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            if !dial(&a.code, &b.code) && !dial(&b.code, &a.code) {
                continue;
            }
            let start = base + (links.len() as u32) * u32::from(PAIR_SUBNET_SIZE);
            let key = format!("{}-{}", a.service, b.service);
            links.push(PeerLink {
                network: format!("{project}-{key}"),
                key,
                subnet: format!("{}/29", Ipv4Addr::from(start)),
                ends: [
                    LinkEnd {
                        code: a.code.clone(),
                        ip: Ipv4Addr::from(start + 2),
                    },
                    LinkEnd {
                        code: b.code.clone(),
                        ip: Ipv4Addr::from(start + 3),
                    },
                ],
            });
        }
    }
    Ok(ComposePlan {
        project: project.to_string(),
        subnet: format!("{}/24", Ipv4Addr::from(base)),
        user: user.to_string(),
        api_network: format!("{project}-api"),
        images,
        api_subnet: format!("{}/27", Ipv4Addr::from(base + u32::from(API_SUBNET_OFFSET))),
        nodes,
        links,
    })
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The compose file for `plan` (compose file format 2.4: docker-compose 1.27+ and
/// `docker compose` v2 both read it).
pub fn render_compose(plan: &ComposePlan) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Carnet testnet `{}` — written by `carnet-testnet compose`; regenerate rather than edit.\n\
         # Run by hand from this directory (.env names the project):\n\
         #   docker compose up -d          (or docker-compose up -d)\n\
         #   docker compose down\n\
         # Images: testnet/docker/build-image.sh (FROM scratch; nothing is pulled).\n\
         # Each pair of nodes shares one internal /29 network; the API of each node is\n\
         # published on 127.0.0.1 only.\n",
        plan.project
    ));
    out.push_str("version: \"2.4\"\nservices:\n");
    for node in &plan.nodes {
        out.push_str(&format!("  {}:\n", node.service));
        out.push_str(&format!("    image: {}\n", quoted(&node.image)));
        out.push_str(&format!(
            "    container_name: {}\n",
            quoted(&node.container)
        ));
        let command: Vec<String> = node.command.iter().map(|a| quoted(a)).collect();
        out.push_str(&format!("    command: [{}]\n", command.join(", ")));
        out.push_str(&format!("    user: {}\n", quoted(&plan.user)));
        out.push_str("    init: true\n    read_only: true\n    tmpfs: [\"/tmp\"]\n");
        out.push_str("    cap_drop: [\"ALL\"]\n");
        out.push_str("    security_opt: [\"no-new-privileges:true\"]\n");
        out.push_str(&format!("    stop_grace_period: {STOP_GRACE_SECS}s\n"));
        out.push_str("    restart: \"no\"\n");
        out.push_str(&format!(
            "    labels:\n      org.carnet.administration: {}\n",
            quoted(&node.code)
        ));
        out.push_str(&format!(
            "    volumes:\n      - {}\n",
            quoted(&format!("{}:{HOME_IN_CONTAINER}", node.home.display()))
        ));
        out.push_str(&format!(
            "    ports:\n      - {}\n",
            quoted(&format!("127.0.0.1:{0}:{0}", node.api_port))
        ));
        out.push_str("    networks:\n      api: {}\n");
        for link in plan.links.iter().filter(|l| l.touches(&node.code)) {
            if let Some(end) = link.ends.iter().find(|e| e.code == node.code) {
                out.push_str(&format!(
                    "      {}:\n        ipv4_address: {}\n",
                    link.key,
                    quoted(&end.ip.to_string())
                ));
            }
        }
    }
    out.push_str("networks:\n");
    out.push_str(&format!(
        "  api:\n    name: {}\n    driver: bridge\n    ipam:\n      config:\n        - subnet: {}\n",
        quoted(&plan.api_network),
        quoted(&plan.api_subnet)
    ));
    for link in &plan.links {
        out.push_str(&format!(
            "  {}:\n    name: {}\n    driver: bridge\n    internal: true\n    ipam:\n      config:\n        - subnet: {}\n",
            link.key,
            quoted(&link.network),
            quoted(&link.subnet)
        ));
    }
    out
}

/// Points every node's `config.toml` at its container addresses: listen on all
/// interfaces, dial each peer of `dials` at its address on their pair network. Also
/// records the listen address in `testnet.json`.
pub fn rewrite_configs(testnet: &mut Testnet, plan: &ComposePlan, dials: &Dials) -> Result<()> {
    let entries = testnet.nodes.clone();
    for entry in &entries {
        let node = plan.node(&entry.code)?;
        let mut peers = Vec::new();
        for other in dials.get(&entry.code).into_iter().flatten() {
            let ip = plan
                .address_of(other, &entry.code)
                .ok_or_else(|| invalid(format!("no network joins {} and {other}", entry.code)))?;
            let port = plan.node(other)?.p2p_port;
            let peer_id = &testnet.node(other)?.peer_id;
            peers.push(format!("/ip4/{ip}/tcp/{port}/p2p/{peer_id}"));
        }
        let listen_p2p = format!("/ip4/0.0.0.0/tcp/{}", node.p2p_port);
        let listen_api = format!("0.0.0.0:{}", node.api_port);
        init::edit_config(&entry.home, |table| {
            table.insert("listen_p2p".into(), toml::Value::String(listen_p2p.clone()));
            table.insert("listen_api".into(), toml::Value::String(listen_api));
            table.insert(
                "peers".into(),
                toml::Value::Array(peers.into_iter().map(toml::Value::String).collect()),
            );
        })?;
        for e in testnet.nodes.iter_mut().filter(|e| e.code == entry.code) {
            e.p2p = listen_p2p.clone();
        }
    }
    testnet.save()
}

/// Output of a finished command, or why it could not finish.
fn run_bounded(command: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| invalid(format!("cannot run {shown}: {e}")))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe
                    .by_ref()
                    .take(MAX_OUTPUT_BYTES as u64)
                    .read_to_end(&mut bytes);
                // Past the bound: keep draining so the command never blocks on a full pipe.
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestnetError::Timeout(format!(
                    "{shown} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
            Err(e) => return Err(invalid(format!("waiting for {shown}: {e}"))),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs `docker ARGS`; fails with docker's own message.
fn docker(args: &[&str]) -> Result<String> {
    docker_timeout(args, Duration::from_millis(DOCKER_TIMEOUT_MS))
}

fn docker_timeout(args: &[&str], timeout: Duration) -> Result<String> {
    let out = run_bounded(Command::new("docker").args(args), timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(invalid(format!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Checks that the docker daemon answers; the error says what to do.
pub fn docker_available() -> Result<()> {
    docker_timeout(
        &["info", "--format", "{{.ServerVersion}}"],
        Duration::from_secs(20),
    )
    .map(|_| ())
    .map_err(|e| invalid(format!("docker is not usable here: {e}")))
}

/// The compose command of this machine: `docker compose` (v2) or `docker-compose` (v1).
pub fn compose_command() -> Result<Vec<String>> {
    let timeout = Duration::from_secs(20);
    let works = |program: &str, args: &[&str]| {
        run_bounded(Command::new(program).args(args), timeout)
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if works("docker", &["compose", "version"]) {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    if works("docker-compose", &["version"]) {
        return Ok(vec!["docker-compose".into()]);
    }
    Err(invalid(
        "neither `docker compose` nor `docker-compose` is installed",
    ))
}

/// Every IPv4 network docker or the host routing table already uses, as (base, prefix).
fn used_networks() -> Result<Vec<(u32, u32)>> {
    let mut used = Vec::new();
    let ids = docker(&["network", "ls", "-q"])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec![
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ];
        args.extend(ids);
        for cidr in docker(&args)?.split_whitespace() {
            if let Some(net) = parse_cidr(cidr) {
                used.push(net);
            }
        }
    }
    // /proc/net/route: destination and mask in host byte order hex (little endian).
    if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(dest), Some(mask)) = (fields.get(1), fields.get(7)) else {
                continue;
            };
            let (Ok(dest), Ok(mask)) =
                (u32::from_str_radix(dest, 16), u32::from_str_radix(mask, 16))
            else {
                continue;
            };
            // The kernel prints the network-order bytes read as a native integer.
            let dest = u32::from(Ipv4Addr::from(dest.to_ne_bytes()));
            let mask = u32::from(Ipv4Addr::from(mask.to_ne_bytes()));
            if mask != 0 {
                used.push((dest & mask, mask.count_ones()));
            }
        }
    }
    Ok(used)
}

fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, prefix) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if prefix > 32 {
        return None;
    }
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some((u32::from(ip) & mask, prefix))
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let prefix = a.1.min(b.1);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    a.0 & mask == b.0 & mask
}

/// A /24 of [`SUBNET_POOL`] that no docker network and no host route uses.
fn free_subnet(used: &[(u32, u32)]) -> Result<Ipv4Addr> {
    let start: u8 = rand::random();
    for offset in 0..=255u8 {
        let third = start.wrapping_add(offset);
        let candidate = Ipv4Addr::new(SUBNET_POOL[0], SUBNET_POOL[1], third, 0);
        let net = (u32::from(candidate), 24);
        if !used.iter().any(|u| overlaps(*u, net)) {
            return Ok(candidate);
        }
    }
    Err(invalid(format!(
        "every /24 of {}.{}.0.0/16 is used by a docker network or a route; remove unused networks (`docker network prune`)",
        SUBNET_POOL[0], SUBNET_POOL[1]
    )))
}

/// True if docker runs rootless (container root is the invoking user).
fn docker_is_rootless() -> bool {
    docker(&["info", "--format", "{{json .SecurityOptions}}"])
        .map(|s| s.contains("rootless"))
        .unwrap_or(false)
}

/// Gives `root` and everything below it to `uid:gid` (symlinks themselves, not targets).
fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(TestnetError::io(&path))?;
        let meta = std::fs::symlink_metadata(&path).map_err(TestnetError::io(&path))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(TestnetError::io(&path))? {
                stack.push(entry.map_err(TestnetError::io(&path))?.path());
            }
        }
    }
    Ok(())
}

/// The user containers run as, and gives the node homes to it when needed: the invoking
/// user's uid:gid; when that is root, [`CONTAINER_UID`] (the homes are chowned to it);
/// with rootless docker, container root (which is the invoking user on the host).
fn container_user(testnet: &Testnet) -> Result<String> {
    let me = std::fs::metadata("/proc/self").map_err(TestnetError::io("/proc/self"))?;
    if docker_is_rootless() {
        return Ok("0:0".into());
    }
    if me.uid() != 0 {
        return Ok(format!("{}:{}", me.uid(), me.gid()));
    }
    for node in &testnet.nodes {
        chown_tree(&node.home, CONTAINER_UID, CONTAINER_UID)?;
    }
    Ok(format!("{CONTAINER_UID}:{CONTAINER_UID}"))
}

/// Directory holding `build-image.sh` and the Dockerfile.
pub fn docker_dir() -> PathBuf {
    std::env::var_os("CARNET_DOCKER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docker")))
}

/// Runs `build-image.sh` for every image `plan` uses. The script rebuilds an image only
/// when its binary (or the Dockerfile or the script) changed.
pub fn build_images(plan: &ComposePlan) -> Result<String> {
    let script = docker_dir().join("build-image.sh");
    if !script.is_file() {
        return Err(invalid(format!(
            "no image build script at {} (set CARNET_DOCKER_DIR to the repository's testnet/docker)",
            script.display()
        )));
    }
    let mut reports = String::new();
    for (tag, binary) in &plan.images {
        reports.push_str(&run_script(&script, binary, tag)?);
    }
    Ok(reports)
}

fn run_script(script: &Path, binary: &Path, tag: &str) -> Result<String> {
    let out = run_bounded(
        Command::new("bash")
            .arg(script)
            .arg("--binary")
            .arg(binary)
            .args(["--tag", tag])
            .env_remove("CARNET_FAULTY_BIN")
            .env_remove("CARNET_NODE_BIN")
            .env_remove("CARNET_IMAGE"),
        Duration::from_millis(COMPOSE_TIMEOUT_MS),
    )?;
    if !out.status.success() {
        return Err(invalid(format!(
            "building image {tag} failed: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `carnet-testnet compose --nodes N --dir D`: a fresh testnet laid out for docker.
/// Containers are not started.
pub fn compose_init(
    nodes: usize,
    dir: &Path,
    node_binary: &Path,
    options: &DockerOptions,
) -> Result<DockerRunner> {
    docker_available()?;
    let mut options = options.clone();
    if options.node_binary.is_none() {
        options.node_binary = Some(node_binary.to_path_buf());
    }
    // Check the options before anything is written.
    let codes: Vec<String> = crate::layout::ADMINISTRATIONS
        .iter()
        .take(nodes)
        .map(|(code, _)| code.to_string())
        .collect();
    options.image_sources(&codes)?;
    let testnet = init::init(nodes, dir, node_binary)?;
    DockerRunner::prepare(testnet, &options)
}

/// Container state as `docker inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ContainerState {
    running: bool,
    paused: bool,
    networks: BTreeSet<String>,
}

/// A testnet whose nodes run as containers of one compose project.
pub struct DockerRunner {
    testnet: Testnet,
    plan: ComposePlan,
    compose: Vec<String>,
    stop_on_drop: bool,
}

impl std::fmt::Debug for DockerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRunner")
            .field("dir", &self.testnet.dir)
            .field("project", &self.plan.project)
            .finish()
    }
}

impl DockerRunner {
    /// Lays out an initialised (never started) testnet for docker: picks a free subnet,
    /// rewrites each `config.toml` for container addresses, writes `docker.json`,
    /// `docker-compose.yml` and `.env`. The returned runner stops its containers when
    /// dropped (see [`DockerRunner::detach`]).
    pub fn prepare(mut testnet: Testnet, options: &DockerOptions) -> Result<DockerRunner> {
        let plan_path = testnet.dir.join(PLAN_FILE);
        if plan_path.exists() {
            return Err(invalid(format!(
                "{} already exists: this testnet is laid out for docker already (open it instead)",
                plan_path.display()
            )));
        }
        if testnet.nodes.iter().any(|n| n.pid.is_some()) {
            return Err(invalid(
                "this testnet has node processes started by `up`; `down` it first",
            ));
        }
        let compose = compose_command()?;
        let subnet = free_subnet(&used_networks()?)?;
        let project = format!("carnet-{}", hex::encode(rand::random::<[u8; 4]>()));
        // Validate everything before the first file changes.
        let dials = read_dials(&testnet)?;
        let provisional = plan(&testnet, &dials, options, subnet, &project, "0:0")?;
        let user = container_user(&testnet)?;
        let plan = ComposePlan {
            user,
            ..provisional
        };
        rewrite_configs(&mut testnet, &plan, &dials)?;
        let dir = testnet.dir.clone();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(TestnetError::io(&path))
        };
        write(COMPOSE_FILE, render_compose(&plan))?;
        write(".env", format!("COMPOSE_PROJECT_NAME={}\n", plan.project))?;
        let json = serde_json::to_string_pretty(&plan)
            .map_err(|e| invalid(format!("cannot encode {PLAN_FILE}: {e}")))?;
        write(PLAN_FILE, json + "\n")?;
        Ok(DockerRunner {
            testnet,
            plan,
            compose,
            stop_on_drop: true,
        })
    }

    /// Reopens the docker testnet in `dir` (from another process); its containers keep
    /// running when the value is dropped.
    pub fn open(dir: &Path) -> Result<DockerRunner> {
        let testnet = Testnet::load(dir)?;
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            invalid(format!(
                "{}: {e} (lay the testnet out with `carnet-testnet compose` first)",
                path.display()
            ))
        })?;
        let plan: ComposePlan =
            serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        Ok(DockerRunner {
            testnet,
            plan,
            compose: compose_command()?,
            stop_on_drop: false,
        })
    }

    /// Leaves the containers running when this value is dropped.
    pub fn detach(mut self) {
        self.stop_on_drop = false;
    }

    pub fn testnet(&self) -> &Testnet {
        &self.testnet
    }

    pub fn plan(&self) -> &ComposePlan {
        &self.plan
    }

    pub fn compose_file(&self) -> PathBuf {
        self.testnet.dir.join(COMPOSE_FILE)
    }

    /// Builds the images the plan uses if they are missing or older than the binaries.
    pub fn build_images(&self) -> Result<String> {
        build_images(&self.plan)
    }

    /// Runs `compose -p PROJECT -f D/docker-compose.yml ARGS`.
    fn compose(&self, args: &[&str]) -> Result<String> {
        let file = self.compose_file();
        let mut command = Command::new(&self.compose[0]);
        command
            .args(&self.compose[1..])
            .args(["--project-name", &self.plan.project, "--file"])
            .arg(&file)
            .args(args)
            .current_dir(&self.testnet.dir);
        let out = run_bounded(&mut command, Duration::from_millis(COMPOSE_TIMEOUT_MS))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(invalid(format!(
                "`{} {}` failed: {}",
                self.compose.join(" "),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// `None` if the container does not exist.
    fn state(&self, container: &str) -> Result<Option<ContainerState>> {
        let out = run_bounded(
            Command::new("docker").args([
                "inspect",
                "--type",
                "container",
                "--format",
                "{{json .State}}\t{{json .NetworkSettings.Networks}}",
                container,
            ]),
            Duration::from_millis(DOCKER_TIMEOUT_MS),
        )?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("No such") {
                return Ok(None);
            }
            return Err(invalid(format!(
                "`docker inspect {container}` failed: {}",
                stderr.trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (state, networks) = text.trim().split_once('\t').unwrap_or((text.trim(), "{}"));
        let state: serde_json::Value = serde_json::from_str(state)
            .map_err(|e| invalid(format!("docker inspect {container}: {e}")))?;
        let networks: serde_json::Value = serde_json::from_str(networks).unwrap_or_default();
        Ok(Some(ContainerState {
            running: state["Running"].as_bool().unwrap_or(false),
            paused: state["Paused"].as_bool().unwrap_or(false),
            networks: networks
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }))
    }

    fn container(&self, code: &str) -> Result<String> {
        Ok(self.plan.node(code)?.container.clone())
    }

    /// The state of every node's container; fails if one does not exist.
    fn states(&self) -> Result<BTreeMap<String, ContainerState>> {
        let mut states = BTreeMap::new();
        for node in &self.plan.nodes {
            let state = self.state(&node.container)?.ok_or_else(|| {
                invalid(format!(
                    "container {} does not exist (start the network first)",
                    node.container
                ))
            })?;
            states.insert(node.code.clone(), state);
        }
        Ok(states)
    }

    /// Brings every link to the wanted state: `cut` links disconnected at both ends,
    /// every other link connected at both ends with its planned address.
    fn apply_links(&self, cut: &BTreeSet<String>) -> Result<()> {
        let states = self.states()?;
        for link in &self.plan.links {
            let want = !cut.contains(&link.network);
            for end in &link.ends {
                let container = self.container(&end.code)?;
                let attached = states
                    .get(&end.code)
                    .map(|s| s.networks.contains(&link.network))
                    .unwrap_or(false);
                if want && !attached {
                    let ip = end.ip.to_string();
                    docker(&["network", "connect", "--ip", &ip, &link.network, &container])?;
                } else if !want && attached {
                    docker(&["network", "disconnect", &link.network, &container])?;
                }
            }
        }
        Ok(())
    }

    /// Links currently cut (an end not attached).
    fn cut_links(&self) -> Result<BTreeSet<String>> {
        let states = self.states()?;
        Ok(self
            .plan
            .links
            .iter()
            .filter(|link| {
                link.ends.iter().any(|end| {
                    !states
                        .get(&end.code)
                        .is_some_and(|s| s.networks.contains(&link.network))
                })
            })
            .map(|link| link.network.clone())
            .collect())
    }

    /// Waits until every node answers `/healthz`; fails early if a container exits.
    fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let mut waiting = None;
            for node in &self.testnet.nodes {
                let container = self.container(&node.code)?;
                match self.state(&container)? {
                    Some(s) if s.running => {}
                    _ => {
                        return Err(invalid(format!(
                            "container {container} ({}) is not running{}",
                            node.code,
                            self.log_tail(&node.code)
                        )))
                    }
                }
                if let Err(e) = network::health(node) {
                    waiting = Some((node.code.clone(), e.message));
                }
            }
            let Some((code, why)) = waiting else {
                return Ok(());
            };
            if started.elapsed() >= timeout {
                return Err(TestnetError::Timeout(format!(
                    "node {code} did not answer /healthz within {} s ({why}){}",
                    timeout.as_secs(),
                    self.log_tail(&code)
                )));
            }
            std::thread::sleep(Duration::from_millis(network::POLL_INTERVAL_MS));
        }
    }

    /// Last lines of a node's container output and tracing log, for error messages.
    fn log_tail(&self, code: &str) -> String {
        let mut out = String::new();
        if let Ok(container) = self.container(code) {
            let lines = network::LOG_TAIL_LINES.to_string();
            if let Ok(text) = docker(&["logs", "--tail", &lines, &container]) {
                if !text.trim().is_empty() {
                    out.push_str(&format!("\n--- docker logs {container} ---\n{text}"));
                }
            }
        }
        if let Ok(node) = self.testnet.node(code) {
            let text = process::tail(&node.node_log(), network::LOG_TAIL_LINES);
            if !text.trim().is_empty() {
                out.push_str(&format!(
                    "\n--- last lines of {} ---\n{text}",
                    node.node_log().display()
                ));
            }
        }
        out
    }

    fn start_all_inner(&mut self, timeout: Duration) -> Result<()> {
        self.build_images()?;
        self.compose(&["up", "-d", "--no-build"])?;
        self.wait_healthy(timeout)
    }

    fn start_inner(&mut self, code: &str) -> Result<()> {
        let node = self.plan.node(code)?.clone();
        match self.state(&node.container)? {
            Some(s) if s.running => Ok(()),
            Some(_) => docker(&["start", &node.container]).map(|_| ()),
            None => {
                self.build_images()?;
                self.compose(&["up", "-d", "--no-build", "--no-deps", &node.service])
                    .map(|_| ())
            }
        }
    }

    fn kill_inner(&mut self, code: &str) -> Result<()> {
        let container = self.container(code)?;
        match self.state(&container)? {
            Some(s) if s.running => docker(&["kill", "--signal", "KILL", &container]).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn pause_inner(&mut self, code: &str) -> Result<()> {
        let container = self.container(code)?;
        match self.state(&container)? {
            Some(s) if s.paused => Ok(()),
            Some(s) if s.running => docker(&["pause", &container]).map(|_| ()),
            _ => Err(invalid(format!(
                "cannot pause {code}: its container is not running"
            ))),
        }
    }

    fn resume_inner(&mut self, code: &str) -> Result<()> {
        let container = self.container(code)?;
        match self.state(&container)? {
            Some(s) if s.paused => docker(&["unpause", &container]).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn disconnect_inner(&mut self, code: &str) -> Result<()> {
        self.plan.node(code)?;
        let mut cut = self.cut_links()?;
        for link in self.plan.links.iter().filter(|l| l.touches(code)) {
            cut.insert(link.network.clone());
        }
        self.apply_links(&cut)
    }

    fn partition_inner(&mut self, groups: &[Vec<String>]) -> Result<()> {
        let group_of = partition_groups(&self.testnet.codes(), groups)?;
        let cut: BTreeSet<String> = self
            .plan
            .links
            .iter()
            .filter(|l| group_of.get(&l.ends[0].code) != group_of.get(&l.ends[1].code))
            .map(|l| l.network.clone())
            .collect();
        self.apply_links(&cut)
    }

    fn stop_all_inner(&mut self) -> Result<()> {
        let down = self.compose(&[
            "down",
            "--remove-orphans",
            "--timeout",
            &STOP_GRACE_SECS.to_string(),
        ]);
        // Whatever compose left (it failed, or the file was edited): remove by name, and
        // only names of this project.
        for node in &self.plan.nodes {
            if self.state(&node.container)?.is_some() {
                docker(&["rm", "--force", &node.container])?;
            }
        }
        let prefix = format!("{}-", self.plan.project);
        let listed = docker(&["network", "ls", "--format", "{{.Name}}"])?;
        for name in listed.lines().map(str::trim) {
            if name.starts_with(&prefix) {
                docker(&["network", "rm", name])?;
            }
        }
        down.map(|_| ()).or_else(|e| {
            if self.leftovers()?.is_empty() {
                Ok(())
            } else {
                Err(e)
            }
        })
    }

    /// Containers and networks of this project that still exist.
    pub fn leftovers(&self) -> Result<Vec<String>> {
        let mut left = Vec::new();
        let containers = docker(&[
            "ps",
            "--all",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.plan.project),
            "--format",
            "{{.Names}}",
        ])?;
        left.extend(
            containers
                .lines()
                .map(|l| format!("container {}", l.trim())),
        );
        for node in &self.plan.nodes {
            if self.state(&node.container)?.is_some()
                && !left.iter().any(|l| l.ends_with(&node.container))
            {
                left.push(format!("container {}", node.container));
            }
        }
        let prefix = format!("{}-", self.plan.project);
        let networks = docker(&["network", "ls", "--format", "{{.Name}}"])?;
        left.extend(
            networks
                .lines()
                .map(str::trim)
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("network {n}")),
        );
        Ok(left)
    }
}

/// Maps each code to its group index; every node must be in exactly one group.
pub fn partition_groups(
    codes: &[String],
    groups: &[Vec<String>],
) -> Result<BTreeMap<String, usize>> {
    if groups.len() < 2 {
        return Err(invalid(format!(
            "a partition needs at least two groups, got {}",
            groups.len()
        )));
    }
    let mut group_of = BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(invalid(format!("partition group {} is empty", i + 1)));
        }
        for code in group {
            if !codes.contains(code) {
                return Err(invalid(format!(
                    "partition names {code}, which is not a node of this testnet (nodes: {})",
                    codes.join(", ")
                )));
            }
            if group_of.insert(code.clone(), i).is_some() {
                return Err(invalid(format!("partition puts {code} in two groups")));
            }
        }
    }
    let missing: Vec<&str> = codes
        .iter()
        .filter(|c| !group_of.contains_key(*c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "partition must place every node in a group; missing: {}",
            missing.join(", ")
        )));
    }
    Ok(group_of)
}

fn failed(e: TestnetError) -> RunnerError {
    RunnerError::Failed(e.to_string())
}

impl Runner for DockerRunner {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn nodes(&self) -> Vec<crate::runner::RunnerNode> {
        self.testnet
            .nodes
            .iter()
            .map(|n| RunnerNode {
                code: n.code.clone(),
                api_url: n.api.clone(),
                profile_path: self.testnet.profile_path(&n.code),
            })
            .collect()
    }

    fn start_all(&mut self, timeout: Duration) -> std::result::Result<(), RunnerError> {
        self.start_all_inner(timeout).map_err(failed)
    }

    fn start(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.start_inner(code).map_err(failed)
    }

    fn kill(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.kill_inner(code).map_err(failed)
    }

    fn pause(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.pause_inner(code).map_err(failed)
    }

    fn resume(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.resume_inner(code).map_err(failed)
    }

    fn disconnect(&mut self, code: &str) -> std::result::Result<(), RunnerError> {
        self.disconnect_inner(code).map_err(failed)
    }

    fn partition(&mut self, groups: &[Vec<String>]) -> std::result::Result<(), RunnerError> {
        self.partition_inner(groups).map_err(failed)
    }

    fn heal(&mut self) -> std::result::Result<(), RunnerError> {
        self.apply_links(&BTreeSet::new()).map_err(failed)
    }

    fn stop_all(&mut self) -> std::result::Result<(), RunnerError> {
        self.stop_all_inner().map_err(failed)
    }

    fn logs(&self, code: &str) -> std::result::Result<String, RunnerError> {
        let container = self.container(code).map_err(failed)?;
        let node = self.testnet.node(code).map_err(failed)?;
        let mut text = String::new();
        let out = run_bounded(
            Command::new("docker").args(["logs", &container]),
            Duration::from_millis(DOCKER_TIMEOUT_MS),
        )
        .map_err(failed)?;
        // A container removed by stop_all has no docker logs; the node log remains.
        if out.status.success() {
            text.push_str(&String::from_utf8_lossy(&out.stdout));
            text.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        match std::fs::read(node.node_log()) {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RunnerError::Io(e)),
        }
        Ok(text)
    }

    fn is_running(&mut self, code: &str) -> bool {
        let Ok(container) = self.container(code) else {
            return false;
        };
        matches!(self.state(&container), Ok(Some(s)) if s.running)
    }
}

impl Drop for DockerRunner {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.stop_all_inner();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeEntry;

    fn testnet(n: usize) -> Testnet {
        let nodes = crate::layout::ADMINISTRATIONS
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, (code, name))| NodeEntry {
                code: code.to_string(),
                name: name.to_string(),
                home: PathBuf::from(format!("/t/nodes/{code}")),
                api: format!("http://127.0.0.1:{}", 11000 + i),
                p2p: format!("/ip4/127.0.0.1/tcp/{}", 12000 + i),
                peer_id: format!("12D3Koo{code}"),
                pid: None,
            })
            .collect();
        Testnet {
            dir: PathBuf::from("/t"),
            chain_id: "c".into(),
            nodes,
        }
    }

    /// Every node dials every other (what `init` writes).
    fn mesh(net: &Testnet) -> Dials {
        net.codes()
            .iter()
            .map(|c| {
                let others = net.codes().into_iter().filter(|o| o != c).collect();
                (c.clone(), others)
            })
            .collect()
    }

    /// Options whose binaries exist (the test executable stands in for carnet-node).
    fn options() -> DockerOptions {
        let exe = std::env::current_exe().unwrap();
        DockerOptions {
            node_binary: Some(exe.clone()),
            faulty_binary: Some(exe),
            ..DockerOptions::default()
        }
    }

    #[test]
    fn every_pair_of_nodes_gets_its_own_network_inside_the_testnet_subnet() {
        for n in 4..=7 {
            let net = testnet(n);
            let plan = plan(
                &net,
                &mesh(&net),
                &options(),
                Ipv4Addr::new(10, 177, 9, 0),
                "carnet-ab",
                "1:1",
            )
            .unwrap();
            assert_eq!(plan.links.len(), n * (n - 1) / 2);
            let mut ips = BTreeSet::new();
            for link in &plan.links {
                for end in &link.ends {
                    assert!(ips.insert(end.ip), "address {} given twice", end.ip);
                    let octets = end.ip.octets();
                    assert_eq!(octets[..3], [10, 177, 9]);
                    assert!(octets[3] < API_SUBNET_OFFSET, "{} in the API /27", end.ip);
                }
            }
            for a in net.codes() {
                for b in net.codes().iter().filter(|b| **b != a) {
                    let links: Vec<&PeerLink> =
                        plan.links.iter().filter(|l| l.joins(&a, b)).collect();
                    assert_eq!(links.len(), 1, "one network joins {a} and {b}");
                    let subnet = parse_cidr(&links[0].subnet).unwrap();
                    let to_b = plan.address_of(b, &a).unwrap();
                    let to_a = plan.address_of(&a, b).unwrap();
                    assert_ne!(to_a, to_b);
                    for ip in [to_a, to_b] {
                        assert!(overlaps(subnet, (u32::from(ip), 32)), "{ip} in {subnet:?}");
                    }
                }
            }
            assert_eq!(plan.api_subnet, "10.177.9.224/27");
            assert_eq!(plan.node("XB").unwrap().container, "carnet-ab-xb");
            assert_eq!(plan.node("XB").unwrap().api_port, 11001);
            assert_eq!(plan.node("XB").unwrap().p2p_port, 12001);
        }
    }

    #[test]
    fn a_twin_gets_links_only_to_the_nodes_it_dials_and_eight_nodes_fit() {
        let mut net = testnet(7);
        let mut twin = net.nodes[3].clone();
        twin.code = "XD-twin".into();
        twin.api = "http://127.0.0.1:11100".into();
        twin.p2p = "/ip4/127.0.0.1/tcp/12100".into();
        net.nodes.push(twin);
        let mut dials = mesh(&net);
        for peers in dials.values_mut() {
            peers.retain(|c| c != "XD-twin");
        }
        dials.get_mut("XD-twin").unwrap().retain(|c| c != "XD");
        let plan = plan(
            &net,
            &dials,
            &options(),
            Ipv4Addr::new(10, 177, 5, 0),
            "carnet-tw",
            "1:1",
        )
        .unwrap();
        // 21 validator pairs + 6 twin links; nothing joins XD and its twin.
        assert_eq!(plan.links.len(), 27);
        assert!(plan.address_of("XD", "XD-twin").is_none());
        assert!(plan.address_of("XA", "XD-twin").is_some());
        assert_eq!(plan.node("XD-twin").unwrap().container, "carnet-tw-xd-twin");
        let last = plan.links.last().unwrap().ends[1].ip.octets()[3];
        assert!(last < API_SUBNET_OFFSET, "pair addresses reach the API /27");
        // A full mesh of 8 is 28 pairs: still fits.
        assert_eq!(
            super::plan(
                &net,
                &mesh(&net),
                &options(),
                Ipv4Addr::new(10, 177, 5, 0),
                "carnet-tw",
                "1:1"
            )
            .unwrap()
            .links
            .len(),
            28
        );
    }

    #[test]
    fn a_byzantine_node_runs_the_faulty_image_with_its_flags_and_an_unknown_one_is_refused() {
        let net = testnet(4);
        let mut options = options();
        options
            .byzantine
            .insert("XD".into(), vec!["--byzantine".into(), "silent".into()]);
        let plan = plan(
            &net,
            &mesh(&net),
            &options,
            Ipv4Addr::new(10, 177, 1, 0),
            "carnet-x",
            "1:1",
        )
        .unwrap();
        let xd = plan.node("XD").unwrap();
        assert_eq!(xd.image, DEFAULT_FAULTY_IMAGE);
        assert_eq!(xd.command[3..], ["--byzantine", "silent"]);
        assert_eq!(plan.node("XA").unwrap().image, DEFAULT_IMAGE);
        assert_eq!(
            plan.images.keys().collect::<BTreeSet<_>>(),
            BTreeSet::from([
                &DEFAULT_IMAGE.to_string(),
                &DEFAULT_FAULTY_IMAGE.to_string()
            ])
        );
        let mut missing = options.clone();
        missing.faulty_binary = Some(PathBuf::from("/nonexistent/carnet-node"));
        let err = super::plan(
            &net,
            &mesh(&net),
            &missing,
            Ipv4Addr::new(10, 177, 1, 0),
            "carnet-x",
            "1:1",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/carnet-node"),
            "{err}"
        );
        options.byzantine.insert("XQ".into(), vec![]);
        let err = super::plan(
            &net,
            &mesh(&net),
            &options,
            Ipv4Addr::new(10, 177, 1, 0),
            "carnet-x",
            "1:1",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no node XQ"), "{err}");
    }

    #[test]
    fn compose_file_names_images_addresses_mounts_and_loopback_ports() {
        let net = testnet(4);
        let plan = plan(
            &net,
            &mesh(&net),
            &options(),
            Ipv4Addr::new(10, 177, 3, 0),
            "carnet-cd",
            "10001:10001",
        )
        .unwrap();
        let yaml = render_compose(&plan);
        assert!(yaml.contains("container_name: \"carnet-cd-xa\""), "{yaml}");
        assert!(yaml.contains("\"/t/nodes/XA:/carnet/home\""), "{yaml}");
        assert!(yaml.contains("\"127.0.0.1:11000:11000\""), "{yaml}");
        assert!(yaml.contains("read_only: true"));
        assert!(yaml.contains("user: \"10001:10001\""));
        assert!(yaml.contains("name: \"carnet-cd-xa-xb\""));
        assert!(yaml.contains("ipv4_address: \"10.177.3.2\""));
        assert_eq!(yaml.matches("internal: true").count(), 6);
        // Every service joins the API network and its three pair networks.
        assert_eq!(yaml.matches("      api: {}").count(), 4);
        assert_eq!(yaml.matches("ipv4_address").count(), 12);
    }

    #[test]
    fn configs_keep_their_peer_sets_and_dial_pair_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut net = testnet(4);
        net.dir = dir.path().to_path_buf();
        for node in net.nodes.iter_mut() {
            node.home = dir.path().join("nodes").join(&node.code);
        }
        for node in &net.nodes {
            std::fs::create_dir_all(&node.home).unwrap();
            // XA dials nobody (a node others dial still gets links); the rest as `init`.
            let peers: Vec<String> = if node.code == "XA" {
                Vec::new()
            } else {
                net.nodes
                    .iter()
                    .filter(|o| o.code != node.code)
                    .map(NodeEntry::dial_addr)
                    .collect()
            };
            let text = toml::to_string(&toml::toml! {
                administration = "X"
                listen_p2p = "/ip4/127.0.0.1/tcp/1"
                listen_api = "127.0.0.1:2"
            })
            .unwrap();
            let mut table: toml::Table = toml::from_str(&text).unwrap();
            table.insert("peers".into(), toml::Value::try_from(peers).unwrap());
            std::fs::write(node.home.join("config.toml"), table.to_string()).unwrap();
        }
        let dials = read_dials(&net).unwrap();
        assert!(dials["XA"].is_empty());
        assert_eq!(dials["XB"], ["XA", "XC", "XD"]);
        let plan = plan(
            &net,
            &dials,
            &options(),
            Ipv4Addr::new(10, 177, 7, 0),
            "carnet-rw",
            "1:1",
        )
        .unwrap();
        assert_eq!(plan.links.len(), 6);
        rewrite_configs(&mut net, &plan, &dials).unwrap();
        let config = |code: &str| -> toml::Table {
            let home = dir.path().join("nodes").join(code);
            toml::from_str(&std::fs::read_to_string(home.join("config.toml")).unwrap()).unwrap()
        };
        let xb = config("XB");
        assert_eq!(xb["listen_p2p"].as_str(), Some("/ip4/0.0.0.0/tcp/12001"));
        assert_eq!(xb["listen_api"].as_str(), Some("0.0.0.0:11001"));
        let ip = plan.address_of("XA", "XB").unwrap();
        assert_eq!(
            xb["peers"].as_array().unwrap()[0].as_str().unwrap(),
            format!("/ip4/{ip}/tcp/12000/p2p/12D3KooXA")
        );
        assert!(config("XA")["peers"].as_array().unwrap().is_empty());
        let saved = Testnet::load(dir.path()).unwrap();
        assert_eq!(saved.node("XB").unwrap().p2p, "/ip4/0.0.0.0/tcp/12001");
        // A peer outside the testnet is refused.
        let home = dir.path().join("nodes").join("XC");
        init::set_peers(&home, &["/ip4/10.0.0.1/tcp/9/p2p/12D3KooXZ".to_string()]).unwrap();
        let err = read_dials(&saved).unwrap_err();
        assert!(err.to_string().contains("no node of this testnet"), "{err}");
    }

    #[test]
    fn partitions_must_cover_every_node_once() {
        let codes: Vec<String> = ["XA", "XB", "XC", "XD"].map(String::from).to_vec();
        let g = |groups: &[&[&str]]| -> Vec<Vec<String>> {
            groups
                .iter()
                .map(|g| g.iter().map(|c| c.to_string()).collect())
                .collect()
        };
        let ok = partition_groups(&codes, &g(&[&["XA", "XB"], &["XC", "XD"]])).unwrap();
        assert_eq!(ok["XA"], ok["XB"]);
        assert_ne!(ok["XA"], ok["XC"]);
        for (bad, why) in [
            (g(&[&["XA", "XB", "XC", "XD"]]), "at least two groups"),
            (g(&[&["XA", "XB"], &["XC"]]), "missing: XD"),
            (g(&[&["XA", "XB"], &["XB", "XC", "XD"]]), "two groups"),
            (g(&[&["XA", "XB"], &["XC", "XD", "XZ"]]), "not a node"),
            (g(&[&["XA", "XB", "XC", "XD"], &[]]), "empty"),
        ] {
            let err = partition_groups(&codes, &bad).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn subnets_already_in_use_are_skipped() {
        let mut used: Vec<(u32, u32)> = (0..=255u32)
            .filter(|t| *t != 42)
            .map(|t| (u32::from(Ipv4Addr::new(10, 177, t as u8, 0)), 24))
            .collect();
        assert_eq!(free_subnet(&used).unwrap(), Ipv4Addr::new(10, 177, 42, 0));
        used.push(parse_cidr("10.177.42.128/25").unwrap());
        assert!(free_subnet(&used).is_err());
        assert!(overlaps(
            parse_cidr("10.0.0.0/8").unwrap(),
            (u32::from(Ipv4Addr::new(10, 177, 1, 0)), 24)
        ));
        assert!(!overlaps(
            parse_cidr("10.178.0.0/16").unwrap(),
            (u32::from(Ipv4Addr::new(10, 177, 1, 0)), 24)
        ));
    }

    #[test]
    fn ports_are_read_from_urls_and_multiaddrs() {
        assert_eq!(port_of("http://127.0.0.1:7101").unwrap(), 7101);
        assert_eq!(port_of("/ip4/127.0.0.1/tcp/7201").unwrap(), 7201);
        assert_eq!(port_of("/ip4/127.0.0.1/tcp/7201/p2p/12D3").unwrap(), 7201);
        assert!(port_of("http://127.0.0.1").is_err());
    }
}
