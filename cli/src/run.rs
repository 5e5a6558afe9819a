//! Runs one parsed `carnet` command: resolves the node and key (flags, then profile),
//! calls [`crate::commands`], and writes the result in the chosen format.
//!
//! Output goes to the writers in [`Io`] (stdout and stderr in the binary, buffers in
//! tests). Results go to `out`; progress, warnings and summaries that must not mix with
//! a payload or a JSON document go to `err`. Must never: write anything but the payload
//! to `out` when the payload is the output, or print a secret.

use crate::args::{
    AgreementCommand, Cli, Command, DocCommand, EvidenceCommand, KeysCommand, MemberCommand,
    OfficerCommand, OutputArg, RequestCommand, UcrCommand, VoteArg, WatchArgs,
};
use crate::client::{now_ms, NodeClient};
use crate::commands::{self, agreement, audit, evidence, member, officer, request, ucr, watch};
use crate::error::CliError;
use crate::output::{self, Format};
use crate::profile::{self, Profile};
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Where a command writes.
pub struct Io<'a> {
    /// Results: tables, JSON documents, payloads.
    pub out: &'a mut dyn Write,
    /// Progress, warnings and summaries.
    pub err: &'a mut dyn Write,
    /// `out` is a terminal: a payload printed there gets a final newline.
    pub out_is_terminal: bool,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("out_is_terminal", &self.out_is_terminal)
            .finish()
    }
}

fn write_failed(e: std::io::Error) -> CliError {
    CliError::bad_input(format!("cannot write output: {e}"))
}

impl Io<'_> {
    fn out(&mut self, text: &str) -> Result<(), CliError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(write_failed)
    }

    fn err(&mut self, text: &str) -> Result<(), CliError> {
        self.err
            .write_all(text.as_bytes())
            .and_then(|()| self.err.flush())
            .map_err(write_failed)
    }

    fn json<T: Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        let text = output::json_text(value)
            .map_err(|e| CliError::bad_input(format!("cannot encode output: {e}")))?;
        self.out(&format!("{text}\n"))
    }

    /// The value as JSON, or the table `render` makes of it.
    fn emit<T: Serialize>(
        &mut self,
        format: Format,
        value: &T,
        render: impl FnOnce(&T) -> String,
    ) -> Result<(), CliError> {
        match format {
            Format::Json => self.json(value),
            Format::Table => self.out(&render(value)),
        }
    }
}

/// The output format chosen with `--output`.
pub fn format_of(cli: &Cli) -> Format {
    match cli.output {
        OutputArg::Table => Format::Table,
        OutputArg::Json => Format::Json,
    }
}

/// The node client from `--node`/`--key`, falling back to the profile.
pub fn client(cli: &Cli) -> Result<NodeClient, CliError> {
    let profile = match &cli.profile {
        Some(path) => Profile::load(path)?,
        None => Profile::default(),
    };
    let node = cli.node.clone().or(profile.node).ok_or_else(|| {
        CliError::bad_input("no node given: pass --node URL or --profile FILE (or CARNET_PROFILE)")
    })?;
    let key_path = cli
        .key
        .clone()
        .or(profile.key)
        .ok_or_else(|| match &cli.command {
            Command::Officer(OfficerCommand::Add { .. }) => CliError::bad_input(
                "no officer key to sign with: in `carnet officer add`, --key is the new \
                 officer's public key; give yours before the subcommand (carnet --key \
                 FILE officer add ...), with --signer FILE, or with --profile FILE",
            ),
            _ => CliError::bad_input("no officer key given: pass --key FILE or --profile FILE"),
        })?;
    let key = profile::read_signing_key(&key_path)?;
    NodeClient::new(&node, key)
}

/// Runs `cli`'s command, writing to `io`.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    let format = format_of(cli);
    match &cli.command {
        Command::Keys(KeysCommand::Generate { out }) => {
            let generated = commands::generate_key(out)?;
            io.emit(format, &generated, |g| {
                output::render_fields(&[
                    ("public_key", g.public_key.clone()),
                    ("file", g.file.display().to_string()),
                ])
            })
        }
        Command::Status => {
            let status = commands::status(&client(cli)?)?;
            io.emit(format, &status, |s| {
                output::render_fields(&[
                    ("administration", s.administration.clone()),
                    ("chain_id", s.chain_id.clone()),
                    ("height", s.height.to_string()),
                    (
                        "last_block_hash",
                        s.last_block_hash.clone().unwrap_or_default(),
                    ),
                    ("view", s.view.to_string()),
                    ("epoch", s.epoch.to_string()),
                    (
                        "validators",
                        if s.validator_set.is_empty() {
                            s.validators.to_string()
                        } else {
                            s.validator_set.join(" ")
                        },
                    ),
                    ("peers", s.peers.to_string()),
                ])
            })
        }
        Command::Doc(doc) => run_doc(cli, format, doc, io),
        Command::Agreement(command) => run_agreement(cli, format, command, io),
        Command::Ucr(UcrCommand::Match { ucr }) => {
            commands::check_ucr(ucr)?;
            let matched = ucr::match_ucr(&client(cli)?, ucr)?;
            io.emit(format, &matched, output::render_ucr_match)
        }
        Command::Watch(args) => run_watch(cli, format, args, io),
        Command::Request(command) => run_request(cli, format, command, io),
        Command::Officer(command) => run_officer(cli, format, command, io),
        Command::Member(command) => run_member(cli, format, command, io),
        Command::Audit { doc, officer } => {
            let subject = audit::subject(doc.as_deref(), officer.as_deref())?;
            let accesses = audit::audit(&client(cli)?, &subject)?;
            match format {
                Format::Json => io.json(&serde_json::json!({ "accesses": accesses })),
                Format::Table => io.out(&output::render_accesses(&accesses)),
            }
        }
        Command::Evidence(EvidenceCommand::List { accused }) => {
            let records = evidence::list(&client(cli)?, accused.as_deref())?;
            match format {
                Format::Json => io.json(&serde_json::json!({ "evidence": records })),
                Format::Table => io.out(&evidence::render(&records)),
            }
        }
    }
}

fn run_doc(
    cli: &Cli,
    format: Format,
    command: &DocCommand,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    match command {
        DocCommand::Submit {
            kind,
            ucr,
            to,
            file,
            agreement,
        } => {
            // Validate locally before resolving the node, so bad input never waits on one.
            commands::parse_kind(kind)?;
            commands::check_ucr(ucr)?;
            commands::parse_recipients(to)?;
            if let Some(a) = agreement {
                commands::check_ledger_id("agreement id", a)?;
            }
            commands::read_payload(file)?;
            let submitted =
                commands::submit(&client(cli)?, kind, ucr, to, file, agreement.as_deref())?;
            io.emit(format, &submitted, output::render_submitted)
        }
        DocCommand::Show { id } => {
            let doc = commands::show(&client(cli)?, id)?;
            io.emit(format, &doc, output::render_document)
        }
        DocCommand::Find { ucr } => {
            let documents = commands::find(&client(cli)?, ucr)?;
            match format {
                Format::Json => io.json(&serde_json::json!({
                    "ucr": ucr.trim(),
                    "documents": documents,
                })),
                Format::Table => io.out(&output::render_documents(&documents)),
            }
        }
        DocCommand::Decrypt {
            id,
            purpose,
            version,
            request,
            out,
        } => {
            commands::check_id(id)?;
            commands::decrypt_request(purpose, *version, request.as_deref())?;
            let options = commands::DecryptOptions {
                version: *version,
                request: request.as_deref(),
                out: out.as_deref(),
            };
            let decrypted = commands::decrypt(&client(cli)?, id, purpose, &options)?;
            match (out, format) {
                (Some(out), Format::Json) => io.json(&serde_json::json!({
                    "id": decrypted.id,
                    "version": decrypted.version,
                    "kind": decrypted.kind,
                    "out": out,
                    "bytes": decrypted.payload.len(),
                })),
                (Some(out), Format::Table) => io.out(&format!(
                    "wrote {} version {} ({} bytes) to {}\n",
                    decrypted.id,
                    decrypted.version,
                    decrypted.payload.len(),
                    out.display()
                )),
                // For scripts: the node's answer, the payload as a JSON string in it.
                (None, Format::Json) => io.json(&decrypted),
                (None, Format::Table) => {
                    // The payload itself, byte for byte; a newline only for a person.
                    let mut text = decrypted.payload;
                    if io.out_is_terminal && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    io.out(&text)
                }
            }
        }
        DocCommand::Amend { id, file } => {
            commands::check_id(id)?;
            commands::read_payload(file)?;
            let filed = commands::amend(&client(cli)?, id, file)?;
            io.emit(format, &filed, output::render_version_filed)
        }
        DocCommand::Cancel { id, reason } => {
            commands::check_id(id)?;
            let filed = commands::cancel(&client(cli)?, id, reason)?;
            io.emit(format, &filed, output::render_version_filed)
        }
        DocCommand::History { id } => {
            let history = commands::history(&client(cli)?, id)?;
            io.emit(format, &history, output::render_history)
        }
        DocCommand::Prefill {
            from,
            kind,
            purpose,
            out,
        } => {
            commands::check_id(from)?;
            commands::parse_kind(kind)?;
            if let Some(out) = out {
                commands::refuse_existing(out)?;
            }
            let prefilled = commands::prefill(
                &client(cli)?,
                from,
                kind,
                purpose.as_deref(),
                out.as_deref(),
            )?;
            match (out, format) {
                (Some(out), Format::Json) => io.json(&serde_json::json!({
                    "from": prefilled.from,
                    "kind": prefilled.kind,
                    "out": out,
                    "carried": prefilled.carried,
                    "dropped": prefilled.dropped,
                })),
                (Some(out), Format::Table) => {
                    io.out(&output::render_prefill_summary(&prefilled, Some(out)))
                }
                (None, Format::Json) => io.json(&prefilled),
                (None, Format::Table) => {
                    // The payload alone on stdout, so it can be redirected to a file.
                    io.out(&commands::prefilled_text(&prefilled)?)?;
                    io.err(&output::render_prefill_summary(&prefilled, None))
                }
            }
        }
        DocCommand::Erase {
            id,
            reason,
            legal_basis,
        } => {
            // Validate locally before resolving the node, so bad input never waits on one.
            commands::erasure_request(id, reason, legal_basis)?;
            let erased = commands::erase(&client(cli)?, id, reason, legal_basis)?;
            io.emit(format, &erased, output::render_erased)
        }
        DocCommand::Status {
            id,
            wait_attestations,
        } => {
            let client = client(cli)?;
            let status = match wait_attestations {
                Some(secs) => {
                    commands::wait_for_attestations(&client, id, Duration::from_secs(*secs))?
                }
                None => commands::document_status(&client, id)?,
            };
            io.emit(format, &status, output::render_document_status)
        }
    }
}

fn run_agreement(
    cli: &Cli,
    format: Format,
    command: &AgreementCommand,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    match command {
        AgreementCommand::Propose { file } => {
            agreement::read_agreement_file(file)?;
            let filed = agreement::propose(&client(cli)?, file)?;
            io.emit(format, &filed, output::render_agreement_filed)
        }
        AgreementCommand::Accept { id } => {
            commands::check_ledger_id("agreement id", id)?;
            let filed = agreement::accept(&client(cli)?, id)?;
            io.emit(format, &filed, output::render_agreement_filed)
        }
        AgreementCommand::Show { id } => {
            commands::check_ledger_id("agreement id", id)?;
            let shown = agreement::show(&client(cli)?, id)?;
            io.emit(format, &shown, output::render_agreement)
        }
        AgreementCommand::List => {
            let agreements = agreement::list(&client(cli)?)?;
            match format {
                Format::Json => io.json(&serde_json::json!({ "agreements": agreements })),
                Format::Table => io.out(&output::render_agreements(&agreements)),
            }
        }
    }
}

fn run_watch(cli: &Cli, format: Format, args: &WatchArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let client = client(cli)?;
    let mut feed = watch::NodeFeed { client: &client };
    let options = watch::WatchOptions {
        from_height: args.from_height,
        acknowledge: !args.no_ack,
        count: args.count,
    };
    watch::watch(&mut feed, &options, &mut |notice| match notice {
        watch::WatchNotice::Document(event) => match format {
            Format::Json => {
                let line = serde_json::to_string(event)
                    .map_err(|e| CliError::bad_input(format!("cannot encode output: {e}")))?;
                io.out(&format!("{line}\n"))
            }
            Format::Table => io.out(&output::render_event_line(event)),
        },
        watch::WatchNotice::Acknowledged(ack) => match format {
            Format::Table => io.err(&output::render_acknowledged(ack)),
            Format::Json => Ok(()),
        },
        watch::WatchNotice::NotAcknowledged(event, e) => io.err(&format!(
            "warning: document {} v{} not acknowledged: {}\n",
            event.id, event.version, e.message
        )),
        watch::WatchNotice::Reconnecting {
            attempt,
            from_height,
            pause,
            cause,
        } => io.err(&format!(
            "event stream: {}; reconnecting from height {from_height} in {} ms \
             (attempt {attempt} of {})\n",
            cause.message,
            pause.as_millis(),
            watch::MAX_RECONNECT_ATTEMPTS
        )),
    })?;
    Ok(())
}

fn run_request(
    cli: &Cli,
    format: Format,
    command: &RequestCommand,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let now = now_ms();
    let show = |r: &crate::api::InfoRequest| output::render_request(r, now);
    match command {
        RequestCommand::Create {
            to,
            ucr,
            doc,
            purpose,
            legal_basis,
            items,
            confidentiality,
        } => {
            let args = request::RequestArgs {
                to,
                ucr: ucr.as_deref(),
                document: doc.as_deref(),
                purpose,
                legal_basis,
                items,
                confidentiality: confidentiality.as_deref(),
            };
            request::new_request(&args)?;
            let created = request::create(&client(cli)?, &args)?;
            io.emit(format, &created, show)
        }
        RequestCommand::Answer {
            id,
            provide,
            postpone,
            refuse,
            reason_code,
            reason,
        } => {
            let args = request::AnswerArgs {
                provide: provide.as_deref(),
                postpone: *postpone,
                refuse: *refuse,
                reason_code: reason_code.as_deref(),
                reason: reason.as_deref(),
            };
            commands::check_ledger_id("request id", id)?;
            request::answer_body(&args)?;
            let answered = request::answer(&client(cli)?, id, &args)?;
            io.emit(format, &answered, show)
        }
        RequestCommand::List { overdue } => {
            let requests = request::list(&client(cli)?, *overdue)?;
            match format {
                Format::Json => io.json(&serde_json::json!({ "requests": requests })),
                Format::Table => io.out(&output::render_requests(&requests, now)),
            }
        }
        RequestCommand::Show { id } => {
            commands::check_ledger_id("request id", id)?;
            let shown = request::show(&client(cli)?, id)?;
            io.emit(format, &shown, show)
        }
        RequestCommand::Breach { id, details } => {
            commands::check_ledger_id("request id", id)?;
            let notified = request::breach(&client(cli)?, id, details)?;
            io.emit(format, &notified, show)
        }
    }
}

fn run_officer(
    cli: &Cli,
    format: Format,
    command: &OfficerCommand,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    match command {
        OfficerCommand::Add {
            key, name, roles, ..
        } => {
            let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_string()).collect();
            officer::new_officer(key, name, &roles)?;
            let added = officer::add(&client(cli)?, key, name, &roles)?;
            io.emit(format, &added, output::render_officer)
        }
        OfficerCommand::Revoke { officer_key } => {
            commands::check_officer_key(officer_key)?;
            let revoked = officer::revoke(&client(cli)?, officer_key)?;
            io.emit(format, &revoked, output::render_officer)
        }
        OfficerCommand::List { administration } => {
            if let Some(code) = administration {
                commands::check_admin_code(code)?;
            }
            let officers = officer::list(&client(cli)?, administration.as_deref())?;
            match format {
                Format::Json => io.json(&serde_json::json!({ "officers": officers })),
                Format::Table => io.out(&output::render_officers(&officers)),
            }
        }
    }
}

fn run_member(
    cli: &Cli,
    format: Format,
    command: &MemberCommand,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let proposal = match command {
        MemberCommand::ProposeAdd {
            file,
            effective_delay_blocks,
        } => {
            member::read_member_file(file)?;
            member::check_delay(*effective_delay_blocks)?;
            member::propose_add(&client(cli)?, file, *effective_delay_blocks)?
        }
        MemberCommand::ProposeRemove {
            code,
            effective_delay_blocks,
        } => {
            commands::check_admin_code(code)?;
            member::check_delay(*effective_delay_blocks)?;
            member::propose_remove(&client(cli)?, code, *effective_delay_blocks)?
        }
        MemberCommand::Vote { id, vote } => {
            commands::check_ledger_id("proposal id", id)?;
            member::vote(&client(cli)?, id, *vote == VoteArg::Yes)?
        }
        MemberCommand::List => {
            let membership = member::list(&client(cli)?)?;
            return io.emit(format, &membership, output::render_membership);
        }
    };
    io.emit(format, &proposal, output::render_proposal)
}
