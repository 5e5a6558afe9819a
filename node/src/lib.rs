//! # carnet-node
//!
//! The Carnet node: the only crate that touches tokio, sockets or disk. It stores the
//! chain in RocksDB, talks to other members over libp2p, drives the Simplex consensus
//! engine, executes finalized blocks with the contracts crate, keeps document keys in a
//! vault, delivers them to recipients, and serves the officer HTTP API.
//!
//! It must never write plaintext payloads, DEKs or salts to disk outside the vault, nor
//! log them; and never carry on after a failed durable write.

pub mod api;
#[cfg(feature = "byzantine")]
pub mod byzantine;
pub mod config;
pub mod delivery;
pub mod driver;
pub mod epochs;
pub mod erasure;
pub mod evidence;
pub mod fetch;
pub mod hsm_signer;
pub mod ledger;
pub mod mempool;
pub mod metrics;
pub mod node;
pub mod p2p;
pub mod storage;
#[cfg(test)]
mod test_support;
pub mod vault;
pub mod vault_pkcs11;
#[cfg(test)]
mod vault_suite;
