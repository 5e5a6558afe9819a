//! Seeded deterministic simulator of a Simplex network: simulated time, per-link
//! latency/jitter/loss, partitions that heal, crashes with restart from persisted safety
//! data, and Byzantine validators. It exists to check the protocol's invariants over
//! many runs; it must never read the wall clock or an OS random source, so that one
//! seed always yields one run (compare [`Report::digest`]).
//!
//! The driver obeys the engine's contract: `Persist` outputs are applied to the node's
//! store as they are reached, and a crash may cut an output batch at any point.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;

use crate::{
    vote_message, Block, Certificate, Config, Digest, Ed25519Signer, Engine, Input, Message,
    Output, Restored, SafetyRecord, SignedVote, Signer, TimerKind, ValidatorIndex, ValidatorSet,
    View, VoteKind,
};

/// splitmix64: tiny, seedable, and identical on every platform.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed ^ 0x5EED_CA27_E7C0_FFEE)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// How a simulated validator key misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Never sends anything.
    Silent,
    /// As leader, sends two different proposals to two halves of the network.
    EquivocatingLeader,
    /// Sends each vote to half the network and a conflicting vote to the other half.
    EquivocatingVoter,
    /// As leader proposes payloads the application marks invalid, and votes for any
    /// block regardless of validity.
    InvalidBlocks,
    /// Two independent nodes share this key (no shared safety data).
    Twin,
}

#[derive(Clone, Debug)]
pub struct Partition {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Group of each node; nodes in different groups cannot talk while it lasts.
    pub group_of_node: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
}

/// Everything that defines one run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub n: usize,
    /// Behaviour per validator key (length n).
    pub behaviours: Vec<Behaviour>,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub loss_per_mille: u64,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    /// Time of the application's answers (proposal, verification).
    pub app_delay_ms: u64,
    pub leader_timeout_ms: u64,
    pub notarization_timeout_ms: u64,
    pub retry_timeout_ms: u64,
    /// [`Config::leader_skip_after_views`].
    pub leader_skip_after_views: u64,
    /// From this time on the network is healthy and at most f keys are faulty.
    pub heal_ms: u64,
    /// Every honest validator must finalize a new block within this after `heal_ms`.
    pub liveness_bound_ms: u64,
    pub duration_ms: u64,
    /// Test-only mutation: quorum f+1 instead of n-f.
    pub weak_quorum: bool,
    pub label: &'static str,
}

impl Scenario {
    /// A fault-free network with uniform latency δ = `latency_ms`.
    pub fn happy(seed: u64, n: usize, latency_ms: u64, duration_ms: u64) -> Scenario {
        Scenario {
            seed,
            n,
            behaviours: vec![Behaviour::Honest; n],
            latency_ms,
            jitter_ms: 0,
            loss_per_mille: 0,
            partitions: Vec::new(),
            crashes: Vec::new(),
            app_delay_ms: 0,
            leader_timeout_ms: 4 * latency_ms,
            notarization_timeout_ms: 6 * latency_ms,
            retry_timeout_ms: 10 * latency_ms,
            leader_skip_after_views: 16,
            heal_ms: 0,
            liveness_bound_ms: duration_ms / 2,
            duration_ms,
            weak_quorum: false,
            label: "happy",
        }
    }

    /// The fault mix for `seed`: one of nine families, with parameters drawn from the
    /// seed.
    pub fn from_seed(seed: u64) -> Scenario {
        let mut rng = SimRng::new(seed);
        let n = [4usize, 4, 4, 5, 7][rng.below(5) as usize];
        let f = (n - 1) / 3;
        let mut s = Scenario::happy(seed, n, 10, 0);
        s.jitter_ms = rng.below(11);
        s.loss_per_mille = rng.below(30);
        s.app_delay_ms = rng.below(3);
        s.heal_ms = 400;
        s.liveness_bound_ms = 800;
        let family = seed % 9;
        let byzantine = |s: &mut Scenario, rng: &mut SimRng, kind: Behaviour, count: usize| {
            let mut placed = 0;
            while placed < count {
                let k = rng.below(s.n as u64) as usize;
                if s.behaviours[k] == Behaviour::Honest {
                    s.behaviours[k] = kind;
                    placed += 1;
                }
            }
        };
        match family {
            0 => s.label = "lossy",
            1 => {
                s.label = "partition";
                add_partition(&mut s, &mut rng);
                if rng.chance(500) {
                    add_partition(&mut s, &mut rng);
                }
            }
            2 => {
                s.label = "crash-restart";
                add_crash(&mut s, &mut rng);
                if rng.chance(500) {
                    add_crash(&mut s, &mut rng);
                }
            }
            3 => {
                s.label = "silent";
                byzantine(&mut s, &mut rng, Behaviour::Silent, f);
            }
            4 => {
                s.label = "equivocating-leader";
                byzantine(&mut s, &mut rng, Behaviour::EquivocatingLeader, f);
            }
            5 => {
                s.label = "equivocating-voter";
                byzantine(&mut s, &mut rng, Behaviour::EquivocatingVoter, f);
            }
            6 => {
                s.label = "twins";
                byzantine(&mut s, &mut rng, Behaviour::Twin, f);
            }
            7 => {
                s.label = "invalid-blocks";
                byzantine(&mut s, &mut rng, Behaviour::InvalidBlocks, f);
            }
            _ => {
                s.label = "mixed";
                let kinds = [
                    Behaviour::Silent,
                    Behaviour::EquivocatingLeader,
                    Behaviour::EquivocatingVoter,
                    Behaviour::InvalidBlocks,
                    Behaviour::Twin,
                ];
                let kind = kinds[rng.below(kinds.len() as u64) as usize];
                byzantine(&mut s, &mut rng, kind, f);
                add_partition(&mut s, &mut rng);
                add_crash(&mut s, &mut rng);
            }
        }
        s.duration_ms = s.heal_ms + s.liveness_bound_ms;
        s
    }

    fn node_keys(&self) -> Vec<ValidatorIndex> {
        let mut keys: Vec<ValidatorIndex> = (0..self.n as ValidatorIndex).collect();
        for (k, b) in self.behaviours.iter().enumerate() {
            if *b == Behaviour::Twin {
                keys.push(k as ValidatorIndex);
            }
        }
        keys
    }
}

fn add_partition(s: &mut Scenario, rng: &mut SimRng) {
    let nodes = s.node_keys().len();
    let start_ms = 50 + rng.below(200);
    let end_ms = (start_ms + 50 + rng.below(250)).min(s.heal_ms);
    let group_of_node = (0..nodes).map(|_| rng.below(2) as u8).collect();
    s.partitions.push(Partition {
        start_ms,
        end_ms,
        group_of_node,
    });
}

fn add_crash(s: &mut Scenario, rng: &mut SimRng) {
    let node = rng.below(s.n as u64) as usize;
    let at_ms = 50 + rng.below(250);
    let restart_ms = (at_ms + 20 + rng.below(150)).min(s.heal_ms);
    s.crashes.push(Crash {
        node,
        at_ms,
        restart_ms,
    });
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// blake3 over every event executed, in order: equal seeds give equal digests.
    pub digest: Digest,
    /// Invariant violations found (empty for a correct protocol).
    pub violations: Vec<String>,
    /// Finalized height per node at the end.
    pub heights: Vec<u64>,
    /// Per finalized height: (time the block was proposed, time each honest node
    /// finalized it).
    pub timeline: BTreeMap<u64, (u64, Vec<u64>)>,
    pub messages_delivered: u64,
    pub evidence_reported: u64,
    pub rejected_inputs: u64,
    /// View of each running node at the end (`None` if down or silent).
    pub views: Vec<Option<View>>,
    /// [`Engine::describe`] of each running node at the end.
    pub states: Vec<String>,
}

enum Event {
    Deliver {
        to: usize,
        from: ValidatorIndex,
        message: Message,
    },
    Timer {
        node: usize,
        epoch: u64,
        view: View,
        timer: TimerKind,
        generation: u64,
    },
    App {
        node: usize,
        epoch: u64,
        input: Input,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Checkpoint,
}

struct Node {
    key: ValidatorIndex,
    behaviour: Behaviour,
    engine: Option<Engine<Ed25519Signer>>,
    epoch: u64,
    /// Durable storage: the safety records and last finalized block.
    store: Vec<SafetyRecord>,
    last_finalized: Option<(Block, Certificate)>,
    /// The node's ledger: finalized digests, index i = height i + 1.
    ledger: Vec<Digest>,
    timers: BTreeMap<(View, TimerKind), u64>,
    crash_pending: bool,
    height_at_heal: Option<u64>,
}

/// Per (key, view): what an honest key signed, to detect double voting across restarts.
#[derive(Default)]
struct Signed {
    notarize: BTreeSet<Digest>,
    nullify: bool,
    finalize: BTreeSet<Digest>,
}

pub struct Simulation {
    scenario: Scenario,
    rng: SimRng,
    now_ms: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    keys: Vec<SigningKey>,
    validators: ValidatorSet,
    namespace: Vec<u8>,
    /// Every block ever sent, for `FetchBlock` (models a block-sync protocol).
    blocks: BTreeMap<Digest, Block>,
    proposed_at: BTreeMap<Digest, u64>,
    finalized_at_height: BTreeMap<u64, Digest>,
    signed: BTreeMap<(ValidatorIndex, View), Signed>,
    hasher: blake3::Hasher,
    violations: Vec<String>,
    timeline: BTreeMap<u64, (u64, Vec<u64>)>,
    messages_delivered: u64,
    evidence_reported: u64,
    rejected_inputs: u64,
}

/// Payloads whose first byte is this are invalid for the simulated application.
const INVALID_MARK: u8 = 0xFF;

impl Simulation {
    pub fn new(scenario: Scenario) -> Simulation {
        let mut rng = SimRng::new(scenario.seed.wrapping_mul(31).wrapping_add(7));
        let keys: Vec<SigningKey> = (0..scenario.n)
            .map(|_| {
                let mut bytes = [0u8; 32];
                for chunk in bytes.chunks_mut(8) {
                    chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
                }
                SigningKey::from_bytes(&bytes)
            })
            .collect();
        let mut validators =
            match ValidatorSet::new(keys.iter().map(|k| k.verifying_key()).collect()) {
                Ok(v) => v,
                Err(e) => unreachable_set(e),
            };
        #[cfg(any(test, feature = "mutation-weak-quorum"))]
        if scenario.weak_quorum {
            validators.weaken_quorum_to_f_plus_one();
        }
        let nodes = scenario
            .node_keys()
            .into_iter()
            .map(|key| Node {
                key,
                behaviour: scenario.behaviours[usize::from(key)],
                engine: None,
                epoch: 0,
                store: Vec::new(),
                last_finalized: None,
                ledger: Vec::new(),
                timers: BTreeMap::new(),
                crash_pending: false,
                height_at_heal: None,
            })
            .collect();
        let _ = &mut validators;
        Simulation {
            rng,
            now_ms: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes,
            keys,
            validators,
            namespace: b"carnet-sim".to_vec(),
            blocks: BTreeMap::new(),
            proposed_at: BTreeMap::new(),
            finalized_at_height: BTreeMap::new(),
            signed: BTreeMap::new(),
            hasher: blake3::Hasher::new(),
            violations: Vec::new(),
            timeline: BTreeMap::new(),
            messages_delivered: 0,
            evidence_reported: 0,
            rejected_inputs: 0,
            scenario,
        }
    }

    fn config(&self) -> Config {
        let s = &self.scenario;
        Config {
            namespace: self.namespace.clone(),
            validators: self.validators.clone(),
            leader_timeout_ms: s.leader_timeout_ms,
            notarization_timeout_ms: s.notarization_timeout_ms,
            retry_timeout_ms: s.retry_timeout_ms,
            leader_skip_after_views: s.leader_skip_after_views,
            max_views_ahead: 32,
            max_block_bytes: 1024,
            last_height: None,
        }
    }

    fn is_honest(&self, node: usize) -> bool {
        self.nodes[node].behaviour == Behaviour::Honest
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), event);
    }

    /// Runs the scenario to its end and checks every invariant.
    pub fn run(mut self) -> Report {
        for node in 0..self.nodes.len() {
            self.boot(node);
        }
        for crash in self.scenario.crashes.clone() {
            self.schedule(crash.at_ms, Event::Crash { node: crash.node });
            self.schedule(crash.restart_ms, Event::Restart { node: crash.node });
        }
        self.schedule(self.scenario.heal_ms, Event::Checkpoint);
        while let Some(((at_ms, _), event)) = self.queue.pop_first() {
            if at_ms > self.scenario.duration_ms {
                break;
            }
            self.now_ms = at_ms;
            self.hasher.update(&at_ms.to_le_bytes());
            self.step(event);
        }
        self.check_liveness();
        Report {
            digest: *self.hasher.finalize().as_bytes(),
            heights: self.nodes.iter().map(|n| n.ledger.len() as u64).collect(),
            violations: self.violations,
            timeline: self.timeline,
            messages_delivered: self.messages_delivered,
            evidence_reported: self.evidence_reported,
            rejected_inputs: self.rejected_inputs,
            views: self
                .nodes
                .iter()
                .map(|n| n.engine.as_ref().map(Engine::view))
                .collect(),
            states: self
                .nodes
                .iter()
                .map(|n| n.engine.as_ref().map_or("down".into(), Engine::describe))
                .collect(),
        }
    }

    fn boot(&mut self, node: usize) {
        if self.nodes[node].behaviour == Behaviour::Silent {
            return;
        }
        let key = self.nodes[node].key;
        let signer = Ed25519Signer::new(key, self.keys[usize::from(key)].clone());
        let restored = Restored {
            safety: self.nodes[node].store.clone(),
            last_finalized: self.nodes[node].last_finalized.clone(),
        };
        let mut engine = Engine::new(self.config(), signer, restored);
        let outputs = engine.start();
        let n = &mut self.nodes[node];
        n.engine = Some(engine);
        n.epoch += 1;
        n.timers.clear();
        self.execute(node, outputs);
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, message } => {
                if self.partitioned(to, from) {
                    return;
                }
                self.messages_delivered += 1;
                self.hasher.update(&[1, to as u8]);
                self.input(to, Input::Message { from, message });
            }
            Event::Timer {
                node,
                epoch,
                view,
                timer,
                generation,
            } => {
                let n = &self.nodes[node];
                if n.epoch != epoch || n.timers.get(&(view, timer)) != Some(&generation) {
                    return;
                }
                self.hasher.update(&[2, node as u8]);
                self.input(node, Input::TimerFired { view, timer });
            }
            Event::App { node, epoch, input } => {
                if self.nodes[node].epoch != epoch {
                    return;
                }
                self.hasher.update(&[3, node as u8]);
                self.input(node, input);
            }
            Event::Crash { node } => {
                self.hasher.update(&[4, node as u8]);
                // Cut the node's next output batch at a random point, then stop it.
                self.nodes[node].crash_pending = true;
            }
            Event::Restart { node } => {
                self.hasher.update(&[5, node as u8]);
                if self.nodes[node].engine.is_none() || self.nodes[node].crash_pending {
                    self.nodes[node].crash_pending = false;
                    self.nodes[node].engine = None;
                    self.boot(node);
                }
            }
            Event::Checkpoint => {
                for n in &mut self.nodes {
                    n.height_at_heal = Some(n.ledger.len() as u64);
                }
            }
        }
    }

    /// Whether a message from key `from` to node `to` is cut by a partition now.
    fn partitioned(&self, to: usize, from: ValidatorIndex) -> bool {
        self.scenario.partitions.iter().any(|p| {
            if self.now_ms < p.start_ms || self.now_ms >= p.end_ms {
                return false;
            }
            let group_to = p.group_of_node.get(to).copied().unwrap_or(0);
            // A key's group is that of its first node.
            let group_from = p.group_of_node.get(usize::from(from)).copied().unwrap_or(0);
            group_to != group_from
        })
    }

    fn input(&mut self, node: usize, input: Input) {
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return;
        };
        #[cfg(test)]
        if std::env::var("CARNET_SIM_TRACE").ok().as_deref() == Some(&node.to_string()) {
            let brief = match &input {
                Input::Message { from, message } => match message {
                    Message::Vote(v) => format!("vote {:?} v{} from {from}", v.kind, v.view),
                    Message::Proposal { block, .. } => format!("proposal v{}", block.view),
                    Message::Certificate(c) => format!("cert {:?} v{}", c.kind, c.view),
                    Message::CertificateRequest { views } => format!("request {views:?}"),
                },
                other => format!("{other:?}").chars().take(80).collect(),
            };
            println!(
                "t{} node{node} [{}] <- {brief}",
                self.now_ms,
                engine.describe().chars().take(60).collect::<String>()
            );
        }
        match engine.handle(input) {
            Ok(outputs) => self.execute(node, outputs),
            Err(_) => self.rejected_inputs += 1,
        }
    }

    fn send(&mut self, from_node: usize, to: Option<ValidatorIndex>, message: Message) {
        let from = self.nodes[from_node].key;
        self.record_sent(from_node, &message);
        for to_node in 0..self.nodes.len() {
            if to_node == from_node {
                continue;
            }
            if let Some(k) = to {
                if self.nodes[to_node].key != k {
                    continue;
                }
            }
            self.send_one(from, to_node, message.clone());
        }
    }

    fn send_one(&mut self, from: ValidatorIndex, to_node: usize, message: Message) {
        if self.rng.chance(self.scenario.loss_per_mille) {
            return;
        }
        let delay = self.scenario.latency_ms + self.rng.below(self.scenario.jitter_ms + 1);
        self.schedule(
            self.now_ms + delay,
            Event::Deliver {
                to: to_node,
                from,
                message,
            },
        );
    }

    /// Invariant: no honest key signs two conflicting votes in one view, across restarts.
    fn record_sent(&mut self, from_node: usize, message: &Message) {
        if let Message::Proposal { block, .. } = message {
            self.blocks.insert(block.digest(), block.clone());
            self.proposed_at
                .entry(block.digest())
                .or_insert(self.now_ms);
        }
        if !self.is_honest(from_node) {
            return;
        }
        let vote = match message {
            Message::Proposal { vote, .. } | Message::Vote(vote) => vote,
            Message::Certificate(_) | Message::CertificateRequest { .. } => return,
        };
        let key = self.nodes[from_node].key;
        let entry = self.signed.entry((key, vote.view)).or_default();
        match (vote.kind, vote.digest) {
            (VoteKind::Notarize, Some(d)) => {
                entry.notarize.insert(d);
            }
            (VoteKind::Finalize, Some(d)) => {
                entry.finalize.insert(d);
            }
            (VoteKind::Nullify, _) => entry.nullify = true,
            _ => {}
        }
        if entry.notarize.len() > 1
            || entry.finalize.len() > 1
            || (entry.nullify && !entry.finalize.is_empty())
        {
            self.violations.push(format!(
                "honest validator {key} signed conflicting votes in view {}",
                vote.view
            ));
        }
    }

    fn execute(&mut self, node: usize, outputs: Vec<Output>) {
        let cut = if self.nodes[node].crash_pending {
            Some(self.rng.below(outputs.len() as u64 + 1) as usize)
        } else {
            None
        };
        for (i, output) in outputs.into_iter().enumerate() {
            if cut == Some(i) {
                break;
            }
            self.execute_one(node, output);
        }
        if cut.is_some() {
            let n = &mut self.nodes[node];
            n.engine = None;
            n.crash_pending = false;
            n.epoch += 1;
        }
    }

    fn execute_one(&mut self, node: usize, output: Output) {
        let behaviour = self.nodes[node].behaviour;
        match output {
            Output::Persist(record) => self.nodes[node].store.push(record),
            Output::Broadcast(message) => self.broadcast(node, behaviour, message),
            Output::SendTo { to, message } => self.send(node, Some(to), message),
            Output::SetTimer {
                view,
                timer,
                after_ms,
            } => {
                let n = &mut self.nodes[node];
                let generation = n.timers.get(&(view, timer)).copied().unwrap_or(0) + 1;
                n.timers.insert((view, timer), generation);
                n.timers.retain(|(v, _), _| *v + 2 >= view);
                let epoch = n.epoch;
                self.schedule(
                    self.now_ms + after_ms,
                    Event::Timer {
                        node,
                        epoch,
                        view,
                        timer,
                        generation,
                    },
                );
            }
            Output::RequestProposal { view, height, .. } => {
                let mut payload = Vec::with_capacity(16);
                if behaviour == Behaviour::InvalidBlocks {
                    payload.push(INVALID_MARK);
                } else {
                    payload.push(0);
                }
                payload.extend_from_slice(&(node as u16).to_le_bytes());
                payload.extend_from_slice(&view.to_le_bytes());
                payload.extend_from_slice(&height.to_le_bytes());
                self.app(node, Input::ProposalReady { view, payload });
            }
            Output::VerifyBlock { block } => {
                let valid = block.payload.first() != Some(&INVALID_MARK)
                    || behaviour == Behaviour::InvalidBlocks;
                self.app(
                    node,
                    Input::BlockVerified {
                        digest: block.digest(),
                        valid,
                    },
                );
            }
            Output::FetchBlock { digest } => {
                if let Some(block) = self.blocks.get(&digest).cloned() {
                    let epoch = self.nodes[node].epoch;
                    let at = self.now_ms + 2 * self.scenario.latency_ms;
                    self.schedule(
                        at,
                        Event::App {
                            node,
                            epoch,
                            input: Input::BlockFetched { block },
                        },
                    );
                }
            }
            Output::Finalized {
                block,
                finalization,
            } => self.on_finalized(node, block, finalization),
            Output::Evidence(evidence) => {
                self.evidence_reported += 1;
                let genuine = evidence.first.signer == evidence.validator
                    && evidence.second.signer == evidence.validator
                    && evidence.first.view == evidence.second.view
                    && evidence.first != evidence.second;
                let accused = self
                    .nodes
                    .iter()
                    .position(|n| n.key == evidence.validator)
                    .is_some_and(|i| self.is_honest(i));
                if !genuine || accused {
                    self.violations.push(format!(
                        "evidence against honest or malformed: validator {}",
                        evidence.validator
                    ));
                }
            }
            Output::EnteredView { .. } => {}
            Output::SignerFailed { view, .. } => self
                .violations
                .push(format!("node {node} signer failed in view {view}")),
        }
    }

    fn app(&mut self, node: usize, input: Input) {
        let epoch = self.nodes[node].epoch;
        let at = self.now_ms + self.scenario.app_delay_ms;
        self.schedule(at, Event::App { node, epoch, input });
    }

    fn sign(
        &self,
        key: ValidatorIndex,
        kind: VoteKind,
        view: View,
        digest: Option<Digest>,
    ) -> SignedVote {
        let signer = Ed25519Signer::new(key, self.keys[usize::from(key)].clone());
        let message = vote_message(&self.namespace, kind, view, digest.as_ref());
        let signature = match signer.sign(&message) {
            Ok(s) => s.to_bytes().to_vec(),
            Err(_) => vec![0; 64],
        };
        SignedVote {
            kind,
            view,
            digest,
            signer: key,
            signature,
        }
    }

    /// Byzantine behaviours act here, on the way out of an otherwise correct engine.
    fn broadcast(&mut self, node: usize, behaviour: Behaviour, message: Message) {
        let key = self.nodes[node].key;
        let split = self.rng.next_u64();
        let halves: (Vec<usize>, Vec<usize>) = (0..self.nodes.len())
            .filter(|&i| i != node)
            .partition(|i| (split >> (i % 64)) & 1 == 0);
        match (behaviour, &message) {
            (Behaviour::EquivocatingLeader, Message::Proposal { block, .. }) => {
                let mut other = block.clone();
                other.payload.push(0xEE);
                let vote = self.sign(key, VoteKind::Notarize, other.view, Some(other.digest()));
                let second = Message::Proposal { block: other, vote };
                self.record_sent(node, &message);
                self.record_sent(node, &second);
                self.send_split(key, halves, message, second);
            }
            (Behaviour::EquivocatingVoter, Message::Vote(vote)) => {
                let conflicting = match vote.kind {
                    VoteKind::Notarize => {
                        let mut d = vote.digest.unwrap_or_default();
                        d[0] ^= 1;
                        self.sign(key, VoteKind::Notarize, vote.view, Some(d))
                    }
                    VoteKind::Nullify => {
                        let d = self.rng.next_u64().to_le_bytes();
                        let mut digest = [0u8; 32];
                        digest[..8].copy_from_slice(&d);
                        self.sign(key, VoteKind::Finalize, vote.view, Some(digest))
                    }
                    VoteKind::Finalize => self.sign(key, VoteKind::Nullify, vote.view, None),
                };
                let second = Message::Vote(conflicting);
                self.send_split(key, halves, message, second);
            }
            _ => self.send(node, None, message),
        }
    }

    /// One half gets `first`, the other `second`; a quarter of the second half (sloppy
    /// equivocator) gets both, so that honest validators can produce evidence.
    fn send_split(
        &mut self,
        key: ValidatorIndex,
        halves: (Vec<usize>, Vec<usize>),
        first: Message,
        second: Message,
    ) {
        for i in halves.0 {
            self.send_one(key, i, first.clone());
        }
        for i in halves.1 {
            if self.rng.chance(250) {
                self.send_one(key, i, first.clone());
            }
            self.send_one(key, i, second.clone());
        }
    }

    /// Invariants: each node's ledger grows by one height at a time along parent links;
    /// no two different blocks are finalized at one height by honest nodes (hence every
    /// honest ledger is a prefix of every other); no invalid payload is finalized.
    fn on_finalized(&mut self, node: usize, block: Block, finalization: Certificate) {
        let digest = block.digest();
        self.hasher.update(&[6, node as u8]);
        self.hasher.update(&digest);
        let honest = self.is_honest(node);
        let n = &mut self.nodes[node];
        let expected_height = n.ledger.len() as u64 + 1;
        let expected_parent = n
            .ledger
            .last()
            .copied()
            .unwrap_or_else(|| Block::genesis(&self.namespace).digest());
        if honest && (block.height != expected_height || block.parent != expected_parent) {
            self.violations.push(format!(
                "node {node} finalized height {} out of order (expected {expected_height})",
                block.height
            ));
        }
        n.ledger.push(digest);
        n.last_finalized = Some((block.clone(), finalization));
        if !honest {
            return;
        }
        if block.payload.first() == Some(&INVALID_MARK) {
            self.violations.push(format!(
                "node {node} finalized an invalid payload at {}",
                block.height
            ));
        }
        match self.finalized_at_height.get(&block.height) {
            Some(existing) if *existing != digest => self.violations.push(format!(
                "SAFETY: two different blocks finalized at height {}",
                block.height
            )),
            Some(_) => {}
            None => {
                self.finalized_at_height.insert(block.height, digest);
            }
        }
        let proposed = self.proposed_at.get(&digest).copied().unwrap_or(0);
        let entry = self
            .timeline
            .entry(block.height)
            .or_insert((proposed, Vec::new()));
        entry.1.push(self.now_ms);
    }

    /// Invariant: after the network heals with at most f faulty keys, every honest
    /// node finalizes a new block within the bound.
    fn check_liveness(&mut self) {
        let faulty = self
            .scenario
            .behaviours
            .iter()
            .filter(|b| **b != Behaviour::Honest)
            .count();
        if faulty > self.validators.f() || self.scenario.weak_quorum {
            return;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.behaviour != Behaviour::Honest {
                continue;
            }
            let before = n.height_at_heal.unwrap_or(0);
            if n.engine.is_none() {
                self.violations.push(format!("node {i} is down at the end"));
            } else if n.ledger.len() as u64 <= before {
                self.violations.push(format!(
                    "LIVENESS: node {i} finalized nothing within {} ms after healing (height {before})",
                    self.scenario.liveness_bound_ms
                ));
            }
        }
    }
}

/// The simulator builds its validator set from distinct generated keys; a failure is a
/// bug in the simulator itself.
#[allow(clippy::panic)]
fn unreachable_set(e: crate::ConsensusError) -> ValidatorSet {
    panic!("simulator generated an invalid validator set: {e}")
}

/// Runs one seed's scenario.
pub fn run_seed(seed: u64) -> Report {
    Simulation::new(Scenario::from_seed(seed)).run()
}

/// Throughput and latency of a fault-free run, in units of the one-way latency δ.
#[derive(Clone, Debug)]
pub struct HappyPathFigures {
    pub n: usize,
    pub blocks_finalized: u64,
    pub blocks_per_delta: f64,
    pub block_interval_delta: f64,
    /// Mean over blocks and honest nodes of (finalized at - proposed at) / δ.
    pub finality_delta: f64,
}

/// Runs `n` honest validators with uniform latency δ = `delta_ms`, no jitter or loss,
/// and instant application answers.
pub fn happy_path_figures(n: usize, delta_ms: u64, duration_ms: u64) -> HappyPathFigures {
    let report = Simulation::new(Scenario::happy(1, n, delta_ms, duration_ms)).run();
    let delta = delta_ms as f64;
    let blocks = report.heights.iter().min().copied().unwrap_or(0);
    let proposals: Vec<u64> = report.timeline.values().map(|(p, _)| *p).collect();
    let interval = match (proposals.first(), proposals.last()) {
        (Some(a), Some(b)) if proposals.len() > 1 => (b - a) as f64 / (proposals.len() - 1) as f64,
        _ => f64::NAN,
    };
    let mut latency_sum = 0.0;
    let mut samples = 0u64;
    for (proposed, finals) in report.timeline.values() {
        for t in finals {
            latency_sum += (t - proposed) as f64;
            samples += 1;
        }
    }
    HappyPathFigures {
        n,
        blocks_finalized: blocks,
        blocks_per_delta: blocks as f64 / (duration_ms as f64 / delta),
        block_interval_delta: interval / delta,
        finality_delta: latency_sum / samples.max(1) as f64 / delta,
    }
}
