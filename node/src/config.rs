//! Node configuration: `config.toml`, the key files beside it and `carnet-node init`.
//!
//! Layout and field names follow docs/interfaces.md exactly. This module must never log
//! or print a secret key; `init` prints public values only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use carnet_contracts::Genesis;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Errors reading or writing a node home.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// `[consensus]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSection {
    pub leader_timeout_ms: u64,
    pub notarization_timeout_ms: u64,
    pub retry_timeout_ms: u64,
    /// Wait before the leader proposes an empty block (not in the interface file; optional).
    #[serde(default = "default_empty_block_interval_ms")]
    pub empty_block_interval_ms: u64,
    /// Adaptive block size (optional): a leader holding fewer than `full_block_txs`
    /// proposable transactions waits until this long after its parent's block time
    /// before it proposes, so that a block carries what arrives meanwhile instead of
    /// paying a block's fixed cost (votes, certificates, fsyncs) for a few documents.
    /// 0 proposes at once.
    #[serde(default = "default_min_block_interval_ms")]
    pub min_block_interval_ms: u64,
    /// Proposable transactions that make a block worth proposing at once (optional).
    #[serde(default = "default_full_block_txs")]
    pub full_block_txs: usize,
    /// A leader none of whose votes arrived in this many views is skipped: its view is
    /// nullified at once instead of after `leader_timeout_ms` (optional; 0 never skips).
    #[serde(default = "default_leader_skip_after_views")]
    pub leader_skip_after_views: u64,
}

fn default_empty_block_interval_ms() -> u64 {
    500
}

fn default_min_block_interval_ms() -> u64 {
    20
}

fn default_full_block_txs() -> usize {
    256
}

fn default_leader_skip_after_views() -> u64 {
    16
}

impl Default for ConsensusSection {
    fn default() -> Self {
        Self {
            leader_timeout_ms: 1000,
            notarization_timeout_ms: 2000,
            retry_timeout_ms: 1000,
            empty_block_interval_ms: default_empty_block_interval_ms(),
            min_block_interval_ms: default_min_block_interval_ms(),
            full_block_txs: default_full_block_txs(),
            leader_skip_after_views: default_leader_skip_after_views(),
        }
    }
}

/// `[mempool]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolSection {
    pub max_transactions: usize,
    pub max_batch_transactions: usize,
}

impl Default for MempoolSection {
    fn default() -> Self {
        Self {
            max_transactions: 20_000,
            max_batch_transactions: 1_000,
        }
    }
}

/// Key-vault backend (`[vault] backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultBackend {
    /// The `vault` column family of the node's RocksDB store (default).
    #[default]
    Rocksdb,
    /// A PKCS#11 token (HSM, or SoftHSM2 for tests).
    Pkcs11,
}

/// Optional `[vault]` section; absent means the RocksDB vault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    #[serde(default)]
    pub backend: VaultBackend,
    /// Path of the PKCS#11 module (required for `pkcs11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_module: Option<PathBuf>,
    /// Token label (required for `pkcs11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// File holding the user PIN (relative to the home), or ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// ... environment variable holding it. Exactly one of the two for `pkcs11`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_env: Option<String>,
}

/// Where the validator signing key lives (`[validator] key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidatorKeySource {
    /// `validator.key` in the home (default).
    #[default]
    File,
    /// An Ed25519 key pair on the `[vault]` PKCS#11 token, found (or generated) by label.
    Pkcs11,
}

/// Optional `[validator]` section; absent means `validator.key`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSection {
    #[serde(default)]
    pub key: ValidatorKeySource,
    /// Label of the key pair on the token (default `carnet-validator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
}

impl ValidatorSection {
    pub fn label(&self) -> &str {
        self.key_label.as_deref().unwrap_or("carnet-validator")
    }
}

/// `config.toml` as written by `init` (docs/interfaces.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub administration: String,
    pub genesis: PathBuf,
    pub listen_p2p: String,
    pub listen_api: String,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default = "default_log_file")]
    pub log_file: PathBuf,
    #[serde(default)]
    pub consensus: ConsensusSection,
    #[serde(default)]
    pub mempool: MempoolSection,
    #[serde(default, skip_serializing_if = "is_default_vault")]
    pub vault: VaultSection,
    #[serde(default, skip_serializing_if = "is_default_validator")]
    pub validator: ValidatorSection,
}

fn is_default_vault(v: &VaultSection) -> bool {
    *v == VaultSection::default()
}

fn is_default_validator(v: &ValidatorSection) -> bool {
    *v == ValidatorSection::default()
}

impl NodeConfig {
    /// Parses config.toml text and checks the `[vault]`/`[validator]` switches.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| invalid(path, e.to_string()))?;
        if config.mempool.max_transactions == 0 || config.mempool.max_batch_transactions == 0 {
            return Err(invalid(path, "mempool bounds must be positive"));
        }
        let needs_token = config.vault.backend == VaultBackend::Pkcs11
            || config.validator.key == ValidatorKeySource::Pkcs11;
        let v = &config.vault;
        if needs_token {
            if v.pkcs11_module.is_none() {
                return Err(invalid(
                    path,
                    "[vault] pkcs11_module is required for PKCS#11",
                ));
            }
            if v.token_label.as_deref().unwrap_or("").is_empty() {
                return Err(invalid(path, "[vault] token_label is required for PKCS#11"));
            }
            if v.pin_file.is_some() == v.pin_env.is_some() {
                return Err(invalid(
                    path,
                    "[vault] needs exactly one of pin_file and pin_env for PKCS#11",
                ));
            }
        }
        Ok(config)
    }
}

fn default_log_file() -> PathBuf {
    PathBuf::from("node.log")
}

/// JSON key file `{"public_key": hex32, "secret_key": hex32}` (ed25519 or X25519).
#[derive(Serialize, Deserialize)]
pub struct KeyFileJson {
    pub public_key: String,
    pub secret_key: String,
}

/// A 32-byte secret read from a key file; wiped on drop.
pub type Secret32 = Zeroizing<[u8; 32]>;

fn parse_hex32(path: &Path, field: &str, text: &str) -> Result<[u8; 32], ConfigError> {
    let bytes =
        hex::decode(text.trim()).map_err(|_| invalid(path, format!("`{field}` is not hex")))?;
    bytes
        .try_into()
        .map_err(|_| invalid(path, format!("`{field}` is not 32 bytes")))
}

/// Reads a key file; returns (public, secret).
pub fn read_key_file(path: &Path) -> Result<([u8; 32], Secret32), ConfigError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    let parsed: KeyFileJson =
        serde_json::from_str(&text).map_err(|e| invalid(path, format!("not a key file: {e}")))?;
    let public = parse_hex32(path, "public_key", &parsed.public_key)?;
    let secret = Zeroizing::new(parse_hex32(path, "secret_key", &parsed.secret_key)?);
    drop(Zeroizing::new(parsed.secret_key));
    Ok((public, secret))
}

/// Writes a file readable only by its owner (0600).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn write_key_file(path: &Path, public: &[u8; 32], secret: &[u8; 32]) -> Result<(), ConfigError> {
    let json = Zeroizing::new(
        serde_json::to_string_pretty(&serde_json::json!({
            "public_key": hex::encode(public),
            "secret_key": hex::encode(secret),
        }))
        .map_err(|e| invalid(path, e.to_string()))?,
    );
    write_private(path, json.as_bytes())
}

/// Everything a started node reads from its home.
pub struct NodeHome {
    pub dir: PathBuf,
    pub config: NodeConfig,
    pub genesis: Genesis,
    pub node_key: ed25519_dalek::SigningKey,
    /// `None` when `[validator] key = "pkcs11"` (the key is on the token).
    pub validator_key: Option<ed25519_dalek::SigningKey>,
    pub encryption_key: x25519_dalek::StaticSecret,
}

impl std::fmt::Debug for NodeHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHome")
            .field("dir", &self.dir)
            .field("administration", &self.config.administration)
            .finish_non_exhaustive()
    }
}

impl NodeHome {
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// The PKCS#11 token settings, when `[vault]` names one.
    pub fn pkcs11(&self) -> Option<crate::vault_pkcs11::Pkcs11Config> {
        let v = &self.config.vault;
        let pin = match (&v.pin_file, &v.pin_env) {
            (Some(f), _) => crate::vault_pkcs11::PinSource::File(self.resolve(f)),
            (None, Some(e)) => crate::vault_pkcs11::PinSource::Env(e.clone()),
            (None, None) => return None,
        };
        Some(crate::vault_pkcs11::Pkcs11Config {
            module: v.pkcs11_module.clone()?,
            token_label: v.token_label.clone()?,
            pin,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Loads config.toml, genesis and keys, checking that the keys match each other.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let config_path = dir.join("config.toml");
        let text = fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let config = NodeConfig::parse(&config_path, &text)?;
        let genesis_path = if config.genesis.is_absolute() {
            config.genesis.clone()
        } else {
            dir.join(&config.genesis)
        };
        let genesis_text = fs::read_to_string(&genesis_path).map_err(io_err(&genesis_path))?;
        let genesis: Genesis = serde_json::from_str(&genesis_text)
            .map_err(|e| invalid(&genesis_path, format!("not a genesis file: {e}")))?;

        let node_path = dir.join("node.key");
        let (node_pub, node_secret) = read_key_file(&node_path)?;
        let node_key = ed25519_dalek::SigningKey::from_bytes(&node_secret);
        if node_key.verifying_key().to_bytes() != node_pub {
            return Err(invalid(&node_path, "public key does not match secret key"));
        }
        let validator_path = dir.join("validator.key");
        let validator_key = match config.validator.key {
            ValidatorKeySource::Pkcs11 => None,
            ValidatorKeySource::File => {
                let (validator_pub, validator_secret) = read_key_file(&validator_path)?;
                let key = ed25519_dalek::SigningKey::from_bytes(&validator_secret);
                if key.verifying_key().to_bytes() != validator_pub {
                    return Err(invalid(
                        &validator_path,
                        "public key does not match secret key",
                    ));
                }
                Some(key)
            }
        };
        let enc_path = dir.join("encryption.key");
        let (enc_pub, enc_secret) = read_key_file(&enc_path)?;
        let encryption_key = x25519_dalek::StaticSecret::from(*enc_secret);
        if x25519_dalek::PublicKey::from(&encryption_key).to_bytes() != enc_pub {
            return Err(invalid(&enc_path, "public key does not match secret key"));
        }
        // UCR keys are per agreement, wrapped on the ledger; a `ucr.key` left in the home
        // by an older version is not read.

        // An administration outside genesis is a candidate for admission by vote: its
        // node follows the chain once the members admit it (its keys are checked against
        // the ledger's record then). A genesis member's keys must match genesis.
        if let Some(member) = genesis
            .administrations
            .iter()
            .find(|a| a.code.as_str() == config.administration)
        {
            if member.node_key.0 != node_pub {
                return Err(invalid(
                    &node_path,
                    "node key differs from the genesis record",
                ));
            }
            if let Some(key) = &validator_key {
                if member.validator_key.0 != key.verifying_key().to_bytes() {
                    return Err(invalid(
                        &validator_path,
                        "validator key differs from the genesis record",
                    ));
                }
            }
            if member.encryption_key != enc_pub {
                return Err(invalid(
                    &enc_path,
                    "encryption key differs from the genesis record",
                ));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            genesis,
            node_key,
            validator_key,
            encryption_key,
        })
    }
}

/// Arguments of `carnet-node init`.
#[derive(Debug, Clone)]
pub struct InitArgs {
    pub home: PathBuf,
    pub administration: String,
    pub name: String,
    pub p2p_port: u16,
    pub api_port: u16,
}

/// libp2p PeerId of an ed25519 node key.
pub fn peer_id_of(node_public: &[u8; 32]) -> Option<libp2p::PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(node_public).ok()?;
    Some(libp2p::PeerId::from_public_key(
        &libp2p::identity::PublicKey::from(key),
    ))
}

/// Creates a node home (keys, config.toml); refuses to overwrite an existing one.
/// Returns the public summary that `init` prints.
pub fn init_home(args: &InitArgs) -> Result<serde_json::Value, ConfigError> {
    carnet_contracts::AdminCode::parse(&args.administration)
        .map_err(|e| invalid(&args.home, e.to_string()))?;
    fs::create_dir_all(&args.home).map_err(io_err(&args.home))?;
    let config_path = args.home.join("config.toml");
    if config_path.exists() {
        return Err(invalid(
            &config_path,
            "already exists; refusing to overwrite",
        ));
    }
    let mut rng = rand::rngs::OsRng;
    let node_key = ed25519_dalek::SigningKey::generate(&mut rng);
    let validator_key = ed25519_dalek::SigningKey::generate(&mut rng);
    let encryption_key = x25519_dalek::StaticSecret::random_from_rng(rng);
    let encryption_public = x25519_dalek::PublicKey::from(&encryption_key);

    let node_public = node_key.verifying_key().to_bytes();
    write_key_file(
        &args.home.join("node.key"),
        &node_public,
        &node_key.to_bytes(),
    )?;
    write_key_file(
        &args.home.join("validator.key"),
        &validator_key.verifying_key().to_bytes(),
        &validator_key.to_bytes(),
    )?;
    write_key_file(
        &args.home.join("encryption.key"),
        encryption_public.as_bytes(),
        &encryption_key.to_bytes(),
    )?;

    let p2p_addr = format!("/ip4/127.0.0.1/tcp/{}", args.p2p_port);
    let api_addr = format!("127.0.0.1:{}", args.api_port);
    let config = NodeConfig {
        administration: args.administration.clone(),
        genesis: PathBuf::from("genesis.json"),
        listen_p2p: p2p_addr.clone(),
        listen_api: api_addr.clone(),
        peers: Vec::new(),
        log_file: default_log_file(),
        consensus: ConsensusSection::default(),
        mempool: MempoolSection::default(),
        vault: VaultSection::default(),
        validator: ValidatorSection::default(),
    };
    let text = toml::to_string_pretty(&config).map_err(|e| invalid(&config_path, e.to_string()))?;
    fs::write(&config_path, text).map_err(io_err(&config_path))?;
    let peer_id = peer_id_of(&node_public)
        .ok_or_else(|| invalid(&args.home, "generated node key is not a valid ed25519 key"))?;
    Ok(serde_json::json!({
        "administration": args.administration,
        "name": args.name,
        "node_key": hex::encode(node_public),
        "validator_key": hex::encode(validator_key.verifying_key().to_bytes()),
        "encryption_key": hex::encode(encryption_public.as_bytes()),
        "peer_id": peer_id.to_string(),
        "p2p_addr": p2p_addr,
        "api_addr": api_addr,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_private_keys_that_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("xa");
        let args = InitArgs {
            home: home.clone(),
            administration: "XA".into(),
            name: "Adjikistan".into(),
            p2p_port: 7101,
            api_port: 7201,
        };
        let summary = init_home(&args).unwrap();
        assert_eq!(summary["administration"], "XA");
        let (public, _secret) = read_key_file(&home.join("node.key")).unwrap();
        assert_eq!(summary["node_key"], hex::encode(public));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(home.join("node.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(init_home(&args).is_err(), "init must not overwrite a home");
        let text = fs::read_to_string(home.join("config.toml")).unwrap();
        let config: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.listen_api, "127.0.0.1:7201");
        assert!(!summary.to_string().contains("secret"));
        assert!(!text.contains("[vault]"), "defaults are not written");
        assert_eq!(config.vault.backend, VaultBackend::Rocksdb);
        assert_eq!(config.validator.key, ValidatorKeySource::File);
    }

    #[test]
    fn init_writes_no_ucr_key_and_a_leftover_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("xa");
        let summary = init_home(&InitArgs {
            home: home.clone(),
            administration: "XA".into(),
            name: "Adjikistan".into(),
            p2p_port: 7101,
            api_port: 7201,
        })
        .unwrap();
        assert!(
            !home.join("ucr.key").exists(),
            "UCR keys live on the ledger"
        );
        let key = |field: &str| {
            let bytes: [u8; 32] = hex::decode(summary[field].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            bytes
        };
        let genesis = Genesis {
            chain_id: "carnet-test".into(),
            genesis_time_ms: 1_700_000_000_000,
            administrations: vec![carnet_contracts::Administration {
                code: carnet_contracts::AdminCode("XA".into()),
                name: "Adjikistan".into(),
                node_key: carnet_contracts::PublicKey(key("node_key")),
                validator_key: carnet_contracts::PublicKey(key("validator_key")),
                encryption_key: key("encryption_key"),
                voting_power: 1,
                active: true,
            }],
            officers: Vec::new(),
            agreements: Vec::new(),
            epoch_length_blocks: carnet_contracts::DEFAULT_EPOCH_LENGTH_BLOCKS,
        };
        fs::write(
            home.join("genesis.json"),
            serde_json::to_vec(&genesis).unwrap(),
        )
        .unwrap();
        // A leftover from an older version, not even a valid key: ignored.
        fs::write(home.join("ucr.key"), "not a key").unwrap();
        let loaded = NodeHome::load(&home).unwrap();
        assert_eq!(loaded.config.administration, "XA");
        assert_eq!(loaded.genesis, genesis);
    }

    const BASE: &str = r#"
administration = "XA"
genesis = "genesis.json"
listen_p2p = "/ip4/127.0.0.1/tcp/7101"
listen_api = "127.0.0.1:7201"
"#;

    #[test]
    fn hsm_switches_parse_and_are_checked() {
        let p = Path::new("config.toml");
        let c = NodeConfig::parse(p, BASE).unwrap();
        assert_eq!(c.vault, VaultSection::default());
        assert_eq!(c.validator.label(), "carnet-validator");

        let text = format!(
            "{BASE}[vault]\nbackend = \"pkcs11\"\npkcs11_module = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"carnet\"\npin_file = \"pin\"\n[validator]\nkey = \"pkcs11\"\nkey_label = \"val-XA\"\n"
        );
        let c = NodeConfig::parse(p, &text).unwrap();
        assert_eq!(c.vault.backend, VaultBackend::Pkcs11);
        assert_eq!(c.vault.token_label.as_deref(), Some("carnet"));
        assert_eq!(c.vault.pin_file.as_deref(), Some(Path::new("pin")));
        assert_eq!(c.validator.key, ValidatorKeySource::Pkcs11);
        assert_eq!(c.validator.label(), "val-XA");

        let env = format!(
            "{BASE}[vault]\nbackend = \"pkcs11\"\npkcs11_module = \"/m.so\"\ntoken_label = \"t\"\npin_env = \"PIN\"\n"
        );
        let c = NodeConfig::parse(p, &env).unwrap();
        assert_eq!(c.vault.pin_env.as_deref(), Some("PIN"));
        assert_eq!(c.validator.key, ValidatorKeySource::File);

        // Rejections: unknown backend, missing module, both or no PIN sources,
        // HSM validator key without a token, unknown field.
        for bad in [
            format!("{BASE}[vault]\nbackend = \"tpm\"\n"),
            format!("{BASE}[vault]\nbackend = \"pkcs11\"\ntoken_label = \"t\"\npin_env = \"P\"\n"),
            format!("{BASE}[vault]\nbackend = \"pkcs11\"\npkcs11_module = \"/m.so\"\ntoken_label = \"t\"\n"),
            format!("{BASE}[vault]\nbackend = \"pkcs11\"\npkcs11_module = \"/m.so\"\ntoken_label = \"t\"\npin_env = \"P\"\npin_file = \"f\"\n"),
            format!("{BASE}[validator]\nkey = \"pkcs11\"\n"),
            format!("{BASE}[validator]\nkey = \"file\"\nsecret = \"x\"\n"),
        ] {
            assert!(NodeConfig::parse(p, &bad).is_err(), "{bad}");
        }
    }
}
