//! What changes around a case besides the case itself: input requests to other departments,
//! declared conflicts (回避), the handlers of each department and who gets a case, suspected
//! duplicates and withdrawals that arrived before their case.

use chrono::{DateTime, Utc};
use redress_proto::{cases::v1 as api, common::v1::Actor, events::v1::CaseAssigned};
use redress_runtime::event::timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{CaseError, CaseRecord, Change, State},
    routing::{Destination, Queue},
};

pub fn actor_json(actor: &Actor) -> serde_json::Value {
    serde_json::json!({"subject": actor.subject, "role": actor.role, "department": actor.department})
}

pub(super) fn actor_from_json(value: &serde_json::Value) -> Actor {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Actor {
        subject: field("subject"),
        role: field("role"),
        department: field("department"),
    }
}

/// Records a request for another department's input.
pub async fn insert_input_request(
    conn: &mut PgConnection,
    id: Uuid,
    case_id: Uuid,
    to: &str,
    question: &str,
    due_at: DateTime<Utc>,
    by: &Actor,
) -> Result<(), CaseError> {
    sqlx::query(
        "INSERT INTO input_requests (id, case_id, to_department, question, due_at, requested_by, requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now())",
    )
    .bind(id)
    .bind(case_id)
    .bind(to)
    .bind(question)
    .bind(due_at)
    .bind(actor_json(by))
    .execute(conn)
    .await?;
    Ok(())
}

/// The department an open input request of the case went to, locked; `None` when it is not
/// open on this case.
pub async fn open_input_request(
    conn: &mut PgConnection,
    case_id: Uuid,
    request_id: Uuid,
) -> Result<Option<String>, CaseError> {
    Ok(sqlx::query_scalar(
        "SELECT to_department FROM input_requests \
         WHERE id = $1 AND case_id = $2 AND answered_at IS NULL FOR UPDATE",
    )
    .bind(request_id)
    .bind(case_id)
    .fetch_optional(conn)
    .await?)
}

/// Records the answer (or a specialist's release) of an input request.
pub async fn answer_input_request(
    conn: &mut PgConnection,
    request_id: Uuid,
    answer: &str,
    by: &Actor,
    overridden: bool,
) -> Result<(), CaseError> {
    sqlx::query(
        "UPDATE input_requests SET answered_at = now(), answer = $2, answered_by = $3, overridden = $4 \
         WHERE id = $1",
    )
    .bind(request_id)
    .bind(answer)
    .bind(actor_json(by))
    .bind(overridden)
    .execute(conn)
    .await?;
    Ok(())
}

/// The departments whose input on the case is still open, oldest request first.
pub async fn open_inputs(conn: &mut PgConnection, case_id: Uuid) -> Result<Vec<String>, CaseError> {
    Ok(sqlx::query_scalar(
        "SELECT to_department FROM input_requests WHERE case_id = $1 AND answered_at IS NULL \
         ORDER BY requested_at",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?)
}

/// Whether `department` has an open input request on the case (its handlers may see it).
pub async fn asked(
    conn: &mut PgConnection,
    case: Uuid,
    department: &str,
) -> Result<bool, CaseError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM input_requests \
           WHERE case_id = $1 AND to_department = $2 AND answered_at IS NULL)",
    )
    .bind(case)
    .bind(department)
    .fetch_one(conn)
    .await?)
}

/// Records that `handler` may not handle the case (回避); idempotent.
pub async fn insert_conflict(
    conn: &mut PgConnection,
    case_id: Uuid,
    handler: &str,
    reason: &str,
    by: &Actor,
) -> Result<(), CaseError> {
    sqlx::query(
        "INSERT INTO conflicts (case_id, handler, reason, declared_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(case_id)
    .bind(handler)
    .bind(reason)
    .bind(actor_json(by))
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `handler` may not handle the case (回避).
pub async fn is_conflicted(
    conn: &mut PgConnection,
    case_id: Uuid,
    handler: &str,
) -> Result<bool, CaseError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM conflicts WHERE case_id = $1 AND handler = $2)",
    )
    .bind(case_id)
    .bind(handler)
    .fetch_one(conn)
    .await?)
}

/// Open states, for handler load.
fn open_states() -> Vec<&'static str> {
    State::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(State::as_str)
        .collect()
}

/// The handler of `department` with the fewest open cases (ties by id) who has no conflict
/// on the case; only senior handlers for the senior queue. `None`: the case waits in the
/// department queue.
pub async fn least_loaded(
    conn: &mut PgConnection,
    department: &str,
    senior_only: bool,
    case_id: Uuid,
) -> Result<Option<String>, CaseError> {
    Ok(sqlx::query_scalar(
        "SELECT h.handler FROM handlers h \
         WHERE h.department = $1 AND (h.senior OR NOT $2) \
           AND NOT EXISTS (SELECT 1 FROM conflicts x WHERE x.case_id = $3 AND x.handler = h.handler) \
         ORDER BY (SELECT count(*) FROM cases k WHERE k.department = h.department \
                     AND k.handler = h.handler AND k.state = ANY($4)), h.handler \
         LIMIT 1",
    )
    .bind(department)
    .bind(senior_only)
    .bind(case_id)
    .bind(open_states())
    .fetch_optional(conn)
    .await?)
}

/// Makes a handler known to its department (idempotent).
pub async fn add_handler(
    conn: &mut PgConnection,
    department: &str,
    handler: &str,
    senior: bool,
) -> Result<(), CaseError> {
    sqlx::query(
        "INSERT INTO handlers (department, handler, senior) VALUES ($1, $2, $3) \
         ON CONFLICT (department, handler) DO UPDATE SET senior = handlers.senior OR EXCLUDED.senior",
    )
    .bind(department)
    .bind(handler)
    .bind(senior)
    .execute(conn)
    .await?;
    Ok(())
}

/// Routes (or re-routes) the case and returns the `assigned` change. Reassignment keeps the
/// history: the assignment is appended, never replaced. Without a named handler the least
/// loaded one without a conflict gets it, or the department's queue.
pub async fn assign(
    conn: &mut PgConnection,
    case: &mut CaseRecord,
    destination: &Destination,
    handler: Option<String>,
    by: &Actor,
    routing_version: &str,
    reason: &str,
) -> Result<Change, CaseError> {
    let handler = match handler {
        Some(h) => Some(h),
        None => {
            let senior = destination.queue == Queue::Senior;
            least_loaded(conn, &destination.department, senior, case.id).await?
        }
    };
    let from_department = std::mem::replace(&mut case.department, destination.department.clone());
    let previous_handler = std::mem::replace(&mut case.handler, handler.clone());
    case.state = State::Assigned;
    let s = &mut case.snapshot;
    s.queue = destination.queue.as_str().to_owned();
    s.partner = destination.partner.clone().unwrap_or_default();
    for tag in &destination.tags {
        if !s.tags.contains(tag) {
            s.tags.push(tag.clone());
        }
    }
    s.routing_rule = destination.rule.clone();
    s.assignments.push(api::Assignment {
        department: destination.department.clone(),
        handler: handler.clone().unwrap_or_default(),
        queue: s.queue.clone(),
        rule: destination.rule.clone(),
        by: Some(by.clone()),
        at: Some(timestamp(Utc::now())),
    });
    Ok(Change::new(CaseAssigned {
        header: None,
        from_department,
        previous_handler: previous_handler.unwrap_or_default(),
        queue: s.queue.clone(),
        rule: destination.rule.clone(),
        routing_version: routing_version.to_owned(),
        reason: reason.to_owned(),
        partner: s.partner.clone(),
        tags: s.tags.clone(),
    }))
}

/// Links two complaints intake suspected to be the same matter (idempotent).
pub async fn link_duplicates(
    conn: &mut PgConnection,
    complaint: Uuid,
    earlier: Uuid,
    similarity: f64,
) -> Result<(), CaseError> {
    sqlx::query(
        "INSERT INTO duplicate_links (complaint_id, earlier_complaint_id, similarity) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(complaint)
    .bind(earlier)
    .bind(if similarity.is_finite() {
        similarity
    } else {
        0.0
    })
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps a withdrawal that arrived before its complaint's case (idempotent).
pub async fn keep_early_withdrawal(
    conn: &mut PgConnection,
    complaint: Uuid,
    reason: &str,
) -> Result<(), CaseError> {
    sqlx::query(
        "INSERT INTO early_withdrawals (complaint_id, reason, received_at) VALUES ($1, $2, now()) \
         ON CONFLICT DO NOTHING",
    )
    .bind(complaint)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the withdrawal that overtook the complaint's classification, if one did.
pub async fn take_early_withdrawal(
    conn: &mut PgConnection,
    complaint: Uuid,
) -> Result<Option<String>, CaseError> {
    Ok(
        sqlx::query_scalar(
            "DELETE FROM early_withdrawals WHERE complaint_id = $1 RETURNING reason",
        )
        .bind(complaint)
        .fetch_optional(conn)
        .await?,
    )
}

/// Marks a case breached (the first time its running deadline passed).
pub async fn mark_breached(conn: &mut PgConnection, case_id: Uuid) -> Result<(), CaseError> {
    sqlx::query("UPDATE cases SET breached_at = coalesce(breached_at, now()) WHERE id = $1")
        .bind(case_id)
        .execute(conn)
        .await?;
    Ok(())
}
