//! Violations: the rules judged over the log as it grows and on a timer, raised once each as
//! `redress.audit.v1.violation.<rule>` with a row on the worklist, in the transaction that
//! logged the event (or ran the timer).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_proto::events::v1::{ContactRead, Event, ViolationDetected, event::Payload};
use redress_runtime::{
    OutboxMessage,
    event::{service_actor, timestamp},
    jobs::{self, Job, JobError, JobHandler, NewJob, Outcome as JobOutcome},
    new_event, outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE,
    rules::{Facts, Finding, Rules, evaluate},
};

/// The queue of "judge this complaint again" timers.
pub const QUEUE: &str = "audit-rules";

/// The rules and how long to wait for events still on their way before judging an absence.
#[derive(Debug)]
pub struct Judge {
    pub rules: Rules,
    pub settle: Duration,
}

impl Judge {
    /// After an event was logged: judge its complaint (and count a read of contact details).
    pub async fn logged(&self, conn: &mut PgConnection, event: &Event) -> Result<u64, sqlx::Error> {
        if event.source == SERVICE {
            return Ok(0);
        }
        let mut raised = 0;
        if let Some(Payload::ContactRead(read)) = event.payload.as_ref() {
            raised += self.count_read(conn, event, read).await?;
        }
        let Some(complaint) = complaint_of(event) else {
            return Ok(raised);
        };
        Ok(raised + self.judge(conn, &complaint, Utc::now()).await?)
    }

    /// Judges every rule over a complaint's logged events at `now`; raises what is new and
    /// schedules a timer for each absence not yet settled. Returns how many were raised.
    pub async fn judge(
        &self,
        conn: &mut PgConnection,
        complaint: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let leaves: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT leaf FROM log_entries WHERE complaint_id = $1 AND stream <> 'DLQ'
             ORDER BY leaf_index",
        )
        .bind(complaint)
        .fetch_all(&mut *conn)
        .await?;
        let events = leaves
            .iter()
            .filter_map(|leaf| Event::decode(leaf.as_slice()).ok())
            .filter(|e| e.source != SERVICE)
            .collect();
        let outcome = evaluate(&self.rules, &Facts { events }, now, self.settle);
        let mut wake = outcome.wake;
        wake.sort();
        wake.dedup();
        let timers: Vec<NewJob> = wake
            .into_iter()
            .map(|at| {
                NewJob::new(QUEUE, format!("{complaint}@{}", at.to_rfc3339()), at)
                    .group(complaint.to_owned())
                    .payload(serde_json::json!({ "complaint_id": complaint }))
            })
            .collect();
        jobs::schedule(conn, &timers).await?;
        raise(conn, &self.rules, &outcome.findings).await
    }

    /// contact_read_volume: more reads by one reader in the 24 hours up to this one than the
    /// policy allows (one violation per reader and day).
    async fn count_read(
        &self,
        conn: &mut PgConnection,
        event: &Event,
        read: &ContactRead,
    ) -> Result<u64, sqlx::Error> {
        let reader = read.reader.as_ref().map_or("", |r| r.subject.as_str());
        let read_at = crate::rules::evaluate::at(event);
        sqlx::query(
            "INSERT INTO contact_reads (event_id, reader, read_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(&event.id)
        .bind(reader)
        .bind(read_at)
        .execute(&mut *conn)
        .await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM contact_reads
             WHERE reader = $1 AND read_at > $2 - interval '24 hours' AND read_at <= $2",
        )
        .bind(reader)
        .bind(read_at)
        .fetch_one(&mut *conn)
        .await?;
        let max = i64::from(self.rules.max_reads_per_day);
        if count <= max {
            return Ok(0);
        }
        let finding = Finding {
            rule: "contact_read_volume",
            subject: format!("{reader}:{}", read_at.date_naive()),
            case_id: String::new(),
            complaint_id: read.complaint_id.clone(),
            detail: format!(
                "{reader} read contact details {count} times in 24 hours (at most {max})"
            ),
            evidence: vec![event.id.clone()],
            due_at: None,
        };
        raise(conn, &self.rules, &[finding]).await
    }
}

/// The complaint an event is about, if any (what the log filed it under).
fn complaint_of(event: &Event) -> Option<String> {
    let (_, complaint) = crate::ingest::about(event);
    complaint.filter(|c| !c.is_empty())
}

/// Raises the findings not raised before (one per rule and subject); returns how many.
pub async fn raise(
    conn: &mut PgConnection,
    rules: &Rules,
    findings: &[Finding],
) -> Result<u64, sqlx::Error> {
    let mut raised = 0;
    for finding in findings {
        let Some(rule) = rules.get(finding.rule) else {
            tracing::error!(rule = finding.rule, "a rule the file does not hold fired");
            continue;
        };
        let id = Uuid::now_v7();
        let detected = ViolationDetected {
            violation_id: id.to_string(),
            rule: rule.id.clone(),
            article: rule.article.clone(),
            severity: rule.severity.into(),
            owner: rule.owner.clone(),
            case_id: finding.case_id.clone(),
            complaint_id: finding.complaint_id.clone(),
            detail: finding.detail.clone(),
            evidence: finding.evidence.clone(),
            due_at: finding.due_at.map(timestamp),
        };
        let inserted = sqlx::query(
            "INSERT INTO violations (violation_id, rule, subject, case_id, complaint_id, detected)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rule, subject) DO NOTHING",
        )
        .bind(id)
        .bind(finding.rule)
        .bind(&finding.subject)
        .bind(&finding.case_id)
        .bind(&finding.complaint_id)
        .bind(detected.encode_to_vec())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            let event = new_event(SERVICE, id.to_string(), 1, service_actor(SERVICE), detected);
            outbox::enqueue(conn, &[OutboxMessage::event(&event)]).await?;
            raised += 1;
        }
    }
    Ok(raised)
}

/// Runs the timers: judges the complaint again now.
pub struct Timers(pub Arc<Judge>);

impl JobHandler for Timers {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<JobOutcome, JobError> {
        let complaint = job
            .payload
            .get("complaint_id")
            .and_then(|c| c.as_str())
            .ok_or_else(|| JobError::Permanent("payload has no complaint_id".into()))?;
        self.0.judge(conn, complaint, Utc::now()).await?;
        Ok(JobOutcome::Done)
    }
}

/// A violation as the worklist stores it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub violation_id: Uuid,
    pub detected: Vec<u8>,
    pub detected_at: DateTime<Utc>,
    pub state: String,
    pub acknowledged_by: String,
    pub resolved_by: String,
    pub resolution: String,
}

impl Row {
    pub fn into_proto(self) -> redress_proto::audit::v1::Violation {
        redress_proto::audit::v1::Violation {
            detected: ViolationDetected::decode(self.detected.as_slice()).ok(),
            state: self.state,
            detected_at: Some(timestamp(self.detected_at)),
            acknowledged_by: self.acknowledged_by,
            resolved_by: self.resolved_by,
            resolution: self.resolution,
        }
    }

    pub fn detected(&self) -> ViolationDetected {
        ViolationDetected::decode(self.detected.as_slice()).unwrap_or_default()
    }
}
