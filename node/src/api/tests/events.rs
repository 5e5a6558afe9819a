//! The event stream: catch-up from a height, live events, resumption without loss, and
//! the stream bounds.

use axum::body::BodyDataStream;
use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde_json::{json, Value};

use super::*;

/// Opens `GET /v1/events{query}` on `code`'s node; the status and the body stream.
async fn open(
    net: &Net,
    code: &str,
    key: &SigningKey,
    query: &str,
) -> (StatusCode, BodyDataStream) {
    let path = format!("/v1/events{query}");
    let response = net
        .node(code)
        .app
        .clone()
        .oneshot(signed(key, Method::GET, &path, vec![], timestamp_ms()))
        .await
        .unwrap();
    (response.status(), response.into_body().into_data_stream())
}

/// Reads the stream until `n` document events arrived; (id, data) of each.
async fn read_events(
    stream: &mut BodyDataStream,
    buffer: &mut String,
    n: usize,
) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            let mut kind = None;
            for line in frame.lines() {
                if let Some(v) = line
                    .strip_prefix("id: ")
                    .or_else(|| line.strip_prefix("id:"))
                {
                    id = Some(v.trim().parse::<u64>().unwrap());
                } else if let Some(v) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    data = Some(serde_json::from_str::<Value>(v).unwrap());
                } else if let Some(v) = line
                    .strip_prefix("event: ")
                    .or_else(|| line.strip_prefix("event:"))
                {
                    kind = Some(v.trim().to_string());
                }
            }
            if kind.as_deref() == Some("document") {
                out.push((id.unwrap(), data.unwrap()));
            }
            if out.len() == n {
                return out;
            }
        }
        let chunk = stream.next().await.expect("the stream ended").unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn documents_addressed_to_the_administration_stream_from_a_height_and_live() {
    let net = Net::new();
    let to_xb_1 = net
        .submit(
            "XA",
            &xa_admin(),
            export_body("UCR-40", &["XB"], json!({"CommodityCode": "1"})),
        )
        .await;
    // Not for XB: never in XB's stream.
    net.submit(
        "XA",
        &xa_admin(),
        export_body("UCR-41", &["XC"], json!({"CommodityCode": "2"})),
    )
    .await;
    let to_xb_2 = net
        .submit(
            "XA",
            &xa_admin(),
            export_body("UCR-42", &["XB", "XC"], json!({"CommodityCode": "3"})),
        )
        .await;

    // Catch-up from height 1, then live.
    let (status, mut stream) = open(&net, "XB", &xb_admin(), "?from_height=1").await;
    assert_eq!(status, StatusCode::OK);
    let mut buffer = String::new();
    let events = read_events(&mut stream, &mut buffer, 2).await;
    assert_eq!(events[0].0, to_xb_1["height"].as_u64().unwrap());
    assert_eq!(events[0].1["id"], to_xb_1["id"]);
    assert_eq!(events[0].1["issuer"], "XA");
    assert_eq!(events[0].1["kind"], "export-declaration");
    assert_eq!(events[0].1["version"], 1);
    assert_eq!(events[0].1["status"], "active");
    assert_eq!(events[0].1["agreement"], to_xb_1["agreement"]);
    assert_eq!(events[1].1["id"], to_xb_2["id"]);

    let amend = format!("/v1/documents/{}/amend", to_xb_2["id"].as_str().unwrap());
    let (status, amended) = net
        .call(
            "XA",
            &xa_admin(),
            Method::POST,
            &amend,
            json!({"payload": json!({"CommodityCode": "4"}).to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{amended}");
    let live = read_events(&mut stream, &mut buffer, 1).await;
    assert_eq!(live[0].0, amended["height"].as_u64().unwrap());
    assert_eq!(live[0].1["id"], to_xb_2["id"]);
    assert_eq!(live[0].1["version"], 2);

    // Resuming from the last id seen repeats that height, loses nothing.
    let (status, mut resumed) = open(
        &net,
        "XB",
        &xb_admin(),
        &format!("?from_height={}", events[1].0),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut buffer = String::new();
    let again = read_events(&mut resumed, &mut buffer, 2).await;
    assert_eq!(again[0].1["id"], to_xb_2["id"]);
    assert_eq!(again[0].1["version"], 1);
    // Version 1 is now `amended`: events show the version's current status.
    assert_eq!(again[0].1["status"], "amended");
    assert_eq!(again[1].1["version"], 2);

    // XC's stream from height 1 has the two documents addressed to XC.
    let (_, mut xc) = open(&net, "XC", &xc_admin(), "?from_height=0").await;
    let mut buffer = String::new();
    let xc_events = read_events(&mut xc, &mut buffer, 3).await;
    let versions: Vec<u64> = xc_events
        .iter()
        .map(|e| e.1["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 1, 2]);
}

#[tokio::test]
async fn event_streams_are_bounded_and_checked() {
    let net = Net::new();
    let (status, _) = open(&net, "XB", &xa_admin(), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = open(&net, "XB", &xb_admin(), "?from_height=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = open(&net, "XB", &xb_admin(), "?since=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut open_streams = Vec::new();
    for _ in 0..crate::api::MAX_STREAMS_PER_OFFICER {
        let (status, stream) = open(&net, "XB", &xb_admin(), "").await;
        assert_eq!(status, StatusCode::OK);
        open_streams.push(stream);
    }
    let (status, _) = open(&net, "XB", &xb_admin(), "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Another officer has its own allowance.
    let (status, _other) = open(&net, "XB", &xb_auditor(), "").await;
    assert_eq!(status, StatusCode::OK);
    let gauge = &net.node("XB").shared.metrics.event_streams;
    assert_eq!(gauge.get(), 5);
    // A closed stream frees its slot once its reader notices.
    drop(open_streams.pop());
    let mut freed = false;
    for _ in 0..10_000 {
        tokio::task::yield_now().await;
        if gauge.get() == 4 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the closed stream's slot was not released");
    let (status, _) = open(&net, "XB", &xb_admin(), "").await;
    assert_eq!(status, StatusCode::OK);
}
