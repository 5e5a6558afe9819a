//! The node's HTTP API (docs/interfaces.md, "Node HTTP API" and "Customs contracts"):
//! officer-signed JSON requests for documents under agreements (submit, find, read,
//! amend, cancel, erase, acknowledge), UCR matching and pre-filling, agreements, TFA
//! Article 12 requests, officers, membership governance, the read audit and the event
//! stream; plus health, metrics and the OpenAPI document.
//!
//! Every `/v1/*` request but the OpenAPI document is authenticated against the ledger's
//! officer records before anything else happens ([`authenticate`]); the handlers then
//! check the role and the administration, check the input naming the offending field,
//! and only then sign a transaction on the officer's behalf (ADR 0002) and wait for it
//! to be final. This module must never log or return a payload, DEK, salt or agreement
//! UCR key except the decrypted payload to an entitled caller, never serve a decryption
//! whose access record it could not submit, and never draw randomness anywhere but for
//! new ids, document keys, nonces, agreement UCR keys and their wrap seeds.

mod agreements;
mod audit;
mod documents;
mod events;
mod evidence;
mod members;
mod officers;
mod openapi;
mod requests;
#[cfg(test)]
mod tests;
mod ucr;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
#[cfg(feature = "test-hooks")]
use axum::Extension;
use axum::{Json, Router};
use carnet_contracts::auth::{verify_request, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use carnet_contracts::officers::role_name;
use carnet_contracts::{DocumentId, Officer, PublicKey, Role, SignedTransaction};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::mempool::AdmissionError;
use crate::node::{now_ms, Shared, TxOutcome};

pub use openapi::openapi_document;

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest payload text of a document.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;
/// Longest UCR.
pub const MAX_UCR_CHARS: usize = 70;
/// Accepted distance between a request's timestamp and the node's clock.
pub const TIMESTAMP_WINDOW_MS: u64 = 30_000;
/// Most (key, signature) pairs remembered against replay.
pub const MAX_REPLAY_ENTRIES: usize = 100_000;
/// How long a `POST` waits for its transaction to be final.
pub const FINALITY_WAIT: Duration = Duration::from_secs(30);
/// Most open event streams per officer.
pub const MAX_STREAMS_PER_OFFICER: usize = 4;
/// Most open event streams on one node.
pub const MAX_STREAMS: usize = 256;
/// Most documents amended at once through this node (one in flight per document).
const MAX_AMENDING: usize = 1024;

/// An API error as docs/interfaces.md specifies: status, code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_input(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, m)
    }
    /// 410: the document is erased; nothing can open it any more.
    pub fn erased(m: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, m)
    }
    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_input",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::GONE => "erased",
            _ => "unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code(), "message": self.message}}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

/// A node-side failure (store, vault): logged, answered 503.
fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("API: {e}");
    ApiError::unavailable(format!("node error: {e}"))
}

/// The authenticated officer of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: PublicKey,
    pub officer: Officer,
}

/// State of the API: the node, the replay cache, the open event streams per officer and
/// the documents with an amendment waiting for finality.
#[derive(Clone)]
pub struct ApiState {
    shared: Arc<Shared>,
    replay: Arc<Mutex<HashMap<(PublicKey, String), u64>>>,
    streams: Arc<Mutex<HashMap<PublicKey, usize>>>,
    amending: Arc<Mutex<HashSet<DocumentId>>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the data (bounded collections) is usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The API's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let state = ApiState {
        shared,
        replay: Arc::new(Mutex::new(HashMap::new())),
        streams: Arc::new(Mutex::new(HashMap::new())),
        amending: Arc::new(Mutex::new(HashSet::new())),
    };
    let signed = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/blocks/{height}", get(block))
        .route(
            "/v1/documents",
            post(documents::submit).get(ucr::documents_by_ucr),
        )
        .route("/v1/document-batches", post(documents::submit_batch))
        .route("/v1/documents/{id}", get(documents::show))
        .route("/v1/documents/{id}/decrypt", post(documents::decrypt))
        .route("/v1/documents/{id}/erase", post(documents::erase))
        .route("/v1/documents/{id}/status", get(documents::status))
        .route("/v1/documents/{id}/amend", post(documents::amend))
        .route("/v1/documents/{id}/cancel", post(documents::cancel))
        .route("/v1/documents/{id}/history", get(documents::history))
        .route("/v1/documents/{id}/ack", post(documents::ack))
        .route("/v1/documents/{id}/prefill", post(ucr::prefill))
        .route("/v1/ucr-match", get(ucr::ucr_match))
        .route(
            "/v1/agreements",
            post(agreements::propose).get(agreements::list),
        )
        .route("/v1/agreements/{id}", get(agreements::show))
        .route("/v1/agreements/{id}/accept", post(agreements::accept))
        .route("/v1/events", get(events::stream))
        .route("/v1/requests", post(requests::create).get(requests::list))
        .route("/v1/requests/{id}", get(requests::show))
        .route("/v1/requests/{id}/answer", post(requests::answer))
        .route("/v1/requests/{id}/breach", post(requests::breach))
        .route("/v1/officers", post(officers::add).get(officers::list))
        .route("/v1/officers/{key}/revoke", post(officers::revoke))
        .route("/v1/members", get(members::list))
        .route("/v1/members/proposals", post(members::propose))
        .route("/v1/members/proposals/{id}/vote", post(members::vote))
        .route("/v1/audit", get(audit::accesses))
        .route("/v1/evidence", get(evidence::list));
    #[cfg(feature = "test-hooks")]
    let signed = if test_hooks_enabled() {
        signed.route("/v1/test/keys/{id}/{version}", get(test_keys))
    } else {
        signed
    };
    let signed = signed.route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .merge(signed)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

async fn count_status(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.shared.metrics.api_status(response.status().as_u16());
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .ok_or_else(|| ApiError::unauthorized(format!("missing header {name}")))?
        .to_str()
        .map_err(|_| ApiError::unauthorized(format!("header {name} is not text")))
}

/// Buffers the body (≤ 1 MiB), checks the officer's signature, timestamp and replay,
/// and hands the handler the authenticated [`Caller`].
async fn authenticate(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    if let Some(len) = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > MAX_BODY_BYTES as u64 {
            return Err(ApiError::too_large(format!(
                "body of {len} bytes is over the limit of {MAX_BODY_BYTES}"
            )));
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::too_large(format!("body is over the limit of {MAX_BODY_BYTES} bytes"))
        })?;
    let caller = check_signature(&state, &parts.method, &parts.uri, &parts.headers, &bytes)?;
    parts.extensions.insert(caller);
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

fn check_signature(
    state: &ApiState,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Caller, ApiError> {
    let key = PublicKey::from_hex(header(headers, HEADER_KEY)?.trim())
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let timestamp_ms: u64 = header(headers, HEADER_TIMESTAMP)?
        .trim()
        .parse()
        .map_err(|_| ApiError::unauthorized("timestamp is not a number of milliseconds"))?;
    let signature = header(headers, HEADER_SIGNATURE)?
        .trim()
        .to_ascii_lowercase();
    let now = now_ms();
    if timestamp_ms.abs_diff(now) > TIMESTAMP_WINDOW_MS {
        return Err(ApiError::unauthorized(format!(
            "timestamp {timestamp_ms} is more than {} s from the node's clock",
            TIMESTAMP_WINDOW_MS / 1000
        )));
    }
    let officer = crate::ledger::officer(&state.shared.store, &key)
        .map_err(internal)?
        .filter(|o| o.active)
        .ok_or_else(|| ApiError::unauthorized(format!("officer {key} is unknown or revoked")))?;
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.path());
    verify_request(
        &key,
        &signature,
        method.as_str(),
        path_and_query,
        timestamp_ms,
        body,
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let mut replay = lock(&state.replay);
    if replay.len() >= MAX_REPLAY_ENTRIES {
        replay.retain(|_, expiry| *expiry > now);
        if replay.len() >= MAX_REPLAY_ENTRIES {
            return Err(ApiError::unavailable(
                "too many requests in the replay window",
            ));
        }
    }
    let entry = (key, signature);
    if replay.get(&entry).is_some_and(|expiry| *expiry > now) {
        return Err(ApiError::unauthorized("replayed request"));
    }
    replay.insert(entry, timestamp_ms.max(now) + 2 * TIMESTAMP_WINDOW_MS);
    Ok(Caller { key, officer })
}

async fn healthz(State(state): State<ApiState>) -> Json<Value> {
    let head = state.shared.head();
    Json(json!({
        "status": "ok",
        "administration": state.shared.admin.as_str(),
        "height": head.height,
        "last_block_hash": hex::encode(head.digest),
    }))
}

async fn metrics(State(state): State<ApiState>) -> Response {
    state
        .shared
        .metrics
        .mempool_size
        .set(state.shared.mempool().len() as i64);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.shared.metrics.encode(),
    )
        .into_response()
}

async fn status(State(state): State<ApiState>) -> Json<Value> {
    let s = &state.shared;
    let head = s.head();
    Json(json!({
        "administration": s.admin.as_str(),
        "chain_id": s.chain_id,
        "height": head.height,
        "last_block_hash": hex::encode(head.digest),
        "view": s.view(),
        "validators": s.epoch().admins.len(),
        "validator_set": s.epoch().admins,
        "epoch": s.epoch().epoch,
        "peers": s.net_status.connected.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

async fn block(
    State(state): State<ApiState>,
    Path(height): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let height: u64 = height
        .parse()
        .map_err(|_| ApiError::bad_input(format!("height `{height}` is not a number")))?;
    let s = &state.shared;
    if height == 0 {
        let head = s
            .store
            .genesis_head()
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found("no genesis"))?;
        return Ok(Json(json!({
            "height": 0, "hash": hex::encode(head.digest), "view": 0, "parent": hex::encode([0u8; 32]),
            "time_ms": head.time_ms, "tx_count": 0, "app_hash": hex::encode(head.app_hash),
        })));
    }
    let stored = s
        .store
        .block(height)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no finalized block at height {height}")))?;
    Ok(Json(json!({
        "height": height,
        "hash": hex::encode(stored.block.digest()),
        "view": stored.block.view,
        "parent": hex::encode(stored.block.parent),
        "time_ms": stored.time_ms,
        "tx_count": stored.tx_count,
        "app_hash": hex::encode(stored.app_hash),
    })))
}

// ---- Checks shared by the handlers -------------------------------------------------

fn has_any_role(officer: &Officer, roles: &[Role]) -> bool {
    officer.roles.iter().any(|r| roles.contains(r))
}

/// 403 unless the caller holds one of `roles`; `what` is the action (`submitting
/// documents`).
fn require_role(caller: &Caller, roles: &[Role], what: &str) -> Result<(), ApiError> {
    if has_any_role(&caller.officer, roles) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| role_name(*r)).collect();
    let names = match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(ApiError::forbidden(format!(
        "{what} needs the {names} role"
    )))
}

/// 403 unless the caller belongs to this node's administration: officers act only
/// through their own administration's node.
fn own_node(shared: &Shared, caller: &Caller) -> Result<(), ApiError> {
    let admin = &caller.officer.administration;
    if *admin == shared.admin {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "officer of {admin} cannot act through the node of {}; officers act only through their own administration's node",
        shared.admin
    )))
}

/// A JSON object body read field by field; every error names its field, and fields
/// nobody asked for are refused by [`Fields::finish`]. An empty body is `{}`.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_input("body: must be a JSON object")),
            Err(e) => Err(ApiError::bad_input(format!("body: {e}"))),
        }
    }

    /// A field that may be absent or `null`.
    fn optional<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, ApiError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| ApiError::bad_input(format!("{name}: {e}"))),
        }
    }

    fn required<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, ApiError> {
        self.optional(name)?
            .ok_or_else(|| ApiError::bad_input(format!("{name}: missing")))
    }

    /// A required text of 1 to `max_bytes` bytes once trimmed.
    fn text(&mut self, name: &str, max_bytes: usize) -> Result<String, ApiError> {
        let text: String = self.required(name)?;
        check_text(name, text.trim(), max_bytes)?;
        Ok(text.trim().to_string())
    }

    /// Refuses the fields nobody read.
    fn finish(self) -> Result<(), ApiError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(_) => {
                let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
                Err(ApiError::bad_input(format!(
                    "body: unknown field{} {}",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )))
            }
        }
    }
}

/// 400 unless `text` is 1 to `max_bytes` bytes.
fn check_text(name: &str, text: &str, max_bytes: usize) -> Result<(), ApiError> {
    if text.is_empty() || text.len() > max_bytes {
        return Err(ApiError::bad_input(format!(
            "{name}: must be 1 to {max_bytes} bytes"
        )));
    }
    Ok(())
}

/// The query parameters of a request; unknown parameters are refused.
fn query_params(raw: Option<String>, known: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    let raw = raw.unwrap_or_default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name)?;
        if !known.contains(&name.as_str()) {
            return Err(ApiError::bad_input(format!(
                "query: unknown parameter `{name}`; known: {}",
                known.join(", ")
            )));
        }
        let value = percent_decode(value)?;
        if out.insert(name.clone(), value).is_some() {
            return Err(ApiError::bad_input(format!(
                "query: parameter `{name}` given twice"
            )));
        }
    }
    Ok(out)
}

/// Decodes `%XX` escapes and `+` (space) of a query component.
fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad_input("query: bad %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_input("query: not UTF-8"))
}

/// A document id from the path; 400 when malformed.
fn parse_document_id(id: &str) -> Result<DocumentId, ApiError> {
    DocumentId::from_hex(id).map_err(|e| ApiError::bad_input(format!("id: {e}")))
}

/// Registers a waiter for `tx`, then submits it (gossiped); the waiter yields its
/// outcome once final.
fn submit_for_finality(
    s: &Shared,
    tx: SignedTransaction,
    ciphertext: Option<Vec<u8>>,
) -> Result<tokio::sync::oneshot::Receiver<TxOutcome>, ApiError> {
    let waiter = s
        .wait_for(tx.hash())
        .ok_or_else(|| ApiError::unavailable("too many requests waiting for finality"))?;
    match s.submit_one(tx, ciphertext) {
        Some(Ok(_)) => Ok(waiter),
        Some(Err(e)) => Err(admission_error(s, e)),
        None => Err(ApiError::unavailable("transaction not admitted")),
    }
}

/// The answer for a transaction the mempool refused: 503 when it is full, else 400.
fn admission_error(s: &Shared, e: AdmissionError) -> ApiError {
    match e {
        AdmissionError::Overloaded(n) => {
            s.metrics.reject("mempool_full");
            ApiError::unavailable(format!("node overloaded: mempool holds {n} transactions"))
        }
        e => ApiError::bad_input(e.to_string()),
    }
}

/// Waits up to `FINALITY_WAIT` for a submitted transaction; its height when the
/// ledger accepted it; 503 with `not_final` when not final in time, 400 when the ledger
/// rejected it.
async fn await_finality(
    waiter: tokio::sync::oneshot::Receiver<TxOutcome>,
    not_final: String,
) -> Result<u64, ApiError> {
    let outcome = match tokio::time::timeout(FINALITY_WAIT, waiter).await {
        Ok(Ok(outcome)) => outcome,
        _ => return Err(ApiError::unavailable(not_final)),
    };
    match outcome.result {
        Ok(()) => Ok(outcome.height),
        Err(reason) => Err(ApiError::bad_input(format!(
            "rejected by the ledger: {reason}"
        ))),
    }
}

/// Submits `tx` (no ciphertext) and waits until it is final; `what` names it in the 503
/// message (`agreement 0a…`).
async fn submit_and_wait(s: &Shared, tx: SignedTransaction, what: &str) -> Result<u64, ApiError> {
    let waiter = submit_for_finality(s, tx, None)?;
    await_finality(
        waiter,
        format!("{what} not final within 30 s; it may still become final"),
    )
    .await
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

#[cfg(feature = "test-hooks")]
static TEST_HOOKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns on the test-only routes (`--enable-test-hooks`; `test-hooks` builds only).
#[cfg(feature = "test-hooks")]
pub fn enable_test_hooks() {
    TEST_HOOKS.store(true, std::sync::atomic::Ordering::SeqCst);
}

#[cfg(feature = "test-hooks")]
fn test_hooks_enabled() -> bool {
    TEST_HOOKS.load(std::sync::atomic::Ordering::SeqCst)
}

/// TEST ONLY (`test-hooks` feature and `--enable-test-hooks`): the DEK, salt and stored
/// ciphertext of a document version as hex, so tests can scan disks for them after
/// erasure.
#[cfg(feature = "test-hooks")]
async fn test_keys(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_document_id(&id)?;
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::bad_input("version is not a number"))?;
    if caller.officer.administration != state.shared.admin {
        return Err(ApiError::forbidden(
            "test hook: officer of another administration",
        ));
    }
    let keys = state
        .shared
        .vault
        .get(&id, version)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no keys for {id} v{version}")))?;
    // The stored ciphertext of that version too (a test scans disks for it after erasure).
    let ciphertext = match crate::ledger::document_version(&state.shared.store, &id, version)
        .map_err(internal)?
    {
        Some(record) => state
            .shared
            .store
            .payload(&record.ciphertext_hash)
            .map_err(internal)?
            .map(hex::encode),
        None => None,
    };
    tracing::warn!(document = %id, version, "TEST HOOK: document keys handed out");
    Ok(Json(json!({
        "id": id.to_string(),
        "version": version,
        "dek": hex::encode(keys.dek),
        "salt": hex::encode(keys.salt),
        "ciphertext": ciphertext,
    })))
}
