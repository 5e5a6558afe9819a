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
        "{{\n  \"UCR\": \"{ucr}\",\n  \"ExporterName\":   \"Adjikistan Copper Exports Ltd\",\n  \"ConsigneeName\": \"Borastria Metals\",\n  \"CommodityCode\": \"740311\",\n  \"GoodsDescription\": \"copper cathodes\",\n  \"NetMass\": 24000.5,\n  \"Remarks\": \"{marker}\"\n}}\n"
    )
}

/// Every file under `root` whose bytes contain `needle`.
pub fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let is_real_dir = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    walk(root, is_real_dir, |path| {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return;
        };
        if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    });
    found
}

/// Number of files under `root` (to show a scan looked at something).
pub fn count_files(root: &Path) -> usize {
    let mut count = 0;
    walk(root, Path::is_dir, |_| count += 1);
    count
}

/// Visits every entry under `root` that `descend` does not enter (unreadable
/// directories are skipped).
fn walk(root: &Path, descend: impl Fn(&Path) -> bool, mut visit: impl FnMut(PathBuf)) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if descend(&path) {
                stack.push(path);
            } else {
                visit(path);
            }
        }
    }
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

/// Runs `carnet PREFIX.. doc submit --kind KIND --ucr UCR --to TO --file FILE`.
pub fn submit(prefix: &[&str], kind: &str, ucr: &str, to: &str, file: &Path) -> Output {
    let mut args = prefix.to_vec();
    args.extend_from_slice(&[
        "doc",
        "submit",
        "--kind",
        kind,
        "--ucr",
        ucr,
        "--to",
        to,
        "--file",
        file.to_str().unwrap(),
    ]);
    carnet(&args)
}

/// Asserts a CLI run failed with exit code `exit` and the JSON error code `code`.
pub fn assert_error(out: &Output, exit: i32, code: &str, what: &str) {
    assert_exit(out, exit, what);
    assert_eq!(
        json(out)["error"]["code"],
        code,
        "{what}: {}",
        describe(out)
    );
}

/// Runs `carnet PREFIX.. doc decrypt ID --purpose PURPOSE [--out OUT]`.
pub fn decrypt(prefix: &[&str], id: &str, purpose: &str, out: Option<&Path>) -> Output {
    let mut args = prefix.to_vec();
    args.extend_from_slice(&["doc", "decrypt", id, "--purpose", purpose]);
    if let Some(out) = out {
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    }
    carnet(&args)
}

/// As `profile`, decrypts `id` for import clearance into `out` and asserts it comes back
/// byte for byte as `payload`.
pub fn assert_decrypts_to_file(profile: &str, id: &str, out: &Path, payload: &str, what: &str) {
    let decrypted = decrypt(
        &["--profile", profile],
        id,
        "import clearance of consignment",
        Some(out),
    );
    assert_exit(&decrypted, 0, what);
    assert_eq!(
        std::fs::read(out).unwrap(),
        payload.as_bytes(),
        "payload byte-identical"
    );
}

/// Waits until the node behind `profile` has executed `height`: a block final on one node
/// is executed by the others a moment later, so reads on another node wait for it first.
pub fn wait_for_height(profile: &str, height: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = carnet(&["--profile", profile, "--output", "json", "status"]);
        if out.status.success() && json(&out)["height"].as_u64().unwrap_or(0) >= height {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node of {profile} did not reach height {height}: {}",
            describe(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `carnet --profile PROFILE --output json ARGS...`, asserting exit 0.
pub fn ok(profile: &Path, args: &[&str], what: &str) -> serde_json::Value {
    let mut all = vec!["--profile", profile.to_str().unwrap(), "--output", "json"];
    all.extend_from_slice(args);
    let out = carnet(&all);
    assert_exit(&out, 0, what);
    json(&out)
}

/// Polls `check` until it holds, failing with `what` and the last observation after
/// `settle` (an upper bound for a network condition, not a performance assertion).
pub fn eventually<T>(
    what: &str,
    settle: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + settle;
    loop {
        let last = match check() {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(Instant::now() < deadline, "{what}: {last}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node log of `code` so far.
pub fn log_of(net: &TestNetwork, code: &str) -> String {
    let node = net.network.testnet.node(code).expect("node entry");
    String::from_utf8_lossy(&std::fs::read(node.node_log()).unwrap_or_default()).into_owned()
}
