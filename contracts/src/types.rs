//! Identifiers and enumerations of the customs domain shared by every other module.
//!
//! Pure data: nothing here reads a clock, draws randomness or touches disk.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 32-byte blake3 digest.
pub type Hash32 = [u8; 32];

/// ISO 3166-1 alpha-2 code of a customs administration (`XA`, `XB`, ...).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AdminCode(pub String);

impl AdminCode {
    /// Parses a code: exactly two ASCII upper-case letters.
    pub fn parse(s: &str) -> Result<Self, crate::ContractError> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(s.to_string()))
        } else {
            Err(crate::ContractError::BadInput(format!(
                "administration code `{s}` is not two upper-case letters (ISO 3166-1 alpha-2)"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines an identifier of `$len` raw bytes: hex in JSON (and any human-readable
/// format), the raw bytes with no length prefix in bincode.
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                crate::hex32::serialize_array(&self.0, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                crate::hex32::deserialize_array(deserializer).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl $name {
            pub fn from_hex(s: &str) -> Result<Self, crate::ContractError> {
                let bytes = hex::decode(s).map_err(|_| {
                    crate::ContractError::BadInput(format!(concat!($what, " `{}` is not hex"), s))
                })?;
                let arr: [u8; $len] = bytes.try_into().map_err(|_| {
                    crate::ContractError::BadInput(format!(
                        concat!($what, " `{}` is not ", stringify!($len), " bytes"),
                        s
                    ))
                })?;
                Ok(Self(arr))
            }
        }
    };
}

/// Defines a 16-byte identifier chosen by the submitter: 32 hex chars in JSON, the 16 raw
/// bytes in bincode (the same form as [`DocumentId`]).
macro_rules! id16 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        hex_id!($(#[$doc])* $name, 16, $what);
    };
}

hex_id!(
    /// An ed25519 public key (officer, node or validator), 32 bytes, shown as hex.
    ///
    /// JSON (and any human-readable format) carries it as a 64-char hex string; bincode
    /// carries the 32 raw bytes.
    PublicKey,
    32,
    "public key"
);

id16!(
    /// Document identifier: 16 bytes chosen by the submitting node, shown as 32 hex chars.
    ///
    /// JSON carries it as a 32-char hex string; bincode carries the 16 raw bytes.
    DocumentId,
    "document id"
);

/// The kinds of document Carnet carries (DESIGN.md, "Document").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentKind {
    ExportDeclaration,
    ImportDeclaration,
    TransitDeclaration,
    CertificateOfOrigin,
    PhytosanitaryCertificate,
    AeoStatus,
    WasteMovement,
    ControlResult,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 8] = [
        DocumentKind::ExportDeclaration,
        DocumentKind::ImportDeclaration,
        DocumentKind::TransitDeclaration,
        DocumentKind::CertificateOfOrigin,
        DocumentKind::PhytosanitaryCertificate,
        DocumentKind::AeoStatus,
        DocumentKind::WasteMovement,
        DocumentKind::ControlResult,
    ];

    /// The kebab-case name used on the command line and in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            DocumentKind::ExportDeclaration => "export-declaration",
            DocumentKind::ImportDeclaration => "import-declaration",
            DocumentKind::TransitDeclaration => "transit-declaration",
            DocumentKind::CertificateOfOrigin => "certificate-of-origin",
            DocumentKind::PhytosanitaryCertificate => "phytosanitary-certificate",
            DocumentKind::AeoStatus => "aeo-status",
            DocumentKind::WasteMovement => "waste-movement",
            DocumentKind::ControlResult => "control-result",
        }
    }

    pub fn parse(s: &str) -> Result<Self, crate::ContractError> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                crate::ContractError::BadInput(format!(
                    "unknown document kind `{s}`; known kinds: {}",
                    known.join(", ")
                ))
            })
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Roles an officer can hold (DESIGN.md, "Officer").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Officer,
    Supervisor,
    Auditor,
    Admin,
}

/// Lifecycle status of a document version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentStatus {
    Active,
    Amended,
    Cancelled,
    Erased,
}

id16!(
    /// Agreement (GNC Utility Block) identifier, chosen by the proposer.
    AgreementId,
    "agreement id"
);
id16!(
    /// TFA Article 12 information request identifier, chosen by the requester.
    RequestId,
    "request id"
);
id16!(
    /// Membership proposal identifier, chosen by the proposer.
    ProposalId,
    "proposal id"
);
