//! `carnet`: the customs officer's command line. Parses arguments, resolves the profile,
//! runs one command from [`carnet_cli::commands`] and prints the result.
//!
//! Exit codes (docs/interfaces.md): 0 ok, 2 bad input, 3 denied, 4 not found or erased,
//! 5 node unavailable or a wait that timed out.

use carnet_cli::client::NodeClient;
use carnet_cli::commands;
use carnet_cli::error::CliError;
use carnet_cli::output::{self, Format};
use carnet_cli::profile::{self, Profile};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  2  bad input (HTTP 400, 413; local checks)
  3  denied (HTTP 401, 403)
  4  not found (HTTP 404) or document erased (HTTP 410)
  5  node unavailable (connection failure, 503, other 5xx) or --wait-attestations timed out";

#[derive(Parser)]
#[command(
    name = "carnet",
    version,
    about = "Submit, find, read and erase customs documents on a Carnet ledger",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Profile file naming the node, the officer key and the administration.
    #[arg(long, global = true, env = "CARNET_PROFILE", value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Node API URL (overrides the profile), e.g. http://127.0.0.1:7201.
    #[arg(long, global = true, env = "CARNET_NODE", value_name = "URL")]
    node: Option<String>,
    /// Officer key file (overrides the profile).
    #[arg(long, global = true, env = "CARNET_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputArg::Table)]
    output: OutputArg,
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
    /// Officer keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The node's view of the network: height, validators, peers.
    Status,
    /// Documents: submit, show, find, decrypt, erase, status.
    #[command(subcommand)]
    Doc(DocCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate an ed25519 officer key file (mode 0600) and print its public key.
    Generate {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DocCommand {
    /// Submit a document; waits until it is final on the ledger.
    Submit {
        /// export-declaration, import-declaration, transit-declaration,
        /// certificate-of-origin, phytosanitary-certificate, aeo-status,
        /// waste-movement, control-result.
        #[arg(long)]
        kind: String,
        /// Unique Consignment Reference.
        #[arg(long)]
        ucr: String,
        /// Recipient administrations, comma-separated (e.g. XB,XC).
        #[arg(long, value_name = "CODE[,CODE...]")]
        to: String,
        /// The declaration as a JSON object (`-` for stdin).
        #[arg(long, value_name = "PAYLOAD.json")]
        file: PathBuf,
    },
    /// Show a document's ledger record (never the plaintext).
    Show { id: String },
    /// Find the documents of a consignment you may see.
    Find {
        #[arg(long)]
        ucr: String,
    },
    /// Decrypt a document addressed to (or issued by) your administration.
    ///
    /// An erased document cannot be decrypted: the node answers "document ... is
    /// erased" (exit 4).
    Decrypt {
        id: String,
        /// Why you read it; recorded on the ledger.
        #[arg(long)]
        purpose: String,
        /// Write the payload to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Erase a document your administration issued (role supervisor or admin).
    ///
    /// Every node destroys the document's keys, prunes its ciphertext and attests the
    /// destruction on the ledger; the record itself stays. Waits until the erasure is
    /// final and prints its id, status and height. Follow the attestations with
    /// `carnet doc status ID --wait-attestations SECS`.
    Erase {
        /// Document id (hex).
        id: String,
        /// Why the document is erased; recorded on the ledger.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The law that allows the erasure (e.g. a regulation and article); recorded on
        /// the ledger.
        #[arg(long, value_name = "TEXT")]
        legal_basis: String,
    },
    /// Show a document's status, destruction attestations and pending nodes.
    ///
    /// Once a document is erased, every node attests the destruction of its keys on the
    /// ledger: `attestations` lists the administrations whose nodes did (with the height
    /// of each attestation), `pending` those that have not yet.
    Status {
        /// Document id (hex).
        id: String,
        /// Ask again until no node is pending, for at most SECS seconds; exit 5 if some
        /// still are.
        #[arg(long, value_name = "SECS")]
        wait_attestations: Option<u64>,
    },
}

fn main() {
    let cli = Cli::parse();
    let format = match cli.output {
        OutputArg::Table => Format::Table,
        OutputArg::Json => Format::Json,
    };
    let code = match run(&cli, format) {
        Ok(()) => 0,
        Err(e) => {
            output::print_error(format, &e);
            e.exit_code()
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn run(cli: &Cli, format: Format) -> Result<(), CliError> {
    match &cli.command {
        Command::Keys(KeysCommand::Generate { out }) => {
            let generated = commands::generate_key(out)?;
            match format {
                Format::Json => output::print_json(&generated),
                Format::Table => print!(
                    "{}",
                    output::render_fields(&[
                        ("public_key", generated.public_key.clone()),
                        ("file", generated.file.display().to_string()),
                    ])
                ),
            }
        }
        Command::Status => {
            let status = commands::status(&client(cli)?)?;
            match format {
                Format::Json => output::print_json(&status),
                Format::Table => print!(
                    "{}",
                    output::render_fields(&[
                        ("administration", status.administration.clone()),
                        ("chain_id", status.chain_id.clone()),
                        ("height", status.height.to_string()),
                        (
                            "last_block_hash",
                            status.last_block_hash.clone().unwrap_or_default()
                        ),
                        ("view", status.view.to_string()),
                        ("validators", status.validators.to_string()),
                        ("peers", status.peers.to_string()),
                    ])
                ),
            }
        }
        Command::Doc(DocCommand::Submit {
            kind,
            ucr,
            to,
            file,
        }) => {
            // Validate locally before resolving the node, so bad input never waits on one.
            commands::parse_kind(kind)?;
            commands::parse_recipients(to)?;
            commands::read_payload(file)?;
            let submitted = commands::submit(&client(cli)?, kind, ucr, to, file)?;
            match format {
                Format::Json => output::print_json(&submitted),
                Format::Table => print!(
                    "{}",
                    output::render_fields(&[
                        ("id", submitted.id.clone()),
                        ("version", submitted.version.to_string()),
                        ("kind", submitted.kind.clone()),
                        ("status", submitted.status.clone()),
                        ("height", submitted.height.to_string()),
                    ])
                ),
            }
        }
        Command::Doc(DocCommand::Show { id }) => {
            let doc = commands::show(&client(cli)?, id)?;
            match format {
                Format::Json => output::print_json(&doc),
                Format::Table => print!(
                    "{}",
                    output::render_fields(&[
                        ("id", doc.id.clone()),
                        ("version", doc.version.to_string()),
                        ("kind", doc.kind.clone()),
                        ("issuer", doc.issuer.clone()),
                        ("recipients", doc.recipients.join(",")),
                        ("status", doc.status.clone()),
                        ("height", doc.height.to_string()),
                        ("time_ms", doc.time_ms.to_string()),
                        ("commitment", doc.commitment.clone()),
                        ("ciphertext_hash", doc.ciphertext_hash.clone()),
                        ("submitted_by", doc.submitted_by.clone()),
                    ])
                ),
            }
        }
        Command::Doc(DocCommand::Find { ucr }) => {
            let documents = commands::find(&client(cli)?, ucr)?;
            match format {
                Format::Json => output::print_json(&serde_json::json!({
                    "ucr": ucr.trim(),
                    "documents": documents,
                })),
                Format::Table => print!("{}", output::render_documents(&documents)),
            }
        }
        Command::Doc(DocCommand::Decrypt { id, purpose, out }) => {
            let decrypted = commands::decrypt(&client(cli)?, id, purpose, out.as_deref())?;
            match (out, format) {
                (Some(out), Format::Json) => output::print_json(&serde_json::json!({
                    "id": decrypted.id,
                    "version": decrypted.version,
                    "kind": decrypted.kind,
                    "out": out,
                    "bytes": decrypted.payload.len(),
                })),
                (Some(out), Format::Table) => println!(
                    "wrote {} ({} bytes) to {}",
                    decrypted.id,
                    decrypted.payload.len(),
                    out.display()
                ),
                (None, _) => {
                    // The payload itself, byte for byte; a newline only for a person.
                    let mut stdout = std::io::stdout();
                    let mut text = decrypted.payload;
                    if stdout.is_terminal() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    stdout
                        .write_all(text.as_bytes())
                        .map_err(|e| CliError::bad_input(format!("cannot write stdout: {e}")))?;
                }
            }
        }
        Command::Doc(DocCommand::Erase {
            id,
            reason,
            legal_basis,
        }) => {
            // Validate locally before resolving the node, so bad input never waits on one.
            commands::erasure_request(id, reason, legal_basis)?;
            let erased = commands::erase(&client(cli)?, id, reason, legal_basis)?;
            match format {
                Format::Json => output::print_json(&erased),
                Format::Table => print!("{}", output::render_erased(&erased)),
            }
        }
        Command::Doc(DocCommand::Status {
            id,
            wait_attestations,
        }) => {
            let client = client(cli)?;
            let status = match wait_attestations {
                Some(secs) => {
                    commands::wait_for_attestations(&client, id, Duration::from_secs(*secs))?
                }
                None => commands::document_status(&client, id)?,
            };
            match format {
                Format::Json => output::print_json(&status),
                Format::Table => print!("{}", output::render_document_status(&status)),
            }
        }
    }
    Ok(())
}

/// The node client from `--node`/`--key`, falling back to the profile.
fn client(cli: &Cli) -> Result<NodeClient, CliError> {
    let profile = match &cli.profile {
        Some(path) => Profile::load(path)?,
        None => Profile::default(),
    };
    let node = cli.node.clone().or(profile.node).ok_or_else(|| {
        CliError::bad_input("no node given: pass --node URL or --profile FILE (or CARNET_PROFILE)")
    })?;
    let key_path = cli.key.clone().or(profile.key).ok_or_else(|| {
        CliError::bad_input("no officer key given: pass --key FILE or --profile FILE")
    })?;
    let key = profile::read_signing_key(&key_path)?;
    NodeClient::new(&node, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("carnet").chain(args.iter().copied()))
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn erase_takes_an_id_a_reason_and_a_legal_basis() {
        let cli = parse(&[
            "doc",
            "erase",
            "0a0b",
            "--reason",
            "data subject request",
            "--legal-basis",
            "GDPR Art. 17",
            "--output",
            "json",
        ])
        .unwrap();
        assert!(cli.output == OutputArg::Json);
        match cli.command {
            Command::Doc(DocCommand::Erase {
                id,
                reason,
                legal_basis,
            }) => {
                assert_eq!(id, "0a0b");
                assert_eq!(reason, "data subject request");
                assert_eq!(legal_basis, "GDPR Art. 17");
            }
            _ => panic!("not doc erase"),
        }
        for missing in [
            &["doc", "erase", "0a0b", "--reason", "r"][..],
            &["doc", "erase", "0a0b", "--legal-basis", "b"][..],
            &["doc", "erase", "--reason", "r", "--legal-basis", "b"][..],
        ] {
            let e = parse(missing).err().expect("must be refused");
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
            // clap exits with 2 on usage errors, the code of bad input.
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn status_takes_an_id_and_an_optional_wait() {
        match parse(&["doc", "status", "0a0b"]).unwrap().command {
            Command::Doc(DocCommand::Status {
                id,
                wait_attestations,
            }) => {
                assert_eq!(id, "0a0b");
                assert_eq!(wait_attestations, None);
            }
            _ => panic!("not doc status"),
        }
        match parse(&["doc", "status", "0a0b", "--wait-attestations", "30"])
            .unwrap()
            .command
        {
            Command::Doc(DocCommand::Status {
                wait_attestations, ..
            }) => assert_eq!(wait_attestations, Some(30)),
            _ => panic!("not doc status"),
        }
        for bad in ["-1", "soon", "1.5"] {
            let e = parse(&["doc", "status", "0a0b", "--wait-attestations", bad])
                .err()
                .expect("must be refused");
            // `-1` reads as an unknown flag, the others fail validation: both exit 2.
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["doc", "status"]).is_err());
        // `carnet status` (the node's) is still there and takes no id.
        assert!(matches!(
            parse(&["status"]).unwrap().command,
            Command::Status
        ));
    }

    #[test]
    fn help_names_the_new_commands_and_the_exit_codes() {
        let mut cli = Cli::command();
        let help = cli.render_long_help().to_string();
        assert!(help.contains("erase"), "{help}");
        assert!(help.contains("410"), "{help}");
        let doc = cli.find_subcommand_mut("doc").unwrap();
        let help = doc.render_long_help().to_string();
        assert!(help.contains("erase") && help.contains("status"), "{help}");
    }
}
