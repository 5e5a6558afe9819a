//! One 4-node network, real processes on loopback, walked through the issue's checks:
//! the demo exchange (XA → XB, XC refused), bad input changing nothing, a peer outside
//! genesis refused, 1,000 concurrent documents with every node agreeing on every block,
//! and no plaintext on any node's disk.

mod common;

use carnet_cli::client::{SignedHeaders, Submission};
use carnet_cli::NodeClient;
use carnet_testnet::invariants;
use carnet_testnet::layout::NodeEntry;
use carnet_testnet::load::{self, LoadItem};
use carnet_testnet::{init, process};
use common::*;
use ed25519_dalek::SigningKey;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Documents submitted by the load check.
const LOAD_DOCUMENTS: usize = 1_000;
/// HTTP workers of the load check (spread over the four nodes).
const LOAD_CONCURRENCY: usize = 32;

#[test]
fn four_node_exchange_bad_input_load_and_disk() {
    let net = start_network(4);
    let marker = format!("PLAINTEXT-MARKER-{}", tag());
    timed(
        "demo walk: XA submits to XB, XB finds and decrypts, XC refused",
        || demo_walk(&net, &marker),
    );
    timed(
        "bad input is refused with the exact code and changes nothing",
        || bad_input_changes_nothing(&net),
    );
    timed("a node outside genesis is refused on libp2p", || {
        peer_outside_genesis_is_refused(&net)
    });
    let load_marker = format!("LOAD-MARKER-{}", tag());
    timed(
        "1,000 concurrent documents; every node has the same block at every height",
        || thousand_documents_same_chain(&net, &load_marker),
    );
    timed("plaintext never on disk (running nodes)", || {
        plaintext_never_on_disk(&net, &[&marker, &load_marker])
    });
    let mut net = net;
    net.network.down().expect("down");
    timed("plaintext never on disk (after shutdown)", || {
        plaintext_never_on_disk(&net, &[&marker, &load_marker])
    });
}

fn demo_walk(net: &TestNetwork, marker: &str) {
    let scratch = net.scratch();
    let ucr = format!("24XA{}-EXP", tag().to_uppercase());
    let payload = export_declaration(&ucr, marker);
    let file = write_file(&scratch, "export.json", &payload);
    let (xa, xb, xc) = (net.profile("XA"), net.profile("XB"), net.profile("XC"));
    let (xa, xb, xc) = (
        xa.to_str().unwrap(),
        xb.to_str().unwrap(),
        xc.to_str().unwrap(),
    );

    let status = carnet(&["--profile", xa, "--output", "json", "status"]);
    assert_exit(&status, 0, "status");
    let status = json(&status);
    assert_eq!(status["administration"], "XA");
    assert_eq!(status["validators"], 4);
    assert!(status["height"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["chain_id"].is_string() && status["last_block_hash"].is_string());
    assert!(status["peers"].is_u64(), "{status}");

    let submitted = submit(
        &["--profile", xa, "--output", "json"],
        "export-declaration",
        &ucr,
        "XB",
        &file,
    );
    assert_exit(&submitted, 0, "XA submits");
    let submitted = json(&submitted);
    let id = submitted["id"].as_str().expect("id").to_string();
    assert_eq!(submitted["version"], 1);
    assert_eq!(submitted["kind"], "export-declaration");
    assert_eq!(submitted["status"], "active");
    assert!(submitted["height"].as_u64().unwrap() >= 1);
    wait_for_height(xb, submitted["height"].as_u64().unwrap());
    wait_for_height(xc, submitted["height"].as_u64().unwrap());

    let found = find_by_ucr(xb, &ucr);
    assert_exit(&found, 0, "XB finds by UCR");
    let found = json(&found);
    let docs = found["documents"].as_array().expect("documents");
    assert_eq!(docs.len(), 1, "{found}");
    assert_eq!(docs[0]["id"], id.as_str());
    assert_eq!(docs[0]["issuer"], "XA");
    assert_eq!(docs[0]["recipients"], serde_json::json!(["XB"]));

    let shown = carnet(&["--profile", xb, "--output", "json", "doc", "show", &id]);
    assert_exit(&shown, 0, "XB shows");
    let shown_text = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        !shown_text.contains(marker),
        "metadata must not carry plaintext"
    );

    let out = scratch.join("decrypted-by-xb.json");
    assert_decrypts_to_file(xb, &id, &out, &payload, "XB decrypts to a file");
    let to_stdout = decrypt(&["--profile", xb], &id, "risk analysis", None);
    assert_exit(&to_stdout, 0, "XB decrypts to stdout");
    assert_eq!(
        to_stdout.stdout,
        payload.as_bytes(),
        "stdout byte-identical"
    );

    let refused = decrypt(
        &["--profile", xc, "--output", "json"],
        &id,
        "curiosity",
        None,
    );
    assert_exit(&refused, 3, "XC is not a recipient");
    assert!(json(&refused)["error"]["code"].is_string());
    assert!(String::from_utf8_lossy(&refused.stderr).starts_with("error: "));
    assert!(!String::from_utf8_lossy(&refused.stdout).contains(marker));

    let hidden = find_by_ucr(xc, &ucr);
    assert_exit(&hidden, 0, "XC finds nothing it may not see");
    assert_eq!(json(&hidden)["documents"], serde_json::json!([]));
}

/// `carnet --profile PROFILE --output json doc find --ucr UCR`.
fn find_by_ucr(profile: &str, ucr: &str) -> std::process::Output {
    carnet(&[
        "--profile",
        profile,
        "--output",
        "json",
        "doc",
        "find",
        "--ucr",
        ucr,
    ])
}

/// Sends `body` to POST /v1/documents with `headers` (or freshly signed ones).
fn post_documents(client: &NodeClient, body: &[u8], headers: Option<&SignedHeaders>) -> u16 {
    let response = match headers {
        Some(h) => client.send_raw("POST", "/v1/documents", body.to_vec(), Some(h)),
        None => client.send_signed("POST", "/v1/documents", body.to_vec()),
    };
    response.expect("node answers").status
}

/// POST /v1/documents over a bare TCP socket: the node may answer 413 and close before
/// the whole body is written, which an HTTP client reports as a broken pipe.
fn post_raw_tcp(client: &NodeClient, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let h = client.sign(
        "POST",
        "/v1/documents",
        carnet_cli::client::next_timestamp_ms(),
        body,
    );
    let addr = client.base().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /v1/documents HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-carnet-key: {}\r\nx-carnet-timestamp: {}\r\nx-carnet-signature: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        h.key,
        h.timestamp_ms,
        h.signature
    );
    stream.write_all(head.as_bytes()).expect("write head");
    let _ = stream.write_all(body); // may fail once the node has answered and closed
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in answer: {text:?}"))
}

fn submission_body(kind: &str, ucr: &str, to: &[&str], payload: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": kind, "ucr": ucr, "recipients": to, "payload": payload,
    }))
    .unwrap()
}

fn documents_by_ucr(client: &NodeClient, ucr: &str) -> usize {
    client.find_by_ucr(ucr).expect("find").len()
}

fn bad_input_changes_nothing(net: &TestNetwork) {
    let testnet = &net.network.testnet;
    let scratch = net.scratch();
    let xa = testnet.client("XA").unwrap();
    let xb = testnet.client("XB").unwrap();
    let ucr = format!("24XA{}-BAD", tag().to_uppercase());
    let good_payload = r#"{"Remarks":"bad-input probe"}"#;
    let good = submission_body("export-declaration", &ucr, &["XB"], good_payload);

    // Tampered signature: one hex digit of a valid signature changed.
    let mut h = xa.sign(
        "POST",
        "/v1/documents",
        carnet_cli::client::next_timestamp_ms(),
        &good,
    );
    let last = h.signature.pop().unwrap();
    h.signature.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        post_documents(&xa, &good, Some(&h)),
        401,
        "tampered signature"
    );

    // Signature over another body.
    let h = xa.sign(
        "POST",
        "/v1/documents",
        carnet_cli::client::next_timestamp_ms(),
        b"{}",
    );
    assert_eq!(
        post_documents(&xa, &good, Some(&h)),
        401,
        "signature over another body"
    );

    // Timestamp outside the window.
    let stale = carnet_cli::client::now_ms() - 120_000;
    let h = xa.sign("POST", "/v1/documents", stale, &good);
    assert_eq!(post_documents(&xa, &good, Some(&h)), 401, "stale timestamp");

    // Unknown officer, over HTTP and through the CLI.
    let stranger = NodeClient::new(
        &testnet.node("XA").unwrap().api,
        SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap();
    assert_eq!(
        post_documents(&stranger, &good, None),
        401,
        "unknown officer"
    );
    assert_eq!(stranger.status().unwrap_err().exit_code(), 3);
    let stranger_key = scratch.join("stranger.key");
    assert_exit(
        &carnet(&["keys", "generate", "--out", stranger_key.to_str().unwrap()]),
        0,
        "keygen",
    );
    let payload_file = write_file(&scratch, "good.json", good_payload);
    let out = submit(
        &[
            "--node",
            &testnet.node("XA").unwrap().api,
            "--key",
            stranger_key.to_str().unwrap(),
        ],
        "export-declaration",
        &ucr,
        "XB",
        &payload_file,
    );
    assert_exit(&out, 3, "unknown officer via CLI");

    // Truncated and oversized bodies, properly signed.
    let truncated = &good[..good.len() / 2];
    assert_eq!(post_documents(&xa, truncated, None), 400, "truncated body");
    let huge_payload = format!("{{\"filler\":\"{}\"}}", "x".repeat(1024 * 1024));
    let huge = submission_body("export-declaration", &ucr, &["XB"], &huge_payload);
    assert_eq!(post_raw_tcp(&xa, &huge), 413, "oversized body");
    let err = xa
        .submit(&Submission {
            kind: "export-declaration".into(),
            ucr: ucr.clone(),
            recipients: vec!["XB".into()],
            payload: huge_payload.clone(),
        })
        .unwrap_err();
    assert_eq!(
        (err.exit_code(), err.code.as_str()),
        (2, "too_large"),
        "{err}"
    );

    // Payload not JSON, unknown kind, recipient not a member: HTTP 400, CLI exit 2.
    let not_json = submission_body("export-declaration", &ucr, &["XB"], "copper, 24 t");
    assert_eq!(
        post_documents(&xa, &not_json, None),
        400,
        "payload not JSON"
    );
    let unknown_kind = submission_body("love-letter", &ucr, &["XB"], good_payload);
    assert_eq!(
        post_documents(&xa, &unknown_kind, None),
        400,
        "unknown kind"
    );
    let stranger_to = submission_body("export-declaration", &ucr, &["XZ"], good_payload);
    assert_eq!(
        post_documents(&xa, &stranger_to, None),
        400,
        "recipient not a member"
    );

    let xa_profile = net.profile("XA");
    let xa_profile = xa_profile.to_str().unwrap();
    let bad_file = write_file(&scratch, "not-json.json", "copper, 24 t");
    let cli_cases: [(&str, &str, &str, i32); 4] = [
        ("payload not JSON", "export-declaration", "XB", 2),
        ("unknown kind", "love-letter", "XB", 2),
        ("recipient not a member", "export-declaration", "XZ", 2),
        ("malformed recipient", "export-declaration", "xb", 2),
    ];
    for (what, kind, to, code) in cli_cases {
        let file = if what == "payload not JSON" {
            &bad_file
        } else {
            &payload_file
        };
        let out = submit(
            &["--profile", xa_profile, "--output", "json"],
            kind,
            &ucr,
            to,
            file,
        );
        assert_exit(&out, code, what);
        assert!(json(&out)["error"]["message"].is_string(), "{what}");
    }
    let missing = submit(
        &["--profile", xa_profile],
        "export-declaration",
        &ucr,
        "XB",
        &scratch.join("missing.json"),
    );
    assert_exit(&missing, 2, "unreadable payload file");

    // Not found, and unavailable.
    let unknown_id = "00".repeat(16);
    assert_exit(
        &carnet(&["--profile", xa_profile, "doc", "show", &unknown_id]),
        4,
        "unknown document",
    );
    assert_exit(
        &carnet(&[
            "--profile",
            xa_profile,
            "--node",
            "http://127.0.0.1:1",
            "status",
        ]),
        5,
        "node unavailable",
    );

    // Nothing changed: no document under that UCR, on the issuer's or recipient's node.
    assert_eq!(
        documents_by_ucr(&xa, &ucr),
        0,
        "bad input created a document (XA view)"
    );
    assert_eq!(
        documents_by_ucr(&xb, &ucr),
        0,
        "bad input created a document (XB view)"
    );

    // Replay: the very same request twice; the second is refused, one document exists.
    let replay_ucr = format!("24XA{}-REPLAY", tag().to_uppercase());
    let body = submission_body("export-declaration", &replay_ucr, &["XB"], good_payload);
    let h = xa.sign(
        "POST",
        "/v1/documents",
        carnet_cli::client::next_timestamp_ms(),
        &body,
    );
    assert_eq!(
        post_documents(&xa, &body, Some(&h)),
        200,
        "first submission"
    );
    assert_eq!(
        post_documents(&xa, &body, Some(&h)),
        401,
        "replayed submission"
    );
    assert_eq!(
        documents_by_ucr(&xa, &replay_ucr),
        1,
        "a replay must not add a document"
    );
}

/// Sum of the `refused_connections` counters in a node's /metrics.
fn refused_connections(node: &NodeEntry) -> u64 {
    let client = NodeClient::new(&node.api, SigningKey::from_bytes(&[0u8; 32])).unwrap();
    let Ok(raw) = client.send_raw("GET", "/metrics", Vec::new(), None) else {
        return 0;
    };
    String::from_utf8_lossy(&raw.body)
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("refused_connections"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn peer_outside_genesis_is_refused(net: &TestNetwork) {
    let testnet = &net.network.testnet;
    let node_binary = process::locate_binary(process::NODE_BINARY).unwrap();
    let home = net.dir.path().join("intruder");
    let ports = init::free_ports(2).unwrap();
    let summary =
        init::init_node_home(&node_binary, &home, "XH", "Hypothetica", ports[0], ports[1]).unwrap();
    // Its own view of the world: the network's genesis with itself added, so it dials
    // the members as peers; the members' genesis does not know it.
    let network_genesis = std::fs::read_to_string(testnet.genesis_path()).unwrap();
    let mut genesis: carnet_contracts::Genesis = serde_json::from_str(&network_genesis).unwrap();
    let itself = init::build_genesis(
        "carnet-testnet",
        genesis.genesis_time_ms,
        std::slice::from_ref(&summary),
        &[],
    )
    .unwrap();
    genesis.administrations.extend(itself.administrations);
    init::write_genesis(&home.join("genesis.json"), &genesis).unwrap();
    let peers: Vec<String> = testnet.nodes.iter().map(NodeEntry::dial_addr).collect();
    init::set_peers(&home, &peers).unwrap();
    let intruder = NodeEntry {
        code: "XH".into(),
        name: "Hypothetica".into(),
        home: home.clone(),
        api: format!("http://{}", summary.api_addr),
        p2p: summary.p2p_addr.clone(),
        peer_id: summary.peer_id.clone(),
        pid: None,
    };
    let refused_before: u64 = testnet.nodes.iter().map(refused_connections).sum();
    let mut child = process::spawn_node(&node_binary, &intruder).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused_after = refused_before;
    let mut logged = false;
    while Instant::now() < deadline {
        refused_after = testnet.nodes.iter().map(refused_connections).sum();
        logged = testnet.nodes.iter().any(|n| {
            std::fs::read_to_string(n.node_log())
                .map(|t| t.contains(&summary.peer_id) || t.contains("outside the genesis"))
                .unwrap_or(false)
        });
        if refused_after > refused_before || logged {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Give a wrongly admitted connection time to show up in the peer counts.
    std::thread::sleep(Duration::from_secs(2));
    let members = testnet.nodes.len() as u64;
    for node in &testnet.nodes {
        let status = testnet.client(&node.code).unwrap().status().unwrap();
        assert!(
            status.peers < members,
            "{} counts {} peers with {} members: the intruder was admitted",
            node.code,
            status.peers,
            members
        );
    }
    let intruder_log = process::log_tails(&intruder, 10);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        refused_after > refused_before || logged,
        "no member reported refusing the intruder {} (refused_connections {refused_before} -> {refused_after}){intruder_log}",
        summary.peer_id
    );
}

fn thousand_documents_same_chain(net: &TestNetwork, marker: &str) {
    let testnet = &net.network.testnet;
    let codes = testnet.codes();
    let clients: Vec<NodeClient> = codes.iter().map(|c| testnet.client(c).unwrap()).collect();
    let run = tag().to_uppercase();
    let items: Vec<LoadItem> = (0..LOAD_DOCUMENTS)
        .map(|i| {
            let node = i % codes.len();
            let to = codes[(i + 1) % codes.len()].clone();
            LoadItem {
                node,
                submission: Submission {
                    kind: "certificate-of-origin".into(),
                    ucr: format!("24{}{run}-{i:04}", codes[node]),
                    recipients: vec![to],
                    payload: format!(
                        "{{\"CertificateNumber\":\"{i}\",\"OriginCountry\":\"{}\",\"Remarks\":\"{marker}\"}}",
                        codes[node]
                    ),
                },
            }
        })
        .collect();
    let started = Instant::now();
    let results = load::submit_all(&clients, &items, LOAD_CONCURRENCY);
    let elapsed = started.elapsed().as_secs_f64();
    let failures: Vec<String> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("#{i}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {LOAD_DOCUMENTS} submissions failed; first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let ids: HashSet<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|s| s.id.as_str()))
        .collect();
    assert_eq!(ids.len(), LOAD_DOCUMENTS, "every submission got its own id");
    eprintln!(
        "[load] {LOAD_DOCUMENTS} documents final in {elapsed:.1} s ({:.0}/s)",
        LOAD_DOCUMENTS as f64 / elapsed
    );

    let named: Vec<(String, NodeClient)> = codes
        .iter()
        .map(|c| (c.clone(), testnet.client(c).unwrap()))
        .collect();
    let height = invariants::agreed_height(&named, Duration::from_secs(30))
        .or_else(|_| {
            // Blocks keep coming; compare up to the lowest height every node has.
            let min = named
                .iter()
                .map(|(_, c)| c.healthz().map(|h| h.height).unwrap_or(0))
                .min()
                .unwrap_or(0);
            Ok::<u64, carnet_testnet::TestnetError>(min)
        })
        .unwrap();
    let highest_doc = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|s| s.height))
        .max()
        .unwrap();
    assert!(
        height >= highest_doc,
        "agreed height {height} below a document's height {highest_doc}"
    );
    let compared = invariants::same_blocks(&named, 1, height).expect("same chain on every node");
    let txs: u64 = (1..=height)
        .map(|h| clients[0].block(h).unwrap().tx_count)
        .sum();
    assert!(
        txs >= LOAD_DOCUMENTS as u64,
        "only {txs} transactions in {height} blocks"
    );
    eprintln!(
        "[load] {compared} heights identical on all {} nodes, {txs} transactions",
        codes.len()
    );
}

fn plaintext_never_on_disk(net: &TestNetwork, markers: &[&str]) {
    // The scan itself must be able to fail: it finds a marker that is there.
    let control = tempfile::tempdir().unwrap();
    let planted = write_file(control.path(), "planted.bin", &format!("x{}y", markers[0]));
    assert_eq!(
        files_containing(control.path(), markers[0].as_bytes()),
        vec![planted]
    );
    let mut scanned = 0;
    for node in &net.network.testnet.nodes {
        scanned += count_files(&node.home);
        for marker in markers {
            let hits = files_containing(&node.home, marker.as_bytes());
            assert!(
                hits.is_empty(),
                "plaintext marker {marker} found on disk: {hits:?}"
            );
        }
    }
    assert!(
        scanned > 10,
        "scanned only {scanned} files; is the data dir where we think?"
    );
    eprintln!("[disk] {scanned} files scanned, no marker found");
}
