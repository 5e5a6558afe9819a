//! `carnet-testnet`: create, start, inspect and break local Carnet networks.
//!
//! `init` writes a network into a directory (`compose` one laid out for docker compose);
//! `up`/`down` start and stop every node;
//! `status` shows each node's height and last block; `kill` (SIGKILL) and `start` act
//! on one node for fault drills; `scenario run FILE` runs a fault scenario and checks its
//! invariants, `scenario list` shows them. Exit code 0 on success, 1 on failure with one clear
//! error (and the failing node's log tail where there is one).

use anyhow::Context;
use carnet_testnet::network::{Network, UP_TIMEOUT_MS};
use carnet_testnet::{bench, docker, init, process};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "carnet-testnet",
    version,
    about = "Local Carnet networks: init, compose, up, down, status, kill, start, bench, scenario"
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
        /// Every node's mempool bound (`[mempool] max_transactions`): past it, document
        /// submissions are answered 503 with Retry-After. Default: the node's own.
        #[arg(long)]
        mempool_max_transactions: Option<usize>,
        /// Heights per consensus epoch (genesis `epoch_length_blocks`): the validator
        /// set follows membership votes at epoch boundaries. Default: the node's (256).
        #[arg(long)]
        epoch_length_blocks: Option<u64>,
    },
    /// Create a network of N administrations laid out for docker compose: one container
    /// per node, D/docker-compose.yml to run by hand, the image built FROM scratch.
    Compose {
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        #[arg(long, env = "CARNET_TESTNET_DIR", default_value = ".testnet")]
        dir: PathBuf,
        /// Do not build the image now (the docker runner builds it before starting).
        #[arg(long)]
        no_build: bool,
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
    /// Fault scenarios (testnet/scenarios/*.toml): run one, or list them.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunnerArg {
    /// Local processes (network namespaces for disconnect/partition; needs root).
    Process,
    /// Docker compose containers.
    Docker,
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Run one scenario: start a fresh network, load it, apply the timeline, check the
    /// invariants. Exit code 0 if every invariant holds, 1 otherwise.
    Run {
        /// The scenario file (testnet/scenarios/NAME.toml).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = RunnerArg::Process)]
        runner: RunnerArg,
        #[arg(long, value_enum, default_value_t = OutputArg::Table)]
        output: OutputArg,
        /// Testnet directory to create (must not hold a testnet); default: a fresh
        /// directory under the system temporary directory. The report is written into it
        /// as scenario-report.json.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Leave the nodes running afterwards (stop them with `carnet-testnet down`;
        /// process runner: its namespaces go with the next run that reclaims the slot).
        #[arg(long)]
        keep_running: bool,
    },
    /// List the scenarios of a directory with their descriptions.
    List {
        /// Default: testnet/scenarios (and its soak/ directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The scenarios directory of this source tree, for `scenario list` without `--dir`.
fn default_scenarios_dir() -> PathBuf {
    let local = PathBuf::from("testnet/scenarios");
    if local.is_dir() {
        local
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
    }
}

/// `carnet-testnet scenario run`.
fn run_scenario(
    file: &std::path::Path,
    runner_kind: RunnerArg,
    output: OutputArg,
    dir: Option<PathBuf>,
    keep_running: bool,
) -> anyhow::Result<()> {
    use carnet_testnet::scenario::{self, engine};
    let scenario = scenario::Scenario::load(file)?;
    let dir = dir.unwrap_or_else(|| engine::default_dir(&scenario));
    let dir = init::absolute_dir(&dir)?;
    let options = engine::RunOptions {
        keep_running,
        progress: output == OutputArg::Table,
        ..engine::RunOptions::default()
    };
    carnet_testnet::process_runner::install_interrupt_cleanup()?;
    let binary = process::locate_binary(process::NODE_BINARY)?;
    let report = match runner_kind {
        RunnerArg::Process => {
            let runner_options = carnet_testnet::process_runner::ProcessRunnerOptions {
                node_binary: binary,
                ..carnet_testnet::process_runner::ProcessRunnerOptions::from_env()?
            };
            let mut runner = carnet_testnet::process_runner::ProcessRunner::create(
                &scenario,
                &dir,
                &runner_options,
            )?;
            let report = engine::run(&scenario, &mut runner, &dir, &options)?;
            if keep_running {
                std::mem::forget(runner);
            }
            report
        }
        // The docker runner (testnet/src/docker.rs): same scenario, containers.
        RunnerArg::Docker => {
            let testnet = scenario::prepare_testnet(&scenario, &dir, &binary)?;
            let docker_options = docker::DockerOptions {
                byzantine: scenario.byzantine_args(),
                node_binary: Some(binary),
                ..docker::DockerOptions::default()
            };
            let mut runner = docker::DockerRunner::prepare(testnet, &docker_options)?;
            let report = engine::run(&scenario, &mut runner, &dir, &options)?;
            if keep_running {
                runner.detach();
            }
            report
        }
    };
    match output {
        OutputArg::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputArg::Table => {
            print!("{}", scenario::report::render_table(&report));
            println!("report: {}", dir.join(engine::REPORT_FILE).display());
        }
    }
    if !report.passed {
        anyhow::bail!(
            "scenario {} failed: {}",
            report.scenario,
            report.failed.join(", ")
        );
    }
    Ok(())
}

/// `carnet-testnet scenario list`.
fn list_scenarios(dir: Option<PathBuf>) -> anyhow::Result<()> {
    use carnet_testnet::scenario::Scenario;
    let dir = dir.unwrap_or_else(default_scenarios_dir);
    let mut dirs = vec![dir.clone()];
    if dir.join("soak").is_dir() {
        dirs.push(dir.join("soak"));
    }
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        println!("{}:", d.display());
        for file in files {
            match Scenario::load(&file) {
                Ok(s) => println!(
                    "  {:<28} {} nodes, {} steps  {}",
                    s.name,
                    s.nodes,
                    s.timeline.len(),
                    s.description
                ),
                Err(e) => println!("  {:<28} INVALID: {e}", file.display()),
            }
        }
    }
    Ok(())
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
    /// Offered documents per second (the first step with --find-max; with
    /// --catch-up-docs, the rate the missed documents are sent at).
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
    /// Documents per request: 1 posts each to /v1/documents; 2 to 256 post them in
    /// batches to /v1/document-batches (what a national system filing a backlog does).
    #[arg(long, default_value_t = 1)]
    batch_docs: usize,
    #[arg(long, value_enum, default_value_t = OutputArg::Table)]
    output: OutputArg,
    /// Where the JSON report is written (default DIR/bench-report.json).
    #[arg(long)]
    report: Option<PathBuf>,
    /// After the load, erase this many fresh documents one by one and report
    /// erase → final and erase → every node's destruction attestation (0: skip).
    #[arg(long, default_value_t = 0)]
    erasures: usize,
    /// Catch-up run: stop the last node (XD of 4), send this many documents (addressed
    /// to it) at --rate through the others, restart it and report how fast it catches up
    /// (blocks, then key deliveries) against the live rate (0: skip).
    #[arg(long, default_value_t = 0, conflicts_with_all = ["find_max", "erasures"])]
    catch_up_docs: u64,
}

impl BenchArgs {
    /// Checks the arguments and turns them into the bench configuration and output format.
    fn config(self) -> anyhow::Result<(bench::BenchConfig, OutputArg)> {
        let rate = self.rate.unwrap_or(50.0);
        anyhow::ensure!(rate > 0.0, "--rate must be positive");
        anyhow::ensure!(self.step_factor > 1.0, "--step-factor must be above 1");
        anyhow::ensure!(
            self.catch_up_docs <= carnet_testnet::bench_catchup::MAX_CATCH_UP_DOCS,
            "--catch-up-docs must be at most {}",
            carnet_testnet::bench_catchup::MAX_CATCH_UP_DOCS
        );
        anyhow::ensure!(
            self.duration > 0 && self.step_secs > 0,
            "durations must be positive"
        );
        anyhow::ensure!(
            (1..=bench::MAX_BATCH_DOCS).contains(&self.batch_docs),
            "--batch-docs must be 1 to {}",
            bench::MAX_BATCH_DOCS
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
            batch_docs: self.batch_docs,
            report: self.report,
            erasures: self.erasures,
            catch_up_docs: self.catch_up_docs,
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
        Command::Init {
            nodes,
            dir,
            mempool_max_transactions,
            epoch_length_blocks,
        } => {
            anyhow::ensure!(
                mempool_max_transactions != Some(0),
                "--mempool-max-transactions must be positive"
            );
            let binary = process::locate_binary(process::NODE_BINARY)?;
            let testnet = init::init(nodes, &dir, &binary)
                .with_context(|| format!("init of {}", dir.display()))?;
            if let Some(bound) = mempool_max_transactions {
                for node in &testnet.nodes {
                    init::set_mempool_max_transactions(&node.home, bound)?;
                }
            }
            if let Some(blocks) = epoch_length_blocks {
                init::set_epoch_length(&testnet, blocks)?;
            }
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
        Command::Compose {
            nodes,
            dir,
            no_build,
        } => {
            let binary = process::locate_binary(process::NODE_BINARY)?;
            let runner =
                docker::compose_init(nodes, &dir, &binary, &docker::DockerOptions::default())
                    .with_context(|| format!("compose of {}", dir.display()))?;
            let testnet = runner.testnet();
            let plan = runner.plan();
            println!(
                "testnet of {} nodes for docker in {} (project {}, subnet {})",
                testnet.nodes.len(),
                testnet.dir.display(),
                plan.project,
                plan.subnet
            );
            for (node, container) in testnet.nodes.iter().zip(&plan.nodes) {
                println!(
                    "  {} {:<11} api {}  container {}  profile {}",
                    node.code,
                    node.name,
                    node.api,
                    container.container,
                    testnet.profile_path(&node.code).display()
                );
            }
            if !no_build {
                print!("{}", runner.build_images()?);
            }
            let compose = docker::compose_command()?.join(" ");
            let file = runner.compose_file();
            println!("start: {compose} -f {} up -d", file.display());
            println!("stop:  {compose} -f {} down", file.display());
            runner.detach();
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
        Command::Scenario { command } => match command {
            ScenarioCommand::Run {
                file,
                runner,
                output,
                dir,
                keep_running,
            } => run_scenario(&file, runner, output, dir, keep_running)?,
            ScenarioCommand::List { dir } => list_scenarios(dir)?,
        },
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
