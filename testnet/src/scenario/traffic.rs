//! A scenario's load: open-loop document submissions through the real HTTP API.
//!
//! Each submission (`POST /v1/documents`, signed by the target node's own officer as
//! docs/interfaces.md says) is sent on a fixed schedule at the offered rate, round-robin
//! over the target nodes, with at most `concurrency` in flight; each has a unique UCR and
//! payload. Only a 2xx answer — the document is final on that node — counts as
//! acknowledged, and every acknowledged document is remembered (id, node, height) for the
//! invariant checks. Must never retry a submission (a retry is a second document).

use carnet_cli::client::Submitted;
use carnet_contracts::auth;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one submission may take (the node waits up to 30 s for finality).
pub const SUBMIT_TIMEOUT_MS: u64 = 40_000;
/// How long the load waits for answers after its last send.
pub const DRAIN_TIMEOUT_MS: u64 = 45_000;
/// Most documents one load may offer.
pub const MAX_DOCUMENTS: u64 = 200_000;

/// A node that receives submissions.
#[derive(Clone)]
pub struct LoadTarget {
    pub code: String,
    /// API base URL.
    pub api_url: String,
    /// That node's administration's officer.
    pub officer: SigningKey,
    /// Administrations every document from this node is addressed to.
    pub recipients: Vec<String>,
}

impl std::fmt::Debug for LoadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadTarget")
            .field("code", &self.code)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// A document a node acknowledged as final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    pub seq: u64,
    /// The node that acknowledged it.
    pub node: String,
    pub id: String,
    pub version: u32,
    pub height: u64,
    /// Milliseconds after the load started that it was sent.
    pub sent_at_ms: u64,
}

/// What the load did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadOutcome {
    /// Documents the schedule offered.
    pub offered: u64,
    /// Submissions actually sent (fewer if the run was interrupted).
    pub sent: u64,
    pub acknowledged: Vec<Acknowledged>,
    /// Submissions not acknowledged, by reason (`503`, `400`, `transport`, `timeout`,
    /// `unanswered`).
    pub failures: BTreeMap<String, u64>,
    /// The first answer (or transport error) seen for each failure reason.
    pub failure_examples: BTreeMap<String, String>,
    /// Sent per target node.
    pub sent_per_node: BTreeMap<String, u64>,
}

/// A JSON object payload of about `bytes` bytes, unique per `seq`, carrying only data
/// elements the testnet's default agreement allows (`UCR`, `Sequence`,
/// `GoodsDescription`, `Remarks`).
pub fn payload(ucr: &str, seq: u64, bytes: usize) -> String {
    let head = format!(
        "{{\"UCR\":\"{ucr}\",\"Sequence\":{seq},\"GoodsDescription\":\"copper cathodes\",\"Remarks\":\""
    );
    let tail = "\"}";
    let pad = bytes.saturating_sub(head.len() + tail.len());
    let mut text = String::with_capacity(head.len() + pad + tail.len());
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str(tail);
    text
}

enum Answer {
    Acked(Acknowledged),
    /// Reason (status or transport class) and the first words of the answer.
    Failed(String, String),
}

/// Offers `rate × duration_secs` documents over `targets`; returns when every answer is
/// in, [`DRAIN_TIMEOUT_MS`] after the last send at the latest, or soon after `stop` is
/// set. `run` tags the UCRs and payloads.
pub fn run(
    rate: f64,
    duration_secs: f64,
    payload_bytes: usize,
    concurrency: usize,
    targets: &[LoadTarget],
    run: &str,
    stop: &AtomicBool,
) -> LoadOutcome {
    let offered = ((rate * duration_secs).round() as u64).clamp(1, MAX_DOCUMENTS);
    let mut outcome = LoadOutcome {
        offered,
        ..LoadOutcome::default()
    };
    if targets.is_empty() {
        outcome.failures.insert("no target node".into(), offered);
        return outcome;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            outcome
                .failures
                .insert(format!("cannot start the async runtime: {e}"), offered);
            return outcome;
        }
    };
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(
            carnet_cli::client::CONNECT_TIMEOUT_MS,
        ))
        .timeout(Duration::from_millis(SUBMIT_TIMEOUT_MS))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            outcome
                .failures
                .insert(format!("cannot build the HTTP client: {e}"), offered);
            return outcome;
        }
    };
    let targets: Arc<Vec<LoadTarget>> = Arc::new(targets.to_vec());
    let run_tag = run.to_string();
    let answers = runtime.block_on(async move {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Answer>(concurrency.max(1) * 2);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = tokio::time::Instant::now();
        let mut sent = 0u64;
        let mut sent_per_node: BTreeMap<String, u64> = BTreeMap::new();
        let mut answers = Vec::new();
        for seq in 0..offered {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep_until(start + interval.mul_f64(seq as f64)).await;
            let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
                break;
            };
            let target = &targets[(seq as usize) % targets.len()];
            let ucr = format!("SCN{}-{seq}", run_tag.to_uppercase());
            let submission = carnet_cli::client::Submission {
                kind: "export-declaration".into(),
                payload: payload(&ucr, seq, payload_bytes),
                ucr,
                recipients: target.recipients.clone(),
            };
            let body = serde_json::to_vec(&submission).unwrap_or_default();
            let timestamp_ms = carnet_cli::client::next_timestamp_ms();
            let signature = auth::sign_request(
                &target.officer,
                "POST",
                "/v1/documents",
                timestamp_ms,
                &body,
            );
            let request = http
                .post(format!(
                    "{}/v1/documents",
                    target.api_url.trim_end_matches('/')
                ))
                .header(
                    auth::HEADER_KEY,
                    hex::encode(target.officer.verifying_key().as_bytes()),
                )
                .header(auth::HEADER_TIMESTAMP, timestamp_ms.to_string())
                .header(auth::HEADER_SIGNATURE, signature)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            let node = target.code.clone();
            *sent_per_node.entry(node.clone()).or_default() += 1;
            sent += 1;
            let sent_at_ms = start.elapsed().as_millis() as u64;
            let tx = tx.clone();
            tokio::spawn(async move {
                let answer = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let bytes = response.bytes().await.unwrap_or_default();
                        match (status, serde_json::from_slice::<Submitted>(&bytes)) {
                            (200..=299, Ok(s)) => Answer::Acked(Acknowledged {
                                seq,
                                node,
                                id: s.id,
                                version: s.version,
                                height: s.height,
                                sent_at_ms,
                            }),
                            (200..=299, Err(_)) => {
                                Answer::Failed("undecodable 2xx".into(), String::new())
                            }
                            (status, _) => Answer::Failed(
                                status.to_string(),
                                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                                    .into_owned(),
                            ),
                        }
                    }
                    Err(e) if e.is_timeout() => Answer::Failed("timeout".into(), e.to_string()),
                    Err(e) => Answer::Failed("transport".into(), e.to_string()),
                };
                let _ = tx.send(answer).await;
                drop(permit);
            });
            // Take answers as they come: at most `concurrency` arrive between two
            // sends, and the channel holds twice that, so no request waits on it.
            while let Ok(answer) = rx.try_recv() {
                answers.push(answer);
            }
        }
        drop(tx);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS);
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            answers.push(answer);
        }
        (answers, sent, sent_per_node)
    });
    let (answers, sent, sent_per_node) = answers;
    outcome.sent = sent;
    outcome.sent_per_node = sent_per_node;
    let mut answered = 0u64;
    for answer in answers {
        answered += 1;
        match answer {
            Answer::Acked(a) => outcome.acknowledged.push(a),
            Answer::Failed(reason, message) => {
                if !message.is_empty() && !outcome.failure_examples.contains_key(&reason) {
                    outcome.failure_examples.insert(reason.clone(), message);
                }
                *outcome.failures.entry(reason).or_default() += 1;
            }
        }
    }
    if answered < sent {
        outcome
            .failures
            .insert("unanswered".into(), sent - answered);
    }
    outcome.acknowledged.sort_by_key(|a| a.seq);
    outcome
}
