//! The compliance worklist over the violations: list, acknowledge, resolve. Each change is
//! an event with the caller as its actor, put in the outbox in the transaction that makes it,
//! so the log records who acknowledged or resolved what, and why.

use redress_proto::{
    audit::v1::{ListViolationsRequest, ListViolationsResponse, Violation},
    events::v1::{FieldViolation, ViolationAcknowledged, ViolationResolved},
    vocab::{TextKind, code},
};
use redress_runtime::{
    OutboxMessage, Principal, Role,
    db::Database,
    grpc, new_event, outbox,
    paging::{Pager, page_size},
};
use tonic::Status;

use crate::{SERVICE, violations::Row};

const STATES: [&str; 3] = ["open", "acknowledged", "resolved"];

pub async fn list(
    db: &Database,
    pager: &Pager,
    request: ListViolationsRequest,
) -> Result<ListViolationsResponse, Status> {
    if !request.state.is_empty() && !STATES.contains(&request.state.as_str()) {
        return Err(grpc::invalid(FieldViolation::new(
            "state",
            code::UNKNOWN_VALUE,
            "one of open, acknowledged, resolved (or empty for all)",
        )));
    }
    let page = request.page.unwrap_or_default();
    let after = pager.decode(&page.page_token)?;
    let size = page_size(page.page_size);
    let (at, id) = after.map_or((None, None), |(at, id)| (Some(at), Some(id)));
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT violation_id, detected, detected_at, state, acknowledged_by, resolved_by,
                resolution
         FROM violations
         WHERE ($1 = '' OR state = $1) AND ($2 = '' OR rule = $2) AND ($3 = '' OR case_id = $3)
           AND ($4::timestamptz IS NULL OR (detected_at, violation_id) < ($4, $5::uuid))
         ORDER BY detected_at DESC, violation_id DESC LIMIT $6",
    )
    .bind(&request.state)
    .bind(request.rule.trim())
    .bind(request.case_id.trim())
    .bind(at)
    .bind(id)
    .bind(size + 1)
    .fetch_all(db.pool())
    .await
    .map_err(|e| grpc::database("list violations", &e))?;
    let page = pager.page(
        rows,
        size,
        |r| (r.detected_at, r.violation_id),
        Row::into_proto,
    );
    Ok(ListViolationsResponse {
        violations: page.items,
        next_page_token: page.next_page_token,
    })
}

/// What a worklist action does to a violation.
enum Action {
    Acknowledge { note: String },
    Resolve { reason: String },
}

pub async fn acknowledge(
    db: &Database,
    principal: &Principal,
    role: Role,
    violation_id: &str,
    note: &str,
) -> Result<Violation, Status> {
    let note = grpc::text("note", note, 2000, TextKind::Prose, false).map_err(grpc::invalid)?;
    act(
        db,
        principal,
        role,
        violation_id,
        Action::Acknowledge { note },
    )
    .await
}

pub async fn resolve(
    db: &Database,
    principal: &Principal,
    role: Role,
    violation_id: &str,
    reason: &str,
) -> Result<Violation, Status> {
    let reason =
        grpc::text("reason", reason, 2000, TextKind::Prose, true).map_err(grpc::invalid)?;
    act(
        db,
        principal,
        role,
        violation_id,
        Action::Resolve { reason },
    )
    .await
}

async fn act(
    db: &Database,
    principal: &Principal,
    role: Role,
    violation_id: &str,
    action: Action,
) -> Result<Violation, Status> {
    let id = grpc::id("violation_id", violation_id)?;
    let mut tx = db
        .pool()
        .begin()
        .await
        .map_err(|e| grpc::database("begin", &e))?;
    let row: Option<Row> = sqlx::query_as(
        "SELECT violation_id, detected, detected_at, state, acknowledged_by, resolved_by,
                resolution
         FROM violations WHERE violation_id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| grpc::database("violation", &e))?;
    let row = row.ok_or_else(|| Status::not_found(format!("no violation {id}")))?;
    let (state, allowed_from) = match action {
        Action::Acknowledge { .. } => ("acknowledged", &["open"][..]),
        Action::Resolve { .. } => ("resolved", &["open", "acknowledged"][..]),
    };
    if !allowed_from.contains(&row.state.as_str()) {
        return Err(Status::failed_precondition(format!(
            "violation {id} is {}; it cannot become {state}",
            row.state
        )));
    }
    let detected = row.detected();
    let who = principal.subject.clone();
    let (text, payload) = match action {
        Action::Acknowledge { note } => (
            None,
            Payload::Ack(ViolationAcknowledged {
                violation_id: id.to_string(),
                rule: detected.rule.clone(),
                case_id: detected.case_id.clone(),
                note,
            }),
        ),
        Action::Resolve { reason } => (
            Some(reason.clone()),
            Payload::Resolved(ViolationResolved {
                violation_id: id.to_string(),
                rule: detected.rule.clone(),
                case_id: detected.case_id.clone(),
                reason,
            }),
        ),
    };
    let updated: Row = sqlx::query_as(
        "UPDATE violations SET state = $2,
           acknowledged_by = CASE WHEN $2 = 'acknowledged' THEN $3 ELSE acknowledged_by END,
           resolved_by = CASE WHEN $2 = 'resolved' THEN $3 ELSE resolved_by END,
           resolution = COALESCE($4, resolution)
         WHERE violation_id = $1
         RETURNING violation_id, detected, detected_at, state, acknowledged_by, resolved_by,
                   resolution",
    )
    .bind(id)
    .bind(state)
    .bind(&who)
    .bind(text)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| grpc::database("update violation", &e))?;
    let actor = principal.actor(role);
    // The violation's version: detected 1, acknowledged 2, resolved 3 (acknowledged or not).
    let event = match payload {
        Payload::Ack(p) => new_event(SERVICE, id.to_string(), 2, actor, p),
        Payload::Resolved(p) => new_event(SERVICE, id.to_string(), 3, actor, p),
    };
    outbox::enqueue(&mut tx, &[OutboxMessage::event(&event)])
        .await
        .map_err(|e| grpc::database("outbox", &e))?;
    tx.commit()
        .await
        .map_err(|e| grpc::database("commit", &e))?;
    Ok(updated.into_proto())
}

enum Payload {
    Ack(ViolationAcknowledged),
    Resolved(ViolationResolved),
}
