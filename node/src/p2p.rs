//! Peer-to-peer networking between member nodes: libp2p over TCP with Noise and Yamux,
//! an allow-list holding exactly the genesis members' node keys, gossipsub for consensus
//! messages and transactions, and a request-response protocol for catch-up, ciphertext
//! fetches and document-key delivery.
//!
//! This module moves bytes and decodes them within stated bounds; it must never accept a
//! connection from a peer outside the allow-list, never decode without a size limit, and
//! never interpret consensus or contract rules (that is the driver's and the handlers').

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use carnet_consensus::{Block, Message, ValidatorIndex};
use carnet_contracts::envelope::WrappedKeys;
use carnet_contracts::{AdminCode, DocumentId, SignedTransaction};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, gossipsub, noise, request_response, tcp, yamux, Multiaddr, PeerId,
    StreamProtocol, Swarm,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::storage::StoredBlock;

pub const TOPIC_CONSENSUS: &str = "carnet/consensus/1";
pub const TOPIC_TX: &str = "carnet/tx/1";
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
const REDIAL_INTERVAL: Duration = Duration::from_secs(2);

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
    /// A ciphertext by its blake3 hash.
    GetCiphertext { hash: [u8; 32] },
    /// A (possibly not yet finalized) block by digest, for the consensus engine.
    GetBlock { digest: [u8; 32] },
    /// Document keys wrapped to the receiving administration's encryption key.
    DeliverKeys {
        document: DocumentId,
        version: u32,
        wrapped: WrappedKeys,
    },
}

/// Responses of `/carnet/sync/1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    Blocks(Vec<StoredBlock>),
    Ciphertext(Option<Vec<u8>>),
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

/// Decodes a gossiped transaction (bounded).
pub fn decode_tx_gossip(bytes: &[u8]) -> Result<TxGossip, String> {
    bounded_decode(bytes, MAX_GOSSIP_BYTES)
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

/// A genesis member as the network sees it.
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
    /// A decoded transaction with its ciphertext.
    fn transaction(&self, from: &Member, gossip: TxGossip);
    /// A sync request from a member; returns the response to send.
    fn request(&self, from: &Member, request: SyncRequest) -> SyncResponse;
    /// A member connected (used to trigger catch-up).
    fn connected(&self, _member: &Member) {}
}

/// Commands to the network task.
#[derive(Debug)]
pub enum NetCommand {
    PublishConsensus(Vec<u8>),
    PublishTx(Vec<u8>),
    /// A sync request to `peer` (or any connected member when `None`).
    Request {
        peer: Option<PeerId>,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, String>>,
    },
}

/// Handle to the network task.
#[derive(Clone, Debug)]
pub struct Network {
    commands: mpsc::Sender<NetCommand>,
    pub local_peer_id: PeerId,
}

impl Network {
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
    /// PeerId → member, for exactly the genesis administrations.
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
                .validation_mode(gossipsub::ValidationMode::Strict)
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
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
    let task = NetworkTask {
        swarm,
        config,
        inbound,
        metrics,
        status,
        pending: HashMap::new(),
        connected: HashSet::new(),
        next_peer: 0,
    };
    tokio::spawn(task.run(rx));
    Ok(Network {
        commands: tx,
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
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl NetworkTask {
    async fn run(mut self, mut commands: mpsc::Receiver<NetCommand>) {
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        loop {
            tokio::select! {
                _ = redial.tick() => self.redial(),
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
            if self.connected.contains(&peer) {
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

    fn publish(&mut self, topic: &str, bytes: Vec<u8>) {
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(topic), bytes)
        {
            tracing::debug!(topic, "publish: {e}");
        }
    }

    fn command(&mut self, command: NetCommand) {
        match command {
            NetCommand::PublishConsensus(bytes) => self.publish(TOPIC_CONSENSUS, bytes),
            NetCommand::PublishTx(bytes) => self.publish(TOPIC_TX, bytes),
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
                    tracing::warn!(%send_back_addr, "refused connection from a peer outside the genesis members: {cause}");
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
        let gossipsub::Event::Message { message, .. } = event else {
            return;
        };
        // Strict validation guarantees a verified signature by `source`.
        let Some(member) = message
            .source
            .and_then(|s| self.config.members.get(&s))
            .cloned()
        else {
            self.metrics.reject("gossip_unknown_source");
            return;
        };
        let topic = message.topic.as_str();
        if topic == TOPIC_CONSENSUS {
            let Some(from) = member.validator else {
                self.metrics.reject("consensus_from_non_validator");
                return;
            };
            match decode_consensus(&message.data) {
                Ok(msg) => self.inbound.consensus(from, msg),
                Err(e) => {
                    self.metrics.reject("consensus_decode");
                    tracing::warn!(administration = %member.code, "undecodable consensus message: {e}");
                }
            }
        } else if topic == TOPIC_TX {
            match decode_tx_gossip(&message.data) {
                Ok(gossip) => self.inbound.transaction(&member, gossip),
                Err(e) => {
                    self.metrics.reject("tx_decode");
                    tracing::warn!(administration = %member.code, "undecodable transaction: {e}");
                }
            }
        } else {
            self.metrics.reject("unknown_topic");
        }
    }

    fn sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = match self.config.members.get(&peer) {
                        Some(member) => self.inbound.request(member, request),
                        None => {
                            self.metrics.reject("request_from_non_member");
                            SyncResponse::Nack("not a member".into())
                        }
                    };
                    if self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response)
                        .is_err()
                    {
                        tracing::debug!(%peer, "response not sent: stream closed");
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
