//! Customs contracts on a 4-node network of real processes (issue 4), through the
//! `carnet` CLI only: agreements proposed and accepted, documents filed under them (data
//! cluster and party checks naming the offending elements, resolution naming the
//! candidates), amendments delivered to the recipients, cancellation and history, UCR
//! matching with a mismatch flagged, pre-filling an import declaration, the push stream
//! with delivery acknowledgements on the ledger, a TFA Article 12 request answered by
//! provide with purpose-bound access, officers added and revoked, membership votes, and
//! the read audit, and cancellation.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Id of the testnet's default agreement (testnet/src/init.rs).
const DEFAULT_AGREEMENT: &str = "0defa017000000000000000000000000";
/// Id of testnet/agreements/export-import.json (XA → XB).
const EXPORT_IMPORT: &str = "0a000000000000000000000000000001";

/// `carnet --profile PROFILE --output json ARGS...`.
fn cli(profile: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--profile", profile.to_str().unwrap(), "--output", "json"];
    all.extend_from_slice(args);
    carnet(&all)
}

/// Runs `args` as `profile`, asserts exit 0 and returns the JSON answer.
fn ok(profile: &Path, args: &[&str], what: &str) -> serde_json::Value {
    let out = cli(profile, args);
    assert_exit(&out, 0, what);
    json(&out)
}

/// Runs `args` as `profile`, asserts exit `exit` and that the error message names every
/// one of `needles`.
fn refused(profile: &Path, args: &[&str], exit: i32, needles: &[&str], what: &str) {
    let out = cli(profile, args);
    assert_exit(&out, exit, what);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in needles {
        assert!(
            text.contains(needle),
            "{what}: `{needle}` not named in: {text}"
        );
    }
}

fn agreements_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("agreements/export-import.json")
}

fn height_of(answer: &serde_json::Value) -> u64 {
    answer["height"]
        .as_u64()
        .unwrap_or_else(|| panic!("no height in {answer}"))
}

fn strs(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

/// An export declaration valid under export-import.json.
fn export_payload(ucr: &str, quantity: u32, marker: &str) -> String {
    format!(
        r#"{{"UCR":"{ucr}","ExporterName":"Adjikistan Copper Exports Ltd","ConsigneeName":"Borastria Metals","CommodityCode":"740311","GoodsDescription":"copper cathodes {marker}","OriginCountry":"XA","DestinationCountry":"XB","Quantity":{quantity},"NetMass":24000}}"#
    )
}

#[test]
fn customs_contracts_end_to_end() {
    let net = start_network(4);
    let scratch = net.scratch();
    let (xa, xb, xc) = (net.profile("XA"), net.profile("XB"), net.profile("XC"));
    let xb_s = xb.to_str().unwrap().to_string();
    let xc_s = xc.to_str().unwrap().to_string();
    let marker = format!("CUSTOMS-{}", tag());
    let ucr = format!("24XA{}-CU", tag().to_uppercase());

    // 1. Agreements: the default one is active; XA proposes export→import, XB accepts.
    timed("agreement list / propose / accept / show", || {
        let list = ok(&xc, &["agreement", "list"], "list agreements");
        let ids: Vec<&str> = list["agreements"]
            .as_array()
            .expect("agreements")
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![DEFAULT_AGREEMENT], "{list}");
        assert_eq!(list["agreements"][0]["status"], "active");

        let proposed = ok(
            &xa,
            &[
                "agreement",
                "propose",
                "--file",
                agreements_file().to_str().unwrap(),
            ],
            "XA proposes",
        );
        assert_eq!(proposed["agreement"]["status"], "proposed", "{proposed}");
        assert_eq!(strs(&proposed["agreement"]["pending"]), vec!["XB"]);
        // Not active yet: filing under it is refused, naming the agreement.
        let file = write_file(&scratch, "early.json", &export_payload(&ucr, 1, &marker));
        refused(
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
                file.to_str().unwrap(),
                "--agreement",
                EXPORT_IMPORT,
            ],
            2,
            &["not active"],
            "filing under a proposed agreement",
        );
        // XC is not a party: it cannot accept (403 or a ledger rule, naming XC).
        let out = cli(&xc, &["agreement", "accept", EXPORT_IMPORT]);
        assert!(
            matches!(exit_code(&out), 2 | 3),
            "a non-party accepts: {}",
            describe(&out)
        );
        assert!(describe(&out).contains("XC"), "{}", describe(&out));
        let accepted = ok(&xb, &["agreement", "accept", EXPORT_IMPORT], "XB accepts");
        assert_eq!(accepted["agreement"]["status"], "active", "{accepted}");
        wait_for_height(&xc_s, height_of(&accepted));
        let shown = ok(&xc, &["agreement", "show", EXPORT_IMPORT], "XC shows it");
        assert_eq!(shown["status"], "active");
        assert_eq!(strs(&shown["parties"]), vec!["XA", "XB"]);
    });

    // 2. Documents under agreements.
    let (export_id, start_height) = timed("submit: resolution, data cluster, parties", || {
        let good = write_file(&scratch, "export.json", &export_payload(&ucr, 24, &marker));
        let submit_args = |file: &Path, to: &str, agreement: Option<&str>| -> Vec<String> {
            let mut args: Vec<String> = [
                "doc",
                "submit",
                "--kind",
                "export-declaration",
                "--ucr",
                &ucr,
                "--to",
                to,
                "--file",
                file.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(a) = agreement {
                args.extend(["--agreement".to_string(), a.to_string()]);
            }
            args
        };
        let run = |profile: &Path, args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(profile, &refs)
        };
        // Two agreements cover XA → XB export declarations: both are named.
        let out = run(&xa, submit_args(&good, "XB", None));
        assert_exit(&out, 2, "ambiguous agreement");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(DEFAULT_AGREEMENT) && text.contains(EXPORT_IMPORT),
            "candidates named: {text}"
        );
        // Elements outside the cluster and missing required ones are each named.
        let bad = write_file(
            &scratch,
            "bad.json",
            &format!(
                r#"{{"UCR":"{ucr}","ExporterName":"Acme","PassportNumber":"X1","BankAccount":"Y","Quantity":1}}"#
            ),
        );
        let out = run(&xa, submit_args(&bad, "XB", Some(EXPORT_IMPORT)));
        assert_exit(&out, 2, "payload outside the data cluster");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        for element in [
            "PassportNumber",
            "BankAccount",
            "CommodityCode",
            "OriginCountry",
            "DestinationCountry",
        ] {
            assert!(text.contains(element), "{element} named: {text}");
        }
        // XC is not a party of export-import.
        let out = run(&xa, submit_args(&good, "XC", Some(EXPORT_IMPORT)));
        assert_exit(&out, 2, "recipient outside the agreement");
        // Filed under export-import.
        let out = run(&xa, submit_args(&good, "XB", Some(EXPORT_IMPORT)));
        assert_exit(&out, 0, "XA files under export-import");
        let filed = json(&out);
        assert_eq!(filed["agreement"], EXPORT_IMPORT, "{filed}");
        let start_height = height_of(&filed);
        wait_for_height(&xb_s, start_height);
        wait_for_height(&xc_s, start_height);
        let id = filed["id"].as_str().unwrap().to_string();
        // The UCR index is under export-import's key: XB finds it, XC (no key) does not.
        let found = ok(&xb, &["doc", "find", "--ucr", &ucr], "XB finds by UCR");
        assert_eq!(found["documents"][0]["id"], id.as_str(), "{found}");
        let hidden = ok(&xc, &["doc", "find", "--ucr", &ucr], "XC finds nothing");
        assert_eq!(hidden["documents"], serde_json::json!([]));
        (id, start_height)
    });

    // 3. Versions: amend, the recipient reads both versions, history; cancel.
    timed("amend / decrypt versions / history", || {
        let amended_payload = export_payload(&ucr, 25, &marker);
        let amended_file = write_file(&scratch, "export-v2.json", &amended_payload);
        let amended = ok(
            &xa,
            &[
                "doc",
                "amend",
                &export_id,
                "--file",
                amended_file.to_str().unwrap(),
            ],
            "XA amends",
        );
        assert_eq!(amended["version"], 2, "{amended}");
        wait_for_height(&xb_s, height_of(&amended));
        // The amended version's keys reach XB (delivery may lag finality: retry 503).
        let out = scratch.join("v2-by-xb.json");
        let mut last = None;
        for _ in 0..60 {
            let run = decrypt(
                &["--profile", &xb_s],
                &export_id,
                "import clearance",
                Some(&out),
            );
            if run.status.success() {
                last = None;
                break;
            }
            last = Some(describe(&run));
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert!(last.is_none(), "XB decrypts version 2: {last:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), amended_payload);
        let v1 = ok(
            &xb,
            &[
                "doc",
                "decrypt",
                &export_id,
                "--purpose",
                "compare versions",
                "--version",
                "1",
            ],
            "XB decrypts version 1",
        );
        assert!(
            v1["payload"].as_str().unwrap().contains("\"Quantity\":24"),
            "{v1}"
        );
        let history = ok(&xb, &["doc", "history", &export_id], "history");
        let versions = history["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 2, "{history}");
        assert_eq!(versions[0]["status"], "amended");
        assert_eq!(versions[1]["status"], "active");
        // Only the issuer amends.
        refused(
            &xb,
            &[
                "doc",
                "amend",
                &export_id,
                "--file",
                amended_file.to_str().unwrap(),
            ],
            3,
            &[],
            "a recipient amends",
        );
    });

    // 4. UCR match and pre-population: XB files its import declaration (default
    //    agreement) with a different quantity; the match flags it.
    timed("ucr match flags the mismatch; prefill", || {
        let import = write_file(
            &scratch,
            "import.json",
            &format!(
                r#"{{"UCR":"{ucr}","ImporterName":"Borastria Metals","CommodityCode":"740311","OriginCountry":"XA","Quantity":23}}"#
            ),
        );
        let filed = ok(
            &xb,
            &[
                "doc",
                "submit",
                "--kind",
                "import-declaration",
                "--ucr",
                &ucr,
                "--to",
                "XA",
                "--file",
                import.to_str().unwrap(),
                "--agreement",
                DEFAULT_AGREEMENT,
            ],
            "XB files the import declaration",
        );
        let import_id = filed["id"].as_str().unwrap().to_string();
        let matched = ok(&xb, &["ucr", "match", &ucr], "XB matches the UCR");
        assert_eq!(matched["exports"][0]["id"], export_id.as_str(), "{matched}");
        assert_eq!(matched["imports"][0]["id"], import_id.as_str(), "{matched}");
        let mismatches = matched["mismatches"].as_array().expect("mismatches");
        let elements: Vec<&str> = mismatches
            .iter()
            .map(|m| m["element"].as_str().unwrap())
            .collect();
        assert!(elements.contains(&"Quantity"), "{matched}");
        assert!(!elements.contains(&"CommodityCode"), "{matched}");

        let prefill_out = scratch.join("prefilled-import.json");
        let out = cli(
            &xb,
            &[
                "doc",
                "prefill",
                "--from",
                &export_id,
                "--kind",
                "import-declaration",
                "--out",
                prefill_out.to_str().unwrap(),
            ],
        );
        assert_exit(&out, 0, "prefill");
        let prefilled: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&prefill_out).unwrap()).unwrap();
        assert_eq!(prefilled["CommodityCode"], "740311", "{prefilled}");
        assert_eq!(prefilled["UCR"], ucr.as_str(), "{prefilled}");
    });

    // 5. Push: XB's stream from before the export carries both versions; acks land on
    //    the ledger.
    timed("watch streams versions; acks on the ledger", || {
        let from = start_height.to_string();
        let out = cli(&xb, &["watch", "--from-height", &from, "--count", "2"]);
        assert_exit(&out, 0, "watch");
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let seen: Vec<(String, u64)> = lines
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_string(),
                    e["version"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![(export_id.clone(), 1), (export_id.clone(), 2)],
            "{lines:?}"
        );
        // The acknowledgements are final on the ledger.
        let mut deliveries = serde_json::Value::Null;
        for _ in 0..40 {
            let status = ok(&xa, &["doc", "status", &export_id], "status");
            deliveries = status["deliveries"].clone();
            if deliveries.as_array().is_some_and(|d| d.len() == 2) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let acked: Vec<(String, u64)> = deliveries
            .as_array()
            .unwrap_or_else(|| panic!("deliveries: {deliveries}"))
            .iter()
            .map(|d| {
                (
                    d["administration"].as_str().unwrap().to_string(),
                    d["version"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            acked,
            vec![("XB".to_string(), 1), ("XB".to_string(), 2)],
            "{deliveries}"
        );
    });

    // 6. TFA Article 12: XC asks XA, XA postpones then provides, XC reads under the
    //    grant for the stated purpose only; a breach notice is recorded.
    timed("TFA Art. 12 request: create, answer, grant, breach", || {
        let purpose = "Verification of the declared quantity (TFA Art. 12.4.1)";
        let created = ok(
            &xc,
            &[
                "request",
                "create",
                "--to",
                "XA",
                "--doc",
                &export_id,
                "--purpose",
                purpose,
                "--legal-basis",
                "WTO TFA Article 12; MoU XA-XC",
                "--items",
                "Quantity,CommodityCode",
            ],
            "XC requests",
        );
        let rid = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["overdue"], false);
        let day_ms = 86_400_000u64;
        assert_eq!(
            created["deadline_ms"].as_u64().unwrap() - created["time_ms"].as_u64().unwrap(),
            90 * day_ms,
            "{created}"
        );
        wait_for_height(xa.to_str().unwrap(), height_of(&created));
        let listed = ok(&xa, &["request", "list"], "XA lists requests");
        assert!(
            listed["requests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == rid.as_str()),
            "{listed}"
        );
        refused(
            &xa,
            &[
                "request",
                "answer",
                &rid,
                "--refuse",
                "--reason-code",
                "f",
                "--reason",
                "no",
            ],
            2,
            &["a", "e"],
            "reason code outside a–e",
        );
        let postponed = ok(
            &xa,
            &[
                "request",
                "answer",
                &rid,
                "--postpone",
                "--reason",
                "ongoing investigation (Art. 12.7.1 c)",
            ],
            "XA postpones",
        );
        assert_eq!(postponed["status"], "postponed", "{postponed}");
        // Before the grant XC cannot read it.
        refused(
            &xc,
            &[
                "doc",
                "decrypt",
                &export_id,
                "--purpose",
                purpose,
                "--request",
                &rid,
            ],
            3,
            &[],
            "XC reads before the grant",
        );
        let provided = ok(
            &xa,
            &["request", "answer", &rid, "--provide", &export_id],
            "XA provides",
        );
        assert_eq!(provided["status"], "provided", "{provided}");
        wait_for_height(&xc_s, height_of(&provided));
        let mut read = None;
        for _ in 0..60 {
            let out = cli(
                &xc,
                &[
                    "doc",
                    "decrypt",
                    &export_id,
                    "--purpose",
                    purpose,
                    "--request",
                    &rid,
                ],
            );
            if out.status.success() {
                read = Some(json(&out));
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let read = read.expect("XC reads under the grant");
        assert!(read["payload"].as_str().unwrap().contains(&marker));
        refused(
            &xc,
            &[
                "doc",
                "decrypt",
                &export_id,
                "--purpose",
                "marketing",
                "--request",
                &rid,
            ],
            3,
            &["purpose"],
            "another purpose",
        );
        // Art. 12.11.1: the requesting Member that received the information notifies the
        // requested Member of unauthorized use or disclosure.
        let breach = ok(
            &xc,
            &[
                "request",
                "breach",
                &rid,
                "--details",
                "an analyst forwarded the declaration outside the stated purpose",
            ],
            "XC notifies a breach",
        );
        assert_eq!(breach["breaches"].as_array().map(Vec::len), Some(1));
    });

    // 7. Officers: XA's admin adds an officer, who files; revoked, the next request
    //    fails.
    timed("officer add / list / revoke", || {
        let key_file = scratch.join("new-officer.key");
        let generated = ok(
            &xa,
            &["keys", "generate", "--out", key_file.to_str().unwrap()],
            "generate a key",
        );
        let public = generated["public_key"].as_str().unwrap().to_string();
        let added = ok(
            &xa,
            &[
                "officer",
                "add",
                "--key",
                &public,
                "--name",
                "Border post 7",
                "--roles",
                "officer",
            ],
            "XA admin adds an officer",
        );
        assert_eq!(added["active"], true, "{added}");
        let node = net.network.testnet.node("XA").unwrap().api.clone();
        let as_new = |args: &[&str]| {
            let mut all = vec![
                "--node",
                node.as_str(),
                "--key",
                key_file.to_str().unwrap(),
                "--output",
                "json",
            ];
            all.extend_from_slice(args);
            carnet(&all)
        };
        assert_exit(&as_new(&["status"]), 0, "the new officer is known");
        // A plain officer of the issuer cannot erase (supervisor or admin only).
        let out = as_new(&[
            "doc",
            "erase",
            &export_id,
            "--reason",
            "tidy up",
            "--legal-basis",
            "none",
        ]);
        assert_exit(&out, 3, "a plain officer erases");
        assert!(describe(&out).contains("supervisor"), "{}", describe(&out));
        // A plain officer cannot manage officers.
        let out = as_new(&[
            "officer", "add", "--key", &public, "--name", "x", "--roles", "admin",
        ]);
        assert_exit(&out, 3, "an officer adds officers");
        let listed = ok(&xa, &["officer", "list"], "list officers");
        assert!(listed["officers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["key"] == public.as_str()));
        ok(&xa, &["officer", "revoke", &public], "XA admin revokes");
        assert_exit(&as_new(&["status"]), 3, "a revoked officer");
    });

    // 8. Membership: XA proposes removing XD; it passes with 2/3 of voting power.
    timed("member propose-remove / vote / list", || {
        let proposal = ok(
            &xa,
            &[
                "member",
                "propose-remove",
                "XD",
                "--effective-delay-blocks",
                "1000000",
            ],
            "XA proposes removing XD",
        );
        let id = proposal["id"].as_str().unwrap().to_string();
        assert_eq!(proposal["status"], "open", "{proposal}");
        wait_for_height(&xb_s, height_of(&proposal));
        let voted = ok(&xb, &["member", "vote", &id, "yes"], "XB votes yes");
        wait_for_height(&xc_s, height_of(&voted));
        let voted = ok(&xc, &["member", "vote", &id, "yes"], "XC votes yes");
        assert_eq!(voted["status"], "passed", "{voted}");
        let members = ok(&xa, &["member", "list"], "list members");
        assert_eq!(members["members"].as_array().unwrap().len(), 4, "{members}");
    });

    // 9. Read audit: XB's and XC's reads are on the ledger, visible to the issuer.
    timed("audit by document and by officer", || {
        let audit = ok(&xa, &["audit", "--doc", &export_id], "XA audits");
        let accesses = audit["accesses"].as_array().expect("accesses");
        let by: Vec<&str> = accesses
            .iter()
            .map(|a| a["administration"].as_str().unwrap())
            .collect();
        assert!(by.contains(&"XB") && by.contains(&"XC"), "{audit}");
        assert!(
            accesses.iter().any(|a| a["request"].is_string()),
            "the granted read names its request: {audit}"
        );
        // A stranger to the document sees nothing of it.
        let xd = net.profile("XD");
        let out = cli(&xd, &["audit", "--doc", &export_id]);
        assert_exit(&out, 3, "XD audits a document it never saw");
    });

    // 10. Cancellation: only the issuer cancels; the reason is in the history; a
    //     cancelled document cannot be amended.
    timed("cancel / history / no amendment after cancel", || {
        let file = write_file(
            &scratch,
            "co.json",
            r#"{"CertificateNumber":"XA-CO-7","OriginCountry":"XA","OriginCriterion":"WO"}"#,
        );
        let co_ucr = format!("24XA{}-CO", tag().to_uppercase());
        let filed = ok(
            &xa,
            &[
                "doc",
                "submit",
                "--kind",
                "certificate-of-origin",
                "--ucr",
                &co_ucr,
                "--to",
                "XC",
                "--file",
                file.to_str().unwrap(),
            ],
            "XA issues a certificate of origin to XC",
        );
        let co = filed["id"].as_str().unwrap().to_string();
        wait_for_height(&xc_s, height_of(&filed));
        let out = cli(&xc, &["doc", "cancel", &co, "--reason", "not ours"]);
        assert!(
            matches!(exit_code(&out), 2 | 3),
            "a recipient cancels: {}",
            describe(&out)
        );
        let reason = "certificate issued in error: wrong origin criterion";
        let cancelled = ok(
            &xa,
            &["doc", "cancel", &co, "--reason", reason],
            "XA cancels",
        );
        assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
        wait_for_height(&xc_s, height_of(&cancelled));
        let history = ok(&xc, &["doc", "history", &co], "history of the certificate");
        assert_eq!(history["cancellation"]["reason"], reason, "{history}");
        assert_eq!(history["versions"][0]["status"], "cancelled", "{history}");
        refused(
            &xa,
            &["doc", "amend", &co, "--file", file.to_str().unwrap()],
            2,
            &["cancelled"],
            "amending a cancelled document",
        );
    });
}
