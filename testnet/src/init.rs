//! `carnet-testnet init`: builds a local network of N administrations.
//!
//! For each administration: picks two free loopback ports, runs `carnet-node init` and
//! reads the public keys it prints; then writes one `genesis.json` (every administration
//! a validator with voting power 1, one officer per administration holding every role,
//! and the **default agreement** among all members — a testnet convenience so that
//! documents can be filed without proposing an agreement first), each node's `peers`,
//! the officer keys and CLI profiles.
//!
//! Must never reuse a directory that already holds a testnet, and never write a secret
//! anywhere but a 0600 key file.

use crate::layout::{NodeEntry, Testnet, ADMINISTRATIONS, CHAIN_ID, MAX_NODES, MIN_NODES};
use crate::{Result, TestnetError};
use carnet_cli::profile::{self, Profile};
use carnet_contracts::agreement::{Agreement, DataCluster, Delivery, Trigger};
use carnet_contracts::{
    AdminCode, Administration, AgreementId, DocumentKind, Genesis, Officer, PublicKey, Role,
};
use ed25519_dalek::SigningKey;
use rand::Rng;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// What `carnet-node init` prints (public values only).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NodeInitOutput {
    pub administration: String,
    pub name: String,
    pub node_key: String,
    pub validator_key: String,
    pub encryption_key: String,
    pub peer_id: String,
    pub p2p_addr: String,
    pub api_addr: String,
}

/// Ports handed out by this process, so parallel tests never get the same one.
static PORTS_GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Lowest port of the kernel's ephemeral range; test ports stay below it so an outgoing
/// connection can never hold a stopped node's port when it restarts.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768)
}

/// `count` distinct free loopback TCP ports below the ephemeral range.
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let high = ephemeral_low().max(12_000);
    let low = 10_000u16;
    let mut rng = rand::thread_rng();
    let mut guard = PORTS_GIVEN
        .lock()
        .map_err(|_| TestnetError::Invalid("port registry poisoned".into()))?;
    let given = guard.get_or_insert_with(HashSet::new);
    let mut ports = Vec::with_capacity(count);
    let mut attempts = 0u32;
    while ports.len() < count {
        attempts += 1;
        if attempts > 10_000 {
            return Err(TestnetError::Invalid(format!(
                "found only {} free ports in {low}..{high}",
                ports.len()
            )));
        }
        let port = rng.gen_range(low..high);
        if given.contains(&port) || ports.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    given.extend(ports.iter().copied());
    Ok(ports)
}

/// Runs `carnet-node init` for one home and parses what it prints.
pub fn init_node_home(
    node_binary: &Path,
    home: &Path,
    code: &str,
    name: &str,
    p2p_port: u16,
    api_port: u16,
) -> Result<NodeInitOutput> {
    let output = Command::new(node_binary)
        .arg("init")
        .arg("--home")
        .arg(home)
        .args(["--administration", code, "--name", name])
        .args(["--p2p-port", &p2p_port.to_string()])
        .args(["--api-port", &api_port.to_string()])
        .output()
        .map_err(TestnetError::io(node_binary))?;
    if !output.status.success() {
        return Err(TestnetError::NodeInit {
            code: code.to_string(),
            message: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The summary is the last JSON object printed.
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .map(str::to_string)
        .unwrap_or_else(|| stdout.to_string());
    serde_json::from_str(&json)
        .or_else(|_| serde_json::from_str(&stdout))
        .map_err(|e| TestnetError::NodeInit {
            code: code.to_string(),
            message: format!("cannot read its summary ({e}): {}", stdout.trim()),
        })
}

/// Sets `peers` in `HOME/config.toml`, keeping every other setting.
pub fn set_peers(home: &Path, peers: &[String]) -> Result<()> {
    edit_config(home, |table| {
        table.insert(
            "peers".into(),
            toml::Value::Array(peers.iter().cloned().map(toml::Value::String).collect()),
        );
    })
}

/// Applies `edit` to `HOME/config.toml` as a TOML table.
pub fn edit_config(home: &Path, edit: impl FnOnce(&mut toml::Table)) -> Result<()> {
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(TestnetError::io(&path))?;
    let mut table: toml::Table = toml::from_str(&text)
        .map_err(|e| TestnetError::Invalid(format!("{}: {e}", path.display())))?;
    edit(&mut table);
    let text = toml::to_string_pretty(&table)
        .map_err(|e| TestnetError::Invalid(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(TestnetError::io(&path))
}

/// Sets `[mempool] max_transactions` in `HOME/config.toml` (the bound past which the node
/// answers submissions 503), keeping every other setting. Refuses 0.
pub fn set_mempool_max_transactions(home: &Path, max_transactions: usize) -> Result<()> {
    if max_transactions == 0 {
        return Err(TestnetError::Invalid(
            "--mempool-max-transactions must be positive".into(),
        ));
    }
    let value = i64::try_from(max_transactions).map_err(|_| {
        TestnetError::Invalid(format!(
            "--mempool-max-transactions {max_transactions} is too large"
        ))
    })?;
    // `carnet-node init` writes the whole `[mempool]` section; only its bound changes.
    let mut found = false;
    edit_config(home, |table| {
        if let Some(toml::Value::Table(section)) = table.get_mut("mempool") {
            section.insert("max_transactions".into(), toml::Value::Integer(value));
            found = true;
        }
    })?;
    if !found {
        return Err(TestnetError::Invalid(format!(
            "{}: no [mempool] section to set the bound in",
            home.join("config.toml").display()
        )));
    }
    Ok(())
}

/// The genesis of a network of `members`, with one officer (every role) per member.
/// The administration record (as in genesis.json, and as `carnet member propose-add
/// --file` takes it) of a node home `carnet-node init` created.
pub fn administration_of(m: &NodeInitOutput) -> Result<Administration> {
    let bad = |what: &str, e: carnet_contracts::ContractError| {
        TestnetError::Invalid(format!("`carnet-node init` printed a bad {what}: {e}"))
    };
    let encryption =
        PublicKey::from_hex(&m.encryption_key).map_err(|e| bad("encryption_key", e))?;
    Ok(Administration {
        code: AdminCode::parse(&m.administration).map_err(|e| bad("administration", e))?,
        name: m.name.clone(),
        node_key: PublicKey::from_hex(&m.node_key).map_err(|e| bad("node_key", e))?,
        validator_key: PublicKey::from_hex(&m.validator_key)
            .map_err(|e| bad("validator_key", e))?,
        encryption_key: encryption.0,
        voting_power: 1,
        active: true,
    })
}

/// Sets the consensus epoch length in the testnet's genesis and every node's copy.
/// Only before the nodes first start: a store refuses a genesis it was not made with.
pub fn set_epoch_length(testnet: &Testnet, epoch_length_blocks: u64) -> Result<()> {
    if epoch_length_blocks == 0 {
        return Err(TestnetError::Invalid(
            "--epoch-length-blocks must be positive".into(),
        ));
    }
    let path = testnet.genesis_path();
    let bytes = std::fs::read(&path).map_err(TestnetError::io(&path))?;
    let mut genesis: Genesis = serde_json::from_slice(&bytes)
        .map_err(|e| TestnetError::Invalid(format!("{}: {e}", path.display())))?;
    genesis.epoch_length_blocks = epoch_length_blocks;
    write_genesis(&path, &genesis)?;
    for node in &testnet.nodes {
        write_genesis(&node.home.join("genesis.json"), &genesis)?;
    }
    Ok(())
}

/// Prepares the node of an administration that is NOT in genesis — a candidate for
/// admission by vote (`carnet member propose-add`): its home with the testnet's
/// genesis, every existing node as a peer, an officer profile; adds it to the testnet
/// (saved) and returns its member file for the proposal: the administration record with
/// its first officer (the profile's key, every role), registered when the admission
/// takes effect. Its node follows the chain once the members admit it, and votes from the
/// first epoch that names it.
pub fn add_candidate(
    testnet: &mut Testnet,
    node_binary: &Path,
    code: &str,
    name: &str,
) -> Result<serde_json::Value> {
    if testnet.nodes.iter().any(|n| n.code == code) {
        return Err(TestnetError::Invalid(format!(
            "{code} is already in the testnet"
        )));
    }
    let home = testnet.dir.join("nodes").join(code);
    let ports = free_ports(2)?;
    let out = init_node_home(node_binary, &home, code, name, ports[0], ports[1])?;
    let entry = NodeEntry {
        code: code.to_string(),
        name: name.to_string(),
        home: home.clone(),
        api: if out.api_addr.contains("://") {
            out.api_addr.clone()
        } else {
            format!("http://{}", out.api_addr)
        },
        p2p: match out.p2p_addr.split_once("/p2p/") {
            Some((addr, _)) => addr.to_string(),
            None => out.p2p_addr.clone(),
        },
        peer_id: out.peer_id.clone(),
        pid: None,
    };
    let genesis = testnet.genesis_path();
    std::fs::copy(&genesis, home.join("genesis.json")).map_err(TestnetError::io(&genesis))?;
    let peers: Vec<String> = testnet.nodes.iter().map(NodeEntry::dial_addr).collect();
    set_peers(&home, &peers)?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    profile::write_signing_key(&testnet.officer_key_path(code), &key)?;
    Profile {
        administration: Some(code.to_string()),
        node: Some(entry.api.clone()),
        key: Some(testnet.officer_key_path(code)),
    }
    .save(&testnet.profile_path(code))?;
    testnet.nodes.push(entry);
    testnet.save()?;
    let record = administration_of(&out)?;
    let mut member = serde_json::to_value(&record)
        .map_err(|e| TestnetError::Invalid(format!("member record: {e}")))?;
    let roles = serde_json::to_value([Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin])
        .map_err(|e| TestnetError::Invalid(format!("roles: {e}")))?;
    member["officers"] = serde_json::json!([{
        "key": hex::encode(key.verifying_key().to_bytes()),
        "name": format!("{code} duty officer"),
        "roles": roles,
    }]);
    Ok(member)
}

pub fn build_genesis(
    chain_id: &str,
    genesis_time_ms: u64,
    members: &[NodeInitOutput],
    officers: &[(String, PublicKey)],
) -> Result<Genesis> {
    let bad = |what: &str, e: carnet_contracts::ContractError| {
        TestnetError::Invalid(format!("`carnet-node init` printed a bad {what}: {e}"))
    };
    let administrations = members
        .iter()
        .map(administration_of)
        .collect::<Result<Vec<_>>>()?;
    let officers = officers
        .iter()
        .map(|(code, key)| {
            Ok(Officer {
                key: *key,
                administration: AdminCode::parse(code).map_err(|e| bad("administration", e))?,
                name: format!("{code} duty officer"),
                roles: vec![Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin],
                active: true,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let agreements = if administrations.len() >= 2 {
        vec![default_agreement(&administrations)?]
    } else {
        Vec::new()
    };
    Ok(Genesis {
        chain_id: chain_id.to_string(),
        genesis_time_ms,
        administrations,
        officers,
        agreements,
        epoch_length_blocks: carnet_contracts::DEFAULT_EPOCH_LENGTH_BLOCKS,
    })
}

/// Id of the testnet's default agreement.
pub const DEFAULT_AGREEMENT_ID: AgreementId =
    AgreementId([0x0d, 0xef, 0xa0, 0x17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

/// Data elements (WCO Data Model style) the default agreement allows for every kind:
/// the union of the example agreements in `testnet/agreements/` plus `Remarks` and
/// `Sequence`, which the tests and the benchmark use.
#[rustfmt::skip]
pub const DEFAULT_AGREEMENT_ELEMENTS: &[&str] = &[
    "AeoId", "AeoType", "BaselCode", "CertificateNumber", "CommodityCode",
    "ConsentReference", "ConsentValidUntil", "ConsigneeName", "ControlDate", "ControlOffice",
    "DestinationCountry", "DisposalOperation", "DisposerName", "ExitDate", "ExitOffice",
    "ExportCountry", "ExporterId", "ExporterName", "Findings", "GeneratorName",
    "GoodsDescription", "GrossMass", "HsCode", "ImportCountry", "ImporterName",
    "InvoiceCurrency", "InvoiceDate", "InvoiceNumber", "IssueDate", "IssuingAuthority",
    "MovementNumber", "NetMass", "NotificationNumber", "OperatorId", "OperatorName",
    "OriginCountry", "OriginCriterion", "PreferenceAgreement", "Quantity", "Remarks",
    "Result", "Sequence", "ShipmentDate", "StatisticalValue", "Status",
    "SuspensionReason", "TransitCountries", "TransportMeansId", "TransportMode", "UCR",
    "ValidFrom", "ValidUntil", "WasteDescription",
];

/// The testnet's default agreement: every member a party, every document kind covered
/// with [`DEFAULT_AGREEMENT_ELEMENTS`] (none required), push and pull, no retention.
/// A fresh UCR key is drawn and wrapped to every member's encryption key. Real networks
/// have no such agreement: their administrations propose and accept each one.
pub fn default_agreement(administrations: &[Administration]) -> Result<Agreement> {
    let allowed: Vec<String> = DEFAULT_AGREEMENT_ELEMENTS
        .iter()
        .map(|e| e.to_string())
        .collect();
    let mut agreement = Agreement {
        id: DEFAULT_AGREEMENT_ID,
        title: "Testnet default agreement among all members (testnet convenience)".into(),
        parties: administrations.iter().map(|a| a.code.clone()).collect(),
        clusters: DocumentKind::ALL
            .iter()
            .map(|kind| DataCluster {
                kind: *kind,
                allowed: allowed.clone(),
                required: Vec::new(),
            })
            .collect(),
        trigger: Trigger::OnIssue,
        legal_basis: "Testnet only: no legal basis; real networks agree each exchange".into(),
        purpose: "Trying Carnet out: any document among the testnet's administrations".into(),
        retention_days: None,
        retention_seconds: None,
        delivery: Delivery::Both,
        ucr_key_wraps: Vec::new(),
    };
    let ucr_key = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
    agreement
        .wrap_ucr_key(
            &ucr_key,
            |code| {
                administrations
                    .iter()
                    .find(|a| &a.code == code)
                    .map(|a| a.encryption_key)
            },
            rand::random::<[u8; 32]>,
        )
        .map_err(|e| TestnetError::Invalid(format!("default agreement: {e}")))?;
    Ok(agreement)
}

/// Writes `genesis` as JSON to `path`.
pub fn write_genesis(path: &Path, genesis: &Genesis) -> Result<()> {
    let text = serde_json::to_string_pretty(genesis)
        .map_err(|e| TestnetError::Invalid(format!("cannot encode genesis: {e}")))?;
    std::fs::write(path, text + "\n").map_err(TestnetError::io(path))
}

/// Absolute form of `dir` (created if missing).
pub fn absolute_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(TestnetError::io(dir))?;
    dir.canonicalize().map_err(TestnetError::io(dir))
}

/// `carnet-testnet init --nodes N --dir DIR`.
pub fn init(nodes: usize, dir: &Path, node_binary: &Path) -> Result<Testnet> {
    if !(MIN_NODES..=MAX_NODES).contains(&nodes) {
        return Err(TestnetError::Invalid(format!(
            "--nodes must be between {MIN_NODES} and {MAX_NODES}, got {nodes}"
        )));
    }
    let dir = absolute_dir(dir)?;
    if Testnet::file(&dir).exists() || dir.join("nodes").exists() {
        return Err(TestnetError::Invalid(format!(
            "{} already holds a testnet; `carnet-testnet down` it and remove it, or pick another --dir",
            dir.display()
        )));
    }
    for sub in ["nodes", "officers", "profiles"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(TestnetError::io(&path))?;
    }
    let ports = free_ports(nodes * 2)?;
    let mut members = Vec::with_capacity(nodes);
    let mut entries = Vec::with_capacity(nodes);
    for (i, (code, name)) in ADMINISTRATIONS.iter().take(nodes).enumerate() {
        let home = dir.join("nodes").join(code);
        let out = init_node_home(
            node_binary,
            &home,
            code,
            name,
            ports[2 * i],
            ports[2 * i + 1],
        )?;
        let api = if out.api_addr.contains("://") {
            out.api_addr.clone()
        } else {
            format!("http://{}", out.api_addr)
        };
        let p2p = match out.p2p_addr.split_once("/p2p/") {
            Some((addr, _)) => addr.to_string(),
            None => out.p2p_addr.clone(),
        };
        entries.push(NodeEntry {
            code: code.to_string(),
            name: name.to_string(),
            home,
            api,
            p2p,
            peer_id: out.peer_id.clone(),
            pid: None,
        });
        members.push(out);
    }

    let testnet = Testnet {
        dir: dir.clone(),
        chain_id: CHAIN_ID.to_string(),
        nodes: entries,
    };

    let mut officers = Vec::with_capacity(nodes);
    for entry in &testnet.nodes {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        profile::write_signing_key(&testnet.officer_key_path(&entry.code), &key)?;
        officers.push((
            entry.code.clone(),
            PublicKey(key.verifying_key().to_bytes()),
        ));
        Profile {
            administration: Some(entry.code.clone()),
            node: Some(entry.api.clone()),
            key: Some(testnet.officer_key_path(&entry.code)),
        }
        .save(&testnet.profile_path(&entry.code))?;
    }

    let genesis = build_genesis(CHAIN_ID, carnet_cli::client::now_ms(), &members, &officers)?;
    write_genesis(&testnet.genesis_path(), &genesis)?;
    for entry in &testnet.nodes {
        write_genesis(&entry.home.join("genesis.json"), &genesis)?;
        let peers: Vec<String> = testnet
            .nodes
            .iter()
            .filter(|other| other.code != entry.code)
            .map(NodeEntry::dial_addr)
            .collect();
        set_peers(&entry.home, &peers)?;
    }
    testnet.save()?;
    Ok(testnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports = free_ports(8).unwrap();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 8);
        let more = free_ports(8).unwrap();
        assert!(
            more.iter().all(|p| !unique.contains(p)),
            "ports handed out twice"
        );
        assert!(ports.iter().all(|p| *p < ephemeral_low().max(12_000)));
    }

    #[test]
    fn network_size_outside_4_to_7_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for n in [3, 8] {
            let err = init(n, dir.path(), Path::new("/nonexistent/carnet-node")).unwrap_err();
            assert!(err.to_string().contains("between 4 and 7"), "{err}");
        }
    }

    #[test]
    fn genesis_gives_each_member_one_vote_and_one_officer_with_every_role() {
        let member = |code: &str| NodeInitOutput {
            administration: code.into(),
            name: format!("{code} land"),
            node_key: hex::encode([1u8; 32]),
            validator_key: hex::encode([2u8; 32]),
            encryption_key: hex::encode([3u8; 32]),
            peer_id: "12D3".into(),
            p2p_addr: "/ip4/127.0.0.1/tcp/1".into(),
            api_addr: "127.0.0.1:2".into(),
        };
        let members = [member("XA"), member("XB")];
        let officers = [("XA".to_string(), PublicKey([9u8; 32]))];
        let genesis = build_genesis("c", 5, &members, &officers).unwrap();
        assert!(genesis
            .administrations
            .iter()
            .all(|a| a.voting_power == 1 && a.active));
        assert_eq!(genesis.officers[0].roles.len(), 4);
        let json = serde_json::to_string(&genesis).unwrap();
        assert!(
            json.contains(&hex::encode([3u8; 32])),
            "keys are hex in JSON: {json}"
        );
    }
}
