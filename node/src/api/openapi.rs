//! The hand-written OpenAPI 3 description of the API (`GET /v1/openapi.json`). It
//! mirrors docs/interfaces.md; a test checks that every route of the router is in it.
//!
//! Must never describe a route the router does not serve.

use carnet_contracts::DocumentKind;
use serde_json::{json, Map, Value};

use super::MAX_UCR_CHARS;

/// `{"type": "object", "properties": {name: {"type": t}}}` from `(name, t)` pairs, where
/// `t` is a JSON type name or a `#/components/schemas/...` reference.
fn object(fields: &[(&str, &str)]) -> Value {
    let mut properties = Map::new();
    for (name, kind) in fields {
        let schema = if kind.starts_with('#') {
            json!({"$ref": kind})
        } else if let Some(item) = kind.strip_suffix("[]") {
            if item.starts_with('#') {
                json!({"type": "array", "items": {"$ref": item}})
            } else {
                json!({"type": "array", "items": {"type": item}})
            }
        } else {
            json!({"type": kind})
        };
        properties.insert((*name).to_string(), schema);
    }
    json!({"type": "object", "properties": properties})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query_param(name: &str, kind: &str, required: bool) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": {"type": kind}})
}

/// One signed operation: summary, parameters, request body schema (if any), the 200
/// schema and the error statuses it may answer.
fn op(summary: &str, params: Vec<Value>, body: Option<Value>, ok: Value, errors: &[&str]) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "ok", "content": {"application/json": {"schema": ok}}}),
    );
    for code in errors {
        responses.insert(
            (*code).to_string(),
            json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let mut operation = json!({
        "summary": summary,
        "security": [{"officerKey": [], "timestamp": [], "signature": []}],
        "parameters": params,
        "responses": responses,
    });
    if let Some(schema) = body {
        operation["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    operation
}

/// The OpenAPI 3 document of this API.
pub fn openapi_document() -> Value {
    let id = || vec![path_param("id")];
    let doc = "#/components/schemas/Document";
    let agreement = "#/components/schemas/Agreement";
    let request = "#/components/schemas/Request";
    let officer = "#/components/schemas/Officer";
    let proposal = "#/components/schemas/Proposal";
    let post_errors = ["400", "401", "403", "404", "503"];
    let read_errors = ["400", "401", "403", "404"];
    let kinds: Vec<&str> = DocumentKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, operation: Value| {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    };
    add(
        "/healthz",
        "get",
        json!({"summary": "Liveness (no auth)", "responses": {"200": {"description": "ok", "content": {"application/json": {"schema":
        object(&[("status", "string"), ("administration", "string"), ("height", "integer"), ("last_block_hash", "string")])}}}}}),
    );
    add(
        "/metrics",
        "get",
        json!({"summary": "Prometheus metrics (no auth)", "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {}}}}}),
    );
    add(
        "/v1/openapi.json",
        "get",
        json!({"summary": "This document (no auth)", "responses": {"200": {"description": "OpenAPI 3"}}}),
    );
    add(
        "/v1/status",
        "get",
        op(
            "Chain status",
            vec![],
            None,
            object(&[
                ("administration", "string"),
                ("chain_id", "string"),
                ("height", "integer"),
                ("last_block_hash", "string"),
                ("view", "integer"),
                ("validators", "integer"),
                ("peers", "integer"),
            ]),
            &["401", "503"],
        ),
    );
    add(
        "/v1/blocks/{height}",
        "get",
        op(
            "A finalized block",
            vec![path_param("height")],
            None,
            object(&[
                ("height", "integer"),
                ("hash", "string"),
                ("view", "integer"),
                ("parent", "string"),
                ("time_ms", "integer"),
                ("tx_count", "integer"),
                ("app_hash", "string"),
            ]),
            &read_errors,
        ),
    );
    add("/v1/documents", "post", op(
        "Submit a document under an agreement (named, or the one active agreement covering issuer, recipients and kind); the payload is checked against the data cluster; waits until final",
        vec![],
        Some(json!({"type": "object", "required": ["kind", "ucr", "recipients", "payload"], "properties": {
            "kind": {"type": "string", "enum": kinds},
            "ucr": {"type": "string", "maxLength": MAX_UCR_CHARS},
            "recipients": {"type": "array", "items": {"type": "string"}},
            "payload": {"type": "string", "description": "JSON object as text, at most 512 KiB"},
            "agreement": {"type": "string", "description": "agreement id (32 hex)"}}})),
        object(&[("id", "string"), ("version", "integer"), ("height", "integer"), ("status", "string"), ("kind", "string"), ("agreement", "string")]),
        &["400", "401", "403", "413", "503"]));
    add("/v1/document-batches", "post", op(
        "Submit up to 256 documents in one request (each as for POST /v1/documents); any document refused by the checks makes the whole batch a 400 naming documents[i], with nothing submitted; otherwise every document is answered in order once final: its result, or {error:{code,message}}",
        vec![],
        Some(json!({"type": "object", "required": ["documents"], "properties": {
            "documents": {"type": "array", "minItems": 1, "maxItems": crate::api::documents::MAX_BATCH_DOCUMENTS, "items": {"type": "object", "required": ["kind", "ucr", "recipients", "payload"], "properties": {
                "kind": {"type": "string", "enum": kinds},
                "ucr": {"type": "string", "maxLength": MAX_UCR_CHARS},
                "recipients": {"type": "array", "items": {"type": "string"}},
                "payload": {"type": "string", "description": "JSON object as text"},
                "agreement": {"type": "string", "description": "agreement id (32 hex)"}}}}}})),
        object(&[("documents", "object[]")]),
        &["400", "401", "403", "413", "503"]));
    add("/v1/documents", "get", op("Documents with a UCR visible to the caller (index computed under every agreement key this node holds)",
        vec![query_param("ucr", "string", true)], None, object(&[("documents", &format!("{doc}[]"))]), &["400", "401"]));
    add(
        "/v1/documents/{id}",
        "get",
        op(
            "Document metadata (latest version)",
            id(),
            None,
            json!({"$ref": doc}),
            &read_errors,
        ),
    );
    add("/v1/documents/{id}/decrypt", "post", op(
        "Decrypt a version (default: the latest), as issuer or recipient, or under a TFA access grant (`request`, with the request's purpose); the access is recorded on the ledger",
        id(),
        Some(json!({"type": "object", "required": ["purpose"], "properties": {"purpose": {"type": "string"}, "version": {"type": "integer"}, "request": {"type": "string"}}})),
        object(&[("id", "string"), ("version", "integer"), ("kind", "string"), ("payload", "string")]),
        &["400", "401", "403", "404", "410", "503"]));
    add(
        "/v1/documents/{id}/erase",
        "post",
        op(
            "Erase a document by key destruction (issuer's supervisor or admin); waits until final",
            id(),
            Some(
                json!({"type": "object", "required": ["reason", "legal_basis"], "properties": {"reason": {"type": "string"}, "legal_basis": {"type": "string"}}}),
            ),
            object(&[
                ("id", "string"),
                ("status", "string"),
                ("height", "integer"),
            ]),
            &post_errors,
        ),
    );
    add("/v1/documents/{id}/status", "get", op("Status, agreement, delivery acknowledgements and, once erased, destruction attestations", id(), None,
        json!({"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "height": {"type": "integer"}, "agreement": {"type": "string", "nullable": true},
            "attestations": {"type": "array", "items": object(&[("administration", "string"), ("height", "integer")])},
            "pending": {"type": "array", "items": {"type": "string"}},
            "deliveries": {"type": "array", "items": object(&[("administration", "string"), ("version", "integer"), ("height", "integer")])}}}),
        &read_errors));
    add("/v1/documents/{id}/amend", "post", op("A new version (issuer's officer); recipients and agreement carry over; checked against the data cluster; recipients receive its keys", id(),
        Some(json!({"type": "object", "required": ["payload"], "properties": {"payload": {"type": "string"}}})),
        object(&[("id", "string"), ("version", "integer"), ("height", "integer"), ("status", "string"), ("agreement", "string")]),
        &["400", "401", "403", "404", "410", "503"]));
    add(
        "/v1/documents/{id}/cancel",
        "post",
        op(
            "Cancel the latest version (issuer only)",
            id(),
            Some(
                json!({"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}}),
            ),
            object(&[
                ("id", "string"),
                ("version", "integer"),
                ("status", "string"),
                ("height", "integer"),
            ]),
            &["400", "401", "403", "404", "410", "503"],
        ),
    );
    add(
        "/v1/documents/{id}/history",
        "get",
        op(
            "Every version and the cancellation",
            id(),
            None,
            json!({"type": "object", "properties": {"id": {"type": "string"}, "kind": {"type": "string"}, "issuer": {"type": "string"}, "agreement": {"type": "string", "nullable": true},
            "versions": {"type": "array", "items": object(&[("version", "integer"), ("status", "string"), ("height", "integer"), ("time_ms", "integer"), ("commitment", "string"), ("ciphertext_hash", "string"), ("submitted_by", "string")])},
            "cancellation": {"nullable": true, "allOf": [object(&[("reason", "string"), ("height", "integer"), ("officer", "string")])]}}}),
            &read_errors,
        ),
    );
    add(
        "/v1/documents/{id}/ack",
        "post",
        op(
            "Acknowledge delivery of a version (a recipient); recorded on the ledger",
            id(),
            Some(object(&[("version", "integer")])),
            object(&[
                ("id", "string"),
                ("version", "integer"),
                ("administration", "string"),
                ("height", "integer"),
            ]),
            &["400", "401", "403", "404", "410", "503"],
        ),
    );
    add("/v1/documents/{id}/prefill", "post", op("Pre-fill a document of `kind` from a readable one (elements allowed for `kind` by the caller's active agreements); the read is an access record", id(),
        Some(json!({"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string", "enum": kinds}, "purpose": {"type": "string"}}})),
        json!({"type": "object", "properties": {"from": {"type": "string"}, "kind": {"type": "string"}, "payload": {"type": "object"}, "carried": {"type": "array", "items": {"type": "string"}}, "dropped": {"type": "array", "items": {"type": "string"}}}}),
        &["400", "401", "403", "404", "410", "503"]));
    add("/v1/ucr-match", "get", op("Export, import and other documents linked by a UCR, with mismatching shared elements of readable export/import pairs (each read is an access record, purpose `UCR match`)",
        vec![query_param("ucr", "string", true)], None,
        json!({"type": "object", "properties": {"ucr": {"type": "string"},
            "exports": {"type": "array", "items": {"$ref": doc}}, "imports": {"type": "array", "items": {"$ref": doc}},
            "certificates": {"type": "array", "items": {"$ref": doc}}, "others": {"type": "array", "items": {"$ref": doc}},
            "mismatches": {"type": "array", "items": json!({"type": "object", "properties": {"element": {"type": "string"}, "export_id": {"type": "string"}, "export_value": {}, "import_id": {"type": "string"}, "import_value": {}}})},
            "unread": {"type": "array", "items": {"type": "string"}}}}),
        &["400", "401", "403", "503"]));
    add("/v1/agreements", "post", op("Propose an agreement (admin of a party); the node draws its UCR key and wraps it to every party", vec![],
        Some(json!({"$ref": "#/components/schemas/AgreementFile"})),
        json!({"type": "object", "properties": {"agreement": {"$ref": agreement}, "height": {"type": "integer"}}}), &post_errors));
    add(
        "/v1/agreements",
        "get",
        op(
            "Every agreement on the ledger",
            vec![],
            None,
            object(&[("agreements", &format!("{agreement}[]"))]),
            &["401", "403"],
        ),
    );
    add(
        "/v1/agreements/{id}",
        "get",
        op(
            "One agreement",
            id(),
            None,
            json!({"$ref": agreement}),
            &read_errors,
        ),
    );
    add(
        "/v1/agreements/{id}/accept",
        "post",
        op(
            "Accept an agreement (admin of a party that has not accepted)",
            id(),
            Some(json!({"type": "object"})),
            json!({"type": "object", "properties": {"agreement": {"$ref": agreement}, "height": {"type": "integer"}}}),
            &post_errors,
        ),
    );
    add(
        "/v1/events",
        "get",
        json!({
        "summary": "Server-sent events: `event: document`, `id: <height>`, data {id, version, kind, issuer, agreement, height, time_ms, status} for each final version addressed to this administration, from `from_height` (or Last-Event-ID, else the next block), then live; `: keep-alive` every 15 s; at most 4 streams per officer",
        "security": [{"officerKey": [], "timestamp": [], "signature": []}],
        "parameters": [query_param("from_height", "integer", false)],
        "responses": {"200": {"description": "event stream", "content": {"text/event-stream": {}}},
            "400": {"description": "error"}, "401": {"description": "error"}, "403": {"description": "error"}, "503": {"description": "too many streams"}}}),
    );
    add(
        "/v1/requests",
        "post",
        op(
            "A TFA Article 12 information request",
            vec![],
            Some(
                json!({"type": "object", "required": ["to", "purpose", "legal_basis", "items"], "properties": {
            "to": {"type": "string"}, "ucr": {"type": "string"}, "document": {"type": "string"}, "purpose": {"type": "string"}, "legal_basis": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}}, "confidentiality": {"type": "string"}, "id": {"type": "string"}}}),
            ),
            json!({"$ref": request}),
            &post_errors,
        ),
    );
    add(
        "/v1/requests",
        "get",
        op(
            "Requests this administration made or received",
            vec![query_param("overdue", "boolean", false)],
            None,
            object(&[("requests", &format!("{request}[]"))]),
            &["400", "401", "403"],
        ),
    );
    add(
        "/v1/requests/{id}",
        "get",
        op(
            "One request (requester or requested only)",
            id(),
            None,
            json!({"$ref": request}),
            &read_errors,
        ),
    );
    add("/v1/requests/{id}/answer", "post", op("Answer: provide (grants access), postpone or refuse (Art. 12.7.1 a–e); the requested administration only", id(),
        Some(json!({"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string", "enum": ["provide", "postpone", "refuse"]},
            "documents": {"type": "array", "items": {"type": "string"}}, "reason_code": {"type": "string", "enum": ["a", "b", "c", "d", "e"]}, "reason": {"type": "string"}}})),
        json!({"$ref": request}), &post_errors));
    add(
        "/v1/requests/{id}/breach",
        "post",
        op(
            "Breach notice (Art. 12.11.1); the requester only",
            id(),
            Some(
                json!({"type": "object", "required": ["details"], "properties": {"details": {"type": "string"}}}),
            ),
            json!({"$ref": request}),
            &post_errors,
        ),
    );
    add(
        "/v1/officers",
        "post",
        op(
            "Register an officer (admin of this node's administration)",
            vec![],
            Some(
                json!({"type": "object", "required": ["key", "name", "roles"], "properties": {"key": {"type": "string"}, "name": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string", "enum": ["officer", "supervisor", "auditor", "admin"]}}}}),
            ),
            json!({"$ref": officer}),
            &post_errors,
        ),
    );
    add(
        "/v1/officers",
        "get",
        op(
            "Officers of an administration (default: the caller's)",
            vec![query_param("administration", "string", false)],
            None,
            object(&[("officers", &format!("{officer}[]"))]),
            &read_errors,
        ),
    );
    add(
        "/v1/officers/{key}/revoke",
        "post",
        op(
            "Revoke an officer (admin of its administration)",
            vec![path_param("key")],
            Some(json!({"type": "object"})),
            json!({"$ref": officer}),
            &post_errors,
        ),
    );
    add(
        "/v1/members",
        "get",
        op(
            "Members and membership proposals",
            vec![],
            None,
            json!({"type": "object", "properties": {
            "members": {"type": "array", "items": object(&[("code", "string"), ("name", "string"), ("voting_power", "integer"), ("active", "boolean"), ("node_key", "string"), ("validator_key", "string")])},
            "proposals": {"type": "array", "items": {"$ref": proposal}}}}),
            &["401", "403"],
        ),
    );
    add("/v1/members/proposals", "post", op("Propose admitting (`add`, an administration as in genesis) or removing (`remove`, a code) a member (admin)", vec![],
        Some(json!({"type": "object", "properties": {"add": {"type": "object"}, "remove": {"type": "string"}, "effective_delay_blocks": {"type": "integer"}, "id": {"type": "string"}}})),
        json!({"$ref": proposal}), &post_errors));
    add(
        "/v1/members/proposals/{id}/vote",
        "post",
        op(
            "Vote on an open proposal (admin)",
            id(),
            Some(
                json!({"type": "object", "required": ["yes"], "properties": {"yes": {"type": "boolean"}}}),
            ),
            json!({"$ref": proposal}),
            &post_errors,
        ),
    );
    add(
        "/v1/audit",
        "get",
        op(
            "Access records by document or by officer",
            vec![
                query_param("document", "string", false),
                query_param("officer", "string", false),
            ],
            None,
            json!({"type": "object", "properties": {"accesses": {"type": "array", "items": object(&[("document", "string"), ("version", "integer"), ("officer", "string"), ("administration", "string"), ("purpose", "string"), ("request", "string"), ("height", "integer"), ("time_ms", "integer")])}}}),
            &read_errors,
        ),
    );
    add(
        "/v1/evidence",
        "get",
        op(
            "Equivocations recorded on the ledger (any officer)",
            vec![query_param("accused", "string", false)],
            None,
            json!({"type": "object", "properties": {"evidence": {"type": "array", "items": {"type": "object", "properties": {
                "accused": {"type": "string"}, "view": {"type": "integer"}, "validator": {"type": "integer", "nullable": true},
                "first": object(&[("kind", "string"), ("digest", "string")]), "second": object(&[("kind", "string"), ("digest", "string")]),
                "reporter": {"type": "string"}, "height": {"type": "integer"}, "time_ms": {"type": "integer"}, "evidence": {"type": "string"}}}}}}),
            &read_errors,
        ),
    );
    let cluster = object(&[
        ("kind", "string"),
        ("allowed", "string[]"),
        ("required", "string[]"),
    ]);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Carnet node API", "version": "1", "description": "Officer-signed API of a Carnet node (docs/interfaces.md). Every /v1 request except this document carries X-Carnet-Key, X-Carnet-Timestamp and X-Carnet-Signature (ed25519 over carnet_contracts::auth::request_signing_bytes)."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "officerKey": {"type": "apiKey", "in": "header", "name": "X-Carnet-Key"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-Carnet-Timestamp"},
                "signature": {"type": "apiKey", "in": "header", "name": "X-Carnet-Signature"}
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string", "enum": ["bad_input", "unauthorized", "forbidden", "not_found", "too_large", "erased", "unavailable"]},
                    "message": {"type": "string"}}}}},
                "Document": object(&[("id", "string"), ("version", "integer"), ("kind", "string"), ("issuer", "string"), ("recipients", "string[]"), ("status", "string"),
                    ("height", "integer"), ("time_ms", "integer"), ("commitment", "string"), ("ciphertext_hash", "string"), ("submitted_by", "string"), ("agreement", "string")]),
                "AgreementFile": {"type": "object", "required": ["title", "parties", "clusters", "trigger", "legal_basis", "purpose", "delivery"], "properties": {
                    "id": {"type": "string"}, "title": {"type": "string"}, "parties": {"type": "array", "items": {"type": "string"}},
                    "clusters": {"type": "array", "items": cluster.clone()},
                    "trigger": {"type": "string", "enum": ["on-issue", "pre-arrival", "exit", "entry"]},
                    "legal_basis": {"type": "string"}, "purpose": {"type": "string"}, "retention_days": {"type": "integer"}, "retention_seconds": {"type": "integer"},
                    "delivery": {"type": "string", "enum": ["push", "pull", "both"]}}},
                "Agreement": {"type": "object", "properties": {
                    "id": {"type": "string"}, "title": {"type": "string"}, "parties": {"type": "array", "items": {"type": "string"}},
                    "clusters": {"type": "array", "items": cluster}, "trigger": {"type": "string"}, "legal_basis": {"type": "string"}, "purpose": {"type": "string"},
                    "retention_days": {"type": "integer", "nullable": true}, "retention_seconds": {"type": "integer", "nullable": true}, "delivery": {"type": "string"}, "status": {"type": "string", "enum": ["proposed", "active"]},
                    "proposed_by": {"type": "string"}, "accepted": {"type": "array", "items": {"type": "string"}}, "pending": {"type": "array", "items": {"type": "string"}},
                    "height": {"type": "integer"}, "activated_at": {"type": "integer", "nullable": true}}},
                "Request": {"type": "object", "properties": {
                    "id": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}, "matter": {"type": "object"}, "purpose": {"type": "string"},
                    "legal_basis": {"type": "string"}, "items": {"type": "array", "items": {"type": "string"}}, "confidentiality": {"type": "string"},
                    "status": {"type": "string", "enum": ["open", "postponed", "provided", "refused"]}, "height": {"type": "integer"}, "time_ms": {"type": "integer"},
                    "deadline_ms": {"type": "integer"}, "overdue": {"type": "boolean"},
                    "answers": {"type": "array", "items": object(&[("answer", "string"), ("documents", "string[]"), ("reason_code", "string"), ("reason", "string"), ("height", "integer")])},
                    "breaches": {"type": "array", "items": object(&[("details", "string"), ("height", "integer")])}}},
                "Officer": object(&[("key", "string"), ("name", "string"), ("administration", "string"), ("roles", "string[]"), ("active", "boolean")]),
                "Proposal": {"type": "object", "properties": {
                    "id": {"type": "string"}, "kind": {"type": "string", "enum": ["add", "remove"]}, "code": {"type": "string"},
                    "administration": {"type": "object", "nullable": true}, "proposed_by": {"type": "string"}, "effective_delay_blocks": {"type": "integer"},
                    "votes": {"type": "array", "items": object(&[("administration", "string"), ("yes", "boolean")])},
                    "status": {"type": "string", "enum": ["open", "passed", "rejected", "applied", "failed"]},
                    "effective_height": {"type": "integer", "nullable": true}, "failure": {"type": "string", "nullable": true}, "height": {"type": "integer"}}}
            }
        }
    })
}
