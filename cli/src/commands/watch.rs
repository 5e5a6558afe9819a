//! `carnet watch`: follows the node's event stream (`GET /v1/events`) and hands out each
//! final document version addressed to the administration, acknowledging its delivery
//! on the ledger (`POST /v1/documents/{id}/ack`) unless told not to.
//!
//! A stream that drops is reopened from the height of the last document seen; documents
//! of that height already handled are skipped, so a block with several documents is
//! never half lost and nothing is handed out twice. Reopening is retried at most
//! [`MAX_RECONNECT_ATTEMPTS`] times in a row with doubling pauses; then the watch fails
//! with exit 5. Without `--from-height` the watch starts at the node's next block, pinned
//! as a height when first connecting, so a reconnection misses nothing.
//!
//! The stream, the acknowledgement and the clock are behind [`EventFeed`], so the
//! reconnection rules are tested without a node.
//!
//! Must never: acknowledge a document before handing it out, hand out a document twice,
//! retry forever, or treat a refusal (401, 403, 400, 404) as a dropped stream.

use crate::api::{Acknowledged, DocumentEvent};
use crate::client::NodeClient;
use crate::error::{CliError, Failure};
use crate::sse::{SseItem, SseParser};
use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

/// Reconnections tried in a row, without a frame in between, before giving up (exit 5).
pub const MAX_RECONNECT_ATTEMPTS: u32 = 8;
/// Pause before the first reconnection; doubled each further attempt.
pub const RECONNECT_FIRST_PAUSE_MS: u64 = 500;
/// Longest pause between two reconnections.
pub const RECONNECT_MAX_PAUSE_MS: u64 = 8_000;
/// Attempts to acknowledge one document while the node is unavailable.
pub const ACK_ATTEMPTS: u32 = 4;
/// Bytes read from the stream at a time.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Most documents of one height remembered to skip after a reconnection (a block holds
/// at most `carnet_contracts::block::MAX_BLOCK_TXS` transactions).
pub const MAX_REMEMBERED_PER_HEIGHT: usize = carnet_contracts::block::MAX_BLOCK_TXS;

/// Where the events come from and where acknowledgements go.
pub trait EventFeed {
    /// The height of the node's last final block.
    fn height(&mut self) -> Result<u64, CliError>;
    /// Opens the stream of document events from `from_height` on.
    fn open(&mut self, from_height: u64) -> Result<Box<dyn Read + Send>, CliError>;
    /// Records on the ledger that this document version arrived.
    fn acknowledge(&mut self, id: &str, version: u32) -> Result<Acknowledged, CliError>;
    /// Waits before trying again.
    fn pause(&mut self, pause: Duration);
}

/// The real feed: one node, on behalf of one officer.
#[derive(Debug)]
pub struct NodeFeed<'a> {
    pub client: &'a NodeClient,
}

impl EventFeed for NodeFeed<'_> {
    fn height(&mut self) -> Result<u64, CliError> {
        Ok(self.client.status()?.height)
    }

    fn open(&mut self, from_height: u64) -> Result<Box<dyn Read + Send>, CliError> {
        self.client
            .open_stream(&NodeClient::events_path(Some(from_height)))
    }

    fn acknowledge(&mut self, id: &str, version: u32) -> Result<Acknowledged, CliError> {
        self.client.acknowledge(id, version)
    }

    fn pause(&mut self, pause: Duration) {
        std::thread::sleep(pause);
    }
}

/// `carnet watch` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// First height to hand out; `None`: the node's next block.
    pub from_height: Option<u64>,
    /// Acknowledge each document handed out (the default; `--no-ack` turns it off).
    pub acknowledge: bool,
    /// Stop after this many documents.
    pub count: Option<u64>,
}

/// What the watch reports as it goes.
#[derive(Debug)]
pub enum WatchNotice<'a> {
    /// A document to hand out (printed before it is acknowledged).
    Document(&'a DocumentEvent),
    /// Its delivery acknowledgement is on the ledger.
    Acknowledged(&'a Acknowledged),
    /// The node refused the acknowledgement (e.g. already acknowledged); the watch goes on.
    NotAcknowledged(&'a DocumentEvent, &'a CliError),
    /// The stream dropped or could not be opened; trying again after `pause`.
    Reconnecting {
        attempt: u32,
        from_height: u64,
        pause: Duration,
        cause: &'a CliError,
    },
}

/// The pause before reconnection `attempt` (1-based): 0.5 s, 1 s, 2 s, ... at most 8 s.
pub fn reconnect_pause(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    Duration::from_millis(
        RECONNECT_FIRST_PAUSE_MS
            .saturating_mul(1 << doublings)
            .min(RECONNECT_MAX_PAUSE_MS),
    )
}

/// Where to resume and what not to hand out again.
#[derive(Debug, Default)]
struct Resume {
    /// The height the next stream starts at.
    from_height: Option<u64>,
    /// Height of the last document handed out, and the documents handed out at it.
    last_height: Option<u64>,
    handled_at_last: BTreeSet<(String, u32)>,
}

impl Resume {
    fn already_handled(&self, event: &DocumentEvent) -> bool {
        match self.last_height {
            Some(last) if event.height < last => true,
            Some(last) if event.height == last => self
                .handled_at_last
                .contains(&(event.id.clone(), event.version)),
            _ => false,
        }
    }

    fn handled(&mut self, event: &DocumentEvent) {
        if self.last_height != Some(event.height) {
            self.last_height = Some(event.height);
            self.handled_at_last.clear();
        }
        if self.handled_at_last.len() < MAX_REMEMBERED_PER_HEIGHT {
            self.handled_at_last
                .insert((event.id.clone(), event.version));
        }
        // Resume at this height: its other documents may not have come yet.
        self.from_height = Some(event.height);
    }
}

/// How one stream ended.
enum StreamEnd {
    /// `--count` documents handed out.
    Done,
    /// Dropped; `progressed` if it delivered at least one frame or comment.
    Dropped { cause: CliError, progressed: bool },
}

/// Runs the watch until `count` documents were handed out (Ok with that number), a
/// refusal, or [`MAX_RECONNECT_ATTEMPTS`] failed reconnections (exit 5).
pub fn watch(
    feed: &mut dyn EventFeed,
    options: &WatchOptions,
    notice: &mut dyn FnMut(WatchNotice<'_>) -> Result<(), CliError>,
) -> Result<u64, CliError> {
    let mut resume = Resume {
        from_height: options.from_height,
        ..Resume::default()
    };
    let mut handed_out = 0u64;
    if options.count == Some(0) {
        return Ok(0);
    }
    let mut failures = 0u32;
    loop {
        let opened = open(feed, &mut resume);
        let end = match opened {
            Ok(stream) => follow(feed, stream, options, &mut resume, &mut handed_out, notice)?,
            Err(e) if e.failure == Failure::Unavailable => StreamEnd::Dropped {
                cause: e,
                progressed: false,
            },
            Err(e) => return Err(e),
        };
        let (cause, progressed) = match end {
            StreamEnd::Done => return Ok(handed_out),
            StreamEnd::Dropped { cause, progressed } => (cause, progressed),
        };
        if progressed {
            failures = 0;
        }
        failures += 1;
        let from_height = resume.from_height.unwrap_or(0);
        if failures > MAX_RECONNECT_ATTEMPTS {
            let mut e = CliError::unavailable(format!(
                "event stream lost: {MAX_RECONNECT_ATTEMPTS} reconnections from height \
                 {from_height} failed; last: {}",
                cause.message
            ));
            e.http_status = cause.http_status;
            return Err(e);
        }
        let pause = reconnect_pause(failures);
        notice(WatchNotice::Reconnecting {
            attempt: failures,
            from_height,
            pause,
            cause: &cause,
        })?;
        feed.pause(pause);
    }
}

fn open(feed: &mut dyn EventFeed, resume: &mut Resume) -> Result<Box<dyn Read + Send>, CliError> {
    let from_height = match resume.from_height {
        Some(h) => h,
        None => {
            let next = feed.height()?.saturating_add(1);
            resume.from_height = Some(next);
            next
        }
    };
    feed.open(from_height)
}

fn follow(
    feed: &mut dyn EventFeed,
    mut stream: Box<dyn Read + Send>,
    options: &WatchOptions,
    resume: &mut Resume,
    handed_out: &mut u64,
    notice: &mut dyn FnMut(WatchNotice<'_>) -> Result<(), CliError>,
) -> Result<StreamEnd, CliError> {
    let mut parser = SseParser::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut progressed = false;
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => {
                return Ok(StreamEnd::Dropped {
                    cause: CliError::unavailable("the node closed the event stream"),
                    progressed,
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Ok(StreamEnd::Dropped {
                    cause: CliError::unavailable(format!("event stream broke: {e}")),
                    progressed,
                })
            }
        };
        let items = parser.feed(&chunk[..n]).map_err(|e| {
            CliError::unavailable(format!("node sent a malformed event stream: {e}"))
        })?;
        for item in items {
            progressed = true;
            let frame = match item {
                SseItem::Frame(frame) if frame.event == "document" => frame,
                // Keep-alives and events of other kinds.
                SseItem::Frame(_) | SseItem::Comment(_) => continue,
            };
            let event: DocumentEvent = serde_json::from_str(&frame.data).map_err(|e| {
                CliError::unavailable(format!(
                    "node sent a document event that does not follow the API: {e}"
                ))
            })?;
            if resume.already_handled(&event) {
                continue;
            }
            notice(WatchNotice::Document(&event))?;
            resume.handled(&event);
            *handed_out += 1;
            if options.acknowledge {
                acknowledge(feed, &event, notice)?;
            }
            if options.count == Some(*handed_out) {
                return Ok(StreamEnd::Done);
            }
        }
    }
}

/// Acknowledges one document: retried while the node is unavailable (a duplicate is
/// refused by the node, so a retry never records twice); a refusal other than "denied"
/// is reported and the watch goes on.
fn acknowledge(
    feed: &mut dyn EventFeed,
    event: &DocumentEvent,
    notice: &mut dyn FnMut(WatchNotice<'_>) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match feed.acknowledge(&event.id, event.version) {
            Ok(ack) => return notice(WatchNotice::Acknowledged(&ack)),
            Err(e) if e.failure == Failure::Unavailable && attempt < ACK_ATTEMPTS => {
                feed.pause(reconnect_pause(attempt));
            }
            Err(e) if e.failure == Failure::Unavailable => {
                return Err(CliError::unavailable(format!(
                    "document {} version {} was handed out but could not be acknowledged \
                     after {ACK_ATTEMPTS} attempts: {}",
                    event.id, event.version, e.message
                )))
            }
            Err(e) if e.failure == Failure::Denied => return Err(e),
            Err(e) => return notice(WatchNotice::NotAcknowledged(event, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// One scripted connection: either a refusal to open, or chunks then an end.
    enum Connection {
        Refused(CliError),
        Stream {
            chunks: Vec<Vec<u8>>,
            /// `None`: a clean end of stream; `Some`: a read error.
            end: Option<std::io::ErrorKind>,
        },
    }

    struct ScriptedStream {
        chunks: VecDeque<Vec<u8>>,
        end: Option<std::io::ErrorKind>,
    }

    impl Read for ScriptedStream {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.chunks.pop_front() {
                Some(chunk) => {
                    assert!(chunk.len() <= buf.len());
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    Ok(chunk.len())
                }
                None => match self.end {
                    None => Ok(0),
                    Some(kind) => Err(std::io::Error::new(kind, "connection reset")),
                },
            }
        }
    }

    #[derive(Default)]
    struct FakeFeed {
        height: u64,
        connections: VecDeque<Connection>,
        opened_from: Vec<u64>,
        acks: Vec<(String, u32)>,
        ack_answers: VecDeque<Result<(), CliError>>,
        pauses: Vec<Duration>,
    }

    impl EventFeed for FakeFeed {
        fn height(&mut self) -> Result<u64, CliError> {
            Ok(self.height)
        }
        fn open(&mut self, from_height: u64) -> Result<Box<dyn Read + Send>, CliError> {
            self.opened_from.push(from_height);
            match self.connections.pop_front().unwrap_or(Connection::Refused(
                CliError::unavailable("no more scripted connections"),
            )) {
                Connection::Refused(e) => Err(e),
                Connection::Stream { chunks, end } => Ok(Box::new(ScriptedStream {
                    chunks: chunks.into(),
                    end,
                })),
            }
        }
        fn acknowledge(&mut self, id: &str, version: u32) -> Result<Acknowledged, CliError> {
            self.acks.push((id.to_string(), version));
            self.ack_answers.pop_front().unwrap_or(Ok(()))?;
            Ok(Acknowledged {
                id: id.to_string(),
                version,
                administration: "XB".into(),
                height: 99,
            })
        }
        fn pause(&mut self, pause: Duration) {
            self.pauses.push(pause);
        }
    }

    fn frame(id: &str, version: u32, height: u64) -> Vec<u8> {
        let data = serde_json::json!({
            "id": id, "version": version, "kind": "export-declaration", "issuer": "XA",
            "agreement": null, "height": height, "time_ms": 1_700_000_000_000u64,
            "status": "active"
        });
        format!("event: document\nid: {height}\ndata: {data}\n\n").into_bytes()
    }

    fn stream(chunks: Vec<Vec<u8>>, end: Option<std::io::ErrorKind>) -> Connection {
        Connection::Stream { chunks, end }
    }

    /// `(id, version)` of a document handed out.
    type Handed = Vec<(String, u32)>;

    /// Runs the watch, returning its result, the documents handed out and the refused
    /// acknowledgements.
    fn run(
        feed: &mut FakeFeed,
        options: &WatchOptions,
    ) -> (Result<u64, CliError>, Handed, Vec<String>) {
        let mut handed = Vec::new();
        let mut refused = Vec::new();
        let result = watch(feed, options, &mut |n| {
            match n {
                WatchNotice::Document(e) => handed.push((e.id.clone(), e.version)),
                WatchNotice::NotAcknowledged(e, err) => {
                    refused.push(format!("{}: {}", e.id, err.message))
                }
                WatchNotice::Acknowledged(_) | WatchNotice::Reconnecting { .. } => {}
            }
            Ok(())
        });
        (result, handed, refused)
    }

    fn ids(list: &[(&str, u32)]) -> Handed {
        list.iter().map(|(i, v)| (i.to_string(), *v)).collect()
    }

    #[test]
    fn a_dropped_stream_resumes_at_the_last_height_without_repeats() {
        // Block 5 holds a and b; the stream drops after a. The node sends a again when
        // asked from 5: it must be skipped, b and c handed out.
        let mut feed = FakeFeed {
            height: 4,
            connections: vec![
                stream(
                    vec![b": keep-alive\n\n".to_vec(), frame("a", 1, 5)],
                    Some(std::io::ErrorKind::ConnectionReset),
                ),
                stream(
                    vec![frame("a", 1, 5), frame("b", 1, 5), frame("c", 2, 6)],
                    None,
                ),
            ]
            .into(),
            ..FakeFeed::default()
        };
        let options = WatchOptions {
            acknowledge: true,
            count: Some(3),
            ..WatchOptions::default()
        };
        let (result, handed, _) = run(&mut feed, &options);
        assert_eq!(result.unwrap(), 3);
        assert_eq!(handed, ids(&[("a", 1), ("b", 1), ("c", 2)]));
        assert_eq!(
            feed.acks, handed,
            "each handed-out document acknowledged once"
        );
        assert_eq!(feed.opened_from, vec![5, 5]);
        assert_eq!(feed.pauses, vec![reconnect_pause(1)]);
    }

    #[test]
    fn a_frame_split_across_reads_is_handed_out_once() {
        let whole = frame("a", 1, 7);
        let (head, tail) = whole.split_at(whole.len() / 2);
        let mut feed = FakeFeed {
            connections: vec![stream(vec![head.to_vec(), tail.to_vec()], None)].into(),
            ..FakeFeed::default()
        };
        let options = WatchOptions {
            from_height: Some(7),
            acknowledge: false,
            count: Some(1),
        };
        let (result, handed, _) = run(&mut feed, &options);
        assert_eq!(result.unwrap(), 1);
        assert_eq!(handed, ids(&[("a", 1)]));
        assert!(feed.acks.is_empty(), "--no-ack acknowledges nothing");
        assert_eq!(feed.opened_from, vec![7]);
    }

    #[test]
    fn reconnections_are_bounded_then_exit_5() {
        let mut feed = FakeFeed {
            height: 10,
            ..FakeFeed::default()
        };
        // No scripted connection: every open is refused as unavailable.
        let (result, handed, _) = run(
            &mut feed,
            &WatchOptions {
                acknowledge: true,
                ..WatchOptions::default()
            },
        );
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(e.message.contains("reconnections"), "{}", e.message);
        assert!(handed.is_empty());
        assert_eq!(feed.opened_from.len() as u32, MAX_RECONNECT_ATTEMPTS + 1);
        assert!(
            feed.opened_from.iter().all(|h| *h == 11),
            "{:?}",
            feed.opened_from
        );
        let expected: Vec<Duration> = (1..=MAX_RECONNECT_ATTEMPTS).map(reconnect_pause).collect();
        assert_eq!(feed.pauses, expected);
        assert_eq!(
            *feed.pauses.last().unwrap(),
            Duration::from_millis(RECONNECT_MAX_PAUSE_MS)
        );
    }

    #[test]
    fn a_stream_that_delivers_resets_the_reconnection_count() {
        let mut connections: VecDeque<Connection> = VecDeque::new();
        // More drops in all than the bound, but each stream delivers a document.
        for h in 0..(MAX_RECONNECT_ATTEMPTS as u64 + 3) {
            connections.push_back(stream(vec![frame(&format!("d{h}"), 1, 20 + h)], None));
        }
        let mut feed = FakeFeed {
            connections,
            ..FakeFeed::default()
        };
        let count = MAX_RECONNECT_ATTEMPTS as u64 + 3;
        let (result, handed, _) = run(
            &mut feed,
            &WatchOptions {
                from_height: Some(20),
                acknowledge: false,
                count: Some(count),
            },
        );
        assert_eq!(result.unwrap(), count);
        assert_eq!(handed.len() as u64, count);
        assert!(feed.pauses.iter().all(|p| *p == reconnect_pause(1)));
    }

    #[test]
    fn refusals_end_the_watch_with_their_own_exit_code() {
        for (status, exit) in [(401, 3), (403, 3), (400, 2), (404, 4)] {
            let mut feed = FakeFeed {
                connections: vec![Connection::Refused(CliError::from_http(status, b""))].into(),
                ..FakeFeed::default()
            };
            let (result, _, _) = run(&mut feed, &WatchOptions::default());
            assert_eq!(result.unwrap_err().exit_code(), exit, "HTTP {status}");
            assert_eq!(feed.opened_from.len(), 1, "HTTP {status} is not retried");
        }
    }

    #[test]
    fn a_refused_acknowledgement_is_reported_and_the_watch_goes_on() {
        let mut feed = FakeFeed {
            connections: vec![stream(vec![frame("a", 1, 3), frame("b", 1, 4)], None)].into(),
            ack_answers: vec![Err(CliError::from_http(
                400,
                br#"{"error":{"code":"bad_input","message":"already acknowledged"}}"#,
            ))]
            .into(),
            ..FakeFeed::default()
        };
        let (result, handed, refused) = run(
            &mut feed,
            &WatchOptions {
                from_height: Some(3),
                acknowledge: true,
                count: Some(2),
            },
        );
        assert_eq!(result.unwrap(), 2);
        assert_eq!(handed, ids(&[("a", 1), ("b", 1)]));
        assert_eq!(refused.len(), 1);
        assert!(refused[0].contains("already acknowledged"), "{refused:?}");
    }

    #[test]
    fn an_unavailable_node_gets_bounded_acknowledgement_retries() {
        let unavailable = || Err(CliError::from_http(503, b""));
        let mut feed = FakeFeed {
            connections: vec![stream(vec![frame("a", 1, 3)], None)].into(),
            ack_answers: vec![unavailable(), unavailable()].into(),
            ..FakeFeed::default()
        };
        let options = WatchOptions {
            from_height: Some(3),
            acknowledge: true,
            count: Some(1),
        };
        let (result, _, _) = run(&mut feed, &options);
        assert_eq!(result.unwrap(), 1);
        assert_eq!(feed.acks.len(), 3);
        let mut feed = FakeFeed {
            connections: vec![stream(vec![frame("a", 1, 3)], None)].into(),
            ack_answers: (0..ACK_ATTEMPTS).map(|_| unavailable()).collect(),
            ..FakeFeed::default()
        };
        let (result, handed, _) = run(&mut feed, &options);
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(
            e.message.contains("could not be acknowledged"),
            "{}",
            e.message
        );
        assert_eq!(handed.len(), 1, "handed out before the acknowledgement");
        assert_eq!(feed.acks.len() as u32, ACK_ATTEMPTS);
    }

    #[test]
    fn a_malformed_event_is_an_error_not_a_silent_skip() {
        let mut feed = FakeFeed {
            connections: vec![stream(
                vec![b"event: document\ndata: {\"id\":\"a\"}\n\n".to_vec()],
                None,
            )]
            .into(),
            ..FakeFeed::default()
        };
        let (result, _, _) = run(
            &mut feed,
            &WatchOptions {
                from_height: Some(1),
                ..WatchOptions::default()
            },
        );
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 5);
        assert!(
            e.message.contains("does not follow the API"),
            "{}",
            e.message
        );
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        assert_eq!(reconnect_pause(1), Duration::from_millis(500));
        assert_eq!(reconnect_pause(2), Duration::from_millis(1_000));
        assert_eq!(reconnect_pause(4), Duration::from_millis(4_000));
        assert_eq!(reconnect_pause(5), Duration::from_millis(8_000));
        assert_eq!(reconnect_pause(u32::MAX), Duration::from_millis(8_000));
    }
}
