//! The node's HTTP API (docs/interfaces.md, "Node HTTP API"): officer-signed JSON
//! requests for submitting, finding and reading documents, plus health, metrics and the
//! OpenAPI document.
//!
//! Every `/v1/*` request but the OpenAPI document is authenticated against the ledger's
//! officer records before anything else happens. This module must never log or return a
//! payload, DEK or salt except the decrypted payload to an entitled caller, and never
//! draw randomness anywhere but for a new document's keys, nonce, id and tx nonce.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use carnet_contracts::auth::{verify_request, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use carnet_contracts::envelope::{open_and_check, seal, ucr_index, DocumentKeys};
use carnet_contracts::execute::{MAX_PURPOSE_BYTES, MAX_RECIPIENTS};
use carnet_contracts::{
    Action, AdminCode, DocumentId, DocumentKind, DocumentRecord, DocumentStatus,
    DocumentSubmission, Officer, PublicKey, Role,
};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::mempool::AdmissionError;
use crate::node::{now_ms, Shared, TxOutcome};
use crate::storage::Store;

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
/// How long `POST /v1/documents` waits for finality.
pub const FINALITY_WAIT: Duration = Duration::from_secs(30);
/// Most documents returned by a UCR query.
const MAX_UCR_RESULTS: usize = 1000;

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

/// State of the API: the node plus the replay cache.
#[derive(Clone)]
pub struct ApiState {
    shared: Arc<Shared>,
    replay: Arc<Mutex<HashMap<(PublicKey, String), u64>>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// The API's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let state = ApiState {
        shared,
        replay: Arc::new(Mutex::new(HashMap::new())),
    };
    let signed = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/documents", post(submit_document).get(documents_by_ucr))
        .route("/v1/documents/{id}", get(document))
        .route("/v1/documents/{id}/decrypt", post(decrypt))
        .route("/v1/documents/{id}/erase", post(erase))
        .route("/v1/documents/{id}/status", get(document_status));
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
    let mut replay = state.replay.lock().unwrap_or_else(|p| p.into_inner());
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
        "validators": s.validators.len(),
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

fn document_json(record: &DocumentRecord) -> Value {
    json!({
        "id": record.id.to_string(),
        "version": record.version,
        "kind": record.kind.as_str(),
        "issuer": record.issuer.as_str(),
        "recipients": record.recipients.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "status": serde_json::to_value(record.status).unwrap_or(Value::Null),
        "height": record.height,
        "time_ms": record.time_ms,
        "commitment": hex::encode(record.commitment),
        "ciphertext_hash": hex::encode(record.ciphertext_hash),
        "submitted_by": record.submitted_by.to_string(),
    })
}

/// Issuer, recipients, or (auditors of) them may see a document's metadata.
fn may_see(caller: &Caller, record: &DocumentRecord) -> bool {
    let admin = &caller.officer.administration;
    record.issuer == *admin || record.recipients.contains(admin)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_input(format!("body: {e}")))
}

#[derive(Deserialize)]
struct SubmitRequest {
    kind: String,
    ucr: String,
    recipients: Vec<String>,
    payload: String,
}

impl Drop for SubmitRequest {
    fn drop(&mut self) {
        self.payload.zeroize();
    }
}

fn has_any_role(officer: &Officer, roles: &[Role]) -> bool {
    officer.roles.iter().any(|r| roles.contains(r))
}

async fn submit_document(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    if caller.officer.administration != s.admin {
        return Err(ApiError::forbidden(format!(
            "officer of {} cannot submit through the node of {}",
            caller.officer.administration, s.admin
        )));
    }
    if !has_any_role(
        &caller.officer,
        &[Role::Officer, Role::Supervisor, Role::Admin],
    ) {
        return Err(ApiError::forbidden(
            "submitting documents needs the officer role",
        ));
    }
    let request: SubmitRequest = parse_json(&body)?;
    let kind = DocumentKind::parse(&request.kind)
        .map_err(|e| ApiError::bad_input(format!("kind: {e}")))?;
    let ucr = request.ucr.trim().to_string();
    if ucr.is_empty() || ucr.chars().count() > MAX_UCR_CHARS {
        return Err(ApiError::bad_input(format!(
            "ucr: must be 1 to {MAX_UCR_CHARS} characters"
        )));
    }
    if request.recipients.is_empty() || request.recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::bad_input(format!(
            "recipients: 1 to {MAX_RECIPIENTS} administrations"
        )));
    }
    let mut recipients: Vec<AdminCode> = Vec::new();
    for r in &request.recipients {
        let code =
            AdminCode::parse(r).map_err(|e| ApiError::bad_input(format!("recipients: {e}")))?;
        if code == s.admin {
            return Err(ApiError::bad_input(format!(
                "recipients: {code} is this administration"
            )));
        }
        if recipients.contains(&code) {
            return Err(ApiError::bad_input(format!(
                "recipients: {code} appears twice"
            )));
        }
        let member = crate::ledger::administration(&s.store, &code).map_err(internal)?;
        if !member.is_some_and(|m| m.active) {
            return Err(ApiError::bad_input(format!(
                "recipients: {code} is not an active member"
            )));
        }
        recipients.push(code);
    }
    if request.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::bad_input(format!(
            "payload: over the limit of {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    match serde_json::from_str::<Value>(&request.payload) {
        Ok(Value::Object(_)) => {}
        Ok(_) => {
            return Err(ApiError::bad_input(
                "payload is not a JSON object: it is another JSON value",
            ))
        }
        Err(e) => {
            return Err(ApiError::bad_input(format!(
                "payload is not a JSON object: {e}"
            )))
        }
    }

    // The only place randomness is drawn for a document.
    let mut rng = rand::rngs::OsRng;
    let mut secret = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(&mut secret[..]);
    let keys = DocumentKeys::from_bytes(&secret[..]).map_err(internal)?;
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let id = DocumentId(id);
    let sealed = seal(request.payload.as_bytes(), &keys, nonce, &id, 1, kind).map_err(internal)?;
    drop(request);
    if let Err(e) = s.vault.put(&id, 1, &keys) {
        crate::storage::fatal("storing document keys in the vault", &e);
    }
    let tx = s.node_tx(
        Some(caller.key),
        Action::SubmitDocument(DocumentSubmission {
            id,
            kind,
            recipients,
            ucr_index: ucr_index(&s.ucr_key, &ucr),
            commitment: sealed.commitment,
            ciphertext_hash: sealed.ciphertext_hash,
            ciphertext_len: sealed.ciphertext.len() as u32,
        }),
    );
    let waiter = submit_for_finality(&s, tx, Some(sealed.ciphertext))?;
    tracing::info!(document = %id, %kind, "document submitted");
    let height = await_finality(
        waiter,
        format!("document {id} not final within 30 s; it may still become final"),
    )
    .await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "version": 1,
        "height": height,
        "status": "active",
        "kind": kind.as_str(),
    })))
}

/// Registers a waiter for `tx`, then submits it (gossiped); the waiter yields its
/// outcome once final.
fn submit_for_finality(
    s: &Shared,
    tx: carnet_contracts::SignedTransaction,
    ciphertext: Option<Vec<u8>>,
) -> Result<tokio::sync::oneshot::Receiver<TxOutcome>, ApiError> {
    let waiter = s
        .wait_for(tx.hash())
        .ok_or_else(|| ApiError::unavailable("too many requests waiting for finality"))?;
    match s.submit_one(tx, ciphertext) {
        Some(Ok(_)) => Ok(waiter),
        Some(Err(AdmissionError::Overloaded(n))) => {
            s.metrics.reject("mempool_full");
            Err(ApiError::unavailable(format!(
                "node overloaded: mempool holds {n} transactions"
            )))
        }
        Some(Err(e)) => Err(ApiError::bad_input(e.to_string())),
        None => Err(ApiError::unavailable("transaction not admitted")),
    }
}

/// Waits up to `FINALITY_WAIT` for a submitted transaction; its height when the
/// ledger accepted it; 503 with message `not_final` when not final in time, 400 when
/// the ledger rejected it.
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

/// The committed record of document `id`; 404 when there is none.
fn find_document(store: &Store, id: &DocumentId) -> Result<DocumentRecord, ApiError> {
    crate::ledger::document(store, id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no document {id}")))
}

/// The record of document `id` when the caller's administration may see it
/// (issuer or recipient); 404 or 403 otherwise.
fn visible_document(
    store: &Store,
    caller: &Caller,
    id: &DocumentId,
) -> Result<DocumentRecord, ApiError> {
    let record = find_document(store, id)?;
    if !may_see(caller, &record) {
        return Err(ApiError::forbidden(format!(
            "{} is neither issuer nor recipient of document {id}",
            caller.officer.administration
        )));
    }
    Ok(record)
}

fn parse_id(id: &str) -> Result<DocumentId, ApiError> {
    DocumentId::from_hex(id).map_err(|e| ApiError::bad_input(format!("id: {e}")))
}

async fn document(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let record = visible_document(&state.shared.store, &caller, &id)?;
    Ok(Json(document_json(&record)))
}

#[derive(Deserialize)]
struct UcrQuery {
    ucr: Option<String>,
}

async fn documents_by_ucr(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<UcrQuery>,
) -> Result<Json<Value>, ApiError> {
    let ucr = query.ucr.unwrap_or_default();
    let ucr = ucr.trim();
    if ucr.is_empty() || ucr.chars().count() > MAX_UCR_CHARS {
        return Err(ApiError::bad_input(format!(
            "ucr: must be 1 to {MAX_UCR_CHARS} characters"
        )));
    }
    let index = ucr_index(&state.shared.ucr_key, ucr);
    let records = crate::ledger::documents_by_ucr(&state.shared.store, &index, MAX_UCR_RESULTS)
        .map_err(internal)?;
    let visible: Vec<Value> = records
        .iter()
        .filter(|r| may_see(&caller, r))
        .map(document_json)
        .collect();
    Ok(Json(json!({ "documents": visible })))
}

#[derive(Deserialize)]
struct DecryptRequest {
    purpose: String,
}

async fn decrypt(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_id(&id)?;
    let request: DecryptRequest = parse_json(&body)?;
    let purpose = request.purpose.trim().to_string();
    if purpose.is_empty() || purpose.len() > MAX_PURPOSE_BYTES {
        return Err(ApiError::bad_input(format!(
            "purpose: must be 1 to {MAX_PURPOSE_BYTES} bytes"
        )));
    }
    let record = find_document(&s.store, &id)?;
    let admin = &caller.officer.administration;
    if *admin != s.admin || !(record.issuer == *admin || record.recipients.contains(admin)) {
        return Err(ApiError::forbidden(format!(
            "{admin} is not issuer or recipient of document {id} on this node"
        )));
    }
    if record.status == DocumentStatus::Erased {
        return Err(ApiError::erased(format!(
            "document {id} is erased; its keys are destroyed"
        )));
    }
    let keys = s
        .vault
        .get(&id, record.version)
        .map_err(internal)?
        .ok_or_else(|| ApiError::unavailable("keys not yet delivered"))?;
    let ciphertext = s
        .store
        .payload(&record.ciphertext_hash)
        .map_err(internal)?
        .ok_or_else(|| ApiError::unavailable("ciphertext not yet available on this node"))?;
    let payload = Zeroizing::new(
        open_and_check(
            &ciphertext,
            &keys,
            &id,
            record.version,
            record.kind,
            &record.commitment,
        )
        .map_err(internal)?,
    );
    let text = String::from_utf8(payload.to_vec()).map_err(|_| internal("payload is not UTF-8"))?;
    // Record the access on the ledger without holding up the reply.
    let tx = s.node_tx(
        Some(caller.key),
        Action::RecordAccess {
            document: id,
            version: record.version,
            officer: caller.key,
            purpose,
        },
    );
    if let Some(Err(e)) = s.submit_one(tx, None) {
        tracing::warn!(document = %id, "access record not queued: {e}");
    }
    tracing::info!(document = %id, officer = %caller.key, "document decrypted for an officer");
    Ok(Json(json!({
        "id": id.to_string(),
        "version": record.version,
        "kind": record.kind.as_str(),
        "payload": text,
    })))
}

#[derive(Deserialize)]
struct EraseRequest {
    reason: String,
    legal_basis: String,
}

/// Longest erase reason or legal basis accepted before the contract checks.
const MAX_ERASE_TEXT_BYTES: usize = MAX_PURPOSE_BYTES;

async fn erase(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = state.shared.clone();
    let id = parse_id(&id)?;
    let request: EraseRequest = parse_json(&body)?;
    let reason = request.reason.trim().to_string();
    let legal_basis = request.legal_basis.trim().to_string();
    for (field, text) in [("reason", &reason), ("legal_basis", &legal_basis)] {
        if text.is_empty() || text.len() > MAX_ERASE_TEXT_BYTES {
            return Err(ApiError::bad_input(format!(
                "{field}: must be 1 to {MAX_ERASE_TEXT_BYTES} bytes"
            )));
        }
    }
    let admin = &caller.officer.administration;
    if *admin != s.admin {
        return Err(ApiError::forbidden(format!(
            "officer of {admin} cannot erase through the node of {}",
            s.admin
        )));
    }
    if !has_any_role(&caller.officer, &carnet_contracts::erasure::ERASING_ROLES) {
        return Err(ApiError::forbidden(
            "erasing documents needs the supervisor or admin role",
        ));
    }
    let record = find_document(&s.store, &id)?;
    if record.issuer != *admin {
        return Err(ApiError::forbidden(format!(
            "only the issuer {} may erase document {id}",
            record.issuer
        )));
    }
    if record.status == DocumentStatus::Erased {
        return Err(ApiError::bad_input(format!(
            "document {id} is already erased"
        )));
    }
    let tx = s.node_tx(
        Some(caller.key),
        Action::EraseDocument {
            id,
            reason,
            legal_basis,
        },
    );
    let waiter = submit_for_finality(&s, tx, None)?;
    tracing::info!(document = %id, officer = %caller.key, "erasure submitted");
    let height = await_finality(
        waiter,
        format!("erasure of {id} not final within 30 s; it may still become final"),
    )
    .await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "status": "erased",
        "height": height,
    })))
}

async fn document_status(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = &state.shared;
    let id = parse_id(&id)?;
    let record = visible_document(&s.store, &caller, &id)?;
    let committed = crate::ledger::Committed(&s.store);
    let status = carnet_contracts::erasure::erasure_status(&committed, &id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no document {id}")))?;
    let height =
        match carnet_contracts::erasure::erasure_record(&committed, &id).map_err(internal)? {
            Some(erasure) => erasure.height,
            None => record.height,
        };
    Ok(Json(json!({
        "id": id.to_string(),
        "status": serde_json::to_value(status.status).unwrap_or(Value::Null),
        "height": height,
        "attestations": status.attestations.iter().map(|(a, h)| json!({"administration": a.as_str(), "height": h})).collect::<Vec<_>>(),
        "pending": status.pending.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    })))
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

/// TEST ONLY (`test-hooks` feature and `--enable-test-hooks`): the DEK and salt of a
/// document version as hex, so tests can scan disks for them after erasure.
#[cfg(feature = "test-hooks")]
async fn test_keys(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
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
    tracing::warn!(document = %id, version, "TEST HOOK: document keys handed out");
    Ok(Json(json!({
        "id": id.to_string(),
        "version": version,
        "dek": hex::encode(keys.dek),
        "salt": hex::encode(keys.salt),
    })))
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The hand-written OpenAPI 3 description of this API.
pub fn openapi_document() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let errors = |codes: &[&str]| -> Value {
        let mut m = serde_json::Map::new();
        for c in codes {
            m.insert(
                (*c).to_string(),
                json!({"description": "error", "content": {"application/json": {"schema": error}}}),
            );
        }
        Value::Object(m)
    };
    let signed = json!([{"officerKey": [], "timestamp": [], "signature": []}]);
    let with = |ok: Value, codes: &[&str]| -> Value {
        let mut r = errors(codes);
        if let Value::Object(m) = &mut r {
            m.insert(
                "200".into(),
                json!({"description": "ok", "content": {"application/json": {"schema": ok}}}),
            );
        }
        r
    };
    let doc_ref = json!({"$ref": "#/components/schemas/Document"});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Carnet node API", "version": "1", "description": "Officer-signed API of a Carnet node. Every /v1 request except this document carries X-Carnet-Key, X-Carnet-Timestamp and X-Carnet-Signature (ed25519 over carnet_contracts::auth::request_signing_bytes)."},
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "responses": with(json!({"type": "object", "properties": {"status": {"type": "string"}, "administration": {"type": "string"}, "height": {"type": "integer"}, "last_block_hash": {"type": "string"}}}), &[])}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {}}}}}},
            "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}},
            "/v1/status": {"get": {"summary": "Chain status", "security": signed, "responses": with(json!({"type": "object", "properties": {"administration": {"type": "string"}, "chain_id": {"type": "string"}, "height": {"type": "integer"}, "last_block_hash": {"type": "string"}, "view": {"type": "integer"}, "validators": {"type": "integer"}, "peers": {"type": "integer"}}}), &["401", "503"])}},
            "/v1/blocks/{height}": {"get": {"summary": "A finalized block", "security": signed,
                "parameters": [{"name": "height", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": with(json!({"type": "object", "properties": {"height": {"type": "integer"}, "hash": {"type": "string"}, "view": {"type": "integer"}, "parent": {"type": "string"}, "time_ms": {"type": "integer"}, "tx_count": {"type": "integer"}, "app_hash": {"type": "string"}}}), &["400", "401", "404"])}},
            "/v1/documents": {
                "post": {"summary": "Submit a document; waits until final (at most 30 s)", "security": signed,
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind", "ucr", "recipients", "payload"], "properties": {
                        "kind": {"type": "string", "enum": DocumentKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
                        "ucr": {"type": "string", "maxLength": MAX_UCR_CHARS},
                        "recipients": {"type": "array", "items": {"type": "string"}},
                        "payload": {"type": "string", "description": "JSON object as text, at most 512 KiB"}}}}}},
                    "responses": with(json!({"type": "object", "properties": {"id": {"type": "string"}, "version": {"type": "integer"}, "height": {"type": "integer"}, "status": {"type": "string"}, "kind": {"type": "string"}}}), &["400", "401", "403", "413", "503"])},
                "get": {"summary": "Documents with a UCR visible to the caller", "security": signed,
                    "parameters": [{"name": "ucr", "in": "query", "required": true, "schema": {"type": "string"}}],
                    "responses": with(json!({"type": "object", "properties": {"documents": {"type": "array", "items": doc_ref}}}), &["400", "401"])}},
            "/v1/documents/{id}": {"get": {"summary": "Document metadata", "security": signed,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with(doc_ref.clone(), &["400", "401", "403", "404"])}},
            "/v1/documents/{id}/decrypt": {"post": {"summary": "Decrypt a document; the access is recorded on the ledger", "security": signed,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["purpose"], "properties": {"purpose": {"type": "string"}}}}}},
                "responses": with(json!({"type": "object", "properties": {"id": {"type": "string"}, "version": {"type": "integer"}, "kind": {"type": "string"}, "payload": {"type": "string"}}}), &["400", "401", "403", "404", "410", "503"])}},
            "/v1/documents/{id}/erase": {"post": {"summary": "Erase a document by key destruction (issuer's supervisor or admin); waits until final", "security": signed,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["reason", "legal_basis"], "properties": {"reason": {"type": "string"}, "legal_basis": {"type": "string"}}}}}},
                "responses": with(json!({"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "height": {"type": "integer"}}}), &["400", "401", "403", "404", "503"])}},
            "/v1/documents/{id}/status": {"get": {"summary": "Status of a document and, once erased, its destruction attestations", "security": signed,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with(json!({"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "height": {"type": "integer"},
                    "attestations": {"type": "array", "items": {"type": "object", "properties": {"administration": {"type": "string"}, "height": {"type": "integer"}}}},
                    "pending": {"type": "array", "items": {"type": "string"}}}}), &["400", "401", "403", "404"])}}
        },
        "components": {
            "securitySchemes": {
                "officerKey": {"type": "apiKey", "in": "header", "name": "X-Carnet-Key"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-Carnet-Timestamp"},
                "signature": {"type": "apiKey", "in": "header", "name": "X-Carnet-Signature"}
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string", "enum": ["bad_input", "unauthorized", "forbidden", "not_found", "too_large", "erased", "unavailable"]},
                    "message": {"type": "string"}}}}},
                "Document": {"type": "object", "properties": {
                    "id": {"type": "string"}, "version": {"type": "integer"}, "kind": {"type": "string"}, "issuer": {"type": "string"},
                    "recipients": {"type": "array", "items": {"type": "string"}}, "status": {"type": "string"},
                    "height": {"type": "integer"}, "time_ms": {"type": "integer"}, "commitment": {"type": "string"},
                    "ciphertext_hash": {"type": "string"}, "submitted_by": {"type": "string"}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mempool::Mempool;
    use crate::node::Shared;
    use crate::p2p::NetStatus;
    use crate::storage::Store;
    use crate::test_support::admin;
    use crate::vault::{KeyVault, RocksVault};
    use axum::http::Method;
    use carnet_contracts::auth::sign_request;
    use carnet_contracts::Genesis;
    use ed25519_dalek::SigningKey;
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    use tower::ServiceExt;

    fn officer_key() -> SigningKey {
        SigningKey::from_bytes(&[42; 32])
    }

    fn plain_officer_key() -> SigningKey {
        SigningKey::from_bytes(&[43; 32])
    }

    /// Puts a document record straight into committed state.
    fn put_record(store: &Store, seed: u8, status: DocumentStatus) -> DocumentId {
        let id = DocumentId([seed; 16]);
        let record = DocumentRecord {
            id,
            version: 1,
            kind: DocumentKind::ALL[0],
            issuer: AdminCode("XA".into()),
            submitted_by: PublicKey(officer_key().verifying_key().to_bytes()),
            recipients: vec![AdminCode("XB".into())],
            ucr_index: [1; 32],
            commitment: [2; 32],
            ciphertext_hash: [3; 32],
            ciphertext_len: 10,
            status,
            height: 4,
            time_ms: 1_700_000_000_000,
        };
        store
            .put_raw(
                crate::storage::CF_STATE,
                &carnet_contracts::execute::state_keys::document(&id, 1),
                &carnet_contracts::codec::encode(&record),
            )
            .unwrap();
        id
    }

    #[tokio::test]
    async fn erase_and_status_answer_precisely() {
        let f = fixture();
        let erase_body = || {
            serde_json::to_vec(&json!({"reason": "court order", "legal_basis": "GDPR 17"})).unwrap()
        };
        let unknown = hex::encode([1u8; 16]);
        // Unknown document: 404 for erase and status.
        let path = format!("/v1/documents/{unknown}/erase");
        let (status, body) =
            call_as(&f.app, &officer_key(), Method::POST, &path, erase_body()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let path = format!("/v1/documents/{unknown}/status");
        let (status, _) = call_as(&f.app, &officer_key(), Method::GET, &path, vec![]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let active = put_record(&f.store, 7, DocumentStatus::Active);
        // A plain officer may not erase: 403 before anything is submitted.
        let path = format!("/v1/documents/{active}/erase");
        let (status, body) = call_as(
            &f.app,
            &plain_officer_key(),
            Method::POST,
            &path,
            erase_body(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(error_message(&body).contains("supervisor"));
        // Missing legal basis: 400 naming the field.
        let bad = serde_json::to_vec(&json!({"reason": "x", "legal_basis": " "})).unwrap();
        let (status, body) = call_as(&f.app, &officer_key(), Method::POST, &path, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_message(&body).contains("legal_basis"));
        // Status of a live document: its status, nothing attested or pending.
        let path = format!("/v1/documents/{active}/status");
        let (status, body) = call_as(&f.app, &officer_key(), Method::GET, &path, vec![]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "active");
        assert_eq!(body["height"], 4);
        assert_eq!(body["attestations"], json!([]));
        assert_eq!(body["pending"], json!([]));

        let erased = put_record(&f.store, 8, DocumentStatus::Erased);
        // Already erased: 400.
        let path = format!("/v1/documents/{erased}/erase");
        let (status, body) =
            call_as(&f.app, &officer_key(), Method::POST, &path, erase_body()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_message(&body).contains("already erased"));
        // Decrypting an erased document: 410 with code `erased`.
        let path = format!("/v1/documents/{erased}/decrypt");
        let purpose = serde_json::to_vec(&json!({"purpose": "audit"})).unwrap();
        let (status, body) = call_as(&f.app, &officer_key(), Method::POST, &path, purpose).await;
        assert_eq!(status, StatusCode::GONE, "{body}");
        assert_eq!(body["error"]["code"], "erased");
    }

    struct Fixture {
        app: Router,
        store: Arc<Store>,
        _dir: tempfile::TempDir,
        _driver: tokio::sync::mpsc::Receiver<crate::driver::DriverEvent>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let genesis = Genesis {
            chain_id: "carnet-test".into(),
            genesis_time_ms: 1_700_000_000_000,
            administrations: vec![admin("XA", 10), admin("XB", 20)],
            officers: vec![
                Officer {
                    key: PublicKey(officer_key().verifying_key().to_bytes()),
                    administration: AdminCode("XA".into()),
                    name: "Officer".into(),
                    roles: vec![Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin],
                    active: true,
                },
                Officer {
                    key: PublicKey(plain_officer_key().verifying_key().to_bytes()),
                    administration: AdminCode("XA".into()),
                    name: "Plain officer".into(),
                    roles: vec![Role::Officer],
                    active: true,
                },
            ],
        };
        let head = crate::node::prepare_store(&store, &genesis).unwrap();
        let (driver, rx) = tokio::sync::mpsc::channel(16);
        let vault: Arc<dyn KeyVault> = Arc::new(RocksVault::new(store.clone()));
        let store_handle = store.clone();
        let validators = carnet_consensus::ValidatorSet::new(
            genesis
                .administrations
                .iter()
                .map(|a| ed25519_dalek::VerifyingKey::from_bytes(&a.validator_key.0).unwrap())
                .collect(),
        )
        .unwrap();
        let shared = Arc::new(Shared {
            admin: AdminCode("XA".into()),
            chain_id: genesis.chain_id.clone(),
            genesis: genesis.clone(),
            validators,
            validator_admins: vec![AdminCode("XA".into()), AdminCode("XB".into())],
            store,
            vault,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            net_status: Arc::new(NetStatus::default()),
            mempool: Mutex::new(Mempool::new(genesis.chain_id.clone(), 10, 10)),
            net: OnceLock::new(),
            node_key: SigningKey::from_bytes(&[10; 32]),
            encryption_secret: Zeroizing::new([12; 32]),
            ucr_key: Zeroizing::new([7; 32]),
            waiters: Mutex::new(HashMap::new()),
            head: Mutex::new(head),
            view: AtomicU64::new(0),
            recent_blocks: Mutex::new(HashMap::new()),
            driver,
            erasure_wake: tokio::sync::Notify::new(),
        });
        Fixture {
            app: router(shared),
            store: store_handle,
            _dir: dir,
            _driver: rx,
        }
    }

    fn signed(
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

    /// Calls `path` with a request signed by `key` now.
    async fn call_as(
        app: &Router,
        key: &SigningKey,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        call(app, signed(key, method, path, body, now_ms())).await
    }

    /// The message of an error reply.
    fn error_message(body: &Value) -> &str {
        body["error"]["message"].as_str().unwrap()
    }

    async fn call(app: &Router, request: Request) -> (StatusCode, Value) {
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

    #[tokio::test]
    async fn signed_status_request_is_served_once() {
        let f = fixture();
        let request = || signed(&officer_key(), Method::GET, "/v1/status", vec![], now_ms());
        let first = request();
        let replay = Request::builder()
            .method(Method::GET)
            .uri("/v1/status")
            .header(HEADER_KEY, first.headers()[HEADER_KEY].clone())
            .header(HEADER_TIMESTAMP, first.headers()[HEADER_TIMESTAMP].clone())
            .header(HEADER_SIGNATURE, first.headers()[HEADER_SIGNATURE].clone())
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&f.app, first).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["administration"], "XA");
        assert_eq!(body["validators"], 2);
        let (status, body) = call(&f.app, replay).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(error_message(&body).contains("replayed"));
    }

    #[tokio::test]
    async fn unknown_officer_bad_signature_and_stale_timestamp_get_401() {
        let f = fixture();
        let stranger = SigningKey::from_bytes(&[99; 32]);
        let (status, body) = call_as(&f.app, &stranger, Method::GET, "/v1/status", vec![]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(error_message(&body).contains("unknown"));

        let mut forged = signed(
            &officer_key(),
            Method::GET,
            "/v1/blocks/0",
            vec![],
            now_ms(),
        );
        *forged.uri_mut() = "/v1/status".parse().unwrap();
        let (status, _) = call(&f.app, forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let stale = now_ms() - 60_000;
        let (status, body) = call(
            &f.app,
            signed(&officer_key(), Method::GET, "/v1/status", vec![], stale),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(error_message(&body).contains("timestamp"));

        let unsigned = Request::builder()
            .uri("/v1/status")
            .body(Body::empty())
            .unwrap();
        let (status, _) = call(&f.app, unsigned).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn oversized_body_gets_413() {
        let f = fixture();
        let body = vec![b'x'; MAX_BODY_BYTES + 1];
        let (status, body) =
            call_as(&f.app, &officer_key(), Method::POST, "/v1/documents", body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "too_large");
    }

    #[tokio::test]
    async fn bad_document_input_gets_400_naming_the_field() {
        let f = fixture();
        let cases = [
            (
                json!({"kind": "export-declaration", "ucr": "UCR1", "recipients": ["XB"], "payload": "[1,2]"}),
                "payload is not a JSON object",
            ),
            (
                json!({"kind": "export-declaration", "ucr": "UCR1", "recipients": ["XB"], "payload": "{oops"}),
                "payload is not a JSON object",
            ),
            (
                json!({"kind": "love-letter", "ucr": "UCR1", "recipients": ["XB"], "payload": "{}"}),
                "kind",
            ),
            (
                json!({"kind": "export-declaration", "ucr": "", "recipients": ["XB"], "payload": "{}"}),
                "ucr",
            ),
            (
                json!({"kind": "export-declaration", "ucr": "U".repeat(71), "recipients": ["XB"], "payload": "{}"}),
                "ucr",
            ),
            (
                json!({"kind": "export-declaration", "ucr": "UCR1", "recipients": ["XA"], "payload": "{}"}),
                "recipients",
            ),
            (
                json!({"kind": "export-declaration", "ucr": "UCR1", "recipients": ["ZZ"], "payload": "{}"}),
                "recipients",
            ),
        ];
        for (request, expected) in cases {
            let body = serde_json::to_vec(&request).unwrap();
            let (status, answer) =
                call_as(&f.app, &officer_key(), Method::POST, "/v1/documents", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {answer}");
            assert_eq!(answer["error"]["code"], "bad_input");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(expected), "{request}: {message}");
        }
    }

    #[tokio::test]
    async fn health_openapi_and_unknown_document() {
        let f = fixture();
        let (status, body) = call(
            &f.app,
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
            &f.app,
            Request::builder()
                .uri("/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["paths"]["/v1/documents/{id}/decrypt"]["post"].is_object());
        let path = format!("/v1/documents/{}", hex::encode([1u8; 16]));
        let (status, body) = call_as(&f.app, &officer_key(), Method::GET, &path, vec![]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) =
            call_as(&f.app, &officer_key(), Method::GET, "/v1/blocks/0", vec![]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["height"], 0);
    }
}
