//! A parser for server-sent events (`text/event-stream`, the HTML "event stream"
//! format) as the node serves them at `GET /v1/events`.
//!
//! Bytes arrive in arbitrary chunks; [`SseParser::feed`] keeps the unfinished line and
//! frame between calls. A line ends at `\n`, `\r\n` or `\r` (a `\r\n` split across two
//! chunks counts once). `event:`, `id:` and `data:` lines fill a frame (several `data:`
//! lines join with `\n`), a blank line ends it, a line starting with `:` is a comment
//! (the node's keep-alives). A frame without data is dropped, as the format says.
//!
//! Must never: grow without bound on a stream that sends no line end (lines and frames
//! have byte limits), or hand out a frame before its blank line.

/// Longest line accepted, bytes (a document event is a few hundred).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Largest frame accepted (all its `data:` lines together), bytes.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// One complete event: `event` is `message` when the frame named none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseFrame {
    pub event: String,
    /// The frame's `id:` (the node sends the block height), if it had one.
    pub id: Option<String>,
    pub data: String,
}

/// What one or more chunks produced, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    Frame(SseFrame),
    /// A `:` line, its text without the colon and one leading space.
    Comment(String),
}

/// The stream broke the format's limits; the parser must not be fed again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("event stream line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("event stream frame larger than {MAX_FRAME_BYTES} bytes")]
    FrameTooLarge,
}

/// Incremental parser state for one stream (one connection).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended with `\r`; a `\n` first in the next belongs to it.
    after_cr: bool,
    /// No line finished yet: a leading byte order mark is dropped.
    first_line: bool,
    event: Option<String>,
    id: Option<String>,
    data: Vec<String>,
    data_bytes: usize,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser {
            first_line: true,
            ..SseParser::default()
        }
    }

    /// Consumes one chunk and returns every item it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, SseError> {
        let mut items = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(item) = self.line_done(&line)? {
                        items.push(item);
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(items)
    }

    fn line_done(&mut self, bytes: &[u8]) -> Result<Option<SseItem>, SseError> {
        let text = String::from_utf8_lossy(bytes);
        let mut line: &str = &text;
        if self.first_line {
            self.first_line = false;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            return Ok(self.dispatch().map(SseItem::Frame));
        }
        if let Some(comment) = line.strip_prefix(':') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            return Ok(Some(SseItem::Comment(comment.to_string())));
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                self.data_bytes += value.len() + 1;
                if self.data_bytes > MAX_FRAME_BYTES {
                    return Err(SseError::FrameTooLarge);
                }
                self.data.push(value.to_string());
            }
            // The format ignores an id containing NUL.
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            // `retry:` and unknown fields are ignored, as the format says.
            _ => {}
        }
        Ok(None)
    }

    /// Ends the current frame: a frame only if it carried data.
    fn dispatch(&mut self) -> Option<SseFrame> {
        let event = self.event.take();
        let id = self.id.take();
        let data = std::mem::take(&mut self.data);
        self.data_bytes = 0;
        if data.is_empty() {
            return None;
        }
        Some(SseFrame {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".to_string()),
            id,
            data: data.join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: &str, id: Option<&str>, data: &str) -> SseItem {
        SseItem::Frame(SseFrame {
            event: event.into(),
            id: id.map(str::to_string),
            data: data.into(),
        })
    }

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut parser = SseParser::new();
        chunks
            .iter()
            .flat_map(|c| parser.feed(c).unwrap())
            .collect()
    }

    const STREAM: &str = ": keep-alive\n\nevent: document\nid: 12\ndata: {\"id\":\"ab\"}\n\n\
                          event: document\nid: 13\ndata: {\"id\":\"cd\"}\n\n";

    #[test]
    fn frames_and_comments_come_out_in_order() {
        assert_eq!(
            parse_all(&[STREAM.as_bytes()]),
            vec![
                SseItem::Comment("keep-alive".into()),
                frame("document", Some("12"), "{\"id\":\"ab\"}"),
                frame("document", Some("13"), "{\"id\":\"cd\"}"),
            ]
        );
    }

    #[test]
    fn every_split_of_the_stream_gives_the_same_items() {
        let whole = parse_all(&[STREAM.as_bytes()]);
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                parse_all(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&one_by_one), whole);
    }

    #[test]
    fn a_frame_is_held_back_until_its_blank_line() {
        let mut parser = SseParser::new();
        assert!(parser
            .feed(b"event: document\nid: 7\ndata: {}\n")
            .unwrap()
            .is_empty());
        assert_eq!(
            parser.feed(b"\n").unwrap(),
            vec![frame("document", Some("7"), "{}")]
        );
    }

    #[test]
    fn multi_line_data_joins_with_newlines() {
        assert_eq!(
            parse_all(&[b"data: {\ndata:  \"a\": 1\ndata\ndata: }\n\n"]),
            vec![frame("message", None, "{\n \"a\": 1\n\n}")]
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_work_even_split_between_chunks() {
        let crlf = parse_all(&[b"event: document\r", b"\ndata: x\r\n\r", b"\n"]);
        assert_eq!(crlf, vec![frame("document", None, "x")]);
        let cr = parse_all(&[b"event: document\rdata: y\r\r"]);
        assert_eq!(cr, vec![frame("document", None, "y")]);
    }

    #[test]
    fn frames_without_data_and_unknown_fields_are_dropped() {
        assert_eq!(
            parse_all(&[b"event: document\nid: 3\n\nretry: 10\nfoo: bar\ndata: z\n\n"]),
            vec![frame("message", None, "z")]
        );
    }

    #[test]
    fn a_byte_order_mark_and_a_missing_space_are_tolerated() {
        assert_eq!(
            parse_all(&["\u{feff}event:document\ndata:{}\n\n".as_bytes()]),
            vec![frame("document", None, "{}")]
        );
    }

    #[test]
    fn endless_lines_and_frames_are_refused() {
        let mut parser = SseParser::new();
        let long = vec![b'a'; MAX_LINE_BYTES + 1];
        assert_eq!(parser.feed(&long), Err(SseError::LineTooLong));
        let mut parser = SseParser::new();
        let line = format!("data: {}\n", "b".repeat(MAX_LINE_BYTES - 10));
        let mut result = Ok(Vec::new());
        for _ in 0..(MAX_FRAME_BYTES / MAX_LINE_BYTES + 1) {
            result = parser.feed(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::FrameTooLarge));
    }
}
