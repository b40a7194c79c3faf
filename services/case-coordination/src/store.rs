//! Cases in Postgres: load (and lock) a case, commit a change with its events in the same
//! transaction (outbox), re-derive the deadlines and rebuild the timers, and read cases back.

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
    event::{new_event, timestamp},
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE,
    deadlines::{self, Clock, Clocks},
    domain::{CaseError, State},
    routing::{Destination, Routing},
};

/// What the consumers, the API and the timers share.
pub struct Shared {
    pub db: Database,
    pub clocks: Arc<Clocks>,
    pub routing: Arc<Routing>,
}

/// A case as loaded: the columns the service queries on, and the rest.
#[derive(Debug, Clone)]
pub struct CaseRecord {
    pub id: Uuid,
    pub complaint_id: Uuid,
    pub version: u64,
    pub state: State,
    pub department: String,
    pub handler: Option<String>,
    pub severity: Severity,
    pub received_at: DateTime<Utc>,
    pub breached_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Everything else, as the API's `Case` without derived parts.
    pub snapshot: api::Case,
}

type Row = (
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

const COLUMNS: &str = "id, complaint_id, state, version, department, handler, severity, \
                       received_at, snapshot, breached_at, created_at, updated_at";

fn from_row(row: Row) -> Result<CaseRecord, CaseError> {
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
        "INSERT INTO cases (id, complaint_id, state, version, department, handler, severity, received_at, snapshot) \
         VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8) ON CONFLICT (complaint_id) DO NOTHING",
    )
    .bind(case.id)
    .bind(case.complaint_id)
    .bind(case.state.as_str())
    .bind(&case.department)
    .bind(&case.handler)
    .bind(case.severity as i32)
    .bind(case.received_at)
    .bind(case.snapshot.encode_to_vec())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// One event a change causes.
pub struct Change {
    /// The `<event>` of `redress.case.v1.<department>.<event>`.
    pub event: &'static str,
    /// Publish on this department's subject instead of the case's (input requests).
    pub department: Option<String>,
    pub payload: Payload,
    /// What it means for the deadline clock, if anything.
    pub clock: Option<Clock>,
}

impl Change {
    pub fn new(event: &'static str, payload: Payload) -> Self {
        Self {
            event,
            department: None,
            payload,
            clock: None,
        }
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn on(mut self, department: &str) -> Self {
        self.department = Some(department.to_owned());
        self
    }
}

/// `redress.case.v1.<department>.<event>`
pub fn subject(department: &str, event: &str) -> String {
    format!("redress.case.v1.{department}.{event}")
}

pub fn header(case: &CaseRecord) -> CaseHeader {
    CaseHeader {
        case_id: case.id.to_string(),
        complaint_id: case.complaint_id.to_string(),
        reference: case.snapshot.reference.clone(),
        department: case.department.clone(),
        handler: case.handler.clone().unwrap_or_default(),
        state: case.state.to_proto() as i32,
        severity: case.severity as i32,
        consumer_ref: case.snapshot.consumer_ref.clone(),
    }
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

fn derive_from(
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
    let header = header(case);
    for change in changes {
        case.version += 1;
        let mut payload = change.payload;
        set_header(&mut payload, header.clone());
        if let Some(d) = &derived {
            fill_deadlines(&mut payload, d);
        }
        let event = new_event(
            SERVICE,
            case.id.to_string(),
            case.version,
            actor.clone(),
            payload,
        );
        let department = change.department.as_deref().unwrap_or(&case.department);
        record_event(
            conn,
            case.id,
            case.version,
            change.event,
            now,
            change.clock.as_ref(),
            &event,
        )
        .await?;
        outbox::enqueue(
            conn,
            &[OutboxMessage::event(
                subject(department, change.event),
                &event,
            )],
        )
        .await?;
    }
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

/// Replaces the case's unfired timers with those of its current deadlines. A fired timer for
/// the same deadline stays, and the unique key keeps it from being inserted again.
async fn rebuild_timers(
    conn: &mut PgConnection,
    case: &CaseRecord,
    derived: Option<&Deadlines>,
) -> Result<(), CaseError> {
    sqlx::query("DELETE FROM timers WHERE case_id = $1 AND fired_at IS NULL")
        .bind(case.id)
        .execute(&mut *conn)
        .await?;
    let timers = match derived {
        // A merged, withdrawn or closed case has no running deadline, whatever the clock says.
        Some(d) if !case.state.is_terminal() => deadlines::timers(d),
        _ => return Ok(()),
    };
    if timers.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = timers.iter().map(|t| t.kind).collect();
    let which: Vec<&str> = timers.iter().map(|t| t.deadline).collect();
    let fractions: Vec<f64> = timers.iter().map(|t| t.fraction).collect();
    let due: Vec<DateTime<Utc>> = timers.iter().map(|t| t.due_at).collect();
    let fire: Vec<DateTime<Utc>> = timers.iter().map(|t| t.fire_at).collect();
    sqlx::query(
        "INSERT INTO timers (case_id, kind, deadline, fraction, due_at, fire_at) \
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::float8[], $5::timestamptz[], $6::timestamptz[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(case.id)
    .bind(kinds)
    .bind(which)
    .bind(fractions)
    .bind(due)
    .bind(fire)
    .execute(conn)
    .await?;
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

/// The API's view of a case: the snapshot with the live columns, its input requests,
/// conflicts and suspected duplicates, its deadlines derived now, and (on request) its
/// timeline.
pub async fn view(
    conn: &mut PgConnection,
    clocks: &Clocks,
    case: &CaseRecord,
    with_timeline: bool,
) -> Result<api::Case, CaseError> {
    let mut out = case.snapshot.clone();
    out.id = case.id.to_string();
    out.complaint_id = case.complaint_id.to_string();
    out.version = case.version;
    out.state = case.state.to_proto() as i32;
    out.department = case.department.clone();
    out.handler = case.handler.clone().unwrap_or_default();
    out.severity = case.severity as i32;
    out.received_at = Some(timestamp(case.received_at));
    out.breached_at = case.breached_at.map(timestamp);
    out.created_at = Some(timestamp(case.created_at));
    out.updated_at = Some(timestamp(case.updated_at));
    out.input_requests = input_requests(conn, case.id).await?;
    out.conflicts = conflicts(conn, case.id).await?;
    out.suspected_duplicates = duplicates(conn, case.complaint_id).await?;
    out.deadlines = derive(conn, clocks, case)
        .await?
        .map(|d| deadlines::to_api(&d));
    if with_timeline {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT event FROM case_events WHERE case_id = $1 ORDER BY seq")
                .bind(case.id)
                .fetch_all(&mut *conn)
                .await?;
        out.timeline = rows
            .iter()
            .filter_map(|bytes| Event::decode(bytes.as_slice()).ok())
            .collect();
    }
    Ok(out)
}

type InputRow = (
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

pub async fn input_requests(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<api::InputRequest>, CaseError> {
    let rows: Vec<InputRow> = sqlx::query_as(
        "SELECT id, to_department, question, due_at, requested_by, answered_at, answer, answered_by, overridden \
         FROM input_requests WHERE case_id = $1 ORDER BY requested_at, id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, to, question, due, by, answered_at, answer, answered_by, overridden)| {
                api::InputRequest {
                    id: id.to_string(),
                    to_department: to,
                    question,
                    due_at: Some(timestamp(due)),
                    requested_by: actor_from_json(by),
                    answered_at: answered_at.map(timestamp),
                    answer: answer.unwrap_or_default(),
                    answered_by: answered_by.and_then(actor_from_json),
                    overridden,
                }
            },
        )
        .collect())
}

pub fn actor_json(actor: &Actor) -> serde_json::Value {
    serde_json::json!({"subject": actor.subject, "role": actor.role, "department": actor.department})
}

fn actor_from_json(value: serde_json::Value) -> Option<Actor> {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Some(Actor {
        subject: field("subject"),
        role: field("role"),
        department: field("department"),
    })
}

async fn conflicts(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<api::Conflict>, CaseError> {
    let rows: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT handler, reason, declared_by FROM conflicts WHERE case_id = $1 ORDER BY declared_at, handler",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(handler, reason, by)| api::Conflict {
            handler,
            reason,
            declared_by: actor_from_json(by),
        })
        .collect())
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

async fn duplicates(conn: &mut PgConnection, complaint_id: Uuid) -> Result<Vec<String>, CaseError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM duplicate_links d JOIN cases c ON c.complaint_id = \
           CASE WHEN d.complaint_id = $1 THEN d.earlier_complaint_id ELSE d.complaint_id END \
         WHERE d.complaint_id = $1 OR d.earlier_complaint_id = $1 ORDER BY c.id",
    )
    .bind(complaint_id)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(|id| id.to_string()).collect())
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
/// history: the assignment is appended, never replaced.
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
            least_loaded(
                conn,
                &destination.department,
                destination.queue == crate::routing::Queue::Senior,
                case.id,
            )
            .await?
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
    Ok(Change::new(
        "assigned",
        Payload::CaseAssigned(redress_proto::events::v1::CaseAssigned {
            header: None,
            from_department,
            previous_handler: previous_handler.unwrap_or_default(),
            queue: s.queue.clone(),
            rule: destination.rule.clone(),
            routing_version: routing_version.to_owned(),
            reason: reason.to_owned(),
            partner: s.partner.clone(),
            tags: s.tags.clone(),
        }),
    ))
}

/// Filters of ListCases.
#[derive(Debug, Default)]
pub struct Filter {
    pub department: Option<String>,
    pub state: Option<State>,
    pub severity: Option<Severity>,
    pub due_before: Option<DateTime<Utc>>,
    pub breached: bool,
}

/// A page of cases in id order (UUIDv7: oldest first); the token is the last id.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CaseRecord>, CaseError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM cases WHERE ($1::text IS NULL OR department = $1) \
         AND ($2::text IS NULL OR state = $2) AND ($3::int IS NULL OR severity = $3) \
         AND ($4::timestamptz IS NULL OR decision_due_at < $4) \
         AND (NOT $5 OR breached_at IS NOT NULL) AND ($6::uuid IS NULL OR id > $6) \
         ORDER BY id LIMIT $7"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.department)
        .bind(filter.state.map(State::as_str))
        .bind(filter.severity.map(|s| s as i32))
        .bind(filter.due_before)
        .bind(filter.breached)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(from_row).collect()
}
