//! TFA Article 12 requests: creation, answers, grants with key delivery to the
//! requester, reads under a grant, breach notices, listing and visibility.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn a_provided_request_lets_the_requester_read_under_its_purpose() {
    let net = Net::new();
    // XA issued a declaration to XC only; XB will ask XA for it.
    let doc = net
        .submit(
            "XA",
            &xa_admin(),
            export_body(
                "UCR-20",
                &["XC"],
                json!({"UCR": "UCR-20", "CommodityCode": "0101"}),
            ),
        )
        .await;
    let doc_id = doc["id"].as_str().unwrap().to_string();
    net.deliver_keys();

    let create = |body: Value| {
        let net = &net;
        async move {
            net.call("XB", &xb_admin(), Method::POST, "/v1/requests", body)
                .await
        }
    };
    let request = |extra: Value| {
        let mut body = json!({"to": "XA", "purpose": "valuation check", "legal_basis": "TFA Art. 12",
                              "items": ["invoice value", "commodity code"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    // Refusals, each naming its field.
    let answer = create(request(json!({}))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["ucr, document"]);
    let answer = create(request(json!({"ucr": "UCR-20", "document": doc_id}))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["exactly one"]);
    let answer = create(request(json!({"ucr": "UCR-20", "to": "XB"}))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["to", "itself"]);
    let answer = create(request(json!({"ucr": "UCR-20", "items": []}))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["items"]);
    let answer = create(request(json!({"document": "0d".repeat(16)}))).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["document", "no document"],
    );
    let answer = net
        .call(
            "XB",
            &xb_auditor(),
            Method::POST,
            "/v1/requests",
            request(json!({"ucr": "U"})),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["role"]);

    // Created: by UCR (indexed under the shared agreement), and by document.
    let (status, by_ucr) = create(request(json!({"ucr": "UCR-20"}))).await;
    assert_eq!(status, StatusCode::OK, "{by_ucr}");
    assert_eq!(by_ucr["from"], "XB");
    assert_eq!(by_ucr["status"], "open");
    assert_eq!(by_ucr["overdue"], false);
    assert_eq!(
        by_ucr["confidentiality"],
        crate::api::requests::DEFAULT_CONFIDENTIALITY
    );
    let expected_index = carnet_contracts::envelope::ucr_index(&[77; 32], "UCR-20");
    assert_eq!(
        by_ucr["matter"],
        json!({"ucr_index": hex::encode(expected_index)})
    );
    assert_eq!(
        by_ucr["deadline_ms"].as_u64().unwrap(),
        by_ucr["time_ms"].as_u64().unwrap() + carnet_contracts::request::ANSWER_DEADLINE_MS
    );
    let (status, created) =
        create(request(json!({"document": doc_id, "id": "0e".repeat(16)}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let rid = "0e".repeat(16);
    assert_eq!(created["id"], rid);
    assert_eq!(created["matter"], json!({"document": doc_id}));

    // Visibility: requester and requested; XC gets 403; unknown 404.
    let show = format!("/v1/requests/{rid}");
    let (status, _) = net
        .call("XA", &xa_admin(), Method::GET, &show, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = net
        .call("XC", &xc_admin(), Method::GET, &show, Value::Null)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XC"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            &format!("/v1/requests/{}", "0f".repeat(16)),
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no request"]);
    let (status, list) = net
        .call("XA", &xa_admin(), Method::GET, "/v1/requests", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["requests"].as_array().unwrap().len(), 2);
    let (_, overdue) = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            "/v1/requests?overdue=true",
            Value::Null,
        )
        .await;
    assert_eq!(overdue["requests"], json!([]));
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            "/v1/requests?overdue=maybe",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["overdue"]);

    // Answers: only XA; a bad ground is named; postpone, then provide.
    let answer_path = format!("/v1/requests/{rid}/answer");
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "postpone", "reason": "busy"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["only XA"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "refuse", "reason_code": "f", "reason": "no"}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["reason_code"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "maybe"}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["answer"]);
    let (status, postponed) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "postpone", "reason": "investigation running"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{postponed}");
    assert_eq!(postponed["status"], "postponed");
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "provide", "documents": ["0d".repeat(16)]}),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["documents", "no document"],
    );
    let (status, provided) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "provide", "documents": [doc_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{provided}");
    assert_eq!(provided["status"], "provided");
    assert_eq!(
        provided["answers"][1],
        json!({"answer": "provide", "documents": [doc_id], "height": provided["answers"][1]["height"]})
    );
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &answer_path,
            json!({"answer": "postpone", "reason": "again"}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already answered"]);

    // XA's node owes XB the granted version's keys; XB's node accepts them under the grant.
    let deliveries = net.deliver_keys();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(
        (
            deliveries[0].from.as_str(),
            deliveries[0].document.as_str(),
            deliveries[0].version,
            deliveries[0].to.as_str()
        ),
        ("XA", doc_id.as_str(), 1, "XB")
    );
    assert!(deliveries[0].result.is_ok(), "{:?}", deliveries[0].result);

    // Reads: without the request, or for another purpose, refused; under it, served.
    let decrypt = format!("/v1/documents/{doc_id}/decrypt");
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "valuation check"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["not issuer or recipient"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "curiosity", "request": rid}),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::FORBIDDEN,
        &["purpose", "valuation check"],
    );
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "valuation check", "request": by_ucr["id"]}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["grants XB no access"]);
    let (status, read) = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "valuation check", "request": rid}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert!(read["payload"].as_str().unwrap().contains("0101"));
    net.settle().await;
    let (status, log) = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            &format!("/v1/audit?document={doc_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["accesses"][0]["administration"], "XB");
    assert_eq!(log["accesses"][0]["purpose"], "valuation check");

    // Breach notices: the requester only.
    let breach = format!("/v1/requests/{rid}/breach");
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &breach,
            json!({"details": "x"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["only XB"]);
    let answer = net
        .call("XB", &xb_admin(), Method::POST, &breach, json!({}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["details"]);
    let (status, noticed) = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &breach,
            json!({"details": "forwarded to a broker"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{noticed}");
    assert_eq!(noticed["breaches"][0]["details"], "forwarded to a broker");
}

#[tokio::test]
async fn key_deliveries_from_a_node_without_a_grant_are_refused() {
    let net = Net::new();
    let doc = net
        .submit(
            "XA",
            &xa_admin(),
            export_body(
                "UCR-21",
                &["XC"],
                json!({"UCR": "UCR-21", "CommodityCode": "0101"}),
            ),
        )
        .await;
    let id = carnet_contracts::DocumentId::from_hex(doc["id"].as_str().unwrap()).unwrap();
    let keys = net.node("XA").shared.vault.get(&id, 1).unwrap().unwrap();
    let versions = [(id, 1)];
    let wrapped = wrap_key_batch(
        &versions,
        std::slice::from_ref(&keys),
        &admin("XB", 20).encryption_key,
        [5; 32],
    )
    .unwrap();
    // XA is the issuer but XB no recipient, and nobody granted XB anything.
    let from = Member {
        code: AdminCode("XA".into()),
        validator: None,
    };
    let refused = super::receive_one(&net.node("XB").shared, &from, &versions, &wrapped);
    assert!(refused.unwrap_err().contains("neither issued"));
    assert!(net.node("XB").shared.vault.get(&id, 1).unwrap().is_none());
}

#[tokio::test]
async fn a_key_batch_is_answered_per_version_and_refused_whole_if_it_does_not_open() {
    let net = Net::new();
    let mut ids = Vec::new();
    for (ucr, to) in [("UCR-K1", "XB"), ("UCR-K2", "XC")] {
        let doc = net
            .submit(
                "XA",
                &xa_admin(),
                export_body(ucr, &[to], json!({"UCR": ucr, "CommodityCode": "0101"})),
            )
            .await;
        ids.push(carnet_contracts::DocumentId::from_hex(doc["id"].as_str().unwrap()).unwrap());
    }
    let vault = &net.node("XA").shared.vault;
    let keys: Vec<_> = ids
        .iter()
        .map(|id| vault.get(id, 1).unwrap().unwrap())
        .collect();
    let versions = [(ids[0], 1), (ids[1], 1)];
    let from = Member {
        code: AdminCode("XA".into()),
        validator: None,
    };
    let xb = &net.node("XB").shared;
    let to_xb = admin("XB", 20).encryption_key;
    // Wrapped for these versions in another order: nothing opens, nothing is kept.
    let swapped = [(ids[1], 1), (ids[0], 1)];
    let wrapped = wrap_key_batch(&swapped, &keys, &to_xb, [5; 32]).unwrap();
    let refused = crate::node::receive_key_batch(xb, &from, &versions, &wrapped);
    assert!(refused.unwrap_err().contains("does not open"));
    assert!(xb.vault.get(&ids[0], 1).unwrap().is_none());
    // XB is a recipient of the first only: the first is stored, the second refused.
    let wrapped = wrap_key_batch(&versions, &keys, &to_xb, [6; 32]).unwrap();
    let receipts = crate::node::receive_key_batch(xb, &from, &versions, &wrapped).unwrap();
    assert_eq!(receipts[0], crate::p2p::KeyReceipt::Stored);
    assert!(
        matches!(&receipts[1], crate::p2p::KeyReceipt::Refused(r) if r.contains("neither issued")),
        "{receipts:?}"
    );
    assert!(xb.vault.get(&ids[0], 1).unwrap().is_some());
    assert!(xb.vault.get(&ids[1], 1).unwrap().is_none());
}
