//! Deadline timers: due work in the runtime's job queue (`deadline`), scheduled by
//! `store::commit` from the derived deadlines. Each fires once across replicas and crashes:
//! its `deadline_warning` or `deadline_breached` event, the timeline entry and the job's
//! completion commit together. A timer whose case is locked by a change waits a moment
//! instead of waiting on the lock — the change reschedules the case's timers, and a timer
//! holding its job while waiting for the case would deadlock with it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_proto::events::v1::{CaseDeadlineBreached, CaseDeadlineWarning};
use redress_runtime::{
    NewEvent, OutboxMessage,
    event::{new_event, service_actor, timestamp},
    jobs::{Job, JobError, JobHandler, Outcome},
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE,
    store::{self, Claim, Shared},
};

/// What a timer job carries (see `store::rebuild_timers`).
#[derive(Debug, serde::Deserialize)]
struct Timer {
    case_id: Uuid,
    kind: String,
    deadline: String,
    fraction: f64,
    due_at: DateTime<Utc>,
}

/// Fires deadline timers.
pub struct Deadlines {
    pub shared: Arc<Shared>,
}

impl JobHandler for Deadlines {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        let timer: Timer = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("not a deadline timer: {e}")))?;
        let case = match store::try_lock(conn, timer.case_id).await.map_err(error)? {
            Claim::Locked(case) => case,
            Claim::Busy => {
                return Ok(Outcome::Later(
                    Utc::now() + chrono::Duration::milliseconds(200),
                ));
            }
            Claim::Missing => return Ok(Outcome::Done),
        };
        let header = Some(case.header());
        let due_at = Some(timestamp(timer.due_at));
        let actor = service_actor(SERVICE);
        // A timer changes nothing a caller could be stale about: it keeps the case's version.
        let (name, event): (&str, NewEvent) = if timer.kind == "breach" {
            store::mark_breached(conn, case.id).await.map_err(error)?;
            let payload = CaseDeadlineBreached {
                header,
                deadline: timer.deadline,
                due_at,
            };
            (
                "deadline_breached",
                new_event(SERVICE, case.id.to_string(), case.version, actor, payload),
            )
        } else {
            let payload = CaseDeadlineWarning {
                header,
                fraction: timer.fraction,
                deadline: timer.deadline,
                due_at,
            };
            (
                "deadline_warning",
                new_event(SERVICE, case.id.to_string(), case.version, actor, payload),
            )
        };
        store::record_event(conn, case.id, case.version, name, Utc::now(), None, &event)
            .await
            .map_err(error)?;
        outbox::enqueue(conn, &[OutboxMessage::event(&event)]).await?;
        Ok(Outcome::Done)
    }
}

fn error(error: crate::domain::CaseError) -> JobError {
    match error {
        crate::domain::CaseError::Database(e) => JobError::Database(e),
        other => JobError::Retry(other.to_string()),
    }
}
