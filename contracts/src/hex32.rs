//! Serde helpers: fixed-size byte arrays and byte strings as hex in human-readable
//! formats (JSON, TOML) and as raw bytes in bincode.
//!
//! Must never change the bincode form: it is what gets signed and hashed. Use with
//! `#[serde(with = "crate::hex32")]` on `[u8; 32]` fields and
//! `#[serde(with = "crate::hex32::bytes")]` on `Vec<u8>` fields.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serializes a 32-byte array: hex string if human-readable, else raw bytes.
pub fn serialize<S: Serializer>(value: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
    serialize_array(value, serializer)
}

/// Deserializes a 32-byte array written by [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
    deserialize_array(deserializer)
}

/// Serializes any fixed-size byte array: hex string if human-readable, else raw bytes
/// (bincode: the N bytes with no length prefix, as the derived form of `[u8; N]`).
pub fn serialize_array<const N: usize, S: Serializer>(
    value: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    [u8; N]: Serialize,
{
    if serializer.is_human_readable() {
        serializer.serialize_str(&hex::encode(value))
    } else {
        value.serialize(serializer)
    }
}

/// Deserializes a fixed-size byte array written by [`serialize_array`].
pub fn deserialize_array<'de, const N: usize, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<[u8; N], D::Error>
where
    [u8; N]: Deserialize<'de>,
{
    if deserializer.is_human_readable() {
        let text = String::deserialize(deserializer)?;
        let bytes =
            hex::decode(&text).map_err(|_| D::Error::custom(format!("`{text}` is not hex")))?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| D::Error::custom(format!("expected {N} bytes of hex, got {len}")))
    } else {
        <[u8; N]>::deserialize(deserializer)
    }
}

/// `Vec<u8>` as hex in human-readable formats, as a length-prefixed byte string in bincode.
pub mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(value))
        } else {
            value.serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            hex::decode(&text).map_err(|_| D::Error::custom(format!("`{text}` is not hex")))
        } else {
            Vec::<u8>::deserialize(deserializer)
        }
    }
}
