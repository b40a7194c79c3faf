//! Cases in Postgres: load (and lock) a case, commit a change with its events in the same
//! transaction (outbox), re-derive the deadlines and reschedule the timers. All SQL of the
//! service is here: `view` reads cases back for the API, `work` holds what changes around a
//! case (input requests, conflicts, handlers, routing, duplicates).

mod view;
mod work;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_proto::{
    cases::v1 as api,
    common::v1::{Actor, Severity},
    events::v1::{CaseHeader, Event, event::Payload},
};
use redress_regime::Deadlines;
use redress_runtime::{
    Database, OutboxMessage,
    event::{new_event_payload, timestamp},
    jobs::{self, NewJob},
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

pub use view::{Filter, list, view};
pub use work::*;

use crate::{
    SERVICE,
    deadlines::{self, Clock, Clocks},
    domain::{CaseError, CaseRecord, Change, State},
    routing::Routing,
};

/// The job queue deadline timers run on (`runtime::jobs`).
pub const TIMERS: &str = "deadline";

/// What the consumers, the API and the timers share.
pub struct Shared {
    pub db: Database,
    pub clocks: Arc<Clocks>,
    pub routing: Arc<Routing>,
}

pub(super) type Row = (
    Uuid,
    Uuid,
    String,
    i64,
    String,
    Option<String>,
    i32,
    DateTime<Utc>,
    Vec<u8>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    DateTime<Utc>,
);

pub(super) const COLUMNS: &str = "id, complaint_id, state, version, department, handler, severity, \
                       received_at, snapshot, breached_at, created_at, updated_at";

pub(super) fn from_row(row: Row) -> Result<CaseRecord, CaseError> {
    let (
        id,
        complaint_id,
        state,
        version,
        department,
        handler,
        severity,
        received_at,
        snapshot,
        breached_at,
        created_at,
        updated_at,
    ) = row;
    Ok(CaseRecord {
        id,
        complaint_id,
        version: u64::try_from(version)
            .map_err(|_| CaseError::Corrupt(format!("{id}: version")))?,
        state: State::parse(&state)
            .ok_or_else(|| CaseError::Corrupt(format!("{id}: state `{state}`")))?,
        department,
        handler,
        severity: Severity::try_from(severity).unwrap_or(Severity::Unspecified),
        received_at,
        breached_at,
        created_at,
        updated_at,
        snapshot: api::Case::decode(snapshot.as_slice())
            .map_err(|e| CaseError::Corrupt(format!("{id}: snapshot: {e}")))?,
    })
}

/// Loads a case; with `lock`, holds its row until the transaction ends.
pub async fn load(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<CaseRecord>, CaseError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM cases WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(from_row).transpose()
}

/// A case claimed for a timer: locked, or busy with a change that holds its lock.
pub enum Claim {
    Locked(Box<CaseRecord>),
    Busy,
    Missing,
}

/// Locks the case unless another transaction holds it (a timer never waits behind a change,
/// so a change that reschedules the case's timers never waits behind a timer either).
pub async fn try_lock(conn: &mut PgConnection, id: Uuid) -> Result<Claim, CaseError> {
    let sql = format!("SELECT {COLUMNS} FROM cases WHERE id = $1 FOR UPDATE SKIP LOCKED");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        return Ok(Claim::Locked(Box::new(from_row(row)?)));
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cases WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(if exists { Claim::Busy } else { Claim::Missing })
}

/// The case of a complaint, locked.
pub async fn load_by_complaint(
    conn: &mut PgConnection,
    complaint_id: Uuid,
) -> Result<Option<CaseRecord>, CaseError> {
    let sql = format!("SELECT {COLUMNS} FROM cases WHERE complaint_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(complaint_id)
        .fetch_optional(conn)
        .await?;
    row.map(from_row).transpose()
}

/// Inserts a new case at version 0; false when the complaint already has one.
pub async fn insert(conn: &mut PgConnection, case: &CaseRecord) -> Result<bool, CaseError> {
    let inserted = sqlx::query(
        "INSERT INTO cases (id, complaint_id, state, version, department, handler, severity, received_at, snapshot, reference) \
         VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9) ON CONFLICT (complaint_id) DO NOTHING",
    )
    .bind(case.id)
    .bind(case.complaint_id)
    .bind(case.state.as_str())
    .bind(&case.department)
    .bind(&case.handler)
    .bind(case.severity as i32)
    .bind(case.received_at)
    .bind(case.snapshot.encode_to_vec())
    .bind(case.reference())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The clock history, oldest first.
pub async fn history(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<(DateTime<Utc>, Clock)>, CaseError> {
    let rows: Vec<(DateTime<Utc>, serde_json::Value)> = sqlx::query_as(
        "SELECT at, clock FROM case_events WHERE case_id = $1 AND clock IS NOT NULL ORDER BY seq",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(at, json)| {
            serde_json::from_value(json)
                .map(|c| (at, c))
                .map_err(|e| CaseError::Corrupt(format!("{case_id}: clock: {e}")))
        })
        .collect()
}

/// Derives the case's deadlines now; `None` (logged) if the history cannot be derived.
pub async fn derive(
    conn: &mut PgConnection,
    clocks: &Clocks,
    case: &CaseRecord,
) -> Result<Option<Deadlines>, CaseError> {
    let history = history(conn, case.id).await?;
    Ok(derive_from(clocks, case, &history))
}

pub(super) fn derive_from(
    clocks: &Clocks,
    case: &CaseRecord,
    history: &[(DateTime<Utc>, Clock)],
) -> Option<Deadlines> {
    match clocks.derive(case.received_at, history) {
        Ok(d) => Some(d),
        Err(error) => {
            tracing::error!(%error, case = %case.id, "deadlines cannot be derived");
            None
        }
    }
}

/// Applies `changes` to the stored case in the caller's transaction: each bumps the version
/// and records its event in the timeline and the outbox; then the deadlines are derived again
/// from the history and the timers rebuilt. Returns the new deadlines.
pub async fn commit(
    conn: &mut PgConnection,
    clocks: &Clocks,
    case: &mut CaseRecord,
    actor: &Actor,
    changes: Vec<Change>,
) -> Result<Option<Deadlines>, CaseError> {
    let mut history = history(conn, case.id).await?;
    // Clock events must be in order and not before receipt (a complaint received "in the
    // future" by a skewed channel clock still gets a derivable history).
    let last = history
        .last()
        .map(|(at, _)| *at)
        .unwrap_or(case.received_at);
    let now = Utc::now().max(last).max(case.received_at);
    for change in &changes {
        if let Some(clock) = &change.clock {
            history.push((now, clock.clone()));
        }
    }
    let derived = derive_from(clocks, case, &history);
    let header = case.header();
    let mut messages = Vec::with_capacity(changes.len());
    for change in changes {
        case.version += 1;
        let name = change.name();
        let mut payload = change.payload;
        set_header(&mut payload, header.clone());
        if let Some(d) = &derived {
            fill_deadlines(&mut payload, d);
        }
        let event = new_event_payload(
            SERVICE,
            case.id.to_string(),
            case.version,
            actor.clone(),
            payload,
        );
        record_event(
            conn,
            case.id,
            case.version,
            name,
            now,
            change.clock.as_ref(),
            &event,
        )
        .await?;
        messages.push(OutboxMessage::event(&event));
    }
    outbox::enqueue(conn, &messages).await?;
    let version = i64::try_from(case.version).map_err(|_| CaseError::Corrupt("version".into()))?;
    sqlx::query(
        "UPDATE cases SET state = $2, version = $3, department = $4, handler = $5, severity = $6, \
         snapshot = $7, decision_due_at = $8, review_due_at = $9, updated_at = now() WHERE id = $1",
    )
    .bind(case.id)
    .bind(case.state.as_str())
    .bind(version)
    .bind(&case.department)
    .bind(&case.handler)
    .bind(case.severity as i32)
    .bind(case.snapshot.encode_to_vec())
    .bind(
        derived
            .as_ref()
            .and_then(|d| d.decision_due)
            .map(|d| d.ends_at),
    )
    .bind(
        derived
            .as_ref()
            .and_then(|d| d.review_due)
            .map(|d| d.ends_at),
    )
    .execute(&mut *conn)
    .await?;
    rebuild_timers(conn, case, derived.as_ref()).await?;
    Ok(derived)
}

pub async fn record_event(
    conn: &mut PgConnection,
    case_id: Uuid,
    version: u64,
    event_type: &str,
    at: DateTime<Utc>,
    clock: Option<&Clock>,
    event: &Event,
) -> Result<(), CaseError> {
    let clock = clock
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| CaseError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO case_events (case_id, version, event_type, at, clock, event) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(case_id)
    .bind(i64::try_from(version).unwrap_or(i64::MAX))
    .bind(event_type)
    .bind(at)
    .bind(clock)
    .bind(event.encode_to_vec())
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the case's pending timers with those of its current deadlines (due work in the
/// runtime's job queue). A fired timer keeps its key, so the same warning never fires twice;
/// a cancelled one comes back if the deadline returns to it.
async fn rebuild_timers(
    conn: &mut PgConnection,
    case: &CaseRecord,
    derived: Option<&Deadlines>,
) -> Result<(), CaseError> {
    let group = case.id.to_string();
    jobs::cancel_group(conn, TIMERS, &group).await?;
    let timers = match derived {
        // A merged, withdrawn or closed case has no running deadline, whatever the clock says.
        Some(d) if !case.state.is_terminal() => deadlines::timers(d),
        _ => return Ok(()),
    };
    let jobs: Vec<NewJob> = timers
        .iter()
        .map(|t| {
            let key = format!(
                "{}:{}:{}:{}:{}",
                case.id,
                t.kind,
                t.deadline,
                t.fraction,
                t.due_at.timestamp_micros()
            );
            NewJob::new(TIMERS, key, t.fire_at)
                .group(group.clone())
                .payload(serde_json::json!({
                    "case_id": case.id,
                    "kind": t.kind,
                    "deadline": t.deadline,
                    "fraction": t.fraction,
                    "due_at": t.due_at,
                }))
        })
        .collect();
    jobs::schedule(conn, &jobs).await?;
    Ok(())
}

fn set_header(payload: &mut Payload, header: CaseHeader) {
    let slot = match payload {
        Payload::CaseCreated(p) => &mut p.header,
        Payload::CaseAssigned(p) => &mut p.header,
        Payload::CaseWorkStarted(p) => &mut p.header,
        Payload::CaseInputRequested(p) => &mut p.header,
        Payload::CaseInputAnswered(p) => &mut p.header,
        Payload::CaseExtended(p) => &mut p.header,
        Payload::CaseDeadlineWarning(p) => &mut p.header,
        Payload::CaseDeadlineBreached(p) => &mut p.header,
        Payload::CaseDecided(p) => &mut p.header,
        Payload::CaseReviewRequested(p) => &mut p.header,
        Payload::CaseEscalated(p) => &mut p.header,
        Payload::CaseSatisfactionRecorded(p) => &mut p.header,
        Payload::CaseClosed(p) => &mut p.header,
        Payload::CaseReopened(p) => &mut p.header,
        Payload::CaseNoteAdded(p) => &mut p.header,
        Payload::CaseMerged(p) => &mut p.header,
        Payload::CaseWithdrawn(p) => &mut p.header,
        Payload::CaseClockPaused(p) => &mut p.header,
        Payload::CaseClockResumed(p) => &mut p.header,
        Payload::CaseNewFacts(p) => &mut p.header,
        Payload::CaseConflictDeclared(p) => &mut p.header,
        Payload::CaseReclassified(p) => &mut p.header,
        _ => return,
    };
    *slot = Some(header);
}

/// Puts the freshly derived deadline into the events whose readers need it.
fn fill_deadlines(payload: &mut Payload, d: &Deadlines) {
    let due = d.decision_due.map(|due| timestamp(due.ends_at));
    match payload {
        Payload::CaseCreated(p) => {
            p.decision_due = due;
            p.regime = d.regime.clone();
        }
        Payload::CaseExtended(p) => {
            p.decision_due = due;
            p.decision_due_date = d
                .decision_due
                .map(|x| x.date.to_string())
                .unwrap_or_default();
            p.limit_days = d.limit.days;
            p.article = d.limit.article.clone();
            p.regime = d.regime.clone();
        }
        Payload::CaseClockResumed(p) => p.decision_due = due,
        Payload::CaseNewFacts(p) => p.decision_due = due,
        Payload::CaseReviewRequested(p) => {
            p.review_due = d.review_due.map(|x| timestamp(x.ends_at));
        }
        Payload::CaseDecided(p) => {
            p.review_window_ends = d.review_window_ends.map(|x| timestamp(x.ends_at));
        }
        _ => {}
    }
}
