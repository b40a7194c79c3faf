//! The runtime's delivery path: a producer commits state + outbox rows, the relay publishes
//! them to JetStream, a durable consumer applies them with an inbox row each. Latency is from
//! the producer's commit to the consumer's commit.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redress_proto::events::v1::ComplaintWithdrawn;
use redress_runtime::{
    ConsumerSpec, Delivery, HandleError, Handler, OutboxMessage, bus, consumer,
    db::Database,
    event::{from_timestamp, new_event, service_actor},
    outbox::{self, Relay},
    testing::TestEnv,
};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use crate::report::{Row, percentiles, write};

static NONE: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

struct Apply {
    latencies: Arc<Mutex<Vec<f64>>>,
}

impl Handler for Apply {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let event = delivery.event()?;
        sqlx::query("INSERT INTO applied (id) VALUES ($1)")
            .bind(&event.id)
            .execute(conn)
            .await?;
        if let Some(at) = event.occurred_at.as_ref().and_then(from_timestamp) {
            let ms = (chrono::Utc::now() - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            if let Ok(mut l) = self.latencies.lock() {
                l.push(ms);
            }
        }
        Ok(())
    }
}

pub async fn run() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    // Saturation: eight writers as fast as they can.
    for (batch, total) in [(1usize, 3_000usize), (50, 30_000)] {
        rows.push(one(batch, total, None).await?);
    }
    // Latency below saturation: one writer at a fixed rate of transactions.
    rows.push(one(1, 2_000, Some(200)).await?);
    rows.push(one(50, 20_000, Some(40)).await?);
    write(
        "runtime",
        "Runtime: outbox → JetStream → inbox, one hop (commit to consumed)",
        &rows,
    )
}

// Long on purpose: a benchmark reads best as one script: set up, load, measure, report.
async fn one(batch: usize, total: usize, rate: Option<u32>) -> anyhow::Result<Row> {
    let env = TestEnv::new().await;
    let producer = Database::connect(
        &env.database_url,
        "bench_producer",
        "bench_producer",
        8,
        &NONE,
    )
    .await?;
    sqlx::query("CREATE TABLE state (id text PRIMARY KEY)")
        .execute(producer.pool())
        .await?;
    let consumer_db = Database::connect(
        &env.database_url,
        "bench_consumer",
        "bench_consumer",
        8,
        &NONE,
    )
    .await?;
    sqlx::query("CREATE TABLE applied (id text PRIMARY KEY)")
        .execute(consumer_db.pool())
        .await?;
    let bus = env.bus().await;
    bus.ensure_streams(&[bus::COMPLAINT_EVENTS, bus::DLQ])
        .await?;

    let stop = CancellationToken::new();
    let relay = tokio::spawn(Relay::new("bench", producer.clone(), bus.clone()).run(stop.clone()));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut tuning = env.runtime_config().consumer;
    tuning.batch = batch;
    let spec = ConsumerSpec {
        service: "bench".into(),
        durable: "bench".into(),
        stream: bus::COMPLAINT_EVENTS,
        filter_subject: "redress.complaint.v1.>".into(),
        inbox: true,
        settle: Duration::ZERO,
        tuning,
        seal: None,
    };
    let consuming = tokio::spawn(consumer::run(
        env.bus().await,
        consumer_db.clone(),
        spec,
        Arc::new(Apply {
            latencies: latencies.clone(),
        }),
        stop.clone(),
    ));

    let started = Instant::now();
    let writers = if rate.is_some() { 1 } else { 8 };
    let mut tasks = Vec::new();
    for w in 0..writers {
        let producer = producer.clone();
        let mut ticker =
            rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r))));
        tasks.push(tokio::spawn(async move {
            let mut n = w * batch;
            while n < total {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let mut tx = producer.pool().begin().await?;
                let mut messages = Vec::with_capacity(batch);
                for i in n..(n + batch).min(total) {
                    sqlx::query("INSERT INTO state (id) VALUES ($1)")
                        .bind(i.to_string())
                        .execute(&mut *tx)
                        .await?;
                    let event = new_event(
                        "bench",
                        i.to_string(),
                        1,
                        service_actor("bench"),
                        ComplaintWithdrawn::default(),
                    );
                    messages.push(OutboxMessage::event(&event));
                }
                outbox::enqueue(&mut tx, &messages).await?;
                tx.commit().await?;
                n += writers * batch;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while latencies.lock().map(|l| l.len()).unwrap_or(0) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = relay.await;
    let _ = consuming.await;
    let samples = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let count = samples.len();
    let (p50, p99) = percentiles(samples);
    env.cleanup().await;
    Ok(Row {
        case: match rate {
            None => {
                format!("saturation: {batch} per transaction, 8 writers, consumer batch {batch}")
            }
            Some(r) => format!(
                "fixed rate: {} events/s ({r} tx/s of {batch}), consumer batch {batch}",
                r as usize * batch
            ),
        },
        count,
        per_second: count as f64 / elapsed,
        p50_ms: p50,
        p99_ms: p99,
    })
}
