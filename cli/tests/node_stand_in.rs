//! The `carnet` binary against an in-process stand-in for a node's HTTP API (axum):
//! `watch` reconnecting and acknowledging, a TFA request asked and answered, and
//! refusals mapped to exit codes. The stand-in checks every request's signature with
//! the contracts' rules and records what it was sent; it answers with fixed records.
//!
//! Real multi-process tests against real nodes live in `testnet/tests`.

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use carnet_contracts::auth;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};

const REQUEST_ID: &str = "5151515151515151515151515151515a";
const DOC_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DOC_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const DOC_C: &str = "cccccccccccccccccccccccccccccccc";

/// What the stand-in was sent.
#[derive(Default)]
struct Seen {
    /// `from_height` of each `GET /v1/events`.
    stream_opens: Vec<Option<u64>>,
    /// `(document, body)` of each acknowledgement.
    acks: Vec<(String, Value)>,
    /// `(path, body)` of each other POST.
    posts: Vec<(String, Value)>,
    /// Requests whose signature did not verify.
    unsigned: Vec<String>,
}

#[derive(Clone)]
struct StandIn {
    officer: carnet_contracts::PublicKey,
    seen: Arc<Mutex<Seen>>,
    /// Refuse the event stream with this status.
    refuse_events: Option<u16>,
}

impl StandIn {
    fn signed(&self, method: &Method, uri: &OriginalUri, headers: &HeaderMap, body: &[u8]) -> bool {
        let path = uri.0.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let ok = match (
            header(auth::HEADER_KEY),
            header(auth::HEADER_TIMESTAMP).and_then(|t| t.parse::<u64>().ok()),
            header(auth::HEADER_SIGNATURE),
        ) {
            (Some(key), Some(ts), Some(sig)) if key == self.officer.to_string() => {
                auth::verify_request(&self.officer, sig, method.as_str(), path, ts, body).is_ok()
            }
            _ => false,
        };
        if !ok {
            self.seen.lock().unwrap().unsigned.push(path.to_string());
        }
        ok
    }
}

fn refusal(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn event(id: &str, height: u64) -> String {
    let data = json!({"id": id, "version": 1, "kind": "export-declaration", "issuer": "XA",
        "agreement": "0a".repeat(16), "height": height, "time_ms": 1_709_210_096_000u64,
        "status": "active"});
    format!("event: document\nid: {height}\ndata: {data}\n\n")
}

async fn status(
    State(s): State<StandIn>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if !s.signed(&method, &uri, &headers, b"") {
        return refusal(401, "unauthorized", "bad signature");
    }
    Json(
        json!({"administration": "XB", "chain_id": "stand-in", "height": 4,
        "last_block_hash": null, "view": 4, "validators": 4, "peers": 3}),
    )
    .into_response()
}

/// First stream: a keep-alive and document A (height 5), then it ends. Later streams:
/// A again (height 5, must be skipped), B (height 5, split over two writes), C (6), then
/// stay open.
async fn events(
    State(s): State<StandIn>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if !s.signed(&method, &uri, &headers, b"") {
        return refusal(401, "unauthorized", "bad signature");
    }
    if let Some(status) = s.refuse_events {
        return refusal(status, "forbidden", "no event stream for you");
    }
    let from_height = uri
        .0
        .query()
        .and_then(|q| q.strip_prefix("from_height="))
        .and_then(|h| h.parse().ok());
    let first = {
        let mut seen = s.seen.lock().unwrap();
        seen.stream_opens.push(from_height);
        seen.stream_opens.len() == 1
    };
    let chunks: Vec<String> = if first {
        vec![": keep-alive\n\n".into(), event(DOC_A, 5)]
    } else {
        let b = event(DOC_B, 5);
        let (b1, b2) = b.split_at(b.len() / 2);
        vec![event(DOC_A, 5), b1.into(), b2.into(), event(DOC_C, 6)]
    };
    let items = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<Bytes, std::io::Error>(Bytes::from(c))),
    );
    let body = if first {
        Body::from_stream(items)
    } else {
        use futures::StreamExt;
        Body::from_stream(items.chain(futures::stream::pending()))
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

async fn ack(
    State(s): State<StandIn>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.signed(&method, &uri, &headers, &body) {
        return refusal(401, "unauthorized", "bad signature");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let version = body["version"].as_u64().unwrap_or(0);
    s.seen.lock().unwrap().acks.push((id.clone(), body));
    Json(json!({"id": id, "version": version, "administration": "XB", "height": 7})).into_response()
}

fn request_record(body: &Value, status: &str, answers: Value) -> Value {
    json!({
        "id": REQUEST_ID, "from": "XA", "to": body["to"].as_str().unwrap_or("XB"),
        "matter": {"ucr_index": "ee".repeat(32)},
        "purpose": body["purpose"].as_str().unwrap_or("verify the declared value"),
        "legal_basis": body["legal_basis"].as_str().unwrap_or("WTO TFA Art. 12"),
        "items": body["items"].clone(), "confidentiality": "restricted",
        "status": status, "height": 9, "time_ms": 1_709_210_096_000u64,
        "deadline_ms": 1_709_210_096_000u64 + 90 * 86_400_000, "overdue": false,
        "answers": answers, "breaches": []
    })
}

async fn create_request(
    State(s): State<StandIn>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.signed(&method, &uri, &headers, &body) {
        return refusal(401, "unauthorized", "bad signature");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.seen
        .lock()
        .unwrap()
        .posts
        .push(("/v1/requests".into(), body.clone()));
    Json(request_record(&body, "open", json!([]))).into_response()
}

async fn answer_request(
    State(s): State<StandIn>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.signed(&method, &uri, &headers, &body) {
        return refusal(401, "unauthorized", "bad signature");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.seen
        .lock()
        .unwrap()
        .posts
        .push((format!("/v1/requests/{id}/answer"), body.clone()));
    let mut answer = body.clone();
    answer["height"] = json!(11);
    let record = request_record(
        &json!({"items": ["invoice"]}),
        body["answer"].as_str().map_or("open", |a| match a {
            "refuse" => "refused",
            "provide" => "provided",
            _ => "postponed",
        }),
        json!([answer]),
    );
    Json(record).into_response()
}

/// The payload every decrypt returns.
const PAYLOAD: &str = "{\"UCR\":\"24XA-0001\", \"Quantity\": 24}";

async fn decrypt(
    State(s): State<StandIn>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.signed(&method, &uri, &headers, &body) {
        return refusal(401, "unauthorized", "bad signature");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let version = body["version"].as_u64().unwrap_or(3);
    s.seen
        .lock()
        .unwrap()
        .posts
        .push((format!("/v1/documents/{id}/decrypt"), body));
    Json(json!({"id": id, "version": version, "kind": "export-declaration", "payload": PAYLOAD}))
        .into_response()
}

async fn add_officer(
    State(s): State<StandIn>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.signed(&method, &uri, &headers, &body) {
        return refusal(401, "unauthorized", "bad signature");
    }
    refusal(403, "forbidden", "officer lacks role admin of XB")
}

/// A running stand-in: its URL, what it saw, an officer key file it trusts and a
/// profile naming both.
struct Node {
    url: String,
    seen: Arc<Mutex<Seen>>,
    key_file: PathBuf,
    profile: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(refuse_events: Option<u16>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let key_file = dir.path().join("officer.key");
    carnet_cli::profile::write_signing_key(&key_file, &key).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = StandIn {
        officer: carnet_contracts::PublicKey(key.verifying_key().to_bytes()),
        seen: seen.clone(),
        refuse_events,
    };
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/events", get(events))
        .route("/v1/documents/{id}/ack", post(ack))
        .route("/v1/requests", post(create_request))
        .route("/v1/requests/{id}/answer", post(answer_request))
        .route("/v1/officers", post(add_officer))
        .route("/v1/documents/{id}/decrypt", post(decrypt))
        .with_state(state);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    let url = format!("http://{addr}");
    let profile = dir.path().join("XB.toml");
    std::fs::write(
        &profile,
        format!("administration = \"XB\"\nnode = \"{url}\"\nkey = \"officer.key\"\n"),
    )
    .unwrap();
    Node {
        url,
        seen,
        key_file,
        profile,
        _dir: dir,
    }
}

/// Runs the `carnet` binary with `args` and nothing from the environment.
fn carnet_with(args: &[&std::ffi::OsStr]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_carnet"))
        .args(args)
        .env_remove("CARNET_PROFILE")
        .env_remove("CARNET_NODE")
        .env_remove("CARNET_KEY")
        .output()
        .unwrap()
}

/// `carnet --profile XB.toml ARGS...`.
fn carnet(node: &Node, args: &[&str]) -> Output {
    let mut all = vec![std::ffi::OsStr::new("--profile"), node.profile.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    carnet_with(&all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn watch_reconnects_from_the_last_height_and_acknowledges_each_document_once() {
    let node = start(None);
    let run = carnet(&node, &["--output", "json", "watch", "--count", "3"]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![DOC_A, DOC_B, DOC_C], "{stdout}");
    assert_eq!(lines[2]["height"], json!(6));
    assert_eq!(lines[0]["kind"], json!("export-declaration"));
    assert!(stderr.contains("reconnecting from height 5"), "{stderr}");
    let seen = node.seen.lock().unwrap();
    assert!(seen.unsigned.is_empty(), "unsigned: {:?}", seen.unsigned);
    // Started at the node's next block, resumed at the last height seen.
    assert_eq!(seen.stream_opens, vec![Some(5), Some(5)]);
    let acked: Vec<(&str, &Value)> = seen.acks.iter().map(|(id, b)| (id.as_str(), b)).collect();
    let version_1 = json!({"version": 1});
    assert_eq!(
        acked,
        vec![
            (DOC_A, &version_1),
            (DOC_B, &version_1),
            (DOC_C, &version_1)
        ]
    );
}

#[test]
fn watch_without_ack_prints_lines_and_records_nothing() {
    let node = start(None);
    // The node and the key given as flags rather than by the profile.
    let mut args = vec![
        std::ffi::OsStr::new("--node"),
        std::ffi::OsStr::new(&node.url),
        std::ffi::OsStr::new("--key"),
        node.key_file.as_os_str(),
    ];
    args.extend(
        ["watch", "--from-height", "5", "--no-ack", "--count", "1"]
            .iter()
            .map(std::ffi::OsStr::new),
    );
    let run = carnet_with(&args);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "5  {DOC_A}  v1  export-declaration  from XA  active"
        )),
        "{stdout}"
    );
    let seen = node.seen.lock().unwrap();
    assert!(seen.acks.is_empty());
    assert_eq!(seen.stream_opens, vec![Some(5)]);
}

#[test]
fn a_refused_event_stream_is_not_retried() {
    let node = start(Some(403));
    let run = carnet(&node, &["watch", "--count", "1"]);
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("no event stream for you"));
    assert_eq!(node.seen.lock().unwrap().unsigned, Vec::<String>::new());
}

#[test]
fn a_request_is_asked_and_refused_with_a_ground_of_article_12_7_1() {
    let node = start(None);
    let created = carnet(
        &node,
        &[
            "--output",
            "json",
            "request",
            "create",
            "--to",
            "XB",
            "--ucr",
            "24XA-0001",
            "--purpose",
            "verify the declared value",
            "--legal-basis",
            "WTO TFA Art. 12",
            "--items",
            "invoice, packing list",
        ],
    );
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let record: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(record["id"], json!(REQUEST_ID));
    assert_eq!(record["status"], json!("open"));
    let answered = carnet(
        &node,
        &[
            "request",
            "answer",
            REQUEST_ID,
            "--refuse",
            "--reason-code",
            "C",
            "--reason",
            "on-going prosecution",
        ],
    );
    let stdout = text(&answered.stdout);
    assert_eq!(
        answered.status.code(),
        Some(0),
        "{}",
        text(&answered.stderr)
    );
    assert!(stdout.contains("status           refused\n"), "{stdout}");
    assert!(
        stdout
            .contains("answers          refuse (Art. 12.7.1 c): on-going prosecution  height 11\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deadline         2024-05-29 (answered)\n"),
        "{stdout}"
    );
    let seen = node.seen.lock().unwrap();
    assert!(seen.unsigned.is_empty(), "unsigned: {:?}", seen.unsigned);
    assert_eq!(
        seen.posts,
        vec![
            (
                "/v1/requests".to_string(),
                json!({"to": "XB", "ucr": "24XA-0001", "purpose": "verify the declared value",
                       "legal_basis": "WTO TFA Art. 12", "items": ["invoice", "packing list"]})
            ),
            (
                format!("/v1/requests/{REQUEST_ID}/answer"),
                json!({"answer": "refuse", "reason_code": "c", "reason": "on-going prosecution"})
            ),
        ]
    );
}

#[test]
fn local_mistakes_reach_no_node_and_refusals_keep_their_exit_codes() {
    let node = start(None);
    // A reason code outside a–e: refused by the parser (exit 2), nothing sent.
    let bad = carnet(
        &node,
        &[
            "request",
            "answer",
            REQUEST_ID,
            "--refuse",
            "--reason-code",
            "f",
            "--reason",
            "r",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    // A malformed request id: refused locally.
    let bad = carnet(
        &node,
        &["request", "answer", "42", "--postpone", "--reason", "busy"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("request id `42`"),
        "{}",
        text(&bad.stderr)
    );
    assert!(node.seen.lock().unwrap().posts.is_empty());
    // The node's 403 is exit 3 with its message, in JSON too. `--key` after `officer
    // add` is the new officer's public key; the signer's key file comes before it.
    let mut args = vec![
        std::ffi::OsStr::new("--node"),
        std::ffi::OsStr::new(&node.url),
        std::ffi::OsStr::new("--key"),
        node.key_file.as_os_str(),
    ];
    let public = "ab".repeat(32);
    let rest = [
        "--output",
        "json",
        "officer",
        "add",
        "--key",
        public.as_str(),
        "--name",
        "Ada Mensah",
        "--roles",
        "officer,auditor",
    ];
    args.extend(rest.iter().map(std::ffi::OsStr::new));
    let denied = carnet_with(&args);
    assert_eq!(denied.status.code(), Some(3));
    let error: Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(error["error"]["code"], json!("forbidden"));
    assert!(text(&denied.stderr).contains("officer lacks role admin of XB"));
    let seen = node.seen.lock().unwrap();
    assert!(
        seen.unsigned.is_empty(),
        "signed with the key file: {:?}",
        seen.unsigned
    );
}

#[test]
fn decrypt_prints_the_payload_as_is_or_the_answer_in_json() {
    let node = start(None);
    let table = carnet(&node, &["doc", "decrypt", DOC_A, "--purpose", "clearance"]);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stderr));
    // Not a terminal: the payload byte for byte, no newline added.
    assert_eq!(text(&table.stdout), PAYLOAD);
    let json_run = carnet(
        &node,
        &[
            "--output",
            "json",
            "doc",
            "decrypt",
            DOC_A,
            "--purpose",
            "verify the declared value",
            "--version",
            "2",
            "--request",
            &REQUEST_ID.to_uppercase(),
        ],
    );
    assert_eq!(
        json_run.status.code(),
        Some(0),
        "{}",
        text(&json_run.stderr)
    );
    let answer: Value = serde_json::from_slice(&json_run.stdout).unwrap();
    assert_eq!(answer["payload"], json!(PAYLOAD));
    assert_eq!(answer["version"], json!(2));
    let seen = node.seen.lock().unwrap();
    assert!(seen.unsigned.is_empty(), "unsigned: {:?}", seen.unsigned);
    let path = format!("/v1/documents/{DOC_A}/decrypt");
    assert_eq!(
        seen.posts,
        vec![
            (path.clone(), json!({"purpose": "clearance"})),
            (
                path,
                json!({"purpose": "verify the declared value", "version": 2, "request": REQUEST_ID})
            ),
        ]
    );
}
