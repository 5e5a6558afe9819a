//! A blocking HTTP client for one node's API (docs/interfaces.md, "Node HTTP API").
//!
//! Every `/v1` request carries `X-Carnet-Key`, `X-Carnet-Timestamp` (now, ms) and
//! `X-Carnet-Signature` made by [`carnet_contracts::auth::sign_request`] over the exact
//! method, path-and-query and body bytes sent. Answers are decoded into the typed records
//! below; any non-2xx answer becomes a [`CliError`] carrying the node's error code.
//!
//! Reads (GET, decrypt) wait out a 503 "not ready" for a bounded time; a submit or an
//! erase is never retried, and no answer but 503 is retried (a 410 "erased" is final).
//!
//! Must never: follow redirects to another host with the officer's signature, retry a
//! non-idempotent request on its own (a retried submit would be a second document), or
//! re-encode the payload text.

use crate::error::CliError;
use carnet_contracts::auth;
use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long to wait for a TCP connection to the node.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long to wait for any answer; a submit waits up to 30 s for finality on the node.
pub const REQUEST_TIMEOUT_MS: u64 = 45_000;
/// Largest request body a node accepts (docs/interfaces.md: 413 above it). The client
/// refuses to send more, so an officer gets "too large" rather than a broken connection.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a read (GET, decrypt) keeps retrying while the node answers 503 "not ready"
/// (e.g. a document's keys are still on their way to the recipient's node).
pub const READ_RETRY_MS: u64 = 15_000;
/// Longest pause between two such retries, whatever `Retry-After` says.
pub const MAX_RETRY_PAUSE_MS: u64 = 2_000;
/// How long an event stream may stay silent before it counts as dropped: three of the
/// node's 15 s keep-alives.
pub const STREAM_IDLE_TIMEOUT_MS: u64 = 45_000;
/// Most bytes of a refused stream request's body read for its error message.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub administration: String,
    pub height: u64,
    #[serde(default)]
    pub last_block_hash: Option<String>,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub administration: String,
    pub chain_id: String,
    pub height: u64,
    #[serde(default)]
    pub last_block_hash: Option<String>,
    pub view: u64,
    /// Number of validators in the current consensus epoch.
    pub validators: u64,
    /// The current consensus epoch (the validator set changes only between epochs).
    #[serde(default)]
    pub epoch: u64,
    /// Administrations of the current epoch's validators, by validator index.
    #[serde(default)]
    pub validator_set: Vec<String>,
    /// Number of peers this node is connected to.
    pub peers: u64,
}

/// `GET /v1/blocks/{height}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub height: u64,
    pub hash: String,
    pub view: u64,
    pub parent: String,
    pub time_ms: u64,
    pub tx_count: u64,
    pub app_hash: String,
}

/// Body of `POST /v1/documents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub kind: String,
    pub ucr: String,
    pub recipients: Vec<String>,
    /// The exact JSON text of the declaration.
    pub payload: String,
}

/// Answer of `POST /v1/documents`, once the document is final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: String,
    pub version: u32,
    pub height: u64,
    pub status: String,
    pub kind: String,
    /// The agreement the document was filed under (named or picked by the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
}

/// A document's ledger metadata (never the plaintext).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub version: u32,
    pub kind: String,
    pub issuer: String,
    pub recipients: Vec<String>,
    pub status: String,
    pub height: u64,
    pub time_ms: u64,
    pub commitment: String,
    pub ciphertext_hash: String,
    pub submitted_by: String,
    /// The agreement the document was filed under, when the node says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
}

/// Answer of `GET /v1/documents?ucr=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentList {
    pub documents: Vec<Document>,
}

/// Answer of `POST /v1/documents/{id}/decrypt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decrypted {
    pub id: String,
    pub version: u32,
    pub kind: String,
    /// The exact JSON text the issuing officer submitted.
    pub payload: String,
}

/// Body of `POST /v1/documents/{id}/erase`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// Why the document is erased; recorded on the ledger.
    pub reason: String,
    /// The legal basis of the erasure (e.g. a regulation and article); recorded on the
    /// ledger.
    pub legal_basis: String,
}

/// Answer of `POST /v1/documents/{id}/erase`, once the erasure is final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub id: String,
    /// `erased`.
    pub status: String,
    /// Height of the block that finalized the erasure.
    pub height: u64,
}

/// One node's destruction attestation of an erased document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The administration whose node destroyed its keys and attested it.
    pub administration: String,
    /// Height of the block holding the attestation.
    pub height: u64,
}

/// Answer of `GET /v1/documents/{id}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentStatus {
    pub id: String,
    /// `active`, `erased`, ...
    pub status: String,
    pub height: u64,
    /// Destruction attestations on the ledger so far.
    #[serde(default)]
    pub attestations: Vec<Attestation>,
    /// Administrations whose nodes have not attested yet.
    #[serde(default)]
    pub pending: Vec<String>,
    /// The agreement the document was filed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// Delivery acknowledgements on the ledger; `None` when the node does not report them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryAck>>,
}

/// A recipient's acknowledgement that a document version reached it (`carnet watch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAck {
    pub administration: String,
    pub version: u32,
    /// Height of the block holding the acknowledgement.
    pub height: u64,
}

/// The three authentication headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub key: String,
    pub timestamp_ms: u64,
    pub signature: String,
}

/// A raw answer: status and body bytes (for callers that check refusals exactly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` of a 503, in ms.
    pub retry_after_ms: Option<u64>,
}

impl RawResponse {
    /// The node's error code (`bad_input`, `unauthorized`, ...) if the body carries one.
    pub fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(v.get("error")?.get("code")?.as_str()?.to_string())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The timestamp for the next signed request: now, but strictly after every timestamp
/// this process used before, so two identical requests never carry the same signature
/// (the node would refuse the second as a replay).
pub fn next_timestamp_ms() -> u64 {
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let mut last = LAST_MS.load(Ordering::SeqCst);
    loop {
        let next = now.max(last + 1);
        match LAST_MS.compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// Percent-encodes a query value: unreserved characters (RFC 3986) pass, all else `%XX`.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A connection to one node on behalf of one officer.
pub struct NodeClient {
    base: String,
    officer: SigningKey,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("base", &self.base)
            .field(
                "officer",
                &hex::encode(self.officer.verifying_key().as_bytes()),
            )
            .finish()
    }
}

impl NodeClient {
    /// `base` is the node's API URL, e.g. `http://127.0.0.1:7201` (a bare `host:port`
    /// gets `http://`).
    pub fn new(base: &str, officer: SigningKey) -> Result<Self, CliError> {
        let base = base.trim().trim_end_matches('/');
        if base.is_empty() {
            return Err(CliError::bad_input("node URL is empty"));
        }
        let base = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        if !base.starts_with("http://") {
            return Err(CliError::bad_input(format!(
                "node URL `{base}` must start with http://"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::unavailable(format!("cannot build HTTP client: {e}")))?;
        Ok(NodeClient {
            base,
            officer,
            http,
        })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The officer's public key, hex.
    pub fn officer_public_key(&self) -> String {
        hex::encode(self.officer.verifying_key().as_bytes())
    }

    /// The headers that authenticate `method path_and_query` with `body` at `timestamp_ms`.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        timestamp_ms: u64,
        body: &[u8],
    ) -> SignedHeaders {
        SignedHeaders {
            key: self.officer_public_key(),
            timestamp_ms,
            signature: auth::sign_request(
                &self.officer,
                method,
                path_and_query,
                timestamp_ms,
                body,
            ),
        }
    }

    /// Sends exactly these bytes with exactly these headers (no signing, no retry).
    /// Only transport failures are errors; any HTTP status is returned as is.
    pub fn send_raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
        headers: Option<&SignedHeaders>,
    ) -> Result<RawResponse, CliError> {
        let url = format!("{}{}", self.base, path_and_query);
        let method_value = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| CliError::bad_input(format!("`{method}` is not an HTTP method")))?;
        let mut request = self.http.request(method_value, &url);
        if let Some(h) = headers {
            request = request
                .header(auth::HEADER_KEY, &h.key)
                .header(auth::HEADER_TIMESTAMP, h.timestamp_ms.to_string())
                .header(auth::HEADER_SIGNATURE, &h.signature);
        }
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| secs.saturating_mul(1000));
        let body = response
            .bytes()
            .map_err(|e| self.transport_error(&e))?
            .to_vec();
        Ok(RawResponse {
            status,
            body,
            retry_after_ms,
        })
    }

    /// Signs and sends; returns the raw answer whatever its status.
    pub fn send_signed(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<RawResponse, CliError> {
        let headers = self.sign(method, path_and_query, next_timestamp_ms(), &body);
        self.send_raw(method, path_and_query, body, Some(&headers))
    }

    /// Signs, sends and decodes a 2xx answer into `T`; any other status is an error.
    /// Never retries.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<T, CliError> {
        let raw = self.send_signed(method, path_and_query, body)?;
        decode(raw, path_and_query)
    }

    /// Like [`NodeClient::call`] for reads that change nothing when refused: while the
    /// node answers 503 (not ready), waits `Retry-After` (capped) and asks again, for at
    /// most [`READ_RETRY_MS`]. Each attempt is signed afresh.
    pub fn read<T: DeserializeOwned>(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<T, CliError> {
        let started = std::time::Instant::now();
        loop {
            let raw = self.send_signed(method, path_and_query, body.clone())?;
            let waited_ms = started.elapsed().as_millis() as u64;
            if let Some(pause) = read_retry_pause_ms(&raw, waited_ms) {
                std::thread::sleep(Duration::from_millis(pause));
                continue;
            }
            return decode(raw, path_and_query);
        }
    }

    /// `GET /healthz` (not signed).
    pub fn healthz(&self) -> Result<Health, CliError> {
        let raw = self.send_raw("GET", "/healthz", Vec::new(), None)?;
        decode(raw, "/healthz")
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<Status, CliError> {
        self.read("GET", "/v1/status", Vec::new())
    }

    /// `GET /v1/blocks/{height}`.
    pub fn block(&self, height: u64) -> Result<Block, CliError> {
        self.read("GET", &format!("/v1/blocks/{height}"), Vec::new())
    }

    /// `POST /v1/documents`; returns once the document is final.
    pub fn submit(&self, submission: &Submission) -> Result<Submitted, CliError> {
        self.call(
            "POST",
            "/v1/documents",
            encode_body("submission", submission)?,
        )
    }

    /// `GET /v1/documents/{id}`.
    pub fn document(&self, id: &str) -> Result<Document, CliError> {
        self.read(
            "GET",
            &format!("/v1/documents/{}", encode_query_value(id)),
            Vec::new(),
        )
    }

    /// `GET /v1/documents?ucr=UCR`: the documents of this UCR the officer may see.
    pub fn find_by_ucr(&self, ucr: &str) -> Result<Vec<Document>, CliError> {
        let list: DocumentList = self.read(
            "GET",
            &format!("/v1/documents?ucr={}", encode_query_value(ucr)),
            Vec::new(),
        )?;
        Ok(list.documents)
    }

    /// `POST /v1/documents/{id}/decrypt`; the node records the access on the ledger.
    pub fn decrypt(&self, id: &str, purpose: &str) -> Result<Decrypted, CliError> {
        let body = serde_json::to_vec(&serde_json::json!({ "purpose": purpose }))
            .map_err(|e| CliError::bad_input(format!("cannot encode purpose: {e}")))?;
        self.read(
            "POST",
            &format!("/v1/documents/{}/decrypt", encode_query_value(id)),
            body,
        )
    }

    /// `POST /v1/documents/{id}/erase`; returns once the erasure is final. Never retried:
    /// a second erase of the same document is refused as "already erased".
    pub fn erase(&self, id: &str, request: &ErasureRequest) -> Result<Erased, CliError> {
        let body = encode_body("erasure request", request)?;
        self.call(
            "POST",
            &format!("/v1/documents/{}/erase", encode_query_value(id)),
            body,
        )
    }

    /// `GET /v1/documents/{id}/status`: status, destruction attestations, pending nodes.
    pub fn document_status(&self, id: &str) -> Result<DocumentStatus, CliError> {
        self.read(
            "GET",
            &format!("/v1/documents/{}/status", encode_query_value(id)),
            Vec::new(),
        )
    }

    /// Opens a signed `GET` stream (`text/event-stream`) and returns its body to read
    /// as it arrives. A read that waits longer than [`STREAM_IDLE_TIMEOUT_MS`] fails, so
    /// a silently dead connection is noticed. A non-2xx answer is the usual error.
    pub fn open_stream(&self, path_and_query: &str) -> Result<Box<dyn Read + Send>, CliError> {
        // A client of its own: the blocking client's timeout bounds each wait (connect,
        // headers, every read), never the life of the stream.
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(STREAM_IDLE_TIMEOUT_MS))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::unavailable(format!("cannot build HTTP client: {e}")))?;
        let h = self.sign("GET", path_and_query, next_timestamp_ms(), b"");
        let response = http
            .get(format!("{}{}", self.base, path_and_query))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(auth::HEADER_KEY, &h.key)
            .header(auth::HEADER_TIMESTAMP, h.timestamp_ms.to_string())
            .header(auth::HEADER_SIGNATURE, &h.signature)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(Box::new(response));
        }
        let mut body = Vec::new();
        // The error body is only for the message; a broken one still gives the status.
        let _ = response.take(MAX_ERROR_BODY_BYTES).read_to_end(&mut body);
        Err(CliError::from_http(status, &body))
    }

    fn transport_error(&self, e: &reqwest::Error) -> CliError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        // reqwest's Display hides the cause chain; the root cause is the useful part.
        let mut cause = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        if cause.is_empty() {
            cause = e.to_string();
        }
        CliError::unavailable(format!("node {} unavailable: {what}: {cause}", self.base))
    }
}

/// Encodes a request body as JSON, refusing (exit 2, code `too_large`) one the node would
/// refuse with 413.
pub fn encode_body<T: Serialize + ?Sized>(what: &str, body: &T) -> Result<Vec<u8>, CliError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| CliError::bad_input(format!("cannot encode {what}: {e}")))?;
    check_body_size(what, bytes)
}

/// Refuses (exit 2, code `too_large`) a body the node would refuse with 413.
pub fn check_body_size(what: &str, body: Vec<u8>) -> Result<Vec<u8>, CliError> {
    if body.len() > MAX_BODY_BYTES {
        let mut e = CliError::bad_input(format!(
            "{what} is {} bytes; a node accepts at most {MAX_BODY_BYTES}",
            body.len()
        ));
        e.code = "too_large".into();
        return Err(e);
    }
    Ok(body)
}

/// How long [`NodeClient::read`] pauses before asking again, or `None` to take the
/// answer as it is. Only a 503 "not ready" is retried, for at most [`READ_RETRY_MS`] in
/// all; every other status (a 410 "erased" above all) is final.
pub fn read_retry_pause_ms(raw: &RawResponse, waited_ms: u64) -> Option<u64> {
    if raw.status != 503 || waited_ms >= READ_RETRY_MS {
        return None;
    }
    Some(
        raw.retry_after_ms
            .unwrap_or(500)
            .clamp(100, MAX_RETRY_PAUSE_MS)
            .min(READ_RETRY_MS - waited_ms),
    )
}

fn decode<T: DeserializeOwned>(raw: RawResponse, what: &str) -> Result<T, CliError> {
    if !(200..300).contains(&raw.status) {
        return Err(CliError::from_http(raw.status, &raw.body));
    }
    serde_json::from_slice(&raw.body).map_err(|e| {
        CliError::unavailable(format!(
            "node answered {what} with a body that does not follow the API: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("23XA-A1/b c"), "23XA-A1%2Fb%20c");
        assert_eq!(encode_query_value("abc-._~"), "abc-._~");
    }

    #[test]
    fn signed_headers_verify_with_the_contracts_rules() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let client = NodeClient::new("127.0.0.1:1", key.clone()).unwrap();
        assert_eq!(client.base(), "http://127.0.0.1:1");
        let h = client.sign("POST", "/v1/documents", 1_700_000_000_000, b"{}");
        let public = carnet_contracts::PublicKey(key.verifying_key().to_bytes());
        auth::verify_request(
            &public,
            &h.signature,
            "POST",
            "/v1/documents",
            h.timestamp_ms,
            b"{}",
        )
        .unwrap();
        assert!(auth::verify_request(
            &public,
            &h.signature,
            "POST",
            "/v1/documents",
            h.timestamp_ms,
            b"{ }"
        )
        .is_err());
    }

    fn answer(status: u16, retry_after_ms: Option<u64>) -> RawResponse {
        RawResponse {
            status,
            body: Vec::new(),
            retry_after_ms,
        }
    }

    #[test]
    fn only_503_is_retried_and_never_410() {
        assert_eq!(read_retry_pause_ms(&answer(503, None), 0), Some(500));
        assert_eq!(
            read_retry_pause_ms(&answer(503, Some(60_000)), 0),
            Some(MAX_RETRY_PAUSE_MS)
        );
        assert_eq!(
            read_retry_pause_ms(&answer(503, Some(1_000)), READ_RETRY_MS - 200),
            Some(200)
        );
        assert_eq!(read_retry_pause_ms(&answer(503, None), READ_RETRY_MS), None);
        let erased = RawResponse {
            status: 410,
            body: br#"{"error":{"code":"erased","message":"document ab is erased"}}"#.to_vec(),
            retry_after_ms: Some(1_000),
        };
        assert_eq!(read_retry_pause_ms(&erased, 0), None);
        for status in [200, 400, 401, 403, 404, 410, 500, 502] {
            assert_eq!(
                read_retry_pause_ms(&answer(status, None), 0),
                None,
                "{status}"
            );
        }
        let e = decode::<Decrypted>(erased, "/v1/documents/ab/decrypt").unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.message.contains("is erased"), "{}", e.message);
    }

    #[test]
    fn document_status_decodes_the_api_fields() {
        let body = br#"{"id":"ab","status":"erased","height":9,
            "attestations":[{"administration":"XA","height":10}],"pending":["XB","XC"]}"#;
        let status: DocumentStatus = decode(answer_with(200, body), "status").unwrap();
        assert_eq!(status.status, "erased");
        assert_eq!(
            status.attestations,
            vec![Attestation {
                administration: "XA".into(),
                height: 10
            }]
        );
        assert_eq!(status.pending, vec!["XB", "XC"]);
        let erased: Erased = decode(
            answer_with(200, br#"{"id":"ab","status":"erased","height":9}"#),
            "erase",
        )
        .unwrap();
        assert_eq!(erased.height, 9);
    }

    fn answer_with(status: u16, body: &[u8]) -> RawResponse {
        RawResponse {
            status,
            body: body.to_vec(),
            retry_after_ms: None,
        }
    }

    #[test]
    fn connection_refused_is_unavailable() {
        // Port 1 on loopback is not listening in any sane test environment.
        let client =
            NodeClient::new("http://127.0.0.1:1", SigningKey::from_bytes(&[1u8; 32])).unwrap();
        let err = client.healthz().unwrap_err();
        assert_eq!(err.exit_code(), 5, "{err}");
    }
}
