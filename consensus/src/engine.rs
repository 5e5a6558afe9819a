//! The Simplex state machine: `handle(input) -> outputs`. It performs no IO, reads no
//! clock and draws no randomness; it must never sign a vote whose [`SafetyRecord`] it has
//! not emitted (as [`Output::Persist`]) earlier in the same output batch.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ConsensusError, SignerError};
use crate::rules::{may_finalize, may_notarize, may_nullify};
use crate::types::{
    vote_message, Block, Certificate, Digest, Equivocation, Height, Message, SafetyRecord,
    SignedVote, ValidatorIndex, View, VoteKind, MAX_CERTIFICATE_REQUEST,
};
use crate::validators::{
    assemble_certificate, check_vote_shape, verify_certificate, verify_certificate_skipping,
    verify_vote, Signer, ValidatorSet,
};

/// Static parameters of one engine instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// Domain separator prepended to every signed vote (one per network).
    pub namespace: Vec<u8>,
    pub validators: ValidatorSet,
    /// Nullify if no proposal was notarized by us this long after entering a view.
    pub leader_timeout_ms: u64,
    /// Nullify if the view has not produced a notarization this long after entering it.
    pub notarization_timeout_ms: u64,
    /// Period of re-broadcasting our latest votes and certificate (liveness after
    /// partitions and message loss).
    pub retry_timeout_ms: u64,
    /// A leader none of whose votes reached us in this many views before the one it
    /// leads is *skipped*: we nullify its view at once instead of waiting out
    /// `leader_timeout_ms` (a crashed or cut-off validator otherwise costs a full leader
    /// timeout every `n` views). `0` never skips. Skipping only moves a nullify earlier,
    /// which the voting rules allow at any time, so it cannot affect safety; a skipped
    /// validator whose votes come back is led again from its next view.
    pub leader_skip_after_views: u64,
    /// Votes and proposals for views beyond `view + max_views_ahead`, or below
    /// `view - max_views_ahead`, are rejected (their votes are pruned).
    /// Certificates are exempt: being quorum-signed, they may move a lagging engine
    /// forward arbitrarily far.
    pub max_views_ahead: u64,
    /// Largest accepted block payload in bytes.
    pub max_block_bytes: usize,
    /// Last height of this engine's epoch (`None`: the engine never ends). Above it
    /// only empty *boundary blocks* are proposed and notarized: they exist so that the
    /// block at `last_height` is finalized even when its own view was also nullified
    /// (a descendant's finalization finalizes it). They are never delivered as
    /// [`Output::Finalized`]. Once `last_height` is finalized the engine is
    /// [`Engine::finished`] and ignores every input; the application then starts the
    /// next epoch's engine on that block.
    pub last_height: Option<Height>,
}

impl Config {
    /// A config with timeouts suited to a WAN of 100 ms one-way latency.
    pub fn new(namespace: Vec<u8>, validators: ValidatorSet) -> Self {
        Config {
            namespace,
            validators,
            leader_timeout_ms: 1_000,
            notarization_timeout_ms: 2_000,
            retry_timeout_ms: 5_000,
            leader_skip_after_views: 16,
            max_views_ahead: 64,
            max_block_bytes: 4 * 1024 * 1024,
            last_height: None,
        }
    }
}

/// What a restarting validator hands back to the engine: every [`SafetyRecord`] it
/// persisted (any order, duplicates allowed: the latest per view wins, fields are
/// merged) and the last finalized block with its certificate.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub safety: Vec<SafetyRecord>,
    pub last_finalized: Option<(Block, Certificate)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    Leader,
    Notarization,
    Retry,
}

#[derive(Clone, Debug)]
pub enum Input {
    Message {
        from: ValidatorIndex,
        message: Message,
    },
    TimerFired {
        view: View,
        timer: TimerKind,
    },
    /// Answer to [`Output::RequestProposal`].
    ProposalReady {
        view: View,
        payload: Vec<u8>,
    },
    /// Answer to [`Output::VerifyBlock`].
    BlockVerified {
        digest: Digest,
        valid: bool,
    },
    /// Answer to [`Output::FetchBlock`].
    BlockFetched {
        block: Block,
    },
    /// The node caught up out-of-band on an already verified chain; the engine adopts
    /// `block` as last finalized (emitting no `Finalized`) and jumps to `block.view + 1`.
    SyncFinalized {
        block: Block,
        finalization: Certificate,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Durably write before executing any later output of the same batch. A failed
    /// write must stop the node: continuing could sign a conflicting vote after restart.
    Persist(SafetyRecord),
    Broadcast(Message),
    SendTo {
        to: ValidatorIndex,
        message: Message,
    },
    /// A later `SetTimer` for the same `(view, timer)` replaces the earlier one; timers
    /// for views below the current one may be dropped.
    SetTimer {
        view: View,
        timer: TimerKind,
        after_ms: u64,
    },
    /// We lead `view`: the application should build a payload on `parent` at `height`
    /// and answer with [`Input::ProposalReady`].
    RequestProposal {
        view: View,
        parent: Digest,
        height: Height,
    },
    /// Validate the payload and answer with [`Input::BlockVerified`].
    VerifyBlock {
        block: Block,
    },
    /// We need a block we never received; answer with [`Input::BlockFetched`].
    FetchBlock {
        digest: Digest,
    },
    /// Emitted strictly in height order, without gaps, each height once. Ancestors
    /// finalized implicitly carry their descendant's finalization certificate.
    Finalized {
        block: Block,
        finalization: Certificate,
    },
    /// Two conflicting signed votes of one validator in one view; once per
    /// (validator, view).
    Evidence(Equivocation),
    EnteredView {
        view: View,
    },
    /// The [`Signer`] refused; the vote was not cast (nothing was persisted for it).
    SignerFailed {
        view: View,
        kind: VoteKind,
        error: SignerError,
    },
}

/// Votes, proposal and certificates gathered for one view.
#[derive(Default, Debug)]
struct ViewState {
    notarize: BTreeMap<ValidatorIndex, SignedVote>,
    nullify: BTreeMap<ValidatorIndex, SignedVote>,
    finalize: BTreeMap<ValidatorIndex, SignedVote>,
    /// Digest of the first proposal received from this view's leader.
    proposal: Option<Digest>,
    notarization: Option<Certificate>,
    nullification: Option<Certificate>,
    finalization: Option<Certificate>,
    evidence_reported: BTreeSet<ValidatorIndex>,
    /// We are the leader and have asked the application for a payload.
    proposal_requested: Option<(Digest, Height)>,
}

impl ViewState {
    fn votes(&self, kind: VoteKind) -> &BTreeMap<ValidatorIndex, SignedVote> {
        match kind {
            VoteKind::Notarize => &self.notarize,
            VoteKind::Nullify => &self.nullify,
            VoteKind::Finalize => &self.finalize,
        }
    }

    fn votes_mut(&mut self, kind: VoteKind) -> &mut BTreeMap<ValidatorIndex, SignedVote> {
        match kind {
            VoteKind::Notarize => &mut self.notarize,
            VoteKind::Nullify => &mut self.nullify,
            VoteKind::Finalize => &mut self.finalize,
        }
    }

    fn certificate(&self, kind: VoteKind) -> Option<&Certificate> {
        match kind {
            VoteKind::Notarize => self.notarization.as_ref(),
            VoteKind::Nullify => self.nullification.as_ref(),
            VoteKind::Finalize => self.finalization.as_ref(),
        }
    }

    /// The block this view notarized, if known (a finalization implies a notarization).
    fn notarized_digest(&self) -> Option<Digest> {
        self.notarization
            .as_ref()
            .or(self.finalization.as_ref())
            .and_then(|c| c.digest)
    }
}

/// One validator's Simplex instance. See the crate docs for the protocol.
///
/// [`Engine::handle`] returns `Err` when an input is rejected; a rejection changes no
/// state. `Ok` carries the outputs to execute in order.
pub struct Engine<S: Signer> {
    config: Config,
    signer: S,
    view: View,
    views: BTreeMap<View, ViewState>,
    safety: BTreeMap<View, SafetyRecord>,
    /// Blocks we hold, keyed by digest; pruned below the last finalized view.
    blocks: BTreeMap<Digest, Block>,
    /// Application verdicts on proposals: `None` while the request is outstanding.
    verdicts: BTreeMap<Digest, (View, Option<bool>)>,
    /// Blocks requested with `FetchBlock` and not yet received.
    fetching: BTreeSet<Digest>,
    last_finalized: Block,
    last_finalization: Option<Certificate>,
    /// Highest finalization above `last_finalized` whose chain we are still assembling.
    finalize_target: Option<Certificate>,
    /// View in which we last asked peers for missing certificates (once per view and
    /// per retry).
    cert_request_sent_in: Option<View>,
    /// The block at `config.last_height` is finalized: the epoch is over.
    finished: bool,
    /// The boundary blocks (above `last_height`) through which the block at
    /// `last_height` was finalized, in height order; empty when it was finalized by a
    /// certificate of its own.
    boundary: Vec<Block>,
    /// Per validator index, the highest view of a verified vote of theirs (or the view
    /// this engine started in): who is active, for `leader_skip_after_views`.
    last_active: Vec<View>,
}

impl<S: Signer> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("signer", &self.signer.index())
            .field("view", &self.view)
            .field("last_finalized_height", &self.last_finalized.height)
            .finish_non_exhaustive()
    }
}

impl<S: Signer> Engine<S> {
    /// Builds an engine from its configuration, its signer and what it persisted before a
    /// restart (use `Restored::default()` on first start). Call [`Engine::start`] next.
    pub fn new(config: Config, signer: S, restored: Restored) -> Self {
        let (last_finalized, last_finalization) = match restored.last_finalized {
            Some((block, cert)) => (block, Some(cert)),
            None => (Block::genesis(&config.namespace), None),
        };
        let mut safety: BTreeMap<View, SafetyRecord> = BTreeMap::new();
        for record in restored.safety {
            let entry = safety.entry(record.view).or_insert_with(|| SafetyRecord {
                view: record.view,
                ..SafetyRecord::default()
            });
            // Records are cumulative; merging also tolerates out-of-order replay.
            entry.notarized = entry.notarized.or(record.notarized);
            entry.nullified |= record.nullified;
            entry.finalized = entry.finalized.or(record.finalized);
        }
        let highest_voted = safety.keys().next_back().copied().unwrap_or(0);
        let view = highest_voted.max(last_finalized.view + 1);
        let finished = config
            .last_height
            .is_some_and(|last| last_finalized.height >= last);
        // Everyone counts as active when we start: nobody is skipped before having had
        // `leader_skip_after_views` views to show up.
        let last_active = vec![view; config.validators.len()];
        Engine {
            config,
            signer,
            view,
            views: BTreeMap::new(),
            safety,
            blocks: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            fetching: BTreeSet::new(),
            last_finalized,
            last_finalization,
            finalize_target: None,
            cert_request_sent_in: None,
            finished,
            boundary: Vec::new(),
            last_active,
        }
    }

    /// The block at `config.last_height` is finalized; every further input is ignored.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The boundary blocks that carried finality to the epoch's last block: with its
    /// certificate they prove that block final to anyone holding this epoch's set
    /// (parent links from the last block to the certified one, all payloads empty).
    pub fn boundary_blocks(&self) -> &[Block] {
        &self.boundary
    }

    /// Whether a block at `height` lies beyond this engine's epoch.
    fn beyond_epoch(&self, height: Height) -> bool {
        self.config.last_height.is_some_and(|last| height > last)
    }

    /// Enters the initial view: arms its timers and, if we lead it, asks for a payload.
    pub fn start(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.finished {
            self.arm_view(&mut out);
        }
        out
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn last_finalized(&self) -> (Height, Digest) {
        (self.last_finalized.height, self.last_finalized.digest())
    }

    /// The last finalized block and its certificate (`None` for genesis).
    pub fn last_finalized_block(&self) -> (&Block, Option<&Certificate>) {
        (&self.last_finalized, self.last_finalization.as_ref())
    }

    /// One-line state summary for diagnostics (simulator, logs).
    pub fn describe(&self) -> String {
        let state = self.views.get(&self.view);
        let count = |k| state.map_or(0, |s| s.votes(k).len());
        format!(
            "view {} lf(h{} v{}) record {:?} proposal {} votes n{} x{} f{} certs(prev) {:?} fetching {}",
            self.view,
            self.last_finalized.height,
            self.last_finalized.view,
            self.record(self.view),
            state.is_some_and(|s| s.proposal.is_some()),
            count(VoteKind::Notarize),
            count(VoteKind::Nullify),
            count(VoteKind::Finalize),
            self.views.get(&(self.view - 1)).map(|s| (
                s.notarization.is_some(),
                s.nullification.is_some(),
                s.finalization.is_some()
            )),
            self.fetching.len(),
        )
    }

    /// Sizes of the engine's retained state: (views with state, votes, blocks). Bounded
    /// by the window of views above the last finalized one.
    pub fn retained(&self) -> (usize, usize, usize) {
        let votes = self
            .views
            .values()
            .map(|s| s.notarize.len() + s.nullify.len() + s.finalize.len())
            .sum();
        (self.views.len(), votes, self.blocks.len())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes one input. `Err` means it was rejected and nothing changed.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, ConsensusError> {
        let mut out = Vec::new();
        if self.finished {
            return Ok(out);
        }
        match input {
            Input::Message { from, message } => match message {
                Message::Proposal { block, vote } => self.on_proposal(block, vote, &mut out)?,
                Message::Vote(vote) => self.on_vote(vote, &mut out)?,
                Message::Certificate(cert) => self.on_certificate_message(cert, &mut out)?,
                Message::CertificateRequest { views } => {
                    self.on_certificate_request(from, views, &mut out)?
                }
            },
            Input::TimerFired { view, timer } => self.on_timer(view, timer, &mut out),
            Input::ProposalReady { view, payload } => {
                self.on_proposal_ready(view, payload, &mut out)?
            }
            Input::BlockVerified { digest, valid } => {
                if let Some((_, verdict @ None)) = self.verdicts.get_mut(&digest) {
                    *verdict = Some(valid);
                    self.try_notarize(&mut out);
                }
            }
            Input::BlockFetched { block } => self.on_block_fetched(block, &mut out)?,
            Input::SyncFinalized {
                block,
                finalization,
            } => self.on_sync_finalized(block, finalization, &mut out)?,
        }
        Ok(out)
    }

    // ----------------------------------------------------------------- helpers

    fn me(&self) -> ValidatorIndex {
        self.signer.index()
    }

    fn record(&self, view: View) -> SafetyRecord {
        self.safety.get(&view).cloned().unwrap_or(SafetyRecord {
            view,
            ..SafetyRecord::default()
        })
    }

    fn view_state(&mut self, view: View) -> &mut ViewState {
        self.views.entry(view).or_default()
    }

    fn notarized_digest(&self, view: View) -> Option<Digest> {
        if view == self.last_finalized.view {
            return Some(self.last_finalized.digest());
        }
        self.views.get(&view).and_then(ViewState::notarized_digest)
    }

    fn has_nullification(&self, view: View) -> bool {
        self.views
            .get(&view)
            .is_some_and(|s| s.nullification.is_some())
    }

    fn block(&self, digest: &Digest) -> Option<&Block> {
        if *digest == self.last_finalized.digest() {
            return Some(&self.last_finalized);
        }
        self.blocks.get(digest)
    }

    fn fetch(&mut self, digest: Digest, out: &mut Vec<Output>) {
        if self.block(&digest).is_none() && self.fetching.insert(digest) {
            out.push(Output::FetchBlock { digest });
        }
    }

    fn check_window(&self, view: View) -> Result<(), ConsensusError> {
        if view <= self.last_finalized.view {
            return Err(ConsensusError::ViewTooOld {
                view,
                finalized: self.last_finalized.view,
            });
        }
        let horizon = self.view.saturating_sub(self.config.max_views_ahead);
        if view < horizon {
            return Err(ConsensusError::ViewBehindWindow { view, horizon });
        }
        if view > self.view.saturating_add(self.config.max_views_ahead) {
            return Err(ConsensusError::ViewTooFarAhead {
                view,
                current: self.view,
                max_ahead: self.config.max_views_ahead,
            });
        }
        Ok(())
    }

    /// Signs a vote after checking the voting rule and queueing its safety record.
    /// Returns `None` (casting nothing) if the rule forbids it or the signer fails.
    fn cast(
        &mut self,
        kind: VoteKind,
        view: View,
        digest: Option<Digest>,
        out: &mut Vec<Output>,
    ) -> Option<SignedVote> {
        let mut record = self.record(view);
        let allowed = match (kind, digest.as_ref()) {
            (VoteKind::Notarize, Some(_)) => may_notarize(&record),
            (VoteKind::Nullify, None) => may_nullify(&record) && !record.nullified,
            (VoteKind::Finalize, Some(d)) => may_finalize(&record, d),
            _ => false,
        };
        if !allowed {
            return None;
        }
        match kind {
            VoteKind::Notarize => record.notarized = digest,
            VoteKind::Nullify => record.nullified = true,
            VoteKind::Finalize => record.finalized = digest,
        }
        let message = vote_message(&self.config.namespace, kind, view, digest.as_ref());
        let signature = match self.signer.sign(&message) {
            Ok(s) => s,
            Err(error) => {
                out.push(Output::SignerFailed { view, kind, error });
                return None;
            }
        };
        // Persist strictly before the vote can leave: the caller pushes the broadcast
        // after this returns.
        self.safety.insert(view, record.clone());
        out.push(Output::Persist(record));
        Some(SignedVote {
            kind,
            view,
            digest,
            signer: self.me(),
            signature: signature.to_bytes().to_vec(),
        })
    }

    /// Our own vote from earlier in this view, if any.
    fn own_vote(&self, view: View, kind: VoteKind) -> Option<&SignedVote> {
        self.views
            .get(&view)
            .and_then(|s| s.votes(kind).get(&self.me()))
    }

    // ----------------------------------------------------------------- views

    /// Paper: "upon seeing a notarized block or a nullification for iteration h, move to
    /// iteration h + 1". Certificates we already hold for later views chain the move.
    fn advance_past(&mut self, view: View, out: &mut Vec<Output>) {
        if view < self.view {
            return;
        }
        let mut next = view + 1;
        while self.views.get(&next).is_some_and(|s| {
            s.notarization.is_some() || s.nullification.is_some() || s.finalization.is_some()
        }) {
            next += 1;
        }
        if next
            > self
                .view
                .saturating_add(self.config.leader_skip_after_views)
        {
            // A jump past the whole window (catch-up by certificates or sync): we could
            // not see anyone's votes in the views skipped, so nobody counts as inactive.
            for seen in &mut self.last_active {
                *seen = (*seen).max(next);
            }
        }
        self.view = next;
        // Votes far behind the current view can no longer matter for liveness; their
        // certificates (needed by the parent rule) are kept until finalization.
        let horizon = self.view.saturating_sub(self.config.max_views_ahead);
        for (_, state) in self.views.range_mut(..horizon) {
            state.notarize.clear();
            state.nullify.clear();
            state.finalize.clear();
        }
        self.arm_view(out);
    }

    fn arm_view(&mut self, out: &mut Vec<Output>) {
        let view = self.view;
        out.push(Output::EnteredView { view });
        let leader_timeout_ms = if self.leader_skipped(view) {
            0
        } else {
            self.config.leader_timeout_ms
        };
        out.push(Output::SetTimer {
            view,
            timer: TimerKind::Leader,
            after_ms: leader_timeout_ms,
        });
        out.push(Output::SetTimer {
            view,
            timer: TimerKind::Notarization,
            after_ms: self.config.notarization_timeout_ms,
        });
        out.push(Output::SetTimer {
            view,
            timer: TimerKind::Retry,
            after_ms: self.config.retry_timeout_ms,
        });
        self.try_propose(out);
        self.try_notarize(out);
    }

    /// Whether `view`'s leader is someone else none of whose votes we have seen in the
    /// `leader_skip_after_views` views before it (see [`Config::leader_skip_after_views`]).
    /// Its leader timer then fires at once; a proposal already here is still notarized
    /// first (the timer only nullifies a view we have not notarized). Public for the
    /// node's logs and metrics.
    pub fn leader_skipped(&self, view: View) -> bool {
        let window = self.config.leader_skip_after_views;
        let leader = self.config.validators.leader(view);
        if window == 0 || leader == self.me() {
            return false;
        }
        let seen = self
            .last_active
            .get(usize::from(leader))
            .copied()
            .unwrap_or(0);
        view > seen.saturating_add(window)
    }

    /// Simplex parent rule: the parent of a view-`v` block is the block of the highest
    /// view `p < v` holding a notarization, where every view strictly between `p` and
    /// `v` holds a nullification. The last finalized block counts as notarized.
    /// Returns `None` while a certificate needed to decide is missing.
    fn select_parent(&self, view: View) -> Option<(View, Digest)> {
        let mut w = view.checked_sub(1)?;
        loop {
            if w < self.last_finalized.view {
                return None;
            }
            if let Some(d) = self.notarized_digest(w) {
                return Some((w, d));
            }
            if !self.has_nullification(w) {
                return None;
            }
            w = w.checked_sub(1)?;
        }
    }

    /// Whether a block proposed in `view` on `parent` satisfies the parent rule with
    /// the certificates we hold (false also when we cannot tell yet).
    fn parent_rule_holds(&self, view: View, parent: &Block) -> bool {
        if parent.view >= view || parent.view < self.last_finalized.view {
            return false;
        }
        if self.notarized_digest(parent.view) != Some(parent.digest()) {
            return false;
        }
        (parent.view + 1..view).all(|w| self.has_nullification(w))
    }

    fn try_propose(&mut self, out: &mut Vec<Output>) {
        let view = self.view;
        if self.config.validators.leader(view) != self.me() {
            return;
        }
        if !may_notarize(&self.record(view)) {
            return;
        }
        if self
            .views
            .get(&view)
            .is_some_and(|s| s.proposal_requested.is_some() || s.proposal.is_some())
        {
            return;
        }
        let Some((_, parent)) = self.select_parent(view) else {
            self.request_missing_certificates(out);
            return;
        };
        let Some(height) = self.block(&parent).map(|b| b.height + 1) else {
            self.fetch(parent, out);
            return;
        };
        if self.beyond_epoch(height) {
            // A boundary block: empty, built here, never asked of the application.
            self.propose_block(view, parent, height, Vec::new(), out);
            return;
        }
        self.view_state(view).proposal_requested = Some((parent, height));
        out.push(Output::RequestProposal {
            view,
            parent,
            height,
        });
    }

    fn on_proposal_ready(
        &mut self,
        view: View,
        payload: Vec<u8>,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if payload.len() > self.config.max_block_bytes {
            return Err(ConsensusError::PayloadTooLarge {
                size: payload.len(),
                max: self.config.max_block_bytes,
            });
        }
        if view != self.view {
            return Ok(()); // stale answer: the view moved on
        }
        let Some((parent, height)) = self.views.get(&view).and_then(|s| {
            if s.proposal.is_some() {
                None
            } else {
                s.proposal_requested
            }
        }) else {
            return Ok(());
        };
        self.propose_block(view, parent, height, payload, out);
        Ok(())
    }

    /// Signs our notarize for our own proposal and broadcasts both.
    fn propose_block(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        payload: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let block = Block {
            view,
            height,
            parent,
            payload,
        };
        let digest = block.digest();
        let Some(vote) = self.cast(VoteKind::Notarize, view, Some(digest), out) else {
            return;
        };
        self.blocks.insert(digest, block.clone());
        self.verdicts.insert(digest, (view, Some(true)));
        self.view_state(view).proposal = Some(digest);
        out.push(Output::Broadcast(Message::Proposal {
            block,
            vote: vote.clone(),
        }));
        self.add_vote(vote, out);
    }

    // ----------------------------------------------------------------- inbound

    fn on_proposal(
        &mut self,
        block: Block,
        vote: SignedVote,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let digest = block.digest();
        if vote.kind != VoteKind::Notarize || vote.view != block.view || vote.digest != Some(digest)
        {
            return Err(ConsensusError::MalformedProposal(
                "vote is not the leader's notarize for this block",
            ));
        }
        if block.payload.len() > self.config.max_block_bytes {
            return Err(ConsensusError::PayloadTooLarge {
                size: block.payload.len(),
                max: self.config.max_block_bytes,
            });
        }
        if self.beyond_epoch(block.height) && !block.payload.is_empty() {
            return Err(ConsensusError::BeyondEpoch {
                height: block.height,
                last_height: self.config.last_height.unwrap_or(Height::MAX),
            });
        }
        self.check_window(block.view)?;
        let leader = self.config.validators.leader(block.view);
        if vote.signer != leader {
            return Err(ConsensusError::NotLeader {
                view: block.view,
                signer: vote.signer,
                leader,
            });
        }
        if block.height <= self.last_finalized.height {
            return Err(ConsensusError::ParentRule(
                "height does not extend the finalized chain",
            ));
        }
        if let Some(parent) = self.block(&block.parent) {
            if parent.view >= block.view {
                return Err(ConsensusError::ParentRule(
                    "parent view is not below the block's",
                ));
            }
            if parent.height + 1 != block.height {
                return Err(ConsensusError::ParentRule(
                    "height is not parent height + 1",
                ));
            }
            if parent.view < self.last_finalized.view {
                return Err(ConsensusError::ParentRule(
                    "parent is below the last finalized block",
                ));
            }
        }
        let existing = self
            .views
            .get(&block.view)
            .and_then(|s| s.notarize.get(&leader))
            .cloned();
        match existing {
            Some(first) if first.digest == vote.digest => {
                // A re-broadcast: adopt the block if we only had the vote.
                let state = self.view_state(block.view);
                if state.proposal.is_none() {
                    state.proposal = Some(digest);
                    self.blocks.insert(digest, block);
                    self.try_notarize(out);
                    return Ok(());
                }
                Err(ConsensusError::DuplicateVote {
                    signer: leader,
                    view: vote.view,
                })
            }
            Some(first) => {
                verify_vote(&self.config.validators, &self.config.namespace, &vote)?;
                self.report_equivocation(first, vote, out);
                Ok(())
            }
            None => {
                verify_vote(&self.config.validators, &self.config.namespace, &vote)?;
                let parent = block.parent;
                let state = self.view_state(block.view);
                if state.proposal.is_none() {
                    state.proposal = Some(digest);
                    self.blocks.insert(digest, block);
                }
                self.fetch(parent, out);
                self.add_vote(vote, out);
                self.try_notarize(out);
                Ok(())
            }
        }
    }

    fn on_vote(&mut self, vote: SignedVote, out: &mut Vec<Output>) -> Result<(), ConsensusError> {
        self.check_window(vote.view)?;
        if self.config.validators.key(vote.signer).is_none() {
            return Err(ConsensusError::UnknownSigner(vote.signer));
        }
        if !check_vote_shape(vote.kind, vote.digest.as_ref()) {
            return Err(ConsensusError::MalformedVote);
        }
        let state = self.views.get(&vote.view);
        let same_kind = state
            .and_then(|s| s.votes(vote.kind).get(&vote.signer))
            .cloned();
        if let Some(first) = same_kind {
            if first.digest == vote.digest {
                return Err(ConsensusError::DuplicateVote {
                    signer: vote.signer,
                    view: vote.view,
                });
            }
            verify_vote(&self.config.validators, &self.config.namespace, &vote)?;
            self.report_equivocation(first, vote, out);
            return Ok(());
        }
        verify_vote(&self.config.validators, &self.config.namespace, &vote)?;
        // Finalize and nullify in one view conflict (paper: a finalize promises the
        // validator never timed out in that iteration). Both still count toward their
        // own quorums: the quorum arguments already assume f such signers.
        let opposite = match vote.kind {
            VoteKind::Finalize => Some(VoteKind::Nullify),
            VoteKind::Nullify => Some(VoteKind::Finalize),
            VoteKind::Notarize => None,
        };
        if let Some(opposite) = opposite {
            let conflicting = self
                .views
                .get(&vote.view)
                .and_then(|s| s.votes(opposite).get(&vote.signer))
                .cloned();
            if let Some(first) = conflicting {
                self.report_equivocation(first, vote.clone(), out);
            }
        }
        self.add_vote(vote, out);
        Ok(())
    }

    fn report_equivocation(
        &mut self,
        first: SignedVote,
        second: SignedVote,
        out: &mut Vec<Output>,
    ) {
        let validator = second.signer;
        if self
            .view_state(second.view)
            .evidence_reported
            .insert(validator)
        {
            out.push(Output::Evidence(Equivocation {
                validator,
                first,
                second,
            }));
        }
    }

    /// Records a verified vote and forms a certificate when a quorum agrees.
    fn add_vote(&mut self, vote: SignedVote, out: &mut Vec<Output>) {
        let quorum = self.config.validators.quorum();
        let (kind, view, digest) = (vote.kind, vote.view, vote.digest);
        if let Some(seen) = self.last_active.get_mut(usize::from(vote.signer)) {
            *seen = (*seen).max(view);
        }
        let state = self.views.entry(view).or_default();
        state.votes_mut(kind).insert(vote.signer, vote);
        if state.certificate(kind).is_some() {
            return;
        }
        let agreeing: Vec<&SignedVote> = state
            .votes(kind)
            .values()
            .filter(|v| v.digest == digest)
            .collect();
        if agreeing.len() < quorum {
            return;
        }
        let cert = assemble_certificate(&self.config.validators, kind, view, digest, &agreeing);
        self.on_certificate(cert, out);
    }

    fn on_certificate_message(
        &mut self,
        cert: Certificate,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if cert.view <= self.last_finalized.view {
            if cert.view == self.last_finalized.view && cert.view > 0 {
                return Ok(()); // already final: nothing to learn
            }
            return Err(ConsensusError::ViewTooOld {
                view: cert.view,
                finalized: self.last_finalized.view,
            });
        }
        if self
            .views
            .get(&cert.view)
            .is_some_and(|s| s.certificate(cert.kind).is_some())
        {
            return Ok(()); // duplicate, common under gossip and retries
        }
        // Signatures identical to votes we already verified need no second check.
        let known = self.views.get(&cert.view).map(|s| s.votes(cert.kind));
        verify_certificate_skipping(
            &self.config.validators,
            &self.config.namespace,
            &cert,
            |signer, signature| {
                known
                    .and_then(|votes| votes.get(&signer))
                    .is_some_and(|v| v.digest == cert.digest && v.signature == signature)
            },
        )?;
        self.evidence_from_certificate(&cert, out);
        self.on_certificate(cert, out);
        Ok(())
    }

    /// A verified certificate is a bundle of signed votes: any of them that conflicts
    /// with a vote we hold from the same validator is equivocation evidence.
    fn evidence_from_certificate(&mut self, cert: &Certificate, out: &mut Vec<Output>) {
        let Some(state) = self.views.get(&cert.view) else {
            return;
        };
        let mut found = Vec::new();
        for (signer, signature) in cert.signer_indices().into_iter().zip(&cert.signatures) {
            let held = match cert.kind {
                VoteKind::Notarize | VoteKind::Finalize => state
                    .votes(cert.kind)
                    .get(&signer)
                    .filter(|v| v.digest != cert.digest)
                    .or_else(|| {
                        (cert.kind == VoteKind::Finalize)
                            .then(|| state.nullify.get(&signer))
                            .flatten()
                    }),
                VoteKind::Nullify => state.finalize.get(&signer),
            };
            if let Some(first) = held {
                let second = SignedVote {
                    kind: cert.kind,
                    view: cert.view,
                    digest: cert.digest,
                    signer,
                    signature: signature.clone(),
                };
                found.push((first.clone(), second));
            }
        }
        for (first, second) in found {
            self.report_equivocation(first, second, out);
        }
    }

    /// A new verified certificate, received or formed here. Forwarded once, so that
    /// every honest validator that sees it makes every other see it too (paper:
    /// "forward the notarization / nullification").
    fn on_certificate(&mut self, cert: Certificate, out: &mut Vec<Output>) {
        let (kind, view, digest) = (cert.kind, cert.view, cert.digest);
        let state = self.view_state(view);
        match kind {
            VoteKind::Notarize => state.notarization = Some(cert.clone()),
            VoteKind::Nullify => state.nullification = Some(cert.clone()),
            VoteKind::Finalize => state.finalization = Some(cert.clone()),
        }
        out.push(Output::Broadcast(Message::Certificate(cert.clone())));
        if let Some(d) = digest {
            self.fetch(d, out);
        }
        match kind {
            VoteKind::Notarize => {
                if let Some(d) = digest {
                    self.maybe_finalize(view, d, out);
                }
            }
            VoteKind::Finalize => {
                let higher = self.finalize_target.as_ref().is_none_or(|t| t.view < view);
                if higher {
                    self.finalize_target = Some(cert);
                }
                self.deliver_finalized(out);
            }
            VoteKind::Nullify => {}
        }
        if view >= self.view {
            self.advance_past(view, out);
        } else {
            // An older certificate may complete the parent rule for the current view.
            self.try_propose(out);
            self.try_notarize(out);
        }
    }

    /// Paper, "Finalize": having seen a notarization for `view` and not having timed out
    /// in it, send `finalize(view, digest)`.
    fn maybe_finalize(&mut self, view: View, digest: Digest, out: &mut Vec<Output>) {
        if view <= self.last_finalized.view {
            return;
        }
        if let Some(vote) = self.cast(VoteKind::Finalize, view, Some(digest), out) {
            out.push(Output::Broadcast(Message::Vote(vote.clone())));
            self.add_vote(vote, out);
        }
    }

    /// Paper, "Voting": notarize the leader's proposal for the current view if its
    /// parent satisfies the parent rule and the application judged it valid.
    fn try_notarize(&mut self, out: &mut Vec<Output>) {
        let view = self.view;
        if !may_notarize(&self.record(view)) {
            return;
        }
        let Some(digest) = self.views.get(&view).and_then(|s| s.proposal) else {
            return;
        };
        let Some(block) = self.blocks.get(&digest).cloned() else {
            return;
        };
        let Some(parent) = self.block(&block.parent).cloned() else {
            self.fetch(block.parent, out);
            return;
        };
        if parent.height + 1 != block.height {
            return;
        }
        if !self.parent_rule_holds(view, &parent) {
            self.request_missing_certificates(out);
            return;
        }
        match self.verdicts.get(&digest) {
            // Boundary blocks are empty (checked on receipt): nothing to ask.
            None if self.beyond_epoch(block.height) => {
                self.verdicts.insert(digest, (view, Some(true)));
                self.try_notarize(out);
            }
            None => {
                self.verdicts.insert(digest, (view, None));
                out.push(Output::VerifyBlock { block });
            }
            Some((_, None | Some(false))) => {}
            Some((_, Some(true))) => {
                if let Some(vote) = self.cast(VoteKind::Notarize, view, Some(digest), out) {
                    out.push(Output::Broadcast(Message::Vote(vote.clone())));
                    self.add_vote(vote, out);
                }
            }
        }
    }

    fn on_timer(&mut self, view: View, timer: TimerKind, out: &mut Vec<Output>) {
        if view != self.view {
            return;
        }
        let record = self.record(view);
        match timer {
            // Paper, "Timeout": no proposal (that we could notarize) in time.
            TimerKind::Leader if record.notarized.is_none() => self.nullify(view, out),
            TimerKind::Leader => {}
            // Paper, "Timeout": the view did not produce a notarization in time.
            TimerKind::Notarization => self.nullify(view, out),
            TimerKind::Retry => self.retry(view, out),
        }
    }

    fn nullify(&mut self, view: View, out: &mut Vec<Output>) {
        if let Some(vote) = self.cast(VoteKind::Nullify, view, None, out) {
            out.push(Output::Broadcast(Message::Vote(vote.clone())));
            self.add_vote(vote, out);
        }
    }

    /// Liveness after partitions and loss: re-send our votes of the current view, the
    /// certificate that brought us here, and our latest finalization; re-request missing
    /// blocks; re-arm.
    fn retry(&mut self, view: View, out: &mut Vec<Output>) {
        let record = self.record(view);
        if record.nullified {
            match self.own_vote(view, VoteKind::Nullify).cloned() {
                Some(vote) => out.push(Output::Broadcast(Message::Vote(vote))),
                // Restored after a restart: we nullified before but lost the signed
                // vote; re-signing the same nullify is not a conflicting vote.
                None => self.resign_nullify(view, out),
            }
        }
        if let Some(vote) = self.own_vote(view, VoteKind::Notarize).cloned() {
            let block = vote.digest.and_then(|d| self.blocks.get(&d)).cloned();
            match block {
                Some(block) if self.config.validators.leader(view) == self.me() => {
                    out.push(Output::Broadcast(Message::Proposal { block, vote }))
                }
                _ => out.push(Output::Broadcast(Message::Vote(vote))),
            }
        }
        if let Some(prev) = view.checked_sub(1) {
            if let Some(state) = self.views.get(&prev) {
                if let Some(own) = state.finalize.get(&self.me()) {
                    out.push(Output::Broadcast(Message::Vote(own.clone())));
                }
                if let Some(cert) = state.notarization.as_ref().or(state.nullification.as_ref()) {
                    out.push(Output::Broadcast(Message::Certificate(cert.clone())));
                }
            }
        }
        if let Some(cert) = self
            .finalize_target
            .as_ref()
            .or(self.last_finalization.as_ref())
        {
            out.push(Output::Broadcast(Message::Certificate(cert.clone())));
        }
        self.cert_request_sent_in = None;
        // Outstanding fetches may have been dropped by the driver: ask again.
        let pending: Vec<Digest> = self.fetching.iter().copied().collect();
        for digest in pending {
            out.push(Output::FetchBlock { digest });
        }
        self.deliver_finalized(out);
        self.try_propose(out);
        self.try_notarize(out);
        out.push(Output::SetTimer {
            view,
            timer: TimerKind::Retry,
            after_ms: self.config.retry_timeout_ms,
        });
    }

    fn resign_nullify(&mut self, view: View, out: &mut Vec<Output>) {
        let message = vote_message(&self.config.namespace, VoteKind::Nullify, view, None);
        match self.signer.sign(&message) {
            Ok(signature) => {
                let vote = SignedVote {
                    kind: VoteKind::Nullify,
                    view,
                    digest: None,
                    signer: self.me(),
                    signature: signature.to_bytes().to_vec(),
                };
                out.push(Output::Broadcast(Message::Vote(vote.clone())));
                self.add_vote(vote, out);
            }
            Err(error) => out.push(Output::SignerFailed {
                view,
                kind: VoteKind::Nullify,
                error,
            }),
        }
    }

    fn on_block_fetched(
        &mut self,
        block: Block,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let digest = block.digest();
        if !self.fetching.contains(&digest) {
            return Err(ConsensusError::UnexpectedBlock(digest));
        }
        if block.payload.len() > self.config.max_block_bytes {
            return Err(ConsensusError::PayloadTooLarge {
                size: block.payload.len(),
                max: self.config.max_block_bytes,
            });
        }
        self.fetching.remove(&digest);
        if block.view < self.last_finalized.view {
            return Ok(());
        }
        self.blocks.insert(digest, block);
        self.deliver_finalized(out);
        self.try_propose(out);
        self.try_notarize(out);
        Ok(())
    }

    fn on_sync_finalized(
        &mut self,
        block: Block,
        cert: Certificate,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if cert.kind != VoteKind::Finalize
            || cert.view != block.view
            || cert.digest != Some(block.digest())
        {
            return Err(ConsensusError::MalformedCertificate);
        }
        if block.view <= self.last_finalized.view {
            return Ok(());
        }
        if self.beyond_epoch(block.height) {
            return Err(ConsensusError::BeyondEpoch {
                height: block.height,
                last_height: self.config.last_height.unwrap_or(Height::MAX),
            });
        }
        verify_certificate(&self.config.validators, &self.config.namespace, &cert)?;
        let view = block.view;
        self.last_finalized = block;
        self.last_finalization = Some(cert);
        if self
            .finalize_target
            .as_ref()
            .is_some_and(|t| t.view <= view)
        {
            self.finalize_target = None;
        }
        self.prune();
        if self.config.last_height == Some(self.last_finalized.height) {
            self.finished = true;
            return Ok(());
        }
        if view >= self.view {
            self.advance_past(view, out);
        }
        Ok(())
    }

    /// Answers a peer that missed certificates with those we hold.
    fn on_certificate_request(
        &mut self,
        from: ValidatorIndex,
        views: Vec<View>,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if self.config.validators.key(from).is_none() {
            return Err(ConsensusError::UnknownSigner(from));
        }
        if views.len() > MAX_CERTIFICATE_REQUEST {
            return Err(ConsensusError::RequestTooLarge(views.len()));
        }
        for view in views {
            let Some(state) = self.views.get(&view) else {
                continue;
            };
            for cert in [
                &state.notarization,
                &state.nullification,
                &state.finalization,
            ]
            .into_iter()
            .flatten()
            {
                out.push(Output::SendTo {
                    to: from,
                    message: Message::Certificate(cert.clone()),
                });
            }
        }
        Ok(())
    }

    /// Asks peers for the certificates of views in `(last finalized, current)` that we
    /// hold none for: without them we can neither pick nor check a parent.
    fn request_missing_certificates(&mut self, out: &mut Vec<Output>) {
        if self.cert_request_sent_in == Some(self.view) {
            return;
        }
        let missing: Vec<View> = (self.last_finalized.view + 1..self.view)
            .rev()
            .filter(|w| {
                self.views.get(w).is_none_or(|s| {
                    s.notarization.is_none()
                        && s.nullification.is_none()
                        && s.finalization.is_none()
                })
            })
            .take(MAX_CERTIFICATE_REQUEST)
            .collect();
        if missing.is_empty() {
            return;
        }
        self.cert_request_sent_in = Some(self.view);
        out.push(Output::Broadcast(Message::CertificateRequest {
            views: missing,
        }));
    }

    // ----------------------------------------------------------------- finality

    /// Walks from the highest known finalized block back to our last finalized one and
    /// emits the chain in height order. Missing blocks are fetched first.
    fn deliver_finalized(&mut self, out: &mut Vec<Output>) {
        let Some(target) = self.finalize_target.clone() else {
            return;
        };
        let Some(target_digest) = target.digest else {
            self.finalize_target = None;
            return;
        };
        if target.view <= self.last_finalized.view {
            self.finalize_target = None;
            return;
        }
        let anchor = self.last_finalized.digest();
        let mut chain: Vec<Block> = Vec::new();
        let mut cursor = target_digest;
        // Bounded: each step goes to a block of strictly lower view above the anchor.
        while cursor != anchor {
            let Some(block) = self.blocks.get(&cursor) else {
                self.fetch(cursor, out);
                return;
            };
            if block.view <= self.last_finalized.view
                || chain.last().is_some_and(|c| c.view <= block.view)
            {
                // The finalized chain does not descend from ours: only possible beyond
                // f faults. Refuse to deliver rather than fork the application.
                self.finalize_target = None;
                return;
            }
            chain.push(block.clone());
            cursor = block.parent;
        }
        chain.reverse();
        let mut height = self.last_finalized.height;
        for block in &chain {
            if block.height != height + 1 {
                self.finalize_target = None;
                return;
            }
            height = block.height;
        }
        for block in chain {
            // Boundary blocks above the epoch's last height only carry finality to it.
            if self.beyond_epoch(block.height) {
                self.boundary.push(block.clone());
            } else {
                out.push(Output::Finalized {
                    block: block.clone(),
                    finalization: target.clone(),
                });
            }
            self.last_finalized = block;
        }
        self.last_finalization = Some(target);
        self.finalize_target = None;
        self.prune();
        if let Some(last) = self.config.last_height {
            if self.last_finalized.height >= last {
                self.finished = true;
            }
        }
    }

    /// Keeps memory bounded: drop everything below the last finalized view.
    fn prune(&mut self) {
        let floor = self.last_finalized.view;
        self.views = self.views.split_off(&floor);
        self.safety = self.safety.split_off(&floor);
        self.blocks.retain(|_, b| b.view >= floor);
        self.verdicts.retain(|_, (v, _)| *v >= floor);
        // Still-needed blocks are re-requested by whoever needs them; this keeps
        // requests for never-certified digests (e.g. bogus parents) from piling up.
        self.fetching.clear();
    }
}
