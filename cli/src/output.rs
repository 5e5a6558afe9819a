//! How `carnet` prints: `table` for officers at a terminal, `json` for scripts.
//!
//! JSON field names are a contract (`id`, `version`, `height`, `status`, `kind`, ...).
//! Errors print one line `error: ...` on stderr and, in JSON mode, also
//! `{"error":{"code","message"}}` on stdout. Must never print a secret key, and never
//! print anything but the payload itself when a payload goes to stdout.

use crate::client::Document;
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

/// Prints a value as one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
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

    #[test]
    fn fields_are_aligned() {
        let text = render_fields(&[("id", "1".into()), ("height", "7".into())]);
        assert_eq!(text, "id      1\nheight  7\n");
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
