//! A running testnet: starting and stopping its nodes, waiting for heights, reporting.
//!
//! [`Network`] owns the child processes it started (so tests reap what they kill) and
//! records pids in `testnet.json` (so `down` from another process finds them). Dropping a
//! `Network` stops its nodes unless it was [`Network::detach`]ed, so a failing test never
//! leaves processes behind. Every wait here has a stated timeout.

use crate::layout::{NodeEntry, Testnet};
use crate::process;
use crate::{Result, TestnetError};
use carnet_cli::client::Health;
use carnet_cli::{CliError, NodeClient};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Default time `up` waits for a first final block on every node.
pub const UP_TIMEOUT_MS: u64 = 60_000;
/// How often heights are polled.
pub const POLL_INTERVAL_MS: u64 = 200;
/// Log lines shown when a node fails.
pub const LOG_TAIL_LINES: usize = 25;

/// One node's state as `carnet-testnet status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub code: String,
    pub name: String,
    pub api: String,
    /// `up` (process runs and answers), `starting` (runs, does not answer), `down`.
    pub state: String,
    pub pid: Option<u32>,
    pub height: Option<u64>,
    pub last_block_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A testnet whose node processes this value controls.
pub struct Network {
    pub testnet: Testnet,
    node_binary: PathBuf,
    children: BTreeMap<String, Child>,
    /// Nodes started other than plainly (fault scenarios); see [`process::Launch`].
    launches: BTreeMap<String, process::Launch>,
    stop_on_drop: bool,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("dir", &self.testnet.dir)
            .field("children", &self.children.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An unsigned client for `/healthz` (the key is never used to sign anything).
fn health_client(node: &NodeEntry) -> std::result::Result<NodeClient, CliError> {
    NodeClient::new(&node.api, SigningKey::from_bytes(&[0u8; 32]))
}

/// `GET /healthz` of one node.
pub fn health(node: &NodeEntry) -> std::result::Result<Health, CliError> {
    health_client(node)?.healthz()
}

impl Network {
    /// Controls `testnet`; its nodes are stopped when the value is dropped.
    pub fn new(testnet: Testnet, node_binary: PathBuf) -> Network {
        Network {
            testnet,
            node_binary,
            children: BTreeMap::new(),
            launches: BTreeMap::new(),
            stop_on_drop: true,
        }
    }

    /// Opens the testnet in `dir` for a command-line operation: nodes keep running after
    /// the value is dropped.
    pub fn open(dir: &Path) -> Result<Network> {
        let testnet = Testnet::load(dir)?;
        let binary = process::locate_binary(process::NODE_BINARY)?;
        let mut network = Network::new(testnet, binary);
        network.stop_on_drop = false;
        Ok(network)
    }

    /// Stops tracking the children: the nodes keep running after this value is gone.
    pub fn detach(mut self) {
        self.stop_on_drop = false;
        self.children.clear();
    }

    pub fn dir(&self) -> &Path {
        &self.testnet.dir
    }

    /// True if the node of `code` runs (reaps it if it was our child and has exited).
    pub fn is_running(&mut self, code: &str) -> bool {
        if let Some(child) = self.children.get_mut(code) {
            match child.try_wait() {
                Ok(Some(_)) => {
                    self.children.remove(code);
                    return false;
                }
                // Our own child and not exited: running, or spawned and about to exec
                // (its command line is still ours then, so the check below would say
                // "not a node" for a node that is only starting).
                Ok(None)
                    if self
                        .testnet
                        .node(code)
                        .is_ok_and(|n| n.pid == Some(child.id())) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        match self.testnet.node(code) {
            Ok(node) => node
                .pid
                .map(|pid| process::is_node_process(pid, &node.home))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Starts the node of `code` as `launch` says from now on (binary, wrapper, extra
    /// arguments).
    pub fn set_launch(&mut self, code: &str, launch: process::Launch) -> Result<()> {
        self.testnet.node(code)?;
        self.launches.insert(code.to_string(), launch);
        Ok(())
    }

    /// Starts the node of `code` unless it already runs. Does not wait for it.
    pub fn start(&mut self, code: &str) -> Result<()> {
        if self.is_running(code) {
            return Ok(());
        }
        let node = self.testnet.node(code)?.clone();
        let launch = self.launches.get(code).cloned().unwrap_or_default();
        let child = process::spawn_node_with(&self.node_binary, &node, &launch)?;
        self.testnet.node_mut(code)?.pid = Some(child.id());
        self.children.insert(code.to_string(), child);
        self.testnet.save()
    }

    /// Starts every node that does not run.
    pub fn start_all(&mut self) -> Result<()> {
        for code in self.testnet.codes() {
            self.start(&code)?;
        }
        Ok(())
    }

    /// SIGKILL: the node dies without any chance to flush or say goodbye.
    pub fn kill(&mut self, code: &str) -> Result<bool> {
        let node = self.testnet.node(code)?.clone();
        let killed = match node.pid {
            Some(pid) => {
                let sent = process::signal_node(pid, &node.home, nix::sys::signal::Signal::SIGKILL);
                if sent {
                    process::wait_gone(
                        pid,
                        &node.home,
                        Duration::from_millis(process::STOP_GRACE_MS),
                    );
                }
                sent
            }
            None => false,
        };
        self.forget(code)?;
        Ok(killed)
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self, code: &str) -> Result<bool> {
        let node = self.testnet.node(code)?.clone();
        let stopped = node
            .pid
            .map(|pid| process::stop_node(pid, &node.home))
            .unwrap_or(false);
        self.forget(code)?;
        Ok(stopped)
    }

    fn forget(&mut self, code: &str) -> Result<()> {
        if let Some(mut child) = self.children.remove(code) {
            // Reap it; it is already gone or about to be.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.testnet.node_mut(code)?.pid = None;
        self.testnet.save()
    }

    /// Stops every node; returns how many were running.
    pub fn down(&mut self) -> Result<usize> {
        let mut stopped = 0;
        for code in self.testnet.codes() {
            if self.stop(&code)? {
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    /// Starts every node and waits until each has a final block (height ≥ 1).
    /// On failure the nodes are stopped again and the error carries the failing node's
    /// log tail.
    pub fn up(&mut self, timeout: Duration) -> Result<()> {
        self.start_all()?;
        let codes = self.testnet.codes();
        if let Err(e) = self.wait_for_height(&codes, 1, timeout) {
            let _ = self.down();
            return Err(e);
        }
        Ok(())
    }

    /// `GET /healthz` of `code`.
    pub fn health(&self, code: &str) -> std::result::Result<Health, TestnetError> {
        Ok(health(self.testnet.node(code)?)?)
    }

    /// Height of `code`, or `None` if it does not answer.
    pub fn height(&self, code: &str) -> Option<u64> {
        self.health(code).ok().map(|h| h.height)
    }

    /// Waits until every node in `codes` reports a height ≥ `height`. Fails at once if
    /// one of them is not running, and after `timeout` otherwise, naming the node and
    /// showing its log tail.
    pub fn wait_for_height(
        &mut self,
        codes: &[String],
        height: u64,
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            let mut lagging: Option<(String, String)> = None;
            for code in codes {
                if !self.is_running(code) {
                    let node = self.testnet.node(code)?;
                    // Just spawned, not exec'd yet: starting, not dead.
                    if node.pid.is_some_and(process::is_alive) {
                        lagging = Some((code.clone(), "starting".into()));
                        continue;
                    }
                    return Err(TestnetError::Invalid(format!(
                        "node {code} is not running (exited or never started){}",
                        process::log_tails(node, LOG_TAIL_LINES)
                    )));
                }
                match self.health(code) {
                    Ok(h) if h.height >= height => {}
                    Ok(h) => lagging = Some((code.clone(), format!("at height {}", h.height))),
                    Err(e) => lagging = Some((code.clone(), format!("not answering: {e}"))),
                }
            }
            let Some((code, why)) = lagging else {
                return Ok(());
            };
            if started.elapsed() >= timeout {
                let node = self.testnet.node(&code)?;
                return Err(TestnetError::Timeout(format!(
                    "node {code} did not reach height {height} within {} s ({why}){}",
                    timeout.as_secs(),
                    process::log_tails(node, LOG_TAIL_LINES)
                )));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// Waits until `condition` holds, polling; `what` names it in the timeout error.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&mut Network) -> bool,
    ) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if condition(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        if condition(self) {
            return Ok(());
        }
        Err(TestnetError::Timeout(format!(
            "{what}: not within {} ms",
            timeout.as_millis()
        )))
    }

    /// Per-node state for `carnet-testnet status`.
    pub fn report(&mut self) -> Vec<NodeReport> {
        let mut reports = Vec::new();
        for code in self.testnet.codes() {
            let running = self.is_running(&code);
            let Ok(node) = self.testnet.node(&code) else {
                continue;
            };
            let (state, height, hash, error) = match (running, health(node)) {
                (true, Ok(h)) => ("up", Some(h.height), h.last_block_hash, None),
                (true, Err(e)) => ("starting", None, None, Some(e.message)),
                (false, Ok(h)) => ("up", Some(h.height), h.last_block_hash, None),
                (false, Err(_)) => ("down", None, None, None),
            };
            reports.push(NodeReport {
                code: node.code.clone(),
                name: node.name.clone(),
                api: node.api.clone(),
                state: state.to_string(),
                pid: if running { node.pid } else { None },
                height,
                last_block_hash: hash,
                error,
            });
        }
        reports
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.down();
        }
    }
}
