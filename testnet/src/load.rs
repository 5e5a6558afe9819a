//! A bounded pool of HTTP workers that submits many documents across nodes.
//!
//! Each worker takes the next submission from a shared index and waits for it to be final
//! before taking another, so at most `concurrency` submissions are in flight. Must never
//! retry a submission on its own (a retry is a second document).

use carnet_cli::client::{Submission, Submitted};
use carnet_cli::{CliError, NodeClient};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Largest worker pool accepted.
pub const MAX_CONCURRENCY: usize = 256;

/// One document to submit through `clients[node]`.
#[derive(Clone, Debug)]
pub struct LoadItem {
    pub node: usize,
    pub submission: Submission,
}

/// Submits every item, `concurrency` at a time; results are in item order.
pub fn submit_all(
    clients: &[NodeClient],
    items: &[LoadItem],
    concurrency: usize,
) -> Vec<Result<Submitted, CliError>> {
    let workers = concurrency
        .clamp(1, MAX_CONCURRENCY)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Submitted, CliError>>>> =
        Mutex::new(vec![None; items.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = match clients.get(item.node) {
                    Some(client) => client.submit(&item.submission),
                    None => Err(CliError::bad_input(format!("no client {}", item.node))),
                };
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(CliError::unavailable("worker died before answering"))))
        .collect()
}
