//! The officer's profile (`--profile FILE` or `CARNET_PROFILE`) and key files.
//!
//! A profile names the node to talk to, the officer key to sign with and the
//! administration (docs/interfaces.md, "CLI profile"). Command-line `--node` and `--key`
//! override it. Must never write a key with a mode other than 0600, overwrite an existing
//! key file, or print a secret key.

use crate::error::CliError;
use carnet_contracts::keys::KeyFile;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Contents of a profile TOML file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The officer's administration, e.g. `XA` (informational).
    #[serde(default)]
    pub administration: Option<String>,
    /// Base URL of the node's API, e.g. `http://127.0.0.1:7201`.
    #[serde(default)]
    pub node: Option<String>,
    /// Officer key file; a relative path is relative to the profile's directory.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl Profile {
    /// Reads a profile; relative key paths become relative to the profile's directory.
    pub fn load(path: &Path) -> Result<Profile, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::bad_input(format!("cannot read profile {}: {e}", path.display()))
        })?;
        let mut profile: Profile = toml::from_str(&text).map_err(|e| {
            CliError::bad_input(format!(
                "profile {} is not valid: {}",
                path.display(),
                e.message()
            ))
        })?;
        if let (Some(key), Some(dir)) = (&profile.key, path.parent()) {
            if key.is_relative() {
                profile.key = Some(dir.join(key));
            }
        }
        Ok(profile)
    }

    /// Writes the profile as TOML (used by `carnet-testnet init`).
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = toml::to_string(self)
            .map_err(|e| CliError::bad_input(format!("cannot encode profile: {e}")))?;
        std::fs::write(path, text).map_err(|e| {
            CliError::bad_input(format!("cannot write profile {}: {e}", path.display()))
        })
    }
}

/// Reads an ed25519 officer key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::bad_input(format!("cannot read key file {}: {e}", path.display()))
    })?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| {
        CliError::bad_input(format!(
            "key file {} is not a key file: {e}",
            path.display()
        ))
    })?;
    file.to_signing_key()
        .map_err(|e| CliError::bad_input(format!("key file {}: {e}", path.display())))
}

/// Writes `key` as a KeyFile with mode 0600. Refuses to overwrite an existing file.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), CliError> {
    let file = KeyFile::from_signing_key(key);
    write_key_file(path, &file)
}

/// Writes any KeyFile with mode 0600. Refuses to overwrite an existing file.
pub fn write_key_file(path: &Path, file: &KeyFile) -> Result<(), CliError> {
    let json = serde_json::to_string_pretty(file)
        .map_err(|e| CliError::bad_input(format!("cannot encode key file: {e}")))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            CliError::bad_input(format!("cannot create key file {}: {e}", path.display()))
        })?;
    out.write_all(json.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.sync_all())
        .map_err(|e| CliError::bad_input(format!("cannot write key file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "carnet-cli-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn key_file_is_0600_roundtrips_and_is_never_overwritten() {
        let dir = temp_dir("key");
        let path = dir.join("officer.key");
        let key = SigningKey::from_bytes(&[3u8; 32]);
        write_signing_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        let again = write_signing_key(&path, &SigningKey::from_bytes(&[4u8; 32]));
        assert!(
            again.is_err(),
            "an existing key file must not be overwritten"
        );
        assert_eq!(read_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn relative_key_path_is_relative_to_the_profile() {
        let dir = temp_dir("profile");
        let path = dir.join("XA.toml");
        std::fs::write(
            &path,
            "administration = \"XA\"\nnode = \"http://127.0.0.1:1\"\nkey = \"officers/XA.key\"\n",
        )
        .unwrap();
        let profile = Profile::load(&path).unwrap();
        assert_eq!(profile.key, Some(dir.join("officers/XA.key")));
        assert_eq!(profile.node.as_deref(), Some("http://127.0.0.1:1"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
