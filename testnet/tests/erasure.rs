//! Erasure on a 4-node network of real processes on loopback (issue 5):
//! XA submits an export declaration to XB and XC and XB decrypts it; XD is SIGKILLed;
//! refused erasures (not the issuer, unknown id) change nothing; XA erases; the three
//! live nodes attest while XD stays pending; decrypt answers "erased" (exit 4) on every
//! node that could read it; XD restarts, erases on catch-up and attests; after shutdown
//! no node home holds the plaintext, byte for byte.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Time the killed node gets to come back and catch up.
const CATCH_UP: Duration = Duration::from_secs(60);
/// `--wait-attestations` while XD is down: it must time out naming XD.
const WAIT_WITH_XD_DOWN: &str = "20";
/// `--wait-attestations` once XD is back.
const WAIT_AFTER_RESTART: &str = "30";

const REASON: &str = "data subject request: declarant's personal data";
const LEGAL_BASIS: &str = "Regulation (EU) 2016/679, Article 17(1)(a)";

/// `carnet --profile PROFILE --output json ARGS...`.
fn cli(profile: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--profile", profile.to_str().unwrap(), "--output", "json"];
    all.extend_from_slice(args);
    carnet(&all)
}

/// `doc status ID --wait-attestations WAIT` as `profile`.
fn wait_attestations(profile: &Path, id: &str, wait: &str) -> std::process::Output {
    cli(profile, &["doc", "status", id, "--wait-attestations", wait])
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The set of administrations that attested, sorted.
fn attested(status: &serde_json::Value) -> Vec<String> {
    let mut codes: Vec<String> = status["attestations"]
        .as_array()
        .unwrap_or_else(|| panic!("no attestations array: {status}"))
        .iter()
        .map(|a| {
            a["administration"]
                .as_str()
                .expect("administration")
                .to_string()
        })
        .collect();
    codes.sort();
    codes
}

fn pending(status: &serde_json::Value) -> Vec<String> {
    let mut codes: Vec<String> = status["pending"]
        .as_array()
        .unwrap_or_else(|| panic!("no pending array: {status}"))
        .iter()
        .map(|p| p.as_str().expect("pending code").to_string())
        .collect();
    codes.sort();
    codes
}

fn strings(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

#[test]
fn erase_with_a_node_down_attestations_catch_up_and_clean_disk() {
    let started = Instant::now();
    let mut net = start_network(4);
    let codes = net.network.testnet.codes();
    assert_eq!(codes, strings(&["XA", "XB", "XC", "XD"]));
    let (xa, xb, xc) = (net.profile("XA"), net.profile("XB"), net.profile("XC"));
    let marker = format!("ERASURE-MARKER-{}", tag());
    let scratch = net.scratch();

    // 1. XA submits to XB and XC; XB decrypts it byte for byte.
    let (id, payload, submitted_height) =
        timed("XA submits to XB,XC; XB decrypts byte-identical", || {
            let ucr = format!("24XA{}-ERASE", tag().to_uppercase());
            let payload = export_declaration(&ucr, &marker);
            let file = write_file(&scratch, "export.json", &payload);
            let submitted = submit(
                &["--profile", xa.to_str().unwrap(), "--output", "json"],
                "export-declaration",
                &ucr,
                "XB,XC",
                &file,
            );
            assert_exit(&submitted, 0, "XA submits");
            let submitted = json(&submitted);
            let id = submitted["id"].as_str().expect("id").to_string();
            assert_eq!(submitted["status"], "active");
            let height = submitted["height"].as_u64().expect("height");
            wait_for_height(xb.to_str().unwrap(), height);
            wait_for_height(xc.to_str().unwrap(), height);

            let out = scratch.join("decrypted-by-xb.json");
            assert_decrypts_to_file(xb.to_str().unwrap(), &id, &out, &payload, "XB decrypts");
            // Not an erasure artefact: the decrypted copy lives outside every node home.
            std::fs::remove_file(&out).unwrap();

            let status = cli(&xa, &["doc", "status", &id]);
            assert_exit(&status, 0, "status before erasure");
            let status = json(&status);
            assert_eq!(status["status"], "active", "{status}");
            assert!(attested(&status).is_empty() && pending(&status).is_empty());
            (id, payload, height)
        });

    // 2. XD holds the document, then dies without a goodbye.
    timed("XD has the document's block; SIGKILL XD", || {
        net.network
            .wait_for_height(&strings(&["XD"]), submitted_height, Duration::from_secs(20))
            .expect("XD reaches the document's height");
        assert!(net.network.kill("XD").unwrap(), "XD was running");
        assert!(!net.network.is_running("XD"));
    });

    // 3. Refused erasures change nothing; the issuer's erasure is final; a second one
    //    is refused.
    let erase_height = timed(
        "erase: non-issuer 403, unknown 404, issuer ok, twice 400",
        || {
            let erase_args = |id: &str| -> Vec<String> {
                strings(&[
                    "doc",
                    "erase",
                    id,
                    "--reason",
                    REASON,
                    "--legal-basis",
                    LEGAL_BASIS,
                ])
            };
            let args = erase_args(&id);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();

            // XB's officer (a recipient, not the issuer) on XB's node.
            let refused = cli(&xb, &args);
            assert_error(
                &refused,
                3,
                "forbidden",
                "XB's officer erases XA's document",
            );
            assert!(
                stderr(&refused).starts_with("error: "),
                "{}",
                describe(&refused)
            );

            // XA's officer through XB's node: the node only serves its own officers.
            let xb_api = net.network.testnet.node("XB").unwrap().api.clone();
            let mut through_xb = vec!["--node", xb_api.as_str()];
            through_xb.extend_from_slice(&args);
            let refused = cli(&xa, &through_xb);
            assert_error(
                &refused,
                3,
                "forbidden",
                "XA's officer erases through XB's node",
            );

            // Unknown id.
            let unknown = "00".repeat(16);
            let unknown_args = erase_args(&unknown);
            let unknown_args: Vec<&str> = unknown_args.iter().map(String::as_str).collect();
            let missing = cli(&xa, &unknown_args);
            assert_error(&missing, 4, "not_found", "erase of an unknown document");

            // Nothing changed: still active and readable by its recipient.
            let status = json(&cli(&xa, &["doc", "status", &id]));
            assert_eq!(
                status["status"], "active",
                "a refused erasure changed it: {status}"
            );
            let still = decrypt(
                &["--profile", xc.to_str().unwrap()],
                &id,
                "transit check",
                None,
            );
            assert_exit(&still, 0, "XC decrypts before the erasure");
            assert_eq!(
                still.stdout,
                payload.as_bytes(),
                "XC payload byte-identical"
            );

            // The issuer erases.
            let erased = cli(&xa, &args);
            assert_exit(&erased, 0, "XA erases");
            let erased = json(&erased);
            assert_eq!(erased["id"], id.as_str(), "{erased}");
            assert_eq!(erased["status"], "erased", "{erased}");
            let height = erased["height"].as_u64().expect("erasure height");
            assert!(height >= submitted_height, "{erased}");

            // Twice: 400 "already erased".
            let again = cli(&xa, &args);
            assert_exit(&again, 2, "second erasure");
            let again_json = json(&again);
            assert_eq!(again_json["error"]["code"], "bad_input", "{again_json}");
            assert!(
                again_json["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("already erased"),
                "{again_json}"
            );
            height
        },
    );

    // 4. The live nodes attest; XD is pending.
    timed("attestations from XA, XB, XC; XD pending", || {
        let waited = wait_attestations(&xa, &id, WAIT_WITH_XD_DOWN);
        assert_exit(&waited, 5, "--wait-attestations with XD down times out");
        let message = json(&waited)["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("1 of 4") && message.ends_with(": XD"),
            "the timeout must name XD alone: {}",
            describe(&waited)
        );
        for profile in [&xa, &xb, &xc] {
            let status = cli(profile, &["doc", "status", &id]);
            assert_exit(&status, 0, "status");
            let status = json(&status);
            assert_eq!(status["status"], "erased", "{status}");
            assert_eq!(status["height"].as_u64(), Some(erase_height), "{status}");
            assert_eq!(attested(&status), strings(&["XA", "XB", "XC"]), "{status}");
            assert_eq!(pending(&status), strings(&["XD"]), "{status}");
            for a in status["attestations"].as_array().unwrap() {
                assert!(
                    a["height"].as_u64().unwrap() > erase_height,
                    "an attestation before the erasure block: {status}"
                );
            }
        }
    });

    // 5. Decrypt: 410 erased, exit 4, on every node that could read it.
    timed("decrypt on XA, XB, XC: exit 4, erased", || {
        for profile in [&xa, &xb, &xc] {
            let out = decrypt(
                &["--profile", profile.to_str().unwrap(), "--output", "json"],
                &id,
                "after erasure",
                None,
            );
            assert_exit(&out, 4, "decrypt of an erased document");
            let body = json(&out);
            assert_eq!(body["error"]["code"], "erased", "{}", describe(&out));
            let expected = format!("document {id} is erased");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&expected),
                "{}",
                describe(&out)
            );
            assert!(stderr(&out).contains(&expected), "{}", describe(&out));
            assert!(!String::from_utf8_lossy(&out.stdout).contains(&marker));
        }
    });

    // 6. XD comes back, erases on catch-up and attests.
    timed("restart XD: it catches up, erases and attests", || {
        let live = strings(&["XA", "XB", "XC"]);
        net.network.start("XD").unwrap();
        let target = live
            .iter()
            .filter_map(|c| net.network.height(c))
            .max()
            .unwrap();
        net.network
            .wait_for_height(&strings(&["XD"]), target, CATCH_UP)
            .expect("XD catches up");
        let waited = wait_attestations(&xa, &id, WAIT_AFTER_RESTART);
        assert_exit(&waited, 0, "all four attest");
        let status = json(&waited);
        assert_eq!(status["status"], "erased", "{status}");
        assert!(pending(&status).is_empty(), "{status}");
        assert_eq!(
            attested(&status),
            strings(&["XA", "XB", "XC", "XD"]),
            "{status}"
        );
        // XD's attestation comes after the erasure block, from its catch-up.
        let xd_height = status["attestations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["administration"] == "XD")
            .and_then(|a| a["height"].as_u64())
            .expect("XD attestation height");
        assert!(xd_height > erase_height, "{status}");
        // The same view from a recipient's node.
        let on_xb = json(&cli(&xb, &["doc", "status", &id]));
        assert!(pending(&on_xb).is_empty(), "{on_xb}");
        assert_eq!(attested(&on_xb).len(), 4, "{on_xb}");
    });

    // 7. After shutdown, no node home holds the plaintext.
    net.network.down().expect("down");
    timed(
        "plaintext marker on no node's disk (after shutdown)",
        || {
            // The scan itself must be able to fail: it finds a marker that is there.
            let control = tempfile::tempdir().unwrap();
            let planted = write_file(control.path(), "planted.bin", &format!("x{marker}y"));
            assert_eq!(
                files_containing(control.path(), marker.as_bytes()),
                vec![planted]
            );
            let mut scanned = 0;
            for node in &net.network.testnet.nodes {
                let files = count_files(&node.home);
                assert!(
                    files > 3,
                    "{}: only {files} files in {}",
                    node.code,
                    node.home.display()
                );
                assert!(
                    node.home.join("data").is_dir(),
                    "{}: no data dir",
                    node.code
                );
                assert!(node.node_log().is_file(), "{}: no node.log", node.code);
                assert!(node.stdout_log().is_file(), "{}: no stdout.log", node.code);
                scanned += files;
                let hits = files_containing(&node.home, marker.as_bytes());
                assert!(
                    hits.is_empty(),
                    "{}: plaintext marker {marker} found on disk: {hits:?}",
                    node.code
                );
            }
            eprintln!("[disk] {scanned} files scanned, no marker found");
        },
    );
    eprintln!("[erasure] done in {:.1} s", started.elapsed().as_secs_f64());
}

/// Retention (issue 5): an agreement between XA and XB keeps documents 15 s; a document
/// filed under it is erased by every node at the first block past its expiry — no erase
/// transaction — and all four nodes attest; decrypt then answers "erased" (exit 4).
#[test]
fn retention_expiry_erases_without_a_transaction() {
    let net = start_network(4);
    let (xa, xb) = (net.profile("XA"), net.profile("XB"));
    let scratch = net.scratch();
    let agreement_id = format!("{:0>32}", tag());
    let agreement = serde_json::json!({
        "id": agreement_id,
        "title": "Pre-arrival risk data XA-XB, kept 15 seconds",
        "parties": ["XA", "XB"],
        "clusters": [{
            "kind": "export-declaration",
            "allowed": ["UCR", "ExporterName", "ConsigneeName", "CommodityCode",
                        "GoodsDescription", "NetMass", "Remarks"],
            "required": ["UCR"]
        }],
        "trigger": "pre-arrival",
        "legal_basis": "Bilateral arrangement XA-XB on pre-arrival risk data, Art. 3",
        "purpose": "Pre-arrival risk assessment only; erased once the consignment arrived",
        "retention_seconds": 15,
        "delivery": "push"
    });
    let file = write_file(&scratch, "short-retention.json", &agreement.to_string());
    let marker = format!("RETENTION-MARKER-{}", tag());

    let id = timed("agreement with 15 s retention; XA files, XB reads", || {
        let proposed = cli(
            &xa,
            &["agreement", "propose", "--file", file.to_str().unwrap()],
        );
        assert_exit(&proposed, 0, "XA proposes");
        wait_for_height(
            xb.to_str().unwrap(),
            json(&proposed)["height"].as_u64().unwrap(),
        );
        let accepted = cli(&xb, &["agreement", "accept", &agreement_id]);
        assert_exit(&accepted, 0, "XB accepts");
        assert_eq!(json(&accepted)["agreement"]["status"], "active");
        let ucr = format!("24XA{}-RET", tag().to_uppercase());
        let payload = export_declaration(&ucr, &marker);
        let doc = write_file(&scratch, "export.json", &payload);
        let submitted = cli(
            &xa,
            &[
                "doc",
                "submit",
                "--kind",
                "export-declaration",
                "--ucr",
                &ucr,
                "--to",
                "XB",
                "--file",
                doc.to_str().unwrap(),
                "--agreement",
                &agreement_id,
            ],
        );
        assert_exit(&submitted, 0, "XA files under the short agreement");
        let submitted = json(&submitted);
        let id = submitted["id"].as_str().unwrap().to_string();
        wait_for_height(xb.to_str().unwrap(), submitted["height"].as_u64().unwrap());
        let out = scratch.join("read-by-xb.json");
        assert_decrypts_to_file(xb.to_str().unwrap(), &id, &out, &payload, "XB reads");
        std::fs::remove_file(&out).unwrap();
        id
    });

    timed("expiry erases on every node; all four attest", || {
        // 15 s of retention plus the attestations: well inside 60 s.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            let out = cli(&xa, &["doc", "status", &id]);
            assert_exit(&out, 0, "status while waiting for expiry");
            let status = json(&out);
            if status["status"] == "erased" && pending(&status).is_empty() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "not erased and attested by every node 60 s after filing: {status}"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(status["status"], "erased", "{status}");
        assert_eq!(attested(&status), strings(&["XA", "XB", "XC", "XD"]));
        assert!(pending(&status).is_empty());
        let read = decrypt(
            &["--profile", xb.to_str().unwrap(), "--output", "json"],
            &id,
            "late read",
            None,
        );
        assert_error(&read, 4, "erased", "XB reads after expiry");
    });
}

/// Issue 5's byte scan over real processes: every node runs the `test-hooks` build
/// (`CARNET_HOOKS_BIN`, started with `--enable-test-hooks`) so the test can learn the
/// DEK, salt and stored ciphertext of a document before erasure — never through the
/// public API. Before erasure the ciphertext is on every node's disk and the DEK in the
/// issuer's; XD is killed before the erasure and restarted after it; after every
/// attestation (XD's from its catch-up) and a clean shutdown, no byte string of
/// DEK, salt, ciphertext or plaintext is left in any node home (stores, WAL, logs).
#[test]
fn erased_document_leaves_no_key_salt_ciphertext_or_plaintext_on_any_disk() {
    let faulty = match std::env::var_os("CARNET_HOOKS_BIN").map(std::path::PathBuf::from) {
        Some(path) if path.is_file() => path,
        _ if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED (not in CI): set CARNET_HOOKS_BIN to a carnet-node built with \
                 --features test-hooks (scripts/test.sh builds target/hooks/carnet-node)"
            );
            return;
        }
        other => panic!("CI must build the test-hooks binary (CARNET_HOOKS_BIN={other:?})"),
    };
    let dir = tempfile::Builder::new()
        .prefix("carnet-scan-")
        .tempdir()
        .unwrap();
    let testnet = carnet_testnet::init::init(4, &dir.path().join("net"), &faulty).expect("init");
    let mut network = carnet_testnet::Network::new(testnet, faulty);
    for code in network.testnet.codes() {
        network
            .set_launch(
                &code,
                carnet_testnet::process::Launch {
                    extra_args: vec!["--enable-test-hooks".into()],
                    ..Default::default()
                },
            )
            .unwrap();
    }
    network.up(UP_TIMEOUT).expect("up with test hooks");
    let net = TestNetwork { network, dir };
    let (xa, xb) = (net.profile("XA"), net.profile("XB"));
    let scratch = net.scratch();
    let marker = format!("SCAN-MARKER-{}", tag());
    let ucr = format!("24XA{}-SCAN", tag().to_uppercase());
    let payload = export_declaration(&ucr, &marker);
    let file = write_file(&scratch, "export.json", &payload);
    let submitted = submit(
        &["--profile", xa.to_str().unwrap(), "--output", "json"],
        "export-declaration",
        &ucr,
        "XB,XC",
        &file,
    );
    assert_exit(&submitted, 0, "XA submits");
    let submitted = json(&submitted);
    let id = submitted["id"].as_str().unwrap().to_string();
    let height = submitted["height"].as_u64().unwrap();
    for code in ["XB", "XC", "XD"] {
        wait_for_height(net.profile(code).to_str().unwrap(), height);
    }
    let out = scratch.join("read.json");
    assert_decrypts_to_file(xb.to_str().unwrap(), &id, &out, &payload, "XB reads");
    std::fs::remove_file(&out).unwrap();

    // The secrets, through the test-only route of XA's node.
    let node = net.network.testnet.node("XA").unwrap().api.clone();
    let key =
        carnet_cli::profile::read_signing_key(&net.network.testnet.officer_key_path("XA")).unwrap();
    let client = carnet_cli::client::NodeClient::new(&node, key).unwrap();
    let secrets: serde_json::Value = client
        .call("GET", &format!("/v1/test/keys/{id}/1"), Vec::new())
        .expect("test hook answers");
    let bytes = |field: &str| {
        hex::decode(
            secrets[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field}: {secrets}")),
        )
        .unwrap()
    };
    let (dek, salt, ciphertext) = (bytes("dek"), bytes("salt"), bytes("ciphertext"));
    assert_eq!((dek.len(), salt.len()), (32, 32));
    assert!(
        ciphertext.len() > payload.len(),
        "nonce, ciphertext and tag"
    );
    let homes: Vec<(String, std::path::PathBuf)> = net
        .network
        .testnet
        .nodes
        .iter()
        .map(|n| (n.code.clone(), n.home.clone()))
        .collect();
    // The scan can see them before erasure: the ciphertext on every node, the DEK at XA.
    for (code, home) in &homes {
        assert!(
            !files_containing(home, &ciphertext).is_empty(),
            "{code} holds the ciphertext before erasure"
        );
    }
    assert!(
        !files_containing(&homes[0].1, &dek).is_empty(),
        "XA's vault holds the DEK before erasure"
    );

    // XD is killed before the erasure: it must erase while catching up.
    let mut net = net;
    assert!(net.network.kill("XD").unwrap(), "XD was running");
    let erased = cli(
        &xa,
        &[
            "doc",
            "erase",
            &id,
            "--reason",
            REASON,
            "--legal-basis",
            LEGAL_BASIS,
        ],
    );
    assert_exit(&erased, 0, "XA erases");
    let status = wait_attestations(&xa, &id, "5");
    assert_exit(&status, 5, "XD cannot attest while down");
    assert!(stderr(&status).contains("XD"), "{}", describe(&status));
    net.network.start("XD").unwrap();
    let status = wait_attestations(&xa, &id, "60");
    assert_exit(&status, 0, "every node attests, XD after catching up");
    assert_eq!(attested(&json(&status)), strings(&["XA", "XB", "XC", "XD"]));
    net.network.down().expect("down");
    // Needles: the whole ciphertext and a 32-byte window from its middle (a partial copy).
    let middle = ciphertext.len() / 2 - 16;
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("DEK", dek),
        ("salt", salt),
        ("ciphertext", ciphertext.clone()),
        (
            "ciphertext window",
            ciphertext[middle..middle + 32].to_vec(),
        ),
        ("plaintext marker", marker.as_bytes().to_vec()),
    ];
    let mut scanned = 0;
    for (code, home) in &homes {
        scanned += count_files(home);
        for (what, needle) in &needles {
            let found = files_containing(home, needle);
            assert!(found.is_empty(), "{code}: the {what} survives in {found:?}");
        }
    }
    eprintln!("[scan] {scanned} files in 4 node homes: no DEK, salt, ciphertext or plaintext");
}
