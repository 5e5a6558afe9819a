//! `carnet request ...`: WTO TFA Article 12 information requests between
//! administrations — asking (Art. 12.4.1), answering by providing documents, postponing
//! or refusing on a ground of Art. 12.7.1 a–e, listing (overdue ones flagged: 90 days,
//! Art. 12.6.1 e) and notifying a breach (Art. 12.11.1).
//!
//! Every text here is recorded on the ledger, so each is checked before the node is
//! asked. Must never: send an answer of more than one kind, or a reason code outside
//! a–e.

use super::{check_admin_code, check_id, check_ledger_id, check_text, check_ucr};
use crate::api::{AnswerRequest, InfoRequest, NewRequest};
use crate::client::NodeClient;
use crate::error::CliError;
use carnet_contracts::execute::MAX_PURPOSE_BYTES;
use carnet_contracts::request::{
    RefusalGround, MAX_BREACH_BYTES, MAX_ITEMS, MAX_ITEM_BYTES, MAX_PROVIDED_DOCUMENTS,
};

/// What `carnet request create` was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestArgs<'a> {
    pub to: &'a str,
    pub ucr: Option<&'a str>,
    pub document: Option<&'a str>,
    pub purpose: &'a str,
    pub legal_basis: &'a str,
    /// Comma-separated items asked for.
    pub items: &'a str,
    pub confidentiality: Option<&'a str>,
}

/// Checks a request: one administration, exactly one matter (UCR or document), a
/// purpose, a legal basis, 1 to 64 items.
pub fn new_request(args: &RequestArgs<'_>) -> Result<NewRequest, CliError> {
    let to = check_admin_code(args.to).map_err(|e| CliError::bad_input(format!("--to: {e}")))?;
    let (ucr, document) = match (args.ucr, args.document) {
        (Some(ucr), None) => (Some(check_ucr(ucr)?), None),
        (None, Some(id)) => (None, Some(check_id(id)?)),
        _ => {
            return Err(CliError::bad_input(
                "name what the request is about with exactly one of --ucr UCR and --doc ID",
            ))
        }
    };
    let purpose = check_text(
        "--purpose",
        "what the information is for",
        args.purpose,
        MAX_PURPOSE_BYTES,
    )?;
    let legal_basis = check_text(
        "--legal-basis",
        "the law the request is made under",
        args.legal_basis,
        MAX_PURPOSE_BYTES,
    )?;
    let items = parse_items(args.items)?;
    let confidentiality = args
        .confidentiality
        .map(|c| {
            check_text(
                "--confidentiality",
                "how the information must be treated",
                c,
                MAX_PURPOSE_BYTES,
            )
        })
        .transpose()?;
    Ok(NewRequest {
        to,
        ucr,
        document,
        purpose,
        legal_basis,
        items,
        confidentiality,
    })
}

/// Splits `--items invoice,packing list` into 1 to [`MAX_ITEMS`] items of at most
/// [`MAX_ITEM_BYTES`] each, in order, without repeats.
pub fn parse_items(items: &str) -> Result<Vec<String>, CliError> {
    let mut out: Vec<String> = Vec::new();
    for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item.len() > MAX_ITEM_BYTES {
            return Err(CliError::bad_input(format!(
                "--items: an item is longer than {MAX_ITEM_BYTES} bytes"
            )));
        }
        if !out.iter().any(|i| i == item) {
            out.push(item.to_string());
        }
    }
    if out.is_empty() {
        return Err(CliError::bad_input(
            "--items names nothing (e.g. --items invoice,transport-document)",
        ));
    }
    if out.len() > MAX_ITEMS {
        return Err(CliError::bad_input(format!(
            "--items names {} items; a request asks for at most {MAX_ITEMS}",
            out.len()
        )));
    }
    Ok(out)
}

/// Checks a TFA Art. 12.7.1 ground: one letter `a` to `e` (either case). Returns it in
/// lower case.
pub fn parse_reason_code(code: &str) -> Result<String, CliError> {
    RefusalGround::parse(&code.trim().to_ascii_lowercase())
        .map(|g| g.letter().to_string())
        .map_err(|e| CliError::bad_input(super::contract_message(&e)))
}

/// What `carnet request answer` was given; exactly one of `provide`, `postpone`,
/// `refuse` must be set (the argument parser enforces it too).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerArgs<'a> {
    /// Comma-separated document ids.
    pub provide: Option<&'a str>,
    pub postpone: bool,
    pub refuse: bool,
    pub reason_code: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Checks an answer and builds its body.
pub fn answer_body(args: &AnswerArgs<'_>) -> Result<AnswerRequest, CliError> {
    let reason = |what: &str| match args.reason {
        Some(text) => check_text("--reason", what, text, MAX_PURPOSE_BYTES),
        None => Err(CliError::bad_input(format!(
            "--reason must say {what} (it is recorded on the ledger)"
        ))),
    };
    match (args.provide, args.postpone, args.refuse) {
        (Some(documents), false, false) => {
            if args.reason.is_some() || args.reason_code.is_some() {
                return Err(CliError::bad_input(
                    "--provide takes no --reason or --reason-code",
                ));
            }
            Ok(AnswerRequest::Provide {
                documents: parse_documents(documents)?,
            })
        }
        (None, true, false) => {
            if args.reason_code.is_some() {
                return Err(CliError::bad_input(
                    "--reason-code goes with --refuse, not --postpone",
                ));
            }
            Ok(AnswerRequest::Postpone {
                reason: reason("why the answer is postponed")?,
            })
        }
        (None, false, true) => {
            let code = args.reason_code.ok_or_else(|| {
                CliError::bad_input("--refuse needs --reason-code (TFA Art. 12.7.1 a to e)")
            })?;
            Ok(AnswerRequest::Refuse {
                reason_code: parse_reason_code(code)?,
                reason: reason("why the request is refused")?,
            })
        }
        _ => Err(CliError::bad_input(
            "answer with exactly one of --provide DOC[,DOC], --postpone, --refuse",
        )),
    }
}

fn parse_documents(list: &str) -> Result<Vec<String>, CliError> {
    let mut out: Vec<String> = Vec::new();
    for id in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let id = check_id(id)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    if out.is_empty() {
        return Err(CliError::bad_input("--provide names no document"));
    }
    if out.len() > MAX_PROVIDED_DOCUMENTS {
        return Err(CliError::bad_input(format!(
            "--provide names {} documents; one answer provides at most {MAX_PROVIDED_DOCUMENTS}",
            out.len()
        )));
    }
    Ok(out)
}

/// `carnet request create`: the request is on the ledger with its 90-day deadline.
pub fn create(client: &NodeClient, args: &RequestArgs<'_>) -> Result<InfoRequest, CliError> {
    client.create_request(&new_request(args)?)
}

/// `carnet request answer ID ...`: only the requested administration may answer.
pub fn answer(
    client: &NodeClient,
    id: &str,
    args: &AnswerArgs<'_>,
) -> Result<InfoRequest, CliError> {
    let id = check_ledger_id("request id", id)?;
    client.answer_request(&id, &answer_body(args)?)
}

/// `carnet request list [--overdue]`: requests your administration made or received.
pub fn list(client: &NodeClient, overdue_only: bool) -> Result<Vec<InfoRequest>, CliError> {
    client.requests(overdue_only)
}

/// `carnet request show ID`.
pub fn show(client: &NodeClient, id: &str) -> Result<InfoRequest, CliError> {
    client.request(&check_ledger_id("request id", id)?)
}

/// `carnet request breach ID --details TEXT`: only the requester may notify a breach.
pub fn breach(client: &NodeClient, id: &str, details: &str) -> Result<InfoRequest, CliError> {
    let id = check_ledger_id("request id", id)?;
    let details = check_text(
        "--details",
        "what was used or disclosed without authorization",
        details,
        MAX_BREACH_BYTES,
    )?;
    client.report_breach(&id, &details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_args<'a>() -> RequestArgs<'a> {
        RequestArgs {
            to: "XB",
            ucr: Some("24XA-0001"),
            document: None,
            purpose: "verify the declared value",
            legal_basis: "WTO TFA Art. 12",
            items: "invoice, packing list,invoice",
            confidentiality: None,
        }
    }

    #[test]
    fn a_request_is_checked_before_it_is_sent() {
        let request = new_request(&request_args()).unwrap();
        assert_eq!(request.to, "XB");
        assert_eq!(request.ucr.as_deref(), Some("24XA-0001"));
        assert_eq!(request.items, vec!["invoice", "packing list"]);
        for (args, named) in [
            (
                RequestArgs {
                    to: "xb",
                    ..request_args()
                },
                "--to",
            ),
            (
                RequestArgs {
                    ucr: None,
                    ..request_args()
                },
                "--ucr",
            ),
            (
                RequestArgs {
                    document: Some("zz"),
                    ..request_args()
                },
                "--ucr",
            ),
            (
                RequestArgs {
                    purpose: " ",
                    ..request_args()
                },
                "--purpose",
            ),
            (
                RequestArgs {
                    legal_basis: "",
                    ..request_args()
                },
                "--legal-basis",
            ),
            (
                RequestArgs {
                    items: " , ",
                    ..request_args()
                },
                "--items",
            ),
            (
                RequestArgs {
                    confidentiality: Some(" "),
                    ..request_args()
                },
                "--confidentiality",
            ),
        ] {
            let e = new_request(&args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.message.contains(named), "{named}: {}", e.message);
        }
        let many = vec!["i"; MAX_ITEMS + 1]
            .iter()
            .enumerate()
            .map(|(n, i)| format!("{i}{n}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse_items(&many).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn reason_codes_are_the_five_grounds_of_article_12_7_1() {
        for (given, letter) in [("a", "a"), ("C", "c"), (" e ", "e")] {
            assert_eq!(parse_reason_code(given).unwrap(), letter);
        }
        for bad in ["f", "ab", "", "1"] {
            let e = parse_reason_code(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.message.contains("a, b, c, d, e"), "{}", e.message);
        }
    }

    #[test]
    fn an_answer_is_exactly_one_kind() {
        let doc = "ab".repeat(16);
        let provide = answer_body(&AnswerArgs {
            provide: Some(&format!("{doc},{}", doc.to_uppercase())),
            ..AnswerArgs::default()
        })
        .unwrap();
        assert_eq!(
            provide,
            AnswerRequest::Provide {
                documents: vec![doc.clone()]
            }
        );
        let refuse = answer_body(&AnswerArgs {
            refuse: true,
            reason_code: Some("D"),
            reason: Some("no consent of the importer"),
            ..AnswerArgs::default()
        })
        .unwrap();
        assert_eq!(
            refuse,
            AnswerRequest::Refuse {
                reason_code: "d".into(),
                reason: "no consent of the importer".into()
            }
        );
        let bad = [
            AnswerArgs::default(),
            AnswerArgs {
                provide: Some(&doc),
                postpone: true,
                reason: Some("r"),
                ..AnswerArgs::default()
            },
            AnswerArgs {
                postpone: true,
                ..AnswerArgs::default()
            },
            AnswerArgs {
                refuse: true,
                reason: Some("r"),
                ..AnswerArgs::default()
            },
            AnswerArgs {
                refuse: true,
                reason_code: Some("z"),
                reason: Some("r"),
                ..AnswerArgs::default()
            },
            AnswerArgs {
                provide: Some("not-an-id"),
                ..AnswerArgs::default()
            },
        ];
        for (i, args) in bad.iter().enumerate() {
            assert_eq!(answer_body(args).unwrap_err().exit_code(), 2, "case {i}");
        }
    }
}
