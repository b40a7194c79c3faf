//! The `models` table: every candidate model with the comparison that decided it, one active
//! row per slot, and the moves between them (promotion, rollback). Every change notifies the
//! replicas (`NOTIFY <schema>_models`, delivered at commit) so they switch engines at once.

use chrono::{DateTime, Utc};
use redress_classifier::Comparison;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::config::Slot;
use crate::store::StoreError;

/// A stored candidate, without its artifact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelRow {
    pub id: Uuid,
    pub version: String,
    pub language: String,
    pub dimension: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub decision: String,
    pub reason: String,
    pub comparison: serde_json::Value,
    pub compared_with: String,
    pub training_examples: i32,
    pub shadow_examples: i32,
    pub trigger: String,
    pub replaces: Option<String>,
}

const COLUMNS: &str = "id, version, language, dimension, status, created_at, decision, reason, \
    comparison, compared_with, training_examples, shadow_examples, trigger, replaces";

impl ModelRow {
    pub fn slot(&self) -> String {
        format!("{}-{}", self.language, self.dimension)
    }

    /// The recorded comparison (`None` if the stored JSON is not one: reported, not hidden).
    pub fn comparison(&self) -> Option<Comparison> {
        serde_json::from_value(self.comparison.clone()).ok()
    }
}

/// An active model with its artifact, as a replica loads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Active {
    pub version: String,
    pub language: String,
    pub dimension: String,
    pub artifact: Vec<u8>,
}

/// The versions active per slot, `(slot, version)` sorted: what a replica compares with what
/// it has installed.
pub async fn active_versions(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut versions: Vec<(String, String)> = sqlx::query_as(
        "SELECT language || '-' || dimension, version FROM models WHERE status = 'active'",
    )
    .fetch_all(pool)
    .await?;
    // Sorted here, as `Live::build` sorts, not by the database's collation.
    versions.sort();
    Ok(versions)
}

/// The active models with their artifacts.
pub async fn active(conn: &mut PgConnection) -> Result<Vec<Active>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, language, dimension, artifact FROM models WHERE status = 'active' \
         ORDER BY language, dimension",
    )
    .fetch_all(conn)
    .await
}

/// Serialises retraining and rollback of one slot across replicas, to the end of the
/// caller's transaction.
pub async fn lock_slot(
    conn: &mut PgConnection,
    schema: &str,
    slot: Slot,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("{schema}.models.{slot}"))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A candidate to record.
pub struct NewModel<'a> {
    pub version: &'a str,
    pub slot: Slot,
    pub artifact: &'a [u8],
    pub comparison: &'a Comparison,
    pub compared_with: &'a str,
    pub training_examples: usize,
    pub trigger: &'a str,
}

/// Records a candidate; when its comparison says promote, it becomes the slot's active model
/// and the one it replaces is retired (kept for rollback). Returns the stored row.
pub async fn record(
    conn: &mut PgConnection,
    schema: &str,
    m: NewModel<'_>,
) -> Result<ModelRow, StoreError> {
    use redress_classifier::Verdict;
    let (decision, status) = match m.comparison.verdict {
        Verdict::Promote => ("promoted", "active"),
        Verdict::KeepCurrent => ("kept_current", "rejected"),
        Verdict::InsufficientEvidence => ("insufficient_evidence", "rejected"),
    };
    let replaces = if status == "active" {
        retire_active(conn, m.slot, "retired").await?
    } else {
        None
    };
    let comparison = serde_json::to_value(m.comparison)
        .map_err(|e| StoreError::Corrupt(format!("comparison of {}: {e}", m.version)))?;
    // The column list is a constant: no outside text in the statement.
    let row: ModelRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO models (id, version, language, dimension, artifact, status, decision, reason, \
           comparison, compared_with, training_examples, shadow_examples, trigger, replaces) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(m.version)
    .bind(m.slot.language_code())
    .bind(m.slot.dimension_name())
    .bind(m.artifact)
    .bind(status)
    .bind(decision)
    .bind(m.comparison.findings.join("; "))
    .bind(comparison)
    .bind(m.compared_with)
    .bind(i32::try_from(m.training_examples).unwrap_or(i32::MAX))
    .bind(i32::try_from(m.comparison.examples).unwrap_or(i32::MAX))
    .bind(m.trigger)
    .bind(&replaces)
    .fetch_one(&mut *conn)
    .await?;
    if status == "active" {
        notify(conn, schema, m.slot).await?;
    }
    Ok(row)
}

/// Marks the slot's active row `status`; returns its version.
async fn retire_active(
    conn: &mut PgConnection,
    slot: Slot,
    status: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE models SET status = $3, status_changed_at = now() \
         WHERE language = $1 AND dimension = $2 AND status = 'active' RETURNING version",
    )
    .bind(slot.language_code())
    .bind(slot.dimension_name())
    .bind(status)
    .fetch_optional(conn)
    .await
}

async fn notify(conn: &mut PgConnection, schema: &str, slot: Slot) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel(schema))
        .bind(slot.to_string())
        .execute(conn)
        .await
        .map(|_| ())
}

/// The channel replicas listen on for model changes.
pub fn channel(schema: &str) -> String {
    format!("{schema}_models")
}

/// Why a rollback cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no model of {0} is active: the configured model is in use, nothing to roll back")]
    NothingActive(Slot),
    #[error("no model {0} of {1}")]
    Unknown(String, Slot),
    #[error(
        "{0} was never promoted (its comparison: {1}); only a model that was active can be again"
    )]
    NeverPromoted(String, String),
    #[error("{0} is already active")]
    AlreadyActive(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RollbackError {
    fn from(e: sqlx::Error) -> Self {
        RollbackError::Store(e.into())
    }
}

/// Makes `to` (a version that was active once) or else the model the active one replaced
/// the slot's active model; the active one is marked `rolled_back`. Returns (now active —
/// `None` for the configured model —, rolled back).
pub async fn rollback(
    conn: &mut PgConnection,
    schema: &str,
    slot: Slot,
    to: Option<&str>,
) -> Result<(Option<String>, Option<String>), RollbackError> {
    lock_slot(conn, schema, slot).await?;
    let active: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT version, replaces FROM models WHERE language = $1 AND dimension = $2 \
         AND status = 'active'",
    )
    .bind(slot.language_code())
    .bind(slot.dimension_name())
    .fetch_optional(&mut *conn)
    .await?;
    let target = match to {
        Some(version) => {
            let found: Option<(String, String)> = sqlx::query_as(
                "SELECT status, reason FROM models WHERE version = $1 AND language = $2 \
                 AND dimension = $3",
            )
            .bind(version)
            .bind(slot.language_code())
            .bind(slot.dimension_name())
            .fetch_optional(&mut *conn)
            .await?;
            match found {
                None => return Err(RollbackError::Unknown(version.into(), slot)),
                Some((status, _)) if status == "active" => {
                    return Err(RollbackError::AlreadyActive(version.into()));
                }
                Some((status, reason)) if status == "rejected" => {
                    return Err(RollbackError::NeverPromoted(version.into(), reason));
                }
                Some(_) => Some(version.to_owned()),
            }
        }
        None => match &active {
            None => return Err(RollbackError::NothingActive(slot)),
            Some((_, replaces)) => replaces.clone(),
        },
    };
    let rolled_back = retire_active(conn, slot, "rolled_back").await?;
    if let Some(version) = &target {
        sqlx::query(
            "UPDATE models SET status = 'active', status_changed_at = now() WHERE version = $1",
        )
        .bind(version)
        .execute(&mut *conn)
        .await?;
    }
    notify(conn, schema, slot).await?;
    Ok((target, rolled_back))
}

/// Models, newest first, optionally of one slot.
pub async fn list(
    pool: &PgPool,
    slot: Option<Slot>,
    pager: &redress_runtime::paging::Pager,
    page_size: u32,
    page_token: &str,
) -> Result<redress_runtime::paging::Page<ModelRow>, StoreError> {
    let size = redress_runtime::paging::page_size(page_size);
    let cursor = pager.decode(page_token)?;
    let rows: Vec<ModelRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM models \
         WHERE ($1::text IS NULL OR (language = $1 AND dimension = $2)) \
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    )))
    .bind(slot.map(|s| s.language_code()))
    .bind(slot.map(|s| s.dimension_name()))
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    Ok(pager.page(rows, size, |r| (r.created_at, r.id), |r| r))
}
