//! The webhook tables: endpoints, their messages, and each attempt.

use chrono::{DateTime, Utc};
use redress_runtime::jobs::{self, NewJob};
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

use super::{QUEUE, StoredKey};

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub department: String,
    pub subjects: Vec<String>,
    pub description: String,
    pub owner: String,
    pub scheme: String,
    pub keys: Vec<StoredKey>,
    pub state: String,
    pub disabled_reason: String,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, url, department, subjects, description, owner, scheme, keys, \
     state, disabled_reason, failing_since, created_at";

fn endpoint(r: &PgRow) -> Endpoint {
    let keys: serde_json::Value = r.get(7);
    Endpoint {
        id: r.get(0),
        url: r.get(1),
        department: r.get(2),
        subjects: r.get(3),
        description: r.get(4),
        owner: r.get(5),
        scheme: r.get(6),
        keys: serde_json::from_value(keys).unwrap_or_default(),
        state: r.get(8),
        disabled_reason: r.get(9),
        failing_since: r.get(10),
        created_at: r.get(11),
    }
}

fn keys_json(keys: &[StoredKey]) -> serde_json::Value {
    serde_json::to_value(keys).unwrap_or_default()
}

pub async fn insert_endpoint(conn: &mut PgConnection, e: &Endpoint) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, department, subjects, description, owner, scheme, keys)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.id)
    .bind(&e.url)
    .bind(&e.department)
    .bind(&e.subjects)
    .bind(&e.description)
    .bind(&e.owner)
    .bind(&e.scheme)
    .bind(keys_json(&e.keys))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn endpoint_by_id(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(endpoint))
}

/// Endpoints not deleted, of one department or (`None`) of all.
pub async fn endpoints(
    conn: &mut PgConnection,
    department: Option<&str>,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
         WHERE state <> 'deleted' AND ($1::text IS NULL OR department = $1) ORDER BY created_at, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(department)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(endpoint).collect())
}

pub async fn set_keys(
    conn: &mut PgConnection,
    id: Uuid,
    keys: &[StoredKey],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_endpoints SET keys = $2 WHERE id = $1")
        .bind(id)
        .bind(keys_json(keys))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_endpoints SET state = $2, disabled_reason = $3,
           failing_since = CASE WHEN $2 = 'enabled' THEN NULL ELSE failing_since END
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failure; returns since when the endpoint has been failing.
pub async fn failing(conn: &mut PgConnection, id: Uuid) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, now())
         WHERE id = $1 RETURNING failing_since",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

pub async fn succeeded(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A message for an endpoint.
pub struct NewMessage<'a> {
    pub endpoint_id: Uuid,
    pub event_id: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// Sent when due, or kept `skipped` (endpoint disabled) for a replay.
    pub send: bool,
}

/// Records a message once per (endpoint, event) and schedules its send; its id when new.
pub async fn insert_message(
    conn: &mut PgConnection,
    m: &NewMessage<'_>,
) -> Result<Option<String>, sqlx::Error> {
    let id = format!("msg_{}", Uuid::now_v7().simple());
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO webhook_messages (id, endpoint_id, event_id, subject, body, occurred_at, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(m.endpoint_id)
    .bind(m.event_id)
    .bind(m.subject)
    .bind(m.body)
    .bind(m.occurred_at)
    .bind(if m.send { "pending" } else { "skipped" })
    .fetch_optional(&mut *conn)
    .await?;
    if let (Some(id), true) = (&inserted, m.send) {
        let job = NewJob::new(QUEUE, id.clone(), Utc::now()).group(m.endpoint_id.to_string());
        jobs::schedule(conn, &[job]).await?;
    }
    Ok(inserted)
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub endpoint_id: Uuid,
    pub event_id: String,
    pub subject: String,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub round_failures: i32,
    pub last_status: i32,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const MESSAGE_COLUMNS: &str = "id, endpoint_id, event_id, subject, body, state, attempts, \
     round_failures, last_status, last_error, created_at, delivered_at";

fn message(r: &PgRow) -> Message {
    Message {
        id: r.get(0),
        endpoint_id: r.get(1),
        event_id: r.get(2),
        subject: r.get(3),
        body: r.get(4),
        state: r.get(5),
        attempts: r.get(6),
        round_failures: r.get(7),
        last_status: r.get(8),
        last_error: r.get(9),
        created_at: r.get(10),
        delivered_at: r.get(11),
    }
}

pub async fn message_by_id(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(message))
}

pub async fn messages(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
) -> Result<Vec<Message>, sqlx::Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE endpoint_id = $1
         ORDER BY created_at DESC, id DESC LIMIT 1000"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(endpoint_id)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(message).collect())
}

/// Records one attempt and its effect on the message: `state` after it, whether it counts
/// toward the retry schedule.
pub async fn attempted(
    conn: &mut PgConnection,
    m: &Message,
    outcome: &str,
    status: u16,
    detail: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_attempts (message_id, attempt, status, outcome, detail)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&m.id)
    .bind(m.attempts + 1)
    .bind(i32::from(status))
    .bind(outcome)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE webhook_messages SET attempts = attempts + 1, state = $2, last_status = $3,
           last_error = $4,
           round_failures = CASE WHEN $5 = 'retry' OR $5 = 'refused' THEN round_failures + 1 ELSE round_failures END,
           delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
         WHERE id = $1",
    )
    .bind(&m.id)
    .bind(state)
    .bind(i32::from(status))
    .bind(if outcome == "delivered" { "" } else { detail })
    .bind(outcome)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_message_state(
    conn: &mut PgConnection,
    id: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_messages SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(state)
        .execute(conn)
        .await?;
    Ok(())
}

/// Schedules the endpoint's messages since `since` again (not delivered ones unless
/// `include_delivered`), each under a new due-work key; how many.
pub async fn replay(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    since: DateTime<Utc>,
    include_delivered: bool,
) -> Result<u32, sqlx::Error> {
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "UPDATE webhook_messages SET state = 'pending', round_failures = 0, replays = replays + 1
         WHERE endpoint_id = $1 AND occurred_at >= $2 AND subject <> 'webhook.test'
           AND (state IN ('failed', 'skipped') OR ($3 AND state = 'delivered'))
         RETURNING id, replays",
    )
    .bind(endpoint_id)
    .bind(since)
    .bind(include_delivered)
    .fetch_all(&mut *conn)
    .await?;
    let now = Utc::now();
    let jobs: Vec<NewJob> = rows
        .iter()
        .map(|(id, n)| NewJob::new(QUEUE, format!("{id}#{n}"), now).group(endpoint_id.to_string()))
        .collect();
    jobs::schedule(conn, &jobs).await?;
    Ok(u32::try_from(rows.len()).unwrap_or(u32::MAX))
}

/// The enabled endpoints and their filters (the fan-out reads them per event).
pub async fn filters(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, String, Vec<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, state, subjects FROM webhook_endpoints WHERE state IN ('enabled', 'disabled')",
    )
    .fetch_all(conn)
    .await
}
