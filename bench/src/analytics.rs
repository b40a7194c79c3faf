//! Analytics: ingest (events/s) through the write path and through the service over
//! JetStream, and `Breakdown` latency over a year of 1M complaints — beside this machine's
//! Postgres ceilings measured in the same run (the inbox rows alone for the same events; a
//! bare scan of the same cube).

use std::time::{Duration, Instant};

use redress_analytics::{
    Config, MIGRATIONS, SCHEMA, config::AnalyticsConfig, context, events::from_event, query,
    rebuild,
};
use redress_proto::analytics::v1::Grain;
use redress_runtime::{Exit, db::Database, inbox, testing::TestEnv};
use tokio_util::sync::CancellationToken;

use crate::report::{Row, percentiles, write};

/// The equality test's generator (`services/analytics/tests/support`), so the benchmark
/// ingests the same shape of histories the figures are checked on.
#[path = "../../services/analytics/tests/support/mod.rs"]
mod generated;

const COMPLAINTS: usize = 20_000;
const BATCH: usize = 1000;
const YEAR_COMPLAINTS: i64 = 1_000_000;
const RUNS: usize = 60;

pub async fn run() -> anyhow::Result<()> {
    let env = TestEnv::new().await;
    let raw = generated::generate(5, COMPLAINTS, generated::start_2026(), 181);
    let envelopes: Vec<_> = raw.iter().map(generated::envelope).collect();
    let events: Vec<_> = envelopes.iter().filter_map(from_event).collect();
    let mut rows = vec![inbox_ceiling(&env, &events).await?];
    rows.push(write_path(&env, "in order", &events).await?);
    let mut shuffled = events.clone();
    let mut rng = generated::Rng::new(3);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    rows.push(write_path(&env, "shuffled", &shuffled).await?);
    rows.push(service(&env, &envelopes).await?);
    rows.extend(breakdowns(&env).await?);
    env.cleanup().await;
    write(
        "analytics",
        "Analytics: ingest and Breakdown, beside Postgres ceilings measured in the same run",
        &rows,
    )
}

async fn fresh(env: &TestEnv, name: &str) -> anyhow::Result<Database> {
    Ok(Database::connect(&env.database_url, SCHEMA, &env.schema(name), 4, &MIGRATIONS).await?)
}

fn rate(case: String, count: usize, started: Instant) -> Row {
    Row {
        case,
        count,
        per_second: count as f64 / started.elapsed().as_secs_f64(),
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    }
}

/// What exactly-once alone costs: the same events' inbox rows, `BATCH` per transaction.
async fn inbox_ceiling(
    env: &TestEnv,
    events: &[redress_analytics::events::Ev],
) -> anyhow::Result<Row> {
    let db = fresh(env, "bench_inbox").await?;
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let ids: Vec<String> = chunk.iter().map(|e| e.id.clone()).collect();
        let mut tx = db.pool().begin().await?;
        inbox::record_many(&mut tx, "bench", &ids).await?;
        tx.commit().await?;
    }
    Ok(rate(
        format!("ceiling — Postgres: inbox rows only, {BATCH} per transaction (events)"),
        events.len(),
        started,
    ))
}

/// The write path a rebuild and the consumers' batches use, `BATCH` events a transaction.
async fn write_path(
    env: &TestEnv,
    order: &str,
    events: &[redress_analytics::events::Ev],
) -> anyhow::Result<Row> {
    let db = fresh(env, &format!("bench_{}", order.replace(' ', "_"))).await?;
    let ctx = context("cn-nfra")?;
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let mut tx = db.pool().begin().await?;
        rebuild::apply_new(&mut tx, &ctx, "bench", chunk).await?;
        tx.commit().await?;
    }
    Ok(rate(
        format!("write path, {order}, {BATCH} per transaction, {COMPLAINTS} complaints (events)"),
        events.len(),
        started,
    ))
}

/// The service as deployed: events already on the streams, the consumers started, timed
/// until every event has its inbox row.
async fn service(
    env: &TestEnv,
    envelopes: &[redress_proto::events::v1::Event],
) -> anyhow::Result<Row> {
    let bus = env.bus().await;
    bus.ensure_streams(redress_proto::bus::ALL_STREAMS).await?;
    let messages = envelopes
        .iter()
        .map(|e| generated::outgoing(e, &e.id))
        .collect();
    let (_, error) = bus.publish_all(messages).await;
    if let Some(error) = error {
        anyhow::bail!("publishing the generated events: {error}");
    }
    let mut runtime = env.runtime_config();
    runtime.log_format = redress_runtime::config::LogFormat::Json;
    let shutdown = CancellationToken::new();
    let config = Config {
        runtime,
        analytics: AnalyticsConfig::default(),
        command: None,
    };
    let started = Instant::now();
    let Exit::Serving(_running) = redress_analytics::run(config, shutdown.clone()).await? else {
        anyhow::bail!("analytics did not start serving");
    };
    let pool = env.pool(SCHEMA).await;
    let total = envelopes.len() as i64;
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&pool)
            .await?;
        if n >= total {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("analytics applied {n} of {total} events in 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = rate(
        "service over JetStream, consumers' batches (events)".into(),
        envelopes.len(),
        started,
    );
    shutdown.cancel();
    pool.close().await;
    Ok(row)
}

/// A year of `YEAR_COMPLAINTS` complaints in the month cube, spread over the generator's
/// dimensions: each complaint a base row in the month received and in the month decided, a
/// model-class row and a root-cause row (made in SQL: through the write path it would take
/// the ingest rate above × 7M events).
const YEAR_SQL: &str = "
INSERT INTO cube_month (period, channel, kind, product, category, cause, severity, vulnerable,
    partner, department, regime, detail, received, registered, classified, confidence_7,
    decided, on_time, late, decide_secs, decide_wdays, upheld, not_upheld, root_cause,
    hist_decide_08, hist_decide_11, hist_decide_13)
SELECT date_trunc('month', day)::date, channel, kind, product, category, cause, severity,
       vulnerable, partner, department, 'cn-nfra', detail,
       sum(received), sum(received), sum(classified), sum(classified), sum(decided),
       sum(on_time), sum(decided) - sum(on_time), sum(decided * secs), sum(decided * secs / 86400),
       sum(decided * up), sum(decided * (1 - up)), sum(tag),
       sum(decided * (secs <= 96 * 3600)::int), sum(decided * (secs > 96 * 3600 AND secs <= 240 * 3600)::int),
       sum(decided * (secs > 240 * 3600)::int)
FROM (
  SELECT c.*, r.*
  FROM (SELECT date '2025-01-01' + (random() * 364)::int AS rday,
               (ARRAY['app','web','hotline','wechat','letter'])[1 + floor(random() * 5)::int] AS channel,
               (ARRAY['complaint','complaint','complaint','inquiry'])[1 + floor(random() * 4)::int] AS kind,
               (ARRAY['credit_card','mortgage','deposit','wealth','insurance'])[1 + floor(random() * 5)::int] AS product,
               'B0' || (1 + floor(random() * 8)::int) AS category,
               'C0' || (1 + floor(random() * 6)::int) AS cause,
               (ARRAY['low','medium','high','critical'])[1 + floor(random() * 4)::int] AS severity,
               random() < 0.1 AS vulnerable,
               (ARRAY['','','','','','','','','P-01','P-02','P-03'])[1 + floor(random() * 11)::int] AS partner,
               (ARRAY['cards','loans','retail','wealth','operations'])[1 + floor(random() * 5)::int] AS department,
               (1 + random() * 20)::int AS ddays,
               (ARRAY['fee-disclosure','system-outage','staff-conduct','collection','misselling','delay'])[1 + floor(random() * 6)::int] AS tagname,
               random() < 0.5 AS up_
        FROM generate_series(1, $1::bigint)) c,
  LATERAL (VALUES
      (c.rday, '', 1, 0, 0, 0, 0, 0, 0),
      (c.rday, c.category, 0, 1, 0, 0, 0, 0, 0),
      (c.rday + c.ddays, '', 0, 0, 1, (c.ddays <= 15)::int, c.ddays * 86400, c.up_::int, 0),
      (c.rday + c.ddays, c.tagname, 0, 0, 0, 0, 0, 0, 1)
  ) AS r(day, detail, received, classified, decided, on_time, secs, up, tag)
) x
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12";

/// Breakdown p50/p99 over the year, each query `RUNS` times, and the ceiling: a bare
/// one-column scan of the same table.
async fn breakdowns(env: &TestEnv) -> anyhow::Result<Vec<Row>> {
    let db = fresh(env, "bench_year").await?;
    let pool = db.pool().clone();
    let started = Instant::now();
    sqlx::query(YEAR_SQL)
        .bind(YEAR_COMPLAINTS)
        .execute(&pool)
        .await?;
    sqlx::query("VACUUM ANALYZE cube_month")
        .execute(&pool)
        .await?;
    let cube_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM cube_month")
        .fetch_one(&pool)
        .await?;
    println!(
        "analytics: a year of {YEAR_COMPLAINTS} complaints as {cube_rows} month-cube rows, made in {:?}",
        started.elapsed()
    );
    let day = |y, m| chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default();
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let q = |dims: &[&str], measures: &[&str], grain, filters: Vec<(String, Vec<String>)>| {
        query::Breakdown {
            dimensions: strings(dims),
            measures: strings(measures),
            grain,
            from: day(2025, 1),
            to: day(2026, 1),
            filters,
        }
    };
    let defaults: Vec<&str> = query::DEFAULT_MEASURES.to_vec();
    let cases = [
        (
            "category × month, the 17 headline measures",
            q(&["category"], &defaults, Grain::Month, vec![]),
        ),
        (
            "channel × product × quarter, received + on-time rate",
            q(
                &["channel", "product"],
                &["received", "on_time_rate"],
                Grain::Quarter,
                vec![],
            ),
        ),
        (
            "department = cards, category × cause, year, p90 decide hours",
            q(
                &["category", "cause"],
                &["received", "p90_decide_hours"],
                Grain::Year,
                vec![("department".into(), vec!["cards".into()])],
            ),
        ),
        (
            "root causes (detail) × month",
            q(&["detail"], &["root_cause"], Grain::Month, vec![]),
        ),
    ];
    let mut rows = Vec::new();
    let mut timed = |case: String, latencies: Vec<f64>| {
        let total: f64 = latencies.iter().sum();
        let (p50_ms, p99_ms) = percentiles(latencies.clone());
        rows.push(Row {
            case,
            count: latencies.len(),
            per_second: latencies.len() as f64 / (total / 1000.0),
            p50_ms,
            p99_ms,
        });
    };
    let mut latencies = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let _: Option<i64> = sqlx::query_scalar("SELECT sum(received)::bigint FROM cube_month")
            .fetch_one(&pool)
            .await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    timed(
        format!(
            "ceiling — Postgres: sum of one column over the year's {cube_rows} cube rows (queries)"
        ),
        latencies,
    );
    for (name, breakdown) in cases {
        let mut latencies = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            breakdown.run(&pool).await?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        timed(
            format!("Breakdown over 1M complaints/year: {name} (queries)"),
            latencies,
        );
    }
    pool.close().await;
    Ok(rows)
}
