//! Shared helpers of the multi-process tests: a fresh network in its own temp dir with
//! its own ports, the `carnet` binary, payload files and disk scans.
//!
//! Binaries come from `CARNET_BIN_DIR` or from `target/release/` (the test executable's
//! `../`). Build them first: `cargo build --release --workspace`.
#![allow(dead_code)]

use carnet_testnet::{init, process, Network};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Time for a fresh network to finalize its first block on every node.
pub const UP_TIMEOUT: Duration = Duration::from_secs(90);

/// A started network and the temporary directory holding it. Nodes stop on drop,
/// before the directory is removed.
pub struct TestNetwork {
    pub network: Network,
    pub dir: tempfile::TempDir,
}

impl TestNetwork {
    /// Scratch space for payloads and outputs, outside every node home.
    pub fn scratch(&self) -> PathBuf {
        let path = self.dir.path().join("scratch");
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    pub fn profile(&self, code: &str) -> PathBuf {
        self.network.testnet.profile_path(code)
    }
}

/// `carnet-testnet init --nodes n` + `up` in a fresh temp dir.
pub fn start_network(nodes: usize) -> TestNetwork {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("carnet-it-")
        .tempdir()
        .expect("temp dir");
    let node_binary = process::locate_binary(process::NODE_BINARY).expect("carnet-node binary");
    let testnet = init::init(nodes, &dir.path().join("net"), &node_binary).expect("testnet init");
    let mut network = Network::new(testnet, node_binary);
    network.up(UP_TIMEOUT).expect("testnet up");
    eprintln!(
        "[setup] {nodes}-node network up in {:.1} s at {}",
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );
    TestNetwork { network, dir }
}

/// Runs the `carnet` CLI.
pub fn carnet(args: &[&str]) -> Output {
    let binary = process::locate_binary("carnet").expect("carnet binary");
    Command::new(binary)
        .args(args)
        .env_remove("CARNET_PROFILE")
        .env_remove("CARNET_NODE")
        .env_remove("CARNET_KEY")
        .output()
        .expect("run carnet")
}

/// Exit code of a CLI run, with its output shown if the assertion fails.
pub fn exit_code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses the CLI's JSON stdout.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(out)))
}

/// Asserts a CLI run exited with `code`.
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(exit_code(out), code, "{what}: {}", describe(out));
}

/// A random hex tag, so concurrent runs never share UCRs or markers.
pub fn tag() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An export declaration carrying `marker`, in deliberately irregular JSON formatting (it
/// must come back byte for byte).
pub fn export_declaration(ucr: &str, marker: &str) -> String {
    format!(
        "{{\n  \"ucr\": \"{ucr}\",\n  \"declarant\":   \"Adjikistan Copper Exports Ltd\",\n  \"consignee\": \"Borastria Metals\",\n  \"goods\": [{{\"hs\": \"740311\", \"description\": \"copper cathodes\", \"net_kg\": 24000.5}}],\n  \"note\": \"{marker}\"\n}}\n"
    )
}

/// Every file under `root` whose bytes contain `needle`.
pub fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                if let Ok(bytes) = std::fs::read(&path) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(path);
                    }
                }
            }
        }
    }
    found
}

/// Number of files under `root` (to show a scan looked at something).
pub fn count_files(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                count += 1;
            }
        }
    }
    count
}

/// Runs `check`, printing its name and duration (the suite's per-check timing).
pub fn timed<T>(name: &str, check: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    eprintln!("[check] {name} ...");
    let value = check();
    eprintln!(
        "[check] {name} ok in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    value
}
