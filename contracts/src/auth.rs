//! Signing of node HTTP API requests by officer keys (docs/interfaces.md, "Node HTTP
//! API"): the bytes signed, the header names, and verification.
//!
//! Must never read a clock: the timestamp window and replay cache are the node's; this
//! module only binds method, path, timestamp and body hash to a key.

use crate::types::PublicKey;
use crate::ContractError;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Domain-separation tag of API request signatures.
pub const API_DOMAIN: &[u8] = b"carnet/api/v1";
/// Header carrying the officer's public key (hex).
pub const HEADER_KEY: &str = "x-carnet-key";
/// Header carrying the request time, ms since the Unix epoch (decimal).
pub const HEADER_TIMESTAMP: &str = "x-carnet-timestamp";
/// Header carrying the hex ed25519 signature over [`request_signing_bytes`].
pub const HEADER_SIGNATURE: &str = "x-carnet-signature";

/// `API_DOMAIN || method || '\n' || path_and_query || '\n' || timestamp_ms (decimal) ||
/// '\n' || hex(blake3(body))`. The method is upper-cased so `get` and `GET` agree.
pub fn request_signing_bytes(
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    body: &[u8],
) -> Vec<u8> {
    let body_hash = blake3::hash(body);
    let mut bytes = Vec::with_capacity(API_DOMAIN.len() + path_and_query.len() + 100);
    bytes.extend_from_slice(API_DOMAIN);
    bytes.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(path_and_query.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(timestamp_ms.to_string().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(body_hash.to_hex().as_bytes());
    bytes
}

/// Signs a request; returns the hex signature for [`HEADER_SIGNATURE`].
pub fn sign_request(
    key: &SigningKey,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    body: &[u8],
) -> String {
    let bytes = request_signing_bytes(method, path_and_query, timestamp_ms, body);
    hex::encode(key.sign(&bytes).to_bytes())
}

/// Verifies a request signature made by [`sign_request`].
pub fn verify_request(
    key: &PublicKey,
    signature_hex: &str,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    body: &[u8],
) -> Result<(), ContractError> {
    let verifying = VerifyingKey::from_bytes(&key.0).map_err(|_| {
        ContractError::BadSignature(format!("{key} is not a valid ed25519 public key"))
    })?;
    let raw = hex::decode(signature_hex.trim())
        .map_err(|_| ContractError::BadSignature("request signature is not hex".into()))?;
    let raw: [u8; 64] = raw.as_slice().try_into().map_err(|_| {
        ContractError::BadSignature(format!(
            "request signature is {} bytes, expected 64",
            raw.len()
        ))
    })?;
    let bytes = request_signing_bytes(method, path_and_query, timestamp_ms, body);
    verifying
        .verify_strict(&bytes, &Signature::from_bytes(&raw))
        .map_err(|_| {
            ContractError::BadSignature(format!(
                "request signature does not match key {key}, method, path, timestamp and body"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn officer() -> SigningKey {
        SigningKey::from_bytes(&[3u8; 32])
    }

    fn public() -> PublicKey {
        PublicKey(officer().verifying_key().to_bytes())
    }

    const BODY: &[u8] = br#"{"purpose":"risk assessment"}"#;
    const PATH: &str = "/v1/documents/00112233445566778899aabbccddeeff/decrypt";

    #[test]
    fn signed_request_verifies() {
        let sig = sign_request(&officer(), "POST", PATH, 1_700_000_000_000, BODY);
        verify_request(&public(), &sig, "POST", PATH, 1_700_000_000_000, BODY).unwrap();
    }

    #[test]
    fn tampered_request_fails() {
        let sig = sign_request(&officer(), "POST", PATH, 1_700_000_000_000, BODY);
        let cases: [(&str, &str, u64, &[u8]); 4] = [
            (
                "POST",
                PATH,
                1_700_000_000_000,
                br#"{"purpose":"curiosity"}"#,
            ),
            (
                "POST",
                "/v1/documents/ffff/decrypt",
                1_700_000_000_000,
                BODY,
            ),
            ("POST", PATH, 1_700_000_000_001, BODY),
            ("GET", PATH, 1_700_000_000_000, BODY),
        ];
        for (method, path, ts, body) in cases {
            let err = verify_request(&public(), &sig, method, path, ts, body).unwrap_err();
            assert!(
                matches!(err, ContractError::BadSignature(_)),
                "{method} {path} {ts}"
            );
        }
    }

    #[test]
    fn other_officer_key_fails() {
        let sig = sign_request(&officer(), "GET", "/v1/status", 5, b"");
        let other = PublicKey(
            SigningKey::from_bytes(&[4u8; 32])
                .verifying_key()
                .to_bytes(),
        );
        assert!(verify_request(&other, &sig, "GET", "/v1/status", 5, b"").is_err());
        assert!(verify_request(&public(), "zz", "GET", "/v1/status", 5, b"").is_err());
    }

    #[test]
    fn signing_bytes_layout_is_stable() {
        let bytes = request_signing_bytes("get", "/v1/status?x=1", 42, b"");
        let expected = format!(
            "carnet/api/v1GET\n/v1/status?x=1\n42\n{}",
            blake3::hash(b"").to_hex()
        );
        assert_eq!(bytes, expected.as_bytes());
    }
}
