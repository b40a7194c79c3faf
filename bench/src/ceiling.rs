//! What the machine's own NATS and Postgres allow, measured in the same run as the other
//! benchmarks so their figures can be read as a share of it: Postgres transactions of one
//! state + outbox + inbox row each (8 clients, like pgbench -c 8) and batched 50 per
//! transaction; JetStream publishes with every ack in flight, and pull-consume + ack.

use std::time::{Duration, Instant};

use futures::StreamExt;
use redress_runtime::{db::Database, testing::TestEnv};

use crate::report::{Row, write};

static NONE: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
const WINDOW: Duration = Duration::from_secs(5);
const CLIENTS: usize = 8;
const INSERTS: [&str; 3] = [
    "INSERT INTO c_state (id, body) VALUES ($1, $2)",
    "INSERT INTO c_outbox (id, body) VALUES ($1, $2)",
    "INSERT INTO c_inbox (id, body) VALUES ($1, $2)",
];

pub async fn run() -> anyhow::Result<()> {
    let env = TestEnv::new().await;
    let mut rows = Vec::new();
    for batch in [1usize, 50] {
        rows.push(postgres(&env, batch).await?);
    }
    rows.extend(jetstream(&env).await?);
    env.cleanup().await;
    write(
        "ceiling",
        "Ceilings: this machine's Postgres and JetStream, measured in the same run",
        &rows,
    )
}

async fn postgres(env: &TestEnv, batch: usize) -> anyhow::Result<Row> {
    let schema = env.schema("ceiling");
    let db =
        Database::connect(&env.database_url, &schema, "ceiling", CLIENTS as u32, &NONE).await?;
    let pool = db.pool().clone();
    for create in [
        "CREATE TABLE IF NOT EXISTS c_state (id bigint PRIMARY KEY, body bytea NOT NULL)",
        "CREATE TABLE IF NOT EXISTS c_outbox (id bigint PRIMARY KEY, body bytea NOT NULL)",
        "CREATE TABLE IF NOT EXISTS c_inbox (id bigint PRIMARY KEY, body bytea NOT NULL)",
    ] {
        sqlx::query(create).execute(&pool).await?;
    }
    sqlx::query("TRUNCATE c_state, c_outbox, c_inbox")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let pool = pool.clone();
        clients.spawn(async move {
            let mut done = 0usize;
            let body = vec![7u8; 200];
            while started.elapsed() < WINDOW {
                let mut tx = pool.begin().await?;
                for _ in 0..batch {
                    let id = (client * 100_000_000 + done) as i64;
                    for insert in INSERTS {
                        sqlx::query(insert)
                            .bind(id)
                            .bind(&body)
                            .execute(&mut *tx)
                            .await?;
                    }
                    done += 1;
                }
                tx.commit().await?;
            }
            Ok::<usize, sqlx::Error>(done)
        });
    }
    let mut triples = 0;
    while let Some(done) = clients.join_next().await {
        triples += done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Row {
        case: format!(
            "Postgres: state + outbox + inbox rows, {batch} per transaction, {CLIENTS} clients (row triples)"
        ),
        count: triples,
        per_second: triples as f64 / seconds,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    })
}

async fn jetstream(env: &TestEnv) -> anyhow::Result<Vec<Row>> {
    let bus = env.bus().await;
    let js = bus.jetstream();
    let name = bus.stream_name("CEILING");
    let subject = bus.subject("ceiling.x");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    })
    .await?;
    let total = 100_000usize;
    let body = bytes::Bytes::from(vec![7u8; 200]);
    let started = Instant::now();
    let mut acks = Vec::with_capacity(4096);
    for _ in 0..total {
        acks.push(js.publish(subject.clone(), body.clone()).await?);
        if acks.len() == 4096 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    let published = started.elapsed().as_secs_f64();

    let consumer = js
        .get_stream(&name)
        .await?
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("ceiling".into()),
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut messages = consumer.messages().await?.take(total);
    while let Some(message) = messages.next().await {
        message
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ack()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let consumed = started.elapsed().as_secs_f64();
    js.delete_stream(&name).await?;
    let row = |case: &str, seconds: f64| Row {
        case: case.into(),
        count: total,
        per_second: total as f64 / seconds,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    };
    Ok(vec![
        row(
            "JetStream: publishes of 200 bytes, acks in flight",
            published,
        ),
        row("JetStream: pull consume + ack", consumed),
    ])
}
