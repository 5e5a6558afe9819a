//! What a scenario needs from a running network, whichever way its nodes run.
//!
//! The scenario engine drives a network only through this trait; the process runner
//! (local `carnet-node` processes) and the docker runner (compose containers) implement
//! it. A runner must never touch processes, containers or network rules it did not
//! create itself.
use std::time::Duration;

/// One node of a running network as a scenario sees it.
#[derive(Clone, Debug)]
pub struct RunnerNode {
    /// Administration code, e.g. "XA".
    pub code: String,
    /// Reachable from the host running carnet-testnet, e.g. http://127.0.0.1:7101.
    pub api_url: String,
    /// CLI profile of that administration's officer (testnet dir).
    pub profile_path: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Failed(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub trait Runner {
    /// Short name for reports: "process" or "docker".
    fn kind(&self) -> &'static str;
    fn nodes(&self) -> Vec<RunnerNode>;
    /// Starts every node and waits until all answer /healthz (bounded by `timeout`).
    fn start_all(&mut self, timeout: Duration) -> Result<(), RunnerError>;
    /// Starts one node (after kill) — keeps its data directory.
    fn start(&mut self, code: &str) -> Result<(), RunnerError>;
    /// SIGKILL (docker kill).
    fn kill(&mut self, code: &str) -> Result<(), RunnerError>;
    /// Freeze / unfreeze the process (SIGSTOP/SIGCONT; docker pause/unpause).
    fn pause(&mut self, code: &str) -> Result<(), RunnerError>;
    fn resume(&mut self, code: &str) -> Result<(), RunnerError>;
    /// Cut one node off from every other node (its API stays reachable from the host).
    fn disconnect(&mut self, code: &str) -> Result<(), RunnerError>;
    /// Split nodes into groups that can talk only within a group.
    fn partition(&mut self, groups: &[Vec<String>]) -> Result<(), RunnerError>;
    /// Undo every disconnect/partition.
    fn heal(&mut self) -> Result<(), RunnerError>;
    /// Stops everything and removes network rules/containers this runner created (idempotent).
    fn stop_all(&mut self) -> Result<(), RunnerError>;
    /// Lines of node `code`'s logs (for the "no honest node logged a corruption / crashed" invariant).
    fn logs(&self, code: &str) -> Result<String, RunnerError>;
    /// Whether node `code`'s process/container is running.
    fn is_running(&mut self, code: &str) -> bool;
}
