//! Fetching the ciphertexts this node lacks: the blocks a node catches up on carry the
//! transactions, not their ciphertexts, and a peer may deliver keys for a document whose
//! ciphertext has not reached us by gossip. Whoever notices a missing ciphertext adds its
//! hash to the bounded [`Wants`] queue; one task works through it, asking peers (round
//! robin) for up to [`MAX_CIPHERTEXTS_PER_REQUEST`] at a time with at most
//! [`MAX_REQUESTS_IN_FLIGHT`] requests out at once, and retries what no peer had, at
//! most [`MAX_ATTEMPTS`] times. [`fetch_now`] is the synchronous path for a validator
//! checking a proposal.
//!
//! Must never store bytes whose blake3 hash is not the wanted hash, never store the
//! ciphertext of an erased version, and never grow without bound: a want beyond
//! [`MAX_WANTED`] is dropped and counted (whoever needs it asks again: a key delivery
//! refused for "ciphertext not here yet" is retried by its issuer).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::node::Shared;
use crate::p2p::{SyncRequest, SyncResponse, MAX_CIPHERTEXTS_PER_REQUEST};
use crate::storage::fatal;

/// Most wanted hashes waiting for the fetcher.
pub const MAX_WANTED: usize = 65_536;
/// Most `GetCiphertexts` requests out at once.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 4;
/// How often a hash no peer had is asked for again before it is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// Per-request timeout.
const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Pause before asking again for what a request did not bring.
const RETRY_PAUSE_MS: u64 = 200;

/// The queue of wanted ciphertext hashes (bounded by [`MAX_WANTED`]).
pub struct Wants {
    tx: mpsc::Sender<[u8; 32]>,
    rx: Mutex<Option<mpsc::Receiver<[u8; 32]>>>,
}

impl Default for Wants {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(MAX_WANTED);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Wants {
    /// Asks for a ciphertext; `false` (nothing queued) when [`MAX_WANTED`] are waiting.
    pub fn want(&self, hash: [u8; 32]) -> bool {
        self.tx.try_send(hash).is_ok()
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<[u8; 32]>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Queues every hash of `hashes` that this node does not hold; counts what did not fit.
pub fn want_missing(shared: &Shared, hashes: impl IntoIterator<Item = [u8; 32]>) {
    for hash in hashes {
        if !shared.ciphertext_wants.want(hash) {
            shared.metrics.reject("ciphertext_wants_full");
        }
    }
}

/// Starts the fetcher (once; a second call does nothing).
pub fn spawn(shared: Arc<Shared>) {
    if let Some(rx) = shared.ciphertext_wants.take_receiver() {
        tokio::spawn(run(shared, rx));
    }
}

/// Fetches `hashes` now, up to [`MAX_CIPHERTEXTS_PER_REQUEST`] per request, from
/// `first` (when given) and then from peers in turn, until `timeout`: what a validator
/// needs before it can vote for a proposal carrying documents whose gossip it missed.
/// `Err` names one ciphertext still missing and why.
pub async fn fetch_now(
    shared: &Shared,
    first: Option<libp2p::PeerId>,
    hashes: Vec<[u8; 32]>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut missing = hashes;
    let mut peer = first;
    let mut last_error = String::from("no peer had it");
    while !missing.is_empty() && Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let requests = missing.chunks(MAX_CIPHERTEXTS_PER_REQUEST).map(|chunk| {
            shared.net().request(
                peer,
                SyncRequest::GetCiphertexts {
                    hashes: chunk.to_vec(),
                },
                remaining,
            )
        });
        let answers = futures::future::join_all(requests).await;
        let mut still = Vec::new();
        for (chunk, answer) in missing.chunks(MAX_CIPHERTEXTS_PER_REQUEST).zip(answers) {
            let found = match answer {
                Ok(SyncResponse::Ciphertexts(found)) if found.len() == chunk.len() => found,
                Ok(_) => Vec::new(),
                Err(e) => {
                    last_error = e;
                    Vec::new()
                }
            };
            let batch = chunk.iter().map(|h| (*h, 0)).collect();
            let (sorted, mismatched) = sort_response(batch, found);
            if mismatched > 0 {
                last_error = "a peer sent a ciphertext that does not match its hash".into();
                for _ in 0..mismatched {
                    shared.metrics.reject("ciphertext_hash_mismatch");
                }
            }
            match shared.store.put_payloads_unless_erased(&sorted.stored) {
                Ok(stored) => {
                    if let Some(((hash, _), _)) =
                        sorted.stored.iter().zip(stored).find(|(_, stored)| !stored)
                    {
                        return Err(format!("ciphertext {} is erased", hex::encode(hash)));
                    }
                }
                Err(e) => fatal("storing ciphertexts", &e),
            }
            still.extend(sorted.retry.into_iter().map(|(h, _)| h));
            still.extend(sorted.finished);
        }
        missing = still;
        if !missing.is_empty() {
            // The next round asks the other peers in turn.
            peer = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    match missing.first() {
        None => Ok(()),
        Some(hash) => Err(format!(
            "ciphertext {} unavailable ({} missing): {last_error}",
            hex::encode(hash),
            missing.len()
        )),
    }
}

/// A hash being fetched and how many requests have not brought it.
type Attempt = ([u8; 32], u32);

/// What one request did: hashes done with (stored, erased, or given up), and the rest
/// to ask for again.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    finished: Vec<[u8; 32]>,
    retry: Vec<Attempt>,
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<[u8; 32]>) {
    let mut requests: JoinSet<Outcome> = JoinSet::new();
    let mut retry: VecDeque<Attempt> = VecDeque::new();
    // Hashes waiting for a retry or in a request: each is asked for by one request at a
    // time. Bounded by the requests in flight and the retries they return.
    let mut fetching: HashSet<[u8; 32]> = HashSet::new();
    loop {
        while let Some(done) = requests.try_join_next() {
            settle(done, &mut retry, &mut fetching);
        }
        if requests.len() >= MAX_REQUESTS_IN_FLIGHT {
            if let Some(done) = requests.join_next().await {
                settle(done, &mut retry, &mut fetching);
            }
            continue;
        }
        let mut batch: Vec<Attempt> = Vec::new();
        while batch.len() < MAX_CIPHERTEXTS_PER_REQUEST {
            match retry.pop_front() {
                Some(attempt) => batch.push(attempt),
                None => break,
            }
        }
        while batch.len() < MAX_CIPHERTEXTS_PER_REQUEST {
            match rx.try_recv() {
                Ok(hash) => admit(&shared, hash, &mut fetching, &mut batch),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            tokio::select! {
                wanted = rx.recv() => match wanted {
                    Some(hash) => {
                        let mut one = Vec::with_capacity(1);
                        admit(&shared, hash, &mut fetching, &mut one);
                        retry.extend(one);
                    }
                    None => return,
                },
                Some(done) = requests.join_next(), if !requests.is_empty() => {
                    settle(done, &mut retry, &mut fetching);
                }
            }
            continue;
        }
        requests.spawn(fetch(shared.clone(), batch));
    }
}

/// A new want joins `batch` unless it is already being fetched or already here.
fn admit(
    shared: &Shared,
    hash: [u8; 32],
    fetching: &mut HashSet<[u8; 32]>,
    batch: &mut Vec<Attempt>,
) {
    if fetching.contains(&hash) {
        return;
    }
    match (
        shared.store.payload_exists(&hash),
        shared.store.payload_erased(&hash),
    ) {
        (Ok(false), Ok(false)) => {
            fetching.insert(hash);
            batch.push((hash, 0));
        }
        (Ok(_), Ok(_)) => {}
        (Err(e), _) | (_, Err(e)) => fatal("reading the ciphertext store", &e),
    }
}

fn settle(
    done: Result<Outcome, tokio::task::JoinError>,
    retry: &mut VecDeque<Attempt>,
    fetching: &mut HashSet<[u8; 32]>,
) {
    let Ok(outcome) = done else {
        // A request task that panicked: its hashes stay marked; they are asked for again
        // by whoever still needs them after a restart. Never expected.
        tracing::error!("a ciphertext request task failed");
        return;
    };
    for hash in outcome.finished {
        fetching.remove(&hash);
    }
    retry.extend(outcome.retry);
}

/// One `GetCiphertexts` round trip for `batch`; stores what matches its hash.
async fn fetch(shared: Arc<Shared>, batch: Vec<Attempt>) -> Outcome {
    let hashes: Vec<[u8; 32]> = batch.iter().map(|(h, _)| *h).collect();
    let found = match shared
        .net()
        .request(
            None,
            SyncRequest::GetCiphertexts { hashes },
            Duration::from_millis(REQUEST_TIMEOUT_MS),
        )
        .await
    {
        Ok(SyncResponse::Ciphertexts(found)) if found.len() == batch.len() => found,
        Ok(SyncResponse::Ciphertexts(_)) => {
            shared.metrics.reject("ciphertexts_response_malformed");
            Vec::new()
        }
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::debug!("ciphertext request failed: {e}");
            Vec::new()
        }
    };
    let (outcome, mismatched) = sort_response(batch, found);
    for _ in 0..mismatched {
        shared.metrics.reject("ciphertext_hash_mismatch");
    }
    let mut finished = Vec::with_capacity(outcome.finished.len() + outcome.stored.len());
    if let Err(e) = shared.store.put_payloads_unless_erased(&outcome.stored) {
        fatal("storing ciphertexts", &e);
    }
    finished.extend(outcome.stored.iter().map(|(hash, _)| *hash));
    for hash in &outcome.finished {
        tracing::warn!(ciphertext = %hex::encode(hash), "ciphertext not fetched: no peer had it after {MAX_ATTEMPTS} requests");
    }
    finished.extend(outcome.finished);
    if !outcome.retry.is_empty() {
        tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
    }
    Outcome {
        finished,
        retry: outcome.retry,
    }
}

/// A response sorted: ciphertexts that match their hash, hashes given up, hashes to
/// ask for again; and how many answers did not match their hash.
struct Sorted {
    stored: Vec<([u8; 32], Vec<u8>)>,
    finished: Vec<[u8; 32]>,
    retry: Vec<Attempt>,
}

fn sort_response(batch: Vec<Attempt>, found: Vec<Option<Vec<u8>>>) -> (Sorted, usize) {
    let mut sorted = Sorted {
        stored: Vec::new(),
        finished: Vec::new(),
        retry: Vec::new(),
    };
    let mut mismatched = 0;
    let mut found = found.into_iter();
    for (hash, attempts) in batch {
        match found.next().flatten() {
            Some(ct) if blake3::hash(&ct).as_bytes() == &hash => sorted.stored.push((hash, ct)),
            answer => {
                mismatched += usize::from(answer.is_some());
                let attempts = attempts + 1;
                if attempts >= MAX_ATTEMPTS {
                    sorted.finished.push(hash);
                } else {
                    sorted.retry.push((hash, attempts));
                }
            }
        }
    }
    (sorted, mismatched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(bytes: &[u8]) -> [u8; 32] {
        *blake3::hash(bytes).as_bytes()
    }

    #[test]
    fn only_ciphertexts_matching_their_hash_are_kept_and_the_rest_asked_again() {
        let (a, b, c, d) = (hash_of(b"a"), hash_of(b"b"), hash_of(b"c"), hash_of(b"d"));
        let batch = vec![(a, 0), (b, 0), (c, MAX_ATTEMPTS - 1), (d, 2)];
        let found = vec![Some(b"a".to_vec()), Some(b"forged".to_vec()), None];
        let (sorted, mismatched) = sort_response(batch, found);
        assert_eq!(sorted.stored, vec![(a, b"a".to_vec())]);
        assert_eq!(mismatched, 1, "the forged answer for b is counted");
        assert_eq!(sorted.retry, vec![(b, 1), (d, 3)], "d had no answer at all");
        assert_eq!(
            sorted.finished,
            vec![c],
            "c is given up after its last attempt"
        );
    }

    #[test]
    fn wants_are_bounded_and_refused_beyond_the_bound() {
        let wants = Wants::default();
        for i in 0..MAX_WANTED as u32 {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_be_bytes());
            assert!(wants.want(hash));
        }
        assert!(!wants.want([0xff; 32]), "one more is refused, not queued");
        let mut rx = wants.take_receiver().expect("the receiver");
        assert!(wants.take_receiver().is_none(), "one fetcher only");
        assert!(rx.try_recv().is_ok());
        assert!(wants.want([0xff; 32]), "room again once one is taken");
    }
}
