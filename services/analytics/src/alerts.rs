//! Alerts (风险防控): stored while their condition lasts, listed newest first.

use chrono::{DateTime, Utc};
use redress_proto::{
    analytics::v1 as pb,
    events::v1::{AlertKind, AlertSubject},
};
use redress_runtime::event::timestamp;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub alert_id: Uuid,
    pub kind: String,
    pub dimension: String,
    pub value: String,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub observed: f64,
    pub expected: f64,
    pub threshold: f64,
    pub method: String,
    pub summary: String,
}

/// The kind's enum from its stored name (`spike`, `on_time_rate`, …).
pub fn kind(name: &str) -> AlertKind {
    AlertKind::from_str_name(&format!("ALERT_KIND_{}", name.to_ascii_uppercase()))
        .unwrap_or(AlertKind::Unspecified)
}

impl Stored {
    pub fn subject(&self) -> AlertSubject {
        AlertSubject {
            kind: kind(&self.kind).into(),
            dimension: self.dimension.clone(),
            value: self.value.clone(),
        }
    }

    pub fn into_pb(self) -> pb::Alert {
        pb::Alert {
            alert_id: self.alert_id.to_string(),
            subject: Some(self.subject()),
            raised_at: Some(timestamp(self.raised_at)),
            resolved_at: self.resolved_at.map(timestamp),
            observed: self.observed,
            expected: self.expected,
            threshold: self.threshold,
            method: self.method,
            summary: self.summary,
            window_start: Some(timestamp(self.window_start)),
            window_end: Some(timestamp(self.window_end)),
        }
    }
}

/// Alerts newest first, after the page token's (raised_at, id).
pub async fn list(
    pool: &PgPool,
    open_only: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let (at, id) = after.unwrap_or((DateTime::<Utc>::MAX_UTC, Uuid::max()));
    sqlx::query_as(
        "SELECT * FROM alerts WHERE (raised_at, alert_id) < ($1, $2) \
         AND (NOT $3 OR resolved_at IS NULL) ORDER BY raised_at DESC, alert_id DESC LIMIT $4",
    )
    .bind(at)
    .bind(id)
    .bind(open_only)
    .bind(limit)
    .fetch_all(pool)
    .await
}
