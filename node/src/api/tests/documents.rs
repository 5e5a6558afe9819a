//! Documents: submission under agreements, visibility, decryption, amendment with key
//! delivery, cancellation, history, acknowledgements, UCR queries, matching and
//! pre-filling.

use axum::http::{Method, StatusCode};
use carnet_contracts::{AdminCode, DocumentId, DocumentKind, DocumentRecord, DocumentStatus};
use serde_json::{json, Value};

use super::*;

/// Puts a document record straight into XA's committed state.
fn put_record(store: &Store, seed: u8, status: DocumentStatus) -> DocumentId {
    let id = DocumentId([seed; 16]);
    let record = DocumentRecord {
        id,
        version: 1,
        kind: DocumentKind::ALL[0],
        issuer: AdminCode("XA".into()),
        submitted_by: public(&xa_admin()),
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

fn export_payload(commodity: &str, quantity: u64) -> Value {
    json!({"UCR": "UCR-1", "ExporterName": "Adjikistan Steel", "CommodityCode": commodity, "Quantity": quantity})
}

#[tokio::test]
async fn bad_document_input_gets_400_naming_the_field() {
    let net = Net::new();
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
        (
            json!({"kind": "export-declaration", "recipients": ["XB"], "payload": "{}"}),
            "ucr: missing",
        ),
        (
            json!({"kind": "export-declaration", "ucr": "U", "recipients": ["XB"], "payload": "{}", "colour": "red"}),
            "unknown field colour",
        ),
        (
            json!({"kind": "export-declaration", "ucr": "U", "recipients": ["XB"], "payload": "{\"CommodityCode\": 1}", "agreement": "zz"}),
            "agreement",
        ),
    ];
    for (request, expected) in cases {
        let answer = net
            .call(
                "XA",
                &xa_admin(),
                Method::POST,
                "/v1/documents",
                request.clone(),
            )
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, &[expected]);
        assert_eq!(answer.1["error"]["code"], "bad_input");
    }
    // Nothing reached the ledger.
    net.settle().await;
    assert_eq!(net.node("XA").shared.head().height, 0);
}

#[tokio::test]
async fn submission_names_every_offending_and_missing_element() {
    let net = Net::new();
    let payload = json!({"Colour": "red", "Flavour": "salty", "Quantity": 3});
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            "/v1/documents",
            export_body("UCR-2", &["XB"], payload),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &[
            "data cluster",
            "Colour",
            "Flavour",
            "required",
            "CommodityCode",
        ],
    );
    assert!(!error_message(&answer.1).contains("Quantity"));
}

#[tokio::test]
async fn submitting_needs_a_filing_role_and_the_own_node() {
    let net = Net::new();
    let body = export_body("UCR-3", &["XB"], export_payload("0101", 1));
    let answer = net
        .call(
            "XA",
            &xa_auditor(),
            Method::POST,
            "/v1/documents",
            body.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["officer", "role"]);
    let answer = net
        .call("XA", &xb_admin(), Method::POST, "/v1/documents", body)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XB", "node of XA"]);
}

#[tokio::test]
async fn a_document_is_read_amended_cancelled_and_its_versions_delivered() {
    let net = Net::new();
    let submitted = net
        .submit(
            "XA",
            &xa_plain(),
            export_body("UCR-4", &["XB"], export_payload("0101", 10)),
        )
        .await;
    assert_eq!(submitted["version"], 1);
    assert_eq!(submitted["status"], "active");
    assert_eq!(
        submitted["agreement"],
        super::default_agreement().id.to_string()
    );
    let id = submitted["id"].as_str().unwrap().to_string();

    // Visibility: issuer and recipient see it, XC does not; unknown ids are 404.
    let path = format!("/v1/documents/{id}");
    let (status, doc) = net
        .call("XB", &xb_admin(), Method::GET, &path, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["issuer"], "XA");
    assert_eq!(doc["recipients"], json!(["XB"]));
    let answer = net
        .call("XC", &xc_admin(), Method::GET, &path, Value::Null)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XC"]);
    let unknown = format!("/v1/documents/{}", hex::encode([1u8; 16]));
    let answer = net
        .call("XA", &xa_admin(), Method::GET, &unknown, Value::Null)
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no document"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            "/v1/documents/nothex",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["id"]);

    // Before the keys arrive XB cannot read; after delivery it can.
    let decrypt = format!("/v1/documents/{id}/decrypt");
    let purpose = json!({"purpose": "risk analysis"});
    let answer = net
        .call("XB", &xb_admin(), Method::POST, &decrypt, purpose.clone())
        .await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        &["not yet delivered"],
    );
    let deliveries = net.deliver_keys();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (deliveries[0].version, deliveries[0].to.as_str()),
        (1, "XB")
    );
    assert!(deliveries[0].result.is_ok(), "{:?}", deliveries[0].result);
    let (status, read) = net
        .call("XB", &xb_admin(), Method::POST, &decrypt, purpose.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let payload: Value = serde_json::from_str(read["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, export_payload("0101", 10));
    // XC is no recipient; an XB officer cannot read through XA's node.
    let answer = net
        .call("XC", &xc_admin(), Method::POST, &decrypt, purpose.clone())
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XC"]);
    let answer = net
        .call("XA", &xb_admin(), Method::POST, &decrypt, purpose.clone())
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["node of XA"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": " "}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["purpose"]);

    // Amendments: issuer only, checked against the cluster, delivered to the recipients.
    let amend = format!("/v1/documents/{id}/amend");
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &amend,
            json!({"payload": export_payload("0102", 10).to_string()}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["only the issuer XA"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &amend,
            json!({"payload": json!({"CommodityCode": "1", "Colour": "red"}).to_string()}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["Colour"]);
    let answer = net
        .call(
            "XA",
            &xa_auditor(),
            Method::POST,
            &amend,
            json!({"payload": "{}"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["role"]);
    let (status, amended) = net
        .call(
            "XA",
            &xa_plain(),
            Method::POST,
            &amend,
            json!({"payload": export_payload("0102", 12).to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{amended}");
    assert_eq!(amended["version"], 2);
    assert_eq!(amended["agreement"], submitted["agreement"]);
    let deliveries = net.deliver_keys();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(
        (deliveries[0].version, deliveries[0].to.as_str()),
        (2, "XB")
    );
    assert!(deliveries[0].result.is_ok(), "{:?}", deliveries[0].result);
    let (status, read) = net
        .call("XB", &xb_admin(), Method::POST, &decrypt, purpose.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["version"], 2);
    assert!(read["payload"].as_str().unwrap().contains("0102"));
    let (status, read) = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "compare", "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert!(read["payload"].as_str().unwrap().contains("0101"));
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "p", "version": 3}),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no version 3"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "p", "version": 0}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["version"]);

    // Cancellation: reason required, issuer only; afterwards no amendment.
    let cancel = format!("/v1/documents/{id}/cancel");
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &cancel,
            json!({"reason": ""}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["reason"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &cancel,
            json!({"reason": "x"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["issuer"]);
    let (status, cancelled) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &cancel,
            json!({"reason": "goods not shipped"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["version"], 2);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &amend,
            json!({"payload": export_payload("0103", 1).to_string()}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["cancelled"]);

    // History: every version, nothing overwritten but the status.
    let history = format!("/v1/documents/{id}/history");
    let (status, h) = net
        .call("XB", &xb_admin(), Method::GET, &history, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h["kind"], "export-declaration");
    assert_eq!(h["agreement"], submitted["agreement"]);
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["status"], "amended");
    assert_eq!(versions[1]["status"], "cancelled");
    assert_eq!(versions[0]["submitted_by"], public(&xa_plain()).to_string());
    assert_eq!(h["cancellation"]["reason"], "goods not shipped");
    assert_eq!(
        h["cancellation"]["officer"],
        public(&xa_admin()).to_string()
    );
    let answer = net
        .call("XC", &xc_admin(), Method::GET, &history, Value::Null)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XC"]);
}

#[tokio::test]
async fn deliveries_are_acknowledged_once_by_a_recipient() {
    let net = Net::new();
    let doc = net
        .submit(
            "XA",
            &xa_admin(),
            export_body("UCR-5", &["XB"], export_payload("0101", 1)),
        )
        .await;
    let id = doc["id"].as_str().unwrap();
    let ack = format!("/v1/documents/{id}/ack");
    let answer = net
        .call("XA", &xa_admin(), Method::POST, &ack, json!({"version": 1}))
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["not a recipient"]);
    let answer = net
        .call(
            "XB",
            &xb_auditor(),
            Method::POST,
            &ack,
            json!({"version": 1}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["role"]);
    let answer = net
        .call("XB", &xb_admin(), Method::POST, &ack, json!({"version": 2}))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no version 2"]);
    let (status, acked) = net
        .call("XB", &xb_admin(), Method::POST, &ack, json!({"version": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["administration"], "XB");
    assert_eq!(acked["version"], 1);
    let answer = net
        .call("XB", &xb_admin(), Method::POST, &ack, json!({}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already acknowledged"]);
    let (status, st) = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            &format!("/v1/documents/{id}/status"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{st}");
    assert_eq!(st["agreement"], doc["agreement"]);
    assert_eq!(
        st["deliveries"],
        json!([{"administration": "XB", "version": 1, "height": acked["height"]}])
    );
}

#[tokio::test]
async fn ucr_queries_match_exports_to_imports_and_prefill() {
    let net = Net::new();
    let export = net
        .submit(
            "XA",
            &xa_admin(),
            export_body(
                "ucr-6",
                &["XB"],
                json!({"UCR": "UCR-6", "CommodityCode": "0101", "Quantity": 10, "Remarks": "fragile"}),
            ),
        )
        .await;
    let import = net
        .submit(
            "XB",
            &xb_admin(),
            json!({"kind": "import-declaration", "ucr": " UCR-6 ", "recipients": ["XA"],
                   "payload": json!({"UCR": "UCR-6", "CommodityCode": "0102", "Quantity": 10}).to_string()}),
        )
        .await;
    net.submit(
        "XA",
        &xa_admin(),
        json!({"kind": "certificate-of-origin", "ucr": "UCR-6", "recipients": ["XC"],
               "payload": json!({"OriginCountry": "XA"}).to_string()}),
    )
    .await;
    // Found by UCR (normalized), only what the caller may see.
    let (status, found) = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            "/v1/documents?ucr=Ucr-6",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let ids: Vec<&str> = found["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{found}");
    assert!(ids.contains(&export["id"].as_str().unwrap()));
    assert!(ids.contains(&import["id"].as_str().unwrap()));
    let (_, found) = net
        .call(
            "XC",
            &xc_admin(),
            Method::GET,
            "/v1/documents?ucr=UCR-6",
            Value::Null,
        )
        .await;
    assert_eq!(found["documents"].as_array().unwrap().len(), 1);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            "/v1/documents?ucr=",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["ucr"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            "/v1/documents?ucr=A&x=1",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["unknown parameter `x`"]);

    // Before the keys are delivered nothing is compared; afterwards the mismatch shows.
    let (status, matched) = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            "/v1/ucr-match?ucr=UCR-6",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{matched}");
    assert_eq!(matched["mismatches"], json!([]));
    assert_eq!(matched["unread"], json!([import["id"]]));
    for d in net.deliver_keys() {
        assert!(d.result.is_ok(), "{d:?}");
    }
    let (status, matched) = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            "/v1/ucr-match?ucr=UCR-6",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{matched}");
    assert_eq!(matched["exports"][0]["id"], export["id"]);
    assert_eq!(matched["imports"][0]["id"], import["id"]);
    assert_eq!(matched["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(matched["others"], json!([]));
    assert_eq!(
        matched["mismatches"],
        json!([{"element": "CommodityCode", "export_id": export["id"], "export_value": "0101",
                "import_id": import["id"], "import_value": "0102"}])
    );
    // XC reads neither declaration: listed, nothing compared.
    let (_, matched) = net
        .call(
            "XC",
            &xc_admin(),
            Method::GET,
            "/v1/ucr-match?ucr=UCR-6",
            Value::Null,
        )
        .await;
    assert_eq!(matched["exports"], json!([]));
    assert_eq!(matched["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(matched["mismatches"], json!([]));

    // Pre-filling an import from the export: elements not allowed for imports drop.
    let prefill = format!("/v1/documents/{}/prefill", export["id"].as_str().unwrap());
    let (status, filled) = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &prefill,
            json!({"kind": "import-declaration"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{filled}");
    assert_eq!(
        filled["payload"],
        json!({"UCR": "UCR-6", "CommodityCode": "0101", "Quantity": 10})
    );
    assert_eq!(
        filled["carried"],
        json!(["CommodityCode", "Quantity", "UCR"])
    );
    assert_eq!(filled["dropped"], json!(["Remarks"]));
    let answer = net
        .call(
            "XC",
            &xc_admin(),
            Method::POST,
            &prefill,
            json!({"kind": "import-declaration"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XC"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &prefill,
            json!({"kind": "tea"}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["kind"]);

    // Every read is on the ledger: the match's under `UCR match`, the prefill's too.
    net.settle().await;
    let audit = format!("/v1/audit?document={}", export["id"].as_str().unwrap());
    let (status, log) = net
        .call("XA", &xa_admin(), Method::GET, &audit, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let purposes: Vec<(&str, &str)> = log["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["administration"].as_str().unwrap(),
                a["purpose"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        purposes,
        vec![("XA", "UCR match"), ("XB", "prefill import-declaration")]
    );
}

#[tokio::test]
async fn erase_and_status_answer_precisely() {
    let net = Net::new();
    let store = &net.node("XA").store;
    let erase_body = || json!({"reason": "court order", "legal_basis": "GDPR 17"});
    let unknown = hex::encode([1u8; 16]);
    let path = format!("/v1/documents/{unknown}/erase");
    let answer = net
        .call("XA", &xa_admin(), Method::POST, &path, erase_body())
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no document"]);
    let path = format!("/v1/documents/{unknown}/status");
    let answer = net
        .call("XA", &xa_admin(), Method::GET, &path, Value::Null)
        .await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND);

    let active = put_record(store, 7, DocumentStatus::Active);
    // A plain officer may not erase: 403 before anything is submitted.
    let path = format!("/v1/documents/{active}/erase");
    let answer = net
        .call("XA", &xa_plain(), Method::POST, &path, erase_body())
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["supervisor"]);
    assert_eq!(answer.1["error"]["code"], "forbidden");
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &path,
            json!({"reason": "x", "legal_basis": " "}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["legal_basis"]);
    let path = format!("/v1/documents/{active}/status");
    let (status, body) = net
        .call("XA", &xa_admin(), Method::GET, &path, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(body["height"], 4);
    assert_eq!(body["attestations"], json!([]));
    assert_eq!(body["pending"], json!([]));
    assert_eq!(body["deliveries"], json!([]));
    assert_eq!(body["agreement"], Value::Null);

    let erased = put_record(store, 8, DocumentStatus::Erased);
    let path = format!("/v1/documents/{erased}/erase");
    let answer = net
        .call("XA", &xa_admin(), Method::POST, &path, erase_body())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already erased"]);
    let path = format!("/v1/documents/{erased}/decrypt");
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &path,
            json!({"purpose": "audit"}),
        )
        .await;
    assert_eq!(answer.0, StatusCode::GONE, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], "erased");
}

#[tokio::test]
async fn a_document_batch_is_checked_whole_then_each_document_is_answered_when_final() {
    let net = Net::new();
    let batch = |documents: Vec<Value>| json!({ "documents": documents });
    let good = |i: u64, to: &str| {
        export_body(
            &format!("UCR-B{i}"),
            &[to],
            json!({"UCR": format!("UCR-B{i}"), "CommodityCode": "0101", "Quantity": i}),
        )
    };
    let documents_now = |code: &str| {
        net.node(code)
            .store
            .scan_prefix(crate::storage::CF_OUTBOX, &[], 1000)
            .unwrap()
            .len()
    };

    // One bad document refuses the whole batch, naming it; nothing is submitted.
    let mut bad = good(2, "XB");
    bad["payload"] = json!(json!({"UCR": "UCR-B2", "PassportNumber": "X1"}).to_string());
    let body = batch(vec![good(1, "XB"), bad, good(3, "XC")]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            "/v1/document-batches",
            body,
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["documents[1]", "PassportNumber"],
    );
    assert!(net.node("XA").shared.mempool().is_empty());
    assert_eq!(documents_now("XA"), 0, "no delivery was queued");
    for (body, needle) in [
        (batch(vec![]), "documents: 1 to 256"),
        (batch(vec![good(1, "XB"); 257]), "documents: 1 to 256"),
        (
            batch(vec![json!("text")]),
            "documents[0]: must be a JSON object",
        ),
        (json!({"documents": [good(1, "XB")], "extra": 1}), "extra"),
    ] {
        let answer = net
            .call(
                "XA",
                &xa_admin(),
                Method::POST,
                "/v1/document-batches",
                body,
            )
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, &[needle]);
    }
    // XB's officer cannot file through XA's node.
    let answer = net
        .call(
            "XA",
            &xb_admin(),
            Method::POST,
            "/v1/document-batches",
            batch(vec![good(1, "XC")]),
        )
        .await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{}", answer.1);

    // A good batch: every document final, answered in order, readable by its recipient.
    let body = batch(vec![good(1, "XB"), good(2, "XC"), good(3, "XB")]);
    let (status, answer) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            "/v1/document-batches",
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answered = answer["documents"].as_array().unwrap();
    assert_eq!(answered.len(), 3);
    for doc in answered {
        assert_eq!(doc["status"], "active", "{doc}");
        assert_eq!(doc["version"], 1);
        assert!(doc["height"].as_u64().unwrap() >= 1);
    }
    let ids: HashSet<&str> = answered.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "three documents");
    for d in net.deliver_keys() {
        assert!(d.result.is_ok(), "{d:?}");
    }
    for (doc, (reader, key), quantity) in [
        (&answered[0], ("XB", xb_admin()), 1),
        (&answered[1], ("XC", xc_admin()), 2),
        (&answered[2], ("XB", xb_admin()), 3),
    ] {
        let path = format!("/v1/documents/{}/decrypt", doc["id"].as_str().unwrap());
        let (status, read) = net
            .call(
                reader,
                &key,
                Method::POST,
                &path,
                json!({"purpose": "risk analysis"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{read}");
        let payload: Value = serde_json::from_str(read["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["Quantity"], quantity);
    }
}
