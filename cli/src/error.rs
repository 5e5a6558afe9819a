//! Failures of a `carnet` command and the exit code each one gets.
//!
//! The exit codes are a contract with scripts (docs/interfaces.md): 0 ok, 2 bad input,
//! 3 denied, 4 not found or erased (HTTP 404, 410), 5 node unavailable or a wait that
//! timed out. Must never map a node's refusal to "ok" or
//! a local mistake to "unavailable".

use std::fmt;

/// The class of a failure; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The request or a local file is malformed (HTTP 400, 413, other 4xx; local checks).
    BadInput,
    /// The officer is unknown, revoked, or not entitled (HTTP 401, 403).
    Denied,
    /// The thing asked for does not exist (HTTP 404), or no longer can be read because
    /// it was erased (HTTP 410).
    NotFound,
    /// The node cannot be reached or cannot answer now (connect failure, 503, 5xx).
    Unavailable,
}

impl Failure {
    /// Process exit code for this failure.
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::BadInput => 2,
            Failure::Denied => 3,
            Failure::NotFound => 4,
            Failure::Unavailable => 5,
        }
    }

    /// The error code used when the node did not give one.
    pub fn default_code(self) -> &'static str {
        match self {
            Failure::BadInput => "bad_input",
            Failure::Denied => "unauthorized",
            Failure::NotFound => "not_found",
            Failure::Unavailable => "unavailable",
        }
    }

    /// The failure an HTTP status stands for; `None` for success.
    pub fn from_http_status(status: u16) -> Option<Failure> {
        match status {
            200..=299 => None,
            401 | 403 => Some(Failure::Denied),
            404 | 410 => Some(Failure::NotFound),
            408 | 429 | 500..=599 => Some(Failure::Unavailable),
            _ => Some(Failure::BadInput),
        }
    }
}

/// A failed command: class, machine-readable code, one-line message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CliError {
    pub failure: Failure,
    /// `bad_input`, `unauthorized`, `forbidden`, `not_found`, `erased`, `too_large`,
    /// `unavailable`, `timeout`.
    pub code: String,
    pub message: String,
    /// The HTTP status the node answered with, when the failure came from the node.
    pub http_status: Option<u16>,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl CliError {
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        CliError {
            failure,
            code: failure.default_code().to_string(),
            message: message.into(),
            http_status: None,
        }
    }

    /// A local validation failure (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Failure::BadInput, message)
    }

    /// The node could not be reached or answered garbage (exit 5).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Failure::Unavailable, message)
    }

    /// A wait that ran out of time before the node reached the awaited state (exit 5,
    /// code `timeout`).
    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(Failure::Unavailable, message);
        e.code = "timeout".to_string();
        e
    }

    /// A non-2xx answer from the node: uses the node's `{"error":{"code","message"}}`
    /// when present, else the status line and the start of the body.
    pub fn from_http(status: u16, body: &[u8]) -> Self {
        let failure = Failure::from_http_status(status).unwrap_or(Failure::Unavailable);
        let parsed: Option<(String, String)> = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some((
                    e.get("code")?.as_str()?.to_string(),
                    e.get("message")?.as_str()?.to_string(),
                ))
            });
        let (code, message) = match parsed {
            Some((code, message)) => (code, format!("node refused (HTTP {status}): {message}")),
            None => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let text: String = text.chars().take(200).collect();
                let code = match status {
                    403 => "forbidden".to_string(),
                    410 => "erased".to_string(),
                    413 => "too_large".to_string(),
                    _ => failure.default_code().to_string(),
                };
                let message = if text.is_empty() {
                    format!("node answered HTTP {status}")
                } else {
                    format!("node answered HTTP {status}: {text}")
                };
                (code, message)
            }
        };
        CliError {
            failure,
            code,
            message,
            http_status: Some(status),
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.failure.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_documented_exit_codes() {
        let cases = [
            (400, 2),
            (413, 2),
            (401, 3),
            (403, 3),
            (404, 4),
            (410, 4),
            (503, 5),
            (500, 5),
            (502, 5),
        ];
        for (status, exit) in cases {
            assert_eq!(
                CliError::from_http(status, b"").exit_code(),
                exit,
                "HTTP {status}"
            );
        }
        assert_eq!(Failure::from_http_status(200), None);
    }

    #[test]
    fn node_error_body_gives_code_and_message() {
        let body = br#"{"error":{"code":"forbidden","message":"XC is not a recipient"}}"#;
        let e = CliError::from_http(403, body);
        assert_eq!(e.code, "forbidden");
        assert!(e.message.contains("XC is not a recipient"), "{}", e.message);
        assert_eq!(e.http_status, Some(403));
    }

    #[test]
    fn erased_document_is_exit_4_with_the_node_message() {
        let body = br#"{"error":{"code":"erased","message":"document 0a1b is erased"}}"#;
        let e = CliError::from_http(410, body);
        assert_eq!(e.exit_code(), 4);
        assert_eq!(e.failure, Failure::NotFound);
        assert_eq!(e.code, "erased");
        assert!(
            e.message.contains("document 0a1b is erased"),
            "{}",
            e.message
        );
        assert_eq!(e.http_status, Some(410));
        // Without a JSON body the code still says what happened.
        let bare = CliError::from_http(410, b"");
        assert_eq!(bare.code, "erased");
        assert_eq!(bare.exit_code(), 4);
    }
}
