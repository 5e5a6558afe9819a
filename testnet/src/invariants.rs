//! Invariants every scenario ends with: the nodes agree on every finalized block.
//!
//! Checked over the API only (`GET /v1/blocks/{h}`): same hash, parent and application
//! hash at every height on every node. Must never report agreement from fewer blocks
//! than it was asked to compare.

use crate::{Result, TestnetError};
use carnet_cli::client::Block;
use carnet_cli::NodeClient;
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
