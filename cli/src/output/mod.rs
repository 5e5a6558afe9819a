//! How `carnet` prints: `table` for officers at a terminal, `json` for scripts.
//!
//! JSON field names are a contract (`id`, `version`, `height`, `status`, `kind`, ...):
//! JSON output is the node's answer as the API names it. Tables are for people: aligned
//! `key  value` lines for one record, columns for lists, times in UTC. The views of the
//! customs contracts (agreements, requests, officers, ...) are in [`customs`].
//! Errors print one line `error: ...` on stderr and, in JSON mode, also
//! `{"error":{"code","message"}}` on stdout. A decrypted or pre-filled payload goes to
//! stdout alone in `table` mode (so it can be redirected to a file); in `json` mode it
//! is a string field of the node's answer. Must never print a secret key, and never
//! print anything but the payload itself when a payload goes to stdout in `table` mode.

mod customs;

pub use customs::*;

use crate::client::{Document, DocumentStatus, Erased, Submitted};
use crate::error::CliError;
use serde::Serialize;

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// Output format chosen with `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Renders `key  value` lines with the keys aligned.
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in fields {
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    out
}

/// Renders rows under a header, columns aligned (by characters) two spaces apart,
/// trailing blanks trimmed.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Renders documents as a table, one row each.
pub fn render_documents(documents: &[Document]) -> String {
    if documents.is_empty() {
        return "no documents\n".to_string();
    }
    let rows: Vec<Vec<String>> = documents
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.kind.clone(),
                d.version.to_string(),
                d.issuer.clone(),
                d.recipients.join(","),
                d.status.clone(),
                d.height.to_string(),
            ]
        })
        .collect();
    render_table(
        &["ID", "KIND", "VER", "ISSUER", "TO", "STATUS", "HEIGHT"],
        &rows,
    )
}

/// `carnet doc show` as a table.
pub fn render_document(doc: &Document) -> String {
    let mut fields = vec![
        ("id", doc.id.clone()),
        ("version", doc.version.to_string()),
        ("kind", doc.kind.clone()),
        ("issuer", doc.issuer.clone()),
        ("recipients", doc.recipients.join(",")),
        ("status", doc.status.clone()),
        ("height", doc.height.to_string()),
        ("time_ms", doc.time_ms.to_string()),
        ("commitment", doc.commitment.clone()),
        ("ciphertext_hash", doc.ciphertext_hash.clone()),
        ("submitted_by", doc.submitted_by.clone()),
    ];
    if let Some(agreement) = &doc.agreement {
        fields.push(("agreement", agreement.clone()));
    }
    render_fields(&fields)
}

/// `carnet doc submit` as a table.
pub fn render_submitted(submitted: &Submitted) -> String {
    let mut fields = vec![
        ("id", submitted.id.clone()),
        ("version", submitted.version.to_string()),
        ("kind", submitted.kind.clone()),
        ("status", submitted.status.clone()),
        ("height", submitted.height.to_string()),
    ];
    if let Some(agreement) = &submitted.agreement {
        fields.push(("agreement", agreement.clone()));
    }
    render_fields(&fields)
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the Unix epoch.
pub fn format_date(ms: u64) -> String {
    let (y, m, d) = civil_from_days(ms / DAY_MS);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a time in ms since the Unix epoch.
pub fn format_time(ms: u64) -> String {
    let secs = (ms % DAY_MS) / 1000;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        format_date(ms),
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `carnet doc erase` as a table: `id`, `status`, `height`.
pub fn render_erased(erased: &Erased) -> String {
    render_fields(&[
        ("id", erased.id.clone()),
        ("status", erased.status.clone()),
        ("height", erased.height.to_string()),
    ])
}

/// `carnet doc status` as a table: `id`, `status`, `height`, then `attestations` (one
/// line per attesting administration, with the height of its attestation) and
/// `pending` (the administrations that have not attested); `none` when empty.
pub fn render_document_status(status: &DocumentStatus) -> String {
    let mut attestations: Vec<String> = status
        .attestations
        .iter()
        .map(|a| format!("{}  height {}", a.administration, a.height))
        .collect();
    if attestations.is_empty() {
        attestations.push("none".to_string());
    }
    let pending = if status.pending.is_empty() {
        "none".to_string()
    } else {
        status.pending.join(",")
    };
    let mut fields = vec![
        ("id", status.id.clone()),
        ("status", status.status.clone()),
        ("height", status.height.to_string()),
    ];
    let mut rest = attestations.into_iter();
    fields.push(("attestations", rest.next().unwrap_or_default()));
    fields.extend(rest.map(|line| ("", line)));
    fields.push(("pending", pending));
    if let Some(agreement) = &status.agreement {
        fields.push(("agreement", agreement.clone()));
    }
    if let Some(deliveries) = &status.deliveries {
        let mut lines = deliveries
            .iter()
            .map(|d| format!("{}  v{}  height {}", d.administration, d.version, d.height));
        fields.push((
            "deliveries",
            lines.next().unwrap_or_else(|| "none".to_string()),
        ));
        fields.extend(lines.map(|line| ("", line)));
    }
    render_fields(&fields)
}

/// The JSON text `print_json` prints for `value`.
pub fn json_text<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value)
}

/// Prints a value as one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    match json_text(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// Prints a failure: `error: ...` on stderr, plus the JSON error object in JSON mode.
pub fn print_error(format: Format, error: &CliError) {
    eprintln!("error: {}", error.message);
    if format == Format::Json {
        print_json(&serde_json::json!({
            "error": { "code": error.code, "message": error.message }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Attestation, DeliveryAck};

    #[test]
    fn fields_are_aligned() {
        let text = render_fields(&[("id", "1".into()), ("height", "7".into())]);
        assert_eq!(text, "id      1\nheight  7\n");
    }

    fn erased_status() -> DocumentStatus {
        DocumentStatus {
            id: "ab".repeat(16),
            status: "erased".into(),
            height: 40,
            attestations: vec![
                Attestation {
                    administration: "XA".into(),
                    height: 41,
                },
                Attestation {
                    administration: "XB".into(),
                    height: 42,
                },
            ],
            pending: vec!["XC".into(), "XD".into()],
            agreement: None,
            deliveries: None,
        }
    }

    #[test]
    fn erased_renders_as_table_and_json() {
        let erased = Erased {
            id: "ab".repeat(16),
            status: "erased".into(),
            height: 40,
        };
        assert_eq!(
            render_erased(&erased),
            format!("id      {}\nstatus  erased\nheight  40\n", "ab".repeat(16))
        );
        let json: serde_json::Value = serde_json::from_str(&json_text(&erased).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "ab".repeat(16), "status": "erased", "height": 40})
        );
    }

    #[test]
    fn document_status_renders_attestations_and_pending() {
        let id = "ab".repeat(16);
        let text = render_document_status(&erased_status());
        assert_eq!(
            text,
            format!(
                "id            {id}\n\
                 status        erased\n\
                 height        40\n\
                 attestations  XA  height 41\n\
                 \x20             XB  height 42\n\
                 pending       XC,XD\n"
            )
        );
        let mut done = erased_status();
        done.attestations.clear();
        done.pending.clear();
        let text = render_document_status(&done);
        assert!(text.contains("attestations  none\n"), "{text}");
        assert!(text.ends_with("pending       none\n"), "{text}");
    }

    #[test]
    fn document_status_json_uses_the_api_field_names() {
        let json: serde_json::Value =
            serde_json::from_str(&json_text(&erased_status()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "ab".repeat(16),
                "status": "erased",
                "height": 40,
                "attestations": [
                    {"administration": "XA", "height": 41},
                    {"administration": "XB", "height": 42}
                ],
                "pending": ["XC", "XD"]
            })
        );
    }

    #[test]
    fn documents_render_one_row_each() {
        let doc = Document {
            id: "ab".repeat(16),
            version: 1,
            kind: "export-declaration".into(),
            issuer: "XA".into(),
            recipients: vec!["XB".into(), "XC".into()],
            status: "active".into(),
            height: 12,
            time_ms: 0,
            commitment: String::new(),
            ciphertext_hash: String::new(),
            submitted_by: String::new(),
            agreement: None,
        };
        let text = render_documents(&[doc]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID"));
        assert!(lines[1].contains("XB,XC") && lines[1].contains("export-declaration"));
        assert_eq!(render_documents(&[]), "no documents\n");
    }

    #[test]
    fn document_status_shows_agreement_and_deliveries_when_present() {
        let mut status = erased_status();
        status.status = "active".into();
        status.attestations.clear();
        status.pending.clear();
        status.agreement = Some("0a".repeat(16));
        status.deliveries = Some(vec![
            DeliveryAck {
                administration: "XB".into(),
                version: 1,
                height: 14,
            },
            DeliveryAck {
                administration: "XC".into(),
                version: 2,
                height: 19,
            },
        ]);
        let text = render_document_status(&status);
        assert!(
            text.ends_with(&format!(
                "agreement     {}\n\
                 deliveries    XB  v1  height 14\n\
                 \x20             XC  v2  height 19\n",
                "0a".repeat(16)
            )),
            "{text}"
        );
        status.deliveries = Some(Vec::new());
        assert!(render_document_status(&status).ends_with("deliveries    none\n"));
        let json: serde_json::Value = serde_json::from_str(&json_text(&status).unwrap()).unwrap();
        assert_eq!(json["agreement"], serde_json::json!("0a".repeat(16)));
        assert_eq!(json["deliveries"], serde_json::json!([]));
        // Absent fields stay absent, in the table and in JSON.
        let text = render_document_status(&erased_status());
        assert!(
            !text.contains("agreement") && !text.contains("deliveries"),
            "{text}"
        );
        let json = json_text(&erased_status()).unwrap();
        assert!(
            !json.contains("agreement") && !json.contains("deliveries"),
            "{json}"
        );
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(format_time(1_709_210_096_000), "2024-02-29 12:34:56 UTC");
        assert_eq!(format_date(1_709_210_096_000 + DAY_MS), "2024-03-01");
        // 2000-12-31 23:59:59 UTC, the last day of a leap century year.
        assert_eq!(format_time(978_307_199_000), "2000-12-31 23:59:59 UTC");
        assert_eq!(format_date(978_307_200_000), "2001-01-01");
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let text = render_table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "Ada".into()],
                vec!["22".into(), String::new()],
            ],
        );
        assert_eq!(text, "ID  NAME\n1   Ada\n22\n");
    }
}
