//! Assembly of a running node: opens the store (refusing a corrupted one), applies
//! genesis once, restores consensus, starts the network, the driver, key delivery and
//! the HTTP API, and holds the state they share.
//!
//! Must never hold a lock across an await point or across a durable write of another
//! component, and never start serving before the store has passed its consistency check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use carnet_consensus::{Block, Digest, Ed25519Signer, Message, ValidatorIndex, ValidatorSet};
use carnet_contracts::agreement::{Agreement, AgreementRecord, MAX_AGREEMENTS};
use carnet_contracts::envelope::{
    agreement_key_info, open_and_check, unwrap_key_batch, unwrap_secret,
};
use carnet_contracts::{AdminCode, AgreementId, Genesis};
use tokio::sync::{mpsc, oneshot, watch};
use zeroize::{Zeroize, Zeroizing};

use crate::config::NodeHome;
use crate::driver::{Driver, DriverEvent, DRIVER_QUEUE};
use crate::epochs::EpochInfo;
use crate::hsm_signer::{Pkcs11Signer, ValidatorSigner};
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::p2p::{
    self, Inbound, KeyReceipt, Member, NetConfig, NetStatus, Network, Reply, SyncRequest,
    SyncResponse, TxGossip, MAX_BLOCKS_PER_RESPONSE,
};
use crate::storage::{Head, StorageError, Store};
use crate::vault::{KeyVault, RocksVault};
use crate::{api, delivery, ledger};

/// Lifetime of the transactions this node signs itself (submissions, access records,
/// erasures, attestations).
pub const NODE_TX_TTL_MS: u64 = 5 * 60 * 1000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Final outcome of a transaction, for whoever waits on it.
#[derive(Debug, Clone)]
pub struct TxOutcome {
    pub height: u64,
    pub result: Result<(), String>,
}

/// Most callers waiting for transactions at once.
pub const MAX_WAITERS: usize = 10_000;

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Other(String),
}

/// State shared by the driver, the network handlers, key delivery and the API.
pub struct Shared {
    pub admin: AdminCode,
    pub chain_id: String,
    pub genesis: Genesis,
    /// The consensus epoch the driver runs (validators, their administrations, the
    /// signing namespace); replaced by the driver at each epoch boundary.
    pub(crate) epoch: RwLock<Arc<EpochInfo>>,
    pub store: Arc<Store>,
    pub vault: Arc<dyn KeyVault>,
    pub metrics: Arc<Metrics>,
    pub net_status: Arc<NetStatus>,
    pub(crate) mempool: Mutex<Mempool>,
    pub(crate) net: OnceLock<Network>,
    pub node_key: ed25519_dalek::SigningKey,
    pub(crate) encryption_secret: Zeroizing<[u8; 32]>,
    /// UCR keys of the agreements this administration is party to, unwrapped from the
    /// ledger on first use (at most `MAX_AGREEMENTS`; zeroized when dropped).
    pub(crate) ucr_keys: Mutex<HashMap<AgreementId, Zeroizing<[u8; 32]>>>,
    /// The agreement records of the committed ledger, read once per committed height
    /// (every submission that names no agreement resolves one among them).
    pub(crate) agreements_at: Mutex<Option<(u64, Arc<Vec<AgreementRecord>>)>>,
    /// Height of the last committed block, published on every commit (event streams
    /// follow it).
    pub(crate) heads: watch::Sender<u64>,
    pub(crate) waiters: Mutex<HashMap<[u8; 32], Vec<oneshot::Sender<TxOutcome>>>>,
    pub(crate) head: Mutex<Head>,
    pub(crate) view: AtomicU64,
    pub(crate) recent_blocks: Mutex<HashMap<Digest, Block>>,
    pub driver: mpsc::Sender<DriverEvent>,
    /// Wakes the erasure worker when a block erased documents.
    pub erasure_wake: tokio::sync::Notify,
    /// Ciphertexts this node lacks, for the fetcher (`fetch.rs`; bounded).
    pub(crate) ciphertext_wants: crate::fetch::Wants,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data (bounded collections) is usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        lock(&self.mempool)
    }

    pub fn recent_blocks(&self) -> MutexGuard<'_, HashMap<Digest, Block>> {
        lock(&self.recent_blocks)
    }

    pub fn net(&self) -> &Network {
        match self.net.get() {
            Some(n) => n,
            None => crate::storage::fatal("network used before it started", &"startup order"),
        }
    }

    /// The epoch the driver currently runs.
    pub fn epoch(&self) -> Arc<EpochInfo> {
        self.epoch.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Moves to the next epoch (the driver, at a boundary).
    pub(crate) fn set_epoch(&self, info: EpochInfo) {
        self.metrics.epoch.set(info.epoch as i64);
        *self.epoch.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(info);
    }

    /// Signing namespace of the current epoch.
    pub fn namespace(&self) -> Vec<u8> {
        self.epoch().namespace.clone()
    }

    /// Validator set of the current epoch.
    pub fn validators(&self) -> ValidatorSet {
        self.epoch().validators.clone()
    }

    pub fn node_public(&self) -> [u8; 32] {
        self.node_key.verifying_key().to_bytes()
    }

    pub fn encryption_secret(&self) -> &[u8; 32] {
        &self.encryption_secret
    }

    /// A transaction signed by this node (for `officer`, if any), with a random nonce,
    /// expiring `NODE_TX_TTL_MS` from now.
    pub fn node_tx(
        &self,
        officer: Option<carnet_contracts::PublicKey>,
        action: carnet_contracts::Action,
    ) -> carnet_contracts::SignedTransaction {
        use rand::RngCore as _;
        carnet_contracts::Transaction {
            chain_id: self.chain_id.clone(),
            signer: carnet_contracts::PublicKey(self.node_public()),
            officer,
            nonce: rand::rngs::OsRng.next_u64(),
            expires_at_ms: now_ms() + NODE_TX_TTL_MS,
            action,
        }
        .sign(&self.node_key)
    }

    /// Submits one transaction (gossiping it if admitted); returns its admission result.
    pub fn submit_one(
        &self,
        tx: carnet_contracts::SignedTransaction,
        ciphertext: Option<Vec<u8>>,
    ) -> Option<Result<[u8; 32], crate::mempool::AdmissionError>> {
        self.submit(vec![TxGossip { tx, ciphertext }], true).pop()
    }

    /// The allow-list for the network: the active members of the committed ledger.
    pub fn ledger_members(&self) -> Result<HashMap<libp2p::PeerId, Member>, String> {
        let administrations = ledger::administrations(&self.store)
            .map_err(|e| format!("reading the members on the ledger: {e}"))?;
        p2p::members_from_ledger(&administrations, &self.epoch().admins)
    }

    /// Administration of validator `index` in the current epoch.
    pub fn validator_admin(&self, index: ValidatorIndex) -> Option<AdminCode> {
        self.epoch().admins.get(usize::from(index)).cloned()
    }

    pub fn head(&self) -> Head {
        lock(&self.head).clone()
    }

    /// Moves the head and wakes everyone following new blocks (event streams).
    pub fn set_head(&self, head: Head) {
        let height = head.height;
        *lock(&self.head) = head;
        self.heads.send_replace(height);
    }

    /// Follows the height of committed blocks.
    pub fn subscribe_heads(&self) -> watch::Receiver<u64> {
        self.heads.subscribe()
    }

    /// The agreement records on the committed ledger (at most `MAX_AGREEMENTS`), read
    /// once per committed height.
    pub fn agreement_records(&self) -> Result<Arc<Vec<AgreementRecord>>, String> {
        // The tag is read before the scan: records newer than their tag are harmless,
        // older ones are never served for a later height.
        let height = self.head().height;
        if let Some((at, records)) = lock(&self.agreements_at).as_ref() {
            if *at == height {
                return Ok(records.clone());
            }
        }
        let records =
            carnet_contracts::agreement::agreements(&crate::ledger::Committed(&self.store))
                .map(Arc::new)
                .map_err(|e| format!("reading the agreements: {e}"))?;
        *lock(&self.agreements_at) = Some((height, records.clone()));
        Ok(records)
    }

    /// The UCR key of `agreement`, unwrapped from this administration's wrap on the
    /// ledger (and cached). `Ok(None)` when the agreement holds no wrap for this
    /// administration (it is not a party); `Err` when the wrap does not open.
    pub fn agreement_ucr_key(
        &self,
        agreement: &Agreement,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, String> {
        if let Some(key) = lock(&self.ucr_keys).get(&agreement.id) {
            return Ok(Some(key.clone()));
        }
        let Some(wrapped) = agreement.ucr_key_wrap(&self.admin) else {
            return Ok(None);
        };
        let key = unwrap_secret(
            wrapped,
            self.encryption_secret(),
            &agreement_key_info(&agreement.id),
        )
        .map_err(|e| format!("UCR key of agreement {}: {e}", agreement.id))?;
        let mut cache = lock(&self.ucr_keys);
        if cache.len() < MAX_AGREEMENTS {
            cache.insert(agreement.id, key.clone());
        }
        Ok(Some(key))
    }

    pub fn view(&self) -> u64 {
        self.view.load(Ordering::Relaxed)
    }

    pub fn set_view(&self, view: u64) {
        self.view.store(view, Ordering::Relaxed);
    }

    /// Registers interest in a transaction's final outcome. `None` when too many wait.
    pub fn wait_for(&self, hash: [u8; 32]) -> Option<oneshot::Receiver<TxOutcome>> {
        let mut waiters = lock(&self.waiters);
        waiters.retain(|_, senders| {
            senders.retain(|s| !s.is_closed());
            !senders.is_empty()
        });
        if waiters.len() >= MAX_WAITERS {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiters.entry(hash).or_default().push(tx);
        Some(rx)
    }

    pub fn notify(&self, hash: &[u8; 32], outcome: TxOutcome) {
        let senders = lock(&self.waiters).remove(hash);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(outcome.clone());
        }
    }

    /// Admits transactions to the mempool, gossips the accepted ones when `gossip`,
    /// and wakes the driver. Returns per-transaction results.
    ///
    /// Signatures are verified (one batch) without the mempool lock, and only for
    /// transactions that are neither final, nor pooled already, nor refused because
    /// the pool is full.
    pub fn submit(
        &self,
        batch: Vec<TxGossip>,
        gossip: bool,
    ) -> Vec<Result<[u8; 32], crate::mempool::AdmissionError>> {
        use crate::mempool::AdmissionError;
        let mut results: Vec<Option<Result<[u8; 32], AdmissionError>>> =
            Vec::with_capacity(batch.len());
        // (transaction, its hash, its index in `results`)
        let mut candidates = Vec::with_capacity(batch.len());
        for g in batch {
            let hash = g.tx.hash();
            // Transactions already final are refused as duplicates.
            if let Ok(Some(_)) = self.store.tx_location(&hash) {
                results.push(Some(Err(AdmissionError::Duplicate)));
            } else {
                candidates.push((g, hash, results.len()));
                results.push(None);
            }
        }
        {
            let pool = self.mempool();
            candidates.retain(|(_, hash, i)| {
                let refusal = if pool.contains(hash) {
                    AdmissionError::Duplicate
                } else if pool.is_full() {
                    pool.overloaded()
                } else {
                    return true;
                };
                results[*i] = Some(Err(refusal));
                false
            });
        }
        let own_key = self.node_public();
        let mut admit = Vec::with_capacity(candidates.len());
        let mut admit_at = Vec::with_capacity(candidates.len());
        let mut encoded = Vec::new();
        for (g, hash, i) in candidates {
            // Without a network (tests of the API alone) nothing is gossiped.
            if gossip && self.net.get().is_some() {
                encoded.push(crate::storage::encode(&g));
            }
            // What this node just signed with its own key (submitted here, not relayed)
            // needs no second check.
            let own = gossip && g.tx.tx.signer.0 == own_key;
            admit.push((g.tx, g.ciphertext, hash, own));
            admit_at.push(i);
        }
        let checked = crate::mempool::check_signatures_except_own(admit);
        let admitted = {
            let mut pool = self.mempool();
            let r = pool.admit_checked(checked);
            self.metrics.mempool_size.set(pool.len() as i64);
            r
        };
        let mut any = false;
        let mut encoded = encoded.into_iter();
        for (result, i) in admitted.into_iter().zip(admit_at) {
            let bytes = encoded.next();
            if result.is_ok() {
                any = true;
                if let (Some(bytes), Some(net)) = (bytes, self.net.get()) {
                    if !net.try_send(p2p::NetCommand::PublishTx(bytes)) {
                        self.metrics.reject("net_queue_full");
                    }
                }
            }
            results[i] = Some(result);
        }
        if any {
            let _ = self.driver.try_send(DriverEvent::TxAdmitted);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(AdmissionError::Invalid("not processed".into()))))
            .collect()
    }
}

/// Most gossiped transaction batches waiting for admission. Beyond it a batch is dropped
/// (gossip is best effort: a transaction that misses the mempool is verified, and its
/// ciphertext fetched, when a proposal carries it).
const GOSSIP_ADMISSION_QUEUE: usize = 256;
/// Most gossiped transactions verified in one signature batch.
const MAX_GOSSIP_ADMISSION_BATCH: usize = 2048;

/// A gossiped batch of transactions, the administration whose node relayed it, and its
/// admission ticket ([`Mempool::queue_gossip`]).
type GossipBatch = (AdminCode, Vec<TxGossip>, u64);

/// Network callbacks of the node.
struct NodeInbound {
    shared: Arc<Shared>,
    /// Into [`admit_gossip`]: signatures are not verified on the network task.
    gossip_admission: mpsc::Sender<GossipBatch>,
}

/// Admits gossiped transactions off the network task: takes the batches waiting (up to
/// `MAX_GOSSIP_ADMISSION_BATCH` transactions), verifies their signatures in one batch
/// on the blocking pool, and goes on with the next; runs until the queue closes.
async fn admit_gossip(shared: Arc<Shared>, mut batches: mpsc::Receiver<GossipBatch>) {
    while let Some((code, first, mut ticket)) = batches.recv().await {
        let mut sources = vec![code; first.len()];
        let mut txs = first;
        while txs.len() < MAX_GOSSIP_ADMISSION_BATCH {
            match batches.try_recv() {
                Ok((code, more, next)) => {
                    sources.extend(std::iter::repeat_n(code, more.len()));
                    txs.extend(more);
                    ticket = next;
                }
                Err(_) => break,
            }
        }
        let admitting = shared.clone();
        // Reports of equivocation are refused unless their evidence verifies.
        let results =
            tokio::task::spawn_blocking(move || crate::evidence::submit_screened(&admitting, txs))
                .await;
        shared.mempool().gossip_admitted(ticket);
        let results = match results {
            Ok(results) => results,
            Err(e) => {
                tracing::error!("admission of gossiped transactions failed: {e}");
                continue;
            }
        };
        for (result, code) in results.into_iter().zip(&sources) {
            if let Err(e) = result {
                if !matches!(e, crate::mempool::AdmissionError::Duplicate) {
                    tracing::debug!(administration = %code, "gossiped transaction refused: {e}");
                }
                shared.metrics.reject(e.reason());
            }
        }
    }
}

impl Inbound for NodeInbound {
    fn consensus(&self, from: ValidatorIndex, message: Message) {
        if self
            .shared
            .driver
            .try_send(DriverEvent::Consensus { from, message })
            .is_err()
        {
            self.shared.metrics.reject("driver_queue_full");
        }
    }

    fn transactions(&self, from: &Member, batch: Vec<TxGossip>) {
        let queued = self.shared.mempool().queue_gossip(|ticket| {
            self.gossip_admission
                .try_send((from.code.clone(), batch, ticket))
                .is_ok()
        });
        if !queued {
            self.shared.metrics.reject("tx_admission_queue_full");
        }
    }

    fn request(&self, from: &Member, request: SyncRequest) -> Reply {
        if !matches!(
            request,
            SyncRequest::DeliverKeys { .. } | SyncRequest::GetCiphertexts { .. }
        ) {
            return Reply::Now(answer(&self.shared, from, request));
        }
        // Opening delivered keys (HPKE, the payload checks against their commitments)
        // and their synced vault write, and reading many ciphertexts, run off the
        // network task.
        let (reply, later) = oneshot::channel();
        let (shared, from) = (self.shared.clone(), from.clone());
        tokio::task::spawn_blocking(move || {
            let _ = reply.send(answer(&shared, &from, request));
        });
        Reply::Later(later)
    }

    fn connected(&self, _member: &Member) {
        let _ = self.shared.driver.try_send(DriverEvent::SyncTick);
    }
}

/// The answer to a member's sync request (catch-up blocks, a ciphertext, a block,
/// delivered document keys).
fn answer(shared: &Arc<Shared>, from: &Member, request: SyncRequest) -> SyncResponse {
    match request {
        SyncRequest::GetBlocks { from_height, max } => {
            let max = max.min(MAX_BLOCKS_PER_RESPONSE);
            let head = shared.head().height;
            let mut blocks = Vec::new();
            let mut bytes = 0usize;
            let mut height = from_height.max(1);
            while height <= head
                && (blocks.len() as u32) < max
                && bytes < p2p::MAX_RESPONSE_BYTES / 2
            {
                match shared.store.block(height) {
                    Ok(Some(b)) => {
                        bytes += b.block.payload.len() + 1024;
                        blocks.push(b);
                    }
                    _ => break,
                }
                height += 1;
            }
            SyncResponse::Blocks(blocks)
        }
        SyncRequest::GetBlock { digest } => {
            if let Some(b) = shared.recent_blocks().get(&digest).cloned() {
                return SyncResponse::Block(Some(b));
            }
            let block = shared
                .store
                .height_of(&digest)
                .ok()
                .flatten()
                .and_then(|h| shared.store.block(h).ok().flatten())
                .map(|s| s.block);
            SyncResponse::Block(block)
        }
        SyncRequest::GetCiphertexts { hashes } => {
            if hashes.len() > p2p::MAX_CIPHERTEXTS_PER_REQUEST {
                shared.metrics.reject("oversized_request");
                return SyncResponse::Nack(format!(
                    "{} ciphertexts asked, at most {}",
                    hashes.len(),
                    p2p::MAX_CIPHERTEXTS_PER_REQUEST
                ));
            }
            let mut bytes = 0usize;
            let found = hashes
                .iter()
                .map(|hash| {
                    if bytes >= p2p::MAX_RESPONSE_BYTES / 2 {
                        return None;
                    }
                    let ct = shared
                        .mempool()
                        .ciphertext(hash)
                        .or_else(|| shared.store.payload(hash).ok().flatten())?;
                    bytes += ct.len() + 16;
                    Some(ct)
                })
                .collect();
            SyncResponse::Ciphertexts(found)
        }
        SyncRequest::DeliverKeys { versions, wrapped } => {
            match receive_key_batch(shared, from, &versions, &wrapped) {
                Ok(receipts) => {
                    for ((document, version), receipt) in versions.iter().zip(&receipts) {
                        match receipt {
                            KeyReceipt::Stored => {
                                shared.metrics.keys_received.inc();
                                tracing::info!(%document, version, issuer = %from.code, "document keys received");
                            }
                            KeyReceipt::Refused(reason) => {
                                shared.metrics.reject("key_delivery_refused");
                                if crate::delivery::reason_is_not_ready(reason) {
                                    // Expected while this node catches up; retried soon.
                                    tracing::debug!(%document, version, from = %from.code, "key delivery refused: {reason}");
                                } else {
                                    tracing::warn!(%document, version, from = %from.code, "key delivery refused: {reason}");
                                }
                            }
                        }
                    }
                    SyncResponse::KeyReceipts(receipts)
                }
                Err(reason) => {
                    shared.metrics.reject("key_delivery_refused");
                    tracing::warn!(from = %from.code, versions = versions.len(), "key batch refused: {reason}");
                    SyncResponse::Nack(reason)
                }
            }
        }
    }
}

/// Accepts a batch of delivered document keys: the wrap must open with this node's
/// encryption key for exactly `versions` (else the whole batch is refused, `Err`); then
/// each version's keys are taken only from the issuer's node for a version addressed to
/// us, or from the node of an administration whose `provide` answer to a TFA request
/// granted us that version, and only if they open the ciphertext and match the
/// commitment on the ledger. The accepted keys are made durable in one vault batch.
pub(crate) fn receive_key_batch(
    shared: &Arc<Shared>,
    from: &Member,
    versions: &[(carnet_contracts::DocumentId, u32)],
    wrapped: &carnet_contracts::envelope::WrappedKeys,
) -> Result<Vec<KeyReceipt>, String> {
    let keys = unwrap_key_batch(versions, wrapped, shared.encryption_secret())
        .map_err(|e| e.to_string())?;
    let mut receipts = Vec::with_capacity(versions.len());
    let mut accepted = Vec::new();
    for (&(document, version), keys) in versions.iter().zip(keys) {
        match check_delivered_keys(shared, from, document, version, &keys) {
            Ok(()) => {
                receipts.push(KeyReceipt::Stored);
                accepted.push((receipts.len() - 1, (document, version, keys)));
            }
            Err(reason) => receipts.push(KeyReceipt::Refused(reason)),
        }
    }
    if accepted.is_empty() {
        return Ok(receipts);
    }
    // Under the erasure lock: an erasure final meanwhile refuses the keys.
    let _guard = crate::erasure::KEY_LOCK
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut to_store = Vec::with_capacity(accepted.len());
    for (index, entry) in accepted {
        match ledger::document_version(&shared.store, &entry.0, entry.1) {
            Ok(Some(r)) if r.status != carnet_contracts::DocumentStatus::Erased => {
                to_store.push(entry)
            }
            _ => receipts[index] = KeyReceipt::Refused("the document is erased".into()),
        }
    }
    if let Err(e) = shared.vault.put_batch(&to_store) {
        crate::storage::fatal("storing received document keys in the vault", &e);
    }
    Ok(receipts)
}

/// Whether delivered keys of one version may be kept: sender, status, and that they
/// open the ciphertext held here to the payload the ledger's commitment names.
fn check_delivered_keys(
    shared: &Arc<Shared>,
    from: &Member,
    document: carnet_contracts::DocumentId,
    version: u32,
    keys: &carnet_contracts::envelope::DocumentKeys,
) -> Result<(), String> {
    let record = ledger::document_version(&shared.store, &document, version)
        .map_err(|e| e.to_string())?
        .ok_or("document not final here yet")?;
    let addressed = record.issuer == from.code && record.recipients.contains(&shared.admin);
    if !addressed {
        let granted = ledger::access_grants(&shared.store, &document, &shared.admin)
            .map_err(|e| e.to_string())?
            .iter()
            .any(|g| g.granted_by == from.code && version <= g.up_to_version);
        if !granted {
            return Err(format!(
                "{} neither issued version {version} to this administration nor granted it access",
                from.code
            ));
        }
    }
    if record.status == carnet_contracts::DocumentStatus::Erased {
        return Err("the document is erased".into());
    }
    let Some(ciphertext) = shared
        .store
        .payload(&record.ciphertext_hash)
        .map_err(|e| e.to_string())?
    else {
        shared.ciphertext_wants.want(record.ciphertext_hash);
        return Err("ciphertext not here yet".into());
    };
    let mut payload = open_and_check(
        &ciphertext,
        keys,
        &document,
        version,
        record.kind,
        &record.commitment,
    )
    .map_err(|e| e.to_string())?;
    payload.zeroize();
    Ok(())
}

/// Applies genesis to a new store, or checks that an existing store belongs to this
/// genesis and is consistent (head block, index and state agree). Returns the head.
pub fn prepare_store(store: &Store, genesis: &Genesis) -> Result<Head, StartError> {
    let chain_id = genesis.chain_id.clone();
    let marker = blake3::hash(&crate::storage::encode(genesis))
        .as_bytes()
        .to_vec();
    // Apply genesis once; afterwards the store must belong to this genesis.
    let head = match (store.head()?, store.genesis_marker()?) {
        (None, _) => {
            let executed = ledger::genesis(store, genesis)
                .map_err(|e| StartError::Other(format!("genesis: {e}")))?;
            let head = Head {
                height: 0,
                digest: Block::genesis(chain_id.as_bytes()).digest(),
                view: 0,
                app_hash: executed.app_hash,
                time_ms: genesis.genesis_time_ms,
            };
            store.commit_genesis(&marker, &executed.changes, &head)?;
            tracing::info!(chain_id, "genesis applied");
            head
        }
        (Some(head), Some(m)) if m == marker => head,
        (Some(_), _) => {
            return Err(StorageError::WrongGenesis(
                "genesis.json differs from the one this store was created with".into(),
            )
            .into())
        }
    };
    let state_hash = ledger::app_hash(store).map_err(|e| StorageError::Corrupted(e.to_string()))?;
    store.check_consistency(&head, state_hash)?;
    tracing::info!(height = head.height, app_hash = %hex::encode(head.app_hash), "store consistent");

    Ok(head)
}

/// The validator key from `validator.key` or the PKCS#11 token, with its public key.
/// Refuses a key that differs from `expected` (the key genesis or the ledger names for
/// this administration, when it names one).
fn validator_signer(
    home: &NodeHome,
    expected: Option<&carnet_contracts::PublicKey>,
) -> Result<(ValidatorSigner, [u8; 32]), StartError> {
    let (signer, public, source) = match (&home.validator_key, home.config.validator.key) {
        (Some(key), crate::config::ValidatorKeySource::File) => (
            ValidatorSigner::File(Box::new(Ed25519Signer::new(0, key.clone()))),
            key.verifying_key().to_bytes(),
            "validator.key".to_string(),
        ),
        _ => {
            let token = home.pkcs11().ok_or_else(|| {
                StartError::Other(
                    "[validator] key = \"pkcs11\" needs the [vault] token settings".into(),
                )
            })?;
            let label = home.config.validator.label();
            let signer = Pkcs11Signer::generate_or_load(&token, label, 0)
                .map_err(|e| StartError::Other(format!("validator key on the token: {}", e.0)))?;
            let public = signer.public_key().to_bytes();
            tracing::info!(label, "validator key on PKCS#11 token");
            (
                ValidatorSigner::Hsm(Box::new(signer)),
                public,
                format!("validator key {label:?} on token {:?}", token.token_label),
            )
        }
    };
    if let Some(expected) = expected {
        if public != expected.0 {
            return Err(StartError::Other(format!(
                "{source} is {}, but the ledger names {} for this administration; refusing to start",
                hex::encode(public),
                hex::encode(expected.0)
            )));
        }
    }
    Ok((signer, public))
}

/// Starts the node in `home` and runs until the process ends.
pub async fn run(home: NodeHome) -> Result<(), StartError> {
    let store = Store::open(&home.data_dir())?;
    let genesis = home.genesis.clone();
    let chain_id = genesis.chain_id.clone();
    let head = prepare_store(&store, &genesis)?;

    // The consensus epoch of the head: genesis validators, or the set recorded when
    // the epoch started (ADR 0011).
    let epoch = crate::epochs::current(&store, &genesis, head.height, || {
        ledger::administrations(&store).map_err(|e| e.to_string())
    })
    .map_err(|e| StartError::Other(format!("consensus epoch: {e}")))?;
    let admin = AdminCode(home.config.administration.clone());
    // This administration's validator key as the ledger knows it (none for a node whose
    // admission it has not seen yet: checked when an epoch names it).
    let on_ledger = ledger::administrations(&store)
        .map_err(|e| StartError::Other(format!("reading the members: {e}")))?
        .into_iter()
        .find(|a| a.code == admin);

    let metrics = Arc::new(Metrics::new());
    metrics.height.set(head.height as i64);
    let (driver_tx, driver_rx) = mpsc::channel(DRIVER_QUEUE);
    let vault: Arc<dyn KeyVault> = match home.config.vault.backend {
        crate::config::VaultBackend::Rocksdb => Arc::new(RocksVault::new(store.clone())),
        crate::config::VaultBackend::Pkcs11 => {
            let token = home
                .pkcs11()
                .ok_or_else(|| StartError::Other("[vault] PKCS#11 settings incomplete".into()))?;
            let vault = crate::vault_pkcs11::Pkcs11Vault::open(&token)
                .map_err(|e| StartError::Other(format!("key vault: {e}")))?;
            tracing::info!(token = %token.token_label, "key vault on PKCS#11 token");
            Arc::new(vault)
        }
    };
    // The node and encryption keys, checked against the ledger's record (genesis members
    // were checked against genesis when the home was loaded).
    if let Some(record) = &on_ledger {
        if record.node_key.0 != home.node_key.verifying_key().to_bytes() {
            return Err(StartError::Other(
                "node.key differs from this administration's record on the ledger".into(),
            ));
        }
        if record.encryption_key != x25519_dalek::PublicKey::from(&home.encryption_key).to_bytes() {
            return Err(StartError::Other(
                "encryption.key differs from this administration's record on the ledger".into(),
            ));
        }
    }
    // The validator key, checked against the ledger before anything is served.
    let (signer, validator_public) =
        validator_signer(&home, on_ledger.as_ref().map(|a| &a.validator_key))?;
    let metrics_epoch = epoch.epoch;
    let shared = Arc::new(Shared {
        admin: admin.clone(),
        chain_id: chain_id.clone(),
        genesis: genesis.clone(),
        epoch: RwLock::new(Arc::new(epoch)),
        store: store.clone(),
        vault,
        metrics: metrics.clone(),
        net_status: Arc::new(NetStatus::default()),
        mempool: Mutex::new(Mempool::new(
            chain_id.clone(),
            home.config.mempool.max_transactions,
            home.config.mempool.max_batch_transactions,
        )),
        net: OnceLock::new(),
        node_key: home.node_key.clone(),
        encryption_secret: Zeroizing::new(home.encryption_key.to_bytes()),
        ucr_keys: Mutex::new(HashMap::new()),
        agreements_at: Mutex::new(None),
        heads: watch::Sender::new(head.height),
        waiters: Mutex::new(HashMap::new()),
        head: Mutex::new(head.clone()),
        view: AtomicU64::new(0),
        recent_blocks: Mutex::new(HashMap::new()),
        driver: driver_tx.clone(),
        erasure_wake: tokio::sync::Notify::new(),
        ciphertext_wants: crate::fetch::Wants::default(),
    });

    // Erasures finalized before a stop are destroyed before anything is served.
    let destroyed = crate::erasure::destroy_pending(&store, shared.vault.as_ref())
        .map_err(|e| StartError::Other(format!("finishing pending erasures: {e}")))?;
    if destroyed > 0 {
        tracing::info!(destroyed, "pending erasures destroyed before serving");
    }

    // Network: allow exactly the active members of the committed ledger (the driver
    // follows later changes).
    let members = shared.ledger_members().map_err(StartError::Other)?;
    let mut allowed: Vec<&str> = members.values().map(|m| m.code.0.as_str()).collect();
    allowed.sort_unstable();
    tracing::info!(members = ?allowed, "network allow-list: the active members on the ledger");
    match &on_ledger {
        Some(a) if !a.active => tracing::error!(
            administration = %admin,
            "this administration is no longer a member: it was removed on the ledger; \
             the members' nodes refuse this node"
        ),
        Some(_) => {}
        None => tracing::warn!(
            administration = %admin,
            "this administration is not a member on this node's ledger (yet): the members' \
             nodes accept this node once its admission has taken effect on theirs, and it \
             then catches up"
        ),
    }
    let mut secret = home.node_key.to_bytes();
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| StartError::Other(format!("node key: {e}")))?;
    secret.zeroize();
    let listen = home
        .config
        .listen_p2p
        .parse()
        .map_err(|e| StartError::Other(format!("listen_p2p: {e}")))?;
    let peers = home
        .config
        .peers
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|e| StartError::Other(format!("peer `{p}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (gossip_admission, gossip_batches) = mpsc::channel(GOSSIP_ADMISSION_QUEUE);
    tokio::spawn(admit_gossip(shared.clone(), gossip_batches));
    let inbound = Arc::new(NodeInbound {
        shared: shared.clone(),
        gossip_admission,
    });
    let network = p2p::spawn(
        keypair,
        NetConfig {
            listen,
            peers,
            members,
        },
        inbound,
        metrics.clone(),
        shared.net_status.clone(),
    )
    .map_err(StartError::Other)?;
    let _ = shared.net.set(network);

    // API.
    let listener = tokio::net::TcpListener::bind(&home.config.listen_api)
        .await
        .map_err(|e| StartError::Other(format!("listen_api {}: {e}", home.config.listen_api)))?;
    tracing::info!(addr = %home.config.listen_api, "API listening");
    let app = api::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("API server stopped: {e}");
        }
    });

    delivery::spawn(shared.clone());
    crate::fetch::spawn(shared.clone());
    crate::erasure::spawn(shared.clone());

    // Consensus: a validator of the current epoch runs the engine; any other member
    // follows the chain by catch-up until an epoch names it.
    metrics.epoch.set(metrics_epoch as i64);
    let driver = Driver::new(
        shared.clone(),
        crate::driver::DriverConfig {
            signer: Arc::new(signer),
            validator_public,
            empty_block_interval_ms: home.config.consensus.empty_block_interval_ms,
            min_block_interval_ms: home.config.consensus.min_block_interval_ms,
            full_block_txs: home.config.consensus.full_block_txs,
            leader_timeout_ms: home.config.consensus.leader_timeout_ms,
            notarization_timeout_ms: home.config.consensus.notarization_timeout_ms,
            retry_timeout_ms: home.config.consensus.retry_timeout_ms,
            leader_skip_after_views: home.config.consensus.leader_skip_after_views,
        },
        driver_tx,
        head,
    );
    driver.run(driver_rx).await;
    Ok(())
}
