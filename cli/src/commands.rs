//! What each `carnet` subcommand does: local validation first, then one call to the node.
//!
//! Functions here return data and never print, so the binary decides the format and the
//! testnet tool and tests can call them directly. Local validation failures (unreadable
//! file, payload not a JSON object, unknown kind, malformed administration code) are
//! [`Failure::BadInput`](crate::error::Failure::BadInput) and reach no node.
//!
//! Must never: send a payload other than the file's exact text, or write a decrypted
//! payload anywhere but where the officer asked.

use crate::client::{
    Decrypted, Document, DocumentStatus, Erased, ErasureRequest, NodeClient, Status, Submission,
    Submitted,
};
use crate::error::CliError;
use crate::profile;
use carnet_contracts::{AdminCode, DocumentId, DocumentKind};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest payload file read (the node refuses bodies over 1 MiB anyway).
pub const MAX_PAYLOAD_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest `--reason` or `--legal-basis` of an erasure, in bytes.
pub const MAX_ERASURE_TEXT_BYTES: usize = 4096;
/// Pause between two polls of `carnet doc status --wait-attestations`.
pub const ATTESTATION_POLL_MS: u64 = 500;

/// Result of `carnet keys generate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyGenerated {
    pub public_key: String,
    pub file: PathBuf,
}

/// `carnet keys generate --out FILE`: a fresh ed25519 officer key, mode 0600.
pub fn generate_key(out: &Path) -> Result<KeyGenerated, CliError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    profile::write_signing_key(out, &key)?;
    Ok(KeyGenerated {
        public_key: hex::encode(key.verifying_key().as_bytes()),
        file: out.to_path_buf(),
    })
}

/// `carnet status`.
pub fn status(client: &NodeClient) -> Result<Status, CliError> {
    client.status()
}

/// Checks a document kind against the kinds Carnet knows.
pub fn parse_kind(kind: &str) -> Result<DocumentKind, CliError> {
    DocumentKind::parse(kind.trim()).map_err(|e| CliError::bad_input(contract_message(&e)))
}

/// Splits `XB,XC` into administration codes; each must be two upper-case letters.
pub fn parse_recipients(to: &str) -> Result<Vec<String>, CliError> {
    let mut codes = Vec::new();
    for part in to.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let code = AdminCode::parse(part).map_err(|e| CliError::bad_input(contract_message(&e)))?;
        if !codes.contains(&code.0) {
            codes.push(code.0);
        }
    }
    if codes.is_empty() {
        return Err(CliError::bad_input(
            "--to names no administration (e.g. --to XB or --to XB,XC)",
        ));
    }
    Ok(codes)
}

/// Reads a payload file (`-` is stdin) and checks it is a JSON object. Returns its exact text.
pub fn read_payload(path: &Path) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_PAYLOAD_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_PAYLOAD_FILE_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::bad_input(format!("cannot read payload {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_PAYLOAD_FILE_BYTES {
        return Err(CliError::bad_input(format!(
            "payload {} is larger than {MAX_PAYLOAD_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::bad_input(format!("payload {} is not UTF-8 text", path.display()))
    })?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        Ok(_) => Err(CliError::bad_input(format!(
            "payload {} is JSON but not a JSON object",
            path.display()
        ))),
        Err(e) => Err(CliError::bad_input(format!(
            "payload {} is not JSON: {e}",
            path.display()
        ))),
    }
}

/// `carnet doc submit`: validates locally, submits, returns once the document is final.
pub fn submit(
    client: &NodeClient,
    kind: &str,
    ucr: &str,
    to: &str,
    payload_file: &Path,
) -> Result<Submitted, CliError> {
    let kind = parse_kind(kind)?;
    let ucr = check_ucr(ucr)?;
    let recipients = parse_recipients(to)?;
    let payload = read_payload(payload_file)?;
    client.submit(&Submission {
        kind: kind.as_str().to_string(),
        ucr,
        recipients,
        payload,
    })
}

/// `carnet doc show ID`.
pub fn show(client: &NodeClient, id: &str) -> Result<Document, CliError> {
    client.document(&check_id(id)?)
}

/// `carnet doc find --ucr UCR`.
pub fn find(client: &NodeClient, ucr: &str) -> Result<Vec<Document>, CliError> {
    client.find_by_ucr(&check_ucr(ucr)?)
}

/// `carnet doc decrypt ID --purpose TEXT [--out FILE]`. With `out`, writes the payload's
/// exact bytes there (mode 0600, never over an existing file).
pub fn decrypt(
    client: &NodeClient,
    id: &str,
    purpose: &str,
    out: Option<&Path>,
) -> Result<Decrypted, CliError> {
    let id = check_id(id)?;
    let purpose = purpose.trim();
    if purpose.is_empty() {
        return Err(CliError::bad_input(
            "--purpose must say why the document is read (it is recorded on the ledger)",
        ));
    }
    if let Some(out) = out {
        if out.exists() {
            return Err(CliError::bad_input(format!(
                "{} already exists; not overwriting it",
                out.display()
            )));
        }
    }
    let decrypted = client.decrypt(&id, purpose)?;
    if let Some(out) = out {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|e| CliError::bad_input(format!("cannot create {}: {e}", out.display())))?;
        file.write_all(decrypted.payload.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| CliError::bad_input(format!("cannot write {}: {e}", out.display())))?;
    }
    Ok(decrypted)
}

/// `carnet doc erase ID --reason TEXT --legal-basis TEXT`: erases a document your
/// administration issued; returns once the erasure is final. The node refuses (400) an
/// already erased document, (403) a non-issuer or an officer without `supervisor` or
/// `admin`, (404) an unknown document.
pub fn erase(
    client: &NodeClient,
    id: &str,
    reason: &str,
    legal_basis: &str,
) -> Result<Erased, CliError> {
    let (id, request) = erasure_request(id, reason, legal_basis)?;
    client.erase(&id, &request)
}

/// Checks an erasure locally: a well-formed id, a reason and a legal basis that say
/// something (both are recorded on the ledger).
pub fn erasure_request(
    id: &str,
    reason: &str,
    legal_basis: &str,
) -> Result<(String, ErasureRequest), CliError> {
    let id = check_id(id)?;
    let reason = check_erasure_text("--reason", "why the document is erased", reason)?;
    let legal_basis = check_erasure_text(
        "--legal-basis",
        "the law that allows the erasure",
        legal_basis,
    )?;
    Ok((
        id,
        ErasureRequest {
            reason,
            legal_basis,
        },
    ))
}

fn check_erasure_text(flag: &str, what: &str, text: &str) -> Result<String, CliError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CliError::bad_input(format!(
            "{flag} must say {what} (it is recorded on the ledger)"
        )));
    }
    if text.len() > MAX_ERASURE_TEXT_BYTES {
        return Err(CliError::bad_input(format!(
            "{flag} is longer than {MAX_ERASURE_TEXT_BYTES} bytes"
        )));
    }
    Ok(text.to_string())
}

/// `carnet doc status ID`: the document's status, destruction attestations and the
/// administrations whose nodes have not attested yet.
pub fn document_status(client: &NodeClient, id: &str) -> Result<DocumentStatus, CliError> {
    client.document_status(&check_id(id)?)
}

/// `carnet doc status ID --wait-attestations SECS`: asks until no node is pending, for
/// at most `wait`. Running out of time is [`CliError::timeout`] (exit 5), naming the
/// administrations still pending.
pub fn wait_for_attestations(
    client: &NodeClient,
    id: &str,
    wait: Duration,
) -> Result<DocumentStatus, CliError> {
    let id = check_id(id)?;
    poll_attestations(
        &id,
        wait,
        Duration::from_millis(ATTESTATION_POLL_MS),
        || client.document_status(&id),
        std::thread::sleep,
    )
}

/// The polling loop of [`wait_for_attestations`], apart from the node and the clock so
/// that it can be tested: `fetch` asks once, `sleep` pauses. Always asks at least once;
/// a failed ask ends the wait with that failure.
pub fn poll_attestations(
    id: &str,
    wait: Duration,
    interval: Duration,
    mut fetch: impl FnMut() -> Result<DocumentStatus, CliError>,
    mut sleep: impl FnMut(Duration),
) -> Result<DocumentStatus, CliError> {
    let started = Instant::now();
    // Counted as well as timed, so a test's `sleep` that does not sleep still ends.
    let mut slept = Duration::ZERO;
    loop {
        let status = fetch()?;
        if status.pending.is_empty() {
            return Ok(status);
        }
        let elapsed = started.elapsed().max(slept);
        if elapsed >= wait {
            return Err(CliError::timeout(format!(
                "document {id}: after {}s, {} of {} node(s) have not attested the erasure yet: {}",
                wait.as_secs(),
                status.pending.len(),
                status.pending.len() + status.attestations.len(),
                status.pending.join(",")
            )));
        }
        let pause = interval.min(wait - elapsed);
        sleep(pause);
        slept += pause;
    }
}

fn check_ucr(ucr: &str) -> Result<String, CliError> {
    let ucr = ucr.trim();
    if ucr.is_empty() {
        return Err(CliError::bad_input("--ucr is empty"));
    }
    if ucr.len() > 256 || ucr.chars().any(char::is_control) {
        return Err(CliError::bad_input(
            "--ucr must be at most 256 printable characters",
        ));
    }
    Ok(ucr.to_string())
}

fn check_id(id: &str) -> Result<String, CliError> {
    let id = id.trim();
    DocumentId::from_hex(id).map_err(|e| CliError::bad_input(contract_message(&e)))?;
    Ok(id.to_ascii_lowercase())
}

/// The message of a contracts error without its class prefix.
fn contract_message(e: &carnet_contracts::ContractError) -> String {
    let text = e.to_string();
    text.strip_prefix("bad input: ")
        .unwrap_or(&text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_and_bad_codes_are_bad_input() {
        assert_eq!(
            parse_kind("export-declaration").unwrap(),
            DocumentKind::ExportDeclaration
        );
        assert_eq!(parse_kind("love-letter").unwrap_err().exit_code(), 2);
        assert_eq!(parse_recipients("XB, XC,XB").unwrap(), vec!["XB", "XC"]);
        assert_eq!(parse_recipients("xb").unwrap_err().exit_code(), 2);
        assert_eq!(parse_recipients(" , ").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn payload_must_be_a_readable_json_object_kept_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("carnet-payload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        let text = "{ \"ucr\" : \"23XA1\",\n  \"lines\": [1, 2] }\n";
        std::fs::write(&good, text).unwrap();
        assert_eq!(read_payload(&good).unwrap(), text);
        let not_json = dir.join("bad.json");
        std::fs::write(&not_json, "consignment of bananas").unwrap();
        assert_eq!(read_payload(&not_json).unwrap_err().exit_code(), 2);
        let array = dir.join("array.json");
        std::fs::write(&array, "[1,2]").unwrap();
        assert_eq!(read_payload(&array).unwrap_err().exit_code(), 2);
        assert_eq!(
            read_payload(&dir.join("missing.json"))
                .unwrap_err()
                .exit_code(),
            2
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn status(pending: &[&str], attested: &[&str]) -> DocumentStatus {
        DocumentStatus {
            id: "ab".repeat(16),
            status: "erased".into(),
            height: 7,
            attestations: attested
                .iter()
                .map(|a| crate::client::Attestation {
                    administration: a.to_string(),
                    height: 8,
                })
                .collect(),
            pending: pending.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn waiting_for_attestations_stops_when_none_is_pending() {
        let mut answers = vec![
            status(&["XB", "XC"], &["XA"]),
            status(&["XC"], &["XA", "XB"]),
            status(&[], &["XA", "XB", "XC"]),
        ]
        .into_iter();
        let mut asked = 0;
        let done = poll_attestations(
            "ab",
            Duration::from_secs(10),
            Duration::from_millis(500),
            || {
                asked += 1;
                Ok(answers.next().unwrap())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(asked, 3);
        assert!(done.pending.is_empty());
        assert_eq!(done.attestations.len(), 3);
    }

    #[test]
    fn waiting_for_attestations_times_out_with_exit_5_naming_the_pending() {
        let mut slept = Duration::ZERO;
        let err = poll_attestations(
            "ab",
            Duration::from_secs(2),
            Duration::from_millis(500),
            || Ok(status(&["XC", "XD"], &["XA", "XB"])),
            |d| slept += d,
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert_eq!(err.code, "timeout");
        assert!(err.message.contains("XC,XD"), "{}", err.message);
        assert!(err.message.contains("2 of 4"), "{}", err.message);
        assert_eq!(slept, Duration::from_secs(2));
        // Zero seconds: one look, no wait.
        let err = poll_attestations(
            "ab",
            Duration::ZERO,
            Duration::from_millis(500),
            || Ok(status(&["XB"], &[])),
            |_| panic!("must not sleep"),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 5);
        // A refusal ends the wait with its own exit code.
        let err = poll_attestations(
            "ab",
            Duration::from_secs(2),
            Duration::from_millis(500),
            || Err(CliError::from_http(404, b"")),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn erasure_needs_an_id_a_reason_and_a_legal_basis() {
        let id = "AB".repeat(16);
        let (checked, request) =
            erasure_request(&id, " data subject request ", "GDPR Art. 17").unwrap();
        assert_eq!(checked, "ab".repeat(16));
        assert_eq!(request.reason, "data subject request");
        assert_eq!(request.legal_basis, "GDPR Art. 17");
        assert_eq!(erasure_request("zz", "r", "b").unwrap_err().exit_code(), 2);
        let e = erasure_request(&id, "  ", "b").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("--reason"), "{}", e.message);
        let e = erasure_request(&id, "r", "").unwrap_err();
        assert!(e.message.contains("--legal-basis"), "{}", e.message);
        let long = "x".repeat(MAX_ERASURE_TEXT_BYTES + 1);
        assert_eq!(erasure_request(&id, &long, "b").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn malformed_document_id_is_bad_input() {
        assert_eq!(check_id("zz").unwrap_err().exit_code(), 2);
        assert!(check_id(&"AB".repeat(16)).is_ok());
    }
}
