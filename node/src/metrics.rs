//! Prometheus metrics of the node (`GET /metrics`).
//!
//! Must never carry document content, keys or officer identities in a label: labels are
//! fixed reason and status strings only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// Every metric the node exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub blocks_finalized: Counter,
    pub height: Gauge,
    pub view: Gauge,
    pub epoch: Gauge,
    pub txs_committed: Counter,
    pub mempool_size: Gauge,
    pub peers: Gauge,
    pub rejected_messages: Family<ReasonLabel, Counter>,
    pub api_requests: Family<StatusLabel, Counter>,
    pub refused_connections: Counter,
    pub equivocations: Counter,
    pub leaders_skipped: Counter,
    pub keys_delivered: Counter,
    pub keys_received: Counter,
    pub key_deliveries_pending: Gauge,
    pub event_streams: Gauge,
    pub events_sent: Counter,
    pub access_records: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("carnet");
        let blocks_finalized = Counter::default();
        let height = Gauge::default();
        let view = Gauge::default();
        let epoch = Gauge::default();
        let txs_committed = Counter::default();
        let mempool_size = Gauge::default();
        let peers = Gauge::default();
        let rejected_messages = Family::<ReasonLabel, Counter>::default();
        let api_requests = Family::<StatusLabel, Counter>::default();
        let refused_connections = Counter::default();
        let equivocations = Counter::default();
        let leaders_skipped = Counter::default();
        let keys_delivered = Counter::default();
        let keys_received = Counter::default();
        let key_deliveries_pending = Gauge::default();
        let event_streams = Gauge::default();
        let events_sent = Counter::default();
        let access_records = Counter::default();
        registry.register(
            "blocks_finalized",
            "Blocks finalized and committed",
            blocks_finalized.clone(),
        );
        registry.register(
            "height",
            "Height of the last finalized block",
            height.clone(),
        );
        registry.register("view", "Current consensus view", view.clone());
        registry.register(
            "epoch",
            "Current consensus epoch (validator set)",
            epoch.clone(),
        );
        registry.register(
            "txs_committed",
            "Transactions in finalized blocks",
            txs_committed.clone(),
        );
        registry.register(
            "mempool_size",
            "Transactions waiting in the mempool",
            mempool_size.clone(),
        );
        registry.register("peers", "Connected member nodes", peers.clone());
        registry.register(
            "rejected_messages",
            "Messages, transactions and requests dropped, by reason",
            rejected_messages.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by HTTP status",
            api_requests.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections refused because the peer is not a genesis member",
            refused_connections.clone(),
        );
        registry.register(
            "equivocations",
            "Equivocation evidence seen",
            equivocations.clone(),
        );
        registry.register(
            "leaders_skipped",
            "Views whose leader was skipped (none of its votes seen in the skip window)",
            leaders_skipped.clone(),
        );
        registry.register(
            "keys_delivered",
            "Document key deliveries acknowledged",
            keys_delivered.clone(),
        );
        registry.register(
            "keys_received",
            "Document keys received and stored",
            keys_received.clone(),
        );
        registry.register(
            "key_deliveries_pending",
            "Key deliveries this node owes other administrations (outbox entries at the last walk)",
            key_deliveries_pending.clone(),
        );
        registry.register(
            "event_streams",
            "Open server-sent event streams (GET /v1/events)",
            event_streams.clone(),
        );
        registry.register(
            "events_sent",
            "Document events sent on event streams",
            events_sent.clone(),
        );
        registry.register(
            "access_records",
            "Decryptions served and submitted as access records",
            access_records.clone(),
        );
        Self {
            registry,
            blocks_finalized,
            height,
            view,
            epoch,
            txs_committed,
            mempool_size,
            peers,
            rejected_messages,
            api_requests,
            refused_connections,
            equivocations,
            leaders_skipped,
            keys_delivered,
            keys_received,
            key_deliveries_pending,
            event_streams,
            events_sent,
            access_records,
        }
    }

    /// Counts a dropped message under `reason`.
    pub fn reject(&self, reason: &str) {
        self.rejected_messages
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn api_status(&self, status: u16) {
        self.api_requests
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
