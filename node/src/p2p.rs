//! Peer-to-peer networking between member nodes: libp2p over TCP with Noise and Yamux,
//! an allow-list holding exactly the node keys of the ledger's active members, gossipsub
//! for consensus messages and transactions, and a request-response protocol for catch-up,
//! ciphertext fetches and document-key delivery.
//!
//! The allow-list follows the ledger: the node starts with the active members of its
//! committed state and the driver replaces the set ([`Network::set_members`]) when a
//! finalized block admits or removes a member. A removed member's node is disconnected at
//! once and its connections, gossip and sync requests are refused from then on.
//!
//! This module moves bytes and decodes them within stated bounds; it must never accept a
//! connection from a peer outside the allow-list, never keep a connection to a peer that
//! left it, never decode without a size limit, and never interpret consensus or contract
//! rules (that is the driver's and the handlers').

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use carnet_consensus::{Block, Message, ValidatorIndex};
use carnet_contracts::envelope::WrappedKeys;
use carnet_contracts::{AdminCode, Administration, DocumentId, SignedTransaction};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, gossipsub, noise, request_response, tcp, yamux, Multiaddr, PeerId,
    StreamProtocol, Swarm,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::storage::StoredBlock;

pub const TOPIC_CONSENSUS: &str = "carnet/consensus/1";
/// Transactions, gossiped in batches (`Vec<TxGossip>`, at most [`MAX_TX_GOSSIP_BATCH`]).
pub const TOPIC_TX: &str = "carnet/tx/2";
pub const SYNC_PROTOCOL: &str = "/carnet/sync/1";
/// Largest gossip message (a proposal carrying a full block, or a tx with ciphertext).
pub const MAX_GOSSIP_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;
/// Largest sync request on the wire.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Largest sync response on the wire.
pub const MAX_RESPONSE_BYTES: usize = 48 * 1024 * 1024;
/// Most blocks returned by one `GetBlocks`.
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 128;
/// Bound of the command queue into the network task.
pub const COMMAND_QUEUE: usize = 4096;
/// Most transactions in one gossip message. The network task gathers the transactions
/// to publish for up to [`TX_GOSSIP_LINGER`] (and publishes them before any consensus
/// message, so a proposal never overtakes the transactions it carries), so that one
/// gossip message — one gossip signature, one check of it per receiving peer, one frame
/// per connection — carries many transactions.
pub const MAX_TX_GOSSIP_BATCH: usize = 512;
/// Longest a transaction waits for others to share its gossip message.
pub const TX_GOSSIP_LINGER: Duration = Duration::from_millis(5);
/// Most bytes of transactions in one gossip message (room left for gossipsub's framing).
const MAX_TX_BATCH_BYTES: usize = MAX_GOSSIP_BYTES - 64 * 1024;
const REDIAL_INTERVAL: Duration = Duration::from_secs(2);
/// Gossip frame header: the publisher's sequence number (8 bytes, little-endian) and,
/// on the consensus topic, the publisher's validator index (2 bytes). See ADR 0013.
const FRAME_SEQ_BYTES: usize = 8;
const FRAME_FROM_BYTES: usize = 2;

/// Gossip messages are not signed by gossipsub (ADR 0013): every Carnet payload is
/// self-authenticating (transactions carry their signer's signature, votes, proposals
/// and certificates their validators'), and only allow-listed members connect, over
/// Noise. A message is identified by the blake3 hash of its topic and bytes, so a peer
/// can only "pre-empt" an id by sending that very message; each publish starts with
/// the publisher's own sequence number, so re-sending a message (a consensus retry)
/// is a new message rather than a duplicate.
fn gossip_message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(message.topic.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&message.data);
    gossipsub::MessageId::from(&hasher.finalize().as_bytes()[..20])
}

/// Splits a gossip frame into its header fields and body: the sequence number, the
/// claimed validator index (consensus topic only) and the payload.
fn split_frame(
    data: &[u8],
    with_from: bool,
) -> Result<(u64, Option<ValidatorIndex>, &[u8]), String> {
    let header = FRAME_SEQ_BYTES + if with_from { FRAME_FROM_BYTES } else { 0 };
    if data.len() < header {
        return Err(format!(
            "gossip frame of {} bytes: header truncated",
            data.len()
        ));
    }
    let (head, body) = data.split_at(header);
    let mut seq = [0u8; FRAME_SEQ_BYTES];
    seq.copy_from_slice(&head[..FRAME_SEQ_BYTES]);
    let from = with_from.then(|| {
        let mut from = [0u8; FRAME_FROM_BYTES];
        from.copy_from_slice(&head[FRAME_SEQ_BYTES..]);
        ValidatorIndex::from_le_bytes(from)
    });
    Ok((u64::from_le_bytes(seq), from, body))
}

/// A gossip frame: sequence number, the validator index when `from` is given, body.
fn frame(seq: u64, from: Option<ValidatorIndex>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_SEQ_BYTES + FRAME_FROM_BYTES + body.len());
    out.extend_from_slice(&seq.to_le_bytes());
    if let Some(from) = from {
        out.extend_from_slice(&from.to_le_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// A transaction as gossiped: the ciphertext travels beside the transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxGossip {
    pub tx: SignedTransaction,
    pub ciphertext: Option<Vec<u8>>,
}

/// Requests of `/carnet/sync/1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Finalized blocks from `from_height`, at most `max` (capped by the responder).
    GetBlocks { from_height: u64, max: u32 },
    /// Ciphertexts by their blake3 hashes, at most [`MAX_CIPHERTEXTS_PER_REQUEST`]; the
    /// answer carries one entry per hash, in order (`None`: not held, or past the
    /// response's byte bound).
    GetCiphertexts { hashes: Vec<[u8; 32]> },
    /// A (possibly not yet finalized) block by digest, for the consensus engine.
    GetBlock { digest: [u8; 32] },
    /// The keys of document versions, 1 to `envelope::MAX_KEYS_PER_WRAP`, wrapped
    /// together (`envelope::wrap_key_batch`) to the receiving administration's
    /// encryption key. Answered with one [`KeyReceipt`] per version, in order.
    DeliverKeys {
        versions: Vec<(DocumentId, u32)>,
        wrapped: WrappedKeys,
    },
}

/// Most hashes in one [`SyncRequest::GetCiphertexts`].
pub const MAX_CIPHERTEXTS_PER_REQUEST: usize = 256;

/// What the recipient did with one version of a [`SyncRequest::DeliverKeys`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyReceipt {
    /// The keys opened the ciphertext, matched the commitment and are durable here.
    Stored,
    /// Refused, with the reason (the sender may retry later).
    Refused(String),
}

/// Responses of `/carnet/sync/1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    Blocks(Vec<StoredBlock>),
    Ciphertexts(Vec<Option<Vec<u8>>>),
    KeyReceipts(Vec<KeyReceipt>),
    Block(Option<Block>),
    Ack,
    /// Refused, with the reason (the sender may retry later).
    Nack(String),
}

fn bounded_decode<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, String> {
    use bincode::Options as _;
    if bytes.len() > limit {
        return Err(format!("{} bytes over the limit of {limit}", bytes.len()));
    }
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit as u64)
        .reject_trailing_bytes()
        .deserialize(bytes)
        .map_err(|e| e.to_string())
}

/// Decodes a gossiped consensus message (bounded).
pub fn decode_consensus(bytes: &[u8]) -> Result<Message, String> {
    bounded_decode(bytes, MAX_GOSSIP_BYTES)
}

/// Decodes a gossiped batch of transactions (bounded in bytes and count).
pub fn decode_tx_gossip(bytes: &[u8]) -> Result<Vec<TxGossip>, String> {
    // bincode (fixint) encodes a sequence as its u64 length, then the items.
    let count = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or("transaction batch: truncated")?;
    if count == 0 || count > MAX_TX_GOSSIP_BATCH as u64 {
        return Err(format!(
            "transaction batch of {count}: 1 to {MAX_TX_GOSSIP_BATCH} expected"
        ));
    }
    bounded_decode(bytes, MAX_GOSSIP_BYTES)
}

/// Joins encoded [`TxGossip`]s into the encoding of the `Vec<TxGossip>` that
/// [`decode_tx_gossip`] reads.
fn encode_tx_batch(items: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = items.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// Length-prefixed bincode codec with size limits for `/carnet/sync/1`.
#[derive(Clone, Debug, Default)]
pub struct SyncCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over the limit of {limit}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
    limit: usize,
) -> io::Result<()> {
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame over the limit",
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[async_trait::async_trait]
impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncRequest> {
        let bytes = read_frame(io, MAX_REQUEST_BYTES).await?;
        bounded_decode(&bytes, MAX_REQUEST_BYTES).map_err(invalid)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncResponse> {
        let bytes = read_frame(io, MAX_RESPONSE_BYTES).await?;
        bounded_decode(&bytes, MAX_RESPONSE_BYTES).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()> {
        write_frame(io, &crate::storage::encode(&req), MAX_REQUEST_BYTES).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()> {
        write_frame(io, &crate::storage::encode(&res), MAX_RESPONSE_BYTES).await
    }
}

#[derive(NetworkBehaviour)]
struct CarnetBehaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
}

/// An active member as the network sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub code: AdminCode,
    pub validator: Option<ValidatorIndex>,
}

/// What the network hands to the rest of the node. Implementations must be quick: they
/// run on the network task.
pub trait Inbound: Send + Sync + 'static {
    /// A decoded consensus message from validator `from`.
    fn consensus(&self, from: ValidatorIndex, message: Message);
    /// A decoded batch of transactions with their ciphertexts.
    fn transactions(&self, from: &Member, batch: Vec<TxGossip>);
    /// A sync request from a member; returns the response to send.
    fn request(&self, from: &Member, request: SyncRequest) -> Reply;
    /// A member connected (used to trigger catch-up).
    fn connected(&self, _member: &Member) {}
}

/// The answer to a sync request: at once, or later from work that must not run on the
/// network task (the request's stream stays open meanwhile, within the protocol's
/// timeout and its bound on concurrent streams).
#[derive(Debug)]
pub enum Reply {
    Now(SyncResponse),
    Later(oneshot::Receiver<SyncResponse>),
}

/// Commands to the network task.
#[derive(Debug)]
pub enum NetCommand {
    PublishConsensus(Vec<u8>),
    /// One encoded [`TxGossip`]; published in a batch with the others queued.
    PublishTx(Vec<u8>),
    /// A [`Reply::Later`] that arrived: the network task sends it on its stream.
    Respond {
        channel: request_response::ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    /// A sync request to `peer` (or any connected member when `None`).
    Request {
        peer: Option<PeerId>,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, String>>,
    },
}

/// Most members the allow-list holds (the ledger's bound on administrations).
pub const MAX_MEMBERS: usize = carnet_contracts::execute::MAX_ADMINISTRATIONS;

/// How the allow-list changed when it was replaced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MembershipDelta {
    /// Peers allowed now that were not before, sorted.
    pub added: Vec<PeerId>,
    /// Peers no longer allowed, sorted.
    pub removed: Vec<PeerId>,
}

/// The allow-list for the administrations on the ledger: the node key of every active
/// one, with its index in the consensus validator set `validator_admins` (if any).
/// Inactive (removed) administrations are left out; an error names a node key that is
/// not an ed25519 key or a list over [`MAX_MEMBERS`].
pub fn members_from_ledger(
    administrations: &[Administration],
    validator_admins: &[AdminCode],
) -> Result<HashMap<PeerId, Member>, String> {
    if administrations.len() > MAX_MEMBERS {
        return Err(format!(
            "{} administrations over the bound of {MAX_MEMBERS}",
            administrations.len()
        ));
    }
    let mut members = HashMap::new();
    for a in administrations.iter().filter(|a| a.active) {
        let peer = crate::config::peer_id_of(&a.node_key.0)
            .ok_or_else(|| format!("node key of {} is not ed25519", a.code))?;
        let validator = validator_admins
            .iter()
            .position(|v| *v == a.code)
            .and_then(|i| ValidatorIndex::try_from(i).ok());
        members.insert(
            peer,
            Member {
                code: a.code.clone(),
                validator,
            },
        );
    }
    Ok(members)
}

/// The difference between the allow-list `old` and `new` (the local peer is never on it).
pub fn membership_delta(
    old: &HashMap<PeerId, Member>,
    new: &HashMap<PeerId, Member>,
    local: &PeerId,
) -> MembershipDelta {
    let mut added: Vec<PeerId> = new
        .keys()
        .filter(|p| *p != local && !old.contains_key(p))
        .copied()
        .collect();
    let mut removed: Vec<PeerId> = old
        .keys()
        .filter(|p| *p != local && !new.contains_key(p))
        .copied()
        .collect();
    added.sort();
    removed.sort();
    MembershipDelta { added, removed }
}

/// Handle to the network task.
#[derive(Clone, Debug)]
pub struct Network {
    commands: mpsc::Sender<NetCommand>,
    /// The latest allow-list; only the newest value matters, so a slow network task
    /// never queues more than one.
    members: Arc<watch::Sender<HashMap<PeerId, Member>>>,
    pub local_peer_id: PeerId,
}

impl Network {
    /// Replaces the allow-list with `members`, the ledger's active members (at most
    /// [`MAX_MEMBERS`]): peers that left it are disconnected and refused, new ones allowed.
    pub fn set_members(&self, members: HashMap<PeerId, Member>) {
        self.members.send_replace(members);
    }

    /// Queues a command; drops it (returns false) when the queue is full.
    pub fn try_send(&self, command: NetCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Sends a request and waits for its answer at most `timeout`.
    pub async fn request(
        &self,
        peer: Option<PeerId>,
        request: SyncRequest,
        timeout: Duration,
    ) -> Result<SyncResponse, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(NetCommand::Request {
                peer,
                request,
                reply,
            })
            .await
            .map_err(|_| "network stopped".to_string())?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("network dropped the request".into()),
            Err(_) => Err("request timed out".into()),
        }
    }
}

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub listen: Multiaddr,
    pub peers: Vec<Multiaddr>,
    /// PeerId → member, for exactly the active administrations of the committed ledger.
    pub members: HashMap<PeerId, Member>,
}

/// Counts of the network, shared with the API.
#[derive(Debug, Default)]
pub struct NetStatus {
    pub connected: std::sync::atomic::AtomicUsize,
}

/// Builds the swarm, starts listening and spawns the network task.
pub fn spawn(
    keypair: libp2p::identity::Keypair,
    config: NetConfig,
    inbound: Arc<dyn Inbound>,
    metrics: Arc<Metrics>,
    status: Arc<NetStatus>,
) -> Result<Network, String> {
    let local_peer_id = keypair.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("transport: {e}"))?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(MAX_GOSSIP_BYTES)
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .message_id_fn(gossip_message_id)
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .map_err(|e| e.to_string())?;
            let _ = key;
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?;
            let sync = request_response::Behaviour::with_codec(
                SyncCodec,
                [(
                    StreamProtocol::new(SYNC_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(256),
            );
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(CarnetBehaviour {
                allowed: allow_block_list::Behaviour::default(),
                gossipsub,
                sync,
            })
        })
        .map_err(|e| format!("behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for peer in config.members.keys() {
        if *peer != local_peer_id {
            swarm.behaviour_mut().allowed.allow_peer(*peer);
        }
    }
    for topic in [TOPIC_CONSENSUS, TOPIC_TX] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&gossipsub::IdentTopic::new(topic))
            .map_err(|e| format!("subscribe {topic}: {e}"))?;
    }
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| format!("listen on {}: {e}", config.listen))?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (members_tx, members_rx) = watch::channel(config.members.clone());
    let task = NetworkTask {
        swarm,
        config,
        inbound,
        metrics,
        status,
        pending: HashMap::new(),
        connected: HashSet::new(),
        next_peer: 0,
        tx_batch: Vec::new(),
        tx_batch_bytes: 0,
        tx_flush_at: None,
        own_commands: tx.downgrade(),
        // Starts from the clock so that a restarted node does not reuse the ids of the
        // messages it sent before (gossipsub remembers ids for a minute).
        publish_seq: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    };
    tokio::spawn(task.run(rx, members_rx));
    Ok(Network {
        commands: tx,
        members: Arc::new(members_tx),
        local_peer_id,
    })
}

type Pending =
    HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>;

struct NetworkTask {
    swarm: Swarm<CarnetBehaviour>,
    config: NetConfig,
    inbound: Arc<dyn Inbound>,
    metrics: Arc<Metrics>,
    status: Arc<NetStatus>,
    pending: Pending,
    connected: HashSet<PeerId>,
    next_peer: usize,
    /// Encoded transactions waiting to be published together (at most
    /// [`MAX_TX_GOSSIP_BATCH`] and [`MAX_TX_BATCH_BYTES`]), their bytes, and when they
    /// go at the latest.
    tx_batch: Vec<Vec<u8>>,
    tx_batch_bytes: usize,
    tx_flush_at: Option<tokio::time::Instant>,
    /// The task's own command queue, for answers that come later ([`Reply::Later`]).
    own_commands: mpsc::WeakSender<NetCommand>,
    /// Sequence number of the next gossip message published (see [`frame`]).
    publish_seq: u64,
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl NetworkTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<NetCommand>,
        mut members: watch::Receiver<HashMap<PeerId, Member>>,
    ) {
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        loop {
            let flush_at = self.tx_flush_at;
            tokio::select! {
                _ = redial.tick() => self.redial(),
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)),
                    if flush_at.is_some() => self.publish_txs(),
                changed = members.changed() => match changed {
                    Ok(()) => {
                        let members = members.borrow_and_update().clone();
                        self.set_members(members);
                    }
                    Err(_) => return,
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.event(event),
            }
        }
    }

    fn redial(&mut self) {
        for addr in self.config.peers.clone() {
            let Some(peer) = peer_of(&addr) else { continue };
            // A configured peer that is not (or no longer) a member is not dialed.
            if self.connected.contains(&peer) || !self.config.members.contains_key(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, "dial: {e}");
            }
        }
    }

    fn publish(&mut self, topic: &str, body: Vec<u8>) {
        let from = if topic == TOPIC_CONSENSUS {
            let local = *self.swarm.local_peer_id();
            match self.config.members.get(&local).and_then(|m| m.validator) {
                Some(index) => Some(index),
                None => {
                    tracing::debug!("consensus message not published: not a validator");
                    return;
                }
            }
        } else {
            None
        };
        self.publish_seq = self.publish_seq.wrapping_add(1);
        let bytes = frame(self.publish_seq, from, &body);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(topic), bytes)
        {
            tracing::debug!(topic, "publish: {e}");
        }
    }

    /// Adds an encoded transaction to the batch being gathered; publishes the batch when
    /// it is full, otherwise at the latest [`TX_GOSSIP_LINGER`] after its first one.
    fn queue_tx(&mut self, bytes: Vec<u8>) {
        if self.tx_batch_bytes + bytes.len() > MAX_TX_BATCH_BYTES {
            self.publish_txs();
        }
        self.tx_batch_bytes += bytes.len();
        self.tx_batch.push(bytes);
        if self.tx_batch.len() >= MAX_TX_GOSSIP_BATCH {
            self.publish_txs();
        } else if self.tx_flush_at.is_none() {
            self.tx_flush_at = Some(tokio::time::Instant::now() + TX_GOSSIP_LINGER);
        }
    }

    /// Publishes the gathered transactions, if any, as one message.
    fn publish_txs(&mut self) {
        self.tx_flush_at = None;
        self.tx_batch_bytes = 0;
        if self.tx_batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.tx_batch);
        self.publish(TOPIC_TX, encode_tx_batch(&batch));
    }

    fn command(&mut self, command: NetCommand) {
        match command {
            NetCommand::PublishConsensus(bytes) => {
                // Transactions first: a proposal must not overtake what it carries.
                self.publish_txs();
                self.publish(TOPIC_CONSENSUS, bytes)
            }
            NetCommand::PublishTx(bytes) => self.queue_tx(bytes),
            NetCommand::Respond { channel, response } => self.respond(channel, response),
            NetCommand::Request {
                peer,
                request,
                reply,
            } => {
                let peer = match peer {
                    Some(p) => Some(p),
                    None => {
                        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
                        if peers.is_empty() {
                            None
                        } else {
                            self.next_peer = self.next_peer.wrapping_add(1);
                            Some(peers[self.next_peer % peers.len()])
                        }
                    }
                };
                let Some(peer) = peer else {
                    let _ = reply.send(Err("no connected peer".into()));
                    return;
                };
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending.insert(id, reply);
            }
        }
    }

    /// Replaces the allow-list: removed members' nodes are disconnected at once and
    /// refused from now on; admitted members' nodes may connect.
    fn set_members(&mut self, members: HashMap<PeerId, Member>) {
        if members.len() > MAX_MEMBERS {
            tracing::error!(
                count = members.len(),
                "membership update over the bound of {MAX_MEMBERS} members ignored"
            );
            return;
        }
        let local = *self.swarm.local_peer_id();
        let delta = membership_delta(&self.config.members, &members, &local);
        for peer in &delta.removed {
            let code = self.config.members.get(peer).map(|m| m.code.clone());
            let behaviour = self.swarm.behaviour_mut();
            behaviour.allowed.disallow_peer(*peer);
            behaviour.gossipsub.blacklist_peer(peer);
            let was_connected = self.connected.remove(peer);
            tracing::warn!(
                %peer,
                administration = ?code,
                was_connected,
                "member removed on the ledger: its node is disconnected and refused from now on"
            );
        }
        for peer in &delta.added {
            let behaviour = self.swarm.behaviour_mut();
            behaviour.allowed.allow_peer(*peer);
            behaviour.gossipsub.remove_blacklisted_peer(peer);
            tracing::warn!(
                %peer,
                administration = ?members.get(peer).map(|m| &m.code),
                "member admitted on the ledger: its node may connect"
            );
        }
        self.config.members = members;
        self.update_peers();
    }

    fn event(&mut self, event: SwarmEvent<CarnetBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                if !self.config.members.contains_key(&peer_id) {
                    // Established just before the peer was removed from the allow-list.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.connected.insert(peer_id);
                self.update_peers();
                if let Some(member) = self.config.members.get(&peer_id) {
                    tracing::info!(%peer_id, administration = %member.code, "peer connected");
                    self.inbound.connected(member);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.update_peers();
                tracing::info!(%peer_id, "peer disconnected");
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                if let libp2p::swarm::ListenError::Denied { cause } = &error {
                    self.metrics.refused_connections.inc();
                    tracing::warn!(%send_back_addr, "refused connection from a peer outside the active members: {cause}");
                } else {
                    tracing::debug!(%send_back_addr, "incoming connection failed: {error}");
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let libp2p::swarm::DialError::Denied { cause } = &error {
                    self.metrics.refused_connections.inc();
                    tracing::warn!(?peer_id, "refused outgoing connection: {cause}");
                } else {
                    tracing::debug!(?peer_id, "dial failed: {error}");
                }
            }
            SwarmEvent::Behaviour(CarnetBehaviourEvent::Gossipsub(event)) => self.gossip(event),
            SwarmEvent::Behaviour(CarnetBehaviourEvent::Sync(event)) => self.sync(event),
            _ => {}
        }
    }

    fn update_peers(&self) {
        let n = self.connected.len();
        self.status
            .connected
            .store(n, std::sync::atomic::Ordering::Relaxed);
        self.metrics.peers.set(n as i64);
    }

    fn gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message,
            ..
        } = event
        else {
            return;
        };
        // Gossip is unsigned (ADR 0013): the member it came through is known (Noise,
        // allow-list); what it says is checked by the payload's own signatures.
        let Some(member) = self.config.members.get(&propagation_source).cloned() else {
            self.metrics.reject("gossip_unknown_source");
            return;
        };
        let topic = message.topic.as_str();
        if topic == TOPIC_CONSENSUS {
            let (from, body) = match split_frame(&message.data, true) {
                Ok((_, Some(from), body)) => (from, body),
                _ => {
                    self.metrics.reject("consensus_decode");
                    return;
                }
            };
            if !self
                .config
                .members
                .values()
                .any(|m| m.validator == Some(from))
            {
                self.metrics.reject("consensus_from_non_validator");
                return;
            }
            match decode_consensus(body) {
                Ok(msg) => self.inbound.consensus(from, msg),
                Err(e) => {
                    self.metrics.reject("consensus_decode");
                    tracing::warn!(administration = %member.code, "undecodable consensus message: {e}");
                }
            }
        } else if topic == TOPIC_TX {
            let Ok((_, _, body)) = split_frame(&message.data, false) else {
                self.metrics.reject("tx_decode");
                return;
            };
            match decode_tx_gossip(body) {
                Ok(batch) => self.inbound.transactions(&member, batch),
                Err(e) => {
                    self.metrics.reject("tx_decode");
                    tracing::warn!(administration = %member.code, "undecodable transaction: {e}");
                }
            }
        } else {
            self.metrics.reject("unknown_topic");
        }
    }

    fn respond(
        &mut self,
        channel: request_response::ResponseChannel<SyncResponse>,
        response: SyncResponse,
    ) {
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("response not sent: stream closed");
        }
    }

    fn sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let reply = match self.config.members.get(&peer) {
                        Some(member) => self.inbound.request(member, request),
                        None => {
                            self.metrics.reject("request_from_non_member");
                            Reply::Now(SyncResponse::Nack("not a member".into()))
                        }
                    };
                    match reply {
                        Reply::Now(response) => self.respond(channel, response),
                        Reply::Later(answer) => {
                            let Some(commands) = self.own_commands.upgrade() else {
                                return;
                            };
                            tokio::spawn(async move {
                                let response = answer.await.unwrap_or_else(|_| {
                                    SyncResponse::Nack("the node dropped the request".into())
                                });
                                let _ = commands
                                    .send(NetCommand::Respond { channel, response })
                                    .await;
                            });
                        }
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.metrics.reject("sync_inbound_failure");
                tracing::debug!(%peer, "inbound sync failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::admin;

    fn peer(seed: u8) -> PeerId {
        crate::config::peer_id_of(&admin("ZZ", seed).node_key.0).unwrap()
    }

    fn gossip(topic: &str, data: Vec<u8>) -> gossipsub::Message {
        gossipsub::Message {
            source: None,
            data,
            sequence_number: None,
            topic: gossipsub::IdentTopic::new(topic).hash(),
        }
    }

    #[test]
    fn gossip_frames_carry_sequence_and_sender_and_refuse_short_headers() {
        let framed = frame(7, Some(3), b"vote");
        assert_eq!(
            split_frame(&framed, true).unwrap(),
            (7, Some(3), &b"vote"[..])
        );
        let framed = frame(8, None, b"txs");
        assert_eq!(split_frame(&framed, false).unwrap(), (8, None, &b"txs"[..]));
        // A consensus frame needs the 2-byte sender after the sequence number.
        assert!(split_frame(&frame(9, None, b""), true).is_err());
        assert!(split_frame(&[1, 2, 3], false).is_err());
    }

    #[test]
    fn gossip_ids_are_content_hashes_and_a_resent_message_is_new() {
        let first = gossip(TOPIC_CONSENSUS, frame(1, Some(0), b"vote"));
        let same = gossip(TOPIC_CONSENSUS, frame(1, Some(0), b"vote"));
        let resent = gossip(TOPIC_CONSENSUS, frame(2, Some(0), b"vote"));
        let other_topic = gossip(TOPIC_TX, frame(1, Some(0), b"vote"));
        assert_eq!(gossip_message_id(&first), gossip_message_id(&same));
        assert_ne!(gossip_message_id(&first), gossip_message_id(&resent));
        assert_ne!(gossip_message_id(&first), gossip_message_id(&other_topic));
    }

    fn codes(members: &HashMap<PeerId, Member>) -> Vec<String> {
        let mut codes: Vec<String> = members.values().map(|m| m.code.0.clone()).collect();
        codes.sort();
        codes
    }

    #[test]
    fn transaction_batches_decode_as_published_and_are_bounded() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let gossip = |nonce: u64| TxGossip {
            tx: carnet_contracts::Transaction {
                chain_id: "test".into(),
                signer: carnet_contracts::PublicKey(key.verifying_key().to_bytes()),
                officer: None,
                nonce,
                expires_at_ms: 1,
                action: carnet_contracts::Action::AcceptAgreement {
                    id: carnet_contracts::AgreementId([1; 16]),
                },
            }
            .sign(&key),
            ciphertext: nonce.is_multiple_of(2).then(|| vec![nonce as u8; 10]),
        };
        let items: Vec<Vec<u8>> = (0..3).map(|n| crate::storage::encode(&gossip(n))).collect();
        let batch = decode_tx_gossip(&encode_tx_batch(&items)).unwrap();
        assert_eq!(batch.len(), 3);
        for (n, g) in batch.iter().enumerate() {
            assert_eq!(g.tx, gossip(n as u64).tx);
            assert_eq!(g.ciphertext, gossip(n as u64).ciphertext);
        }
        let too_many = vec![items[0].clone(); MAX_TX_GOSSIP_BATCH + 1];
        assert!(decode_tx_gossip(&encode_tx_batch(&too_many)).is_err());
        assert!(decode_tx_gossip(&encode_tx_batch(&[])).is_err());
        let mut truncated = encode_tx_batch(&items);
        truncated.pop();
        assert!(decode_tx_gossip(&truncated).is_err());
        assert!(decode_tx_gossip(&[1, 0]).is_err());
    }

    #[test]
    fn allow_list_holds_exactly_the_active_members_of_the_ledger() {
        let mut xd = admin("XD", 40);
        xd.active = false;
        let ledger = vec![admin("XA", 10), admin("XB", 20), xd, admin("XE", 50)];
        let validators: Vec<AdminCode> = ["XA", "XB", "XC", "XD"]
            .iter()
            .map(|c| AdminCode((*c).into()))
            .collect();
        let members = members_from_ledger(&ledger, &validators).unwrap();
        assert_eq!(codes(&members), ["XA", "XB", "XE"]);
        assert!(!members.contains_key(&peer(40)), "removed XD refused");
        assert_eq!(members[&peer(10)].validator, Some(0));
        assert_eq!(members[&peer(20)].validator, Some(1));
        assert_eq!(
            members[&peer(50)].validator,
            None,
            "XE admitted, not a validator"
        );
    }

    #[test]
    fn a_removal_and_an_admission_on_the_ledger_change_the_allow_list() {
        let validators: Vec<AdminCode> = ["XA", "XB", "XC", "XD"]
            .iter()
            .map(|c| AdminCode((*c).into()))
            .collect();
        let mut ledger = vec![
            admin("XA", 10),
            admin("XB", 20),
            admin("XC", 30),
            admin("XD", 40),
        ];
        let before = members_from_ledger(&ledger, &validators).unwrap();
        ledger[3].active = false;
        ledger.push(admin("XE", 50));
        let after = members_from_ledger(&ledger, &validators).unwrap();
        let local = peer(10);
        let delta = membership_delta(&before, &after, &local);
        assert_eq!(delta.removed, vec![peer(40)]);
        assert_eq!(delta.added, vec![peer(50)]);
        assert_eq!(
            membership_delta(&after, &after, &local),
            MembershipDelta::default(),
            "an unchanged ledger changes nothing"
        );
    }

    #[test]
    fn the_local_node_is_never_on_its_own_allow_list_delta() {
        let validators = vec![AdminCode("XA".into())];
        let ledger = vec![admin("XA", 10), admin("XB", 20)];
        let before = members_from_ledger(&ledger, &validators).unwrap();
        let mut removed = ledger.clone();
        removed[0].active = false;
        let after = members_from_ledger(&removed, &validators).unwrap();
        let delta = membership_delta(&before, &after, &peer(10));
        assert_eq!(delta, MembershipDelta::default());
    }

    #[test]
    fn a_bad_node_key_or_too_many_administrations_is_an_error() {
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| crate::config::peer_id_of(k).is_none())
            .expect("some byte pattern is not an ed25519 point");
        let mut bad = admin("XA", 10);
        bad.node_key = carnet_contracts::PublicKey(not_a_point);
        let err = members_from_ledger(&[bad], &[]).unwrap_err();
        assert!(err.contains("XA"), "{err}");
        let many = vec![admin("XA", 10); MAX_MEMBERS + 1];
        let err = members_from_ledger(&many, &[]).unwrap_err();
        assert!(err.contains("bound"), "{err}");
    }
}
