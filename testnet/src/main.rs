//! `carnet-testnet`: create, start, inspect and break local Carnet networks.
//!
//! `init` writes a network into a directory; `up`/`down` start and stop every node;
//! `status` shows each node's height and last block; `kill` (SIGKILL) and `start` act
//! on one node for fault drills. Exit code 0 on success, 1 on failure with one clear
//! error (and the failing node's log tail where there is one).

use anyhow::Context;
use carnet_testnet::network::{Network, UP_TIMEOUT_MS};
use carnet_testnet::{bench, init, process};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "carnet-testnet",
    version,
    about = "Local Carnet networks: init, up, down, status, kill, start, bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputArg {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a network of N administrations (keys, genesis, configs, officers, profiles).
    Init {
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
    },
    /// Start every node; return once each has a final block.
    Up {
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
        /// Seconds to wait for the first final block on every node.
        #[arg(long, default_value_t = UP_TIMEOUT_MS / 1000)]
        timeout_secs: u64,
    },
    /// Stop every node (SIGTERM, then SIGKILL).
    Down {
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
    },
    /// Each node's state, height and last block hash.
    Status {
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputArg::Table)]
        output: OutputArg,
    },
    /// SIGKILL one node (a crash).
    Kill {
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
        /// Administration code, e.g. XB.
        #[arg(long)]
        node: String,
    },
    /// Start one node again.
    Start {
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
        #[arg(long)]
        node: String,
    },
    /// Open-loop load through the HTTP API; reports throughput, finality latency, CPU,
    /// RSS, disk per document and the machine's ceiling.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Target this testnet (initialised and started if needed); without it a fresh
    /// network is started in a temporary directory and stopped afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Seconds of load (with --rate).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Offered documents per second (the first step with --find-max).
    #[arg(long, required_unless_present = "find_max")]
    rate: Option<f64>,
    /// Step the rate up until p99 > 1 s or fewer than 90 % are acknowledged.
    #[arg(long)]
    find_max: bool,
    /// Seconds per --find-max step.
    #[arg(long, default_value_t = 10)]
    step_secs: u64,
    /// Rate multiplier between --find-max steps.
    #[arg(long, default_value_t = 1.5)]
    step_factor: f64,
    #[arg(long, default_value_t = 2048)]
    payload_bytes: usize,
    #[arg(long, default_value_t = 1)]
    recipients: usize,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    #[arg(long, value_enum, default_value_t = OutputArg::Table)]
    output: OutputArg,
    /// Where the JSON report is written (default DIR/bench-report.json).
    #[arg(long)]
    report: Option<PathBuf>,
}

impl BenchArgs {
    /// Checks the arguments and turns them into the bench configuration and output format.
    fn config(self) -> anyhow::Result<(bench::BenchConfig, OutputArg)> {
        let rate = self.rate.unwrap_or(50.0);
        anyhow::ensure!(rate > 0.0, "--rate must be positive");
        anyhow::ensure!(self.step_factor > 1.0, "--step-factor must be above 1");
        anyhow::ensure!(
            self.duration > 0 && self.step_secs > 0,
            "durations must be positive"
        );
        let config = bench::BenchConfig {
            dir: self.dir,
            nodes: self.nodes,
            duration_secs: self.duration,
            rate,
            find_max: self.find_max,
            step_secs: self.step_secs,
            step_factor: self.step_factor,
            payload_bytes: self.payload_bytes,
            recipients: self.recipients,
            concurrency: self.concurrency,
            report: self.report,
        };
        Ok((config, self.output))
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { nodes, dir } => {
            let binary = process::locate_binary(process::NODE_BINARY)?;
            let testnet = init::init(nodes, &dir, &binary)
                .with_context(|| format!("init of {}", dir.display()))?;
            println!(
                "testnet of {} nodes in {} (chain {})",
                testnet.nodes.len(),
                testnet.dir.display(),
                testnet.chain_id
            );
            for node in &testnet.nodes {
                println!(
                    "  {} {:<11} api {}  profile {}",
                    node.code,
                    node.name,
                    node.api,
                    testnet.profile_path(&node.code).display()
                );
            }
        }
        Command::Up { dir, timeout_secs } => {
            let mut network = Network::open(&dir)?;
            network.up(Duration::from_secs(timeout_secs))?;
            for report in network.report() {
                println!(
                    "{} up  pid {}  height {}",
                    report.code,
                    report.pid.map(|p| p.to_string()).unwrap_or_default(),
                    report.height.unwrap_or(0)
                );
            }
            network.detach();
        }
        Command::Down { dir } => {
            let mut network = Network::open(&dir)?;
            let stopped = network.down()?;
            println!("stopped {stopped} node(s)");
        }
        Command::Status { dir, output } => {
            let mut network = Network::open(&dir)?;
            let reports = network.report();
            match output {
                OutputArg::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "nodes": reports }))?
                ),
                OutputArg::Table => {
                    println!(
                        "{:<4} {:<11} {:<9} {:>8} {:>7}  LAST BLOCK",
                        "NODE", "NAME", "STATE", "PID", "HEIGHT"
                    );
                    for r in reports {
                        println!(
                            "{:<4} {:<11} {:<9} {:>8} {:>7}  {}",
                            r.code,
                            r.name,
                            r.state,
                            r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                            r.height
                                .map(|h| h.to_string())
                                .unwrap_or_else(|| "-".into()),
                            r.last_block_hash.unwrap_or_else(|| "-".into())
                        );
                    }
                }
            }
        }
        Command::Kill { dir, node } => {
            let mut network = Network::open(&dir)?;
            if network.kill(&node)? {
                println!("killed {node}");
            } else {
                println!("{node} was not running");
            }
        }
        Command::Start { dir, node } => {
            let mut network = Network::open(&dir)?;
            network.start(&node)?;
            let pid = network.testnet.node(&node)?.pid;
            println!(
                "started {node} (pid {})",
                pid.map(|p| p.to_string()).unwrap_or_default()
            );
            network.detach();
        }
        Command::Bench(args) => {
            let (config, output) = args.config()?;
            let report = bench::run(&config)?;
            match output {
                OutputArg::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputArg::Table => print!("{}", bench::render_table(&report)),
            }
        }
    }
    Ok(())
}
