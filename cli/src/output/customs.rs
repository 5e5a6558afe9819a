//! Tables for the customs-contracts views: agreements, document histories, UCR
//! matches, pre-filled payloads, watched documents, TFA requests, officers, membership
//! and the read audit. Each takes the node's record and returns text; none prints.
//!
//! Must never: hide a refusal ground, an overdue deadline or a mismatch behind a summary
//! (each is spelled out), or print a secret key.

use super::{format_date, format_time, render_fields, render_table, DAY_MS};
use crate::api::{
    Access, Acknowledged, Agreement, AgreementFiled, AnswerRecord, DocumentEvent, DocumentHistory,
    InfoRequest, Membership, Mismatch, Officer, Prefilled, Proposal, UcrMatch, VersionFiled,
};
use crate::client::Document;
use serde_json::Value;
use std::path::Path;

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(",")
    }
}

/// `carnet agreement show` as a table; one `cluster` line per document kind.
pub fn render_agreement(agreement: &Agreement) -> String {
    let mut fields = vec![
        ("id", agreement.id.clone()),
        ("title", agreement.title.clone()),
        ("status", agreement.status.clone()),
        ("parties", agreement.parties.join(",")),
        ("accepted", list_or_none(&agreement.accepted)),
        ("pending", list_or_none(&agreement.pending)),
        ("proposed_by", agreement.proposed_by.clone()),
        ("trigger", agreement.trigger.clone()),
        ("delivery", agreement.delivery.clone()),
        ("legal_basis", agreement.legal_basis.clone()),
        ("purpose", agreement.purpose.clone()),
        (
            "retention",
            match agreement.retention_days {
                Some(days) => format!("{days} days"),
                None => "until erased".to_string(),
            },
        ),
        ("height", agreement.height.to_string()),
        (
            "activated_at",
            agreement
                .activated_at
                .map_or_else(|| "not yet".to_string(), |h| h.to_string()),
        ),
    ];
    for cluster in &agreement.clusters {
        let mut text = format!("{}: allowed {}", cluster.kind, cluster.allowed.join(","));
        if !cluster.required.is_empty() {
            text.push_str(&format!("; required {}", cluster.required.join(",")));
        }
        fields.push(("cluster", text));
    }
    render_fields(&fields)
}

/// `carnet agreement propose|accept` as a table.
pub fn render_agreement_filed(filed: &AgreementFiled) -> String {
    let a = &filed.agreement;
    render_fields(&[
        ("id", a.id.clone()),
        ("title", a.title.clone()),
        ("status", a.status.clone()),
        ("accepted", list_or_none(&a.accepted)),
        ("pending", list_or_none(&a.pending)),
        ("height", filed.height.to_string()),
    ])
}

/// `carnet agreement list` as a table.
pub fn render_agreements(agreements: &[Agreement]) -> String {
    if agreements.is_empty() {
        return "no agreements\n".to_string();
    }
    let rows: Vec<Vec<String>> = agreements
        .iter()
        .map(|a| {
            let kinds: Vec<String> = a.clusters.iter().map(|c| c.kind.clone()).collect();
            vec![
                a.id.clone(),
                a.status.clone(),
                a.parties.join(","),
                kinds.join(","),
                list_or_none(&a.pending),
                a.height.to_string(),
                a.title.clone(),
            ]
        })
        .collect();
    render_table(
        &[
            "ID", "STATUS", "PARTIES", "KINDS", "PENDING", "HEIGHT", "TITLE",
        ],
        &rows,
    )
}

/// `carnet doc amend|cancel` as a table.
pub fn render_version_filed(filed: &VersionFiled) -> String {
    let mut fields = vec![
        ("id", filed.id.clone()),
        ("version", filed.version.to_string()),
        ("status", filed.status.clone()),
        ("height", filed.height.to_string()),
    ];
    if let Some(agreement) = &filed.agreement {
        fields.push(("agreement", agreement.clone()));
    }
    render_fields(&fields)
}

/// `carnet doc history` as a table: the document, then one row per version, then the
/// cancellation if any.
pub fn render_history(history: &DocumentHistory) -> String {
    let mut out = render_fields(&[
        ("id", history.id.clone()),
        ("kind", history.kind.clone()),
        ("issuer", history.issuer.clone()),
        (
            "agreement",
            history.agreement.clone().unwrap_or_else(|| "none".into()),
        ),
    ]);
    let rows: Vec<Vec<String>> = history
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.status.clone(),
                v.height.to_string(),
                format_time(v.time_ms),
                v.submitted_by.clone(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render_table(
        &["VER", "STATUS", "HEIGHT", "TIME", "SUBMITTED_BY"],
        &rows,
    ));
    if let Some(c) = &history.cancellation {
        out.push('\n');
        out.push_str(&render_fields(&[
            ("cancelled", format!("height {} by {}", c.height, c.officer)),
            ("reason", c.reason.clone()),
        ]));
    }
    out
}

/// A value of a data element as an officer reads it: strings bare, the rest as JSON.
pub fn element_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "(absent)".to_string(),
        other => other.to_string(),
    }
}

/// `N mismatches` (or `1 mismatch`).
pub fn mismatch_count(n: usize) -> String {
    if n == 1 {
        "1 mismatch".to_string()
    } else {
        format!("{n} mismatches")
    }
}

fn match_section(out: &mut String, title: &str, documents: &[Document]) {
    out.push_str(&format!("{title}:\n"));
    if documents.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let rows: Vec<Vec<String>> = documents
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.kind.clone(),
                d.issuer.clone(),
                d.version.to_string(),
                d.status.clone(),
            ]
        })
        .collect();
    for line in render_table(&["ID", "KIND", "ISSUER", "VER", "STATUS"], &rows).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

fn mismatch_line(m: &Mismatch, name_pair: bool) -> String {
    let mut line = format!(
        "{}: {} \u{2260} {}",
        m.element,
        element_value(&m.export_value),
        element_value(&m.import_value)
    );
    if name_pair {
        line.push_str(&format!(
            " (export {}, import {})",
            m.export_id, m.import_id
        ));
    }
    line
}

/// `carnet ucr match` as text: exports, imports, certificates (and others), then each
/// mismatch as `element: export value ≠ import value`, then the count.
pub fn render_ucr_match(matched: &UcrMatch) -> String {
    let mut out = format!("ucr {}\n", matched.ucr);
    match_section(&mut out, "exports", &matched.exports);
    match_section(&mut out, "imports", &matched.imports);
    match_section(&mut out, "certificates", &matched.certificates);
    if !matched.others.is_empty() {
        match_section(&mut out, "others", &matched.others);
    }
    // With several declarations on a side, say which pair each mismatch is from.
    let name_pair = matched.exports.len() > 1 || matched.imports.len() > 1;
    if !matched.mismatches.is_empty() {
        out.push_str("mismatches:\n");
        for m in &matched.mismatches {
            out.push_str("  ");
            out.push_str(&mismatch_line(m, name_pair));
            out.push('\n');
        }
    }
    if !matched.unread.is_empty() {
        out.push_str(&format!(
            "not compared (your administration cannot read them): {}\n",
            matched.unread.join(",")
        ));
    }
    out.push_str(&mismatch_count(matched.mismatches.len()));
    out.push('\n');
    out
}

/// What `carnet doc prefill` says about the payload it wrote (or printed): source,
/// kind, where, the elements carried over and those dropped.
pub fn render_prefill_summary(prefilled: &Prefilled, out: Option<&Path>) -> String {
    let mut fields = vec![
        ("from", prefilled.from.clone()),
        ("kind", prefilled.kind.clone()),
    ];
    if let Some(out) = out {
        fields.push(("written_to", out.display().to_string()));
    }
    fields.push(("carried", list_or_none(&prefilled.carried)));
    fields.push(("dropped", list_or_none(&prefilled.dropped)));
    render_fields(&fields)
}

/// One `carnet watch` line for a document that arrived.
pub fn render_event_line(event: &DocumentEvent) -> String {
    let mut line = format!(
        "{}  {}  v{}  {}  from {}  {}  {}",
        event.height,
        event.id,
        event.version,
        event.kind,
        event.issuer,
        event.status,
        format_time(event.time_ms)
    );
    if let Some(agreement) = &event.agreement {
        line.push_str(&format!("  agreement {agreement}"));
    }
    line.push('\n');
    line
}

/// One `carnet watch` line for an acknowledgement (stderr, table mode).
pub fn render_acknowledged(ack: &Acknowledged) -> String {
    format!(
        "acknowledged {} v{} for {} at height {}\n",
        ack.id, ack.version, ack.administration, ack.height
    )
}

/// A request's deadline: its date, then the days left, `OVERDUE`, or `answered`.
pub fn deadline_text(request: &InfoRequest, now_ms: u64) -> String {
    let date = format_date(request.deadline_ms);
    if request.overdue {
        return format!("{date} (OVERDUE)");
    }
    match request.status.as_str() {
        "open" | "postponed" if now_ms >= request.deadline_ms => format!("{date} (passed)"),
        // Whole days left, counting a started day as left: a request listed a few
        // seconds after it was made has "90 days left", as `request create` said.
        "open" | "postponed" => match request.deadline_ms - now_ms {
            left_ms if left_ms < DAY_MS => format!("{date} (less than a day left)"),
            left_ms => match left_ms.div_ceil(DAY_MS) {
                1 => format!("{date} (1 day left)"),
                days => format!("{date} ({days} days left)"),
            },
        },
        _ => format!("{date} (answered)"),
    }
}

fn matter_text(request: &InfoRequest) -> String {
    match (&request.matter.document, &request.matter.ucr_index) {
        (Some(id), _) => format!("document {id}"),
        (None, Some(index)) => format!("consignment (UCR index {index})"),
        (None, None) => "unknown".to_string(),
    }
}

fn answer_text(answer: &AnswerRecord) -> String {
    let mut text = answer.answer.clone();
    if let Some(code) = &answer.reason_code {
        text.push_str(&format!(" (Art. 12.7.1 {code})"));
    }
    if let Some(documents) = &answer.documents {
        text.push_str(&format!(" {}", documents.join(",")));
    }
    if let Some(reason) = &answer.reason {
        text.push_str(&format!(": {reason}"));
    }
    text.push_str(&format!("  height {}", answer.height));
    text
}

/// `carnet request show|create|answer|breach` as a table, the deadline as of `now_ms`.
pub fn render_request(request: &InfoRequest, now_ms: u64) -> String {
    let mut fields = vec![
        ("id", request.id.clone()),
        ("from", request.from.clone()),
        ("to", request.to.clone()),
        ("status", request.status.clone()),
        ("matter", matter_text(request)),
        ("purpose", request.purpose.clone()),
        ("legal_basis", request.legal_basis.clone()),
        ("items", request.items.join(",")),
        ("confidentiality", request.confidentiality.clone()),
        (
            "requested",
            format!(
                "{} (height {})",
                format_time(request.time_ms),
                request.height
            ),
        ),
        ("deadline", deadline_text(request, now_ms)),
    ];
    let mut answers = request.answers.iter().map(answer_text);
    fields.push(("answers", answers.next().unwrap_or_else(|| "none".into())));
    fields.extend(answers.map(|a| ("", a)));
    let mut breaches = request
        .breaches
        .iter()
        .map(|b| format!("{}  height {}", b.details, b.height));
    fields.push(("breaches", breaches.next().unwrap_or_else(|| "none".into())));
    fields.extend(breaches.map(|b| ("", b)));
    render_fields(&fields)
}

/// `carnet request list` as a table, deadlines as of `now_ms`; overdue ones say so.
pub fn render_requests(requests: &[InfoRequest], now_ms: u64) -> String {
    if requests.is_empty() {
        return "no requests\n".to_string();
    }
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.from.clone(),
                r.to.clone(),
                r.status.clone(),
                deadline_text(r, now_ms),
                r.purpose.clone(),
            ]
        })
        .collect();
    let overdue = requests.iter().filter(|r| r.overdue).count();
    let mut out = render_table(
        &["ID", "FROM", "TO", "STATUS", "DEADLINE", "PURPOSE"],
        &rows,
    );
    if overdue > 0 {
        out.push_str(&format!("{overdue} OVERDUE\n"));
    }
    out
}

fn officer_status(officer: &Officer) -> String {
    if officer.active { "active" } else { "revoked" }.to_string()
}

/// `carnet officer add|revoke` as a table.
pub fn render_officer(officer: &Officer) -> String {
    render_fields(&[
        ("key", officer.key.clone()),
        ("name", officer.name.clone()),
        ("administration", officer.administration.clone()),
        ("roles", officer.roles.join(",")),
        ("status", officer_status(officer)),
    ])
}

/// `carnet officer list` as a table.
pub fn render_officers(officers: &[Officer]) -> String {
    if officers.is_empty() {
        return "no officers\n".to_string();
    }
    let rows: Vec<Vec<String>> = officers
        .iter()
        .map(|o| {
            vec![
                o.key.clone(),
                o.administration.clone(),
                o.roles.join(","),
                officer_status(o),
                o.name.clone(),
            ]
        })
        .collect();
    render_table(&["KEY", "ADMIN", "ROLES", "STATUS", "NAME"], &rows)
}

/// The change a proposal makes: `add XD (Katanga)` or `remove XD`.
pub fn proposal_change(proposal: &Proposal) -> String {
    let name = proposal
        .administration
        .as_ref()
        .and_then(|a| a.get("name")?.as_str());
    match (proposal.kind.as_str(), name) {
        ("add", Some(name)) => format!("add {} ({name})", proposal.code),
        (kind, _) => format!("{kind} {}", proposal.code),
    }
}

/// Where a proposal stands: `open`, `passed (effective at height N)`, `applied at
/// height N`, `failed at height N: reason`, `rejected`.
pub fn proposal_status(proposal: &Proposal) -> String {
    match (proposal.status.as_str(), proposal.effective_height) {
        ("passed", Some(h)) => format!("passed (effective at height {h})"),
        ("failed", Some(h)) => match &proposal.failure {
            Some(reason) => format!("failed at height {h}: {reason}"),
            None => format!("failed at height {h}"),
        },
        (status, Some(h)) => format!("{status} at height {h}"),
        (status, None) => status.to_string(),
    }
}

/// The votes cast: `XA yes, XB no`, or `none`.
pub fn proposal_votes(proposal: &Proposal) -> String {
    if proposal.votes.is_empty() {
        return "none".to_string();
    }
    proposal
        .votes
        .iter()
        .map(|v| format!("{} {}", v.administration, if v.yes { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `carnet member propose-add|propose-remove|vote` as a table.
pub fn render_proposal(proposal: &Proposal) -> String {
    render_fields(&[
        ("id", proposal.id.clone()),
        ("change", proposal_change(proposal)),
        ("status", proposal_status(proposal)),
        ("votes", proposal_votes(proposal)),
        ("proposed_by", proposal.proposed_by.clone()),
        (
            "effective_delay_blocks",
            proposal.effective_delay_blocks.to_string(),
        ),
        ("height", proposal.height.to_string()),
    ])
}

/// `carnet member list` as two tables: members, then proposals.
pub fn render_membership(membership: &Membership) -> String {
    let rows: Vec<Vec<String>> = membership
        .members
        .iter()
        .map(|m| {
            vec![
                m.code.clone(),
                m.voting_power.to_string(),
                if m.active { "active" } else { "inactive" }.to_string(),
                m.validator_key.clone(),
                m.name.clone(),
            ]
        })
        .collect();
    let mut out = render_table(&["CODE", "POWER", "STATUS", "VALIDATOR_KEY", "NAME"], &rows);
    out.push('\n');
    if membership.proposals.is_empty() {
        out.push_str("no proposals\n");
        return out;
    }
    let rows: Vec<Vec<String>> = membership
        .proposals
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                proposal_change(p),
                proposal_status(p),
                proposal_votes(p),
                p.height.to_string(),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &["PROPOSAL", "CHANGE", "STATUS", "VOTES", "HEIGHT"],
        &rows,
    ));
    out
}

/// `carnet audit` as a table, one row per recorded read.
pub fn render_accesses(accesses: &[Access]) -> String {
    if accesses.is_empty() {
        return "no recorded reads\n".to_string();
    }
    let rows: Vec<Vec<String>> = accesses
        .iter()
        .map(|a| {
            vec![
                a.height.to_string(),
                format_time(a.time_ms),
                a.document.clone(),
                a.version.to_string(),
                a.administration.clone(),
                a.officer.clone(),
                a.request.clone().unwrap_or_else(|| "-".into()),
                a.purpose.clone(),
            ]
        })
        .collect();
    render_table(
        &[
            "HEIGHT", "TIME", "DOCUMENT", "VER", "ADMIN", "OFFICER", "REQUEST", "PURPOSE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: u64 = 1_709_210_096_000; // 2024-02-29 12:34:56 UTC

    fn agreement() -> Agreement {
        serde_json::from_value(json!({
            "id": "0a".repeat(16), "title": "Your export is my entry",
            "parties": ["XA", "XB"],
            "clusters": [
                {"kind": "export-declaration", "allowed": ["UCR", "CommodityCode"], "required": ["UCR"]},
                {"kind": "import-declaration", "allowed": ["UCR"], "required": []}
            ],
            "trigger": "exit", "legal_basis": "XA-XB MAA Art. 4", "purpose": "risk management",
            "retention_days": null, "delivery": "push", "status": "proposed",
            "proposed_by": "XA", "accepted": ["XA"], "pending": ["XB"], "height": 12,
            "activated_at": null
        }))
        .unwrap()
    }

    #[test]
    fn agreement_views() {
        let a = agreement();
        let text = render_agreement(&a);
        assert!(
            text.starts_with(&format!("id            {}\n", "0a".repeat(16))),
            "{text}"
        );
        for line in [
            "status        proposed\n",
            "accepted      XA\n",
            "pending       XB\n",
            "retention     until erased\n",
            "activated_at  not yet\n",
            "cluster       export-declaration: allowed UCR,CommodityCode; required UCR\n",
            "cluster       import-declaration: allowed UCR\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let list = render_agreements(std::slice::from_ref(&a));
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID") && lines[0].ends_with("TITLE"));
        assert!(
            lines[1].contains("proposed  XA,XB    export-declaration,import-declaration  XB"),
            "{list}"
        );
        assert_eq!(render_agreements(&[]), "no agreements\n");
        let filed = render_agreement_filed(&AgreementFiled {
            agreement: a,
            height: 13,
        });
        assert!(filed.ends_with("pending   XB\nheight    13\n"), "{filed}");
    }

    #[test]
    fn history_lists_every_version_and_the_cancellation() {
        let history: DocumentHistory = serde_json::from_value(json!({
            "id": "ab".repeat(16), "kind": "export-declaration", "issuer": "XA",
            "agreement": "0a".repeat(16),
            "versions": [
                {"version": 1, "status": "amended", "height": 12, "time_ms": T0,
                 "commitment": "c1", "ciphertext_hash": "h1", "submitted_by": "k1"},
                {"version": 2, "status": "cancelled", "height": 15, "time_ms": T0 + 1000,
                 "commitment": "c2", "ciphertext_hash": "h2", "submitted_by": "k2"}
            ],
            "cancellation": {"reason": "shipment withdrawn", "height": 16, "officer": "k3"}
        }))
        .unwrap();
        let text = render_history(&history);
        assert!(
            text.contains("VER  STATUS     HEIGHT  TIME                     SUBMITTED_BY\n"),
            "{text}"
        );
        assert!(
            text.contains("1    amended    12      2024-02-29 12:34:56 UTC  k1\n"),
            "{text}"
        );
        assert!(
            text.contains("2    cancelled  15      2024-02-29 12:34:57 UTC  k2\n"),
            "{text}"
        );
        assert!(
            text.ends_with("cancelled  height 16 by k3\nreason     shipment withdrawn\n"),
            "{text}"
        );
        let filed = render_version_filed(&VersionFiled {
            id: "ab".into(),
            version: 2,
            height: 15,
            status: "active".into(),
            agreement: None,
        });
        assert_eq!(
            filed,
            "id       ab\nversion  2\nstatus   active\nheight   15\n"
        );
    }

    fn doc(id: &str, kind: &str, issuer: &str) -> Value {
        json!({"id": id, "version": 1, "kind": kind, "issuer": issuer, "recipients": ["XB"],
               "status": "active", "height": 3, "time_ms": T0, "commitment": "c",
               "ciphertext_hash": "h", "submitted_by": "k"})
    }

    #[test]
    fn ucr_match_lists_each_side_then_the_mismatches() {
        let matched: UcrMatch = serde_json::from_value(json!({
            "ucr": "24XA-0001",
            "exports": [doc("e1", "export-declaration", "XA")],
            "imports": [doc("i1", "import-declaration", "XB")],
            "certificates": [],
            "others": [],
            "mismatches": [
                {"element": "CommodityCode", "export_id": "e1", "export_value": "090111",
                 "import_id": "i1", "import_value": "090112"},
                {"element": "Quantity", "export_id": "e1", "export_value": 12,
                 "import_id": "i1", "import_value": 10}
            ]
        }))
        .unwrap();
        let text = render_ucr_match(&matched);
        assert_eq!(
            text,
            "ucr 24XA-0001\n\
             exports:\n\
             \x20 ID  KIND                ISSUER  VER  STATUS\n\
             \x20 e1  export-declaration  XA      1    active\n\
             imports:\n\
             \x20 ID  KIND                ISSUER  VER  STATUS\n\
             \x20 i1  import-declaration  XB      1    active\n\
             certificates:\n\
             \x20 none\n\
             mismatches:\n\
             \x20 CommodityCode: 090111 \u{2260} 090112\n\
             \x20 Quantity: 12 \u{2260} 10\n\
             2 mismatches\n"
        );
        let mut one = matched.clone();
        one.mismatches.truncate(1);
        one.imports
            .push(serde_json::from_value(doc("i2", "import-declaration", "XB")).unwrap());
        let text = render_ucr_match(&one);
        assert!(
            text.contains("CommodityCode: 090111 \u{2260} 090112 (export e1, import i1)\n"),
            "{text}"
        );
        assert!(text.ends_with("\n1 mismatch\n"), "{text}");
        let mut none = matched;
        none.mismatches.clear();
        assert!(render_ucr_match(&none).ends_with("certificates:\n  none\n0 mismatches\n"));
        none.unread = vec!["i9".into()];
        assert!(
            render_ucr_match(&none).ends_with(
                "not compared (your administration cannot read them): i9\n0 mismatches\n"
            ),
            "{}",
            render_ucr_match(&none)
        );
    }

    #[test]
    fn prefill_summary_names_carried_and_dropped_elements() {
        let prefilled: Prefilled = serde_json::from_value(json!({
            "from": "ab", "kind": "import-declaration",
            "payload": {"UCR": "24XA-0001"}, "carried": ["UCR"], "dropped": ["ExporterName", "ExportOffice"]
        }))
        .unwrap();
        assert_eq!(
            render_prefill_summary(&prefilled, Some(Path::new("import.json"))),
            "from        ab\nkind        import-declaration\nwritten_to  import.json\n\
             carried     UCR\ndropped     ExporterName,ExportOffice\n"
        );
    }

    #[test]
    fn a_watched_document_is_one_line() {
        let event: DocumentEvent = serde_json::from_value(json!({
            "id": "ab", "version": 2, "kind": "certificate-of-origin", "issuer": "XA",
            "agreement": "0a", "height": 40, "time_ms": T0, "status": "active"
        }))
        .unwrap();
        assert_eq!(
            render_event_line(&event),
            "40  ab  v2  certificate-of-origin  from XA  active  2024-02-29 12:34:56 UTC  agreement 0a\n"
        );
        let ack = Acknowledged {
            id: "ab".into(),
            version: 2,
            administration: "XB".into(),
            height: 41,
        };
        assert_eq!(
            render_acknowledged(&ack),
            "acknowledged ab v2 for XB at height 41\n"
        );
    }

    fn request(status: &str, overdue: bool) -> InfoRequest {
        serde_json::from_value(json!({
            "id": "11".repeat(16), "from": "XA", "to": "XB",
            "matter": {"ucr_index": "ff".repeat(32)},
            "purpose": "verify the declared value", "legal_basis": "WTO TFA Art. 12",
            "items": ["invoice", "packing list"], "confidentiality": "restricted",
            "status": status, "height": 7, "time_ms": T0, "deadline_ms": T0 + 90 * DAY_MS,
            "overdue": overdue,
            "answers": [
                {"answer": "postpone", "reason": "investigation running", "height": 9},
                {"answer": "refuse", "reason_code": "c", "reason": "prosecution", "height": 11}
            ],
            "breaches": [{"details": "shared with a broker", "height": 12}]
        }))
        .unwrap()
    }

    #[test]
    fn deadlines_show_a_date_and_days_left_or_overdue() {
        let open = request("open", false);
        assert_eq!(deadline_text(&open, T0), "2024-05-29 (90 days left)");
        assert_eq!(
            deadline_text(&open, T0 + 5_000),
            "2024-05-29 (90 days left)"
        );
        assert_eq!(
            deadline_text(&open, T0 + 88 * DAY_MS + 1),
            "2024-05-29 (2 days left)"
        );
        assert_eq!(
            deadline_text(&open, T0 + 89 * DAY_MS),
            "2024-05-29 (1 day left)"
        );
        assert_eq!(
            deadline_text(&open, T0 + 90 * DAY_MS - 1),
            "2024-05-29 (less than a day left)"
        );
        assert_eq!(
            deadline_text(&open, T0 + 91 * DAY_MS),
            "2024-05-29 (passed)"
        );
        assert_eq!(
            deadline_text(&request("open", true), T0),
            "2024-05-29 (OVERDUE)"
        );
        assert_eq!(
            deadline_text(&request("refused", false), T0),
            "2024-05-29 (answered)"
        );
    }

    #[test]
    fn a_request_shows_its_answers_with_the_ground_and_its_breaches() {
        let text = render_request(&request("refused", false), T0);
        for line in [
            "matter           consignment (UCR index ",
            "items            invoice,packing list\n",
            "requested        2024-02-29 12:34:56 UTC (height 7)\n",
            "deadline         2024-05-29 (answered)\n",
            "answers          postpone: investigation running  height 9\n",
            "                 refuse (Art. 12.7.1 c): prosecution  height 11\n",
            "breaches         shared with a broker  height 12\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let list = render_requests(&[request("open", true), request("open", false)], T0);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 4, "{list}");
        assert!(lines[1].contains("open    2024-05-29 (OVERDUE)"), "{list}");
        assert!(lines[2].contains("(90 days left)"), "{list}");
        assert_eq!(lines[3], "1 OVERDUE");
        assert_eq!(render_requests(&[], T0), "no requests\n");
    }

    #[test]
    fn officers_show_roles_and_revocation() {
        let officers: Vec<Officer> = serde_json::from_value(json!([
            {"key": "k1", "name": "Ada Mensah", "administration": "XA", "roles": ["officer", "auditor"], "active": true},
            {"key": "k2", "name": "Bo Lindqvist", "administration": "XA", "roles": ["admin"], "active": false}
        ]))
        .unwrap();
        assert_eq!(
            render_officers(&officers),
            "KEY  ADMIN  ROLES            STATUS   NAME\n\
             k1   XA     officer,auditor  active   Ada Mensah\n\
             k2   XA     admin            revoked  Bo Lindqvist\n"
        );
        assert!(render_officer(&officers[1]).contains("status          revoked\n"));
        assert_eq!(render_officers(&[]), "no officers\n");
    }

    fn proposal(value: Value) -> Proposal {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn proposals_say_the_change_the_status_and_the_votes() {
        let add = proposal(json!({
            "id": "22".repeat(16), "kind": "add", "code": "XD",
            "administration": {"code": "XD", "name": "Katanga", "voting_power": 1},
            "proposed_by": "XA", "effective_delay_blocks": 10,
            "votes": [{"administration": "XA", "yes": true}, {"administration": "XB", "yes": false}],
            "status": "passed", "effective_height": 40, "failure": null, "height": 30
        }));
        assert_eq!(proposal_change(&add), "add XD (Katanga)");
        assert_eq!(proposal_status(&add), "passed (effective at height 40)");
        assert_eq!(proposal_votes(&add), "XA yes, XB no");
        assert_eq!(
            render_proposal(&add),
            format!(
                "id                      {}\n\
                 change                  add XD (Katanga)\n\
                 status                  passed (effective at height 40)\n\
                 votes                   XA yes, XB no\n\
                 proposed_by             XA\n\
                 effective_delay_blocks  10\n\
                 height                  30\n",
                "22".repeat(16)
            )
        );
        let failed = proposal(json!({
            "id": "44", "kind": "remove", "code": "XC", "administration": null,
            "proposed_by": "XA", "effective_delay_blocks": 5, "votes": [],
            "status": "failed", "effective_height": 50, "failure": "last member", "height": 45
        }));
        assert_eq!(proposal_change(&failed), "remove XC");
        assert_eq!(proposal_status(&failed), "failed at height 50: last member");
        assert_eq!(proposal_votes(&failed), "none");
        let open = proposal(json!({
            "id": "45", "kind": "remove", "code": "XC", "proposed_by": "XA",
            "effective_delay_blocks": 5, "votes": [], "status": "open", "height": 46
        }));
        assert_eq!(proposal_status(&open), "open");
    }

    #[test]
    fn membership_lists_members_then_proposals() {
        let membership: Membership = serde_json::from_value(json!({
            "members": [
                {"code": "XA", "name": "Adjikistan", "voting_power": 1, "active": true,
                 "node_key": "n1", "validator_key": "v1"},
                {"code": "XD", "name": "Katanga", "voting_power": 1, "active": false,
                 "node_key": "n4", "validator_key": "v4"}
            ],
            "proposals": [{"id": "55", "kind": "remove", "code": "XD", "administration": null,
                           "proposed_by": "XA", "effective_delay_blocks": 10,
                           "votes": [{"administration": "XA", "yes": true}],
                           "status": "applied", "effective_height": 60, "failure": null,
                           "height": 50}]
        }))
        .unwrap();
        assert_eq!(
            render_membership(&membership),
            "CODE  POWER  STATUS    VALIDATOR_KEY  NAME\n\
             XA    1      active    v1             Adjikistan\n\
             XD    1      inactive  v4             Katanga\n\
             \n\
             PROPOSAL  CHANGE     STATUS                VOTES   HEIGHT\n\
             55        remove XD  applied at height 60  XA yes  50\n"
        );
    }

    #[test]
    fn audit_lists_each_read_with_purpose_and_request() {
        let accesses: Vec<Access> = serde_json::from_value(json!([
            {"document": "ab", "version": 1, "officer": "k1", "administration": "XB",
             "purpose": "clearance", "request": null, "height": 20, "time_ms": T0},
            {"document": "ab", "version": 1, "officer": "k2", "administration": "XC",
             "purpose": "verify value", "request": "11", "height": 25, "time_ms": T0}
        ]))
        .unwrap();
        let text = render_accesses(&accesses);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "HEIGHT  TIME                     DOCUMENT  VER  ADMIN  OFFICER  REQUEST  PURPOSE"
        );
        assert_eq!(
            lines[1],
            "20      2024-02-29 12:34:56 UTC  ab        1    XB     k1       -        clearance"
        );
        assert_eq!(
            lines[2],
            "25      2024-02-29 12:34:56 UTC  ab        1    XC     k2       11       verify value"
        );
        assert_eq!(render_accesses(&[]), "no recorded reads\n");
    }
}
