//! `carnet-testnet bench --erasures N`: erase-to-all-attestations latency on a running
//! network, through the real HTTP API.
//!
//! For each of N documents, one at a time (so one erasure's latency is not another's
//! queueing): the first administration's officer files a document addressed to every
//! other member, then erases it; the clock runs from the erase request to (a) its answer
//! (the erasure is final) and (b) the first `GET /v1/documents/{id}/status` that lists
//! no pending node (every node destroyed the keys, pruned the ciphertext and its
//! destruction attestation is final on the ledger).
//!
//! Must never: count a document whose erasure failed or whose attestations did not all
//! arrive within [`ATTESTATION_TIMEOUT_MS`] as measured (they are reported as failures),
//! or run erasures concurrently.

use crate::layout::Testnet;
use crate::{Result, TestnetError};
use carnet_cli::client::{DocumentStatus, Erased, ErasureRequest, NodeClient, Submitted};
use carnet_cli::profile;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Most documents one erasure run may erase.
pub const MAX_ERASURES: usize = 1000;
/// How long one document may take to collect every attestation.
pub const ATTESTATION_TIMEOUT_MS: u64 = 60_000;
/// Pause between status polls.
const POLL_INTERVAL_MS: u64 = 10;

/// Percentiles of one latency, ms.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn of(samples: &[f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Percentiles {
            p50: at(50.0),
            p90: at(90.0),
            p99: at(99.0),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// The erasure part of a benchmark report.
#[derive(Clone, Debug, Serialize)]
pub struct ErasureReport {
    pub requested: usize,
    /// Erasures that became final and collected every node's attestation in time.
    pub measured: usize,
    pub failures: Vec<String>,
    pub nodes: usize,
    /// Erase request → erasure final (the API's answer).
    pub erase_final_ms: Percentiles,
    /// Erase request → every node's destruction attestation final.
    pub all_attested_ms: Percentiles,
}

/// Erases `count` fresh documents on `testnet` one by one and measures each.
pub fn run(testnet: &Testnet, count: usize) -> Result<ErasureReport> {
    if count == 0 || count > MAX_ERASURES {
        return Err(TestnetError::Invalid(format!(
            "--erasures must be 1 to {MAX_ERASURES}, got {count}"
        )));
    }
    let issuer = testnet
        .nodes
        .first()
        .ok_or_else(|| TestnetError::Invalid("the testnet has no nodes".into()))?;
    let key = profile::read_signing_key(&testnet.officer_key_path(&issuer.code))
        .map_err(|e| TestnetError::Invalid(format!("officer key of {}: {e}", issuer.code)))?;
    let client = NodeClient::new(&issuer.api, key)
        .map_err(|e| TestnetError::Invalid(format!("client for {}: {e}", issuer.code)))?;
    let recipients: Vec<String> = testnet
        .nodes
        .iter()
        .skip(1)
        .map(|n| n.code.clone())
        .collect();
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let mut erase_final = Vec::with_capacity(count);
    let mut all_attested = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for seq in 0..count {
        match erase_one(&client, &recipients, &run_tag, seq) {
            Ok((final_ms, attested_ms)) => {
                erase_final.push(final_ms);
                all_attested.push(attested_ms);
            }
            Err(reason) => failures.push(format!("document {seq}: {reason}")),
        }
    }
    Ok(ErasureReport {
        requested: count,
        measured: all_attested.len(),
        failures,
        nodes: testnet.nodes.len(),
        erase_final_ms: Percentiles::of(&erase_final),
        all_attested_ms: Percentiles::of(&all_attested),
    })
}

/// Files one document, erases it and waits for every attestation: (final, attested) ms.
fn erase_one(
    client: &NodeClient,
    recipients: &[String],
    run_tag: &str,
    seq: usize,
) -> std::result::Result<(f64, f64), String> {
    let ucr = format!("24XA{run_tag}-ER{seq:04}");
    let body = serde_json::json!({
        "kind": "export-declaration",
        "ucr": ucr,
        "recipients": recipients,
        "payload": format!(r#"{{"UCR":"{ucr}","Remarks":"erasure benchmark {seq}"}}"#),
    });
    let submitted: Submitted = client
        .call("POST", "/v1/documents", body.to_string().into_bytes())
        .map_err(|e| format!("submit: {e}"))?;
    let request = ErasureRequest {
        reason: "erasure benchmark".into(),
        legal_basis: "testnet benchmark; no personal data".into(),
    };
    let started = Instant::now();
    let erased: Erased = client
        .erase(&submitted.id, &request)
        .map_err(|e| format!("erase: {e}"))?;
    if erased.status != "erased" {
        return Err(format!("erase answered status {}", erased.status));
    }
    let final_ms = started.elapsed().as_secs_f64() * 1000.0;
    let deadline = started + Duration::from_millis(ATTESTATION_TIMEOUT_MS);
    loop {
        let status: DocumentStatus = client
            .document_status(&submitted.id)
            .map_err(|e| format!("status: {e}"))?;
        if status.status == "erased" && status.pending.is_empty() {
            return Ok((final_ms, started.elapsed().as_secs_f64() * 1000.0));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "attestations still pending after {ATTESTATION_TIMEOUT_MS} ms: {}",
                status.pending.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// The report as lines for people.
pub fn render(report: &ErasureReport) -> String {
    format!(
        "erasure: {} of {} documents erased on {} nodes, every attestation final\n\
         erase → final           p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms\n\
         erase → all attested    p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms\n{}",
        report.measured,
        report.requested,
        report.nodes,
        report.erase_final_ms.p50,
        report.erase_final_ms.p90,
        report.erase_final_ms.p99,
        report.erase_final_ms.max,
        report.all_attested_ms.p50,
        report.all_attested_ms.p90,
        report.all_attested_ms.p99,
        report.all_attested_ms.max,
        report
            .failures
            .iter()
            .map(|f| format!("failure: {f}\n"))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        let one = Percentiles::of(&[7.0]);
        assert_eq!((one.p50, one.max), (7.0, 7.0));
    }

    #[test]
    fn out_of_range_counts_are_refused() {
        let testnet = Testnet {
            dir: std::path::PathBuf::from("/nonexistent"),
            chain_id: "c".into(),
            nodes: Vec::new(),
        };
        for count in [0, MAX_ERASURES + 1] {
            let err = run(&testnet, count).unwrap_err().to_string();
            assert!(err.contains("--erasures must be 1 to 1000"), "{err}");
        }
    }
}
