//! # carnet-testnet — local Carnet networks as real processes
//!
//! The library behind the `carnet-testnet` binary and the multi-process integration
//! tests:
//!
//! * [`layout`] — the testnet directory (`testnet.json`, officers, profiles) and the
//!   seven test administrations.
//! * [`init`] — creates a network: runs `carnet-node init` per administration, writes
//!   `genesis.json`, the shared `ucr.key`, peers, officer keys and CLI profiles.
//! * [`process`] — starts, stops and kills `carnet-node` processes; finds binaries.
//! * [`network`] — a running network: up/down, waiting for heights, per-node clients.
//! * [`invariants`] — checks every node agrees on every finalized block.
//! * [`load`] — submits many documents through a bounded pool of HTTP workers.
//! * [`docker`] — the docker compose runner: one container per node, a compose file a
//!   user can run by hand, pauses, disconnects and partitions with docker's own commands.
//! * [`scenario`] — fault scenarios as TOML data and the engine that runs them.
//! * [`process_runner`] — a scenario's nodes as local processes (namespaces for cuts).
//! * [`runner`] — the [`runner::Runner`] trait a scenario drives (process or docker).
//! * [`bench`] — `carnet-testnet bench`: open-loop load through the HTTP API and a report
//!   of throughput, finality latency, CPU, memory, disk and the machine's ceiling.
//!   [`bench_catchup`] measures a stopped node catching up (`--catch-up-docs N`).
//!
//! Talks to nodes only through their command line and HTTP API; never links the node.
//! Must never signal a process it cannot show to be a `carnet-node` of this testnet.

pub mod bench;
pub mod bench_catchup;
pub mod bench_erasure;
pub mod docker;
pub mod init;
pub mod invariants;
pub mod layout;
pub mod load;
pub mod network;
pub mod process;
pub mod process_runner;
pub mod runner;
pub mod scenario;

pub use layout::{NodeEntry, Testnet};
pub use network::Network;

use std::path::PathBuf;

/// Failures of testnet operations. Messages are one clear line, plus a log tail where a
/// node failed.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot find `{name}`: {message}")]
    BinaryNotFound { name: String, message: String },
    #[error("`carnet-node init` for {code} failed: {message}")]
    NodeInit { code: String, message: String },
    #[error("{0}")]
    Timeout(String),
    #[error(transparent)]
    Node(#[from] carnet_cli::CliError),
}

impl TestnetError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TestnetError {
        let path = path.into();
        move |source| TestnetError::Io { path, source }
    }
}

pub type Result<T> = std::result::Result<T, TestnetError>;
