//! # carnet-contracts
//!
//! The rules of the Carnet ledger: identifiers and records of the customs domain,
//! signed transactions, the crypto envelope that seals a document for its recipients,
//! the block body format, and the deterministic execution of a block over a state store.
//!
//! This crate must never do IO, read a clock or draw randomness: time, keys and random
//! bytes come in as arguments, so every replica computes byte-identical state.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod agreement;
pub mod auth;
pub mod block;
pub mod codec;
pub mod envelope;
pub mod erasure;
pub mod evidence;
pub mod execute;
pub mod governance;
pub mod hex32;
pub mod keys;
pub mod lifecycle;
pub mod model;
pub mod officers;
pub mod request;
pub mod tx;
pub mod types;

pub use model::*;
pub use tx::*;
pub use types::*;

pub use envelope::ucr_index;

/// Errors of the contracts crate. Each names the rule that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ContractError {
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("unknown: {0}")]
    NotFound(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("encoding: {0}")]
    Encoding(String),
    #[error("crypto: {0}")]
    Crypto(String),
}
