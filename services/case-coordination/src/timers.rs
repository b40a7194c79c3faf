//! Deadline timers: every replica polls for due timers; each timer is claimed with
//! `FOR UPDATE SKIP LOCKED` (together with its case's row, so a concurrent change to the case
//! either waits for the firing or makes the firing skip it), and the event it causes, the
//! timeline entry and `fired_at` commit in one transaction. So a timer fires exactly once,
//! with any number of replicas and across crashes: an uncommitted firing leaves it unfired.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use redress_proto::events::v1::{CaseDeadlineBreached, CaseDeadlineWarning, event::Payload};
use redress_runtime::{
    OutboxMessage,
    event::{new_event, service_actor, timestamp},
    outbox,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::CaseError,
    store::{self, Shared},
};

/// Fires due timers until `shutdown`, checking every `poll` (sooner when one is due sooner).
pub async fn run(shared: Arc<Shared>, poll: Duration, shutdown: CancellationToken) {
    loop {
        let wait = match fire_due(&shared, 100).await {
            Ok(fired) if fired > 0 => Duration::ZERO,
            Ok(_) => next_wait(&shared, poll).await,
            Err(error) => {
                tracing::warn!(%error, "firing deadline timers failed; retrying");
                poll
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn next_wait(shared: &Shared, poll: Duration) -> Duration {
    let next: Result<Option<DateTime<Utc>>, _> =
        sqlx::query_scalar("SELECT min(fire_at) FROM timers WHERE fired_at IS NULL")
            .fetch_one(shared.db.pool())
            .await;
    match next {
        Ok(Some(at)) => (at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(poll),
        _ => poll,
    }
}

type Due = (i64, Uuid, String, String, f64, DateTime<Utc>);

/// Fires up to `batch` due timers in one transaction; returns how many fired.
pub async fn fire_due(shared: &Shared, batch: i64) -> Result<usize, CaseError> {
    let mut tx = shared.db.pool().begin().await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT t.id, t.case_id, t.kind, t.deadline, t.fraction, t.due_at \
         FROM timers t JOIN cases c ON c.id = t.case_id \
         WHERE t.fired_at IS NULL AND t.fire_at <= now() \
         ORDER BY t.fire_at, t.id LIMIT $1 \
         FOR UPDATE OF t, c SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let actor = service_actor(SERVICE);
    for (id, case_id, kind, deadline, fraction, due_at) in &due {
        let Some(case) = store::load(&mut tx, *case_id, false).await? else {
            continue;
        };
        let header = Some(store::header(&case));
        let (event_name, payload) = if kind == "breach" {
            sqlx::query(
                "UPDATE cases SET breached_at = coalesce(breached_at, now()) WHERE id = $1",
            )
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
            (
                "deadline_breached",
                Payload::CaseDeadlineBreached(CaseDeadlineBreached {
                    header,
                    deadline: deadline.clone(),
                    due_at: Some(timestamp(*due_at)),
                }),
            )
        } else {
            (
                "deadline_warning",
                Payload::CaseDeadlineWarning(CaseDeadlineWarning {
                    header,
                    fraction: *fraction,
                    deadline: deadline.clone(),
                    due_at: Some(timestamp(*due_at)),
                }),
            )
        };
        // A timer changes nothing a caller could be stale about: it keeps the case's version.
        let event = new_event(
            SERVICE,
            case_id.to_string(),
            case.version,
            actor.clone(),
            payload,
        );
        store::record_event(
            &mut tx,
            *case_id,
            case.version,
            event_name,
            Utc::now(),
            None,
            &event,
        )
        .await?;
        outbox::enqueue(
            &mut tx,
            &[OutboxMessage::event(
                store::subject(&case.department, event_name),
                &event,
            )],
        )
        .await?;
        sqlx::query("UPDATE timers SET fired_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        metrics_fired(due.len());
    }
    Ok(due.len())
}

fn metrics_fired(n: usize) {
    tracing::debug!(fired = n, "deadline timers fired");
}
