//! # carnet — the customs officer's command line, as a library
//!
//! The `carnet` binary is a thin shell over this crate so that the testnet tool and the
//! integration tests drive a node exactly as an officer does:
//!
//! * [`client`] — a blocking HTTP client for one node; signs every `/v1` request with the
//!   officer's key (`carnet_contracts::auth`) and maps HTTP answers to [`error::CliError`].
//! * [`api`] — the records and calls of the customs-contracts endpoints (agreements,
//!   versions, UCR match, events, TFA requests, officers, members, audit).
//! * [`sse`] — the parser of the node's server-sent event stream.
//! * [`profile`] — the officer's profile file (node URL, key file, administration) and
//!   key files.
//! * [`commands`] — what each subcommand does, returning data, never printing.
//! * [`output`] — how results and errors are printed (`table` for people, `json` for
//!   scripts) and which exit code each failure gets.
//! * [`args`] and [`run`] — the command line and the dispatch of one command, here so
//!   that tests drive them exactly as the binary does.
//!
//! Must never: talk to anything but a node's HTTP API, send an unsigned `/v1` request, or
//! alter the payload text an officer gave (it is sent and written back byte for byte).

pub mod api;
pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod output;
pub mod profile;
pub mod run;
pub mod sse;

pub use client::NodeClient;
pub use error::{CliError, Failure};
