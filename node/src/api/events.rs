//! `GET /v1/events`: server-sent events, one `document` event per final document
//! version addressed to this node's administration.
//!
//! Design: a stream reads final blocks from the store, from `from_height` (or the
//! standard `Last-Event-ID` header, or the next block) up to the head, then waits for the
//! head to move (a `watch` published by every commit) and reads on. The event id is the
//! block height, so a client that reconnects with `from_height` = the last id it saw
//! loses nothing (events of that height come again; duplicates, never gaps). Nothing is
//! kept per client but its next height: a slow client slows only its own stream, which
//! blocks on a bounded channel. Each officer holds at most `MAX_STREAMS_PER_OFFICER`
//! streams, the node at most `MAX_STREAMS`.
//!
//! Must never send an event for a version not addressed to this node's administration,
//! nor anything but metadata (no payload, no key).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Extension;
use carnet_contracts::block::BlockBody;
use carnet_contracts::{Action, PublicKey};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::documents::{agreement_of, status_name};
use super::{
    lock, own_node, query_params, ApiError, ApiState, Caller, MAX_STREAMS, MAX_STREAMS_PER_OFFICER,
};
use crate::node::Shared;

/// Events buffered per stream before the reader waits for the client.
const STREAM_BUFFER: usize = 64;
/// Interval of the `: keep-alive` comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One slot of an officer's stream allowance; released when the stream ends.
struct StreamSlot {
    state: ApiState,
    officer: PublicKey,
}

impl StreamSlot {
    fn take(state: &ApiState, officer: PublicKey) -> Result<Self, ApiError> {
        let mut streams = lock(&state.streams);
        let total: usize = streams.values().sum();
        if total >= MAX_STREAMS {
            return Err(ApiError::unavailable(format!(
                "this node already serves {MAX_STREAMS} event streams"
            )));
        }
        let open = streams.entry(officer).or_insert(0);
        if *open >= MAX_STREAMS_PER_OFFICER {
            return Err(ApiError::unavailable(format!(
                "officer {officer} already has {MAX_STREAMS_PER_OFFICER} event streams open"
            )));
        }
        *open += 1;
        state.shared.metrics.event_streams.set((total + 1) as i64);
        Ok(Self {
            state: state.clone(),
            officer,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = lock(&self.state.streams);
        if let Some(open) = streams.get_mut(&self.officer) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.officer);
            }
        }
        let total: usize = streams.values().sum();
        self.state.shared.metrics.event_streams.set(total as i64);
    }
}

/// The document event of every version made final at `height` and addressed to this
/// node's administration, in block order.
pub(crate) fn document_events(s: &Shared, height: u64) -> Result<Vec<Value>, String> {
    let Some(stored) = s.store.block(height).map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let body = BlockBody::decode(&stored.block.payload).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for tx in &body.txs {
        let Some(sub) = tx.tx.action.document_submission() else {
            continue;
        };
        if !sub.recipients.contains(&s.admin) {
            continue;
        }
        // The version this transaction made final here (none if the ledger refused it).
        let record = match &tx.tx.action {
            Action::AmendDocument { .. } => crate::ledger::document_history(&s.store, &sub.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|r| r.height == height && r.ciphertext_hash == sub.ciphertext_hash),
            _ => crate::ledger::document_version(&s.store, &sub.id, 1)
                .map_err(|e| e.to_string())?
                .filter(|r| r.height == height && r.ciphertext_hash == sub.ciphertext_hash),
        };
        let Some(record) = record else { continue };
        let agreement = agreement_of(&s.store, &record.id).map_err(|e| format!("{e:?}"))?;
        out.push(json!({
            "id": record.id.to_string(),
            "version": record.version,
            "kind": record.kind.as_str(),
            "issuer": record.issuer.as_str(),
            "agreement": agreement.map(|a| a.to_string()),
            "height": height,
            "time_ms": record.time_ms,
            "status": status_name(record.status),
        }));
    }
    Ok(out)
}

/// The height to start from: `from_height`, else `Last-Event-ID` (the last height the
/// client saw), else the next block.
fn start_height(s: &Shared, raw: Option<String>, headers: &HeaderMap) -> Result<u64, ApiError> {
    let params = query_params(raw, &["from_height"])?;
    if let Some(text) = params.get("from_height") {
        return text.trim().parse::<u64>().map(|h| h.max(1)).map_err(|_| {
            ApiError::bad_input(format!("from_height: `{text}` is not a block height"))
        });
    }
    if let Some(value) = headers.get("last-event-id") {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|h| h.max(1))
            .ok_or_else(|| ApiError::bad_input("Last-Event-ID: not a block height"));
    }
    Ok(s.head().height + 1)
}

pub(super) async fn stream(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let s = state.shared.clone();
    own_node(&s, &caller)?;
    let mut next = start_height(&s, raw, &headers)?;
    let slot = StreamSlot::take(&state, caller.key)?;
    let (tx, rx) = mpsc::channel::<Event>(STREAM_BUFFER);
    // Subscribed before the first read: a commit after it wakes the loop.
    let mut heads = s.subscribe_heads();
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            heads.borrow_and_update();
            let head = s.head().height;
            while next <= head {
                let events = match document_events(&s, next) {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::error!(height = next, "event stream: reading a final block: {e}");
                        return;
                    }
                };
                for data in events {
                    let event = Event::default()
                        .event("document")
                        .id(next.to_string())
                        .data(data.to_string());
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    s.metrics.events_sent.inc();
                }
                next += 1;
            }
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
        }
    });
    let stream = ReceiverStream::new(rx).map(Ok::<Event, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
