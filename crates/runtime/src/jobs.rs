//! Due work: rows that become due at a time, each run exactly once across replicas and
//! restarts — deadline timers, deliveries, reminders.
//!
//! A job is claimed with `FOR UPDATE SKIP LOCKED` in a transaction; its handler's effects,
//! the events it puts in the outbox and the job's completion commit together, so a crash
//! before the commit leaves the job due and a second replica never sees it while the first
//! holds it. A failing job is retried on its queue's schedule (with jitter); after the last
//! attempt it is marked failed and its handler's `failed` runs in the same transaction, so
//! a final failure is never silent.
//!
//! ```text
//! schedule(conn, [NewJob])        idempotent by (queue, key); revives a cancelled job
//! cancel_group(conn, queue, grp)  cancels a group's pending jobs (a case's timers)
//! Queue::new(name, handler)       what runs them; Service::spawn_jobs runs it
//! ```

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::db::Database;

/// A job as its handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub queue: String,
    pub key: String,
    pub group: String,
    pub payload: serde_json::Value,
    pub due_at: DateTime<Utc>,
    /// 1 on the first run.
    pub attempt: u32,
}

/// A job to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub queue: String,
    pub key: String,
    pub group: String,
    pub payload: serde_json::Value,
    pub due_at: DateTime<Utc>,
}

impl NewJob {
    pub fn new(queue: &str, key: impl Into<String>, due_at: DateTime<Utc>) -> Self {
        Self {
            queue: queue.to_owned(),
            key: key.into(),
            group: String::new(),
            payload: serde_json::Value::Null,
            due_at,
        }
    }

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }
}

/// What became of a run that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Not now (what it needs is busy): run again at this time, not counted as an attempt.
    Later(DateTime<Utc>),
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying on the queue's schedule.
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help: fail the job now.
    #[error("{0}")]
    Permanent(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs the jobs of one queue inside the claiming transaction.
pub trait JobHandler: Send + Sync + 'static {
    fn run(
        &self,
        conn: &mut PgConnection,
        job: &Job,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send;

    /// After the last attempt failed, in the transaction that marks the job failed: raise
    /// the event or the task that says so.
    fn failed(
        &self,
        conn: &mut PgConnection,
        job: &Job,
        reason: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let _ = (conn, job, reason);
        async { Ok(()) }
    }
}

/// When failed runs are retried.
#[derive(Debug, Clone, PartialEq)]
pub enum RetrySchedule {
    /// `first`, doubling up to `max`, for `attempts` runs in all.
    Exponential {
        first: Duration,
        max: Duration,
        attempts: u32,
    },
    /// The delays before the 2nd, 3rd, … run (svix-style schedules); runs = delays + 1.
    Fixed(Vec<Duration>),
}

impl RetrySchedule {
    pub fn attempts(&self) -> u32 {
        match self {
            RetrySchedule::Exponential { attempts, .. } => *attempts,
            RetrySchedule::Fixed(delays) => u32::try_from(delays.len()).unwrap_or(u32::MAX - 1) + 1,
        }
    }

    /// The delay after run `attempt` failed, with up to ±20 % jitter drawn from `seed` so
    /// many jobs that failed together do not all come back at once.
    pub fn delay(&self, attempt: u32, seed: i64) -> Duration {
        let base = match self {
            RetrySchedule::Exponential { first, max, .. } => first
                .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
                .min(*max),
            RetrySchedule::Fixed(delays) => delays
                .get(attempt.saturating_sub(1) as usize)
                .or(delays.last())
                .copied()
                .unwrap_or_default(),
        };
        let spread = (seed.unsigned_abs().wrapping_mul(2_654_435_761) % 41) as f64 / 100.0 - 0.2;
        base.mul_f64(1.0 + spread)
    }
}

/// A queue of due work and what runs it.
pub struct Queue<H> {
    pub name: &'static str,
    pub handler: Arc<H>,
    pub retry: RetrySchedule,
    /// Jobs claimed per transaction.
    pub batch: i64,
    /// How often to look when nothing is due sooner.
    pub poll: Duration,
}

impl<H: JobHandler> Queue<H> {
    pub fn new(name: &'static str, handler: H) -> Self {
        Self {
            name,
            handler: Arc::new(handler),
            retry: RetrySchedule::Exponential {
                first: Duration::from_secs(5),
                max: Duration::from_secs(3600),
                attempts: 8,
            },
            batch: 100,
            poll: Duration::from_secs(1),
        }
    }

    pub fn retry(mut self, retry: RetrySchedule) -> Self {
        self.retry = retry;
        self
    }

    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub fn batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }
}

/// Schedules jobs in the caller's transaction. A job already pending, done or failed under
/// the same (queue, key) is left as it is; a cancelled one is revived with the new time.
pub async fn schedule(conn: &mut PgConnection, jobs: &[NewJob]) -> Result<(), sqlx::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&NewJob) -> String| jobs.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO jobs (queue, key, grp, payload, due_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[]) \
         ON CONFLICT (queue, key) DO UPDATE SET state = 'pending', due_at = EXCLUDED.due_at, \
           payload = EXCLUDED.payload, grp = EXCLUDED.grp, attempts = 0, last_error = NULL, \
           finished_at = NULL \
         WHERE jobs.state = 'cancelled'",
    )
    .bind(column(|j| j.queue.clone()))
    .bind(column(|j| j.key.clone()))
    .bind(column(|j| j.group.clone()))
    .bind(jobs.iter().map(|j| j.payload.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.due_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels every pending job of `group` in `queue`; returns how many.
pub async fn cancel_group(
    conn: &mut PgConnection,
    queue: &str,
    group: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = now() \
         WHERE queue = $1 AND grp = $2 AND state = 'pending'",
    )
    .bind(queue)
    .bind(group)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Runs the queue's due jobs until `shutdown`.
pub async fn run<H: JobHandler>(
    service: &'static str,
    db: Database,
    queue: Queue<H>,
    shutdown: CancellationToken,
) {
    loop {
        let wait = match run_due(service, &db, &queue).await {
            Ok(ran) if ran as i64 >= queue.batch => Duration::ZERO,
            Ok(_) => next_wait(&db, &queue).await,
            Err(error) => {
                tracing::warn!(%error, queue = queue.name, "running due jobs failed; retrying");
                queue.poll
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn next_wait<H>(db: &Database, queue: &Queue<H>) -> Duration {
    let next: Result<Option<DateTime<Utc>>, _> =
        sqlx::query_scalar("SELECT min(due_at) FROM jobs WHERE queue = $1 AND state = 'pending'")
            .bind(queue.name)
            .fetch_one(db.pool())
            .await;
    match next {
        Ok(Some(at)) => (at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(queue.poll),
        _ => queue.poll,
    }
}

type Row = (
    i64,
    String,
    String,
    String,
    serde_json::Value,
    DateTime<Utc>,
    i32,
);

/// Claims and runs up to one batch of due jobs in one transaction; returns how many ran.
pub async fn run_due<H: JobHandler>(
    service: &'static str,
    db: &Database,
    queue: &Queue<H>,
) -> Result<usize, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, queue, key, grp, payload, due_at, attempts FROM jobs \
         WHERE queue = $1 AND state = 'pending' AND due_at <= now() \
         ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(queue.name)
    .bind(queue.batch)
    .fetch_all(&mut *tx)
    .await?;
    let count = rows.len();
    for (id, name, key, group, payload, due_at, attempts) in rows {
        let job = Job {
            id,
            queue: name,
            key,
            group,
            payload,
            due_at,
            attempt: u32::try_from(attempts).unwrap_or(0) + 1,
        };
        // Each job in a savepoint: one that fails leaves the others' effects standing.
        let mut savepoint = tx.begin().await?;
        let result = queue.handler.run(&mut savepoint, &job).await;
        let outcome = match result {
            Ok(outcome) => {
                savepoint.commit().await?;
                Ok(outcome)
            }
            Err(error) => {
                savepoint.rollback().await?;
                Err(error)
            }
        };
        settle(&mut tx, service, queue, &job, outcome).await?;
    }
    tx.commit().await?;
    Ok(count)
}

async fn settle<H: JobHandler>(
    conn: &mut PgConnection,
    service: &'static str,
    queue: &Queue<H>,
    job: &Job,
    outcome: Result<Outcome, JobError>,
) -> Result<(), sqlx::Error> {
    let label = match outcome {
        Ok(Outcome::Done) => {
            sqlx::query(
                "UPDATE jobs SET state = 'done', attempts = attempts + 1, finished_at = now() WHERE id = $1",
            )
            .bind(job.id)
            .execute(&mut *conn)
            .await?;
            "done"
        }
        Ok(Outcome::Later(at)) => {
            sqlx::query("UPDATE jobs SET due_at = $2 WHERE id = $1")
                .bind(job.id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            "later"
        }
        Err(JobError::Database(error)) if is_connection_error(&error) => return Err(error),
        Err(error) => {
            let reason = error.to_string();
            let last =
                matches!(error, JobError::Permanent(_)) || job.attempt >= queue.retry.attempts();
            if last {
                sqlx::query(
                    "UPDATE jobs SET state = 'failed', attempts = attempts + 1, last_error = $2, \
                     finished_at = now() WHERE id = $1",
                )
                .bind(job.id)
                .bind(&reason)
                .execute(&mut *conn)
                .await?;
                queue.handler.failed(conn, job, &reason).await?;
                tracing::error!(queue = queue.name, key = %job.key, attempts = job.attempt, %reason, "job failed for good");
                "failed"
            } else {
                let delay = queue.retry.delay(job.attempt, job.id);
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                sqlx::query(
                    "UPDATE jobs SET attempts = attempts + 1, last_error = $2, due_at = $3 WHERE id = $1",
                )
                .bind(job.id)
                .bind(&reason)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                tracing::warn!(queue = queue.name, key = %job.key, attempt = job.attempt, %reason, "job failed; will retry");
                "retry"
            }
        }
    };
    metrics::counter!("redress_jobs_total", "service" => service, "queue" => queue.name, "outcome" => label)
        .increment(1);
    Ok(())
}

pub(crate) fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_back_off_with_bounded_jitter() {
        let exp = RetrySchedule::Exponential {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
            attempts: 5,
        };
        assert_eq!(exp.attempts(), 5);
        for seed in 0..100 {
            let d = exp.delay(3, seed).as_secs_f64();
            assert!((3.2..=4.8).contains(&d), "{d}");
            let capped = exp.delay(30, seed).as_secs_f64();
            assert!((8.0..=12.0).contains(&capped), "{capped}");
        }
        let fixed = RetrySchedule::Fixed(vec![Duration::from_secs(5), Duration::from_secs(300)]);
        assert_eq!(fixed.attempts(), 3);
        let d = fixed.delay(2, 7).as_secs_f64();
        assert!((240.0..=360.0).contains(&d), "{d}");
        assert!(fixed.delay(9, 7) <= Duration::from_secs(360));
    }
}
