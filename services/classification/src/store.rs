//! Classification's records: the current classification, its history, the review queue and
//! specialists' labelled examples.

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_proto::{
    classification::v1::{ComplaintClassification, HistoryEntry},
    common::v1::Actor,
    events::v1::{Classification, ComplaintSummary},
};
use redress_runtime::paging::{self, Page, Pager};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    PageToken(#[from] paging::BadPageToken),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

/// Records the first classification of a complaint; false when it was already classified
/// (a redelivered `received`).
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    complaint: &ComplaintSummary,
    c: &Classification,
    text: &str,
    actor: &Actor,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO classifications (complaint_id, reference, text, language, current, category_code, \
           cause_code, severity, confidence, review_status, version, classified_at, complaint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, now(), $11) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&complaint.reference)
    .bind(text)
    .bind(&c.language)
    .bind(c.encode_to_vec())
    .bind(c.category.as_ref().map(|l| l.code.clone()).unwrap_or_default())
    .bind(c.cause.as_ref().map(|l| l.code.clone()).unwrap_or_default())
    .bind(c.severity)
    .bind(c.confidence as f32)
    .bind(if c.needs_review { "pending" } else { "not_needed" })
    .bind(complaint.encode_to_vec())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    history(conn, id, 1, c, actor, "").await?;
    Ok(true)
}

async fn history(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    c: &Classification,
    actor: &Actor,
    note: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO classification_history (complaint_id, version, classification, actor_subject, actor_role, note) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(version)
    .bind(c.encode_to_vec())
    .bind(&actor.subject)
    .bind(&actor.role)
    .bind(note)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The current record, locked for update when `lock` (inside a transaction).
pub struct Current {
    pub id: Uuid,
    pub version: i32,
    pub classification: Classification,
    pub complaint: ComplaintSummary,
    pub text: String,
    pub language: String,
}

pub async fn current_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Current>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        version: i32,
        current: Vec<u8>,
        complaint: Vec<u8>,
        text: String,
        language: String,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT version, current, complaint, text, language FROM classifications \
         WHERE complaint_id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let corrupt =
        |what: &str, e: prost::DecodeError| StoreError::Corrupt(format!("{id}: {what}: {e}"));
    row.map(|r| {
        Ok(Current {
            id,
            version: r.version,
            classification: Classification::decode(r.current.as_slice())
                .map_err(|e| corrupt("classification", e))?,
            complaint: ComplaintSummary::decode(r.complaint.as_slice())
                .map_err(|e| corrupt("complaint", e))?,
            text: r.text,
            language: r.language,
        })
    })
    .transpose()
}

/// A specialist's override: the new current classification, its history entry and the
/// labelled example, all in the caller's transaction.
pub async fn reclassify(
    conn: &mut PgConnection,
    current: &Current,
    next: &Classification,
    actor: &Actor,
    note: &str,
) -> Result<i32, sqlx::Error> {
    let version = current.version + 1;
    let category = next
        .category
        .as_ref()
        .map(|l| l.code.clone())
        .unwrap_or_default();
    let cause = next
        .cause
        .as_ref()
        .map(|l| l.code.clone())
        .unwrap_or_default();
    sqlx::query(
        "UPDATE classifications SET current = $2, category_code = $3, cause_code = $4, severity = $5, \
           confidence = $6, review_status = 'reviewed', version = $7 WHERE complaint_id = $1",
    )
    .bind(current.id)
    .bind(next.encode_to_vec())
    .bind(&category)
    .bind(&cause)
    .bind(next.severity)
    .bind(next.confidence as f32)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    history(conn, current.id, version, next, actor, note).await?;
    sqlx::query(
        "INSERT INTO training_examples (complaint_id, text, language, category_code, cause_code, labelled_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (complaint_id) DO UPDATE SET category_code = EXCLUDED.category_code, \
           cause_code = EXCLUDED.cause_code, labelled_by = EXCLUDED.labelled_by, labelled_at = now()",
    )
    .bind(current.id)
    .bind(&current.text)
    .bind(&current.language)
    .bind(&category)
    .bind(&cause)
    .bind(&actor.subject)
    .execute(conn)
    .await?;
    Ok(version)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<ComplaintClassification>, StoreError> {
    let row = sqlx::query(
        "SELECT complaint_id, reference, current, review_status, text FROM classifications WHERE complaint_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut item = item(&row)?;
    #[derive(sqlx::FromRow)]
    struct Entry {
        classification: Vec<u8>,
        actor_subject: String,
        actor_role: String,
        at: DateTime<Utc>,
        note: String,
    }
    let history: Vec<Entry> = sqlx::query_as(
        "SELECT classification, actor_subject, actor_role, at, note FROM classification_history \
         WHERE complaint_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    item.history = history
        .into_iter()
        .map(|e| HistoryEntry {
            classification: Classification::decode(e.classification.as_slice()).ok(),
            actor: Some(Actor {
                subject: e.actor_subject,
                role: e.actor_role,
                department: String::new(),
            }),
            at: Some(redress_runtime::event::timestamp(e.at)),
            note: e.note,
        })
        .collect();
    Ok(Some(item))
}

fn item(row: &PgRow) -> Result<ComplaintClassification, StoreError> {
    let current: Vec<u8> = row.try_get("current")?;
    Ok(ComplaintClassification {
        complaint_id: row.try_get::<Uuid, _>("complaint_id")?.to_string(),
        reference: row.try_get("reference")?,
        classification: Classification::decode(current.as_slice()).ok(),
        history: Vec::new(),
        review_status: row.try_get("review_status")?,
        text: row.try_get("text")?,
    })
}

/// Pending reviews, oldest first.
pub async fn review_queue(
    pool: &PgPool,
    pager: &Pager,
    page_size: u32,
    page_token: &str,
) -> Result<Page<ComplaintClassification>, StoreError> {
    let size = paging::page_size(page_size);
    let cursor = pager.decode(page_token)?;
    let rows = sqlx::query(
        "SELECT complaint_id, reference, current, review_status, text, classified_at FROM classifications \
         WHERE review_status = 'pending' \
           AND ($1::timestamptz IS NULL OR (classified_at, complaint_id) > ($1, $2)) \
         ORDER BY classified_at, complaint_id LIMIT $3",
    )
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let mut keyed = Vec::with_capacity(rows.len());
    for row in &rows {
        let at: DateTime<Utc> = row.try_get("classified_at")?;
        let id: Uuid = row.try_get("complaint_id")?;
        keyed.push(((at, id), item(row)?));
    }
    Ok(pager.page(keyed, size, |(key, _)| *key, |(_, item)| item))
}

/// Writes the specialists' labelled examples as CSV (`text,category,cause,language`, the
/// columns `redress classification train` reads); returns how many.
pub async fn export_examples(pool: &PgPool, out: &std::path::Path) -> Result<usize, String> {
    let rows = examples(pool)
        .await
        .map_err(|e| format!("reading the examples: {e}"))?;
    let write = || -> Result<(), csv::Error> {
        let mut writer = csv::Writer::from_path(out)?;
        writer.write_record(["text", "category", "cause", "language"])?;
        for (text, category, cause, language) in &rows {
            writer.write_record([text, category, cause, language])?;
        }
        writer.flush()?;
        Ok(())
    };
    write().map_err(|e| format!("writing {}: {e}", out.display()))?;
    Ok(rows.len())
}

/// Specialists' labelled examples as CSV rows (text, category, cause, language).
pub async fn examples(pool: &PgPool) -> Result<Vec<(String, String, String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT text, category_code, cause_code, language FROM training_examples ORDER BY labelled_at")
        .fetch_all(pool)
        .await
}
