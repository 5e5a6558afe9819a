//! `carnet-node` processes: finding the binary, starting, signalling, liveness, log tails.
//!
//! A node runs in its own process group with stdin closed and stdout/stderr appended to
//! `HOME/stdout.log`. Must never signal a pid unless `/proc/PID/cmdline` shows it is a
//! `carnet-node` started on that very home (pids are reused).

use crate::layout::NodeEntry;
use crate::{Result, TestnetError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Name of the node binary.
pub const NODE_BINARY: &str = "carnet-node";
/// Time a node gets to stop after SIGTERM before it is killed.
pub const STOP_GRACE_MS: u64 = 10_000;

/// Finds a binary of this workspace: in `$CARNET_BIN_DIR`, next to the current
/// executable, or one directory up (a test executable lives in `target/release/deps`).
pub fn locate_binary(name: &str) -> Result<PathBuf> {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("CARNET_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        if path.is_file() {
            return Ok(path);
        }
        tried.push(path);
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..2 {
            let Some(d) = dir else { break };
            let path = d.join(name);
            if path.is_file() {
                return Ok(path);
            }
            tried.push(path);
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(TestnetError::BinaryNotFound {
        name: name.to_string(),
        message: format!(
            "looked at {}; build it with `cargo build --release --workspace` or set CARNET_BIN_DIR",
            tried.join(", ")
        ),
    })
}

/// How one node is started when it is not the plain `carnet-node start --home HOME`
/// (fault scenarios): another binary, a command it runs inside (e.g. `ip netns exec
/// NS`, which execs in place, so the pid is the node's), extra arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Launch {
    /// Replaces the testnet's node binary (a faulty or mutant build).
    pub binary: Option<PathBuf>,
    /// Program and arguments the node command is appended to.
    pub wrapper: Vec<String>,
    /// Arguments after `start --home HOME`.
    pub extra_args: Vec<String>,
}

/// Starts `carnet-node start --home HOME`; output is appended to `HOME/stdout.log`.
pub fn spawn_node(node_binary: &Path, node: &NodeEntry) -> Result<Child> {
    spawn_node_with(node_binary, node, &Launch::default())
}

/// [`spawn_node`] as `launch` says.
pub fn spawn_node_with(node_binary: &Path, node: &NodeEntry, launch: &Launch) -> Result<Child> {
    let node_binary = launch.binary.as_deref().unwrap_or(node_binary);
    let log_path = node.stdout_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(TestnetError::io(&log_path))?;
    let log_err = log.try_clone().map_err(TestnetError::io(&log_path))?;
    let mut command = match launch.wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(node_binary);
            c
        }
        None => Command::new(node_binary),
    };
    command
        .arg("start")
        .arg("--home")
        .arg(&node.home)
        .args(&launch.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .process_group(0)
        .spawn()
        .map_err(TestnetError::io(node_binary))
}

/// True if `pid` is a live (not zombie) `carnet-node` whose command line names `home`.
/// Whether process `pid` exists and is neither a zombie nor dead. A child just spawned
/// is alive before it has exec'd the node (then [`is_node_process`] is still false).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z") | Some("X") | None)
    })
}

pub fn is_node_process(pid: u32, home: &Path) -> bool {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return false,
    };
    // Field 3 (state) follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?");
    if state == "Z" || state == "X" {
        return false;
    }
    let cmdline = match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(c) => c,
        Err(_) => return false,
    };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let is_node = args
        .first()
        .map(|a| a.ends_with(NODE_BINARY))
        .unwrap_or(false);
    let home = home.to_string_lossy();
    is_node && args.iter().any(|a| a == home.as_ref())
}

/// Sends `signal` to the node process `pid` if it is the node of `home`.
/// Returns false if no such process runs.
pub fn signal_node(pid: u32, home: &Path, signal: Signal) -> bool {
    if !is_node_process(pid, home) {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    kill(Pid::from_raw(raw), signal).is_ok()
}

/// Waits until `pid` is no longer a running node of `home`, at most `timeout`.
pub fn wait_gone(pid: u32, home: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_node_process(pid, home) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !is_node_process(pid, home)
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE_MS`]. True if the node was running.
pub fn stop_node(pid: u32, home: &Path) -> bool {
    if !signal_node(pid, home, Signal::SIGTERM) {
        return false;
    }
    if !wait_gone(pid, home, Duration::from_millis(STOP_GRACE_MS)) {
        signal_node(pid, home, Signal::SIGKILL);
        wait_gone(pid, home, Duration::from_millis(STOP_GRACE_MS));
    }
    true
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The tail of a node's process output and of its tracing log, for error messages.
pub fn log_tails(node: &NodeEntry, lines: usize) -> String {
    let mut out = String::new();
    for path in [node.stdout_log(), node.node_log()] {
        let text = tail(&path, lines);
        if !text.trim().is_empty() {
            out.push_str(&format!(
                "\n--- last lines of {} ---\n{text}",
                path.display()
            ));
        }
    }
    if out.is_empty() {
        out.push_str(&format!("\n(no output in {})", node.home.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_is_not_a_node_is_never_signalled() {
        let me = std::process::id();
        assert!(!is_node_process(me, Path::new("/nonexistent-home")));
        assert!(!signal_node(
            me,
            Path::new("/nonexistent-home"),
            Signal::SIGTERM
        ));
        assert!(!is_node_process(u32::MAX - 1, Path::new("/")));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert_eq!(tail(&dir.path().join("missing"), 2), "");
    }
}
