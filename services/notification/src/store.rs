//! All SQL: deliveries recorded once per (dedupe key, kind), their status history, attempts
//! committed before each send, specialist tasks, and the cases' non-personal facts.

use chrono::{DateTime, Utc};
use redress_proto::events::v1::{NoticeChannel, NoticeHeader, NoticeKind};
use redress_runtime::{
    event::timestamp,
    jobs::{self, NewJob},
};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::notices::{Notices, kind_from_token, kind_token};

/// The due-work queue deliveries are sent from.
pub const DELIVER: &str = "deliver";

/// A notice an event makes due.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Once-only key: the event id, or `<what>:<case or complaint>` for once-per-case notices.
    pub dedupe_key: String,
    pub kind: NoticeKind,
    pub case_id: String,
    pub complaint_id: String,
    pub department: String,
    /// The time the notice's period runs from.
    pub at: DateTime<Utc>,
    /// When to first try to send it.
    pub send_at: DateTime<Utc>,
    pub facts: serde_json::Value,
}

/// The case's facts this service keeps (no personal data).
#[derive(Debug, Clone, Default)]
pub struct CaseFacts {
    pub case_id: String,
    pub reference: String,
    pub regime: String,
    pub decision_due: Option<DateTime<Utc>>,
}

pub async fn upsert_case(
    conn: &mut PgConnection,
    case_id: &str,
    complaint_id: &str,
    reference: &str,
    regime: &str,
    department: &str,
    decision_due: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, complaint_id, reference, regime, department, decision_due)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (case_id) DO UPDATE SET
           reference = CASE WHEN EXCLUDED.reference = '' THEN cases.reference ELSE EXCLUDED.reference END,
           department = EXCLUDED.department,
           decision_due = COALESCE(EXCLUDED.decision_due, cases.decision_due)",
    )
    .bind(case_id)
    .bind(complaint_id)
    .bind(reference)
    .bind(regime)
    .bind(department)
    .bind(decision_due)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_decision_due(
    conn: &mut PgConnection,
    case_id: &str,
    decision_due: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cases SET decision_due = $2 WHERE case_id = $1")
        .bind(case_id)
        .bind(decision_due)
        .execute(conn)
        .await?;
    Ok(())
}

/// The case by its id, or the latest case of a complaint when `case_id` is empty.
pub async fn case_facts(
    conn: &mut PgConnection,
    case_id: &str,
    complaint_id: &str,
) -> Result<Option<CaseFacts>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT case_id, reference, regime, decision_due FROM cases
         WHERE ($1 <> '' AND case_id = $1) OR ($1 = '' AND complaint_id = $2)
         ORDER BY case_id DESC LIMIT 1",
    )
    .bind(case_id)
    .bind(complaint_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| CaseFacts {
        case_id: r.get(0),
        reference: r.get(1),
        regime: r.get(2),
        decision_due: r.get(3),
    }))
}

/// Records the delivery `trigger` makes due under its regime and schedules its send, in the
/// caller's transaction; `None` when the regime has no such notice, or it was recorded before.
pub async fn record(
    conn: &mut PgConnection,
    notices: &Notices,
    mut trigger: Trigger,
) -> Result<Option<Uuid>, sqlx::Error> {
    let case = case_facts(conn, &trigger.case_id, &trigger.complaint_id).await?;
    let regime = case.as_ref().map_or("", |c| c.regime.as_str());
    let Some((regime, rule)) = notices.rule(regime, trigger.kind) else {
        return Ok(None);
    };
    if let Some(case) = &case {
        if trigger.case_id.is_empty() {
            trigger.case_id.clone_from(&case.case_id);
        }
        if let Some(facts) = trigger.facts.as_object_mut() {
            facts
                .entry("reference")
                .or_insert_with(|| case.reference.clone().into());
        }
    }
    let due_by = rule.due_by(trigger.at, case.as_ref().and_then(|c| c.decision_due));
    let opted_out = !rule.legal && survey_opt_out(conn, &trigger.complaint_id).await?;
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO deliveries (id, dedupe_key, kind, case_id, complaint_id, department, regime,
                                 legal, article, due_by, facts, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (dedupe_key, kind) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(&trigger.dedupe_key)
    .bind(kind_token(trigger.kind))
    .bind(&trigger.case_id)
    .bind(&trigger.complaint_id)
    .bind(&trigger.department)
    .bind(regime)
    .bind(rule.legal)
    .bind(&rule.article)
    .bind(due_by)
    .bind(&trigger.facts)
    .bind(if opted_out { "suppressed" } else { "pending" })
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = inserted else {
        return Ok(None);
    };
    if opted_out {
        add_status(conn, id, "suppressed", "the consumer opted out of surveys").await?;
        return Ok(Some(id));
    }
    add_status(conn, id, "recorded", &rule.article).await?;
    let group = if trigger.case_id.is_empty() {
        &trigger.complaint_id
    } else {
        &trigger.case_id
    };
    jobs::schedule(
        conn,
        &[NewJob::new(DELIVER, id.to_string(), trigger.send_at).group(group.clone())],
    )
    .await?;
    Ok(Some(id))
}

pub async fn survey_opt_out(
    conn: &mut PgConnection,
    complaint_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM survey_opt_outs WHERE complaint_id = $1)")
        .bind(complaint_id)
        .fetch_one(conn)
        .await
}

/// A pending delivery that must not go after all (surveys only: opted out, or answered).
pub async fn suppress(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET state = 'suppressed' WHERE id = $1 AND state = 'pending'")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    add_status(conn, id, "suppressed", reason).await
}

/// Records that a complaint's consumer wants no more surveys, and suppresses the surveys and
/// reminders still pending for them; since when, and whether they had asked before.
pub async fn opt_out(
    conn: &mut PgConnection,
    complaint_id: &str,
    recorded_by: &str,
    channel: &str,
) -> Result<(DateTime<Utc>, bool), sqlx::Error> {
    let inserted: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO survey_opt_outs (complaint_id, recorded_by, channel) VALUES ($1, $2, $3)
         ON CONFLICT (complaint_id) DO NOTHING RETURNING at",
    )
    .bind(complaint_id)
    .bind(recorded_by)
    .bind(channel)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(at) = inserted {
        let pending: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE deliveries SET state = 'suppressed'
             WHERE complaint_id = $1 AND state = 'pending' AND NOT legal
               AND kind IN ('satisfaction_survey', 'satisfaction_reminder')
             RETURNING id",
        )
        .bind(complaint_id)
        .fetch_all(&mut *conn)
        .await?;
        for id in pending {
            add_status(conn, id, "suppressed", "the consumer opted out of surveys").await?;
        }
        return Ok((at, false));
    }
    let at = sqlx::query_scalar("SELECT at FROM survey_opt_outs WHERE complaint_id = $1")
        .bind(complaint_id)
        .fetch_one(conn)
        .await?;
    Ok((at, true))
}

/// The complaint a case is about, when the case's events were seen here.
pub async fn complaint_of(
    conn: &mut PgConnection,
    case_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT complaint_id FROM cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(conn)
        .await
}

pub async fn add_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO delivery_status (delivery_id, status, detail) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(status)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery as the sender needs it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: Uuid,
    pub kind: NoticeKind,
    pub case_id: String,
    pub complaint_id: String,
    pub department: String,
    pub legal: bool,
    pub due_by: Option<DateTime<Utc>>,
    pub facts: serde_json::Value,
    pub state: String,
    pub channel: Option<String>,
}

impl Pending {
    pub fn header(&self, channel: NoticeChannel) -> NoticeHeader {
        NoticeHeader {
            delivery_id: self.id.to_string(),
            case_id: self.case_id.clone(),
            complaint_id: self.complaint_id.clone(),
            kind: self.kind.into(),
            channel: channel.into(),
            department: self.department.clone(),
            due_by: self.due_by.map(timestamp),
        }
    }
}

pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Option<Pending>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, kind, case_id, complaint_id, department, legal, due_by, facts, state, channel
         FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Pending {
        id: r.get(0),
        kind: kind_from_token(r.get::<&str, _>(1)).unwrap_or(NoticeKind::Unspecified),
        case_id: r.get(2),
        complaint_id: r.get(3),
        department: r.get(4),
        legal: r.get(5),
        due_by: r.get(6),
        facts: r.get(7),
        state: r.get(8),
        channel: r.get(9),
    }))
}

/// Attempts recorded before a send and never given an outcome: sends in doubt.
pub async fn unfinished_attempts(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<(i32, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempt, channel, provider FROM attempts
         WHERE delivery_id = $1 AND outcome IS NULL ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Commits an attempt (on its own connection, before the send).
pub async fn begin_attempt(
    pool: &sqlx::PgPool,
    id: Uuid,
    channel: &str,
    provider: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO attempts (delivery_id, attempt, channel, provider)
         SELECT $1, COALESCE(max(attempt), 0) + 1, $2, $3 FROM attempts WHERE delivery_id = $1
         RETURNING attempt",
    )
    .bind(id)
    .bind(channel)
    .bind(provider)
    .fetch_one(pool)
    .await
}

pub async fn finish_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE attempts SET outcome = $3, detail = $4 WHERE delivery_id = $1 AND attempt = $2",
    )
    .bind(id)
    .bind(attempt)
    .bind(outcome)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn attempts(conn: &mut PgConnection, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM attempts WHERE delivery_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// What the proof records of a send.
pub struct Sent<'a> {
    pub channel: &'a str,
    pub language: &'a str,
    pub masked_address: &'a str,
    pub template_id: &'a str,
    pub template_version: u32,
    pub body_sha256: &'a str,
    pub provider: &'a str,
    pub provider_message_id: &'a str,
    pub quiet_hours_overridden: bool,
    pub sent_at: DateTime<Utc>,
}

pub async fn mark_sent(conn: &mut PgConnection, id: Uuid, s: &Sent<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET state = 'sent', channel = $2, language = $3, masked_address = $4,
           template_id = $5, template_version = $6, body_sha256 = $7, provider = $8,
           provider_message_id = $9, quiet_hours_overridden = $10, sent_at = $11
         WHERE id = $1",
    )
    .bind(id)
    .bind(s.channel)
    .bind(s.language)
    .bind(s.masked_address)
    .bind(s.template_id)
    .bind(i32::try_from(s.template_version).unwrap_or(i32::MAX))
    .bind(s.body_sha256)
    .bind(s.provider)
    .bind(s.provider_message_id)
    .bind(s.quiet_hours_overridden)
    .bind(s.sent_at)
    .execute(&mut *conn)
    .await?;
    add_status(conn, id, "sent", s.provider_message_id).await
}

/// Marks a delivery failed for good (or in doubt) and opens a specialist's task for it.
pub async fn mark_failed(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    in_doubt: bool,
) -> Result<(), sqlx::Error> {
    let state = if in_doubt { "in_doubt" } else { "failed" };
    sqlx::query("UPDATE deliveries SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(state)
        .execute(&mut *conn)
        .await?;
    add_status(conn, id, state, reason).await?;
    sqlx::query(
        "INSERT INTO specialist_tasks (delivery_id, reason, in_doubt) VALUES ($1, $2, $3)
         ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(id)
    .bind(reason)
    .bind(in_doubt)
    .execute(conn)
    .await?;
    Ok(())
}

/// Notices sent to a complaint's consumer since `since` (the rate limit).
pub async fn sent_since(
    conn: &mut PgConnection,
    complaint_id: &str,
    since: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE complaint_id = $1 AND sent_at >= $2")
        .bind(complaint_id)
        .bind(since)
        .fetch_one(conn)
        .await
}

/// The queue SMS receipt gaps are polled from.
pub const RECEIPT_POLL: &str = "sms-receipts";

/// Serialises everything done about one provider message id: storing a receipt and recording
/// the send it belongs to, so one of the two always sees the other.
pub async fn lock_message(
    conn: &mut PgConnection,
    provider: &str,
    message_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("sms-receipt:{provider}:{message_id}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery receipt as stored.
pub struct StoredReceipt<'a> {
    pub provider: &'a str,
    pub message_id: &'a str,
    pub status: &'a str,
    pub code: &'a str,
    pub description: &'a str,
    pub reported_at: Option<DateTime<Utc>>,
    pub source: &'a str,
}

/// Stores a receipt unless one with the same (provider, message id, status) came before;
/// whether it is new.
pub async fn insert_receipt(
    conn: &mut PgConnection,
    r: &StoredReceipt<'_>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO sms_receipts (provider, message_id, status, code, description, reported_at, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(r.provider)
    .bind(r.message_id)
    .bind(r.status)
    .bind(r.code)
    .bind(r.description)
    .bind(r.reported_at)
    .bind(r.source)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A stored receipt not yet applied to its delivery: (status, code, reported at, source).
pub type Unapplied = (String, String, Option<DateTime<Utc>>, String);

pub async fn unapplied_receipts(
    conn: &mut PgConnection,
    provider: &str,
    message_id: &str,
) -> Result<Vec<Unapplied>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, code, reported_at, source FROM sms_receipts
         WHERE provider = $1 AND message_id = $2 AND applied_at IS NULL ORDER BY received_at",
    )
    .bind(provider)
    .bind(message_id)
    .fetch_all(conn)
    .await
}

pub async fn mark_receipt_applied(
    conn: &mut PgConnection,
    provider: &str,
    message_id: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sms_receipts SET applied_at = clock_timestamp()
         WHERE provider = $1 AND message_id = $2 AND status = $3",
    )
    .bind(provider)
    .bind(message_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// The delivery a provider's message id was recorded for.
pub async fn delivery_of_message(
    conn: &mut PgConnection,
    provider: &str,
    message_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE provider = $1 AND provider_message_id = $2 LIMIT 1",
    )
    .bind(provider)
    .bind(message_id)
    .fetch_optional(conn)
    .await
}

/// How a delivery was sent: (provider, provider message id, sent at), once it was.
pub async fn sent_via(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(String, String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT provider, provider_message_id, sent_at FROM deliveries
         WHERE id = $1 AND provider IS NOT NULL AND provider_message_id IS NOT NULL
           AND sent_at IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn mark_delivered(
    conn: &mut PgConnection,
    id: Uuid,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET state = 'delivered' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    add_status(conn, id, "delivered", detail).await
}
