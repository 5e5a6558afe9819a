//! `carnet-testnet bench --catch-up-docs N`: how fast a node that missed N documents
//! catches up, measured against the rate at which the network committed them live.
//!
//! The last node (XD in a 4-node network) is stopped cleanly (SIGTERM); N pre-signed
//! documents are driven open-loop at the offered rate through the other nodes (see
//! [`crate::bench`]), every one addressed to the stopped node, so that it misses the
//! blocks, the ciphertexts *and* a key delivery per document. The live rate is what the
//! network acknowledged while it was down. Then the node is started again and polled
//! (`/healthz` and `/metrics`, unsigned) until
//!
//! * its final height reaches the lowest height of the others (**blocks caught up**:
//!   synced, verified, executed and committed), and then
//! * its `carnet_keys_received` counter (which starts at zero with the process) reaches
//!   the documents it missed (**keys caught up**: a node accepts a document's keys only
//!   once it holds the document's block and ciphertext and the keys open it).
//!
//! Rates are documents missed ÷ seconds from the restart. The lagging node's CPU seconds
//! and peak RSS (`/proc`) are read when its blocks are caught up and again when its keys
//! are. A progress sample (height, keys) is kept every second.
//!
//! Must never: count a node as caught up that it did not show through its API, wait
//! without a bound (see [`catch_up_timeout`]), or report a rate for a phase that did not
//! finish (its fields are `null` and the timeout is named).

use crate::bench::{self, Load, StepReport};
use crate::layout::NodeEntry;
use crate::network::{self, Network};
use crate::{process, Result, TestnetError};
use carnet_cli::NodeClient;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Most documents one catch-up run may make a node miss.
pub const MAX_CATCH_UP_DOCS: u64 = 10_000_000;
/// Pause between polls of the lagging node.
const POLL_INTERVAL_MS: u64 = 100;
/// Pause between progress samples, and the most samples kept.
const SAMPLE_INTERVAL_MS: u64 = 1_000;
const MAX_SAMPLES: usize = 20_000;
/// How long the blocks sent last get to become final before the count is read.
const SETTLE_MS: u64 = 2_000;

/// Longest wait for one phase (blocks, then keys) to catch up `docs` documents: two
/// minutes, plus 20 ms per document (50 documents/s, far below any live rate measured).
pub fn catch_up_timeout(docs: u64) -> Duration {
    Duration::from_millis(docs.saturating_mul(20).saturating_add(120_000))
}

/// One progress sample of the lagging node after its restart.
#[derive(Clone, Debug, Serialize)]
pub struct CatchUpSample {
    pub secs: f64,
    pub height: Option<u64>,
    pub keys_received: Option<u64>,
}

/// The catch-up part of a benchmark report.
#[derive(Clone, Debug, Serialize)]
pub struct CatchUpReport {
    /// The node stopped during the load and restarted afterwards.
    pub lagging_node: String,
    pub docs_offered: u64,
    /// Answered 200 (final) while the lagging node was down.
    pub docs_acknowledged: u64,
    /// Documents committed by the others while the lagging node was down (their
    /// `carnet_txs_committed` difference; the acknowledged count if it was unreadable).
    pub docs_missed: u64,
    pub lagging_height_at_stop: u64,
    /// Lowest height of the other nodes when the lagging node was restarted.
    pub network_height_at_restart: u64,
    pub blocks_missed: u64,
    /// Documents per second acknowledged while the lagging node was down.
    pub live_docs_per_sec: f64,
    /// Restart → the lagging node answers `/healthz`.
    pub restart_to_api_secs: Option<f64>,
    /// Restart → its final height reaches the others' lowest height.
    pub blocks_caught_up_secs: Option<f64>,
    /// Height the lagging node reached then (the others' lowest at that poll).
    pub caught_up_height: Option<u64>,
    pub catch_up_docs_per_sec: Option<f64>,
    pub catch_up_blocks_per_sec: Option<f64>,
    /// Catch-up rate ÷ live rate (the issue asks for ≥ 3).
    pub catch_up_over_live: Option<f64>,
    /// Key deliveries owed to the lagging node (one per missed document).
    pub keys_expected: u64,
    /// Its `carnet_keys_received` at the end.
    pub keys_received: Option<u64>,
    /// Restart → every owed key delivery received.
    pub keys_caught_up_secs: Option<f64>,
    pub keys_docs_per_sec: Option<f64>,
    pub keys_over_live: Option<f64>,
    /// The lagging node's CPU seconds from its restart to blocks caught up, and per
    /// second of that phase (1.0 = one core busy).
    pub cpu_seconds_blocks: Option<f64>,
    pub cpu_cores_blocks: Option<f64>,
    /// The same to keys caught up.
    pub cpu_seconds_keys: Option<f64>,
    pub cpu_cores_keys: Option<f64>,
    /// Its VmHWM (peak RSS since the restart) at blocks caught up and at the end.
    pub peak_rss_mib_blocks: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// Phases that did not finish within [`catch_up_timeout`].
    pub timeouts: Vec<String>,
    pub samples: Vec<CatchUpSample>,
}

/// An unsigned client for `/healthz` and `/metrics`.
fn unsigned_client(node: &NodeEntry) -> Option<NodeClient> {
    NodeClient::new(&node.api, SigningKey::from_bytes(&[0u8; 32])).ok()
}

/// The value of the metric line `name` (exactly, then a space) in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse::<f64>().ok()
    })
}

/// A counter of `node` (`carnet_NAME_total`), if it answers.
fn counter(node: &NodeEntry, name: &str) -> Option<u64> {
    let raw = unsigned_client(node)?
        .send_raw("GET", "/metrics", Vec::new(), None)
        .ok()?;
    if raw.status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&raw.body);
    metric_value(&text, &format!("carnet_{name}_total")).map(|v| v as u64)
}

fn height(node: &NodeEntry) -> Option<u64> {
    network::health(node).ok().map(|h| h.height)
}

/// Stops `lagging`, drives `docs` documents at `rate` through the others (`load` must
/// address them to `lagging`), restarts it and measures its catch-up.
pub(crate) fn run(
    network: &mut Network,
    load: &Load,
    lagging: &str,
    docs: u64,
    rate: f64,
) -> Result<(StepReport, CatchUpReport)> {
    if docs == 0 || docs > MAX_CATCH_UP_DOCS {
        return Err(TestnetError::Invalid(format!(
            "--catch-up-docs must be 1 to {MAX_CATCH_UP_DOCS}, got {docs}"
        )));
    }
    let lagging_node = network.testnet.node(lagging)?.clone();
    let live: Vec<NodeEntry> = network
        .testnet
        .nodes
        .iter()
        .filter(|n| n.code != lagging)
        .cloned()
        .collect();
    let counting = live
        .first()
        .ok_or_else(|| TestnetError::Invalid("a catch-up run needs two nodes".into()))?
        .clone();

    let lagging_height_at_stop = height(&lagging_node).unwrap_or(0);
    eprintln!("bench: stopping {lagging} at height {lagging_height_at_stop} ...");
    network.stop(lagging)?;
    let committed_before = counter(&counting, "txs_committed");

    eprintln!(
        "bench: {docs} documents at {rate} docs/s through {}, addressed to {lagging} ...",
        live.iter()
            .map(|n| n.code.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let step = bench::run_documents(load, 0, rate, docs);
    eprintln!(
        "bench:   acked {} ({:.1}/s)  p50 {:.0} ms  p99 {:.0} ms  503s {}  errors {}",
        step.acknowledged,
        step.acknowledged_per_sec,
        step.latency_ms.p50,
        step.latency_ms.p99,
        step.overloaded_503,
        step.errors.values().sum::<u64>()
    );
    std::thread::sleep(Duration::from_millis(SETTLE_MS));
    let committed_after = counter(&counting, "txs_committed");
    let docs_missed = match (committed_before, committed_after) {
        (Some(b), Some(a)) if a >= b => a - b,
        _ => step.acknowledged,
    };
    let network_height_at_restart = live.iter().filter_map(height).min().unwrap_or(0);
    let live_docs_per_sec = step.acknowledged_per_sec;

    eprintln!(
        "bench: {lagging} missed {docs_missed} documents ({} blocks); restarting it ...",
        network_height_at_restart.saturating_sub(lagging_height_at_stop)
    );
    // Every acknowledged document owes the lagging node one key delivery. The
    // transactions counted can include a few that are not documents (a run of 1,000,000
    // counted 1,000,004 and waited for four keys that never come).
    let keys_expected = docs_missed.min(step.acknowledged);
    let timeout = catch_up_timeout(docs_missed);
    let ticks = bench::clock_ticks();
    let started = Instant::now();
    network.start(lagging)?;
    let pid =
        network.testnet.node(lagging)?.pid.ok_or_else(|| {
            TestnetError::Invalid(format!("{lagging} has no pid after its start"))
        })?;
    let cpu_seconds = || bench::cpu_ticks(pid).map(|t| t as f64 / ticks);
    let peak_rss_mib = || bench::peak_rss_kib(pid).map(|k| k as f64 / 1024.0);

    let mut report = CatchUpReport {
        lagging_node: lagging.to_string(),
        docs_offered: docs,
        docs_acknowledged: step.acknowledged,
        docs_missed,
        lagging_height_at_stop,
        network_height_at_restart,
        blocks_missed: network_height_at_restart.saturating_sub(lagging_height_at_stop),
        live_docs_per_sec,
        restart_to_api_secs: None,
        blocks_caught_up_secs: None,
        caught_up_height: None,
        catch_up_docs_per_sec: None,
        catch_up_blocks_per_sec: None,
        catch_up_over_live: None,
        keys_expected,
        keys_received: None,
        keys_caught_up_secs: None,
        keys_docs_per_sec: None,
        keys_over_live: None,
        cpu_seconds_blocks: None,
        cpu_cores_blocks: None,
        cpu_seconds_keys: None,
        cpu_cores_keys: None,
        peak_rss_mib_blocks: None,
        peak_rss_mib: None,
        timeouts: Vec::new(),
        samples: Vec::new(),
    };
    let mut last_sample: Option<Instant> = None;
    let per_sec = |n: u64, secs: f64| n as f64 / secs.max(f64::EPSILON);
    loop {
        let elapsed = started.elapsed();
        if !network.is_running(lagging) {
            return Err(TestnetError::Invalid(format!(
                "{lagging} exited while catching up{}",
                process::log_tails(&lagging_node, network::LOG_TAIL_LINES)
            )));
        }
        let own = height(&lagging_node);
        if own.is_some() && report.restart_to_api_secs.is_none() {
            report.restart_to_api_secs = Some(elapsed.as_secs_f64());
        }
        let sample_due =
            last_sample.is_none_or(|t| t.elapsed() >= Duration::from_millis(SAMPLE_INTERVAL_MS));
        let blocks_done = report.blocks_caught_up_secs.is_some();
        let keys = if blocks_done || sample_due {
            counter(&lagging_node, "keys_received")
        } else {
            None
        };
        if sample_due && report.samples.len() < MAX_SAMPLES {
            report.samples.push(CatchUpSample {
                secs: elapsed.as_secs_f64(),
                height: own,
                keys_received: keys,
            });
            last_sample = Some(Instant::now());
        }
        if !blocks_done {
            if let Some(own) = own {
                let target = live.iter().filter_map(height).min();
                if target.is_some_and(|t| own >= t) {
                    let secs = started.elapsed().as_secs_f64();
                    let cpu = cpu_seconds();
                    report.blocks_caught_up_secs = Some(secs);
                    report.caught_up_height = Some(own);
                    report.catch_up_docs_per_sec = Some(per_sec(docs_missed, secs));
                    report.catch_up_blocks_per_sec =
                        Some(per_sec(own.saturating_sub(lagging_height_at_stop), secs));
                    report.catch_up_over_live =
                        Some(per_sec(docs_missed, secs) / live_docs_per_sec.max(f64::EPSILON));
                    report.cpu_seconds_blocks = cpu;
                    report.cpu_cores_blocks = cpu.map(|c| c / secs.max(f64::EPSILON));
                    report.peak_rss_mib_blocks = peak_rss_mib();
                    eprintln!(
                        "bench: {lagging} blocks caught up at height {own} in {secs:.1} s \
                         ({:.0} docs/s); waiting for its {keys_expected} key deliveries ...",
                        per_sec(docs_missed, secs)
                    );
                }
            }
        } else if let Some(keys) = keys {
            report.keys_received = Some(keys);
            if keys >= keys_expected {
                let secs = started.elapsed().as_secs_f64();
                let cpu = cpu_seconds();
                report.keys_caught_up_secs = Some(secs);
                report.keys_docs_per_sec = Some(per_sec(keys_expected, secs));
                report.keys_over_live =
                    Some(per_sec(keys_expected, secs) / live_docs_per_sec.max(f64::EPSILON));
                report.cpu_seconds_keys = cpu;
                report.cpu_cores_keys = cpu.map(|c| c / secs.max(f64::EPSILON));
                break;
            }
        }
        let phase_timeout = if blocks_done { timeout * 2 } else { timeout };
        if elapsed >= phase_timeout {
            let phase = if blocks_done {
                format!(
                    "keys: {} of {keys_expected} received",
                    report.keys_received.unwrap_or(0)
                )
            } else {
                format!("blocks: at height {}", own.unwrap_or(0))
            };
            report.timeouts.push(format!(
                "{phase} after {:.0} s (bound {:.0} s)",
                elapsed.as_secs_f64(),
                phase_timeout.as_secs_f64()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    report.peak_rss_mib = peak_rss_mib();
    if report.keys_received.is_none() {
        report.keys_received = counter(&lagging_node, "keys_received");
    }
    Ok((step, report))
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into())
}

fn rate(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.0} docs/s"))
        .unwrap_or_else(|| "-".into())
}

fn ratio(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "-".into())
}

/// The report as lines for people.
pub fn render(r: &CatchUpReport) -> String {
    let mut out = format!(
        "catch-up: {} stopped at height {}, missed {} documents ({} of {} offered acked; {} blocks)\n\
         live rate (while {} was down)   {:.1} docs/s\n\
         restart → API answers           {}\n\
         restart → blocks caught up      {}  height {}  {}  {} blocks/s  catch-up/live {}\n\
         restart → keys caught up        {}  {} of {} keys  {}  keys/live {}\n\
         {} during catch-up: CPU {} ({} cores) to blocks, {} ({} cores) to keys; peak RSS {} MiB at blocks, {} MiB at end\n",
        r.lagging_node,
        r.lagging_height_at_stop,
        r.docs_missed,
        r.docs_acknowledged,
        r.docs_offered,
        r.blocks_missed,
        r.lagging_node,
        r.live_docs_per_sec,
        secs(r.restart_to_api_secs),
        secs(r.blocks_caught_up_secs),
        r.caught_up_height
            .map(|h| h.to_string())
            .unwrap_or_else(|| "-".into()),
        rate(r.catch_up_docs_per_sec),
        r.catch_up_blocks_per_sec
            .map(|b| format!("{b:.1}"))
            .unwrap_or_else(|| "-".into()),
        ratio(r.catch_up_over_live),
        secs(r.keys_caught_up_secs),
        r.keys_received
            .map(|k| k.to_string())
            .unwrap_or_else(|| "-".into()),
        r.keys_expected,
        rate(r.keys_docs_per_sec),
        ratio(r.keys_over_live),
        r.lagging_node,
        secs(r.cpu_seconds_blocks),
        r.cpu_cores_blocks
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "-".into()),
        secs(r.cpu_seconds_keys),
        r.cpu_cores_keys
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "-".into()),
        r.peak_rss_mib_blocks
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "-".into()),
        r.peak_rss_mib
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "-".into()),
    );
    for t in &r.timeouts {
        out.push_str(&format!("catch-up TIMEOUT: {t}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_are_read_by_exact_name() {
        let text = "# HELP carnet_keys_received Keys\n\
                    # TYPE carnet_keys_received counter\n\
                    carnet_keys_received_total 1234\n\
                    carnet_keys_received_total_other 9\n\
                    carnet_txs_committed_total 5.0e3\n";
        assert_eq!(
            metric_value(text, "carnet_keys_received_total"),
            Some(1234.0)
        );
        assert_eq!(
            metric_value(text, "carnet_txs_committed_total"),
            Some(5000.0)
        );
        assert_eq!(metric_value(text, "carnet_keys_received"), None);
        assert_eq!(metric_value(text, "carnet_height"), None);
    }

    #[test]
    fn the_timeout_grows_with_the_documents_missed() {
        assert_eq!(catch_up_timeout(0), Duration::from_secs(120));
        assert_eq!(catch_up_timeout(200_000), Duration::from_secs(4_120));
        assert!(catch_up_timeout(u64::MAX) >= catch_up_timeout(1_000_000));
    }
}
