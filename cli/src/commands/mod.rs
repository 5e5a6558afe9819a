//! What each `carnet` subcommand does: local validation first, then one call to the node.
//!
//! Functions here return data and never print, so the binary decides the format and the
//! testnet tool and tests can call them directly. Local validation failures (unreadable
//! file, payload not a JSON object, unknown kind, malformed administration code or id,
//! empty text that the ledger records) are
//! [`Failure::BadInput`](crate::error::Failure::BadInput) and reach no node.
//!
//! One module per subject: [`doc`] (documents and their versions), [`agreement`],
//! [`ucr`], [`watch`] (the event stream), [`request`] (TFA Article 12), [`officer`],
//! [`member`] (governance), [`audit`], [`evidence`] (equivocations on the ledger). This
//! file holds the checks they share.
//!
//! Must never: send a payload other than the file's exact text, write a decrypted
//! payload anywhere but where the officer asked, or overwrite an existing file.

pub mod agreement;
pub mod audit;
pub mod doc;
pub mod evidence;
pub mod member;
pub mod officer;
pub mod request;
pub mod ucr;
pub mod watch;

pub use doc::*;

use crate::client::{NodeClient, Status};
use crate::error::CliError;
use crate::profile;
use carnet_contracts::{AdminCode, DocumentId, DocumentKind, PublicKey};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest payload (or agreement, or member) file read (the node refuses bodies over
/// 1 MiB anyway).
pub const MAX_PAYLOAD_FILE_BYTES: u64 = 4 * 1024 * 1024;

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

/// Checks one administration code: two upper-case letters.
pub fn check_admin_code(code: &str) -> Result<String, CliError> {
    AdminCode::parse(code.trim())
        .map(|c| c.0)
        .map_err(|e| CliError::bad_input(contract_message(&e)))
}

/// Splits `XB,XC` into administration codes; each must be two upper-case letters.
pub fn parse_recipients(to: &str) -> Result<Vec<String>, CliError> {
    let mut codes = Vec::new();
    for part in to.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let code = check_admin_code(part)?;
        if !codes.contains(&code) {
            codes.push(code);
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
    read_json_object_file(path, "payload")
}

/// Reads a file (`-` is stdin) of at most [`MAX_PAYLOAD_FILE_BYTES`] that must hold one
/// JSON object; `what` names it in errors. Returns the exact text.
pub fn read_json_object_file(path: &Path, what: &str) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_PAYLOAD_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_PAYLOAD_FILE_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::bad_input(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_PAYLOAD_FILE_BYTES {
        return Err(CliError::bad_input(format!(
            "{what} {} is larger than {MAX_PAYLOAD_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::bad_input(format!("{what} {} is not UTF-8 text", path.display())))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        Ok(_) => Err(CliError::bad_input(format!(
            "{what} {} is JSON but not a JSON object",
            path.display()
        ))),
        Err(e) => Err(CliError::bad_input(format!(
            "{what} {} is not JSON: {e}",
            path.display()
        ))),
    }
}

/// Checks a text the ledger records (a reason, a purpose, a legal basis): trimmed, not
/// empty, at most `max_bytes`. `flag` and `what` name it in the error.
pub fn check_text(
    flag: &str,
    what: &str,
    text: &str,
    max_bytes: usize,
) -> Result<String, CliError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CliError::bad_input(format!(
            "{flag} must say {what} (it is recorded on the ledger)"
        )));
    }
    if text.len() > max_bytes {
        return Err(CliError::bad_input(format!(
            "{flag} is longer than {max_bytes} bytes"
        )));
    }
    Ok(text.to_string())
}

/// Checks a UCR: not empty, at most 256 printable characters.
pub fn check_ucr(ucr: &str) -> Result<String, CliError> {
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

/// Checks a document id (32 hex characters); returns it in lower case.
pub fn check_id(id: &str) -> Result<String, CliError> {
    let id = id.trim();
    DocumentId::from_hex(id).map_err(|e| CliError::bad_input(contract_message(&e)))?;
    Ok(id.to_ascii_lowercase())
}

/// Checks an agreement, request or proposal id (32 hex characters, like a document's);
/// `what` names it in the error. Returns it in lower case.
pub fn check_ledger_id(what: &str, id: &str) -> Result<String, CliError> {
    let id = id.trim();
    match hex::decode(id) {
        Ok(bytes) if bytes.len() == 16 => Ok(id.to_ascii_lowercase()),
        Ok(_) => Err(CliError::bad_input(format!(
            "{what} `{id}` is not 16 bytes (32 hex characters)"
        ))),
        Err(_) => Err(CliError::bad_input(format!("{what} `{id}` is not hex"))),
    }
}

/// Checks an officer's public key (64 hex characters); returns it in lower case.
pub fn check_officer_key(key: &str) -> Result<String, CliError> {
    let key = key.trim();
    PublicKey::from_hex(key).map_err(|e| CliError::bad_input(contract_message(&e)))?;
    Ok(key.to_ascii_lowercase())
}

/// Refuses to go on when `out` exists, before anything is asked of the node.
pub fn refuse_existing(out: &Path) -> Result<(), CliError> {
    if out.exists() {
        return Err(CliError::bad_input(format!(
            "{} already exists; not overwriting it",
            out.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to a new file with mode 0600; never over an existing file.
pub fn write_private_file(out: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| CliError::bad_input(format!("cannot create {}: {e}", out.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::bad_input(format!("cannot write {}: {e}", out.display())))
}

/// The message of a contracts error without its class prefix.
pub(crate) fn contract_message(e: &carnet_contracts::ContractError) -> String {
    let text = e.to_string();
    text.strip_prefix("bad input: ")
        .unwrap_or(&text)
        .to_string()
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir; the caller removes it.
    pub fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "carnet-cli-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
        let dir = test_support::temp_dir("payload");
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

    #[test]
    fn malformed_ids_and_keys_are_bad_input() {
        assert_eq!(check_id("zz").unwrap_err().exit_code(), 2);
        assert_eq!(check_id(&"AB".repeat(16)).unwrap(), "ab".repeat(16));
        let e = check_ledger_id("agreement id", "abc").unwrap_err();
        assert!(e.message.contains("agreement id `abc`"), "{}", e.message);
        assert_eq!(
            check_ledger_id("request id", &"0a".repeat(17))
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(
            check_ledger_id("request id", &"0A".repeat(16)).unwrap(),
            "0a".repeat(16)
        );
        assert_eq!(
            check_officer_key(&"ab".repeat(16)).unwrap_err().exit_code(),
            2
        );
        assert!(check_officer_key(&"ab".repeat(32)).is_ok());
    }

    #[test]
    fn ledger_texts_must_say_something_within_bounds() {
        assert_eq!(check_text("--reason", "why", "  r ", 10).unwrap(), "r");
        let e = check_text("--reason", "why it is cancelled", " ", 10).unwrap_err();
        assert!(
            e.message.contains("--reason must say why it is cancelled"),
            "{}",
            e.message
        );
        assert_eq!(
            check_text("--reason", "why", &"x".repeat(11), 10)
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn private_files_are_0600_and_never_overwritten() {
        let dir = test_support::temp_dir("private");
        let out = dir.join("out.json");
        write_private_file(&out, b"{}").unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(refuse_existing(&out).unwrap_err().exit_code(), 2);
        assert_eq!(write_private_file(&out, b"[]").unwrap_err().exit_code(), 2);
        assert_eq!(std::fs::read(&out).unwrap(), b"{}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
