//! `carnet-node`: create a node home (`init`) or run a node (`start`).
//!
//! Command-line glue only; it must never print a secret.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "carnet-node", version, about = "Carnet ledger node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node home: keys, config.toml (genesis.json is supplied separately).
    Init {
        #[arg(long)]
        home: PathBuf,
        /// ISO 3166-1 alpha-2 code of the administration (e.g. XA).
        #[arg(long)]
        administration: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        p2p_port: u16,
        #[arg(long)]
        api_port: u16,
    },
    /// Run the node in a home created by `init`.
    Start {
        #[arg(long)]
        home: PathBuf,
        /// Serve the test-only routes (GET /v1/test/keys/{id}/{version}). Required by,
        /// and only accepted by, a binary built with the `test-hooks` feature.
        #[arg(long)]
        enable_test_hooks: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Init {
            home,
            administration,
            name,
            p2p_port,
            api_port,
        } => {
            let summary = carnet_node::config::init_home(&carnet_node::config::InitArgs {
                home,
                administration,
                name,
                p2p_port,
                api_port,
            })?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Start {
            home,
            enable_test_hooks,
        } => {
            #[cfg(feature = "test-hooks")]
            {
                if !enable_test_hooks {
                    anyhow::bail!(
                        "this binary is built with the `test-hooks` feature, which hands out \
                         document keys; refusing to start without --enable-test-hooks"
                    );
                }
                eprintln!(
                    "carnet-node: WARNING: test hooks enabled; never use this node for real data"
                );
                carnet_node::api::enable_test_hooks();
            }
            #[cfg(not(feature = "test-hooks"))]
            if enable_test_hooks {
                anyhow::bail!(
                    "--enable-test-hooks needs a binary built with the `test-hooks` feature"
                );
            }
            let home = carnet_node::config::NodeHome::load(&home)?;
            let log_path = home.resolve(&home.config.log_file);
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening log file {}", log_path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_env("CARNET_LOG").unwrap_or_else(|_| {
                        EnvFilter::new("info,libp2p=warn,libp2p_gossipsub=error")
                    }),
                )
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(log_file))
                .init();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            let result = runtime.block_on(carnet_node::node::run(home));
            if let Err(e) = &result {
                tracing::error!("node stopped: {e}");
            }
            result.context("node stopped")
        }
    }
}
