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
        /// FAULT TESTING ONLY: misbehave on purpose as `equivocate`, `silent`,
        /// `invalid-blocks` or `twin`. Accepted only by a binary built with the
        /// `byzantine` feature, and only with --i-understand-this-node-misbehaves.
        #[arg(long, value_name = "MODE")]
        byzantine: Option<String>,
        /// Confirms that this node is meant to misbehave (a `byzantine` or
        /// `mutation-weak-quorum` build refuses to start without it).
        #[arg(long)]
        i_understand_this_node_misbehaves: bool,
    },
    /// Print the space each column family of a STOPPED node's store takes (JSON):
    /// live SST bytes, memtable bytes and estimated keys.
    StoreStats {
        #[arg(long)]
        home: PathBuf,
        /// First flush and fully compact every column family (reclaims the space of
        /// deleted and overwritten values; may take a while on a large store).
        #[arg(long)]
        compact: bool,
    },
}

/// Refuses misbehaviour flags a build does not support, and a misbehaving build that
/// was not explicitly asked to misbehave. Returns the byzantine mode to enable.
fn check_misbehaviour_flags(
    byzantine: Option<&str>,
    confirmed: bool,
) -> anyhow::Result<Option<String>> {
    let mutation = cfg!(feature = "mutation-weak-quorum");
    let faulty = cfg!(feature = "byzantine");
    if !faulty && byzantine.is_some() {
        anyhow::bail!("--byzantine needs a binary built with the `byzantine` feature");
    }
    if faulty && (byzantine.is_none() || !confirmed) {
        anyhow::bail!(
            "this binary is built with the `byzantine` feature and misbehaves on purpose; \
             refusing to start without --byzantine MODE --i-understand-this-node-misbehaves"
        );
    }
    if mutation && !confirmed {
        anyhow::bail!(
            "this binary is built with the `mutation-weak-quorum` feature (quorum f+1, \
             unsafe on purpose); refusing to start without --i-understand-this-node-misbehaves"
        );
    }
    if !faulty && !mutation && confirmed {
        anyhow::bail!(
            "--i-understand-this-node-misbehaves is only for `byzantine` or \
             `mutation-weak-quorum` builds; this node behaves"
        );
    }
    #[cfg(feature = "byzantine")]
    if let Some(name) = byzantine {
        carnet_node::byzantine::Mode::parse(name).map_err(anyhow::Error::msg)?;
    }
    if mutation {
        eprintln!("carnet-node: WARNING: quorum lowered to f+1; this node is deliberately unsafe");
    }
    Ok(byzantine.map(str::to_string))
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
        Command::StoreStats { home, compact } => {
            let home = carnet_node::config::NodeHome::load(&home)?;
            let store = carnet_node::storage::Store::open(&home.data_dir()).map_err(|e| {
                anyhow::anyhow!(
                    "opening the store in {} (is the node still running?): {e}",
                    home.data_dir().display()
                )
            })?;
            if compact {
                store.purge_deleted(&carnet_node::storage::ALL_CFS)?;
            }
            let stats = store.stats()?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            Ok(())
        }
        Command::Start {
            home,
            enable_test_hooks,
            byzantine,
            i_understand_this_node_misbehaves,
        } => {
            let byzantine =
                check_misbehaviour_flags(byzantine.as_deref(), i_understand_this_node_misbehaves)?;
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
            #[cfg(feature = "byzantine")]
            if let Some(name) = &byzantine {
                use carnet_node::byzantine::{enable, Mode};
                let mode = Mode::parse(name).map_err(anyhow::Error::msg)?;
                let key = home.validator_key.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--byzantine needs the validator key in validator.key (not on a token)"
                    )
                })?;
                enable(mode, key);
                eprintln!(
                    "carnet-node: WARNING: byzantine mode `{}`: this node misbehaves on purpose",
                    mode.name()
                );
            }
            #[cfg(not(feature = "byzantine"))]
            let _ = byzantine;
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
            #[cfg(feature = "byzantine")]
            if let Some(mode) = carnet_node::byzantine::mode() {
                tracing::warn!(
                    mode = mode.name(),
                    "BYZANTINE: this node misbehaves on purpose"
                );
            }
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
