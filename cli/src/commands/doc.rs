//! `carnet doc ...`: submitting, finding, reading, amending, cancelling, pre-filling and
//! erasing documents, and following an erasure's attestations.
//!
//! Must never: send a payload other than the file's exact text, write a payload anywhere
//! but where the officer asked, or write over an existing file.

use super::{
    check_id, check_text, check_ucr, parse_kind, parse_recipients, read_payload, refuse_existing,
    write_private_file,
};
use crate::api::{
    DecryptRequest, DocumentHistory, PrefillRequest, Prefilled, SubmissionUnderAgreement,
    VersionFiled,
};
use crate::client::{
    Decrypted, Document, DocumentStatus, Erased, ErasureRequest, NodeClient, Submission, Submitted,
};
use crate::error::CliError;
use carnet_contracts::execute::MAX_PURPOSE_BYTES;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest `--reason` or `--legal-basis` of an erasure, in bytes.
pub const MAX_ERASURE_TEXT_BYTES: usize = 4096;
/// Pause between two polls of `carnet doc status --wait-attestations`.
pub const ATTESTATION_POLL_MS: u64 = 500;

/// `carnet doc submit`: validates locally, submits, returns once the document is final.
/// With `agreement` the document is filed under that agreement; without, the node picks
/// the one active agreement covering the issuer, the recipients and the kind.
pub fn submit(
    client: &NodeClient,
    kind: &str,
    ucr: &str,
    to: &str,
    payload_file: &Path,
    agreement: Option<&str>,
) -> Result<Submitted, CliError> {
    let kind = parse_kind(kind)?;
    let ucr = check_ucr(ucr)?;
    let recipients = parse_recipients(to)?;
    let agreement = agreement
        .map(|a| super::check_ledger_id("agreement id", a))
        .transpose()?;
    let payload = read_payload(payload_file)?;
    let submission = Submission {
        kind: kind.as_str().to_string(),
        ucr,
        recipients,
        payload,
    };
    client.submit_under_agreement(&SubmissionUnderAgreement {
        submission: &submission,
        agreement,
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

/// What `carnet doc decrypt` asks for besides the document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecryptOptions<'a> {
    /// A version other than the latest.
    pub version: Option<u32>,
    /// Read under the access grant of this provided TFA request.
    pub request: Option<&'a str>,
    /// Write the payload here (mode 0600, never over an existing file).
    pub out: Option<&'a Path>,
}

/// The checked body of a decrypt: a purpose that says something, a version from 1, a
/// well-formed request id.
pub fn decrypt_request(
    purpose: &str,
    version: Option<u32>,
    request: Option<&str>,
) -> Result<DecryptRequest, CliError> {
    let purpose = check_text(
        "--purpose",
        "why the document is read",
        purpose,
        MAX_PURPOSE_BYTES,
    )?;
    if version == Some(0) {
        return Err(CliError::bad_input("--version counts from 1"));
    }
    let request = request
        .map(|r| super::check_ledger_id("request id", r))
        .transpose()?;
    Ok(DecryptRequest {
        purpose,
        version,
        request,
    })
}

/// `carnet doc decrypt ID --purpose TEXT [--version N] [--request RID] [--out FILE]`.
/// With `out`, writes the payload's exact bytes there (mode 0600, never over an
/// existing file). The node records the read on the ledger.
pub fn decrypt(
    client: &NodeClient,
    id: &str,
    purpose: &str,
    options: &DecryptOptions<'_>,
) -> Result<Decrypted, CliError> {
    let id = check_id(id)?;
    let request = decrypt_request(purpose, options.version, options.request)?;
    if let Some(out) = options.out {
        refuse_existing(out)?;
    }
    let decrypted = client.decrypt_with(&id, &request)?;
    if let Some(out) = options.out {
        write_private_file(out, decrypted.payload.as_bytes())?;
    }
    Ok(decrypted)
}

/// `carnet doc amend ID --file NEW.json`: files a new version (the previous one becomes
/// `amended`); recipients and agreement carry over.
pub fn amend(client: &NodeClient, id: &str, payload_file: &Path) -> Result<VersionFiled, CliError> {
    let id = check_id(id)?;
    let payload = read_payload(payload_file)?;
    client.amend(&id, &payload)
}

/// `carnet doc cancel ID --reason TEXT`: the latest version becomes `cancelled`.
pub fn cancel(client: &NodeClient, id: &str, reason: &str) -> Result<VersionFiled, CliError> {
    let id = check_id(id)?;
    let reason = check_text(
        "--reason",
        "why the document is cancelled",
        reason,
        MAX_PURPOSE_BYTES,
    )?;
    client.cancel(&id, &reason)
}

/// `carnet doc history ID`: every version, oldest first, and the cancellation.
pub fn history(client: &NodeClient, id: &str) -> Result<DocumentHistory, CliError> {
    client.history(&check_id(id)?)
}

/// `carnet doc prefill --from ID --kind KIND [--purpose P] [--out FILE]`: a payload of
/// `kind` pre-filled from the source document's elements that `kind` may carry. With
/// `out`, writes it as pretty JSON (mode 0600, never over an existing file).
pub fn prefill(
    client: &NodeClient,
    from: &str,
    kind: &str,
    purpose: Option<&str>,
    out: Option<&Path>,
) -> Result<Prefilled, CliError> {
    let from = check_id(from)?;
    let kind = parse_kind(kind)?;
    let purpose = purpose
        .map(|p| check_text("--purpose", "why the source is read", p, MAX_PURPOSE_BYTES))
        .transpose()?;
    if let Some(out) = out {
        refuse_existing(out)?;
    }
    let prefilled = client.prefill(
        &from,
        &PrefillRequest {
            kind: kind.as_str().to_string(),
            purpose,
        },
    )?;
    if let Some(out) = out {
        write_private_file(out, prefilled_text(&prefilled)?.as_bytes())?;
    }
    Ok(prefilled)
}

/// The pre-filled payload as pretty JSON with a final newline; the node must have sent
/// a JSON object.
pub fn prefilled_text(prefilled: &Prefilled) -> Result<String, CliError> {
    if !prefilled.payload.is_object() {
        return Err(CliError::unavailable(
            "node answered prefill with a payload that is not a JSON object",
        ));
    }
    let mut text = serde_json::to_string_pretty(&prefilled.payload)
        .map_err(|e| CliError::unavailable(format!("cannot encode the pre-filled payload: {e}")))?;
    text.push('\n');
    Ok(text)
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
    check_text(flag, what, text, MAX_ERASURE_TEXT_BYTES)
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

#[cfg(test)]
mod tests {
    use super::*;

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
            agreement: None,
            deliveries: None,
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
    fn decrypt_needs_a_purpose_and_takes_a_version_and_a_request() {
        let request = decrypt_request(" audit ", Some(2), Some(&"AB".repeat(16))).unwrap();
        assert_eq!(request.purpose, "audit");
        assert_eq!(request.version, Some(2));
        assert_eq!(request.request, Some("ab".repeat(16)));
        let e = decrypt_request(" ", None, None).unwrap_err();
        assert!(e.message.contains("--purpose"), "{}", e.message);
        assert_eq!(
            decrypt_request("p", Some(0), None).unwrap_err().exit_code(),
            2
        );
        let e = decrypt_request("p", None, Some("42")).unwrap_err();
        assert!(e.message.contains("request id"), "{}", e.message);
    }

    #[test]
    fn prefilled_payload_is_pretty_json_of_an_object() {
        let prefilled = Prefilled {
            from: "ab".repeat(16),
            kind: "import-declaration".into(),
            payload: serde_json::json!({"CommodityCode": "090111", "Quantity": 12}),
            carried: vec!["CommodityCode".into(), "Quantity".into()],
            dropped: vec!["ExporterName".into()],
        };
        assert_eq!(
            prefilled_text(&prefilled).unwrap(),
            "{\n  \"CommodityCode\": \"090111\",\n  \"Quantity\": 12\n}\n"
        );
        let mut broken = prefilled;
        broken.payload = serde_json::json!([1]);
        assert_eq!(prefilled_text(&broken).unwrap_err().exit_code(), 5);
    }
}
