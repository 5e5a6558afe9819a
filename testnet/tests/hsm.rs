//! A live node whose key vault is a PKCS#11 token (SoftHSM2), among three nodes with the
//! RocksDB vault (issue 5, "key vault backends"): XA keeps every document key on its
//! token; its officer files a declaration to XB, both read it (XB's copy of the keys was
//! unwrapped from XA's token and delivered), XA erases it, every node attests, and the
//! token holds one object fewer — `C_DestroyObject`, not a tombstone.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SO_PIN: &str = "31415926";
const USER_PIN: &str = "27182818";

const MODULES: [&str; 4] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// SoftHSM2 objects (`*.object` files) under the token directory.
fn token_objects(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "object") {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn a_node_with_its_vault_on_softhsm2_files_reads_erases_and_attests() {
    let Some(module) = MODULES.iter().map(PathBuf::from).find(|p| p.is_file()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have SoftHSM2 (scripts/install-deps.sh installs softhsm2)"
        );
        eprintln!("SKIPPED (not in CI): SoftHSM2 is not installed");
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("carnet-hsm-")
        .tempdir()
        .unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // Read by softhsm2-util below and by the node processes (they inherit it).
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let made = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "carnet-XA",
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ])
        .output()
        .expect("softhsm2-util");
    assert!(made.status.success(), "{}", describe(&made));

    let node_binary = carnet_testnet::process::locate_binary(carnet_testnet::process::NODE_BINARY)
        .expect("carnet-node");
    let testnet =
        carnet_testnet::init::init(4, &dir.path().join("net"), &node_binary).expect("init");
    let home = testnet.node("XA").unwrap().home.clone();
    let pin = home.join("hsm-user.pin");
    std::fs::write(&pin, USER_PIN).unwrap();
    let config = home.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("[vault]"), "init writes no [vault] section");
    text.push_str(&format!(
        "\n[vault]\nbackend = \"pkcs11\"\npkcs11_module = \"{}\"\ntoken_label = \"carnet-XA\"\npin_file = \"hsm-user.pin\"\n",
        module.display()
    ));
    std::fs::write(&config, text).unwrap();
    let mut network = carnet_testnet::Network::new(testnet, node_binary);
    network.up(UP_TIMEOUT).expect("up, XA on SoftHSM2");
    let net = TestNetwork {
        network,
        dir: tempfile::Builder::new()
            .prefix("carnet-hsm-scratch-")
            .tempdir()
            .unwrap(),
    };
    let (xa, xb) = (net.profile("XA"), net.profile("XB"));
    let (xa_s, xb_s) = (xa.to_str().unwrap(), xb.to_str().unwrap());
    let scratch = net.scratch();

    let before = token_objects(&tokens);
    let ucr = format!("24XA{}-HSM", tag().to_uppercase());
    let payload = export_declaration(&ucr, &format!("HSM-MARKER-{}", tag()));
    let file = write_file(&scratch, "export.json", &payload);
    let submitted = submit(
        &["--profile", xa_s, "--output", "json"],
        "export-declaration",
        &ucr,
        "XB",
        &file,
    );
    assert_exit(&submitted, 0, "XA files with its keys on the token");
    let submitted = json(&submitted);
    let id = submitted["id"].as_str().unwrap().to_string();
    assert_eq!(
        token_objects(&tokens),
        before + 1,
        "one token object for the document's keys"
    );
    wait_for_height(xb_s, submitted["height"].as_u64().unwrap());
    assert_decrypts_to_file(xa_s, &id, &scratch.join("xa.json"), &payload, "XA reads");
    // XB's keys were read from XA's token, wrapped and delivered: retry while in flight.
    let out = scratch.join("xb.json");
    let mut last = String::new();
    for _ in 0..60 {
        let read = decrypt(&["--profile", xb_s], &id, "import clearance", Some(&out));
        if read.status.success() {
            last.clear();
            break;
        }
        last = describe(&read);
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(last.is_empty(), "XB reads: {last}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), payload);

    let erased = carnet(&[
        "--profile",
        xa_s,
        "--output",
        "json",
        "doc",
        "erase",
        &id,
        "--reason",
        "data subject request",
        "--legal-basis",
        "Regulation (EU) 2016/679, Article 17(1)(a)",
    ]);
    assert_exit(&erased, 0, "XA erases");
    let status = carnet(&[
        "--profile",
        xa_s,
        "--output",
        "json",
        "doc",
        "status",
        &id,
        "--wait-attestations",
        "60",
    ]);
    assert_exit(&status, 0, "every node attests, XA's from its token");
    assert_eq!(json(&status)["pending"], serde_json::json!([]));
    assert_eq!(
        token_objects(&tokens),
        before,
        "the keys' object is destroyed on the token"
    );
    let read = decrypt(&["--profile", xa_s, "--output", "json"], &id, "late", None);
    assert_error(&read, 4, "erased", "XA reads after erasure");
}
