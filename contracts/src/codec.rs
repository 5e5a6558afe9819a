//! The canonical binary encoding of everything Carnet signs, hashes or stores:
//! bincode, fixed-width little-endian integers, bounded on decode, no trailing bytes.
//!
//! Must never be configured differently in two places: one encoding, one function pair.

use crate::ContractError;
use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// Encodes `value` canonically.
///
/// Carnet's types (structs, enums, strings, vectors with known lengths, integers) cannot
/// fail to encode in bincode; should a future type fail, the result is empty, which no
/// decoder accepts.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    options().serialize(value).unwrap_or_default()
}

/// Decodes `bytes`, refusing more than `limit` bytes of allocation and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, ContractError> {
    if bytes.len() > limit {
        return Err(ContractError::BadInput(format!(
            "{} bytes is over the limit of {limit}",
            bytes.len()
        )));
    }
    options()
        .with_limit(limit as u64)
        .deserialize(bytes)
        .map_err(|e| ContractError::Encoding(e.to_string()))
}
