//! Officers, membership governance and the read audit.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn admins_register_and_revoke_their_own_officers() {
    let net = Net::new();
    let newcomer = key(70);
    let body = json!({"key": public(&newcomer).to_string(), "name": "Inspector Ama", "roles": ["officer", "auditor"]});
    let answer = net
        .call(
            "XA",
            &xa_plain(),
            Method::POST,
            "/v1/officers",
            body.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["admin role"]);
    let answer = net
        .call(
            "XA",
            &xb_admin(),
            Method::POST,
            "/v1/officers",
            body.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["node of XA"]);
    let mut bad = body.clone();
    bad["roles"] = json!(["officer", "king"]);
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/officers", bad)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["roles", "king"]);
    let mut bad = body.clone();
    bad["key"] = json!("abc");
    let answer = net
        .call("XA", &xa_admin(), Method::POST, "/v1/officers", bad)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["key"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            "/v1/officers",
            json!({"key": public(&xb_admin()).to_string(), "name": "n", "roles": ["officer"]}),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["already registered to XB"],
    );

    // The newcomer is unknown until registered, then signs in.
    let answer = net
        .call("XA", &newcomer, Method::GET, "/v1/status", Value::Null)
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, &["unknown or revoked"]);
    let (status, added) = net
        .call("XA", &xa_admin(), Method::POST, "/v1/officers", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(
        added,
        json!({"key": public(&newcomer).to_string(), "name": "Inspector Ama", "administration": "XA",
               "roles": ["officer", "auditor"], "active": true})
    );
    let (status, _) = net
        .call("XA", &newcomer, Method::GET, "/v1/status", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Revocation: not another administration's officer, not oneself, not twice.
    let revoke = |k: &SigningKey| format!("/v1/officers/{}/revoke", public(k));
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &revoke(&xb_admin()),
            json!({}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["registered to XB"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &revoke(&xa_admin()),
            json!({}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["itself"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &revoke(&key(71)),
            json!({}),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no officer"]);
    let (status, revoked) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &revoke(&newcomer),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["active"], false);
    // From the next block on, the revoked officer's requests fail with 401.
    let answer = net
        .call("XA", &newcomer, Method::GET, "/v1/status", Value::Null)
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, &["unknown or revoked"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &revoke(&newcomer),
            json!({}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already revoked"]);

    // Listing: the caller's administration by default, another on request.
    let (status, list) = net
        .call(
            "XA",
            &xa_auditor(),
            Method::GET,
            "/v1/officers",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["officers"].as_array().unwrap().len(), 4);
    let (_, list) = net
        .call(
            "XA",
            &xa_auditor(),
            Method::GET,
            "/v1/officers?administration=XB",
            Value::Null,
        )
        .await;
    let keys: Vec<&str> = list["officers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&public(&xb_auditor()).to_string().as_str()));
    let answer = net
        .call(
            "XA",
            &xa_auditor(),
            Method::GET,
            "/v1/officers?administration=XZ",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["XZ"]);
    let answer = net
        .call(
            "XA",
            &xa_auditor(),
            Method::GET,
            "/v1/officers?administration=xz",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["administration"]);
}

#[tokio::test]
async fn membership_changes_are_proposed_and_voted_by_admins() {
    let net = Net::new();
    let post = "/v1/members/proposals";
    let answer = net
        .call(
            "XA",
            &xa_plain(),
            Method::POST,
            post,
            json!({"remove": "XC"}),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["admin role"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            post,
            json!({"remove": "XZ"}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["remove", "XZ"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            post,
            json!({"remove": "XC", "add": {}}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["exactly one"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            post,
            json!({"remove": "XC", "effective_delay_blocks": 0}),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        &["effective_delay_blocks"],
    );
    let mut member = serde_json::to_value(admin("XD", 80)).unwrap();
    member.as_object_mut().unwrap().remove("active");
    member["node_key"] = json!("00".repeat(31));
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            post,
            json!({"add": member}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["add", "node_key"]);

    // An admission names the first officers of the admitted administration.
    let mut member = serde_json::to_value(admin("XD", 80)).unwrap();
    member.as_object_mut().unwrap().remove("active");
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            post,
            json!({"add": member.clone()}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["officers", "XD"]);

    // Admitting XD: XA proposes (yes), XB votes yes: 2 of 3 equal votes pass it.
    member["officers"] = json!([{
        "key": hex::encode([81u8; 32]),
        "name": "XD first admin",
        "roles": ["admin"]
    }]);
    let (status, proposal) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            post,
            json!({"add": member, "id": "1d".repeat(16)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{proposal}");
    assert_eq!(proposal["kind"], "add");
    assert_eq!(proposal["code"], "XD");
    assert_eq!(proposal["status"], "open");
    assert_eq!(proposal["effective_delay_blocks"], 10);
    assert_eq!(
        proposal["votes"],
        json!([{"administration": "XA", "yes": true}])
    );
    let vote = format!("/v1/members/proposals/{}/vote", "1d".repeat(16));
    let answer = net
        .call("XA", &xa_admin(), Method::POST, &vote, json!({"yes": true}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["already voted"]);
    let answer = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &vote,
            json!({"yes": "sure"}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["yes"]);
    let (status, passed) = net
        .call("XB", &xb_admin(), Method::POST, &vote, json!({"yes": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{passed}");
    assert_eq!(passed["status"], "passed");
    assert_eq!(
        passed["effective_height"].as_u64().unwrap(),
        net.node("XB").shared.head().height + 10
    );
    let answer = net
        .call(
            "XC",
            &xc_admin(),
            Method::POST,
            &vote,
            json!({"yes": false}),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["no longer open"]);
    let answer = net
        .call(
            "XC",
            &xc_admin(),
            Method::POST,
            &format!("/v1/members/proposals/{}/vote", "2d".repeat(16)),
            json!({"yes": false}),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no proposal"]);

    let (status, members) = net
        .call("XC", &xc_admin(), Method::GET, "/v1/members", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let codes: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["XA", "XB", "XC"]);
    assert_eq!(members["proposals"][0]["status"], "passed");
}

#[tokio::test]
async fn the_read_audit_is_shown_to_the_entitled_only() {
    let net = Net::new();
    let doc = net
        .submit(
            "XA",
            &xa_admin(),
            export_body("UCR-30", &["XB"], json!({"CommodityCode": "0101"})),
        )
        .await;
    let id = doc["id"].as_str().unwrap();
    net.deliver_keys();
    let decrypt = format!("/v1/documents/{id}/decrypt");
    let (status, _) = net
        .call(
            "XB",
            &xb_admin(),
            Method::POST,
            &decrypt,
            json!({"purpose": "risk"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    net.settle().await;

    let by_doc = format!("/v1/audit?document={id}");
    // The issuer's officers, and auditors of a recipient, see a document's reads.
    for (code, officer) in [
        ("XA", xa_plain()),
        ("XA", xa_auditor()),
        ("XB", xb_auditor()),
    ] {
        let (status, log) = net
            .call(code, &officer, Method::GET, &by_doc, Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let access = &log["accesses"][0];
        assert_eq!(access["officer"], public(&xb_admin()).to_string());
        assert_eq!(access["administration"], "XB");
        assert_eq!(access["purpose"], "risk");
        assert_eq!(access["version"], 1);
        assert_eq!(access["request"], Value::Null);
    }
    let answer = net
        .call("XC", &xc_admin(), Method::GET, &by_doc, Value::Null)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["issuer XA"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            &format!("/v1/audit?document={}", "01".repeat(16)),
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, &["no document"]);

    // By officer: the officer itself, auditors and admins of its administration.
    let by_officer = format!("/v1/audit?officer={}", public(&xb_admin()));
    for officer in [xb_admin(), xb_auditor()] {
        let (status, log) = net
            .call("XB", &officer, Method::GET, &by_officer, Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["accesses"].as_array().unwrap().len(), 1);
    }
    let answer = net
        .call("XA", &xa_admin(), Method::GET, &by_officer, Value::Null)
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, &["XB"]);
    let answer = net
        .call("XA", &xa_admin(), Method::GET, "/v1/audit", Value::Null)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["exactly one"]);
    let answer = net
        .call(
            "XA",
            &xa_admin(),
            Method::GET,
            "/v1/audit?officer=zz",
            Value::Null,
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, &["officer"]);
}
