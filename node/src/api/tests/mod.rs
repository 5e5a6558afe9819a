//! API tests over a small in-process network: three nodes (XA, XB, XC), each with its
//! own RocksDB store in a temp dir, vault, mempool and router. A finalizer task stands
//! in for consensus: whenever a node admits a transaction it builds a block from every
//! node's mempool and commits it on every node the way the driver does (same execution,
//! same block write, same key-delivery outbox), then wakes the waiters. Key delivery
//! over libp2p is replaced by [`Net::deliver_keys`], which drains the outboxes into the
//! receiving nodes' `receive_keys`.

mod agreements;
mod documents;
mod events;
mod evidence;
mod governance;
mod requests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::Router;
use carnet_consensus::{Block, Certificate, VoteKind};
use carnet_contracts::agreement::{Agreement, DataCluster, Delivery, Trigger};
use carnet_contracts::auth::{sign_request, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use carnet_contracts::block::{BlockBody, MAX_BLOCK_TXS};
use carnet_contracts::envelope::{wrap_key_batch, WrappedKeys};
use carnet_contracts::{AdminCode, AgreementId, DocumentKind, Genesis, Officer, PublicKey, Role};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tower::ServiceExt;
use zeroize::Zeroizing;

use super::router;
use crate::driver::DriverEvent;
use crate::mempool::Mempool;
use crate::node::{now_ms, Shared, TxOutcome};
use crate::p2p::{Member, NetStatus};
use crate::storage::{Store, CF_OUTBOX};
use crate::test_support::admin;
use crate::vault::{KeyVault, RocksVault};

pub(super) const CHAIN: &str = "carnet-test";

/// Officer keys of the test network.
pub(super) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}
/// XA officer with every role.
pub(super) fn xa_admin() -> SigningKey {
    key(42)
}
/// XA officer with the officer role only.
pub(super) fn xa_plain() -> SigningKey {
    key(43)
}
/// XA officer with the auditor role only.
pub(super) fn xa_auditor() -> SigningKey {
    key(44)
}
/// XB officer with every role.
pub(super) fn xb_admin() -> SigningKey {
    key(52)
}
/// XB officer with the auditor role only.
pub(super) fn xb_auditor() -> SigningKey {
    key(54)
}
/// XC officer with every role.
pub(super) fn xc_admin() -> SigningKey {
    key(62)
}

pub(super) fn public(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

const ALL_ROLES: [Role; 4] = [Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin];

fn officer(key: &SigningKey, code: &str, roles: &[Role]) -> Officer {
    Officer {
        key: public(key),
        administration: AdminCode(code.into()),
        name: format!("officer {code}"),
        roles: roles.to_vec(),
        active: true,
    }
}

/// Seed of the test administration `code`: node key `[seed; 32]`, encryption secret
/// `[seed + 2; 32]` (as `test_support::admin`).
fn seed_of(code: &str) -> u8 {
    match code {
        "XA" => 10,
        "XB" => 20,
        "XC" => 30,
        other => panic!("no test administration {other}"),
    }
}

/// Elements of the default agreement's clusters.
pub(super) const ELEMENTS: [&str; 8] = [
    "UCR",
    "ExporterName",
    "ImporterName",
    "CommodityCode",
    "Quantity",
    "OriginCountry",
    "GrossMass",
    "Remarks",
];

/// The genesis agreement among XA, XB and XC: every kind, the elements above, the
/// commodity code required for declarations.
pub(super) fn default_agreement() -> Agreement {
    let mut agreement = Agreement {
        id: AgreementId([0xaa; 16]),
        title: "Testnet default".into(),
        parties: ["XA", "XB", "XC"]
            .iter()
            .map(|c| AdminCode((*c).into()))
            .collect(),
        clusters: DocumentKind::ALL
            .iter()
            .map(|kind| DataCluster {
                kind: *kind,
                // Import declarations carry no remarks (so pre-filling drops them).
                allowed: ELEMENTS
                    .iter()
                    .filter(|e| *kind != DocumentKind::ImportDeclaration || **e != "Remarks")
                    .map(|e| (*e).to_string())
                    .collect(),
                required: match kind {
                    DocumentKind::ExportDeclaration | DocumentKind::ImportDeclaration => {
                        vec!["CommodityCode".into()]
                    }
                    _ => Vec::new(),
                },
            })
            .collect(),
        trigger: Trigger::OnIssue,
        legal_basis: "Testnet convention".into(),
        purpose: "Tests".into(),
        retention_days: None,
        retention_seconds: None,
        delivery: Delivery::Both,
        ucr_key_wraps: Vec::new(),
    };
    let mut seed = 0u8;
    agreement
        .wrap_ucr_key(
            &[77; 32],
            |p| Some(admin(p.as_str(), seed_of(p.as_str())).encryption_key),
            || {
                seed += 1;
                [seed; 32]
            },
        )
        .unwrap();
    agreement
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 1_700_000_000_000,
        administrations: vec![admin("XA", 10), admin("XB", 20), admin("XC", 30)],
        officers: vec![
            officer(&xa_admin(), "XA", &ALL_ROLES),
            officer(&xa_plain(), "XA", &[Role::Officer]),
            officer(&xa_auditor(), "XA", &[Role::Auditor]),
            officer(&xb_admin(), "XB", &ALL_ROLES),
            officer(&xb_auditor(), "XB", &[Role::Auditor]),
            officer(&xc_admin(), "XC", &ALL_ROLES),
        ],
        agreements: vec![default_agreement()],
        epoch_length_blocks: carnet_contracts::DEFAULT_EPOCH_LENGTH_BLOCKS,
    }
}

pub(super) struct TestNode {
    pub app: Router,
    pub shared: Arc<Shared>,
    pub store: Arc<Store>,
    _dir: tempfile::TempDir,
}

pub(super) struct Net {
    pub nodes: HashMap<&'static str, TestNode>,
}

fn test_node(code: &'static str, genesis: &Genesis, driver: mpsc::Sender<DriverEvent>) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let head = crate::node::prepare_store(&store, genesis).unwrap();
    let vault: Arc<dyn KeyVault> = Arc::new(RocksVault::new(store.clone()));
    let seed = seed_of(code);
    let shared = Arc::new(Shared {
        admin: AdminCode(code.into()),
        chain_id: genesis.chain_id.clone(),
        genesis: genesis.clone(),
        epoch: std::sync::RwLock::new(Arc::new(
            crate::epochs::EpochInfo::genesis(genesis).unwrap(),
        )),
        store: store.clone(),
        vault,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        net_status: Arc::new(NetStatus::default()),
        mempool: Mutex::new(Mempool::new(genesis.chain_id.clone(), 1000, 1000)),
        net: OnceLock::new(),
        node_key: SigningKey::from_bytes(&[seed; 32]),
        encryption_secret: Zeroizing::new([seed + 2; 32]),
        ucr_keys: Mutex::new(HashMap::new()),
        agreements_at: Mutex::new(None),
        heads: tokio::sync::watch::Sender::new(head.height),
        waiters: Mutex::new(HashMap::new()),
        head: Mutex::new(head),
        view: AtomicU64::new(0),
        recent_blocks: Mutex::new(HashMap::new()),
        driver,
        erasure_wake: tokio::sync::Notify::new(),
        ciphertext_wants: crate::fetch::Wants::default(),
    });
    TestNode {
        app: router(shared.clone()),
        shared,
        store,
        _dir: dir,
    }
}

/// Commits `body` on `node` as the driver's `commit` does; returns the receipts.
fn commit_on(node: &Shared, body: &BlockBody, ciphertexts: &HashMap<[u8; 32], Vec<u8>>) {
    let head = node.head();
    let height = head.height + 1;
    let mut executed = crate::ledger::execute(&node.store, height, body).unwrap();
    let deliveries = crate::ledger::key_deliveries(body, &executed, &node.node_public()).unwrap();
    let block = Block {
        view: height,
        height,
        parent: head.digest,
        payload: body.encode(),
    };
    let finalization = Certificate {
        kind: VoteKind::Finalize,
        view: height,
        digest: Some(block.digest()),
        signers: vec![0b111],
        signatures: vec![vec![1; 64], vec![2; 64], vec![3; 64]],
    };
    let mut write = crate::driver::block_write(block, finalization, body, &mut executed);
    write.outbox.extend(
        deliveries
            .iter()
            .map(|d| crate::delivery::outbox_entry(&d.document, d.version, &d.recipient)),
    );
    let hashes: Vec<[u8; 32]> = body.txs.iter().map(|t| t.hash()).collect();
    for (index, (tx, hash)) in body.txs.iter().zip(&hashes).enumerate() {
        write.tx_locations.push((
            *hash,
            crate::storage::TxLocation {
                height,
                index: index as u32,
            },
        ));
        if let Some(sub) = tx.tx.action.document_submission() {
            if let Some(ct) = ciphertexts.get(hash) {
                write.payloads.push((sub.ciphertext_hash, ct.clone()));
            }
        }
    }
    let new_head = node.store.commit_block(write).unwrap();
    node.mempool().remove(&hashes);
    node.set_head(new_head);
    for (hash, result) in hashes.iter().zip(executed.receipts) {
        node.notify(hash, TxOutcome { height, result });
    }
}

/// Builds blocks from every node's mempool until all are empty.
fn finalize_all(nodes: &[Arc<Shared>]) {
    loop {
        let mut seen = HashSet::new();
        let mut txs = Vec::new();
        let mut ciphertexts = HashMap::new();
        for node in nodes {
            let pool = node.mempool();
            for tx in pool.select(&HashSet::new(), now_ms(), MAX_BLOCK_TXS) {
                let hash = tx.hash();
                if seen.insert(hash) {
                    if let Some(ct) = pool.ciphertext_of_tx(&hash) {
                        ciphertexts.insert(hash, ct);
                    }
                    txs.push(tx);
                }
            }
        }
        if txs.is_empty() {
            return;
        }
        let time_ms = now_ms().max(nodes[0].head().time_ms + 1);
        let body = BlockBody::new(time_ms, AdminCode("XA".into()), txs, None);
        for node in nodes {
            commit_on(node, &body, &ciphertexts);
        }
    }
}

impl Net {
    pub(super) fn new() -> Self {
        let genesis = genesis();
        let (driver, mut events) = mpsc::channel(1024);
        let mut nodes = HashMap::new();
        for code in ["XA", "XB", "XC"] {
            nodes.insert(code, test_node(code, &genesis, driver.clone()));
        }
        let shared: Vec<Arc<Shared>> = ["XA", "XB", "XC"]
            .iter()
            .map(|c| nodes[c].shared.clone())
            .collect();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if matches!(event, DriverEvent::TxAdmitted) {
                    finalize_all(&shared);
                }
            }
        });
        Self { nodes }
    }

    pub(super) fn node(&self, code: &str) -> &TestNode {
        &self.nodes[code]
    }

    /// Calls `path` on `code`'s node as the officer `key`, with a JSON body (`Value::Null`
    /// for none).
    pub(super) async fn call(
        &self,
        code: &str,
        key: &SigningKey,
        method: Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        call(
            &self.node(code).app,
            signed(key, method, path, bytes, timestamp_ms()),
        )
        .await
    }

    /// Waits until every transaction admitted anywhere (e.g. access records) is final.
    pub(super) async fn settle(&self) {
        loop {
            if self.nodes.values().all(|n| n.shared.mempool().is_empty()) {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Performs every pending key delivery (one version per request): the sender wraps the keys from its vault to
    /// the recipient's encryption key, the recipient's `receive_keys` accepts or refuses
    /// them. One [`Delivered`] per delivery, by document, version and recipient.
    pub(super) fn deliver_keys(&self) -> Vec<Delivered> {
        let mut out = Vec::new();
        for (code, node) in &self.nodes {
            for (key, value) in node.store.scan_prefix(CF_OUTBOX, &[], 1000).unwrap() {
                let entry: crate::delivery::OutboxEntry =
                    crate::storage::decode_limited(&value, 4096).unwrap();
                let to = self.node(entry.recipient.as_str());
                let keys = node
                    .shared
                    .vault
                    .get(&entry.document, entry.version)
                    .unwrap()
                    .expect("the sender holds the keys it delivers");
                let versions = [(entry.document, entry.version)];
                let wrapped = wrap_key_batch(
                    &versions,
                    std::slice::from_ref(&keys),
                    &admin(entry.recipient.as_str(), seed_of(entry.recipient.as_str()))
                        .encryption_key,
                    [9; 32],
                )
                .unwrap();
                let from = Member {
                    code: AdminCode((*code).into()),
                    validator: None,
                };
                let result = receive_one(&to.shared, &from, &versions, &wrapped);
                if result.is_ok() {
                    node.store.delete_raw(CF_OUTBOX, &key).unwrap();
                }
                out.push(Delivered {
                    from: (*code).to_string(),
                    document: entry.document.to_string(),
                    version: entry.version,
                    to: entry.recipient.to_string(),
                    result,
                });
            }
        }
        out.sort_by(|a, b| (&a.document, a.version, &a.to).cmp(&(&b.document, b.version, &b.to)));
        out
    }

    /// Submits a document through `code`'s node as `key`; asserts success and returns
    /// the answer.
    pub(super) async fn submit(&self, code: &str, key: &SigningKey, body: Value) -> Value {
        let (status, answer) = self
            .call(code, key, Method::POST, "/v1/documents", body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }
}

/// One key delivery made by [`Net::deliver_keys`].
#[derive(Debug)]
pub(super) struct Delivered {
    pub from: String,
    pub document: String,
    pub version: u32,
    pub to: String,
    pub result: Result<(), String>,
}

/// An export declaration body from XA to `recipients`.
pub(super) fn export_body(ucr: &str, recipients: &[&str], payload: Value) -> Value {
    json!({
        "kind": "export-declaration",
        "ucr": ucr,
        "recipients": recipients,
        "payload": payload.to_string(),
    })
}

/// A signing timestamp never handed out before: identical requests signed in the same
/// millisecond would be identical (ed25519 is deterministic) and refused as replays.
pub(super) fn timestamp_ms() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let previous = LAST
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |last| Some(now.max(last + 1)),
        )
        .unwrap_or(now);
    now.max(previous + 1)
}

pub(super) fn signed(
    key: &SigningKey,
    method: Method,
    path: &str,
    body: Vec<u8>,
    timestamp_ms: u64,
) -> Request {
    let signature = sign_request(key, method.as_str(), path, timestamp_ms, &body);
    Request::builder()
        .method(method)
        .uri(path)
        .header(HEADER_KEY, hex::encode(key.verifying_key().to_bytes()))
        .header(HEADER_TIMESTAMP, timestamp_ms.to_string())
        .header(HEADER_SIGNATURE, signature)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

pub(super) async fn call(app: &Router, request: Request) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The message of an error reply.
pub(super) fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Asserts an error status and that its message contains every one of `parts`.
#[track_caller]
pub(super) fn assert_error(answer: &(StatusCode, Value), status: StatusCode, parts: &[&str]) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let message = error_message(&answer.1);
    for part in parts {
        assert!(message.contains(part), "`{part}` not in `{message}`");
    }
}

#[tokio::test]
async fn signed_status_request_is_served_once() {
    let net = Net::new();
    let app = &net.node("XA").app;
    let first = signed(&xa_admin(), Method::GET, "/v1/status", vec![], now_ms());
    let replay = Request::builder()
        .method(Method::GET)
        .uri("/v1/status")
        .header(HEADER_KEY, first.headers()[HEADER_KEY].clone())
        .header(HEADER_TIMESTAMP, first.headers()[HEADER_TIMESTAMP].clone())
        .header(HEADER_SIGNATURE, first.headers()[HEADER_SIGNATURE].clone())
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(app, first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["administration"], "XA");
    assert_eq!(body["validators"], 3);
    let (status, body) = call(app, replay).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(error_message(&body).contains("replayed"));
}

#[tokio::test]
async fn unknown_officer_bad_signature_and_stale_timestamp_get_401() {
    let net = Net::new();
    let app = &net.node("XA").app;
    let stranger = key(99);
    let answer = net
        .call("XA", &stranger, Method::GET, "/v1/status", Value::Null)
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, &["unknown"]);

    let mut forged = signed(&xa_admin(), Method::GET, "/v1/blocks/0", vec![], now_ms());
    *forged.uri_mut() = "/v1/status".parse().unwrap();
    let (status, _) = call(app, forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let stale = now_ms() - 60_000;
    let (status, body) = call(
        app,
        signed(&xa_admin(), Method::GET, "/v1/status", vec![], stale),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_message(&body).contains("timestamp"));

    let unsigned = Request::builder()
        .uri("/v1/status")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(app, unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let net = Net::new();
    let body = vec![b'x'; super::MAX_BODY_BYTES + 1];
    let (status, body) = call(
        &net.node("XA").app,
        signed(&xa_admin(), Method::POST, "/v1/documents", body, now_ms()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "too_large");
}

#[tokio::test]
async fn health_openapi_and_every_route_documented() {
    let net = Net::new();
    let app = &net.node("XA").app;
    let (status, body) = call(
        app,
        Request::builder()
            .uri("/healthz")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["height"], 0);
    let (status, body) = call(
        app,
        Request::builder()
            .uri("/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Every path the router names is described ...
    let source = include_str!("../mod.rs");
    let router_source = &source[source.find("pub fn router").unwrap()..];
    let router_source = &router_source[..router_source.find("\n}\n").unwrap()];
    let mut named = 0;
    for literal in router_source.split('"').skip(1).step_by(2) {
        if literal.starts_with("/v1/") && !literal.starts_with("/v1/test/") {
            named += 1;
            assert!(
                body["paths"][literal].is_object(),
                "{literal} is not in the OpenAPI document"
            );
        }
    }
    assert!(named >= 26, "only {named} routes found in the router");
    // ... and every described operation is served (an unsigned call gets 401, not 404).
    for (path, methods) in body["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
            continue;
        }
        let concrete = path
            .replace("{id}", "00")
            .replace("{height}", "1")
            .replace("{key}", "00");
        for method in methods.as_object().unwrap().keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let (status, _) = call(app, request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    let (status, body) = net
        .call("XA", &xa_admin(), Method::GET, "/v1/blocks/0", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["height"], 0);
}

/// Delivers the keys of one version as a peer would; `Err` with the recipient's reason.
pub(super) fn receive_one(
    to: &Arc<Shared>,
    from: &Member,
    versions: &[(carnet_contracts::DocumentId, u32)],
    wrapped: &WrappedKeys,
) -> Result<(), String> {
    match crate::node::receive_key_batch(to, from, versions, wrapped)?.as_slice() {
        [crate::p2p::KeyReceipt::Stored] => Ok(()),
        [crate::p2p::KeyReceipt::Refused(reason)] => Err(reason.clone()),
        other => Err(format!("{} receipts for one version", other.len())),
    }
}
