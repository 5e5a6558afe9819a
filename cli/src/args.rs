//! The `carnet` command line: every subcommand, flag and help text (clap derive).
//!
//! The help is written for customs officers: what a command does and what it records on
//! the ledger. Argument rules that clap can enforce are enforced here (exactly one answer
//! kind, exactly one matter, reason codes a–e, `yes`/`no` votes, known roles); the
//! commands check the rest before asking the node. Must never: accept a combination of
//! flags that the node would have to guess the meaning of.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  2  bad input (HTTP 400, 413; local checks)
  3  denied (HTTP 401, 403)
  4  not found (HTTP 404) or document erased (HTTP 410)
  5  node unavailable (connection failure, 503, other 5xx), --wait-attestations timed out,
     or carnet watch lost its event stream";

#[derive(Parser, Debug)]
#[command(
    name = "carnet",
    version,
    about = "Submit, find, read and erase customs documents on a Carnet ledger; manage \
             agreements, TFA Article 12 requests, officers and membership",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Profile file naming the node, the officer key and the administration.
    #[arg(long, global = true, env = "CARNET_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Node API URL (overrides the profile), e.g. http://127.0.0.1:7201.
    #[arg(long, global = true, env = "CARNET_NODE", value_name = "URL")]
    pub node: Option<String>,
    /// Officer key file (overrides the profile).
    #[arg(long, global = true, env = "CARNET_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputArg::Table)]
    pub output: OutputArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Officer keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The node's view of the network: height, validators, peers.
    Status,
    /// Documents: submit, show, find, decrypt, amend, cancel, history, prefill, erase,
    /// status.
    #[command(subcommand)]
    Doc(DocCommand),
    /// Agreements (GNC Utility Blocks): who exchanges which documents, which data
    /// elements, when, on what legal basis.
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Consignments by Unique Consignment Reference.
    #[command(subcommand)]
    Ucr(UcrCommand),
    /// Follow documents addressed to your administration as they become final.
    ///
    /// Prints one line per document (one JSON object per line with --output json) and
    /// records its delivery acknowledgement on the ledger, unless --no-ack. A dropped
    /// connection is reopened from the last height seen (documents already printed are
    /// not printed again); after 8 failed reconnections in a row the command exits 5.
    Watch(WatchArgs),
    /// Information requests under WTO TFA Article 12: ask, answer, list, notify a
    /// breach.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Your administration's officers (role admin manages them).
    #[command(subcommand)]
    Officer(OfficerCommand),
    /// Membership of the network: propose to admit or remove an administration, vote.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Who read a document, or what an officer read: the access records on the ledger.
    ///
    /// By document: the issuer's officers, or an auditor of the issuer or of a
    /// recipient. By officer: the officer, or an auditor or admin of its administration.
    #[command(group(ArgGroup::new("subject").required(true).args(["doc", "officer"])))]
    Audit {
        /// Document id (hex).
        #[arg(long, value_name = "ID")]
        doc: Option<String>,
        /// Officer public key (hex).
        #[arg(long, value_name = "KEY")]
        officer: Option<String>,
    },
    /// Equivocation evidence on the ledger: validators that signed two conflicting
    /// consensus votes in one view, as reported by the members' nodes.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// List the recorded equivocations (any officer), by accused then view.
    List {
        /// Only those of this administration's validator (e.g. XD).
        #[arg(long, value_name = "CODE")]
        accused: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate an ed25519 officer key file (mode 0600) and print its public key.
    Generate {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum DocCommand {
    /// Submit a document; waits until it is final on the ledger.
    ///
    /// The document is filed under an active agreement: the one named with --agreement,
    /// or else the one agreement covering your administration, the recipients and the
    /// kind (none or several: exit 2 naming the candidates). Elements outside the
    /// agreement's data cluster, and missing required elements, are refused by name.
    Submit {
        /// export-declaration, import-declaration, transit-declaration,
        /// certificate-of-origin, phytosanitary-certificate, aeo-status,
        /// waste-movement, control-result.
        #[arg(long)]
        kind: String,
        /// Unique Consignment Reference (never stored in clear).
        #[arg(long)]
        ucr: String,
        /// Recipient administrations, comma-separated (e.g. XB,XC).
        #[arg(long, value_name = "CODE[,CODE...]")]
        to: String,
        /// The declaration as a JSON object (`-` for stdin).
        #[arg(long, value_name = "PAYLOAD.json")]
        file: PathBuf,
        /// The agreement to file it under (id, hex).
        #[arg(long, value_name = "ID")]
        agreement: Option<String>,
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
    /// The read is recorded on the ledger (officer, document, version, purpose). With
    /// --request you read a document another administration provided in answer to
    /// your TFA request; --purpose must then be that request's purpose. Without --out the
    /// payload is printed as it is (with --output json: inside {"id", "version", "kind",
    /// "payload"}). An erased document cannot be decrypted: the node answers "document
    /// ... is erased" (exit 4).
    Decrypt {
        id: String,
        /// Why you read it; recorded on the ledger.
        #[arg(long)]
        purpose: String,
        /// The version to read (default: the latest).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
        /// Read under the access grant of this provided TFA request (id, hex).
        #[arg(long, value_name = "RID")]
        request: Option<String>,
        /// Write the payload to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Amend a document your administration issued: adds a version, overwrites nothing.
    ///
    /// The previous version becomes `amended`; recipients and agreement carry over and
    /// the recipients receive the new version. The payload is checked against the
    /// agreement's data cluster.
    Amend {
        /// Document id (hex).
        id: String,
        /// The new payload as a JSON object (`-` for stdin).
        #[arg(long, value_name = "NEW.json")]
        file: PathBuf,
    },
    /// Cancel a document your administration issued; the reason is recorded on the
    /// ledger.
    Cancel {
        /// Document id (hex).
        id: String,
        /// Why the document is cancelled; recorded on the ledger.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Every version of a document (oldest first) and its cancellation, if any.
    History {
        /// Document id (hex).
        id: String,
    },
    /// Write a new payload pre-filled from a document you received (e.g. an import
    /// declaration from the export declaration).
    ///
    /// Only the elements that KIND may carry under your active agreements are carried
    /// over; the rest are listed as dropped. Reading the source is recorded on the
    /// ledger. Without --out the payload is printed (pretty JSON) on stdout.
    Prefill {
        /// The source document's id (hex).
        #[arg(long, value_name = "ID")]
        from: String,
        /// The kind of document to prepare, e.g. import-declaration.
        #[arg(long)]
        kind: String,
        /// Why the source is read; recorded on the ledger (default chosen by the node).
        #[arg(long)]
        purpose: Option<String>,
        /// Write the payload to this new file (mode 0600).
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
    /// Show a document's status, agreement, delivery acknowledgements, destruction
    /// attestations and pending nodes.
    ///
    /// Once a document is erased, every node attests the destruction of its keys on the
    /// ledger: `attestations` lists the administrations whose nodes did (with the height
    /// of each attestation), `pending` those that have not yet. `deliveries` lists the
    /// recipients that acknowledged a version.
    Status {
        /// Document id (hex).
        id: String,
        /// Ask again until no node is pending, for at most SECS seconds; exit 5 if some
        /// still are.
        #[arg(long, value_name = "SECS")]
        wait_attestations: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgreementCommand {
    /// Propose an agreement from a Utility Block file; your administration accepts it by
    /// proposing (role admin).
    ///
    /// The file names the parties, the data cluster of each document kind, trigger,
    /// legal basis, purpose, retention and delivery (see testnet/agreements/). The node
    /// draws the agreement's UCR key and shares it with the parties only.
    Propose {
        #[arg(long, value_name = "UB.json")]
        file: PathBuf,
    },
    /// Accept an agreement for your administration (role admin); it is active once every
    /// party has accepted.
    Accept {
        /// Agreement id (hex).
        id: String,
    },
    /// Show an agreement: terms, data clusters, who accepted, who is pending.
    Show {
        /// Agreement id (hex).
        id: String,
    },
    /// List every agreement on the ledger.
    List,
}

#[derive(Subcommand, Debug)]
pub enum UcrCommand {
    /// Show the export declaration, import declarations and certificates of a
    /// consignment, and the shared elements whose values differ.
    ///
    /// Each document the node reads to compare is recorded on the ledger (purpose "UCR
    /// match"). Mismatches are findings: the command exits 0 and prints "N mismatches".
    Match {
        /// Unique Consignment Reference.
        ucr: String,
    },
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Start at this block height (default: the next block).
    #[arg(long, value_name = "H")]
    pub from_height: Option<u64>,
    /// Do not record delivery acknowledgements on the ledger.
    #[arg(long)]
    pub no_ack: bool,
    /// Exit 0 after N documents.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum RequestCommand {
    /// Ask another administration for information (TFA Art. 12.4.1); recorded on the
    /// ledger with a 90-day deadline.
    ///
    /// The matter is a consignment (--ucr, indexed under an active agreement shared
    /// with the requested administration) or a document (--doc).
    #[command(group(ArgGroup::new("matter").required(true).args(["ucr", "doc"])))]
    Create {
        /// The requested administration, e.g. XB.
        #[arg(long, value_name = "CODE")]
        to: String,
        /// The consignment asked about.
        #[arg(long)]
        ucr: Option<String>,
        /// The document asked about (id, hex).
        #[arg(long, value_name = "ID")]
        doc: Option<String>,
        /// What the information is for; a provided document may be read only for it.
        #[arg(long)]
        purpose: String,
        /// The law the request is made under.
        #[arg(long, value_name = "TEXT")]
        legal_basis: String,
        /// The information asked for, comma-separated.
        #[arg(long, value_name = "A,B")]
        items: String,
        /// How the information must be treated (e.g. restricted).
        #[arg(long, value_name = "T")]
        confidentiality: Option<String>,
    },
    /// Answer a request made to your administration: provide documents, postpone, or
    /// refuse on a ground of TFA Art. 12.7.1 (a to e). Recorded on the ledger.
    ///
    /// --provide grants the requester access to the named documents, for the request's
    /// purpose only. A postponed request may be answered again later.
    #[command(group(ArgGroup::new("answer").required(true).args(["provide", "postpone", "refuse"])))]
    Answer {
        /// Request id (hex).
        id: String,
        /// Documents to provide (ids, comma-separated).
        #[arg(long, value_name = "DOC[,DOC]")]
        provide: Option<String>,
        /// Postpone the answer (needs --reason).
        #[arg(long, requires = "reason")]
        postpone: bool,
        /// Refuse (needs --reason-code and --reason).
        #[arg(long, requires_all = ["reason_code", "reason"])]
        refuse: bool,
        /// TFA Art. 12.7.1 ground: a public interest, b domestic law, c law enforcement,
        /// d no consent, e past retention.
        #[arg(long, value_name = "a..e", requires = "refuse", value_parser = reason_code)]
        reason_code: Option<String>,
        /// Why; recorded on the ledger.
        #[arg(long, value_name = "R", conflicts_with = "provide")]
        reason: Option<String>,
    },
    /// List requests your administration made or received, with deadlines.
    List {
        /// Only requests past their 90-day deadline and unanswered.
        #[arg(long)]
        overdue: bool,
    },
    /// Show a request: matter, items, deadline, answers, breach notices.
    Show {
        /// Request id (hex).
        id: String,
    },
    /// Notify a breach of the conditions of a request you made (TFA Art. 12.11.1);
    /// recorded on the ledger.
    Breach {
        /// Request id (hex).
        id: String,
        /// What was used or disclosed without authorization.
        #[arg(long, value_name = "D")]
        details: String,
    },
}

/// clap value parser for `--reason-code`: one of `a`..`e` (either case).
fn reason_code(code: &str) -> Result<String, String> {
    crate::commands::request::parse_reason_code(code).map_err(|e| e.message)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Officer,
    Supervisor,
    Auditor,
    Admin,
}

impl RoleArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Officer => "officer",
            RoleArg::Supervisor => "supervisor",
            RoleArg::Auditor => "auditor",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OfficerCommand {
    /// Register an officer of your administration (role admin); recorded on the ledger.
    ///
    /// After `officer add`, --key names the new officer's public key. Your own key file
    /// comes from the profile, from --key before the subcommand (`carnet --key FILE
    /// officer add --key PUB ...`), or from --signer.
    Add {
        /// The new officer's ed25519 public key (hex), as `carnet keys generate` prints it.
        #[arg(id = "officer_key", long = "key", value_name = "PUB")]
        key: String,
        /// Your officer key file (what the global --key gives elsewhere).
        // The id of the global `--key FILE`: clap then does not propagate the global
        // argument into this subcommand (so `--key` here is free for the new officer's
        // key), while a key file given before the subcommand, or by CARNET_KEY, still
        // reaches `Cli::key`.
        #[arg(id = "key", long = "signer", value_name = "FILE")]
        signer: Option<PathBuf>,
        /// The officer's name.
        #[arg(long)]
        name: String,
        /// Roles, comma-separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            required = true,
            value_name = "ROLE[,ROLE]"
        )]
        roles: Vec<RoleArg>,
    },
    /// Revoke an officer of your administration (role admin); its requests fail from the
    /// next block on.
    Revoke {
        /// The officer's public key (hex). (Named apart from the global `--key FILE`:
        /// clap shares argument ids across levels.)
        #[arg(value_name = "KEY")]
        officer_key: String,
    },
    /// List an administration's officers (default: yours).
    List {
        #[arg(long, value_name = "XA")]
        administration: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VoteArg {
    Yes,
    No,
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Propose to admit an administration (role admin); recorded on the ledger.
    ///
    /// Passes with two thirds of the voting power and takes effect the given number of
    /// blocks later; the validator set follows.
    ProposeAdd {
        /// The administration as in genesis.json (code, name, node_key, validator_key,
        /// encryption_key, voting_power, active) and its first officers
        /// (`officers`: [{key, name, roles}], at least one admin).
        #[arg(long, value_name = "MEMBER.json")]
        file: PathBuf,
        /// Blocks between passing and taking effect (node default: 10).
        #[arg(long, value_name = "N")]
        effective_delay_blocks: Option<u64>,
    },
    /// Propose to remove an administration (role admin); its node is disconnected and
    /// receives no new keys once the removal takes effect.
    ProposeRemove {
        /// The administration's code, e.g. XD.
        code: String,
        /// Blocks between passing and taking effect (node default: 10).
        #[arg(long, value_name = "N")]
        effective_delay_blocks: Option<u64>,
    },
    /// Vote on a membership proposal for your administration (role admin).
    Vote {
        /// Proposal id (hex).
        id: String,
        #[arg(value_enum)]
        vote: VoteArg,
    },
    /// List members and membership proposals.
    List,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("carnet").chain(args.iter().copied()))
    }

    fn refused(args: &[&str]) -> ErrorKind {
        let e = parse(args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} must be refused"));
        // clap exits with 2 on usage errors, the code of bad input.
        assert_eq!(e.exit_code(), 2, "{args:?}");
        e.kind()
    }

    /// Every flag of `command` and its subcommands (global ones included) is defined once.
    fn assert_unique_flags(command: &clap::Command, path: &str) {
        let mut longs = std::collections::BTreeSet::new();
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(longs.insert(long), "{path}: --{long} is defined twice");
            }
        }
        for sub in command.get_subcommands() {
            assert_unique_flags(sub, &format!("{path} {}", sub.get_name()));
        }
    }

    #[test]
    fn command_definition_is_consistent() {
        // clap's own `debug_assert` checks are compiled out of release builds: check the
        // property that matters here (global flags propagated) by hand.
        let mut command = Cli::command();
        command.build();
        assert_unique_flags(&command, "carnet");
        let add = command
            .find_subcommand("officer")
            .and_then(|o| o.find_subcommand("add"))
            .unwrap();
        let keys: Vec<&str> = add
            .get_arguments()
            .filter(|a| a.get_long() == Some("key"))
            .map(|a| a.get_id().as_str())
            .collect();
        assert_eq!(keys, vec!["officer_key"]);
        // No argument of a subcommand may reuse the id of a global argument (clap keeps
        // one value per id: `officer revoke KEY` once crashed against `--key FILE`).
        let globals: Vec<String> = Cli::command()
            .get_arguments()
            .map(|a| a.get_id().as_str().to_string())
            .collect();
        fn walk(command: &clap::Command, globals: &[String], path: &str) {
            for sub in command.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                // `officer add --signer` takes the global `key` id on purpose (same
                // type, a key file).
                let deliberate = |a: &&clap::Arg| a.get_long() == Some("signer");
                for arg in sub
                    .get_arguments()
                    .filter(|a| !a.is_global_set() && !deliberate(a))
                {
                    assert!(
                        !globals.iter().any(|g| g == arg.get_id().as_str()),
                        "{here}: argument `{}` shadows a global argument",
                        arg.get_id()
                    );
                }
                walk(sub, globals, &here);
            }
        }
        walk(&Cli::command(), &globals, "carnet");
        parse(&["officer", "revoke", "ab"]).unwrap();
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
            assert_eq!(refused(missing), ErrorKind::MissingRequiredArgument);
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
            // `-1` reads as an unknown flag, the others fail validation: both exit 2.
            refused(&["doc", "status", "0a0b", "--wait-attestations", bad]);
        }
        assert!(parse(&["doc", "status"]).is_err());
        // `carnet status` (the node's) is still there and takes no id.
        assert!(matches!(
            parse(&["status"]).unwrap().command,
            Command::Status
        ));
    }

    #[test]
    fn help_names_the_commands_and_the_exit_codes() {
        let mut cli = Cli::command();
        let help = cli.render_long_help().to_string();
        for name in [
            "agreement",
            "ucr",
            "watch",
            "request",
            "officer",
            "member",
            "audit",
            "410",
        ] {
            assert!(help.contains(name), "{name} in {help}");
        }
        let doc = cli.find_subcommand_mut("doc").unwrap();
        let help = doc.render_long_help().to_string();
        for name in ["erase", "status", "amend", "cancel", "history", "prefill"] {
            assert!(help.contains(name), "{name} in {help}");
        }
        let request = cli.find_subcommand_mut("request").unwrap();
        let answer = request.find_subcommand_mut("answer").unwrap();
        let help = answer.render_long_help().to_string();
        assert!(help.contains("12.7.1") && help.contains("ledger"), "{help}");
    }

    const RID: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";

    #[test]
    fn an_answer_is_exactly_one_of_provide_postpone_refuse() {
        match parse(&[
            "request",
            "answer",
            RID,
            "--refuse",
            "--reason-code",
            "C",
            "--reason",
            "prosecution",
        ])
        .unwrap()
        .command
        {
            Command::Request(RequestCommand::Answer {
                refuse,
                reason_code,
                reason,
                provide,
                postpone,
                ..
            }) => {
                assert!(refuse && !postpone && provide.is_none());
                assert_eq!(reason_code.as_deref(), Some("c"));
                assert_eq!(reason.as_deref(), Some("prosecution"));
            }
            _ => panic!("not request answer"),
        }
        assert!(parse(&["request", "answer", RID, "--provide", "ab,cd"]).is_ok());
        assert!(parse(&["request", "answer", RID, "--postpone", "--reason", "busy"]).is_ok());
        for conflicting in [
            &[
                "request",
                "answer",
                RID,
                "--provide",
                "ab",
                "--postpone",
                "--reason",
                "r",
            ][..],
            &[
                "request",
                "answer",
                RID,
                "--postpone",
                "--refuse",
                "--reason-code",
                "a",
                "--reason",
                "r",
            ][..],
            &["request", "answer", RID, "--provide", "ab", "--reason", "r"][..],
        ] {
            assert_eq!(
                refused(conflicting),
                ErrorKind::ArgumentConflict,
                "{conflicting:?}"
            );
        }
        for missing in [
            &["request", "answer", RID][..],
            &["request", "answer", RID, "--postpone"][..],
            &["request", "answer", RID, "--refuse", "--reason", "r"][..],
            &["request", "answer", RID, "--refuse", "--reason-code", "a"][..],
            &[
                "request",
                "answer",
                RID,
                "--reason-code",
                "a",
                "--reason",
                "r",
            ][..],
        ] {
            assert_eq!(
                refused(missing),
                ErrorKind::MissingRequiredArgument,
                "{missing:?}"
            );
        }
    }

    #[test]
    fn reason_codes_outside_a_to_e_are_refused_by_the_parser() {
        for bad in ["f", "ab", "1", ""] {
            let kind = refused(&[
                "request",
                "answer",
                RID,
                "--refuse",
                "--reason-code",
                bad,
                "--reason",
                "r",
            ]);
            assert_eq!(kind, ErrorKind::ValueValidation, "{bad}");
        }
        let e = parse(&[
            "request",
            "answer",
            RID,
            "--refuse",
            "--reason-code",
            "f",
            "--reason",
            "r",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("a, b, c, d, e"), "{e}");
    }

    #[test]
    fn a_request_is_about_exactly_one_ucr_or_document() {
        let base = [
            "request",
            "create",
            "--to",
            "XB",
            "--purpose",
            "p",
            "--legal-basis",
            "l",
            "--items",
            "invoice",
        ];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().copied().chain(extra.iter().copied()).collect()
        };
        assert!(parse(&with(&["--ucr", "24XA-1"])).is_ok());
        assert!(parse(&with(&["--doc", RID])).is_ok());
        assert_eq!(refused(&with(&[])), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            refused(&with(&["--ucr", "u", "--doc", RID])),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            refused(&[
                "request",
                "create",
                "--to",
                "XB",
                "--ucr",
                "u",
                "--purpose",
                "p",
                "--legal-basis",
                "l"
            ]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn audit_needs_exactly_one_subject() {
        assert!(parse(&["audit", "--doc", RID]).is_ok());
        assert!(parse(&["audit", "--officer", "ab"]).is_ok());
        assert_eq!(refused(&["audit"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            refused(&["audit", "--doc", RID, "--officer", "ab"]),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn evidence_list_takes_an_optional_accused() {
        match parse(&["evidence", "list", "--accused", "XD"])
            .unwrap()
            .command
        {
            Command::Evidence(EvidenceCommand::List { accused }) => {
                assert_eq!(accused.as_deref(), Some("XD"))
            }
            other => panic!("not evidence list: {other:?}"),
        }
        assert!(parse(&["evidence", "list"]).is_ok());
        assert!(parse(&["evidence"]).is_err());
    }

    #[test]
    fn watch_flags() {
        match parse(&[
            "watch",
            "--from-height",
            "12",
            "--no-ack",
            "--count",
            "3",
            "--output",
            "json",
        ])
        .unwrap()
        {
            Cli {
                command: Command::Watch(w),
                output,
                ..
            } => {
                assert_eq!(
                    (w.from_height, w.no_ack, w.count),
                    (Some(12), true, Some(3))
                );
                assert_eq!(output, OutputArg::Json);
            }
            _ => panic!("not watch"),
        }
        match parse(&["watch"]).unwrap().command {
            Command::Watch(w) => {
                assert_eq!((w.from_height, w.no_ack, w.count), (None, false, None))
            }
            _ => panic!("not watch"),
        }
        assert_eq!(
            refused(&["watch", "--count", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["watch", "--from-height", "soon"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn officer_roles_votes_and_versions_are_checked_by_the_parser() {
        match parse(&[
            "officer",
            "add",
            "--key",
            "ab",
            "--name",
            "Ada",
            "--roles",
            "officer,auditor",
        ])
        .unwrap()
        .command
        {
            Command::Officer(OfficerCommand::Add { roles, .. }) => {
                assert_eq!(roles, vec![RoleArg::Officer, RoleArg::Auditor])
            }
            _ => panic!("not officer add"),
        }
        assert_eq!(
            refused(&[
                "officer",
                "add",
                "--key",
                "ab",
                "--name",
                "Ada",
                "--roles",
                "officer,chief"
            ]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            refused(&["officer", "add", "--key", "ab", "--name", "Ada"]),
            ErrorKind::MissingRequiredArgument
        );
        // `--key` of `officer add` is the new officer's public key; the global `--key`
        // (a key file) still works everywhere else, before or after the subcommand.
        let cli = parse(&[
            "--profile",
            "XA.toml",
            "officer",
            "add",
            "--key",
            "ab",
            "--name",
            "Ada",
            "--roles",
            "admin",
        ])
        .unwrap();
        match cli.command {
            Command::Officer(OfficerCommand::Add { key, .. }) => {
                assert_eq!(key, PathBuf::from("ab"))
            }
            _ => panic!("not officer add"),
        }
        for args in [
            &["--key", "me.key", "doc", "show", "ab"][..],
            &["doc", "show", "ab", "--key", "me.key"][..],
            &["officer", "list", "--key", "me.key"][..],
        ] {
            assert_eq!(
                parse(args).unwrap().key,
                Some(PathBuf::from("me.key")),
                "{args:?}"
            );
        }
        match parse(&["member", "vote", RID, "no"]).unwrap().command {
            Command::Member(MemberCommand::Vote { vote, .. }) => assert_eq!(vote, VoteArg::No),
            _ => panic!("not member vote"),
        }
        assert_eq!(
            refused(&["member", "vote", RID, "maybe"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            refused(&["doc", "decrypt", RID, "--purpose", "p", "--version", "0"]),
            ErrorKind::ValueValidation
        );
        match parse(&[
            "doc",
            "submit",
            "--kind",
            "k",
            "--ucr",
            "u",
            "--to",
            "XB",
            "--file",
            "f",
            "--agreement",
            RID,
        ])
        .unwrap()
        .command
        {
            Command::Doc(DocCommand::Submit { agreement, .. }) => {
                assert_eq!(agreement.as_deref(), Some(RID))
            }
            _ => panic!("not doc submit"),
        }
    }
}
