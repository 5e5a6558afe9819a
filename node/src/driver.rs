//! The consensus driver: owns the Simplex [`Engine`], feeds it network messages, timer
//! expiries and the application's answers, and carries out its outputs — persisting
//! safety records, broadcasting, building and verifying block bodies, executing and
//! committing finalized blocks, and catching up from peers.
//!
//! It must never send a vote before the safety record that precedes it is durably
//! written, never commit a block whose parent is not the current head, and never go on
//! after a failed durable write.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carnet_consensus::{
    verify_certificate, Block, Certificate, Config as EngineConfig, Digest, Engine, Height, Input,
    Message, Output, Restored, TimerKind, ValidatorIndex, View, VoteKind,
};
use carnet_contracts::block::{BlockBody, MAX_BLOCK_TXS};
use carnet_contracts::execute::TxEvent;
use carnet_contracts::governance::{ProposalKind, ProposalStatus};
use carnet_contracts::AdminCode;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::hsm_signer::{EpochSigner, ValidatorSigner};
use crate::node::{now_ms, Shared, TxOutcome};
use crate::p2p::{NetCommand, SyncRequest, SyncResponse};
use crate::storage::{fatal, BlockWrite, Head, StoredBlock, TxLocation};
use crate::{delivery, erasure, ledger};

/// Bound of the driver's event queue.
pub const DRIVER_QUEUE: usize = 8192;
/// Most recent unfinalized blocks remembered (proposals seen, for parent times and
/// `GetBlock`).
const MAX_RECENT_BLOCKS: usize = 1024;
/// A block time may run at most this far ahead of our clock.
const MAX_CLOCK_SKEW_MS: u64 = 5_000;
/// How long verification waits for a missing ciphertext.
const CIPHERTEXT_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long verification waits for the transactions gossiped before the proposal to
/// be admitted (then it verifies and fetches what is missing itself).
const GOSSIP_ADMISSION_WAIT: Duration = Duration::from_secs(1);
/// Catch-up: blocks per request, period of the check, and the stall that triggers it.
const SYNC_BATCH: u32 = 64;
const SYNC_PERIOD: Duration = Duration::from_secs(2);
const SYNC_STALL: Duration = Duration::from_secs(3);
/// A finalization this many views ahead of ours triggers catch-up at once.
const SYNC_VIEW_GAP: u64 = 8;
/// Most boundary blocks accepted as proof that an epoch's last block is final.
const MAX_BOUNDARY_BLOCKS: usize = 64;

/// What the driver needs to run an engine in every epoch that names this
/// administration.
pub struct DriverConfig {
    pub signer: Arc<ValidatorSigner>,
    /// Public key of `signer`; an epoch naming another key for this administration
    /// runs without this node as a validator (logged).
    pub validator_public: [u8; 32],
    pub empty_block_interval_ms: u64,
    /// See `[consensus] min_block_interval_ms` (config.rs).
    pub min_block_interval_ms: u64,
    /// See `[consensus] full_block_txs` (config.rs).
    pub full_block_txs: usize,
    pub leader_timeout_ms: u64,
    pub notarization_timeout_ms: u64,
    pub retry_timeout_ms: u64,
    /// See `[consensus] leader_skip_after_views` (config.rs).
    pub leader_skip_after_views: u64,
}

/// Everything the driver reacts to.
#[derive(Debug)]
pub enum DriverEvent {
    Consensus {
        from: ValidatorIndex,
        message: Message,
    },
    Timer {
        view: View,
        timer: TimerKind,
    },
    /// The empty-block interval for our proposal in `view` elapsed.
    ProposalDue {
        view: View,
    },
    /// New transactions entered the mempool.
    TxAdmitted,
    Verified {
        digest: Digest,
        valid: bool,
    },
    Fetched {
        block: Block,
    },
    SyncBlocks {
        blocks: Vec<StoredBlock>,
    },
    SyncFailed,
    SyncTick,
}

/// Time and transactions of a block we have seen but not finalized.
#[derive(Debug, Clone)]
struct RecentBlock {
    parent: Digest,
    height: u64,
    time_ms: u64,
    txs: Vec<[u8; 32]>,
}

pub struct Driver {
    shared: Arc<Shared>,
    /// The engine of the current epoch; `None` while this administration is not one of
    /// its validators (the node then follows the chain by catch-up only).
    engine: Option<Engine<EpochSigner>>,
    config: DriverConfig,
    events: mpsc::Sender<DriverEvent>,
    head: Head,
    empty_block_interval_ms: u64,
    /// (view, parent, height) we were asked to propose for.
    pending_proposal: Option<(View, Digest, u64)>,
    /// View whose proposal waits for its block interval (a `ProposalDue` is on its way).
    lingering: Option<View>,
    recent: HashMap<Digest, RecentBlock>,
    timers: HashMap<(View, TimerKind), AbortHandle>,
    last_progress: Instant,
    sync_in_flight: bool,
    /// Set while a sync response filled a whole batch: ask again at once.
    behind: bool,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("head", &self.head.height)
            .finish_non_exhaustive()
    }
}

impl Driver {
    pub fn new(
        shared: Arc<Shared>,
        config: DriverConfig,
        events: mpsc::Sender<DriverEvent>,
        head: Head,
    ) -> Self {
        Self {
            shared,
            engine: None,
            empty_block_interval_ms: config.empty_block_interval_ms,
            lingering: None,
            config,
            events,
            head,
            pending_proposal: None,
            recent: HashMap::new(),
            timers: HashMap::new(),
            last_progress: Instant::now(),
            sync_in_flight: false,
            behind: true,
        }
    }

    /// Runs until the event queue closes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<DriverEvent>) {
        // Restarting inside an epoch: the engine resumes from its safety records.
        self.start_engine(true);
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_PERIOD);
            loop {
                tick.tick().await;
                if events.send(DriverEvent::SyncTick).await.is_err() {
                    return;
                }
            }
        });
        while let Some(event) = rx.recv().await {
            self.handle(event);
            while self.head.height >= self.shared.epoch().last_height {
                self.next_epoch();
            }
        }
    }

    /// Creates and starts the engine of the current epoch if it names this
    /// administration with this node's validator key; otherwise runs without one.
    /// `restore_safety`: resume from the persisted safety records (a restart inside the
    /// epoch); at an epoch boundary they belong to the previous epoch and were cleared.
    fn start_engine(&mut self, restore_safety: bool) {
        for (_, handle) in self.timers.drain() {
            handle.abort();
        }
        self.pending_proposal = None;
        self.engine = None;
        let epoch = self.shared.epoch();
        let Some(index) = epoch.index_of(&self.shared.admin) else {
            tracing::info!(
                epoch = epoch.epoch,
                administration = %self.shared.admin,
                validators = ?epoch.admins,
                "not a validator of this epoch: following the chain by catch-up"
            );
            return;
        };
        if epoch.keys[usize::from(index)].0 != self.config.validator_public {
            tracing::error!(
                epoch = epoch.epoch,
                administration = %self.shared.admin,
                "the ledger names another validator key for this administration than this \
                 node's: not voting in this epoch"
            );
            return;
        }
        let last_finalized = if self.head.height == 0 {
            None
        } else {
            match self.shared.store.block(self.head.height) {
                Ok(Some(stored)) => Some((stored.block, stored.finalization)),
                Ok(None) => fatal("the head block is missing", &self.head.height),
                Err(e) => fatal("reading the head block", &e),
            }
        };
        let safety = if restore_safety {
            match self.shared.store.safety_records(0) {
                Ok(records) => records,
                Err(e) => fatal("reading the consensus safety records", &e),
            }
        } else {
            Vec::new()
        };
        let mut config = EngineConfig::new(epoch.namespace.clone(), epoch.validators.clone());
        config.leader_timeout_ms = self.config.leader_timeout_ms;
        config.notarization_timeout_ms = self.config.notarization_timeout_ms;
        config.retry_timeout_ms = self.config.retry_timeout_ms;
        config.leader_skip_after_views = self.config.leader_skip_after_views;
        config.max_block_bytes = crate::p2p::MAX_GOSSIP_BYTES - 64 * 1024;
        config.last_height = Some(epoch.last_height);
        let signer = EpochSigner::new(self.config.signer.clone(), index);
        let mut engine = Engine::new(
            config,
            signer,
            Restored {
                safety,
                last_finalized,
            },
        );
        tracing::info!(
            epoch = epoch.epoch,
            validator = index,
            administration = %self.shared.admin,
            validators = ?epoch.admins,
            heights = ?(epoch.first_height, epoch.last_height),
            "consensus starting"
        );
        let outputs = engine.start();
        self.engine = Some(engine);
        self.execute_outputs(outputs);
    }

    /// The head reached the last height of the epoch: derive the next epoch's set from
    /// the committed ledger, record it, forget this epoch's safety records (its engine
    /// never signs again) and start the next engine.
    fn next_epoch(&mut self) {
        let current = self.shared.epoch();
        let members = match ledger::administrations(&self.shared.store) {
            Ok(members) => members,
            Err(e) => fatal("reading the members at an epoch boundary", &e),
        };
        let next =
            match crate::epochs::from_members(&self.shared.genesis, current.epoch + 1, &members) {
                Ok(next) => next,
                Err(e) => fatal("deriving the next epoch's validator set", &e),
            };
        if let Err(e) = crate::epochs::persist(&self.shared.store, &next) {
            fatal("recording the next epoch's validator set", &e);
        }
        if let Err(e) = self.shared.store.clear_safety() {
            fatal("clearing the previous epoch's safety records", &e);
        }
        let changed = next.admins != current.admins || next.keys != current.keys;
        if changed {
            tracing::warn!(
                epoch = next.epoch,
                from_height = next.first_height,
                before = ?current.admins,
                after = ?next.admins,
                "the validator set changes with the new epoch"
            );
        } else {
            tracing::info!(
                epoch = next.epoch,
                from_height = next.first_height,
                "new epoch"
            );
        }
        self.shared.set_epoch(next);
        // The network maps members to their validator index of the new epoch.
        match self.shared.ledger_members() {
            Ok(members) => self.shared.net().set_members(members),
            Err(e) => fatal("reading the members at an epoch boundary", &e),
        }
        self.start_engine(false);
    }

    fn feed(&mut self, input: Input) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        match engine.handle(input) {
            Ok(outputs) => self.execute_outputs(outputs),
            Err(e) => {
                use carnet_consensus::ConsensusError as E;
                // Stale and duplicate inputs are normal with gossip; the rest are not.
                let reason = match e {
                    E::ViewTooOld { .. }
                    | E::ViewTooFarAhead { .. }
                    | E::ViewBehindWindow { .. } => "consensus_out_of_window",
                    E::DuplicateVote { .. } | E::UnexpectedBlock(_) => "consensus_duplicate",
                    E::InvalidSignature | E::UnknownSigner(_) => "consensus_bad_signature",
                    _ => "consensus_invalid",
                };
                self.shared.metrics.reject(reason);
                tracing::debug!("consensus input rejected: {e}");
            }
        }
    }

    fn handle(&mut self, event: DriverEvent) {
        match event {
            DriverEvent::Consensus { from, message } => {
                match &message {
                    Message::Proposal { block, .. } => self.remember(block),
                    // A peer finalized far beyond our view: fetch the chain rather than
                    // crawl view by view.
                    Message::Certificate(cert)
                        if cert.kind == VoteKind::Finalize
                            && self
                                .engine
                                .as_ref()
                                .is_none_or(|e| cert.view > e.view() + SYNC_VIEW_GAP) =>
                    {
                        self.behind = true;
                        self.request_sync();
                    }
                    _ => {}
                }
                self.feed(Input::Message { from, message });
            }
            DriverEvent::Timer { view, timer } => {
                self.timers.remove(&(view, timer));
                self.feed(Input::TimerFired { view, timer });
            }
            DriverEvent::ProposalDue { view } => {
                if matches!(self.pending_proposal, Some((v, _, _)) if v == view) {
                    self.propose();
                }
            }
            DriverEvent::TxAdmitted => {
                self.propose_when_due();
            }
            DriverEvent::Verified { digest, valid } => {
                self.feed(Input::BlockVerified { digest, valid });
            }
            DriverEvent::Fetched { block } => {
                self.remember(&block);
                self.feed(Input::BlockFetched { block });
            }
            DriverEvent::SyncBlocks { blocks } => {
                self.sync_in_flight = false;
                self.apply_sync(blocks);
            }
            DriverEvent::SyncFailed => {
                self.sync_in_flight = false;
            }
            DriverEvent::SyncTick => {
                if self.engine.is_none()
                    || self.behind
                    || self.last_progress.elapsed() >= SYNC_STALL
                {
                    self.request_sync();
                }
                let pruned = self.shared.mempool().prune_expired(now_ms());
                if pruned > 0 {
                    tracing::info!(pruned, "expired transactions dropped from the mempool");
                }
            }
        }
    }

    fn execute_outputs(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Persist(record) => {
                    // Synced write; the votes that follow in this batch wait for it.
                    if let Err(e) = self.shared.store.put_safety(&record) {
                        fatal("persisting a consensus safety record", &e);
                    }
                }
                Output::Broadcast(message) | Output::SendTo { message, .. } => {
                    if let Message::Proposal { block, .. } = &message {
                        self.remember(block);
                    }
                    // A faulty build may replace the message (see byzantine.rs).
                    #[cfg(feature = "byzantine")]
                    let messages = {
                        let (messages, extra_blocks) =
                            crate::byzantine::outgoing(message, &self.shared.namespace());
                        for block in &extra_blocks {
                            self.remember(block);
                        }
                        messages
                    };
                    #[cfg(not(feature = "byzantine"))]
                    let messages = [message];
                    for message in messages {
                        let bytes = crate::storage::encode(&message);
                        if !self
                            .shared
                            .net()
                            .try_send(NetCommand::PublishConsensus(bytes))
                        {
                            self.shared.metrics.reject("net_queue_full");
                        }
                    }
                }
                Output::SetTimer {
                    view,
                    timer,
                    after_ms,
                } => self.set_timer(view, timer, after_ms),
                Output::RequestProposal {
                    view,
                    parent,
                    height,
                } => {
                    self.pending_proposal = Some((view, parent, height));
                    if !self.propose_when_due() {
                        self.proposal_due_in(view, self.empty_block_interval_ms);
                    }
                }
                Output::VerifyBlock { block } => self.verify(block),
                Output::FetchBlock { digest } => self.fetch_block(digest),
                Output::Finalized {
                    block,
                    finalization,
                } => self.on_finalized(block, finalization),
                Output::Evidence(evidence) => {
                    self.shared.metrics.equivocations.inc();
                    let administration = self
                        .shared
                        .validator_admin(evidence.validator)
                        .map(|a| a.0)
                        .unwrap_or_default();
                    tracing::warn!(
                        validator = evidence.validator,
                        %administration,
                        view = evidence.first.view,
                        "EQUIVOCATION: validator signed two conflicting votes"
                    );
                    crate::evidence::report(&self.shared, &evidence);
                }
                Output::EnteredView { view } => {
                    self.shared.metrics.view.set(view as i64);
                    if self.engine.as_ref().is_some_and(|e| e.leader_skipped(view)) {
                        self.shared.metrics.leaders_skipped.inc();
                        tracing::debug!(view, "leader inactive: its view is skipped");
                    }
                    self.shared.set_view(view);
                    if matches!(self.pending_proposal, Some((v, _, _)) if v < view) {
                        self.pending_proposal = None;
                    }
                    self.timers.retain(|(v, _), handle| {
                        let keep = *v + 1 >= view;
                        if !keep {
                            handle.abort();
                        }
                        keep
                    });
                }
                Output::SignerFailed { view, kind, error } => {
                    tracing::error!(view, ?kind, "validator key refused to sign: {error}");
                }
            }
        }
    }

    fn set_timer(&mut self, view: View, timer: TimerKind, after_ms: u64) {
        if let Some(old) = self.timers.remove(&(view, timer)) {
            old.abort();
        }
        let events = self.events.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let _ = events.send(DriverEvent::Timer { view, timer }).await;
        });
        self.timers.insert((view, timer), handle.abort_handle());
    }

    fn remember(&mut self, block: &Block) {
        if block.height <= self.head.height || self.recent.contains_key(&block.digest()) {
            return;
        }
        let Ok(body) = BlockBody::decode(&block.payload) else {
            return;
        };
        if self.recent.len() >= MAX_RECENT_BLOCKS {
            // Forget the lowest heights first.
            if let Some(lowest) = self
                .recent
                .iter()
                .min_by_key(|(_, b)| b.height)
                .map(|(d, _)| *d)
            {
                self.recent.remove(&lowest);
                self.shared.recent_blocks().remove(&lowest);
            }
        }
        self.recent.insert(
            block.digest(),
            RecentBlock {
                parent: block.parent,
                height: block.height,
                time_ms: body.time_ms,
                txs: body.txs.iter().map(|t| t.hash()).collect(),
            },
        );
        self.shared
            .recent_blocks()
            .insert(block.digest(), block.clone());
    }

    /// Block time of `digest`, from the recent cache, the head or the store.
    fn time_of(&self, digest: &Digest) -> Option<u64> {
        if *digest == self.head.digest {
            return Some(self.head.time_ms);
        }
        if let Some(b) = self.recent.get(digest) {
            return Some(b.time_ms);
        }
        let height = self.shared.store.height_of(digest).ok()??;
        if height == 0 {
            return Some(self.shared.genesis.genesis_time_ms);
        }
        self.shared.store.block(height).ok()?.map(|b| b.time_ms)
    }

    /// Hashes of transactions in unfinalized ancestors of `parent` (not to be repeated).
    fn pending_ancestor_txs(&self, parent: &Digest) -> HashSet<[u8; 32]> {
        let mut out = HashSet::new();
        let mut cursor = *parent;
        for _ in 0..MAX_RECENT_BLOCKS {
            if cursor == self.head.digest {
                break;
            }
            let Some(b) = self.recent.get(&cursor) else {
                break;
            };
            out.extend(b.txs.iter().copied());
            cursor = b.parent;
        }
        out
    }

    /// How many transactions a block on `parent` could carry, counting up to `max`.
    fn proposable_txs(&self, parent: &Digest, max: usize) -> usize {
        let exclude = self.pending_ancestor_txs(parent);
        self.shared
            .mempool()
            .count_selectable(&exclude, now_ms(), max)
    }

    /// Adaptive block size: proposes the pending block now if it would be full enough
    /// ([`DriverConfig::full_block_txs`]) or its interval since the parent's block time
    /// has passed ([`DriverConfig::min_block_interval_ms`]); otherwise lets one
    /// `ProposalDue` come when the interval ends (the transactions arriving meanwhile
    /// join the block). Never waits without a transaction to propose; returns whether
    /// there was one (a pending proposal with none waits for `TxAdmitted` or the empty
    /// block interval).
    fn propose_when_due(&mut self) -> bool {
        let Some((view, parent, _)) = self.pending_proposal else {
            return false;
        };
        let full = self.config.full_block_txs.max(1);
        let count = self.proposable_txs(&parent, full);
        if count == 0 {
            return false;
        }
        let due_ms = self
            .time_of(&parent)
            .unwrap_or(self.head.time_ms)
            .saturating_add(self.config.min_block_interval_ms);
        let now = now_ms();
        if count >= full || now >= due_ms {
            self.propose();
        } else if self.lingering != Some(view) {
            self.lingering = Some(view);
            // The parent's time is its proposer's clock: never wait longer than the
            // interval.
            self.proposal_due_in(view, (due_ms - now).min(self.config.min_block_interval_ms));
        }
        true
    }

    /// Sends `ProposalDue { view }` to the driver after `after_ms`.
    fn proposal_due_in(&self, view: View, after_ms: u64) {
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let _ = events.send(DriverEvent::ProposalDue { view }).await;
        });
    }

    fn propose(&mut self) {
        let Some((view, parent, _height)) = self.pending_proposal.take() else {
            return;
        };
        let parent_time = self.time_of(&parent).unwrap_or(self.head.time_ms);
        let time_ms = now_ms().max(parent_time + 1);
        let exclude = self.pending_ancestor_txs(&parent);
        let txs = self
            .shared
            .mempool()
            .select(&exclude, time_ms, MAX_BLOCK_TXS);
        let body = BlockBody::new(
            time_ms,
            self.shared.admin.clone(),
            txs,
            Some((self.head.height, self.head.app_hash)),
        );
        tracing::debug!(view, txs = body.txs.len(), "proposing");
        // A faulty build may propose an invalid payload instead (see byzantine.rs).
        #[cfg(feature = "byzantine")]
        let payload = crate::byzantine::proposal_payload(body, view, &self.shared.epoch().admins);
        #[cfg(not(feature = "byzantine"))]
        let payload = body.encode();
        self.feed(Input::ProposalReady { view, payload });
    }

    /// Checks a proposed block's payload off the driver task; answers with `Verified`.
    fn verify(&mut self, block: Block) {
        self.remember(&block);
        // After an epoch change, reports of the old epoch can no longer be verified.
        crate::evidence::purge_stale_reports(&self.shared);
        let digest = block.digest();
        let parent_time = self.time_of(&block.parent).unwrap_or(self.head.time_ms);
        let leader = self.shared.epoch().validators.leader(block.view);
        let expected_proposer = self.shared.validator_admin(leader);
        let shared = self.shared.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let valid = match check_payload(&shared, &block, parent_time, expected_proposer).await {
                Ok(()) => true,
                Err(reason) => {
                    shared.metrics.reject("invalid_block");
                    tracing::warn!(
                        height = block.height,
                        view = block.view,
                        "rejecting proposed block: {reason}"
                    );
                    false
                }
            };
            let _ = events.send(DriverEvent::Verified { digest, valid }).await;
        });
    }

    fn fetch_block(&mut self, digest: Digest) {
        if let Some(block) = self.shared.recent_blocks().get(&digest).cloned() {
            let _ = self.events.try_send(DriverEvent::Fetched { block });
            return;
        }
        let shared = self.shared.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                let response = shared
                    .net()
                    .request(
                        None,
                        SyncRequest::GetBlock { digest },
                        Duration::from_secs(5),
                    )
                    .await;
                if let Ok(SyncResponse::Block(Some(block))) = response {
                    if block.digest() == digest {
                        let _ = events.send(DriverEvent::Fetched { block }).await;
                        return;
                    }
                    shared.metrics.reject("fetched_block_mismatch");
                }
            }
        });
    }

    fn on_finalized(&mut self, block: Block, finalization: Certificate) {
        if block.height <= self.head.height {
            // Already committed (e.g. through catch-up); it must be the same block.
            match self.shared.store.block(block.height) {
                Ok(Some(stored)) if stored.block.digest() == block.digest() => {}
                Ok(_) => fatal(
                    "consensus finalized a block different from the stored one",
                    &format!("height {}", block.height),
                ),
                Err(e) => fatal("reading a stored block", &e),
            }
            return;
        }
        if block.height != self.head.height + 1 || block.parent != self.head.digest {
            tracing::warn!(
                height = block.height,
                head = self.head.height,
                "finalized block does not extend the head; catching up"
            );
            self.behind = true;
            self.request_sync();
            return;
        }
        let body = match BlockBody::decode(&block.payload) {
            Ok(body) => body,
            Err(e) => fatal("a finalized block does not decode", &e),
        };
        // The epoch's last block may be final through boundary blocks: keep them as
        // its proof for nodes that catch up.
        let boundary = match &self.engine {
            Some(engine) if finalization.digest != Some(block.digest()) => {
                engine.boundary_blocks().to_vec()
            }
            _ => Vec::new(),
        };
        self.commit(block, finalization, body, boundary);
    }

    /// Executes a finalized block and writes it with everything it changes in one batch.
    fn commit(
        &mut self,
        block: Block,
        finalization: Certificate,
        body: BlockBody,
        boundary: Vec<Block>,
    ) {
        let height = block.height;
        let mut executed = match ledger::execute(&self.shared.store, height, &body) {
            Ok(executed) => executed,
            Err(e) => fatal("executing a finalized block", &e),
        };
        let tx_hashes: Vec<[u8; 32]> = body.txs.iter().map(|t| t.hash()).collect();
        let ciphertexts = self.shared.mempool().remove(&tx_hashes);
        let ciphertexts: HashMap<[u8; 32], Vec<u8>> = ciphertexts
            .into_iter()
            .filter_map(|(h, c)| c.map(|c| (h, c)))
            .collect();
        // Key deliveries this node owes (new documents, new versions, TFA `provide`
        // answers), read before `block_write` takes the state changes.
        let deliveries = match ledger::key_deliveries(&body, &executed, &self.shared.node_public())
        {
            Ok(deliveries) => deliveries,
            Err(e) => fatal("reading the key deliveries of a finalized block", &e),
        };
        let mut write = block_write(block.clone(), finalization, &body, &mut executed);
        if let Some(stored) = write.stored.as_mut() {
            stored.boundary = boundary;
        }
        write.outbox.extend(
            deliveries
                .iter()
                .map(|d| delivery::outbox_entry(&d.document, d.version, &d.recipient)),
        );
        let mut missing = Vec::new();
        for (index, (tx, hash)) in body.txs.iter().zip(&tx_hashes).enumerate() {
            write.tx_locations.push((
                *hash,
                TxLocation {
                    height,
                    index: index as u32,
                },
            ));
            if let Some(sub) = tx.tx.action.document_submission() {
                if let Some(ct) = ciphertexts.get(hash) {
                    write.payloads.push((sub.ciphertext_hash, ct.clone()));
                } else if !matches!(self.shared.store.payload(&sub.ciphertext_hash), Ok(Some(_))) {
                    missing.push(sub.ciphertext_hash);
                }
            }
        }
        let head = match self.shared.store.commit_block(write) {
            Ok(head) => head,
            Err(e) => fatal("writing a finalized block", &e),
        };
        self.head = head.clone();
        self.last_progress = Instant::now();
        self.recent.retain(|_, b| b.height > height);
        self.shared.recent_blocks().retain(|_, b| b.height > height);
        self.shared.set_head(head);
        let m = &self.shared.metrics;
        m.blocks_finalized.inc();
        m.height.set(height as i64);
        m.txs_committed.inc_by(body.txs.len() as u64);
        m.mempool_size.set(self.shared.mempool().len() as i64);
        for (index, hash) in tx_hashes.iter().enumerate() {
            let result = executed
                .receipts
                .get(index)
                .cloned()
                .unwrap_or(Err("no receipt".into()));
            self.shared.notify(hash, TxOutcome { height, result });
        }
        crate::fetch::want_missing(&self.shared, missing);
        if !executed.erasures.is_empty() {
            tracing::info!(
                height,
                count = executed.erasures.len(),
                "block erases documents"
            );
            self.shared.erasure_wake.notify_one();
        }
        self.follow_membership(height, &executed);
        tracing::info!(
            height,
            view = block.view,
            txs = body.txs.len(),
            "block finalized"
        );
    }

    /// After a committed block: logs membership proposals that passed in it, and when it
    /// admitted or removed members, hands the network the new allow-list (a removed
    /// member's node is disconnected and refused). Logs loudly when this node's own
    /// administration is the one removed.
    fn follow_membership(&self, height: u64, executed: &ledger::Executed) {
        let own = &self.shared.admin;
        for event in executed.events.iter().flatten() {
            let (TxEvent::VoteCast(proposal) | TxEvent::ProposalCreated(proposal)) = event else {
                continue;
            };
            let ProposalStatus::Passed { effective_height } = proposal.status else {
                continue;
            };
            match &proposal.kind {
                ProposalKind::RemoveMember(code) if code == own => tracing::error!(
                    height,
                    effective_height,
                    proposal = %proposal.id,
                    administration = %own,
                    "this administration is no longer a member from height {effective_height}: \
                     the proposal removing it passed; the members' nodes will refuse this node"
                ),
                ProposalKind::RemoveMember(code) => tracing::warn!(
                    height,
                    effective_height,
                    proposal = %proposal.id,
                    administration = %code,
                    "membership removal passed"
                ),
                ProposalKind::AddMember(admin) => tracing::warn!(
                    height,
                    effective_height,
                    proposal = %proposal.id,
                    administration = %admin.code,
                    "membership admission passed"
                ),
            }
        }
        if executed.members_added.is_empty() && executed.members_removed.is_empty() {
            return;
        }
        tracing::warn!(
            height,
            added = ?executed.members_added,
            removed = ?executed.members_removed,
            "membership changed on the ledger; the network follows"
        );
        if executed.members_removed.contains(own) {
            tracing::error!(
                height,
                administration = %own,
                "this administration is no longer a member: removed on the ledger at height \
                 {height}; the members' nodes refuse this node from now on"
            );
        }
        match self.shared.ledger_members() {
            Ok(members) => self.shared.net().set_members(members),
            Err(e) => fatal("reading the members after a membership change", &e),
        }
    }

    fn request_sync(&mut self) {
        self.request_sync_from(self.head.height + 1);
    }

    /// Asks a peer for up to [`SYNC_BATCH`] finalized blocks from `from_height` (the
    /// head's successor, or the one after a batch being committed: catch-up keeps one
    /// request ahead). At most one request is out at a time.
    fn request_sync_from(&mut self, from_height: Height) {
        if self.sync_in_flight {
            return;
        }
        self.sync_in_flight = true;
        let shared = self.shared.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let response = shared
                .net()
                .request(
                    None,
                    SyncRequest::GetBlocks {
                        from_height,
                        max: SYNC_BATCH,
                    },
                    Duration::from_secs(10),
                )
                .await;
            let event = match response {
                Ok(SyncResponse::Blocks(blocks)) => DriverEvent::SyncBlocks { blocks },
                Ok(_) => DriverEvent::SyncFailed,
                Err(e) => {
                    tracing::debug!("catch-up request failed: {e}");
                    DriverEvent::SyncFailed
                }
            };
            let _ = events.send(event).await;
        });
    }

    /// Verifies a batch of finalized blocks from a peer (parent links and a finalization
    /// certificate from the genesis validator set), executes and commits them, then
    /// tells the engine.
    fn apply_sync(&mut self, mut blocks: Vec<StoredBlock>) {
        let full_batch = blocks.len() as u32 >= SYNC_BATCH;
        // A batch asked for ahead may overlap blocks the engine finalized meanwhile:
        // those are here already. One that no longer starts at the head's successor
        // (the batch before it stopped short) is dropped; the head is asked for again.
        let known = blocks
            .iter()
            .take_while(|b| b.block.height <= self.head.height)
            .count();
        blocks.drain(..known);
        if blocks
            .first()
            .is_some_and(|b| b.block.height != self.head.height + 1)
        {
            if self.behind {
                self.request_sync();
            }
            return;
        }
        let Some(last) = verified_prefix(&self.shared, &self.head, &blocks) else {
            if !blocks.is_empty() {
                self.shared.metrics.reject("bad_sync_blocks");
                tracing::warn!("catch-up blocks from a peer failed verification");
            }
            self.behind = false;
            return;
        };
        // Catch-up keeps one request ahead: the next batch travels (and the peer reads
        // it from its store) while this one executes. Not past the epoch's last block,
        // whose successors verify only under the next epoch's set.
        let verified_to = self.head.height + last as u64 + 1;
        if full_batch && last + 1 == blocks.len() && verified_to < self.shared.epoch().last_height {
            self.request_sync_from(verified_to + 1);
        }
        for stored in blocks.into_iter().take(last + 1) {
            let body = match BlockBody::decode(&stored.block.payload) {
                Ok(b) => b,
                Err(e) => {
                    self.shared.metrics.reject("bad_sync_blocks");
                    tracing::warn!("certified block does not decode: {e}");
                    return;
                }
            };
            self.commit(stored.block, stored.finalization, body, stored.boundary);
        }
        tracing::info!(height = self.head.height, "caught up to height");
        // At the epoch's last block the next epoch's engine starts from it (see `run`).
        if self.head.height < self.shared.epoch().last_height {
            let (block, finalization) = match self.shared.store.block(self.head.height) {
                Ok(Some(s)) => (s.block, s.finalization),
                _ => return,
            };
            self.feed(Input::SyncFinalized {
                block,
                finalization,
            });
        }
        self.behind = full_batch;
        if self.behind {
            self.request_sync();
        }
    }
}

/// The index of the last block in `blocks` that is proven final: the chain links to
/// `head`, and a finalization certificate for that block verifies against the validator
/// set. `None` if nothing in the batch is proven.
fn verified_prefix(shared: &Shared, head: &Head, blocks: &[StoredBlock]) -> Option<usize> {
    let epoch = shared.epoch();
    let mut expected_parent = head.digest;
    let mut digests = Vec::with_capacity(blocks.len());
    for (stored, height) in blocks.iter().zip(head.height + 1..) {
        // Blocks of the next epoch are verified once this one's last block is in.
        if stored.block.parent != expected_parent
            || stored.block.height != height
            || height > epoch.last_height
        {
            break;
        }
        expected_parent = stored.block.digest();
        digests.push(expected_parent);
    }
    (0..digests.len()).rev().find(|&i| {
        let stored = &blocks[i];
        let cert = &stored.finalization;
        let certified = if cert.digest == Some(digests[i]) {
            cert.view == stored.block.view
        } else {
            stored.block.height == epoch.last_height
                && boundary_proves(&stored.block, &stored.boundary, cert)
        };
        certified
            && cert.kind == VoteKind::Finalize
            && verify_certificate(&epoch.validators, &epoch.namespace, cert).is_ok()
    })
}

/// Whether `boundary` is a chain of empty blocks from `last` (an epoch's last block)
/// up to the block `cert` names: then `cert` finalizes `last` (ADR 0011).
fn boundary_proves(last: &Block, boundary: &[Block], cert: &Certificate) -> bool {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_BLOCKS {
        return false;
    }
    let mut parent = last;
    for block in boundary {
        if block.parent != parent.digest()
            || block.height != parent.height + 1
            || block.view <= parent.view
            || !block.payload.is_empty()
        {
            return false;
        }
        parent = block;
    }
    cert.digest == Some(parent.digest()) && cert.view == parent.view
}

/// Checks a proposed body off the driver task. Signatures are verified once per node:
/// the transactions the mempool holds with the same signature bytes were verified on
/// admission; only the others are verified here (one batch).
async fn check_payload(
    shared: &Arc<Shared>,
    block: &Block,
    parent_time_ms: u64,
    expected_proposer: Option<AdminCode>,
) -> Result<(), String> {
    let body = BlockBody::decode(&block.payload).map_err(|e| e.to_string())?;
    // Transactions gossiped before the proposal may still be in the admission queue:
    // let them reach the mempool first, so their signatures count as verified and their
    // ciphertexts as held.
    let (ticket, mut admitted) = shared.mempool().gossip_barrier();
    let _ = tokio::time::timeout(GOSSIP_ADMISSION_WAIT, admitted.wait_for(|t| *t >= ticket)).await;
    let pool = shared.clone();
    let (body, in_mempool) = tokio::task::spawn_blocking(move || {
        let mut in_mempool = Vec::new();
        body.validate_structure_with(|hashes, txs| {
            in_mempool = pool.mempool().verified_mask(hashes, txs);
            in_mempool.clone()
        })
        .map(|()| (body, in_mempool))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if body.time_ms < parent_time_ms {
        return Err(format!(
            "block time {} is before its parent's {}",
            body.time_ms, parent_time_ms
        ));
    }
    if body.time_ms > now_ms() + MAX_CLOCK_SKEW_MS {
        return Err(format!("block time {} is in the future", body.time_ms));
    }
    if let Some(expected) = expected_proposer {
        if body.proposer != expected {
            return Err(format!(
                "proposer {} is not the view's leader {expected}",
                body.proposer
            ));
        }
    }
    let mut missing = Vec::new();
    for (index, tx) in body.txs.iter().enumerate() {
        if tx.tx.chain_id != shared.chain_id {
            return Err("transaction for another chain".into());
        }
        crate::evidence::check_tx(shared, &tx.tx)
            .map_err(|e| format!("transaction {index}: {e}"))?;
        if let Some(sub) = tx.tx.action.document_submission() {
            let hash = sub.ciphertext_hash;
            // A pooled document transaction holds its checked ciphertext.
            let local = in_mempool.get(index).copied().unwrap_or(false)
                || shared.mempool().contains(&tx.hash())
                || matches!(shared.store.payload_exists(&hash), Ok(true));
            if !local {
                missing.push(hash);
            }
        }
    }
    // Ciphertexts whose gossip did not reach us (dropped under overload, or late): all
    // of them at once, first from the proposer, which must hold them. One round trip
    // per 256, not one per document: a big block must not outlast the view timeout.
    if !missing.is_empty() {
        let proposer = crate::ledger::administration(&shared.store, &body.proposer)
            .ok()
            .flatten()
            .and_then(|a| crate::config::peer_id_of(&a.node_key.0));
        crate::fetch::fetch_now(shared, proposer, missing, CIPHERTEXT_FETCH_TIMEOUT).await?;
    }
    Ok(())
}

/// The batch of a finalized, executed block: its record, the state changes (taken
/// out of `executed`) and its erasures as pending — recorded in the block's batch,
/// worked off by `erasure::spawn` (and at start, before serving). Decryption is
/// refused from this block on.
pub(crate) fn block_write(
    block: Block,
    finalization: Certificate,
    body: &BlockBody,
    executed: &mut ledger::Executed,
) -> BlockWrite {
    let height = block.height;
    let mut write = BlockWrite {
        stored: Some(StoredBlock {
            boundary: Vec::new(),
            block,
            finalization,
            app_hash: executed.app_hash,
            time_ms: body.time_ms,
            tx_count: body.txs.len() as u32,
        }),
        state: std::mem::take(&mut executed.changes),
        ..BlockWrite::default()
    };
    for (document, versions) in &executed.erasures {
        write
            .meta
            .push(erasure::pending_entry(document, *versions, height));
    }
    write
}
