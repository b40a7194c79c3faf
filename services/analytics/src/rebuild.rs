//! `redress-analytics rebuild --from <time>`: every figure computed again from the event
//! streams, through the same write path as the live consumers, into a fresh schema; then
//! swapped in and brought up to date.
//!
//! 1. Replay each stream from `--from` (an ephemeral consumer per stream) into schema
//!    `analytics_rebuild`, each batch in one transaction with its inbox rows, under the live
//!    durable consumers' names.
//! 2. Swap: in one transaction, with the live tables locked (the live consumers wait), the
//!    facts, aggregates and the consumers' inbox rows are replaced by the rebuilt ones.
//! 3. Catch up: replay what was stored after step 1 into the live schema; the inbox skips
//!    what a live consumer applied after the swap, so nothing counts twice.

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use prost::Message as _;
use redress_proto::{
    bus::{CASE_EVENTS, COMPLAINT_EVENTS, INTAKE_REJECTED, NOTIFICATION_EVENTS, StreamSpec},
    events::v1::Event,
};
use redress_runtime::{Bus, Service, StartError, db::Database, inbox};
use secrecy::ExposeSecret;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::{
    Config, MIGRATIONS, SCHEMA, SERVICE,
    cells::Context,
    events::{Ev, from_event},
    store::{self, StoreError},
};

/// The streams analytics reads, with the suffix of the durable consumer that reads each.
pub const SOURCES: [(StreamSpec, &str); 4] = [
    (COMPLAINT_EVENTS, "complaints"),
    (INTAKE_REJECTED, "rejections"),
    (CASE_EVENTS, "cases"),
    (NOTIFICATION_EVENTS, "notifications"),
];

/// The durable consumer (and inbox key) of a source.
pub fn consumer_name(suffix: &str) -> String {
    format!("{SERVICE}-{suffix}")
}

/// Events replayed per transaction.
const BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("--from: {0}")]
    From(String),
    #[error("reading stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RebuildError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// Applies the events not yet in `consumer`'s inbox (each once, even if the batch holds it
/// twice), recording them: the path of a rebuild and of the tests' generated data.
pub async fn apply_new(
    conn: &mut PgConnection,
    ctx: &Context,
    consumer: &str,
    events: &[Ev],
) -> Result<usize, StoreError> {
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut fresh: HashSet<String> = inbox::record_many(conn, consumer, &ids).await?;
    let new: Vec<Ev> = events
        .iter()
        .filter(|e| fresh.remove(&e.id))
        .cloned()
        .collect();
    store::apply(conn, ctx, &new).await?;
    Ok(new.len())
}

/// `--from` as an instant: RFC 3339, or a local date's midnight in the business time zone.
pub fn parse_from(text: &str, ctx: &Context) -> Result<DateTime<Utc>, RebuildError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| RebuildError::From(format!("`{text}` is neither RFC 3339 nor YYYY-MM-DD")))?;
    ctx.tz
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| RebuildError::From(format!("{text} has no midnight in {}", ctx.tz)))
}

/// Where to start reading a stream.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    Time(DateTime<Utc>),
    /// After this stream sequence.
    After(u64),
}

/// Replays one stream from `start` into `pool`'s schema; returns the last sequence read.
pub async fn replay(
    bus: &Bus,
    pool: &PgPool,
    ctx: &Context,
    spec: &StreamSpec,
    suffix: &str,
    start: Start,
) -> Result<u64, RebuildError> {
    let error = |reason: String| RebuildError::Stream {
        stream: spec.name.to_owned(),
        reason,
    };
    let stream = bus
        .ensure_stream(spec)
        .await
        .map_err(|e| error(e.to_string()))?;
    let (deliver_policy, mut last) = match start {
        Start::Time(start_time) => (DeliverPolicy::ByStartTime { start_time }, 0),
        Start::After(seq) => (
            DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
            seq,
        ),
    };
    let mut consumer = stream
        .create_consumer(pull::Config {
            deliver_policy,
            ack_policy: AckPolicy::None,
            filter_subject: bus.subject(spec.subjects.first().copied().unwrap_or(">")),
            inactive_threshold: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| error(e.to_string()))?;
    let mut pending = consumer
        .info()
        .await
        .map_err(|e| error(e.to_string()))?
        .num_pending;
    if pending == 0 && matches!(start, Start::Time(_)) {
        // Nothing since `from`: a catch-up starts after what the stream holds now.
        last = stream.cached_info().state.last_sequence;
    }
    let name = consumer_name(suffix);
    while pending > 0 {
        let mut messages = consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| error(e.to_string()))?;
        let mut events = Vec::with_capacity(BATCH);
        let mut read = 0;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| error(e.to_string()))?;
            read += 1;
            if let Ok(info) = message.info() {
                pending = info.pending;
                last = info.stream_sequence;
            }
            if let Some(ev) = Event::decode(message.payload.as_ref())
                .ok()
                .as_ref()
                .and_then(from_event)
            {
                events.push(ev);
            }
        }
        let mut tx = pool.begin().await?;
        apply_new(&mut tx, ctx, &name, &events).await?;
        tx.commit().await?;
        if read == 0 {
            pending = consumer
                .info()
                .await
                .map_err(|e| error(e.to_string()))?
                .num_pending;
        }
    }
    Ok(last)
}

/// The aggregate tables a swap replaces.
const TABLES: [&str; 3] = ["facts", "cube_day", "cube_month"];

/// Replaces the live schema's figures (and the consumers' inbox rows) with `fresh`'s, in one
/// transaction.
pub async fn swap(live: &PgPool, fresh: &str) -> Result<(), RebuildError> {
    let consumers: Vec<String> = SOURCES.iter().map(|s| consumer_name(s.1)).collect();
    let mut tx = live.begin().await?;
    // The order live consumers take them in (inbox, then facts), so neither waits in a cycle.
    sqlx::query("LOCK TABLE inbox, facts, cube_day, cube_month IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    for table in TABLES {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM {fresh}.{table}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM inbox WHERE consumer = ANY($1)")
        .bind(&consumers)
        .execute(&mut *tx)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO inbox SELECT * FROM {fresh}.inbox WHERE consumer = ANY($1)"
    )))
    .bind(&consumers)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The whole rebuild, as the command runs it.
pub async fn run(config: &Config, ctx: Arc<Context>, from: &str) -> Result<(), StartError> {
    let failed = |e: RebuildError| StartError::config("rebuild", e);
    let from = parse_from(from, &ctx).map_err(failed)?;
    let service = Service::start(
        SERVICE,
        SCHEMA,
        config.runtime.clone(),
        &MIGRATIONS,
        tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    let fresh_schema =
        redress_runtime::db::schema_name(&config.runtime.bus_namespace, "analytics_rebuild");
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {fresh_schema} CASCADE"
    )))
    .execute(service.db.pool())
    .await
    .map_err(|e| failed(e.into()))?;
    let fresh = Database::connect(
        config.runtime.database_url.expose_secret(),
        SCHEMA,
        &fresh_schema,
        config.runtime.db_max_connections,
        &MIGRATIONS,
    )
    .await?;
    let mut last = Vec::new();
    for (spec, suffix) in &SOURCES {
        let seq = replay(
            &service.bus,
            fresh.pool(),
            &ctx,
            spec,
            suffix,
            Start::Time(from),
        )
        .await
        .map_err(failed)?;
        tracing::info!(stream = spec.name, last_sequence = seq, "replayed");
        last.push(seq);
    }
    swap(service.db.pool(), &fresh_schema)
        .await
        .map_err(failed)?;
    for ((spec, suffix), seq) in SOURCES.iter().zip(last) {
        replay(
            &service.bus,
            service.db.pool(),
            &ctx,
            spec,
            suffix,
            Start::After(seq),
        )
        .await
        .map_err(failed)?;
    }
    fresh.pool().close().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {fresh_schema} CASCADE"
    )))
    .execute(service.db.pool())
    .await
    .map_err(|e| failed(e.into()))?;
    tracing::info!("rebuild swapped in");
    Ok(())
}
