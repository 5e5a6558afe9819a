//! How `carnet` prints: `table` for officers at a terminal, `json` for scripts.
//!
//! JSON field names are a contract (`id`, `version`, `height`, `status`, `kind`, ...).
//! Errors print one line `error: ...` on stderr and, in JSON mode, also
//! `{"error":{"code","message"}}` on stdout. Must never print a secret key, and never
//! print anything but the payload itself when a payload goes to stdout.

use crate::client::{Document, DocumentStatus, Erased};
use crate::error::CliError;
use serde::Serialize;

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

/// Renders documents as a table, one row each.
pub fn render_documents(documents: &[Document]) -> String {
    if documents.is_empty() {
        return "no documents\n".to_string();
    }
    let header = ["ID", "KIND", "VER", "ISSUER", "TO", "STATUS", "HEIGHT"];
    let rows: Vec<[String; 7]> = documents
        .iter()
        .map(|d| {
            [
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
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
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
    use crate::client::Attestation;

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
        };
        let text = render_documents(&[doc]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID"));
        assert!(lines[1].contains("XB,XC") && lines[1].contains("export-declaration"));
        assert_eq!(render_documents(&[]), "no documents\n");
    }
}
