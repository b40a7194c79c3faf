//! Reading cases back for the API: the stored case with its live columns, input requests,
//! conflicts, suspected duplicates and deadlines derived now — for a page of cases in one
//! query per part, not per case.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_proto::{cases::v1 as api, common::v1::Severity, events::v1::Event};
use redress_runtime::{
    event::timestamp,
    paging::{self, Page, Pager},
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLUMNS, Row, actor_from_json, derive_from, from_row};
use crate::{
    deadlines::{self, Clock, Clocks},
    domain::{CaseError, CaseRecord, State},
};

/// The API's view of one case; with `with_timeline`, every event of the case, oldest first.
pub async fn view(
    conn: &mut PgConnection,
    clocks: &Clocks,
    case: &CaseRecord,
    with_timeline: bool,
) -> Result<api::Case, CaseError> {
    let mut views = views(conn, clocks, std::slice::from_ref(case)).await?;
    let mut out = views.pop().unwrap_or_default();
    if with_timeline {
        let rows: Vec<Vec<u8>> =
            // The case's own events: a notice recorded in its clock history is notification's.
            sqlx::query_scalar(
                "SELECT event FROM case_events WHERE case_id = $1 \
                 AND event_type <> 'notification_sent' ORDER BY seq",
            )
                .bind(case.id)
                .fetch_all(&mut *conn)
                .await?;
        out.timeline = rows
            .iter()
            .map(|bytes| {
                Event::decode(bytes.as_slice())
                    .map_err(|e| CaseError::Corrupt(format!("{}: timeline: {e}", case.id)))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// The API's views of `cases`, in their order.
async fn views(
    conn: &mut PgConnection,
    clocks: &Clocks,
    cases: &[CaseRecord],
) -> Result<Vec<api::Case>, CaseError> {
    let ids: Vec<Uuid> = cases.iter().map(|c| c.id).collect();
    let complaints: Vec<Uuid> = cases.iter().map(|c| c.complaint_id).collect();
    let mut inputs = input_requests(conn, &ids).await?;
    let mut conflicts = conflicts(conn, &ids).await?;
    let mut duplicates = duplicates(conn, &complaints).await?;
    let mut histories = histories(conn, &ids).await?;
    Ok(cases
        .iter()
        .map(|case| {
            let mut out = case.snapshot.clone();
            out.id = case.id.to_string();
            out.version = case.version;
            out.state = case.state.to_proto() as i32;
            out.department = case.department.clone();
            out.handler = case.handler.clone().unwrap_or_default();
            out.severity = case.severity as i32;
            out.breached_at = case.breached_at.map(timestamp);
            out.created_at = Some(timestamp(case.created_at));
            out.updated_at = Some(timestamp(case.updated_at));
            out.input_requests = inputs.remove(&case.id).unwrap_or_default();
            out.conflicts = conflicts.remove(&case.id).unwrap_or_default();
            out.suspected_duplicates = duplicates.remove(&case.complaint_id).unwrap_or_default();
            let history = histories.remove(&case.id).unwrap_or_default();
            out.deadlines = derive_from(clocks, case, &history).map(|d| deadlines::to_api(&d));
            out
        })
        .collect())
}

/// Filters of ListCases.
#[derive(Debug, Default)]
pub struct Filter {
    pub department: Option<String>,
    pub state: Option<State>,
    pub severity: Option<Severity>,
    pub due_before: Option<DateTime<Utc>>,
    pub breached: bool,
    /// A complaint id or reference number.
    pub complaint: Option<String>,
}

/// A page of cases, oldest first.
pub async fn list(
    conn: &mut PgConnection,
    clocks: &Clocks,
    pager: &Pager,
    filter: &Filter,
    page_size: u32,
    page_token: &str,
) -> Result<Page<api::Case>, CaseError> {
    let size = paging::page_size(page_size);
    let after = pager
        .decode(page_token)
        .map_err(|_| CaseError::invalid("page.pageToken", "not a token this service issued"))?;
    let sql = format!(
        "SELECT {COLUMNS} FROM cases WHERE ($1::text IS NULL OR department = $1) \
         AND ($2::text IS NULL OR state = $2) AND ($3::int IS NULL OR severity = $3) \
         AND ($4::timestamptz IS NULL OR decision_due_at < $4) \
         AND (NOT $5 OR breached_at IS NOT NULL) \
         AND ($6::timestamptz IS NULL OR (created_at, id) > ($6, $7)) \
         AND ($9::text IS NULL OR complaint_id::text = $9 OR reference = $9) \
         ORDER BY created_at, id LIMIT $8"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.department)
        .bind(filter.state.map(State::as_str))
        .bind(filter.severity.map(|s| s as i32))
        .bind(filter.due_before)
        .bind(filter.breached)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(size + 1)
        .bind(filter.complaint.as_deref())
        .fetch_all(&mut *conn)
        .await?;
    let records = rows
        .into_iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let page = pager.page(records, size, |c| (c.created_at, c.id), |c| c);
    Ok(Page {
        items: views(conn, clocks, &page.items).await?,
        next_page_token: page.next_page_token,
    })
}

/// Every case's clock history, oldest first.
async fn histories(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(DateTime<Utc>, Clock)>>, CaseError> {
    let rows: Vec<(Uuid, DateTime<Utc>, serde_json::Value)> = sqlx::query_as(
        "SELECT case_id, at, clock FROM case_events \
         WHERE case_id = ANY($1) AND clock IS NOT NULL ORDER BY seq",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<Uuid, Vec<_>> = HashMap::new();
    for (id, at, json) in rows {
        let clock = serde_json::from_value(json)
            .map_err(|e| CaseError::Corrupt(format!("{id}: clock: {e}")))?;
        out.entry(id).or_default().push((at, clock));
    }
    Ok(out)
}

type InputRow = (
    Uuid,
    Uuid,
    String,
    String,
    DateTime<Utc>,
    serde_json::Value,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<serde_json::Value>,
    bool,
);

async fn input_requests(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<api::InputRequest>>, CaseError> {
    let rows: Vec<InputRow> = sqlx::query_as(
        "SELECT case_id, id, to_department, question, due_at, requested_by, answered_at, answer, \
           answered_by, overridden \
         FROM input_requests WHERE case_id = ANY($1) ORDER BY requested_at, id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<Uuid, Vec<_>> = HashMap::new();
    for (case, id, to, question, due, by, answered_at, answer, answered_by, overridden) in rows {
        out.entry(case).or_default().push(api::InputRequest {
            id: id.to_string(),
            to_department: to,
            question,
            due_at: Some(timestamp(due)),
            requested_by: Some(actor_from_json(&by)),
            answered_at: answered_at.map(timestamp),
            answer: answer.unwrap_or_default(),
            answered_by: answered_by.as_ref().map(actor_from_json),
            overridden,
        });
    }
    Ok(out)
}

async fn conflicts(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<api::Conflict>>, CaseError> {
    let rows: Vec<(Uuid, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT case_id, handler, reason, declared_by FROM conflicts \
         WHERE case_id = ANY($1) ORDER BY declared_at, handler",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<Uuid, Vec<_>> = HashMap::new();
    for (case, handler, reason, by) in rows {
        out.entry(case).or_default().push(api::Conflict {
            handler,
            reason,
            declared_by: Some(actor_from_json(&by)),
        });
    }
    Ok(out)
}

/// The cases of complaints intake suspected to be the same matter, by complaint.
async fn duplicates(
    conn: &mut PgConnection,
    complaints: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, CaseError> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT x.complaint, c.id FROM ( \
           SELECT complaint_id AS complaint, earlier_complaint_id AS other FROM duplicate_links \
             WHERE complaint_id = ANY($1) \
           UNION SELECT earlier_complaint_id, complaint_id FROM duplicate_links \
             WHERE earlier_complaint_id = ANY($1)) x \
         JOIN cases c ON c.complaint_id = x.other ORDER BY c.id",
    )
    .bind(complaints)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (complaint, case) in rows {
        out.entry(complaint).or_default().push(case.to_string());
    }
    Ok(out)
}
