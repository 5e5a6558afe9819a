//! Overload is an answer, not a crash (issue 7): a 4-node network of real processes
//! whose mempools hold at most [`MEMPOOL_BOUND`] transactions (`carnet-testnet init
//! --mempool-max-transactions`), and XA flooded with concurrent signed submissions.
//!
//! Checked over HTTP: some submissions are answered 503 with a `Retry-After` header and a
//! JSON error naming the mempool; every other answer is 200 (no other status, no
//! connection failure); every document answered 200 is afterwards final on every node
//! (the same blocks everywhere) and opens to its exact payload on its recipient's node;
//! XA stays up, serves a new submission once the flood is over, and its peak RSS (VmHWM
//! from `/proc`) stays under [`RSS_BOUND_MIB`]. No timed assertion: waits have bounds,
//! nothing asserts how long anything took.

mod common;

use carnet_cli::client::{Submission, Submitted};
use carnet_cli::NodeClient;
use carnet_contracts::auth;
use carnet_testnet::{init, invariants, process, Network};
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every node's `[mempool] max_transactions`.
const MEMPOOL_BOUND: usize = 16;
/// Submissions per flood wave, and how many are in flight at once.
const FLOOD_SUBMISSIONS: usize = 600;
const FLOOD_CONCURRENCY: usize = 300;
/// Waves are sent until the floods met a full mempool and at least [`MIN_ACCEPTED`]
/// documents were accepted between refusals, and at most this many.
const MAX_FLOOD_WAVES: usize = 30;
const MIN_ACCEPTED: usize = 200;
/// Bytes of each document's payload.
const PAYLOAD_BYTES: usize = 2048;
/// Peak RSS XA must stay under (the per-node bound).
const RSS_BOUND_MIB: u64 = 512;
/// Readers opening the acknowledged documents at once (each read is an access-log
/// transaction, so fewer than the mempool bound).
const READERS: usize = 6;
/// Attempts to open one document while its keys are on their way (503).
const OPEN_ATTEMPTS: usize = 8;

/// What one flooded submission got back.
#[derive(Debug)]
enum Answer {
    Accepted {
        id: String,
        height: u64,
        recipient: String,
        payload: String,
    },
    Overloaded {
        retry_after: Option<String>,
        body: serde_json::Value,
    },
    Other(String),
}

/// A JSON payload of `PAYLOAD_BYTES` bytes (elements of the default agreement's data
/// cluster only), unique per (run, wave, seq).
fn payload(run: &str, wave: usize, seq: usize) -> String {
    let sequence = wave * 1_000_000 + seq;
    let head = format!("{{\"UCR\":\"{run}\",\"Sequence\":{sequence},\"Remarks\":\"");
    let pad = PAYLOAD_BYTES.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "o".repeat(pad))
}

/// One wave: `FLOOD_SUBMISSIONS` signed submissions to XA, `FLOOD_CONCURRENCY` at a time,
/// addressed in turn to XB, XC and XD.
fn flood(network: &Network, run: &str, wave: usize) -> Vec<Answer> {
    let testnet = &network.testnet;
    let xa = testnet.node("XA").expect("XA");
    let url = format!("{}/v1/documents", xa.api.trim_end_matches('/'));
    let key = carnet_cli::profile::read_signing_key(&testnet.officer_key_path("XA"))
        .expect("XA officer key");
    let public = hex::encode(key.verifying_key().as_bytes());
    let recipients = ["XB", "XC", "XD"];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(FLOOD_CONCURRENCY)
        .timeout(Duration::from_millis(
            carnet_cli::client::REQUEST_TIMEOUT_MS,
        ))
        .build()
        .expect("http client");
    let run = run.to_string();
    runtime.block_on(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(FLOOD_CONCURRENCY));
        let mut tasks = Vec::with_capacity(FLOOD_SUBMISSIONS);
        for seq in 0..FLOOD_SUBMISSIONS {
            let permit = Arc::clone(&permits).acquire_owned().await.expect("permit");
            let recipient = recipients[seq % recipients.len()].to_string();
            let text = payload(&run, wave, seq);
            let submission = Submission {
                kind: "export-declaration".into(),
                ucr: format!("OVL{run}-{wave}-{seq}"),
                recipients: vec![recipient.clone()],
                payload: text.clone(),
            };
            let body = serde_json::to_vec(&submission).expect("body");
            let timestamp_ms = carnet_cli::client::next_timestamp_ms();
            let signature = auth::sign_request(&key, "POST", "/v1/documents", timestamp_ms, &body);
            let request = http
                .post(&url)
                .header(auth::HEADER_KEY, &public)
                .header(auth::HEADER_TIMESTAMP, timestamp_ms.to_string())
                .header(auth::HEADER_SIGNATURE, signature)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            tasks.push(tokio::spawn(async move {
                let answer = match request.send().await {
                    Err(e) => Answer::Other(format!("transport: {e}")),
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let retry_after = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let bytes = response.bytes().await.unwrap_or_default();
                        match status {
                            200 => match serde_json::from_slice::<Submitted>(&bytes) {
                                Ok(s) => Answer::Accepted {
                                    id: s.id,
                                    height: s.height,
                                    recipient,
                                    payload: text,
                                },
                                Err(e) => Answer::Other(format!("200 with a bad body: {e}")),
                            },
                            503 => Answer::Overloaded {
                                retry_after,
                                body: serde_json::from_slice(&bytes)
                                    .unwrap_or(serde_json::Value::Null),
                            },
                            s => Answer::Other(format!("{s}: {}", String::from_utf8_lossy(&bytes))),
                        }
                    }
                };
                drop(permit);
                answer
            }));
        }
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await.expect("flood task"));
        }
        answers
    })
}

/// VmRSS or VmHWM of `pid` in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Opens `id` on `client` (its recipient's node) and returns the payload, waiting
/// (bounded) while the node answers 503 because the keys are still on their way.
fn open(client: &NodeClient, id: &str) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..OPEN_ATTEMPTS {
        match client.decrypt(id, "overload test: every acknowledged document opens") {
            Ok(d) => return Ok(d.payload),
            Err(e) if e.code == "unavailable" => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last)
}

#[test]
fn a_flooded_node_answers_503_keeps_every_acknowledged_document_and_stays_bounded() {
    let dir = tempfile::Builder::new()
        .prefix("carnet-overload-")
        .tempdir()
        .expect("temp dir");
    let node_binary = process::locate_binary(process::NODE_BINARY).expect("carnet-node binary");
    let testnet = init::init(4, &dir.path().join("net"), &node_binary).expect("testnet init");
    for node in &testnet.nodes {
        init::set_mempool_max_transactions(&node.home, MEMPOOL_BOUND).expect("mempool bound");
    }
    let mut network = Network::new(testnet, node_binary);
    network.up(UP_TIMEOUT).expect("testnet up");
    let xa_pid = network
        .testnet
        .node("XA")
        .unwrap()
        .pid
        .expect("XA has a pid");

    // XA's resident memory, sampled while the flood runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss_kib = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, max_rss_kib) = (Arc::clone(&sampling), Arc::clone(&max_rss_kib));
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(xa_pid, "VmRSS:") {
                    max_rss_kib.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let run = tag();
    let mut accepted = Vec::new();
    let mut mempool_503 = 0usize;
    let mut other_503: BTreeMap<String, usize> = BTreeMap::new();
    let mut others = Vec::new();
    let mut waves = 0;
    while waves < MAX_FLOOD_WAVES && (mempool_503 == 0 || accepted.len() < MIN_ACCEPTED) {
        let answers = timed(
            &format!("flood {waves}: {FLOOD_SUBMISSIONS} submissions, {FLOOD_CONCURRENCY} at once"),
            || flood(&network, &run, waves),
        );
        waves += 1;
        for answer in answers {
            match answer {
                Answer::Accepted { .. } => accepted.push(answer),
                Answer::Overloaded { retry_after, body } => {
                    let seconds = retry_after
                        .as_deref()
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    assert!(
                        seconds.is_some_and(|s| s >= 1),
                        "a 503 without a usable Retry-After ({retry_after:?}): {body}"
                    );
                    assert_eq!(body["error"]["code"], "unavailable", "503 body: {body}");
                    let message = body["error"]["message"].as_str().unwrap_or_default();
                    if message.contains("mempool") {
                        mempool_503 += 1;
                    } else {
                        *other_503.entry(message.to_string()).or_default() += 1;
                    }
                }
                Answer::Other(what) => others.push(what),
            }
        }
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    eprintln!(
        "[overload] {waves} wave(s): {} accepted, {mempool_503} refused for a full mempool, \
         other 503s {other_503:?}, other answers {}",
        accepted.len(),
        others.len()
    );
    assert!(
        others.is_empty(),
        "only 200 and 503 may answer a flood; {} others, the first: {:?}",
        others.len(),
        &others[..others.len().min(3)]
    );
    assert!(
        mempool_503 > 0,
        "no submission met the full mempool in {waves} waves"
    );
    assert!(!accepted.is_empty(), "no submission was accepted");

    // The node stays up and within its memory bound.
    assert!(network.is_running("XA"), "XA exited under the flood");
    network.health("XA").expect("XA answers /healthz");
    let peak_kib = proc_status_kib(xa_pid, "VmHWM:").expect("XA VmHWM");
    let sampled_kib = max_rss_kib.load(Ordering::Relaxed);
    eprintln!(
        "[overload] XA peak RSS {} MiB (VmHWM), {} MiB sampled during the flood; bound {RSS_BOUND_MIB} MiB",
        peak_kib / 1024,
        sampled_kib / 1024
    );
    assert!(sampled_kib > 0, "XA's RSS was never sampled");
    assert!(
        peak_kib < RSS_BOUND_MIB * 1024,
        "XA's peak RSS {} MiB is over {RSS_BOUND_MIB} MiB",
        peak_kib / 1024
    );

    // Every acknowledged document is final everywhere and opens on its recipient.
    let top = accepted
        .iter()
        .filter_map(|a| match a {
            Answer::Accepted { height, .. } => Some(*height),
            _ => None,
        })
        .max()
        .unwrap_or(1);
    let codes = network.testnet.codes();
    network
        .wait_for_height(&codes, top, Duration::from_secs(60))
        .expect("every node reaches the last acknowledged height");
    let clients: Vec<(String, NodeClient)> = codes
        .iter()
        .map(|c| (c.clone(), network.testnet.client(c).expect("client")))
        .collect();
    let compared = invariants::same_blocks(&clients, 1, top).expect("the same blocks everywhere");
    assert_eq!(compared, top);
    let failures = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    timed(
        &format!(
            "every one of {} acknowledged documents opens on its recipient",
            accepted.len()
        ),
        || {
            std::thread::scope(|scope| {
                for _ in 0..READERS {
                    scope.spawn(|| loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(Answer::Accepted {
                            id,
                            recipient,
                            payload,
                            ..
                        }) = accepted.get(i)
                        else {
                            break;
                        };
                        let (_, client) = clients
                            .iter()
                            .find(|(c, _)| c == recipient)
                            .expect("recipient client");
                        let problem = match open(client, id) {
                            Ok(text) if text == *payload => None,
                            Ok(_) => Some(format!("{id} on {recipient}: another payload")),
                            Err(e) => Some(format!("{id} on {recipient}: {e}")),
                        };
                        if let Some(problem) = problem {
                            failures.lock().unwrap().push(problem);
                        }
                    });
                }
            })
        },
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} acknowledged documents are not readable: {:?}",
        failures.len(),
        accepted.len(),
        &failures[..failures.len().min(10)]
    );

    // Once the flood is over, XA takes new documents again (a 503 is an answer to wait
    // for, as its Retry-After says).
    let xa = network.testnet.client("XA").expect("XA client");
    let after = Submission {
        kind: "export-declaration".into(),
        ucr: format!("OVL{run}-AFTER"),
        recipients: vec!["XB".into()],
        payload: payload(&run, MAX_FLOOD_WAVES, 0),
    };
    let mut submitted = None;
    for _ in 0..30 {
        match xa.submit(&after) {
            Ok(s) => {
                submitted = Some(s);
                break;
            }
            Err(e) if e.code == "unavailable" => std::thread::sleep(Duration::from_secs(1)),
            Err(e) => panic!("XA refused a submission after the flood: {e}"),
        }
    }
    let submitted = submitted.expect("XA accepts a submission after the flood");
    assert_eq!(submitted.status, "active");
    assert!(network.is_running("XA"));
}
