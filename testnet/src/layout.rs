//! The testnet directory (docs/interfaces.md, "Testnet directory"):
//!
//! ```text
//! D/genesis.json
//! D/nodes/XA/...         a node home per administration
//! D/officers/XA.key      officer key with every role of XA
//! D/profiles/XA.toml     CLI profile
//! D/testnet.json         { "nodes": [ {"code","name","home","api","p2p","peer_id","pid"?} ] }
//! ```
//!
//! Must never hold a secret in `testnet.json`; keys live only in their 0600 files.

use crate::{Result, TestnetError};
use carnet_cli::NodeClient;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The test administrations, in genesis order (validator index = position).
pub const ADMINISTRATIONS: [(&str, &str); 7] = [
    ("XA", "Adjikistan"),
    ("XB", "Borastria"),
    ("XC", "Concordia"),
    ("XD", "Katanga"),
    ("XE", "Eldoria"),
    ("XF", "Freedonia"),
    ("XG", "Genovia"),
];

/// Smallest and largest network `init` builds (n = 3f+1 needs 4 for f = 1).
pub const MIN_NODES: usize = 4;
pub const MAX_NODES: usize = 7;

/// Chain id of every local testnet.
pub const CHAIN_ID: &str = "carnet-testnet";

/// One node of the testnet as `testnet.json` records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub code: String,
    pub name: String,
    /// Absolute path of the node home.
    pub home: PathBuf,
    /// API base URL, `http://127.0.0.1:PORT`.
    pub api: String,
    /// libp2p listen multiaddr, `/ip4/127.0.0.1/tcp/PORT`.
    pub p2p: String,
    pub peer_id: String,
    /// Process id while started by `up`/`start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl NodeEntry {
    /// The multiaddr other nodes dial: `p2p` + `/p2p/<peer id>`.
    pub fn dial_addr(&self) -> String {
        format!("{}/p2p/{}", self.p2p, self.peer_id)
    }

    /// Where `up` sends the process's stdout and stderr.
    pub fn stdout_log(&self) -> PathBuf {
        self.home.join("stdout.log")
    }

    /// The node's tracing log (`log_file` in config.toml).
    pub fn node_log(&self) -> PathBuf {
        self.home.join("node.log")
    }
}

/// `testnet.json` plus the directory it lives in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Testnet {
    #[serde(skip)]
    pub dir: PathBuf,
    pub chain_id: String,
    pub nodes: Vec<NodeEntry>,
}

impl Testnet {
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("testnet.json")
    }

    /// Reads `DIR/testnet.json`.
    pub fn load(dir: &Path) -> Result<Testnet> {
        let path = Self::file(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TestnetError::Invalid(format!(
                "{}: {e} (run `carnet-testnet init --dir {}` first)",
                path.display(),
                dir.display()
            ))
        })?;
        let mut testnet: Testnet = serde_json::from_str(&text)
            .map_err(|e| TestnetError::Invalid(format!("{}: {e}", path.display())))?;
        testnet.dir = dir.to_path_buf();
        Ok(testnet)
    }

    /// Writes `DIR/testnet.json` atomically (write to a temporary file, rename).
    pub fn save(&self) -> Result<()> {
        let path = Self::file(&self.dir);
        let tmp = self.dir.join("testnet.json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| TestnetError::Invalid(format!("cannot encode testnet.json: {e}")))?;
        std::fs::write(&tmp, text + "\n").map_err(TestnetError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(TestnetError::io(&path))
    }

    /// The node of administration `code`.
    pub fn node(&self, code: &str) -> Result<&NodeEntry> {
        self.nodes.iter().find(|n| n.code == code).ok_or_else(|| {
            let codes: Vec<&str> = self.nodes.iter().map(|n| n.code.as_str()).collect();
            TestnetError::Invalid(format!(
                "no node {code} in this testnet (nodes: {})",
                codes.join(", ")
            ))
        })
    }

    pub(crate) fn node_mut(&mut self, code: &str) -> Result<&mut NodeEntry> {
        self.node(code)?;
        self.nodes
            .iter_mut()
            .find(|n| n.code == code)
            .ok_or_else(|| TestnetError::Invalid(format!("no node {code}")))
    }

    pub fn codes(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.code.clone()).collect()
    }

    pub fn genesis_path(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }

    pub fn officer_key_path(&self, code: &str) -> PathBuf {
        self.dir.join("officers").join(format!("{code}.key"))
    }

    pub fn profile_path(&self, code: &str) -> PathBuf {
        self.dir.join("profiles").join(format!("{code}.toml"))
    }

    /// A client of `node_code`'s API signing as `officer_code`'s officer.
    pub fn client_as(&self, node_code: &str, officer_code: &str) -> Result<NodeClient> {
        let node = self.node(node_code)?;
        let key = carnet_cli::profile::read_signing_key(&self.officer_key_path(officer_code))?;
        Ok(NodeClient::new(&node.api, key)?)
    }

    /// A client of administration `code`'s own node, as its own officer.
    pub fn client(&self, code: &str) -> Result<NodeClient> {
        self.client_as(code, code)
    }
}
