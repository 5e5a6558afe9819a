//! Delivery of document keys to other administrations: when a document version this
//! node issued becomes final (a new document or an amendment), its DEK and salt are
//! wrapped with HPKE to each recipient's encryption key (from the ledger) and sent
//! node-to-node until acknowledged; when this node's administration answers a TFA
//! request with `provide`, the granted version of each provided document goes the same
//! way to the requester. Pending deliveries live in the `outbox` column family, written
//! in the block's batch (see `ledger::key_deliveries`), so they survive restarts.
//!
//! The outbox is walked in key order by a cursor over key prefixes (one page, at most
//! [`PAGE_ENTRIES`] entries, per step), so entries waiting for their retry time never
//! hide the ones behind them and a step costs O(page), not O(outbox). The due entries of
//! a page go out grouped by recipient, up to [`MAX_KEYS_PER_REQUEST`] versions per
//! request under one HPKE wrap (`envelope::wrap_key_batch`), which the recipient opens
//! once and stores in one synced vault batch. Deliveries are kept in flight
//! continuously, at most [`MAX_IN_FLIGHT_TOTAL`] at once and at most
//! [`MAX_IN_FLIGHT_PER_RECIPIENT`] to one administration; a walk that sent something is
//! followed by another at once. An entry leaves the outbox only once the recipient
//! acknowledged it (or it can never be delivered: recipient no longer active, document
//! erased).
//!
//! Must never send keys to anyone but the node of the administration the ledger names
//! (a recipient, or the requester holding a grant), never to a member that is no longer
//! active, never send them unwrapped, and never log them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carnet_contracts::envelope::{wrap_key_batch, DocumentKeys, MAX_KEYS_PER_WRAP};
use carnet_contracts::{AdminCode, DocumentId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::peer_id_of;
use crate::ledger;
use crate::node::{now_ms, Shared};
use crate::p2p::{KeyReceipt, SyncRequest, SyncResponse};
use crate::storage::{fatal, CF_OUTBOX};

/// Pause between walks of the outbox when the last walk sent nothing.
const IDLE_SCAN_PERIOD_MS: u64 = 500;
/// Most outbox entries read per step of a walk (one key prefix).
const PAGE_ENTRIES: usize = 512;
/// Longest key prefix the walk descends to when a prefix holds more than a page; past
/// it, the first [`PAGE_ENTRIES`] of that prefix are taken and the rest wait for them.
const MAX_PREFIX_BYTES: usize = 3;
/// Most document versions whose keys go in one request (one HPKE seal, one vault write
/// batch at the recipient); at most `envelope::MAX_KEYS_PER_WRAP`.
const MAX_KEYS_PER_REQUEST: usize = 128;
/// Most deliveries (keys of one version to one recipient) in flight at once, all
/// recipients together.
const MAX_IN_FLIGHT_TOTAL: usize = 1024;
/// Most deliveries in flight at once to one administration: at most 4 requests of
/// [`MAX_KEYS_PER_REQUEST`], far below the 256 concurrent streams `p2p.rs` allows per
/// connection, which the recipient's own sync requests to this node share.
const MAX_IN_FLIGHT_PER_RECIPIENT: usize = 4 * MAX_KEYS_PER_REQUEST;
/// Longest a walk waits on one page for in-flight slots before leaving the rest of the
/// page to the next walk.
const PAGE_WAIT_MAX_MS: u64 = 2_000;
/// A recipient that answered nothing for this long is not waited for: its entries that
/// do not fit are left to the next walk.
const RECIPIENT_STALL_MS: u64 = 2_000;
/// After a recipient refused a delivery because it does not have the document yet
/// (it is still catching up), nothing more is sent to it for this long.
const RECIPIENT_NOT_READY_PAUSE_MS: u64 = 250;
/// Per-request timeout of a delivery: a key delivery is small and answered as soon as
/// the recipient's vault write is durable, so a request unanswered for this long was
/// lost (e.g. its stream dropped under the recipient's stream limit) and is retried
/// rather than waited for (10 s here left a 10 s stall at the end of catch-ups).
const REQUEST_TIMEOUT_MS: u64 = 3_000;
/// Retry delay when the recipient does not have the document (or its ciphertext) yet;
/// such refusals do not count as failed attempts (they do not lengthen the schedule
/// below), the pause per recipient above bounds how often they are sent.
const NOT_READY_RETRY_MS: u64 = 500;
/// Retry schedule for other failures: `BACKOFF_BASE_MS × 2^attempts`, at most `MAX_BACKOFF_MS`.
const BACKOFF_BASE_MS: u64 = 500;
const MAX_BACKOFF_MS: u64 = 60_000;
/// Largest outbox value decoded.
const MAX_ENTRY_BYTES: u64 = 4096;

/// One pending delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub document: DocumentId,
    pub version: u32,
    pub recipient: AdminCode,
    pub attempts: u32,
    pub next_attempt_ms: u64,
}

/// Outbox key and value of a new delivery.
pub fn outbox_entry(
    document: &DocumentId,
    version: u32,
    recipient: &AdminCode,
) -> (Vec<u8>, Vec<u8>) {
    let mut key = document.0.to_vec();
    key.extend_from_slice(&version.to_be_bytes());
    key.extend_from_slice(recipient.as_str().as_bytes());
    let entry = OutboxEntry {
        document: *document,
        version,
        recipient: recipient.clone(),
        attempts: 0,
        next_attempt_ms: 0,
    };
    (key, crate::storage::encode(&entry))
}

pub fn spawn(shared: Arc<Shared>) {
    let backend = Arc::new(NodeBackend(shared));
    let scheduler = Arc::new(Scheduler::default());
    tokio::spawn(run(backend, scheduler, None));
}

/// Walks the outbox again and again (at most `max_walks` times, for tests); returns how
/// many times it waited idle.
async fn run<B: Backend>(
    backend: Arc<B>,
    scheduler: Arc<Scheduler>,
    max_walks: Option<usize>,
) -> usize {
    let mut idle_waits = 0;
    let mut walks = 0;
    while max_walks.is_none_or(|max| walks < max) {
        walks += 1;
        // A walk that sent something is followed by another at once.
        if walk(&backend, &scheduler).await == 0 {
            // Nothing was due: wait for a delivery to finish or for the period.
            idle_waits += 1;
            let _ = tokio::time::timeout(
                Duration::from_millis(IDLE_SCAN_PERIOD_MS),
                scheduler.finished.notified(),
            )
            .await;
        }
    }
    idle_waits
}

/// Why a delivery did not happen.
#[derive(Debug, Clone)]
enum Undeliverable {
    /// The recipient does not have the document (or its ciphertext) yet: it is behind;
    /// retried soon.
    NotReady(String),
    /// Retried later with backoff (peer unreachable, keys not there yet, other refusals).
    NotYet(String),
    /// Dropped: the recipient is no longer an active member, or the document is erased.
    Never(String),
}

impl From<String> for Undeliverable {
    fn from(reason: String) -> Self {
        Undeliverable::NotYet(reason)
    }
}

/// When an entry that failed for the `attempts`-th time is retried, in ms from now.
fn retry_backoff_ms(attempts: u32) -> u64 {
    (BACKOFF_BASE_MS << attempts.min(10)).min(MAX_BACKOFF_MS)
}

/// The results of one request, one per entry, in order.
type Delivering = Pin<Box<dyn Future<Output = Vec<Result<(), Undeliverable>>> + Send>>;

/// What the walk needs from the node: the outbox and the network.
trait Backend: Send + Sync + 'static {
    /// Outbox entries whose key starts with `prefix`, at most `limit`, in key order.
    fn scan(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&self, key: &[u8], value: &[u8]);
    fn delete(&self, key: &[u8]);
    /// Delivers the keys of `entries` (all to one recipient, at most
    /// [`MAX_KEYS_PER_REQUEST`]) in one request: one result per entry, in order.
    fn deliver(self: Arc<Self>, entries: Vec<OutboxEntry>) -> Delivering;
    fn delivered(&self, _entry: &OutboxEntry) {}
    fn dropped(&self, _entry: &OutboxEntry, _reason: &str) {}
    /// A walk found `entries` in the outbox (due or waiting).
    fn pending(&self, _entries: usize) {}
}

/// In-memory bookkeeping of deliveries in flight (never persisted: after a restart the
/// outbox is walked again from the start).
#[derive(Default)]
struct Scheduler {
    state: Mutex<SchedulerState>,
    /// Signalled whenever a delivery finishes (a slot is free).
    finished: Notify,
}

#[derive(Default)]
struct SchedulerState {
    in_flight: HashSet<Vec<u8>>,
    per_recipient: HashMap<AdminCode, RecipientState>,
    /// Most deliveries ever in flight at once (for tests).
    max_in_flight_seen: usize,
}

#[derive(Default)]
struct RecipientState {
    in_flight: usize,
    last_answer_ms: u64,
    paused_until_ms: u64,
}

/// Whether a due entry can be sent now.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    Sent,
    AlreadyInFlight,
    /// No slot now, but one should free soon: worth waiting for.
    Wait,
    /// The recipient is stalled: leave the entry to the next walk.
    Skip,
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, SchedulerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_in_flight(&self, key: &[u8]) -> bool {
        self.lock().in_flight.contains(key)
    }

    fn claim(&self, key: &[u8], recipient: &AdminCode, now: u64) -> Claim {
        let mut s = self.lock();
        if s.in_flight.contains(key) {
            return Claim::AlreadyInFlight;
        }
        let total = s.in_flight.len();
        let r = s.per_recipient.entry(recipient.clone()).or_default();
        if r.paused_until_ms > now {
            return Claim::Wait;
        }
        if r.in_flight >= MAX_IN_FLIGHT_PER_RECIPIENT {
            let answering = now.saturating_sub(r.last_answer_ms) < RECIPIENT_STALL_MS;
            return if answering { Claim::Wait } else { Claim::Skip };
        }
        if total >= MAX_IN_FLIGHT_TOTAL {
            return Claim::Wait;
        }
        if r.in_flight == 0 {
            // A recipient with nothing in flight counts as answering from now on.
            r.last_answer_ms = now;
        }
        r.in_flight += 1;
        s.in_flight.insert(key.to_vec());
        s.max_in_flight_seen = s.max_in_flight_seen.max(s.in_flight.len());
        Claim::Sent
    }

    fn release(&self, key: &[u8], recipient: &AdminCode, not_ready: bool) {
        {
            let mut s = self.lock();
            s.in_flight.remove(key);
            let now = now_ms();
            if let Some(r) = s.per_recipient.get_mut(recipient) {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.last_answer_ms = now;
                if not_ready {
                    r.paused_until_ms = now + RECIPIENT_NOT_READY_PAUSE_MS;
                }
                if r.in_flight == 0 && r.paused_until_ms <= now {
                    s.per_recipient.remove(recipient);
                }
            }
        }
        self.finished.notify_one();
    }
}

/// One walk over the whole outbox; returns how many deliveries it started.
async fn walk<B: Backend>(backend: &Arc<B>, scheduler: &Arc<Scheduler>) -> usize {
    let mut sent = 0;
    let mut batches = Batches::default();
    // An outbox that fits in one page is one page: one read instead of a read per key
    // prefix (256 at least; at 2,500 documents/s that was 4 % of node CPU).
    let whole = backend.scan(&[], PAGE_ENTRIES + 1);
    if whole.len() <= PAGE_ENTRIES {
        backend.pending(whole.len());
        if whole.is_empty() {
            return 0;
        }
        sent += send_page(backend, scheduler, whole, &mut batches).await;
        batches.flush(backend, scheduler);
        return sent;
    }
    let mut pending = 0;
    let mut prefix = vec![0u8];
    loop {
        let mut page = backend.scan(&prefix, PAGE_ENTRIES + 1);
        if page.len() > PAGE_ENTRIES && prefix.len() < MAX_PREFIX_BYTES {
            prefix.push(0);
            continue;
        }
        page.truncate(PAGE_ENTRIES);
        pending += page.len();
        sent += send_page(backend, scheduler, page, &mut batches).await;
        // The prefix after this one in key order (same or shorter length); none after
        // the last one: the walk is over.
        match crate::storage::prefix_successor(&prefix) {
            Some(p) => prefix = p,
            None => {
                batches.flush(backend, scheduler);
                backend.pending(pending);
                return sent;
            }
        }
    }
}

/// Claimed deliveries gathered per recipient over the pages of a walk (document ids
/// are random, so a page of one key prefix holds few entries per recipient): a request
/// goes out when it holds [`MAX_KEYS_PER_REQUEST`], the rest when the walk ends or waits.
#[derive(Default)]
struct Batches(HashMap<AdminCode, Vec<(Vec<u8>, OutboxEntry)>>);

impl Batches {
    fn add<B: Backend>(
        &mut self,
        backend: &Arc<B>,
        scheduler: &Arc<Scheduler>,
        key: Vec<u8>,
        entry: OutboxEntry,
    ) {
        let batch = self.0.entry(entry.recipient.clone()).or_default();
        batch.push((key, entry));
        if batch.len() >= MAX_KEYS_PER_REQUEST {
            start(backend.clone(), scheduler.clone(), std::mem::take(batch));
        }
    }

    fn flush<B: Backend>(&mut self, backend: &Arc<B>, scheduler: &Arc<Scheduler>) {
        for (_, batch) in self.0.drain() {
            if !batch.is_empty() {
                start(backend.clone(), scheduler.clone(), batch);
            }
        }
    }
}

/// Starts the due deliveries of one page, waiting (at most [`PAGE_WAIT_MAX_MS`]) for
/// slots while the recipients answer; returns how many it started.
async fn send_page<B: Backend>(
    backend: &Arc<B>,
    scheduler: &Arc<Scheduler>,
    page: Vec<(Vec<u8>, Vec<u8>)>,
    batches: &mut Batches,
) -> usize {
    let now = now_ms();
    let mut due = Vec::new();
    for (key, value) in page {
        match crate::storage::decode_limited::<OutboxEntry>(&value, MAX_ENTRY_BYTES) {
            Ok(entry) => {
                if entry.next_attempt_ms <= now && !scheduler.is_in_flight(&key) {
                    due.push((key, entry));
                }
            }
            Err(_) => {
                tracing::error!("malformed outbox entry dropped");
                backend.delete(&key);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_millis(PAGE_WAIT_MAX_MS);
    let mut sent = 0;
    loop {
        let now = now_ms();
        let mut waiting = Vec::new();
        for (key, entry) in due {
            match scheduler.claim(&key, &entry.recipient, now) {
                Claim::Sent => {
                    // The page may be stale: a delivery that finished after it was read
                    // (acknowledged and deleted, or rescheduled) is not sent again.
                    match current(backend.as_ref(), &key) {
                        Some(entry) if entry.next_attempt_ms <= now => {
                            sent += 1;
                            batches.add(backend, scheduler, key, entry);
                        }
                        _ => scheduler.release(&key, &entry.recipient, false),
                    }
                }
                Claim::Wait => waiting.push((key, entry)),
                Claim::AlreadyInFlight | Claim::Skip => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if waiting.is_empty() || left.is_zero() {
            return sent;
        }
        // Slots held by claimed entries not sent yet would never free: send them first.
        batches.flush(backend, scheduler);
        due = waiting;
        // A slot frees when a delivery finishes; a pause ends on its own.
        let _ = tokio::time::timeout(
            left.min(Duration::from_millis(RECIPIENT_NOT_READY_PAUSE_MS)),
            scheduler.finished.notified(),
        )
        .await;
    }
}

/// The entry as the outbox holds it now.
fn current<B: Backend>(backend: &B, key: &[u8]) -> Option<OutboxEntry> {
    let value = backend.get(key)?;
    crate::storage::decode_limited(&value, MAX_ENTRY_BYTES).ok()
}

/// Sends one request for `batch` (claimed entries, all to one recipient) and settles
/// every entry with its own result.
fn start<B: Backend>(
    backend: Arc<B>,
    scheduler: Arc<Scheduler>,
    batch: Vec<(Vec<u8>, OutboxEntry)>,
) {
    tokio::spawn(async move {
        let entries = batch.iter().map(|(_, e)| e.clone()).collect();
        let mut results = backend.clone().deliver(entries).await.into_iter();
        for (key, entry) in batch {
            let result = results
                .next()
                .unwrap_or_else(|| Err(Undeliverable::NotYet("no result for the entry".into())));
            let not_ready = settle(backend.as_ref(), &key, &entry, result);
            scheduler.release(&key, &entry.recipient, not_ready);
        }
    });
}

/// Applies one delivery's result to its outbox entry: gone when delivered or never
/// deliverable, rescheduled otherwise. Returns whether the recipient was not ready.
fn settle<B: Backend>(
    backend: &B,
    key: &[u8],
    entry: &OutboxEntry,
    result: Result<(), Undeliverable>,
) -> bool {
    let not_ready = matches!(result, Err(Undeliverable::NotReady(_)));
    match result {
        Ok(()) => {
            backend.delivered(entry);
            backend.delete(key);
        }
        Err(Undeliverable::Never(reason)) => {
            backend.dropped(entry, &reason);
            backend.delete(key);
        }
        Err(Undeliverable::NotReady(reason)) | Err(Undeliverable::NotYet(reason)) => {
            let (attempts, backoff_ms) = if not_ready {
                (entry.attempts, NOT_READY_RETRY_MS)
            } else {
                let attempts = entry.attempts.saturating_add(1);
                (attempts, retry_backoff_ms(attempts))
            };
            tracing::debug!(document = %entry.document, recipient = %entry.recipient, attempts, "key delivery will be retried: {reason}");
            let next = OutboxEntry {
                attempts,
                next_attempt_ms: now_ms() + backoff_ms,
                ..entry.clone()
            };
            backend.put(key, &crate::storage::encode(&next));
        }
    }
    not_ready
}

/// What a failed delivery request means. A recipient whose node is down (it cannot be
/// dialled) is not a failed delivery: counting it as one backed every waiting entry off
/// up to a minute, so a node back from an outage got its keys on that schedule (a 12 s
/// gap in the catch-up bench). It is retried like "not ready", paced by the
/// per-recipient pause; other failures (timeouts, closed streams) count as attempts.
fn request_failure(error: String) -> Undeliverable {
    if error.contains("Failed to dial") {
        Undeliverable::NotReady(format!("recipient unreachable: {error}"))
    } else {
        Undeliverable::from(error)
    }
}

/// Refusals meaning "the recipient is behind" (see `node::receive_keys`).
pub(crate) fn reason_is_not_ready(reason: &str) -> bool {
    reason.contains("not final here yet") || reason.contains("ciphertext not here yet")
}

/// The real node: RocksDB outbox, libp2p requests.
struct NodeBackend(Arc<Shared>);

impl Backend for NodeBackend {
    fn scan(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self.0.store.scan_prefix(CF_OUTBOX, prefix, limit) {
            Ok(e) => e,
            Err(e) => fatal("reading the key-delivery outbox", &e),
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.0.store.get_raw(CF_OUTBOX, key) {
            Ok(v) => v,
            Err(e) => fatal("reading the key-delivery outbox", &e),
        }
    }

    fn put(&self, key: &[u8], value: &[u8]) {
        if let Err(e) = self.0.store.put_raw(CF_OUTBOX, key, value) {
            fatal("updating the key-delivery outbox", &e);
        }
    }

    fn delete(&self, key: &[u8]) {
        if let Err(e) = self.0.store.delete_raw(CF_OUTBOX, key) {
            fatal("updating the key-delivery outbox", &e);
        }
    }

    fn deliver(self: Arc<Self>, entries: Vec<OutboxEntry>) -> Delivering {
        Box::pin(async move { deliver(&self.0, &entries).await })
    }

    fn delivered(&self, entry: &OutboxEntry) {
        self.0.metrics.keys_delivered.inc();
        tracing::info!(document = %entry.document, version = entry.version, recipient = %entry.recipient, "document keys delivered");
    }

    fn pending(&self, entries: usize) {
        self.0
            .metrics
            .key_deliveries_pending
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    fn dropped(&self, entry: &OutboxEntry, reason: &str) {
        self.0.metrics.reject("key_delivery_dropped");
        tracing::warn!(document = %entry.document, version = entry.version, recipient = %entry.recipient, "key delivery dropped: {reason}");
    }
}

/// One request carrying the keys of `entries` (one recipient), wrapped together.
async fn deliver(shared: &Shared, entries: &[OutboxEntry]) -> Vec<Result<(), Undeliverable>> {
    let mut results: Vec<Option<Result<(), Undeliverable>>> = vec![None; entries.len()];
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    let recipient = match ledger::administration(&shared.store, &first.recipient) {
        Ok(Some(a)) if a.active => a,
        Ok(_) => {
            let never = Undeliverable::Never("the recipient is not an active member".into());
            return vec![Err(never); entries.len()];
        }
        Err(e) => return vec![Err(Undeliverable::NotYet(e.to_string())); entries.len()],
    };
    let Some(peer) = peer_id_of(&recipient.node_key.0) else {
        let never = Undeliverable::Never("the recipient node key is not ed25519".into());
        return vec![Err(never); entries.len()];
    };
    let mut versions = Vec::with_capacity(entries.len());
    let mut keys: Vec<DocumentKeys> = Vec::with_capacity(entries.len());
    let mut sent = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        debug_assert_eq!(
            entry.recipient, first.recipient,
            "one recipient per request"
        );
        match entry_keys(shared, entry) {
            Ok(k) => {
                versions.push((entry.document, entry.version));
                keys.push(k);
                sent.push(index);
            }
            Err(why) => results[index] = Some(Err(why)),
        }
    }
    if !versions.is_empty() {
        for (index, result) in sent
            .into_iter()
            .zip(request_keys(shared, peer, &recipient.encryption_key, versions, &keys).await)
        {
            results[index] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Undeliverable::NotYet("not sent".into()))))
        .collect()
}

/// The keys of one outbox entry, or why they are not sent.
fn entry_keys(shared: &Shared, entry: &OutboxEntry) -> Result<DocumentKeys, Undeliverable> {
    if ledger::document_version(&shared.store, &entry.document, entry.version)
        .map_err(|e| e.to_string())?
        .is_some_and(|r| r.status == carnet_contracts::DocumentStatus::Erased)
    {
        return Err(Undeliverable::Never("the document is erased".into()));
    }
    Ok(shared
        .vault
        .get(&entry.document, entry.version)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "keys are not (or no longer) in the vault".to_string())?)
}

/// Wraps `keys` of `versions` to the recipient under one HPKE seal and sends them in
/// one request: one result per version, in order.
async fn request_keys(
    shared: &Shared,
    peer: libp2p::PeerId,
    encryption_key: &[u8; 32],
    versions: Vec<(DocumentId, u32)>,
    keys: &[DocumentKeys],
) -> Vec<Result<(), Undeliverable>> {
    debug_assert!(versions.len() <= MAX_KEYS_PER_WRAP);
    let count = versions.len();
    let all = |why: Undeliverable| vec![Err(why); count];
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let wrapped = match wrap_key_batch(&versions, keys, encryption_key, seed) {
        Ok(w) => w,
        Err(e) => return all(Undeliverable::NotYet(e.to_string())),
    };
    let Some(net) = shared.net.get() else {
        return all(Undeliverable::NotYet("the network is not running".into()));
    };
    let request = SyncRequest::DeliverKeys { versions, wrapped };
    match net
        .request(
            Some(peer),
            request,
            Duration::from_millis(REQUEST_TIMEOUT_MS),
        )
        .await
    {
        Ok(SyncResponse::KeyReceipts(receipts)) if receipts.len() == count => receipts
            .into_iter()
            .map(|receipt| match receipt {
                KeyReceipt::Stored => Ok(()),
                KeyReceipt::Refused(reason) => Err(refusal(reason)),
            })
            .collect(),
        Ok(SyncResponse::Nack(reason)) => all(refusal(reason)),
        Ok(_) => all(Undeliverable::NotYet("unexpected response".into())),
        Err(e) => all(request_failure(e)),
    }
}

/// A recipient's refusal: "not ready" when it is behind, otherwise retried with backoff.
fn refusal(reason: String) -> Undeliverable {
    if reason_is_not_ready(&reason) {
        Undeliverable::NotReady(format!("refused: {reason}"))
    } else {
        Undeliverable::NotYet(format!("refused: {reason}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory outbox; deliveries are acknowledged after a few yields. `arrivals`
    /// are added to the outbox when a walk reaches its last prefix (documents that became
    /// final behind the walk).
    #[derive(Default)]
    struct Fake {
        outbox: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
        delivered: Mutex<Vec<Vec<u8>>>,
        in_flight: Mutex<HashMap<AdminCode, usize>>,
        max_total: Mutex<usize>,
        max_per_recipient: Mutex<usize>,
        arrivals: Mutex<Vec<[u8; 16]>>,
        /// Entries the recipient refuses (the rest of their request is delivered).
        refuse: Mutex<HashSet<Vec<u8>>>,
        /// Versions per request, in the order the requests were made.
        requests: Mutex<Vec<usize>>,
        /// Outbox reads so far.
        scans: Mutex<usize>,
        /// Entries the last walk reported pending.
        pending: Mutex<Option<usize>>,
    }

    fn key(id: [u8; 16], recipient: &str) -> Vec<u8> {
        outbox_entry(&DocumentId(id), 1, &AdminCode(recipient.into())).0
    }

    impl Fake {
        fn insert(&self, id: [u8; 16], recipient: &str, next_attempt_ms: u64) -> Vec<u8> {
            let (key, _) = outbox_entry(&DocumentId(id), 1, &AdminCode(recipient.into()));
            let entry = OutboxEntry {
                document: DocumentId(id),
                version: 1,
                recipient: AdminCode(recipient.into()),
                attempts: 0,
                next_attempt_ms,
            };
            self.put(&key, &crate::storage::encode(&entry));
            key
        }
        fn keys(&self) -> HashSet<Vec<u8>> {
            self.outbox.lock().unwrap().keys().cloned().collect()
        }
        fn delivered(&self) -> HashSet<Vec<u8>> {
            self.delivered.lock().unwrap().iter().cloned().collect()
        }
    }

    impl Backend for Fake {
        fn scan(&self, prefix: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
            *self.scans.lock().unwrap() += 1;
            let page = self
                .outbox
                .lock()
                .unwrap()
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // Arrivals land behind the page just read (the walk's last page, or the
            // whole of a small outbox).
            if prefix == [0xff] || prefix.is_empty() {
                for id in std::mem::take(&mut *self.arrivals.lock().unwrap()) {
                    self.insert(id, "XD", 0);
                }
            }
            page
        }
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.outbox.lock().unwrap().get(key).cloned()
        }
        fn put(&self, key: &[u8], value: &[u8]) {
            self.outbox
                .lock()
                .unwrap()
                .insert(key.to_vec(), value.to_vec());
        }
        fn delete(&self, key: &[u8]) {
            self.outbox.lock().unwrap().remove(key);
        }
        fn pending(&self, entries: usize) {
            *self.pending.lock().unwrap() = Some(entries);
        }
        fn deliver(self: Arc<Self>, entries: Vec<OutboxEntry>) -> Delivering {
            Box::pin(async move {
                let recipient = entries[0].recipient.clone();
                assert!(
                    entries.iter().all(|e| e.recipient == recipient),
                    "one recipient per request"
                );
                assert!(entries.len() <= MAX_KEYS_PER_REQUEST);
                self.requests.lock().unwrap().push(entries.len());
                {
                    let mut in_flight = self.in_flight.lock().unwrap();
                    *in_flight.entry(recipient.clone()).or_default() += entries.len();
                    let total: usize = in_flight.values().sum();
                    let mine = in_flight[&recipient];
                    let mut max_total = self.max_total.lock().unwrap();
                    *max_total = (*max_total).max(total);
                    let mut max_mine = self.max_per_recipient.lock().unwrap();
                    *max_mine = (*max_mine).max(mine);
                }
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                *self.in_flight.lock().unwrap().get_mut(&recipient).unwrap() -= entries.len();
                let refused = self.refuse.lock().unwrap().clone();
                entries
                    .iter()
                    .map(|entry| {
                        let key = key(entry.document.0, entry.recipient.as_str());
                        if refused.contains(&key) {
                            return Err(Undeliverable::NotYet("refused".into()));
                        }
                        self.delivered.lock().unwrap().push(key);
                        Ok(())
                    })
                    .collect()
            })
        }
    }

    fn id(bytes: &[u8]) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..bytes.len()].copy_from_slice(bytes);
        id
    }

    /// Waits until no delivery is in flight.
    async fn drain(scheduler: &Scheduler) {
        while !scheduler.lock().in_flight.is_empty() {
            scheduler.finished.notified().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_waiting_for_their_retry_do_not_block_the_others() {
        let fake = Arc::new(Fake::default());
        let later = now_ms() + 3_600_000;
        // More waiting entries than a page, all sorting before the due ones.
        let mut waiting = HashSet::new();
        for i in 0..(2 * PAGE_ENTRIES + 100) as u32 {
            let b = i.to_be_bytes();
            waiting.insert(fake.insert(id(&[0, 0, b[2], b[3]]), "XD", later));
        }
        let mut due = HashSet::new();
        for i in 0..50u8 {
            due.insert(fake.insert(id(&[0, 0, 9, i]), "XD", 0));
            due.insert(fake.insert(id(&[0xff, i]), "XB", 0));
        }
        let scheduler = Arc::new(Scheduler::default());
        assert_eq!(walk(&fake, &scheduler).await, due.len());
        drain(&scheduler).await;
        assert_eq!(fake.delivered(), due);
        assert_eq!(fake.keys(), waiting, "waiting entries stay, untouched");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outbox_that_fits_in_a_page_is_read_once_per_walk() {
        let fake = Arc::new(Fake::default());
        let mut all = HashSet::new();
        for i in 0..PAGE_ENTRIES as u32 {
            let b = i.to_be_bytes();
            all.insert(fake.insert(id(&[b[3], b[2], 3]), "XB", 0));
        }
        let scheduler = Arc::new(Scheduler::default());
        assert_eq!(walk(&fake, &scheduler).await, all.len());
        assert_eq!(
            *fake.scans.lock().unwrap(),
            1,
            "one read for a one-page outbox"
        );
        assert_eq!(*fake.pending.lock().unwrap(), Some(PAGE_ENTRIES));
        drain(&scheduler).await;
        assert_eq!(fake.delivered(), all);
        // One more entry than a page: the walk goes prefix by prefix and still sends all.
        for i in 0..=PAGE_ENTRIES as u32 {
            let b = i.to_be_bytes();
            fake.insert(id(&[b[3], b[2], 4]), "XB", 0);
        }
        *fake.scans.lock().unwrap() = 0;
        assert_eq!(walk(&fake, &scheduler).await, PAGE_ENTRIES + 1);
        assert!(*fake.scans.lock().unwrap() > 256, "a prefix walk");
        assert_eq!(*fake.pending.lock().unwrap(), Some(PAGE_ENTRIES + 1));
        drain(&scheduler).await;
        assert!(fake.keys().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_walk_keeps_deliveries_in_flight_within_the_bounds() {
        let fake = Arc::new(Fake::default());
        let mut all = HashSet::new();
        for i in 0..(3 * MAX_IN_FLIGHT_TOTAL) as u32 {
            let b = i.to_be_bytes();
            // Most of them to one recipient, in one page-sized prefix and beyond.
            let recipient = if i % 4 == 0 { "XB" } else { "XD" };
            all.insert(fake.insert(id(&[b[3], b[2], 7]), recipient, 0));
        }
        let scheduler = Arc::new(Scheduler::default());
        // Everything is sent by one walk, not one page-sized batch per scan period.
        assert_eq!(walk(&fake, &scheduler).await, all.len());
        drain(&scheduler).await;
        assert_eq!(fake.delivered(), all);
        assert!(
            fake.keys().is_empty(),
            "acknowledged entries leave the outbox"
        );
        let max_total = *fake.max_total.lock().unwrap();
        let max_mine = *fake.max_per_recipient.lock().unwrap();
        assert!(max_total <= MAX_IN_FLIGHT_TOTAL, "{max_total} in flight");
        assert!(
            max_mine <= MAX_IN_FLIGHT_PER_RECIPIENT,
            "{max_mine} to one recipient"
        );
        assert!(scheduler.lock().max_in_flight_seen <= MAX_IN_FLIGHT_TOTAL);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_go_in_batches_per_recipient_and_each_entry_is_settled_alone() {
        let fake = Arc::new(Fake::default());
        let mut all = HashSet::new();
        for i in 0..300u32 {
            let b = i.to_be_bytes();
            let recipient = if i % 3 == 0 { "XB" } else { "XD" };
            all.insert(fake.insert(id(&[b[3], b[2], 5]), recipient, 0));
        }
        let refused = fake.insert(id(&[7, 7, 7]), "XD", 0);
        fake.refuse.lock().unwrap().insert(refused.clone());
        let scheduler = Arc::new(Scheduler::default());
        assert_eq!(walk(&fake, &scheduler).await, all.len() + 1);
        drain(&scheduler).await;
        assert_eq!(fake.delivered(), all);
        // The refused entry stays, rescheduled; the others of its request are gone.
        assert_eq!(fake.keys(), HashSet::from([refused.clone()]));
        let entry: OutboxEntry =
            crate::storage::decode_limited(&fake.get(&refused).unwrap(), MAX_ENTRY_BYTES).unwrap();
        assert_eq!(entry.attempts, 1);
        assert!(entry.next_attempt_ms > now_ms());
        // 301 keys to two recipients: a few full requests, not one request per key.
        let requests = fake.requests.lock().unwrap().clone();
        assert_eq!(requests.iter().sum::<usize>(), 301);
        assert!(
            requests.len() <= 6,
            "{} requests: {requests:?}",
            requests.len()
        );
        assert!(requests.contains(&MAX_KEYS_PER_REQUEST));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_walk_that_sent_is_followed_by_another_at_once() {
        let fake = Arc::new(Fake::default());
        for i in 0..100u8 {
            fake.insert(id(&[0x80 | i, 1]), "XD", 0);
            fake.arrivals.lock().unwrap().push(id(&[0, i, 1]));
        }
        let scheduler = Arc::new(Scheduler::default());
        // Walk 1 sends the first 100; the next 100 arrive behind it, so only walk 2 can
        // send them: it must follow without an idle wait. Walk 3 finds nothing due and
        // waits.
        assert_eq!(run(fake.clone(), scheduler.clone(), Some(2)).await, 0);
        assert_eq!(run(fake.clone(), scheduler.clone(), Some(1)).await, 1);
        drain(&scheduler).await;
        assert_eq!(fake.delivered().len(), 200);
        assert!(fake.keys().is_empty());
    }

    #[test]
    fn a_recipient_that_is_behind_is_retried_soon() {
        assert!(NOT_READY_RETRY_MS <= retry_backoff_ms(0));
        assert!(retry_backoff_ms(3) > retry_backoff_ms(2));
        assert_eq!(retry_backoff_ms(20), MAX_BACKOFF_MS);
        assert!(reason_is_not_ready("refused: document not final here yet"));
        assert!(!reason_is_not_ready("refused: the document is erased"));
    }

    #[test]
    fn an_unreachable_recipient_is_not_ready_and_a_timeout_is_an_attempt() {
        assert!(matches!(
            request_failure("Failed to dial the requested peer".into()),
            Undeliverable::NotReady(_)
        ));
        assert!(matches!(
            request_failure("Timeout".into()),
            Undeliverable::NotYet(_)
        ));
    }

    #[test]
    fn prefixes_follow_key_order() {
        assert_eq!(crate::storage::prefix_successor(&[0]), Some(vec![1]));
        assert_eq!(crate::storage::prefix_successor(&[3, 255]), Some(vec![4]));
        assert_eq!(
            crate::storage::prefix_successor(&[3, 255, 255]),
            Some(vec![4])
        );
        assert_eq!(crate::storage::prefix_successor(&[255, 255]), None);
        assert_eq!(crate::storage::prefix_successor(&[255]), None);
    }

    #[test]
    fn claims_respect_the_bounds() {
        let scheduler = Scheduler::default();
        let now = now_ms();
        let xd = AdminCode("XD".into());
        for i in 0..MAX_IN_FLIGHT_PER_RECIPIENT as u32 {
            assert_eq!(scheduler.claim(&i.to_be_bytes(), &xd, now), Claim::Sent);
        }
        assert_eq!(
            scheduler.claim(&0u32.to_be_bytes(), &xd, now),
            Claim::AlreadyInFlight
        );
        assert_eq!(scheduler.claim(b"more", &xd, now), Claim::Wait);
        // A recipient that answered nothing for long is not waited for.
        assert_eq!(
            scheduler.claim(b"more", &xd, now + RECIPIENT_STALL_MS),
            Claim::Skip
        );
        // Fill the total bound with other recipients, each up to its own bound.
        let mut i = 0u32;
        while scheduler.lock().in_flight.len() < MAX_IN_FLIGHT_TOTAL {
            let other = AdminCode(format!("R{}", i as usize / MAX_IN_FLIGHT_PER_RECIPIENT));
            assert_eq!(
                scheduler.claim(&(1_000_000 + i).to_be_bytes(), &other, now),
                Claim::Sent
            );
            i += 1;
        }
        let xc = AdminCode("XC".into());
        assert_eq!(
            scheduler.claim(b"other", &xc, now),
            Claim::Wait,
            "total bound"
        );
        scheduler.release(&0u32.to_be_bytes(), &xd, true);
        assert_eq!(scheduler.claim(b"other", &xc, now), Claim::Sent);
        // XD refused as "not final here yet": paused for a moment.
        assert_eq!(scheduler.claim(b"again", &xd, now_ms()), Claim::Wait);
        assert_eq!(
            scheduler.claim(b"again", &xd, now_ms() + RECIPIENT_NOT_READY_PAUSE_MS + 1),
            Claim::Wait,
            "the total bound"
        );
    }
}
