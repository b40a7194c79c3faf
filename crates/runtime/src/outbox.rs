//! The transactional outbox: an event is written in the same transaction as the state change
//! that causes it, and a relay publishes it to JetStream afterwards. A crash between commit
//! and publish loses nothing: the row is still there, and the next relay pass publishes it
//! under the same `Nats-Msg-Id`, which JetStream de-duplicates if the first publish landed.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use prost::Message as _;
use sqlx::{PgConnection, postgres::PgListener};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    bus::{Bus, BusError, Outgoing, headers},
    db::Database,
    event::NewEvent,
    telemetry,
};

/// A message waiting to be published.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// Also the `Nats-Msg-Id`: JetStream drops a second publish of the same id.
    pub id: Uuid,
    /// The contract subject (the relay applies the namespace).
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl OutboxMessage {
    /// An event envelope on its payload's subject, with the headers of the bus contract and
    /// the current trace context.
    pub fn event(event: &NewEvent) -> Self {
        let mut headers = vec![
            (
                headers::CONTENT_TYPE.to_owned(),
                headers::PROTOBUF.to_owned(),
            ),
            (
                headers::EVENT_TYPE.to_owned(),
                event.event_type().to_owned(),
            ),
        ];
        headers.extend(telemetry::current_trace_headers());
        Self {
            id: event.uuid(),
            subject: event.subject(),
            headers,
            payload: event.encode_to_vec(),
        }
    }

    /// Any other message (e.g. a reply-less notice to a channel).
    pub fn raw(
        subject: impl Into<String>,
        headers: Vec<(String, String)>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            subject: subject.into(),
            headers,
            payload,
        }
    }
}

impl From<OutboxMessage> for Outgoing {
    fn from(message: OutboxMessage) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(headers::MSG_ID, message.id.to_string().as_str());
        for (name, value) in &message.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        Outgoing {
            subject: message.subject,
            headers,
            payload: Bytes::from(message.payload),
        }
    }
}

/// Adds messages to the outbox inside the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    messages: &[OutboxMessage],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    let headers: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| serde_json::json!(m.headers))
        .collect();
    let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload.as_slice()).collect();
    sqlx::query(
        "INSERT INTO outbox (id, subject, headers, payload) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::bytea[])",
    )
    .bind(ids)
    .bind(subjects)
    .bind(headers)
    .bind(payloads)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox query failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] BusError),
}

/// Publishes outbox rows to JetStream in order. Replicas may each run one: a transaction-level
/// advisory lock lets one of them relay at a time, which keeps the order of events.
#[derive(Clone)]
pub struct Relay {
    service: &'static str,
    db: Database,
    bus: Bus,
    batch: i64,
    poll: Duration,
}

type Row = (i64, Uuid, String, serde_json::Value, Vec<u8>);

impl Relay {
    pub fn new(service: &'static str, db: Database, bus: Bus) -> Self {
        Self {
            service,
            db,
            bus,
            batch: 500,
            poll: Duration::from_secs(1),
        }
    }

    /// Relays until `shutdown`, then publishes what is left once more before returning.
    pub async fn run(self, shutdown: CancellationToken) {
        let channel = format!("{}_outbox", self.db.schema());
        let mut listener = self.listen(&channel).await;
        let mut last_purge = Instant::now();
        loop {
            if let Err(error) = self.publish_pending().await {
                tracing::warn!(%error, "outbox relay pass failed; retrying");
            }
            if last_purge.elapsed() > Duration::from_secs(600) {
                self.purge().await;
                last_purge = Instant::now();
            }
            let woken = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                result = woken => if result.is_err() {
                    // The LISTEN connection broke: fall back to polling until it is back.
                    listener = self.listen(&channel).await;
                },
                _ = tokio::time::sleep(self.poll) => self.record_lag().await,
            }
        }
        if let Err(error) = self.publish_pending().await {
            tracing::error!(%error, "outbox not flushed at shutdown; the next start publishes it");
        }
    }

    async fn listen(&self, channel: &str) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(self.db.pool()).await.ok()?;
        listener.listen(channel).await.ok()?;
        Some(listener)
    }

    /// Publishes every pending row; returns how many went out.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let (published, more) = self.publish_batch().await?;
            total += published;
            if !more {
                return Ok(total);
            }
        }
    }

    async fn publish_batch(&self) -> Result<(usize, bool), RelayError> {
        let mut tx = self.db.pool().begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(format!("{}.outbox", self.db.schema()))
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok((0, false));
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, id, subject, headers, payload FROM outbox \
             WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok((0, false));
        }
        let full = rows.len() as i64 == self.batch;
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let messages = rows.into_iter().map(to_outgoing).collect();
        let (stored, failure) = self.bus.publish_all(messages).await;
        sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
            .bind(&seqs[..stored])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("redress_outbox_published_total", "service" => self.service)
            .increment(stored as u64);
        match failure {
            Some(error) => Err(error.into()),
            None => Ok((stored, full)),
        }
    }

    async fn record_lag(&self) {
        let lag: Result<(i64, f64), _> = sqlx::query_as(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0) \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(self.db.pool())
        .await;
        if let Ok((pending, age)) = lag {
            metrics::gauge!("redress_outbox_pending", "service" => self.service)
                .set(pending as f64);
            metrics::gauge!("redress_outbox_oldest_seconds", "service" => self.service).set(age);
        }
    }

    /// Published rows are kept a day for inspection, then removed.
    async fn purge(&self) {
        let result =
            sqlx::query("DELETE FROM outbox WHERE published_at < now() - interval '1 day'")
                .execute(self.db.pool())
                .await;
        if let Err(error) = result {
            tracing::warn!(%error, "outbox purge failed");
        }
    }
}

fn to_outgoing((_, id, subject, header_json, payload): Row) -> Outgoing {
    let mut headers = HeaderMap::new();
    headers.insert(headers::MSG_ID, id.to_string().as_str());
    let pairs: Vec<(String, String)> = match serde_json::from_value(header_json) {
        Ok(pairs) => pairs,
        Err(error) => {
            // Written by `enqueue` from a Vec of pairs: unreadable means the row was changed
            // by hand. The message still goes out (it is the event); the loss is said.
            tracing::error!(%error, %id, "outbox row has unreadable headers; publishing without them");
            Vec::new()
        }
    };
    for (name, value) in pairs {
        headers.insert(name.as_str(), value.as_str());
    }
    Outgoing {
        subject,
        headers,
        payload: Bytes::from(payload),
    }
}
