//! `carnet-testnet bench`: open-loop load through the real HTTP API, and an honest report.
//!
//! Requests (`POST /v1/documents`, signed as docs/interfaces.md says) are pre-signed in
//! small batches on a separate thread just ahead of their send time (each one has a
//! unique UCR and payload, hence a unique signature: the node refuses replays), then sent
//! on a fixed schedule at the offered rate, round-robin across nodes, with at most
//! `concurrency` requests in flight. Latency is measured from the *scheduled* send time,
//! so a backlog in the client or the node shows up as latency (no coordinated omission).
//! 503 (overload) answers are counted apart and never retried.
//!
//! The report carries per-node CPU seconds and peak RSS (`/proc/PID/stat`,
//! `/proc/PID/status` VmHWM of the node processes of this testnet), bytes on disk per
//! document, final heights and whether the heads agree, and the machine's ceiling:
//! in-process ed25519 batch verification rate × cores ÷ nodes.
//!
//! `--erasures N` adds erase-to-attestation latency ([`crate::bench_erasure`]);
//! `--catch-up-docs N` stops the last node during the load instead and measures how fast
//! it catches up afterwards ([`crate::bench_catchup`]).

use crate::layout::Testnet;
use crate::network::Network;
use crate::{init, process, Result, TestnetError};
use carnet_contracts::auth;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests signed per batch by the signing thread.
pub const SIGN_BATCH: usize = 64;
/// Batches the signing thread may be ahead of the sender.
pub const SIGN_AHEAD_BATCHES: usize = 8;
/// How long the load phase waits for in-flight requests after the last send.
pub const DRAIN_TIMEOUT_SECS: u64 = 40;
/// `--find-max`: stop when p99 exceeds this.
pub const FIND_MAX_P99_MS: f64 = 1000.0;
/// `--find-max`: stop when fewer than this fraction of offered documents are acknowledged.
pub const FIND_MAX_ACK_FRACTION: f64 = 0.9;
/// `--find-max`: most steps taken.
pub const FIND_MAX_STEPS: usize = 14;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Target an existing testnet directory (initialised and started if needed); `None`
    /// starts a fresh network in a temporary directory.
    pub dir: Option<PathBuf>,
    pub nodes: usize,
    pub duration_secs: u64,
    /// Offered rate (documents/s); the first step of `--find-max`.
    pub rate: f64,
    pub find_max: bool,
    /// Seconds per `--find-max` step.
    pub step_secs: u64,
    /// Rate multiplier between `--find-max` steps.
    pub step_factor: f64,
    pub payload_bytes: usize,
    pub recipients: usize,
    pub concurrency: usize,
    /// Documents per request (1: `POST /v1/documents`; more: `POST /v1/document-batches`).
    pub batch_docs: usize,
    pub report: Option<PathBuf>,
    /// Erasures measured after the load (0: none); see [`crate::bench_erasure`].
    pub erasures: usize,
    /// Documents the last node misses while stopped (0: no catch-up run); see
    /// [`crate::bench_catchup`].
    pub catch_up_docs: u64,
}

/// One load step at one offered rate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepReport {
    pub offered_rate: f64,
    pub duration_secs: f64,
    pub sent: u64,
    /// Answered 2xx: final on the node.
    pub acknowledged: u64,
    pub acknowledged_per_sec: f64,
    pub overloaded_503: u64,
    /// Other failures by HTTP status (or `transport`, `timeout`, `client_saturated`).
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    /// Largest lag of a send behind its schedule (client-side saturation), ms.
    pub max_send_lag_ms: f64,
}

/// Finality latency as the client sees it, from scheduled send to the 2xx answer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// One node's resource use over the run.
#[derive(Clone, Debug, Serialize)]
pub struct NodeUsage {
    pub code: String,
    pub pid: Option<u32>,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    pub disk_bytes_before: u64,
    pub disk_bytes_after: u64,
    pub disk_bytes_per_document: f64,
    /// The same minus the document's ciphertext (payload + 40 bytes of nonce and tag).
    pub disk_bytes_per_document_beyond_ciphertext: f64,
    pub final_height: Option<u64>,
    pub last_block_hash: Option<String>,
}

/// The whole report (`--output json`, `--report FILE`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub dir: PathBuf,
    pub nodes: usize,
    pub cores: usize,
    pub payload_bytes: usize,
    pub recipients: usize,
    pub concurrency: usize,
    /// Documents per request.
    pub batch_docs: usize,
    pub steps: Vec<StepReport>,
    /// The step reported as the result (the only one, or the best sustained of
    /// `--find-max`).
    pub result: StepReport,
    pub find_max: bool,
    pub per_node: Vec<NodeUsage>,
    pub heads_agree: bool,
    pub agreed_height: Option<u64>,
    pub ed25519_batch_verify_per_sec_per_core: f64,
    /// Verify rate × cores ÷ nodes: what every node could verify if it did nothing else.
    pub ceiling_docs_per_sec: f64,
    pub committed_over_ceiling: f64,
    /// Erase-to-all-attestations latency (`--erasures N`).
    pub erasure: Option<crate::bench_erasure::ErasureReport>,
    /// A stopped node catching up (`--catch-up-docs N`).
    pub catch_up: Option<crate::bench_catchup::CatchUpReport>,
    /// Bytes stored per document once the stores are compacted (only when the bench
    /// started the network itself: it is stopped first).
    pub compacted: Vec<CompactedStorage>,
}

/// One node's store after the run, flushed and fully compacted (`carnet-node
/// store-stats --compact`): what stays on disk per document once deleted and
/// overwritten values (delivered outbox entries, superseded state) are gone. Replay
/// entries (two per transaction, pruned after the transactions' 5-minute expiry) are
/// still counted.
#[derive(Clone, Debug, Serialize)]
pub struct CompactedStorage {
    pub code: String,
    pub documents: u64,
    /// Live SST bytes per document, per column family.
    pub bytes_per_document: std::collections::BTreeMap<String, f64>,
    /// Everything but the ciphertexts' own bytes (payload + 40 bytes of nonce and tag).
    pub bytes_per_document_beyond_ciphertext: f64,
}

/// Runs `carnet-node store-stats --compact` on each stopped node.
fn compacted_storage(
    network: &Network,
    binary: &Path,
    documents: u64,
    ciphertext_bytes: f64,
) -> Vec<CompactedStorage> {
    #[derive(serde::Deserialize)]
    struct Stats {
        name: String,
        live_sst_bytes: u64,
    }
    let mut out = Vec::new();
    for node in &network.testnet.nodes {
        let output = std::process::Command::new(binary)
            .args(["store-stats", "--compact", "--home"])
            .arg(&node.home)
            .output();
        let stats: Vec<Stats> = match output {
            Ok(o) if o.status.success() => match serde_json::from_slice(&o.stdout) {
                Ok(stats) => stats,
                Err(e) => {
                    eprintln!("bench: store-stats of {}: {e}", node.code);
                    continue;
                }
            },
            Ok(o) => {
                eprintln!(
                    "bench: store-stats of {} failed: {}",
                    node.code,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                continue;
            }
            Err(e) => {
                eprintln!("bench: store-stats of {}: {e}", node.code);
                continue;
            }
        };
        let per_doc = |bytes: u64| bytes as f64 / documents.max(1) as f64;
        let total: u64 = stats.iter().map(|s| s.live_sst_bytes).sum();
        out.push(CompactedStorage {
            code: node.code.clone(),
            documents,
            bytes_per_document: stats
                .iter()
                .map(|s| (s.name.clone(), per_doc(s.live_sst_bytes)))
                .collect(),
            bytes_per_document_beyond_ciphertext: per_doc(total) - ciphertext_bytes,
        });
    }
    out
}

/// In-process ed25519 batch verification rate on one core (64-signature batches, ~1 s).
pub fn measure_verify_rate() -> f64 {
    const BATCH: usize = 64;
    let mut rng = rand::thread_rng();
    let keys: Vec<SigningKey> = (0..BATCH).map(|_| SigningKey::generate(&mut rng)).collect();
    let messages: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| format!("carnet bench message {i} {}", "x".repeat(100)).into_bytes())
        .collect();
    let signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < Duration::from_millis(1000) {
        if ed25519_dalek::verify_batch(&refs, &signatures, &verifying).is_ok() {
            verified += BATCH as u64;
        }
    }
    verified as f64 / started.elapsed().as_secs_f64()
}

/// Clock ticks per second for `/proc/PID/stat` (from `getconf CLK_TCK`, else 100).
pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmHWM of `pid`, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Allocated bytes under `path`, as `du` counts them (512-byte blocks).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        let mut total = meta.blocks() * 512;
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                total += disk_usage(&entry.path());
            }
        }
        total
    } else {
        meta.blocks() * 512
    }
}

/// One pre-signed request (of one document, or of a batch of them).
struct Prepared {
    node: usize,
    /// Documents it carries.
    docs: usize,
    body: Vec<u8>,
    key: String,
    timestamp_ms: u64,
    signature: String,
}

/// A JSON object payload of exactly `bytes` bytes (at least its fixed part), unique per seq.
fn payload(run: &str, seq: u64, bytes: usize) -> String {
    let head = format!("{{\"UCR\":\"{run}\",\"Sequence\":{seq},\"Remarks\":\"");
    let tail = "\"}";
    let pad = bytes.saturating_sub(head.len() + tail.len());
    let mut text = String::with_capacity(head.len() + pad + tail.len());
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str(tail);
    text
}

/// The signer's view of the network: officer key and recipients per node, and the nodes
/// requests go to (round-robin).
pub(crate) struct RequestSigner {
    run: String,
    officers: Vec<(SigningKey, String)>,
    recipients: Vec<Vec<String>>,
    /// Indices of the nodes that receive requests.
    senders: Vec<usize>,
    payload_bytes: usize,
    /// Documents per request: 1 posts `/v1/documents`, more post `/v1/document-batches`.
    batch_docs: usize,
}

impl RequestSigner {
    /// Requests to every node, each addressed to the next `recipients` administrations.
    pub(crate) fn new(
        testnet: &Testnet,
        recipients: usize,
        payload_bytes: usize,
    ) -> Result<RequestSigner> {
        let codes = testnet.codes();
        let k = recipients.clamp(1, codes.len().saturating_sub(1).max(1));
        let mut officers = Vec::new();
        let mut recipient_lists = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            let key = carnet_cli::profile::read_signing_key(&testnet.officer_key_path(code))?;
            let public = hex::encode(key.verifying_key().as_bytes());
            officers.push((key, public));
            recipient_lists.push(
                (1..=k)
                    .map(|j| codes[(i + j) % codes.len()].clone())
                    .collect(),
            );
        }
        let run = format!("{:x}", rand::random::<u32>());
        Ok(RequestSigner {
            run,
            senders: (0..officers.len()).collect(),
            officers,
            recipients: recipient_lists,
            payload_bytes,
            batch_docs: 1,
        })
    }

    /// Requests to every node but `absent`, each addressed to `absent` and to the next
    /// `recipients - 1` other administrations: every document owes `absent` its keys.
    pub(crate) fn addressed_to(
        testnet: &Testnet,
        absent: &str,
        recipients: usize,
        payload_bytes: usize,
    ) -> Result<RequestSigner> {
        let mut signer = RequestSigner::new(testnet, 1, payload_bytes)?;
        let codes = testnet.codes();
        let absent_index = codes
            .iter()
            .position(|c| c == absent)
            .ok_or_else(|| TestnetError::Invalid(format!("no node {absent} in the testnet")))?;
        if codes.len() < 2 {
            return Err(TestnetError::Invalid(
                "a catch-up run needs at least two nodes".into(),
            ));
        }
        let others = codes.len() - 2;
        let k = recipients.clamp(1, others + 1);
        signer.senders = (0..codes.len()).filter(|&i| i != absent_index).collect();
        signer.recipients = (0..codes.len())
            .map(|i| {
                let mut list = vec![absent.to_string()];
                list.extend(
                    (1..codes.len())
                        .map(|j| (i + j) % codes.len())
                        .filter(|&j| j != absent_index)
                        .take(k - 1)
                        .map(|j| codes[j].clone()),
                );
                list
            })
            .collect();
        Ok(signer)
    }

    /// Sends `docs` documents per request (`/v1/document-batches` when more than one).
    pub(crate) fn with_batch_docs(mut self, docs: usize) -> RequestSigner {
        self.batch_docs = docs.clamp(1, MAX_BATCH_DOCS);
        self
    }

    /// The API path requests go to.
    pub(crate) fn path(&self) -> &'static str {
        if self.batch_docs > 1 {
            "/v1/document-batches"
        } else {
            "/v1/documents"
        }
    }

    /// How many administrations each document is addressed to.
    pub(crate) fn recipients_per_document(&self) -> usize {
        self.recipients.first().map(|r| r.len()).unwrap_or(0)
    }

    /// Request number `request`, carrying documents `first .. first + docs`.
    fn prepare(&self, request: u64, first: u64, docs: usize) -> Prepared {
        let node = self.senders[(request as usize) % self.senders.len()];
        let submission = |seq: u64| carnet_cli::client::Submission {
            kind: "export-declaration".into(),
            ucr: format!("BENCH{}-{seq}", self.run),
            recipients: self.recipients[node].clone(),
            payload: payload(&self.run, seq, self.payload_bytes),
        };
        let body = if self.batch_docs > 1 {
            let documents: Vec<_> = (first..first + docs as u64).map(submission).collect();
            serde_json::to_vec(&serde_json::json!({ "documents": documents }))
        } else {
            serde_json::to_vec(&submission(first))
        }
        .unwrap_or_default();
        let timestamp_ms = carnet_cli::client::next_timestamp_ms();
        let (key, public) = &self.officers[node];
        let signature = auth::sign_request(key, "POST", self.path(), timestamp_ms, &body);
        Prepared {
            node,
            docs,
            body,
            key: public.clone(),
            timestamp_ms,
            signature,
        }
    }
}

/// Outcome of one document.
enum Outcome {
    Ok(f64),
    Overloaded,
    Error(String),
}

/// Most documents per request the bench sends (the node's batch bound).
pub const MAX_BATCH_DOCS: usize = 256;

/// The documents of one answered batch: each entry with an `id` is acknowledged (final),
/// each `error` counted by its code; entries missing from the answer are errors too.
fn batch_outcomes(body: &[u8], docs: usize, ms: f64) -> Vec<Outcome> {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let entries = answer["documents"].as_array().cloned().unwrap_or_default();
    (0..docs)
        .map(|i| match entries.get(i) {
            Some(e) if e["id"].is_string() => Outcome::Ok(ms),
            Some(e) if e["error"]["code"] == "unavailable" => Outcome::Overloaded,
            Some(e) => Outcome::Error(e["error"]["code"].as_str().unwrap_or("malformed").into()),
            None => Outcome::Error("malformed".into()),
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What every step shares.
pub(crate) struct Load {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    urls: Vec<String>,
    signer: Arc<RequestSigner>,
    concurrency: usize,
}

/// Runs one open-loop step at `rate` for `secs` and waits for its in-flight requests.
fn run_step(load: &Load, seq_base: u64, rate: f64, secs: u64) -> StepReport {
    let total = (rate * secs as f64).round().max(1.0) as u64;
    run_documents(load, seq_base, rate, total)
}

/// Sends `total` documents open-loop at `rate` and waits for their in-flight requests.
pub(crate) fn run_documents(load: &Load, seq_base: u64, rate: f64, total: u64) -> StepReport {
    let secs = total as f64 / rate;
    let Load {
        runtime,
        http,
        urls,
        signer,
        concurrency,
    } = load;
    let concurrency = *concurrency;
    let total = total.max(1);
    // The signing thread: groups of pre-signed requests (about SIGN_BATCH documents
    // each), a few groups ahead.
    let batch_docs = signer.batch_docs as u64;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Prepared>>(SIGN_AHEAD_BATCHES);
    let signer_thread = {
        let signer = Arc::clone(signer);
        std::thread::spawn(move || {
            let requests_per_group = (SIGN_BATCH as u64 / batch_docs).max(1);
            let (mut seq, mut request) = (0u64, 0u64);
            while seq < total {
                let mut group = Vec::with_capacity(requests_per_group as usize);
                while seq < total && (group.len() as u64) < requests_per_group {
                    let docs = batch_docs.min(total - seq);
                    group.push(signer.prepare(
                        seq_base / batch_docs + request,
                        seq_base + seq,
                        docs as usize,
                    ));
                    seq += docs;
                    request += 1;
                }
                if tx.blocking_send(group).is_err() {
                    return;
                }
            }
        })
    };
    let urls: Vec<String> = urls.to_vec();
    let http = http.clone();
    let (outcomes, max_lag, elapsed) = runtime.block_on(async move {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let (otx, mut orx) = tokio::sync::mpsc::unbounded_channel::<Vec<Outcome>>();
        // Documents are due at `i / rate`; a request goes when its first document is due.
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let mut max_lag = Duration::ZERO;
        let mut i = 0u64;
        'outer: while let Some(batch) = rx.recv().await {
            for prepared in batch {
                let scheduled = start + interval.mul_f64(i as f64);
                let docs = prepared.docs;
                i += docs as u64;
                tokio::time::sleep_until(scheduled).await;
                let permit = match Arc::clone(&semaphore).acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break 'outer,
                };
                max_lag = max_lag.max(tokio::time::Instant::now() - scheduled);
                let request = http
                    .post(&urls[prepared.node])
                    .header(auth::HEADER_KEY, prepared.key)
                    .header(auth::HEADER_TIMESTAMP, prepared.timestamp_ms.to_string())
                    .header(auth::HEADER_SIGNATURE, prepared.signature)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(prepared.body);
                let otx = otx.clone();
                tokio::spawn(async move {
                    let all = |o: fn() -> Outcome| (0..docs).map(|_| o()).collect::<Vec<_>>();
                    let outcomes = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body = response.bytes().await.unwrap_or_default();
                            let ms =
                                (tokio::time::Instant::now() - scheduled).as_secs_f64() * 1000.0;
                            match status {
                                200..=299 if batch_docs > 1 => batch_outcomes(&body, docs, ms),
                                200..=299 => vec![Outcome::Ok(ms)],
                                503 => all(|| Outcome::Overloaded),
                                s => (0..docs).map(|_| Outcome::Error(s.to_string())).collect(),
                            }
                        }
                        Err(e) if e.is_timeout() => all(|| Outcome::Error("timeout".into())),
                        Err(_) => all(|| Outcome::Error("transport".into())),
                    };
                    let _ = otx.send(outcomes);
                    drop(permit);
                });
            }
        }
        drop(otx);
        let send_end = tokio::time::Instant::now();
        let mut outcomes = Vec::with_capacity(i as usize);
        let deadline = send_end + Duration::from_secs(DRAIN_TIMEOUT_SECS);
        let mut last = send_end;
        while outcomes.len() < i as usize {
            match tokio::time::timeout_at(deadline, orx.recv()).await {
                Ok(Some(o)) => {
                    last = tokio::time::Instant::now();
                    outcomes.extend(o);
                }
                _ => break,
            }
        }
        let unanswered = i as usize - outcomes.len();
        for _ in 0..unanswered {
            outcomes.push(Outcome::Error("unanswered".into()));
        }
        (
            outcomes,
            max_lag,
            (last.max(send_end) - start).as_secs_f64(),
        )
    });
    let _ = signer_thread.join();
    let mut report = StepReport {
        offered_rate: rate,
        duration_secs: secs,
        sent: outcomes.len() as u64,
        max_send_lag_ms: max_lag.as_secs_f64() * 1000.0,
        ..StepReport::default()
    };
    let mut latencies = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Ok(ms) => latencies.push(ms),
            Outcome::Overloaded => report.overloaded_503 += 1,
            Outcome::Error(e) => *report.errors.entry(e).or_default() += 1,
        }
    }
    report.acknowledged = latencies.len() as u64;
    // Acknowledged over the offered window, or over the time to the last answer when the
    // network fell behind and the tail took longer.
    report.acknowledged_per_sec = report.acknowledged as f64 / elapsed.max(secs).max(f64::EPSILON);
    latencies.sort_by(f64::total_cmp);
    report.latency_ms = Latency {
        p50: percentile(&latencies, 50.0),
        p90: percentile(&latencies, 90.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or(0.0),
        mean: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().sum::<f64>() / latencies.len() as f64
        },
    };
    report
}

/// Prepares (or targets) the network, runs the load, and measures.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    eprintln!("bench: measuring ed25519 batch verification (~1 s) ...");
    let verify_rate = measure_verify_rate();

    let binary = process::locate_binary(process::NODE_BINARY)?;
    let (mut network, temporary) = match &config.dir {
        Some(dir) => {
            if !Testnet::file(dir).exists() {
                init::init(config.nodes, dir, &binary)?;
            }
            let mut network = Network::open(&init::absolute_dir(dir)?)?;
            // Keep the user's network running afterwards.
            network.up(Duration::from_millis(crate::network::UP_TIMEOUT_MS))?;
            (network, false)
        }
        None => {
            let dir = std::env::temp_dir().join(format!(
                "carnet-bench-{}-{:x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            let testnet = init::init(config.nodes, &dir, &binary)?;
            let mut network = Network::new(testnet, binary.clone());
            network.up(Duration::from_millis(crate::network::UP_TIMEOUT_MS))?;
            (network, true)
        }
    };
    let dir = network.dir().to_path_buf();
    eprintln!(
        "bench: network of {} nodes in {}",
        network.testnet.nodes.len(),
        dir.display()
    );
    let mut result = measure(config, &mut network, cores, verify_rate);
    if temporary {
        let _ = network.down();
        if let Ok(report) = &mut result {
            let documents = report.steps.iter().map(|s| s.acknowledged).sum();
            let ciphertext = (config.payload_bytes + 40) as f64;
            report.compacted = compacted_storage(&network, &binary, documents, ciphertext);
        }
        // Keep the report and logs, not the (large) stores.
        for node in &network.testnet.nodes {
            let _ = std::fs::remove_dir_all(node.home.join("data"));
        }
    } else {
        network.detach();
    }
    let report = result?;
    let path = config
        .report
        .clone()
        .unwrap_or_else(|| dir.join("bench-report.json"));
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| TestnetError::Invalid(format!("cannot encode the report: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(TestnetError::io(&path))?;
    eprintln!("bench: report written to {}", path.display());
    Ok(report)
}

fn measure(
    config: &BenchConfig,
    network: &mut Network,
    cores: usize,
    verify_rate: f64,
) -> Result<BenchReport> {
    let testnet = network.testnet.clone();
    let nodes = testnet.nodes.len();
    // A catch-up run stops the last node and addresses every document to it.
    let lagging = testnet.codes().last().cloned().unwrap_or_default();
    let signer = Arc::new(
        if config.catch_up_docs > 0 {
            RequestSigner::addressed_to(
                &testnet,
                &lagging,
                config.recipients,
                config.payload_bytes,
            )?
        } else {
            RequestSigner::new(&testnet, config.recipients, config.payload_bytes)?
        }
        .with_batch_docs(config.batch_docs),
    );
    let urls: Vec<String> = testnet
        .nodes
        .iter()
        .map(|n| format!("{}{}", n.api.trim_end_matches('/'), signer.path()))
        .collect();
    let mut pids: Vec<Option<u32>> = testnet
        .nodes
        .iter()
        .map(|n| n.pid.filter(|pid| process::is_node_process(*pid, &n.home)))
        .collect();
    let ticks = clock_ticks();
    let mut cpu_before: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(cpu_ticks)).collect();
    let disk_before: Vec<u64> = testnet
        .nodes
        .iter()
        .map(|n| disk_usage(&n.home.join("data")))
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| TestnetError::Invalid(format!("cannot start the async runtime: {e}")))?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(
            carnet_cli::client::CONNECT_TIMEOUT_MS,
        ))
        .timeout(Duration::from_millis(
            carnet_cli::client::REQUEST_TIMEOUT_MS,
        ))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(config.concurrency)
        .build()
        .map_err(|e| TestnetError::Invalid(format!("cannot build HTTP client: {e}")))?;

    let load = Load {
        runtime,
        http,
        urls,
        signer: Arc::clone(&signer),
        concurrency: config.concurrency,
    };
    let mut steps = Vec::new();
    let mut seq_base = 0u64;
    let mut catch_up = None;
    let result = if config.catch_up_docs > 0 {
        let (step, report) =
            crate::bench_catchup::run(network, &load, &lagging, config.catch_up_docs, config.rate)?;
        // The lagging node is a new process since its restart: its CPU and peak RSS
        // count from then.
        if let Some(i) = testnet.codes().iter().position(|c| *c == lagging) {
            let node = network.testnet.node(&lagging)?;
            pids[i] = node
                .pid
                .filter(|pid| process::is_node_process(*pid, &node.home));
            cpu_before[i] = pids[i].map(|_| 0);
        }
        catch_up = Some(report);
        steps.push(step.clone());
        step
    } else if config.find_max {
        let mut rate = config.rate;
        let mut best: Option<StepReport> = None;
        for _ in 0..FIND_MAX_STEPS {
            eprintln!(
                "bench: step at {rate:.0} docs/s for {} s ...",
                config.step_secs
            );
            let step = run_step(&load, seq_base, rate, config.step_secs);
            seq_base += step.sent;
            let offered = rate * config.step_secs as f64;
            let sustained = step.latency_ms.p99 <= FIND_MAX_P99_MS
                && step.acknowledged as f64 >= FIND_MAX_ACK_FRACTION * offered;
            eprintln!(
                "bench:   acked {:.0}/s  p50 {:.0} ms  p99 {:.0} ms  503s {}  errors {}  -> {}",
                step.acknowledged_per_sec,
                step.latency_ms.p50,
                step.latency_ms.p99,
                step.overloaded_503,
                step.errors.values().sum::<u64>(),
                if sustained {
                    "sustained"
                } else {
                    "not sustained"
                }
            );
            steps.push(step.clone());
            if !sustained {
                break;
            }
            best = Some(step);
            rate *= config.step_factor;
        }
        best.unwrap_or_else(|| steps[0].clone())
    } else {
        eprintln!(
            "bench: {} docs/s for {} s ...",
            config.rate, config.duration_secs
        );
        let step = run_step(&load, seq_base, config.rate, config.duration_secs);
        steps.push(step.clone());
        step
    };
    drop(load);

    let total_acked: u64 = steps.iter().map(|s| s.acknowledged).sum();
    let ciphertext = (config.payload_bytes + 40) as f64;
    // Let the last blocks settle before reading heads.
    std::thread::sleep(Duration::from_millis(1500));
    let mut per_node = Vec::new();
    for (i, node) in testnet.nodes.iter().enumerate() {
        let cpu = match (cpu_before[i], pids[i].and_then(cpu_ticks)) {
            (Some(b), Some(a)) => a.saturating_sub(b) as f64 / ticks,
            _ => 0.0,
        };
        let after = disk_usage(&node.home.join("data"));
        let per_doc = if total_acked > 0 {
            (after as f64 - disk_before[i] as f64) / total_acked as f64
        } else {
            0.0
        };
        let health = crate::network::health(node).ok();
        per_node.push(NodeUsage {
            code: node.code.clone(),
            pid: pids[i],
            cpu_seconds: cpu,
            peak_rss_mib: pids[i].and_then(peak_rss_kib).unwrap_or(0) as f64 / 1024.0,
            disk_bytes_before: disk_before[i],
            disk_bytes_after: after,
            disk_bytes_per_document: per_doc,
            disk_bytes_per_document_beyond_ciphertext: per_doc - ciphertext,
            final_height: health.as_ref().map(|h| h.height),
            last_block_hash: health.and_then(|h| h.last_block_hash),
        });
    }
    let erasure = if config.erasures > 0 {
        eprintln!(
            "bench: erasing {} documents one by one ...",
            config.erasures
        );
        Some(crate::bench_erasure::run(&testnet, config.erasures)?)
    } else {
        None
    };
    let (heads_agree, agreed_height) = heads_agree(&testnet, &per_node);
    let ceiling = verify_rate * cores as f64 / nodes.max(1) as f64;
    Ok(BenchReport {
        dir: testnet.dir.clone(),
        nodes,
        cores,
        payload_bytes: config.payload_bytes,
        recipients: signer.recipients_per_document(),
        concurrency: config.concurrency,
        batch_docs: signer.batch_docs,
        committed_over_ceiling: result.acknowledged_per_sec / ceiling.max(f64::EPSILON),
        result,
        steps,
        find_max: config.find_max,
        per_node,
        heads_agree,
        agreed_height,
        ed25519_batch_verify_per_sec_per_core: verify_rate,
        ceiling_docs_per_sec: ceiling,
        erasure,
        catch_up,
        compacted: Vec::new(),
    })
}

/// Whether every node has the same block at the lowest final height among them.
fn heads_agree(testnet: &Testnet, per_node: &[NodeUsage]) -> (bool, Option<u64>) {
    let heights: Vec<u64> = per_node.iter().filter_map(|n| n.final_height).collect();
    if heights.len() != per_node.len() {
        return (false, None);
    }
    let Some(low) = heights.iter().copied().min() else {
        return (false, None);
    };
    let mut hashes = Vec::new();
    for node in &testnet.nodes {
        match testnet.client(&node.code).and_then(|c| Ok(c.block(low)?)) {
            Ok(block) => hashes.push(block.hash),
            Err(_) => return (false, Some(low)),
        }
    }
    (hashes.windows(2).all(|w| w[0] == w[1]), Some(low))
}

/// The table for people.
pub fn render_table(report: &BenchReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "carnet bench: {} nodes on {} cores, payload {} B, {} recipient(s), concurrency {}{}",
        report.nodes,
        report.cores,
        report.payload_bytes,
        report.recipients,
        report.concurrency,
        if report.batch_docs > 1 {
            format!(
                ", {} documents per request (POST /v1/document-batches)",
                report.batch_docs
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "{:>9} {:>6} {:>8} {:>9} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "OFFERED/s",
        "SECS",
        "SENT",
        "ACKED/s",
        "503",
        "ERR",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms"
    );
    for s in &report.steps {
        let _ = writeln!(
            out,
            "{:>9.0} {:>6.0} {:>8} {:>9.1} {:>6} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
            s.offered_rate,
            s.duration_secs,
            s.sent,
            s.acknowledged_per_sec,
            s.overloaded_503,
            s.errors.values().sum::<u64>(),
            s.latency_ms.p50,
            s.latency_ms.p90,
            s.latency_ms.p99,
            s.latency_ms.max
        );
    }
    for s in &report.steps {
        if !s.errors.is_empty() {
            let _ = writeln!(
                out,
                "errors at {:.0}/s: {}",
                s.offered_rate,
                s.errors
                    .iter()
                    .map(|(k, v)| format!("{k}×{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "{:<4} {:>7} {:>8} {:>9} {:>11} {:>14} {:>8}  HEAD",
        "NODE", "CPU s", "RSS MiB", "DISK MiB", "B/doc", "B/doc-ctext", "HEIGHT"
    );
    for n in &report.per_node {
        let _ = writeln!(
            out,
            "{:<4} {:>7.1} {:>8.1} {:>9.1} {:>11.0} {:>14.0} {:>8}  {}",
            n.code,
            n.cpu_seconds,
            n.peak_rss_mib,
            n.disk_bytes_after as f64 / (1024.0 * 1024.0),
            n.disk_bytes_per_document,
            n.disk_bytes_per_document_beyond_ciphertext,
            n.final_height
                .map(|h| h.to_string())
                .unwrap_or_else(|| "-".into()),
            n.last_block_hash
                .as_deref()
                .map(|h| &h[..h.len().min(16)])
                .unwrap_or("-")
        );
    }
    let _ = writeln!(
        out,
        "heads agree: {} (at height {})",
        if report.heads_agree { "yes" } else { "NO" },
        report
            .agreed_height
            .map(|h| h.to_string())
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        out,
        "{}: {:.1} docs/s acknowledged (final), p50 {:.0} ms, p99 {:.0} ms",
        if report.find_max {
            "best sustained step"
        } else {
            "result"
        },
        report.result.acknowledged_per_sec,
        report.result.latency_ms.p50,
        report.result.latency_ms.p99
    );
    let _ = writeln!(
        out,
        "ceiling: ed25519 batch verify {:.0}/s/core × {} cores ÷ {} nodes = {:.0} docs/s; committed/ceiling = {:.4}",
        report.ed25519_batch_verify_per_sec_per_core,
        report.cores,
        report.nodes,
        report.ceiling_docs_per_sec,
        report.committed_over_ceiling
    );
    for node in &report.compacted {
        let parts: Vec<String> = node
            .bytes_per_document
            .iter()
            .filter(|(_, b)| **b >= 0.5)
            .map(|(cf, b)| format!("{cf} {b:.0}"))
            .collect();
        let _ = writeln!(
            out,
            "stored after compaction ({}): {:.0} B/doc beyond the ciphertext; B/doc by column family: {}",
            node.code,
            node.bytes_per_document_beyond_ciphertext,
            parts.join(", ")
        );
    }
    if let Some(erasure) = &report.erasure {
        out.push_str(&crate::bench_erasure::render(erasure));
    }
    if let Some(catch_up) = &report.catch_up {
        out.push_str(&crate::bench_catchup::render(catch_up));
    }
    out
}
