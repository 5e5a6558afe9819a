//! Agreements: proposal with per-agreement UCR keys, acceptance, refusals, and the
//! resolution of submissions against them.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::*;

/// An export→import agreement file between `parties`.
fn agreement_file(parties: &[&str]) -> Value {
    json!({
        "title": "Your export is my entry",
        "parties": parties,
        "clusters": [
            {"kind": "export-declaration", "allowed": ["UCR", "CommodityCode", "Quantity"], "required": ["UCR"]},
            {"kind": "import-declaration", "allowed": ["UCR", "CommodityCode", "Quantity"]}
        ],
        "trigger": "exit",
        "legal_basis": "Bilateral customs cooperation agreement XA-XB, art. 4",
        "purpose": "Pre-arrival risk management",
        "retention_days": 365,
        "delivery": "push"
    })
}

#[tokio::test]
async fn agreements_are_proposed_by_an_admin_of_a_party_and_accepted_by_the_others() {
    let net = Net::new();
    let post = |code: &'static str, key: SigningKey, body: Value| {
        let net = &net;
        async move {
            net.call(code, &key, Method::POST, "/v1/agreements", body)
                .await
        }
    };
    // Refusals: role, party, own node, malformed fields (each named).
    let answer = post("XA", xa_plain(), agreement_file(&["XA", "XB"])).await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["admin role"]);
    let answer = post("XA", xa_admin(), agreement_file(&["XB", "XC"])).await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["not one of its parties"]);
    let answer = post("XA", xb_admin(), agreement_file(&["XA", "XB"])).await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["node of XA"]);
    let mut bad = agreement_file(&["XA", "XB"]);
    bad["trigger"] = json!("whenever");
    let answer = post("XA", xa_admin(), bad).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["trigger", "whenever"]);
    let mut bad = agreement_file(&["XA", "XB"]);
    bad["ucr_key_wraps"] = json!([]);
    let answer = post("XA", xa_admin(), bad).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["unknown field ucr_key_wraps"],
    );
    let answer = post("XA", xa_admin(), agreement_file(&["XA", "XZ"])).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["parties", "XZ"]);
    let mut bad = agreement_file(&["XA", "XB"]);
    bad["clusters"][0]["required"] = json!(["Colour"]);
    let answer = post("XA", xa_admin(), bad).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["Colour"]);
    net.settle().await;
    assert_eq!(
        net.node("XA").shared.head().height,
        0,
        "nothing was submitted"
    );

    // Proposed: XA accepted implicitly, XB pending.
    let mut file = agreement_file(&["XA", "XB"]);
    file["id"] = json!("0b".repeat(16));
    let (status, proposed) = post("XA", xa_admin(), file.clone()).await;
    assert_eq!(status, StatusCode::OK, "{proposed}");
    let agreement = &proposed["agreement"];
    assert_eq!(agreement["id"], "0b".repeat(16));
    assert_eq!(agreement["status"], "proposed");
    assert_eq!(agreement["accepted"], json!(["XA"]));
    assert_eq!(agreement["pending"], json!(["XB"]));
    assert_eq!(agreement["trigger"], "exit");
    assert_eq!(agreement["retention_days"], 365);
    assert_eq!(agreement["clusters"][0]["required"], json!(["UCR"]));
    assert!(agreement.get("ucr_key_wraps").is_none());
    let answer = post("XA", xa_admin(), file).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already exists"]);

    // Submitting under it before it is active names the missing acceptance.
    let id = "0b".repeat(16);
    let mut body = export_body("UCR-10", &["XB"], json!({"UCR": "UCR-10"}));
    body["agreement"] = json!(id);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            "/v1/documents",
            body.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["not active", "XB"]);

    // Acceptance: XC is no party, XA already accepted, XB accepts through its node.
    let accept = format!("/v1/agreements/{id}/accept");
    let answer = net
        .call("XC", &xc_admin(), Method::POST, &accept, json!({}))
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["not a party"]);
    let answer = net
        .call("XA", &xa_admin(), Method::POST, &accept, json!({}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already accepted"]);
    let answer = net
        .call("XB", &xb_auditor(), Method::POST, &accept, json!({}))
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["admin role"]);
    let (status, accepted) = net
        .call("XB", &xb_admin(), Method::POST, &accept, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["agreement"]["status"], "active");
    assert_eq!(accepted["agreement"]["pending"], json!([]));
    assert_eq!(accepted["agreement"]["activated_at"], accepted["height"]);

    // Listing and showing; unknown and malformed ids.
    let (status, list) = net
        .call(
            "XC",
            &xc_admin(),
            Method::GET,
            "/v1/agreements",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["agreements"].as_array().unwrap().len(), 2);
    let (status, shown) = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            &format!("/v1/agreements/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["proposed_by"], "XA");
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            &format!("/v1/agreements/{}", "0c".repeat(16)),
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no agreement"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            "/v1/agreements/xyz",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["id"]);

    // Now two agreements cover an export XA→XB: without a name, both are candidates.
    let plain = export_body(
        "UCR-10",
        &["XB"],
        json!({"UCR": "UCR-10", "CommodityCode": "0101"}),
    );
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/documents", plain)
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["several", &id, &default_agreement().id.to_string()],
    );
    // Named: its own cluster applies (the default agreement's elements are outside it).
    let mut outside = export_body("UCR-10", &["XB"], json!({"UCR": "UCR-10", "Remarks": "x"}));
    outside["agreement"] = json!(id);
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/documents", outside)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["Remarks"]);
    let mut to_xc = export_body("UCR-10", &["XC"], json!({"UCR": "UCR-10"}));
    to_xc["agreement"] = json!(id);
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/documents", to_xc)
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["recipient XC is not a party"],
    );
    let mut wrong_kind =
        json!({"kind": "waste-movement", "ucr": "U", "recipients": ["XB"], "payload": "{}"});
    wrong_kind["agreement"] = json!(id);
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/documents", wrong_kind)
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["waste-movement is not covered"],
    );
    let mut unknown = body.clone();
    unknown["agreement"] = json!("0c".repeat(16));
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/documents", unknown)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["no agreement"]);
    let (status, doc) = net
        .call("XA", &xa_admin(), Method::POST, "/v1/documents", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["agreement"], id);

    // Both parties hold the new agreement's UCR key (each unwraps its own wrap): XB
    // finds the document by UCR; XC, no party, cannot compute that index.
    let (_, found) = net
        .call(
            "XB",
            &xb_admin(),
            Method::GET,
            "/v1/documents?ucr=UCR-10",
            Value::Null,
        )
        .await;
    assert_eq!(found["documents"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["documents"][0]["agreement"], id);
    let xa_key = net.node("XA").shared.agreement_ucr_key(
        &carnet_contracts::execute::query::agreement(
            &crate::ledger::Committed(&net.node("XA").store),
            &carnet_contracts::AgreementId([0x0b; 16]),
        )
        .unwrap()
        .unwrap()
        .terms,
    );
    let xb_key = net.node("XB").shared.agreement_ucr_key(
        &carnet_contracts::execute::query::agreement(
            &crate::ledger::Committed(&net.node("XB").store),
            &carnet_contracts::AgreementId([0x0b; 16]),
        )
        .unwrap()
        .unwrap()
        .terms,
    );
    let (xa_key, xb_key) = (xa_key.unwrap().unwrap(), xb_key.unwrap().unwrap());
    assert_eq!(*xa_key, *xb_key);
    assert_ne!(
        *xa_key, [77; 32],
        "a fresh key, not the default agreement's"
    );
}

#[tokio::test]
async fn the_example_agreement_files_are_proposed_as_they_are() {
    let net = Net::new();
    let files = [
        include_str!("../../../../testnet/agreements/export-import.json"),
        include_str!("../../../../testnet/agreements/eco-push.json"),
        include_str!("../../../../testnet/agreements/aeo-mra.json"),
        include_str!("../../../../testnet/agreements/waste-basel.json"),
    ];
    for text in files {
        let file: Value = serde_json::from_str(text).unwrap();
        let (status, proposed) = net
            .call(
                "XA",
                &xa_admin(),
                Method::POST,
                "/v1/agreements",
                file.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}: {proposed}", file["title"]);
        assert_eq!(proposed["agreement"]["id"], file["id"]);
        assert_eq!(proposed["agreement"]["clusters"], file["clusters"]);
        assert_eq!(proposed["agreement"]["status"], "proposed");
    }
}
